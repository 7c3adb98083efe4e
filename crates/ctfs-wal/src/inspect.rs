//! Read-only report on a WAL directory for `ctfs inspect <dir>`.

use crate::checkpoint::{list_checkpoints, load_checkpoint};
use crate::error::WalError;
use crate::format::{SEGMENT_HEADER_LEN, list_segments, parse_record, parse_segment_header, valid_record_after};
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
    /// Every problem that would make `Wal::open` fail: (segment, offset, reason).
    pub corruption: Vec<(PathBuf, u64, String)>,
    /// A torn tail `Wal::open` would cut: (segment, offset, bytes).
    pub torn_tail: Option<(PathBuf, u64, u64)>,
}

impl InspectReport {
    /// `true` when `Wal::open` would succeed without `truncate_corrupt` and
    /// the newest checkpoint (if any) verifies.
    pub fn is_healthy(&self) -> bool {
        self.corruption.is_empty() && self.checkpoints.last().is_none_or(|c| c.valid)
    }
}

/// Scans `dir` read-only: every segment (header, each record, seq
/// continuity), every checkpoint (full verification).
pub fn inspect(dir: impl AsRef<Path>) -> Result<InspectReport, WalError> {
    let dir = dir.as_ref();
    let segs = list_segments(dir).map_err(|e| WalError::io(format!("list {}", dir.display()), e))?;
    let mut rep = InspectReport {
        dir: dir.to_path_buf(),
        segments: Vec::new(),
        checkpoints: Vec::new(),
        records: 0,
        first_seq: None,
        last_seq: None,
        corruption: Vec::new(),
        torn_tail: None,
    };
    let mut expected: Option<u64> = None;
    let mut buf = Vec::new();
    let n = segs.len();
    for (i, (name_seq, path)) in segs.iter().enumerate() {
        let last = i + 1 == n;
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
        let hdr = parse_segment_header(&buf).and_then(|s| {
            if s != *name_seq { Err(format!("header first seq {s} does not match file name seq {name_seq}")) } else { Ok(s) }
        });
        match hdr {
            Err(reason) => {
                let min = expected.unwrap_or(*name_seq);
                let kind = if last && valid_record_after(&buf, 0, min).is_none() {
                    DamageKind::TornTail
                } else {
                    DamageKind::Corrupt
                };
                info.damage = Some(Damage { kind, offset: 0, reason });
            }
            Ok(first) => {
                info.first_seq = Some(first);
                if let Some(e) = expected
                    && e != first
                {
                    rep.corruption.push((path.clone(), 16, format!("sequence gap: segment starts at {first}, expected {e}")));
                }
                rep.first_seq.get_or_insert(first);
                let mut exp = first;
                let mut off = SEGMENT_HEADER_LEN;
                while off < buf.len() {
                    match parse_record(&buf, off) {
                        Ok((r, total)) if r.seq == exp => {
                            exp += 1;
                            off += total;
                        }
                        other => {
                            let reason = match other {
                                Ok((r, _)) => format!("record seq {} where {exp} was expected", r.seq),
                                Err(r) => r.to_string(),
                            };
                            let kind = if last && valid_record_after(&buf, off + 1, exp).is_none() {
                                DamageKind::TornTail
                            } else {
                                DamageKind::Corrupt
                            };
                            info.damage = Some(Damage { kind, offset: off as u64, reason });
                            break;
                        }
                    }
                }
                info.records = exp - first;
                info.valid_bytes = off as u64;
                if exp > first {
                    info.last_seq = Some(exp - 1);
                    rep.last_seq = Some(exp - 1);
                }
                rep.records += info.records;
                expected = Some(exp);
            }
        }
        if let Some(d) = &info.damage {
            match d.kind {
                DamageKind::TornTail => rep.torn_tail = Some((path.clone(), d.offset, info.size - d.offset)),
                DamageKind::Corrupt => rep.corruption.push((path.clone(), d.offset, d.reason.clone())),
            }
        }
        rep.segments.push(info);
    }
    for (seq, path) in list_checkpoints(dir)? {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let (valid, error, sections) = match load_checkpoint(&path) {
            Ok(c) => (true, None, c.section_count()),
            Err(e) => (false, Some(e.to_string()), 0),
        };
        rep.checkpoints.push(CheckpointInfo { path, seq, size, valid, error, sections });
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
        writeln!(
            f,
            "records: {}  seq range: {}..{}  status: {}",
            self.records,
            opt(self.first_seq),
            opt(self.last_seq),
            if self.corruption.is_empty() { "OK" } else { "CORRUPT" }
        )?;
        writeln!(f, "segments ({}):", self.segments.len())?;
        writeln!(f, "  {:<30} {:>12} {:>12} {:>10} {:>12}  status", "file", "first_seq", "last_seq", "records", "bytes")?;
        for s in &self.segments {
            let status = match &s.damage {
                None => "ok".to_string(),
                Some(d) => format!(
                    "{} at offset {}: {}",
                    if d.kind == DamageKind::TornTail { "torn tail" } else { "CORRUPT" },
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
        for (p, off, reason) in &self.corruption {
            writeln!(f, "corruption: {} at offset {off}: {reason}", p.display())?;
        }
        Ok(())
    }
}
