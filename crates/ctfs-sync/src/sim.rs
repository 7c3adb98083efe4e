//! The deterministic simulator: whole clusters of [`Node`]s over a seeded,
//! adversarial network, checked at every step.
//!
//! One run (one seed) picks 3–7 replicas (unless fixed), an invariant
//! scenario (every coordination-free built-in, the bounded ones with escrow,
//! and multi-invariant kernels), then:
//!
//! 1. **Chaos** — random admissions at random replicas, with random
//!    dependencies on facts the replica holds, over a network that drops (up
//!    to 30%), duplicates, reorders and delays frames, partitions and heals,
//!    and crash-restarts replicas (an in-memory replica restarts empty, in a
//!    new epoch, with its escrow share forfeited);
//! 2. **Quiescence** — admissions stop, partitions heal, crashed replicas
//!    come back, the network stops dropping; the run waits until every
//!    replica holds the same facts.
//!
//! Checked at every step: no fact admitted before its dependencies, none
//! applied twice, causal buffers within their limits, and no bound violated
//! globally (the facts admitted anywhere, lost ones included, stay within
//! the headroom) nor on any replica's state. Checked after quiescence: every
//! replica holds the same id set and byte-identical state, within a bounded
//! simulated time. Everything — ids, payloads, delays, faults — derives
//! from the seed, so `ctfs-sim --seed S` replays a run exactly.
//!
//! **Bus mode** (one seed in three, or `--bus on`): the replicas also share
//! a stream, as over NATS JetStream. Own facts are pushed only as broadcast
//! frames, published to the stream (a publication is lost at the chaos drop
//! rate divided by three, or while the publisher is partitioned from the
//! bus); each replica reads the stream at its own cursor, a few entries per
//! tick, with redeliveries at the duplication rate; retention drops the
//! oldest entries now and then; a restarted (in-memory) replica replays the
//! stream from the oldest entry retained. Point-to-point frames (probes,
//! summaries, anti-entropy, escrow, snapshots) travel over the faulty
//! network as in the other runs, and must repair whatever the stream lost.

use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::cmp::Reverse;

use ctfs_core::invariants::ggraph::DegreeLimits;
use ctfs_core::invariants::{Builtin, Lww};
use ctfs_core::kernel::SnapshotState;
use ctfs_core::replica::{Demand, Escrowed, Side};
use ctfs_core::{AdmitError, CausalityMode, EscrowConfig, ErrorCode, FactId, KernelConfig, Multi, NodeId};

use crate::buffer::BufferLimits;
use crate::host::{Host, Replicated};
use crate::node::{Event, Node, Outbox, SyncConfig};

// ----------------------------------------------------------------- rng

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_5EED)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

// ------------------------------------------------------------ scenarios

/// What the simulated cluster replicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    GCounter,
    Max,
    Lww,
    Uniqueness,
    UniqueSet,
    GGraph,
    Graph,
    Supply,
    /// totalSupply{initial: 1000, min: 0} with escrow, spends and credits.
    BoundedSupply,
    /// boundedGCounter with escrow.
    BoundedCounter,
    /// uniqueSet{maxElements} with escrow.
    BoundedSet,
    /// multi { counter, bounded supply, set, graph }.
    Multi,
}

