//! The replication protocol (`ctfs-sync`) attached to a kernel: one native
//! call per received frame (open, verify, admit its facts, build replies)
//! or per timer tick. TypeScript moves the bytes; it never loops over facts.

use ctfs_core::invariants::Builtin;
use ctfs_core::replica::{Replication, Side};
use ctfs_core::{AdmitError, FactId, Kernel, Multi};
use ctfs_sync::host::{decode_sections, encode_sections};
use ctfs_sync::{BufferLimits, Event, Host, Node, Outbox, SyncConfig};
use napi::bindgen_prelude::{BigInt, Buffer};
use napi::{Error, Result, Status};
use napi_derive::napi;

use crate::durable::{Control, DurableLog};
use ctfs_sync::Origin;

pub(crate) fn side_byte(s: Side) -> u8 {
    match s {
        Side::Down => 0,
        Side::Up => 1,
    }
}

pub(crate) fn side_from(b: u8) -> Option<Side> {
    match b {
        0 => Some(Side::Down),
        1 => Some(Side::Up),
        _ => None,
    }
}

type Inv = Multi<Builtin>;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, msg.into())
}

#[napi(object)]
pub struct NativeSyncConfig {
    /// 32-byte cluster key.
    pub key: Buffer,
    /// This run of the replica (grows across restarts), e.g. start time in ms.
    pub epoch: f64,
    /// Cluster name, mixed into the configuration id.
    pub cluster: Option<String>,
    pub max_frame_bytes: Option<u32>,
    pub push_max_facts: Option<u32>,
    pub buffer_max_facts: Option<u32>,
    pub buffer_max_bytes: Option<f64>,
    pub anti_entropy_ms: Option<u32>,
    pub anti_entropy_max_bytes: Option<u32>,
    pub quota_low_water: Option<BigInt>,
    pub quota_refill: Option<BigInt>,
    pub snapshot_min_facts: Option<f64>,
    pub max_snapshot_bytes: Option<f64>,
}

#[napi(object)]
pub struct NativeSyncEvent {
    /// 'admitted' | 'synced' | 'diverged' | 'remoteRefused' | 'peerConfigMismatch'
    /// | 'quotaReceived' | 'quotaDenied' | 'quotaGaveUp' | 'snapshotInstalled' | 'snapshotRefused'
    pub kind: String,
    pub peer: Option<BigInt>,
    pub facts: Option<f64>,
    pub member: Option<u32>,
    pub side: Option<String>,
    pub amount: Option<BigInt>,
    pub code: Option<String>,
    pub message: Option<String>,
}

#[napi(object)]
pub struct NativeSyncOutput {
    /// Frames to send, packed: `to u64 LE | len u32 LE | bytes`, repeated.
    pub frames: Buffer,
    pub frame_count: u32,
    pub events: Vec<NativeSyncEvent>,
    /// Why the received frame was dropped (receive only).
    pub dropped_code: Option<String>,
    pub dropped_message: Option<String>,
    /// Sender of the received frame, when it authenticated.
    pub from: Option<BigInt>,
}

#[napi(object)]
pub struct NativePeerStats {
    pub peer: BigInt,
    pub up: bool,
    pub synced: bool,
    pub frames_in: f64,
    pub bytes_in: f64,
    pub frames_out: f64,
    pub bytes_out: f64,
    pub facts_in: f64,
    pub facts_out: f64,
}

#[napi(object)]
pub struct NativeSyncStats {
    pub facts_received: f64,
    pub facts_admitted: f64,
    pub facts_duplicate: f64,
    pub facts_buffered: f64,
    pub facts_discarded: f64,
    pub facts_deferred: f64,
    pub remote_refused: f64,
    pub facts_pushed: f64,
    pub push_frames: f64,
    pub probes_sent: f64,
    pub summaries_sent: f64,
    pub anti_entropy_facts_sent: f64,
    pub anti_entropy_bytes_sent: f64,
    pub quota_requests_sent: f64,
    pub quota_grants_sent: f64,
    pub snapshots_sent: f64,
    pub snapshots_installed: f64,
    pub snapshot_bytes_in: f64,
    pub buffered: f64,
    pub buffered_bytes: f64,
    pub buffer_evicted: f64,
    pub store_facts: f64,
    pub store_bytes: f64,
    pub unpushed: f64,
    /// Dropped frames by code.
    pub dropped_codes: Vec<String>,
    pub dropped_counts: Vec<f64>,
    pub peers: Vec<NativePeerStats>,
    /// This run's epoch (a durable replica chooses its own at open).
    pub epoch: f64,
    /// Version vector: origins (node, epoch) and counts.
    pub origin_nodes: Vec<BigInt>,
    pub origin_epochs: Vec<f64>,
    pub origin_counts: Vec<f64>,
}

