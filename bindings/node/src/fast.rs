//! The admission hot path in raw N-API.
//!
//! napi-rs (3.14+) wraps every generated call that takes arguments in a
//! "native borrow scope" (an `Arc<Mutex<..>>` allocation plus a global
//! registry entry per borrowed slice): ~80 ns per byte-slice argument on this
//! machine, more than the kernel's own work. The admission entry points are
//! therefore plain `extern "C"` N-API callbacks: one `napi_get_cb_info`,
//! one `napi_get_typedarray_info` per byte argument (a borrowed view, no
//! copy), one `napi_create_uint32` for the status. They are created once per
//! thread ([`fast_path`]) and name the kernel and domain they admit into by
//! a *target* handle (see `targets.rs`: one function object per kernel kept
//! V8 off its fast API-call path as soon as two kernels existed). Every
//! callback runs under `catch_unwind`, so a panic becomes a JS exception,
//! never an abort. Kernels that run no JavaScript during admission can also
//! use `admitScratch`/`admitScratchSeq`: the JS layer copies the fact into
//! the thread's shared scratch and the call carries two numbers (see
//! [`Scratch`]).

use std::ffi::{CString, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::rc::Rc;

use ctfs_core::{ErrorCode, FactId};
use napi::bindgen_prelude::{Env, FromNapiValue, Object};
use napi::sys::{self, napi_callback_info, napi_env, napi_value};
use napi::{Error, Result, Status};
use napi_derive::napi;

use crate::kernel::{KernelState, NativeKernel, SharedKernel};
use crate::targets::{self, SharedTargets, Stale};

const MAX_ARGS: usize = 4;

/// What a callback throws instead of returning.
enum Throw {
    Type(String),
    Busy,
    Panic,
}

impl From<Error> for Throw {
    fn from(e: Error) -> Self {
        Throw::Type(e.reason.clone())
    }
}

fn throw(env: napi_env, t: Throw) {
    let (code, msg, ty) = match t {
        Throw::Type(m) => ("ERR_INVALID_ARG_TYPE", m, true),
        Throw::Busy => ("BUSY", format!("[BUSY] {}", crate::kernel::BUSY_MESSAGE), false),
        Throw::Panic => ("ERR_CTFS_PANIC", "internal error in the ctfs native addon (a Rust panic was caught)".to_owned(), false),
    };
    let code = CString::new(code).unwrap_or_default();
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: valid env on the JS thread; both strings are NUL-terminated.
    unsafe {
        if ty {
            sys::napi_throw_type_error(env, code.as_ptr(), msg.as_ptr());
        } else {
            sys::napi_throw_error(env, code.as_ptr(), msg.as_ptr());
        }
    }
}

/// Runs a callback body: catches panics and turns `Err` into a thrown error.
fn guard(env: napi_env, body: impl FnOnce() -> std::result::Result<napi_value, Throw>) -> napi_value {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(t)) => {
            throw(env, t);
            ptr::null_mut()
        }
        Err(_) => {
            throw(env, Throw::Panic);
            ptr::null_mut()
        }
    }
}

/// The data of the shared admission functions: this thread's targets and
/// admission scratch.
struct Shared {
    targets: SharedTargets,
    scratch: Rc<Scratch>,
}

/// Up to `N` arguments of a call (missing ones arrive as `undefined`), how
/// many were passed, and the function's data pointer.
///
/// SAFETY: `env` and `info` are those of the running callback.
unsafe fn call_args<const N: usize>(env: napi_env, info: napi_callback_info) -> std::result::Result<([napi_value; N], usize, *mut c_void), Throw> {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    let mut data: *mut c_void = ptr::null_mut();
    let status = unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), &mut data) };
    if status != sys::Status::napi_ok {
        return Err(Throw::Type("could not read the call's arguments".into()));
    }
    Ok((argv, argc, data))
}

