//! [`Node`]: one replica's side of the protocol, as a state machine.
//!
//! Inputs: a frame received ([`Node::handle_frame`]), a timer tick with the
//! current time ([`Node::tick`]), a fact admitted locally
//! ([`Node::local_fact`]), a quota shortfall ([`Node::need_quota`]).
//! Outputs: frames to send and events, appended to an [`Outbox`]. No
//! sockets, no threads, no clock, no randomness: the same inputs give the
//! same outputs, which is what lets the simulator replay any run.
//!
//! # The protocol
//!
//! * **Push.** Facts admitted here are numbered per origin and sent to every
//!   peer in batches ([`Node::flush`], at most `push_max_facts` per frame).
//! * **Delivery.** A received fact is admitted when its predecessor from
//!   the same origin and all its dependencies are here; otherwise it waits
//!   in the bounded [`CausalBuffer`] and is admitted the moment they arrive.
//! * **Anti-entropy.** Every `anti_entropy_ms` a replica sends each peer a
//!   *probe* (fact count, id digest, state digest: 128 bytes with the
//!   header and MAC). Equal → *match*, done: one round trip whatever the
//!   history. Different → the peer answers with a *summary* (its version
//!   vector, 24 bytes per origin), and each side sends the other exactly the
//!   facts its vector lacks: two round trips, bytes proportional to the
//!   difference.
//! * **Snapshot join.** An empty replica (new, or restarted without its
//!   memory) whose peer holds at least `snapshot_min_facts` asks for a
//!   snapshot instead; so does a replica told (by a *gap*) that the facts it
//!   needs predate the peer's own snapshot, once the peer holds everything it
//!   holds.
//! * **Escrow.** Quota requests and grants of the host's escrow pools travel
//!   as frames; a replica asks before it runs dry (low-water mark), and the
//!   escrow state machine makes grants idempotent and retries with backoff.

use std::collections::BTreeMap;

use ctfs_core::replica::Side;
use ctfs_core::{AdmitError, ErrorCode, FactId, GrantOutcome, NodeId};

use crate::buffer::{BufferLimits, CausalBuffer, Inserted};
use crate::frame::{self, FrameError, Kind, ReplayWindow, Sender};
use crate::host::Host;
use crate::message::{self, Chunk, Digests, FactsWriter, Summary, CHUNK_HEADER, GROUP_HEADER};
use crate::origin::{Origin, VersionVector};
use crate::snapshot::{self, Assembly};
use crate::store::FactStore;

/// Configuration of a [`Node`].
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// This replica's node id.
    pub local: NodeId,
    /// This run of the replica; must grow across restarts of the same node.
    pub epoch: u64,
    /// Every node of the cluster, this one included.
    pub nodes: Vec<NodeId>,
    /// The cluster key: keyed BLAKE3 MACs of every frame.
    pub key: [u8; 32],
    /// Identifies the cluster and the kernel configuration (invariant,
    /// mode...). Frames carry its first 8 bytes; a peer with another
    /// configuration is refused.
    pub config_id: [u8; 32],
    /// Largest frame sent or accepted (header, body and MAC). Default 1 MiB.
    pub max_frame_bytes: usize,
    /// Facts per pushed frame. Default 1,024.
    pub push_max_facts: usize,
    /// Limits of the causal buffer.
    pub buffer: BufferLimits,
    /// Period of anti-entropy probes, ms. Default 1,000.
    pub anti_entropy_ms: u64,
    /// Bytes of facts sent to one peer per anti-entropy round. Default 8 MiB.
    pub anti_entropy_max_bytes: usize,
    /// Ask for quota when the local share falls below this (None: a quarter
    /// of the initial share).
    pub quota_low_water: Option<u128>,
    /// How much to ask for (None: half of the initial share).
    pub quota_refill: Option<u128>,
    /// An empty replica joins by snapshot from a peer holding at least this
    /// many facts (`u64::MAX`: never). Default 10,000.
    pub snapshot_min_facts: u64,
    /// Largest snapshot accepted. Default 1 GiB.
    pub max_snapshot_bytes: u64,
    /// Snapshot chunks sent per tick to one peer. Default 16.
    pub snapshot_chunks_per_tick: usize,
    /// An unfinished incoming snapshot is abandoned after this long, ms.
    pub snapshot_timeout_ms: u64,
}

