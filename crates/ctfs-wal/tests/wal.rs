//! Writer, group commit, back-pressure, failure, recovery, compaction — each
//! against every available backend.

mod common;

use common::*;
use ctfs_wal::*;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn round_trip_reopen_continues_seq() {
    for b in backends() {
        let d = TempDir::new("roundtrip");
        {
            let (mut wal, rec) = Wal::open(d.path(), opts(b)).unwrap();
            assert_eq!(rec.last_seq, 0);
            assert_eq!(rec.records_replayed, 0);
            assert_eq!(wal.backend(), if b.0 == Backend::IoUring { "io_uring" } else { "portable" });
            append_n(&mut wal, 1, 500);
            assert_eq!(wal.appended_seq(), 500);
            assert_eq!(wal.flush().unwrap(), 500);
            assert_eq!(wal.durable_seq(), 500);
            wal.close().unwrap();
            wal.close().unwrap(); // idempotent
            assert_eq!(wal.append(&id(1), &[], b"", 0).unwrap_err().code(), "WAL_CLOSED");
        }
        let (recs, r) = replay_all(d.path(), 1).unwrap();
        assert_eq!(r.last_seq, 500);
        assert_eq!(recs.len(), 500);
        for (i, x) in recs.iter().enumerate() {
            assert_eq!(*x, expected(i as u64 + 1));
        }
        // Reopen with replay from 301, continue at 501.
        let mut seen = Vec::new();
        let (mut wal, rec) = Wal::open_with_replay(d.path(), opts(b), 301, |r| {
            seen.push(r.seq);
            Ok::<(), WalError>(())
        })
        .unwrap();
        assert_eq!(rec.last_seq, 500);
        assert_eq!(rec.records_replayed, 200);
        assert_eq!(rec.bytes_cut, 0);
        assert_eq!(seen, (301..=500).collect::<Vec<_>>());
        append_n(&mut wal, 501, 600);
        drop(wal); // Drop closes and syncs
        let (recs, _) = replay_all(d.path(), 1).unwrap();
        assert_eq!(recs.len(), 600);
        assert_eq!(recs[599], expected(600));
    }
}

#[test]
fn segment_roll_and_wraparound() {
    for b in backends() {
        let d = TempDir::new("roll");
        let o = WalOptions { segment_size: 4096, buffer_capacity: 4096, max_record_bytes: 2048, ..opts(b) };
        let (mut wal, _) = Wal::open(d.path(), o).unwrap();
        append_n(&mut wal, 1, 3000);
        wal.flush().unwrap();
        let st = wal.stats();
        assert!(st.segments_created > 20, "{st:?}");
        // One record larger than a segment goes alone.
        let big = vec![7u8; 1500];
        let (mut wal, seq) = {
            let s = wal.append(&id(9), &[], &big, 1).unwrap();
            (wal, s)
        };
        assert_eq!(seq, 3001);
        wal.close().unwrap();
        let (recs, r) = replay_all(d.path(), 1).unwrap();
        assert_eq!(r.last_seq, 3001);
        for (i, x) in recs.iter().take(3000).enumerate() {
            assert_eq!(*x, expected(i as u64 + 1));
        }
        assert_eq!(recs[3000].payload, big);
        let segs = segments(d.path());
        assert!(segs.len() > 20);
        for s in &segs {
            assert!(std::fs::metadata(s).unwrap().len() <= 4096);
        }
        let rep = inspect(d.path(), None).unwrap();
        assert!(rep.is_healthy(), "{rep}");
        assert_eq!(rep.records, 3001);
        let mut next = 1;
        for s in &rep.segments {
            assert_eq!(s.first_seq, Some(next));
            next = s.last_seq.unwrap() + 1;
        }
        // Reopen continues in the last segment / rolls as needed.
        let o = WalOptions { segment_size: 4096, buffer_capacity: 4096, max_record_bytes: 2048, ..opts(b) };
        let (mut wal, rec) = Wal::open(d.path(), o).unwrap();
        assert_eq!(rec.last_seq, 3001);
        assert_eq!(rec.segments, segs.len());
        append_n(&mut wal, 3002, 3100);
        wal.close().unwrap();
        assert_eq!(replay_all(d.path(), 3000).unwrap().0.len(), 101);
    }
}

