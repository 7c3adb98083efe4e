//! `exact_index`: `ExactIndex` against `hashbrown::HashSet<[u8; 32]>` (default
//! hasher) holding the same keys, at 1K, 100K, 1M and 10M ids.
//!
//! * `contains` hit and miss: probes in random order from a pre-generated,
//!   shuffled probe list (hits: every key once per pass for sizes up to 1M,
//!   uniform random keys at 10M; misses: fresh ids);
//! * `insert`: building a fresh structure from empty up to the size (all the
//!   growth steps included), reported per id inserted.
//!
//! Also reported: bytes per fact (`memory_bytes() / len()`) and load of our
//! index, `allocation_size() / len()` of hashbrown's, and the ratio
//! ours / hashbrown per operation. Keys are BLAKE3 of a counter.
//!
//! The suite builds each size's structures once per group (not per sample)
//! and keeps `cargo bench --bench exact_index` to a few minutes on 2 cores.
//! `CTFS_BENCH_JSON=<dir>` writes `<dir>/exact_index.json`.
//!
//! Run: `cargo bench -p ctfs-core --bench exact_index`.

mod common;

use common::*;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use ctfs_core::{ExactIndex, FactId};
use std::hint::black_box;
use std::time::{Duration, Instant};

type HbSet = hashbrown::HashSet<[u8; 32]>;

/// Most distinct probes per list (32 MiB of ids).
const MAX_PROBES: usize = 1 << 20;
/// Fewest probes per list, so that tiny sizes still see a random order.
const MIN_PROBES: usize = 4096;

struct Row {
    size: usize,
    ours_bytes_per_fact: f64,
    ours_load: f64,
    ours_max_probe: u64,
    ours_segment_rebuilds: u64,
    hb_bytes_per_key: f64,
    ours_hit: Summary,
    hb_hit: Summary,
    ours_miss: Summary,
    hb_miss: Summary,
    ours_insert: Summary,
    hb_insert: Summary,
}

fn contains_loop(
    contains: impl Fn(&FactId) -> bool,
    probes: &[FactId],
    pos: &mut usize,
    iters: u64,
    expect_hit: bool,
) -> Duration {
    let mut found = 0u64;
    let mut p = *pos;
    let t = Instant::now();
    for _ in 0..iters {
        found += contains(&probes[p]) as u64;
        p += 1;
        if p == probes.len() {
            p = 0;
        }
    }
    let e = t.elapsed();
    *pos = p;
    let found = black_box(found);
    if expect_hit {
        assert_eq!(found, iters, "a present key was not found");
    } else {
        assert_eq!(found, 0, "an absent key was found");
    }
    e
}

fn build_ours(keys: &[FactId]) -> ExactIndex {
    let mut ix = ExactIndex::new();
    for k in keys {
        ix.insert(k).expect("index full");
    }
    ix
}

fn build_hb(keys: &[FactId]) -> HbSet {
    let mut s = HbSet::new();
    for k in keys {
        s.insert(k.0);
    }
    s
}

/// `iters` complete builds from empty; only the builds are timed (drops are not).
fn insert_builds<T>(keys: &[FactId], iters: u64, build: impl Fn(&[FactId]) -> T) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        let s = build(black_box(keys));
        total += t.elapsed();
        drop(black_box(s));
    }
    total
}

