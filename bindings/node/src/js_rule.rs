//! A custom invariant's rule written in JavaScript.
//!
//! `apply(payload, state, id)` is called synchronously inside admission, on
//! the JS thread that owns the kernel, with copies: `payload` and `id` are
//! fresh `Uint8Array`s and `state` a `DataView` over a fresh 1..=64-byte
//! buffer holding the current state. The rule mutates `state` or throws; a
//! throw becomes `INVARIANT_VIOLATION` with the thrown message, and the
//! kernel's state is untouched either way until every check has passed
//! (the core runs the rule on a scratch copy). `apply` must be synchronous:
//! a returned promise or thenable is refused (`INVARIANT_VIOLATION`), and a
//! promise's rejection is handled here so it cannot surface as an unhandled
//! rejection.
//!
//! The function is held by an N-API reference, created on the kernel's
//! thread with that thread's `napi_env`. The kernel (an `Rc`) never leaves
//! that thread, and every call into the rule happens while JS is calling the
//! kernel, so the env is live and a handle scope can be opened.

use std::borrow::Cow;
use std::ptr;

use ctfs_core::InvariantError;
use ctfs_core::custom::CustomRule;
use ctfs_core::fact::Fact;
use napi::sys::{self, napi_env, napi_ref, napi_value};

pub(crate) struct JsRule {
    env: napi_env,
    func: napi_ref,
}

fn violation(msg: impl Into<String>) -> InvariantError {
    InvariantError::Violation(Cow::Owned(msg.into()))
}

fn check(status: sys::napi_status, what: &str) -> Result<(), InvariantError> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(violation(format!("custom invariant: {what} failed (N-API status {status})")))
    }
}

impl JsRule {
    /// Holds `func` (a JS function value, checked by the caller) strongly.
    ///
    /// # Safety
    /// `env` and `func` must be valid for the current call on the JS thread.
    pub(crate) unsafe fn new(env: napi_env, func: napi_value) -> napi::Result<Self> {
        let mut r = ptr::null_mut();
        // SAFETY: per the caller's contract.
        let status = unsafe { sys::napi_create_reference(env, func, 1, &mut r) };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::from_reason("cannot hold the custom invariant's apply function"));
        }
        Ok(JsRule { env, func: r })
    }

    /// A fresh `Uint8Array` holding a copy of `bytes`.
    unsafe fn bytes(&self, bytes: &[u8]) -> Result<(napi_value, *mut u8), InvariantError> {
        let env = self.env;
        let mut data: *mut std::ffi::c_void = ptr::null_mut();
        let mut ab = ptr::null_mut();
        // SAFETY: live env (see module docs); `data` is valid for `len` bytes.
        unsafe {
            check(sys::napi_create_arraybuffer(env, bytes.len(), &mut data, &mut ab), "allocating a buffer")?;
            if !bytes.is_empty() {
                ptr::copy_nonoverlapping(bytes.as_ptr(), data as *mut u8, bytes.len());
            }
        }
        Ok((ab, data as *mut u8))
    }

    unsafe fn u8array(&self, bytes: &[u8]) -> Result<napi_value, InvariantError> {
        // SAFETY: as in `bytes`.
        unsafe {
            let (ab, _) = self.bytes(bytes)?;
            let mut arr = ptr::null_mut();
            check(
                sys::napi_create_typedarray(self.env, sys::TypedarrayType::uint8_array, bytes.len(), ab, 0, &mut arr),
                "creating a Uint8Array",
            )?;
            Ok(arr)
        }
    }

    /// The message of a thrown value: `error.message`, else `String(value)`.
    unsafe fn message_of(&self, thrown: napi_value) -> String {
        let env = self.env;
        // SAFETY: live env; every out-pointer is a local.
        unsafe {
            let mut msg = thrown;
            let mut ty = 0;
            if sys::napi_typeof(env, thrown, &mut ty) == sys::Status::napi_ok && ty == sys::ValueType::napi_object {
                let mut m = ptr::null_mut();
                let key = c"message";
                if sys::napi_get_named_property(env, thrown, key.as_ptr(), &mut m) == sys::Status::napi_ok {
                    msg = m;
                }
            }
            let mut s = ptr::null_mut();
            if sys::napi_coerce_to_string(env, msg, &mut s) != sys::Status::napi_ok {
                // coercion itself threw (e.g. a Symbol): drop that exception too
                let mut ignored = ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut ignored);
                return "custom invariant apply threw".to_owned();
            }
            let mut buf = vec![0u8; 512];
            let mut len = 0usize;
            if sys::napi_get_value_string_utf8(env, s, buf.as_mut_ptr() as *mut _, buf.len(), &mut len) != sys::Status::napi_ok {
                return "custom invariant apply threw".to_owned();
            }
            buf.truncate(len);
            String::from_utf8_lossy(&buf).into_owned()
        }
    }

    unsafe fn call(&self, fact: &Fact<'_>, state: &mut [u8]) -> Result<(), InvariantError> {
        let env = self.env;
        // SAFETY: live env, inside a handle scope opened by `apply`.
        unsafe {
            let mut func = ptr::null_mut();
            check(sys::napi_get_reference_value(env, self.func, &mut func), "reading the apply function")?;
            let payload = self.u8array(fact.payload)?;
            let id = self.u8array(&fact.id.0)?;
            let (state_ab, state_data) = self.bytes(state)?;
            let mut view = ptr::null_mut();
            check(sys::napi_create_dataview(env, state.len(), state_ab, 0, &mut view), "creating a DataView")?;
            let mut undefined = ptr::null_mut();
            check(sys::napi_get_undefined(env, &mut undefined), "undefined")?;
            let argv = [payload, view, id];
            let mut result = ptr::null_mut();
            let status = sys::napi_call_function(env, undefined, func, argv.len(), argv.as_ptr(), &mut result);
            let mut pending = false;
            sys::napi_is_exception_pending(env, &mut pending);
            if pending {
                let mut thrown = ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut thrown);
                return Err(violation(self.message_of(thrown)));
            }
            check(status, "calling apply")?;
            // An async apply (or one returning any thenable) ran only up to
            // its first await: refuse it, whatever it wrote.
            self.refuse_thenable(result)?;
            // apply may have transferred (detached) the buffer: then its memory is gone.
            let mut detached = false;
            check(sys::napi_is_detached_arraybuffer(env, state_ab, &mut detached), "checking the state buffer")?;
            if detached {
                return Err(violation("custom invariant apply detached the state buffer"));
            }
            ptr::copy_nonoverlapping(state_data, state.as_mut_ptr(), state.len());
            Ok(())
        }
    }
}

