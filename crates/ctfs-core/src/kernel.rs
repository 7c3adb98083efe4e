//! The kernel: admission of facts into one invariant-guarded state.

use crate::bloom::BloomClock;
use crate::error::{AdmitError, ErrorCode};
use crate::exact_index::{ExactIndex, MAX_ENTRIES, Vacancy};
use crate::fact::{Fact, FactId, IdDeriver};
use crate::frontier::Frontier;
use crate::id_arena::IdArena;
use crate::invariant::{Coordination, Invariant};
use crate::metrics::Histogram;

mod snapshot;
pub use snapshot::{KernelSnapshot, SnapshotState};

/// How a kernel decides whether a dependency (or a duplicate) was admitted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CausalityMode {
    /// Bloom clock only: constant memory, **probabilistic**. A missing
    /// dependency is accepted, and a new id refused as a duplicate, with the
    /// clock's false-positive probability (`saturation^3`), which tends to 1
    /// after ~1,000 facts. For embedded use with short histories.
    Bloom,
    /// Bloom clock as a negative filter + exact index as the judge: no false
    /// admissions, no horizon (memory grows ~44 bytes per fact).
    Exact,
    /// Starts cheap (ids appended to an arena, dependencies confirmed by the
    /// precise ring or an exact scan of that short history); once the Bloom
    /// clock's saturation passes `threshold` the exact index is built from the
    /// arena and used from then on. Exact throughout; the escalation moment is
    /// reported in [`KernelStats::escalated_at`].
    Escalating { threshold: f64 },
}

impl CausalityMode {
    pub const DEFAULT_ESCALATION_THRESHOLD: f64 = 0.4;

    pub fn as_str(&self) -> &'static str {
        match self {
            CausalityMode::Bloom => "bloom",
            CausalityMode::Exact => "exact",
            CausalityMode::Escalating { .. } => "escalating",
        }
    }
}

#[derive(Clone, Debug)]
pub struct KernelConfig {
    pub mode: CausalityMode,
    /// Largest payload accepted, in bytes.
    pub max_payload: usize,
    /// Most dependencies one fact may name.
    pub max_deps: usize,
    /// Most facts tracked (exact modes); beyond it admission is refused with
    /// `CAUSAL_HORIZON_EXCEEDED`, never forgotten.
    pub max_facts: usize,
}

impl KernelConfig {
    pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;
    pub const MAX_MAX_PAYLOAD: usize = 16 * 1024 * 1024;
    pub const DEFAULT_MAX_DEPS: usize = 256;
    pub const MAX_MAX_DEPS: usize = 65_535;

    pub fn new(mode: CausalityMode) -> Self {
        KernelConfig {
            mode,
            max_payload: Self::DEFAULT_MAX_PAYLOAD,
            max_deps: Self::DEFAULT_MAX_DEPS,
            max_facts: MAX_ENTRIES,
        }
    }

    /// Checks the limits; returns a message naming the bad option.
    pub fn validate(&self) -> Result<(), String> {
        if let CausalityMode::Escalating { threshold } = self.mode {
            if !(threshold > 0.0 && threshold < 1.0) {
                return Err(format!("escalationThreshold must be in (0, 1), got {threshold}"));
            }
        }
        if self.max_payload > Self::MAX_MAX_PAYLOAD {
            return Err(format!("maxPayloadBytes may be at most {}, got {}", Self::MAX_MAX_PAYLOAD, self.max_payload));
        }
        if self.max_deps > Self::MAX_MAX_DEPS {
            return Err(format!("maxDeps may be at most {}, got {}", Self::MAX_MAX_DEPS, self.max_deps));
        }
        if self.max_facts == 0 || self.max_facts > MAX_ENTRIES {
            return Err(format!("maxFacts must be in 1..={MAX_ENTRIES}, got {}", self.max_facts));
        }
        Ok(())
    }
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self::new(CausalityMode::Exact)
    }
}

/// Exact knowledge of admitted ids, per mode.
#[derive(Clone)]
enum Track {
    /// Bloom mode: nothing exact.
    None,
    /// Escalating, before escalation: ids in admission order, no table yet.
    Pending(IdArena),
    /// Exact mode, or escalating after escalation.
    Indexed(ExactIndex),
}

/// Stages of [`Kernel::prefetch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefetch {
    Slots,
    Keys,
}

/// Is an id known to the kernel?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Containment {
    Yes,
    No,
    /// Bloom mode: the clock cannot tell.
    Maybe,
}

