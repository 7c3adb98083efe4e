//! `packFixed`: builds a packed batch of many facts of one shape in one
//! call (see `ctfs_core::batch::pack_fixed`).

use napi::bindgen_prelude::Buffer;
use napi::{Error, Result, Status};
use napi_derive::napi;

/// Packs `payloads.length / payloadBytes` records: payload `i` is bytes
/// `[i * payloadBytes, (i + 1) * payloadBytes)`, id `i` is `ids[32 i..]`
/// (absent: derived at admission), dependencies `deps[32 k i..]`.
#[napi(catch_unwind)]
pub fn pack_fixed(payloads: &[u8], payload_bytes: u32, ids: Option<&[u8]>, deps: Option<&[u8]>, deps_per_fact: Option<u32>) -> Result<Buffer> {
    ctfs_core::batch::pack_fixed(payloads, payload_bytes as usize, ids, deps, deps_per_fact.unwrap_or(0) as usize)
        .map(Buffer::from)
        .map_err(|m| Error::new(Status::InvalidArg, m))
}
