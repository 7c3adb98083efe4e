//! `inspect(dir)`: verifies a data directory without opening it for writing.

use napi::Result;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::durable::wal_error;

#[napi(object)]
pub struct NativeInspect {
    /// Human-readable report.
    pub text: String,
    /// Opening the directory (with the configuration given, if any) would succeed.
    pub healthy: bool,
    pub segments: u32,
    pub records: f64,
    pub first_seq: f64,
    pub last_seq: f64,
    pub checkpoints: u32,
    pub valid_checkpoints: u32,
    /// The configuration the directory records, readable (null: none).
    pub config: Option<String>,
    /// One line per damaged place: segment or checkpoint, offset, reason.
    pub damage: Vec<String>,
}

/// Scans segments and checkpoints of `dir` read-only; `fingerprint`: the
/// configuration it would be opened with (see `configFingerprint`).
#[napi(catch_unwind)]
pub fn inspect_dir(dir: String, fingerprint: Option<Buffer>) -> Result<NativeInspect> {
    let r = ctfs_wal::inspect(&dir, fingerprint.as_deref()).map_err(|e| wal_error(&e))?;
    Ok(NativeInspect {
        text: r.to_string(),
        healthy: r.is_healthy(),
        segments: r.segments.len() as u32,
        records: r.records as f64,
        first_seq: r.first_seq.unwrap_or(0) as f64,
        last_seq: r.last_seq.unwrap_or(0) as f64,
        checkpoints: r.checkpoints.len() as u32,
        valid_checkpoints: r.checkpoints.iter().filter(|c| c.valid).count() as u32,
        config: r.fingerprint.as_deref().map(ctfs_core::fingerprint::describe),
        damage: r
            .corruption
            .iter()
            .map(|(p, o, why)| format!("{} @ {o}: {why}", p.display()))
            .chain(r.torn_tail.iter().map(|(p, o, n)| format!("{} @ {o}: torn tail of {n} bytes (cut on open)", p.display())))
            .chain(r.covered.iter().map(|(p, o, why)| format!("{} @ {o}: {why} (not needed: open skips it)", p.display())))
            .chain(r.checkpoints.iter().filter(|c| !c.valid).map(|c| format!("{}: {}", c.path.display(), c.error.as_deref().unwrap_or("invalid"))))
            .collect(),
    })
}