#[test]
fn group_commit_shares_fsyncs() {
    for b in backends() {
        let d = TempDir::new("group");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c2 = calls.clone();
        let o = WalOptions { notifier: Some(Box::new(move |s| c2.lock().unwrap().push(s))), ..opts(b) };
        let (mut wal, _) = Wal::open(d.path(), o).unwrap();
        let h = wal.durable_handle();
        append_n(&mut wal, 1, 10_000);
        assert!(h.durable_seq() <= 10_000);
        wal.flush().unwrap();
        let st = wal.stats();
        println!("{:?} {:?}: {st:?}", b.0, b.1);
        assert_eq!(st.records_written, 10_000);
        assert!(st.fsyncs * 10 < 10_000, "group commit: {} fsyncs for 10k appends", st.fsyncs);
        assert_eq!(st.batches, calls.lock().unwrap().len() as u64);
        let v = calls.lock().unwrap().clone();
        assert!(v.windows(2).all(|w| w[0] < w[1]), "notifier strictly increasing");
        assert_eq!(*v.last().unwrap(), 10_000);
        wal.close().unwrap();
    }
}

/// Opens the gate when dropped (also when a test assertion panics, so the
/// writer thread never stays blocked and `Drop for Wal` can join it).
struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);
impl Gate {
    fn open(&self) {
        *self.0.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.1.notify_all();
    }
}
impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}

/// A fault hook that blocks the writer until released.
fn gate() -> (FaultHook, Gate) {
    let g = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let g2 = g.clone();
    let hook: FaultHook = Arc::new(move |_, _| {
        let (m, cv) = &*g2;
        let mut open = m.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        FaultAction::Proceed
    });
    (hook, Gate(g))
}

#[test]
fn buffer_full_before_any_state_change() {
    for b in backends() {
        let d = TempDir::new("full");
        let (hook, g0) = gate();
        let o = WalOptions { buffer_capacity: 4096, max_record_bytes: 1024, fault_hook: Some(hook), ..opts(b) };
        let (mut wal, _) = Wal::open(d.path(), o).unwrap();
        let g = g0; // declared after `wal`: dropped (opened) first on a panic
        // The first record is taken by the (blocked) writer; fill the rest.
        let mut n = 0u64;
        let full = loop {
            let (i, dd, p, f) = rec(n + 1);
            if let Err(e) = wal.can_append(dd.len(), p.len()) {
                // can_append and append agree, and neither changes anything.
                let before = wal.appended_seq();
                let e2 = wal.append(&i, &dd, &p, f).unwrap_err();
                assert_eq!(e.code(), "BUFFER_FULL");
                assert_eq!(e2.code(), "BUFFER_FULL");
                assert_eq!(wal.appended_seq(), before);
                break e2;
            }
            assert_eq!(wal.append(&i, &dd, &p, f).unwrap(), n + 1);
            n += 1;
            assert!(n < 1000, "ring never filled");
            if n == 1 {
                std::thread::sleep(Duration::from_millis(50)); // let the writer take record 1
            }
        };
        assert!(matches!(full, WalError::BufferFull { .. }));
        assert_eq!(wal.durable_seq(), 0);
        let (_, dd, p, _) = rec(n + 1);
        assert!(wal.can_append_all([Wal::record_size(dd.len(), p.len())]).is_err());
        // Release the writer: everything appended becomes durable, in order.
        g.open();
        assert_eq!(wal.flush().unwrap(), n);
        assert!(wal.can_append_all((0..20).map(|k| Wal::record_size(k % 3, k * 5))).is_ok());
        append_n(&mut wal, n + 1, n + 50);
        wal.close().unwrap();
        let (recs, _) = replay_all(d.path(), 1).unwrap();
        assert_eq!(recs.len() as u64, n + 50);
        for (i, x) in recs.iter().enumerate() {
            assert_eq!(*x, expected(i as u64 + 1));
        }
    }
}

#[test]
fn invalid_arguments() {
    let d = TempDir::new("inval");
    let o = WalOptions { buffer_capacity: 8192, max_record_bytes: 1024, backend: Backend::Portable, ..Default::default() };
    let (mut wal, _) = Wal::open(d.path(), o).unwrap();
    let e = wal.append(&id(1), &[], &[0u8; 2000], 0).unwrap_err();
    assert_eq!(e.code(), "INVALID_ARGUMENT");
    assert_eq!(wal.appended_seq(), 0);
    let bad = WalOptions { buffer_capacity: 8192, max_record_bytes: 8192, ..Default::default() };
    assert_eq!(Wal::open(TempDir::new("inval2").path(), bad).unwrap_err().code(), "INVALID_ARGUMENT");
    // A second open of the same directory is refused while the first lives.
    let e = Wal::open(d.path(), WalOptions { backend: Backend::Portable, ..Default::default() }).unwrap_err();
    assert_eq!(e.code(), "IO_ERROR");
}

