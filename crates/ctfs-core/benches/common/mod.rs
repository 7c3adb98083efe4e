//! Shared helpers of the ctfs-core criterion suites (`core_admit`, `clocks`,
//! `exact_index`): real fact ids, a seeded PRNG, the machine record, summary
//! statistics of our own timing loops, and a small JSON writer for
//! `CTFS_BENCH_JSON`.
//!
//! Not a bench target: Cargo only discovers `benches/*.rs` and
//! `benches/*/main.rs`.

#![allow(dead_code)]

use ctfs_core::FactId;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// A real fact id: BLAKE3 of the counter (never a counter padded with zeros).
#[inline]
pub fn id(n: u64) -> FactId {
    FactId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// `count` ids for the counters `start..start + count`.
pub fn ids(start: u64, count: usize) -> Vec<FactId> {
    (0..count as u64).map(|i| id(start + i)).collect()
}

/// xorshift64, seeded through splitmix64 so that small seeds are fine.
#[derive(Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 1 } else { z })
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-enough value in `0..n` (Lemire's multiply-shift), `n > 0`.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// Fisher–Yates.
pub fn shuffle<T>(v: &mut [T], rng: &mut XorShift) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// `true` under `cargo bench` (criterion's benchmark mode); `false` under
/// `cargo test --benches`, `cargo bench -- --test` or `--list`, where the
/// suites shrink to a smoke run so that tests stay quick.
pub fn full_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    has("--bench") && !has("--test") && !has("--list")
}

/// Criterion defaults for these suites; command-line flags still override them.
pub fn criterion(sample_size: usize, warm_up_s: f64, measurement_s: f64) -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(sample_size)
        .warm_up_time(Duration::from_secs_f64(warm_up_s))
        .measurement_time(Duration::from_secs_f64(measurement_s))
        .without_plots()
        .configure_from_args()
}

// ---------------------------------------------------------------- statistics

/// Summary of several runs of our own timing loop, in ns per operation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub p50: f64,
    pub min: f64,
    pub max: f64,
    /// Total time / total operations over all runs (amortises rare costs
    /// such as a table resize that falls inside one run).
    pub mean: f64,
    pub runs: usize,
    pub ops: u64,
}

impl Summary {
    pub fn from_runs(runs: &[(Duration, u64)]) -> Summary {
        assert!(!runs.is_empty());
        let mut per: Vec<f64> = runs.iter().map(|(d, n)| d.as_nanos() as f64 / (*n).max(1) as f64).collect();
        per.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let total_ns: f64 = runs.iter().map(|(d, _)| d.as_nanos() as f64).sum();
        let total_ops: u64 = runs.iter().map(|(_, n)| *n).sum();
        Summary {
            p50: median_sorted(&per),
            min: per[0],
            max: per[per.len() - 1],
            mean: total_ns / total_ops.max(1) as f64,
            runs: runs.len(),
            ops: total_ops,
        }
    }

    pub fn json(&self) -> Json {
        Json::obj(vec![
            ("ns_p50", Json::Num(self.p50)),
            ("ns_mean", Json::Num(self.mean)),
            ("ns_min", Json::Num(self.min)),
            ("ns_max", Json::Num(self.max)),
            ("runs", Json::Num(self.runs as f64)),
            ("ops", Json::Num(self.ops as f64)),
        ])
    }
}

pub fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Runs `f` `runs` times; each call performs `ops` operations and returns the
/// time of its timed region only.
pub fn measure(runs: usize, ops: u64, mut f: impl FnMut(u64) -> Duration) -> Summary {
    let v: Vec<(Duration, u64)> = (0..runs).map(|_| (f(ops), ops)).collect();
    Summary::from_runs(&v)
}

/// Times a whole closure (for loops that time themselves, use `measure`).
pub fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

// ------------------------------------------------------------------- machine

