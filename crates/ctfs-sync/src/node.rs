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
//! * **Broadcast** (a message bus with a stream, e.g. NATS JetStream;
//!   [`Node::set_broadcast`]). Own facts are pushed once, as
//!   [`Kind::Broadcast`] frames that every member verifies, whether or not a
//!   peer is up: the stream keeps them for replicas that are away. Peers that
//!   read the stream get no point-to-point push. A received broadcast frame
//!   must hold its sender's own facts only; it has no replay window (a stream
//!   replays by design; facts are idempotent). While a replica reads a
//!   backlog from the stream ([`Node::set_catching_up`]), it does not ask
//!   peers for facts (no summary in answer to a probe): the stream brings
//!   them, and asking would make peers ship them a second time.

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
    /// An incoming snapshot that receives no chunk for this long is
    /// abandoned and asked for again at the next exchange, ms: a chunk was
    /// lost (frames queued on a connection that was replaced, an
    /// at-most-once transport), so waiting for `snapshot_timeout_ms` would
    /// only delay the join. Default 5,000.
    pub snapshot_stall_ms: u64,
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
            snapshot_stall_ms: 5_000,
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
    /// Facts from peers the host could not take yet (its log's queue was
    /// full, or the log failed): not received, kept and retried at the next
    /// tick (anti-entropy brings them again if they are evicted).
    pub facts_deferred: u64,
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
    /// Broadcast frames sealed (each carries up to `push_max_facts` own facts).
    pub broadcast_frames: u64,
    pub broadcast_bytes: u64,
    /// Probes left without a summary because this replica was catching up
    /// from a stream (the stream brings the difference).
    pub asks_held: u64,
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
    /// When this replica last sent the peer a summary asking for what it
    /// lacks (ms): the peer is shipping it, so a second request crossing it
    /// would only make the peer ship the same facts again.
    asked_at: Option<u64>,
    /// Bytes the transport can take for this peer now (`None`: no limit).
    /// Every frame sealed for the peer uses it up; bulk transfers
    /// (anti-entropy rounds, snapshot chunks) stop where it ends instead of
    /// producing frames a bounded send queue would drop.
    budget: Option<usize>,
    /// The peer reads this replica's broadcast frames (from a stream): in
    /// broadcast mode, pushes are not sent to it point-to-point.
    streamed: bool,
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
    /// Origins whose next fact the host refused for now (a full log queue):
    /// retried at the next tick.
    retry: Vec<Origin>,
    /// Escrow: per pool, the next peer to ask (rotation).
    quota_rotation: BTreeMap<(usize, u8), usize>,
    incoming: Option<Assembly>,
    /// Push own facts as broadcast frames (see the module docs).
    broadcast: bool,
    /// Bytes the stream can take now (`None`: no limit).
    broadcast_budget: Option<usize>,
    /// Reading a backlog from the stream: no asking peers for facts.
    catching_up: bool,
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
            retry: Vec::new(),
            quota_rotation: BTreeMap::new(),
            incoming: None,
            broadcast: false,
            broadcast_budget: None,
            catching_up: false,
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

    /// How many bytes the transport can queue for `peer` right now (`None`:
    /// no limit, the default). Anti-entropy rounds and snapshot chunks for
    /// that peer stay within it (a chunk that does not fit waits for a later
    /// tick); pushes, probes and quota messages are never held back by it. A
    /// host with bounded send queues sets it before each input, from the
    /// room left in the peer's queue.
    pub fn set_send_budget(&mut self, peer: NodeId, bytes: Option<usize>) {
        if let Some(l) = self.links.get_mut(&peer) {
            l.budget = bytes;
        }
    }

    /// Broadcast mode (see the module docs): own facts are pushed as
    /// [`Kind::Broadcast`] frames (addressed to [`frame::BROADCAST`]) whether
    /// or not a peer is up, and `streamed` peers (those reading the stream)
    /// get no point-to-point push. Other peers (reached by another transport)
    /// still get pushes. `false`: back to point-to-point pushes to every peer.
    pub fn set_broadcast(&mut self, enabled: bool, streamed: &[NodeId]) {
        self.broadcast = enabled;
        for (p, l) in self.links.iter_mut() {
            l.streamed = enabled && streamed.contains(p);
        }
    }

    /// Whether own facts are pushed as broadcast frames.
    pub fn broadcasting(&self) -> bool {
        self.broadcast
    }

    /// How many bytes the stream can take now (`None`: no limit). In
    /// broadcast mode a push waits (its facts stay unpushed) until its frame
    /// fits: nothing is sealed that the transport would have to drop.
    pub fn set_broadcast_budget(&mut self, bytes: Option<usize>) {
        self.broadcast_budget = bytes;
    }

    /// The replica is reading a backlog from a stream (`true`) or has read
    /// all of it (`false`). While catching up, a probe that finds a
    /// difference gets no summary: the stream brings the facts, and asking
    /// would make the peer ship them a second time. Facts this replica holds
    /// and a peer lacks still go to the peer when the peer asks.
    pub fn set_catching_up(&mut self, catching_up: bool) {
        self.catching_up = catching_up;
    }

    /// The room left for bulk frames to `peer` (`usize::MAX`: no limit).
    fn room(&self, peer: NodeId) -> usize {
        self.links.get(&peer).and_then(|l| l.budget).unwrap_or(usize::MAX)
    }

    /// Makes the next [`tick`](Self::tick) probe every peer, and forgets
    /// which peers were in sync: [`is_synced`](Self::is_synced) (and the
    /// [`Event::Synced`] that comes with it) is true again only after an
    /// exchange that starts now. A host waiting for convergence calls this
    /// first, so that a match seen before its call cannot answer it (the
    /// peer may have admitted facts since).
    pub fn probe_soon(&mut self) {
        self.next_probe_ms = 0;
        self.changed();
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
        if let Some(b) = link.budget.as_mut() {
            *b = b.saturating_sub(bytes.len());
        }
        let ps = self.stats.peers.entry(to).or_default();
        ps.frames_out += 1;
        ps.bytes_out += bytes.len() as u64;
        out.frames.push(Outgoing { to, kind, bytes, hold_until: 0 });
    }

    fn fact_budget(&self) -> usize {
        self.cfg.max_frame_bytes - frame::OVERHEAD - 2 - GROUP_HEADER
    }

    /// Pushes every own fact not pushed yet to every peer that is up, in
    /// frames of at most `push_max_facts` (in broadcast mode: as broadcast
    /// frames, within the stream's budget, plus point-to-point frames to the
    /// peers that do not read the stream).
    pub fn flush(&mut self, out: &mut Outbox) {
        let mut newest = self.vv.get(&self.me);
        if let Some(limit) = self.push_limit {
            newest = newest.min(limit);
        }
        const FRAME_COST: usize = frame::OVERHEAD + 2 + GROUP_HEADER;
        while self.pushed < newest {
            let from = self.pushed + 1;
            let most = self.cfg.push_max_facts.min((newest - self.pushed) as usize);
            let mut max_bytes = self.fact_budget();
            let room = if self.broadcast { self.broadcast_budget.map(|b| b.saturating_sub(FRAME_COST)) } else { None };
            if let Some(room) = room {
                if room == 0 {
                    break; // the stream cannot take a frame now: a later flush pushes
                }
                max_bytes = max_bytes.min(room);
            }
            let (records, n) = self.store.run(&self.me, from, most, max_bytes);
            if n == 0 {
                // not in the store (cannot happen for own facts): skip them
                self.pushed = newest;
                break;
            }
            if room.is_some_and(|room| records.len() > room) {
                break; // one fact larger than the room left
            }
            let mut w = FactsWriter::new();
            w.begin(self.me, from);
            w.records(records, n);
            let body = w.finish();
            self.pushed += n as u64;
            self.stats.facts_pushed += n as u64;
            self.stats.push_frames += 1;
            if self.broadcast {
                let mut bytes = Vec::with_capacity(body.len() + frame::OVERHEAD);
                frame::seal_broadcast(&self.cfg.key, &self.sender, from, &body, &mut bytes);
                if let Some(b) = self.broadcast_budget.as_mut() {
                    *b = b.saturating_sub(bytes.len());
                }
                self.stats.broadcast_frames += 1;
                self.stats.broadcast_bytes += bytes.len() as u64;
                out.frames.push(Outgoing { to: frame::BROADCAST, kind: Kind::Broadcast, bytes, hold_until: 0 });
            }
            let broadcast = self.broadcast;
            let targets: Vec<NodeId> = self.links.iter().filter(|(_, l)| l.up && !(broadcast && l.streamed)).map(|(p, _)| *p).collect();
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
        self.wake.append(&mut self.retry);
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
        if peer == self.cfg.local && h.kind == Kind::Broadcast {
            return self.own_broadcast(host, h, body, out);
        }
        let link = self.links.get_mut(&peer).ok_or(FrameError::UnknownSender)?;
        if h.config != self.sender.config {
            if !link.config_warned {
                link.config_warned = true;
                out.events.push(Event::PeerConfigMismatch { peer });
            }
            return Err(FrameError::ConfigMismatch);
        }
        // a broadcast frame has no replay window: a stream replays by
        // design, and what it carries is idempotent (see the module docs)
        if h.kind != Kind::Broadcast && !link.window.accept(h.epoch, h.seq) {
            return Err(FrameError::Replayed);
        }
        let ps = self.stats.peers.entry(peer).or_default();
        ps.frames_in += 1;
        ps.bytes_in += bytes.len() as u64;
        match h.kind {
            Kind::Facts | Kind::Broadcast => self.receive_facts(host, peer, h, body, out)?,
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
                self.on_summary(host, peer, s, now_ms, out);
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

    /// The facts of a Facts or Broadcast frame from `peer`.
    fn receive_facts<H: Host>(&mut self, host: &mut H, peer: NodeId, h: frame::Header, body: &[u8], out: &mut Outbox) -> Result<(), FrameError> {
        let groups = message::decode_facts(body).map_err(FrameError::Malformed)?;
        if h.kind == Kind::Broadcast && groups.iter().any(|g| g.origin != Origin { node: peer, epoch: h.epoch }) {
            return Err(FrameError::Malformed("a broadcast frame carries its sender's own facts only"));
        }
        let before = self.stats.facts_admitted;
        for g in &groups {
            if let Some(ps) = self.stats.peers.get_mut(&peer) {
                ps.facts_in += g.count as u64;
            }
            for (i, f) in g.facts().enumerate() {
                self.offer(host, g.origin, g.first + i as u64, f.record, out);
            }
        }
        // counted once below, with the facts of the frame itself
        self.deliver_woken(host, self.cfg.local, out);
        let facts = self.stats.facts_admitted - before;
        if facts > 0 {
            out.events.push(Event::Admitted { from: peer, facts });
        }
        Ok(())
    }

    /// A broadcast frame of this node, read back from the stream: this run's
    /// own publication is ignored; an earlier run's facts (an in-memory
    /// replica restarted empty) are taken like any peer's.
    fn own_broadcast<H: Host>(&mut self, host: &mut H, h: frame::Header, body: &[u8], out: &mut Outbox) -> Result<(NodeId, Kind), FrameError> {
        if h.config != self.sender.config {
            return Err(FrameError::ConfigMismatch);
        }
        if h.epoch != self.me.epoch {
            self.receive_facts(host, self.cfg.local, h, body, out)?;
        }
        Ok((self.cfg.local, Kind::Broadcast))
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
            Err(AdmitError::Log { .. }) => {
                // The host refused before changing anything (its log's queue
                // is full, or the log failed or closed): this fact is not
                // received. Skipping it would mark it held forever; it waits
                // here and is retried at the next tick instead.
                self.stats.facts_deferred += 1;
                if !self.retry.contains(&origin) {
                    self.retry.push(origin);
                }
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
        if self.catching_up {
            // the stream is bringing the difference: asking now would make
            // the peer ship it a second time (the next probe asks, if needed)
            self.stats.asks_held += 1;
            return;
        }
        if mine.count == 0 && theirs.count >= self.cfg.snapshot_min_facts && self.incoming.is_none() {
            let requested = self.links.get(&peer).and_then(|l| l.snapshot_requested);
            if requested.is_none_or(|t| now_ms >= t + self.cfg.snapshot_timeout_ms) {
                self.request_snapshot(peer, now_ms, out);
                return;
            }
        }
        if self.awaiting_snapshot(now_ms) {
            // an empty replica joining by snapshot does not also ask for
            // every fact one by one (from this peer or another)
            return;
        }
        Summary { ask: true, digests: mine, vv: self.vv.clone() }.encode(&mut body);
        self.stats.summaries_sent += 1;
        if let Some(l) = self.links.get_mut(&peer) {
            l.asked_at = Some(now_ms);
        }
        self.seal(peer, Kind::Summary, &body, out);
    }

    /// Holding nothing yet, with a snapshot arriving or just requested (a
    /// request unanswered for two anti-entropy periods no longer holds
    /// anti-entropy back: the frame may have been lost).
    fn awaiting_snapshot(&self, now_ms: u64) -> bool {
        let fresh = 2 * self.cfg.anti_entropy_ms;
        self.vv.is_empty()
            && (self.incoming.is_some() || self.links.values().any(|l| l.snapshot_requested.is_some_and(|t| now_ms < t + fresh)))
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

    fn on_summary<H: Host>(&mut self, host: &mut H, peer: NodeId, s: Summary, now_ms: u64, out: &mut Outbox) {
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
        // Ask for what this replica lacks, unless a summary of ours asking
        // the same is already on its way to the peer (both sides probed at
        // once): then the peer ships it anyway, and asking again would make
        // it ship everything twice. A lost request is repaired next round.
        let asked = self.links.get(&peer).and_then(|l| l.asked_at).is_some_and(|t| now_ms < t + self.cfg.anti_entropy_ms);
        if s.ask && !asked && !self.catching_up && self.vv.missing_from(&s.vv) > 0 && !self.awaiting_snapshot(now_ms) {
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
        // this round's frame bytes: the configured cap, within what the
        // transport can take (a send budget is never exceeded; the cap may
        // be, by one record, so that a round always makes progress)
        let room = self.room(peer);
        let strict = room < self.cfg.anti_entropy_max_bytes;
        let round_max = self.cfg.anti_entropy_max_bytes.min(room);
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
                if round_bytes >= round_max {
                    break 'origins;
                }
                // a new frame costs its header, count and MAC; a group its header
                let cost = if w.is_empty() { frame::OVERHEAD + 2 } else { 0 } + GROUP_HEADER;
                let room = budget.saturating_sub(w.len()).min((round_max - round_bytes).saturating_sub(cost));
                let (records, n) = self.store.run(&o, from, usize::MAX, room.max(1));
                if n == 0 {
                    break;
                }
                if w.len() + GROUP_HEADER + records.len() > budget && !w.is_empty() {
                    frames.push(std::mem::take(&mut w).finish());
                    w = FactsWriter::new();
                    continue;
                }
                if round_bytes + cost + records.len() > round_max && (strict || round_bytes > 0) {
                    break 'origins;
                }
                w.begin(o, from);
                w.records(records, n);
                self.stats.anti_entropy_facts_sent += n as u64;
                self.stats.peers.entry(peer).or_default().facts_out += n as u64;
                round_bytes += cost + records.len();
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
        // one snapshot at a time: a request to another peer still pending wins
        let timeout = self.cfg.snapshot_timeout_ms;
        if self.links.iter().any(|(p, l)| *p != peer && l.snapshot_requested.is_some_and(|t| now_ms < t + timeout)) {
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
        if let Some(a) = self.incoming.as_ref() {
            let timed_out = now_ms >= a.started_ms + self.cfg.snapshot_timeout_ms;
            if timed_out || now_ms >= a.last_ms + self.cfg.snapshot_stall_ms {
                // a stalled transfer will not complete (a chunk was lost): ask again at the next exchange
                let from = a.from;
                self.incoming = None;
                if let Some(l) = self.links.get_mut(&from) {
                    l.snapshot_requested = None;
                }
            }
        }
        let chunk = self.cfg.max_frame_bytes - frame::OVERHEAD - CHUNK_HEADER;
        let peers: Vec<NodeId> = self.links.iter().filter(|(_, l)| l.snapshot_out.is_some()).map(|(p, _)| *p).collect();
        for p in peers {
            for _ in 0..self.cfg.snapshot_chunks_per_tick {
                if self.room(p) < self.cfg.max_frame_bytes {
                    break; // the transport cannot take a whole chunk now: a later tick sends it
                }
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
        a.last_ms = now_ms;
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

#[cfg(test)]
mod flow_tests {
    use ctfs_core::invariants::Builtin;
    use ctfs_core::{CausalityMode, EscrowConfig, KernelConfig, Multi};

    use super::*;
    use crate::host::Replicated;

    type R = Replicated<Multi<Builtin>>;

    fn pair() -> [(Node, R); 2] {
        let nodes = [1, 2];
        [1, 2].map(|local| {
            let host = R::new(Multi::single(Builtin::g_counter(0)), KernelConfig::new(CausalityMode::Exact), &nodes, local, EscrowConfig::default())
                .unwrap_or_else(|e| panic!("{e}"));
            let node = Node::new(SyncConfig::new(local, 1, nodes.to_vec(), [7; 32], [3; 32])).unwrap_or_else(|e| panic!("{e}"));
            (node, host)
        })
    }

    /// Delivers frames between the two until quiet.
    fn settle(r: &mut [(Node, R); 2], now: u64) {
        let mut q: Vec<Outgoing> = Vec::new();
        for (node, host) in r.iter_mut() {
            let mut out = Outbox::default();
            node.tick(host, now, &mut out);
            q.extend(out.frames);
        }
        while let Some(f) = q.pop() {
            let (node, host) = &mut r[(f.to - 1) as usize];
            let mut out = Outbox::default();
            let _ = node.handle_frame(host, &f.bytes, now, &mut out);
            q.extend(out.frames);
        }
    }

    fn outgoing_to(out: &Outbox, to: NodeId) -> usize {
        out.frames.iter().filter(|f| f.to == to).map(|f| f.bytes.len()).sum()
    }

    #[test]
    fn bulk_transfers_stay_within_the_send_budget() {
        let mut r = pair();
        // node 1 holds 5,000 facts node 2 lacks
        let (n1, h1) = &mut r[0];
        for i in 0..5_000u64 {
            let payload = (i + 1).to_le_bytes();
            let id = h1.admit_local(None, &[], &payload).unwrap_or_else(|e| panic!("{e}"));
            n1.local_fact(&id, &[], &payload);
        }
        n1.set_peer_up(2, false); // no push: only anti-entropy can carry them
        n1.set_peer_up(2, true);
        let mut out = Outbox::default();
        n1.tick(h1, 1, &mut out);
        out.clear();
        // node 2's summary asks for everything; node 1 may queue 20,000 bytes for it
        let (n2, h2) = &mut r[1];
        let mut summary = Vec::new();
        Summary { ask: true, digests: n2.digests(h2), vv: n2.version_vector().clone() }.encode(&mut summary);
        let mut frame = Vec::new();
        let sender = Sender { config: n2.cfg.tag(), node: 2, epoch: 1 };
        frame::seal(&[7; 32], &sender, 1, 1, Kind::Summary, &summary, &mut frame);
        let (n1, h1) = &mut r[0];
        n1.set_send_budget(2, Some(20_000));
        n1.handle_frame(h1, &frame, 2, &mut out).unwrap_or_else(|e| panic!("{e:?}"));
        let sent = outgoing_to(&out, 2);
        assert!(sent > 15_000 && sent <= 20_000, "{sent} bytes for a budget of 20,000");
        assert_eq!(n1.room(2), 20_000usize.saturating_sub(sent));
        // no budget: the whole difference in one round
        out.clear();
        n1.set_send_budget(2, None);
        let mut frame = Vec::new();
        frame::seal(&[7; 32], &sender, 1, 2, Kind::Summary, &summary, &mut frame);
        n1.handle_frame(h1, &frame, 3, &mut out).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(outgoing_to(&out, 2) > 5_000 * 48);
    }

    #[test]
    fn snapshot_chunks_wait_for_room() {
        let mut r = pair();
        let (n1, h1) = &mut r[0];
        for i in 0..70_000u64 {
            let payload = (i + 1).to_le_bytes();
            let id = h1.admit_local(None, &[], &payload).unwrap_or_else(|e| panic!("{e}"));
            n1.local_fact(&id, &[], &payload);
        }
        n1.serve_snapshot(h1, 2);
        let chunk = n1.cfg.max_frame_bytes;
        n1.set_send_budget(2, Some(chunk - 1));
        let mut out = Outbox::default();
        n1.snapshot_tick(5, &mut out);
        assert_eq!(out.frames.iter().filter(|f| f.kind == Kind::SnapshotChunk).count(), 0, "no room for a chunk");
        n1.set_send_budget(2, Some(chunk));
        n1.snapshot_tick(6, &mut out);
        assert_eq!(out.frames.iter().filter(|f| f.kind == Kind::SnapshotChunk).count(), 1, "room for one");
        n1.set_send_budget(2, None);
        n1.snapshot_tick(7, &mut out);
        assert!(out.frames.iter().filter(|f| f.kind == Kind::SnapshotChunk).count() > 1);
    }

    /// Delivers frames between the two (time standing still at `now`) until
    /// quiet, dropping every snapshot chunk for which `lose` says so.
    fn settle_losing(r: &mut [(Node, R); 2], now: u64, lose: &mut dyn FnMut(&Outgoing) -> bool) {
        let mut q: Vec<Outgoing> = Vec::new();
        for (node, host) in r.iter_mut() {
            let mut out = Outbox::default();
            node.tick(host, now, &mut out);
            q.extend(out.frames);
        }
        while !q.is_empty() {
            let mut next = Vec::new();
            for f in q.drain(..) {
                if f.kind == Kind::SnapshotChunk && lose(&f) {
                    continue;
                }
                let (node, host) = &mut r[(f.to - 1) as usize];
                let mut out = Outbox::default();
                let _ = node.handle_frame(host, &f.bytes, now, &mut out);
                next.extend(out.frames);
            }
            // chunks are sent by ticks
            for (node, host) in r.iter_mut() {
                let mut out = Outbox::default();
                node.tick(host, now, &mut out);
                next.extend(out.frames.into_iter().filter(|f| f.kind == Kind::SnapshotChunk));
            }
            q = next;
        }
    }

    #[test]
    fn a_snapshot_missing_a_chunk_is_asked_for_again_after_the_stall_period() {
        let mut r = pair();
        let (n1, h1) = &mut r[0];
        n1.set_peer_up(2, false);
        for i in 0..70_000u64 {
            let payload = (i + 1).to_le_bytes();
            let id = h1.admit_local(None, &[], &payload).unwrap_or_else(|e| panic!("{e}"));
            n1.local_fact(&id, &[], &payload);
        }
        let mut out = Outbox::default();
        n1.flush(&mut out); // node 2 is away: nothing pushed, it must join by snapshot
        assert!(out.frames.is_empty());
        n1.set_peer_up(2, true);
        let stall = r[1].0.cfg.snapshot_stall_ms;
        assert!(stall < r[1].0.cfg.snapshot_timeout_ms);
        // the second chunk is lost (as on a connection replaced mid-transfer): the join stalls
        let mut seen = 0;
        settle_losing(&mut r, 10, &mut |_| {
            seen += 1;
            seen == 2
        });
        assert_eq!(r[1].1.fact_count(), 0, "a snapshot with a hole is not installed");
        assert!(r[1].0.incoming.is_some());
        // before the stall period nothing changes; after it, node 2 asks again and joins
        settle_losing(&mut r, 10 + stall - 1, &mut |_| false);
        assert_eq!(r[1].1.fact_count(), 0);
        settle_losing(&mut r, 10 + stall, &mut |_| false);
        let period = r[1].0.cfg.anti_entropy_ms;
        settle_losing(&mut r, 10 + stall + 2 * period, &mut |_| false);
        assert_eq!(r[1].1.fact_count(), 70_000, "joined well before the {} ms timeout", r[1].0.cfg.snapshot_timeout_ms);
        assert_eq!(r[1].0.stats.snapshots_installed, 1);
    }

    #[test]
    fn crossing_probes_ship_the_difference_once() {
        let mut r = pair();
        let (n1, h1) = &mut r[0];
        n1.set_peer_up(2, false); // node 2 is away: nothing pushed, anti-entropy carries everything
        for i in 0..2_000u64 {
            let payload = (i + 1).to_le_bytes();
            let id = h1.admit_local(None, &[], &payload).unwrap_or_else(|e| panic!("{e}"));
            n1.local_fact(&id, &[], &payload);
        }
        let mut out = Outbox::default();
        n1.flush(&mut out);
        assert!(out.frames.is_empty());
        n1.set_peer_up(2, true);
        // both probe at the same moment; deliver everything, counting facts shipped 1 -> 2
        let mut q: Vec<Outgoing> = Vec::new();
        for (node, host) in r.iter_mut() {
            let mut out = Outbox::default();
            node.tick(host, 1, &mut out);
            q.extend(out.frames);
        }
        let mut shipped = 0u64;
        while !q.is_empty() {
            let mut next = Vec::new();
            for f in q.drain(..) {
                if f.to == 2 && f.kind == Kind::Facts {
                    let body = &f.bytes[frame::HEADER_LEN..f.bytes.len() - frame::MAC_LEN];
                    shipped += message::decode_facts(body).unwrap_or_default().iter().map(|g| g.count as u64).sum::<u64>();
                }
                let (node, host) = &mut r[(f.to - 1) as usize];
                let mut out = Outbox::default();
                let _ = node.handle_frame(host, &f.bytes, 2, &mut out);
                next.extend(out.frames);
            }
            q = next;
        }
        assert_eq!(r[1].1.fact_count(), 2_000);
        assert_eq!(shipped, 2_000, "each missing fact shipped once");
    }

    /// A host whose log refuses the next `refuse` admissions (a full queue).
    struct Flaky {
        inner: R,
        refuse: usize,
    }

    impl Host for Flaky {
        fn admit_merge(&mut self, id: &FactId, deps: &[FactId], payload: &[u8], origin: Origin, seq: u64) -> Result<(), AdmitError> {
            if self.refuse > 0 {
                self.refuse -= 1;
                return Err(AdmitError::Log { code: ErrorCode::BufferFull, reason: "the log's queue is full".into() });
            }
            self.inner.admit_merge(id, deps, payload, origin, seq)
        }
        fn fact_count(&self) -> u64 {
            self.inner.fact_count()
        }
        fn id_digest(&self) -> [u8; 32] {
            self.inner.id_digest()
        }
        fn state_digest(&self) -> [u8; 32] {
            self.inner.state_digest()
        }
        fn replication(&mut self) -> Option<&mut ctfs_core::replica::Replication> {
            self.inner.replication()
        }
        fn snapshot(&self) -> Result<Vec<u8>, String> {
            self.inner.snapshot()
        }
        fn install_snapshot(&mut self, bytes: &[u8]) -> Result<(), String> {
            self.inner.install_snapshot(bytes)
        }
    }

    #[test]
    fn facts_the_host_cannot_log_yet_are_deferred_and_retried_not_skipped() {
        let [(mut n1, mut h1), (mut n2, h2)] = pair();
        let mut h2 = Flaky { inner: h2, refuse: 3 };
        let mut out = Outbox::default();
        for i in 0..10u64 {
            let payload = (i + 1).to_le_bytes();
            let id = h1.admit_local(None, &[], &payload).unwrap_or_else(|e| panic!("{e}"));
            n1.local_fact(&id, &[], &payload);
        }
        n1.flush(&mut out);
        let push = out.frames.pop().unwrap_or_else(|| panic!("a push"));
        let mut out = Outbox::default();
        n2.handle_frame(&mut h2, &push.bytes, 1, &mut out).unwrap_or_else(|e| panic!("{e:?}"));
        // the first fact was refused for now: nothing after it is admitted, nothing is marked held
        assert_eq!(h2.fact_count(), 0);
        assert_eq!(n2.version_vector().get(&n1.origin()), 0);
        assert_eq!(n2.stats().facts_deferred, 1);
        assert_eq!(n2.stats().remote_refused, 0);
        // the next ticks retry (two more refusals), then everything goes in
        for now in 2..6 {
            n2.tick(&mut h2, now, &mut out);
        }
        assert_eq!(h2.fact_count(), 10);
        assert_eq!(n2.version_vector().get(&n1.origin()), 10);
        assert_eq!(n2.stats().facts_deferred, 3);
    }

    #[test]
    fn probe_soon_forgets_sync_until_a_new_exchange_confirms_it() {
        let mut r = pair();
        settle(&mut r, 10);
        assert!(r[0].0.is_synced(2) && r[1].0.is_synced(1));
        // node 2 admits a fact node 1 has not seen: node 1's flag is stale
        let (n2, h2) = &mut r[1];
        let payload = 1u64.to_le_bytes();
        let id = h2.admit_local(None, &[], &payload).unwrap_or_else(|e| panic!("{e}"));
        n2.local_fact(&id, &[], &payload);
        assert!(r[0].0.is_synced(2), "node 1 cannot know yet");
        r[0].0.probe_soon();
        assert!(!r[0].0.is_synced(2), "probe_soon forgets the old match");
        settle(&mut r, 20);
        assert!(r[0].0.is_synced(2), "a new exchange confirms it");
        assert_eq!(r[0].1.fact_count(), 1);
    }
}

#[cfg(test)]
mod broadcast_tests {
    use ctfs_core::invariants::Builtin;
    use ctfs_core::{CausalityMode, EscrowConfig, KernelConfig, Multi};

    use super::*;
    use crate::host::Replicated;

    type R = Replicated<Multi<Builtin>>;

    fn trio() -> Vec<(Node, R)> {
        let nodes = [1, 2, 3];
        nodes
            .iter()
            .map(|&local| {
                let host = R::new(Multi::single(Builtin::g_counter(0)), KernelConfig::new(CausalityMode::Exact), &nodes, local, EscrowConfig::default())
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut node = Node::new(SyncConfig::new(local, 7, nodes.to_vec(), [9; 32], [5; 32])).unwrap_or_else(|e| panic!("{e}"));
                let others: Vec<NodeId> = nodes.iter().copied().filter(|n| *n != local).collect();
                node.set_broadcast(true, &others);
                (node, host)
            })
            .collect()
    }

    fn admit(r: &mut (Node, R), n: u64, deps: &[FactId]) -> Vec<FactId> {
        let (node, host) = r;
        (0..n)
            .map(|i| {
                let payload = (i + 1).to_le_bytes();
                let id = host.admit_local(None, deps, &payload).unwrap_or_else(|e| panic!("{e}"));
                node.local_fact(&id, deps, &payload);
                id
            })
            .collect()
    }

    fn receive(r: &mut (Node, R), bytes: &[u8]) -> Result<Outbox, FrameError> {
        let (node, host) = r;
        let mut out = Outbox::default();
        node.handle_frame(host, bytes, 1, &mut out).map(|_| out)
    }

    #[test]
    fn one_broadcast_frame_reaches_every_member_and_a_replay_admits_nothing_twice() {
        let mut r = trio();
        // nobody is up: the stream keeps the facts for replicas that are away
        for p in [2, 3] {
            r[0].0.set_peer_up(p, false);
        }
        admit(&mut r[0], 10, &[]);
        let mut out = Outbox::default();
        r[0].0.flush(&mut out);
        assert_eq!(out.frames.len(), 1, "one frame for every member, no point-to-point push");
        let f = out.frames.pop().unwrap_or_else(|| panic!("a frame"));
        assert_eq!((f.to, f.kind), (frame::BROADCAST, Kind::Broadcast));
        assert_eq!(r[0].0.stats().broadcast_frames, 1);
        for i in [1, 2] {
            let out = receive(&mut r[i], &f.bytes).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(out.events, vec![Event::Admitted { from: 1, facts: 10 }]);
            assert_eq!(r[i].1.fact_count(), 10);
        }
        // the stream delivers it again (a redelivery, a replay after a restart): accepted, nothing admitted twice
        let out = receive(&mut r[1], &f.bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.events.is_empty());
        assert_eq!(r[1].1.fact_count(), 10);
        assert_eq!(r[1].0.stats().facts_duplicate, 10);
        assert_eq!(r[1].0.stats().dropped_total(), 0);
        // its own frame read back from the stream changes nothing
        let out = receive(&mut r[0], &f.bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.events.is_empty() && out.frames.is_empty());
        assert_eq!(r[0].0.stats().facts_received, 0);
        // ... but after a restart in a new epoch (in memory: empty), the earlier run's facts are taken back
        let nodes = [1, 2, 3];
        let mut restarted = (
            Node::new(SyncConfig::new(1, 8, nodes.to_vec(), [9; 32], [5; 32])).unwrap_or_else(|e| panic!("{e}")),
            R::new(Multi::single(Builtin::g_counter(0)), KernelConfig::new(CausalityMode::Exact), &nodes, 1, EscrowConfig::default()).unwrap_or_else(|e| panic!("{e}")),
        );
        let out = receive(&mut restarted, &f.bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.events, vec![Event::Admitted { from: 1, facts: 10 }]);
        assert_eq!(restarted.1.fact_count(), 10);
        // a point-to-point frame claiming to come from this node is still refused
        let mut p = Vec::new();
        frame::seal(&[9; 32], &r[0].0.sender, 1, 1, Kind::Probe, &[0; 72], &mut p);
        assert_eq!(receive(&mut r[0], &p).err(), Some(FrameError::UnknownSender));
    }

    #[test]
    fn a_broadcast_frame_carrying_another_origins_facts_is_refused() {
        let mut r = trio();
        admit(&mut r[0], 3, &[]);
        // node 2 relays node 1's facts as if they were its own broadcast
        let (records, n) = r[0].0.store().run(&r[0].0.origin(), 1, 10, usize::MAX);
        let mut w = FactsWriter::new();
        w.begin(r[0].0.origin(), 1);
        w.records(records, n);
        let body = w.finish();
        let mut bytes = Vec::new();
        let sender = Sender { config: r[1].0.cfg.tag(), node: 2, epoch: 7 };
        frame::seal_broadcast(&[9; 32], &sender, 1, &body, &mut bytes);
        assert!(matches!(receive(&mut r[2], &bytes), Err(FrameError::Malformed(_))));
        assert_eq!(r[2].1.fact_count(), 0);
    }

    #[test]
    fn facts_depending_on_another_origin_wait_for_it_whatever_the_stream_order() {
        let mut r = trio();
        let a = admit(&mut r[0], 1, &[]);
        let mut out = Outbox::default();
        r[0].0.flush(&mut out);
        let fa = out.frames.pop().unwrap_or_else(|| panic!("a frame"));
        receive(&mut r[1], &fa.bytes).unwrap_or_else(|e| panic!("{e}"));
        admit(&mut r[1], 1, &a);
        r[1].0.flush(&mut out);
        let fb = out.frames.pop().unwrap_or_else(|| panic!("a frame"));
        // node 3 reads node 2's fact first: it waits for its dependency
        receive(&mut r[2], &fb.bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r[2].1.fact_count(), 0);
        assert_eq!(r[2].0.buffer().len(), 1);
        let out = receive(&mut r[2], &fa.bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r[2].1.fact_count(), 2);
        assert!(r[2].0.buffer().is_empty());
        assert_eq!(out.events, vec![Event::Admitted { from: 1, facts: 2 }]);
    }

    #[test]
    fn peers_off_the_stream_still_get_point_to_point_pushes() {
        let mut r = trio();
        r[0].0.set_broadcast(true, &[2]); // node 3 is reached by another transport (a bridge)
        admit(&mut r[0], 5, &[]);
        let mut out = Outbox::default();
        r[0].0.flush(&mut out);
        let kinds: Vec<(NodeId, Kind)> = out.frames.iter().map(|f| (f.to, f.kind)).collect();
        assert_eq!(kinds, vec![(frame::BROADCAST, Kind::Broadcast), (3, Kind::Facts)]);
        // broadcast off: every peer gets its own push again
        r[0].0.set_broadcast(false, &[]);
        admit(&mut r[0], 1, &[]);
        out.clear();
        r[0].0.flush(&mut out);
        let kinds: Vec<(NodeId, Kind)> = out.frames.iter().map(|f| (f.to, f.kind)).collect();
        assert_eq!(kinds, vec![(2, Kind::Facts), (3, Kind::Facts)]);
    }

    #[test]
    fn pushes_wait_for_room_in_the_stream() {
        let mut r = trio();
        admit(&mut r[0], 100, &[]);
        r[0].0.set_broadcast_budget(Some(200)); // room for about two facts
        let mut out = Outbox::default();
        r[0].0.flush(&mut out);
        let sent: usize = out.frames.iter().map(|f| f.bytes.len()).sum();
        assert!(sent <= 200, "{sent} bytes for a budget of 200");
        assert!(r[0].0.unpushed() > 90, "the rest waits: {}", r[0].0.unpushed());
        r[0].0.set_broadcast_budget(Some(0));
        out.clear();
        r[0].0.flush(&mut out);
        assert!(out.frames.is_empty());
        r[0].0.set_broadcast_budget(None);
        r[0].0.flush(&mut out);
        assert_eq!(r[0].0.unpushed(), 0);
        let mut total = 0;
        for f in &out.frames {
            receive(&mut r[1], &f.bytes).unwrap_or_else(|e| panic!("{e}"));
        }
        out.clear();
        r[0].0.set_broadcast_budget(Some(10_000));
        r[0].0.flush(&mut out);
        total += out.frames.len();
        assert_eq!(total, 0, "nothing left to push");
    }

    #[test]
    fn a_replica_catching_up_from_the_stream_does_not_ask_peers_for_facts() {
        let mut r = trio();
        admit(&mut r[0], 50, &[]);
        let probe = |r: &mut Vec<(Node, R)>| {
            let mut out = Outbox::default();
            let (n, h) = &mut r[0];
            n.probe_soon();
            n.tick(h, 10, &mut out);
            out.frames.into_iter().find(|f| f.to == 2 && f.kind == Kind::Probe).unwrap_or_else(|| panic!("a probe"))
        };
        let p = probe(&mut r);
        r[1].0.set_catching_up(true);
        let out = receive(&mut r[1], &p.bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.frames.is_empty(), "no summary: the stream brings the difference");
        assert_eq!(r[1].0.stats().asks_held, 1);
        r[1].0.set_catching_up(false);
        let p = probe(&mut r);
        let out = receive(&mut r[1], &p.bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.frames.iter().map(|f| f.kind).collect::<Vec<_>>(), vec![Kind::Summary]);
    }
}