impl SyncConfig {
    pub fn new(local: NodeId, epoch: u64, nodes: Vec<NodeId>, key: [u8; 32], config_id: [u8; 32]) -> Self {
        SyncConfig {
            local,
            epoch,
            nodes,
            key,
            config_id,
            max_frame_bytes: frame::DEFAULT_MAX_FRAME,
            push_max_facts: 1024,
            buffer: BufferLimits::default(),
            anti_entropy_ms: 1000,
            anti_entropy_max_bytes: 8 << 20,
            quota_low_water: None,
            quota_refill: None,
            snapshot_min_facts: 10_000,
            max_snapshot_bytes: 1 << 30,
            snapshot_chunks_per_tick: 16,
            snapshot_timeout_ms: 30_000,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let mut nodes = self.nodes.clone();
        nodes.sort_unstable();
        if nodes.windows(2).any(|w| w[0] == w[1]) {
            return Err("nodes: duplicate node id".into());
        }
        if !nodes.contains(&self.local) {
            return Err(format!("nodes must include the local node {}", self.local));
        }
        if self.max_frame_bytes < 4096 || self.max_frame_bytes > (1 << 30) {
            return Err(format!("maxFrameBytes {} must be in [4096, 2^30]", self.max_frame_bytes));
        }
        if self.push_max_facts == 0 {
            return Err("pushMaxFacts must be at least 1".into());
        }
        if self.anti_entropy_ms == 0 {
            return Err("antiEntropyMs must be at least 1".into());
        }
        Ok(())
    }

    fn tag(&self) -> u64 {
        u64::from_le_bytes(self.config_id[..8].try_into().unwrap_or([0; 8]))
    }
}

/// Something the host may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Facts from peers admitted while handling one input.
    Admitted { from: NodeId, facts: u64 },
    /// This replica and `peer` hold the same facts (first time since a change).
    Synced { peer: NodeId },
    /// Same fact set, different state: a bug (or a non-deterministic custom
    /// invariant) — reported, never hidden.
    Diverged { peer: NodeId },
    /// A peer's fact that this kernel refused for a reason other than a
    /// missing dependency or duplicate (its sets may now differ).
    RemoteRefused { origin: Origin, seq: u64, code: ErrorCode, message: String },
    /// An authenticated peer runs another configuration (reported once).
    PeerConfigMismatch { peer: NodeId },
    QuotaReceived { member: u8, side: Side, from: NodeId, amount: u128 },
    QuotaDenied { member: u8, side: Side, from: NodeId },
    QuotaGaveUp { member: u8, side: Side, peer: NodeId },
    SnapshotInstalled { from: NodeId, facts: u64, bytes: u64 },
    SnapshotRefused { from: NodeId, reason: String },
}

/// A frame to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub to: NodeId,
    pub kind: Kind,
    pub bytes: Vec<u8>,
    /// Send only once the host's log is durable up to this sequence (0:
    /// now). Set on quota grants of durable hosts.
    pub hold_until: u64,
}

/// What one input produced.
#[derive(Clone, Debug, Default)]
pub struct Outbox {
    pub frames: Vec<Outgoing>,
    pub events: Vec<Event>,
}

impl Outbox {
    pub fn clear(&mut self) {
        self.frames.clear();
        self.events.clear();
    }
}

/// Per-peer counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub facts_in: u64,
    pub facts_out: u64,
}

/// Counters of a [`Node`].
#[derive(Clone, Debug, Default)]
pub struct SyncStats {
    /// Frames dropped, by [`FrameError::code`].
    pub dropped: BTreeMap<&'static str, u64>,
    pub facts_received: u64,
    pub facts_admitted: u64,
    /// Received facts already here (by origin sequence or id).
    pub facts_duplicate: u64,
    pub facts_buffered: u64,
    pub remote_refused: u64,
    /// Buffered facts released because no reachable peer holds what they
    /// wait for (see [`Node`] docs).
    pub facts_discarded: u64,
    pub facts_pushed: u64,
    pub push_frames: u64,
    pub probes_sent: u64,
    pub summaries_sent: u64,
    pub anti_entropy_facts_sent: u64,
    pub anti_entropy_bytes_sent: u64,
    /// Anti-entropy answers that shipped facts to a peer (repairs), as
    /// opposed to rounds that found nothing missing.
    pub anti_entropy_repairs: u64,
    pub quota_requests_sent: u64,
    pub quota_grants_sent: u64,
    pub snapshots_sent: u64,
    pub snapshots_installed: u64,
    pub snapshot_bytes_in: u64,
    pub peers: BTreeMap<NodeId, PeerStats>,
}

impl SyncStats {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

#[derive(Clone, Debug, Default)]
struct Link {
    up: bool,
    send_seq: u64,
    window: ReplayWindow,
    synced: bool,
    config_warned: bool,
    /// An outgoing snapshot: container, root, next offset.
    snapshot_out: Option<(Vec<u8>, [u8; 32], u64)>,
    /// Requester side: a snapshot was requested from this peer at (ms).
    snapshot_requested: Option<u64>,
}

/// One replica's protocol state. See the [module docs](self).
pub struct Node {
    cfg: SyncConfig,
    me: Origin,
    sender: Sender,
    peers: Vec<NodeId>,
    links: BTreeMap<NodeId, Link>,
    vv: VersionVector,
    store: FactStore,
    buffer: CausalBuffer,
    /// Own facts pushed so far (origin sequence).
    pushed: u64,
    /// Own facts that may be pushed (a durable host pushes only what is
    /// durable); `None`: all.
    push_limit: Option<u64>,
    next_probe_ms: u64,
    /// Origins whose buffered head may have become deliverable.
    wake: Vec<Origin>,
    /// Escrow: per pool, the next peer to ask (rotation).
    quota_rotation: BTreeMap<(usize, u8), usize>,
    incoming: Option<Assembly>,
    stats: SyncStats,
    scratch: Vec<u8>,
}

fn side_index(side: Side) -> u8 {
    match side {
        Side::Down => 0,
        Side::Up => 1,
    }
}

impl Node {
    pub fn new(cfg: SyncConfig) -> Result<Node, String> {
        cfg.validate()?;
        let me = Origin { node: cfg.local, epoch: cfg.epoch };
        let sender = Sender { config: cfg.tag(), node: cfg.local, epoch: cfg.epoch };
        let mut peers: Vec<NodeId> = cfg.nodes.iter().copied().filter(|n| *n != cfg.local).collect();
        peers.sort_unstable();
        let links = peers.iter().map(|p| (*p, Link { up: true, ..Link::default() })).collect();
        let stats = SyncStats { peers: peers.iter().map(|p| (*p, PeerStats::default())).collect(), ..SyncStats::default() };
        Ok(Node {
            buffer: CausalBuffer::new(cfg.buffer),
            cfg,
            me,
            sender,
            peers,
            links,
            vv: VersionVector::new(),
            store: FactStore::new(),
            pushed: 0,
            push_limit: None,
            next_probe_ms: 0,
            wake: Vec::new(),
            quota_rotation: BTreeMap::new(),
            incoming: None,
            stats,
            scratch: Vec::new(),
        })
    }

