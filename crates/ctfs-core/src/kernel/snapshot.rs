//! Kernel snapshots: what a checkpoint stores and how a kernel is rebuilt
//! from it (re-anchoring).
//!
//! A snapshot is three byte sections, which the WAL's checkpoint file hashes
//! (tiered BLAKE3) and verifies before they reach [`Kernel::restore`]:
//!
//! * **meta** (fixed, little-endian): magic `CTFSKSNP`, version u32, mode u8,
//!   3 zero bytes, escalation threshold f64, fact count u64, frontier digest
//!   4×u64, Bloom clock 64 B, escalated-at u64 (`u64::MAX` = not escalated),
//!   tracked ids u64, recent-ring length u8, 7 zero bytes, then the recent
//!   ids newest first (16 × 32 B, unused entries zero);
//! * **ids**: every tracked fact id in admission order, 32 B each (empty in
//!   Bloom mode, which tracks none);
//! * **state**: the invariant's state ([`SnapshotState`]).
//!
//! Restoring is defensive even though the checkpoint is hash-verified: in the
//! exact modes the frontier (count, digest, clock) is recomputed from the ids
//! and must equal the stored one, so a snapshot that is internally
//! inconsistent is refused rather than used.

use crate::bloom::BloomClock;
use crate::exact_index::ExactIndex;
use crate::fact::FactId;
use crate::frontier::Frontier;
use crate::id_arena::IdArena;
use crate::invariant::{CellInvariant, Invariant};
use crate::multi::Multi;
use crate::precise::PRECISE_CAPACITY;
use crate::state::StateCell;

use super::{CausalityMode, Kernel, KernelConfig, Track};

const MAGIC: &[u8; 8] = b"CTFSKSNP";
const VERSION: u32 = 1;
const META_FIXED: usize = 8 + 4 + 1 + 3 + 8 + 8 + 32 + 64 + 8 + 8 + 1 + 7;
/// Length of the meta section.
pub const META_LEN: usize = META_FIXED + PRECISE_CAPACITY * 32;

/// Encodes and decodes an invariant's state for checkpoints.
pub trait SnapshotState: Invariant {
    fn encode_state(&self, state: &Self::State, out: &mut Vec<u8>);
    fn decode_state(&self, bytes: &[u8]) -> Result<Self::State, String>;
    /// Feeds a digest of the state to `hasher`: equal states feed equal
    /// bytes. Cheap enough to compute on every anti-entropy round (heap
    /// states may feed their order-independent summary instead of every
    /// element). Default: the encoded state.
    fn digest_state(&self, state: &Self::State, hasher: &mut blake3::Hasher) {
        let mut out = Vec::new();
        self.encode_state(state, &mut out);
        hasher.update(&out);
    }
}

impl<T: CellInvariant> SnapshotState for T {
    fn encode_state(&self, state: &StateCell, out: &mut Vec<u8>) {
        out.extend_from_slice(state.as_bytes());
    }

    fn digest_state(&self, state: &StateCell, hasher: &mut blake3::Hasher) {
        hasher.update(state.as_bytes());
    }

    fn decode_state(&self, bytes: &[u8]) -> Result<StateCell, String> {
        if bytes.len() != StateCell::SIZE {
            return Err(format!("state cell section is {} bytes, expected 64", bytes.len()));
        }
        StateCell::from_prefix(bytes).ok_or_else(|| "bad state cell".to_string())
    }
}

/// Members in order, each as `len u64 | bytes`.
impl<I: SnapshotState> SnapshotState for Multi<I> {
    fn encode_state(&self, state: &Vec<I::State>, out: &mut Vec<u8>) {
        for (m, s) in self.members().iter().zip(state) {
            let at = out.len();
            out.extend_from_slice(&[0; 8]);
            m.encode_state(s, out);
            let len = (out.len() - at - 8) as u64;
            out[at..at + 8].copy_from_slice(&len.to_le_bytes());
        }
    }

    fn digest_state(&self, state: &Vec<I::State>, hasher: &mut blake3::Hasher) {
        for (m, s) in self.members().iter().zip(state) {
            m.digest_state(s, hasher);
        }
    }

    fn decode_state(&self, mut bytes: &[u8]) -> Result<Vec<I::State>, String> {
        let mut states = Vec::with_capacity(self.len());
        for (i, m) in self.members().iter().enumerate() {
            let (len, rest) = split_u64(bytes).ok_or_else(|| format!("state of invariant {i}: truncated length"))?;
            let len = usize::try_from(len).ok().filter(|&l| l <= rest.len()).ok_or_else(|| format!("state of invariant {i}: length past the end"))?;
            states.push(m.decode_state(&rest[..len]).map_err(|e| format!("state of invariant {i}: {e}"))?);
            bytes = &rest[len..];
        }
        if !bytes.is_empty() {
            return Err(format!("{} trailing bytes after the invariant states", bytes.len()));
        }
        Ok(states)
    }
}

