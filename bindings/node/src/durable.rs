//! Durability glue: a kernel's write-ahead log (crates/ctfs-wal) and the
//! durable-frontier notifications to JavaScript.
//!
//! Admission order for a durable kernel (see `KernelState`):
//! 1. `can_append` — a full queue or a failed log refuses the fact
//!    (`BUFFER_FULL`, `WAL_FAILED`) *before* the kernel changes;
//! 2. the kernel admits (or refuses: nothing is logged);
//! 3. the record is appended to the queue (cannot fail after 1 with one
//!    producer; if the log failed in between, the fact stays volatile and is
//!    never reported durable).
//!
//! The writer thread calls the notifier once per fdatasync'ed batch; it
//! posts the new durable sequence to JS through one thread-safe function
//! (`onDurable(seq)`), unref'd so that it never keeps Node alive (the TS
//! layer holds the event loop open only while promises are pending), and
//! released when the log closes.

use std::ffi::c_void;
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ctfs_core::{AdmitError, ErrorCode, FactId};
use ctfs_sync::Origin;
use ctfs_wal::{Backend, Recovery, Wal, WalError, WalOptions};
use napi::sys::{self, napi_env, napi_value};
use napi::{Error, Result, Status};

/// Reinterprets packed fact ids as the WAL's id arrays.
pub(crate) fn as_arrays(ids: &[FactId]) -> &[[u8; 32]] {
    // SAFETY: FactId is #[repr(transparent)] over [u8; 32].
    unsafe { std::slice::from_raw_parts(ids.as_ptr() as *const [u8; 32], ids.len()) }
}

/// What JS receives per notification.
enum Event {
    /// The newest durable sequence, read from `Coalesce::latest` on the JS thread.
    Newest,
    Failed(String),
}

/// A thread-safe function handle, released when dropped.
///
/// Durable notifications are coalesced: the writer stores the newest durable
/// sequence in `latest` and queues a call only when none is pending, so when
/// the JS thread is busy the writer does not fill the queue with one call per
/// fsync (each costing a queue lock, a uv_async wake-up and a JS call); the
/// one pending call delivers the newest sequence when it runs.
struct Tsfn {
    raw: sys::napi_threadsafe_function,
    shared: std::sync::Arc<Coalesce>,
}

/// Shared between the writer thread (`post`) and the JS thread (`call_js`).
struct Coalesce {
    latest: AtomicU64,
    pending: AtomicBool,
    /// Calls queued / notifications coalesced into a pending call.
    posted: AtomicU64,
    coalesced: AtomicU64,
}

// SAFETY: N-API thread-safe functions are made to be called and released
// from any thread.
unsafe impl Send for Tsfn {}
unsafe impl Sync for Tsfn {}

impl Tsfn {
    /// Queues a call; false if Node refused it (the environment is closing).
    fn post(&self, e: Event) -> bool {
        let data = Box::into_raw(Box::new(e)) as *mut c_void;
        // SAFETY: a live tsfn (released only in Drop); ownership of `data`
        // passes to `call_js` unless the call is refused.
        let status = unsafe { sys::napi_call_threadsafe_function(self.raw, data, sys::ThreadsafeFunctionCallMode::nonblocking) };
        if status != sys::Status::napi_ok {
            // SAFETY: not queued, so still ours.
            drop(unsafe { Box::from_raw(data as *mut Event) });
            return false;
        }
        true
    }