    /// A node that continues from a recovered state: the version vector and
    /// the records a durable host replayed from its log (their floors set
    /// where a checkpoint cut the log). Facts of earlier epochs reach peers
    /// by anti-entropy; this epoch's facts (admitted before the protocol was
    /// attached) are pushed.
    pub fn resume(cfg: SyncConfig, vv: VersionVector, store: FactStore) -> Result<Node, String> {
        let mut n = Node::new(cfg)?;
        n.vv = vv;
        n.store = store;
        Ok(n)
    }

    /// Limits pushes to own facts numbered up to `limit` (`None`: no limit).
    /// Durable hosts push a local fact only once it is durable, so that no
    /// peer ever holds a fact its origin could lose in a crash.
    pub fn set_push_limit(&mut self, limit: Option<u64>) {
        self.push_limit = limit;
    }

    pub fn config(&self) -> &SyncConfig {
        &self.cfg
    }

    pub fn origin(&self) -> Origin {
        self.me
    }

    pub fn peers(&self) -> &[NodeId] {
        &self.peers
    }

    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    pub fn buffer(&self) -> &CausalBuffer {
        &self.buffer
    }

    pub fn store(&self) -> &FactStore {
        &self.store
    }

    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Whether the last exchange with `peer` found the same facts (and
    /// nothing changed here since).
    pub fn is_synced(&self, peer: NodeId) -> bool {
        self.links.get(&peer).is_some_and(|l| l.synced)
    }

    /// Peers marked up.
    pub fn up_peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.links.iter().filter(|(_, l)| l.up).map(|(p, _)| *p)
    }

    /// The transport's view of a peer: frames are produced only for peers
    /// that are up. Coming up triggers an immediate probe on the next tick.
    pub fn set_peer_up(&mut self, peer: NodeId, up: bool) {
        if let Some(l) = self.links.get_mut(&peer) {
            if up && !l.up {
                self.next_probe_ms = 0;
            }
            l.up = up;
            if !up {
                l.synced = false;
                l.snapshot_out = None;
            }
        }
    }

    /// Makes the next [`tick`](Self::tick) probe every peer.
    pub fn probe_soon(&mut self) {
        self.next_probe_ms = 0;
    }

    fn changed(&mut self) {
        for l in self.links.values_mut() {
            l.synced = false;
        }
    }

    /// Records a fact admitted by this replica's kernel, to be pushed at
    /// the next [`flush`](Self::flush). Returns its origin sequence.
    pub fn local_fact(&mut self, id: &FactId, deps: &[FactId], payload: &[u8]) -> u64 {
        let seq = self.vv.advance(self.me);
        self.scratch.clear();
        message::encode_fact(&mut self.scratch, id, deps, payload);
        self.store.append(self.me, seq, &self.scratch);
        if let Some(origins) = self.buffer.wake(id) {
            self.wake.extend(origins);
        }
        self.changed();
        seq
    }

    /// Own facts not pushed yet.
    pub fn unpushed(&self) -> u64 {
        self.vv.get(&self.me).saturating_sub(self.pushed)
    }

    fn seal(&mut self, to: NodeId, kind: Kind, body: &[u8], out: &mut Outbox) {
        let Some(link) = self.links.get_mut(&to) else { return };
        link.send_seq += 1;
        let mut bytes = Vec::new();
        frame::seal(&self.cfg.key, &self.sender, to, link.send_seq, kind, body, &mut bytes);
        let ps = self.stats.peers.entry(to).or_default();
        ps.frames_out += 1;
        ps.bytes_out += bytes.len() as u64;
        out.frames.push(Outgoing { to, kind, bytes, hold_until: 0 });
    }

    fn fact_budget(&self) -> usize {
        self.cfg.max_frame_bytes - frame::OVERHEAD - 2 - GROUP_HEADER
    }

    /// Pushes every own fact not pushed yet to every peer that is up, in
    /// frames of at most `push_max_facts`.
    pub fn flush(&mut self, out: &mut Outbox) {
        let mut newest = self.vv.get(&self.me);
        if let Some(limit) = self.push_limit {
            newest = newest.min(limit);
        }
        while self.pushed < newest {
            let from = self.pushed + 1;
            let most = self.cfg.push_max_facts.min((newest - self.pushed) as usize);
            let (records, n) = self.store.run(&self.me, from, most, self.fact_budget());
            if n == 0 {
                // not in the store (cannot happen for own facts): skip them
                self.pushed = newest;
                break;
            }
            let mut w = FactsWriter::new();
            w.begin(self.me, from);
            w.records(records, n);
            let body = w.finish();
            self.pushed += n as u64;
            self.stats.facts_pushed += n as u64;
            self.stats.push_frames += 1;
            let targets: Vec<NodeId> = self.up_peers().collect();
            for p in targets {
                self.stats.peers.entry(p).or_default().facts_out += n as u64;
                self.seal(p, Kind::Facts, &body, out);
            }
        }
    }