fn split_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = b.split_at_checked(8)?;
    Some((u64::from_le_bytes(head.try_into().ok()?), rest))
}

/// The three sections of a kernel snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSnapshot {
    pub meta: Vec<u8>,
    pub ids: Vec<u8>,
    pub state: Vec<u8>,
}

fn mode_tag(mode: CausalityMode) -> (u8, f64) {
    match mode {
        CausalityMode::Bloom => (0, 0.0),
        CausalityMode::Exact => (1, 0.0),
        CausalityMode::Escalating { threshold } => (2, threshold),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let (a, b) = self.0.split_at_checked(n).ok_or("snapshot meta is truncated")?;
        self.0 = b;
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| "short")?))
    }
}

impl<I: SnapshotState> Kernel<I> {
    /// A 256-bit digest of the state (see [`SnapshotState::digest_state`]):
    /// replicas with equal state have equal digests.
    pub fn state_digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        self.invariant.digest_state(&self.state, &mut h);
        *h.finalize().as_bytes()
    }

    /// Everything a checkpoint needs to rebuild this kernel.
    pub fn snapshot(&self) -> KernelSnapshot {
        let f = &self.frontier;
        let (mode, threshold) = mode_tag(self.config.mode);
        let mut meta = Vec::with_capacity(META_LEN);
        meta.extend_from_slice(MAGIC);
        meta.extend_from_slice(&VERSION.to_le_bytes());
        meta.push(mode);
        meta.extend_from_slice(&[0; 3]);
        meta.extend_from_slice(&threshold.to_le_bytes());
        meta.extend_from_slice(&f.count.to_le_bytes());
        for d in f.digest {
            meta.extend_from_slice(&d.to_le_bytes());
        }
        meta.extend_from_slice(&f.clock.to_bytes());
        meta.extend_from_slice(&self.escalated_at.unwrap_or(u64::MAX).to_le_bytes());
        let tracked: Vec<&FactId> = self.admitted_ids().map(|i| i.collect()).unwrap_or_default();
        meta.extend_from_slice(&(tracked.len() as u64).to_le_bytes());
        meta.push(f.recent.len() as u8);
        meta.extend_from_slice(&[0; 7]);
        let mut recent = [[0u8; 32]; PRECISE_CAPACITY];
        for (slot, id) in recent.iter_mut().zip(f.recent.recent()) {
            *slot = id.0;
        }
        for r in &recent {
            meta.extend_from_slice(r);
        }
        debug_assert_eq!(meta.len(), META_LEN);

        let mut ids = Vec::with_capacity(tracked.len() * 32);
        for id in tracked {
            ids.extend_from_slice(&id.0);
        }
        let mut state = Vec::new();
        self.invariant.encode_state(&self.state, &mut state);
        KernelSnapshot { meta, ids, state }
    }

    /// Rebuilds a kernel from a snapshot taken by a kernel with the same
    /// invariant and causality mode. Refuses (with a reason) anything
    /// inconsistent; never panics on bad bytes.
    pub fn restore(invariant: I, config: KernelConfig, meta: &[u8], ids: &[u8], state: &[u8]) -> Result<Self, String> {
        let mut k = Kernel::try_new(invariant, config)?;
        if meta.len() != META_LEN {
            return Err(format!("snapshot meta is {} bytes, expected {META_LEN}", meta.len()));
        }
        let mut r = Reader(meta);
        if r.take(8)? != MAGIC {
            return Err("not a kernel snapshot (bad magic)".into());
        }
        let version = u32::from_le_bytes(r.take(4)?.try_into().map_err(|_| "short")?);
        if version != VERSION {
            return Err(format!("kernel snapshot version {version} is not supported (expected {VERSION})"));
        }
        let mode_bytes = r.take(4)?;
        let mode = mode_bytes[0];
        if mode_bytes[1..] != [0, 0, 0] {
            return Err("snapshot meta: nonzero padding".into());
        }
        let threshold = f64::from_le_bytes(r.take(8)?.try_into().map_err(|_| "short")?);
        let (want_mode, want_threshold) = mode_tag(k.config.mode);
        if mode != want_mode || threshold.to_bits() != want_threshold.to_bits() {
            return Err(format!(
                "the snapshot was taken in causality mode {mode} (threshold {threshold}); this kernel is configured as {} (threshold {want_threshold})",
                k.config.mode.as_str()
            ));
        }
        let count = r.u64()?;
        let mut digest = [0u64; 4];
        for d in &mut digest {
            *d = r.u64()?;
        }
        let clock = BloomClock::from_bytes(r.take(64)?).ok_or("bad clock")?;
        let escalated_at = match r.u64()? {
            u64::MAX => None,
            n => Some(n),
        };
        let tracked = r.u64()?;
        let recent_bytes = r.take(8)?;
        let recent_len = recent_bytes[0] as usize;
        if recent_len > PRECISE_CAPACITY || recent_bytes[1..] != [0; 7] {
            return Err("bad recent-ring length".into());
        }
        let recent: Vec<FactId> = (0..recent_len)
            .map(|_| r.take(32).map(|b| FactId(b.try_into().unwrap_or([0; 32]))))
            .collect::<Result<_, _>>()?;

        k.state = k.invariant.decode_state(state)?;

        if ids.len() % 32 != 0 || ids.len() as u64 / 32 != tracked {
            return Err(format!("ids section holds {} bytes; expected {tracked} ids", ids.len()));
        }
        if tracked as usize > k.config.max_facts {
            return Err(format!("the snapshot tracks {tracked} facts; maxFacts is {}", k.config.max_facts));
        }
        match k.config.mode {
            CausalityMode::Bloom => {
                if tracked != 0 || escalated_at.is_some() {
                    return Err("a Bloom-mode snapshot tracks no ids".into());
                }
                let mut f = Frontier { clock, count, digest, ..Frontier::new() };
                for id in recent.iter().rev() {
                    f.recent.push(id);
                }
                k.frontier = f;
            }
            CausalityMode::Exact | CausalityMode::Escalating { .. } => {
                if matches!(k.config.mode, CausalityMode::Exact) && escalated_at.is_some() {
                    return Err("an exact-mode snapshot cannot have escalated".into());
                }
                if escalated_at.is_some_and(|at| at > count) {
                    return Err("the snapshot escalated after its last fact".into());
                }
                if tracked != count {
                    return Err(format!("the snapshot counts {count} facts but tracks {tracked} ids"));
                }
                let mut arena = IdArena::new();
                let mut f = Frontier::new();
                for chunk in ids.chunks_exact(32) {
                    let id = FactId(chunk.try_into().map_err(|_| "short id")?);
                    f.observe(&id);
                    arena.push(id);
                }
                if f.canonical_bytes() != (Frontier { clock, count, digest, ..Frontier::new() }).canonical_bytes() {
                    return Err("the snapshot's frontier does not match its ids".into());
                }
                if !recent.iter().eq(f.recent.recent()) {
                    return Err("the snapshot's recent facts do not match its ids".into());
                }
                let escalate_now = match k.config.mode {
                    CausalityMode::Exact => true,
                    _ => escalated_at.is_some(),
                };
                k.track = if escalate_now {
                    Track::Indexed(ExactIndex::from_arena(arena, k.config.max_facts))
                } else {
                    Track::Pending(arena)
                };
                k.escalated_at = if matches!(k.config.mode, CausalityMode::Exact) { None } else { escalated_at };
                k.frontier = f;
            }
        }
        k.bloom_saturated = k.frontier.clock.popcount() >= super::BLOOM_SATURATED_BITS;
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::total_supply::TotalSupply;

    fn id(n: u64) -> FactId {
        FactId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    fn filled(mode: CausalityMode, n: u64) -> Kernel<TotalSupply> {
        let mut k = Kernel::new(TotalSupply::unbounded(0), mode);
        let mut prev = None;
        for i in 0..n {
            let deps: Vec<FactId> = prev.into_iter().collect();
            if matches!(mode, CausalityMode::Bloom) && i >= 40 {
                // past saturation Bloom mode refuses fresh caller ids as possible duplicates
                prev = Some(k.admit_derived(&deps, &1i128.to_le_bytes()).unwrap());
            } else {
                k.admit(&id(i), &deps, &1i128.to_le_bytes()).unwrap();
                prev = Some(id(i));
            }
        }
        k
    }

    #[test]
    fn round_trip_every_mode_then_continue() {
        for mode in [CausalityMode::Bloom, CausalityMode::Exact, CausalityMode::Escalating { threshold: 0.4 }] {
            for n in [0u64, 5, 300] {
                let k = filled(mode, n);
                let s = k.snapshot();
                let mut r = Kernel::restore(TotalSupply::unbounded(0), KernelConfig::new(mode), &s.meta, &s.ids, &s.state).unwrap();
                assert_eq!(r.state(), k.state());
                assert!(r.frontier().same_set(k.frontier()));
                assert!(r.frontier().recent.recent().eq(k.frontier().recent.recent()));
                assert_eq!(r.stats().escalated, k.stats().escalated, "{mode:?} {n}");
                assert_eq!(r.snapshot(), s);
                // re-anchoring: newer facts build on the restored history
                let deps = if n > 0 { vec![id(0)] } else { vec![] };
                if matches!(mode, CausalityMode::Bloom) {
                    // a saturated Bloom clock refuses fresh caller ids as possible duplicates
                    r.admit_derived(&deps, &1i128.to_le_bytes()).unwrap();
                } else {
                    r.admit(&id(1_000_000), &deps, &1i128.to_le_bytes()).unwrap();
                }
                if !matches!(mode, CausalityMode::Bloom) && n > 0 {
                    assert!(r.admit(&id(1), &[], &1i128.to_le_bytes()).is_err(), "duplicate after restore");
                    assert!(r.admit(&id(2_000_000), &[id(999_999)], &[0; 16]).is_err(), "unknown dep after restore");
                }
            }
        }
    }

    #[test]
    fn inconsistent_snapshots_are_refused() {
        let k = filled(CausalityMode::Exact, 50);
        let s = k.snapshot();
        let cfg = || KernelConfig::new(CausalityMode::Exact);
        let inv = || TotalSupply::unbounded(0);
        // wrong mode
        assert!(Kernel::restore(inv(), KernelConfig::new(CausalityMode::Bloom), &s.meta, &s.ids, &s.state).is_err());
        // an id changed
        let mut ids = s.ids.clone();
        ids[100] ^= 1;
        assert!(Kernel::restore(inv(), cfg(), &s.meta, &ids, &s.state).is_err());
        // an id missing
        assert!(Kernel::restore(inv(), cfg(), &s.meta, &s.ids[32..], &s.state).is_err());
        // every single-byte truncation of meta and state
        for cut in 0..s.meta.len() {
            assert!(Kernel::restore(inv(), cfg(), &s.meta[..cut], &s.ids, &s.state).is_err());
        }
        for cut in 0..s.state.len() {
            assert!(Kernel::restore(inv(), cfg(), &s.meta, &s.ids, &s.state[..cut]).is_err());
        }
        // any flipped bit in meta's magic/version/mode/count/digest/clock
        for byte in 0..META_FIXED {
            let mut m = s.meta.clone();
            m[byte] ^= 0x10;
            assert!(Kernel::restore(inv(), cfg(), &m, &s.ids, &s.state).is_err(), "meta byte {byte}");
        }
    }

    #[test]
    fn builtin_sets_and_graphs_round_trip() {
        use crate::invariants::Builtin;
        use crate::invariants::ggraph::DegreeLimits;
        let members = vec![
            Builtin::unique_set(Some(100)).unwrap(),
            Builtin::graph(DegreeLimits::default(), None).unwrap(),
            Builtin::total_supply(5, 0, 100).unwrap(),
        ];
        let m = Multi::new(members).unwrap();
        let mut k = Kernel::new(m.clone(), CausalityMode::Exact);
        for i in 0..20u64 {
            let key = *blake3::hash(&i.to_le_bytes()).as_bytes();
            let mut edge = [0u8; 16];
            edge[..8].copy_from_slice(&(i % 7).to_le_bytes());
            edge[8..].copy_from_slice(&(i % 5 + 10).to_le_bytes());
            let p = crate::multi::encode_parts(&[(0, &key), (1, &edge), (2, &1i128.to_le_bytes())]).unwrap();
            k.admit(&id(i), &[], &p).unwrap();
        }
        let s = k.snapshot();
        let r = Kernel::restore(m.clone(), KernelConfig::new(CausalityMode::Exact), &s.meta, &s.ids, &s.state).unwrap();
        assert_eq!(r.state(), k.state());
        assert_eq!(r.snapshot(), s, "equal states encode to equal bytes");
        // a set that does not match its summary is refused
        let mut bad = s.state.clone();
        let len = bad.len();
        bad.truncate(len - 1);
        assert!(Kernel::restore(m, KernelConfig::new(CausalityMode::Exact), &s.meta, &s.ids, &bad).is_err());
    }

    #[test]
    fn multi_state_round_trips() {
        let m = Multi::new(vec![TotalSupply::unbounded(1), TotalSupply::unbounded(2)]).unwrap();
        let k = Kernel::new(m.clone(), CausalityMode::Exact);
        let s = k.snapshot();
        let r = Kernel::restore(m.clone(), KernelConfig::new(CausalityMode::Exact), &s.meta, &s.ids, &s.state).unwrap();
        assert_eq!(r.state(), k.state());
        assert!(Kernel::restore(m, KernelConfig::new(CausalityMode::Exact), &s.meta, &s.ids, &s.state[..70]).is_err());
    }
}
