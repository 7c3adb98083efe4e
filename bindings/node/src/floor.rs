//! Control functions for the benchmarks (benches/): the floor a benchmark
//! compares admission against, measured in the same process.
//!
//! * `floor_noop`, `floor_one_slice`, `floor_three_slices`: empty N-API
//!   calls (the cost of crossing the boundary with 0, 1 and 3 byte slices);
//! * `floor_core_admit`, `floor_core_admit_stats`: `ctfs-core` admission
//!   timed in Rust, without N-API or JavaScript, so a JS figure can be given
//!   as a ratio to the core figure of the same run.

use std::hint::black_box;
use std::time::Instant;

use ctfs_core::batch::{admit_packed, encode_record};
use ctfs_core::invariants::TotalSupply;
use ctfs_core::invariants::builtin::Builtin;
use ctfs_core::{CausalityMode, FactId, Invariant, Kernel, Multi};
use napi::{Error, Result, Status};
use napi_derive::napi;

#[napi]
pub fn floor_noop() {}

#[napi]
pub fn floor_one_slice(a: &[u8]) -> u32 {
    a.len() as u32
}

#[napi]
pub fn floor_three_slices(a: &[u8], b: &[u8], c: &[u8]) -> u32 {
    (a.len() + b.len() + c.len()) as u32
}

/// splitmix64: a cheap generator whose every output bit depends on the whole
/// state, so ids built from it look random to the kernel's hashes.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A fact id with all 32 bytes filled.
    fn id(&mut self) -> FactId {
        let mut b = [0u8; 32];
        for chunk in b.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        FactId(b)
    }

    /// Uniform-enough index in `[0, n)` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (t as u64) ^ ((t >> 64) as u64) ^ 0x6a09_e667_f3bc_c908
}

fn failed(msg: String) -> Error {
    Error::new(Status::GenericFailure, msg)
}

/// An Exact TotalSupply kernel holding `history` facts with random ids (no
/// deps), plus the ids of those facts, plus `count` fresh ids and
/// `count * deps` dependencies, each chosen at random among the facts
/// admitted before the one that names it (history and earlier fresh facts).
struct Prepared<I: Invariant = TotalSupply> {
    kernel: Kernel<I>,
    fresh: Vec<FactId>,
    deps: Vec<FactId>,
}

fn prepare(history: u32, count: u32, deps: u32) -> Result<Prepared> {
    prepare_with(Kernel::new(TotalSupply::unbounded(0), CausalityMode::Exact), history, count, deps)
}

fn prepare_with<I: Invariant>(mut kernel: Kernel<I>, history: u32, count: u32, deps: u32) -> Result<Prepared<I>> {
    let (history, count, deps) = (history as usize, count as usize, deps as usize);
    if deps > 0 && history == 0 {
        return Err(failed("floor_core_admit: deps > 0 needs a history to depend on".into()));
    }
    let mut rng = SplitMix64(seed());
    let payload = TotalSupply::payload(1);
    let mut all: Vec<FactId> = Vec::with_capacity(history + count);
    for _ in 0..history {
        let id = rng.id();
        kernel.admit(&id, &[], &payload).map_err(|e| failed(format!("floor_core_admit: history refused: {e}")))?;
        all.push(id);
    }
    let mut dep_ids = Vec::with_capacity(count * deps);
    for i in 0..count {
        let id = rng.id();
        for _ in 0..deps {
            dep_ids.push(all[rng.below(history + i)]);
        }
        all.push(id);
    }
    let fresh = all.split_off(history);
    Ok(Prepared { kernel, fresh, deps: dep_ids })
}

/// Core admission per fact, in ns: an Exact TotalSupply kernel is filled
/// with `history` facts, then `count` fresh facts with random ids and `deps`
/// random dependencies each (from the whole history) are admitted one by
/// one with `Kernel::admit`; only that loop is timed. Fails (rather than
/// report a figure) if any fact is refused.
#[napi(catch_unwind)]
pub fn floor_core_admit(history: u32, count: u32, deps: u32) -> Result<f64> {
    if count == 0 {
        return Err(failed("floor_core_admit: count must be > 0".into()));
    }
    let Prepared { mut kernel, fresh, deps: dep_ids } = prepare(history, count, deps)?;
    let payload = TotalSupply::payload(1);
    let d = deps as usize;
    let mut refused = 0u64;
    let start = Instant::now();
    for (i, id) in fresh.iter().enumerate() {
        let r = kernel.admit(black_box(id), black_box(&dep_ids[i * d..(i + 1) * d]), black_box(&payload));
        refused += r.is_err() as u64;
    }
    let elapsed = start.elapsed();
    black_box(kernel.state());
    if refused > 0 {
        return Err(failed(format!("floor_core_admit: {refused} of {count} measured facts were refused")));
    }
    Ok(elapsed.as_nanos() as f64 / count as f64)
}