    fn digests<H: Host>(&self, host: &H) -> Digests {
        Digests { count: host.fact_count(), ids: host.id_digest(), state: host.state_digest() }
    }

    /// Timers: pushes pending facts, probes peers every `anti_entropy_ms`,
    /// retries quota requests, asks for quota below the low-water mark,
    /// sends snapshot chunks, and delivers facts woken by local admissions.
    pub fn tick<H: Host>(&mut self, host: &mut H, now_ms: u64, out: &mut Outbox) {
        self.deliver_woken(host, self.cfg.local, out);
        self.flush(out);
        if now_ms >= self.next_probe_ms {
            self.next_probe_ms = now_ms + self.cfg.anti_entropy_ms;
            let d = self.digests(host);
            let mut body = Vec::with_capacity(message::DIGESTS_LEN);
            d.encode(&mut body);
            let targets: Vec<NodeId> = self.up_peers().collect();
            for p in targets {
                self.stats.probes_sent += 1;
                self.seal(p, Kind::Probe, &body, out);
            }
        }
        self.escrow_tick(host, now_ms, out);
        self.snapshot_tick(now_ms, out);
    }

    /// Handles one received frame. `Err` says why it was dropped (also
    /// counted in [`SyncStats::dropped`]); nothing was admitted then.
    pub fn handle_frame<H: Host>(&mut self, host: &mut H, bytes: &[u8], now_ms: u64, out: &mut Outbox) -> Result<(NodeId, Kind), FrameError> {
        let r = self.handle_inner(host, bytes, now_ms, out);
        if let Err(e) = &r {
            *self.stats.dropped.entry(e.code()).or_default() += 1;
        }
        r
    }

    fn handle_inner<H: Host>(&mut self, host: &mut H, bytes: &[u8], now_ms: u64, out: &mut Outbox) -> Result<(NodeId, Kind), FrameError> {
        let (h, body) = frame::open(&self.cfg.key, self.cfg.local, self.cfg.max_frame_bytes, bytes)?;
        let peer = h.sender;
        let link = self.links.get_mut(&peer).ok_or(FrameError::UnknownSender)?;
        if h.config != self.sender.config {
            if !link.config_warned {
                link.config_warned = true;
                out.events.push(Event::PeerConfigMismatch { peer });
            }
            return Err(FrameError::ConfigMismatch);
        }
        if !link.window.accept(h.epoch, h.seq) {
            return Err(FrameError::Replayed);
        }
        let ps = self.stats.peers.entry(peer).or_default();
        ps.frames_in += 1;
        ps.bytes_in += bytes.len() as u64;
        match h.kind {
            Kind::Facts => {
                let groups = message::decode_facts(body).map_err(FrameError::Malformed)?;
                let before = self.stats.facts_admitted;
                for g in &groups {
                    self.stats.peers.entry(peer).or_default().facts_in += g.count as u64;
                    for (i, f) in g.facts().enumerate() {
                        self.offer(host, g.origin, g.first + i as u64, f.record, out);
                    }
                }
                self.deliver_woken(host, peer, out);
                let facts = self.stats.facts_admitted - before;
                if facts > 0 {
                    out.events.push(Event::Admitted { from: peer, facts });
                }
            }
            Kind::Probe => {
                let theirs = message::decode_exact_digests(body).map_err(FrameError::Malformed)?;
                self.on_probe(host, peer, theirs, now_ms, out);
            }
            Kind::Match => {
                let theirs = message::decode_exact_digests(body).map_err(FrameError::Malformed)?;
                let mine = self.digests(host);
                self.note_match(peer, &mine, &theirs, out);
            }
            Kind::Summary => {
                let s = Summary::decode(body).map_err(FrameError::Malformed)?;
                self.on_summary(host, peer, s, out);
            }
            Kind::Gap => {
                let theirs = message::decode_exact_vv(body).map_err(FrameError::Malformed)?;
                if self.vv.dominated_by(&theirs) {
                    self.request_snapshot(peer, now_ms, out);
                }
            }
            Kind::QuotaRequest => {
                let (member, side, req) = message::decode_quota_request(body).map_err(FrameError::Malformed)?;
                if req.from != peer || req.to != self.cfg.local {
                    return Err(FrameError::Malformed("quota request: addressed to another pair of nodes"));
                }
                let pool = host
                    .replication()
                    .and_then(|r| r.pool_mut(member as usize, side))
                    .ok_or(FrameError::Malformed("quota request for a pool this kernel does not have"))?;
                let issued = pool.stats().grants_issued;
                let grant = pool.on_request(&req).map_err(|_| FrameError::Malformed("quota request refused by the escrow"))?;
                let fresh = pool.stats().grants_issued > issued;
                let hold = if grant.amount > 0 {
                    // a fresh grant debits now; a repeated one was debited earlier
                    // and may still be in flight to the log: wait for either
                    if fresh { host.grant_issued(member as usize, side, grant.amount) } else { host.grant_issued(member as usize, side, 0) }
                } else {
                    None
                };
                let mut b = Vec::new();
                message::encode_quota_grant(member, side, &grant, &mut b);
                self.stats.quota_grants_sent += 1;
                self.seal(peer, Kind::QuotaGrant, &b, out);
                if let (Some(seq), Some(last)) = (hold, out.frames.last_mut()) {
                    last.hold_until = seq;
                }
            }
            Kind::QuotaGrant => {
                let (member, side, grant) = message::decode_quota_grant(body).map_err(FrameError::Malformed)?;
                if grant.from != peer || grant.to != self.cfg.local {
                    return Err(FrameError::Malformed("quota grant: addressed to another pair of nodes"));
                }
                let outcome = host
                    .replication()
                    .and_then(|r| r.pool_mut(member as usize, side))
                    .ok_or(FrameError::Malformed("quota grant for a pool this kernel does not have"))?
                    .on_grant(&grant, now_ms)
                    .map_err(|_| FrameError::Malformed("quota grant refused by the escrow"))?;
                match outcome {
                    GrantOutcome::Applied { amount } | GrantOutcome::AppliedLate { amount } => {
                        host.grant_received(member as usize, side, amount);
                        out.events.push(Event::QuotaReceived { member, side, from: peer, amount })
                    }
                    GrantOutcome::Denied => out.events.push(Event::QuotaDenied { member, side, from: peer }),
                    GrantOutcome::Ignored => {}
                }
            }
            Kind::SnapshotRequest => {
                if !body.is_empty() {
                    return Err(FrameError::Malformed("snapshot request with a body"));
                }
                self.serve_snapshot(host, peer);
            }
            Kind::SnapshotChunk => {
                let c = Chunk::decode(body).map_err(FrameError::Malformed)?;
                self.on_chunk(host, peer, c, now_ms, out);
            }
        }
        Ok((peer, h.kind))
    }