/// A fault hook failing, with EIO, every durable write at an offset `at`
/// accepts once `armed` is 1: before the write reaches the disk, or (with
/// `after`) once it is written and synced.
fn eio_when_armed(armed: &Arc<AtomicUsize>, after: bool, at: impl Fn(u64) -> bool + Send + Sync + 'static) -> FaultHook {
    let armed = armed.clone();
    Arc::new(move |off, _| {
        if at(off) && armed.load(Ordering::SeqCst) == 1 {
            let e = std::io::Error::from_raw_os_error(5); // EIO
            if after { FaultAction::FailAfter(e) } else { FaultAction::FailBefore(e) }
        } else {
            FaultAction::Proceed
        }
    })
}

#[test]
fn failed_state_is_final() {
    for b in backends() {
        for after in [false, true] {
            let d = TempDir::new("failed");
            // Armed once records 1..=10 are durable (however many batches
            // the writer made of them): every later durable write fails.
            let armed = Arc::new(AtomicUsize::new(0));
            let hook = eio_when_armed(&armed, after, |_| true);
            let failures = Arc::new(AtomicU64::new(0));
            let f2 = failures.clone();
            let durable_calls = Arc::new(Mutex::new(Vec::new()));
            let dc = durable_calls.clone();
            let o = WalOptions {
                fault_hook: Some(hook),
                on_failure: Some(Box::new(move |_| {
                    f2.fetch_add(1, Ordering::SeqCst);
                })),
                notifier: Some(Box::new(move |s| dc.lock().unwrap().push(s))),
                ..opts(b)
            };
            let (mut wal, _) = Wal::open(d.path(), o).unwrap();
            append_n(&mut wal, 1, 10);
            assert_eq!(wal.flush().unwrap(), 10);
            armed.store(1, Ordering::SeqCst);
            // The writer may fail on record 11 before we append the rest:
            // from then on appends fail with WAL_FAILED (and change nothing).
            for n in 11..=20u64 {
                let (i, dd, p, f) = rec(n);
                match wal.append(&i, &dd, &p, f) {
                    Ok(seq) => assert_eq!(seq, n),
                    Err(e) => {
                        assert_eq!(e.code(), "WAL_FAILED");
                        assert_eq!(wal.appended_seq(), n - 1);
                        break;
                    }
                }
            }
            let e = wal.flush().unwrap_err();
            assert_eq!(e.code(), "WAL_FAILED", "{e}");
            assert!(wal.is_failed());
            assert_eq!(wal.durable_seq(), 10, "never report durable after a failed sync");
            assert_eq!(wal.append(&id(1), &[], b"x", 0).unwrap_err().code(), "WAL_FAILED");
            assert_eq!(wal.can_append(0, 1).unwrap_err().code(), "WAL_FAILED");
            assert_eq!(wal.close().unwrap_err().code(), "WAL_FAILED");
            assert_eq!(failures.load(Ordering::SeqCst), 1);
            assert_eq!(*durable_calls.lock().unwrap().last().unwrap(), 10);
            // What is on disk is still a valid log (prefix 10, maybe more).
            let (recs, _) = replay_all(d.path(), 1).unwrap();
            assert!(recs.len() >= 10);
        }
    }
}

#[test]
fn forced_backend_reports_itself() {
    let d = TempDir::new("backend");
    let (wal, _) = Wal::open(d.path(), WalOptions { backend: Backend::Portable, ..Default::default() }).unwrap();
    assert_eq!(wal.backend(), "portable");
    drop(wal);
    match io_uring_available() {
        Ok(()) => {
            let (wal, _) = Wal::open(d.path(), WalOptions { backend: Backend::IoUring, ..Default::default() }).unwrap();
            assert_eq!(wal.backend(), "io_uring");
            drop(wal);
            // `Auto` picks what measured best for latency: portable.
            let (wal, _) = Wal::open(d.path(), WalOptions::default()).unwrap();
            assert_eq!(wal.backend(), "portable");
            assert!(wal.backend_note().is_none());
        }
        Err(reason) => {
            eprintln!("NOTE: io_uring unavailable: {reason}");
            let e = Wal::open(d.path(), WalOptions { backend: Backend::IoUring, ..Default::default() }).unwrap_err();
            assert_eq!(e.code(), "BACKEND_UNAVAILABLE");
            let (wal, _) = Wal::open(d.path(), WalOptions::default()).unwrap();
            assert_eq!(wal.backend(), "portable");
            assert!(wal.backend_note().is_none());
        }
    }
}

