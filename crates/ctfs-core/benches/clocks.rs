//! `clocks`: the 512-bit Bloom clock.
//!
//! Timed (criterion, plus our own loop for the summary): `observe`,
//! `might_contain` hit and miss (clock holding 87 ids, saturation ~0.4, the
//! escalation point), `dominates`, `merge`, `popcount`.
//!
//! Not timed: the measured false-positive rate at n = 41, 87, 200, 500, 1000
//! distinct ids against the textbook formula `(1 - e^(-kn/m))^k` (k = 3,
//! m = 512), with 1,000,000 fresh probe ids per n, over 20 different id sets
//! (seeds). Printed, and written to `<CTFS_BENCH_JSON>/clocks.json`.
//!
//! Run: `cargo bench -p ctfs-core --bench clocks`.

mod common;

use common::*;
use criterion::{Criterion, Throughput};
use ctfs_core::{BloomClock, FactId};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Ids in the timed loops: a small pool (fits L1/L2) walked cyclically, so the
/// figures are the clock's cost, not memory traffic.
const POOL: usize = 4096;
const MASK: usize = POOL - 1;
/// Ids observed in the clock probed by `might_contain`.
const PROBE_N: u64 = 87;
const FP_NS: [u64; 5] = [41, 87, 200, 500, 1000];

/// Disjoint counter spaces: observed sets use `(set + 1) << 40 | n << 20 | i`,
/// probes `1 << 62 | n << 24 | t`, pools `1 << 61 | ...`.
fn observed_id(set: u64, n: u64, i: u64) -> FactId {
    id(((set + 1) << 40) | (n << 20) | i)
}

fn probe_id(n: u64, t: u64) -> FactId {
    id((1u64 << 62) | (n << 24) | t)
}

fn pool_id(tag: u64, i: u64) -> FactId {
    id((1u64 << 61) | (tag << 32) | i)
}

struct Timed {
    name: &'static str,
    summary: Summary,
    note: String,
}