    // ------------------------------------------------------------ delivery

    /// A fact of `origin` numbered `seq` arrived.
    fn offer<H: Host>(&mut self, host: &mut H, origin: Origin, seq: u64, record: &[u8], out: &mut Outbox) {
        self.stats.facts_received += 1;
        let have = self.vv.get(&origin);
        if seq <= have {
            self.stats.facts_duplicate += 1;
            return;
        }
        if seq > have + 1 {
            self.park(origin, seq, record);
            return;
        }
        if self.try_admit(host, origin, seq, record, out) {
            self.drain(host, origin, out);
        } else {
            self.park(origin, seq, record);
        }
    }

    fn park(&mut self, origin: Origin, seq: u64, record: &[u8]) {
        match self.buffer.insert(origin, seq, record) {
            Inserted::Stored { .. } => self.stats.facts_buffered += 1,
            Inserted::Duplicate => self.stats.facts_duplicate += 1,
            Inserted::Refused => {}
        }
    }

    /// Admits the next fact of `origin` (which must be `vv[origin] + 1`).
    /// False when it must wait for a dependency (registered in the buffer).
    fn try_admit<H: Host>(&mut self, host: &mut H, origin: Origin, seq: u64, record: &[u8], out: &mut Outbox) -> bool {
        let Ok(rec) = ctfs_core::batch::parse_record(record, 0) else { return false };
        let (Some(id), Some(deps)) =
            (FactId::from_slice(&record[rec.id..rec.deps]), FactId::slice_from_bytes(&record[rec.deps..rec.payload]))
        else {
            return false;
        };
        let payload = &record[rec.payload..rec.end];
        match host.admit_merge(&id, deps, payload, origin, seq) {
            Ok(()) => {
                self.stats.facts_admitted += 1;
                if let Some(origins) = self.buffer.wake(&id) {
                    self.wake.extend(origins);
                }
            }
            Err(AdmitError::DuplicateFact { .. }) => self.stats.facts_duplicate += 1,
            Err(AdmitError::CausalityViolation { missing, .. }) => {
                self.buffer.block(missing, origin);
                return false;
            }
            Err(e) => {
                self.stats.remote_refused += 1;
                out.events.push(Event::RemoteRefused { origin, seq, code: e.code(), message: e.to_string() });
            }
        }
        self.vv.set(origin, seq);
        self.store.append(origin, seq, record);
        // a copy that waited here earlier is settled too
        let _ = self.buffer.take(origin, seq);
        self.changed();
        true
    }

    /// Delivers `origin`'s buffered facts while they are next in line.
    fn drain<H: Host>(&mut self, host: &mut H, origin: Origin, out: &mut Outbox) {
        loop {
            let next = self.vv.get(&origin) + 1;
            let Some(rec) = self.buffer.take(origin, next) else { return };
            if !self.try_admit(host, origin, next, &rec, out) {
                self.buffer.put_back(origin, next, rec);
                return;
            }
        }
    }

    fn deliver_woken<H: Host>(&mut self, host: &mut H, from: NodeId, out: &mut Outbox) {
        let before = self.stats.facts_admitted;
        while let Some(o) = self.wake.pop() {
            self.drain(host, o, out);
        }
        let facts = self.stats.facts_admitted - before;
        if facts > 0 && from != self.cfg.local {
            out.events.push(Event::Admitted { from, facts });
        }
    }

    // ------------------------------------------------------- anti-entropy

