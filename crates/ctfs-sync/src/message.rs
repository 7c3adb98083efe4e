//! Frame bodies.
//!
//! * **Facts**: `groups u16`, then per group `node u64 | epoch u64 | first
//!   u64 | count u32 | len u32 | records`, where `records` are `count` facts
//!   of one origin numbered `first, first+1, ...`, in the packed batch layout
//!   of `ctfs_core::batch` (flags, dep count, payload length, id, deps,
//!   payload) — the ids always present, the dependencies always carried.
//! * **Probe / Match**: [`Digests`] (72 bytes).
//! * **Summary**: `flags u8` (bit 0: "send me yours too") | [`Digests`] |
//!   version vector.
//! * **Gap**: version vector.
//! * **QuotaRequest / QuotaGrant**: `member u8 | side u8 |` the escrow
//!   message (41 bytes, `ctfs_core::escrow`).
//! * **SnapshotRequest**: empty.
//! * **SnapshotChunk**: `root [32] | total u64 | offset u64 | data`.

use ctfs_core::batch::{parse_record, FLAG_HAS_ID};
use ctfs_core::replica::Side;
use ctfs_core::{FactId, QuotaGrant, QuotaRequest};

use crate::origin::{split_u32, split_u64, Origin, VersionVector};

/// Count and digests of a replica's fact set and state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digests {
    pub count: u64,
    /// Order-independent digest of the admitted ids.
    pub ids: [u8; 32],
    /// Digest of the state.
    pub state: [u8; 32],
}

pub const DIGESTS_LEN: usize = 72;

impl Digests {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.ids);
        out.extend_from_slice(&self.state);
    }

    pub fn decode(b: &[u8]) -> Result<(Digests, &[u8]), &'static str> {
        let (count, r) = split_u64(b).ok_or("digests: truncated")?;
        let (ids, r) = r.split_at_checked(32).ok_or("digests: truncated")?;
        let (state, r) = r.split_at_checked(32).ok_or("digests: truncated")?;
        Ok((Digests { count, ids: ids.try_into().map_err(|_| "digests")?, state: state.try_into().map_err(|_| "digests")? }, r))
    }

    /// Same fact set (count and id digest).
    pub fn same_facts(&self, other: &Digests) -> bool {
        self.count == other.count && self.ids == other.ids
    }
}

pub fn decode_exact_digests(b: &[u8]) -> Result<Digests, &'static str> {
    let (d, rest) = Digests::decode(b)?;
    if !rest.is_empty() {
        return Err("trailing bytes after digests");
    }
    Ok(d)
}

/// A Summary body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub ask: bool,
    pub digests: Digests,
    pub vv: VersionVector,
}

impl Summary {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.ask as u8);
        self.digests.encode(out);
        self.vv.encode(out);
    }

    pub fn decode(b: &[u8]) -> Result<Summary, &'static str> {
        let (&flags, r) = b.split_first().ok_or("summary: empty")?;
        if flags > 1 {
            return Err("summary: unknown flags");
        }
        let (digests, r) = Digests::decode(r)?;
        let (vv, r) = VersionVector::decode(r)?;
        if !r.is_empty() {
            return Err("summary: trailing bytes");
        }
        Ok(Summary { ask: flags == 1, digests, vv })
    }
}

pub fn decode_exact_vv(b: &[u8]) -> Result<VersionVector, &'static str> {
    let (vv, rest) = VersionVector::decode(b)?;
    if !rest.is_empty() {
        return Err("trailing bytes after version vector");
    }
    Ok(vv)
}

fn side_byte(side: Side) -> u8 {
    match side {
        Side::Down => 0,
        Side::Up => 1,
    }
}

fn side_of(b: u8) -> Result<Side, &'static str> {
    match b {
        0 => Ok(Side::Down),
        1 => Ok(Side::Up),
        _ => Err("quota message: unknown side"),
    }
}

pub fn encode_quota_request(member: u8, side: Side, req: &QuotaRequest, out: &mut Vec<u8>) {
    out.push(member);
    out.push(side_byte(side));
    req.encode_into(out);
}

pub fn encode_quota_grant(member: u8, side: Side, grant: &QuotaGrant, out: &mut Vec<u8>) {
    out.push(member);
    out.push(side_byte(side));
    grant.encode_into(out);
}