impl Scenario {
    pub const ALL: [Scenario; 12] = [
        Scenario::GCounter,
        Scenario::Max,
        Scenario::Lww,
        Scenario::Uniqueness,
        Scenario::UniqueSet,
        Scenario::GGraph,
        Scenario::Graph,
        Scenario::Supply,
        Scenario::BoundedSupply,
        Scenario::BoundedCounter,
        Scenario::BoundedSet,
        Scenario::Multi,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::GCounter => "gCounter",
            Scenario::Max => "max",
            Scenario::Lww => "lww",
            Scenario::Uniqueness => "uniqueness",
            Scenario::UniqueSet => "uniqueSet",
            Scenario::GGraph => "gGraph",
            Scenario::Graph => "graph",
            Scenario::Supply => "totalSupply",
            Scenario::BoundedSupply => "boundedSupply",
            Scenario::BoundedCounter => "boundedGCounter",
            Scenario::BoundedSet => "boundedSet",
            Scenario::Multi => "multi",
        }
    }

    pub fn from_name(s: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|x| x.name() == s)
    }

    fn invariant(self) -> Multi<Builtin> {
        let b = |r: Result<Builtin, String>| r.unwrap_or_else(|_| Builtin::g_counter(0));
        match self {
            Scenario::GCounter => Multi::single(Builtin::g_counter(0)),
            Scenario::Max => Multi::single(Builtin::max(0)),
            Scenario::Lww => Multi::single(Builtin::lww()),
            Scenario::Uniqueness => Multi::single(Builtin::uniqueness_cell()),
            Scenario::UniqueSet => Multi::single(b(Builtin::unique_set(None))),
            Scenario::GGraph => Multi::single(b(Builtin::g_graph_cell(DegreeLimits::default()))),
            Scenario::Graph => Multi::single(b(Builtin::graph(DegreeLimits::default(), None))),
            Scenario::Supply => Multi::single(b(Builtin::total_supply(0, i128::MIN, i128::MAX))),
            Scenario::BoundedSupply => Multi::single(b(Builtin::total_supply(1000, 0, i128::MAX))),
            Scenario::BoundedCounter => Multi::single(Builtin::bounded_g_counter(600)),
            Scenario::BoundedSet => Multi::single(b(Builtin::unique_set(Some(150)))),
            Scenario::Multi => Multi::new(vec![
                Builtin::g_counter(0),
                b(Builtin::total_supply(500, 0, 2000)),
                b(Builtin::unique_set(None)),
                b(Builtin::graph(DegreeLimits::default(), Some(400))),
            ])
            .unwrap_or_else(|_| Multi::single(Builtin::g_counter(0))),
        }
    }

    /// A random payload for this scenario.
    fn payload(self, rng: &mut Rng) -> Vec<u8> {
        match self {
            Scenario::GCounter => (rng.below(10) + 1).to_le_bytes().to_vec(),
            Scenario::Max => (rng.below(1_000_000) as i128).to_le_bytes().to_vec(),
            Scenario::Lww => Lww::payload(rng.below(50), &rng.next_u64().to_le_bytes()).unwrap_or_default(),
            Scenario::Uniqueness => (rng.below(512) as u16).to_le_bytes().to_vec(),
            Scenario::UniqueSet | Scenario::BoundedSet => key(rng.below(400)).to_vec(),
            Scenario::GGraph => {
                let from = rng.below(16) as u8;
                let to = (from + 1 + rng.below(15) as u8) % 16;
                vec![from, to]
            }
            Scenario::Graph => edge(rng),
            Scenario::Supply => ((rng.below(200) as i128) - 100).to_le_bytes().to_vec(),
            Scenario::BoundedSupply => {
                let d: i128 = if rng.chance(20) { rng.range(1, 40) as i128 } else { -(rng.range(1, 25) as i128) };
                d.to_le_bytes().to_vec()
            }
            Scenario::BoundedCounter => rng.range(1, 6).to_le_bytes().to_vec(),
            Scenario::Multi => {
                let mut parts: Vec<(u8, Vec<u8>)> = Vec::new();
                for m in 0..4u8 {
                    if rng.chance(45) {
                        let p = match m {
                            0 => (rng.below(10) + 1).to_le_bytes().to_vec(),
                            1 => (if rng.chance(25) { rng.range(1, 30) as i128 } else { -(rng.range(1, 20) as i128) }).to_le_bytes().to_vec(),
                            2 => key(rng.below(300)).to_vec(),
                            _ => edge(rng),
                        };
                        parts.push((m, p));
                    }
                }
                if parts.is_empty() {
                    parts.push((0, 1u64.to_le_bytes().to_vec()));
                }
                let refs: Vec<(u8, &[u8])> = parts.iter().map(|(m, p)| (*m, &p[..])).collect();
                ctfs_core::multi::encode_parts(&refs).unwrap_or_default()
            }
        }
    }
}

