//! The packed batch format: many facts in one byte buffer, so that one call
//! (one N-API crossing) admits a thousand facts.
//!
//! ```text
//! record := flags:u8  reserved:u8  dep_count:u16le  payload_len:u32le
//!           id:[u8;32]  deps:[u8;32 * dep_count]  payload:[u8; payload_len]
//! flags bit 0: the id field holds the caller's id; otherwise the kernel
//!              derives one, writes it into the id field and sets bit 0, so
//!              a retry of the same batch is refused as duplicates instead of
//!              admitting every fact a second time.
//! ```
//!
//! Records are admitted in order, each on its own (a refused record does not
//! stop the batch), so record *n* may depend on record *m < n*. A record whose
//! header runs past the buffer is `MALFORMED_FACT` and ends the batch.

use crate::error::AdmitError;
use crate::fact::{FactId, IdDeriver};
use crate::invariant::Invariant;
use crate::kernel::{Kernel, Prefetch, deps_on};

/// Records ahead of the current one whose index lines are requested.
const SLOTS_AHEAD: usize = 8;
/// The index lines are requested this many records at a time, once no
/// more than `SLOTS_AHEAD` records ahead are requested. Profiles of one
/// prefetch per record showed the admission loop waiting at each prefetch
/// instruction (probably for its address translation: it cannot retire
/// before that is done); a burst of prefetches overlaps those waits.
/// Measured in the README's Performance section.
const SLOTS_GROUP: usize = 8;
/// Records ahead whose dependencies' stored ids are requested (the slots
/// requested `SLOTS_AHEAD - KEYS_AHEAD` records earlier have landed by then).
const KEYS_AHEAD: usize = 4;

/// A cursor that walks records ahead of admission, requesting their index
/// lines (the slots stage) and noting where each record's dependencies lie,
/// so that the keys stage, later, requests the dependencies' stored ids
/// without parsing the records again.
struct Lookahead {
    pos: usize,
    count: usize,
    /// Records without an id met so far (the ones whose id is derived).
    derived: usize,
    /// `deps[record % PLAN_RING]`: `(record, byte range of its
    /// dependencies, the ones left out)` (see `advance`).
    deps: [(usize, usize, usize, u32); PLAN_RING],
    /// The next record whose dependencies' ids are to be requested.
    keys: usize,
    /// The id of the record walked last (derived ones as derived ahead).
    prev: Option<FactId>,
}

/// Records whose dependency ranges the lookahead keeps: more than it walks
/// ahead of the record being admitted.
const PLAN_RING: usize = 32;
const _: () = assert!(SLOTS_AHEAD + SLOTS_GROUP + 1 < PLAN_RING);

/// Ids derived ahead of admission (slots stage), by record index modulo
/// the ring size: `(record, deriver counter, id)`. Entries reach
/// `SLOTS_AHEAD + SLOTS_GROUP + GROUP_SCAN` records past the one being
/// admitted, fewer than the ring holds, so none is overwritten before its
/// record is admitted.
const AHEAD_RING: usize = 64;
type DerivedAhead = [Option<(usize, u64, FactId)>; AHEAD_RING];
const _: () = assert!(SLOTS_AHEAD + SLOTS_GROUP + GROUP_SCAN < AHEAD_RING);
/// Records a group of derived ids (see `derive_group`) looks ahead over.
const GROUP_SCAN: usize = 16;

