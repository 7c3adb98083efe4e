//! `NativeKernel`: one default causal domain plus named tenant domains.
//! Domain 0 is the kernel itself; domain `n > 0` is tenant slot `n - 1`.

use ctfs_core::batch::{admit_packed, admit_packed_with};
use ctfs_core::custom::CustomRule;
use ctfs_core::invariants::Builtin;
use ctfs_core::{
    AdmitError, BloomClock, Containment, ErrorCode, FactId, Frontier, Invariant, Kernel, Multi, Requirement, Tenants,
};
use std::cell::RefCell;
use std::rc::Rc;

use ctfs_core::metrics::{self, now_ns};
use napi::bindgen_prelude::{Buffer, Env, Unknown};
use napi::{Error, JsValue, Result, Status};
use napi_derive::napi;

use crate::config::{self, NativeKernelConfig};
use crate::durable::{self, DurableLog, LogOptions, ReplayError};
use crate::js_rule::JsRule;
use ctfs_core::replica::{Replication, Side};

/// The binding's kernel: one or several built-in (or custom) invariants.
type Inv = Multi<Builtin>;

#[napi(object)]
pub struct NativeError {
    pub code: String,
    pub message: String,
    pub fact_id: Option<Buffer>,
    pub missing: Option<Buffer>,
    pub dep_index: Option<u32>,
}

#[napi(object)]
pub struct NativeBatchError {
    pub index: u32,
    pub error: NativeError,
}

#[napi(object)]
pub struct NativeFrontier {
    pub clock: Buffer,
    pub count: f64,
    pub digest: Buffer,
    /// The newest ids, newest first, packed (n * 32 bytes).
    pub recent: Buffer,
}

#[napi(object)]
pub struct NativeView {
    pub state: Buffer,
    pub frontier: NativeFrontier,
}

#[napi(object)]
pub struct NativeStats {
    pub admitted: f64,
    /// Refusals per status code (index = code).
    pub rejected: Vec<f64>,
    pub bloom_popcount: u32,
    pub bloom_saturation: f64,
    pub bloom_false_positive_rate: f64,
    pub tracked: f64,
    pub index_bytes: f64,
    pub escalated: bool,
    pub escalated_at: Option<f64>,
}

#[napi(object)]
pub struct NativeInfo {
    pub mode: String,
    pub invariant: String,
    pub class: String,
    pub coordination: String,
    pub max_payload_bytes: u32,
    pub max_deps: u32,
    pub max_facts: f64,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, msg.into())
}

fn to_native_error(e: &AdmitError) -> NativeError {
    let (missing, dep_index) = match e {
        AdmitError::CausalityViolation { missing, index, .. } => {
            (Some(Buffer::from(missing.0.to_vec())), Some(*index as u32))
        }
        _ => (None, None),
    };
    NativeError {
        code: e.code().as_str().to_owned(),
        message: e.to_string(),
        fact_id: e.fact_id().map(|id| Buffer::from(id.0.to_vec())),
        missing,
        dep_index,
    }
}

fn frontier_of(f: &Frontier) -> NativeFrontier {
    let canon = f.canonical_bytes();
    let recent: Vec<u8> = f.recent.recent().flat_map(|id| id.0).collect();
    NativeFrontier {
        clock: Buffer::from(f.clock.to_bytes().to_vec()),
        count: f.count as f64,
        digest: Buffer::from(canon[72..104].to_vec()),
        recent: Buffer::from(recent),
    }
}

#[inline(always)]
pub(crate) fn deps_of(deps: &[u8]) -> Result<&[FactId]> {
    match FactId::slice_from_bytes(deps) {
        Some(d) => Ok(d),
        None => Err(bad_deps(deps.len())),
    }
}

#[cold]
fn bad_deps(len: usize) -> Error {
    invalid(format!("deps must be packed 32-byte ids; got {len} bytes"))
}

/// The id in `id`, borrowed (an admission reads it where it lies: a copy
/// returned through a `Result` costs a store-forwarding stall per read).
#[inline(always)]
pub(crate) fn id_of(id: &[u8]) -> Result<&FactId> {
    match FactId::slice_from_bytes(id) {
        Some([one]) => Ok(one),
        _ => Err(bad_id(id.len())),
    }
}

#[cold]
fn bad_id(len: usize) -> Error {
    invalid(format!("id must be 32 bytes, got {len}"))
}

/// The kernel proper: a default domain, tenant domains and the details of the
/// last refusals. Shared (`Rc<RefCell<_>>`) between the napi-rs class and the
/// raw N-API fast path (see `fast.rs`); the `RefCell` turns a re-entrant call
/// into a clean error instead of aliasing.
pub(crate) struct KernelState {
    pub(crate) main: Kernel<Inv>,
    pub(crate) tenants: Tenants<Inv>,
    last_error: Option<AdmitError>,
    batch_errors: Vec<(u32, AdmitError)>,
    /// The write-ahead log of a durable kernel (domain 0 only).
    pub(crate) log: Option<DurableLog>,
    /// Replicated admission gate (domain 0 only).
    pub(crate) replication: Option<Replication>,
    pub(crate) closed: bool,
    /// The env cleanup hook of a durable kernel (env, hook data), removed
    /// by `close()`.
    teardown_hook: Option<(napi::sys::napi_env, *mut std::ffi::c_void)>,
    /// The replication protocol, once attached (domain 0 only).
    pub(crate) sync: Option<Box<ctfs_sync::Node>>,
    /// The replica option's node list (for the protocol).
    replica_nodes: Vec<u64>,
    /// Durable replicated kernels: the recovered protocol state, until
    /// `syncAttach` hands it to the protocol.
    pub(crate) pending_sync: Option<Box<crate::sync::SyncRecovery>>,
    /// Durable replicated kernels: what may be pushed, frames held for the log.
    pub(crate) durable_sync: crate::sync::DurableSync,
    /// Picks the single admissions that are timed (metrics).
    sampler: metrics::Sampler,
    /// The invariant calls JavaScript (custom rules) during admission: the
    /// shared-scratch fast path is not offered (a rule could write the
    /// scratch while an admission reads it).
    pub(crate) runs_js: bool,
    /// Its slots in the thread's admission targets (`targets.rs`), freed
    /// when it is dropped.
    pub(crate) fast_slots: Vec<u32>,
}

pub(crate) type SharedKernel = Rc<RefCell<KernelState>>;

/// A kernel dropped without `close()` (its JS objects were collected):
/// dropping the log drains and syncs what is queued, stops the writer and
/// unlocks the directory (`Wal`'s `Drop`); here the env cleanup hook that
/// would otherwise outlive it is removed. Runs on the JS thread (napi-rs
/// finalizers), never from the cleanup hook itself (which clears the field
/// first).
impl Drop for KernelState {
    fn drop(&mut self) {
        if let Some((env, data)) = self.teardown_hook.take() {
            // SAFETY: on the JS thread of `env`; the hook was registered with
            // exactly this function and data and has not run (it clears
            // `teardown_hook` when it does).
            unsafe {
                napi::sys::napi_remove_env_cleanup_hook(env, Some(close_at_teardown), data);
                drop(Box::from_raw(data as *mut std::rc::Weak<RefCell<KernelState>>));
            }
        }
        if let Some(mut log) = self.log.take() {
            let _ = log.wal_mut().close();
        }
        crate::targets::release(&self.fast_slots);
    }
}

impl KernelState {
    #[inline]
    fn domain(&mut self, d: u32) -> Result<&mut Kernel<Inv>> {
        self.route(d).map(|r| r.kernel)
    }

