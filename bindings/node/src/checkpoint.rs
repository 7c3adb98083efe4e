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
/// Tenants: `count u32 | count × (name_len u16 | name | sections_len u64 | meta, ids, state sections)`.
const TAG_TENANTS: u32 = 5;

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
    if let Some(t) = ckpt.section(TAG_TENANTS) {
        restore_tenants(t, st).map_err(|why| {
            Error::new(Status::GenericFailure, format!("[CHECKPOINT_MISMATCH] checkpoint {}: its tenants do not restore ({why})", ckpt.path.display()))
        })?;
    }
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
    let t0 = ctfs_core::metrics::now_ns();
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
    let tenants = (!st.tenants.is_empty()).then(|| encode_tenants(&st.tenants));
    let mut sections = vec![(TAG_META, &snap.meta[..]), (TAG_IDS, &snap.ids[..]), (TAG_STATE, &snap.state[..])];
    if let Some(r) = &replica {
        sections.push((TAG_REPLICA, &r[..]));
    }
    if let Some(t) = &tenants {
        sections.push((TAG_TENANTS, &t[..]));
    }
    ctfs_wal::write_checkpoint(&dir, seq, &log.fingerprint, &sections).map_err(|e| wal_error(&e))?;
    let bytes: u64 = sections.iter().map(|(_, b)| b.len() as u64).sum();
    log.checkpoints += 1;
    log.checkpoint_bytes_last = bytes;
    log.checkpoint_bytes_total += bytes;
    // Keep the previous checkpoint as a fallback; drop what precedes it.
    let previous = log.checkpoint_seq;
    log.checkpoint_seq = seq;
    if previous > 0 {
        ctfs_wal::remove_checkpoints_before(&dir, previous).map_err(|e| wal_error(&e))?;
        log.wal().compact_before(previous + 1).map_err(|e| wal_error(&e))?;
    }
    log.checkpoint_ns.record(ctfs_core::metrics::now_ns() - t0);
    Ok(seq)
}

fn encode_tenants(tenants: &ctfs_core::Tenants<ctfs_core::Multi<ctfs_core::invariants::Builtin>>) -> Vec<u8> {
    let names = tenants.names_by_slot();
    let mut out = Vec::new();
    out.extend_from_slice(&(names.len() as u32).to_le_bytes());
    for (slot, name) in names.iter().enumerate() {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        let sections = tenants.get_slot(slot).map(|k| ctfs_sync::host::encode_sections(&k.snapshot())).unwrap_or_default();
        out.extend_from_slice(&(sections.len() as u64).to_le_bytes());
        out.extend_from_slice(&sections);
    }
    out
}

fn restore_tenants(mut b: &[u8], st: &mut KernelState) -> std::result::Result<(), String> {
    let take = |b: &mut &[u8], n: usize| -> std::result::Result<Vec<u8>, String> {
        let (h, r) = b.split_at_checked(n).ok_or("truncated")?;
        *b = r;
        Ok(h.to_vec())
    };
    let count = u32::from_le_bytes(take(&mut b, 4)?.try_into().map_err(|_| "count")?);
    for slot in 0..count as usize {
        let len = u16::from_le_bytes(take(&mut b, 2)?.try_into().map_err(|_| "name length")?) as usize;
        let name = String::from_utf8(take(&mut b, len)?).map_err(|_| "tenant name is not UTF-8")?;
        let slen = u64::from_le_bytes(take(&mut b, 8)?.try_into().map_err(|_| "length")?);
        let sections = take(&mut b, usize::try_from(slen).map_err(|_| "length")?)?;
        let [meta, ids, state] = ctfs_sync::host::decode_sections(&sections)?;
        if st.tenants.slot(&name) != slot {
            return Err(format!("tenant {name} is not in slot {slot}"));
        }
        let (inv, cfg) = st.tenants.template();
        let k = Kernel::restore(inv.clone(), cfg.clone(), meta, ids, state).map_err(|e| format!("tenant {name}: {e}"))?;
        if let Some(t) = st.tenants.by_slot(slot) {
            *t = k;
        }
    }
    if !b.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(())
}