#[test]
fn compaction_with_checkpoint() {
    let d = TempDir::new("compact");
    let o = || WalOptions { segment_size: 4096, backend: Backend::Portable, ..Default::default() };
    let (mut wal, _) = Wal::open(d.path(), o()).unwrap();
    append_n(&mut wal, 1, 1000);
    wal.flush().unwrap();
    let before = segments(d.path()).len();
    write_checkpoint(d.path(), 600, &[], &[(1, b"state at 600")]).unwrap();
    let rep = wal.compact_before(601).unwrap();
    assert!(!rep.removed.is_empty());
    let after = segments(d.path());
    assert_eq!(after.len(), before - rep.removed.len());
    append_n(&mut wal, 1001, 1010);
    wal.close().unwrap();
    // Every record > 600 is still there; the first remaining segment starts <= 601.
    let ck = latest_valid_checkpoint(d.path()).unwrap().checkpoint.unwrap();
    assert_eq!(ck.seq, 600);
    let (recs, r) = replay_all(d.path(), ck.seq + 1).unwrap();
    assert_eq!(recs.len(), 410);
    assert!(r.first_seq <= 601 && r.first_seq > 1);
    assert_eq!(recs[0], expected(601));
    // Replaying from before the compacted point is refused: seqs 1.. are in no checkpoint.
    assert_eq!(replay_all(d.path(), 1).unwrap_err().code(), "WAL_CORRUPT");
    let mut n = 0;
    let (_wal, rec) = Wal::open_with_replay(d.path(), o(), 601, |_| {
        n += 1;
        Ok::<(), WalError>(())
    })
    .unwrap();
    assert_eq!(n, 410);
    assert_eq!(rec.last_seq, 1010);
}

#[test]
fn torn_segment_creation_is_removed() {
    let d = TempDir::new("tornseg");
    let (mut wal, _) = Wal::open(d.path(), WalOptions { backend: Backend::Portable, ..Default::default() }).unwrap();
    append_n(&mut wal, 1, 5);
    wal.close().unwrap();
    // A crash right after creating the next segment file.
    std::fs::write(d.path().join(segment_file_name(6)), b"CTFSW").unwrap();
    let (mut wal, rec) = Wal::open(d.path(), WalOptions { backend: Backend::Portable, ..Default::default() }).unwrap();
    assert_eq!(rec.last_seq, 5);
    assert_eq!(rec.bytes_cut, 5);
    append_n(&mut wal, 6, 8);
    wal.close().unwrap();
    assert_eq!(replay_all(d.path(), 1).unwrap().0.len(), 8);
}

#[test]
fn durable_frontier_visible_from_other_threads() {
    for b in backends() {
        let d = TempDir::new("frontier");
        let (mut wal, _) = Wal::open(d.path(), opts(b)).unwrap();
        let h = wal.durable_handle();
        let t = std::thread::spawn(move || {
            let mut last = 0;
            while last < 2000 {
                let s = h.durable_seq();
                assert!(s >= last);
                assert!(s <= h.appended_seq());
                last = s;
                std::thread::yield_now();
            }
        });
        append_n(&mut wal, 1, 2000);
        wal.flush().unwrap();
        t.join().unwrap();
    }
}

/// The log's histograms agree exactly with its counters: one group-commit
/// observation per durable batch, records and bytes summing to what was
/// written, one sync timing per durable write, and a durable-ack sample.
#[test]
fn metrics_agree_with_counters() {
    for b in backends() {
        let d = TempDir::new("metrics");
        let (mut wal, _) = Wal::open(d.path(), opts(b)).unwrap();
        for round in 0..20u64 {
            append_n(&mut wal, round * 100 + 1, round * 100 + 100);
            wal.mark_ack();
            if round % 3 == 0 {
                wal.flush().unwrap();
            }
        }
        wal.flush().unwrap();
        let st = wal.stats();
        let m = wal.metrics();
        assert_eq!(m.queue_bytes, 0, "everything durable: nothing queued");
        assert!(m.queue_capacity > 0);
        if !ctfs_core::metrics::ENABLED {
            continue;
        }
        assert_eq!(m.group_records.count(), st.batches, "{b:?}");
        assert_eq!(m.group_records.sum(), 2000);
        assert_eq!(m.group_bytes.count(), st.batches);
        assert_eq!(m.group_bytes.sum(), st.bytes_written);
        // no segment roll here: every fsync is a batch write
        assert_eq!(m.sync_ns.count(), st.fsyncs);
        if wal.backend() == "portable" {
            assert_eq!(m.write_ns.count(), st.fsyncs);
        } else {
            assert_eq!(m.write_ns.count(), 0, "io_uring writes and syncs in one operation");
        }
        // one measurement per mark at most (a mark while one is in flight is ignored)
        assert!(m.ack_ns.count() >= 1 && m.ack_ns.count() <= 20, "{:?}", m.ack_ns);
        // a mark of a record that is already durable is taken at once
        std::thread::sleep(std::time::Duration::from_millis(100));
        let before = wal.metrics().ack_ns.count();
        wal.mark_ack();
        assert_eq!(wal.metrics().ack_ns.count(), before + 1);
        assert!(m.sync_ns.sum() > 0);
        wal.close().unwrap();
    }
}