    /// Fails unless domain `d` exists.
    pub(crate) fn check_domain(&mut self, d: u32) -> Result<()> {
        self.domain(d).map(|_| ())
    }

    /// Where an admission into domain `d` goes: its kernel, and for domain
    /// 0 the replication gate and the log.
    #[inline(always)]
    fn route(&mut self, d: u32) -> Result<Route<'_>> {
        if d == 0 {
            return Ok(Route {
                kernel: &mut self.main,
                gate: self.replication.as_mut(),
                log: self.log.as_mut(),
                sync: self.sync.as_deref_mut(),
                pre: self.pending_sync.as_deref_mut(),
                local_durable: Some(&mut self.durable_sync.local),
                tenant: None,
                closed: self.closed,
            });
        }
        let kernel = self.tenants.by_slot(d as usize - 1).ok_or_else(|| invalid(format!("no tenant domain {d}")))?;
        // (the tenants and the log are distinct fields: both borrowed at once)
        Ok(Route { kernel, gate: None, log: self.log.as_mut(), sync: None, pre: None, local_durable: None, tenant: Some(d - 1), closed: self.closed })
    }

    #[inline(always)]
    fn status(&mut self, r: std::result::Result<(), AdmitError>) -> u32 {
        match r {
            Ok(()) => 0,
            Err(e) => {
                let code = e.code() as u32;
                self.last_error = Some(e);
                code
            }
        }
    }

    /// Admits one fact (`id: None` derives one) in `domain`; one call in 64
    /// is timed (metrics). When nothing wraps the kernel
    /// ([`Route::is_plain`]) the kernel runs it as `plain` says, so that no
    /// admission result travels through [`Route::admit`]: the result carries
    /// the id unaligned, and each copy of it stalls the CPU's store
    /// forwarding (measured: ~35 ns of a ~260 ns early-refused crossing).
    /// `routed` turns a routed admission's id into what `plain` returns.
    #[inline]
    fn admit_one<T>(
        &mut self,
        domain: u32,
        id: Option<&FactId>,
        deps: &[FactId],
        payload: &[u8],
        plain: impl FnOnce(&mut Kernel<Inv>) -> std::result::Result<T, AdmitError>,
        routed: impl FnOnce(FactId) -> T,
    ) -> Result<std::result::Result<T, AdmitError>> {
        if self.sampler.due() {
            return Ok(self.admit_one_timed(domain, id, deps, payload)?.map(routed));
        }
        let route = self.route(domain)?;
        Ok(if route.is_plain() { plain(route.kernel) } else { route.admit(id, deps, payload).map(routed) })
    }

    /// One admission (`id: None` derives one) in `domain`, through its route,
    /// timed into the domain's admission histogram (one single admission in
    /// 64); a durable kernel also starts a durable-ack measurement.
    #[cold]
    #[inline(never)]
    fn admit_one_timed(&mut self, domain: u32, id: Option<&FactId>, deps: &[FactId], payload: &[u8]) -> Result<std::result::Result<FactId, AdmitError>> {
        let t0 = now_ns();
        let r = self.route(domain)?.admit(id, deps, payload);
        let dt = now_ns().saturating_sub(t0);
        if let Ok(k) = self.domain(domain) {
            k.metrics_mut().admit_ns.record(dt);
        }
        if r.is_ok()
            && let Some(log) = self.log.as_ref()
        {
            log.wal().mark_ack();
        }
        Ok(r)
    }

    /// Admits a fact with the caller's id. Returns 0 or an error status.
    #[inline]
    pub(crate) fn admit_with_id(&mut self, domain: u32, id: &[u8], payload: &[u8], deps: &[u8]) -> Result<u32> {
        let id = id_of(id)?;
        let deps = deps_of(deps)?;
        let r = self.admit_one(domain, Some(id), deps, payload, |k| k.admit(id, deps, payload), |_| ())?;
        Ok(self.status(r))
    }

    /// Admits a fact with a derived id, written into `out` (32 bytes).
    #[inline]
    pub(crate) fn admit_derived(&mut self, domain: u32, out: &mut [u8], payload: &[u8], deps: &[u8]) -> Result<u32> {
        if out.len() != FactId::LEN {
            return Err(invalid("output id buffer must be 32 bytes"));
        }
        let deps = deps_of(deps)?;
        let r = self.admit_one(domain, None, deps, payload, |k| k.admit_derived(deps, payload), |id| id)?;
        let r = r.map(|id| out.copy_from_slice(&id.0));
        Ok(self.status(r))
    }

    /// Admits a packed batch (see `ctfs_core::batch`); `results[i]` receives
    /// record i's status. Returns the number of records read.
    pub(crate) fn admit_batch(&mut self, domain: u32, packed: &mut [u8], results: &mut [u8]) -> Result<u32> {
        let t0 = if metrics::ENABLED { now_ns() } else { 0 };
        let mut errors = std::mem::take(&mut self.batch_errors);
        errors.clear();
        let route = self.route(domain)?;
        let summary = if route.is_plain() {
            // Nothing wraps the kernel: the core's own batch loop (see `admit_one`).
            admit_packed(route.kernel, packed, results, |i, e| errors.push((i as u32, e)))
        } else {
            let Route { kernel, mut gate, mut log, mut sync, mut pre, mut local_durable, tenant, closed } = route;
            // The batch's records reach the log writer together (one wake at the end).
            if let Some(l) = log.as_deref_mut() {
                l.wal_mut().hold_wakes();
            }
            let summary = admit_packed_with(kernel, packed, results, |i, e| errors.push((i as u32, e)), |k, id, deps, payload| {
                Route {
                    kernel: k,
                    gate: gate.as_deref_mut(),
                    log: log.as_deref_mut(),
                    sync: sync.as_deref_mut(),
                    pre: pre.as_deref_mut(),
                    local_durable: local_durable.as_deref_mut(),
                    tenant,
                    closed,
                }
                .admit(id, deps, payload)
            });
            if let Some(l) = log {
                l.wal_mut().release_wakes();
            }
            summary
        };
        self.batch_errors = errors;
        // Timed per call, outside the per-record loop (no clock read in it).
        if metrics::ENABLED {
            let dt = now_ns().saturating_sub(t0);
            if let Ok(k) = self.domain(domain) {
                let m = k.metrics_mut();
                m.batch_records.record(summary.records as u64);
                m.batch_ns.record(dt);
            }
            if summary.admitted > 0
                && let Some(log) = self.log.as_ref()
            {
                log.wal().mark_ack();
            }
        }
        Ok(summary.records as u32)
    }
}

/// One admission's way through a domain: the kernel, and around it (domain
/// 0 only) the replication gate and the log's checks (see `durable.rs`).
struct Route<'a> {
    kernel: &'a mut Kernel<Inv>,
    gate: Option<&'a mut Replication>,
    log: Option<&'a mut DurableLog>,
    /// Facts admitted here are numbered and queued for peers.
    sync: Option<&'a mut ctfs_sync::Node>,
    /// ... or numbered by the recovered state until the protocol attaches.
    pre: Option<&'a mut crate::sync::SyncRecovery>,
    /// Durable replicated kernels: (log seq, origin seq) of local facts.
    local_durable: Option<&'a mut std::collections::VecDeque<(u64, u64)>>,
    /// A tenant's domain: its slot, logged with its facts.
    tenant: Option<u32>,
    closed: bool,
}

