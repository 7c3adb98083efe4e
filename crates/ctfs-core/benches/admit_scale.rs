//! `admit_scale`: exact admission at 1M and 10M facts of history, beside a
//! hashbrown lookup control timed the same way, and the latency of every
//! single admission over a 0 → 10M run (growth stalls).
//!
//! Part 1 — per history size H (default 50K, 1M, 10M): one exact GCounter
//! kernel pre-filled with H facts, then rounds; each round runs every case
//! for `--ops` admissions and, right after each case, the control for as many
//! lookups. A case's figure is the p50 over rounds of its run's ns/fact; its
//! ratio is the median over rounds of (case / the control run right after).
//! Cases (fresh ids, every admission must succeed):
//!
//! * `single/0dep` — `Kernel::admit`, no dependency;
//! * `single/1dep-recent` — one dependency on the previous fact;
//! * `single/1dep-old` — one dependency drawn uniformly from the history;
//! * `merge/0dep` — `Kernel::admit_merge` (the replication path), no dependency;
//! * `packed/0dep`, `packed/1dep-recent`, `packed/1dep-old` — `admit_packed`,
//!   1,000 records per call (the batch buffers are built untimed);
//!
//! Control: `hashbrown::HashSet<[u8; 32]>` holding the same H ids, one lookup
//! of a random present key per iteration (keys drawn untimed into a buffer,
//! exactly as the cases' ids are).
//!
//! Part 2 (`--stall`, default on in a full run) — a fresh kernel admits
//! 10M facts one by one (0 deps; every 4th names the previous fact); each
//! admission is timed with `rdtsc`. Windows of 1,024 admissions whose thread
//! CPU time is below 95% of their wall time were descheduled by the OS (this
//! machine is shared): they are counted and left out of the histogram, which
//! is reported with p50 / p99 / p99.9 / p99.99 / max. Bytes per tracked fact
//! (`KernelStats::index_bytes`) are sampled after every window; the peak
//! from 100K facts on is reported. Control: as many runs of a computation
//! that touches no memory (splitmix64 rounds), each as long as the
//! admissions' mean, timed the same way: what the machine itself puts in the
//! tail (timer ticks, the hypervisor) over as much time, beside the
//! admissions' tail.
//!
//! Ids are 32 random-looking bytes (splitmix64 of a counter, four lanes);
//! times are thread CPU time (`CLOCK_THREAD_CPUTIME_ID`), so that time spent
//! descheduled on this loaded 2-core machine is not counted.
//!
//! Run: `cargo bench -p ctfs-core --bench admit_scale`
//! (`-- --sizes 1M --rounds 5 --ops 20000 --no-stall`); `CTFS_BENCH_JSON=<dir>`
//! writes `<dir>/admit_scale.json`.

mod common;

use common::*;
use ctfs_core::batch::{admit_packed, encode_record};
use ctfs_core::invariants::GCounter;
use ctfs_core::*;
use std::hint::black_box;
use std::time::Duration;

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 32 random-looking bytes for counter `n`.
#[inline]
fn fid(n: u64) -> FactId {
    let mut b = [0u8; 32];
    for l in 0..4u64 {
        b[l as usize * 8..l as usize * 8 + 8].copy_from_slice(&splitmix(n.wrapping_mul(4).wrapping_add(l)).to_le_bytes());
    }
    FactId(b)
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct Cpu(u64);
impl Cpu {
    fn now() -> Cpu {
        Cpu(thread_cpu_ns())
    }
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(thread_cpu_ns() - self.0)
    }
}

#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86-64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// `rdtsc` between two `lfence`s: the instructions before it have completed
/// when the counter is read, and none after it has started. Without them
/// one admission's cache miss overlaps the next one's timing, and per-op
/// times come out shorter than any admission (a p50 of 38 ns on the Xeon VM
/// of 2026-12-01 against a mean of ~280 ns).
fn rdtsc_fenced() -> u64 {
    // SAFETY: lfence and rdtsc have no preconditions on x86-64 (SSE2 is baseline).
    unsafe {
        core::arch::x86_64::_mm_lfence();
        let t = core::arch::x86_64::_rdtsc();
        core::arch::x86_64::_mm_lfence();
        t
    }
}