/// The kernel's side of the protocol: the main domain, its escrow gate and
/// (durable kernels) its log.
pub(crate) struct StateHost<'a> {
    pub main: &'a mut Kernel<Inv>,
    pub replication: Option<&'a mut Replication>,
    pub log: Option<&'a mut DurableLog>,
}

impl Host for StateHost<'_> {
    /// `seq == 0`: a fact handed in by hand (`replica.admitRemote`), logged
    /// without an origin.
    fn admit_merge(&mut self, id: &FactId, deps: &[FactId], payload: &[u8], origin: Origin, seq: u64) -> std::result::Result<(), AdmitError> {
        if let Some(log) = self.log.as_deref_mut() {
            if seq > 0 { log.reserve_with_origin(deps.len(), payload.len())? } else { log.reserve(deps.len(), payload.len())? }
        }
        self.main.admit_merge(id, deps, payload)?;
        if let Some(log) = self.log.as_deref_mut() {
            if seq > 0 {
                log.append_with_origin(id, deps, payload, false, origin, seq);
            } else {
                log.append(id, deps, payload, false);
            }
        }
        Ok(())
    }

    fn grant_issued(&mut self, member: usize, side: Side, amount: u128) -> Option<u64> {
        let log = self.log.as_deref_mut()?;
        if amount == 0 {
            // a repeated grant: its debit was logged earlier, maybe not durable yet
            return Some(log.wal().appended_seq());
        }
        let c = Control::GrantOut { member: member as u8, side: side_byte(side), amount };
        // If the debit cannot be logged, the grant must never leave: held
        // forever, the quota is lost (safe), never spent twice.
        Some(log.append_control(&c).unwrap_or(u64::MAX))
    }

    fn grant_received(&mut self, member: usize, side: Side, amount: u128) {
        if let Some(log) = self.log.as_deref_mut() {
            let _ = log.append_control(&Control::GrantIn { member: member as u8, side: side_byte(side), amount });
        }
    }

    fn fact_count(&self) -> u64 {
        self.main.len()
    }

    fn id_digest(&self) -> [u8; 32] {
        self.main.frontier().canonical_bytes()[72..104].try_into().unwrap_or([0; 32])
    }

    fn state_digest(&self) -> [u8; 32] {
        self.main.state_digest()
    }

    fn replication(&mut self) -> Option<&mut Replication> {
        self.replication.as_deref_mut()
    }

    fn snapshot(&self) -> std::result::Result<Vec<u8>, String> {
        Ok(encode_sections(&self.main.snapshot()))
    }

    fn install_snapshot(&mut self, bytes: &[u8]) -> std::result::Result<(), String> {
        if self.log.is_some() {
            return Err("durable kernels join by anti-entropy, not by snapshot (yet)".into());
        }
        let [meta, ids, state] = decode_sections(bytes)?;
        *self.main = Kernel::restore(self.main.invariant().clone(), self.main.config().clone(), meta, ids, state)?;
        Ok(())
    }
}

fn u128_of(b: &BigInt, name: &str) -> Result<u128> {
    let (neg, v, lossless) = b.get_u128();
    if neg || !lossless {
        return Err(invalid(format!("{name} must be a non-negative integer below 2^128")));
    }
    Ok(v)
}

/// The configuration id: the cluster name and the kernel's configuration
/// (every invariant with its parameters, the causality mode and limits).
/// Replicas with different ids refuse each other's frames.
pub(crate) fn config_id(cluster: &str, kernel: &Kernel<Inv>) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("ctfs sync configuration v1");
    h.update(&(cluster.len() as u64).to_le_bytes());
    h.update(cluster.as_bytes());
    match ctfs_core::fingerprint::Fingerprint::of_kernel(kernel.invariant(), kernel.config(), None) {
        Ok(fp) => {
            h.update(&fp.encode());
        }
        Err(e) => {
            h.update(b"unfingerprinted:");
            h.update(e.as_bytes());
        }
    }
    *h.finalize().as_bytes()
}

