//! Configuration fingerprints, records covered by a checkpoint, truncation
//! that moves bytes aside, gaps, inspect/open agreement, a removed directory.

mod common;

use common::*;
use ctfs_wal::*;
use std::path::{Path, PathBuf};

const FP_A: &[u8] = b"configuration A";
const FP_B: &[u8] = b"configuration B";

fn o(fp: &[u8]) -> WalOptions {
    WalOptions { backend: Backend::Portable, fingerprint: fp.to_vec(), ..WalOptions::default() }
}

/// Records 1..=n with fingerprint `fp`, closed.
fn build(tag: &str, fp: &[u8], n: u64, segment_size: u64) -> TempDir {
    let d = TempDir::new(tag);
    let (mut wal, _) = Wal::open(d.path(), WalOptions { segment_size, ..o(fp) }).unwrap();
    append_n(&mut wal, 1, n);
    wal.close().unwrap();
    d
}

/// (offset, size) of every record of a segment file (any header length; up
/// to the zeros written ahead of the records).
fn records(file: &Path) -> Vec<(usize, usize)> {
    let b = std::fs::read(file).unwrap();
    let mut off = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
    let mut v = Vec::new();
    while off < b.len() && b[off..].iter().any(|&x| x != 0) {
        let (_, n) = parse_record(&b, off).unwrap();
        v.push((off, n));
        off += n;
    }
    v
}

fn flip(file: &Path, at: usize) {
    let mut b = std::fs::read(file).unwrap();
    b[at] ^= 0x10;
    std::fs::write(file, b).unwrap();
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .filter(|(n, _)| n != "LOCK")
        .collect();
    v.sort();
    v
}

fn replay(dir: &Path, fp: &[u8], from: u64, truncate: bool) -> Result<(Vec<u64>, Recovery), WalError> {
    let mut seqs = Vec::new();
    let (wal, rec) = Wal::open_with_replay(dir, WalOptions { truncate_corrupt: truncate, ..o(fp) }, from, |r| {
        seqs.push(r.seq);
        Ok::<(), WalError>(())
    })?;
    drop(wal);
    Ok((seqs, rec))
}

#[test]
fn another_fingerprint_is_refused_and_nothing_changes() {
    let d = build("fp", FP_A, 20, 1 << 20);
    let before = listing(d.path());
    for truncate in [false, true] {
        let e = replay(d.path(), FP_B, 1, truncate).unwrap_err();
        assert_eq!(e.code(), "CONFIG_MISMATCH", "{e}");
        assert_eq!(listing(d.path()), before);
    }
    let (seqs, _) = replay(d.path(), FP_A, 1, false).unwrap();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    // inspect: against another configuration unhealthy, against its own (or none) healthy
    assert!(!inspect(d.path(), Some(FP_B)).unwrap().is_healthy());
    assert!(inspect(d.path(), Some(FP_A)).unwrap().is_healthy());
    let r = inspect(d.path(), None).unwrap();
    assert!(r.is_healthy());
    assert_eq!(r.fingerprint.as_deref(), Some(FP_A));
    // a checkpoint carries its writer's fingerprint
    let p = write_checkpoint(d.path(), 20, FP_A, &[(1, b"state")]).unwrap();
    let c = load_checkpoint(&p).unwrap();
    assert_eq!(c.fingerprint(), Some(FP_A));
    assert!(c.check_fingerprint(FP_A).is_ok());
    assert_eq!(c.check_fingerprint(FP_B).unwrap_err().code(), "CONFIG_MISMATCH");
    assert!(!inspect(d.path(), Some(FP_B)).unwrap().is_healthy());
}

#[test]
fn format_1_is_refused_until_upgraded() {
    let d = TempDir::new("legacy");
    // a format-1 segment: 32-byte header without fingerprint, then records 1..=5
    let mut seg = encode_segment_header_legacy(1).to_vec();
    for n in 1..=5 {
        let (i, deps, p, f) = rec(n);
        seg.extend_from_slice(&encode_record(n, &i, &deps, &p, f));
    }
    std::fs::write(d.path().join(segment_file_name(1)), &seg).unwrap();
    let ck = write_checkpoint_as(d.path(), 3, None, &[(1, b"three")]).unwrap();
    assert_eq!(load_checkpoint(&ck).unwrap().fingerprint(), None);
    let e = replay(d.path(), FP_A, 4, true).unwrap_err();
    assert_eq!(e.code(), "CONFIG_MISMATCH");
    assert!(e.to_string().contains("format (1)"), "{e}");
    assert!(!inspect(d.path(), Some(FP_A)).unwrap().is_healthy());
    assert!(!inspect(d.path(), None).unwrap().is_healthy());
    // the caller adopts it: every file is rewritten in format 2 with its fingerprint
    let done = upgrade_format(d.path(), FP_A).unwrap();
    assert_eq!(done.len(), 2);
    assert_eq!(load_checkpoint(&ck).unwrap().fingerprint(), Some(FP_A));
    assert_eq!(load_checkpoint(&ck).unwrap().section(1), Some(&b"three"[..]));
    let (seqs, _) = replay(d.path(), FP_A, 1, false).unwrap();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert!(upgrade_format(d.path(), FP_A).unwrap().is_empty(), "idempotent");
    assert!(inspect(d.path(), Some(FP_A)).unwrap().is_healthy());
}