impl Route<'_> {
    /// Nothing wraps the kernel (no replication gate, log or sync, not
    /// closed): then [`Route::admit`] would only call it.
    #[inline(always)]
    fn is_plain(&self) -> bool {
        self.gate.is_none() && self.log.is_none() && self.sync.is_none() && self.pre.is_none() && !self.closed
    }

    #[inline]
    fn admit(self, id: Option<&FactId>, deps: &[FactId], payload: &[u8]) -> std::result::Result<FactId, AdmitError> {
        let Route { kernel, gate, mut log, sync, pre, local_durable, tenant, closed } = self;
        let numbered = sync.is_some() || pre.is_some();
        let refuse = |kernel: &mut Kernel<Inv>, e: AdmitError| {
            kernel.note_refusal(e.code());
            Err(e)
        };
        if closed {
            return refuse(kernel, durable::log_refusal(&ctfs_wal::WalError::Closed));
        }
        if let Some(log) = log.as_deref_mut() {
            let r = if numbered {
                log.reserve_with_origin(deps.len(), payload.len())
            } else if tenant.is_some() {
                log.reserve_tenant(deps.len(), payload.len())
            } else {
                log.reserve(deps.len(), payload.len())
            };
            if let Err(e) = r {
                return refuse(kernel, e);
            }
        }
        let r = match (gate, id) {
            (Some(g), _) => g.admit_local(kernel, id, deps, payload),
            (None, Some(id)) => kernel.admit(id, deps, payload).map(|()| *id),
            (None, None) => kernel.admit_derived(deps, payload),
        };
        if let Ok(admitted) = &r {
            let origin = match (sync, pre) {
                (Some(node), _) => Some((node.origin(), node.local_fact(admitted, deps, payload))),
                (None, Some(pre)) => Some(pre.local_fact(admitted, deps, payload)),
                (None, None) => None,
            };
            if let Some(log) = log {
                match origin {
                    Some((o, oseq)) => {
                        let seq = log.append_with_origin(admitted, deps, payload, id.is_none(), o, oseq);
                        if let Some(q) = local_durable {
                            q.push_back((seq, oseq));
                        }
                    }
                    None => match tenant {
                        Some(slot) => {
                            log.append_tenant(admitted, deps, payload, id.is_none(), slot);
                        }
                        None => {
                            log.append(admitted, deps, payload, id.is_none());
                        }
                    },
                }
            }
        }
        r
    }
}

/// Every member's 64-byte cell, in member order.
fn cells_of(states: &[ctfs_core::invariants::builtin::BuiltinState]) -> Buffer {
    Buffer::from(states.iter().flat_map(|s| s.cell.0).collect::<Vec<u8>>())
}

/// Builds the invariant(s) and the kernel state from a JS config.
fn build_invariants(env: &Env, cfg: &NativeKernelConfig, rules: &[Unknown<'_>]) -> Result<Inv> {
    let mut rule = |i: u32| -> Result<Rc<dyn CustomRule>> {
        let f = rules.get(i as usize).ok_or_else(|| invalid(format!("no apply function at rules[{i}]")))?;
        if f.get_type()? != napi::ValueType::Function {
            return Err(invalid(format!("rules[{i}] must be a function")));
        }
        // SAFETY: env and the function value are valid for this call.
        Ok(Rc::new(unsafe { JsRule::new(env.raw(), f.raw())? }))
    };
    config::invariants(cfg, &mut rule)
}

fn build_state(env: &Env, cfg: &NativeKernelConfig, rules: &[Unknown<'_>]) -> Result<KernelState> {
    let inv = build_invariants(env, cfg, rules)?;
    let kcfg = config::kernel(cfg)?;
    let main = Kernel::try_new(inv.clone(), kcfg.clone()).map_err(invalid)?;
    let tenants = Tenants::new(inv, kcfg).map_err(invalid)?;
    let mut replica_nodes = Vec::new();
    let replication = match &cfg.replica {
        None => None,
        Some(r) => {
            let nodes = r.nodes.iter().map(|n| crate::escrow::node_of(n, "replica.nodes[]")).collect::<Result<Vec<_>>>()?;
            let local = crate::escrow::node_of(&r.local, "replica.local")?;
            let ecfg = crate::escrow::config_of(r.escrow.as_ref())?;
            let gate = Replication::new(&main, &nodes, local, ecfg).map_err(|e| crate::escrow::escrow_error(&e))?;
            replica_nodes = nodes;
            Some(gate)
        }
    };
    Ok(KernelState {
        main,
        tenants,
        last_error: None,
        batch_errors: Vec::new(),
        log: None,
        replication,
        closed: false,
        teardown_hook: None,
        sync: None,
        replica_nodes,
        pending_sync: None,
        durable_sync: Default::default(),
        sampler: Default::default(),
        runs_js: !rules.is_empty(),
        fast_slots: Vec::new(),
    })
}

/// The configuration fingerprint of a kernel (see `ctfs_core::fingerprint`).
fn fingerprint_of(main: &Kernel<Inv>, member_names: Option<&[String]>) -> Result<Vec<u8>> {
    ctfs_core::Fingerprint::of_kernel(main.invariant(), main.config(), member_names)
        .map(|f| f.encode())
        .map_err(|e| invalid(format!("[INVALID_ARGUMENT] {e}")))
}

/// The configuration fingerprint a durable kernel with this configuration
/// records (for `inspect(dir, options)`). Custom rules are not needed: a
/// rule is identified by its name, class, version and initial state.
#[napi(catch_unwind)]
pub fn config_fingerprint(cfg: NativeKernelConfig, member_names: Option<Vec<String>>) -> Result<Buffer> {
    let mut rule = |_: u32| -> Result<Rc<dyn CustomRule>> {
        Ok(Rc::new(|_: &ctfs_core::Fact<'_>, _: &mut [u8]| Ok::<(), ctfs_core::InvariantError>(())))
    };
    let inv = config::invariants(&cfg, &mut rule)?;
    let main = Kernel::try_new(inv, config::kernel(&cfg)?).map_err(invalid)?;
    fingerprint_of(&main, member_names.as_deref()).map(Buffer::from)
}

#[napi(object)]
pub struct NativeDurableConfig {
    pub dir: String,
    /// 'auto' (default) | 'io_uring' | 'portable'
    pub backend: Option<String>,
    /// Truncate the log at a corrupt record instead of refusing to open.
    pub truncate_corrupt: Option<bool>,
    pub buffer_bytes: Option<u32>,
    pub segment_bytes: Option<u32>,
    /// Member names of a multi-invariant kernel, in member order (part of
    /// the configuration fingerprint).
    pub member_names: Option<Vec<String>>,
    /// Adopt a directory of format 1 (no configuration fingerprint) as
    /// written by this configuration: its files are rewritten in format 2.
    pub upgrade_format: Option<bool>,
}

#[napi(object)]
pub struct NativeRecovery {
    pub checkpoint_seq: f64,
    pub skipped_checkpoints: Vec<String>,
    pub facts_replayed: f64,
    pub first_seq: f64,
    pub last_seq: f64,
    pub bytes_cut: f64,
    pub torn_tail_at: Option<String>,
    pub truncated_at: Option<String>,
    /// Why the log was cut at `truncated_at`.
    pub truncate_reason: Option<String>,
    /// Files holding the bytes `truncateCorrupt` removed.
    pub moved_aside: Vec<String>,
    /// Damage among records the restored checkpoint covers (skipped).
    pub covered_damage: Vec<String>,
    pub segments: u32,
}

#[napi(object)]
pub struct NativeDurability {
    pub backend: String,
    pub backend_note: Option<String>,
    pub durable_seq: f64,
    pub appended_seq: f64,
    pub failed: bool,
    pub fsyncs: f64,
    pub batches: f64,
    pub records_written: f64,
    pub bytes_written: f64,
    pub segments_created: f64,
    pub checkpoint_seq: f64,
    /// Durable notifications queued to JS / coalesced into a pending one.
    pub notifications: f64,
    pub notifications_coalesced: f64,
    pub recovery: NativeRecovery,
}

/// Env cleanup hook of a durable kernel: stops its writer and releases its
/// durability callback while the environment is still whole.
unsafe extern "C" fn close_at_teardown(data: *mut std::ffi::c_void) {
    // SAFETY: `data` is the Box created in `NativeKernel::open`, used once.
    let weak = unsafe { Box::from_raw(data as *mut std::rc::Weak<RefCell<KernelState>>) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Some(shared) = weak.upgrade() {
            if let Ok(mut st) = shared.try_borrow_mut() {
                st.closed = true;
                st.teardown_hook = None; // this very hook: its data is freed here
                if let Some(mut log) = st.log.take() {
                    let _ = log.wal_mut().close();
                }
            }
        }
    }));
}

fn side_of(side: &str) -> Result<Side> {
    match side {
        "down" => Ok(Side::Down),
        "up" => Ok(Side::Up),
        other => Err(invalid(format!("side must be 'down' or 'up', got '{other}'"))),
    }
}

fn pool<'a>(st: &'a KernelState, member: u32, side: &str) -> Result<Option<&'a ctfs_core::escrow::EscrowManager>> {
    let side = side_of(side)?;
    let r = st.replication.as_ref().ok_or_else(|| invalid("the kernel is not replicated (option replica)"))?;
    Ok(r.pool(member as usize, side))
}

