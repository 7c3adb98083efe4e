//! Shared helpers of the ctfs-wal benches: machine record (CPU, flags,
//! cores, kernel, file system of the bench dir), bench dir, real ids,
//! percentiles, tiny JSON output (`CTFS_BENCH_JSON=<dir>`).

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `true` under `cargo bench`; a smoke run (small sizes) otherwise.
pub fn full_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    has("--bench") && !has("--test") && !has("--list")
}

/// A real fact id: BLAKE3 of the counter.
pub fn id(n: u64) -> [u8; 32] {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

/// `CTFS_BENCH_DIR` or `<workspace>/target/ctfs-wal-bench`, plus `sub`,
/// emptied.
pub fn bench_dir(sub: &str) -> PathBuf {
    let base = std::env::var_os("CTFS_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ctfs-wal-bench"));
    let d = base.join(sub);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create bench dir");
    d
}

fn field(cpuinfo: &str, name: &str) -> Option<String> {
    cpuinfo.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string())
}

/// File system type and device of the mount holding `p`.
pub fn fs_of(p: &Path) -> String {
    let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        if p.starts_with(f[1]) && best.as_ref().is_none_or(|(n, _)| f[1].len() > *n) {
            best = Some((f[1].len(), format!("{} on {} ({})", f[2], f[1], f[0])));
        }
    }
    best.map(|b| b.1).unwrap_or_else(|| "unknown".into())
}

pub fn machine_line(suite: &str, full: bool, dir: &Path) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags_line = field(&cpuinfo, "flags").unwrap_or_default();
    let present: std::collections::HashSet<&str> = flags_line.split_whitespace().collect();
    let flags: Vec<String> = ["avx2", "avx512f", "sha_ni", "sse4_2", "pclmulqdq"]
        .iter()
        .map(|f| format!("{f}={}", if present.contains(f) { "yes" } else { "no" }))
        .collect();
    let kv = vec![
        ("suite".to_string(), suite.to_string()),
        ("mode".to_string(), if full { "full".into() } else { "SMOKE (reduced sizes)".into() }),
        ("cpu".to_string(), field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into())),
        ("flags".to_string(), flags.join(" ")),
        ("cores".to_string(), std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0).to_string()),
        (
            "kernel".to_string(),
            std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default(),
        ),
        ("bench_dir".to_string(), dir.display().to_string()),
        ("fs".to_string(), fs_of(dir)),
        (
            "io_uring".to_string(),
            match ctfs_wal::io_uring_available() {
                Ok(()) => "available".into(),
                Err(r) => format!("unavailable: {r}"),
            },
        ),
        ("debug_assertions".to_string(), cfg!(debug_assertions).to_string()),
    ];
    println!("=== ctfs-wal bench `{suite}` ===");
    for (k, v) in &kv {
        println!("{k}: {v}");
    }
    println!("note: shared, virtual machine; compare ratios to the in-run control, not absolutes");
    println!();
    kv
}

/// Percentile (nearest rank) of sorted nanoseconds.
pub fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let k = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

pub fn us(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

pub fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-12)
}

/// Just enough JSON.
pub enum Json {
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn obj(v: Vec<(&str, Json)>) -> Json {
        Json::Obj(v.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
    pub fn render(&self, s: &mut String) {
        match self {
            Json::Num(x) if !x.is_finite() => s.push_str("null"),
            Json::Num(x) => {
                let _ = write!(s, "{x}");
            }
            Json::Str(t) => {
                s.push('"');
                for c in t.chars() {
                    match c {
                        '"' => s.push_str("\\\""),
                        '\\' => s.push_str("\\\\"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(s, "\\u{:04x}", c as u32);
                        }
                        c => s.push(c),
                    }
                }
                s.push('"');
            }
            Json::Arr(v) => {
                s.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    x.render(s);
                }
                s.push(']');
            }
            Json::Obj(v) => {
                s.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    Json::Str(k.clone()).render(s);
                    s.push(':');
                    x.render(s);
                }
                s.push('}');
            }
        }
    }
}

/// Writes `<CTFS_BENCH_JSON>/<suite>.json` when that env var names a dir.
pub fn write_json(suite: &str, machine: &[(String, String)], results: Vec<Json>) {
    let Some(dir) = std::env::var_os("CTFS_BENCH_JSON") else { return };
    let dir = PathBuf::from(dir);
    let _ = std::fs::create_dir_all(&dir);
    let j = Json::obj(vec![
        ("machine", Json::Obj(machine.iter().map(|(k, v)| (k.clone(), Json::Str(v.clone()))).collect())),
        ("results", Json::Arr(results)),
    ]);
    let mut s = String::new();
    j.render(&mut s);
    s.push('\n');
    let p = dir.join(format!("{suite}.json"));
    match std::fs::write(&p, s) {
        Ok(()) => println!("wrote {}", p.display()),
        Err(e) => eprintln!("CTFS_BENCH_JSON: {}: {e}", p.display()),
    }
}