/// Derives the id of the record at `pos` (record `count`, `skip` derived
/// records past the kernel's counter) together with those of the next
/// derived records within `GROUP_SCAN` records, up to eight in all, in one
/// eight-lane hash (see [`crate::keyed_hash8`]): the others go into
/// `ahead`, the first is returned. `None` when that first record's input
/// does not fit one hash block or the CPU cannot hash eight at once (the
/// caller derives it alone). Like `derive_ahead`, it assumes the derived
/// records before each one commit; the kernel checks the counter when the
/// id is used.
fn derive_group<I: Invariant>(kernel: &Kernel<I>, buf: &[u8], pos: usize, count: usize, skip: u64, ahead: &mut DerivedAhead) -> Option<(u64, FactId)> {
    let mut items: [(u64, &[FactId], &[u8]); 8] = [(0, &[], &[]); 8];
    let mut records = [usize::MAX; 8];
    let (mut n, mut at, mut record, mut derived) = (0, pos, count, 0u64);
    while n < 8 && record < count + GROUP_SCAN && at < buf.len() {
        let Ok(r) = parse_record(buf, at) else { break };
        if !r.has_id {
            let deps = FactId::slice_from_bytes(&buf[r.deps..r.payload]).unwrap_or(&[]);
            let payload = &buf[r.payload..r.end];
            if !IdDeriver::hashes_in_one_block(deps, payload) {
                break;
            }
            items[n] = (skip + derived, deps, payload);
            records[n] = record;
            n += 1;
            derived += 1;
        }
        at = r.end;
        record += 1;
    }
    if n == 0 || records[0] != count {
        return None;
    }
    // Unused lanes hash empty inputs; their results are dropped.
    let out = kernel.derive_ahead8(&items)?;
    for k in 1..n {
        ahead[records[k] % AHEAD_RING] = Some((records[k], out[k].0, out[k].1));
    }
    Some(out[0])
}

impl Lookahead {
    fn new() -> Lookahead {
        Lookahead { pos: 0, count: 0, derived: 0, deps: [(usize::MAX, 0, 0, 0); PLAN_RING], keys: 0, prev: None }
    }

    /// Advances until it is `distance` records past record `current`,
    /// requesting the index lines of each record's id and dependencies.
    /// `derived_done`: records without an id before `current`. The id of a
    /// record without one is derived ahead (assuming the derived records
    /// between `current` and it all commit), its line requested and the id
    /// kept in `ahead` for its admission.
    #[inline]
    fn advance<I: Invariant>(
        &mut self,
        kernel: &Kernel<I>,
        buf: &[u8],
        current: usize,
        distance: usize,
        derived_done: usize,
        ahead: &mut DerivedAhead,
    ) {
        while self.count <= current + distance && self.pos < buf.len() {
            match parse_record(buf, self.pos) {
                Ok(r) => {
                    let deps = FactId::slice_from_bytes(&buf[r.deps..r.payload]).unwrap_or(&[]);
                    // Dependencies on the record just before are left out: when
                    // that record commits it is the newest fact, found without
                    // a lookup, and it is not in the table while the hints are
                    // issued (each record depending on the one before,
                    // interleaved runs: 134-139 ns per record with those
                    // requests, 120-127 without, at 1M facts; 88-91 and 75-80
                    // at 20K).
                    let left_out = deps_on(deps, self.prev.as_ref());
                    if r.has_id {
                        let id = FactId::slice_from_bytes(&buf[r.id..r.deps]).and_then(|s| s.first());
                        kernel.prefetch(id, deps, Prefetch::Slots, left_out);
                        self.prev = id.copied();
                    } else {
                        let pending = self.derived.saturating_sub(derived_done) as u64;
                        let slot = self.count % AHEAD_RING;
                        // Derived already with an earlier record's group,
                        // or now, with the next ones' when they fit.
                        let (counter, id) = match ahead[slot] {
                            Some((rec, counter, id)) if rec == self.count => (counter, id),
                            _ => derive_group(kernel, buf, self.pos, self.count, pending, ahead)
                                .unwrap_or_else(|| kernel.derive_ahead(pending, deps, &buf[r.payload..r.end])),
                        };
                        kernel.prefetch(Some(&id), deps, Prefetch::Slots, left_out);
                        self.prev = Some(id);
                        ahead[slot] = Some((self.count, counter, id));
                        self.derived += 1;
                    }
                    self.deps[self.count % PLAN_RING] = (self.count, r.deps, r.payload, left_out);
                    self.pos = r.end;
                    self.count += 1;
                }
                Err(_) => self.pos = buf.len(),
            }
        }
    }

