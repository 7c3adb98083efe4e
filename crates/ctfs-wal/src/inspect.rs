//! Read-only report on a WAL directory for `ctfs inspect <dir>`.
//!
//! Two things are computed:
//! * whether opening would succeed ([`InspectReport::is_healthy`]): the same
//!   checkpoint choice (the newest that verifies) and the same recovery scan
//!   as `Wal::open` (read-only), with the same configuration rule — so
//!   inspect and open agree on every directory;
//! * every problem, listed: damaged records and headers, gaps in the
//!   sequence (from 1, or from the newest valid checkpoint), configuration
//!   differences, invalid checkpoints. Damage among records the newest valid
//!   checkpoint covers is listed as covered: it costs nothing.

use crate::checkpoint::{list_checkpoints, load_checkpoint};
use crate::error::WalError;
use crate::format::{is_zero_tail, list_segments, parse_record, parse_segment_header, valid_record_after};
use crate::recovery::{ScanOptions, scan};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Kind of damage found in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// Invalid bytes at the end of the last segment with nothing valid after
    /// them: what a crash leaves; `Wal::open` cuts it.
    TornTail,
    /// Damage before the tail: `Wal::open` fails with `WAL_CORRUPT`.
    Corrupt,
    /// Damage among records the newest valid checkpoint covers: not needed,
    /// `Wal::open` skips it.
    Covered,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub kind: DamageKind,
    pub offset: u64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    /// From the header (None when the header is damaged).
    pub first_seq: Option<u64>,
    /// Last valid record's seq (None when the segment has no valid record).
    pub last_seq: Option<u64>,
    pub records: u64,
    pub size: u64,
    /// Bytes up to the end of the last valid record.
    pub valid_bytes: u64,
    pub damage: Option<Damage>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub path: PathBuf,
    /// From the file name.
    pub seq: u64,
    pub size: u64,
    pub valid: bool,
    /// The verification error, if not valid.
    pub error: Option<String>,
    pub sections: usize,
    /// The writer's configuration fingerprint (valid format-2 checkpoints).
    pub fingerprint: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InspectReport {
    pub dir: PathBuf,
    pub segments: Vec<SegmentInfo>,
    pub checkpoints: Vec<CheckpointInfo>,
    /// Valid records over all segments.
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Every problem that makes `Wal::open` fail: (file, offset, reason).
    pub corruption: Vec<(PathBuf, u64, String)>,
    /// Damage `Wal::open` skips because the newest valid checkpoint covers it.
    pub covered: Vec<(PathBuf, u64, String)>,
    /// A torn tail `Wal::open` would cut: (segment, offset, bytes).
    pub torn_tail: Option<(PathBuf, u64, u64)>,
    /// Seq of the newest checkpoint that verifies (what open restores).
    pub anchor: Option<u64>,
    /// The configuration the directory records (or the one inspected
    /// against, when given).
    pub fingerprint: Option<Vec<u8>>,
    /// Why opening would fail (`None`: it would succeed).
    pub open_error: Option<String>,
}

impl InspectReport {
    /// `true` exactly when `Wal::open` (after restoring the newest valid
    /// checkpoint, without `truncate_corrupt`) would succeed.
    pub fn is_healthy(&self) -> bool {
        self.open_error.is_none()
    }
}