fn key(n: u64) -> [u8; 32] {
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

fn edge(rng: &mut Rng) -> Vec<u8> {
    let from = rng.below(40);
    let to = (from + 1 + rng.below(39)) % 40;
    ctfs_core::invariants::Graph::payload(from, to).to_vec()
}

// -------------------------------------------------------------- config

/// Parameters of one run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Replicas (3–7 if `None`: chosen from the seed).
    pub replicas: Option<usize>,
    pub scenario: Option<Scenario>,
    /// Simulated ms of chaos.
    pub chaos_ms: u64,
    /// Admissions attempted per simulated second, over the cluster.
    pub admissions_per_s: u64,
    /// Give up waiting for convergence after this many simulated ms.
    pub quiesce_limit_ms: u64,
    /// Print every fault and event.
    pub verbose: bool,
    /// Bus mode (see the module docs); `None`: one seed in three.
    pub bus: Option<bool>,
}

impl SimConfig {
    pub fn new(seed: u64) -> Self {
        SimConfig { seed, replicas: None, scenario: None, chaos_ms: 3_000, admissions_per_s: 150, quiesce_limit_ms: 120_000, verbose: false, bus: None }
    }
}

/// What one run found.
#[derive(Clone, Debug, Default)]
pub struct SimResult {
    pub seed: u64,
    pub replicas: usize,
    pub scenario: &'static str,
    /// Drop rate of the chaos phase, percent.
    pub drop_percent: u64,
    pub admitted: u64,
    pub refused_locally: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub frames_delivered: u64,
    pub frames_dropped: u64,
    pub snapshots_installed: u64,
    pub buffer_evictions: u64,
    pub peak_buffer: usize,
    /// Simulated ms from the start of quiescence to convergence.
    pub converge_ms: u64,
    /// The same, in anti-entropy periods.
    pub converge_rounds: u64,
    pub converged: bool,
    pub violations: Vec<String>,
    /// Bus mode: stream entries published, lost before the stream, delivered, and dropped by retention.
    pub bus: bool,
    pub stream_published: u64,
    pub stream_lost: u64,
    pub stream_delivered: u64,
    pub stream_expired: u64,
}

impl SimResult {
    pub fn ok(&self) -> bool {
        self.converged && self.violations.is_empty()
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "npm run sim -- --seed {} --replicas {} --scenario {} --bus {} --verbose",
            self.seed,
            self.replicas,
            self.scenario,
            if self.bus { "on" } else { "off" }
        )
    }
}

// -------------------------------------------------------------- replicas

/// A kernel wrapped with the simulator's own bookkeeping: it checks every
/// admission independently of the kernel (dependencies present, never
/// applied twice).
struct Checked {
    inner: Replicated<Multi<Builtin>>,
    held: HashSet<FactId>,
    violations: Vec<String>,
}

impl Checked {
    fn note_admitted(&mut self, id: &FactId, deps: &[FactId]) {
        for d in deps {
            if !self.held.contains(d) {
                self.violations.push(format!("fact {} admitted before its dependency {}", id.to_hex(), d.to_hex()));
            }
        }
        if !self.held.insert(*id) {
            self.violations.push(format!("fact {} applied twice", id.to_hex()));
        }
    }
}

impl Host for Checked {
    fn admit_merge(&mut self, id: &FactId, deps: &[FactId], payload: &[u8], origin: crate::origin::Origin, seq: u64) -> Result<(), AdmitError> {
        let r = self.inner.admit_merge(id, deps, payload, origin, seq);
        if r.is_ok() {
            self.note_admitted(id, deps);
        }
        r
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
        self.inner.install_snapshot(bytes)?;
        self.held = self.inner.kernel.admitted_ids().map(|i| i.copied().collect()).unwrap_or_default();
        Ok(())
    }
}

struct Replica {
    node: Node,
    host: Checked,
    alive: bool,
    epoch: u64,
    /// Ids this replica holds, for picking dependencies.
    known: Vec<FactId>,
    restart_at: u64,
}

const TICK_MS: u64 = 10;
const ANTI_ENTROPY_MS: u64 = 200;

fn cluster_key(seed: u64) -> [u8; 32] {
    *blake3::hash(&seed.to_le_bytes()).as_bytes()
}

fn config_id(scenario: Scenario) -> [u8; 32] {
    *blake3::hash(scenario.name().as_bytes()).as_bytes()
}

