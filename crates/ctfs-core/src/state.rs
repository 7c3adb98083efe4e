//! The 64-byte state cell: one cache line, little-endian fixed-width fields.

/// A 64-byte, cache-line-aligned state. Field layouts are fixed by each
/// invariant and documented there; all integers are little-endian, so the
/// bytes are identical on every replica.
#[repr(C, align(64))]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateCell(pub [u8; 64]);

impl StateCell {
    pub const SIZE: usize = 64;

    pub const fn zeroed() -> Self {
        StateCell([0; 64])
    }

    /// A cell from up to 64 bytes (the rest zero). `None` if longer.
    pub fn from_prefix(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > 64 {
            return None;
        }
        let mut c = Self::zeroed();
        c.0[..bytes.len()].copy_from_slice(bytes);
        Some(c)
    }

    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    #[inline(always)]
    pub fn i128_at(&self, off: usize) -> i128 {
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.0[off..off + 16]);
        i128::from_le_bytes(b)
    }

    #[inline(always)]
    pub fn set_i128(&mut self, off: usize, v: i128) {
        self.0[off..off + 16].copy_from_slice(&v.to_le_bytes());
    }

    #[inline(always)]
    pub fn u64_at(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[off..off + 8]);
        u64::from_le_bytes(b)
    }

    #[inline(always)]
    pub fn set_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
}

impl Default for StateCell {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl std::fmt::Debug for StateCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateCell(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<StateCell>(), 64);
        assert_eq!(std::mem::align_of::<StateCell>(), 64);
    }

    #[test]
    fn fields_are_little_endian() {
        let mut c = StateCell::zeroed();
        c.set_i128(16, -2);
        assert_eq!(c.0[16], 0xfe);
        assert_eq!(c.0[31], 0xff);
        assert_eq!(c.i128_at(16), -2);
        c.set_u64(0, 0x0102);
        assert_eq!(&c.0[..2], &[2, 1]);
        assert_eq!(c.u64_at(0), 0x0102);
        assert!(StateCell::from_prefix(&[0; 65]).is_none());
    }
}
