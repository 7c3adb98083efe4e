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

/// Exact BigInt -> i128 (napi's `get_i128` misreports -2^127).
pub fn bigint_to_i128(b: &BigInt) -> Option<i128> {
    let words: &[u64] = &b.words;
    let significant = words.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
    if significant > 2 {
        return None;
    }
    let magnitude = words.first().copied().unwrap_or(0) as u128 | (words.get(1).copied().unwrap_or(0) as u128) << 64;
    if b.sign_bit {
        if magnitude == i128::MIN.unsigned_abs() {
            Some(i128::MIN)
        } else {
            i128::try_from(magnitude).ok().map(|m| -m)
        }
    } else {
        i128::try_from(magnitude).ok()
    }
}

fn i128_of(v: &Option<BigInt>, name: &str, default: i128) -> Result<i128> {
    match v {
        None => Ok(default),
        Some(b) => bigint_to_i128(b)
            .ok_or_else(|| invalid(format!("{name} does not fit in a signed 128-bit integer"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(sign_bit: bool, words: &[u64]) -> BigInt {
        BigInt { sign_bit, words: words.to_vec() }
    }

    #[test]
    fn converts_the_whole_i128_range_exactly() {
        assert_eq!(bigint_to_i128(&big(true, &[0, 1 << 63])), Some(i128::MIN));
        assert_eq!(bigint_to_i128(&big(false, &[u64::MAX, u64::MAX >> 1])), Some(i128::MAX));
        assert_eq!(bigint_to_i128(&big(false, &[0, 1 << 63])), None);
        assert_eq!(bigint_to_i128(&big(true, &[1, 1 << 63])), None);
        assert_eq!(bigint_to_i128(&big(false, &[1, 0, 1])), None);
        assert_eq!(bigint_to_i128(&big(true, &[5, 0, 0])), Some(-5));
        assert_eq!(bigint_to_i128(&big(false, &[])), Some(0));
        assert_eq!(bigint_to_i128(&big(true, &[7])), Some(-7));
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
