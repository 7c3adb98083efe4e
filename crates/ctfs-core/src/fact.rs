//! Fact ids and the borrowed view of a fact.

use std::fmt;

/// A 32-byte fact identifier. Usually BLAKE3 output; any 32 bytes are valid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct FactId(pub [u8; 32]);

impl FactId {
    pub const LEN: usize = 32;

    /// Copies an id out of a slice; `None` unless it is exactly 32 bytes.
    #[inline]
    pub fn from_slice(bytes: &[u8]) -> Option<FactId> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(FactId(arr))
    }

    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reinterprets packed ids (`n * 32` bytes) as a slice of ids, without
    /// copying. `None` when the length is not a multiple of 32.
    #[inline]
    pub fn slice_from_bytes(bytes: &[u8]) -> Option<&[FactId]> {
        if bytes.len() % Self::LEN != 0 {
            return None;
        }
        // SAFETY: FactId is repr(transparent) over [u8; 32], whose alignment is
        // 1, so any byte pointer is suitably aligned, and the length is an
        // exact multiple of the element size. The lifetime is the input's.
        Some(unsafe {
            std::slice::from_raw_parts(bytes.as_ptr() as *const FactId, bytes.len() / Self::LEN)
        })
    }

    /// Views a slice of ids as packed bytes.
    #[inline]
    pub fn slice_as_bytes(ids: &[FactId]) -> &[u8] {
        // SAFETY: see `slice_from_bytes`; the reverse cast of the same layout.
        unsafe { std::slice::from_raw_parts(ids.as_ptr() as *const u8, std::mem::size_of_val(ids)) }
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Debug for FactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FactId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for FactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl From<[u8; 32]> for FactId {
    fn from(v: [u8; 32]) -> Self {
        FactId(v)
    }
}

/// A fact as the kernel sees it during admission: everything borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Fact<'a> {
    pub id: &'a FactId,
    pub deps: &'a [FactId],
    pub payload: &'a [u8],
}

/// Derives fresh, unique fact ids with keyed BLAKE3.
///
/// `id = BLAKE3_keyed(key, counter ‖ dep count ‖ deps ‖ payload)`. The key is
/// 32 random bytes drawn when the deriver is made, so two kernels (or two runs
/// of one) never derive the same id, and the counter makes two admissions of
/// an identical payload two distinct facts. The id still commits to the
/// fact's content: changing a dependency or a payload byte changes the id.
#[derive(Clone)]
pub struct IdDeriver {
    key: [u8; 32],
    counter: u64,
}

impl IdDeriver {
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            // No OS entropy: fall back to per-process randomness. Ids remain
            // unique within this deriver thanks to the counter.
            for chunk in key.chunks_mut(8) {
                chunk.copy_from_slice(&crate::hash::random_seed().to_le_bytes());
            }
        }
        IdDeriver { key, counter: 0 }
    }

    /// A deriver with a fixed key, for reproducible tests.
    pub fn with_key(key: [u8; 32]) -> Self {
        IdDeriver { key, counter: 0 }
    }

    /// The id the next call to [`IdDeriver::advance`] would commit to.
    #[inline]
    pub fn peek(&self, deps: &[FactId], payload: &[u8]) -> FactId {
        self.peek_at(self.counter, deps, payload)
    }

    /// Bytes hashed for a fact's id: counter (8) ‖ dependency count (4) ‖
    /// dependencies ‖ payload.
    #[inline]
    fn input_len(deps: &[FactId], payload: &[u8]) -> usize {
        12 + FactId::LEN * deps.len() + payload.len()
    }

    /// Writes that input at the start of `out` (at least
    /// [`input_len`](Self::input_len) bytes); returns its length.
    #[inline]
    fn write_input(out: &mut [u8], counter: u64, deps: &[FactId], payload: &[u8]) -> usize {
        let deps_bytes = FactId::slice_as_bytes(deps);
        let len = Self::input_len(deps, payload);
        out[..8].copy_from_slice(&counter.to_le_bytes());
        out[8..12].copy_from_slice(&(deps.len() as u32).to_le_bytes());
        out[12..12 + deps_bytes.len()].copy_from_slice(deps_bytes);
        out[12 + deps_bytes.len()..len].copy_from_slice(payload);
        len
    }

    /// Whether the id of a fact with these dependencies and payload is one
    /// BLAKE3 block, so that [`peek_at8`](Self::peek_at8) can compute it.
    #[inline]
    pub fn hashes_in_one_block(deps: &[FactId], payload: &[u8]) -> bool {
        Self::input_len(deps, payload) <= crate::keyed_hash8::BLOCK_LEN
    }

    /// The id committed at `counter` (a batch computes ids ahead with it).
    #[inline]
    pub fn peek_at(&self, counter: u64, deps: &[FactId], payload: &[u8]) -> FactId {
        // Small facts (the common case: a counter increment, a delta) are
        // hashed in one call from a stack buffer: the same bytes, so the same
        // id, without setting up an incremental hasher (~2 KB of state).
        const SMALL: usize = 256;
        if Self::input_len(deps, payload) <= SMALL {
            let mut b = [0u8; SMALL];
            let len = Self::write_input(&mut b, counter, deps, payload);
            return FactId(*blake3::keyed_hash(&self.key, &b[..len]).as_bytes());
        }
        self.peek_streamed(counter, deps, payload)
    }

    /// The ids committed at eight counters at once (`(counter, deps,
    /// payload)` each; a batch hashes the ids of upcoming records together).
    /// `None` unless every input fits one BLAKE3 block
    /// ([`hashes_in_one_block`](Self::hashes_in_one_block)) and the CPU can
    /// hash eight at once (see [`crate::keyed_hash8`]); each id is then
    /// exactly what [`peek_at`](Self::peek_at) returns for it.
    pub fn peek_at8(&self, items: &[(u64, &[FactId], &[u8]); 8]) -> Option<[FactId; 8]> {
        use crate::keyed_hash8::{BLOCK_LEN, keyed_hash8};
        let mut blocks = [[0u8; BLOCK_LEN]; 8];
        let mut lens = [0usize; 8];
        for (j, &(counter, deps, payload)) in items.iter().enumerate() {
            if !Self::hashes_in_one_block(deps, payload) {
                return None;
            }
            lens[j] = Self::write_input(&mut blocks[j], counter, deps, payload);
        }
        keyed_hash8(&self.key, &blocks, &lens).map(|hashes| hashes.map(FactId))
    }

    /// [`IdDeriver::peek_at`] through the incremental hasher (any size).
    fn peek_streamed(&self, counter: u64, deps: &[FactId], payload: &[u8]) -> FactId {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&counter.to_le_bytes());
        h.update(&(deps.len() as u32).to_le_bytes());
        h.update(FactId::slice_as_bytes(deps));
        h.update(payload);
        FactId(*h.finalize().as_bytes())
    }

    /// Ids committed so far.
    #[inline]
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Moves past the id returned by the last `peek` (call after a commit).
    #[inline]
    pub fn advance(&mut self) {
        self.counter += 1;
    }
}

