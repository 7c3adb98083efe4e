//! `NativeEscrow`: the core's escrow manager (per-replica quotas of a global
//! bound, request/grant with backoff) for JavaScript. Amounts and node ids are
//! BigInts; messages are the core's fixed 41-byte encoding, ready for a
//! transport to carry.

use ctfs_core::escrow::{EscrowConfig, EscrowError, EscrowManager, GrantOutcome, NodeId, QuotaGrant, QuotaRequest};
use napi::bindgen_prelude::{BigInt, Buffer};

use crate::config::{bigint_to_u128, bigint_to_u64};
use napi::{Error, Result, Status};
use napi_derive::napi;

pub(crate) fn escrow_error(e: &EscrowError) -> Error {
    Error::new(Status::GenericFailure, format!("[{}] {e}", e.code()))
}

pub(crate) fn node_of(b: &BigInt, name: &str) -> Result<NodeId> {
    bigint_to_u64(b, name)
}

fn big(v: u128) -> BigInt {
    BigInt::from(v)
}

fn now(now_ms: f64) -> u64 {
    now_ms.max(0.0) as u64
}

/// Starts a quota request to `peer`: the encoded message, or None.
pub(crate) fn request(m: &mut EscrowManager, peer: &BigInt, amount: &BigInt, now_ms: f64) -> Result<Option<Buffer>> {
    let r = m
        .request_quota(node_of(peer, "peer")?, bigint_to_u128(amount, "amount")?, now(now_ms))
        .map_err(|e| escrow_error(&e))?;
    Ok(r.map(|r| Buffer::from(r.encode().to_vec())))
}

/// Answers an encoded request with an encoded grant.
pub(crate) fn answer(m: &mut EscrowManager, request: &[u8]) -> Result<Buffer> {
    let req = QuotaRequest::decode(request).map_err(|e| escrow_error(&e))?;
    let g = m.on_request(&req).map_err(|e| escrow_error(&e))?;
    Ok(Buffer::from(g.encode().to_vec()))
}

/// Applies an encoded grant: 'applied' | 'appliedLate' | 'denied' | 'ignored'.
pub(crate) fn apply_grant(m: &mut EscrowManager, grant: &[u8], now_ms: f64) -> Result<String> {
    let g = QuotaGrant::decode(grant).map_err(|e| escrow_error(&e))?;
    m.on_grant(&g, now(now_ms)).map(outcome_str).map_err(|e| escrow_error(&e))
}

#[napi(object)]
pub struct NativeEscrowOptions {
    pub backoff_base_ms: Option<f64>,
    pub backoff_max_ms: Option<f64>,
    pub max_attempts: Option<u32>,
    pub reserve_percent: Option<u32>,
}

pub(crate) fn config_of(o: Option<&NativeEscrowOptions>) -> Result<EscrowConfig> {
    let mut c = EscrowConfig::default();
    if let Some(o) = o {
        let ms = |v: f64, n: &str| -> Result<u64> {
            if v.is_finite() && v >= 1.0 && v.fract() == 0.0 { Ok(v as u64) } else { Err(Error::new(Status::InvalidArg, format!("{n} must be a positive integer of milliseconds"))) }
        };
        if let Some(v) = o.backoff_base_ms {
            c.backoff_base_ms = ms(v, "backoffBaseMs")?;
        }
        if let Some(v) = o.backoff_max_ms {
            c.backoff_max_ms = ms(v, "backoffMaxMs")?;
        }
        if let Some(v) = o.max_attempts {
            c.max_attempts = v.max(1);
        }
        if let Some(v) = o.reserve_percent {
            if v > 100 {
                return Err(Error::new(Status::InvalidArg, "reservePercent must be 0..=100"));
            }
            c.reserve_percent = v as u8;
        }
    }
    Ok(c)
}

#[napi(object)]
pub struct NativeQuota {
    pub node: BigInt,
    pub quota: BigInt,
    pub consumed: BigInt,
    pub available: BigInt,
}

#[napi(object)]
pub struct NativePoll {
    pub resend: Vec<Buffer>,
    pub gave_up: Vec<Buffer>,
}

fn outcome_str(o: GrantOutcome) -> String {
    match o {
        GrantOutcome::Applied { .. } => "applied",
        GrantOutcome::AppliedLate { .. } => "appliedLate",
        GrantOutcome::Denied => "denied",
        GrantOutcome::Ignored => "ignored",
    }
    .to_owned()
}