/// Scans `dir` read-only: every segment (header, fingerprint, each record,
/// seq continuity), every checkpoint (full verification). `expected`: the
/// configuration fingerprint the directory will be opened with; `None`
/// checks that every file agrees with the newest valid checkpoint (or the
/// first segment).
pub fn inspect(dir: impl AsRef<Path>, expected: Option<&[u8]>) -> Result<InspectReport, WalError> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(WalError::io(format!("inspect {}", dir.display()), std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    let mut rep = InspectReport {
        dir: dir.to_path_buf(),
        segments: Vec::new(),
        checkpoints: Vec::new(),
        records: 0,
        first_seq: None,
        last_seq: None,
        corruption: Vec::new(),
        covered: Vec::new(),
        torn_tail: None,
        anchor: None,
        fingerprint: None,
        open_error: None,
    };

    // ---- checkpoints: the newest valid one is what open restores
    for (seq, path) in list_checkpoints(dir)? {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let info = match load_checkpoint(&path) {
            Ok(c) => CheckpointInfo {
                path,
                seq,
                size,
                valid: true,
                error: None,
                sections: c.section_count(),
                fingerprint: c.fingerprint().map(<[u8]>::to_vec),
            },
            Err(e) => CheckpointInfo { path, seq, size, valid: false, error: Some(e.to_string()), sections: 0, fingerprint: None },
        };
        rep.checkpoints.push(info);
    }
    let anchor = rep.checkpoints.iter().rev().find(|c| c.valid).cloned();
    rep.anchor = anchor.as_ref().map(|c| c.seq);
    let covered = rep.anchor.unwrap_or(0);
    let need = covered + 1;

    // ---- would open succeed? The same checks, in the same order.
    let reference: Option<Vec<u8>> = expected.map(<[u8]>::to_vec).or_else(|| anchor.as_ref().and_then(|c| c.fingerprint.clone()));
    let dry_run = || -> Result<Option<Vec<u8>>, WalError> {
        if let Some(c) = &anchor {
            let fp = reference.clone().unwrap_or_default();
            if c.fingerprint.as_deref() != Some(fp.as_slice()) {
                return Err(WalError::ConfigMismatch { path: c.path.clone(), found: c.fingerprint.clone(), expected: fp });
            }
        }
        let o = ScanOptions { repair: false, truncate_corrupt: false, from_seq: need, fingerprint: reference.as_deref() };
        Ok(scan(dir, &o, |_| Ok::<(), WalError>(()))?.fingerprint)
    };
    match dry_run() {
        Ok(found) => rep.fingerprint = reference.clone().or(found),
        Err(e @ (WalError::Corrupt { .. } | WalError::ConfigMismatch { .. } | WalError::InvalidArgument(_))) => {
            rep.open_error = Some(e.to_string());
            rep.fingerprint = reference.clone();
        }
        Err(e) => return Err(e),
    }

    // ---- every problem, listed
    let spare = dir.join(crate::spare::SPARE_NAME);
    if let crate::spare::LeftSpare::Damaged(reason) = crate::spare::left_spare(dir).map_err(|e| WalError::io(format!("read {}", spare.display()), e))? {
        rep.corruption.push((spare, 0, format!("the spare segment: {reason}")));
    }
    let segs = list_segments(dir).map_err(|e| WalError::io(format!("list {}", dir.display()), e))?;
    let mut reference = reference;
    let mut expected_seq: Option<u64> = None;
    let mut prev_damaged = false;
    let mut buf = Vec::new();
    let n = segs.len();
    for (i, (name_seq, path)) in segs.iter().enumerate() {
        let last = i + 1 == n;
        let covered_whole = segs.get(i + 1).is_some_and(|(s, _)| *s <= need);
        buf.clear();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(|e| WalError::io(format!("read {}", path.display()), e))?;
        let mut info = SegmentInfo {
            path: path.clone(),
            first_seq: None,
            last_seq: None,
            records: 0,
            size: buf.len() as u64,
            valid_bytes: 0,
            damage: None,
        };
        let hdr = parse_segment_header(&buf).and_then(|h| {
            if h.first_seq != *name_seq {
                Err(format!("header first seq {} does not match file name seq {name_seq}", h.first_seq))
            } else {
                Ok(h)
            }
        });
        match hdr {
            Err(reason) => {
                let min = expected_seq.unwrap_or(*name_seq);
                let kind = if last && valid_record_after(&buf, 0, min).is_none() {
                    DamageKind::TornTail
                } else if covered_whole {
                    DamageKind::Covered
                } else {
                    DamageKind::Corrupt
                };
                info.damage = Some(Damage { kind, offset: 0, reason });
                prev_damaged = kind == DamageKind::Corrupt;
            }
            Ok(h) => {
                let first = h.first_seq;
                info.first_seq = Some(first);
                match (h.fingerprint, &reference) {
                    (Some(fp), Some(r)) if fp == r.as_slice() => {}
                    (Some(fp), None) => reference = Some(fp.to_vec()),
                    (found, r) => {
                        let e = WalError::ConfigMismatch {
                            path: path.clone(),
                            found: found.map(<[u8]>::to_vec),
                            expected: r.clone().unwrap_or_default(),
                        };
                        rep.corruption.push((path.clone(), 0, e.to_string()));
                    }
                }
                match expected_seq {
                    None if !prev_damaged && first > need => rep.corruption.push((
                        path.clone(),
                        16,
                        format!("sequence gap: the log starts at seq {first}, but seqs {need}..{} are in no checkpoint (a missing segment?)", first - 1),
                    )),
                    Some(e) if !prev_damaged && first != e => {
                        if first > e && first <= need {
                            rep.covered.push((path.clone(), 16, format!("seqs {e}..{} are missing before this segment; covered by checkpoint {covered}", first - 1)));
                        } else {
                            rep.corruption.push((path.clone(), 16, format!("sequence gap: segment starts at seq {first}, expected {e} (a missing segment?)")));
                        }
                    }
                    _ => {}
                }
                rep.first_seq.get_or_insert(first);
                let mut exp = first;
                let mut off = h.len;
                let mut damage: Option<Damage> = None;
                while off < buf.len() {
                    let reason = match parse_record(&buf, off) {
                        Ok((r, total)) if r.seq == exp => {
                            exp += 1;
                            off += total;
                            info.records += 1;
                            continue;
                        }
                        Ok((r, _)) => format!("record seq {} where {exp} was expected", r.seq),
                        // Zeros the writer wrote ahead: the clean end of the segment.
                        Err(_) if is_zero_tail(&buf[off..]) => break,
                        Err(r) => r.to_string(),
                    };
                    if exp <= covered {
                        let resync = (off + 1..buf.len())
                            .find(|&o| parse_record(&buf, o).is_ok_and(|(r, _)| r.seq > exp && r.seq <= need));
                        if let Some(at) = resync {
                            rep.covered.push((path.clone(), off as u64, format!("{reason} (covered by checkpoint {covered})")));
                            let (r, _) = parse_record(&buf, at).map_err(|e| WalError::InvalidArgument(e.into()))?;
                            exp = r.seq;
                            off = at;
                            continue;
                        }
                        if valid_record_after(&buf, off + 1, need + 1).is_none() {
                            damage = Some(Damage { kind: DamageKind::Covered, offset: off as u64, reason });
                            break;
                        }
                    }
                    let kind = if last && valid_record_after(&buf, off + 1, exp).is_none() {
                        DamageKind::TornTail
                    } else {
                        DamageKind::Corrupt
                    };
                    damage = Some(Damage { kind, offset: off as u64, reason });
                    break;
                }
                info.valid_bytes = off as u64;
                if exp > first {
                    info.last_seq = Some(exp - 1);
                    rep.last_seq = Some(exp - 1);
                }
                rep.records += info.records;
                expected_seq = Some(exp);
                prev_damaged = damage.as_ref().is_some_and(|d| d.kind == DamageKind::Corrupt);
                info.damage = damage;
            }
        }
        if let Some(d) = &info.damage {
            match d.kind {
                DamageKind::TornTail => rep.torn_tail = Some((path.clone(), d.offset, info.size - d.offset)),
                DamageKind::Corrupt => rep.corruption.push((path.clone(), d.offset, d.reason.clone())),
                DamageKind::Covered => {
                    rep.covered.push((path.clone(), d.offset, format!("{} (covered by checkpoint {covered})", d.reason)))
                }
            }
        }
        rep.segments.push(info);
    }
    if let (Some(c), Some(r)) = (&anchor, &reference)
        && c.fingerprint.as_ref() != Some(r)
        && !rep.corruption.iter().any(|(p, _, _)| p == &c.path)
    {
        let e = WalError::ConfigMismatch { path: c.path.clone(), found: c.fingerprint.clone(), expected: r.clone() };
        rep.corruption.push((c.path.clone(), 0, e.to_string()));
    }
    if let Some(e) = &rep.open_error
        && rep.corruption.is_empty()
    {
        rep.corruption.push((dir.to_path_buf(), 0, e.clone()));
    }
    Ok(rep)
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
}

fn opt(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "WAL directory: {}", self.dir.display())?;
        let config = match &self.fingerprint {
            Some(fp) => ctfs_core::fingerprint::describe(fp),
            None if self.segments.is_empty() && self.checkpoints.is_empty() => "none recorded (empty directory)".into(),
            None => "unknown (files of format 1 record none)".into(),
        };
        writeln!(f, "configuration: {config}")?;
        let status = if !self.is_healthy() {
            "CORRUPT (open would fail)"
        } else if self.covered.is_empty() && self.checkpoints.iter().all(|c| c.valid) {
            "OK"
        } else {
            "OK (damage below is tolerated: open succeeds with every fact)"
        };
        writeln!(f, "records: {}  seq range: {}..{}  status: {status}", self.records, opt(self.first_seq), opt(self.last_seq))?;
        writeln!(f, "segments ({}):", self.segments.len())?;
        writeln!(f, "  {:<30} {:>12} {:>12} {:>10} {:>12}  status", "file", "first_seq", "last_seq", "records", "bytes")?;
        for s in &self.segments {
            let status = match &s.damage {
                None => "ok".to_string(),
                Some(d) => format!(
                    "{} at offset {}: {}",
                    match d.kind {
                        DamageKind::TornTail => "torn tail",
                        DamageKind::Corrupt => "CORRUPT",
                        DamageKind::Covered => "damaged (covered by a checkpoint)",
                    },
                    d.offset,
                    d.reason
                ),
            };
            writeln!(
                f,
                "  {:<30} {:>12} {:>12} {:>10} {:>12}  {status}",
                file_name(&s.path),
                opt(s.first_seq),
                opt(s.last_seq),
                s.records,
                s.size
            )?;
        }
        writeln!(f, "checkpoints ({}):", self.checkpoints.len())?;
        for c in &self.checkpoints {
            let status = if c.valid {
                format!("valid, {} sections", c.sections)
            } else {
                format!("INVALID: {}", c.error.as_deref().unwrap_or("?"))
            };
            writeln!(f, "  {:<30} seq {:>12} {:>12} bytes  {status}", file_name(&c.path), c.seq, c.size)?;
        }
        if let Some((p, off, bytes)) = &self.torn_tail {
            writeln!(f, "torn tail: {} at offset {off} ({bytes} bytes would be cut on open)", file_name(p))?;
        }
        for (p, off, reason) in &self.covered {
            writeln!(f, "covered: {} at offset {off}: {reason}", p.display())?;
        }
        for (p, off, reason) in &self.corruption {
            writeln!(f, "corruption: {} at offset {off}: {reason}", p.display())?;
        }
        if let Some(e) = &self.open_error {
            writeln!(f, "open would fail: {e}")?;
        }
        Ok(())
    }
}