/// The arguments of a call, and the kernel and domain its first argument
/// (a target handle) names.
///
/// SAFETY: `info` is the callback info of a function created by
/// [`fast_path`], whose data is an `Rc<Shared>` (kept alive by the
/// function's finalizer until the function is collected).
unsafe fn args<'a, const N: usize>(env: napi_env, info: napi_callback_info) -> std::result::Result<([napi_value; N], usize, &'a Shared, SharedKernel, u32), Throw> {
    let (argv, argc, data) = unsafe { call_args::<N>(env, info)? };
    if data.is_null() {
        return Err(Throw::Type("could not read the call's arguments".into()));
    }
    let shared = unsafe { &*(data as *const Shared) };
    let mut handle = 0f64;
    // SAFETY: valid env and value handle for the duration of the callback.
    if unsafe { sys::napi_get_value_double(env, argv[0], &mut handle) } != sys::Status::napi_ok {
        return Err(Throw::Type("target must be a number (an admission target handle)".into()));
    }
    // The registry is borrowed mutably only while a target is registered or
    // released, never while JavaScript runs.
    let resolved = shared.targets.try_borrow().map_err(|_| Throw::Busy)?.resolve(handle);
    let (kernel, domain) = resolved.map_err(|e| match e {
        Stale::Unknown => Throw::Type(format!("{handle} is not an admission target of this thread")),
        Stale::Gone => Throw::Type("the kernel of this admission target was dropped".into()),
    })?;
    // Missing arguments arrive as `undefined` and fail the type checks below;
    // `argc` (the count passed) lets an optional last argument be left out.
    Ok((argv, argc, shared, kernel, domain))
}

/// The optional `deps` argument at index 3: absent (the 0-dependency call,
/// one handle fewer to look up per crossing) means none.
///
/// SAFETY: as for [`bytes`].
unsafe fn deps_arg<'a>(env: napi_env, a: &[napi_value; MAX_ARGS], argc: usize) -> std::result::Result<&'a mut [u8], Throw> {
    if argc < 4 { Ok(&mut []) } else { unsafe { bytes(env, a[3], "deps") } }
}

fn uint32(env: napi_env, v: napi_value, name: &str) -> std::result::Result<u32, Throw> {
    let mut out = 0u32;
    // SAFETY: valid env and value handle for the duration of the callback.
    let status = unsafe { sys::napi_get_value_uint32(env, v, &mut out) };
    if status != sys::Status::napi_ok {
        return Err(Throw::Type(format!("{name} must be a number")));
    }
    Ok(out)
}

/// A borrowed view of a Uint8Array argument's bytes (no copy).
///
/// SAFETY (for callers): the slice is valid for the duration of the callback:
/// JavaScript cannot run until we return, so the array can neither be
/// detached nor resized meanwhile. The caller must not hold two `&mut`
/// views of the same array (the TS layer never passes one array twice).
unsafe fn bytes<'a>(env: napi_env, v: napi_value, name: &str) -> std::result::Result<&'a mut [u8], Throw> {
    let mut ty: sys::napi_typedarray_type = 0;
    let mut len = 0usize;
    let mut data: *mut c_void = ptr::null_mut();
    let status = unsafe {
        sys::napi_get_typedarray_info(env, v, &mut ty, &mut len, &mut data, ptr::null_mut(), ptr::null_mut())
    };
    if status != sys::Status::napi_ok || ty != sys::TypedarrayType::uint8_array {
        return Err(Throw::Type(format!("{name} must be a Uint8Array")));
    }
    if len == 0 || data.is_null() {
        return Ok(&mut []);
    }
    Ok(unsafe { std::slice::from_raw_parts_mut(data as *mut u8, len) })
}

fn status_value(env: napi_env, status: u32) -> std::result::Result<napi_value, Throw> {
    let mut out = ptr::null_mut();
    // SAFETY: valid env; `out` receives a new handle.
    if unsafe { sys::napi_create_uint32(env, status, &mut out) } != sys::Status::napi_ok {
        return Err(Throw::Type("could not create the result".into()));
    }
    Ok(out)
}