/// A causal requirement for [`Kernel::query`].
#[derive(Clone, Copy, Debug)]
pub enum Requirement<'a> {
    /// Every bit of this clock must be set in the kernel's clock
    /// (probabilistic: a saturated clock dominates everything).
    Clock(&'a BloomClock),
    /// Every one of these facts must have been admitted (exact in exact modes).
    Facts(&'a [FactId]),
}

/// A consistent view: state and frontier at the same instant.
#[derive(Debug)]
pub struct View<'a, S> {
    pub state: &'a S,
    pub frontier: &'a Frontier,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelStats {
    pub admitted: u64,
    /// Refusals by [`ErrorCode`] (index = code).
    pub rejected: [u64; ErrorCode::COUNT],
    pub bloom_popcount: u32,
    pub bloom_saturation: f64,
    /// Current chance that an unseen id passes the Bloom filter.
    pub bloom_false_positive_rate: f64,
    /// Ids tracked exactly (0 in Bloom mode).
    pub tracked: usize,
    /// Heap bytes of the exact index (table + ids).
    pub index_bytes: usize,
    pub escalated: bool,
    /// The fact count at which the escalating kernel built its exact index.
    pub escalated_at: Option<u64>,
}

pub struct Kernel<I: Invariant> {
    invariant: I,
    state: I::State,
    frontier: Frontier,
    track: Track,
    config: KernelConfig,
    deriver: IdDeriver,
    rejected: [u64; ErrorCode::COUNT],
    escalated_at: Option<u64>,
    /// Set once the clock is too full to rule anything out (exact modes).
    bloom_saturated: bool,
    /// The id of the next derived admission, computed ahead by a batch
    /// (`(deriver counter, id)`); used only while the counter matches, and
    /// dropped by every admission.
    derive_hint: Option<(u64, FactId)>,
    /// A batch is admitting with lookahead (it requests each record's index
    /// lines records ahead): the new id's lookup reads its bucket, which has
    /// arrived, rather than the filter (see `ExactIndex::lookup_fresh`).
    lookahead: bool,
    metrics: Box<KernelMetrics>,
}

/// What a lookup of a new fact's id found.
enum Seen {
    Yes,
    /// Absent; for an indexed kernel, where the index would insert it.
    No(Option<Vacancy>),
}

/// Histograms kept with a kernel (see [`crate::metrics`]), recorded by
/// whoever drives it: admission itself takes no clock reads, so the core
/// path costs nothing; the Node binding times its calls (one single
/// admission in 64, every batch). Counters of admissions and refusals are
/// in [`KernelStats`].
#[derive(Clone, Debug, Default)]
pub struct KernelMetrics {
    /// Nanoseconds of sampled single admissions (admitted or refused).
    pub admit_ns: Histogram,
    /// Records per batch call.
    pub batch_records: Histogram,
    /// Nanoseconds per batch call.
    pub batch_ns: Histogram,
}

/// Dependencies whose table lines are prefetched together with the id's.
const PREFETCH_DEPS: usize = 8;

/// The dependencies on `id` (bit `i`: `deps[i]`, the first 32; none without
/// an `id`). An admission skips the lookup of a dependency on the newest
/// admitted fact, and a batch's lookahead the index requests of one on the
/// record just before (the newest fact by the time it is admitted).
#[inline]
pub(crate) fn deps_on(deps: &[FactId], id: Option<&FactId>) -> u32 {
    let Some(id) = id else { return 0 };
    deps.iter().take(32).enumerate().fold(0, |mask, (i, d)| if d == id { mask | 1 << i } else { mask })
}
/// Popcount past which the Bloom filter rejects under 1 in 3 unseen ids
/// (false-positive rate (480/512)^3 > 0.82): not worth a hash per id.
const BLOOM_SATURATED_BITS: u32 = 480;

impl<I: Invariant> Kernel<I> {
    /// A kernel with default limits. Panics if `config` is invalid; use
    /// [`Kernel::try_new`] for configurations from untrusted input.
    pub fn new(invariant: I, mode: CausalityMode) -> Self {
        Self::try_new(invariant, KernelConfig::new(mode)).expect("invalid kernel config")
    }

    pub fn try_new(invariant: I, config: KernelConfig) -> Result<Self, String> {
        config.validate()?;
        let state = invariant.initial_state();
        let track = match config.mode {
            CausalityMode::Bloom => Track::None,
            CausalityMode::Exact => Track::Indexed(ExactIndex::with_limit(config.max_facts)),
            CausalityMode::Escalating { .. } => Track::Pending(IdArena::new()),
        };
        Ok(Kernel {
            invariant,
            state,
            frontier: Frontier::new(),
            track,
            config,
            deriver: IdDeriver::new(),
            rejected: [0; ErrorCode::COUNT],
            escalated_at: None,
            bloom_saturated: false,
            metrics: Box::default(),
            derive_hint: None,
            lookahead: false,
        })
    }