#[test]
fn damage_covered_by_the_checkpoint_costs_nothing() {
    let d = build("covered", FP_A, 30, 1 << 20);
    let seg = d.path().join(segment_file_name(1));
    let recs = records(&seg);
    flip(&seg, recs[4].0 + 20); // record 5
    let before = listing(d.path());
    // without a checkpoint it is corruption
    assert_eq!(replay(d.path(), FP_A, 1, false).unwrap_err().code(), "WAL_CORRUPT");
    assert!(!inspect(d.path(), None).unwrap().is_healthy());
    write_checkpoint(d.path(), 20, FP_A, &[(1, b"state at 20")]).unwrap();
    let r = inspect(d.path(), None).unwrap();
    assert!(r.is_healthy(), "{r}");
    assert_eq!(r.covered.len(), 1, "{r}");
    for truncate in [false, true] {
        let (seqs, rec) = replay(d.path(), FP_A, 21, truncate).unwrap();
        assert_eq!(seqs, (21..=30).collect::<Vec<_>>());
        assert_eq!((rec.last_seq, rec.bytes_cut, rec.truncated_at.clone()), (30, 0, None));
        assert_eq!(rec.covered_damage.len(), 1);
        assert_eq!(rec.covered_damage[0].1, recs[4].0 as u64);
        assert!(rec.moved_aside.is_empty());
    }
    let mut after = listing(d.path());
    after.retain(|(n, _)| !n.starts_with("ckpt-"));
    assert_eq!(after, before, "nothing cut, nothing moved");
    // appends continue after record 30 in the same segment
    let (mut wal, _) = Wal::open_with_replay(d.path(), o(FP_A), 21, |_| Ok::<(), WalError>(())).unwrap();
    append_n(&mut wal, 31, 35);
    wal.close().unwrap();
    let (seqs, _) = replay(d.path(), FP_A, 21, false).unwrap();
    assert_eq!(seqs, (21..=35).collect::<Vec<_>>());
}

/// Segments after the first are read, and their checksums checked, on a
/// read-ahead thread while the previous one is replayed: damage there is
/// found at the same offset, and resynchronised over when covered, exactly
/// as in the first segment.
#[test]
fn damage_in_a_segment_read_ahead_is_found_and_covered_alike() {
    let d = build("covered-ahead", FP_A, 60, 1024);
    let segs: Vec<PathBuf> = listing(d.path())
        .into_iter()
        .filter(|(n, _)| n.starts_with("wal-"))
        .map(|(n, _)| d.path().join(n))
        .collect();
    assert!(segs.len() >= 3, "{segs:?}");
    let (all, _) = replay(d.path(), FP_A, 1, false).unwrap();
    assert_eq!(all, (1..=60).collect::<Vec<_>>(), "intact: every record, in order");
    let before_third = (records(&segs[0]).len() + records(&segs[1]).len()) as u64;
    let recs = records(&segs[2]);
    flip(&segs[2], recs[1].0 + 20); // the second record of the third segment
    let damaged = before_third + 2;
    let e = replay(d.path(), FP_A, 1, false).unwrap_err();
    match &e {
        WalError::Corrupt { segment, offset, .. } => assert_eq!((segment, *offset), (&segs[2], recs[1].0 as u64)),
        other => panic!("expected WAL_CORRUPT, got {other}"),
    }
    write_checkpoint(d.path(), damaged, FP_A, &[(1, b"state")]).unwrap();
    let (seqs, rec) = replay(d.path(), FP_A, damaged + 1, false).unwrap();
    assert_eq!(seqs, (damaged + 1..=60).collect::<Vec<_>>());
    assert_eq!(rec.covered_damage.len(), 1, "{:?}", rec.covered_damage);
    assert_eq!(rec.covered_damage[0].1, recs[1].0 as u64);
}

#[test]
fn a_log_ending_below_the_checkpoint_continues_in_a_new_segment() {
    let d = build("below", FP_A, 10, 1 << 20);
    write_checkpoint(d.path(), 20, FP_A, &[(1, b"state at 20")]).unwrap();
    assert!(inspect(d.path(), None).unwrap().is_healthy());
    let (mut wal, rec) = Wal::open_with_replay(d.path(), o(FP_A), 21, |_| Ok::<(), WalError>(())).unwrap();
    assert_eq!(rec.last_seq, 20);
    assert_eq!(wal.append(&[1; 32], &[], b"x", 0).unwrap(), 21);
    wal.close().unwrap();
    assert!(d.path().join(segment_file_name(21)).exists());
    let (seqs, _) = replay(d.path(), FP_A, 21, false).unwrap();
    assert_eq!(seqs, vec![21]);
    // and the seqs 11..20 missing between the segments are covered
    let r = inspect(d.path(), None).unwrap();
    assert!(r.is_healthy(), "{r}");
}