#[test]
fn held_wakes_give_the_writer_one_call_s_records_together() {
    for b in backends() {
        let d = TempDir::new("hold");
        let (mut wal, _) = Wal::open(d.path(), opts(b)).unwrap();
        append_n(&mut wal, 1, 10);
        wal.flush().unwrap();
        let b0 = wal.stats().batches;
        // Appends under a hold do not wake the (parked) writer: the 100 records
        // are picked up together, at the release (or, rarely, at the writer's
        // own park timeout — after all of them were appended).
        wal.hold_wakes();
        append_n(&mut wal, 11, 110);
        std::thread::sleep(Duration::from_millis(20));
        wal.release_wakes();
        wal.release_wakes(); // idempotent
        assert_eq!(wal.flush().unwrap(), 110);
        assert_eq!(wal.stats().batches - b0, 1, "{b:?}: the held records went to the writer in one batch");
        // flush() wakes the writer itself: a hold never left open cannot stall it
        wal.hold_wakes();
        append_n(&mut wal, 111, 120);
        assert_eq!(wal.flush().unwrap(), 120);
        wal.release_wakes();
        // past an eighth of the ring the writer is woken even while held
        let o = WalOptions { buffer_capacity: 64 * 1024, max_record_bytes: 4096, ..opts(b) };
        drop(wal);
        let (mut wal, _) = Wal::open(d.path(), o).unwrap();
        wal.hold_wakes();
        let t0 = std::time::Instant::now();
        let big = vec![7u8; 1024];
        for i in 0..12u8 {
            wal.append(&id(200 + i as u64), &[], &big, 0).unwrap();
        }
        while wal.durable_seq() < 121 && t0.elapsed() < Duration::from_millis(80) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(wal.durable_seq() >= 121, "{b:?}: the writer was not woken past an eighth of the ring");
        wal.release_wakes();
        assert_eq!(wal.flush().unwrap(), 132);
        wal.close().unwrap();
        let (recs, _) = replay_all(d.path(), 1).unwrap();
        assert_eq!(recs.len(), 132);
    }
}

/// The writer writes zeros past its records (so that the syncs that follow
/// change no file size); a roll and a clean close cut them, and a reopen
/// after a crash reads them as the clean end and writes over them.
#[test]
fn zeros_written_ahead_are_cut_at_roll_and_close() {
    for b in backends() {
        let d = TempDir::new("zeros");
        let o = || WalOptions { segment_size: 64 << 10, ..opts(b) };
        let (mut wal, _) = Wal::open(d.path(), o()).unwrap();
        append_n(&mut wal, 1, 10);
        wal.flush().unwrap();
        let segs = segments(d.path());
        assert_eq!(segs.len(), 1);
        let live = std::fs::read(&segs[0]).unwrap();
        assert_eq!(live.len() as u64, 64 << 10, "zeroed up to the segment limit");
        let end = record_offsets(&live).last().map(|(o, l)| o + l).unwrap();
        assert!(live[end..].iter().all(|&x| x == 0));
        // Enough records for several segments: every closed one is exact.
        append_n(&mut wal, 11, 3000);
        wal.flush().unwrap();
        let segs = segments(d.path());
        assert!(segs.len() >= 3, "{segs:?}");
        for s in &segs[..segs.len() - 1] {
            // Cut right after the rolling batch is acknowledged (off its path).
            let t0 = std::time::Instant::now();
            loop {
                let bytes = std::fs::read(s).unwrap();
                let end = record_offsets(&bytes).last().map(|(o, l)| o + l).unwrap();
                if end == bytes.len() {
                    break;
                }
                assert!(t0.elapsed() < Duration::from_secs(10), "{s:?}: rolled, but not cut at its last record ({end} of {})", bytes.len());
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // A copy taken while the log is live is what a crash leaves (the
        // newest segment may still have the spare's name: every file).
        let crashed = TempDir::new("zeros-crash");
        for e in std::fs::read_dir(d.path()).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, crashed.path().join(p.file_name().unwrap())).unwrap();
        }
        wal.close().unwrap();
        let bytes = std::fs::read(segs.last().unwrap()).unwrap();
        let end = record_offsets(&bytes).last().map(|(o, l)| o + l).unwrap();
        assert_eq!(end, bytes.len(), "closed: cut at its last record");
        let (mut wal, rec) = Wal::open(crashed.path(), o()).unwrap();
        assert_eq!((rec.last_seq, rec.bytes_cut, rec.torn_tail_at.clone()), (3000, 0, None));
        append_n(&mut wal, 3001, 3100);
        wal.close().unwrap();
        let (recs, _) = replay_all(crashed.path(), 1).unwrap();
        assert_eq!(recs, (1..=3100).map(expected).collect::<Vec<_>>());
    }
}