fn pool_mut<'a>(st: &'a mut KernelState, member: u32, side: &str) -> Result<&'a mut ctfs_core::escrow::EscrowManager> {
    let s = side_of(side)?;
    let r = st.replication.as_mut().ok_or_else(|| invalid("the kernel is not replicated (option replica)"))?;
    r.pool_mut(member as usize, s)
        .ok_or_else(|| invalid(format!("[INVALID_ARGUMENT] invariant {member} has no escrowed '{side}' bound: replica.quotas('{side}', {member}) is null")))
}

/// What every call into a kernel that is already inside one of its own
/// admissions (a custom invariant's rule calling back) is told. Nothing
/// changed; the JS layer turns it into `CtfsError` `BUSY`.
pub(crate) const BUSY_MESSAGE: &str =
    "the kernel is busy: it was called from inside one of its own admissions (a custom invariant's apply); nothing was changed — apply must not call its kernel";

pub(crate) fn busy() -> Error {
    Error::new(Status::GenericFailure, format!("[BUSY] {BUSY_MESSAGE}"))
}

/// Runs one protocol input against the kernel: sets what may be pushed
/// (a durable kernel pushes only durable local facts), and holds frames
/// that must wait for the log (quota grants) until it is durable.
fn run_sync<R>(
    st: &mut KernelState,
    f: impl FnOnce(&mut ctfs_sync::Node, &mut crate::sync::StateHost<'_>, &mut ctfs_sync::Outbox) -> R,
) -> Result<(R, crate::sync::NativeSyncOutput)> {
    let KernelState { main, replication, log, sync, durable_sync, .. } = st;
    let node = sync.as_deref_mut().ok_or_else(|| invalid("[INVALID_ARGUMENT] replication is not attached"))?;
    if let Some(log) = log.as_ref() {
        let limit = durable_sync.advance(log.wal().durable_seq());
        node.set_push_limit(Some(limit));
    }
    let mut host = crate::sync::StateHost { main, replication: replication.as_mut(), log: log.as_mut() };
    let mut out = ctfs_sync::Outbox::default();
    let r = f(node, &mut host, &mut out);
    if let Some(log) = log.as_ref() {
        crate::sync::release_held(&mut out, &mut durable_sync.held, log.wal().durable_seq());
    }
    Ok((r, crate::sync::output(&mut out)))
}

#[napi]
pub struct NativeKernel {
    shared: SharedKernel,
}

impl NativeKernel {
    fn with<T>(&self, f: impl FnOnce(&mut KernelState) -> Result<T>) -> Result<T> {
        let mut st = self.shared.try_borrow_mut().map_err(|_| busy())?;
        f(&mut st)
    }

    pub(crate) fn shared(&self) -> &SharedKernel {
        &self.shared
    }
}

#[napi]
impl NativeKernel {
    /// `rules`: the apply functions of custom invariants, referenced by
    /// index from their config.
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, cfg: NativeKernelConfig, rules: Option<Vec<Unknown<'_>>>) -> Result<Self> {
        let st = build_state(&env, &cfg, rules.as_deref().unwrap_or(&[]))?;
        Ok(NativeKernel { shared: Rc::new(RefCell::new(st)) })
    }

    /// Opens a durable kernel in `durable.dir`: the newest valid checkpoint,
    /// then the log after it. `onDurable(seq, failure?)` is called once per
    /// fdatasync'ed batch with the new durable sequence (or `-1` and a
    /// message when the log fails).
    #[napi(factory, catch_unwind)]
    pub fn open(
        env: Env,
        cfg: NativeKernelConfig,
        rules: Option<Vec<Unknown<'_>>>,
        durable: NativeDurableConfig,
        on_durable: Unknown<'_>,
    ) -> Result<Self> {
        if on_durable.get_type()? != napi::ValueType::Function {
            return Err(invalid("onDurable must be a function"));
        }
        let opened_at = ctfs_core::metrics::now_ns();
        let rules = rules.as_deref().unwrap_or(&[]);
        let mut st = build_state(&env, &cfg, rules)?;
        let dir = std::path::PathBuf::from(&durable.dir);
        let local = st.replication.as_ref().map(|r| r.local());
        let fingerprint = {
            let mut fp = ctfs_core::Fingerprint::of_kernel(st.main.invariant(), st.main.config(), durable.member_names.as_deref())
                .map_err(|e| invalid(format!("[INVALID_ARGUMENT] {e}")))?;
            if let Some(local) = local {
                fp.set_replica(&st.replica_nodes, Some(local));
            }
            fp.encode()
        };
        let opts = LogOptions {
            dir: dir.clone(),
            backend: durable::backend_of(durable.backend.as_deref())?,
            truncate_corrupt: durable.truncate_corrupt.unwrap_or(false),
            buffer_bytes: durable.buffer_bytes.map(|b| b as usize),
            segment_bytes: durable.segment_bytes.map(|b| b as u64),
            fingerprint: fingerprint.clone(),
        };
        if durable.upgrade_format == Some(true) {
            ctfs_wal::upgrade_format(&dir, &fingerprint).map_err(|e| durable::wal_error(&e))?;
        }
        // Newest checkpoint that verifies (and carries this configuration); corrupt ones are skipped.
        let (from_seq, ckpt_seq, skipped, replica_section) = crate::checkpoint::restore_latest(&dir, &mut st, &fingerprint)?;
        // Replicated: the checkpoint's epoch, version vector and escrow
        // shares; the log adds the facts (with their origins) and the
        // quota moves after it.
        let mut recovery = crate::sync::SyncRecovery {
            me: ctfs_sync::Origin { node: local.unwrap_or(0), epoch: 0 },
            vv: ctfs_sync::VersionVector::new(),
            store: ctfs_sync::store::FactStore::new(),
        };
        let mut max_epoch = 0u64;
        if let (Some(section), Some(r)) = (&replica_section, st.replication.as_mut()) {
            let (epoch, vv) = crate::sync::restore_replica_section(section, r)
                .map_err(|why| invalid(format!("[CHECKPOINT_MISMATCH] the checkpoint's replica section does not restore: {why}")))?;
            for (o, n) in vv.iter() {
                recovery.store.reset(o, n + 1);
            }
            recovery.vv = vv;
            max_epoch = epoch;
        }
        // Replay through the pipelined batch path (prefetching 8 records ahead).
        let mut replayer = ctfs_core::batch::Replayer::new(256);
        let invariant = st.main.invariant().clone();
        let KernelState { main, replication, tenants, .. } = &mut st;
        let refused = |(seq, error)| ReplayError::Refused { seq, error };
        let replay = |rec: ctfs_wal::RecordRef<'_>| -> std::result::Result<(), ReplayError> {
            let unreadable = |what: &str| ReplayError::Refused { seq: rec.seq, error: AdmitError::malformed(what.to_owned()) };
            if rec.flags & crate::durable::FLAG_CONTROL != 0 {
                let c = crate::durable::Control::decode(rec.payload).ok_or_else(|| unreadable("an unknown control record"))?;
                let not_replicated = || unreadable("a replica control record in a kernel that is not replicated");
                match c {
                    crate::durable::Control::Epoch(e) => max_epoch = max_epoch.max(e),
                    crate::durable::Control::GrantOut { member, side, amount } | crate::durable::Control::GrantIn { member, side, amount } => {
                        let r = replication.as_mut().ok_or_else(not_replicated)?;
                        let side = crate::sync::side_from(side).ok_or_else(|| unreadable("a quota record with a bad side"))?;
                        let pool = r.pool_mut(member as usize, side).ok_or_else(|| unreadable("a quota record for a pool this kernel does not have"))?;
                        if matches!(c, crate::durable::Control::GrantOut { .. }) { pool.replay_grant_out(amount) } else { pool.replay_grant_in(amount) }
                    }
                    crate::durable::Control::Tenant { slot, name } => {
                        if tenants.names().any(|n| n == name) {
                            return Ok(()); // restored from the checkpoint
                        }
                        if tenants.slot(&name) != slot as usize {
                            return Err(unreadable("a tenant record out of order"));
                        }
                    }
                }
                return Ok(());
            }
            let id = FactId(*rec.id);
            let deps = FactId::slice_from_bytes(rec.deps.as_flattened()).unwrap_or(&[]);
            if rec.flags & crate::durable::FLAG_TENANT != 0 {
                let (payload, slot) = crate::durable::split_tenant(rec.payload, rec.flags).ok_or_else(|| unreadable("a tenant record cut short"))?;
                let k = tenants.by_slot(slot.unwrap_or(u32::MAX) as usize).ok_or_else(|| unreadable("a fact of a tenant that was never created"))?;
                return k.admit(&id, deps, payload).map_err(|error| ReplayError::Refused { seq: rec.seq, error });
            }
            let (payload, origin) = crate::durable::split_origin(rec.payload, rec.flags).ok_or_else(|| unreadable("a record whose origin is cut short"))?;
            replayer.push(main, rec.seq, &id, deps, payload).map_err(refused)?;
            if let Some((o, oseq)) = origin {
                if Some(o.node) == local {
                    max_epoch = max_epoch.max(o.epoch);
                    if let Some(r) = replication.as_mut() {
                        r.replay_local(&invariant, payload);
                    }
                }
                recovery.recovered(o, oseq, &id, deps, payload);
            }
            Ok(())
        };
        // SAFETY: env and on_durable are valid for this call.
        let log = unsafe { DurableLog::open(env.raw(), on_durable.raw(), opts, from_seq, ckpt_seq, replay) }
            .map_err(|e| e.to_napi())?;
        replayer.flush(&mut st.main).map_err(|e| refused(e).to_napi())?;
        let mut log = log;
        log.skipped_checkpoints = skipped;
        log.recovery_ns = ctfs_core::metrics::now_ns() - opened_at;
        if local.is_some() {
            // This run's epoch, durable before any fact of it can exist.
            let epoch = max_epoch + 1;
            log.append_control(&crate::durable::Control::Epoch(epoch)).map_err(|e| durable::wal_error(&e))?;
            log.wal().sync().map_err(|e| durable::wal_error(&e))?;
            recovery.me.epoch = epoch;
            st.durable_sync.epoch = epoch;
            st.pending_sync = Some(Box::new(recovery));
        }
        st.log = Some(log);
        let shared = Rc::new(RefCell::new(st));
        // Close the log before Node tears the environment down (cleanup hooks
        // run in reverse order of registration, so this runs before the
        // teardown of the thread-safe function created above): the writer
        // thread must never post to a destroyed callback.
        let weak = Box::into_raw(Box::new(Rc::downgrade(&shared))) as *mut std::ffi::c_void;
        // SAFETY: valid env; `weak` is reclaimed by the hook, or by `close()`
        // when it removes the hook.
        let status = unsafe { napi::sys::napi_add_env_cleanup_hook(env.raw(), Some(close_at_teardown), weak) };
        if status == napi::sys::Status::napi_ok {
            shared.borrow_mut().teardown_hook = Some((env.raw(), weak));
        } else {
            // SAFETY: not registered, so still ours.
            drop(unsafe { Box::from_raw(weak as *mut std::rc::Weak<RefCell<KernelState>>) });
        }
        Ok(NativeKernel { shared })
    }

    /// True while the kernel is inside one of its own admissions (a custom
    /// rule is running): every other call would be refused with `BUSY`.
    #[napi(catch_unwind)]
    pub fn is_busy(&self) -> bool {
        self.shared.try_borrow_mut().is_err()
    }

    /// Details of the last refused single admission.
    #[napi(catch_unwind)]
    pub fn last_error(&self) -> Result<Option<NativeError>> {
        self.with(|st| Ok(st.last_error.as_ref().map(to_native_error)))
    }

    /// Details of every refusal in the last batch.
    #[napi(catch_unwind)]
    pub fn batch_errors(&self) -> Result<Vec<NativeBatchError>> {
        self.with(|st| {
            Ok(st.batch_errors.iter().map(|(i, e)| NativeBatchError { index: *i, error: to_native_error(e) }).collect())
        })
    }

    #[napi(catch_unwind)]
    pub fn state(&self, domain: u32) -> Result<Buffer> {
        // every member's 64-byte cell, in member order
        self.with(|st| Ok(cells_of(st.domain(domain)?.state())))
    }

    #[napi(catch_unwind)]
    pub fn frontier(&self, domain: u32) -> Result<NativeFrontier> {
        self.with(|st| Ok(frontier_of(st.domain(domain)?.frontier())))
    }

    /// 0 = not admitted, 1 = admitted, 2 = maybe (Bloom mode).
    #[napi(catch_unwind)]
    pub fn contains(&self, domain: u32, id: &[u8]) -> Result<u32> {
        let id = id_of(id)?;
        self.with(|st| {
            Ok(match st.domain(domain)?.contains(id) {
                Containment::No => 0,
                Containment::Yes => 1,
                Containment::Maybe => 2,
            })
        })
    }

    /// State and frontier if every fact in `ids` (packed) was admitted.
    #[napi(catch_unwind)]
    pub fn query_facts(&self, domain: u32, ids: &[u8]) -> Result<Option<NativeView>> {
        let ids = deps_of(ids)?;
        self.with(|st| {
            let k = st.domain(domain)?;
            Ok(k.query(Requirement::Facts(ids))
                .map(|v| NativeView { state: cells_of(v.state), frontier: frontier_of(v.frontier) }))
        })
    }

    /// State and frontier if this kernel's clock dominates `clock` (64 bytes).
    #[napi(catch_unwind)]
    pub fn query_clock(&self, domain: u32, clock: &[u8]) -> Result<Option<NativeView>> {
        let clock = BloomClock::from_bytes(clock)
            .ok_or_else(|| invalid(format!("a clock is 64 bytes, got {}", clock.len())))?;
        self.with(|st| {
            let k = st.domain(domain)?;
            Ok(k.query(Requirement::Clock(&clock))
                .map(|v| NativeView { state: cells_of(v.state), frontier: frontier_of(v.frontier) }))
        })
    }

    #[napi(catch_unwind)]
    pub fn stats(&self, domain: u32) -> Result<NativeStats> {
        self.with(|st| {
            let s = st.domain(domain)?.stats();
            Ok(NativeStats {
                admitted: s.admitted as f64,
                rejected: s.rejected.iter().map(|&n| n as f64).collect(),
                bloom_popcount: s.bloom_popcount,
                bloom_saturation: s.bloom_saturation,
                bloom_false_positive_rate: s.bloom_false_positive_rate,
                tracked: s.tracked as f64,
                index_bytes: s.index_bytes as f64,
                escalated: s.escalated,
                escalated_at: s.escalated_at.map(|n| n as f64),
            })
        })
    }

    /// The domain number of tenant `name`, created on first use.
    #[napi(catch_unwind)]
    pub fn tenant(&self, name: String) -> Result<u32> {
        self.with(|st| {
            let known = st.tenants.len();
            if let Some(log) = st.log.as_mut()
                && !st.tenants.names().any(|n| n == name)
            {
                // A durable kernel logs the tenant's creation first: its facts
                // carry the slot, and replay recreates the slots in order.
                let c = crate::durable::Control::Tenant { slot: known as u32, name: name.clone() };
                log.can_append_control(&c).map_err(|e| durable::wal_error(&e))?;
                log.append_control(&c).map_err(|e| durable::wal_error(&e))?;
            }
            let slot = st.tenants.slot(&name);
            u32::try_from(slot + 1).map_err(|_| invalid("too many tenants"))
        })
    }

    /// Whether member `member`'s set holds `key` (uniqueSet) — 0/1.
    #[napi(catch_unwind)]
    pub fn set_contains(&self, domain: u32, member: u32, key: &[u8]) -> Result<bool> {
        self.with(|st| {
            let k = st.domain(domain)?;
            let s = k.state().get(member as usize).ok_or_else(|| invalid(format!("no invariant {member}")))?;
            let keys = s.keys().ok_or_else(|| invalid("this invariant is not a uniqueSet"))?;
            let key: [u8; 32] = key.try_into().map_err(|_| invalid(format!("key must be 32 bytes, got {}", key.len())))?;
            Ok(keys.contains(&key))
        })
    }

    /// Whether member `member`'s graph has the edge `from -> to` (graph).
    #[napi(catch_unwind)]
    pub fn graph_has_edge(&self, domain: u32, member: u32, from: napi::bindgen_prelude::BigInt, to: napi::bindgen_prelude::BigInt) -> Result<bool> {
        self.with(|st| {
            let k = st.domain(domain)?;
            let s = k.state().get(member as usize).ok_or_else(|| invalid(format!("no invariant {member}")))?;
            let g = s.graph().ok_or_else(|| invalid("this invariant is not a graph"))?;
            Ok(g.contains_edge(config::bigint_to_u64(&from, "from")?, config::bigint_to_u64(&to, "to")?))
        })
    }

    /// Admits a fact received from a peer: replicated kernels skip the escrow
    /// (its creator consumed its own quota) but keep every other check.
    #[napi(catch_unwind)]
    pub fn admit_remote(&self, id: &[u8], payload: &[u8], deps: &[u8]) -> Result<u32> {
        self.with(|st| {
            let id = id_of(id)?;
            let deps = deps_of(deps)?;
            if st.closed {
                let e = durable::log_refusal(&ctfs_wal::WalError::Closed);
                st.main.note_refusal(e.code());
                return Ok(st.status(Err(e)));
            }
            let mut host = crate::sync::StateHost { main: &mut st.main, replication: None, log: st.log.as_mut() };
            let r = ctfs_sync::Host::admit_merge(&mut host, id, deps, payload, ctfs_sync::Origin { node: 0, epoch: 0 }, 0);
            Ok(st.status(r))
        })
    }

    /// The escrow quotas of member `member`'s `side` ('down' | 'up') bound,
    /// or null when that side is not escrowed.
    #[napi(catch_unwind)]
    pub fn escrow_quotas(&self, member: u32, side: String) -> Result<Option<Vec<crate::escrow::NativeQuota>>> {
        self.with(|st| Ok(pool(st, member, &side)?.map(|m| crate::escrow::quotas_of(m))))
    }

    /// Starts a quota request to `peer` (encoded message to send, or null).
    #[napi(catch_unwind)]
    pub fn escrow_request(&self, member: u32, side: String, peer: napi::bindgen_prelude::BigInt, amount: napi::bindgen_prelude::BigInt, now_ms: f64) -> Result<Option<Buffer>> {
        self.with(|st| crate::escrow::request(pool_mut(st, member, &side)?, &peer, &amount, now_ms))
    }

    /// Answers a peer's encoded quota request with an encoded grant.
    #[napi(catch_unwind)]
    pub fn escrow_on_request(&self, member: u32, side: String, request: &[u8]) -> Result<Buffer> {
        self.with(|st| crate::escrow::answer(pool_mut(st, member, &side)?, request))
    }

    /// Applies a peer's encoded grant.
    #[napi(catch_unwind)]
    pub fn escrow_on_grant(&self, member: u32, side: String, grant: &[u8], now_ms: f64) -> Result<String> {
        self.with(|st| crate::escrow::apply_grant(pool_mut(st, member, &side)?, grant, now_ms))
    }

    /// Requests due for a resend (backoff 500 ms → 4 s) and given up.
    #[napi(catch_unwind)]
    pub fn escrow_poll(&self, member: u32, side: String, now_ms: f64) -> Result<crate::escrow::NativePoll> {
        self.with(|st| Ok(crate::escrow::poll_of(pool_mut(st, member, &side)?, now_ms)))
    }

    /// The durable log's state (durable kernels only).
    #[napi(catch_unwind)]
    pub fn durability(&self) -> Result<Option<NativeDurability>> {
        self.with(|st| {
            let Some(log) = st.log.as_ref() else { return Ok(None) };
            let w = log.wal();
            let stats = w.stats();
            let r = &log.recovery;
            let at = |p: &Option<(std::path::PathBuf, u64)>| p.as_ref().map(|(p, o)| format!("{}@{o}", p.display()));
            Ok(Some(NativeDurability {
                backend: w.backend().to_owned(),
                backend_note: w.backend_note().map(str::to_owned),
                durable_seq: w.durable_seq() as f64,
                appended_seq: w.appended_seq() as f64,
                failed: w.is_failed(),
                fsyncs: stats.fsyncs as f64,
                batches: stats.batches as f64,
                records_written: stats.records_written as f64,
                bytes_written: stats.bytes_written as f64,
                segments_created: stats.segments_created as f64,
                checkpoint_seq: log.checkpoint_seq as f64,
                notifications: log.notifications().0 as f64,
                notifications_coalesced: log.notifications().1 as f64,
                recovery: NativeRecovery {
                    checkpoint_seq: log.checkpoint_seq as f64,
                    skipped_checkpoints: log.skipped_checkpoints.clone(),
                    facts_replayed: r.records_replayed as f64,
                    first_seq: r.first_seq as f64,
                    last_seq: r.last_seq as f64,
                    bytes_cut: r.bytes_cut as f64,
                    torn_tail_at: at(&r.torn_tail_at),
                    truncated_at: at(&r.truncated_at),
                    truncate_reason: r.truncate_reason.clone(),
                    moved_aside: r.moved_aside.iter().map(|p| p.display().to_string()).collect(),
                    covered_damage: r
                        .covered_damage
                        .iter()
                        .map(|(p, o, why)| format!("{} @ {o}: {why}", p.display()))
                        .collect(),
                    segments: r.segments as u32,
                },
            }))
        })
    }

    /// Blocks until everything appended is durable; returns the durable seq.
    #[napi(catch_unwind)]
    pub fn sync(&self) -> Result<f64> {
        self.with(|st| match st.log.as_ref() {
            None => Ok(0.0),
            Some(log) => log.wal().sync().map(|s| s as f64).map_err(|e| durable::wal_error(&e)),
        })
    }

    /// Writes a checkpoint of the durable kernel covering everything
    /// appended (synced first), then removes log segments and older
    /// checkpoints it makes unnecessary. Returns the checkpoint's seq.
    #[napi(catch_unwind)]
    pub fn checkpoint(&self) -> Result<f64> {
        self.with(|st| crate::checkpoint::write(st).map(|s| s as f64))
    }

    /// Drains and syncs the log, stops its writer and refuses further
    /// admissions (`WAL_CLOSED`). Idempotent.
    #[napi(catch_unwind)]
    pub fn close(&self) -> Result<()> {
        self.with(|st| {
            st.closed = true;
            if let Some((env, data)) = st.teardown_hook.take() {
                // SAFETY: on the JS thread of `env`; the hook was registered
                // with exactly this function and data, and is removed once.
                unsafe {
                    napi::sys::napi_remove_env_cleanup_hook(env, Some(close_at_teardown), data);
                    drop(Box::from_raw(data as *mut std::rc::Weak<RefCell<KernelState>>));
                }
            }
            if let Some(mut log) = st.log.take() {
                let r = log.wal_mut().close().map_err(|e| durable::wal_error(&e));
                drop(log); // releases the durability callback
                r?;
            }
            Ok(())
        })
    }

    /// Attaches the replication protocol (replicated kernels only): facts
    /// admitted from now on are numbered and queued for peers. A durable
    /// replicated kernel resumes what it recovered (its epoch is its own:
    /// `cfg.epoch` is ignored).
    #[napi(catch_unwind)]
    pub fn sync_attach(&self, mut cfg: crate::sync::NativeSyncConfig) -> Result<()> {
        self.with(|st| {
            if st.sync.is_some() {
                return Err(invalid("[INVALID_ARGUMENT] this kernel is already attached to a cluster"));
            }
            let r = st.replication.as_ref().ok_or_else(|| invalid("[INVALID_ARGUMENT] replication needs a replicated kernel: create it with the `replica` option (nodes, local)"))?;
            let nodes = st.replica_nodes.clone();
            let node = match st.pending_sync.take() {
                Some(pre) => {
                    cfg.epoch = pre.me.epoch as f64;
                    // a durable replica catches up by anti-entropy (it never
                    // replaces its kernel with a snapshot)
                    cfg.snapshot_min_facts = Some(f64::INFINITY);
                    let base = crate::sync::build(&cfg, &st.main, r, nodes);
                    match base {
                        Ok(n) => {
                            let c = n.config().clone();
                            ctfs_sync::Node::resume(c, pre.vv, pre.store).map_err(invalid)?
                        }
                        Err(e) => {
                            st.pending_sync = Some(pre);
                            return Err(e);
                        }
                    }
                }
                None => {
                    if st.main.len() > 0 {
                        return Err(invalid(
                            "[INVALID_ARGUMENT] attach replication before admitting facts: facts admitted earlier have no origin sequence and would never reach peers",
                        ));
                    }
                    crate::sync::build(&cfg, &st.main, r, nodes)?
                }
            };
            st.sync = Some(Box::new(node));
            Ok(())
        })
    }

    /// Handles one received frame: verifies it, admits its facts (one batch),
    /// and returns the replies and events. A dropped frame is reported in
    /// `droppedCode`, never thrown.
    #[napi(catch_unwind)]
    pub fn sync_receive(&self, frame: &[u8], now_ms: f64) -> Result<crate::sync::NativeSyncOutput> {
        self.with(|st| {
            if st.closed {
                return Err(invalid("[WAL_CLOSED] the kernel is closed"));
            }
            let now = now_ms.max(0.0) as u64;
            let (r, mut o) = run_sync(st, |node, host, out| node.handle_frame(host, frame, now, out))?;
            match r {
                Ok((from, _)) => o.from = Some(napi::bindgen_prelude::BigInt::from(from)),
                Err(e) => {
                    o.dropped_code = Some(e.code().to_owned());
                    o.dropped_message = Some(e.to_string());
                }
            }
            Ok(o)
        })
    }

    /// Timers: push, anti-entropy probes, quota retries, snapshot chunks.
    #[napi(catch_unwind)]
    pub fn sync_tick(&self, now_ms: f64) -> Result<crate::sync::NativeSyncOutput> {
        let now = now_ms.max(0.0) as u64;
        self.with(|st| run_sync(st, |node, host, out| node.tick(host, now, out)).map(|(_, o)| o))
    }

    /// Pushes the facts admitted here since the last push (durable kernels:
    /// those already durable).
    #[napi(catch_unwind)]
    pub fn sync_flush(&self) -> Result<crate::sync::NativeSyncOutput> {
        self.with(|st| run_sync(st, |node, _, out| node.flush(out)).map(|(_, o)| o))
    }

    /// Asks a peer for quota after an INSUFFICIENT_QUOTA refusal.
    #[napi(catch_unwind)]
    pub fn sync_need_quota(&self, member: u32, side: String, amount: napi::bindgen_prelude::BigInt, now_ms: f64) -> Result<crate::sync::NativeSyncOutput> {
        let side = crate::sync::side_of(&side)?;
        let amount = crate::sync::u128_arg(&amount, "amount")?;
        let now = now_ms.max(0.0) as u64;
        self.with(|st| run_sync(st, |node, host, out| node.need_quota(host, member as usize, side, amount, now, out)).map(|(_, o)| o))
    }

    /// Diagnostics of a durable kernel's acknowledgement latency: `on`
    /// starts (and clears) a per-batch trace of the log writer; `off` stops
    /// it and returns the batches traced, six numbers each: picked, synced,
    /// notified (CLOCK_MONOTONIC ns, the clock of `process.hrtime`), first
    /// seq, last seq, segment rolls. Empty for a volatile kernel.
    #[napi(catch_unwind)]
    pub fn durability_trace(&self, on: bool) -> Result<Vec<f64>> {
        self.with(|st| {
            let Some(log) = st.log.as_ref() else { return Ok(Vec::new()) };
            let w = log.wal();
            if on {
                w.set_trace(true);
                return Ok(Vec::new());
            }
            w.set_trace(false);
            Ok(w.take_trace()
                .iter()
                .flat_map(|t| {
                    [t.picked_ns as f64, t.synced_ns as f64, t.notified_ns as f64, t.first_seq as f64, t.last_seq as f64, t.rolls as f64]
                })
                .collect())
        })
    }

    /// Turns on the log writer's pacing by this kernel's durable callbacks
    /// (`Wal::set_pacing`): the JS layer then reports each callback
    /// processed with `walConsumed`. False, doing nothing, without a log.
    #[napi(catch_unwind)]
    pub fn wal_pacing(&self, on: bool) -> bool {
        let Ok(st) = self.shared.try_borrow() else { return false };
        let Some(log) = st.log.as_ref() else { return false };
        log.wal().set_pacing(on);
        true
    }

    /// The durable callback for `seq`, and the continuations it resumed,
    /// have run (`Wal::consumed`). Never throws; no-op without a log.
    #[napi(catch_unwind)]
    pub fn wal_consumed(&self, seq: f64) {
        let Ok(st) = self.shared.try_borrow() else { return };
        if let Some(log) = st.log.as_ref()
            && seq >= 0.0
        {
            log.wal().consumed(seq as u64);
        }
    }

    /// The log sequence of the last record appended (durable kernels; 0 otherwise).
    #[napi(catch_unwind)]
    pub fn appended_seq(&self) -> Result<f64> {
        self.with(|st| Ok(st.log.as_ref().map_or(0.0, |l| l.wal().appended_seq() as f64)))
    }

    /// Marks a peer reachable or not (frames are produced for reachable peers only).
    #[napi(catch_unwind)]
    pub fn sync_set_peer_up(&self, peer: napi::bindgen_prelude::BigInt, up: bool) -> Result<()> {
        let peer = crate::escrow::node_of(&peer, "peer")?;
        self.with(|st| {
            let node = st.sync.as_deref_mut().ok_or_else(|| invalid("[INVALID_ARGUMENT] replication is not attached"))?;
            if !node.peers().contains(&peer) {
                return Err(invalid(format!("[INVALID_ARGUMENT] node {peer} is not a peer of this replica")));
            }
            node.set_peer_up(peer, up);
            Ok(())
        })
    }

    /// Bytes the transport can queue for `peer` right now (negative or not
    /// finite: no limit). Anti-entropy rounds and snapshot chunks for the
    /// peer stay within it, so a bounded send queue does not drop them.
    #[napi(catch_unwind)]
    pub fn sync_set_send_budget(&self, peer: napi::bindgen_prelude::BigInt, bytes: f64) -> Result<()> {
        let peer = crate::escrow::node_of(&peer, "peer")?;
        self.with(|st| {
            let node = st.sync.as_deref_mut().ok_or_else(|| invalid("[INVALID_ARGUMENT] replication is not attached"))?;
            node.set_send_budget(peer, (bytes.is_finite() && bytes >= 0.0).then_some(bytes as usize));
            Ok(())
        })
    }

    /// Broadcast mode (a message bus with a stream): own facts are pushed
    /// once, as broadcast frames (`broadcast` in the output) that every
    /// member verifies; `streamed` peers read the stream and get no
    /// point-to-point push.
    #[napi(catch_unwind)]
    pub fn sync_set_broadcast(&self, enabled: bool, streamed: Vec<napi::bindgen_prelude::BigInt>) -> Result<()> {
        let peers = streamed.iter().map(|p| crate::escrow::node_of(p, "peer")).collect::<Result<Vec<u64>>>()?;
        self.with(|st| {
            let node = st.sync.as_deref_mut().ok_or_else(|| invalid("[INVALID_ARGUMENT] replication is not attached"))?;
            if let Some(p) = peers.iter().find(|p| !node.peers().contains(p)) {
                return Err(invalid(format!("[INVALID_ARGUMENT] node {p} is not a peer of this replica")));
            }
            node.set_broadcast(enabled, &peers);
            Ok(())
        })
    }

    /// Bytes the stream can take now (negative or not finite: no limit).
    #[napi(catch_unwind)]
    pub fn sync_set_broadcast_budget(&self, bytes: f64) -> Result<()> {
        self.with(|st| {
            let node = st.sync.as_deref_mut().ok_or_else(|| invalid("[INVALID_ARGUMENT] replication is not attached"))?;
            node.set_broadcast_budget((bytes.is_finite() && bytes >= 0.0).then_some(bytes as usize));
            Ok(())
        })
    }

    /// Whether the replica is reading a backlog from the stream (it then
    /// does not ask peers for facts).
    #[napi(catch_unwind)]
    pub fn sync_set_catching_up(&self, catching_up: bool) -> Result<()> {
        self.with(|st| {
            st.sync.as_deref_mut().ok_or_else(|| invalid("[INVALID_ARGUMENT] replication is not attached"))?.set_catching_up(catching_up);
            Ok(())
        })
    }

    /// Makes the next tick probe every peer.
    #[napi(catch_unwind)]
    pub fn sync_probe_soon(&self) -> Result<()> {
        self.with(|st| {
            st.sync.as_deref_mut().ok_or_else(|| invalid("[INVALID_ARGUMENT] replication is not attached"))?.probe_soon();
            Ok(())
        })
    }

    #[napi(catch_unwind)]
    pub fn sync_stats(&self) -> Result<crate::sync::NativeSyncStats> {
        self.with(|st| {
            let node = st.sync.as_deref().ok_or_else(|| invalid("[INVALID_ARGUMENT] replication is not attached"))?;
            Ok(crate::sync::stats_of(node))
        })
    }

    /// Every fact held as packed batch records, in an order that respects
    /// their dependencies.
    #[napi(catch_unwind)]
    pub fn sync_export(&self) -> Result<Buffer> {
        self.with(|st| {
            let node = st.sync.as_deref().ok_or_else(|| invalid("[INVALID_ARGUMENT] replication is not attached"))?;
            Ok(Buffer::from(node.store().export_causal()))
        })
    }

    /// Count, id digest and state digest (72 bytes): equal on converged replicas.
    #[napi(catch_unwind)]
    pub fn digests(&self) -> Result<Buffer> {
        self.with(|st| {
            let d = ctfs_sync::message::Digests {
                count: st.main.len(),
                ids: st.main.frontier().canonical_bytes()[72..104].try_into().unwrap_or([0; 32]),
                state: st.main.state_digest(),
            };
            let mut b = Vec::with_capacity(72);
            d.encode(&mut b);
            Ok(Buffer::from(b))
        })
    }

    #[napi(catch_unwind)]
    pub fn info(&self) -> Result<NativeInfo> {
        self.with(|st| {
            let c = st.main.config();
            let inv = st.main.invariant();
            Ok(NativeInfo {
                mode: c.mode.as_str().to_owned(),
                invariant: Invariant::name(inv).to_owned(),
                class: Invariant::class(inv).as_str().to_owned(),
                coordination: inv.coordination().as_str().to_owned(),
                max_payload_bytes: c.max_payload as u32,
                max_deps: c.max_deps as u32,
                max_facts: c.max_facts as f64,
            })
        })
    }
}

// Keep the numbering visible to readers of this file.
const _: () = assert!(ErrorCode::Ok as u8 == 0);