pub(crate) fn build(cfg: &NativeSyncConfig, kernel: &Kernel<Inv>, replication: &Replication, nodes: Vec<u64>) -> Result<Node> {
    let key: [u8; 32] = cfg.key.as_ref().try_into().map_err(|_| invalid(format!("key must be 32 bytes, got {}", cfg.key.len())))?;
    if !(cfg.epoch.is_finite() && cfg.epoch >= 0.0 && cfg.epoch.fract() == 0.0 && cfg.epoch <= 9_007_199_254_740_991.0) {
        return Err(invalid("epoch must be a non-negative safe integer"));
    }
    let local = replication.local();
    let mut c = SyncConfig::new(local, cfg.epoch as u64, nodes, key, config_id(cfg.cluster.as_deref().unwrap_or(""), kernel));
    if let Some(v) = cfg.max_frame_bytes {
        c.max_frame_bytes = v as usize;
    }
    let max_record = kernel.config().max_payload + kernel.config().max_deps * 32 + 8 + 32;
    if c.max_frame_bytes < max_record + ctfs_sync::frame::OVERHEAD + 2 + ctfs_sync::message::GROUP_HEADER {
        return Err(invalid(format!(
            "maxFrameBytes {} cannot carry the largest fact this kernel admits ({max_record} bytes with maxPayloadBytes and maxDeps); raise it or lower the kernel's limits",
            c.max_frame_bytes
        )));
    }
    if let Some(v) = cfg.push_max_facts {
        c.push_max_facts = v as usize;
    }
    let mut limits = BufferLimits::default();
    if let Some(v) = cfg.buffer_max_facts {
        limits.max_facts = v as usize;
    }
    if let Some(v) = cfg.buffer_max_bytes {
        limits.max_bytes = v as usize;
    }
    c.buffer = limits;
    if let Some(v) = cfg.anti_entropy_ms {
        c.anti_entropy_ms = v as u64;
    }
    if let Some(v) = cfg.anti_entropy_max_bytes {
        c.anti_entropy_max_bytes = v as usize;
    }
    if let Some(v) = &cfg.quota_low_water {
        c.quota_low_water = Some(u128_of(v, "quotaLowWater")?);
    }
    if let Some(v) = &cfg.quota_refill {
        c.quota_refill = Some(u128_of(v, "quotaRefill")?);
    }
    if let Some(v) = cfg.snapshot_min_facts {
        c.snapshot_min_facts = if v.is_finite() { v.max(0.0) as u64 } else { u64::MAX };
    }
    if let Some(v) = cfg.max_snapshot_bytes {
        c.max_snapshot_bytes = v.max(0.0) as u64;
    }
    Node::new(c).map_err(invalid)
}

fn side_str(s: Side) -> String {
    s.as_str().to_owned()
}

fn event_of(e: Event) -> NativeSyncEvent {
    let base = |kind: &str| NativeSyncEvent {
        kind: kind.to_owned(),
        peer: None,
        facts: None,
        member: None,
        side: None,
        amount: None,
        code: None,
        message: None,
    };
    let big = |n: u64| Some(BigInt::from(n));
    match e {
        Event::Admitted { from, facts } => NativeSyncEvent { peer: big(from), facts: Some(facts as f64), ..base("admitted") },
        Event::Synced { peer } => NativeSyncEvent { peer: big(peer), ..base("synced") },
        Event::Diverged { peer } => NativeSyncEvent { peer: big(peer), ..base("diverged") },
        Event::RemoteRefused { origin, seq, code, message } => NativeSyncEvent {
            peer: big(origin.node),
            facts: Some(seq as f64),
            code: Some(code.as_str().to_owned()),
            message: Some(message),
            ..base("remoteRefused")
        },
        Event::PeerConfigMismatch { peer } => NativeSyncEvent { peer: big(peer), ..base("peerConfigMismatch") },
        Event::QuotaReceived { member, side, from, amount } => NativeSyncEvent {
            peer: big(from),
            member: Some(member as u32),
            side: Some(side_str(side)),
            amount: Some(BigInt::from(amount)),
            ..base("quotaReceived")
        },
        Event::QuotaDenied { member, side, from } => {
            NativeSyncEvent { peer: big(from), member: Some(member as u32), side: Some(side_str(side)), ..base("quotaDenied") }
        }
        Event::QuotaGaveUp { member, side, peer } => {
            NativeSyncEvent { peer: big(peer), member: Some(member as u32), side: Some(side_str(side)), ..base("quotaGaveUp") }
        }
        Event::SnapshotInstalled { from, facts, bytes } => NativeSyncEvent {
            peer: big(from),
            facts: Some(facts as f64),
            amount: Some(BigInt::from(bytes)),
            ..base("snapshotInstalled")
        },
        Event::SnapshotRefused { from, reason } => NativeSyncEvent { peer: big(from), message: Some(reason), ..base("snapshotRefused") },
    }
}

