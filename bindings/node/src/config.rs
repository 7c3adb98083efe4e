//! Kernel and invariant options from JavaScript, validated into core types.

use ctfs_core::invariants::{Builtin, TotalSupply};
use ctfs_core::{CausalityMode, KernelConfig};
use napi::bindgen_prelude::BigInt;
use napi::{Error, Result, Status};
use napi_derive::napi;

#[napi(object)]
pub struct NativeInvariantConfig {
    /// 'totalSupply'
    pub kind: String,
    pub initial: Option<BigInt>,
    pub min: Option<BigInt>,
    pub max: Option<BigInt>,
}

#[napi(object)]
pub struct NativeKernelConfig {
    pub invariant: NativeInvariantConfig,
    /// 'bloom' | 'exact' | 'escalating'
    pub causality: String,
    pub escalation_threshold: Option<f64>,
    pub max_payload_bytes: Option<u32>,
    pub max_deps: Option<u32>,
    pub max_facts: Option<f64>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, msg.into())
}

fn i128_of(v: &Option<BigInt>, name: &str, default: i128) -> Result<i128> {
    match v {
        None => Ok(default),
        Some(b) => {
            let (value, lossless) = b.get_i128();
            if lossless { Ok(value) } else { Err(invalid(format!("{name} does not fit in a signed 128-bit integer"))) }
        }
    }
}

pub fn invariant(cfg: &NativeInvariantConfig) -> Result<Builtin> {
    match cfg.kind.as_str() {
        "totalSupply" => {
            let initial = i128_of(&cfg.initial, "initial", 0)?;
            let min = i128_of(&cfg.min, "min", i128::MIN)?;
            let max = i128_of(&cfg.max, "max", i128::MAX)?;
            Ok(Builtin::TotalSupply(TotalSupply::new(initial, min, max).map_err(invalid)?))
        }
        other => Err(invalid(format!("unknown invariant kind '{other}'"))),
    }
}

pub fn kernel(cfg: &NativeKernelConfig) -> Result<KernelConfig> {
    let mode = match cfg.causality.as_str() {
        "bloom" => CausalityMode::Bloom,
        "exact" => CausalityMode::Exact,
        "escalating" => CausalityMode::Escalating {
            threshold: cfg.escalation_threshold.unwrap_or(CausalityMode::DEFAULT_ESCALATION_THRESHOLD),
        },
        other => return Err(invalid(format!("causality must be 'bloom', 'exact' or 'escalating', got '{other}'"))),
    };
    let mut k = KernelConfig::new(mode);
    if let Some(v) = cfg.max_payload_bytes {
        k.max_payload = v as usize;
    }
    if let Some(v) = cfg.max_deps {
        k.max_deps = v as usize;
    }
    if let Some(v) = cfg.max_facts {
        if !(v.is_finite() && v >= 1.0 && v.fract() == 0.0) {
            return Err(invalid(format!("maxFacts must be a positive integer, got {v}")));
        }
        k.max_facts = if v > usize::MAX as f64 { usize::MAX } else { v as usize };
    }
    k.validate().map_err(invalid)?;
    Ok(k)
}
