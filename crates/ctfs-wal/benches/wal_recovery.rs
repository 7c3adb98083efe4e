//! `recovery` suite (Rust side): replay of a 1M- and a 10M-record log
//! (real BLAKE3 ids, 0–1 deps, 16-byte payload, 64 MiB segments).
//!
//! * `Wal::replay` (read-only, validates every record) — records/s;
//! * `Wal::open_with_replay` from seq 1 (recovery + replay + writer start);
//! * controls on the same files: reading them into memory, and CRC32C over
//!   the same bytes (the floor of any validating replay);
//! * criterion micro: `parse_record` of one small record.
//!
//! Files are in the page cache (just written): this measures the CPU cost
//! of recovery, not the disk's read speed.
//!
//! `cargo bench -p ctfs-wal --bench wal_recovery`; `-- --test` for a smoke
//! run. Env: `CTFS_BENCH_DIR`, `CTFS_BENCH_JSON`.

mod common;

use common::*;
use criterion::Criterion;
use ctfs_wal::{Backend, RecordRef, Wal, WalError, WalOptions};
use std::hint::black_box;
use std::io::Read;
use std::time::{Duration, Instant};

fn build(dir: &std::path::Path, n: u64) -> Duration {
    let t = Instant::now();
    let opts = WalOptions { backend: Backend::Portable, buffer_capacity: 64 << 20, ..WalOptions::default() };
    let (mut wal, _) = Wal::open(dir, opts).expect("open");
    let payload = [0x33u8; 16];
    let mut prev = id(0);
    for i in 1..=n {
        let cur = id(i);
        let deps: &[[u8; 32]] = if i % 2 == 0 { std::slice::from_ref(&prev) } else { &[] };
        loop {
            match wal.append(&cur, deps, &payload, 0) {
                Ok(_) => break,
                Err(WalError::BufferFull { .. }) => std::thread::yield_now(),
                Err(e) => panic!("append: {e}"),
            }
        }
        prev = cur;
    }
    wal.close().expect("close");
    t.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let full = full_run();
    let dir = bench_dir("recovery");
    let machine = machine_line("wal_recovery", full, &dir);
    let mut json = Vec::new();
    let sizes: &[u64] = if full { &[1_000_000, 10_000_000] } else { &[10_000, 100_000] };
    let runs = if full { 3 } else { 1 };
    println!(
        "{:>10} {:>9} {:>14} {:>14} {:>14} {:>14} {:>10}",
        "records", "MiB", "replay rec/s", "open+replay/s", "read GB/s", "crc32c GB/s", "x crc"
    );
    for &n in sizes {
        let d = dir.join(format!("log-{n}"));
        let _ = std::fs::create_dir_all(&d);
        let build_t = build(&d, n);
        let files: Vec<_> = {
            let mut v: Vec<_> = std::fs::read_dir(&d).expect("dir").flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "log")).collect();
            v.sort();
            v
        };
        let bytes: u64 = files.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();

        let mut replay_rates = Vec::new();
        for _ in 0..runs {
            let mut acc = 0u64;
            let t = Instant::now();
            let r = Wal::replay(&d, &[], 1, |r: RecordRef<'_>| {
                acc = acc.wrapping_add(r.seq ^ r.id[0] as u64 ^ r.deps.len() as u64 ^ r.payload.len() as u64);
                Ok::<(), WalError>(())
            })
            .expect("replay");
            let el = t.elapsed();
            black_box(acc);
            assert_eq!(r.records_replayed, n);
            replay_rates.push(rate(n, el));
        }
        let mut open_rates = Vec::new();
        for _ in 0..runs {
            let mut acc = 0u64;
            let t = Instant::now();
            let (wal, r) = Wal::open_with_replay(&d, WalOptions { backend: Backend::Portable, ..WalOptions::default() }, 1, |r| {
                acc = acc.wrapping_add(r.seq ^ r.id[0] as u64);
                Ok::<(), WalError>(())
            })
            .expect("open");
            let el = t.elapsed();
            drop(wal);
            black_box(acc);
            assert_eq!(r.records_replayed, n);
            open_rates.push(rate(n, el));
        }
        // Controls: read the same files; CRC32C over the same bytes.
        let mut read_rates = Vec::new();
        let mut crc_rates = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..runs {
            let mut rt = Duration::ZERO;
            let mut ct = Duration::ZERO;
            for p in &files {
                buf.clear();
                let t = Instant::now();
                std::fs::File::open(p).and_then(|mut f| f.read_to_end(&mut buf)).expect("read");
                rt += t.elapsed();
                let t = Instant::now();
                black_box(crc32c::crc32c(&buf));
                ct += t.elapsed();
            }
            read_rates.push(bytes as f64 / rt.as_secs_f64() / 1e9);
            crc_rates.push(bytes as f64 / ct.as_secs_f64() / 1e9);
        }
        let (rr, or, rd, cr) = (median(replay_rates), median(open_rates), median(read_rates), median(crc_rates));
        // How far replay is from the CRC floor, in records/s equivalents.
        let crc_recs = cr * 1e9 / (bytes as f64 / n as f64);
        println!(
            "{:>10} {:>9.1} {:>14.0} {:>14.0} {:>14.2} {:>14.2} {:>10.2}",
            n,
            bytes as f64 / (1 << 20) as f64,
            rr,
            or,
            rd,
            cr,
            rr / crc_recs
        );
        println!("           (log written in {:.2} s through the WAL = {:.0} appends/s incl. fsyncs)", build_t.as_secs_f64(), rate(n, build_t));
        json.push(Json::obj(vec![
            ("records", Json::Num(n as f64)),
            ("bytes", Json::Num(bytes as f64)),
            ("replay_records_per_s", Json::Num(rr)),
            ("open_replay_records_per_s", Json::Num(or)),
            ("control_read_gb_per_s", Json::Num(rd)),
            ("control_crc32c_gb_per_s", Json::Num(cr)),
            ("ratio_replay_to_crc_floor", Json::Num(rr / crc_recs)),
            ("build_seconds", Json::Num(build_t.as_secs_f64())),
        ]));
        let _ = std::fs::remove_dir_all(&d);
    }
    println!("(x crc = replay rate / the rate at which CRC32C alone could cover the same bytes)");
    println!();

    // Criterion micro: parse + validate one small record.
    let rec = ctfs_wal::encode_record(7, &id(7), &[id(6)], &[0x33; 16], 0);
    let mut c = Criterion::default()
        .sample_size(if full { 50 } else { 10 })
        .warm_up_time(Duration::from_millis(if full { 500 } else { 50 }))
        .measurement_time(Duration::from_millis(if full { 2000 } else { 100 }))
        .without_plots()
        .configure_from_args();
    c.bench_function("parse_record (1 dep, 16 B payload, 104 B)", |b| {
        b.iter(|| ctfs_wal::parse_record(black_box(&rec), 0).map(|(r, n)| r.seq as usize + n))
    });
    c.final_summary();
    write_json("wal_recovery", &machine, json);
    let _ = std::fs::remove_dir_all(&dir);
}