/// Holds frames that must wait for the log (`hold_until` above `durable`)
/// in `held`, and moves held frames that may leave now into `out`.
pub(crate) fn release_held(out: &mut Outbox, held: &mut Vec<ctfs_sync::Outgoing>, durable: u64) {
    let mut i = 0;
    while i < out.frames.len() {
        if out.frames[i].hold_until > durable {
            held.push(out.frames.remove(i));
        } else {
            i += 1;
        }
    }
    let mut j = 0;
    while j < held.len() {
        if held[j].hold_until <= durable {
            out.frames.push(held.remove(j));
        } else {
            j += 1;
        }
    }
}

/// Packs an outbox for JS (and empties it).
pub(crate) fn output(out: &mut Outbox) -> NativeSyncOutput {
    let total: usize = out.frames.iter().map(|f| 12 + f.bytes.len()).sum();
    let mut packed = Vec::with_capacity(total);
    for f in &out.frames {
        packed.extend_from_slice(&f.to.to_le_bytes());
        packed.extend_from_slice(&(f.bytes.len() as u32).to_le_bytes());
        packed.extend_from_slice(&f.bytes);
    }
    let frame_count = out.frames.len() as u32;
    let events = out.events.drain(..).map(event_of).collect();
    out.clear();
    NativeSyncOutput { frames: Buffer::from(packed), frame_count, events, dropped_code: None, dropped_message: None, from: None }
}

pub(crate) fn stats_of(node: &Node) -> NativeSyncStats {
    let s = node.stats();
    let b = node.buffer();
    let f = |n: u64| n as f64;
    let up: Vec<u64> = node.up_peers().collect();
    NativeSyncStats {
        facts_received: f(s.facts_received),
        facts_admitted: f(s.facts_admitted),
        facts_duplicate: f(s.facts_duplicate),
        facts_buffered: f(s.facts_buffered),
        facts_discarded: f(s.facts_discarded),
        facts_deferred: f(s.facts_deferred),
        remote_refused: f(s.remote_refused),
        facts_pushed: f(s.facts_pushed),
        push_frames: f(s.push_frames),
        probes_sent: f(s.probes_sent),
        summaries_sent: f(s.summaries_sent),
        anti_entropy_facts_sent: f(s.anti_entropy_facts_sent),
        anti_entropy_bytes_sent: f(s.anti_entropy_bytes_sent),
        quota_requests_sent: f(s.quota_requests_sent),
        quota_grants_sent: f(s.quota_grants_sent),
        snapshots_sent: f(s.snapshots_sent),
        snapshots_installed: f(s.snapshots_installed),
        snapshot_bytes_in: f(s.snapshot_bytes_in),
        buffered: b.len() as f64,
        buffered_bytes: b.bytes() as f64,
        buffer_evicted: f(b.evicted()),
        store_facts: f(node.store().facts()),
        store_bytes: f(node.store().bytes()),
        unpushed: f(node.unpushed()),
        dropped_codes: s.dropped.keys().map(|k| (*k).to_owned()).collect(),
        dropped_counts: s.dropped.values().map(|v| *v as f64).collect(),
        peers: node
            .peers()
            .iter()
            .map(|p| {
                let ps = s.peers.get(p).copied().unwrap_or_default();
                NativePeerStats {
                    peer: BigInt::from(*p),
                    up: up.contains(p),
                    synced: node.is_synced(*p),
                    frames_in: f(ps.frames_in),
                    bytes_in: f(ps.bytes_in),
                    frames_out: f(ps.frames_out),
                    bytes_out: f(ps.bytes_out),
                    facts_in: f(ps.facts_in),
                    facts_out: f(ps.facts_out),
                }
            })
            .collect(),
        epoch: node.origin().epoch as f64,
        origin_nodes: node.version_vector().iter().map(|(o, _)| BigInt::from(o.node)).collect(),
        origin_epochs: node.version_vector().iter().map(|(o, _)| o.epoch as f64).collect(),
        origin_counts: node.version_vector().iter().map(|(_, n)| n as f64).collect(),
    }
}

pub(crate) fn side_of(side: &str) -> Result<Side> {
    match side {
        "down" => Ok(Side::Down),
        "up" => Ok(Side::Up),
        other => Err(invalid(format!("side must be 'down' or 'up', got '{other}'"))),
    }
}

pub(crate) fn u128_arg(b: &BigInt, name: &str) -> Result<u128> {
    u128_of(b, name)
}