    fn on_probe<H: Host>(&mut self, host: &mut H, peer: NodeId, theirs: Digests, now_ms: u64, out: &mut Outbox) {
        let mine = self.digests(host);
        let mut body = Vec::new();
        if theirs.same_facts(&mine) {
            mine.encode(&mut body);
            self.seal(peer, Kind::Match, &body, out);
            self.note_match(peer, &mine, &theirs, out);
            return;
        }
        if let Some(l) = self.links.get_mut(&peer) {
            l.synced = false;
        }
        if mine.count == 0 && theirs.count >= self.cfg.snapshot_min_facts && self.incoming.is_none() {
            let requested = self.links.get(&peer).and_then(|l| l.snapshot_requested);
            if requested.is_none_or(|t| now_ms >= t + self.cfg.snapshot_timeout_ms) {
                self.request_snapshot(peer, now_ms, out);
                return;
            }
        }
        Summary { ask: true, digests: mine, vv: self.vv.clone() }.encode(&mut body);
        self.stats.summaries_sent += 1;
        self.seal(peer, Kind::Summary, &body, out);
    }

    fn note_match(&mut self, peer: NodeId, mine: &Digests, theirs: &Digests, out: &mut Outbox) {
        if !theirs.same_facts(mine) {
            return;
        }
        if theirs.state != mine.state {
            out.events.push(Event::Diverged { peer });
            return;
        }
        if let Some(l) = self.links.get_mut(&peer)
            && !l.synced
        {
            l.synced = true;
            out.events.push(Event::Synced { peer });
        }
        // Every reachable peer holds exactly what this replica holds: what
        // still waits here can only be the tail of a run that nobody holds
        // the start of (an origin that crashed mid-push). Release it; should
        // the missing start ever reappear, anti-entropy brings the rest.
        if !self.buffer.is_empty() && self.links.values().all(|l| l.synced || !l.up) {
            self.stats.facts_discarded += self.buffer.len() as u64;
            self.buffer.clear();
        }
    }

    fn on_summary<H: Host>(&mut self, host: &mut H, peer: NodeId, s: Summary, out: &mut Outbox) {
        let mine = self.digests(host);
        if s.digests.same_facts(&mine) {
            let mut body = Vec::new();
            mine.encode(&mut body);
            self.seal(peer, Kind::Match, &body, out);
            self.note_match(peer, &mine, &s.digests, out);
            return;
        }
        let gap = self.ship(peer, &s.vv, out);
        if gap {
            let mut body = Vec::new();
            self.vv.encode(&mut body);
            self.seal(peer, Kind::Gap, &body, out);
        }
        if s.ask && self.vv.missing_from(&s.vv) > 0 {
            let mut body = Vec::new();
            Summary { ask: false, digests: mine, vv: self.vv.clone() }.encode(&mut body);
            self.stats.summaries_sent += 1;
            self.seal(peer, Kind::Summary, &body, out);
        }
    }

    /// Sends `peer` the facts its vector lacks, up to the round's byte
    /// budget. True when some needed facts are below this store's floor.
    fn ship(&mut self, peer: NodeId, theirs: &VersionVector, out: &mut Outbox) -> bool {
        let budget = self.fact_budget();
        let mut round_bytes = 0usize;
        let mut gap = false;
        let mut w = FactsWriter::new();
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let wants: Vec<(Origin, u64, u64)> =
            self.vv.iter().filter_map(|(o, mine)| (mine > theirs.get(&o)).then(|| (o, theirs.get(&o) + 1, mine))).collect();
        'origins: for (o, mut from, upto) in wants {
            if !self.store.has(&o, from) {
                gap = true;
                continue;
            }
            while from <= upto {
                if round_bytes >= self.cfg.anti_entropy_max_bytes {
                    break 'origins;
                }
                let room = budget.saturating_sub(w.len());
                let (records, n) = self.store.run(&o, from, usize::MAX, room.max(1));
                if n == 0 {
                    break;
                }
                if w.len() + GROUP_HEADER + records.len() > budget && !w.is_empty() {
                    frames.push(std::mem::take(&mut w).finish());
                    w = FactsWriter::new();
                    continue;
                }
                w.begin(o, from);
                w.records(records, n);
                self.stats.anti_entropy_facts_sent += n as u64;
                self.stats.peers.entry(peer).or_default().facts_out += n as u64;
                round_bytes += records.len();
                from += n as u64;
            }
        }
        if !w.is_empty() {
            frames.push(w.finish());
        }
        if !frames.is_empty() {
            self.stats.anti_entropy_repairs += 1;
        }
        for body in frames {
            self.stats.anti_entropy_bytes_sent += (body.len() + frame::OVERHEAD) as u64;
            self.seal(peer, Kind::Facts, &body, out);
        }
        gap
    }

    // ------------------------------------------------------------- escrow

    fn share_targets(pool: &ctfs_core::EscrowManager, cfg: &SyncConfig) -> (u128, u128) {
        let n = pool.nodes().count().max(1) as u128;
        let share = pool.total() / n;
        let low = cfg.quota_low_water.unwrap_or(share / 4).max(1);
        let refill = cfg.quota_refill.unwrap_or(share / 2).max(1);
        (low, refill)
    }