fn double_value(env: napi_env, v: f64) -> std::result::Result<napi_value, Throw> {
    let mut out = ptr::null_mut();
    // SAFETY: valid env; `out` receives a new handle.
    if unsafe { sys::napi_create_double(env, v, &mut out) } != sys::Status::napi_ok {
        return Err(Throw::Type("could not create the result".into()));
    }
    Ok(out)
}

/// An admission's result. `SEQ = false`: the status (0 or an error code).
/// `SEQ = true` (durable kernels): the log sequence of the fact once
/// admitted (>= 1), or minus the error status, which saves the durable
/// acknowledgement paths a second crossing to read the sequence.
fn admission_result<const SEQ: bool>(env: napi_env, st: Option<&KernelState>, status: u32) -> std::result::Result<napi_value, Throw> {
    if !SEQ {
        return status_value(env, status);
    }
    let seq = match st {
        Some(st) if status == 0 => st.log.as_ref().map_or(0.0, |l| l.wal().appended_seq() as f64),
        _ => -(status as f64),
    };
    double_value(env, seq)
}

/// Re-entered from a custom rule: a status, like every refusal (the JS layer
/// throws `BUSY` for it); nothing was touched.
fn busy<const SEQ: bool>(env: napi_env) -> std::result::Result<napi_value, Throw> {
    admission_result::<SEQ>(env, None, ErrorCode::Busy as u32)
}

/// `admitWithId(target, id, payload, deps?)` (`admitWithIdSeq` with `SEQ`).
unsafe extern "C" fn admit_with_id<const SEQ: bool>(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let (a, argc, _, kernel, domain) = unsafe { args::<MAX_ARGS>(env, info)? };
        let (id, payload, deps) =
            unsafe { (bytes(env, a[1], "id")?, bytes(env, a[2], "payload")?, deps_arg(env, &a, argc)?) };
        let Ok(mut st) = kernel.try_borrow_mut() else { return busy::<SEQ>(env) };
        let status = st.admit_with_id(domain, id, payload, deps)?;
        admission_result::<SEQ>(env, Some(&st), status)
    })
}

/// `admitDerived(target, out, payload, deps?)` (`admitDerivedSeq` with
/// `SEQ`); the id lands in `out`.
unsafe extern "C" fn admit_derived<const SEQ: bool>(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let (a, argc, _, kernel, domain) = unsafe { args::<MAX_ARGS>(env, info)? };
        let (out, payload, deps) =
            unsafe { (bytes(env, a[1], "out")?, bytes(env, a[2], "payload")?, deps_arg(env, &a, argc)?) };
        let Ok(mut st) = kernel.try_borrow_mut() else { return busy::<SEQ>(env) };
        let status = st.admit_derived(domain, out, payload, deps)?;
        admission_result::<SEQ>(env, Some(&st), status)
    })
}

/// `admitBatch(target, packed, results) -> records read`. `admitBatchSeq`
/// (`SEQ`): `results` ends with 8 more bytes, which receive the log's last
/// appended sequence after the batch (an f64, little-endian; 0 without a
/// log), so that a durable batch learns where to wait without a second
/// call.
unsafe extern "C" fn admit_batch<const SEQ: bool>(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let (a, _, _, kernel, domain) = unsafe { args::<3>(env, info)? };
        let (packed, results) = unsafe { (bytes(env, a[1], "packed")?, bytes(env, a[2], "results")?) };
        let statuses_len = match SEQ {
            false => results.len(),
            true => results
                .len()
                .checked_sub(SEQ_BYTES)
                .ok_or_else(|| Throw::Type(format!("results must end with {SEQ_BYTES} bytes for the log sequence")))?,
        };
        let mut st = kernel.try_borrow_mut().map_err(|_| Throw::Busy)?;
        let (statuses, tail) = results.split_at_mut(statuses_len);
        let read = st.admit_batch(domain, packed, statuses)?;
        if SEQ {
            let seq = st.log.as_ref().map_or(0.0, |l| l.wal().appended_seq() as f64);
            tail.copy_from_slice(&seq.to_le_bytes());
        }
        status_value(env, read)
    })
}

