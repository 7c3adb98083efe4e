//! Recovery scan and streaming replay.
//!
//! One pass over the segments in seq order validates every segment header
//! (its configuration fingerprint included) and every record (length
//! limits, `len` consistent with `dep_count` and `payload_len`, CRC32C, seq
//! continuity within and across segments) and hands each record at or after
//! `from_seq` to the caller, borrowed from the read buffer (zero-copy).
//!
//! **Covered records.** The caller replays from `from_seq` because it holds
//! everything before it (a verified checkpoint covering `from_seq - 1`).
//! Records below `from_seq` are therefore not needed: damage among them, a
//! missing segment whose records all lie below it, or a log that ends below
//! it costs nothing. Such damage is skipped (resynchronising on the next
//! valid record) and reported in [`Recovery::covered_damage`]; nothing is
//! cut. Every seq from `from_seq` to the end of the log must be present, in
//! order, exactly once. When the log ends below `from_seq`, appends continue
//! in a new segment starting at `from_seq`.
//!
//! Damage after that point is classified as:
//! * **torn tail**: the first invalid bytes lie in the *last* segment and no
//!   valid record with a plausible seq (>= the expected one) starts anywhere
//!   after them. This is what a crash during an unsynced write leaves; those
//!   records were never reported durable. `Wal::open` truncates the file to
//!   the last valid record (a last segment whose header is torn is removed)
//!   and reports the bytes cut.
//! * **corruption**: anything else (valid data follows, or the damage is in
//!   a segment that is not the last, or a seq gap, or a log that starts after
//!   the first seq it must hold). `WalError::Corrupt` with the segment and
//!   offset, unless `WalOptions::truncate_corrupt`, which cuts the log there:
//!   the bytes removed are first **moved aside** (the tail of the damaged
//!   segment copied to `<segment>.<offset>.corrupt`, every later segment
//!   renamed to `<segment>.0.corrupt`), never deleted, and the report says
//!   where and why ([`Recovery::truncated_at`], [`Recovery::truncate_reason`],
//!   [`Recovery::moved_aside`]).
//!
//! A segment written under another configuration fingerprint (or of format
//! 1, which records none) is `CONFIG_MISMATCH`, whatever the options: it is
//! never read, cut or moved.

use crate::error::WalError;
use crate::format::{
    RecordRef, SegmentHeader, fsync_dir, is_zero_tail, list_segments, parse_record, parse_record_checked, parse_segment_header,
    segment_file_name, verified_chain_end,
};
use crate::spare::{LeftSpare, SPARE_NAME, left_spare};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
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
    /// Last seq of the log: the last valid record, or `from_seq - 1` when
    /// the log ends below it (0 for a new log).
    pub last_seq: u64,
    /// Bytes removed from the log (torn tail, torn segment, or
    /// `truncate_corrupt`). For a read-only replay: bytes that would be cut.
    pub bytes_cut: u64,
    /// Where a torn tail started (segment, offset), if there was one.
    pub torn_tail_at: Option<(PathBuf, u64)>,
    /// Where the log was truncated because of corruption
    /// (`truncate_corrupt = true` only).
    pub truncated_at: Option<(PathBuf, u64)>,
    /// Why it was truncated there.
    pub truncate_reason: Option<String>,
    /// Files holding the bytes `truncate_corrupt` removed from the log.
    pub moved_aside: Vec<PathBuf>,
    /// Damage among records below `from_seq` (not needed: covered by the
    /// caller's checkpoint), left in place: (segment, offset, what).
    pub covered_damage: Vec<(PathBuf, u64, String)>,
    /// Segments left after recovery.
    pub segments: usize,
}

/// `from_seq` meaning "replay nothing" (and: nothing is covered).
pub(crate) const NO_REPLAY: u64 = u64::MAX;

