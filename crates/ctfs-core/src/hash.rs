//! Fast, non-cryptographic mixing of 32-byte fact ids into 64 bits.
//!
//! Every byte of the id contributes (the reference hashed only bytes 0–23 and
//! collapsed ids with zero bytes). Each 8-byte lane goes through a bijection
//! (xor with a seed lane, multiply by an odd constant), the lanes are combined
//! with distinct rotations, and a MurmurHash3 finaliser spreads the result.
//! The Bloom clock uses a fixed seed (its bits are compared across replicas);
//! the exact index uses a random per-process seed so that crafted ids cannot
//! aim at one probe chain.

const M0: u64 = 0x9E37_79B9_7F4A_7C15;
const M1: u64 = 0xC2B2_AE3D_27D4_EB4F;
const M2: u64 = 0x1656_67B1_9E37_79F9;
const M3: u64 = 0x85EB_CA77_C2B2_AE63;

/// MurmurHash3's 64-bit finaliser: a bijection with full avalanche.
#[inline(always)]
pub const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Reads the id as four little-endian u64 lanes.
#[inline(always)]
pub fn lanes(id: &[u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (i, lane) in out.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&id[i * 8..i * 8 + 8]);
        *lane = u64::from_le_bytes(b);
    }
    out
}

/// Hashes all 32 bytes of an id with a 64-bit seed.
#[inline(always)]
pub fn hash_id(id: &[u8; 32], seed: u64) -> u64 {
    let [w0, w1, w2, w3] = lanes(id);
    let a = (w0 ^ seed).wrapping_mul(M0);
    let b = (w1 ^ seed.rotate_left(16)).wrapping_mul(M1);
    let c = (w2 ^ seed.rotate_left(32)).wrapping_mul(M2);
    let d = (w3 ^ seed.rotate_left(48)).wrapping_mul(M3);
    fmix64(a ^ b.rotate_left(17) ^ c.rotate_left(31) ^ d.rotate_left(47))
}

/// Maps a 64-bit hash onto `0..n` without a division (Lemire's fast range).
#[inline(always)]
pub fn fast_range(hash: u64, n: usize) -> usize {
    ((hash as u128 * n as u128) >> 64) as usize
}

/// A random 64-bit seed from the operating system, with a fallback that still
/// differs per process and per call when the OS source is unavailable.
pub fn random_seed() -> u64 {
    match getrandom::u64() {
        Ok(v) => v,
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            h.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_matters() {
        let base = [0u8; 32];
        let h0 = hash_id(&base, 7);
        for i in 0..32 {
            let mut id = base;
            id[i] = 1;
            assert_ne!(hash_id(&id, 7), h0, "byte {i} did not change the hash");
        }
    }

    #[test]
    fn seed_changes_hash() {
        let id = [3u8; 32];
        assert_ne!(hash_id(&id, 1), hash_id(&id, 2));
    }

    #[test]
    fn fast_range_stays_in_bounds() {
        for n in [1usize, 2, 3, 97, 1 << 20] {
            for h in [0u64, 1, u64::MAX, u64::MAX / 3] {
                assert!(fast_range(h, n) < n);
            }
        }
    }
}