#[test]
fn truncate_corrupt_moves_every_removed_byte_aside() {
    let d = build("aside", FP_A, 400, 4096);
    let segs = segments(d.path());
    assert!(segs.len() >= 3);
    let first = &segs[0];
    let recs = records(first);
    flip(first, recs[9].0 + 30);
    let damaged = std::fs::read(first).unwrap();
    let later: Vec<Vec<u8>> = segs[1..].iter().map(|p| std::fs::read(p).unwrap()).collect();
    let (seqs, rec) = replay(d.path(), FP_A, 1, true).unwrap();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
    assert_eq!(rec.last_seq, 9);
    assert_eq!(rec.truncated_at, Some((first.clone(), recs[9].0 as u64)));
    assert_eq!(rec.truncate_reason.as_deref(), Some("checksum mismatch"));
    assert_eq!(rec.moved_aside.len(), segs.len());
    let total: u64 = (damaged.len() - recs[9].0) as u64 + later.iter().map(|b| b.len() as u64).sum::<u64>();
    assert_eq!(rec.bytes_cut, total);
    let aside: Vec<Vec<u8>> = rec.moved_aside.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert_eq!(aside[0], damaged[recs[9].0..]);
    assert_eq!(&aside[1..], &later[..]);
    assert!(rec.moved_aside.iter().all(|p| p.to_string_lossy().ends_with(".corrupt")));
    // the directory opens with every option afterwards, and appends go on from 10
    let (mut wal, _) = Wal::open_with_replay(d.path(), o(FP_A), 1, |_| Ok::<(), WalError>(())).unwrap();
    append_n(&mut wal, 10, 12);
    wal.close().unwrap();
    assert!(inspect(d.path(), None).unwrap().is_healthy());
}

#[test]
fn gaps_are_found_by_open_and_inspect_alike() {
    let base = build("gaps", FP_A, 1000, 4096);
    let segs = segments(base.path());
    let name_seq = |p: &PathBuf| -> u64 { p.file_name().unwrap().to_str().unwrap()[4..24].parse().unwrap() };
    let copy = |tag: &str| {
        let d = TempDir::new(tag);
        for p in segments(base.path()) {
            std::fs::copy(&p, d.path().join(p.file_name().unwrap())).unwrap();
        }
        d
    };
    let check = |d: &TempDir, anchor: Option<u64>, ok: bool| {
        if let Some(s) = anchor {
            write_checkpoint(d.path(), s, FP_A, &[(1, b"s")]).unwrap();
        }
        let r = inspect(d.path(), Some(FP_A)).unwrap();
        let opened = replay(d.path(), FP_A, anchor.map_or(1, |s| s + 1), false);
        assert_eq!(r.is_healthy(), opened.is_ok(), "{r}\n{opened:?}");
        assert_eq!(opened.is_ok(), ok, "{r}");
        if !ok {
            assert!(!r.corruption.is_empty());
        }
    };
    // missing first segment, no checkpoint: a gap from 1
    let d = copy("gap-first");
    std::fs::remove_file(d.path().join(segs[0].file_name().unwrap())).unwrap();
    check(&d, None, false);
    // missing middle segment
    let d = copy("gap-mid");
    std::fs::remove_file(d.path().join(segs[5].file_name().unwrap())).unwrap();
    check(&d, None, false);
    // the same gap, below a checkpoint: covered
    let d = copy("gap-covered");
    std::fs::remove_file(d.path().join(segs[5].file_name().unwrap())).unwrap();
    check(&d, Some(name_seq(&segs[7])), true);
    // every segment before the checkpoint removed
    let d = copy("gap-compacted");
    for p in &segs[..6] {
        std::fs::remove_file(d.path().join(p.file_name().unwrap())).unwrap();
    }
    check(&d, Some(name_seq(&segs[6]) - 1), true);
    // one segment too many removed
    let d = copy("gap-toomany");
    for p in &segs[..7] {
        std::fs::remove_file(d.path().join(p.file_name().unwrap())).unwrap();
    }
    check(&d, Some(name_seq(&segs[6]) - 1), false);
}

#[test]
fn check_dir_notices_a_removed_or_replaced_directory() {
    let d = TempDir::new("rmdir");
    let (wal, _) = Wal::open(d.path(), o(FP_A)).unwrap();
    assert!(wal.check_dir().is_ok());
    std::fs::remove_dir_all(d.path()).unwrap();
    assert_eq!(wal.check_dir().unwrap_err().code(), "IO_ERROR");
    std::fs::create_dir_all(d.path()).unwrap();
    let e = wal.check_dir().unwrap_err();
    assert_eq!(e.code(), "IO_ERROR");
    // writing a checkpoint never re-creates a missing directory
    let gone = d.path().join("nope");
    assert_eq!(write_checkpoint(&gone, 1, FP_A, &[]).unwrap_err().code(), "IO_ERROR");
    assert!(!gone.exists());
}