/// `packFixed(out, payloads, payloadBytes, ids?, deps?, depsPerFact?)`:
/// packs `payloads.length / payloadBytes` records of one shape into `out`
/// (exactly the batch's length; see `ctfs_core::batch::pack_fixed_into`):
/// payload `i` is bytes `[i * payloadBytes, (i + 1) * payloadBytes)`, id `i`
/// is `ids[32 i..]` (absent: derived at admission), dependencies
/// `deps[32 k i..]`. `ids`/`deps`/`depsPerFact` `undefined` (or left out)
/// mean none. Through napi-rs's generated glue this call cost ~710 ns (a
/// borrow scope per slice), more than packing 16 facts.
unsafe extern "C" fn pack_fixed(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        // SAFETY: the running callback's env and info.
        let (argv, argc, _) = unsafe { call_args::<6>(env, info)? };
        // Argument `i`, unless it was left out or is `undefined`.
        let given = |i: usize| (i < argc && !is_undefined(env, argv[i])).then_some(argv[i]);
        // SAFETY (each `bytes`): the arrays stay valid during the call (no JS runs).
        let out = unsafe { bytes(env, argv[0], "out")? };
        let payloads = unsafe { bytes(env, argv[1], "payloads")? };
        let payload_bytes = uint32(env, argv[2], "payloadBytes")?;
        let ids = given(3).map(|v| unsafe { bytes(env, v, "ids") }).transpose()?.map(|x| &*x);
        let deps = given(4).map(|v| unsafe { bytes(env, v, "deps") }).transpose()?.map(|x| &*x);
        let per_fact = given(5).map(|v| uint32(env, v, "depsPerFact")).transpose()?.unwrap_or(0);
        // `out` is a fresh array of `FactBatch.fromPayloads`; refuse anything else overlapping an input.
        let overlaps = |x: &[u8]| {
            let (a, b) = (out.as_ptr_range(), x.as_ptr_range());
            !out.is_empty() && !x.is_empty() && a.start < b.end && b.start < a.end
        };
        if overlaps(payloads) || ids.is_some_and(overlaps) || deps.is_some_and(overlaps) {
            return Err(Throw::Type("out must not overlap the payloads, ids or deps".into()));
        }
        ctfs_core::batch::pack_fixed_into(out, payloads, payload_bytes as usize, ids, deps, per_fact as usize).map_err(Throw::Type)?;
        status_value(env, 0)
    })
}

fn is_undefined(env: napi_env, v: napi_value) -> bool {
    let mut ty = sys::ValueType::napi_undefined;
    // SAFETY: valid env and value handle for the duration of the callback.
    let status = unsafe { sys::napi_typeof(env, v, &mut ty) };
    status == sys::Status::napi_ok && ty == sys::ValueType::napi_undefined
}

/// The log sequence's bytes at the end of `admitBatchSeq`'s results.
const SEQ_BYTES: usize = 8;

/// The shared admission scratch of a thread: JavaScript writes a fact's id,
/// dependencies and payload into it through a Uint8Array view (an external
/// ArrayBuffer over this memory) and passes only their lengths, so that a
/// single admission crosses with two numbers instead of three array handles
/// (each `napi_get_typedarray_info` is a buffer lookup plus a
/// reference-count round trip in V8). Kernels that run JavaScript rules
/// during admission cannot use it (a rule could write the scratch while the
/// admission reads it).
///
/// Layout: bytes `0..32` the id (a derived admission writes its id there),
/// then `deps` ids of 32 bytes, then the payload. `shape` packs the lengths:
/// `payload_len << 12 | deps << 1 | has_id`.
pub(crate) struct Scratch {
    ptr: *mut u8,
    len: usize,
}

