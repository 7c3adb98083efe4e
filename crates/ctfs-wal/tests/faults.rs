//! Fault injection on files: torn tails at every byte, random bit flips in
//! records, corruption in the middle with and without `truncate_corrupt`,
//! checkpoint bit flips and truncations.

mod common;

use common::*;
use ctfs_wal::*;
use std::path::Path;

fn portable() -> WalOptions {
    WalOptions { backend: Backend::Portable, ..Default::default() }
}

/// Builds a log with records 1..=n; returns the segment files' bytes.
fn build(dir: &Path, n: u64, segment_size: u64) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let (mut wal, _) = Wal::open(dir, WalOptions { segment_size, ..portable() }).unwrap();
    append_n(&mut wal, 1, n);
    wal.close().unwrap();
    segments(dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

fn restore(files: &[(std::path::PathBuf, Vec<u8>)]) {
    if let Some(dir) = files.first().and_then(|(p, _)| p.parent()) {
        for p in segments(dir) {
            std::fs::remove_file(p).unwrap();
        }
    }
    for (p, b) in files {
        std::fs::write(p, b).unwrap();
    }
}

#[test]
fn torn_last_record_at_every_byte() {
    let d = TempDir::new("torn");
    let n = 6;
    let files = build(d.path(), n, 64 << 20);
    assert_eq!(files.len(), 1);
    let (path, bytes) = &files[0];
    let offs = record_offsets(bytes);
    let (last_off, last_len) = *offs.last().unwrap();
    assert_eq!(last_off + last_len, bytes.len(), "a clean close trims the zeros written ahead");
    // What a crash leaves: the zeros the writer wrote past its records. They
    // are the clean end: nothing cut, nothing reported.
    let zeros = 1 << 16;
    let mut with_zeros = bytes.clone();
    with_zeros.resize(bytes.len() + zeros, 0);
    std::fs::write(path, &with_zeros).unwrap();
    let (recs, rec) = replay_all(d.path(), 1).unwrap();
    assert_eq!((recs.len() as u64, rec.last_seq, rec.bytes_cut, rec.torn_tail_at.clone()), (n, n, 0, None));
    assert!(inspect(d.path(), None).unwrap().is_healthy());
    let (mut wal, rec) = Wal::open(d.path(), portable()).unwrap();
    assert_eq!((rec.last_seq, rec.bytes_cut), (n, 0));
    append_n(&mut wal, n + 1, n + 1);
    wal.close().unwrap();
    let (recs, _) = replay_all(d.path(), 1).unwrap();
    assert_eq!(recs, (1..=n + 1).map(expected).collect::<Vec<_>>());
    // Torn inside the zeroed space (the file keeps its length): the last
    // record's missing bytes are zeros.
    for cut in last_off + 1..last_off + last_len {
        let mut b = with_zeros.clone();
        b[cut..last_off + last_len].fill(0);
        std::fs::write(path, &b).unwrap();
        let (recs, r) = replay_all(d.path(), 1).unwrap();
        assert_eq!(recs.len() as u64, n - 1, "zeroed from {cut}");
        assert_eq!(r.torn_tail_at, Some((path.clone(), last_off as u64)), "zeroed from {cut}");
        assert_eq!(r.bytes_cut, (b.len() - last_off) as u64);
        let (mut wal, rec) = Wal::open(d.path(), portable()).unwrap();
        assert_eq!(rec.last_seq, n - 1, "zeroed from {cut}");
        assert_eq!(std::fs::metadata(path).unwrap().len(), last_off as u64);
        append_n(&mut wal, n, n);
        wal.close().unwrap();
        let (recs, _) = replay_all(d.path(), 1).unwrap();
        assert_eq!(recs, (1..=n).map(expected).collect::<Vec<_>>());
    }
    let mut cases = 0;
    for cut in last_off + 1..last_off + last_len {
        std::fs::write(path, &bytes[..cut]).unwrap();
        // Read-only replay sees the prefix and reports the torn tail.
        let (recs, r) = replay_all(d.path(), 1).unwrap();
        assert_eq!(recs.len() as u64, n - 1, "cut {cut}");
        assert_eq!(r.bytes_cut, (cut - last_off) as u64);
        let rep = inspect(d.path(), None).unwrap();
        assert!(rep.corruption.is_empty());
        assert_eq!(rep.torn_tail.as_ref().map(|t| t.1), Some(last_off as u64));
        // Open cuts it and continues at seq n.
        let (mut wal, rec) = Wal::open(d.path(), portable()).unwrap();
        assert_eq!(rec.last_seq, n - 1, "cut {cut}");
        assert_eq!(rec.bytes_cut, (cut - last_off) as u64);
        assert_eq!(rec.torn_tail_at, Some((path.clone(), last_off as u64)));
        assert_eq!(std::fs::metadata(path).unwrap().len(), last_off as u64);
        append_n(&mut wal, n, n);
        wal.close().unwrap();
        let (recs, _) = replay_all(d.path(), 1).unwrap();
        assert_eq!(recs.len() as u64, n);
        for (i, x) in recs.iter().enumerate() {
            assert_eq!(*x, expected(i as u64 + 1));
        }
        cases += 1;
    }
    assert_eq!(cases, last_len - 1);
    // Also a cut exactly at the boundary: clean log of n-1 records.
    std::fs::write(path, &bytes[..last_off]).unwrap();
    let (_w, rec) = Wal::open(d.path(), portable()).unwrap();
    assert_eq!((rec.last_seq, rec.bytes_cut), (n - 1, 0));
}

/// Flips random bits in random records; every outcome must be a torn tail
/// (flip in the last record of the last segment) or WAL_CORRUPT at the
/// flipped record's offset; never a silently different record.
#[test]
fn random_bit_flips_always_detected() {
    let d = TempDir::new("flips");
    let n = 40;
    // Small segments: several segments, so flips in non-last segments count too.
    let mut files = build(d.path(), n, 1024);
    assert!(files.len() >= 3, "{} segments", files.len());
    // The last segment as a crash leaves it: zeros written ahead of its records.
    if let Some((_, b)) = files.last_mut() {
        b.resize(b.len() + 512, 0);
    }
    let mut rng = Rng::new(0xC7F5);
    let (mut torn, mut corrupt, mut in_zeros) = (0, 0, 0);
    for case in 0..300 {
        restore(&files);
        let si = rng.below(files.len() as u64) as usize;
        let (path, bytes) = &files[si];
        let bit = rng.below(bytes.len() as u64 * 8) as usize;
        let byte = bit / 8;
        let mut b = bytes.clone();
        b[byte] ^= 1 << (bit % 8);
        std::fs::write(path, &b).unwrap();
        let offs = record_offsets(bytes);
        let rec_at = offs.iter().find(|(o, l)| byte >= *o && byte < o + l).map(|x| x.0);
        let data_end = offs.last().map(|(o, l)| o + l);
        // A flip in the zeros written past the last record cuts them as a
        // torn tail and loses no record.
        let in_zero_tail = si + 1 == files.len() && data_end.is_some_and(|e| byte >= e);
        if in_zero_tail {
            let (wal, r) = Wal::open(d.path(), portable()).unwrap_or_else(|e| panic!("case {case}: {e}"));
            drop(wal);
            assert_eq!(r.torn_tail_at, Some((path.clone(), data_end.unwrap() as u64)), "case {case}");
            assert_eq!(replay_all(d.path(), 1).unwrap().0.len() as u64, n, "case {case}");
            in_zeros += 1;
            continue;
        }
        let is_last_record = si + 1 == files.len() && rec_at == offs.last().map(|x| x.0);
        let ins = inspect(d.path(), None).unwrap();
        match Wal::open(d.path(), portable()) {
            Ok((wal, r)) => {
                drop(wal);
                assert!(is_last_record, "case {case}: flip at {path:?}+{byte} accepted: {r:?}");
                assert_eq!(r.torn_tail_at, Some((path.clone(), rec_at.unwrap() as u64)));
                assert!(ins.torn_tail.is_some() && ins.corruption.is_empty());
                let (recs, _) = replay_all(d.path(), 1).unwrap();
                assert_eq!(recs.len() as u64, n - 1);
                for (i, x) in recs.iter().enumerate() {
                    assert_eq!(*x, expected(i as u64 + 1), "case {case}");
                }
                torn += 1;
            }
            Err(WalError::Corrupt { segment, offset, reason }) => {
                assert!(!is_last_record, "case {case}: last-record flip reported corrupt: {reason}");
                assert_eq!(&segment, path, "case {case}");
                assert_eq!(offset, rec_at.map_or(0, |o| o as u64), "case {case}: {reason}");
                assert_eq!(ins.corruption.first().map(|c| c.1), Some(offset), "case {case}");
                // Read-only replay fails the same way, after handing out only
                // intact records.
                let mut got = Vec::new();
                let e = Wal::replay(d.path(), &[], 1, |r| {
                    got.push(Owned::from(r));
                    Ok::<(), WalError>(())
                })
                .unwrap_err();
                assert_eq!(e.code(), "WAL_CORRUPT");
                for (i, x) in got.iter().enumerate() {
                    assert_eq!(*x, expected(i as u64 + 1), "case {case}");
                }
                corrupt += 1;
            }
            Err(e) => panic!("case {case}: unexpected {e}"),
        }
    }
    println!("300 flips: {torn} torn tails, {corrupt} WAL_CORRUPT, {in_zeros} in the zeros (a torn tail, nothing lost)");
    assert!(torn > 0 && corrupt > 0 && in_zeros > 0);
}

#[test]
fn truncate_corrupt_drops_the_rest() {
    let d = TempDir::new("trunc");
    let files = build(d.path(), 40, 1024);
    let (path, bytes) = &files[1];
    let offs = record_offsets(bytes);
    let (o, _) = offs[2];
    let mut b = bytes.clone();
    b[o + 20] ^= 0x10;
    std::fs::write(path, &b).unwrap();
    let e = Wal::open(d.path(), portable()).unwrap_err();
    assert_eq!(e.code(), "WAL_CORRUPT");
    assert!(e.to_string().contains(&format!("offset {o}")), "{e}");
    let rep = inspect(d.path(), None).unwrap();
    assert!(!rep.is_healthy());
    assert!(rep.to_string().contains("CORRUPT"));
    // With truncate_corrupt: cut there, later segments deleted, reported.
    let (mut wal, rec) = Wal::open(d.path(), WalOptions { truncate_corrupt: true, ..portable() }).unwrap();
    assert_eq!(rec.truncated_at, Some((path.clone(), o as u64)));
    let first_of_seg1 = files[0].1.len(); // not used: compute expected seq instead
    let _ = first_of_seg1;
    let seq_at = record_offsets(&files[0].1).len() as u64 + 3; // seq of the damaged record
    assert_eq!(rec.last_seq, seq_at - 1);
    assert_eq!(rec.segments, 2);
    assert!(rec.bytes_cut > 0);
    assert_eq!(segments(d.path()).len(), 2);
    append_n(&mut wal, seq_at, seq_at + 5);
    wal.close().unwrap();
    let (recs, _) = replay_all(d.path(), 1).unwrap();
    assert_eq!(recs.len() as u64, seq_at + 5);
    assert!(inspect(d.path(), None).unwrap().is_healthy());
}

#[test]
fn corrupt_header_and_seq_gap() {
    // Damaged header of a non-last segment.
    let d = TempDir::new("hdr");
    let files = build(d.path(), 40, 1024);
    let (p0, b0) = &files[0];
    let mut b = b0.clone();
    b[3] ^= 1;
    std::fs::write(p0, &b).unwrap();
    let e = Wal::open(d.path(), portable()).unwrap_err();
    assert!(matches!(&e, WalError::Corrupt { offset: 0, segment, .. } if segment == p0), "{e}");
    restore(&files);
    // Missing middle segment: a seq gap.
    std::fs::remove_file(&files[1].0).unwrap();
    let e = Wal::open(d.path(), portable()).unwrap_err();
    assert_eq!(e.code(), "WAL_CORRUPT");
    assert!(e.to_string().contains("gap"), "{e}");
    // Damaged header of the last segment whose records are intact: corrupt, not torn.
    restore(&files);
    let (pl, bl) = files.last().unwrap();
    let mut b = bl.clone();
    b[17] ^= 4;
    std::fs::write(pl, &b).unwrap();
    assert_eq!(Wal::open(d.path(), portable()).unwrap_err().code(), "WAL_CORRUPT");
}

#[test]
fn garbage_files_never_panic() {
    let d = TempDir::new("garbage");
    let mut rng = Rng::new(7);
    for case in 0..200 {
        for p in segments(d.path()) {
            std::fs::remove_file(p).unwrap();
        }
        let len = rng.below(300) as usize;
        let mut g: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if case % 2 == 0 && len >= 32 {
            g[..32].copy_from_slice(&std::fs::read(d.path().join(segment_file_name(1))).unwrap_or_else(|_| {
                // a valid header for seq 1
                let t = TempDir::new("hdrsrc");
                let (w, _) = Wal::open(t.path(), portable()).unwrap();
                drop(w);
                std::fs::read(t.path().join(segment_file_name(1))).unwrap()
            })[..32]);
        }
        std::fs::write(d.path().join(segment_file_name(1)), &g).unwrap();
        let _ = inspect(d.path(), None).unwrap();
        let _ = Wal::replay(d.path(), &[], 1, |_| Ok::<(), WalError>(()));
        match Wal::open(d.path(), portable()) {
            Ok((w, r)) => {
                drop(w);
                assert_eq!(r.last_seq, 0, "case {case}");
            }
            Err(e) => assert_eq!(e.code(), "WAL_CORRUPT", "case {case}: {e}"),
        }
    }
}

#[test]
fn checkpoint_every_bit_flip_and_truncation_detected() {
    let d = TempDir::new("ckpt");
    let p1 = write_checkpoint(d.path(), 10, &[], &[(1, b"old state"), (2, b"")]).unwrap();
    let p2 = write_checkpoint(d.path(), 20, &[], &[(1, b"kernel state v2"), (7, &[9u8; 100]), (3, b"")]).unwrap();
    let good = std::fs::read(&p2).unwrap();
    let c = load_checkpoint(&p2).unwrap();
    assert_eq!(c.seq, 20);
    assert_eq!(c.section(1), Some(&b"kernel state v2"[..]));
    assert_eq!(c.section(7).map(|s| s.len()), Some(100));
    assert_eq!(c.sections().map(|(t, _)| t).collect::<Vec<_>>(), vec![1, 7, 3]);
    assert_eq!(latest_valid_checkpoint(d.path()).unwrap().checkpoint.unwrap().seq, 20);
    // Every single bit.
    for bit in 0..good.len() * 8 {
        let mut b = good.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&p2, &b).unwrap();
        let e = load_checkpoint(&p2).unwrap_err();
        assert_eq!(e.code(), "CHECKPOINT_CORRUPT", "bit {bit}");
    }
    // Every truncation.
    for len in 0..good.len() {
        std::fs::write(&p2, &good[..len]).unwrap();
        assert_eq!(load_checkpoint(&p2).unwrap_err().code(), "CHECKPOINT_CORRUPT", "len {len}");
    }
    // Appended garbage too.
    let mut b = good.clone();
    b.push(0);
    std::fs::write(&p2, &b).unwrap();
    assert_eq!(load_checkpoint(&p2).unwrap_err().code(), "CHECKPOINT_CORRUPT");
    // Fallback to the previous one, reporting the skipped file.
    let l = latest_valid_checkpoint(d.path()).unwrap();
    assert_eq!(l.checkpoint.as_ref().unwrap().seq, 10);
    assert_eq!(l.checkpoint.as_ref().unwrap().path, p1);
    assert_eq!(l.skipped.len(), 1);
    assert_eq!(l.skipped[0].0, p2);
    let rep = inspect(d.path(), None).unwrap();
    assert_eq!(rep.checkpoints.len(), 2);
    assert!(rep.checkpoints[0].valid && !rep.checkpoints[1].valid);
    // open falls back to the checkpoint at 10 (no log record is needed): healthy, the bad file listed
    assert!(rep.is_healthy());
    assert_eq!(rep.anchor, Some(10));
    assert!(rep.to_string().contains("INVALID"));
    // A copy under another seq's name is refused too.
    std::fs::write(&p2, &good).unwrap();
    let p3 = d.path().join(checkpoint_file_name(30));
    std::fs::copy(&p2, &p3).unwrap();
    assert_eq!(load_checkpoint(&p3).unwrap_err().code(), "CHECKPOINT_CORRUPT");
    std::fs::remove_file(&p3).unwrap();
    // Pruning.
    let removed = remove_checkpoints_before(d.path(), 20).unwrap();
    assert_eq!(removed, vec![p1]);
    assert_eq!(list_checkpoints(d.path()).unwrap().len(), 1);
}

