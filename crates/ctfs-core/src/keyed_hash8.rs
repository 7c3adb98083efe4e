//! Eight keyed BLAKE3 hashes of short inputs at once (x86-64 AVX2).
//!
//! A derived fact id is `blake3::keyed_hash(key, counter ‖ deps ‖ payload)`
//! (see [`crate::fact::IdDeriver`]); for a fact with no dependency and a
//! payload of up to 52 bytes, or one dependency and up to 20, that input is
//! a single 64-byte block, so the hash is one BLAKE3 compression. One at a
//! time it costs 118–133 ns on the development VM, more than the rest of a
//! batched admission; a batch's lookahead hashes the single-block ids of up
//! to eight records together instead, one compression per AVX2 lane: 70–74
//! ns per id against 132–137 for `IdDeriver::peek_at` (a throwaway loop of
//! 1M ids, 16-byte payloads, three runs). That is about the 2× that eight
//! 32-bit lanes give over the `blake3` crate's four-lane single compression.
//!
//! Where AVX-512VL is there, the same eight lanes rotate with one `vprord`
//! instead of two shifts and an or (or a byte shuffle), and the words go in
//! and out through in-register 8 × 8 transposes instead of the stack: on
//! the 2-core Xeon VM of 2026-12-01 (avx512vl), `IdDeriver::peek_at8` went
//! from 19.1–21.3 to 15.1–16.7 ns per id, three interleaved pairs of a
//! throwaway loop of 2M ids (`peek_at`: 60–66 ns). The transposes alone
//! gave 18.8 → 18.2 ns. Sixteen lanes in 512-bit registers were tried and
//! not kept: 16.4–16.8 ns per id in the same loop, no faster than eight
//! with `vprord` (what is left is largely building the blocks).
//!
//! Each lane computes exactly what `blake3::keyed_hash` computes for an
//! input of at most [`BLOCK_LEN`] bytes: the key as chaining value, the
//! input zero-padded to one block, counter 0, the input's length as the
//! block length and the flags `KEYED_HASH | CHUNK_START | CHUNK_END | ROOT`;
//! the hash is the first half of the compression's output. The tests compare
//! every lane with the `blake3` crate for every input length.

/// Inputs longer than this take more than one compression (not handled here).
pub const BLOCK_LEN: usize = 64;

/// The keyed hashes of eight inputs, each given as a block holding the input
/// in its first `lens[j]` bytes and zeros after them (BLAKE3's padding; the
/// caller builds the blocks once, see [`crate::fact::IdDeriver::peek_at8`]).
/// `None` when a length exceeds [`BLOCK_LEN`] or the CPU lacks AVX2 (the
/// caller hashes one at a time).
pub fn keyed_hash8(key: &[u8; 32], blocks: &[[u8; BLOCK_LEN]; 8], lens: &[usize; 8]) -> Option<[[u8; 32]; 8]> {
    if lens.iter().any(|&l| l > BLOCK_LEN) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let lens = lens.map(|l| l as u32);
        if std::arch::is_x86_feature_detected!("avx2") {
            if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") {
                // SAFETY: AVX2, AVX-512F and AVX-512VL are available (checked just above).
                return Some(unsafe { avx2::keyed_hash8_vl(key, blocks, &lens) });
            }
            // SAFETY: AVX2 is available (checked just above).
            return Some(unsafe { avx2::keyed_hash8(key, blocks, &lens) });
        }
    }
    let _ = (key, blocks);
    None
}