    /// Requests the stored ids of the dependencies of every record up to
    /// `distance` records past `current` that the slots stage has walked
    /// (their index lines were requested earlier, so they have had time to
    /// land). Records without dependencies cost one comparison here.
    #[inline]
    fn request_keys<I: Invariant>(&mut self, kernel: &Kernel<I>, buf: &[u8], current: usize, distance: usize) {
        let end = (current + distance + 1).min(self.count);
        while self.keys < end {
            let (record, from, to, left_out) = self.deps[self.keys % PLAN_RING];
            if record == self.keys && from < to {
                let deps = FactId::slice_from_bytes(&buf[from..to]).unwrap_or(&[]);
                kernel.prefetch(None, deps, Prefetch::Keys, left_out);
            }
            self.keys += 1;
        }
    }
}

pub const HEADER_LEN: usize = 8;
pub const FLAG_HAS_ID: u8 = 1;

/// Offsets of one record inside the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordLayout {
    pub start: usize,
    pub has_id: bool,
    pub id: usize,
    pub deps: usize,
    pub dep_count: usize,
    pub payload: usize,
    pub payload_len: usize,
    pub end: usize,
}

/// Parses the record at `start`. `Err` carries the reason it is malformed.
pub fn parse_record(buf: &[u8], start: usize) -> Result<RecordLayout, &'static str> {
    let header = buf.get(start..start + HEADER_LEN).ok_or("batch record header runs past the end of the buffer")?;
    let flags = header[0];
    if flags & !FLAG_HAS_ID != 0 || header[1] != 0 {
        return Err("batch record has unknown flag bits set");
    }
    let dep_count = u16::from_le_bytes([header[2], header[3]]) as usize;
    let payload_len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let id = start + HEADER_LEN;
    let deps = id + FactId::LEN;
    let payload = deps + dep_count * FactId::LEN;
    let end = payload.checked_add(payload_len).ok_or("batch record length overflows")?;
    if end > buf.len() {
        return Err("batch record runs past the end of the buffer");
    }
    Ok(RecordLayout { start, has_id: flags & FLAG_HAS_ID != 0, id, deps, dep_count, payload, payload_len, end })
}

/// Appends one record to `out` (used by Rust callers and tests; the JS side
/// has its own writer producing the same bytes).
pub fn encode_record(out: &mut Vec<u8>, id: Option<&FactId>, deps: &[FactId], payload: &[u8]) {
    out.extend_from_slice(&record_header(id.is_some(), deps.len(), payload.len()));
    out.extend_from_slice(&id.copied().unwrap_or_default().0);
    out.extend_from_slice(FactId::slice_as_bytes(deps));
    out.extend_from_slice(payload);
}

/// A record's header: flags, a zero byte, the dependency count (u16 LE)
/// and the payload length (u32 LE). Callers keep both within range.
fn record_header(has_id: bool, dep_count: usize, payload_len: usize) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = if has_id { FLAG_HAS_ID } else { 0 };
    h[2..4].copy_from_slice(&(dep_count as u16).to_le_bytes());
    h[4..8].copy_from_slice(&(payload_len as u32).to_le_bytes());
    h
}

