//! Checkpoints: `ckpt-<seq:020>.ctfs`, caller-provided tagged sections plus
//! the WAL seq they cover and the configuration fingerprint of the kernel
//! that wrote them, protected by a tiered BLAKE3 hash.
//!
//! ## Layout (little-endian), format version 2
//! | bytes | field |
//! |---|---|
//! | 8 | magic `CTFSCKPT` |
//! | 4 | format version (2) |
//! | 4 | chunk size (1 MiB) |
//! | 8 | seq covered (every record with seq <= it is reflected) |
//! | 4 | section count |
//! | 4 | fingerprint length `f` (at most 64 KiB) |
//! | f | configuration fingerprint (opaque here; see `ctfs_core::fingerprint`) |
//! | 16 × sections | section table: tag u32, reserved u32 (0), length u64 |
//! | ... | section data, concatenated |
//! | 32 × chunks | chunk hashes: every section split into chunk-size pieces (the last may be shorter; an empty section has none), each hashed with BLAKE3 in derive-key mode (`"ctfs checkpoint v1 chunk"`) |
//! | 32 | root: BLAKE3 derive-key (`"ctfs checkpoint v1 root"`) over header ‖ fingerprint ‖ section table ‖ chunk hashes |
//!
//! Format 1 (written before fingerprints existed) is the same with `f`
//! fixed at 0 (a reserved field); it still verifies, and loads with
//! [`Checkpoint::fingerprint`] `None`: its configuration is unknown, so a
//! kernel refuses it (`CONFIG_MISMATCH`) unless told to adopt it.
//!
//! Loading recomputes every chunk hash, compares it with the stored one,
//! recomputes the root over the header, fingerprint, table and stored chunk
//! hashes and compares it with the stored root; the file size must match the
//! table exactly. Any bit flip or truncation therefore fails with
//! `CHECKPOINT_CORRUPT` (data: its chunk hash; header/fingerprint/table/chunk
//! hashes: the root; the root itself: mismatch). Chunking keeps verification
//! streaming-friendly and points at the damaged chunk.
//!
//! Written atomically: `<name>.tmp`, fdatasync, rename, fsync of the
//! directory. The directory must exist (it is never re-created: a kernel
//! whose directory was removed must fail, not write into a new one).

use crate::error::WalError;
use crate::format::{fsync_dir, list_seq_files, rd_u32, rd_u64};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

pub const CHECKPOINT_MAGIC: [u8; 8] = *b"CTFSCKPT";
pub const CHECKPOINT_VERSION: u32 = 2;
/// The format before configuration fingerprints (still read).
pub const CHECKPOINT_VERSION_LEGACY: u32 = 1;
/// Chunk size of the tiered hash.
pub const CHECKPOINT_CHUNK: usize = 1 << 20;
const HEADER_LEN: usize = 32;
const ENTRY_LEN: usize = 16;
const MAX_SECTIONS: usize = 1 << 20;
/// Largest fingerprint a checkpoint (or a segment header) carries.
pub(crate) const MAX_FINGERPRINT: usize = 64 * 1024;
const CHUNK_CTX: &str = "ctfs checkpoint v1 chunk";
const ROOT_CTX: &str = "ctfs checkpoint v1 root";

/// `ckpt-<seq:020>.ctfs`
pub fn checkpoint_file_name(seq: u64) -> String {
    format!("ckpt-{seq:020}.ctfs")
}

/// A verified checkpoint held in memory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub path: PathBuf,
    /// WAL seq covered: replay from `seq + 1`.
    pub seq: u64,
    pub root: [u8; 32],
    /// Format 2: the configuration fingerprint of the writer; format 1: `None`.
    fingerprint: Option<Vec<u8>>,
    /// Format version of the file.
    pub version: u32,
    data: Vec<u8>,
    sections: Vec<(u32, Range<usize>)>,
}

impl Checkpoint {
    /// Sections in file order.
    pub fn sections(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.sections.iter().map(|(t, r)| (*t, &self.data[r.clone()]))
    }
    /// First section with this tag.
    pub fn section(&self, tag: u32) -> Option<&[u8]> {
        self.sections.iter().find(|(t, _)| *t == tag).map(|(_, r)| &self.data[r.clone()])
    }
    pub fn section_count(&self) -> usize {
        self.sections.len()
    }
    /// The writer's configuration fingerprint (`None`: format 1, unknown).
    pub fn fingerprint(&self) -> Option<&[u8]> {
        self.fingerprint.as_deref()
    }
    /// `CONFIG_MISMATCH` unless this checkpoint was written under `expected`.
    pub fn check_fingerprint(&self, expected: &[u8]) -> Result<(), WalError> {
        match self.fingerprint() {
            Some(f) if f == expected => Ok(()),
            found => Err(WalError::ConfigMismatch {
                path: self.path.clone(),
                found: found.map(<[u8]>::to_vec),
                expected: expected.to_vec(),
            }),
        }
    }
}

