//! `durable` suite (Rust side): WAL throughput and ack latency with many
//! records in flight, io_uring vs portable, against a raw
//! append + fdatasync control on the same disk.
//!
//! * control: append 4 KiB + fdatasync in a loop (fsyncs/s, p50/p99/max).
//! * WAL: one producer appends small facts (real BLAKE3 ids, 0–1 deps,
//!   16-byte payload) keeping at most `window` facts not yet durable
//!   (1, 64, 4096, unbounded); ack latency = time from `append` to the
//!   notifier reporting a durable seq covering it. Segments roll at 16 MiB
//!   and the 16 MiB ring wraps during the run (steady state).
//!
//! `cargo bench -p ctfs-wal --bench wal_durable` (full), or with `-- --test`
//! for a smoke run. Env: `CTFS_BENCH_DIR` (disk under test),
//! `CTFS_BENCH_JSON` (dir for JSON output), `CTFS_BENCH_SECS` (seconds per
//! case, default 3).

mod common;

use common::*;
use ctfs_wal::{Backend, UringMode, Wal, WalError, WalOptions};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn control(dir: &std::path::Path, secs: f64) -> (f64, u64, u64, u64, u64) {
    let p = dir.join("control.dat");
    let f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&p).expect("control file");
    let block = [0xA5u8; 4096];
    let mut lat = Vec::new();
    let start = Instant::now();
    let mut off = 0u64;
    // Steady state: roll over to a fresh offset range, never stop early.
    while start.elapsed().as_secs_f64() < secs || lat.len() < 20 {
        let t = Instant::now();
        f.write_all_at(&block, off).expect("pwrite");
        f.sync_data().expect("fdatasync");
        lat.push(t.elapsed().as_nanos() as u64);
        off += 4096;
    }
    let total = start.elapsed();
    let n = lat.len() as u64;
    lat.sort_unstable();
    let _ = std::fs::remove_file(&p);
    (rate(n, total), pct(&lat, 50.0), pct(&lat, 99.0), *lat.last().unwrap_or(&0), n)
}

struct Case {
    backend: &'static str,

    facts: u64,
    secs: f64,
    facts_per_s: f64,
    fsyncs: u64,
    batches: u64,
    p50: u64,
    p99: u64,
    max: u64,
    full_spins: u64,
}

fn run_case(dir: &std::path::Path, backend: Backend, mode: UringMode, window: u64, secs: f64, ids: &[[u8; 32]]) -> Case {
    let notes: Arc<Mutex<Vec<(u64, u64)>>> = Arc::new(Mutex::new(Vec::with_capacity(1 << 20)));
    let n2 = notes.clone();
    let t0 = Instant::now();
    let opts = WalOptions {
        backend,
        uring_mode: mode,
        segment_size: 16 << 20,
        buffer_capacity: 16 << 20,
        notifier: Some(Box::new(move |d| {
            let t = t0.elapsed().as_nanos() as u64;
            n2.lock().unwrap_or_else(|e| e.into_inner()).push((d, t));
        })),
        ..WalOptions::default()
    };
    let (mut wal, _) = Wal::open(dir, opts).expect("open wal");
    let name = wal.backend();
    let h = wal.durable_handle();
    let mut append_t: Vec<u64> = Vec::with_capacity(1 << 22);
    let payload = [0x5Au8; 16];
    let mut full_spins = 0u64;
    let mut errors = 0u64;
    let start_ns = t0.elapsed().as_nanos() as u64;
    let deadline = Duration::from_secs_f64(secs);
    let mut i = 0usize;
    loop {
        if (i & 255) == 0 && t0.elapsed() >= deadline {
            break;
        }
        let appended = wal.appended_seq();
        if window != u64::MAX && appended - h.durable_seq() >= window {
            std::hint::spin_loop();
            continue;
        }
        let id = &ids[i % ids.len()];
        let dep = [ids[(i + ids.len() - 1) % ids.len()]];
        let deps: &[[u8; 32]] = if i.is_multiple_of(2) { &[] } else { &dep };
        let t = t0.elapsed().as_nanos() as u64;
        match wal.append(id, deps, &payload, 0) {
            Ok(_) => {
                append_t.push(t);
                i += 1;
            }
            Err(WalError::BufferFull { .. }) => {
                full_spins += 1;
                std::thread::yield_now();
            }
            Err(e) => {
                errors += 1;
                eprintln!("append error: {e}");
                break;
            }
        }
    }
    wal.flush().expect("flush");
    let st = wal.stats();
    wal.close().expect("close");
    assert_eq!(errors, 0, "benchmark must measure the success path");
    let notes = notes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut lat = Vec::with_capacity(append_t.len());
    let mut prev = 0u64;
    let mut end_ns = start_ns;
    for (d, t) in &notes {
        for seq in prev + 1..=*d {
            if let Some(a) = append_t.get((seq - 1) as usize) {
                lat.push(t.saturating_sub(*a));
            }
        }
        prev = prev.max(*d);
        end_ns = *t;
    }
    lat.sort_unstable();
    let n = append_t.len() as u64;
    let dur = Duration::from_nanos(end_ns.saturating_sub(start_ns));
    Case {
        backend: match (name, mode) {
            ("io_uring", UringMode::LinkedFsync) => "io_uring linked write+fsync",
            ("io_uring", UringMode::WriteDsync) => "io_uring write RWF_DSYNC",
            _ => "portable pwrite+fdatasync",
        },

        facts: n,
        secs: dur.as_secs_f64(),
        facts_per_s: rate(n, dur),
        fsyncs: st.fsyncs,
        batches: st.batches,
        p50: pct(&lat, 50.0),
        p99: pct(&lat, 99.0),
        max: *lat.last().unwrap_or(&0),
        full_spins,
    }
}