    /// Posts a durable sequence, unless a call already pending will carry it.
    fn post_durable(&self, seq: u64) {
        let c = &self.shared;
        c.latest.fetch_max(seq, Ordering::SeqCst);
        if c.pending.swap(true, Ordering::SeqCst) {
            c.coalesced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.post(Event::Newest) {
            c.posted.fetch_add(1, Ordering::Relaxed);
        } else {
            // Nothing is pending after all: let a later sequence try again.
            c.pending.store(false, Ordering::SeqCst);
        }
    }
}

impl Drop for Tsfn {
    fn drop(&mut self) {
        // SAFETY: releases our single reference; the tsfn is finalized on
        // the JS thread after its queue drains.
        unsafe {
            sys::napi_release_threadsafe_function(self.raw, sys::ThreadsafeFunctionReleaseMode::release);
        }
    }
}

unsafe extern "C" fn finalize_coalesce(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    if !data.is_null() {
        // SAFETY: the reference leaked with `Arc::into_raw` at creation.
        drop(unsafe { std::sync::Arc::from_raw(data as *const Coalesce) });
    }
}

unsafe extern "C" fn call_js(env: napi_env, js_cb: napi_value, ctx: *mut c_void, data: *mut c_void) {
    if data.is_null() {
        return;
    }
    // SAFETY: `data` is the Box posted by `Tsfn::post`.
    let event = unsafe { Box::from_raw(data as *mut Event) };
    let seq = match *event {
        Event::Newest if !ctx.is_null() => {
            // SAFETY: `ctx` is the `Coalesce` the tsfn holds a reference to
            // until its finalizer runs, after every call.
            let c = unsafe { &*(ctx as *const Coalesce) };
            // Clear first: a sequence stored after this load posts a new call.
            c.pending.store(false, Ordering::SeqCst);
            c.latest.load(Ordering::SeqCst)
        }
        _ => 0,
    };
    if env.is_null() || js_cb.is_null() {
        return; // the environment is shutting down
    }
    // SAFETY: called by Node on the JS thread with a valid env.
    unsafe {
        let mut undefined = ptr::null_mut();
        sys::napi_get_undefined(env, &mut undefined);
        let mut args = [ptr::null_mut(); 2];
        match *event {
            Event::Newest => {
                sys::napi_create_double(env, seq as f64, &mut args[0]);
                args[1] = undefined;
            }
            Event::Failed(msg) => {
                sys::napi_create_double(env, -1.0, &mut args[0]);
                sys::napi_create_string_utf8(env, msg.as_ptr() as *const _, msg.len() as isize, &mut args[1]);
            }
        }
        let mut result = ptr::null_mut();
        sys::napi_call_function(env, undefined, js_cb, 2, args.as_ptr(), &mut result);
        // An exception thrown by the callback surfaces as an uncaught
        // exception in Node (the TS layer's callback does not throw).
    }
}

/// Options for opening a durable kernel.
pub(crate) struct LogOptions {
    pub dir: PathBuf,
    pub backend: Backend,
    pub truncate_corrupt: bool,
    pub buffer_bytes: Option<usize>,
    pub segment_bytes: Option<u64>,
    /// The kernel's configuration fingerprint (`ctfs_core::fingerprint`).
    pub fingerprint: Vec<u8>,
}

pub(crate) fn backend_of(name: Option<&str>) -> Result<Backend> {
    match name.unwrap_or("auto") {
        "auto" => Ok(Backend::Auto),
        "io_uring" => Ok(Backend::IoUring),
        "portable" => Ok(Backend::Portable),
        other => Err(Error::new(Status::InvalidArg, format!("backend must be 'auto', 'io_uring' or 'portable', got '{other}'"))),
    }
}

/// A thrown `Error` whose `code` is the WAL error's stable code.
pub(crate) fn wal_error(e: &WalError) -> Error {
    Error::new(Status::GenericFailure, format!("[{}] {e}", e.code()))
}

/// The open log of a durable kernel.
pub(crate) struct DurableLog {
    wal: Wal,
    pub recovery: Recovery,
    pub checkpoint_seq: u64,
    pub skipped_checkpoints: Vec<String>,
    /// Recorded in every checkpoint this kernel writes.
    pub fingerprint: Vec<u8>,
    /// Metrics: how long opening took (checkpoint restore + replay), ns.
    pub recovery_ns: u64,
    /// Metrics: checkpoints written by this kernel, their duration (ns)
    /// and size (bytes of the last one, and in total).
    pub checkpoints: u64,
    pub checkpoint_ns: ctfs_core::metrics::Histogram,
    pub checkpoint_bytes_last: u64,
    pub checkpoint_bytes_total: u64,
    /// The durable notifications' counters.
    notices: std::sync::Arc<Coalesce>,
}

impl DurableLog {
    /// Durable notifications queued to JS, and those coalesced into one
    /// already pending.
    pub(crate) fn notifications(&self) -> (u64, u64) {
        (self.notices.posted.load(Ordering::Relaxed), self.notices.coalesced.load(Ordering::Relaxed))
    }