fn new_replica(seed: u64, scenario: Scenario, nodes: &[NodeId], local: NodeId, epoch: u64, restarted: bool, bus: bool) -> Replica {
    let mut inner = Replicated::new(
        scenario.invariant(),
        KernelConfig::new(CausalityMode::Exact),
        nodes,
        local,
        EscrowConfig { reserve_percent: 50, ..EscrowConfig::default() },
    )
    .unwrap_or_else(|e| panic!("sim: bad replica configuration: {e}"));
    if restarted && let Some(r) = inner.replication.as_mut() {
        r.forfeit_local(epoch << 32);
    }
    let mut cfg = SyncConfig::new(local, epoch, nodes.to_vec(), cluster_key(seed), config_id(scenario));
    cfg.anti_entropy_ms = ANTI_ENTROPY_MS;
    cfg.push_max_facts = 64;
    cfg.buffer = BufferLimits { max_facts: 256, max_bytes: 64 << 10 };
    cfg.anti_entropy_max_bytes = 256 << 10;
    cfg.snapshot_min_facts = 50;
    cfg.max_frame_bytes = 64 << 10;
    cfg.snapshot_timeout_ms = 2_000;
    cfg.snapshot_stall_ms = 1_000;
    let mut node = Node::new(cfg).unwrap_or_else(|e| panic!("sim: bad sync configuration: {e}"));
    if bus {
        let peers: Vec<NodeId> = nodes.iter().copied().filter(|n| *n != local).collect();
        node.set_broadcast(true, &peers);
    }
    Replica { node, host: Checked { inner, held: HashSet::new(), violations: Vec::new() }, alive: true, epoch, known: Vec::new(), restart_at: 0 }
}

// -------------------------------------------------------------- network

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: u64,
    seq: u64,
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

struct Network {
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    drop_percent: u64,
    dup_percent: u64,
    max_delay: u64,
    /// Partition group per replica (equal groups talk).
    group: Vec<u8>,
    delivered: u64,
    dropped: u64,
}

impl Network {
    fn send(&mut self, rng: &mut Rng, now: u64, from: usize, to: usize, bytes: Vec<u8>) {
        if self.group[from] != self.group[to] || rng.chance(self.drop_percent) {
            self.dropped += 1;
            return;
        }
        let copies = if rng.chance(self.dup_percent) { 2 } else { 1 };
        for _ in 0..copies {
            self.seq += 1;
            let at = now + 1 + rng.below(self.max_delay);
            self.queue.push(Reverse(InFlight { at, seq: self.seq, from, to, bytes: bytes.clone() }));
        }
    }
}

/// The shared stream of bus mode: every broadcast frame published, in
/// order, and each replica's read position.
struct Stream {
    /// (publisher, frame); an entry's index is its stream sequence.
    entries: Vec<(usize, Vec<u8>)>,
    /// Entries below this were dropped by retention.
    floor: usize,
    cursor: Vec<usize>,
    /// Publications lost before reaching the stream, percent.
    loss_percent: u64,
}

// ------------------------------------------------------------------ run

struct Sim {
    cfg: SimConfig,
    rng: Rng,
    scenario: Scenario,
    nodes: Vec<NodeId>,
    replicas: Vec<Replica>,
    net: Network,
    now: u64,
    result: SimResult,
    /// Every fact admitted anywhere (lost ones included): id → payload.
    global: BTreeMap<FactId, Vec<u8>>,
    next_id: u64,
    outbox: Outbox,
    stream: Option<Stream>,
}

impl Sim {
    fn log(&self, msg: impl FnOnce() -> String) {
        if self.cfg.verbose {
            println!("[{:>6} ms] {}", self.now, msg());
        }
    }

    fn violation(&mut self, v: String) {
        if self.result.violations.len() < 20 {
            self.result.violations.push(format!("at {} ms: {v}", self.now));
        }
    }