    fn escrow_tick<H: Host>(&mut self, host: &mut H, now_ms: u64, out: &mut Outbox) {
        let Some(r) = host.replication() else { return };
        let pools: Vec<(usize, Side)> = r.pools().map(|(m, s, _)| (m, s)).collect();
        for (member, side) in pools {
            let Some(pool) = r.pool_mut(member, side) else { continue };
            let poll = pool.poll(now_ms);
            for req in poll.resend {
                let mut b = Vec::new();
                message::encode_quota_request(member as u8, side, &req, &mut b);
                self.stats.quota_requests_sent += 1;
                self.seal(req.to, Kind::QuotaRequest, &b, out);
            }
            for req in poll.gave_up {
                out.events.push(Event::QuotaGaveUp { member: member as u8, side, peer: req.to });
            }
            let (low, refill) = Self::share_targets(pool, &self.cfg);
            let available = pool.local().and_then(|l| pool.available(l)).unwrap_or(0);
            if available < low && pool.pending_len() == 0 {
                self.ask_quota(pool, member, side, refill, now_ms, out);
            }
        }
    }

    fn ask_quota(&mut self, pool: &mut ctfs_core::EscrowManager, member: usize, side: Side, amount: u128, now_ms: u64, out: &mut Outbox) -> bool {
        let up: Vec<NodeId> = self.up_peers().collect();
        if up.is_empty() {
            return false;
        }
        let key = (member, side_index(side));
        let start = *self.quota_rotation.get(&key).unwrap_or(&0);
        for i in 0..up.len() {
            let peer = up[(start + i) % up.len()];
            if let Ok(Some(req)) = pool.request_quota(peer, amount, now_ms) {
                self.quota_rotation.insert(key, start + i + 1);
                let mut b = Vec::new();
                message::encode_quota_request(member as u8, side, &req, &mut b);
                self.stats.quota_requests_sent += 1;
                self.seal(peer, Kind::QuotaRequest, &b, out);
                return true;
            }
        }
        false
    }

    /// A local admission was refused for lack of quota (`amount` more was
    /// needed on `member`'s `side`): asks a peer now. Returns whether a
    /// request was sent (false: one is pending, peers are backing off, or
    /// no peer is up).
    pub fn need_quota<H: Host>(&mut self, host: &mut H, member: usize, side: Side, amount: u128, now_ms: u64, out: &mut Outbox) -> bool {
        let Some(pool) = host.replication().and_then(|r| r.pool_mut(member, side)) else { return false };
        let (_, refill) = Self::share_targets(pool, &self.cfg);
        self.ask_quota(pool, member, side, amount.max(refill), now_ms, out)
    }

    // ----------------------------------------------------------- snapshots

    fn request_snapshot(&mut self, peer: NodeId, now_ms: u64, out: &mut Outbox) {
        if self.incoming.is_some() {
            return;
        }
        if let Some(l) = self.links.get_mut(&peer) {
            if l.snapshot_requested.is_some_and(|t| now_ms < t + self.cfg.snapshot_timeout_ms) {
                return;
            }
            l.snapshot_requested = Some(now_ms);
        }
        self.seal(peer, Kind::SnapshotRequest, &[], out);
    }

    fn serve_snapshot<H: Host>(&mut self, host: &mut H, peer: NodeId) {
        let Some(l) = self.links.get(&peer) else { return };
        if l.snapshot_out.is_some() {
            return;
        }
        let Ok(sections) = host.snapshot() else { return };
        let container = snapshot::encode(&self.cfg.config_id, &self.vv, &sections);
        let root = *blake3::hash(&container).as_bytes();
        if let Some(l) = self.links.get_mut(&peer) {
            l.snapshot_out = Some((container, root, 0));
        }
        self.stats.snapshots_sent += 1;
    }

    fn snapshot_tick(&mut self, now_ms: u64, out: &mut Outbox) {
        if self.incoming.as_ref().is_some_and(|a| now_ms >= a.started_ms + self.cfg.snapshot_timeout_ms) {
            self.incoming = None;
        }
        let chunk = self.cfg.max_frame_bytes - frame::OVERHEAD - CHUNK_HEADER;
        let peers: Vec<NodeId> = self.links.iter().filter(|(_, l)| l.snapshot_out.is_some()).map(|(p, _)| *p).collect();
        for p in peers {
            for _ in 0..self.cfg.snapshot_chunks_per_tick {
                let Some(l) = self.links.get_mut(&p) else { break };
                let Some((container, root, offset)) = l.snapshot_out.as_mut() else { break };
                let start = *offset as usize;
                let end = (start + chunk).min(container.len());
                let mut body = Vec::with_capacity(CHUNK_HEADER + end - start);
                Chunk { root: *root, total: container.len() as u64, offset: start as u64, data: &container[start..end] }.encode(&mut body);
                *offset = end as u64;
                if end >= container.len() {
                    l.snapshot_out = None;
                }
                self.seal(p, Kind::SnapshotChunk, &body, out);
            }
        }
    }