/// How to scan.
pub(crate) struct ScanOptions<'a> {
    /// May truncate, remove and move files (open); otherwise read-only.
    pub repair: bool,
    pub truncate_corrupt: bool,
    /// Replay records with seq >= this; records below it are covered.
    /// [`NO_REPLAY`]: replay nothing, nothing covered.
    pub from_seq: u64,
    /// The configuration every segment must carry. `None`: the first
    /// segment's is the reference for the others.
    pub fingerprint: Option<&'a [u8]>,
}

pub(crate) struct ScanResult {
    pub recovery: Recovery,
    /// Where appends go: the last segment (path, first seq, valid length),
    /// or `None` when a new segment must be started at `last_seq + 1`.
    pub active: Option<(PathBuf, u64, u64)>,
    /// The fingerprint the segments carry (the reference), if any segment
    /// has one.
    pub fingerprint: Option<Vec<u8>>,
}

fn io_err(ctx: &str, p: &Path, e: std::io::Error) -> WalError {
    WalError::io(format!("{ctx} {}", p.display()), e)
}

fn truncate_file(path: &Path, len: u64) -> Result<(), WalError> {
    let f = OpenOptions::new().write(true).open(path).map_err(|e| io_err("open for truncation", path, e))?;
    f.set_len(len).map_err(|e| io_err("truncate", path, e))?;
    f.sync_all().map_err(|e| io_err("fsync", path, e))
}

/// A free name `<segment file name>.<offset>[.n].corrupt` next to `path`.
fn aside_name(path: &Path, offset: u64) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut p = dir.join(format!("{name}.{offset}.corrupt"));
    let mut n = 1;
    while p.exists() {
        p = dir.join(format!("{name}.{offset}.{n}.corrupt"));
        n += 1;
    }
    p
}

/// Moves the bytes of `path` from `offset` on aside (a whole file is
/// renamed; a tail is copied out, synced, then cut). Returns the new file and
/// the bytes moved. The caller fsyncs the directory.
fn move_aside(path: &Path, buf_or_len: Result<&[u8], u64>, offset: u64) -> Result<(PathBuf, u64), WalError> {
    let to = aside_name(path, offset);
    if offset == 0 {
        let len = match buf_or_len {
            Ok(b) => b.len() as u64,
            Err(n) => n,
        };
        std::fs::rename(path, &to).map_err(|e| io_err("move aside", path, e))?;
        return Ok((to, len));
    }
    let tail: Vec<u8> = match buf_or_len {
        Ok(b) => b[offset as usize..].to_vec(),
        Err(_) => {
            let mut all = Vec::new();
            File::open(path).and_then(|mut f| f.read_to_end(&mut all)).map_err(|e| io_err("read", path, e))?;
            all.get(offset as usize..).unwrap_or(&[]).to_vec()
        }
    };
    let mut f = OpenOptions::new().create_new(true).write(true).open(&to).map_err(|e| io_err("create", &to, e))?;
    f.write_all(&tail).and_then(|()| f.sync_all()).map_err(|e| io_err("write", &to, e))?;
    truncate_file(path, offset)?;
    Ok((to, tail.len() as u64))
}

/// `record 5` or `records 5..9`.
pub(crate) fn seq_range(what: &str, a: u64, b: u64) -> String {
    if a == b { format!("{what} {a}") } else { format!("{what}s {a}..{b}") }
}

/// A segment file read whole, with the offset up to which its records were
/// found well formed (checksums included) from the end of its header on:
/// 0 unless `verify` (a read-ahead verifies; the segment replayed first
/// does not, as its checksums are checked as it is replayed).
struct Loaded {
    buf: Vec<u8>,
    chain_end: usize,
}

fn load_segment(path: &Path, verify: bool) -> std::io::Result<Loaded> {
    let mut fh = File::open(path)?;
    // A capacity hint only (a damaged or foreign file may claim any size).
    let len = fh.metadata().map(|m| m.len() as usize).unwrap_or(0).min(256 << 20);
    let mut buf = Vec::with_capacity(len.saturating_add(1));
    fh.read_to_end(&mut buf)?;
    let chain_end = match parse_segment_header(&buf) {
        Ok(h) if verify => verified_chain_end(&buf, h.len),
        _ => 0,
    };
    Ok(Loaded { buf, chain_end })
}

