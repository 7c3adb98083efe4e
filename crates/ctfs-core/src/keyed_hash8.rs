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
        if std::arch::is_x86_feature_detected!("avx2") {
            let lens = lens.map(|l| l as u32);
            // SAFETY: AVX2 is available (checked just above).
            return Some(unsafe { avx2::keyed_hash8(key, blocks, &lens) });
        }
    }
    let _ = (key, blocks);
    None
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::BLOCK_LEN;
    use core::arch::x86_64::*;

    const IV: [u32; 4] = [0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A];
    const CHUNK_START: u32 = 1;
    const CHUNK_END: u32 = 2;
    const ROOT: u32 = 8;
    const KEYED_HASH: u32 = 16;
    /// The message word each of a round's sixteen G inputs takes, per round
    /// (BLAKE3's permutation applied 0..6 times).
    const MSG_SCHEDULE: [[usize; 16]; 7] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8],
        [3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1],
        [10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6],
        [12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4],
        [9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7],
        [11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13],
    ];

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

    /// Rotates every 32-bit lane right by `R` bits (`L` = 32 − `R`).
    #[inline(always)]
    unsafe fn rotr<const R: i32, const L: i32>(x: __m256i) -> __m256i {
        unsafe { _mm256_or_si256(_mm256_srli_epi32::<R>(x), _mm256_slli_epi32::<L>(x)) }
    }

    /// BLAKE3's quarter-round on lanes `a, b, c, d` of the state.
    #[inline(always)]
    unsafe fn g(v: &mut [__m256i; 16], a: usize, b: usize, c: usize, d: usize, mx: __m256i, my: __m256i) {
        unsafe {
            v[a] = add(add(v[a], v[b]), mx);
            v[d] = rotr_bytes(xor(v[d], v[a]), &ROT16);
            v[c] = add(v[c], v[d]);
            v[b] = rotr::<12, 20>(xor(v[b], v[c]));
            v[a] = add(add(v[a], v[b]), my);
            v[d] = rotr_bytes(xor(v[d], v[a]), &ROT8);
            v[c] = add(v[c], v[d]);
            v[b] = rotr::<7, 25>(xor(v[b], v[c]));
        }
    }

    /// Round `R`: its message words are picked at compile time (no
    /// permutation of the vectors between rounds).
    #[inline(always)]
    unsafe fn round<const R: usize>(v: &mut [__m256i; 16], m: &[__m256i; 16]) {
        let s = &MSG_SCHEDULE[R];
        unsafe {
            g(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
            g(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
            g(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
            g(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
            g(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
            g(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
            g(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
            g(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn keyed_hash8(key: &[u8; 32], blocks: &[[u8; BLOCK_LEN]; 8], lens: &[u32; 8]) -> [[u8; 32]; 8] {
        // The blocks as little-endian words; word w of every block gathered
        // into one vector (lane j = input j).
        let word = |j: usize, w: usize| u32::from_le_bytes([blocks[j][4 * w], blocks[j][4 * w + 1], blocks[j][4 * w + 2], blocks[j][4 * w + 3]]);
        let mut m = [_mm256_setzero_si256(); 16];
        for (w, mw) in m.iter_mut().enumerate() {
            let lanes: [u32; 8] = core::array::from_fn(|j| word(j, w));
            // SAFETY: an unaligned load of 32 bytes from an 8-word array.
            *mw = unsafe { _mm256_loadu_si256(lanes.as_ptr() as *const __m256i) };
        }
        let key_word = |i: usize| u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]) as i32;
        let flags = (KEYED_HASH | CHUNK_START | CHUNK_END | ROOT) as i32;
        // SAFETY (the block below): AVX2 is enabled for this function; every
        // load and store is an unaligned access of an 8-word array.
        unsafe {
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
            round::<0>(&mut v, &m);
            round::<1>(&mut v, &m);
            round::<2>(&mut v, &m);
            round::<3>(&mut v, &m);
            round::<4>(&mut v, &m);
            round::<5>(&mut v, &m);
            round::<6>(&mut v, &m);
            let mut out = [[0u8; 32]; 8];
            for i in 0..8 {
                let mut lanes = [0u32; 8];
                _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, xor(v[i], v[i + 8]));
                for (j, o) in out.iter_mut().enumerate() {
                    o[4 * i..4 * i + 4].copy_from_slice(&lanes[j].to_le_bytes());
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(key: &[u8; 32], input: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(key, input).as_bytes()
    }

    /// The eight hashes of `inputs` (each at most a block), blocks built as callers do.
    fn hash8(key: &[u8; 32], inputs: [&[u8]; 8]) -> Option<[[u8; 32]; 8]> {
        let mut blocks = [[0u8; BLOCK_LEN]; 8];
        let lens = inputs.map(|i| i.len());
        for (b, i) in blocks.iter_mut().zip(inputs) {
            let n = i.len().min(BLOCK_LEN);
            b[..n].copy_from_slice(&i[..n]);
        }
        keyed_hash8(key, &blocks, &lens)
    }

    #[test]
    fn every_length_in_every_lane_matches_blake3() {
        let key: [u8; 32] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let data: Vec<u8> = (0..BLOCK_LEN as u32).map(|i| (i * 31 + 5) as u8).collect();
        for len in 0..=BLOCK_LEN {
            for lane in 0..8 {
                // The tested length in one lane, other lengths around it.
                let inputs: [&[u8]; 8] = core::array::from_fn(|j| if j == lane { &data[..len] } else { &data[..(len + j * 9) % (BLOCK_LEN + 1)] });
                let out = hash8(&key, inputs);
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    assert!(out.is_some(), "AVX2 is there: the eight lanes must be used");
                }
                let Some(out) = out else {
                    // No AVX2 on this machine: nothing to compare.
                    return;
                };
                for j in 0..8 {
                    assert_eq!(out[j], reference(&key, inputs[j]), "lane {j}, length {}", inputs[j].len());
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
            if let Some(out) = hash8(&key, refs) {
                for j in 0..8 {
                    prop_assert_eq!(out[j], reference(&key, refs[j]));
                }
            }
        }
    }
}