    fn on_chunk<H: Host>(&mut self, host: &mut H, peer: NodeId, c: Chunk<'_>, now_ms: u64, out: &mut Outbox) {
        // Only snapshots this replica asked for, from the peer it asked.
        if self.links.get(&peer).is_none_or(|l| l.snapshot_requested.is_none()) {
            return;
        }
        if c.total > self.cfg.max_snapshot_bytes {
            out.events.push(Event::SnapshotRefused { from: peer, reason: format!("snapshot of {} bytes exceeds the limit", c.total) });
            self.finish_snapshot(peer);
            return;
        }
        let fresh = self.incoming.as_ref().is_none_or(|a| a.from != peer || a.root != c.root || a.total() != c.total);
        if fresh {
            self.incoming = Some(Assembly::new(peer, c.root, c.total, now_ms));
        }
        let Some(a) = self.incoming.as_mut() else { return };
        self.stats.snapshot_bytes_in += c.data.len() as u64;
        if !a.add(c.offset, c.data) {
            return;
        }
        let a = self.incoming.take();
        self.finish_snapshot(peer);
        let Some(a) = a else { return };
        match a.verified() {
            Some(container) => {
                if let Err(reason) = self.install(host, container) {
                    out.events.push(Event::SnapshotRefused { from: peer, reason });
                } else {
                    out.events.push(Event::SnapshotInstalled { from: peer, facts: host.fact_count(), bytes: a.total() });
                    self.deliver_woken(host, peer, out);
                }
            }
            None => out.events.push(Event::SnapshotRefused { from: peer, reason: "snapshot hash does not match its root".into() }),
        }
    }

    fn finish_snapshot(&mut self, peer: NodeId) {
        if let Some(l) = self.links.get_mut(&peer) {
            l.snapshot_requested = None;
        }
    }

    fn install<H: Host>(&mut self, host: &mut H, container: &[u8]) -> Result<(), String> {
        let (config, vv, sections) = snapshot::decode(container)?;
        if config != self.cfg.config_id {
            return Err("the snapshot was taken under another cluster configuration".into());
        }
        if !self.vv.dominated_by(&vv) {
            return Err("the snapshot lacks facts this replica holds".into());
        }
        host.install_snapshot(sections)?;
        for (o, s) in vv.iter() {
            if s > self.vv.get(&o) {
                self.store.reset(o, s + 1);
                self.buffer.drop_upto(o, s);
            }
        }
        self.vv = vv;
        self.buffer.clear_blocked();
        self.wake.extend(self.buffer.origins());
        self.stats.snapshots_installed += 1;
        self.changed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Replicated;
    use ctfs_core::invariants::Builtin;
    use ctfs_core::{CausalityMode, EscrowConfig, KernelConfig, Multi};

    type R = Replicated<Multi<Builtin>>;

    fn pair() -> [(R, Node); 2] {
        [1, 2].map(|local| {
            let h = Replicated::new(Multi::single(Builtin::g_counter(0)), KernelConfig::new(CausalityMode::Exact), &[1, 2], local, EscrowConfig::default())
                .unwrap();
            (h, Node::new(SyncConfig::new(local, 1, vec![1, 2], [3; 32], [4; 32])).unwrap())
        })
    }

    fn fid(n: u64) -> FactId {
        FactId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    #[test]
    fn push_limit_holds_back_facts_until_allowed() {
        let [(mut ha, mut a), (mut hb, mut b)] = pair();
        for i in 0..10 {
            ha.admit_local(Some(&fid(i)), &[], &1u64.to_le_bytes()).unwrap();
            a.local_fact(&fid(i), &[], &1u64.to_le_bytes());
        }
        a.set_push_limit(Some(4));
        let mut out = Outbox::default();
        a.flush(&mut out);
        for f in out.frames.drain(..) {
            b.handle_frame(&mut hb, &f.bytes, 0, &mut Outbox::default()).unwrap();
        }
        assert_eq!(hb.fact_count(), 4);
        assert_eq!(a.unpushed(), 6);
        a.set_push_limit(None);
        a.flush(&mut out);
        for f in out.frames.drain(..) {
            b.handle_frame(&mut hb, &f.bytes, 0, &mut Outbox::default()).unwrap();
        }
        assert_eq!(hb.fact_count(), 10);
    }

    #[test]
    fn a_resumed_node_pushes_its_epoch_and_keeps_its_vector() {
        let [(mut ha, a), (mut hb, mut b)] = pair();
        // what a durable host recovered: 3 facts of an earlier epoch and 2 of this one
        let old = Origin { node: 1, epoch: 0 };
        let mut vv = VersionVector::new();
        let mut store = FactStore::new();
        for (o, n) in [(old, 3u64), (a.origin(), 2)] {
            for s in 1..=n {
                let id = fid(o.epoch * 100 + s);
                let mut rec = Vec::new();
                message::encode_fact(&mut rec, &id, &[], &1u64.to_le_bytes());
                store.append(o, s, &rec);
                ha.kernel.admit(&id, &[], &1u64.to_le_bytes()).unwrap();
            }
            vv.set(o, n);
        }
        let cfg = a.config().clone();
        let mut a = Node::resume(cfg, vv.clone(), store).unwrap();
        assert_eq!(a.version_vector(), &vv);
        assert_eq!(a.unpushed(), 2, "this epoch's facts are pushed");
        // anti-entropy brings the earlier epoch's facts
        let mut out = Outbox::default();
        a.flush(&mut out);
        a.tick(&mut ha, 0, &mut out);
        b.tick(&mut hb, 0, &mut out);
        for _ in 0..6 {
            let frames = std::mem::take(&mut out.frames);
            for f in frames {
                let (h, n) = if f.to == 1 { (&mut ha, &mut a) } else { (&mut hb, &mut b) };
                let _ = n.handle_frame(h, &f.bytes, 0, &mut out);
            }
        }
        assert_eq!(hb.fact_count(), 5);
        assert_eq!(b.version_vector(), &vv);
    }
}