    /// Replaces the id deriver (reproducible ids in tests).
    pub fn with_deriver(mut self, deriver: IdDeriver) -> Self {
        self.deriver = deriver;
        self
    }

    pub fn invariant(&self) -> &I {
        &self.invariant
    }

    pub fn state(&self) -> &I::State {
        &self.state
    }

    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    pub fn clock(&self) -> &BloomClock {
        &self.frontier.clock
    }

    pub fn config(&self) -> &KernelConfig {
        &self.config
    }

    pub fn coordination(&self) -> Coordination {
        self.invariant.coordination()
    }

    pub fn len(&self) -> u64 {
        self.frontier.count
    }

    pub fn is_empty(&self) -> bool {
        self.frontier.count == 0
    }

    /// Admits a fact with a caller-chosen id.
    #[inline]
    pub fn admit(&mut self, id: &FactId, deps: &[FactId], payload: &[u8]) -> Result<(), AdmitError> {
        let r = self.admit_inner::<false>(Some(id), deps, payload).map(|_| ());
        if let Err(e) = &r {
            self.rejected[e.code() as usize] += 1;
        }
        r
    }

    /// Admits a fact that another replica admitted (replicated kernels): the
    /// same dedup, causality and limits as [`admit`](Self::admit), but the
    /// invariant *merges* the fact ([`Invariant::check_merge`]): a set element
    /// that is already present is a no-op instead of a refusal, and escrowed
    /// bounds are left to the origin's quota. A duplicate id is still
    /// [`AdmitError::DuplicateFact`] (the fact is already here: settled).
    #[inline]
    pub fn admit_merge(&mut self, id: &FactId, deps: &[FactId], payload: &[u8]) -> Result<(), AdmitError> {
        let r = self.admit_inner::<true>(Some(id), deps, payload).map(|_| ());
        if let Err(e) = &r {
            self.rejected[e.code() as usize] += 1;
        }
        r
    }

    /// Counts a refusal decided outside the kernel (e.g. the durability
    /// layer's `BUFFER_FULL`) in [`KernelStats::rejected`].
    pub fn note_refusal(&mut self, code: ErrorCode) {
        self.rejected[code as usize] += 1;
    }

    /// Admits a fact whose id the kernel derives (keyed BLAKE3, unique per
    /// admission). Returns the id.
    #[inline]
    pub fn admit_derived(&mut self, deps: &[FactId], payload: &[u8]) -> Result<FactId, AdmitError> {
        let r = self.admit_inner::<false>(None, deps, payload);
        if let Err(e) = &r {
            self.rejected[e.code() as usize] += 1;
        }
        r
    }

    #[inline]
    fn admit_inner<const MERGE: bool>(&mut self, given: Option<&FactId>, deps: &[FactId], payload: &[u8]) -> Result<FactId, AdmitError> {
        let hint = self.derive_hint.take();
        if payload.len() > self.config.max_payload {
            return Err(AdmitError::PayloadTooLarge { len: payload.len(), max: self.config.max_payload });
        }
        if deps.len() > self.config.max_deps {
            return Err(AdmitError::malformed(format!(
                "{} dependencies; the limit is {} (maxDeps)",
                deps.len(),
                self.config.max_deps
            )));
        }
        if self.is_full() {
            return Err(AdmitError::CausalHorizonExceeded { limit: self.config.max_facts });
        }
        let id = match (given, hint) {
            (Some(id), _) => *id,
            (None, Some((counter, id))) if counter == self.deriver.counter() => id,
            (None, _) => self.deriver.peek(deps, payload),
        };

        // In exact mode, request the table lines of the id and of the first
        // dependencies together (and then the dependencies' ids), so that
        // their cache misses overlap instead of queueing.
        let mut dep_hash = [0u64; PREFETCH_DEPS];
        // Dependencies on the newest admitted fact (a chain of facts, each
        // on the one before): admitted, with no lookup (bit i: deps[i]).
        let mut on_newest = 0u32;
        let hash = match &self.track {
            Track::Indexed(ix) => {
                let h = ix.hash(&id);
                ix.prefetch_fresh(h, self.lookahead);
                on_newest = deps_on(&deps[..deps.len().min(PREFETCH_DEPS)], self.frontier.recent.recent().next());
                for (i, (dh, dep)) in dep_hash.iter_mut().zip(deps).enumerate() {
                    if on_newest & (1 << i) != 0 {
                        continue;
                    }
                    *dh = ix.hash(dep);
                    ix.prefetch(*dh);
                }
                for (i, dh) in dep_hash.iter().take(deps.len()).enumerate() {
                    if on_newest & (1 << i) == 0 {
                        ix.prefetch_key(*dh);
                    }
                }
                h
            }
            _ => 0,
        };

        // Dedup. A derived id is fresh by construction (random key + counter).
        let mut vacancy = None;
        if given.is_some() {
            match self.seen(&id, hash) {
                Seen::Yes => {
                    let certain = !matches!(self.track, Track::None);
                    return Err(AdmitError::DuplicateFact { id, certain });
                }
                Seen::No(v) => vacancy = v,
            }
        }

        // Causality.
        for (index, dep) in deps.iter().enumerate() {
            if index < PREFETCH_DEPS && on_newest & (1 << index) != 0 {
                continue;
            }
            if !self.dependency_admitted(dep, dep_hash.get(index).copied()) {
                return Err(AdmitError::CausalityViolation { id, missing: *dep, index });
            }
        }

        // Invariant: checked and committed in one step (the state is
        // unchanged on a refusal). Nothing below can fail.
        let fact = Fact { id: &id, deps, payload };
        self.invariant.check_commit::<MERGE>(&fact, &mut self.state).map_err(|error| AdmitError::Invariant { id, error })?;
        self.frontier.observe(&id);
        self.record(&id, hash, vacancy);
        if given.is_none() {
            self.deriver.advance();
        }
        Ok(id)
    }