/// Bytes of the scratch (id, dependencies and payload of one fact; larger
/// facts take the slice-passing path).
pub(crate) const SCRATCH_BYTES: usize = 4096;
const SHAPE_MAX_DEPS: u32 = 0x7ff;

impl Scratch {
    fn new(len: usize) -> Scratch {
        let b: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        let len = b.len();
        Scratch { ptr: Box::into_raw(b) as *mut u8, len }
    }

    /// Admits the fact laid out in the scratch (see [`Scratch`]) into
    /// `domain` of `st`.
    fn admit(&self, st: &mut KernelState, domain: u32, shape: u32) -> std::result::Result<u32, Throw> {
        if st.runs_js {
            return Err(Throw::Type("this kernel runs JavaScript rules: it cannot admit from the shared scratch".into()));
        }
        let has_id = shape & 1 == 1;
        let deps = ((shape >> 1) & SHAPE_MAX_DEPS) as usize * FactId::LEN;
        let payload = (shape >> 12) as usize;
        if FactId::LEN + deps + payload > self.len {
            return Err(Throw::Type(format!("admission scratch shape {shape} is out of range")));
        }
        // SAFETY: the memory is live (`self` owns it) and only this call
        // looks at it now: JavaScript writes it only between calls, and no
        // JavaScript runs during this admission (checked above: the kernel
        // runs no JS rules).
        let buf = unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) };
        let (head, rest) = buf.split_at_mut(FactId::LEN);
        let (deps, rest) = rest.split_at(deps);
        let payload = &rest[..payload];
        Ok(if has_id { st.admit_with_id(domain, head, payload, deps)? } else { st.admit_derived(domain, head, payload, deps)? })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` come from `Box::into_raw` of a boxed slice of
        // exactly `len` bytes in `new`, freed once here.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

thread_local! {
    static SCRATCH: Rc<Scratch> = Rc::new(Scratch::new(SCRATCH_BYTES));
}

/// `admitScratch(target, shape)` (`admitScratchSeq` with `SEQ`): the fact is
/// in the scratch.
unsafe extern "C" fn admit_scratch<const SEQ: bool>(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        let (a, _, shared, kernel, domain) = unsafe { args::<2>(env, info)? };
        let shape = uint32(env, a[1], "shape")?;
        let Ok(mut st) = kernel.try_borrow_mut() else { return busy::<SEQ>(env) };
        let status = shared.scratch.admit(&mut st, domain, shape)?;
        admission_result::<SEQ>(env, Some(&st), status)
    })
}

/// A Uint8Array over the scratch memory (an external ArrayBuffer keeping its
/// own reference to it), or `None` where the runtime refuses external
/// buffers (then the kernel keeps the slice-passing path).
fn scratch_view(env: napi_env, scratch: &Rc<Scratch>) -> Option<napi_value> {
    let hint = Rc::into_raw(scratch.clone()) as *mut c_void;
    let mut ab = ptr::null_mut();
    let mut view = ptr::null_mut();
    // SAFETY: valid env; the memory stays alive while `hint` (an Rc of it)
    // is held, which `release_scratch_memory` drops when the ArrayBuffer is
    // collected; on failure the Rc is dropped here and nothing refers to it.
    unsafe {
        let s = sys::napi_create_external_arraybuffer(env, scratch.ptr as *mut c_void, scratch.len, Some(release_scratch_memory), hint, &mut ab);
        if s != sys::Status::napi_ok {
            release_scratch_memory(env, ptr::null_mut(), hint);
            return None;
        }
        if sys::napi_create_typedarray(env, sys::TypedarrayType::uint8_array, scratch.len, ab, 0, &mut view) != sys::Status::napi_ok {
            return None;
        }
    }
    Some(view)
}

/// Drops the `Rc<T>` leaked with `Rc::into_raw` as a function's data.
///
/// SAFETY: `data` is such an `Rc<T>`, released exactly once.
unsafe extern "C" fn release_rc<T>(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    drop(unsafe { Rc::from_raw(data as *const T) });
}

/// The scratch ArrayBuffer's finalizer: its `data` is the memory itself, its
/// `hint` the `Rc<Scratch>` leaked in [`scratch_view`].
///
/// SAFETY: `hint` is that `Rc`, released exactly once.
unsafe extern "C" fn release_scratch_memory(_env: napi_env, _data: *mut c_void, hint: *mut c_void) {
    drop(unsafe { Rc::from_raw(hint as *const Scratch) });
}

type Callback = unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value;

/// Creates a JS function running `cb` with `data` (an `Rc`, released when
/// the function is collected).
fn bind<T>(env: napi_env, data: &Rc<T>, name: &str, cb: Callback) -> Result<napi_value> {
    let cname = CString::new(name).map_err(|_| Error::new(Status::InvalidArg, "bad name"))?;
    let data = Rc::into_raw(data.clone()) as *mut c_void;
    let mut func = ptr::null_mut();
    // SAFETY: valid env; `data` stays alive until `release_rc` runs for `func`.
    unsafe {
        let s = sys::napi_create_function(env, cname.as_ptr(), name.len() as isize, Some(cb), data, &mut func);
        if s != sys::Status::napi_ok {
            release_rc::<T>(env, data, ptr::null_mut());
            return Err(Error::new(Status::GenericFailure, "napi_create_function failed"));
        }
        let s = sys::napi_add_finalizer(env, func, data, Some(release_rc::<T>), ptr::null_mut(), ptr::null_mut());
        if s != sys::Status::napi_ok {
            release_rc::<T>(env, data, ptr::null_mut());
            return Err(Error::new(Status::GenericFailure, "napi_add_finalizer failed"));
        }
    }
    Ok(func)
}

/// `obj[name] = value`.
fn set_property(env: napi_env, obj: napi_value, name: &str, value: napi_value) -> Result<()> {
    let cname = CString::new(name).map_err(|_| Error::new(Status::InvalidArg, "bad name"))?;
    // SAFETY: valid env and handles of the current scope; `cname` is NUL-terminated.
    if unsafe { sys::napi_set_named_property(env, obj, cname.as_ptr(), value) } != sys::Status::napi_ok {
        return Err(Error::new(Status::GenericFailure, "napi_set_named_property failed"));
    }
    Ok(())
}

/// The raw N-API admission functions of this thread, for every kernel:
/// `{ admitWithId(target, id, payload, deps?), admitDerived(target, out,
/// payload, deps?), admitWithIdSeq(..), admitDerivedSeq(..),
/// admitBatch(target, packed, results), admitScratch(target, shape),
/// admitScratchSeq(target, shape), scratch }`, each returning a number (0 /
/// error status; the `Seq` ones the fact's log sequence or minus the status;
/// records read). `target` comes from `NativeKernel.fastTarget(domain)`.
/// The JS layer calls this once; every call makes new function objects over
/// the same targets and scratch.
#[napi(catch_unwind, ts_return_type = "FastPath")]
pub fn fast_path(env: Env) -> Result<Object<'static>> {
    let raw_env = env.raw();
    let shared = Rc::new(Shared { targets: targets::registry(), scratch: SCRATCH.with(Rc::clone) });
    let mut obj = ptr::null_mut();
    // SAFETY: valid env on the JS thread; handles live in the current scope.
    unsafe {
        if sys::napi_create_object(raw_env, &mut obj) != sys::Status::napi_ok {
            return Err(Error::new(Status::GenericFailure, "napi_create_object failed"));
        }
    }
    for (name, cb) in [
        ("admitWithId", admit_with_id::<false> as Callback),
        ("admitDerived", admit_derived::<false> as Callback),
        ("admitWithIdSeq", admit_with_id::<true> as Callback),
        ("admitDerivedSeq", admit_derived::<true> as Callback),
        ("admitBatch", admit_batch::<false> as Callback),
        ("admitBatchSeq", admit_batch::<true> as Callback),
        ("packFixed", pack_fixed as Callback),
    ] {
        set_property(raw_env, obj, name, bind(raw_env, &shared, name, cb)?)?;
    }
    // The scratch functions, where the runtime allows external buffers.
    if let Some(view) = scratch_view(raw_env, &shared.scratch) {
        for (name, cb) in [("admitScratch", admit_scratch::<false> as Callback), ("admitScratchSeq", admit_scratch::<true> as Callback)] {
            set_property(raw_env, obj, name, bind(raw_env, &shared, name, cb)?)?;
        }
        set_property(raw_env, obj, "scratch", view)?;
    }
    // SAFETY: `obj` is a live object handle of this scope.
    unsafe { Object::from_napi_value(raw_env, obj) }
}

#[napi]
impl NativeKernel {
    /// The admission target handle of `domain` (0, or a tenant's domain) for
    /// the functions of [`fast_path`]; valid while this kernel lives.
    #[napi(catch_unwind)]
    pub fn fast_target(&self, domain: u32) -> Result<f64> {
        let mut st = self.shared().try_borrow_mut().map_err(|_| crate::kernel::busy())?;
        st.check_domain(domain)?;
        targets::register(self.shared(), &mut st, domain).ok_or_else(|| Error::new(Status::GenericFailure, "no admission target free"))
    }

    /// Whether this kernel can admit from the shared scratch (it runs no
    /// JavaScript rules during admission).
    #[napi]
    pub fn admits_from_scratch(&self) -> bool {
        self.shared().try_borrow().is_ok_and(|st| !st.runs_js)
    }
}

/// Raw N-API controls for the benchmarks: the same calling convention as
/// the admission functions, doing nothing.
unsafe extern "C" fn floor_raw_noop(env: napi_env, _info: napi_callback_info) -> napi_value {
    status_value(env, 0).unwrap_or(ptr::null_mut())
}

unsafe extern "C" fn floor_raw_slices(env: napi_env, info: napi_callback_info) -> napi_value {
    guard(env, || {
        // SAFETY: the running callback's env and info.
        let (argv, _, _) = unsafe { call_args::<MAX_ARGS>(env, info)? };
        let d = uint32(env, argv[0], "domain")?;
        let (a, b, c) = unsafe { (bytes(env, argv[1], "a")?, bytes(env, argv[2], "b")?, bytes(env, argv[3], "c")?) };
        status_value(env, d + (a.len() + b.len() + c.len()) as u32)
    })
}

/// `{ noop(), slices(n, a, b, c) }` as raw N-API functions (benchmark floor:
/// `slices` has exactly the argument shape of `admitWithId`).
#[napi(catch_unwind, ts_return_type = "{ noop(): number; slices(n: number, a: Uint8Array, b: Uint8Array, c: Uint8Array): number }")]
pub fn floor_raw(env: Env) -> Result<Object<'static>> {
    let raw_env = env.raw();
    let mut obj = ptr::null_mut();
    // SAFETY: valid env; the functions carry no data and need no finalizer.
    unsafe {
        if sys::napi_create_object(raw_env, &mut obj) != sys::Status::napi_ok {
            return Err(Error::new(Status::GenericFailure, "napi_create_object failed"));
        }
        for (name, cb) in [("noop", floor_raw_noop as Callback), ("slices", floor_raw_slices as Callback)] {
            let cname = CString::new(name).map_err(|_| Error::new(Status::InvalidArg, "bad name"))?;
            let mut f = ptr::null_mut();
            if sys::napi_create_function(raw_env, cname.as_ptr(), name.len() as isize, Some(cb), ptr::null_mut(), &mut f) != sys::Status::napi_ok {
                return Err(Error::new(Status::GenericFailure, "could not create the floor functions"));
            }
            set_property(raw_env, obj, name, f)?;
        }
        Object::from_napi_value(raw_env, obj)
    }
}