pub fn decode_quota_request(b: &[u8]) -> Result<(u8, Side, QuotaRequest), &'static str> {
    let [member, side, rest @ ..] = b else { return Err("quota request: truncated") };
    let req = QuotaRequest::decode(rest).map_err(|_| "quota request: bad escrow message")?;
    Ok((*member, side_of(*side)?, req))
}

pub fn decode_quota_grant(b: &[u8]) -> Result<(u8, Side, QuotaGrant), &'static str> {
    let [member, side, rest @ ..] = b else { return Err("quota grant: truncated") };
    let grant = QuotaGrant::decode(rest).map_err(|_| "quota grant: bad escrow message")?;
    Ok((*member, side_of(*side)?, grant))
}

/// One chunk of a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub root: [u8; 32],
    pub total: u64,
    pub offset: u64,
    pub data: &'a [u8],
}

pub const CHUNK_HEADER: usize = 48;

impl<'a> Chunk<'a> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.root);
        out.extend_from_slice(&self.total.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(self.data);
    }

    pub fn decode(b: &'a [u8]) -> Result<Chunk<'a>, &'static str> {
        let (root, r) = b.split_at_checked(32).ok_or("snapshot chunk: truncated")?;
        let (total, r) = split_u64(r).ok_or("snapshot chunk: truncated")?;
        let (offset, data) = split_u64(r).ok_or("snapshot chunk: truncated")?;
        if offset.checked_add(data.len() as u64).is_none_or(|end| end > total) {
            return Err("snapshot chunk: past the snapshot's end");
        }
        Ok(Chunk { root: root.try_into().map_err(|_| "root")?, total, offset, data })
    }
}

// ------------------------------------------------------------------ facts

/// Group header: node, epoch, first, count u32, len u32.
pub const GROUP_HEADER: usize = 32;

/// Builds a Facts body.
#[derive(Debug, Default)]
pub struct FactsWriter {
    body: Vec<u8>,
    groups: u16,
    /// Offset of the open group's header, and its record count.
    open: Option<(usize, u32)>,
}

impl FactsWriter {
    pub fn new() -> Self {
        let mut body = Vec::new();
        body.extend_from_slice(&0u16.to_le_bytes());
        FactsWriter { body, groups: 0, open: None }
    }

    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups == 0
    }

    /// Starts a group of `origin`'s facts numbered from `first`.
    pub fn begin(&mut self, origin: Origin, first: u64) {
        self.end();
        let at = self.body.len();
        self.body.extend_from_slice(&origin.node.to_le_bytes());
        self.body.extend_from_slice(&origin.epoch.to_le_bytes());
        self.body.extend_from_slice(&first.to_le_bytes());
        self.body.extend_from_slice(&[0; 8]);
        self.open = Some((at, 0));
        self.groups += 1;
    }

    /// Appends `count` already-packed records (with ids) to the open group.
    pub fn records(&mut self, bytes: &[u8], count: u32) {
        if let Some((_, n)) = &mut self.open {
            *n += count;
            self.body.extend_from_slice(bytes);
        }
    }

    fn end(&mut self) {
        if let Some((at, n)) = self.open.take() {
            let len = (self.body.len() - at - GROUP_HEADER) as u32;
            self.body[at + 24..at + 28].copy_from_slice(&n.to_le_bytes());
            self.body[at + 28..at + 32].copy_from_slice(&len.to_le_bytes());
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.end();
        let g = self.groups.to_le_bytes();
        self.body[..2].copy_from_slice(&g);
        self.body
    }
}

/// One origin's facts in a Facts body.
#[derive(Clone, Copy, Debug)]
pub struct Group<'a> {
    pub origin: Origin,
    pub first: u64,
    pub count: u32,
    /// `count` packed records, validated.
    pub records: &'a [u8],
}

/// A fact read from a group.
#[derive(Clone, Copy, Debug)]
pub struct WireFact<'a> {
    pub id: FactId,
    pub deps: &'a [FactId],
    pub payload: &'a [u8],
    /// The whole packed record.
    pub record: &'a [u8],
}