    fn is_full(&self) -> bool {
        match &self.track {
            Track::Indexed(ix) => ix.is_full(),
            Track::Pending(a) => a.len() >= self.config.max_facts,
            Track::None => false,
        }
    }

    /// Whether the Bloom clock can still rule ids out cheaply. Once it is
    /// nearly full it almost never can, and the exact modes stop asking it.
    #[inline(always)]
    fn bloom_filters(&self) -> bool {
        !self.bloom_saturated || matches!(self.track, Track::None)
    }

    /// Was `id` admitted? Bloom mode answers probabilistically. An absent id
    /// of an indexed kernel may come with where the index would insert it
    /// (not when the index's filter proved it absent without a table read).
    #[inline]
    fn seen(&self, id: &FactId, hash: u64) -> Seen {
        if self.bloom_filters() && !self.frontier.clock.might_contain(id) {
            return Seen::No(None);
        }
        match &self.track {
            Track::None => Seen::Yes,
            Track::Pending(arena) => if arena.contains_linear(id) { Seen::Yes } else { Seen::No(None) },
            // A batch requested the id's bucket records ahead: it reads
            // that rather than the filter word (one more line).
            Track::Indexed(ix) => match ix.lookup_fresh(id, hash, self.lookahead) {
                Ok(_) => Seen::Yes,
                Err(v) => Seen::No(v),
            },
        }
    }

    /// `hash` is the dependency's index hash when already computed.
    #[inline]
    fn dependency_admitted(&self, dep: &FactId, hash: Option<u64>) -> bool {
        if self.bloom_filters() && !self.frontier.clock.might_contain(dep) {
            return false;
        }
        match &self.track {
            Track::None => true,
            Track::Pending(arena) => self.frontier.recent.contains(dep) || arena.contains_linear(dep),
            Track::Indexed(ix) => ix.lookup_hashed(dep, hash.unwrap_or_else(|| ix.hash(dep))).is_some(),
        }
    }

    /// Tracks an admitted id; `vacancy`, where its lookup found room (the
    /// index has not changed since).
    #[inline]
    fn record(&mut self, id: &FactId, hash: u64, vacancy: Option<Vacancy>) {
        match &mut self.track {
            Track::None => {}
            Track::Indexed(ix) => {
                // Fullness was checked before the commit began.
                let _ = ix.insert_placed(id, hash, vacancy, self.lookahead);
                if !self.bloom_saturated && self.frontier.clock.popcount() >= BLOOM_SATURATED_BITS {
                    self.bloom_saturated = true;
                }
            }
            Track::Pending(arena) => {
                arena.push(*id);
                if let CausalityMode::Escalating { threshold } = self.config.mode {
                    if self.frontier.clock.saturation() > threshold {
                        self.escalate();
                    }
                }
            }
        }
    }

