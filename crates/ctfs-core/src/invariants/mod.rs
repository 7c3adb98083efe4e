//! Built-in invariants.
//!
//! | invariant | state | payload | class | coordination |
//! |---|---|---|---|---|
//! | [`TotalSupply`] | cell | i128 delta (16 B) | group / bounded | none / escrow |
//! | [`Max`] | cell | i128 (16 B) | semilattice | none |
//! | [`GCounter`] | cell | u64 increment (8 B) | commutative monoid | none |
//! | [`BoundedGCounter`] | cell | u64 increment (8 B) | bounded | escrow |
//! | [`Lww`] | cell | u64 timestamp + 0..=16 B value | last-writer-wins | none |
//! | [`UniquenessCell`] | cell (512-bit set) | u16 element < 512 (2 B) | idempotent set | none |
//! | [`UniqueSet`] | cell summary + heap set | 32-byte key | idempotent set / bounded (`max_elements`) | none / escrow |
//! | [`GGraphCell`] | cell (16×16 adjacency) | u8 from, u8 to (2 B) | grow-only graph / non-commutative (degree bounds) | none / required |
//! | [`Graph`] | cell summary + heap graph | u64 from, u64 to (16 B) | grow-only graph / bounded (`max_edges`) / non-commutative (degree bounds) | none / escrow / required |
//!
//! Every payload has an exact length (or, for [`Lww`], an exact range);
//! anything else is [`InvariantError::MalformedPayload`]. All integers are
//! little-endian, in payloads and in state cells. Every built-in has a
//! meaningful 64-byte cell (for the heap variants a summary: counts and an
//! order-independent digest), so two replicas holding the same facts hold the
//! same bytes.
//!
//! [`Builtin`] puts them all behind one enum for run-time selection.

use std::borrow::Cow;

use crate::invariant::InvariantError;
use crate::state::StateCell;

pub mod builtin;
pub mod g_counter;
pub mod ggraph;
pub mod lww;
pub mod max;
pub mod total_supply;
pub mod uniqueness;

#[cfg(test)]
pub(crate) mod testkit;

pub use builtin::{Builtin, BuiltinEffect, BuiltinState, ExtEffect, Extension};
pub use g_counter::{BoundedGCounter, GCounter};
pub use ggraph::{DegreeLimits, GGraphCell, Graph, GraphEffect, GraphState, VertexGraph};
pub use lww::{Lww, LwwState};
pub use max::Max;
pub use total_supply::TotalSupply;
pub use uniqueness::{KeySet, SetEffect, UniqueSet, UniqueSetState, UniquenessCell};

/// The payload as an array of exactly `N` bytes, or `MalformedPayload`
/// naming the invariant and the expected encoding.
#[inline(always)]
pub(crate) fn exact_payload<const N: usize>(payload: &[u8], name: &str, what: &str) -> Result<[u8; N], InvariantError> {
    payload.try_into().map_err(|_| {
        InvariantError::MalformedPayload(Cow::Owned(format!(
            "{name} expects a {N}-byte payload ({what}), got {} bytes",
            payload.len()
        )))
    })
}

#[inline(always)]
pub(crate) fn violation(msg: String) -> InvariantError {
    InvariantError::Violation(Cow::Owned(msg))
}

#[inline(always)]
pub(crate) fn u128_at(cell: &StateCell, off: usize) -> u128 {
    cell.i128_at(off) as u128
}

#[inline(always)]
pub(crate) fn set_u128(cell: &mut StateCell, off: usize, v: u128) {
    cell.set_i128(off, v as i128);
}

/// Key of the keyed BLAKE3 used for set and graph digests (a fixed,
/// public constant: the digest must be equal on every replica).
const DIGEST_KEY: [u8; 32] = *b"ctfs element digest, v1 (sum)..!";

/// Adds `element` to the 32-byte order-independent digest at `off`: the
/// keyed BLAKE3 of the element, added lane-wise (four u64, wrapping). The sum
/// of a set does not depend on the order its elements arrive in; elements are
/// never removed and never added twice, so it is a digest of the set.
#[inline]
pub(crate) fn digest_add(cell: &mut StateCell, off: usize, element: &[u8]) {
    let h = blake3::keyed_hash(&DIGEST_KEY, element);
    let h = h.as_bytes();
    for lane in 0..4 {
        let at = off + lane * 8;
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[lane * 8..lane * 8 + 8]);
        let v = cell.u64_at(at).wrapping_add(u64::from_le_bytes(b));
        cell.set_u64(at, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_order_independent() {
        let (a, b, c) = (*b"alpha", *b"bravo", *b"charl");
        let mut x = StateCell::zeroed();
        let mut y = StateCell::zeroed();
        for e in [&a, &b, &c] {
            digest_add(&mut x, 8, e);
        }
        for e in [&c, &a, &b] {
            digest_add(&mut y, 8, e);
        }
        assert_eq!(x, y);
        assert_ne!(x, StateCell::zeroed());
        assert_eq!(&x.0[..8], &[0; 8]);
        assert_eq!(&x.0[40..], &[0; 24]);
    }

    #[test]
    fn u128_round_trip() {
        let mut c = StateCell::zeroed();
        set_u128(&mut c, 16, u128::MAX - 5);
        assert_eq!(u128_at(&c, 16), u128::MAX - 5);
        assert_eq!(c.0[16], 0xfa);
    }

    #[test]
    fn exact_payload_names_lengths() {
        let e = exact_payload::<8>(&[1, 2], "gCounter", "u64 increment").unwrap_err();
        assert!(matches!(&e, InvariantError::MalformedPayload(m) if m.contains("8-byte") && m.contains("got 2")));
        assert_eq!(exact_payload::<2>(&[1, 2], "x", "y").unwrap(), [1, 2]);
    }
}