/// A paced writer waits for its consumer's report after small batches, but
/// never for long: with a consumer that never reports, appends still become
/// durable and `flush` returns; with one that reports from its own thread,
/// every record is durable, in order; closing while it waits works.
#[test]
fn paced_writer_progresses_with_or_without_its_consumer() {
    for b in backends() {
        let d = TempDir::new("pace");
        let last = Arc::new(AtomicU64::new(0));
        let l2 = last.clone();
        let o = WalOptions { notifier: Some(Box::new(move |s| l2.store(s, Ordering::SeqCst))), ..opts(b) };
        let (mut wal, _) = Wal::open(d.path(), o).unwrap();
        wal.set_pacing(true);
        // Silent consumer: each small batch waits at most PACE_MAX.
        for i in 1..=40u64 {
            append_n(&mut wal, i, i);
            assert_eq!(wal.flush().unwrap(), i);
        }
        let handle = wal.durable_handle();
        while handle.durable_seq() < 40 {
            std::thread::yield_now();
        }
        // A consumer reporting every notification from its own thread.
        let stop = Arc::new(AtomicUsize::new(0));
        let (h2, l3, s2) = (wal.durable_handle(), last.clone(), stop.clone());
        let consumer = std::thread::spawn(move || {
            while s2.load(Ordering::SeqCst) == 0 {
                h2.consumed(l3.load(Ordering::SeqCst));
                std::thread::sleep(Duration::from_micros(20));
            }
        });
        let mut next = 41u64;
        for _ in 0..200 {
            append_n(&mut wal, next, next + 3);
            next += 4;
            while handle.durable_seq() < next - 1 {
                std::thread::yield_now();
            }
        }
        stop.store(1, Ordering::SeqCst);
        consumer.join().unwrap();
        // Appended, not flushed, the writer possibly waiting: close syncs it.
        append_n(&mut wal, next, next + 2);
        wal.close().unwrap();
        let (recs, _) = replay_all(d.path(), 1).unwrap();
        assert_eq!(recs, (1..=next + 2).map(expected).collect::<Vec<_>>());
    }
}

