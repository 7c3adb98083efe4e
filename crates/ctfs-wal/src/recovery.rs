//! Recovery scan and streaming replay.
//!
//! One pass over the segments in seq order validates every segment header
//! and every record (length limits, `len` consistent with `dep_count` and
//! `payload_len`, CRC32C, seq continuity within and across segments) and
//! hands each record at or after `from_seq` to the caller, borrowed from the
//! read buffer (zero-copy).
//!
//! Damage is classified as:
//! * **torn tail**: the first invalid bytes lie in the *last* segment and no
//!   valid record with a plausible seq (>= the expected one) starts anywhere
//!   after them. This is what a crash during an unsynced write leaves; those
//!   records were never reported durable. `Wal::open` truncates the file to
//!   the last valid record (a last segment whose header is torn is removed)
//!   and reports the bytes cut.
//! * **corruption**: anything else (valid data follows, or the damage is in
//!   a segment that is not the last, or a seq gap between segments).
//!   `WalError::Corrupt` with the segment and offset, unless
//!   `WalOptions::truncate_corrupt`, which truncates there, deletes every
//!   later segment and reports `truncated_at`.

use crate::error::WalError;
use crate::format::{
    RecordRef, SEGMENT_HEADER_LEN, fsync_dir, list_segments, parse_record, parse_segment_header, valid_record_after,
};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What recovery (or a read-only replay) found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records handed to the replay callback (seq >= `from_seq`).
    pub records_replayed: u64,
    /// Valid records in the log.
    pub records_scanned: u64,
    /// First seq present in the log (after compaction it is > 1); equals
    /// `last_seq + 1` when the log holds no record.
    pub first_seq: u64,
    /// Last valid seq (0 for a new log).
    pub last_seq: u64,
    /// Bytes removed (torn tail, torn segment, or `truncate_corrupt`). For a
    /// read-only replay: bytes that would be cut.
    pub bytes_cut: u64,
    /// Where a torn tail started (segment, offset), if there was one.
    pub torn_tail_at: Option<(PathBuf, u64)>,
    /// Where the log was truncated because of corruption
    /// (`truncate_corrupt = true` only).
    pub truncated_at: Option<(PathBuf, u64)>,
    /// Segments left after recovery.
    pub segments: usize,
}

/// `from_seq` meaning "replay nothing".
pub(crate) const NO_REPLAY: u64 = u64::MAX;

pub(crate) struct ScanResult {
    pub recovery: Recovery,
    /// Last segment after recovery: path, first seq, valid length.
    pub active: Option<(PathBuf, u64, u64)>,
}

fn io_err(ctx: &str, p: &Path, e: std::io::Error) -> WalError {
    WalError::io(format!("{ctx} {}", p.display()), e)
}

fn truncate_file(path: &Path, len: u64) -> Result<(), WalError> {
    let f = OpenOptions::new().write(true).open(path).map_err(|e| io_err("open for truncation", path, e))?;
    f.set_len(len).map_err(|e| io_err("truncate", path, e))?;
    f.sync_all().map_err(|e| io_err("fsync", path, e))
}