/// Parses and validates a Facts body completely before anything is
/// admitted: a frame either decodes whole or is dropped whole.
pub fn decode_facts(body: &[u8]) -> Result<Vec<Group<'_>>, &'static str> {
    let (groups, mut rest) = body.split_at_checked(2).ok_or("facts: truncated")?;
    let n = u16::from_le_bytes([groups[0], groups[1]]) as usize;
    if n.checked_mul(GROUP_HEADER).is_none_or(|l| l > rest.len()) {
        return Err("facts: more groups than bytes");
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (node, r) = split_u64(rest).ok_or("facts: truncated group")?;
        let (epoch, r) = split_u64(r).ok_or("facts: truncated group")?;
        let (first, r) = split_u64(r).ok_or("facts: truncated group")?;
        let (count, r) = split_u32(r).ok_or("facts: truncated group")?;
        let (len, r) = split_u32(r).ok_or("facts: truncated group")?;
        let (records, r) = r.split_at_checked(len as usize).ok_or("facts: group runs past the frame")?;
        rest = r;
        if first == 0 || first.checked_add(count as u64).is_none() {
            return Err("facts: bad origin sequence");
        }
        let mut pos = 0;
        let mut seen = 0u32;
        while pos < records.len() {
            let rec = parse_record(records, pos)?;
            if !rec.has_id {
                return Err("facts: a record without its id");
            }
            pos = rec.end;
            seen += 1;
        }
        if seen != count {
            return Err("facts: record count does not match the group header");
        }
        out.push(Group { origin: Origin { node, epoch }, first, count, records });
    }
    if !rest.is_empty() {
        return Err("facts: trailing bytes");
    }
    Ok(out)
}

impl<'a> Group<'a> {
    /// The facts of a validated group, in origin order.
    pub fn facts(&self) -> impl Iterator<Item = WireFact<'a>> + 'a {
        let records = self.records;
        let mut pos = 0;
        std::iter::from_fn(move || {
            if pos >= records.len() {
                return None;
            }
            let rec = parse_record(records, pos).ok()?;
            pos = rec.end;
            let id = FactId::from_slice(&records[rec.id..rec.deps])?;
            let deps = FactId::slice_from_bytes(&records[rec.deps..rec.payload])?;
            Some(WireFact { id, deps, payload: &records[rec.payload..rec.end], record: &records[rec.start..rec.end] })
        })
    }
}

/// Appends one packed record with its id (what the store keeps and frames carry).
pub fn encode_fact(out: &mut Vec<u8>, id: &FactId, deps: &[FactId], payload: &[u8]) {
    ctfs_core::batch::encode_record(out, Some(id), deps, payload);
    debug_assert!(out.len() >= 8);
}

/// Whether `flags` of a record mark its id as present.
pub fn has_id(record: &[u8]) -> bool {
    record.first().is_some_and(|f| f & FLAG_HAS_ID != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fid(n: u8) -> FactId {
        FactId(*blake3::hash(&[n]).as_bytes())
    }

    #[test]
    fn facts_round_trip() {
        let mut w = FactsWriter::new();
        let a = Origin { node: 1, epoch: 2 };
        let b = Origin { node: 3, epoch: 4 };
        let mut recs = Vec::new();
        encode_fact(&mut recs, &fid(1), &[], b"x");
        encode_fact(&mut recs, &fid(2), &[fid(1)], b"yz");
        w.begin(a, 5);
        w.records(&recs, 2);
        let mut one = Vec::new();
        encode_fact(&mut one, &fid(3), &[fid(2), fid(1)], &[]);
        w.begin(b, 1);
        w.records(&one, 1);
        let body = w.finish();
        let groups = decode_facts(&body).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[0].origin, groups[0].first, groups[0].count), (a, 5, 2));
        let facts: Vec<_> = groups[0].facts().collect();
        assert_eq!(facts[1].id, fid(2));
        assert_eq!(facts[1].deps, &[fid(1)]);
        assert_eq!(facts[1].payload, b"yz");
        let facts: Vec<_> = groups[1].facts().collect();
        assert_eq!(facts[0].deps, &[fid(2), fid(1)]);
        // a lying count is refused
        let mut bad = body.clone();
        bad[2 + 24] = 3;
        assert!(decode_facts(&bad).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_facts(&bytes);
            let _ = Summary::decode(&bytes);
            let _ = Chunk::decode(&bytes);
            let _ = decode_quota_grant(&bytes);
            let _ = decode_quota_request(&bytes);
            let _ = decode_exact_vv(&bytes);
        }
    }
}
