//! Shared helpers of the integration tests: temp dirs, ids, a seeded PRNG,
//! the backends to run against.

#![allow(dead_code)]

use ctfs_wal::{Backend, RecordRef, UringMode, Wal, WalError, WalOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let uniq = blake3::hash(&[nanos.to_le_bytes(), (std::process::id() as u64).to_le_bytes(), N.fetch_add(1, Ordering::Relaxed).to_le_bytes()].concat());
        let p = std::env::temp_dir().join(format!("ctfs-wal-test-{tag}-{}", &uniq.to_hex()[..16]));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn id(n: u64) -> [u8; 32] {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

/// Deterministic record content for seq-like counter `n`.
pub fn rec(n: u64) -> ([u8; 32], Vec<[u8; 32]>, Vec<u8>, u16) {
    let deps: Vec<[u8; 32]> = (0..(n % 3)).map(|k| id(n * 1000 + k)).collect();
    let payload: Vec<u8> = (0..(n * 7 % 41)).map(|k| (n as u8).wrapping_mul(31).wrapping_add(k as u8)).collect();
    (id(n), deps, payload, (n % 65536) as u16)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    pub seq: u64,
    pub id: [u8; 32],
    pub deps: Vec<[u8; 32]>,
    pub payload: Vec<u8>,
    pub flags: u16,
}

impl From<RecordRef<'_>> for Owned {
    fn from(r: RecordRef<'_>) -> Owned {
        Owned { seq: r.seq, id: *r.id, deps: r.deps.to_vec(), payload: r.payload.to_vec(), flags: r.flags }
    }
}

pub fn expected(n: u64) -> Owned {
    let (id, deps, payload, flags) = rec(n);
    Owned { seq: n, id, deps, payload, flags }
}

/// Appends records 1..=n (content `rec(seq)`), asserting seqs.
pub fn append_n(wal: &mut Wal, from: u64, to: u64) {
    for n in from..=to {
        let (i, d, p, f) = rec(n);
        loop {
            match wal.append(&i, &d, &p, f) {
                Ok(seq) => {
                    assert_eq!(seq, n);
                    break;
                }
                Err(WalError::BufferFull { .. }) => std::thread::yield_now(),
                Err(e) => panic!("append {n}: {e}"),
            }
        }
    }
}

pub fn replay_all(dir: &Path, from: u64) -> Result<(Vec<Owned>, ctfs_wal::Recovery), WalError> {
    let mut v = Vec::new();
    let r = Wal::replay(dir, &[], from, |r| {
        v.push(Owned::from(r));
        Ok::<(), WalError>(())
    })?;
    Ok((v, r))
}

/// Backends to test: portable always, io_uring (both modes) if the probe
/// passes here; otherwise a note is printed.
pub fn backends() -> Vec<(Backend, UringMode)> {
    let mut v = vec![(Backend::Portable, UringMode::default())];
    match ctfs_wal::io_uring_available() {
        Ok(()) => {
            v.push((Backend::IoUring, UringMode::LinkedFsync));
            v.push((Backend::IoUring, UringMode::WriteDsync));
        }
        Err(reason) => eprintln!("NOTE: io_uring unavailable here, io_uring cases skipped: {reason}"),
    }
    v
}

pub fn opts(b: (Backend, UringMode)) -> WalOptions {
    WalOptions { backend: b.0, uring_mode: b.1, ..WalOptions::default() }
}

/// xorshift64* seeded via splitmix.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
}

/// Segment files of a dir, sorted.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("wal-") && n.ends_with(".log")))
        .collect();
    v.sort();
    v
}

/// Byte offsets of every record in a segment file (up to the zeros the
/// writer writes ahead of its records, if any).
pub fn record_offsets(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut off = ctfs_wal::SEGMENT_HEADER_MIN_LEN;
    while off < bytes.len() && bytes[off..].iter().any(|&b| b != 0) {
        let (_, n) = ctfs_wal::parse_record(bytes, off).expect("valid record");
        v.push((off, n));
        off += n;
    }
    v
}