/// Scans `dir`. `repair` = may truncate/delete (open); otherwise read-only.
pub(crate) fn scan<E, F>(
    dir: &Path,
    repair: bool,
    truncate_corrupt: bool,
    from_seq: u64,
    mut f: F,
) -> Result<ScanResult, E>
where
    E: From<WalError>,
    F: FnMut(RecordRef<'_>) -> Result<(), E>,
{
    let from_seq = from_seq.max(1);
    let segs = list_segments(dir).map_err(|e| io_err("list", dir, e))?;
    let mut rec = Recovery { segments: segs.len(), ..Recovery::default() };
    let mut active: Option<(PathBuf, u64, u64)> = None;
    let mut expected: Option<u64> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut dir_changed = false;
    let n = segs.len();

    if from_seq != NO_REPLAY
        && let Some((first, _)) = segs.first()
        && from_seq < *first
    {
        return Err(WalError::InvalidArgument(format!(
            "replay from seq {from_seq} requested but the log starts at seq {first} (earlier segments were compacted)"
        ))
        .into());
    }

    // Deletes segments i.. (after a torn/corrupt point); returns bytes removed.
    let remove_from = |i: usize, segs: &[(u64, PathBuf)]| -> Result<u64, WalError> {
        let mut bytes = 0;
        for (_, p) in &segs[i..] {
            bytes += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(p).map_err(|e| io_err("remove", p, e))?;
        }
        Ok(bytes)
    };

    let mut i = 0;
    while i < n {
        let (name_seq, path) = (&segs[i].0, &segs[i].1);
        let last = i + 1 == n;
        buf.clear();
        File::open(path)
            .and_then(|mut fh| fh.read_to_end(&mut buf))
            .map_err(|e| io_err("read", path, e))?;
        let file_len = buf.len() as u64;

        // ---- header
        let hdr = parse_segment_header(&buf).and_then(|s| {
            if s != *name_seq { Err(format!("header first seq {s} does not match file name seq {name_seq}")) } else { Ok(s) }
        });
        let first = match hdr {
            Ok(first) => first,
            Err(reason) => {
                let min = expected.unwrap_or(*name_seq);
                if last && valid_record_after(&buf, 0, min).is_none() {
                    // Crash while creating the segment: nothing in it was ever durable.
                    rec.bytes_cut += file_len;
                    rec.torn_tail_at = Some((path.clone(), 0));
                    if expected.is_none() {
                        // Keep the seq numbering the file name promised.
                        expected = Some(*name_seq);
                        rec.first_seq = *name_seq;
                    }
                    if repair {
                        std::fs::remove_file(path).map_err(|e| io_err("remove", path, e))?;
                        dir_changed = true;
                        rec.segments -= 1;
                    }
                    break;
                }
                if repair && truncate_corrupt {
                    rec.bytes_cut += remove_from(i, &segs)?;
                    rec.truncated_at = Some((path.clone(), 0));
                    rec.segments = i;
                    dir_changed = true;
                    break;
                }
                return Err(WalError::corrupt(path, 0, reason).into());
            }
        };
        if let Some(e) = expected
            && first != e
        {
            let reason = format!("sequence gap: segment starts at seq {first}, expected {e}");
            if repair && truncate_corrupt {
                rec.bytes_cut += remove_from(i, &segs)?;
                rec.truncated_at = Some((path.clone(), 0));
                rec.segments = i;
                dir_changed = true;
                break;
            }
            return Err(WalError::corrupt(path, 16, reason).into());
        }
        if expected.is_none() {
            rec.first_seq = first;
        }
        let mut exp = first;

        // ---- records
        let mut off = SEGMENT_HEADER_LEN;
        let mut bad: Option<String> = None;
        while off < buf.len() {
            match parse_record(&buf, off) {
                Ok((r, total)) if r.seq == exp => {
                    if r.seq >= from_seq {
                        f(r)?;
                        rec.records_replayed += 1;
                    }
                    exp += 1;
                    off += total;
                }
                Ok((r, _)) => {
                    bad = Some(format!("record seq {} where {exp} was expected", r.seq));
                    break;
                }
                Err(reason) => {
                    bad = Some(reason.to_string());
                    break;
                }
            }
        }
        rec.records_scanned += exp - first;
        expected = Some(exp);
        let mut stop = false;
        if let Some(reason) = bad {
            let offset = off as u64;
            if last && valid_record_after(&buf, off + 1, exp).is_none() {
                rec.bytes_cut += file_len - offset;
                rec.torn_tail_at = Some((path.clone(), offset));
                if repair {
                    truncate_file(path, offset)?;
                }
            } else if repair && truncate_corrupt {
                truncate_file(path, offset)?;
                rec.bytes_cut += file_len - offset + remove_from(i + 1, &segs)?;
                rec.truncated_at = Some((path.clone(), offset));
                rec.segments = i + 1;
                dir_changed |= i + 1 < n;
                stop = true;
            } else {
                return Err(WalError::corrupt(path, offset, reason).into());
            }
        }
        if last || stop {
            active = Some((path.clone(), first, off as u64));
        }
        if stop {
            break;
        }
        i += 1;
    }

    let next = expected.unwrap_or(1);
    rec.last_seq = next - 1;
    if expected.is_none() {
        rec.first_seq = 1;
    }
    if from_seq != NO_REPLAY && from_seq > next {
        return Err(WalError::InvalidArgument(format!(
            "replay from seq {from_seq} requested but the log ends at seq {} (log tail lost?)",
            next - 1
        ))
        .into());
    }
    if repair && dir_changed {
        fsync_dir(dir).map_err(|e| io_err("fsync dir", dir, e))?;
    }
    Ok(ScanResult { recovery: rec, active })
}
