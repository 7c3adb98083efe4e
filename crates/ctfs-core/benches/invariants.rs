//! `invariants`: admission cost per built-in invariant, native.
//!
//! Each case is a `Kernel<Builtin>` in exact mode (the binding's dispatch),
//! pre-filled with 200,000 facts of its own kind, then timed over ten runs of
//! 50,000 further admissions with fresh BLAKE3 ids and payloads generated
//! outside the timed region. Every measured admission must succeed (payloads
//! are chosen so that none is refused: increasing LWW timestamps, fresh set
//! keys, fresh graph edges); a refusal aborts the run. Control, same run: the
//! same kernel loop over a bare `TotalSupply` (no `Builtin` dispatch), and
//! `Multi<Builtin>` with one member (the binding's exact type).
//!
//! `CTFS_BENCH_JSON=<dir>` writes `<dir>/invariants.json`.

mod common;

use std::time::{Duration, Instant};

use common::{Json, Summary, id, machine, measure, write_json};
use ctfs_core::invariants::Builtin;
use ctfs_core::invariants::ggraph::DegreeLimits;
use ctfs_core::{CausalityMode, FactId, Invariant, Kernel, Multi};

const PREFILL: u64 = 200_000;
const RUN: u64 = 50_000;
const RUNS: usize = 10;

/// The payload of fact number `n` for an invariant kind.
fn payload(kind: &str, n: u64) -> Vec<u8> {
    let h = *blake3::hash(&n.to_le_bytes()).as_bytes();
    match kind {
        "totalSupply" => 1i128.to_le_bytes().to_vec(),
        "max" => (n as i128).to_le_bytes().to_vec(),
        "gCounter" | "boundedGCounter" => 1u64.to_le_bytes().to_vec(),
        "lww" => {
            let mut p = n.to_le_bytes().to_vec();
            p.extend_from_slice(&h[..16]);
            p
        }
        "uniqueness" => ((n % 512) as u16).to_le_bytes().to_vec(),
        "uniqueSet" => h.to_vec(),
        "gGraph" => vec![(n % 16) as u8, ((n / 16) % 16) as u8],
        "graph" => {
            let mut p = n.to_le_bytes().to_vec();
            p.extend_from_slice(&(n + 1).to_le_bytes());
            p
        }
        _ => unreachable!(),
    }
}

fn run_kernel<I: Invariant>(kind: &str, mut k: Kernel<I>, counter: &mut u64, ops: u64) -> Duration {
    let ids: Vec<FactId> = (0..ops).map(|i| id(1 << 40 | (*counter + i))).collect();
    let payloads: Vec<Vec<u8>> = (0..ops).map(|i| payload(kind, *counter + i)).collect();
    let t = Instant::now();
    for (fid, p) in ids.iter().zip(&payloads) {
        if let Err(e) = k.admit(fid, &[], p) {
            panic!("{kind}: measured admission refused: {e}");
        }
    }
    let d = t.elapsed();
    *counter += ops;
    std::hint::black_box(k.state());
    d
}

fn case<I: Invariant + Clone>(kind: &str, inv: I) -> Summary {
    // uniqueness (512 elements) and gGraph (256 edges) saturate: measure them
    // as far as they go, on fresh kernels per run.
    let (prefill, run) = match kind {
        "uniqueness" => (0, 512),
        "gGraph" => (0, 256),
        _ => (PREFILL, RUN),
    };
    let mut counter = 0u64;
    let mut k = Kernel::new(inv.clone(), CausalityMode::Exact);
    if prefill > 0 {
        for i in 0..prefill {
            k.admit(&id(i), &[], &payload(kind, i)).expect("prefill");
        }
        counter = prefill;
    }
    measure(RUNS, run, |ops| {
        if prefill == 0 {
            counter = 0;
            run_kernel(kind, Kernel::new(inv.clone(), CausalityMode::Exact), &mut counter, ops)
        } else {
            // keep one growing kernel: steady state past the prefill
            let ids: Vec<FactId> = (0..ops).map(|i| id(counter + i)).collect();
            let payloads: Vec<Vec<u8>> = (0..ops).map(|i| payload(kind, counter + i)).collect();
            let t = Instant::now();
            for (fid, p) in ids.iter().zip(&payloads) {
                if let Err(e) = k.admit(fid, &[], p) {
                    panic!("{kind}: measured admission refused: {e}");
                }
            }
            let d = t.elapsed();
            counter += ops;
            d
        }
    })
}

fn main() {
    let m = machine();
    m.print("invariants", true);
    let limits = DegreeLimits { allow_self_loops: true, ..DegreeLimits::default() };
    let cases: Vec<(&str, Builtin)> = vec![
        ("totalSupply", Builtin::total_supply(0, 0, i128::MAX).unwrap()),
        ("max", Builtin::max(0)),
        ("gCounter", Builtin::g_counter(0)),
        ("boundedGCounter", Builtin::bounded_g_counter(u128::MAX)),
        ("lww", Builtin::lww()),
        ("uniqueness", Builtin::uniqueness_cell()),
        ("uniqueSet", Builtin::unique_set(None).unwrap()),
        ("gGraph", Builtin::g_graph_cell(limits).unwrap()),
        ("graph", Builtin::graph(limits, None).unwrap()),
    ];
    let control = case("totalSupply", ctfs_core::invariants::TotalSupply::new(0, 0, i128::MAX).unwrap());
    let multi = case("totalSupply", Multi::single(Builtin::total_supply(0, 0, i128::MAX).unwrap()));
    println!("\n=== invariants: exact-mode admission, 0 deps, ns per fact (own loop, {RUNS} runs) ===");
    println!("{:<34} {:>8} {:>8} {:>8} {:>8}  history", "case", "p50", "mean", "min", "/ctl");
    let row = |name: &str, s: &Summary, hist: &str| {
        println!("{name:<34} {:>8.1} {:>8.1} {:>8.1} {:>8.2}  {hist}", s.p50, s.mean, s.min, s.p50 / control.p50);
    };
    row("control: TotalSupply (no dispatch)", &control, "200K→700K");
    row("Multi<Builtin> totalSupply", &multi, "200K→700K");
    let mut json = vec![("control_total_supply", control.json()), ("multi_single_total_supply", multi.json())];
    let mut rows = Vec::new();
    for (kind, inv) in cases {
        let s = case(kind, inv);
        let hist = match kind {
            "uniqueness" => "fresh kernel, 512 elements",
            "gGraph" => "fresh kernel, 256 edges",
            _ => "200K→700K",
        };
        row(&format!("Builtin {kind}"), &s, hist);
        rows.push((kind, s));
    }
    for (k, s) in &rows {
        json.push((k, s.json()));
    }
    write_json("invariants", &Json::obj(vec![("machine", m.json()), ("cases", Json::obj(json))]));
}