pub struct Machine {
    pub cpu: String,
    pub flags: Vec<(&'static str, bool)>,
    pub cores: usize,
    pub rustc: String,
    pub git_commit: String,
    pub git_dirty: bool,
    pub os: String,
}

fn command(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string())
    };
    let cpu = field("model name").unwrap_or_else(|| "unknown".into());
    let flag_line = field("flags").unwrap_or_default();
    let present: std::collections::HashSet<&str> = flag_line.split_whitespace().collect();
    let flags = ["avx2", "avx512f", "sha_ni", "bmi2", "aes", "popcnt", "avx512_vpopcntdq"]
        .into_iter()
        .map(|f| (f, present.contains(f)))
        .collect();
    let dir = env!("CARGO_MANIFEST_DIR");
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("{} {}", std::env::consts::OS, s.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_string());
    Machine {
        cpu,
        flags,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        rustc: command("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
        git_commit: command("git", &["-C", dir, "rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        git_dirty: command("git", &["-C", dir, "status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty()),
        os,
    }
}

impl Machine {
    pub fn print(&self, suite: &str, full: bool) {
        println!("=== ctfs-core bench `{suite}`{} ===", if full { "" } else { " (SMOKE RUN: reduced sizes)" });
        let flags: Vec<String> =
            self.flags.iter().map(|(f, on)| format!("{f}={}", if *on { "yes" } else { "no" })).collect();
        println!("cpu: {} | cores: {} | {}", self.cpu, self.cores, flags.join(" "));
        println!(
            "{} | {} | ctfs-core {} @ {}{}{}",
            self.os,
            self.rustc,
            env!("CARGO_PKG_VERSION"),
            &self.git_commit[..self.git_commit.len().min(12)],
            if self.git_dirty { " (dirty)" } else { "" },
            if cfg!(debug_assertions) { " | WARNING: debug assertions on" } else { "" },
        );
        println!();
    }

    pub fn json(&self) -> Json {
        Json::obj(vec![
            ("cpu", Json::Str(self.cpu.clone())),
            ("cores", Json::Num(self.cores as f64)),
            ("flags", Json::Obj(self.flags.iter().map(|(f, on)| (f.to_string(), Json::Bool(*on))).collect())),
            ("os", Json::Str(self.os.clone())),
            ("rustc", Json::Str(self.rustc.clone())),
            ("crate_version", Json::Str(env!("CARGO_PKG_VERSION").into())),
            ("git_commit", Json::Str(self.git_commit.clone())),
            ("git_dirty", Json::Bool(self.git_dirty)),
            ("debug_assertions", Json::Bool(cfg!(debug_assertions))),
        ])
    }
}

// ---------------------------------------------------------------------- JSON

/// Just enough JSON for the summaries (no serde in dev-dependencies).
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn obj(fields: Vec<(&str, Json)>) -> Json {
        Json::Obj(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s.push('\n');
        s
    }

    fn write(&self, s: &mut String, indent: usize) {
        match self {
            Json::Null => s.push_str("null"),
            Json::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            Json::Num(x) if !x.is_finite() => s.push_str("null"),
            Json::Num(x) if x.fract() == 0.0 && x.abs() < 1e15 => {
                let _ = write!(s, "{}", *x as i64);
            }
            Json::Num(x) => {
                let _ = write!(s, "{x}");
            }
            Json::Str(t) => write_str(s, t),
            Json::Arr(v) => {
                s.push('[');
                for (i, x) in v.iter().enumerate() {
                    s.push_str(if i == 0 { "\n" } else { ",\n" });
                    pad(s, indent + 1);
                    x.write(s, indent + 1);
                }
                if !v.is_empty() {
                    s.push('\n');
                    pad(s, indent);
                }
                s.push(']');
            }
            Json::Obj(v) => {
                s.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    s.push_str(if i == 0 { "\n" } else { ",\n" });
                    pad(s, indent + 1);
                    write_str(s, k);
                    s.push_str(": ");
                    x.write(s, indent + 1);
                }
                if !v.is_empty() {
                    s.push('\n');
                    pad(s, indent);
                }
                s.push('}');
            }
        }
    }
}

fn pad(s: &mut String, indent: usize) {
    for _ in 0..indent {
        s.push_str("  ");
    }
}

fn write_str(s: &mut String, t: &str) {
    s.push('"');
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// Writes `<dir>/<suite>.json` when `CTFS_BENCH_JSON` names a directory.
pub fn write_json(suite: &str, json: &Json) {
    let Some(dir) = std::env::var_os("CTFS_BENCH_JSON") else { return };
    let dir = std::path::PathBuf::from(dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("CTFS_BENCH_JSON: cannot create {}: {e}", dir.display());
        return;
    }
    let path = dir.join(format!("{suite}.json"));
    match std::fs::write(&path, json.render()) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("CTFS_BENCH_JSON: cannot write {}: {e}", path.display()),
    }
}

/// Formats a count as 1K / 100K / 1M / 10M.
pub fn human(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}K", n / 1_000)
    } else {
        n.to_string()
    }
}