/// Per-fact figures of one core admission run (ns), from timings of
/// consecutive chunks of `chunk` facts.
#[napi(object)]
pub struct CoreAdmitStats {
    /// Facts admitted in the timed region.
    pub count: u32,
    /// Facts per timed chunk.
    pub chunk: u32,
    pub chunks: u32,
    /// Whole timed region / count.
    pub mean_ns: f64,
    /// Percentiles of chunk time / chunk size.
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub max_ns: f64,
}

/// Like [`floor_core_admit`], with a distribution: the `count` facts are
/// timed in consecutive chunks of `chunk` facts, and each chunk gives one
/// per-fact sample (comparable to one `admitBatch` call of `chunk` facts).
/// With `packed`, each chunk is one call of the packed batch codec
/// (`ctfs_core::batch::admit_packed`, the path `admitBatch` takes), its
/// records encoded outside the timed region; otherwise each fact is one
/// `Kernel::admit`. With `derived_ids`, the kernel derives every id (keyed
/// BLAKE3, as for facts admitted without one): records carry no id, and
/// single admissions are `Kernel::admit_derived`. Fails if any fact is
/// refused.
#[napi(catch_unwind)]
pub fn floor_core_admit_stats(
    history: u32,
    count: u32,
    deps: u32,
    chunk: u32,
    packed: bool,
    binding_kernel: Option<bool>,
    derived_ids: Option<bool>,
) -> Result<CoreAdmitStats> {
    if count == 0 || chunk == 0 {
        return Err(failed("floor_core_admit_stats: count and chunk must be > 0".into()));
    }
    let derived = derived_ids == Some(true);
    if binding_kernel == Some(true) {
        // The kernel type the binding runs (a one-member Multi of built-ins).
        let inv = Multi::new(vec![Builtin::TotalSupply(TotalSupply::unbounded(0))]).map_err(failed)?;
        return core_stats(prepare_with(Kernel::new(inv, CausalityMode::Exact), history, count, deps)?, count, deps, chunk, packed, derived);
    }
    core_stats(prepare(history, count, deps)?, count, deps, chunk, packed, derived)
}

fn core_stats<I: Invariant>(p: Prepared<I>, count: u32, deps: u32, chunk: u32, packed: bool, derived: bool) -> Result<CoreAdmitStats> {
    let Prepared { mut kernel, fresh, deps: dep_ids } = p;
    let payload = TotalSupply::payload(1);
    let (d, chunk_len) = (deps as usize, chunk as usize);
    let mut buffers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if packed {
        for (c, ids) in fresh.chunks(chunk_len).enumerate() {
            let mut buf = Vec::new();
            for (j, id) in ids.iter().enumerate() {
                let i = c * chunk_len + j;
                encode_record(&mut buf, (!derived).then_some(id), &dep_ids[i * d..(i + 1) * d], &payload);
            }
            buffers.push((buf, vec![0xff; ids.len()]));
        }
    }
    let mut samples: Vec<f64> = Vec::with_capacity(fresh.len().div_ceil(chunk_len));
    let mut admitted = 0usize;
    let start = Instant::now();
    if packed {
        for (buf, results) in buffers.iter_mut() {
            let t = Instant::now();
            admitted += admit_packed(&mut kernel, black_box(buf), results, |_, e| drop(black_box(e))).admitted;
            samples.push(t.elapsed().as_nanos() as f64 / results.len() as f64);
        }
    } else {
        for (c, ids) in fresh.chunks(chunk_len).enumerate() {
            let t = Instant::now();
            for (j, id) in ids.iter().enumerate() {
                let i = c * chunk_len + j;
                let dep = black_box(&dep_ids[i * d..(i + 1) * d]);
                let ok = if derived { kernel.admit_derived(dep, black_box(&payload)).is_ok() } else { kernel.admit(black_box(id), dep, black_box(&payload)).is_ok() };
                admitted += ok as usize;
            }
            samples.push(t.elapsed().as_nanos() as f64 / ids.len() as f64);
        }
    }
    let elapsed = start.elapsed();
    black_box(kernel.state());
    if admitted != count as usize {
        return Err(failed(format!(
            "floor_core_admit_stats: {} of {count} measured facts were refused",
            count as usize - admitted
        )));
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| -> f64 {
        // Linear interpolation between order statistics (as tinybench does).
        let pos = p * (samples.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        samples[lo] + (samples[hi] - samples[lo]) * (pos - lo as f64)
    };
    Ok(CoreAdmitStats {
        count,
        chunk,
        chunks: samples.len() as u32,
        mean_ns: elapsed.as_nanos() as f64 / count as f64,
        p50_ns: pct(0.5),
        p99_ns: pct(0.99),
        max_ns: samples[samples.len() - 1],
    })
}