    /// Memory hints for a fact that will be admitted soon (exact modes; no-op
    /// otherwise). `Slots` requests the index lines of the id and the
    /// dependencies; `Keys`, issued later, requests the dependencies' stored
    /// ids. Batches issue both a few records ahead, so that a record's cache
    /// misses are served while earlier records are being admitted.
    /// Dependency `i` is left out when bit `i` of `skip` is set: a batch sets
    /// it for a dependency on the record just before, which is the newest
    /// fact when this one is admitted and is found without a lookup (and is
    /// not in the table yet when the hints are issued).
    #[inline]
    pub fn prefetch(&self, id: Option<&FactId>, deps: &[FactId], stage: Prefetch, skip: u32) {
        if let Track::Indexed(ix) = &self.track {
            let wanted = deps.iter().take(PREFETCH_DEPS).enumerate().filter(|&(i, _)| skip & (1 << i) == 0).map(|(_, d)| d);
            match stage {
                Prefetch::Slots => {
                    if let Some(id) = id {
                        ix.prefetch_fresh(ix.hash(id), true);
                    }
                    for dep in wanted {
                        ix.prefetch(ix.hash(dep));
                    }
                }
                Prefetch::Keys => {
                    for dep in wanted {
                        ix.prefetch_key(ix.hash(dep));
                    }
                }
            }
        }
    }

    /// Marks the admissions that follow as a batch's with lookahead (see
    /// [`Kernel::prefetch`]), until called with `false`.
    pub(crate) fn set_lookahead(&mut self, on: bool) {
        self.lookahead = on;
    }

    /// The id a derived admission of `deps`/`payload` gets if `ahead` other
    /// derived admissions commit before it (a batch computes it while
    /// prefetching, and hands it back with [`Kernel::hint_derived`]).
    #[inline]
    pub(crate) fn derive_ahead(&self, ahead: u64, deps: &[FactId], payload: &[u8]) -> (u64, FactId) {
        let counter = self.deriver.counter() + ahead;
        (counter, self.deriver.peek_at(counter, deps, payload))
    }

    /// [`Kernel::derive_ahead`] for eight facts at once (`(ahead, deps,
    /// payload)` each): `None` unless each input fits one BLAKE3 block and
    /// the CPU can hash eight at once (see [`IdDeriver::peek_at8`]).
    #[inline]
    pub(crate) fn derive_ahead8(&self, items: &[(u64, &[FactId], &[u8]); 8]) -> Option<[(u64, FactId); 8]> {
        let base = self.deriver.counter();
        let at: [(u64, &[FactId], &[u8]); 8] = core::array::from_fn(|j| (base + items[j].0, items[j].1, items[j].2));
        let ids = self.deriver.peek_at8(&at)?;
        Some(core::array::from_fn(|j| (at[j].0, ids[j])))
    }

    /// Offers the id [`Kernel::derive_ahead`] computed for the very fact
    /// admitted next; the admission uses it only if the deriver's counter is
    /// still `counter` (so it equals what `peek` would compute), and drops it
    /// either way. The caller clears it if that admission never happens.
    #[inline]
    pub(crate) fn hint_derived(&mut self, hint: Option<(u64, FactId)>) {
        self.derive_hint = hint;
    }

    /// Builds the exact index now (escalating mode; no-op otherwise).
    pub fn escalate(&mut self) {
        if let Track::Pending(arena) = &mut self.track {
            let arena = std::mem::take(arena);
            self.track = Track::Indexed(ExactIndex::from_arena(arena, self.config.max_facts));
            self.escalated_at = Some(self.frontier.count);
        }
    }

    /// Whether `id` was admitted.
    pub fn contains(&self, id: &FactId) -> Containment {
        if !self.frontier.clock.might_contain(id) {
            return Containment::No;
        }
        match &self.track {
            Track::None => Containment::Maybe,
            Track::Pending(arena) => {
                if arena.contains_linear(id) { Containment::Yes } else { Containment::No }
            }
            Track::Indexed(ix) => {
                if ix.contains(id) { Containment::Yes } else { Containment::No }
            }
        }
    }

