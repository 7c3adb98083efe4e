//! `packFixed`: builds a packed batch of many facts of one shape in one
//! call (see `ctfs_core::batch::pack_fixed_into`).

use napi::bindgen_prelude::Uint8Array;
use napi::{Error, Result, Status};
use napi_derive::napi;

/// Packs `payloads.length / payloadBytes` records into `out` (exactly
/// the batch's length): payload `i` is bytes `[i * payloadBytes,
/// (i + 1) * payloadBytes)`, id `i` is `ids[32 i..]` (absent: derived at
/// admission), dependencies `deps[32 k i..]`.
#[napi(catch_unwind)]
pub fn pack_fixed(mut out: Uint8Array, payloads: &[u8], payload_bytes: u32, ids: Option<&[u8]>, deps: Option<&[u8]>, deps_per_fact: Option<u32>) -> Result<()> {
    // SAFETY: `out` is a fresh array from `FactBatch.fromPayloads`, aliased
    // by no other argument, and no JS runs during this call.
    let out = unsafe { out.as_mut() };
    ctfs_core::batch::pack_fixed_into(out, payloads, payload_bytes as usize, ids, deps, deps_per_fact.unwrap_or(0) as usize)
        .map_err(|m| Error::new(Status::InvalidArg, m))
}