pub(crate) fn quotas_of(m: &EscrowManager) -> Vec<NativeQuota> {
    m.nodes()
        .map(|n| NativeQuota {
            node: BigInt::from(n),
            quota: big(m.quota(n).unwrap_or(0)),
            consumed: big(m.consumed(n).unwrap_or(0)),
            available: big(m.available(n).unwrap_or(0)),
        })
        .collect()
}

pub(crate) fn poll_of(m: &mut EscrowManager, now_ms: f64) -> NativePoll {
    let p = m.poll(now(now_ms));
    NativePoll {
        resend: p.resend.iter().map(|r| Buffer::from(r.encode().to_vec())).collect(),
        gave_up: p.gave_up.iter().map(|r| Buffer::from(r.encode().to_vec())).collect(),
    }
}

#[napi]
pub struct NativeEscrow {
    m: EscrowManager,
}

#[napi]
impl NativeEscrow {
    /// A ledger over `total` (call `initialize`), or with `local` set, one
    /// replica's view.
    #[napi(constructor, catch_unwind)]
    pub fn new(total: BigInt, options: Option<NativeEscrowOptions>) -> Result<Self> {
        Ok(NativeEscrow { m: EscrowManager::with_config(bigint_to_u128(&total, "total")?, config_of(options.as_ref())?) })
    }

    #[napi(catch_unwind)]
    pub fn initialize(&mut self, nodes: Vec<BigInt>) -> Result<()> {
        let nodes = nodes.iter().map(|n| node_of(n, "node")).collect::<Result<Vec<_>>>()?;
        self.m.initialize(&nodes).map_err(|e| escrow_error(&e))
    }

    #[napi(catch_unwind)]
    pub fn set_local(&mut self, node: BigInt) -> Result<()> {
        self.m.set_local(node_of(&node, "node")?).map_err(|e| escrow_error(&e))
    }

    #[napi(catch_unwind)]
    pub fn total(&self) -> BigInt {
        big(self.m.total())
    }

    #[napi(catch_unwind)]
    pub fn quotas(&self) -> Vec<NativeQuota> {
        quotas_of(&self.m)
    }

    #[napi(catch_unwind)]
    pub fn try_consume(&mut self, node: BigInt, amount: BigInt) -> Result<()> {
        self.m.try_consume(node_of(&node, "node")?, bigint_to_u128(&amount, "amount")?).map_err(|e| escrow_error(&e))
    }

    #[napi(catch_unwind)]
    pub fn release(&mut self, node: BigInt, amount: BigInt) -> Result<()> {
        self.m.release(node_of(&node, "node")?, bigint_to_u128(&amount, "amount")?).map_err(|e| escrow_error(&e))
    }

    #[napi(catch_unwind)]
    pub fn credit(&mut self, node: BigInt, amount: BigInt) -> Result<()> {
        self.m.credit(node_of(&node, "node")?, bigint_to_u128(&amount, "amount")?).map_err(|e| escrow_error(&e))
    }

    #[napi(catch_unwind)]
    pub fn transfer(&mut self, from: BigInt, to: BigInt, amount: BigInt) -> Result<()> {
        self.m
            .transfer(node_of(&from, "from")?, node_of(&to, "to")?, bigint_to_u128(&amount, "amount")?)
            .map_err(|e| escrow_error(&e))
    }

    /// A quota request to send to `peer`, or null when one is already pending
    /// or the peer is in backoff.
    #[napi(catch_unwind)]
    pub fn request_quota(&mut self, peer: BigInt, amount: BigInt, now_ms: f64) -> Result<Option<Buffer>> {
        request(&mut self.m, &peer, &amount, now_ms)
    }

    /// The grant answering an encoded request (amount 0 = denial).
    #[napi(catch_unwind)]
    pub fn on_request(&mut self, request: &[u8]) -> Result<Buffer> {
        answer(&mut self.m, request)
    }

    /// Applies an encoded grant: 'applied' | 'appliedLate' | 'denied' | 'ignored'.
    #[napi(catch_unwind)]
    pub fn on_grant(&mut self, grant: &[u8], now_ms: f64) -> Result<String> {
        apply_grant(&mut self.m, grant, now_ms)
    }

    /// Requests due for a resend (exponential backoff 500 ms → 4 s) and
    /// requests given up.
    #[napi(catch_unwind)]
    pub fn poll(&mut self, now_ms: f64) -> NativePoll {
        poll_of(&mut self.m, now_ms)
    }

    #[napi(catch_unwind)]
    pub fn pending(&self) -> u32 {
        self.m.pending_len() as u32
    }
}