    /// The state and frontier if `required` is met, else `None` (not yet).
    pub fn query(&self, required: Requirement<'_>) -> Option<View<'_, I::State>> {
        let met = match required {
            Requirement::Clock(c) => self.frontier.clock.dominates(c),
            Requirement::Facts(ids) => ids.iter().all(|id| self.contains(id) != Containment::No),
        };
        met.then_some(View { state: &self.state, frontier: &self.frontier })
    }

    pub fn stats(&self) -> KernelStats {
        let clock = &self.frontier.clock;
        let (tracked, index_bytes) = match &self.track {
            Track::None => (0, 0),
            Track::Pending(a) => (a.len(), a.memory_bytes()),
            Track::Indexed(ix) => (ix.len(), ix.memory_bytes()),
        };
        KernelStats {
            admitted: self.frontier.count,
            rejected: self.rejected,
            bloom_popcount: clock.popcount(),
            bloom_saturation: clock.saturation(),
            bloom_false_positive_rate: clock.false_positive_rate(),
            tracked,
            index_bytes,
            escalated: matches!(self.track, Track::Indexed(_)) && self.escalated_at.is_some(),
            escalated_at: self.escalated_at,
        }
    }

    /// The kernel's histograms (admission latency, batch sizes and times).
    pub fn metrics(&self) -> &KernelMetrics {
        &self.metrics
    }

    /// For the caller that records them.
    pub fn metrics_mut(&mut self) -> &mut KernelMetrics {
        &mut self.metrics
    }

    /// Ids admitted, in admission order (exact modes only).
    pub fn admitted_ids(&self) -> Option<impl Iterator<Item = &FactId> + '_> {
        match &self.track {
            Track::None => None,
            Track::Pending(a) => Some(a.iter()),
            Track::Indexed(ix) => Some(ix.ids().iter()),
        }
    }
}