#[cfg(target_arch = "x86_64")]
const IV: [u32; 4] = [0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A];
#[cfg(target_arch = "x86_64")]
const CHUNK_START: u32 = 1;
#[cfg(target_arch = "x86_64")]
const CHUNK_END: u32 = 2;
#[cfg(target_arch = "x86_64")]
const ROOT: u32 = 8;
#[cfg(target_arch = "x86_64")]
const KEYED_HASH: u32 = 16;
/// The message word each of a round's sixteen G inputs takes, per round
/// (BLAKE3's permutation applied 0..6 times).
#[cfg(target_arch = "x86_64")]
const MSG_SCHEDULE: [[usize; 16]; 7] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8],
    [3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1],
    [10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6],
    [12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4],
    [9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7],
    [11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13],
];

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BLOCK_LEN, CHUNK_END, CHUNK_START, IV, KEYED_HASH, MSG_SCHEDULE, ROOT};
    use core::arch::x86_64::*;

    #[inline(always)]
    unsafe fn add(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_add_epi32(a, b) }
    }

    #[inline(always)]
    unsafe fn xor(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_xor_si256(a, b) }
    }

    /// Byte shuffles that rotate every 32-bit lane right by 16 and by 8 bits.
    const ROT16: [u8; 32] = [2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13];
    const ROT8: [u8; 32] = [1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, 1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12];

    /// Rotates every 32-bit lane right by a whole number of bytes (`table`: [`ROT16`] or [`ROT8`]).
    #[inline(always)]
    unsafe fn rotr_bytes(x: __m256i, table: &[u8; 32]) -> __m256i {
        // SAFETY: an unaligned load of the 32-byte table.
        unsafe { _mm256_shuffle_epi8(x, _mm256_loadu_si256(table.as_ptr() as *const __m256i)) }
    }

    /// Rotates every 32-bit lane right by `R` bits (`L` = 32 − `R`): one
    /// `vprord` with AVX-512VL (`VL`), else two shifts and an or (or one
    /// byte shuffle for 16 and 8).
    #[inline(always)]
    unsafe fn rotr<const VL: bool, const R: i32, const L: i32>(x: __m256i) -> __m256i {
        unsafe {
            if VL {
                _mm256_ror_epi32::<R>(x)
            } else if R == 16 {
                rotr_bytes(x, &ROT16)
            } else if R == 8 {
                rotr_bytes(x, &ROT8)
            } else {
                _mm256_or_si256(_mm256_srli_epi32::<R>(x), _mm256_slli_epi32::<L>(x))
            }
        }
    }

    /// BLAKE3's quarter-round on lanes `a, b, c, d` of the state.
    #[inline(always)]
    unsafe fn g<const VL: bool>(v: &mut [__m256i; 16], a: usize, b: usize, c: usize, d: usize, mx: __m256i, my: __m256i) {
        unsafe {
            v[a] = add(add(v[a], v[b]), mx);
            v[d] = rotr::<VL, 16, 16>(xor(v[d], v[a]));
            v[c] = add(v[c], v[d]);
            v[b] = rotr::<VL, 12, 20>(xor(v[b], v[c]));
            v[a] = add(add(v[a], v[b]), my);
            v[d] = rotr::<VL, 8, 24>(xor(v[d], v[a]));
            v[c] = add(v[c], v[d]);
            v[b] = rotr::<VL, 7, 25>(xor(v[b], v[c]));
        }
    }

    /// Round `R`: its message words are picked at compile time (no
    /// permutation of the vectors between rounds).
    #[inline(always)]
    unsafe fn round<const VL: bool, const R: usize>(v: &mut [__m256i; 16], m: &[__m256i; 16]) {
        let s = &MSG_SCHEDULE[R];
        unsafe {
            g::<VL>(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
            g::<VL>(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
            g::<VL>(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
            g::<VL>(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
            g::<VL>(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
            g::<VL>(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
            g::<VL>(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
            g::<VL>(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
    }

    /// Transposes an 8 × 8 matrix of 32-bit words held as eight rows:
    /// afterwards `r[i]` holds what was word `i` of every row (lane `j` =
    /// row `j`). Twenty-four shuffles, no memory round trip.
    #[inline(always)]
    unsafe fn transpose8(r: &mut [__m256i; 8]) {
        unsafe {
            let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
            let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
            let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
            let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
            let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
            let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
            let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
            let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
            let u0 = _mm256_unpacklo_epi64(t0, t2);
            let u1 = _mm256_unpackhi_epi64(t0, t2);
            let u2 = _mm256_unpacklo_epi64(t1, t3);
            let u3 = _mm256_unpackhi_epi64(t1, t3);
            let u4 = _mm256_unpacklo_epi64(t4, t6);
            let u5 = _mm256_unpackhi_epi64(t4, t6);
            let u6 = _mm256_unpacklo_epi64(t5, t7);
            let u7 = _mm256_unpackhi_epi64(t5, t7);
            r[0] = _mm256_permute2x128_si256::<0x20>(u0, u4);
            r[1] = _mm256_permute2x128_si256::<0x20>(u1, u5);
            r[2] = _mm256_permute2x128_si256::<0x20>(u2, u6);
            r[3] = _mm256_permute2x128_si256::<0x20>(u3, u7);
            r[4] = _mm256_permute2x128_si256::<0x31>(u0, u4);
            r[5] = _mm256_permute2x128_si256::<0x31>(u1, u5);
            r[6] = _mm256_permute2x128_si256::<0x31>(u2, u6);
            r[7] = _mm256_permute2x128_si256::<0x31>(u3, u7);
        }
    }

    /// The eight hashes (see [`super::keyed_hash8`]); the caller enables AVX2
    /// (and AVX-512F/VL when `VL`).
    #[inline(always)]
    unsafe fn hash8<const VL: bool>(key: &[u8; 32], blocks: &[[u8; BLOCK_LEN]; 8], lens: &[u32; 8]) -> [[u8; 32]; 8] {
        let key_word = |i: usize| u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]) as i32;
        let flags = (KEYED_HASH | CHUNK_START | CHUNK_END | ROOT) as i32;
        // SAFETY (the block below): the caller enabled the features used;
        // every load and store is an unaligned access of 32 bytes inside a
        // block, the `lens` array or an output hash.
        unsafe {
            // Word w of every block gathered into one vector (lane j = block
            // j): the blocks' halves loaded as rows, then transposed.
            let mut lo: [__m256i; 8] = core::array::from_fn(|j| _mm256_loadu_si256(blocks[j].as_ptr() as *const __m256i));
            let mut hi: [__m256i; 8] = core::array::from_fn(|j| _mm256_loadu_si256(blocks[j].as_ptr().add(32) as *const __m256i));
            transpose8(&mut lo);
            transpose8(&mut hi);
            let m: [__m256i; 16] = core::array::from_fn(|w| if w < 8 { lo[w] } else { hi[w - 8] });
            let mut v = [_mm256_setzero_si256(); 16];
            for (i, vi) in v.iter_mut().enumerate().take(8) {
                *vi = _mm256_set1_epi32(key_word(i));
            }
            for i in 0..4 {
                v[8 + i] = _mm256_set1_epi32(IV[i] as i32);
            }
            // Counter 0 (low and high words), each lane's block length, the flags.
            v[12] = _mm256_setzero_si256();
            v[13] = _mm256_setzero_si256();
            v[14] = _mm256_loadu_si256(lens.as_ptr() as *const __m256i);
            v[15] = _mm256_set1_epi32(flags);
            round::<VL, 0>(&mut v, &m);
            round::<VL, 1>(&mut v, &m);
            round::<VL, 2>(&mut v, &m);
            round::<VL, 3>(&mut v, &m);
            round::<VL, 4>(&mut v, &m);
            round::<VL, 5>(&mut v, &m);
            round::<VL, 6>(&mut v, &m);
            // Output word i of every lane, transposed back into one row per hash.
            let mut h: [__m256i; 8] = core::array::from_fn(|i| xor(v[i], v[i + 8]));
            transpose8(&mut h);
            let mut out = [[0u8; 32]; 8];
            for (o, row) in out.iter_mut().zip(h) {
                _mm256_storeu_si256(o.as_mut_ptr() as *mut __m256i, row);
            }
            out
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn keyed_hash8(key: &[u8; 32], blocks: &[[u8; BLOCK_LEN]; 8], lens: &[u32; 8]) -> [[u8; 32]; 8] {
        // SAFETY: AVX2 is enabled for this function.
        unsafe { hash8::<false>(key, blocks, lens) }
    }

    /// [`keyed_hash8`] with AVX-512VL's one-instruction rotations.
    #[target_feature(enable = "avx2,avx512f,avx512vl")]
    pub(super) unsafe fn keyed_hash8_vl(key: &[u8; 32], blocks: &[[u8; BLOCK_LEN]; 8], lens: &[u32; 8]) -> [[u8; 32]; 8] {
        // SAFETY: AVX2, AVX-512F and AVX-512VL are enabled for this function.
        unsafe { hash8::<true>(key, blocks, lens) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(key: &[u8; 32], input: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(key, input).as_bytes()
    }

    /// The blocks and lengths of `inputs` (each at most a block), built as callers do.
    fn blocks(inputs: [&[u8]; 8]) -> ([[u8; BLOCK_LEN]; 8], [usize; 8]) {
        let mut blocks = [[0u8; BLOCK_LEN]; 8];
        let lens = inputs.map(|i| i.len());
        for (b, i) in blocks.iter_mut().zip(inputs) {
            let n = i.len().min(BLOCK_LEN);
            b[..n].copy_from_slice(&i[..n]);
        }
        (blocks, lens)
    }

    /// The eight hashes of `inputs` by the public entry point.
    fn hash8(key: &[u8; 32], inputs: [&[u8]; 8]) -> Option<[[u8; 32]; 8]> {
        let (blocks, lens) = blocks(inputs);
        keyed_hash8(key, &blocks, &lens)
    }

    /// The eight hashes of `inputs` (each at most a block) by every
    /// implementation this CPU can run, named: the public entry point picks
    /// one, and each must be right on its own.
    fn every_path(key: &[u8; 32], inputs: [&[u8]; 8]) -> Vec<(&'static str, [[u8; 32]; 8])> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            let (blocks, lens) = blocks(inputs);
            let lens = lens.map(|l| l as u32);
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is available (checked just above).
                out.push(("avx2", unsafe { avx2::keyed_hash8(key, &blocks, &lens) }));
                if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") {
                    // SAFETY: AVX2, AVX-512F and AVX-512VL are available (checked just above).
                    out.push(("avx512vl", unsafe { avx2::keyed_hash8_vl(key, &blocks, &lens) }));
                }
            }
        }
        if let Some(h) = hash8(key, inputs) {
            out.push(("entry point", h));
        }
        out
    }

    #[test]
    fn every_length_in_every_lane_matches_blake3() {
        let key: [u8; 32] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let data: Vec<u8> = (0..BLOCK_LEN as u32).map(|i| (i * 31 + 5) as u8).collect();
        for len in 0..=BLOCK_LEN {
            for lane in 0..8 {
                // The tested length in one lane, other lengths around it.
                let inputs: [&[u8]; 8] = core::array::from_fn(|j| if j == lane { &data[..len] } else { &data[..(len + j * 9) % (BLOCK_LEN + 1)] });
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    assert!(hash8(&key, inputs).is_some(), "AVX2 is there: the eight lanes must be used");
                }
                for (path, out) in every_path(&key, inputs) {
                    for j in 0..8 {
                        assert_eq!(out[j], reference(&key, inputs[j]), "{path}: lane {j}, length {}", inputs[j].len());
                    }
                }
            }
        }
    }

    #[test]
    fn longer_inputs_are_left_to_the_caller() {
        let long = [0u8; BLOCK_LEN + 1];
        let inputs: [&[u8]; 8] = core::array::from_fn(|j| if j == 3 { &long[..] } else { &long[..1] });
        assert!(hash8(&[0; 32], inputs).is_none());
    }

    proptest! {
        #[test]
        fn random_inputs_match_blake3(key in any::<[u8; 32]>(), inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..=BLOCK_LEN), 8)) {
            let refs: [&[u8]; 8] = core::array::from_fn(|j| inputs[j].as_slice());
            for (path, out) in every_path(&key, refs) {
                for j in 0..8 {
                    prop_assert_eq!(out[j], reference(&key, refs[j]), "{}: lane {}", path, j);
                }
            }
        }
    }
}
