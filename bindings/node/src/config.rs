//! Kernel and invariant options from JavaScript, validated into core types.

use std::rc::Rc;

use ctfs_core::custom::{Custom, CustomRule};
use ctfs_core::invariants::Builtin;
use ctfs_core::invariants::ggraph::DegreeLimits;
use ctfs_core::{AlgebraicClass, CausalityMode, KernelConfig, Multi};
use napi::bindgen_prelude::{BigInt, Buffer};
use napi::{Error, Result, Status};
use napi_derive::napi;

#[napi(object)]
pub struct NativeInvariantConfig {
    /// 'totalSupply' | 'max' | 'gCounter' | 'boundedGCounter' | 'lww' |
    /// 'uniqueness' | 'uniqueSet' | 'gGraph' | 'graph' | 'custom'
    pub kind: String,
    pub initial: Option<BigInt>,
    pub min: Option<BigInt>,
    pub max: Option<BigInt>,
    /// boundedGCounter
    pub bound: Option<BigInt>,
    /// uniqueSet
    pub max_elements: Option<BigInt>,
    /// graph
    pub max_edges: Option<BigInt>,
    /// gGraph / graph
    pub max_out_degree: Option<u32>,
    pub max_in_degree: Option<u32>,
    pub allow_self_loops: Option<bool>,
    /// custom: name, declared class, initial state bytes (1..=64), and the
    /// index of its apply function in the constructor's `rules`.
    pub name: Option<String>,
    pub class: Option<String>,
    pub initial_state: Option<Buffer>,
    pub rule: Option<u32>,
    /// custom: the author's rule version (default 1), part of the
    /// configuration fingerprint.
    pub version: Option<u32>,
}

#[napi(object)]
pub struct NativeKernelConfig {
    /// One invariant, or (with `members`) the first of several.
    pub invariant: NativeInvariantConfig,
    /// Several invariants on one fact stream (multi-invariant kernel).
    pub members: Option<Vec<NativeInvariantConfig>>,
    /// 'bloom' | 'exact' | 'escalating'
    pub causality: String,
    pub escalation_threshold: Option<f64>,
    pub max_payload_bytes: Option<u32>,
    pub max_deps: Option<u32>,
    pub max_facts: Option<f64>,
    /// Replicated admission on this replica (see `ctfs_core::replica`).
    pub replica: Option<NativeReplicaConfig>,
}

#[napi(object)]
pub struct NativeReplicaConfig {
    /// Every replica's node id (the same list on every replica).
    pub nodes: Vec<BigInt>,
    /// This replica's id.
    pub local: BigInt,
    pub escrow: Option<crate::escrow::NativeEscrowOptions>,
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

/// Exact BigInt -> u128 (`name` for the error message).
pub fn bigint_to_u128(b: &BigInt, name: &str) -> Result<u128> {
    let (neg, value, lossless) = b.get_u128();
    if neg && value != 0 || !lossless {
        return Err(invalid(format!("{name} must be a BigInt in [0, 2^128)")));
    }
    Ok(value)
}

/// Exact BigInt -> u64 (`name` for the error message).
pub fn bigint_to_u64(b: &BigInt, name: &str) -> Result<u64> {
    u64::try_from(bigint_to_u128(b, name)?).map_err(|_| invalid(format!("{name} must be a BigInt in [0, 2^64)")))
}

fn u128_of(v: &Option<BigInt>, name: &str, default: u128) -> Result<u128> {
    v.as_ref().map_or(Ok(default), |b| bigint_to_u128(b, name))
}

fn u64_opt(v: &Option<BigInt>, name: &str) -> Result<Option<u64>> {
    v.as_ref().map(|b| bigint_to_u64(b, name)).transpose()
}

fn class_of(name: &str) -> Result<AlgebraicClass> {
    Ok(match name {
        "group" => AlgebraicClass::Group,
        "semilattice" => AlgebraicClass::Semilattice,
        "commutativeMonoid" => AlgebraicClass::CommutativeMonoid,
        "bounded" => AlgebraicClass::Bounded,
        "lastWriterWins" => AlgebraicClass::LastWriterWins,
        "idempotentSet" => AlgebraicClass::IdempotentSet,
        "growOnlyGraph" => AlgebraicClass::GrowOnlyGraph,
        "nonCommutative" => AlgebraicClass::NonCommutative,
        other => return Err(invalid(format!("unknown algebraic class '{other}'"))),
    })
}

/// Builds one invariant. `rule` resolves a custom invariant's apply function.
pub fn invariant(cfg: &NativeInvariantConfig, rule: &mut dyn FnMut(u32) -> Result<Rc<dyn CustomRule>>) -> Result<Builtin> {
    let limits = || DegreeLimits {
        allow_self_loops: cfg.allow_self_loops.unwrap_or(false),
        max_out: cfg.max_out_degree,
        max_in: cfg.max_in_degree,
    };
    match cfg.kind.as_str() {
        "totalSupply" => {
            let initial = i128_of(&cfg.initial, "initial", 0)?;
            let min = i128_of(&cfg.min, "min", i128::MIN)?;
            let max = i128_of(&cfg.max, "max", i128::MAX)?;
            Builtin::total_supply(initial, min, max).map_err(invalid)
        }
        "max" => Ok(Builtin::max(i128_of(&cfg.initial, "initial", i128::MIN)?)),
        "gCounter" => Ok(Builtin::g_counter(u128_of(&cfg.initial, "initial", 0)?)),
        "boundedGCounter" => {
            let bound = cfg.bound.as_ref().ok_or_else(|| invalid("boundedGCounter needs a bound"))?;
            let bound = bigint_to_u128(bound, "bound")?;
            Builtin::bounded_g_counter_from(u128_of(&cfg.initial, "initial", 0)?, bound).map_err(invalid)
        }
        "lww" => Ok(Builtin::lww()),
        "uniqueness" => Ok(Builtin::uniqueness_cell()),
        "uniqueSet" => Builtin::unique_set(u64_opt(&cfg.max_elements, "maxElements")?).map_err(invalid),
        "gGraph" => Builtin::g_graph_cell(limits()).map_err(invalid),
        "graph" => Builtin::graph(limits(), u64_opt(&cfg.max_edges, "maxEdges")?).map_err(invalid),
        "custom" => {
            let name = cfg.name.as_deref().ok_or_else(|| invalid("a custom invariant needs a name"))?;
            let class = class_of(cfg.class.as_deref().ok_or_else(|| invalid("a custom invariant needs a class"))?)?;
            let initial = cfg.initial_state.as_ref().ok_or_else(|| invalid("a custom invariant needs an initial state"))?;
            let rule = rule(cfg.rule.ok_or_else(|| invalid("a custom invariant needs an apply function"))?)?;
            let custom = Custom::new(name, class, initial, rule).and_then(|c| c.with_version(cfg.version.unwrap_or(1)));
            Ok(Builtin::Custom(custom.map_err(invalid)?))
        }
        other => Err(invalid(format!("unknown invariant kind '{other}'"))),
    }
}

/// The kernel's invariant: one member, or several.
pub fn invariants(cfg: &NativeKernelConfig, rule: &mut dyn FnMut(u32) -> Result<Rc<dyn CustomRule>>) -> Result<Multi<Builtin>> {
    match &cfg.members {
        None => Ok(Multi::single(invariant(&cfg.invariant, rule)?)),
        Some(members) => {
            let built = members.iter().map(|m| invariant(m, rule)).collect::<Result<Vec<_>>>()?;
            Multi::new(built).map_err(invalid)
        }
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