impl Default for IdDeriver {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_at_once_are_the_ids_one_at_a_time() {
        let d = IdDeriver::with_key([9; 32]);
        let deps = [FactId([1; 32]), FactId([2; 32])];
        let payloads: Vec<Vec<u8>> = (0..=53).map(|n| (0..n as u8).collect()).collect();
        // 0 deps with payloads of 0..=52 bytes, and 1 dep with 0..=20, fit one block.
        for start in 0..payloads.len() - 8 {
            let items: [(u64, &[FactId], &[u8]); 8] = core::array::from_fn(|j| {
                let p = &payloads[start + j];
                let ds: &[FactId] = if p.len() <= 20 && j % 2 == 1 { &deps[..1] } else { &[] };
                ((start * 8 + j) as u64 * 977, ds, &p[..p.len().min(52)])
            });
            let Some(ids) = d.peek_at8(&items) else {
                // No AVX2 on this machine.
                return;
            };
            for (j, &(c, ds, p)) in items.iter().enumerate() {
                assert_eq!(ids[j], d.peek_at(c, ds, p), "item {j} of group {start}");
            }
        }
        // More than one block: left to `peek_at`.
        let big = [0u8; 53];
        let items: [(u64, &[FactId], &[u8]); 8] = core::array::from_fn(|j| (j as u64, &[][..], if j == 5 { &big[..] } else { &big[..1] }));
        assert!(d.peek_at8(&items).is_none());
        let items: [(u64, &[FactId], &[u8]); 8] = core::array::from_fn(|j| (j as u64, if j == 0 { &deps[..2] } else { &[][..] }, &big[..1]));
        assert!(d.peek_at8(&items).is_none());
    }

    #[test]
    fn slice_round_trip() {
        let bytes: Vec<u8> = (0..96).map(|i| i as u8).collect();
        let ids = FactId::slice_from_bytes(&bytes).unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[1].0[0], 32);
        assert_eq!(FactId::slice_as_bytes(ids), &bytes[..]);
        assert!(FactId::slice_from_bytes(&bytes[..95]).is_none());
        assert_eq!(FactId::slice_from_bytes(&[]).unwrap().len(), 0);
    }

    #[test]
    fn one_shot_and_streamed_derivations_agree() {
        let d = IdDeriver::with_key([3; 32]);
        let deps: Vec<FactId> = (0..9u8).map(|i| FactId([i; 32])).collect();
        for n in 0..9 {
            for len in [0usize, 1, 8, 16, 52, 53, 100, 244 - 32 * n.min(7), 300, 5000] {
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                assert_eq!(d.peek_at(42, &deps[..n], &payload), d.peek_streamed(42, &deps[..n], &payload), "{n} deps, {len} bytes");
            }
        }
    }

    #[test]
    fn identical_payloads_get_distinct_ids() {
        let mut d = IdDeriver::with_key([9; 32]);
        let a = d.peek(&[], b"same");
        d.advance();
        let b = d.peek(&[], b"same");
        assert_ne!(a, b);
    }

    #[test]
    fn derived_ids_commit_to_content() {
        let d = IdDeriver::with_key([9; 32]);
        let dep = FactId([1; 32]);
        assert_ne!(d.peek(&[], b"x"), d.peek(&[], b"y"));
        assert_ne!(d.peek(&[], b"x"), d.peek(&[dep], b"x"));
    }

    #[test]
    fn two_derivers_differ() {
        let a = IdDeriver::new().peek(&[], b"p");
        let b = IdDeriver::new().peek(&[], b"p");
        assert_ne!(a, b);
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(FactId::from_slice(&[0; 31]).is_none());
        assert!(FactId::from_slice(&[0; 33]).is_none());
        assert_eq!(FactId::from_slice(&[7; 32]), Some(FactId([7; 32])));
    }
}