fn bench_size(c: &mut Criterion, all_keys: &[FactId], miss_pool: &[FactId], n: usize, full: bool) -> Row {
    let keys = &all_keys[..n];
    let label = human(n as u64);
    let mut rng = XorShift::new(0xE1 ^ n as u64);
    let probes = n.clamp(MIN_PROBES, MAX_PROBES);

    // Hit probes: shuffled passes over all keys, or uniform random keys at 10M.
    let hit_probes: Vec<FactId> = if n <= MAX_PROBES {
        let mut v = Vec::with_capacity(probes);
        while v.len() < probes {
            let mut pass = keys.to_vec();
            shuffle(&mut pass, &mut rng);
            let take = (probes - v.len()).min(pass.len());
            v.extend_from_slice(&pass[..take]);
        }
        v
    } else {
        (0..probes).map(|_| keys[rng.below(n as u64) as usize]).collect()
    };
    let mut miss_probes = miss_pool[..probes].to_vec();
    shuffle(&mut miss_probes, &mut rng);

    // Build once per group; the first build's time is reported too.
    let (ours, t_ours) = time(|| build_ours(keys));
    let (hb, t_hb) = time(|| build_hb(keys));
    assert_eq!(ours.len(), n);
    assert_eq!(hb.len(), n);
    let row_mem = (
        ours.memory_bytes() as f64 / ours.len() as f64,
        ours.load(),
        ours.max_probe(),
        ours.segment_rebuilds(),
        hb.allocation_size() as f64 / hb.len() as f64,
    );
    println!(
        "[{label}] built ExactIndex in {:.3} s, hashbrown in {:.3} s; ours {:.1} B/fact at load {:.3} (max probe {}, segment rebuilds {}), hashbrown {:.1} B/key",
        t_ours.as_secs_f64(),
        t_hb.as_secs_f64(),
        row_mem.0,
        row_mem.1,
        row_mem.2,
        row_mem.3,
        row_mem.4
    );

    let runs = if full { 5 } else { 2 };
    let ops: u64 = if full { 1_000_000 } else { 10_000 };
    let mut pos = 0usize;

    let mut g = c.benchmark_group("exact_index/contains");
    g.throughput(Throughput::Elements(1));
    let ours_hit = measure(runs, ops, |i| contains_loop(|k| ours.contains(k), &hit_probes, &mut pos, i, true));
    g.bench_function(BenchmarkId::new("ours_hit", &label), |b| {
        b.iter_custom(|i| contains_loop(|k| ours.contains(k), &hit_probes, &mut pos, i, true))
    });
    let hb_hit = measure(runs, ops, |i| contains_loop(|k| hb.contains(&k.0), &hit_probes, &mut pos, i, true));
    g.bench_function(BenchmarkId::new("hashbrown_hit", &label), |b| {
        b.iter_custom(|i| contains_loop(|k| hb.contains(&k.0), &hit_probes, &mut pos, i, true))
    });
    let ours_miss = measure(runs, ops, |i| contains_loop(|k| ours.contains(k), &miss_probes, &mut pos, i, false));
    g.bench_function(BenchmarkId::new("ours_miss", &label), |b| {
        b.iter_custom(|i| contains_loop(|k| ours.contains(k), &miss_probes, &mut pos, i, false))
    });
    let hb_miss = measure(runs, ops, |i| contains_loop(|k| hb.contains(&k.0), &miss_probes, &mut pos, i, false));
    g.bench_function(BenchmarkId::new("hashbrown_miss", &label), |b| {
        b.iter_custom(|i| contains_loop(|k| hb.contains(&k.0), &miss_probes, &mut pos, i, false))
    });
    g.finish();
    drop((ours, hb, hit_probes, miss_probes));

    // Insert: each iteration builds a fresh structure of all n keys.
    // Our own loop: at least ~1M (full) inserts per run, at least one build.
    let builds_per_run = ((ops as usize).div_ceil(n)).max(1) as u64;
    let per_insert = |d: Duration| (d, builds_per_run * n as u64);
    let ours_insert = Summary::from_runs(
        &(0..runs).map(|_| per_insert(insert_builds(keys, builds_per_run, build_ours))).collect::<Vec<_>>(),
    );
    let hb_insert = Summary::from_runs(
        &(0..runs).map(|_| per_insert(insert_builds(keys, builds_per_run, build_hb))).collect::<Vec<_>>(),
    );
    let mut g = c.benchmark_group("exact_index/insert");
    g.throughput(Throughput::Elements(n as u64));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function(BenchmarkId::new("ours_build", &label), |b| b.iter_custom(|i| insert_builds(keys, i, build_ours)));
    g.bench_function(BenchmarkId::new("hashbrown_build", &label), |b| {
        b.iter_custom(|i| insert_builds(keys, i, build_hb))
    });
    g.finish();

    Row {
        size: n,
        ours_bytes_per_fact: row_mem.0,
        ours_load: row_mem.1,
        ours_max_probe: row_mem.2,
        ours_segment_rebuilds: row_mem.3,
        hb_bytes_per_key: row_mem.4,
        ours_hit,
        hb_hit,
        ours_miss,
        hb_miss,
        ours_insert,
        hb_insert,
    }
}