    /// Opens the log, handing every record with `seq >= from_seq` to
    /// `replay`. `on_durable` is a JS function `(seq, failure?) => void`.
    ///
    /// # Safety
    /// `env` and `on_durable` must be valid for the current call.
    pub(crate) unsafe fn open(
        env: napi_env,
        on_durable: napi_value,
        opts: LogOptions,
        from_seq: u64,
        checkpoint_seq: u64,
        replay: impl FnMut(ctfs_wal::RecordRef<'_>) -> std::result::Result<(), ReplayError>,
    ) -> std::result::Result<DurableLog, ReplayError> {
        let mut tsfn = ptr::null_mut();
        let mut name = ptr::null_mut();
        let shared = std::sync::Arc::new(Coalesce {
            latest: AtomicU64::new(0),
            pending: AtomicBool::new(false),
            posted: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
        });
        // SAFETY: per the caller's contract.
        unsafe {
            sys::napi_create_string_utf8(env, c"ctfs-durable".as_ptr(), 12, &mut name);
            let held = std::sync::Arc::into_raw(shared.clone());
            let status = sys::napi_create_threadsafe_function(
                env,
                on_durable,
                ptr::null_mut(),
                name,
                0,
                1,
                // The tsfn's own reference to the shared state, freed by its finalizer.
                held as *mut c_void,
                Some(finalize_coalesce),
                std::sync::Arc::as_ptr(&shared) as *mut c_void,
                Some(call_js),
                &mut tsfn,
            );
            if status != sys::Status::napi_ok {
                drop(std::sync::Arc::from_raw(held));
                return Err(ReplayError::Wal(WalError::InvalidArgument("cannot create the durability callback".into())));
            }
            // never keeps the event loop alive by itself
            sys::napi_unref_threadsafe_function(env, tsfn);
        }
        let notices = shared.clone();
        let tsfn = std::sync::Arc::new(Tsfn { raw: tsfn, shared });
        let on_ok = tsfn.clone();
        let on_fail = tsfn;
        let fingerprint = opts.fingerprint.clone();
        let mut w = WalOptions {
            backend: opts.backend,
            truncate_corrupt: opts.truncate_corrupt,
            fingerprint: opts.fingerprint,
            notifier: Some(Box::new(move |seq| on_ok.post_durable(seq))),
            on_failure: Some(Box::new(move |msg: &str| {
                on_fail.post(Event::Failed(msg.to_owned()));
            })),
            ..WalOptions::default()
        };
        if let Some(b) = opts.buffer_bytes {
            w.buffer_capacity = b;
            // the WAL requires max_record_bytes <= buffer_capacity / 2
            w.max_record_bytes = w.max_record_bytes.min(b / 2);
        }
        if let Some(s) = opts.segment_bytes {
            w.segment_size = s;
        }
        let (wal, recovery) = Wal::open_with_replay(&opts.dir, w, from_seq, replay)?;
        Ok(DurableLog {
            wal,
            recovery,
            checkpoint_seq,
            skipped_checkpoints: Vec::new(),
            fingerprint,
            recovery_ns: 0,
            checkpoints: 0,
            checkpoint_ns: Default::default(),
            checkpoint_bytes_last: 0,
            checkpoint_bytes_total: 0,
            notices,
        })
    }

    /// Step 1 of a durable admission.
    #[inline]
    pub(crate) fn reserve(&mut self, deps: usize, payload: usize) -> std::result::Result<(), AdmitError> {
        self.wal.can_append(deps, payload).map_err(|e| log_refusal(&e))
    }

    /// Step 1 for a fact that will carry its origin (replicated kernels).
    #[inline]
    pub(crate) fn reserve_with_origin(&mut self, deps: usize, payload: usize) -> std::result::Result<(), AdmitError> {
        self.wal.can_append(deps, payload + ORIGIN_TRAILER).map_err(|e| log_refusal(&e))
    }

    /// Step 3 of a durable admission. Returns the record's seq (0 if the
    /// log failed in between).
    #[inline]
    pub(crate) fn append(&mut self, id: &FactId, deps: &[FactId], payload: &[u8], derived: bool) -> u64 {
        // Cannot fail after `reserve` except by a concurrent log failure, in
        // which case the fact stays volatile (never reported durable) and the
        // next `reserve` refuses with WAL_FAILED.
        self.wal.append(&id.0, as_arrays(deps), payload, if derived { FLAG_DERIVED } else { 0 }).unwrap_or(0)
    }

    /// Step 3 for a replicated kernel: the record carries the fact's origin
    /// (node, epoch) and origin sequence, so that recovery rebuilds the
    /// replica's version vector and the facts it can serve to peers.
    #[inline]
    pub(crate) fn append_with_origin(&mut self, id: &FactId, deps: &[FactId], payload: &[u8], derived: bool, origin: Origin, oseq: u64) -> u64 {
        let t = origin_trailer(origin, oseq);
        self.wal.append_with_trailer(&id.0, as_arrays(deps), payload, &t, if derived { FLAG_DERIVED | FLAG_ORIGIN } else { FLAG_ORIGIN }).unwrap_or(0)
    }

    /// Step 1 for a tenant's fact.
    #[inline]
    pub(crate) fn reserve_tenant(&mut self, deps: usize, payload: usize) -> std::result::Result<(), AdmitError> {
        self.wal.can_append(deps, payload + TENANT_TRAILER).map_err(|e| log_refusal(&e))
    }

    /// Step 3 for a tenant's fact: the record carries the tenant's slot.
    #[inline]
    pub(crate) fn append_tenant(&mut self, id: &FactId, deps: &[FactId], payload: &[u8], derived: bool, slot: u32) -> u64 {
        let flags = if derived { FLAG_DERIVED | FLAG_TENANT } else { FLAG_TENANT };
        self.wal.append_with_trailer(&id.0, as_arrays(deps), payload, &slot.to_le_bytes(), flags).unwrap_or(0)
    }

    /// Whether a control record can be appended now.
    pub(crate) fn can_append_control(&mut self, c: &Control) -> std::result::Result<(), WalError> {
        self.wal.can_append(0, c.encode().len())
    }

    /// Appends a control record (not a fact). Returns its seq.
    pub(crate) fn append_control(&mut self, c: &Control) -> std::result::Result<u64, WalError> {
        let body = c.encode();
        self.wal.append(&[0; 32], &[], &body, FLAG_CONTROL)
    }

    pub(crate) fn wal(&self) -> &Wal {
        &self.wal
    }

    pub(crate) fn wal_mut(&mut self) -> &mut Wal {
        &mut self.wal
    }
}

/// Record flag: the id was derived by the kernel.
pub(crate) const FLAG_DERIVED: u16 = 1;
/// Record flag: the payload field ends with the fact's origin (node u64,
/// epoch u64, origin seq u64).
pub(crate) const FLAG_ORIGIN: u16 = 2;
/// Record flag: not a fact but replica state (see [`Control`]).
pub(crate) const FLAG_CONTROL: u16 = 4;
pub(crate) const ORIGIN_TRAILER: usize = 24;
/// Record flag: a tenant's fact; the payload field ends with its slot (u32).
pub(crate) const FLAG_TENANT: u16 = 8;
pub(crate) const TENANT_TRAILER: usize = 4;

/// Splits a logged payload field into (payload, tenant slot) per the flags.
pub(crate) fn split_tenant(payload: &[u8], flags: u16) -> Option<(&[u8], Option<u32>)> {
    if flags & FLAG_TENANT == 0 {
        return Some((payload, None));
    }
    let at = payload.len().checked_sub(TENANT_TRAILER)?;
    let (p, t) = payload.split_at(at);
    Some((p, Some(u32::from_le_bytes(t.try_into().ok()?))))
}

fn origin_trailer(o: Origin, seq: u64) -> [u8; ORIGIN_TRAILER] {
    let mut t = [0u8; ORIGIN_TRAILER];
    t[..8].copy_from_slice(&o.node.to_le_bytes());
    t[8..16].copy_from_slice(&o.epoch.to_le_bytes());
    t[16..].copy_from_slice(&seq.to_le_bytes());
    t
}

/// Splits a logged payload field into (payload, origin) per the flags.
pub(crate) fn split_origin(payload: &[u8], flags: u16) -> Option<(&[u8], Option<(Origin, u64)>)> {
    if flags & FLAG_ORIGIN == 0 {
        return Some((payload, None));
    }
    let at = payload.len().checked_sub(ORIGIN_TRAILER)?;
    let (p, t) = payload.split_at(at);
    let u = |i: usize| u64::from_le_bytes(t[i..i + 8].try_into().unwrap_or([0; 8]));
    Some((p, Some((Origin { node: u(0), epoch: u(8) }, u(16)))))
}

/// Replica state logged beside the facts of a durable replicated kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// A run of this replica began (epochs only grow).
    Epoch(u64),
    /// Quota left in a grant to a peer (durable before the grant is sent).
    GrantOut { member: u8, side: u8, amount: u128 },
    /// Quota arrived in a grant from a peer.
    GrantIn { member: u8, side: u8, amount: u128 },
    /// A tenant domain was created (slots follow creation order).
    Tenant { slot: u32, name: String },
}

impl Control {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(19);
        match *self {
            Control::Epoch(e) => {
                b.push(1);
                b.extend_from_slice(&e.to_le_bytes());
            }
            Control::GrantOut { member, side, amount } | Control::GrantIn { member, side, amount } => {
                b.push(if matches!(self, Control::GrantOut { .. }) { 2 } else { 3 });
                b.push(member);
                b.push(side);
                b.extend_from_slice(&amount.to_le_bytes());
            }
            Control::Tenant { slot, ref name } => {
                b.push(4);
                b.extend_from_slice(&slot.to_le_bytes());
                b.extend_from_slice(name.as_bytes());
            }
        }
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Control> {
        match b {
            [1, rest @ ..] if rest.len() == 8 => Some(Control::Epoch(u64::from_le_bytes(rest.try_into().ok()?))),
            [k @ (2 | 3), member, side, rest @ ..] if rest.len() == 16 => {
                let amount = u128::from_le_bytes(rest.try_into().ok()?);
                Some(if *k == 2 {
                    Control::GrantOut { member: *member, side: *side, amount }
                } else {
                    Control::GrantIn { member: *member, side: *side, amount }
                })
            }
            [4, a, b2, c, d, name @ ..] if !name.is_empty() => {
                Some(Control::Tenant { slot: u32::from_le_bytes([*a, *b2, *c, *d]), name: String::from_utf8(name.to_vec()).ok()? })
            }
            _ => None,
        }
    }
}

/// How a WAL refusal reads as an admission error.
pub(crate) fn log_refusal(e: &WalError) -> AdmitError {
    let (code, reason) = match e {
        WalError::BufferFull { .. } => (
            ErrorCode::BufferFull,
            format!("the write-ahead log's queue is full ({e}); nothing was admitted: await durability (admitDurable / flush) and retry"),
        ),
        WalError::Closed => (ErrorCode::WalClosed, "the kernel is closed; nothing was admitted".to_owned()),
        // the record is at fault, not the log
        WalError::RecordTooLarge { .. } => {
            (ErrorCode::PayloadTooLarge, format!("the fact does not fit in one log record ({e}); nothing was admitted"))
        }
        _ => (
            ErrorCode::WalFailed,
            format!("the write-ahead log failed ({e}); the kernel accepts no more durable facts: reopen it to recover"),
        ),
    };
    AdmitError::Log { code, reason: reason.into() }
}

/// Why recovery stopped.
#[derive(Debug)]
pub(crate) enum ReplayError {
    Wal(WalError),
    /// A logged fact was refused on replay: the log does not match the
    /// kernel's configuration (another invariant, other limits).
    Refused { seq: u64, error: AdmitError },
}

impl From<WalError> for ReplayError {
    fn from(e: WalError) -> Self {
        ReplayError::Wal(e)
    }
}

impl ReplayError {
    pub(crate) fn to_napi(&self) -> Error {
        match self {
            ReplayError::Wal(e) => wal_error(e),
            ReplayError::Refused { seq, error } => Error::new(
                Status::GenericFailure,
                format!(
                    "[WAL_REPLAY_REFUSED] the kernel refused logged fact seq {seq} on recovery ({error}); the log was written by a kernel with another invariant or configuration"
                ),
            ),
        }
    }
}
