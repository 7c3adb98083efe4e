//! Snapshot containers for joining a cluster without replaying every fact.
//!
//! ```text
//! magic "CTFSSNAP" | version u32 | config id [32] | version vector | kernel sections
//! ```
//!
//! The container travels in [`Chunk`](crate::message::Chunk)s, each naming
//! the BLAKE3 hash of the whole container (its *root*); the receiver
//! assembles it, checks the root, the configuration id and that the
//! snapshot holds everything the receiver holds, and only then lets the host
//! rebuild its kernel (which re-verifies the kernel sections: the frontier
//! recomputed from the ids must match).

use crate::origin::VersionVector;

pub const MAGIC: &[u8; 8] = b"CTFSSNAP";
pub const VERSION: u32 = 1;

/// Builds a container.
pub fn encode(config_id: &[u8; 32], vv: &VersionVector, sections: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + vv.encoded_len() + sections.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(config_id);
    vv.encode(&mut out);
    out.extend_from_slice(sections);
    out
}

/// Reads a container whose root was verified: `(config id, vv, sections)`.
pub fn decode(bytes: &[u8]) -> Result<([u8; 32], VersionVector, &[u8]), String> {
    let (magic, r) = bytes.split_at_checked(8).ok_or("snapshot: truncated")?;
    if magic != MAGIC {
        return Err("not a ctfs snapshot (bad magic)".into());
    }
    let (version, r) = crate::origin::split_u32(r).ok_or("snapshot: truncated")?;
    if version != VERSION {
        return Err(format!("snapshot version {version} is not supported (expected {VERSION})"));
    }
    let (config, r) = r.split_at_checked(32).ok_or("snapshot: truncated")?;
    let (vv, sections) = VersionVector::decode(r).map_err(|e| format!("snapshot: {e}"))?;
    Ok((config.try_into().map_err(|_| "snapshot: config id")?, vv, sections))
}

/// An incoming snapshot being assembled.
#[derive(Debug)]
pub struct Assembly {
    pub from: ctfs_core::NodeId,
    pub root: [u8; 32],
    buf: Vec<u8>,
    /// Offsets of the chunks received (chunks are not re-counted).
    got: std::collections::BTreeSet<u64>,
    received: u64,
    pub started_ms: u64,
    /// When the last chunk arrived (ms).
    pub last_ms: u64,
}

impl Assembly {
    /// `total` must already be checked against the size limit.
    pub fn new(from: ctfs_core::NodeId, root: [u8; 32], total: u64, now_ms: u64) -> Assembly {
        Assembly { from, root, buf: vec![0; total as usize], got: Default::default(), received: 0, started_ms: now_ms, last_ms: now_ms }
    }

    pub fn total(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Adds a chunk (bounds checked by the decoder); true once complete.
    pub fn add(&mut self, offset: u64, data: &[u8]) -> bool {
        let end = offset as usize + data.len();
        if end <= self.buf.len() && self.got.insert(offset) {
            self.buf[offset as usize..end].copy_from_slice(data);
            self.received += data.len() as u64;
        }
        self.received >= self.total()
    }

    /// The container, if its hash matches the root.
    pub fn verified(&self) -> Option<&[u8]> {
        (*blake3::hash(&self.buf).as_bytes() == self.root).then_some(&self.buf[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::Origin;

    #[test]
    fn container_round_trip_and_assembly() {
        let mut vv = VersionVector::new();
        vv.set(Origin { node: 1, epoch: 1 }, 3);
        let c = encode(&[5; 32], &vv, b"sections");
        let (cfg, v, s) = decode(&c).unwrap();
        assert_eq!((cfg, v, s), ([5; 32], vv, &b"sections"[..]));
        let root = *blake3::hash(&c).as_bytes();
        let mut a = Assembly::new(2, root, c.len() as u64, 0);
        assert!(!a.add(10, &c[10..]));
        assert!(!a.add(10, &c[10..]), "a repeated chunk counts once");
        assert!(a.add(0, &c[..10]));
        assert_eq!(a.verified(), Some(&c[..]));
        let mut bad = Assembly::new(2, [0; 32], c.len() as u64, 0);
        bad.add(0, &c);
        assert_eq!(bad.verified(), None);
        assert!(decode(b"CTFSSNAX").is_err());
    }
}
