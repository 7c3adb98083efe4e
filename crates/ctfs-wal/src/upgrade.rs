//! Adopting a directory written in format 1, which records no configuration
//! fingerprint: [`upgrade_format`] stamps every format-1 segment and
//! checkpoint with the caller's fingerprint (format 2). The caller asserts
//! that this is the configuration that wrote the directory; nothing can check
//! it, which is why opening a format-1 directory is otherwise refused.
//!
//! Each file is rewritten next to itself (`*.upgrade.tmp`, fdatasync) and
//! renamed over the original, then the directory is fsynced: a crash leaves
//! every file either in format 1 or in format 2, both readable.

use crate::checkpoint::{list_checkpoints, load_checkpoint, write_checkpoint};
use crate::error::WalError;
use crate::format::{encode_segment_header, fsync_dir, list_segments, parse_segment_header};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Rewrites the format-1 files of `dir` in format 2 with `fingerprint`.
/// Returns the files rewritten (none for a directory already in format 2).
/// Takes the directory's lock for the duration (`IO_ERROR` if it is open).
pub fn upgrade_format(dir: impl AsRef<Path>, fingerprint: &[u8]) -> Result<Vec<PathBuf>, WalError> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let _lock = crate::wal::lock_dir(dir)?;
    let io = |ctx: &str, p: &Path, e| WalError::io(format!("{ctx} {}", p.display()), e);
    let mut done = Vec::new();
    for (_, path) in list_segments(dir).map_err(|e| io("list", dir, e))? {
        let buf = std::fs::read(&path).map_err(|e| io("read", &path, e))?;
        let Ok(h) = parse_segment_header(&buf) else { continue }; // damaged: left for recovery to judge
        if h.fingerprint.is_some() {
            continue;
        }
        let tmp = path.with_extension("log.upgrade.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        f.write_all(&encode_segment_header(h.first_seq, fingerprint))
            .and_then(|()| f.write_all(&buf[h.len..]))
            .and_then(|()| f.sync_all())
            .map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("rename", &tmp, e))?;
        done.push(path);
    }
    for (seq, path) in list_checkpoints(dir)? {
        let Ok(c) = load_checkpoint(&path) else { continue }; // invalid: skipped by recovery anyway
        if c.fingerprint().is_some() {
            continue;
        }
        let sections: Vec<(u32, Vec<u8>)> = c.sections().map(|(t, d)| (t, d.to_vec())).collect();
        let refs: Vec<(u32, &[u8])> = sections.iter().map(|(t, d)| (*t, d.as_slice())).collect();
        write_checkpoint(dir, seq, fingerprint, &refs)?;
        done.push(path);
    }
    if !done.is_empty() {
        fsync_dir(dir).map_err(|e| io("fsync dir", dir, e))?;
    }
    Ok(done)
}
