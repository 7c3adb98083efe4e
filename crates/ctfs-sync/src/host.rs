//! What the protocol needs from the replica it serves.
//!
//! The sync core never owns the kernel: the caller does (the N-API binding
//! with its durable log, the simulator with a plain kernel) and lends it for
//! each input through [`Host`]. [`Replicated`] is the plain in-memory host:
//! a kernel and its escrow gate.

use ctfs_core::kernel::SnapshotState;
use ctfs_core::replica::{Escrowed, Replication};
use ctfs_core::{AdmitError, EscrowConfig, FactId, Kernel, KernelConfig, NodeId};

/// The replica's side of the protocol.
pub trait Host {
    /// Admits a fact another replica admitted ([`Kernel::admit_merge`]
    /// semantics): `origin`'s fact number `seq` (a durable host logs both
    /// with the fact). `Err(DuplicateFact)` means it is here already.
    fn admit_merge(&mut self, id: &FactId, deps: &[FactId], payload: &[u8], origin: crate::origin::Origin, seq: u64) -> Result<(), AdmitError>;
    /// Facts admitted.
    fn fact_count(&self) -> u64;
    /// Order-independent digest of the admitted ids.
    fn id_digest(&self) -> [u8; 32];
    /// Digest of the state.
    fn state_digest(&self) -> [u8; 32];
    /// The escrow gate of a bounded invariant, if any.
    fn replication(&mut self) -> Option<&mut Replication>;
    /// The kernel as bytes (state and admitted ids) for a snapshot join.
    fn snapshot(&self) -> Result<Vec<u8>, String>;
    /// Replaces the kernel with one rebuilt from [`snapshot`](Self::snapshot)
    /// bytes taken by a peer. Refuses (and changes nothing) on any
    /// inconsistency.
    fn install_snapshot(&mut self, bytes: &[u8]) -> Result<(), String>;
    /// A grant of `amount > 0` just left this replica's quota. A durable
    /// host records the debit and returns the log sequence that must be
    /// durable before the grant frame may leave (a grant sent before its
    /// debit is durable would, after a crash, be quota spent twice).
    fn grant_issued(&mut self, _member: usize, _side: ctfs_core::replica::Side, _amount: u128) -> Option<u64> {
        None
    }
    /// A grant of `amount` was credited to this replica's quota (a durable
    /// host records it; losing the record only loses quota).
    fn grant_received(&mut self, _member: usize, _side: ctfs_core::replica::Side, _amount: u128) {}
}

/// An in-memory replica: a kernel and, for bounded invariants, its escrow gate.
#[derive(Clone)]
pub struct Replicated<I: Escrowed + SnapshotState + Clone> {
    pub kernel: Kernel<I>,
    pub replication: Option<Replication>,
}

impl<I: Escrowed + SnapshotState + Clone> Replicated<I> {
    /// A replica `local` of the cluster `nodes`; every replica must start
    /// from the same invariant and node list (the escrow split is computed
    /// from them).
    pub fn new(invariant: I, config: KernelConfig, nodes: &[NodeId], local: NodeId, escrow: EscrowConfig) -> Result<Self, String> {
        let kernel = Kernel::try_new(invariant, config)?;
        let replication = Replication::new(&kernel, nodes, local, escrow).map_err(|e| e.to_string())?;
        Ok(Replicated { kernel, replication: Some(replication) })
    }

    /// Admits a fact made here (escrow first for bounded members).
    pub fn admit_local(&mut self, id: Option<&FactId>, deps: &[FactId], payload: &[u8]) -> Result<FactId, AdmitError> {
        match &mut self.replication {
            Some(r) => r.admit_local(&mut self.kernel, id, deps, payload),
            None => match id {
                Some(id) => self.kernel.admit(id, deps, payload).map(|()| *id),
                None => self.kernel.admit_derived(deps, payload),
            },
        }
    }
}

/// Three sections, each `len u64 | bytes`: meta, ids, state.
pub fn encode_sections(s: &ctfs_core::KernelSnapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + s.meta.len() + s.ids.len() + s.state.len());
    for part in [&s.meta, &s.ids, &s.state] {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The inverse of [`encode_sections`].
pub fn decode_sections(mut b: &[u8]) -> Result<[&[u8]; 3], String> {
    let mut parts: [&[u8]; 3] = [&[]; 3];
    for (i, p) in parts.iter_mut().enumerate() {
        let (len, rest) = crate::origin::split_u64(b).ok_or_else(|| format!("snapshot section {i}: truncated length"))?;
        let len = usize::try_from(len).ok().filter(|l| *l <= rest.len()).ok_or_else(|| format!("snapshot section {i}: past the end"))?;
        *p = &rest[..len];
        b = &rest[len..];
    }
    if !b.is_empty() {
        return Err("trailing bytes after the snapshot sections".into());
    }
    Ok(parts)
}

impl<I: Escrowed + SnapshotState + Clone> Host for Replicated<I> {
    fn admit_merge(&mut self, id: &FactId, deps: &[FactId], payload: &[u8], _origin: crate::origin::Origin, _seq: u64) -> Result<(), AdmitError> {
        self.kernel.admit_merge(id, deps, payload)
    }

    fn fact_count(&self) -> u64 {
        self.kernel.len()
    }

    fn id_digest(&self) -> [u8; 32] {
        let c = self.kernel.frontier().canonical_bytes();
        c[72..104].try_into().unwrap_or([0; 32])
    }

    fn state_digest(&self) -> [u8; 32] {
        self.kernel.state_digest()
    }

    fn replication(&mut self) -> Option<&mut Replication> {
        self.replication.as_mut()
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        Ok(encode_sections(&self.kernel.snapshot()))
    }

    fn install_snapshot(&mut self, bytes: &[u8]) -> Result<(), String> {
        let [meta, ids, state] = decode_sections(bytes)?;
        let k = Kernel::restore(self.kernel.invariant().clone(), self.kernel.config().clone(), meta, ids, state)?;
        self.kernel = k;
        Ok(())
    }
}