/// The first offset after `from` where a valid record with a seq in
/// `lo..=hi` starts, with that seq.
fn find_record(buf: &[u8], from: usize, lo: u64, hi: u64) -> Option<(usize, u64)> {
    let mut o = from;
    while o + crate::format::MIN_RECORD_LEN <= buf.len() {
        if let Ok((r, _)) = parse_record(buf, o)
            && (lo..=hi).contains(&r.seq)
        {
            return Some((o, r.seq));
        }
        o += 1;
    }
    None
}

/// Scans `dir` (see the module docs).
pub(crate) fn scan<E, F>(dir: &Path, o: &ScanOptions<'_>, mut f: F) -> Result<ScanResult, E>
where
    E: From<WalError>,
    F: FnMut(RecordRef<'_>) -> Result<(), E>,
{
    let from_seq = o.from_seq.max(1);
    // Every seq from `need` on must be in the log; below it, covered.
    let need = if o.from_seq == NO_REPLAY { 1 } else { from_seq };
    let covered = need - 1;
    // A spare left by a crash (see `spare.rs`): one holding a segment is
    // listed with the segments (and renamed at the end of a repair); a
    // damaged one is refused, or moved aside with `truncate_corrupt`.
    let spare = dir.join(SPARE_NAME);
    let mut spare_aside = None;
    if let LeftSpare::Damaged(reason) = left_spare(dir).map_err(|e| io_err("read", &spare, e))? {
        let reason = format!("the spare segment: {reason}");
        if !(o.repair && o.truncate_corrupt) {
            return Err(WalError::corrupt(&spare, 0, reason).into());
        }
        let len = std::fs::metadata(&spare).map(|m| m.len()).unwrap_or(0);
        let (p, bytes) = move_aside(&spare, Err(len), 0)?;
        spare_aside = Some((p, bytes, reason));
    }
    let segs = list_segments(dir).map_err(|e| io_err("list", dir, e))?;
    let n = segs.len();
    let mut rec = Recovery { segments: n, ..Recovery::default() };
    let mut reference: Option<Vec<u8>> = o.fingerprint.map(<[u8]>::to_vec);
    let mut active: Option<(PathBuf, u64, u64)> = None;
    // The seq the next valid record must have (after the previous segment).
    let mut expected: Option<u64> = None;
    let mut first_valid: Option<u64> = None;
    let mut dir_changed = spare_aside.is_some();

    // Uncovered damage at (segment i, offset): cut there (moving the bytes
    // aside) with `truncate_corrupt`, else `WAL_CORRUPT`.
    let damage = |i: usize, buf: &[u8], offset: u64, reason: String, rec: &mut Recovery| -> Result<(), WalError> {
        let path = &segs[i].1;
        if !(o.repair && o.truncate_corrupt) {
            return Err(WalError::corrupt(path, offset, reason));
        }
        let (p, bytes) = move_aside(path, Ok(buf), offset)?;
        rec.moved_aside.push(p);
        rec.bytes_cut += bytes;
        for (_, later) in &segs[i + 1..] {
            let len = std::fs::metadata(later).map(|m| m.len()).unwrap_or(0);
            let (p, bytes) = move_aside(later, Err(len), 0)?;
            rec.moved_aside.push(p);
            rec.bytes_cut += bytes;
        }
        rec.truncated_at = Some((path.clone(), offset));
        rec.truncate_reason = Some(reason);
        rec.segments = if offset == 0 { i } else { i + 1 };
        Ok(())
    };

    // Segment i+1 is read, and its records' checksums checked, on another
    // thread while segment i is replayed (see `load_segment`).
    std::thread::scope(|scope| -> Result<(), E> {
        let read_ahead = |k: usize| {
            let path = segs.get(k)?.1.clone();
            let h = std::thread::Builder::new()
                .name("ctfs-wal-readahead".into())
                .spawn_scoped(scope, move || load_segment(&path, true))
                .ok()?;
            Some((k, h))
        };
        let mut ahead: Option<(usize, std::thread::ScopedJoinHandle<'_, std::io::Result<Loaded>>)> = None;
        let mut i = 0;
        while i < n {
            let (name_seq, path) = (segs[i].0, &segs[i].1);
            let last = i + 1 == n;
            // Every record of this segment is covered when the next one starts at or below `need`.
            let covered_whole = segs.get(i + 1).is_some_and(|(s, _)| *s <= need);
            let loaded = match ahead.take() {
                Some((k, h)) if k == i => {
                    h.join().unwrap_or_else(|_| Err(std::io::Error::other("the WAL read-ahead thread panicked")))
                }
                _ => load_segment(path, false),
            };
            let Loaded { buf, chain_end } = loaded.map_err(|e| io_err("read", path, e))?;
            if i + 1 < n {
                ahead = read_ahead(i + 1);
            }
            let file_len = buf.len() as u64;

            // ---- header
            let hdr = parse_segment_header(&buf).and_then(|h| {
                if h.first_seq != name_seq {
                    Err(format!("header first seq {} does not match file name seq {name_seq}", h.first_seq))
                } else {
                    Ok(h)
                }
            });
            let SegmentHeader { first_seq: first, len: header_len, fingerprint } = match hdr {
                Ok(h) => h,
                Err(reason) => {
                    let min = expected.unwrap_or(name_seq);
                    if last && crate::format::valid_record_after(&buf, 0, min).is_none() {
                        // Crash while creating the segment: nothing in it was ever durable.
                        rec.bytes_cut += file_len;
                        rec.torn_tail_at = Some((path.clone(), 0));
                        if o.repair {
                            std::fs::remove_file(path).map_err(|e| io_err("remove", path, e))?;
                            dir_changed = true;
                            rec.segments -= 1;
                        }
                        break;
                    }
                    if covered_whole {
                        rec.covered_damage.push((path.clone(), 0, format!("{reason}; the whole segment is covered (seqs below {need})")));
                        i += 1;
                        continue;
                    }
                    damage(i, &buf, 0, reason, &mut rec)?;
                    dir_changed = true;
                    break;
                }
            };

            // ---- configuration: refused whatever the options, never cut or moved
            match (fingerprint, &reference) {
                (Some(fp), Some(r)) if fp == r.as_slice() => {}
                (Some(fp), None) => reference = Some(fp.to_vec()),
                (found, r) => {
                    return Err(WalError::ConfigMismatch {
                        path: path.clone(),
                        found: found.map(<[u8]>::to_vec),
                        expected: r.clone().unwrap_or_default(),
                    }
                    .into());
                }
            }

            // ---- continuity with what precedes
            let gap = match expected {
                None if first > need => Some(format!(
                    "the log starts at seq {first}, but seqs {need}..{} are in no checkpoint (a missing segment?)",
                    first - 1
                )),
                Some(e) if first != e => {
                    if first > e && first <= need {
                        rec.covered_damage.push((
                            path.clone(),
                            16,
                            format!("{} missing before this segment; covered (seqs below {need})", seq_range("seq", e, first - 1)),
                        ));
                        None
                    } else {
                        Some(format!("sequence gap: segment starts at seq {first}, expected {e} (a missing segment?)"))
                    }
                }
                _ => None,
            };
            if let Some(reason) = gap {
                damage(i, &buf, 0, reason, &mut rec)?;
                dir_changed = true;
                break;
            }
            first_valid.get_or_insert(first);

            // ---- records
            let mut exp = first;
            let mut off = header_len;
            let mut bad: Option<String> = None;
            let mut covered_rest = false;
            // Still on the chain of records `chain_end` was computed along.
            let mut on_chain = true;
            while off < buf.len() {
                let checked = !(on_chain && off < chain_end);
                let reason = match parse_record_checked(&buf, off, checked) {
                    Ok((r, total)) if r.seq == exp => {
                        if r.seq >= from_seq {
                            f(r)?;
                            rec.records_replayed += 1;
                        }
                        rec.records_scanned += 1;
                        exp += 1;
                        off += total;
                        continue;
                    }
                    Ok((r, _)) => format!("record seq {} where {exp} was expected", r.seq),
                    // Zeros the writer wrote ahead: the clean end of the segment.
                    Err(_) if is_zero_tail(&buf[off..]) => break,
                    Err(reason) => reason.to_string(),
                };
                if exp <= covered {
                    // Not needed: resynchronise on the next valid record up to `need`.
                    if let Some((at, q)) = find_record(&buf, off + 1, exp + 1, need) {
                        rec.covered_damage.push((
                            path.clone(),
                            off as u64,
                            format!("{reason}: {} unreadable; covered (seqs below {need})", seq_range("record", exp, q - 1)),
                        ));
                        exp = q;
                        off = at;
                        on_chain = false;
                        continue;
                    }
                    if crate::format::valid_record_after(&buf, off + 1, need + 1).is_none() {
                        rec.covered_damage.push((
                            path.clone(),
                            off as u64,
                            format!("{reason}: the rest of the segment (from record {exp}) is unreadable; covered (seqs below {need})"),
                        ));
                        covered_rest = true;
                        break;
                    }
                    // records after `need` exist but `need` itself does not
                }
                bad = Some(reason);
                break;
            }
            expected = Some(exp);
            if let Some(reason) = bad {
                if last && crate::format::valid_record_after(&buf, off + 1, exp).is_none() {
                    rec.bytes_cut += file_len - off as u64;
                    rec.torn_tail_at = Some((path.clone(), off as u64));
                    if o.repair {
                        truncate_file(path, off as u64)?;
                    }
                } else {
                    damage(i, &buf, off as u64, reason, &mut rec)?;
                    dir_changed |= i + 1 < n;
                    active = Some((path.clone(), first, off as u64));
                    break;
                }
            }
            if last && !covered_rest {
                active = Some((path.clone(), first, off as u64));
            }
            i += 1;
        }
        Ok(())
    })?;

    let end = expected.unwrap_or(need); // the seq after the last valid record
    let next = end.max(need);
    if end < next {
        // The log ends below the checkpoint: continue in a new segment at `need`.
        active = None;
        if n > 0 {
            rec.covered_damage.push((
                dir.to_path_buf(),
                0,
                format!("the log ends at seq {}, below the checkpoint; appends continue in a new segment at seq {need}", end - 1),
            ));
        }
    }
    rec.last_seq = next - 1;
    rec.first_seq = first_valid.unwrap_or(next).min(next);
    if let Some((p, bytes, reason)) = spare_aside {
        rec.bytes_cut += bytes;
        rec.moved_aside.push(p.clone());
        if rec.truncated_at.is_none() {
            rec.truncated_at = Some((p, 0));
            rec.truncate_reason = Some(reason);
        }
    }
    // The spare's segment (if it is still there) gets its name.
    if o.repair && let Some((first, _)) = segs.iter().find(|(_, p)| *p == spare) && spare.exists() {
        let named = dir.join(segment_file_name(*first));
        std::fs::rename(&spare, &named).map_err(|e| io_err("rename", &spare, e))?;
        if let Some((p, ..)) = active.as_mut().filter(|(p, ..)| *p == spare) {
            *p = named;
        }
        dir_changed = true;
    }
    if o.repair && dir_changed {
        fsync_dir(dir).map_err(|e| io_err("fsync dir", dir, e))?;
    }
    Ok(ScanResult { recovery: rec, active, fingerprint: reference })
}