#[test]
fn checkpoint_multi_chunk_random_flips() {
    let d = TempDir::new("ckptbig");
    let big: Vec<u8> = (0..(CHECKPOINT_CHUNK * 2 + 12345)).map(|i| (i * 131 % 251) as u8).collect();
    let p0 = write_checkpoint(d.path(), 5, &[], &[(1, b"base")]).unwrap();
    let p = write_checkpoint(d.path(), 50, &[], &[(1, &big), (2, b"tail section")]).unwrap();
    let good = std::fs::read(&p).unwrap();
    assert_eq!(load_checkpoint(&p).unwrap().section(1).unwrap(), &big[..]);
    let mut rng = Rng::new(99);
    for case in 0..60 {
        let mut b = good.clone();
        let bit = rng.below(b.len() as u64 * 8) as usize;
        b[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&p, &b).unwrap();
        assert_eq!(load_checkpoint(&p).unwrap_err().code(), "CHECKPOINT_CORRUPT", "case {case}");
        if case % 10 == 0 {
            let l = latest_valid_checkpoint(d.path()).unwrap();
            assert_eq!(l.checkpoint.unwrap().path, p0);
        }
    }
    for _ in 0..20 {
        let len = rng.below(good.len() as u64) as usize;
        std::fs::write(&p, &good[..len]).unwrap();
        assert_eq!(load_checkpoint(&p).unwrap_err().code(), "CHECKPOINT_CORRUPT");
    }
}

#[test]
fn error_codes_are_stable() {
    let p = std::path::PathBuf::from("x");
    let all = [
        WalError::BufferFull { needed: 1, available: 0 },
        WalError::Corrupt { segment: p.clone(), offset: 0, reason: "r".into() },
        WalError::CheckpointCorrupt { path: p, reason: "r".into() },
        WalError::Failed { reason: "r".into() },
        WalError::Io { context: "c".into(), source: std::io::Error::other("x") },
        WalError::InvalidArgument("a".into()),
        WalError::BackendUnavailable("b".into()),
        WalError::Closed,
    ];
    let codes: Vec<&str> = all.iter().map(|e| e.code()).collect();
    assert_eq!(
        codes,
        [
            "BUFFER_FULL",
            "WAL_CORRUPT",
            "CHECKPOINT_CORRUPT",
            "WAL_FAILED",
            "IO_ERROR",
            "INVALID_ARGUMENT",
            "BACKEND_UNAVAILABLE",
            "WAL_CLOSED"
        ]
    );
    for e in &all {
        assert!(e.to_string().starts_with(e.code()));
    }
}
