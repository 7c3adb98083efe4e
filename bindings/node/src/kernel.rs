//! `NativeKernel`: one default causal domain plus named tenant domains.
//! Domain 0 is the kernel itself; domain `n > 0` is tenant slot `n - 1`.

use ctfs_core::batch::admit_packed;
use ctfs_core::invariants::Builtin;
use ctfs_core::{
    AdmitError, BloomClock, Containment, ErrorCode, FactId, Frontier, Invariant, Kernel, Requirement, Tenants,
};
use std::cell::RefCell;
use std::rc::Rc;

use napi::bindgen_prelude::Buffer;
use napi::{Error, Result, Status};
use napi_derive::napi;

use crate::config::{self, NativeKernelConfig};

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

pub(crate) fn deps_of(deps: &[u8]) -> Result<&[FactId]> {
    FactId::slice_from_bytes(deps)
        .ok_or_else(|| invalid(format!("deps must be packed 32-byte ids; got {} bytes", deps.len())))
}

pub(crate) fn id_of(id: &[u8]) -> Result<FactId> {
    FactId::from_slice(id).ok_or_else(|| invalid(format!("id must be 32 bytes, got {}", id.len())))
}

/// The kernel proper: a default domain, tenant domains and the details of the
/// last refusals. Shared (`Rc<RefCell<_>>`) between the napi-rs class and the
/// raw N-API fast path (see `fast.rs`); the `RefCell` turns a re-entrant call
/// into a clean error instead of aliasing.
pub(crate) struct KernelState {
    main: Kernel<Builtin>,
    tenants: Tenants<Builtin>,
    last_error: Option<AdmitError>,
    batch_errors: Vec<(u32, AdmitError)>,
}

pub(crate) type SharedKernel = Rc<RefCell<KernelState>>;

impl KernelState {
    #[inline]
    fn domain(&mut self, d: u32) -> Result<&mut Kernel<Builtin>> {
        if d == 0 {
            return Ok(&mut self.main);
        }
        self.tenants.by_slot(d as usize - 1).ok_or_else(|| invalid(format!("no tenant domain {d}")))
    }

    #[inline]
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

    /// Admits a fact with the caller's id. Returns 0 or an error status.
    #[inline]
    pub(crate) fn admit_with_id(&mut self, domain: u32, id: &[u8], payload: &[u8], deps: &[u8]) -> Result<u32> {
        let id = id_of(id)?;
        let deps = deps_of(deps)?;
        let r = self.domain(domain)?.admit(&id, deps, payload);
        Ok(self.status(r))
    }

    /// Admits a fact with a derived id, written into `out` (32 bytes).
    #[inline]
    pub(crate) fn admit_derived(&mut self, domain: u32, out: &mut [u8], payload: &[u8], deps: &[u8]) -> Result<u32> {
        if out.len() != FactId::LEN {
            return Err(invalid("output id buffer must be 32 bytes"));
        }
        let deps = deps_of(deps)?;
        let r = self.domain(domain)?.admit_derived(deps, payload).map(|id| out.copy_from_slice(&id.0));
        Ok(self.status(r))
    }

    /// Admits a packed batch (see `ctfs_core::batch`); `results[i]` receives
    /// record i's status. Returns the number of records read.
    pub(crate) fn admit_batch(&mut self, domain: u32, packed: &mut [u8], results: &mut [u8]) -> Result<u32> {
        let mut errors = std::mem::take(&mut self.batch_errors);
        errors.clear();
        let kernel = self.domain(domain)?;
        let summary = admit_packed(kernel, packed, results, |i, e| errors.push((i as u32, e)));
        self.batch_errors = errors;
        Ok(summary.records as u32)
    }
}

fn busy() -> Error {
    Error::new(
        Status::GenericFailure,
        "the kernel is busy: it was called again from inside one of its own admissions",
    )
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
    #[napi(constructor, catch_unwind)]
    pub fn new(cfg: NativeKernelConfig) -> Result<Self> {
        let inv = config::invariant(&cfg.invariant)?;
        let kcfg = config::kernel(&cfg)?;
        let main = Kernel::try_new(inv.clone(), kcfg.clone()).map_err(invalid)?;
        let tenants = Tenants::new(inv, kcfg).map_err(invalid)?;
        let state = KernelState { main, tenants, last_error: None, batch_errors: Vec::new() };
        Ok(NativeKernel { shared: Rc::new(RefCell::new(state)) })
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
        self.with(|st| Ok(Buffer::from(st.domain(domain)?.state().cell.0.to_vec())))
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
            Ok(match st.domain(domain)?.contains(&id) {
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
                .map(|v| NativeView { state: Buffer::from(v.state.cell.0.to_vec()), frontier: frontier_of(v.frontier) }))
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
                .map(|v| NativeView { state: Buffer::from(v.state.cell.0.to_vec()), frontier: frontier_of(v.frontier) }))
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
            let slot = st.tenants.slot(&name);
            u32::try_from(slot + 1).map_err(|_| invalid("too many tenants"))
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
