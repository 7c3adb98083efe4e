//! `ctfs-sim`: runs the deterministic replication simulator over many seeds.
//!
//! ```text
//! ctfs-sim --seeds N [--start S] [--replicas R] [--scenario NAME] [--threads T]
//! ctfs-sim --seed S [--replicas R] [--scenario NAME] [--verbose]
//! ```
//!
//! The last line is always `seeds: N, divergent: D, violations: V`; the exit
//! status is 1 when D or V is not zero. A failing seed prints the command
//! that replays it.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ctfs_sync::sim::{self, Scenario, SimConfig, SimResult};

struct Args {
    seeds: u64,
    start: u64,
    single: Option<u64>,
    replicas: Option<usize>,
    scenario: Option<Scenario>,
    threads: usize,
    verbose: bool,
    bus: Option<bool>,
}

const USAGE: &str = "usage: ctfs-sim [--seeds N] [--start S] [--seed S] [--replicas 3..7] [--scenario NAME] [--bus on|off] [--threads T] [--verbose]\n  --bus: replicas also share a lossy stream (as over NATS JetStream); default: one seed in three";

fn parse() -> Result<Args, String> {
    let mut a = Args { seeds: 100, start: 1, single: None, replicas: None, scenario: None, threads: 2, verbose: false, bus: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |s: String, name: &str| s.parse::<u64>().map_err(|_| format!("{name}: not a number: {s}"));
        match flag.as_str() {
            "--seeds" => a.seeds = num(value("--seeds")?, "--seeds")?,
            "--start" => a.start = num(value("--start")?, "--start")?,
            "--seed" => a.single = Some(num(value("--seed")?, "--seed")?),
            "--replicas" => {
                let r = num(value("--replicas")?, "--replicas")?;
                if !(1..=64).contains(&r) {
                    return Err("--replicas must be in 1..64".into());
                }
                a.replicas = Some(r as usize);
            }
            "--scenario" => {
                let s = value("--scenario")?;
                let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                a.scenario = Some(Scenario::from_name(&s).ok_or_else(|| format!("unknown scenario {s}; one of {}", names.join(", ")))?);
            }
            "--threads" => a.threads = num(value("--threads")?, "--threads")?.clamp(1, 64) as usize,
            "--verbose" => a.verbose = true,
            "--bus" => {
                a.bus = Some(match value("--bus")?.as_str() {
                    "on" => true,
                    "off" => false,
                    other => return Err(format!("--bus must be on or off, got {other}")),
                })
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn config(args: &Args, seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed);
    c.replicas = args.replicas;
    c.scenario = args.scenario;
    c.verbose = args.verbose;
    c.bus = args.bus;
    c
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ctfs-sim: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let seeds: Vec<u64> = match args.single {
        Some(s) => vec![s],
        None => (args.start..args.start + args.seeds).collect(),
    };
    let started = std::time::Instant::now();
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<SimResult>> = Mutex::new(Vec::with_capacity(seeds.len()));
    let threads = if args.verbose { 1 } else { args.threads };
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(&seed) = seeds.get(i) else { break };
                    let r = sim::run(config(&args, seed));
                    if !r.ok() {
                        eprintln!("FAIL seed {} ({} replicas, {}): {}", r.seed, r.replicas, r.scenario, r.violations.join("; "));
                        eprintln!("  replay: {}", r.replay_command());
                    }
                    if let Ok(mut v) = results.lock() {
                        v.push(r);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let divergent = results.iter().filter(|r| !r.converged).count();
    let violations: usize = results.iter().map(|r| r.violations.len()).sum();
    let mut rounds: Vec<u64> = results.iter().filter(|r| r.converged).map(|r| r.converge_rounds).collect();
    let (p50, p90, p99, max) = sim::percentiles(&mut rounds);
    let sum = |f: fn(&SimResult) -> u64| results.iter().map(f).sum::<u64>();
    println!(
        "facts admitted: {}, refused locally: {}, crash-restarts: {}, partitions: {}, frames delivered: {}, dropped: {}, snapshot joins: {}, buffer evictions: {}, peak buffer: {} facts",
        sum(|r| r.admitted),
        sum(|r| r.refused_locally),
        sum(|r| r.crashes),
        sum(|r| r.partitions),
        sum(|r| r.frames_delivered),
        sum(|r| r.frames_dropped),
        sum(|r| r.snapshots_installed),
        sum(|r| r.buffer_evictions),
        results.iter().map(|r| r.peak_buffer).max().unwrap_or(0),
    );
    println!(
        "anti-entropy rounds to converge after heal ({} ms each): p50 {p50}, p90 {p90}, p99 {p99}, max {max}; wall time {:.1} s",
        200,
        started.elapsed().as_secs_f64()
    );
    let bus = results.iter().filter(|r| r.bus).count();
    println!(
        "bus mode: {bus} seeds; stream entries published {}, lost before the stream {}, delivered {}, dropped by retention {}",
        sum(|r| r.stream_published),
        sum(|r| r.stream_lost),
        sum(|r| r.stream_delivered),
        sum(|r| r.stream_expired),
    );
    println!("seeds: {}, divergent: {divergent}, violations: {violations}", results.len());
    if divergent == 0 && violations == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