fn parse_count(s: &str) -> u64 {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1_000.0),
        Some('M' | 'm') => (&s[..s.len() - 1], 1_000_000.0),
        _ => (s, 1.0),
    };
    (num.parse::<f64>().expect("a count like 50K, 1M or 10M") * mul) as u64
}

struct Args {
    sizes: Vec<u64>,
    rounds: usize,
    ops: u64,
    stall: Option<u64>,
    full: bool,
    /// Only the cases whose name contains one of these.
    cases: Vec<String>,
    /// `--in-cache N`: also time kernels of N facts, each new (see `in_cache`).
    in_cache: Option<u64>,
}

fn args() -> Args {
    let full = full_run();
    let mut a = if full {
        Args { sizes: vec![50_000, 1_000_000, 10_000_000], rounds: 7, ops: 20_000, stall: Some(10_000_000), full, cases: Vec::new(), in_cache: None }
    } else {
        Args { sizes: vec![20_000], rounds: 2, ops: 2_000, stall: Some(50_000), full, cases: Vec::new(), in_cache: None }
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 0;
    while i < v.len() {
        match v[i].as_str() {
            "--sizes" => {
                a.sizes = v[i + 1].split(',').map(parse_count).collect();
                i += 1;
            }
            "--rounds" => {
                a.rounds = v[i + 1].parse().expect("--rounds N");
                i += 1;
            }
            "--ops" => {
                a.ops = parse_count(&v[i + 1]);
                i += 1;
            }
            "--stall" => {
                a.stall = Some(parse_count(&v[i + 1]));
                i += 1;
            }
            "--no-stall" => a.stall = None,
            "--in-cache" => {
                a.in_cache = Some(parse_count(&v[i + 1]));
                i += 1;
            }
            "--cases" => {
                a.cases = v[i + 1].split(',').map(str::to_string).collect();
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    a
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Single,
    Merge,
    Packed,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dep {
    None,
    Recent,
    Old,
}

const CASES: [(Shape, Dep); 7] = [
    (Shape::Single, Dep::None),
    (Shape::Single, Dep::Recent),
    (Shape::Single, Dep::Old),
    (Shape::Merge, Dep::None),
    (Shape::Packed, Dep::None),
    (Shape::Packed, Dep::Recent),
    (Shape::Packed, Dep::Old),
];

fn case_name(s: Shape, d: Dep) -> String {
    format!(
        "{}/{}",
        match s {
            Shape::Single => "single",
            Shape::Merge => "merge",
            Shape::Packed => "packed",
        },
        match d {
            Dep::None => "0dep",
            Dep::Recent => "1dep-recent",
            Dep::Old => "1dep-old",
        }
    )
}

const BATCH: usize = 1000;
/// Admissions (and control lookups) prepared per untimed step: 128 KiB of
/// ids, so that the inputs do not evict what the measured code keeps in
/// cache (a service's inputs arrive a few at a time too).
const PREP: usize = 4000;

struct Bench {
    kernel: Kernel<GCounter>,
    /// Facts `fid(0..next)` are admitted.
    next: u64,
    rng: XorShift,
    ids: Vec<FactId>,
    deps: Vec<FactId>,
    packed: Vec<Vec<u8>>,
    results: Vec<u8>,
}

impl Bench {
    fn new(history: u64) -> Bench {
        let mut kernel = Kernel::new(GCounter::new(0), CausalityMode::Exact);
        let payload = GCounter::payload(1);
        let mut buf = Vec::new();
        let mut results = vec![0u8; BATCH];
        let mut n = 0;
        while n < history {
            let m = (history - n).min(BATCH as u64);
            buf.clear();
            for i in n..n + m {
                encode_record(&mut buf, Some(&fid(i)), &[], &payload);
            }
            let s = admit_packed(&mut kernel, &mut buf, &mut results[..m as usize], |i, e| panic!("pre-fill {i}: {e:?}"));
            assert_eq!(s.admitted, m as usize);
            n += m;
        }
        Bench { kernel, next: history, rng: XorShift::new(0xC0FFEE), ids: Vec::new(), deps: Vec::new(), packed: Vec::new(), results }
    }

    /// Untimed: ids and dependencies of the next `m` admissions.
    fn prepare(&mut self, m: usize, dep: Dep, shape: Shape) {
        self.ids.clear();
        self.deps.clear();
        for i in 0..m as u64 {
            let c = self.next + i;
            self.ids.push(fid(c));
            match dep {
                Dep::None => {}
                Dep::Recent => self.deps.push(fid(c - 1)),
                Dep::Old => {
                    let o = self.rng.below(self.next);
                    self.deps.push(fid(o));
                }
            }
        }
        if shape == Shape::Packed {
            let payload = GCounter::payload(1);
            self.packed.clear();
            let d = (dep != Dep::None) as usize;
            for chunk in 0..m.div_ceil(BATCH) {
                let mut b = Vec::with_capacity(BATCH * (40 + 32 * d + 8));
                for i in chunk * BATCH..((chunk + 1) * BATCH).min(m) {
                    encode_record(&mut b, Some(&self.ids[i]), &self.deps[i * d..i * d + d], &payload);
                }
                self.packed.push(b);
            }
        }
    }

    fn run(&mut self, shape: Shape, dep: Dep, n: u64) -> Duration {
        let payload = GCounter::payload(1);
        let mut total = Duration::ZERO;
        let mut left = n;
        let d = (dep != Dep::None) as usize;
        while left > 0 {
            let m = left.min(PREP as u64) as usize;
            self.prepare(m, dep, shape);
            let mut ok = 0usize;
            let t = Cpu::now();
            match shape {
                Shape::Single => {
                    for i in 0..m {
                        ok += self.kernel.admit(&self.ids[i], &self.deps[i * d..i * d + d], &payload).is_ok() as usize;
                    }
                }
                Shape::Merge => {
                    for i in 0..m {
                        ok += self.kernel.admit_merge(&self.ids[i], &self.deps[i * d..i * d + d], &payload).is_ok() as usize;
                    }
                }
                Shape::Packed => {
                    for b in self.packed.iter_mut() {
                        let k = &mut self.kernel;
                        let recs = self.results.len();
                        ok += admit_packed(k, b, &mut self.results[..recs], |_, _| {}).admitted;
                    }
                }
            }
            total += t.elapsed();
            assert_eq!(ok, m, "{}: {} of {m} admissions failed: a failure is not a success figure", case_name(shape, dep), m - ok);
            self.next += m as u64;
            left -= m as u64;
        }
        total
    }
}

/// The control: a hashbrown set of the same ids, one present-key lookup per
/// iteration, keys drawn untimed.
struct Control {
    set: hashbrown::HashSet<[u8; 32]>,
    size: u64,
    rng: XorShift,
    keys: Vec<[u8; 32]>,
}

impl Control {
    fn new(size: u64) -> Control {
        let mut set = hashbrown::HashSet::with_capacity(size as usize);
        for i in 0..size {
            set.insert(fid(i).0);
        }
        Control { set, size, rng: XorShift::new(99), keys: Vec::new() }
    }

    fn run(&mut self, n: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let m = left.min(PREP as u64) as usize;
            self.keys.clear();
            for _ in 0..m {
                let k = self.rng.below(self.size);
                self.keys.push(fid(k).0);
            }
            let mut hits = 0usize;
            let t = Cpu::now();
            for k in &self.keys {
                hits += self.set.contains(k) as usize;
            }
            total += t.elapsed();
            assert_eq!(black_box(hits), m);
            left -= m as u64;
        }
        total
    }
}

struct CaseFigure {
    name: String,
    summary: Summary,
    ratio: f64,
}

struct SizeResult {
    history: u64,
    history_end: u64,
    control: Summary,
    cases: Vec<CaseFigure>,
    fill_s: f64,
    bytes_per_fact: f64,
}

fn run_size(a: &Args, history: u64) -> SizeResult {
    let cases: Vec<(Shape, Dep)> = CASES
        .iter()
        .copied()
        .filter(|&(s, d)| a.cases.is_empty() || a.cases.iter().any(|c| case_name(s, d).contains(c.as_str())))
        .collect();
    let t = Cpu::now();
    let mut b = Bench::new(history);
    let fill_s = t.elapsed().as_secs_f64();
    let mut ctl = Control::new(history);
    let mut runs: Vec<Vec<(Duration, u64)>> = vec![Vec::new(); cases.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut ctl_runs = Vec::new();
    // Warm-up: one short run of each.
    for &(s, d) in &cases {
        b.run(s, d, a.ops / 10);
    }
    ctl.run(a.ops / 10);
    for _ in 0..a.rounds {
        for (ci, &(s, d)) in cases.iter().enumerate() {
            let dt = b.run(s, d, a.ops);
            let dc = ctl.run(a.ops);
            runs[ci].push((dt, a.ops));
            ctl_runs.push((dc, a.ops));
            ratios[ci].push(dt.as_nanos() as f64 / dc.as_nanos() as f64);
        }
    }
    let stats = b.kernel.stats();
    let cases = cases
        .iter()
        .enumerate()
        .map(|(ci, &(s, d))| {
            let mut r = std::mem::take(&mut ratios[ci]);
            r.sort_by(|x, y| x.partial_cmp(y).unwrap());
            CaseFigure { name: case_name(s, d), summary: Summary::from_runs(&runs[ci]), ratio: median_sorted(&r) }
        })
        .collect();
    SizeResult {
        history,
        history_end: b.next,
        control: Summary::from_runs(&ctl_runs),
        cases,
        fill_s,
        bytes_per_fact: stats.index_bytes as f64 / stats.tracked as f64,
    }
}

/// Log-linear histogram: 16 sub-buckets per power of two of nanoseconds.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_ns: f64,
}

impl Histogram {
    fn new() -> Self {
        Histogram { counts: vec![0; 64 * 16], total: 0, max_ns: 0.0 }
    }
    fn bucket(ns: f64) -> usize {
        let v = ns.max(1.0);
        let p = v.log2().floor() as usize;
        let frac = v / (1u64 << p) as f64 - 1.0;
        p * 16 + ((frac * 16.0) as usize).min(15)
    }
    fn lower(b: usize) -> f64 {
        let p = b / 16;
        (1u64 << p) as f64 * (1.0 + (b % 16) as f64 / 16.0)
    }
    fn add(&mut self, ns: f64) {
        self.counts[Self::bucket(ns)] += 1;
        self.total += 1;
        if ns > self.max_ns {
            self.max_ns = ns;
        }
    }
    /// Samples at or above `ns` (to the histogram's resolution: whole buckets
    /// from the one holding `ns`).
    fn at_least(&self, ns: f64) -> u64 {
        self.counts[Self::bucket(ns)..].iter().sum()
    }
    fn quantile(&self, q: f64) -> f64 {
        let target = (q * self.total as f64).ceil() as u64;
        let mut acc = 0;
        for (b, c) in self.counts.iter().enumerate() {
            acc += c;
            if acc >= target.max(1) {
                return Self::lower(b + 1);
            }
        }
        self.max_ns
    }
}

struct StallResult {
    facts: u64,
    hist: Histogram,
    dirty_windows: u64,
    windows: u64,
    dirty_max_ns: f64,
    slowest: Vec<(u64, f64)>,
    peak_bpf: f64,
    peak_bpf_at: u64,
    end_bpf: f64,
    total_s: f64,
    /// The same timing around a fixed in-cache computation instead of an
    /// admission, as many times: what the machine alone puts in the tail.
    control: Histogram,
}

/// A fixed computation that touches no memory (the control of the stall
/// run): `rounds` dependent splitmix64 steps.
#[inline(never)]
fn busy_work(x: u64, rounds: u32) -> u64 {
    let mut h = x;
    for _ in 0..rounds {
        h = splitmix(h);
    }
    h
}

/// Runs `op(j)` for each `j` of `window`, timing each call in TSC ticks
/// into `window[j]`. Returns whether the window ran clean: its thread CPU
/// time at least 95 % of its wall time (not descheduled by the OS).
fn timed_window(window: &mut [u64], ns_per_tick: f64, mut op: impl FnMut(usize)) -> bool {
    let wall0 = rdtsc();
    let cpu0 = thread_cpu_ns();
    for (j, w) in window.iter_mut().enumerate() {
        let t = rdtsc_fenced();
        op(j);
        *w = rdtsc_fenced() - t;
    }
    let cpu = (thread_cpu_ns() - cpu0) as f64;
    let wall = (rdtsc() - wall0) as f64 * ns_per_tick;
    cpu >= 0.95 * wall
}

/// Times `n` runs of `busy_work`, each as long as `mean_ns` (the admissions'
/// mean, so that both runs take as long), exactly as `stall_run` times
/// admissions (rdtsc around each, windows of 1,024, descheduled windows left out).
fn noise_control(n: u64, mean_ns: f64, ns_per_tick: f64) -> Histogram {
    let t = Cpu::now();
    black_box(busy_work(1, 1 << 20));
    let per_round = t.elapsed().as_nanos() as f64 / (1u64 << 20) as f64;
    let rounds = (mean_ns / per_round).round().clamp(1.0, 1e6) as u32;
    const WINDOW: u64 = 1024;
    let mut hist = Histogram::new();
    let mut window = vec![0u64; WINDOW as usize];
    let mut x = 1u64;
    let mut done = 0;
    while done < n {
        let m = (n - done).min(WINDOW) as usize;
        if timed_window(&mut window[..m], ns_per_tick, |_| x = black_box(busy_work(x, rounds))) {
            for &ticks in &window[..m] {
                hist.add(ticks as f64 * ns_per_tick);
            }
        }
        done += m as u64;
    }
    hist
}

fn stall_run(facts: u64) -> StallResult {
    // Calibrate the TSC against the monotonic clock.
    let (t0, c0) = (std::time::Instant::now(), rdtsc());
    std::thread::sleep(Duration::from_millis(50));
    let ns_per_tick = t0.elapsed().as_nanos() as f64 / (rdtsc() - c0) as f64;

    let mut k = Kernel::new(GCounter::new(0), CausalityMode::Exact);
    let payload = GCounter::payload(1);
    const WINDOW: u64 = 1024;
    let mut hist = Histogram::new();
    let mut window = vec![0u64; WINDOW as usize];
    let mut ids = Vec::with_capacity(WINDOW as usize);
    let (mut dirty, mut windows, mut dirty_max) = (0u64, 0u64, 0f64);
    let mut slowest: Vec<(u64, f64)> = Vec::new();
    let (mut peak_bpf, mut peak_at) = (0f64, 0u64);
    let all = Cpu::now();
    let mut n = 0u64;
    while n < facts {
        let m = (facts - n).min(WINDOW);
        ids.clear();
        for i in n..n + m {
            ids.push(fid(i));
        }
        let clean = timed_window(&mut window[..m as usize], ns_per_tick, |j| {
            let i = n + j as u64;
            let dep = if i % 4 == 3 { Some(fid(i - 1)) } else { None };
            let r = k.admit(&ids[j], dep.as_slice(), &payload);
            assert!(r.is_ok(), "admission {i} failed: {r:?}");
        });
        windows += 1;
        for (j, &ticks) in window[..m as usize].iter().enumerate() {
            let ns = ticks as f64 * ns_per_tick;
            if clean {
                hist.add(ns);
                if ns > 20_000.0 {
                    slowest.push((n + j as u64, ns));
                }
            } else if ns > dirty_max {
                dirty_max = ns;
            }
        }
        if !clean {
            dirty += 1;
        }
        n += m;
        let s = k.stats();
        if n >= 100_000 {
            let bpf = s.index_bytes as f64 / s.tracked as f64;
            if bpf > peak_bpf {
                peak_bpf = bpf;
                peak_at = n;
            }
        }
    }
    let total_s = all.elapsed().as_secs_f64();
    let control = noise_control(facts, total_s * 1e9 / facts as f64, ns_per_tick);
    slowest.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
    slowest.truncate(12);
    let s = k.stats();
    StallResult {
        facts,
        hist,
        dirty_windows: dirty,
        windows,
        dirty_max_ns: dirty_max,
        slowest,
        peak_bpf,
        peak_bpf_at: peak_at,
        end_bpf: s.index_bytes as f64 / s.tracked as f64,
        total_s,
        control,
    }
}

/// The in-cache floor: what an admission costs when nothing misses the
/// cache. Each repetition admits `n` fresh ids (0 deps) into a new exact
/// kernel, singly and then packed (1,000 per call) into another; growth
/// from empty is included, as it is in every figure. Control: inserting
/// the same ids into a new `hashbrown::HashSet<[u8; 32]>`. Per fact, the
/// p50 over `rounds` runs of `reps` repetitions each.
fn in_cache(n: u64, rounds: usize) -> [Summary; 3] {
    let payload = GCounter::payload(1);
    let ids: Vec<FactId> = (0..n).map(fid).collect();
    let mut packed = Vec::new();
    for chunk in ids.chunks(BATCH) {
        let mut buf = Vec::new();
        for id in chunk {
            encode_record(&mut buf, Some(id), &[], &payload);
        }
        packed.push(buf);
    }
    let mut results = vec![0u8; BATCH];
    let reps = (2_000_000 / n.max(1)).max(1);
    let (mut single, mut batch, mut control) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut t = [Duration::ZERO; 3];
        for _ in 0..reps {
            let mut k = Kernel::new(GCounter::new(0), CausalityMode::Exact);
            let c = Cpu::now();
            for id in &ids {
                k.admit(id, &[], &payload).expect("in-cache single");
            }
            t[0] += c.elapsed();
            let mut k = Kernel::new(GCounter::new(0), CausalityMode::Exact);
            let mut bufs = packed.clone();
            let c = Cpu::now();
            for b in bufs.iter_mut() {
                let recs = b.len() / (batch::HEADER_LEN + FactId::LEN + payload.len());
                let s = admit_packed(&mut k, b, &mut results[..recs], |i, e| panic!("in-cache packed {i}: {e:?}"));
                assert_eq!(s.admitted, recs);
            }
            t[1] += c.elapsed();
            let mut set = hashbrown::HashSet::new();
            let c = Cpu::now();
            for id in &ids {
                set.insert(id.0);
            }
            t[2] += c.elapsed();
            black_box(&set);
        }
        single.push((t[0], reps * n));
        batch.push((t[1], reps * n));
        control.push((t[2], reps * n));
    }
    [Summary::from_runs(&single), Summary::from_runs(&batch), Summary::from_runs(&control)]
}

fn main() {
    let a = args();
    let machine = machine();
    machine.print("admit_scale", a.full);
    println!("times: thread CPU time; ids: splitmix64 x4 of a counter; invariant GCounter; mode exact\n");
    let mut sizes = Vec::new();
    for &h in &a.sizes {
        let r = run_size(&a, h);
        println!(
            "history {} (pre-fill {:.1} s cpu; window {} -> {}; {:.1} B per tracked fact at the end)",
            human(h),
            r.fill_s,
            human(r.history),
            human(r.history_end),
            r.bytes_per_fact
        );
        println!(
            "  control hashbrown HashSet<[u8;32]> lookup hit, {} keys: {:>7.1} ns p50 [{:.1}..{:.1}]",
            human(h),
            r.control.p50,
            r.control.min,
            r.control.max
        );
        for c in &r.cases {
            println!(
                "  {:<20} {:>7.1} ns p50  mean {:>7.1}  [{:.1}..{:.1}]  x{:.2} control",
                c.name, c.summary.p50, c.summary.mean, c.summary.min, c.summary.max, c.ratio
            );
        }
        sizes.push(r);
    }
    let floor = a.in_cache.map(|n| {
        let f = in_cache(n, a.rounds.max(3));
        println!(
            "in cache (new kernels of {} facts, 0 deps, growth from empty included):\n  single {:.1} ns p50 [{:.1}..{:.1}]  packed {:.1} ns p50 [{:.1}..{:.1}]  control hashbrown HashSet<[u8;32]> insert into a new set {:.1} ns p50",
            human(n),
            f[0].p50,
            f[0].min,
            f[0].max,
            f[1].p50,
            f[1].min,
            f[1].max,
            f[2].p50
        );
        f
    });
    let stall = a.stall.map(|f| {
        let s = stall_run(f);
        println!(
            "\nsingle admissions 0 -> {}: {:.1} s cpu; {} of {} windows descheduled (left out; their slowest admission {:.0} us)",
            human(s.facts),
            s.total_s,
            s.dirty_windows,
            s.windows,
            s.dirty_max_ns / 1e3
        );
        println!(
            "  latency ns: p50 {:.0}  p99 {:.0}  p99.9 {:.0}  p99.99 {:.0}  max {:.0}",
            s.hist.quantile(0.5),
            s.hist.quantile(0.99),
            s.hist.quantile(0.999),
            s.hist.quantile(0.9999),
            s.hist.max_ns
        );
        println!(
            "  admissions of 2 us or more: {}; of 8 us or more: {} (p99.9 is under 2 us while the first stays under {})",
            s.hist.at_least(2048.0),
            s.hist.at_least(8192.0),
            s.hist.total / 1000
        );
        let c = &s.control;
        println!(
            "  control, a computation touching no memory, as long as the admissions' mean, timed the same way as often: p50 {:.0}  p99.9 {:.0}  max {:.0} ns; 2 us or more: {}, 8 us or more: {}",
            c.quantile(0.5),
            c.quantile(0.999),
            c.max_ns,
            c.at_least(2048.0),
            c.at_least(8192.0)
        );
        println!("  histogram (admissions per latency range):");
        let mut p = 0;
        while p < 64 {
            let c: u64 = s.hist.counts[p * 16..p * 16 + 16].iter().sum();
            if c > 0 {
                println!("    [{:>9} ns, {:>9} ns): {c}", 1u64 << p, 1u64 << (p + 1));
            }
            p += 1;
        }
        if !s.slowest.is_empty() {
            let v: Vec<String> = s.slowest.iter().map(|(i, ns)| format!("#{i}: {:.0} us", ns / 1e3)).collect();
            println!("  slowest (clean windows): {}", v.join(", "));
        }
        println!(
            "  bytes per tracked fact: peak {:.1} (at {} facts, from 100K on), {:.1} at the end",
            s.peak_bpf,
            human(s.peak_bpf_at),
            s.end_bpf
        );
        s
    });

    let json = Json::obj(vec![
        ("suite", Json::Str("admit_scale".into())),
        ("full_run", Json::Bool(a.full)),
        ("machine", machine.json()),
        (
            "sizes",
            Json::Arr(
                sizes
                    .iter()
                    .map(|r| {
                        Json::obj(vec![
                            ("history", Json::Num(r.history as f64)),
                            ("history_end", Json::Num(r.history_end as f64)),
                            ("bytes_per_fact", Json::Num(r.bytes_per_fact)),
                            ("control_hashbrown_lookup", r.control.json()),
                            (
                                "cases",
                                Json::Arr(
                                    r.cases
                                        .iter()
                                        .map(|c| {
                                            Json::obj(vec![
                                                ("name", Json::Str(c.name.clone())),
                                                ("ns_per_fact", c.summary.json()),
                                                ("ratio_to_control", Json::Num(c.ratio)),
                                            ])
                                        })
                                        .collect(),
                                ),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "in_cache",
            match &floor {
                None => Json::Null,
                Some(f) => Json::obj(vec![
                    ("facts_per_kernel", Json::Num(a.in_cache.unwrap_or(0) as f64)),
                    ("single_ns_per_fact", f[0].json()),
                    ("packed_ns_per_fact", f[1].json()),
                    ("control_hashbrown_insert_ns", f[2].json()),
                ]),
            },
        ),
        (
            "stall",
            match &stall {
                None => Json::Null,
                Some(s) => Json::obj(vec![
                    ("facts", Json::Num(s.facts as f64)),
                    ("p50_ns", Json::Num(s.hist.quantile(0.5))),
                    ("p99_ns", Json::Num(s.hist.quantile(0.99))),
                    ("p999_ns", Json::Num(s.hist.quantile(0.999))),
                    ("p9999_ns", Json::Num(s.hist.quantile(0.9999))),
                    ("max_ns", Json::Num(s.hist.max_ns)),
                    ("windows", Json::Num(s.windows as f64)),
                    ("descheduled_windows", Json::Num(s.dirty_windows as f64)),
                    ("at_least_2us", Json::Num(s.hist.at_least(2048.0) as f64)),
                    ("at_least_8us", Json::Num(s.hist.at_least(8192.0) as f64)),
                    ("control_p999_ns", Json::Num(s.control.quantile(0.999))),
                    ("control_at_least_2us", Json::Num(s.control.at_least(2048.0) as f64)),
                    ("control_at_least_8us", Json::Num(s.control.at_least(8192.0) as f64)),
                    ("peak_bytes_per_fact", Json::Num(s.peak_bpf)),
                    ("end_bytes_per_fact", Json::Num(s.end_bpf)),
                ]),
            },
        ),
    ]);
    write_json("admit_scale", &json);
}