    fn send_outbox(&mut self, from: usize) {
        let frames = std::mem::take(&mut self.outbox.frames);
        for f in frames {
            if f.kind == crate::frame::Kind::Broadcast {
                let reachable = self.net.group[from] == 0;
                match self.stream.as_mut() {
                    Some(st) if reachable && !self.rng.chance(st.loss_percent) => {
                        st.entries.push((from, f.bytes));
                        self.result.stream_published += 1;
                    }
                    _ => self.result.stream_lost += 1,
                }
                continue;
            }
            let to = self.nodes.iter().position(|n| *n == f.to).unwrap_or(from);
            if to == from || !self.replicas[to].alive {
                self.net.dropped += 1;
                continue;
            }
            self.net.send(&mut self.rng, self.now, from, to, f.bytes);
        }
        let events = std::mem::take(&mut self.outbox.events);
        for e in events {
            match &e {
                Event::Diverged { peer } => self.violation(format!("replica {} and {peer}: same facts, different state", self.nodes[from])),
                Event::RemoteRefused { code, message, .. } if *code != ErrorCode::RequiresCoordination => {
                    self.violation(format!("replica {} refused a peer's fact: {message}", self.nodes[from]))
                }
                Event::SnapshotInstalled { .. } => self.result.snapshots_installed += 1,
                _ => {}
            }
            self.log(|| format!("replica {}: {e:?}", self.nodes[from]));
        }
    }

    fn admit_random(&mut self) {
        let alive: Vec<usize> = (0..self.replicas.len()).filter(|i| self.replicas[*i].alive).collect();
        if alive.is_empty() {
            return;
        }
        let i = alive[self.rng.below(alive.len() as u64) as usize];
        let payload = self.scenario.payload(&mut self.rng);
        self.next_id += 1;
        let id = FactId(*blake3::hash(&[self.cfg.seed.to_le_bytes(), self.next_id.to_le_bytes()].concat()).as_bytes());
        let mut deps = Vec::new();
        let known = self.replicas[i].known.len() as u64;
        if known > 0 {
            for _ in 0..self.rng.below(4) {
                // mostly recent facts, sometimes any
                let k = if self.rng.chance(70) { known - 1 - self.rng.below(known.min(8)) } else { self.rng.below(known) };
                let d = self.replicas[i].known[k as usize];
                if !deps.contains(&d) {
                    deps.push(d);
                }
            }
        }
        let r = &mut self.replicas[i];
        match r.host.inner.admit_local(Some(&id), &deps, &payload) {
            Ok(_) => {
                r.host.note_admitted(&id, &deps);
                r.node.local_fact(&id, &deps, &payload);
                r.known.push(id);
                self.global.insert(id, payload);
                self.result.admitted += 1;
            }
            Err(e) => {
                self.result.refused_locally += 1;
                if e.code() == ErrorCode::InsufficientQuota {
                    let mut demands: Vec<Demand> = Vec::new();
                    r.host.inner.kernel.invariant().demands(&payload, &mut demands);
                    let now = self.now;
                    for d in demands {
                        for (side, amount) in [(Side::Down, d.down), (Side::Up, d.up)] {
                            if amount > 0 {
                                r.node.need_quota(&mut r.host, d.member, side, amount, now, &mut self.outbox);
                            }
                        }
                    }
                    self.send_outbox(i);
                }
            }
        }
    }

    fn tick_all(&mut self) {
        for i in 0..self.replicas.len() {
            if !self.replicas[i].alive || (self.now + i as u64 * 3) % TICK_MS != 0 {
                continue;
            }
            self.read_stream(i);
            let now = self.now;
            let r = &mut self.replicas[i];
            r.node.tick(&mut r.host, now, &mut self.outbox);
            self.send_outbox(i);
        }
    }

    /// Bus mode: replica `i` reads a few entries of the stream (when it
    /// reaches the bus), redelivered now and then.
    fn read_stream(&mut self, i: usize) {
        if self.stream.is_none() || self.net.group[i] != 0 {
            return;
        }
        let reads = self.rng.range(1, 12);
        for _ in 0..reads {
            let Some(st) = self.stream.as_mut() else { return };
            let at = st.cursor[i].max(st.floor);
            let Some(bytes) = st.entries.get(at).map(|(_, b)| b.clone()) else { break };
            if !self.rng.chance(self.net.dup_percent) {
                st.cursor[i] = at + 1; // acknowledged; otherwise redelivered
            }
            // its own publications are read back too (an earlier run's are taken back)
            self.result.stream_delivered += 1;
            let now = self.now;
            let r = &mut self.replicas[i];
            let before = r.host.held.len();
            let _ = r.node.handle_frame(&mut r.host, &bytes, now, &mut self.outbox);
            if r.host.held.len() != before {
                r.known = r.host.inner.kernel.admitted_ids().map(|i| i.copied().collect()).unwrap_or_default();
            }
            self.send_outbox(i);
        }
        if let Some(st) = self.stream.as_ref() {
            let behind = st.cursor[i].max(st.floor) < st.entries.len();
            self.replicas[i].node.set_catching_up(behind);
        }
    }