fn chunk_hash(data: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(CHUNK_CTX);
    h.update(data);
    *h.finalize().as_bytes()
}

fn chunks_of(len: usize) -> usize {
    len.div_ceil(CHECKPOINT_CHUNK)
}

/// Writes a checkpoint covering `seq` with these sections and the writer's
/// configuration `fingerprint`, atomically, into the existing directory
/// `dir`. Returns its path.
pub fn write_checkpoint(
    dir: impl AsRef<Path>,
    seq: u64,
    fingerprint: &[u8],
    sections: &[(u32, &[u8])],
) -> Result<PathBuf, WalError> {
    write_checkpoint_as(dir.as_ref(), seq, Some(fingerprint), sections)
}

/// `fingerprint: None` writes format 1 (tests of the legacy rule only).
#[doc(hidden)]
pub fn write_checkpoint_as(
    dir: &Path,
    seq: u64,
    fingerprint: Option<&[u8]>,
    sections: &[(u32, &[u8])],
) -> Result<PathBuf, WalError> {
    if sections.len() > MAX_SECTIONS {
        return Err(WalError::InvalidArgument(format!("{} sections (at most {MAX_SECTIONS})", sections.len())));
    }
    let fp = fingerprint.unwrap_or(&[]);
    if fp.len() > MAX_FINGERPRINT {
        return Err(WalError::InvalidArgument(format!("fingerprint of {} bytes (at most {MAX_FINGERPRINT})", fp.len())));
    }
    let mut head = Vec::with_capacity(HEADER_LEN + fp.len() + ENTRY_LEN * sections.len());
    head.extend_from_slice(&CHECKPOINT_MAGIC);
    let version = if fingerprint.is_some() { CHECKPOINT_VERSION } else { CHECKPOINT_VERSION_LEGACY };
    head.extend_from_slice(&version.to_le_bytes());
    head.extend_from_slice(&(CHECKPOINT_CHUNK as u32).to_le_bytes());
    head.extend_from_slice(&seq.to_le_bytes());
    head.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    head.extend_from_slice(&(fp.len() as u32).to_le_bytes());
    head.extend_from_slice(fp);
    for (tag, data) in sections {
        head.extend_from_slice(&tag.to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&(data.len() as u64).to_le_bytes());
    }
    let mut hashes = Vec::with_capacity(32 * sections.iter().map(|(_, d)| chunks_of(d.len())).sum::<usize>());
    for (_, data) in sections {
        for c in data.chunks(CHECKPOINT_CHUNK) {
            hashes.extend_from_slice(&chunk_hash(c));
        }
    }
    let mut root = blake3::Hasher::new_derive_key(ROOT_CTX);
    root.update(&head);
    root.update(&hashes);
    let root = *root.finalize().as_bytes();

    let name = checkpoint_file_name(seq);
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(&name);
    let io = |ctx: &str, e| WalError::io(format!("{ctx} {}", tmp.display()), e);
    let f = OpenOptions::new().create(true).truncate(true).write(true).open(&tmp).map_err(|e| io("create", e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    w.write_all(&head).map_err(|e| io("write", e))?;
    for (_, data) in sections {
        w.write_all(data).map_err(|e| io("write", e))?;
    }
    w.write_all(&hashes).map_err(|e| io("write", e))?;
    w.write_all(&root).map_err(|e| io("write", e))?;
    let f = w.into_inner().map_err(|e| io("write", e.into_error()))?;
    f.sync_all().map_err(|e| io("fsync", e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
    fsync_dir(dir).map_err(|e| WalError::io(format!("fsync dir {}", dir.display()), e))?;
    Ok(path)
}

/// Reads and verifies a checkpoint file. Any damage is `CHECKPOINT_CORRUPT`.
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint, WalError> {
    let path = path.as_ref();
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| WalError::io(format!("read {}", path.display()), e))?;
    verify(path, data)
}

fn verify(path: &Path, data: Vec<u8>) -> Result<Checkpoint, WalError> {
    let bad = |r: String| Err(WalError::ckpt(path, r));
    if data.len() < HEADER_LEN + 32 {
        return bad(format!("file too short ({} bytes)", data.len()));
    }
    if data[0..8] != CHECKPOINT_MAGIC {
        return bad("bad magic".into());
    }
    let version = rd_u32(&data, 8);
    if version != CHECKPOINT_VERSION && version != CHECKPOINT_VERSION_LEGACY {
        return bad(format!("unsupported version {version}"));
    }
    let chunk = rd_u32(&data, 12) as usize;
    if chunk != CHECKPOINT_CHUNK {
        return bad(format!("unexpected chunk size {chunk}"));
    }
    let seq = rd_u64(&data, 16);
    let count = rd_u32(&data, 24) as usize;
    let fp_len = rd_u32(&data, 28) as usize;
    if version == CHECKPOINT_VERSION_LEGACY && fp_len != 0 {
        return bad("reserved header field not zero".into());
    }
    if fp_len > MAX_FINGERPRINT {
        return bad(format!("fingerprint length {fp_len} over limit"));
    }
    if count > MAX_SECTIONS {
        return bad(format!("section count {count} over limit"));
    }
    let table_start = HEADER_LEN + fp_len;
    let table_end = table_start + count * ENTRY_LEN;
    if table_end > data.len() {
        return bad("section table truncated".into());
    }
    let mut sections = Vec::with_capacity(count);
    let mut at = table_end;
    let mut n_chunks = 0usize;
    for i in 0..count {
        let e = table_start + i * ENTRY_LEN;
        let tag = rd_u32(&data, e);
        if rd_u32(&data, e + 4) != 0 {
            return bad(format!("section {i}: reserved field not zero"));
        }
        let len = rd_u64(&data, e + 8);
        let end = match usize::try_from(len).ok().and_then(|l| at.checked_add(l)) {
            Some(end) if end <= data.len() => end,
            _ => return bad(format!("section {i} length {len} exceeds file")),
        };
        sections.push((tag, at..end));
        n_chunks += chunks_of(end - at);
        at = end;
    }
    let expect = n_chunks.checked_mul(32).and_then(|h| at.checked_add(h)).and_then(|x| x.checked_add(32));
    if expect != Some(data.len()) {
        return bad(format!("file size {} does not match its section table (expected {expect:?})", data.len()));
    }
    let hashes = &data[at..at + n_chunks * 32];
    let mut k = 0;
    for (i, (_, r)) in sections.iter().enumerate() {
        for (j, c) in data[r.clone()].chunks(CHECKPOINT_CHUNK).enumerate() {
            if chunk_hash(c)[..] != hashes[k * 32..k * 32 + 32] {
                return bad(format!("section {i} chunk {j}: hash mismatch"));
            }
            k += 1;
        }
    }
    let mut root = blake3::Hasher::new_derive_key(ROOT_CTX);
    root.update(&data[..table_end]);
    root.update(hashes);
    let root = *root.finalize().as_bytes();
    if root[..] != data[data.len() - 32..] {
        return bad("root hash mismatch".into());
    }
    if let Some(name) = path.file_name().and_then(|n| n.to_str())
        && let Some(name_seq) = crate::format::parse_seq_name(name, "ckpt-", ".ctfs")
        && name_seq != seq
    {
        return bad(format!("header seq {seq} does not match file name seq {name_seq}"));
    }
    let fingerprint = (version == CHECKPOINT_VERSION).then(|| data[HEADER_LEN..table_start].to_vec());
    Ok(Checkpoint { path: path.to_path_buf(), seq, root, fingerprint, version, data, sections })
}

/// Checkpoint files of `dir` as (seq from the name, path), oldest first.
pub fn list_checkpoints(dir: impl AsRef<Path>) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let dir = dir.as_ref();
    match list_seq_files(dir, "ckpt-", ".ctfs") {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(WalError::io(format!("list {}", dir.display()), e)),
    }
}

/// Result of [`latest_valid_checkpoint`].
#[derive(Debug)]
pub struct LatestCheckpoint {
    /// The newest checkpoint that verifies, if any.
    pub checkpoint: Option<Checkpoint>,
    /// Newer checkpoints that failed verification (newest first).
    pub skipped: Vec<(PathBuf, WalError)>,
}

/// The newest checkpoint of `dir` that verifies; corrupt newer ones are
/// skipped and reported. Read errors other than corruption are returned.
pub fn latest_valid_checkpoint(dir: impl AsRef<Path>) -> Result<LatestCheckpoint, WalError> {
    let mut skipped = Vec::new();
    for (_, p) in list_checkpoints(dir)?.into_iter().rev() {
        match load_checkpoint(&p) {
            Ok(c) => return Ok(LatestCheckpoint { checkpoint: Some(c), skipped }),
            Err(e @ WalError::CheckpointCorrupt { .. }) => skipped.push((p, e)),
            Err(e) => return Err(e),
        }
    }
    Ok(LatestCheckpoint { checkpoint: None, skipped })
}

/// Deletes checkpoint files with a seq < `seq` (and stale `.tmp` files),
/// then fsyncs the directory. Returns the removed paths.
pub fn remove_checkpoints_before(dir: impl AsRef<Path>, seq: u64) -> Result<Vec<PathBuf>, WalError> {
    let dir = dir.as_ref();
    let mut removed = Vec::new();
    for (s, p) in list_checkpoints(dir)? {
        if s < seq {
            std::fs::remove_file(&p).map_err(|e| WalError::io(format!("remove {}", p.display()), e))?;
            removed.push(p);
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            if let Some(n) = name.to_str()
                && n.starts_with("ckpt-")
                && n.ends_with(".ctfs.tmp")
            {
                let _ = std::fs::remove_file(e.path());
                removed.push(e.path());
            }
        }
    }
    if !removed.is_empty() {
        fsync_dir(dir).map_err(|e| WalError::io(format!("fsync dir {}", dir.display()), e))?;
    }
    Ok(removed)
}
