//! Empty N-API functions: the floor a benchmark compares admission against.

use napi_derive::napi;

#[napi]
pub fn floor_noop() {}

#[napi]
pub fn floor_one_slice(a: &[u8]) -> u32 {
    a.len() as u32
}

#[napi]
pub fn floor_three_slices(a: &[u8], b: &[u8], c: &[u8]) -> u32 {
    (a.len() + b.len() + c.len()) as u32
}