    fn deliver_due(&mut self) {
        while self.net.queue.peek().is_some_and(|Reverse(m)| m.at <= self.now) {
            let Some(Reverse(m)) = self.net.queue.pop() else { break };
            if !self.replicas[m.to].alive || self.net.group[m.from] != self.net.group[m.to] {
                self.net.dropped += 1;
                continue;
            }
            self.net.delivered += 1;
            let now = self.now;
            let r = &mut self.replicas[m.to];
            let before = r.host.held.len();
            let _ = r.node.handle_frame(&mut r.host, &m.bytes, now, &mut self.outbox);
            if r.host.held.len() != before {
                // refresh the dependency pool with what arrived
                r.known = r.host.inner.kernel.admitted_ids().map(|i| i.copied().collect()).unwrap_or_default();
            }
            self.send_outbox(m.to);
        }
    }

    fn faults(&mut self) {
        let n = self.replicas.len();
        // stream retention drops the oldest entries
        if self.stream.is_some() && self.rng.chance(1) && self.rng.chance(20) {
            let drop = self.rng.range(1, 20) as usize;
            if let Some(st) = self.stream.as_mut() {
                let floor = (st.floor + drop).min(st.entries.len());
                self.result.stream_expired += (floor - st.floor) as u64;
                st.floor = floor;
            }
        }
        // crash-restart
        if self.rng.chance(1) && self.rng.chance(10) {
            let i = self.rng.below(n as u64) as usize;
            if self.replicas[i].alive && self.replicas.iter().filter(|r| r.alive).count() > 1 {
                self.replicas[i].alive = false;
                self.replicas[i].restart_at = self.now + self.rng.range(50, 800);
                self.result.crashes += 1;
                self.log(|| format!("crash replica {}", self.nodes[i]));
            }
        }
        for i in 0..n {
            if !self.replicas[i].alive && self.now >= self.replicas[i].restart_at {
                self.restart(i);
            }
        }
        // partitions
        if self.rng.chance(1) && self.rng.chance(8) {
            if self.net.group.iter().all(|g| *g == 0) {
                for g in self.net.group.iter_mut() {
                    *g = self.rng.below(2) as u8;
                }
                self.result.partitions += 1;
                self.log(|| format!("partition {:?}", self.net.group));
            } else {
                self.net.group.iter_mut().for_each(|g| *g = 0);
                self.log(|| "heal".into());
            }
        }
    }

    fn restart(&mut self, i: usize) {
        let epoch = self.replicas[i].epoch + 1;
        self.replicas[i] = new_replica(self.cfg.seed, self.scenario, &self.nodes, self.nodes[i], epoch, true, self.stream.is_some());
        if let Some(st) = self.stream.as_mut() {
            st.cursor[i] = st.floor; // in memory: replays what the stream still holds
        }
        self.log(|| format!("restart replica {} (epoch {epoch})", self.nodes[i]));
    }

    fn check_step(&mut self) {
        let mut found = Vec::new();
        for r in &mut self.replicas {
            found.append(&mut r.host.violations);
            let lim = r.node.buffer().limits();
            if r.node.buffer().len() > lim.max_facts || r.node.buffer().bytes() > lim.max_bytes {
                found.push(format!("replica {}: causal buffer over its limits", r.node.origin().node));
            }
            self.result.peak_buffer = self.result.peak_buffer.max(r.node.buffer().len());
            if r.alive
                && let Some(v) = bounds_violation(&r.host.inner)
            {
                found.push(format!("replica {}: state out of bounds: {v}", r.node.origin().node));
            }
        }
        for v in found {
            self.violation(v);
        }
    }

    fn all_converged(&self) -> bool {
        let live: Vec<&Replica> = self.replicas.iter().filter(|r| r.alive).collect();
        let Some(first) = live.first() else { return true };
        let d0 = (first.host.fact_count(), first.host.id_digest(), first.host.state_digest());
        live.iter().all(|r| (r.host.fact_count(), r.host.id_digest(), r.host.state_digest()) == d0 && r.node.buffer().is_empty())
    }

