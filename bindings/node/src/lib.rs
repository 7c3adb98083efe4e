//! N-API binding of ctfs: thin glue between JavaScript and `ctfs-core`.
//!
//! Conventions:
//! * hot-path calls take borrowed byte slices (`&[u8]`, no copies, no owned
//!   Buffers) and return a numeric status (`ErrorCode`, 0 = admitted); the
//!   TypeScript layer turns a non-zero status into a `CtfsError`, fetching
//!   the details with `lastError()` only on that error path;
//! * every method is `catch_unwind`: a Rust panic becomes a JS exception,
//!   never an abort of the host process.

// `#[napi]` items are only referenced from the generated registration code,
// which test builds do not include.
#![cfg_attr(test, allow(dead_code))]

mod checkpoint;
mod config;
mod durable;
mod escrow;
mod fast;
mod floor;
mod inspect;
mod js_rule;
mod kernel;
mod metrics;
mod sync;
mod targets;

use napi_derive::napi;

/// The stable error code strings, indexed by status number.
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    ctfs_core::ErrorCode::ALL.iter().map(|c| c.as_str()).collect()
}