/// The rejection handler attached to a refused async apply's promise: its
/// rejection is the refusal we already reported, not an unhandled one.
unsafe extern "C" fn ignore_rejection(_env: napi_env, _info: sys::napi_callback_info) -> napi_value {
    ptr::null_mut()
}

/// The message of a refused async apply.
const NOT_SYNCHRONOUS: &str = "custom invariant apply must be synchronous: it returned a promise or another thenable (an async function?); the fact is refused and the state is unchanged";

impl JsRule {
    /// Refuses `result` if it is a promise or a thenable (an object or
    /// function with a callable `then`). A promise's rejection is handled
    /// (with a no-op), so that refusing it cannot also kill the process with
    /// an unhandled rejection.
    unsafe fn refuse_thenable(&self, result: napi_value) -> Result<(), InvariantError> {
        let env = self.env;
        // SAFETY: live env, inside the handle scope of `apply`.
        unsafe {
            let mut ty = 0;
            check(sys::napi_typeof(env, result, &mut ty), "reading apply's result")?;
            if ty != sys::ValueType::napi_object && ty != sys::ValueType::napi_function {
                return Ok(());
            }
            let mut is_promise = false;
            check(sys::napi_is_promise(env, result, &mut is_promise), "reading apply's result")?;
            // `then` may be a getter: user code, which may throw.
            let mut then = ptr::null_mut();
            let key = c"then";
            let status = sys::napi_get_named_property(env, result, key.as_ptr(), &mut then);
            let mut pending = false;
            sys::napi_is_exception_pending(env, &mut pending);
            if pending {
                let mut thrown = ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut thrown);
                return Err(violation(format!("{NOT_SYNCHRONOUS} (reading its `then` threw: {})", self.message_of(thrown))));
            }
            check(status, "reading apply's result")?;
            let mut then_ty = 0;
            check(sys::napi_typeof(env, then, &mut then_ty), "reading apply's result")?;
            if then_ty != sys::ValueType::napi_function {
                return if is_promise { Err(violation(NOT_SYNCHRONOUS)) } else { Ok(()) };
            }
            if is_promise {
                // promise.then(undefined, ignore): marks the rejection handled.
                let mut ignore = ptr::null_mut();
                let name = c"ignoreRejection";
                let mut undefined = ptr::null_mut();
                if sys::napi_create_function(env, name.as_ptr(), 15, Some(ignore_rejection), ptr::null_mut(), &mut ignore) == sys::Status::napi_ok
                    && sys::napi_get_undefined(env, &mut undefined) == sys::Status::napi_ok
                {
                    let argv = [undefined, ignore];
                    let mut derived = ptr::null_mut();
                    sys::napi_call_function(env, result, then, argv.len(), argv.as_ptr(), &mut derived);
                    let mut pending = false;
                    sys::napi_is_exception_pending(env, &mut pending);
                    if pending {
                        let mut ignored = ptr::null_mut();
                        sys::napi_get_and_clear_last_exception(env, &mut ignored);
                    }
                }
            }
            Err(violation(NOT_SYNCHRONOUS))
        }
    }
}

impl CustomRule for JsRule {
    fn apply(&self, fact: &Fact<'_>, state: &mut [u8]) -> Result<(), InvariantError> {
        let env = self.env;
        // SAFETY: called only from admissions, i.e. while JS is calling the
        // kernel on its own thread: the env is live. The scope bounds every
        // handle created for this call.
        unsafe {
            let mut scope = ptr::null_mut();
            check(sys::napi_open_handle_scope(env, &mut scope), "opening a handle scope")?;
            let r = self.call(fact, state);
            sys::napi_close_handle_scope(env, scope);
            r
        }
    }
}

impl Drop for JsRule {
    fn drop(&mut self) {
        // SAFETY: dropped with the kernel, on its thread (finalizer or call).
        unsafe {
            sys::napi_delete_reference(self.env, self.func);
        }
    }
}