    fn step(&mut self) {
        self.deliver_due();
        self.tick_all();
        self.check_step();
        self.now += 1;
    }

    fn run(mut self) -> SimResult {
        // chaos
        let per_ms = self.cfg.admissions_per_s;
        while self.now < self.cfg.chaos_ms {
            self.faults();
            // Poisson-ish admissions: per_ms / 1000 per ms on average
            let mut budget = per_ms;
            while budget >= 1000 {
                self.admit_random();
                budget -= 1000;
            }
            if self.rng.below(1000) < budget {
                self.admit_random();
            }
            self.step();
        }
        // quiescence
        self.net.group.iter_mut().for_each(|g| *g = 0);
        self.net.drop_percent = 0;
        if let Some(st) = self.stream.as_mut() {
            st.loss_percent = 0;
        }
        for i in 0..self.replicas.len() {
            if !self.replicas[i].alive {
                self.restart(i);
            }
        }
        let start = self.now;
        let limit = start + self.cfg.quiesce_limit_ms;
        while self.now < limit {
            self.step();
            if self.now % TICK_MS == 0 && self.all_converged() {
                self.result.converged = true;
                break;
            }
        }
        self.result.converge_ms = self.now - start;
        self.result.converge_rounds = self.result.converge_ms.div_ceil(ANTI_ENTROPY_MS);
        self.final_checks();
        self.result.frames_delivered = self.net.delivered;
        self.result.frames_dropped = self.net.dropped;
        self.result.buffer_evictions = self.replicas.iter().map(|r| r.node.buffer().evicted()).sum();
        self.result
    }

    fn final_checks(&mut self) {
        if !self.result.converged {
            let counts: Vec<u64> = self.replicas.iter().map(|r| r.host.fact_count()).collect();
            let buffered: Vec<usize> = self.replicas.iter().map(|r| r.node.buffer().len()).collect();
            self.violation(format!("no convergence within {} ms: fact counts {counts:?}, buffered {buffered:?}", self.cfg.quiesce_limit_ms));
            return;
        }
        // exact id sets and byte-identical states
        let sets: Vec<Vec<FactId>> = self
            .replicas
            .iter()
            .map(|r| {
                let mut v: Vec<FactId> = r.host.inner.kernel.admitted_ids().map(|i| i.copied().collect()).unwrap_or_default();
                v.sort_unstable();
                v
            })
            .collect();
        let states: Vec<Vec<u8>> = self
            .replicas
            .iter()
            .map(|r| {
                let mut out = Vec::new();
                r.host.inner.kernel.invariant().encode_state(r.host.inner.kernel.state(), &mut out);
                out
            })
            .collect();
        for i in 1..self.replicas.len() {
            if sets[i] != sets[0] {
                self.violation(format!("replicas {} and {} hold different id sets", self.nodes[0], self.nodes[i]));
            }
            if states[i] != states[0] {
                self.violation(format!("replicas {} and {} have different state bytes", self.nodes[0], self.nodes[i]));
            }
        }
        // the global bound, over every fact admitted anywhere
        if let Some(v) = global_bound_violation(self.scenario, &self.global) {
            self.violation(format!("global bound: {v}"));
        }
    }
}

/// A replica's state outside its invariant's bounds, if it is.
fn bounds_violation(r: &Replicated<Multi<Builtin>>) -> Option<String> {
    let inv = r.kernel.invariant();
    let state = r.kernel.state();
    for (m, member) in inv.members().iter().enumerate() {
        let cell = &state[m].cell;
        match member {
            Builtin::TotalSupply(_) => {
                let s = ctfs_core::invariants::TotalSupply::read(cell);
                if s.balance < s.min || s.balance > s.max {
                    return Some(format!("totalSupply balance {} outside [{}, {}]", s.balance, s.min, s.max));
                }
            }
            Builtin::BoundedGCounter(_) => {
                let s = ctfs_core::invariants::BoundedGCounter::read(cell);
                if s.sum > s.bound {
                    return Some(format!("boundedGCounter {} over {}", s.sum, s.bound));
                }
            }
            Builtin::UniqueSet(u) => {
                let c = ctfs_core::invariants::uniqueness::UniqueSet::count(cell);
                if u.max_elements.is_some_and(|max| c > max) {
                    return Some(format!("uniqueSet holds {c} elements"));
                }
            }
            Builtin::Graph(g) => {
                let e = ctfs_core::invariants::Graph::edge_count(cell);
                if g.max_edges().is_some_and(|max| e > max) {
                    return Some(format!("graph holds {e} edges"));
                }
            }
            _ => {}
        }
    }
    None
}