fn main() {
    let full = full_run();
    let secs: f64 = std::env::var("CTFS_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(if full { 3.0 } else { 0.2 });
    let dir = bench_dir("durable");
    let machine = machine_line("wal_durable", full, &dir);
    let mut json = Vec::new();

    let (fps, p50, p99, max, n) = control(&dir, secs);
    println!("control: raw append 4 KiB + fdatasync: {fps:.0} fsyncs/s  p50 {}  p99 {}  max {}  ({n} fsyncs)", us(p50), us(p99), us(max));
    println!();
    json.push(Json::obj(vec![
        ("case", Json::Str("control_append4k_fdatasync".into())),
        ("fsyncs_per_s", Json::Num(fps)),
        ("p50_ns", Json::Num(p50 as f64)),
        ("p99_ns", Json::Num(p99 as f64)),
        ("max_ns", Json::Num(max as f64)),
    ]));

    let ids: Vec<[u8; 32]> = (0..(1u64 << 20)).map(id).collect();
    let mut backends = vec![(Backend::Portable, UringMode::default())];
    if ctfs_wal::io_uring_available().is_ok() {
        backends.push((Backend::IoUring, UringMode::LinkedFsync));
        backends.push((Backend::IoUring, UringMode::WriteDsync));
    } else {
        println!("NOTE: io_uring unavailable, io_uring cases skipped");
    }
    println!(
        "{:<30} {:>9} {:>10} {:>12} {:>9} {:>11} {:>11} {:>11} {:>11} {:>9}",
        "backend", "window", "facts", "facts/s", "x ctrl", "facts/fsync", "ack p50", "ack p99", "ack max", "full"
    );
    for window in [1u64, 64, 4096, u64::MAX] {
        for &(b, m) in &backends {
            let d = dir.join("wal");
            let _ = std::fs::remove_dir_all(&d);
            let c = run_case(&d, b, m, window, secs, &ids);
            let _ = std::fs::remove_dir_all(&d);
            let w = if window == u64::MAX { "unbounded".to_string() } else { window.to_string() };
            println!(
                "{:<30} {:>9} {:>10} {:>12.0} {:>9.1} {:>11.1} {:>11} {:>11} {:>11} {:>9}",
                c.backend,
                w,
                c.facts,
                c.facts_per_s,
                c.facts_per_s / fps,
                c.facts as f64 / c.fsyncs.max(1) as f64,
                us(c.p50),
                us(c.p99),
                us(c.max),
                c.full_spins
            );
            json.push(Json::obj(vec![
                ("case", Json::Str("wal".into())),
                ("backend", Json::Str(c.backend.into())),
                ("window", Json::Str(w)),
                ("facts", Json::Num(c.facts as f64)),
                ("seconds", Json::Num(c.secs)),
                ("facts_per_s", Json::Num(c.facts_per_s)),
                ("ratio_to_control_fsyncs_per_s", Json::Num(c.facts_per_s / fps)),
                ("fsyncs", Json::Num(c.fsyncs as f64)),
                ("batches", Json::Num(c.batches as f64)),
                ("facts_per_fsync", Json::Num(c.facts as f64 / c.fsyncs.max(1) as f64)),
                ("ack_p50_ns", Json::Num(c.p50 as f64)),
                ("ack_p99_ns", Json::Num(c.p99 as f64)),
                ("ack_max_ns", Json::Num(c.max as f64)),
                ("buffer_full_retries", Json::Num(c.full_spins as f64)),
                ("errors", Json::Num(0.0)),
            ]));
        }
    }
    println!("(x ctrl = facts/s divided by the control's fsyncs/s; full = BUFFER_FULL retries of the producer, not errors)");
    write_json("wal_durable", &machine, json);
    let _ = std::fs::remove_dir_all(&dir);
}