impl<I: Invariant + Clone> Clone for Kernel<I> {
    fn clone(&self) -> Self {
        Kernel {
            invariant: self.invariant.clone(),
            state: self.state.clone(),
            frontier: self.frontier.clone(),
            track: self.track.clone(),
            config: self.config.clone(),
            deriver: IdDeriver::new(),
            rejected: self.rejected,
            escalated_at: self.escalated_at,
            bloom_saturated: self.bloom_saturated,
            metrics: self.metrics.clone(),
            derive_hint: None,
            lookahead: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::total_supply::{SupplyState, TotalSupply};
    use crate::state::StateCell;
    use proptest::prelude::*;

    fn id(n: u64) -> FactId {
        FactId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    fn delta(d: i128) -> [u8; 16] {
        TotalSupply::payload(d)
    }

    fn supply(mode: CausalityMode) -> Kernel<TotalSupply> {
        Kernel::new(TotalSupply::new(1000, 0, 1_000_000).unwrap(), mode)
    }

    #[test]
    fn deps_on_marks_the_dependencies_on_an_id() {
        let id = |n: u8| FactId([n; 32]);
        assert_eq!(deps_on(&[id(1), id(2), id(1)], Some(&id(1))), 0b101);
        assert_eq!(deps_on(&[id(1)], Some(&id(2))), 0);
        assert_eq!(deps_on(&[id(1)], None), 0);
        let many: Vec<FactId> = (0..40).map(|_| id(3)).collect();
        assert_eq!(deps_on(&many, Some(&id(3))), u32::MAX);
    }

    const MODES: [CausalityMode; 3] =
        [CausalityMode::Bloom, CausalityMode::Exact, CausalityMode::Escalating { threshold: 0.4 }];

    #[test]
    fn readme_flow() {
        for mode in MODES {
            let mut k = supply(mode);
            let a = k.admit_derived(&[], &delta(500)).unwrap();
            k.admit_derived(&[a], &delta(-200)).unwrap();
            assert_eq!(TotalSupply::read(k.state()), SupplyState { balance: 1300, min: 0, max: 1_000_000 });
            let before = *k.state();
            let e = k.admit_derived(&[], &delta(-5000)).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvariantViolation);
            assert_eq!(*k.state(), before);
            assert_eq!(k.len(), 2);
        }
    }

    #[test]
    fn duplicate_is_refused_and_changes_nothing() {
        for mode in MODES {
            let mut k = supply(mode);
            k.admit(&id(1), &[], &delta(5)).unwrap();
            let before = (*k.state(), k.frontier().canonical_bytes());
            assert_eq!(k.admit(&id(1), &[], &delta(5)).unwrap_err().code(), ErrorCode::DuplicateFact);
            assert_eq!((*k.state(), k.frontier().canonical_bytes()), before);
            assert_eq!(k.stats().rejected[ErrorCode::DuplicateFact as usize], 1);
        }
    }

    /// A dependency on the newest admitted fact is answered without a
    /// lookup (exact modes); a fact refused for any reason never becomes
    /// that newest fact, so depending on it is still refused.
    #[test]
    fn dependencies_on_the_newest_fact_are_exact() {
        for mode in [CausalityMode::Exact, CausalityMode::Escalating { threshold: 0.1 }] {
            let mut k = supply(mode);
            // Enough history for the index (and, escalating, the escalation).
            for i in 0..2_000 {
                k.admit(&id(i), &[], &delta(1)).unwrap();
            }
            // Facts on one a few admissions back (looked up), then a chain of
            // three, each on the fact admitted just before it (first or
            // second of its dependencies), with other dependencies too.
            for i in 2_000..2_100 {
                k.admit(&id(i + 30_000), &[id(i - 5)], &delta(1)).unwrap();
                k.admit(&id(i + 40_000), &[id(i - 40)], &delta(1)).unwrap();
                k.admit(&id(i + 10_000), &[id(i + 40_000), id(i / 2)], &delta(1)).unwrap();
                k.admit(&id(i + 20_000), &[id(i / 3), id(i + 10_000)], &delta(1)).unwrap();
                k.admit(&id(i), &[id(i + 20_000)], &delta(1)).unwrap();
            }
            let newest = id(2_099);
            // Refused by the invariant, as a duplicate, for a missing
            // dependency: none of them is the newest fact afterwards.
            assert_eq!(k.admit(&id(50_000), &[newest], &delta(-1_000_000)).unwrap_err().code(), ErrorCode::InvariantViolation);
            assert_eq!(k.admit(&id(50_001), &[id(50_000)], &delta(1)).unwrap_err(), AdmitError::CausalityViolation { id: id(50_001), missing: id(50_000), index: 0 });
            assert_eq!(k.admit(&id(50_002), &[newest, id(99_999)], &delta(1)).unwrap_err().code(), ErrorCode::CausalityViolation);
            assert_eq!(k.admit(&id(50_003), &[id(50_002)], &delta(1)).unwrap_err().code(), ErrorCode::CausalityViolation);
            assert_eq!(k.admit(&id(5), &[newest], &delta(1)).unwrap_err().code(), ErrorCode::DuplicateFact);
            // The newest is unchanged by all of that.
            k.admit(&id(50_004), &[newest, newest], &delta(1)).unwrap();
            assert_eq!(k.admit(&id(50_005), &[id(50_004)], &delta(1)).map(|_| ()), Ok(()));
            assert_eq!(k.len(), 2_000 + 500 + 2);
        }
    }

    #[test]
    fn missing_dependency_is_refused() {
        for mode in MODES {
            let mut k = supply(mode);
            k.admit(&id(1), &[], &delta(1)).unwrap();
            let e = k.admit(&id(2), &[id(1), id(99)], &delta(1)).unwrap_err();
            assert_eq!(e, AdmitError::CausalityViolation { id: id(2), missing: id(99), index: 1 });
            assert_eq!(k.len(), 1);
            // A self-dependency is a missing dependency.
            assert_eq!(k.admit(&id(3), &[id(3)], &delta(1)).unwrap_err().code(), ErrorCode::CausalityViolation);
        }
    }

    #[test]
    fn exact_has_no_horizon_and_no_false_admissions() {
        let mut k = Kernel::new(TotalSupply::unbounded(0), CausalityMode::Exact);
        for i in 0..200_000 {
            k.admit(&id(i), &[], &delta(1)).unwrap();
        }
        // The very first fact is still a valid dependency.
        k.admit(&id(1_000_000), &[id(0)], &delta(1)).unwrap();
        // The Bloom clock is saturated: it says "maybe" to everything...
        assert!(k.clock().saturation() > 0.99);
        assert!(k.clock().might_contain(&id(5_000_000)));
        // ...but the index judges, so an unseen dependency is refused.
        for j in 0..1000 {
            let e = k.admit(&id(2_000_000 + j), &[id(3_000_000 + j)], &delta(1)).unwrap_err();
            assert_eq!(e.code(), ErrorCode::CausalityViolation);
        }
    }

    #[test]
    fn escalation_triggers_at_the_threshold() {
        for threshold in [0.1, 0.4, 0.7] {
            let mut k = Kernel::new(TotalSupply::unbounded(0), CausalityMode::Escalating { threshold });
            let mut i = 0;
            while k.stats().escalated_at.is_none() {
                let before = k.clock().saturation();
                assert!(before <= threshold, "still pending above the threshold");
                k.admit(&id(i), &[], &delta(1)).unwrap();
                i += 1;
            }
            let s = k.stats();
            assert!(s.escalated && s.bloom_saturation > threshold);
            assert_eq!(s.escalated_at, Some(i));
            // History from before escalation is still exact.
            k.admit(&id(10_000), &[id(0)], &delta(1)).unwrap();
            assert_eq!(k.admit(&id(10_001), &[id(20_000)], &delta(1)).unwrap_err().code(), ErrorCode::CausalityViolation);
            assert_eq!(k.admit(&id(0), &[], &delta(1)).unwrap_err().code(), ErrorCode::DuplicateFact);
        }
    }

    #[test]
    fn bloom_mode_is_probabilistic_once_saturated() {
        let mut k = Kernel::new(TotalSupply::unbounded(0), CausalityMode::Bloom);
        for i in 0..5_000 {
            let _ = k.admit(&id(i), &[], &delta(1));
        }
        // Documented weakness: a saturated Bloom clock accepts a missing dep.
        assert!(k.admit(&id(9_999_999), &[id(8_888_888)], &delta(1)).is_ok()
            || k.stats().rejected[ErrorCode::DuplicateFact as usize] > 0);
        assert_eq!(k.contains(&id(1)), Containment::Maybe);
        assert_eq!(k.stats().tracked, 0);
    }

    #[test]
    fn limits_are_enforced_before_anything_changes() {
        let mut cfg = KernelConfig::new(CausalityMode::Exact);
        cfg.max_payload = 16;
        cfg.max_deps = 2;
        cfg.max_facts = 2;
        let mut k = Kernel::try_new(TotalSupply::unbounded(0), cfg).unwrap();
        assert_eq!(k.admit(&id(1), &[], &[0; 17]).unwrap_err().code(), ErrorCode::PayloadTooLarge);
        assert_eq!(k.admit(&id(1), &[id(2), id(3), id(4)], &delta(1)).unwrap_err().code(), ErrorCode::MalformedFact);
        assert_eq!(k.admit(&id(1), &[], &[1, 2, 3]).unwrap_err().code(), ErrorCode::MalformedFact);
        k.admit(&id(1), &[], &delta(1)).unwrap();
        k.admit(&id(2), &[], &delta(1)).unwrap();
        assert_eq!(k.admit(&id(3), &[], &delta(1)).unwrap_err().code(), ErrorCode::CausalHorizonExceeded);
        assert_eq!(k.len(), 2);
        assert_eq!(TotalSupply::read(k.state()).balance, 2);
    }

    #[test]
    fn invalid_configs_are_refused() {
        let bad = |f: fn(&mut KernelConfig)| {
            let mut c = KernelConfig::default();
            f(&mut c);
            Kernel::try_new(TotalSupply::unbounded(0), c).is_err()
        };
        assert!(bad(|c| c.mode = CausalityMode::Escalating { threshold: 1.5 }));
        assert!(bad(|c| c.mode = CausalityMode::Escalating { threshold: f64::NAN }));
        assert!(bad(|c| c.max_facts = 0));
        assert!(bad(|c| c.max_payload = usize::MAX));
        assert!(bad(|c| c.max_deps = 1 << 20));
    }

    #[test]
    fn query_waits_for_requirements() {
        let mut k = supply(CausalityMode::Exact);
        let a = k.admit_derived(&[], &delta(1)).unwrap();
        let b = id(77);
        assert!(k.query(Requirement::Facts(&[a])).is_some());
        assert!(k.query(Requirement::Facts(&[a, b])).is_none());
        let mut other = Kernel::new(TotalSupply::unbounded(0), CausalityMode::Exact);
        other.admit(&b, &[], &delta(1)).unwrap();
        assert!(k.query(Requirement::Clock(other.clock())).is_none() || k.clock().dominates(other.clock()));
        k.admit(&b, &[], &delta(1)).unwrap();
        let v = k.query(Requirement::Clock(other.clock())).unwrap();
        assert_eq!(TotalSupply::read(v.state).balance, 1002);
        assert_eq!(v.frontier.count, 2);
    }

    #[test]
    fn state_is_deterministic_bytes() {
        let run = || {
            let mut k = Kernel::new(TotalSupply::unbounded(7), CausalityMode::Exact);
            for i in 0..100 {
                k.admit(&id(i), &[], &delta(i as i128 - 50)).unwrap();
            }
            (*k.state(), k.frontier().canonical_bytes())
        };
        assert_eq!(run(), run());
        let expected: i128 = 7 + (0..100).map(|i| i - 50).sum::<i128>();
        assert_eq!(run().0.i128_at(0), expected);
        let _: StateCell = run().0;
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Failed admissions never change state, frontier or index.
        #[test]
        fn failures_change_nothing(ops in prop::collection::vec((0u64..60, prop::option::of(0u64..80), -300i128..300), 1..200)) {
            for mode in MODES {
                let mut k = Kernel::new(TotalSupply::new(0, 0, 1000).unwrap(), mode);
                for (i, dep, d) in &ops {
                    let deps: Vec<FactId> = dep.iter().map(|x| id(*x)).collect();
                    let before = (*k.state(), k.frontier().canonical_bytes(), k.stats().tracked);
                    if k.admit(&id(*i), &deps, &delta(*d)).is_err() {
                        prop_assert_eq!((*k.state(), k.frontier().canonical_bytes(), k.stats().tracked), before);
                    }
                }
            }
        }
    }
}
