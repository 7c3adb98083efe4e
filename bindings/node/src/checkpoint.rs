//! Checkpoints of a durable kernel: the kernel snapshot (ctfs-core) in a
//! BLAKE3-verified checkpoint file (ctfs-wal), and re-anchoring on open.

use std::path::Path;

use ctfs_core::Kernel;
use napi::{Error, Result, Status};

use crate::durable::wal_error;
use crate::kernel::KernelState;

const TAG_META: u32 = 1;
const TAG_IDS: u32 = 2;
const TAG_STATE: u32 = 3;
/// Durable replicated kernels: epoch, version vector, escrow shares.
const TAG_REPLICA: u32 = 4;

fn corrupt(path: &Path, why: &str) -> Error {
    Error::new(Status::GenericFailure, format!("[CHECKPOINT_CORRUPT] {}: {why}", path.display()))
}

/// Restores the newest checkpoint that verifies into `st.main` (a fresh
/// kernel with the configuration to restore into). Returns (first seq to
/// replay, checkpoint seq, descriptions of skipped checkpoints). A
/// checkpoint written under another configuration fingerprint is
/// `CONFIG_MISMATCH` (never skipped in favour of an older one).
pub(crate) fn restore_latest(dir: &Path, st: &mut KernelState, fingerprint: &[u8]) -> Result<(u64, u64, Vec<String>, Option<Vec<u8>>)> {
    let mut skipped = Vec::new();
    let latest = ctfs_wal::latest_valid_checkpoint(dir).map_err(|e| wal_error(&e))?;
    for (p, e) in &latest.skipped {
        skipped.push(format!("{}: {e}", p.display()));
    }
    let Some(ckpt) = latest.checkpoint else { return Ok((1, 0, skipped, None)) };
    ckpt.check_fingerprint(fingerprint).map_err(|e| wal_error(&e))?;
    let section = |tag| ckpt.section(tag).ok_or_else(|| corrupt(&ckpt.path, &format!("section {tag} missing")));
    let (meta, ids, state) = (section(TAG_META)?, section(TAG_IDS)?, section(TAG_STATE)?);
    let (inv, kcfg) = (st.main.invariant().clone(), st.main.config().clone());
    let kernel = Kernel::restore(inv, kcfg, meta, ids, state).map_err(|why| {
        Error::new(
            Status::GenericFailure,
            format!(
                "[CHECKPOINT_MISMATCH] checkpoint {} verifies and was written under this configuration, but its kernel snapshot does not restore ({why})",
                ckpt.path.display()
            ),
        )
    })?;
    st.main = kernel;
    let replica = ckpt.section(TAG_REPLICA).map(<[u8]>::to_vec);
    if st.replication.is_some() && replica.is_none() {
        return Err(corrupt(&ckpt.path, "a replicated kernel's checkpoint without its replica section"));
    }
    Ok((ckpt.seq + 1, ckpt.seq, skipped, replica))
}

/// Writes a checkpoint covering everything appended, then compacts.
pub(crate) fn write(st: &mut KernelState) -> Result<u64> {
    let log = st
        .log
        .as_mut()
        .ok_or_else(|| Error::new(Status::InvalidArg, "checkpoint() needs a durable kernel (Kernel.open)"))?;
    // A removed (or replaced) directory fails here instead of "succeeding".
    log.wal().check_dir().map_err(|e| wal_error(&e))?;
    let seq = log.wal().sync().map_err(|e| wal_error(&e))?;
    let snap = st.main.snapshot();
    let dir = log.wal().dir().to_path_buf();
    let replica = match &st.replication {
        Some(r) => {
            let vv = match (&st.sync, &st.pending_sync) {
                (Some(node), _) => node.version_vector().clone(),
                (None, Some(pre)) => pre.vv.clone(),
                (None, None) => ctfs_sync::VersionVector::new(),
            };
            Some(crate::sync::encode_replica_section(st.durable_sync.epoch, &vv, r))
        }
        None => None,
    };
    let mut sections = vec![(TAG_META, &snap.meta[..]), (TAG_IDS, &snap.ids[..]), (TAG_STATE, &snap.state[..])];
    if let Some(r) = &replica {
        sections.push((TAG_REPLICA, &r[..]));
    }
    ctfs_wal::write_checkpoint(&dir, seq, &log.fingerprint, &sections).map_err(|e| wal_error(&e))?;
    // Keep the previous checkpoint as a fallback; drop what precedes it.
    let previous = log.checkpoint_seq;
    log.checkpoint_seq = seq;
    if previous > 0 {
        ctfs_wal::remove_checkpoints_before(&dir, previous).map_err(|e| wal_error(&e))?;
        log.wal().compact_before(previous + 1).map_err(|e| wal_error(&e))?;
    }
    Ok(seq)
}