fn timed_benches(c: &mut Criterion, full: bool) -> Vec<Timed> {
    let runs = if full { 9 } else { 3 };
    let ops: u64 = if full { 5_000_000 } else { 10_000 };
    let mut out = Vec::new();
    let mut g = c.benchmark_group("clocks");
    g.throughput(Throughput::Elements(1));

    // observe: a clock that keeps absorbing ids (saturates after a few
    // hundred; the cost does not depend on saturation).
    let pool: Vec<FactId> = (0..POOL as u64).map(|i| pool_id(1, i)).collect();
    let mut clock = BloomClock::new();
    let mut observe = |iters: u64| {
        let mut k = 0usize;
        let t = Instant::now();
        for _ in 0..iters {
            clock.observe(black_box(&pool[k]));
            k = (k + 1) & MASK;
        }
        let e = t.elapsed();
        black_box(&clock);
        e
    };
    out.push(Timed { name: "observe", summary: measure(runs, ops, &mut observe), note: String::new() });
    g.bench_function("observe", |b| b.iter_custom(&mut observe));

    // might_contain on a clock of PROBE_N ids.
    let members: Vec<FactId> = (0..PROBE_N).map(|i| pool_id(2, i)).collect();
    let mut clock = BloomClock::new();
    members.iter().for_each(|m| clock.observe(m));
    let mut rng = XorShift::new(11);
    let hit_probes: Vec<FactId> = (0..POOL).map(|_| members[rng.below(PROBE_N) as usize]).collect();
    let miss_probes: Vec<FactId> = (0..POOL as u64).map(|i| pool_id(3, i)).collect();
    let probe = |probes: &[FactId], iters: u64| -> (Duration, u64) {
        let c = black_box(&clock);
        let mut pos = 0u64;
        let mut k = 0usize;
        let t = Instant::now();
        for _ in 0..iters {
            pos += c.might_contain(black_box(&probes[k])) as u64;
            k = (k + 1) & MASK;
        }
        (t.elapsed(), black_box(pos))
    };
    let hit = |iters: u64| {
        let (e, pos) = probe(&hit_probes, iters);
        assert_eq!(pos, iters, "false negative in might_contain");
        e
    };
    out.push(Timed {
        name: "might_contain_hit",
        summary: measure(runs, ops, hit),
        note: format!("clock of {PROBE_N} ids, saturation {:.3}", clock.saturation()),
    });
    g.bench_function(format!("might_contain_hit_n{PROBE_N}"), |b| b.iter_custom(hit));
    let (_, positives) = probe(&miss_probes, POOL as u64);
    let miss = |iters: u64| probe(&miss_probes, iters).0;
    out.push(Timed {
        name: "might_contain_miss",
        summary: measure(runs, ops, miss),
        note: format!(
            "fresh ids; {:.1}% of this probe pool are false positives (answer 'maybe')",
            100.0 * positives as f64 / POOL as f64
        ),
    });
    g.bench_function(format!("might_contain_miss_n{PROBE_N}"), |b| b.iter_custom(miss));

    // 64 clocks of 1..=256 ids for dominates / merge / popcount.
    let mut rng = XorShift::new(12);
    let clocks: Vec<BloomClock> = (0..64u64)
        .map(|j| {
            let mut c = BloomClock::new();
            for i in 0..1 + rng.below(256) {
                c.observe(&pool_id(4 + j, i));
            }
            c
        })
        .collect();
    let dominates = |iters: u64| -> (Duration, u64) {
        let cs = black_box(&clocks[..]);
        let mut yes = 0u64;
        let t = Instant::now();
        for k in 0..iters as usize {
            // pairs (k, 37k + 5) mod 64 cover ordered pairs of distinct clocks
            yes += cs[k & 63].dominates(&cs[(k * 37 + 5) & 63]) as u64;
        }
        (t.elapsed(), black_box(yes))
    };
    let (_, yes) = dominates(64 * 64);
    out.push(Timed {
        name: "dominates",
        summary: measure(runs, ops, |n| dominates(n).0),
        note: format!("64 clocks of 1..256 ids; {yes} of 4096 probes dominate"),
    });
    g.bench_function("dominates", |b| b.iter_custom(|n| dominates(n).0));

    let mut merge = |iters: u64| {
        let cs = black_box(&clocks[..]);
        let mut acc = BloomClock::new();
        let t = Instant::now();
        for k in 0..iters as usize {
            acc.merge(&cs[k & 63]);
            black_box(&mut acc);
        }
        t.elapsed()
    };
    out.push(Timed { name: "merge", summary: measure(runs, ops, &mut merge), note: String::new() });
    g.bench_function("merge", |b| b.iter_custom(&mut merge));

    let popcount = |iters: u64| {
        let cs = black_box(&clocks[..]);
        let mut sum = 0u64;
        let t = Instant::now();
        for k in 0..iters as usize {
            sum += black_box(&cs[k & 63]).popcount() as u64;
        }
        let e = t.elapsed();
        black_box(sum);
        e
    };
    out.push(Timed { name: "popcount", summary: measure(runs, ops, popcount), note: String::new() });
    g.bench_function("popcount", |b| b.iter_custom(popcount));
    g.finish();
    out
}

struct FpRow {
    n: u64,
    formula: f64,
    measured_mean: f64,
    measured_sd: f64,
    measured_min: f64,
    measured_max: f64,
    /// Mean of saturation^3 over the sets: the prediction given the bits set.
    conditional: f64,
    mean_popcount: f64,
    sets: usize,
    probes: u64,
}