/// Packs `n = payloads.len() / payload_len` records of fixed shape into the
/// batch layout, in one pass, into `out`, which must be exactly the batch's
/// length: record `i` carries payload bytes `[i * payload_len, (i + 1) *
/// payload_len)`, the id `ids[i]` (32 bytes each; `None`: derived at
/// admission, the id field zeroed) and `deps_per_fact` dependencies
/// `deps[i * deps_per_fact..]`. The fast way to build a batch of many
/// similar facts (e.g. counter increments from one buffer). `Err` names the
/// argument whose length does not fit.
pub fn pack_fixed_into(
    out: &mut [u8],
    payloads: &[u8],
    payload_len: usize,
    ids: Option<&[u8]>,
    deps: Option<&[u8]>,
    deps_per_fact: usize,
) -> Result<(), String> {
    if payload_len == 0 || payload_len > u32::MAX as usize {
        return Err(format!("payloadBytes must be in 1..=4294967295, got {payload_len}"));
    }
    if !payloads.len().is_multiple_of(payload_len) {
        return Err(format!("payloads holds {} bytes, not a multiple of payloadBytes ({payload_len})", payloads.len()));
    }
    let n = payloads.len() / payload_len;
    if let Some(ids) = ids
        && ids.len() != n * FactId::LEN
    {
        return Err(format!("ids must hold {} bytes (32 per fact, {n} facts), got {}", n * FactId::LEN, ids.len()));
    }
    if deps_per_fact > u16::MAX as usize {
        return Err(format!("depsPerFact must be at most 65535, got {deps_per_fact}"));
    }
    let dep_bytes = deps_per_fact * FactId::LEN;
    match deps {
        Some(d) if d.len() != n * dep_bytes => {
            return Err(format!("deps must hold {} bytes ({deps_per_fact} x 32 per fact, {n} facts), got {}", n * dep_bytes, d.len()));
        }
        None if deps_per_fact > 0 => return Err("depsPerFact is set but deps is missing".into()),
        _ => {}
    }
    let rec = HEADER_LEN + FactId::LEN + dep_bytes + payload_len;
    let total = rec.checked_mul(n).ok_or("the batch would not fit in memory")?;
    if out.len() != total {
        return Err(format!("the output must be {total} bytes, got {}", out.len()));
    }
    if total == 0 {
        return Ok(());
    }
    let header = record_header(ids.is_some(), deps_per_fact, payload_len);
    let d = HEADER_LEN + FactId::LEN;
    for (i, (r, p)) in out.chunks_exact_mut(rec).zip(payloads.chunks_exact(payload_len)).enumerate() {
        r[..HEADER_LEN].copy_from_slice(&header);
        match ids {
            Some(ids) => r[HEADER_LEN..d].copy_from_slice(&ids[i * FactId::LEN..(i + 1) * FactId::LEN]),
            None => r[HEADER_LEN..d].fill(0),
        }
        if let Some(deps) = deps {
            r[d..d + dep_bytes].copy_from_slice(&deps[i * dep_bytes..(i + 1) * dep_bytes]);
        }
        r[d + dep_bytes..].copy_from_slice(p);
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Records read (admitted or refused), at most `results.len()`.
    pub records: usize,
    pub admitted: usize,
}

/// Admits every record of `buf` in order; `results[i]` receives the
/// [`ErrorCode`](crate::error::ErrorCode) of record `i` (0 = admitted) and derived ids are written
/// into their record's id field. `on_error` sees each refusal in detail.
pub fn admit_packed<I: Invariant>(
    kernel: &mut Kernel<I>,
    buf: &mut [u8],
    results: &mut [u8],
    on_error: impl FnMut(usize, AdmitError),
) -> BatchSummary {
    admit_packed_with(kernel, buf, results, on_error, |k, id, deps, payload| match id {
        Some(id) => k.admit(id, deps, payload).map(|()| *id),
        None => k.admit_derived(deps, payload),
    })
}

/// [`admit_packed`] with the admission of each record done by `admit`
/// (`id: None` = derive one): the durable and replicated kernels put their
/// checks around [`Kernel::admit`] here and keep the batch's prefetching.
pub fn admit_packed_with<I: Invariant>(
    kernel: &mut Kernel<I>,
    buf: &mut [u8],
    results: &mut [u8],
    mut on_error: impl FnMut(usize, AdmitError),
    mut admit: impl FnMut(&mut Kernel<I>, Option<&FactId>, &[FactId], &[u8]) -> Result<FactId, AdmitError>,
) -> BatchSummary {
    let mut summary = BatchSummary::default();
    let mut pos = 0;
    let mut ahead_walk = Lookahead::new();
    let mut ahead: DerivedAhead = [None; AHEAD_RING];
    let mut derived_done = 0;
    // Every record's index lines are requested ahead (a flag left set by a
    // panic out of `admit` would only choose the unfiltered lookup, which
    // answers the same).
    kernel.set_lookahead(true);
    while pos < buf.len() && summary.records < results.len() {
        let i = summary.records;
        if ahead_walk.count <= i + SLOTS_AHEAD {
            ahead_walk.advance(kernel, buf, i, SLOTS_AHEAD + SLOTS_GROUP, derived_done, &mut ahead);
        }
        ahead_walk.request_keys(kernel, buf, i, KEYS_AHEAD);
        summary.records += 1;
        let rec = match parse_record(buf, pos) {
            Ok(r) => r,
            Err(reason) => {
                refuse(results, &mut on_error, i, AdmitError::malformed(reason));
                break;
            }
        };
        pos = rec.end;
        let (head, payload) = buf[rec.start..rec.end].split_at_mut(rec.payload - rec.start);
        let (idf, deps) = head[HEADER_LEN..].split_at_mut(FactId::LEN);
        let deps = FactId::slice_from_bytes(deps).unwrap_or(&[]);
        // Each outcome is handled where it arises. A `Result` (sized by
        // `AdmitError`) moved out of the branches was copied through the
        // stack at the odd offset of its id, straddling the kernel's stores
        // of that id: the loads stalled on store forwarding (derived ids in
        // cache: 110-137 ns per record before, 101-104 after).
        let admitted = if rec.has_id {
            let id = FactId::from_slice(idf).unwrap_or_default();
            match admit(kernel, Some(&id), deps, payload) {
                Ok(_) => true,
                Err(e) => refuse(results, &mut on_error, i, e),
            }
        } else {
            derived_done += 1;
            // The id derived ahead for this very record, if the lookahead
            // reached it (the kernel checks that its counter still matches).
            let hint = ahead[i % AHEAD_RING].take().filter(|&(rec, _, _)| rec == i).map(|(_, counter, id)| (counter, id));
            kernel.hint_derived(hint);
            let r = admit(kernel, None, deps, payload);
            // Never left for another admission (e.g. when this one was
            // refused before reaching the kernel).
            kernel.hint_derived(None);
            match r {
                Ok(id) => {
                    idf.copy_from_slice(&id.0);
                    true
                }
                Err(e) => refuse(results, &mut on_error, i, e),
            }
        };
        if admitted {
            head[0] |= FLAG_HAS_ID;
            results[i] = 0;
            summary.admitted += 1;
        }
    }
    kernel.set_lookahead(false);
    summary
}

/// Records refusal `e` of record `i`; `false`.
#[cold]
#[inline(never)]
fn refuse(results: &mut [u8], on_error: &mut impl FnMut(usize, AdmitError), i: usize, e: AdmitError) -> bool {
    results[i] = e.code() as u8;
    on_error(i, e);
    false
}

/// Re-admits a stream of logged facts (crash recovery) through the
/// pipelined batch path: records are packed in chunks and admitted with
/// [`admit_packed`], so the cache misses of consecutive records overlap. The
/// first refusal is returned with the caller's sequence number of the record.
pub struct Replayer {
    buf: Vec<u8>,
    seqs: Vec<u64>,
    results: Vec<u8>,
    chunk: usize,
    admitted: u64,
}

impl Replayer {
    /// Chunks of `chunk` records (at least 1).
    pub fn new(chunk: usize) -> Self {
        let chunk = chunk.max(1);
        Replayer { buf: Vec::new(), seqs: Vec::with_capacity(chunk), results: vec![0; chunk], chunk, admitted: 0 }
    }

    /// Queues one record; admits the chunk when it is full.
    pub fn push<I: Invariant>(
        &mut self,
        kernel: &mut Kernel<I>,
        seq: u64,
        id: &FactId,
        deps: &[FactId],
        payload: &[u8],
    ) -> Result<(), (u64, AdmitError)> {
        encode_record(&mut self.buf, Some(id), deps, payload);
        self.seqs.push(seq);
        if self.seqs.len() == self.chunk { self.flush(kernel) } else { Ok(()) }
    }

    /// Admits what is queued.
    pub fn flush<I: Invariant>(&mut self, kernel: &mut Kernel<I>) -> Result<(), (u64, AdmitError)> {
        let n = self.seqs.len();
        if n == 0 {
            return Ok(());
        }
        let mut first: Option<(u64, AdmitError)> = None;
        let seqs = &self.seqs;
        let summary = admit_packed(kernel, &mut self.buf, &mut self.results[..n], |i, e| {
            if first.is_none() {
                first = Some((seqs[i], e));
            }
        });
        self.admitted += summary.admitted as u64;
        self.buf.clear();
        self.seqs.clear();
        match first {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Records admitted so far.
    pub fn admitted(&self) -> u64 {
        self.admitted
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replayer_admits_in_order_and_reports_the_first_refusal() {
        let mut k = Kernel::new(TotalSupply::new(0, 0, 100).unwrap(), CausalityMode::Exact);
        let mut r = Replayer::new(4);
        for i in 1..=10u8 {
            let deps = if i > 1 { vec![id(i - 1)] } else { vec![] };
            r.push(&mut k, i as u64, &id(i), &deps, &TotalSupply::payload(1)).unwrap();
        }
        r.flush(&mut k).unwrap();
        assert_eq!((r.admitted(), TotalSupply::read(k.state()).balance), (10, 10));
        r.push(&mut k, 11, &id(11), &[id(99)], &TotalSupply::payload(1)).unwrap();
        let (seq, e) = r.flush(&mut k).unwrap_err();
        assert_eq!((seq, e.code()), (11, ErrorCode::CausalityViolation));
    }

    use super::*;
    use crate::error::ErrorCode;
    use crate::invariants::TotalSupply;
    use crate::kernel::CausalityMode;

    /// Ids derived ahead by the batch's lookahead are exactly the ids single
    /// admissions derive, also when derived records in between are refused
    /// (the counter does not move) and caller-id records are interleaved.
    #[test]
    fn derived_ids_match_single_admissions_whatever_is_refused() {
        use crate::fact::IdDeriver;
        let key = [7u8; 32];
        let mk = || Kernel::new(TotalSupply::new(0, 0, 1_000).unwrap(), CausalityMode::Exact).with_deriver(IdDeriver::with_key(key));
        let (mut single, mut batch) = (mk(), mk());
        let mut buf = Vec::new();
        let mut expected = Vec::new();
        let mut x = 12345u64;
        for n in 0..3000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Deltas that often overdraw (refused) or overflow the max.
            let delta = (x % 700) as i128 - 350;
            let payload = TotalSupply::payload(delta);
            let caller = (x >> 20) % 5 == 0;
            let given = FactId(*blake3::hash(&n.to_le_bytes()).as_bytes());
            let r = if caller { single.admit(&given, &[], &payload).map(|()| given) } else { single.admit_derived(&[], &payload) };
            expected.push(r.map_err(|e| e.code() as u8));
            encode_record(&mut buf, caller.then_some(&given), &[], &payload);
        }
        let refused = expected.iter().filter(|r| r.is_err()).count();
        assert!(refused > 300 && refused < 2700, "{refused} refused: both paths must be exercised");
        let mut results = vec![0u8; expected.len()];
        for chunk in [0..1000usize, 1000..2000, 2000..3000] {
            let start = chunk.start * (HEADER_LEN + 32 + 16);
            let end = chunk.end * (HEADER_LEN + 32 + 16);
            admit_packed(&mut batch, &mut buf[start..end], &mut results[chunk.clone()], |_, _| {});
        }
        for (i, want) in expected.iter().enumerate() {
            let rec = i * (HEADER_LEN + 32 + 16);
            match want {
                Ok(id) => {
                    assert_eq!(results[i], 0, "record {i}");
                    assert_eq!(&buf[rec + HEADER_LEN..rec + HEADER_LEN + 32], &id.0, "record {i}: derived id");
                }
                Err(code) => assert_eq!(results[i], *code, "record {i}"),
            }
        }
        assert_eq!(single.state(), batch.state());
        assert_eq!(single.frontier().canonical_bytes(), batch.frontier().canonical_bytes());
        // A later single derived admission continues the same sequence.
        assert_eq!(single.admit_derived(&[], &TotalSupply::payload(1)).unwrap(), batch.admit_derived(&[], &TotalSupply::payload(1)).unwrap());
    }

    fn id(n: u8) -> FactId {
        FactId([n; 32])
    }

    /// A chain whose lookahead leaves out the dependency on the record
    /// before answers as single admissions do, also when that record was
    /// refused (then the dependency is looked up, and is missing).
    #[test]
    fn chains_answer_as_single_admissions_when_a_link_is_refused() {
        let mk = || Kernel::new(TotalSupply::new(0, 0, 1_000).unwrap(), CausalityMode::Exact);
        let (mut single, mut batch) = (mk(), mk());
        let mut buf = Vec::new();
        let mut expected = Vec::new();
        // Each record depends on the one before; every 7th overdraws (refused),
        // so the next depends on a refused fact (refused too) and the one
        // after that on the last admitted fact, two records back.
        let (mut prev, mut last_admitted): (Option<FactId>, Option<FactId>) = (None, None);
        for n in 0..200u32 {
            let me = FactId(*blake3::hash(&n.to_le_bytes()).as_bytes());
            let delta = if n % 7 == 3 { -1_000_000 } else { 1 };
            let dep = if n % 7 == 5 { last_admitted } else { prev };
            let deps: Vec<FactId> = dep.into_iter().collect();
            let payload = TotalSupply::payload(delta);
            let r = single.admit(&me, &deps, &payload);
            if r.is_ok() {
                last_admitted = Some(me);
            }
            expected.push(r.map_err(|e| e.code() as u8));
            encode_record(&mut buf, Some(&me), &deps, &payload);
            prev = Some(me);
        }
        let count = |c: ErrorCode| expected.iter().filter(|r| **r == Err(c as u8)).count();
        assert_eq!((count(ErrorCode::InvariantViolation), count(ErrorCode::CausalityViolation)), (29, 28));
        let mut results = vec![0xffu8; expected.len()];
        admit_packed(&mut batch, &mut buf, &mut results, |_, _| {});
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(results[i], want.err().unwrap_or(0), "record {i}");
        }
        assert_eq!(single.state(), batch.state());
        assert_eq!(single.frontier().canonical_bytes(), batch.frontier().canonical_bytes());
    }

    #[test]
    fn admits_in_order_with_per_record_results() {
        let mut k = Kernel::new(TotalSupply::new(0, 0, 100).unwrap(), CausalityMode::Exact);
        let mut buf = Vec::new();
        encode_record(&mut buf, Some(&id(1)), &[], &TotalSupply::payload(10));
        encode_record(&mut buf, Some(&id(2)), &[id(1)], &TotalSupply::payload(5));
        encode_record(&mut buf, Some(&id(3)), &[id(9)], &TotalSupply::payload(5));
        encode_record(&mut buf, None, &[id(2)], &TotalSupply::payload(-500));
        encode_record(&mut buf, None, &[id(2)], &TotalSupply::payload(-15));
        encode_record(&mut buf, Some(&id(1)), &[], &TotalSupply::payload(1));
        let mut results = [0xffu8; 6];
        let mut errors = Vec::new();
        let s = admit_packed(&mut k, &mut buf, &mut results, |i, e| errors.push((i, e.code())));
        assert_eq!(s, BatchSummary { records: 6, admitted: 3 });
        assert_eq!(results, [0, 0, 2, 3, 0, 1]);
        assert_eq!(errors.len(), 3);
        assert_eq!(TotalSupply::read(k.state()).balance, 0);
        // The derived id of record 4 was written back and is admitted.
        let r4 = {
            let mut p = 0;
            for _ in 0..4 {
                p = parse_record(&buf, p).unwrap().end;
            }
            parse_record(&buf, p).unwrap()
        };
        let derived = FactId::from_slice(&buf[r4.id..r4.id + 32]).unwrap();
        assert_ne!(derived, FactId::default());
        assert_eq!(k.contains(&derived), crate::kernel::Containment::Yes);
        // Retrying the whole batch admits nothing twice.
        let mut again = [0xffu8; 6];
        let s = admit_packed(&mut k, &mut buf, &mut again, |_, _| {});
        assert_eq!(s.admitted, 0);
        assert_eq!(again, [1, 1, 2, 3, 1, 1]);
    }

    /// [`pack_fixed_into`] into a new buffer of the right length (for a
    /// payload length that is 0 or does not divide, any length: the call
    /// refuses first).
    fn pack_fixed(payloads: &[u8], payload_len: usize, ids: Option<&[u8]>, deps: Option<&[u8]>, deps_per_fact: usize) -> Result<Vec<u8>, String> {
        let n = payloads.len().checked_div(payload_len).unwrap_or(0);
        let mut out = vec![0u8; n * (HEADER_LEN + FactId::LEN + deps_per_fact * FactId::LEN + payload_len)];
        pack_fixed_into(&mut out, payloads, payload_len, ids, deps, deps_per_fact)?;
        Ok(out)
    }

    #[test]
    fn pack_fixed_matches_encode_record() {
        let payloads: Vec<u8> = (0..24u8).collect();
        let ids: Vec<u8> = (0..3).flat_map(|i| id(i + 1).0).collect();
        let deps: Vec<u8> = (0..3).flat_map(|i| id(i + 10).0).collect();
        let mut expected = Vec::new();
        for i in 0..3u8 {
            encode_record(&mut expected, Some(&id(i + 1)), &[id(i + 10)], &payloads[i as usize * 8..i as usize * 8 + 8]);
        }
        assert_eq!(pack_fixed(&payloads, 8, Some(&ids), Some(&deps), 1).unwrap(), expected);
        let mut derived = Vec::new();
        for i in 0..3 {
            encode_record(&mut derived, None, &[], &payloads[i * 8..i * 8 + 8]);
        }
        assert_eq!(pack_fixed(&payloads, 8, None, None, 0).unwrap(), derived);
        assert!(pack_fixed(&payloads, 7, None, None, 0).unwrap_err().contains("multiple"));
        assert!(pack_fixed(&payloads, 8, Some(&ids[..64]), None, 0).unwrap_err().contains("ids"));
        assert!(pack_fixed(&payloads, 8, None, None, 1).unwrap_err().contains("deps"));
        assert!(pack_fixed(&payloads, 0, None, None, 0).is_err());
        assert_eq!(pack_fixed(&[], 8, None, None, 0).unwrap(), Vec::<u8>::new());
        // Into a caller's buffer: stale bytes in derived records' id fields are cleared.
        let mut out = vec![0xAB; derived.len()];
        pack_fixed_into(&mut out, &payloads, 8, None, None, 0).unwrap();
        assert_eq!(out, derived);
        assert!(pack_fixed_into(&mut out[1..], &payloads, 8, None, None, 0).unwrap_err().contains("output"));
    }

    #[test]
    fn truncated_record_is_malformed_and_stops() {
        let mut k = Kernel::new(TotalSupply::unbounded(0), CausalityMode::Exact);
        let mut buf = Vec::new();
        encode_record(&mut buf, Some(&id(1)), &[], &TotalSupply::payload(1));
        encode_record(&mut buf, Some(&id(2)), &[], &TotalSupply::payload(1));
        buf.truncate(buf.len() - 3);
        let mut results = [0xffu8; 4];
        let s = admit_packed(&mut k, &mut buf, &mut results, |_, _| {});
        assert_eq!(s, BatchSummary { records: 2, admitted: 1 });
        assert_eq!(results[1], ErrorCode::MalformedFact as u8);
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn garbage_never_panics() {
        let mut k = Kernel::new(TotalSupply::unbounded(0), CausalityMode::Exact);
        let mut x = 99u64;
        for len in 0..600 {
            let mut buf: Vec<u8> = (0..len).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 }).collect();
            let mut results = [0u8; 16];
            admit_packed(&mut k, &mut buf, &mut results, |_, _| {});
        }
    }
}