/// What a durable replicated kernel recovered from its log, numbering its
/// local facts until the protocol is attached (`sync()`), then handed to it.
pub(crate) struct SyncRecovery {
    /// This run: the node id and the new epoch.
    pub me: Origin,
    pub vv: ctfs_sync::VersionVector,
    pub store: ctfs_sync::store::FactStore,
}

impl SyncRecovery {
    /// Numbers a fact admitted here and keeps its record for peers.
    pub(crate) fn local_fact(&mut self, id: &FactId, deps: &[FactId], payload: &[u8]) -> (Origin, u64) {
        let seq = self.vv.advance(self.me);
        let mut rec = Vec::with_capacity(40 + deps.len() * 32 + payload.len());
        ctfs_sync::message::encode_fact(&mut rec, id, deps, payload);
        self.store.append(self.me, seq, &rec);
        (self.me, seq)
    }

    /// A logged fact seen on recovery.
    pub(crate) fn recovered(&mut self, origin: Origin, seq: u64, id: &FactId, deps: &[FactId], payload: &[u8]) {
        if seq <= self.vv.get(&origin) {
            return;
        }
        let mut rec = Vec::with_capacity(40 + deps.len() * 32 + payload.len());
        ctfs_sync::message::encode_fact(&mut rec, id, deps, payload);
        if !self.store.append(origin, seq, &rec) {
            // a gap (records before it were cut): restart the run here
            self.store.reset(origin, seq);
            self.store.append(origin, seq, &rec);
        }
        self.vv.set(origin, seq);
    }
}

/// Protocol bookkeeping of a durable replicated kernel.
#[derive(Default)]
pub(crate) struct DurableSync {
    /// (log seq, origin seq) of local facts not yet known durable.
    pub local: std::collections::VecDeque<(u64, u64)>,
    /// Own facts up to this origin seq are durable and may be pushed.
    pub durable_oseq: u64,
    /// Frames waiting for the log (quota grants).
    pub held: Vec<ctfs_sync::Outgoing>,
    /// Epoch of this run.
    pub epoch: u64,
}

impl DurableSync {
    /// Advances the pushable frontier to what the log made durable.
    pub(crate) fn advance(&mut self, durable_seq: u64) -> u64 {
        while let Some(&(wal, oseq)) = self.local.front() {
            if wal == 0 || wal > durable_seq {
                break;
            }
            self.durable_oseq = oseq;
            self.local.pop_front();
        }
        self.durable_oseq
    }
}

/// The replica section of a durable replicated kernel's checkpoint:
/// `epoch u64 | version vector | shares u16 | shares × (member u8, side u8,
/// total u128, quota u128, consumed u128, pinned u128)`.
pub(crate) fn encode_replica_section(epoch: u64, vv: &ctfs_sync::VersionVector, r: &Replication) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&epoch.to_le_bytes());
    vv.encode(&mut out);
    let shares = r.local_shares();
    out.extend_from_slice(&(shares.len() as u16).to_le_bytes());
    for (m, side, sh) in shares {
        out.push(m as u8);
        out.push(side_byte(side));
        for v in [sh.total, sh.quota, sh.consumed, sh.pinned] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// The inverse of [`encode_replica_section`]; restores the shares into `r`.
pub(crate) fn restore_replica_section(b: &[u8], r: &mut Replication) -> std::result::Result<(u64, ctfs_sync::VersionVector), String> {
    let (epoch, rest) = b.split_at_checked(8).ok_or("replica section: truncated")?;
    let epoch = u64::from_le_bytes(epoch.try_into().map_err(|_| "epoch")?);
    let (vv, rest) = ctfs_sync::VersionVector::decode(rest).map_err(|e| format!("replica section: {e}"))?;
    let (n, mut rest) = rest.split_at_checked(2).ok_or("replica section: truncated")?;
    let n = u16::from_le_bytes([n[0], n[1]]) as usize;
    for _ in 0..n {
        let (head, r2) = rest.split_at_checked(2 + 64).ok_or("replica section: truncated share")?;
        rest = r2;
        let side = side_from(head[1]).ok_or("replica section: bad side")?;
        let v = |i: usize| u128::from_le_bytes(head[2 + 16 * i..18 + 16 * i].try_into().unwrap_or([0; 16]));
        let share = ctfs_core::LocalShare { total: v(0), quota: v(1), consumed: v(2), pinned: v(3) };
        let pool = r.pool_mut(head[0] as usize, side).ok_or("replica section: a pool this kernel does not have")?;
        pool.restore_local(share).map_err(|e| e.to_string())?;
    }
    if !rest.is_empty() {
        return Err("replica section: trailing bytes".into());
    }
    Ok((epoch, vv))
}