fn false_positives(full: bool) -> Vec<FpRow> {
    let sets: u64 = if full { 20 } else { 2 };
    let probes: u64 = if full { 1_000_000 } else { 10_000 };
    FP_NS
        .iter()
        .map(|&n| {
            // Fresh probe ids for this n, never observed by any set.
            let probe_ids: Vec<FactId> = (0..probes).map(|t| probe_id(n, t)).collect();
            let mut rates = Vec::new();
            let mut cond = 0.0;
            let mut pop = 0.0;
            for set in 0..sets {
                let mut c = BloomClock::new();
                for i in 0..n {
                    c.observe(&observed_id(set, n, i));
                }
                let fp = probe_ids.iter().filter(|p| c.might_contain(p)).count();
                rates.push(fp as f64 / probes as f64);
                cond += c.false_positive_rate();
                pop += c.popcount() as f64;
            }
            let mean = rates.iter().sum::<f64>() / rates.len() as f64;
            let var = rates.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (rates.len().max(2) - 1) as f64;
            FpRow {
                n,
                formula: BloomClock::expected_false_positive_rate(n),
                measured_mean: mean,
                measured_sd: var.sqrt(),
                measured_min: rates.iter().cloned().fold(f64::INFINITY, f64::min),
                measured_max: rates.iter().cloned().fold(0.0, f64::max),
                conditional: cond / sets as f64,
                mean_popcount: pop / sets as f64,
                sets: sets as usize,
                probes,
            }
        })
        .collect()
}

fn main() {
    let full = full_run();
    let machine = machine();
    machine.print("clocks", full);
    let mut c = criterion(30, 1.0, 2.0);

    let timed = timed_benches(&mut c, full);
    c.final_summary();

    let (fp, fp_time) = time(|| false_positives(full));

    println!();
    println!("=== clocks summary (own timing loop, ns/op) ===");
    println!("{:<20} {:>8} {:>8} {:>8}   note", "op", "p50", "min", "max");
    for t in &timed {
        println!("{:<20} {:>8.2} {:>8.2} {:>8.2}   {}", t.name, t.summary.p50, t.summary.min, t.summary.max, t.note);
    }
    println!();
    println!(
        "false-positive rate of fresh ids (k = {}, m = {}; {} id sets x {} fresh probes per n; {:.1} s)",
        BloomClock::HASHES,
        BloomClock::BITS,
        fp[0].sets,
        fp[0].probes,
        fp_time.as_secs_f64()
    );
    println!(
        "{:>5} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>12} {:>9}",
        "n", "formula", "measured", "sd", "min", "max", "meas/form", "E[sat^3]", "popcount"
    );
    for r in &fp {
        println!(
            "{:>5} {:>10.5} {:>10.5} {:>9.5} {:>10.5} {:>10.5} {:>9.3} {:>12.5} {:>9.1}",
            r.n,
            r.formula,
            r.measured_mean,
            r.measured_sd,
            r.measured_min,
            r.measured_max,
            r.measured_mean / r.formula,
            r.conditional,
            r.mean_popcount
        );
    }
    println!(
        "(formula = (1-e^(-kn/m))^k; E[sat^3] = mean over the sets of (popcount/512)^3, the rate predicted by the bits actually set)"
    );

    let json = Json::obj(vec![
        ("suite", Json::Str("clocks".into())),
        ("full_run", Json::Bool(full)),
        ("machine", machine.json()),
        (
            "ops",
            Json::Obj(
                timed
                    .iter()
                    .map(|t| {
                        let mut o = match t.summary.json() {
                            Json::Obj(v) => v,
                            _ => unreachable!(),
                        };
                        o.push(("note".into(), Json::Str(t.note.clone())));
                        (t.name.to_string(), Json::Obj(o))
                    })
                    .collect(),
            ),
        ),
        (
            "false_positive_rate",
            Json::Arr(
                fp.iter()
                    .map(|r| {
                        Json::obj(vec![
                            ("n", Json::Num(r.n as f64)),
                            ("formula", Json::Num(r.formula)),
                            ("measured_mean", Json::Num(r.measured_mean)),
                            ("measured_sd", Json::Num(r.measured_sd)),
                            ("measured_min", Json::Num(r.measured_min)),
                            ("measured_max", Json::Num(r.measured_max)),
                            ("measured_over_formula", Json::Num(r.measured_mean / r.formula)),
                            ("mean_saturation_cubed", Json::Num(r.conditional)),
                            ("mean_popcount", Json::Num(r.mean_popcount)),
                            ("id_sets", Json::Num(r.sets as f64)),
                            ("probes_per_set", Json::Num(r.probes as f64)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ]);
    write_json("clocks", &json);
}