fn main() {
    let full = full_run();
    let machine = machine();
    machine.print("exact_index", full);
    let sizes: Vec<usize> = if full { vec![1_000, 100_000, 1_000_000, 10_000_000] } else { vec![1_000, 10_000] };
    let mut c = criterion(10, 1.0, 3.0);

    let largest = *sizes.iter().max().unwrap();
    let (all_keys, t_keys) = time(|| ids(0, largest));
    // Fresh ids, never inserted (counters far above every key).
    let (miss_pool, t_miss) = time(|| ids(1 << 40, largest.clamp(MIN_PROBES, MAX_PROBES)));
    println!(
        "generated {} keys in {:.2} s and {} miss probes in {:.2} s\n",
        all_keys.len(),
        t_keys.as_secs_f64(),
        miss_pool.len(),
        t_miss.as_secs_f64()
    );

    let rows: Vec<Row> = sizes.iter().map(|&n| bench_size(&mut c, &all_keys, &miss_pool, n, full)).collect();
    c.final_summary();

    println!();
    println!("=== exact_index summary (own timing loop, ns/op p50; ratio = ours / hashbrown) ===");
    println!(
        "{:>5} | {:>7} {:>6} {:>8} | {:>7} {:>7} {:>6} | {:>7} {:>7} {:>6} | {:>7} {:>7} {:>6}",
        "size",
        "B/fact",
        "load",
        "hb B/key",
        "hit",
        "hb hit",
        "ratio",
        "miss",
        "hb miss",
        "ratio",
        "insert",
        "hb ins",
        "ratio"
    );
    for r in &rows {
        println!(
            "{:>5} | {:>7.1} {:>6.3} {:>8.1} | {:>7.1} {:>7.1} {:>6.2} | {:>7.1} {:>7.1} {:>6.2} | {:>7.1} {:>7.1} {:>6.2}",
            human(r.size as u64),
            r.ours_bytes_per_fact,
            r.ours_load,
            r.hb_bytes_per_key,
            r.ours_hit.p50,
            r.hb_hit.p50,
            r.ours_hit.p50 / r.hb_hit.p50,
            r.ours_miss.p50,
            r.hb_miss.p50,
            r.ours_miss.p50 / r.hb_miss.p50,
            r.ours_insert.p50,
            r.hb_insert.p50,
            r.ours_insert.p50 / r.hb_insert.p50,
        );
    }
    println!(
        "(insert = building from empty to `size`, per id; B/fact = memory_bytes()/len(): 32-byte id in the arena + table slots)"
    );

    let json = Json::obj(vec![
        ("suite", Json::Str("exact_index".into())),
        ("full_run", Json::Bool(full)),
        ("machine", machine.json()),
        (
            "sizes",
            Json::Arr(
                rows.iter()
                    .map(|r| {
                        Json::obj(vec![
                            ("size", Json::Num(r.size as f64)),
                            ("ours_bytes_per_fact", Json::Num(r.ours_bytes_per_fact)),
                            ("ours_load", Json::Num(r.ours_load)),
                            ("ours_max_probe", Json::Num(r.ours_max_probe as f64)),
                            ("ours_segment_rebuilds", Json::Num(r.ours_segment_rebuilds as f64)),
                            ("hashbrown_bytes_per_key", Json::Num(r.hb_bytes_per_key)),
                            ("contains_hit_ours", r.ours_hit.json()),
                            ("contains_hit_hashbrown", r.hb_hit.json()),
                            ("contains_hit_ratio", Json::Num(r.ours_hit.p50 / r.hb_hit.p50)),
                            ("contains_miss_ours", r.ours_miss.json()),
                            ("contains_miss_hashbrown", r.hb_miss.json()),
                            ("contains_miss_ratio", Json::Num(r.ours_miss.p50 / r.hb_miss.p50)),
                            ("insert_ours", r.ours_insert.json()),
                            ("insert_hashbrown", r.hb_insert.json()),
                            ("insert_ratio", Json::Num(r.ours_insert.p50 / r.hb_insert.p50)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ]);
    write_json("exact_index", &json);
}