/// Waits until the helper has zeroed the spare to `size` bytes, and its last
/// chunk's sync (and the directory's) had time to finish.
fn wait_for_spare(spare: &std::path::Path, size: u64) {
    let t0 = std::time::Instant::now();
    while std::fs::metadata(spare).map(|m| m.len()).unwrap_or(0) < size {
        assert!(t0.elapsed() < Duration::from_secs(30), "no spare after 30 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(200));
}

/// Once the active segment is a quarter full, a helper zeroes the next one
/// (`wal-spare.tmp`, the full segment size); the roll makes it the next
/// segment (so it holds the segment size from the start, where a segment
/// created at the roll holds only its first zeros written ahead), the
/// rolled segment is cut at its last record, a close deletes an unused
/// spare, an open deletes one a crash left, and every record reads back.
#[test]
fn rolls_use_the_spare_zeroed_ahead() {
    const SIZE: u64 = 1 << 20;
    for b in backends() {
        let d = TempDir::new("spare");
        let o = || WalOptions { segment_size: SIZE, ..opts(b) };
        let spare = d.path().join("wal-spare.tmp");
        let (mut wal, _) = Wal::open(d.path(), o()).unwrap();
        let mut next = 1u64;
        // ~110 B per record: 3,000 records are past a quarter of the segment.
        append_n(&mut wal, next, next + 2999);
        next += 3000;
        wal.flush().unwrap();
        wait_for_spare(&spare, SIZE);
        // Groups of 10 records, each appended as one batch for the writer
        // (almost always: the trace says).
        wal.set_trace(true);
        let created = wal.stats().segments_created;
        let (mut before, mut group) = (0, 0);
        while wal.stats().segments_created == created {
            before = wal.stats().fsyncs;
            group = next;
            wal.hold_wakes();
            append_n(&mut wal, next, next + 9);
            wal.release_wakes();
            next += 10;
            wal.flush().unwrap();
        }
        // Durable once in the spare; then (after the acknowledgement) renamed,
        // the directory synced, the old segment's zeros cut.
        let first_cut = || {
            let first = std::fs::read(&segments(d.path())[0]).unwrap();
            record_offsets(&first).last().map(|(o, l)| o + l) == Some(first.len())
        };
        // (The trace records a batch after all of that.)
        let mut trace = Vec::new();
        let t0 = std::time::Instant::now();
        while !trace.iter().any(|t: &BatchTrace| t.first_seq >= group && t.rolls > 0) {
            assert!(t0.elapsed() < Duration::from_secs(10), "the rolling batch never finished");
            std::thread::sleep(Duration::from_millis(1));
            trace.extend(wal.take_trace());
        }
        assert!(!spare.exists() && first_cut());
        // The batch that did not fit started the new segment: one sync for
        // the header and its records, then one for the directory; none for
        // the old segment (the group's other batches, if the writer split
        // it, one sync each).
        let batches: Vec<_> = trace.iter().filter(|t| t.first_seq >= group).collect();
        let rolled: Vec<_> = batches.iter().filter(|t| t.rolls > 0).collect();
        assert_eq!(rolled.len(), 1, "{batches:?}");
        assert_eq!(wal.stats().fsyncs - before, batches.len() as u64 + 1, "syncs of the rolling group: {batches:?}");
        wal.set_trace(false);
        let segs = segments(d.path());
        assert_eq!(segs.len(), 2);
        assert!(!spare.exists(), "the spare became the second segment");
        let live = std::fs::read(&segs[1]).unwrap();
        assert_eq!(live.len() as u64, SIZE, "made from the spare: zeroed to the segment size");
        let end = record_offsets(&live).last().map(|(o, l)| o + l).unwrap();
        assert!(live[end..].iter().all(|&x| x == 0));
        let first = std::fs::read(&segs[0]).unwrap();
        assert_eq!(record_offsets(&first).last().map(|(o, l)| o + l), Some(first.len()), "rolled: cut at its last record");
        let new_first: u64 = segs[1].file_name().unwrap().to_str().unwrap()[4..24].parse().unwrap();
        assert_eq!(new_first, rolled[0].first_seq, "the batch that did not fit starts the new segment whole");
        assert_eq!(record_offsets(&live).len() as u64, next - new_first);
        // Past a quarter of the second segment a spare is made again; a close deletes it.
        append_n(&mut wal, next, next + 2999);
        next += 3000;
        wal.flush().unwrap();
        wal.close().unwrap();
        assert!(!spare.exists(), "a close deletes the spare");
        // A spare left by a crash (any content) is deleted by the next open.
        std::fs::write(&spare, b"left by a crash").unwrap();
        let (mut wal, rec) = Wal::open(d.path(), o()).unwrap();
        assert_eq!((rec.last_seq, rec.bytes_cut), (next - 1, 0));
        assert!(!spare.exists(), "an open deletes a stale spare");
        wal.close().unwrap();
        let (recs, _) = replay_all(d.path(), 1).unwrap();
        assert_eq!(recs, (1..next).map(expected).collect::<Vec<_>>());
    }
}

/// A segment made from the spare gets its header in the same write and sync
/// as its first records. When that write fails before reaching the disk,
/// nothing of it is left to read; when it fails after (written and synced,
/// but never reported durable), the spare holds a valid segment, which the
/// next open takes as the newest segment. Either way every record reported
/// durable is there, and the log is a prefix of what was appended.
#[test]
fn a_roll_onto_the_spare_that_fails_loses_nothing_reported_durable() {
    const SIZE: u64 = 1 << 20;
    for b in backends() {
        for after in [false, true] {
            let d = TempDir::new("spare-fails");
            let armed = Arc::new(AtomicUsize::new(0));
            // Offset 0 is only ever written by a roll onto the spare.
            let hook = eio_when_armed(&armed, after, |off| off == 0);
            let spare = d.path().join("wal-spare.tmp");
            let (mut wal, _) = Wal::open(d.path(), WalOptions { segment_size: SIZE, fault_hook: Some(hook), ..opts(b) }).unwrap();
            append_n(&mut wal, 1, 3000);
            wal.flush().unwrap();
            wait_for_spare(&spare, SIZE);
            armed.store(1, Ordering::SeqCst);
            let mut next = 3001u64;
            'fill: loop {
                assert!(next < 100_000, "the log never rolled");
                for _ in 0..10 {
                    let (i, dd, p, f) = rec(next);
                    match wal.append(&i, &dd, &p, f) {
                        Ok(seq) => assert_eq!(seq, next),
                        Err(e) => {
                            assert_eq!(e.code(), "WAL_FAILED", "{e}");
                            break 'fill;
                        }
                    }
                    next += 1;
                }
                if let Err(e) = wal.flush() {
                    assert_eq!(e.code(), "WAL_FAILED", "{e}");
                    break;
                }
            }
            let durable = wal.durable_seq();
            assert_eq!(segments(d.path()).len(), 1, "the failed roll named no segment");
            let _ = wal.close();
            drop(wal);
            assert!(spare.exists(), "a taken spare is never deleted by its log");
            let (mut wal, rec) = Wal::open(d.path(), WalOptions { segment_size: SIZE, ..opts(b) }).unwrap();
            assert!(!spare.exists(), "the spare is taken as a segment or deleted");
            assert_eq!(segments(d.path()).len(), if after { 2 } else { 1 }, "after = {after}");
            assert!(rec.last_seq >= durable, "every record reported durable is there ({} < {durable})", rec.last_seq);
            assert!(rec.last_seq < next);
            let last = rec.last_seq;
            append_n(&mut wal, last + 1, last + 10);
            wal.close().unwrap();
            let (recs, _) = replay_all(d.path(), 1).unwrap();
            assert_eq!(recs, (1..=last + 10).map(expected).collect::<Vec<_>>());
        }
    }
}

/// A crash between a roll's sync and the spare's rename leaves the newest
/// segment, records reported durable in it, under the spare's name: a
/// read-only replay reads it, and an open gives it its name. A spare whose
/// header is zeros was never the target of a completed sync: deleted, even
/// with records after it. One whose header is damaged (not zeros), with
/// records after it, is corruption.
#[test]
fn a_spare_left_by_a_crash_is_read_by_its_header() {
    const SIZE: u64 = 1 << 16;
    let d = TempDir::new("spare-left");
    let o = || WalOptions { segment_size: SIZE, ..opts(backends()[0]) };
    let (mut wal, _) = Wal::open(d.path(), o()).unwrap();
    append_n(&mut wal, 1, 2000);
    wal.close().unwrap();
    let segs = segments(d.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let newest = segs.last().unwrap().clone();
    let spare = d.path().join("wal-spare.tmp");
    let bytes = std::fs::read(&newest).unwrap();

    // Valid header: the newest segment.
    std::fs::rename(&newest, &spare).unwrap();
    let (recs, r) = replay_all(d.path(), 1).unwrap();
    assert_eq!((r.last_seq, recs.len()), (2000, 2000), "a read-only replay reads the spare's segment");
    let rep = inspect(d.path(), Some(&[])).unwrap();
    assert!(rep.is_healthy(), "{rep:?}");
    assert_eq!((rep.last_seq, rep.segments.last().map(|s| s.path.clone())), (Some(2000), Some(spare.clone())));
    let (mut wal, r) = Wal::open(d.path(), o()).unwrap();
    assert_eq!((r.last_seq, r.bytes_cut), (2000, 0));
    assert!(newest.exists() && !spare.exists(), "renamed to its segment's name");
    append_n(&mut wal, 2001, 2010);
    wal.close().unwrap();
    let (recs, _) = replay_all(d.path(), 1).unwrap();
    assert_eq!(recs, (1..=2010).map(expected).collect::<Vec<_>>());

    // Zero header, records after it: never durable (the roll's one sync
    // covers the header), deleted by the open.
    let newest = segments(d.path()).last().unwrap().clone();
    let first_of_newest: u64 = newest.file_name().unwrap().to_str().unwrap()[4..24].parse().unwrap();
    let mut zeroed = std::fs::read(&newest).unwrap();
    zeroed[..32].fill(0);
    std::fs::remove_file(&newest).unwrap();
    std::fs::write(&spare, &zeroed).unwrap();
    let (wal, r) = Wal::open(d.path(), o()).unwrap();
    assert_eq!(r.last_seq, first_of_newest - 1, "the spare's records were never durable");
    assert!(!spare.exists());
    drop(wal);

    // Damaged header (not zeros), records after it: WAL_CORRUPT, nothing changed.
    let mut damaged = bytes.clone();
    damaged[20] ^= 0x40;
    std::fs::write(&spare, &damaged).unwrap();
    let before = std::fs::read_dir(d.path()).unwrap().count();
    let rep = inspect(d.path(), Some(&[])).unwrap();
    assert!(!rep.is_healthy() && rep.corruption.iter().any(|(p, _, _)| *p == spare), "{rep:?}");
    let e = Wal::open(d.path(), o()).unwrap_err();
    assert_eq!(e.code(), "WAL_CORRUPT", "{e}");
    assert!(e.to_string().contains("wal-spare.tmp"), "{e}");
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), before);
    // With truncate_corrupt: moved aside, reported.
    let (wal, r) = Wal::open(d.path(), WalOptions { truncate_corrupt: true, ..o() }).unwrap();
    assert!(!spare.exists());
    assert_eq!(r.moved_aside, vec![d.path().join("wal-spare.tmp.0.corrupt")]);
    assert_eq!(r.bytes_cut, damaged.len() as u64);
    assert!(r.truncate_reason.as_deref().unwrap_or("").contains("spare"), "{r:?}");
    drop(wal);
}