/// Replays every fact admitted anywhere (in id order: the union commutes)
/// with merge semantics and checks the bounds of the result.
fn global_bound_violation(scenario: Scenario, facts: &BTreeMap<FactId, Vec<u8>>) -> Option<String> {
    let mut k = ctfs_core::Kernel::new(scenario.invariant(), CausalityMode::Exact);
    for (id, payload) in facts {
        let _ = k.admit_merge(id, &[], payload);
    }
    let r = Replicated { kernel: k, replication: None };
    bounds_violation(&r)
}

/// Runs one seed.
pub fn run(cfg: SimConfig) -> SimResult {
    let mut rng = Rng::new(cfg.seed);
    let n = cfg.replicas.unwrap_or_else(|| rng.range(3, 7) as usize).clamp(1, 64);
    let scenario = cfg.scenario.unwrap_or_else(|| Scenario::ALL[rng.below(Scenario::ALL.len() as u64) as usize]);
    let nodes: Vec<NodeId> = (1..=n as u64).collect();
    // not drawn from `rng`: runs without the bus stay what they were
    let bus = cfg.bus.unwrap_or(cfg.seed % 3 == 0);
    let replicas = nodes.iter().map(|&id| new_replica(cfg.seed, scenario, &nodes, id, 1, false, bus)).collect();
    let drop_percent = rng.below(31);
    let stream = bus.then(|| Stream { entries: Vec::new(), floor: 0, cursor: vec![0; n], loss_percent: drop_percent / 3 });
    let net = Network {
        queue: BinaryHeap::new(),
        seq: 0,
        drop_percent,
        dup_percent: rng.below(11),
        max_delay: rng.range(2, 60),
        group: vec![0; n],
        delivered: 0,
        dropped: 0,
    };
    let result = SimResult { seed: cfg.seed, replicas: n, scenario: scenario.name(), drop_percent, bus, ..SimResult::default() };
    let sim = Sim { cfg, rng, scenario, nodes, replicas, net, now: 0, result, global: BTreeMap::new(), next_id: 0, outbox: Outbox::default(), stream };
    sim.run()
}

/// Distribution summary of a set of values: (p50, p90, p99, max).
pub fn percentiles(values: &mut [u64]) -> (u64, u64, u64, u64) {
    if values.is_empty() {
        return (0, 0, 0, 0);
    }
    values.sort_unstable();
    let at = |p: f64| values[((values.len() as f64 - 1.0) * p).round() as usize];
    (at(0.5), at(0.9), at(0.99), values[values.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_a_function_of_its_seed() {
        let a = run(SimConfig::new(7));
        let b = run(SimConfig::new(7));
        assert_eq!((a.admitted, a.frames_delivered, a.converge_ms, a.crashes), (b.admitted, b.frames_delivered, b.converge_ms, b.crashes));
        assert!(a.ok(), "{:?}", a.violations);
    }

    #[test]
    fn bus_mode_converges_for_every_scenario_through_a_lossy_stream() {
        for (i, s) in Scenario::ALL.into_iter().enumerate() {
            let mut cfg = SimConfig::new(2000 + i as u64);
            cfg.scenario = Some(s);
            cfg.bus = Some(true);
            let r = run(cfg);
            assert!(r.ok(), "{}: {:?} (replay: {})", s.name(), r.violations, r.replay_command());
            assert!(r.bus && r.stream_published > 50 && r.stream_delivered > 100, "{}: the stream carried facts: {r:?}", s.name());
        }
    }

    #[test]
    fn every_scenario_converges() {
        for (i, s) in Scenario::ALL.into_iter().enumerate() {
            let mut cfg = SimConfig::new(1000 + i as u64);
            cfg.scenario = Some(s);
            let r = run(cfg);
            assert!(r.ok(), "{}: {:?} (replay: {})", s.name(), r.violations, r.replay_command());
            assert!(r.admitted > 100, "{}: only {} admitted", s.name(), r.admitted);
        }
    }
}
