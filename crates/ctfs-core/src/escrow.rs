//! Escrow: a global bound split into per-replica quotas.
//!
//! A bounded invariant (a [`TotalSupply`](crate::invariants) with a finite
//! `min`, a bounded counter...) cannot be admitted independently on several
//! replicas: from balance 100 with `min = 0`, replicas A and B may each spend
//! 60 — both pass locally — and the merged balance is −20. Escrow splits the
//! *headroom* of the bound (here `balance − min = 100`) into quotas, one per
//! replica. A replica admits locally, with no coordination, as long as its own
//! quota covers the consumption; when it runs short it asks a peer for quota
//! ([`QuotaRequest`]) and the peer may hand some over ([`QuotaGrant`]).
//!
//! # Two ways to use an [`EscrowManager`]
//!
//! * **Ledger** ([`EscrowManager::new`] + [`initialize`](EscrowManager::initialize)):
//!   one manager holds every node's share and is authoritative for all of
//!   them; [`transfer`](EscrowManager::transfer) moves quota atomically. This
//!   is the single-process model (tests, a coordinator, the reference API).
//!   Invariant at all times:
//!   `Σ available(n) + Σ consumed(n) == Σ quota(n) == total()`.
//! * **Replica** (additionally [`set_local`](EscrowManager::set_local), or
//!   [`EscrowManager::replica`]): one manager per replica, all initialized
//!   with the same node list so they agree on the initial split. Only the
//!   local share is live; the peers' entries keep the initial split and serve
//!   as the membership (requests from unknown nodes are refused). Quota moves
//!   only through the request/grant messages. In this mode `try_consume`,
//!   `release` and `credit` accept only the local node and `transfer` is
//!   refused (it would move quota this replica does not own) — both with
//!   [`EscrowError::NotLocal`].
//!
//! # Safety over liveness
//!
//! The cluster-wide invariant is
//! `Σ_replicas quota(local) + Σ grants in flight + Σ grants lost == total`
//! (plus any [`credit`](EscrowManager::credit)s). Granted quota leaves the
//! granter when the grant is *created* and reaches the requester when the
//! grant is *received*. A lost grant message therefore loses quota: the bound
//! is under-used, never exceeded. What must never happen is creating quota
//! twice, and three rules prevent it:
//!
//! 1. **Request ids are unique per requester** (a monotonic counter) and a
//!    grant is credited only while its id is pending (or recently given up,
//!    see below); crediting removes the id, so a duplicated or replayed grant
//!    is ignored ([`GrantOutcome::Ignored`]). This is the reference's
//!    "double-credits a retried grant" defect, fixed.
//! 2. **A requester has at most one pending request per peer**, so a granter
//!    needs to remember only its last grant per requester: a retried request
//!    with that id gets the *same* grant back without a second debit, and a
//!    request with an older id gets a zero grant (no debit).
//! 3. **A grant credits at most what was requested**; any excess is dropped
//!    (lost, hence safe).
//!
//! A request that is never answered is retried with exponential backoff
//! (500 ms, 1 s, 2 s, 4 s, 4 s, ... by default) and given up after
//! [`EscrowConfig::max_attempts`] sends; given-up requests are reported by
//! [`poll`](EscrowManager::poll). A grant that arrives after its request was
//! given up is still credited once (the ids of the last
//! [`EscrowConfig::abandoned_capacity`] given-up requests are remembered);
//! older ones are ignored — safe.
//!
//! **Restarts.** Request ids must not be reused across restarts of a replica,
//! or a stale grant could be credited to a new request and granters would
//! deny the "old" ids. The replication layer seeds the counter with
//! [`set_next_request_id`](EscrowManager::set_next_request_id) (a persisted
//! value, or e.g. `unix_ms << 20`). Persisting the local quota itself belongs
//! to the durability layer, not here.
//!
//! # Credits stay local
//!
//! Quota created by a [`credit`](EscrowManager::credit) in replica mode is
//! *pinned*: spendable by this replica, never granted. The credit is a fact
//! that could still be lost in a crash before any peer received it; a peer
//! spending quota granted from it would then spend headroom that never
//! existed. Spends funded by pinned quota are admitted after the credit on
//! the same replica, and replicas deliver one origin's facts in order, so
//! wherever such a spend is applied its credit was applied first.
//!
//! # Mapping a TotalSupply onto escrow
//!
//! For a lower bound `min`: `total = balance − min` (the headroom for
//! debits). A debit `d` is `try_consume(local, d)`; a refund of an earlier
//! debit is `release(local, d)`; a fresh credit `c` (new money) is
//! `credit(local, c)`, which raises the local quota *and* the total — apply it
//! on the replica that admitted the credit fact only, never again when the
//! fact is replicated elsewhere. An upper bound `max` is the mirror image: an
//! escrow of `max − balance` consumed by credits.
//!
//! # Determinism
//!
//! No I/O, no threads, no clock: time comes in as `now_ms`, every collection
//! is ordered (`BTreeMap`), jitter (off by default) is a hash of the request
//! id and the attempt. Node ids are `u64` ([`NodeId`]). Amounts are `u128`, so
//! negative amounts are unrepresentable. No function panics on any input.

use std::collections::BTreeMap;
use std::fmt;

/// A replica's id. `u64`: cheap, ordered (the lowest ids receive the split's
/// remainder), and easy to carry in fixed-width frames. The replication layer
/// maps its peer identities (e.g. public-key hashes) onto these.
pub type NodeId = u64;

/// Why an escrow operation was refused. The manager is unchanged in every case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EscrowError {
    /// The node's available quota does not cover the amount.
    InsufficientQuota { available: u128, requested: u128 },
    /// The node is not part of the escrow (or the escrow is not initialized).
    UnknownNode { node: NodeId },
    /// In replica mode, an operation named a node other than the local one
    /// (or no local node is set for a request/grant operation).
    NotLocal { node: NodeId },
    /// `release` of more than the node has consumed.
    ExceedsConsumed { consumed: u128, requested: u128 },
    /// An amount or a counter would overflow.
    Overflow,
    /// A message could not be decoded.
    Malformed(&'static str),
    /// A call that cannot be honoured as made (empty node list, duplicate
    /// node id, initialized twice...).
    InvalidArgument(&'static str),
}

impl EscrowError {
    /// Stable code, the `code` of the `CtfsError` in JS.
    pub fn code(&self) -> &'static str {
        match self {
            EscrowError::InsufficientQuota { .. } => "INSUFFICIENT_QUOTA",
            EscrowError::UnknownNode { .. } => "UNKNOWN_NODE",
            EscrowError::NotLocal { .. } => "NOT_LOCAL_NODE",
            EscrowError::ExceedsConsumed { .. } => "EXCEEDS_CONSUMED",
            EscrowError::Overflow => "ESCROW_OVERFLOW",
            EscrowError::Malformed(_) => "MALFORMED_MESSAGE",
            EscrowError::InvalidArgument(_) => "INVALID_ARGUMENT",
        }
    }
}

impl fmt::Display for EscrowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EscrowError::InsufficientQuota { available, requested } => write!(
                f,
                "escrow quota too small: {requested} requested, {available} available here; request quota from a peer and retry"
            ),
            EscrowError::UnknownNode { node } => {
                write!(f, "node {node} is not part of the escrow; initialize it with every node id first")
            }
            EscrowError::NotLocal { node } => write!(
                f,
                "node {node} is not this replica's local node: a replica changes only its own share (set the local node, use request/grant to move quota)"
            ),
            EscrowError::ExceedsConsumed { consumed, requested } => write!(
                f,
                "cannot release {requested}: only {consumed} has been consumed; use credit() for new headroom"
            ),
            EscrowError::Overflow => write!(f, "escrow amount or counter overflow; nothing changed"),
            EscrowError::Malformed(reason) => write!(f, "malformed escrow message: {reason}"),
            EscrowError::InvalidArgument(reason) => write!(f, "invalid escrow call: {reason}"),
        }
    }
}

impl std::error::Error for EscrowError {}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// "Please give me `amount` of quota": sent by `from` (the requester) to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuotaRequest {
    pub request_id: u64,
    pub from: NodeId,
    pub to: NodeId,
    pub amount: u128,
}

/// The answer to a [`QuotaRequest`]: sent by `from` (the granter) to `to`
/// (the requester), carrying the request's id. `amount == 0` is a denial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuotaGrant {
    pub request_id: u64,
    pub from: NodeId,
    pub to: NodeId,
    pub amount: u128,
}

/// Tag byte of an encoded [`QuotaRequest`] (`'Q'`).
pub const QUOTA_REQUEST_TAG: u8 = 0x51;
/// Tag byte of an encoded [`QuotaGrant`] (`'G'`).
pub const QUOTA_GRANT_TAG: u8 = 0x47;
/// Encoded size of either message: `tag u8 | request_id u64 | from u64 |
/// to u64 | amount u128`, all little-endian.
pub const MESSAGE_LEN: usize = 1 + 8 + 8 + 8 + 16;

fn encode_fields(tag: u8, request_id: u64, from: NodeId, to: NodeId, amount: u128) -> [u8; MESSAGE_LEN] {
    let mut out = [0u8; MESSAGE_LEN];
    out[0] = tag;
    out[1..9].copy_from_slice(&request_id.to_le_bytes());
    out[9..17].copy_from_slice(&from.to_le_bytes());
    out[17..25].copy_from_slice(&to.to_le_bytes());
    out[25..41].copy_from_slice(&amount.to_le_bytes());
    out
}

fn decode_fields(tag: u8, bytes: &[u8]) -> Result<(u64, NodeId, NodeId, u128), EscrowError> {
    if bytes.len() != MESSAGE_LEN {
        return Err(EscrowError::Malformed(if bytes.len() < MESSAGE_LEN {
            "truncated escrow message"
        } else {
            "trailing bytes after escrow message"
        }));
    }
    if bytes[0] != tag {
        return Err(EscrowError::Malformed("wrong escrow message tag"));
    }
    let mut b8 = [0u8; 8];
    let mut b16 = [0u8; 16];
    b8.copy_from_slice(&bytes[1..9]);
    let request_id = u64::from_le_bytes(b8);
    b8.copy_from_slice(&bytes[9..17]);
    let from = u64::from_le_bytes(b8);
    b8.copy_from_slice(&bytes[17..25]);
    let to = u64::from_le_bytes(b8);
    b16.copy_from_slice(&bytes[25..41]);
    let amount = u128::from_le_bytes(b16);
    if from == to {
        return Err(EscrowError::Malformed("escrow message addressed to its sender"));
    }
    Ok((request_id, from, to, amount))
}

impl QuotaRequest {
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        encode_fields(QUOTA_REQUEST_TAG, self.request_id, self.from, self.to, self.amount)
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encode());
    }

    /// Exactly [`MESSAGE_LEN`] bytes with the request tag; `from != to`;
    /// `amount > 0` (a request for nothing is never sent).
    pub fn decode(bytes: &[u8]) -> Result<Self, EscrowError> {
        let (request_id, from, to, amount) = decode_fields(QUOTA_REQUEST_TAG, bytes)?;
        if amount == 0 {
            return Err(EscrowError::Malformed("quota request for zero"));
        }
        Ok(QuotaRequest { request_id, from, to, amount })
    }
}

impl QuotaGrant {
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        encode_fields(QUOTA_GRANT_TAG, self.request_id, self.from, self.to, self.amount)
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encode());
    }

    /// Exactly [`MESSAGE_LEN`] bytes with the grant tag; `from != to`. A zero
    /// amount is valid (a denial).
    pub fn decode(bytes: &[u8]) -> Result<Self, EscrowError> {
        let (request_id, from, to, amount) = decode_fields(QUOTA_GRANT_TAG, bytes)?;
        Ok(QuotaGrant { request_id, from, to, amount })
    }
}

// ---------------------------------------------------------------------------
// Configuration, backoff
// ---------------------------------------------------------------------------

/// Tuning of the request/grant state machine. `Default` is the documented
/// protocol: backoff 500 ms doubling to 4 s, 6 sends, no jitter, a granter
/// keeps half of its available quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EscrowConfig {
    /// Delay before the first retry, in ms (500).
    pub backoff_base_ms: u64,
    /// Cap of the doubling delay, in ms (4000).
    pub backoff_max_ms: u64,
    /// Extra deterministic delay in `[0, jitter_ms]`, a hash of the request
    /// id and attempt, to keep replicas from retrying in lockstep (0 = off).
    pub jitter_ms: u64,
    /// A request is sent at most this many times (the first send included),
    /// then given up when its last timeout expires. 0 is treated as 1.
    pub max_attempts: u32,
    /// Granting policy: keep at least this much available quota.
    pub reserve_min: u128,
    /// Granting policy: keep at least this percentage (0–100, larger values
    /// are treated as 100) of the available quota.
    pub reserve_percent: u8,
    /// How many given-up request ids are remembered so that a late grant is
    /// still credited (once).
    pub abandoned_capacity: usize,
}

impl Default for EscrowConfig {
    fn default() -> Self {
        EscrowConfig {
            backoff_base_ms: 500,
            backoff_max_ms: 4000,
            jitter_ms: 0,
            max_attempts: 6,
            reserve_min: 0,
            reserve_percent: 50,
            abandoned_capacity: 256,
        }
    }
}

impl EscrowConfig {
    /// The delay after the `attempt`-th send (1-based) before the next retry,
    /// without jitter: `min(base · 2^(attempt−1), max)`. Default schedule:
    /// 500, 1000, 2000, 4000, 4000, ... ms.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let shift = attempt.saturating_sub(1).min(63);
        let delay = self.backoff_base_ms.saturating_mul(1u64 << shift);
        delay.min(self.backoff_max_ms.max(self.backoff_base_ms))
    }

    fn delay_ms(&self, request_id: u64, attempt: u32) -> u64 {
        let base = self.backoff_ms(attempt);
        if self.jitter_ms == 0 {
            return base;
        }
        let h = splitmix64(request_id ^ (u64::from(attempt)).rotate_left(32));
        let jitter = match self.jitter_ms.checked_add(1) {
            Some(m) => h % m,
            None => h,
        };
        base.saturating_add(jitter)
    }

    fn effective_max_attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// How much of `available` this policy lets a granter give away.
    pub fn surplus(&self, available: u128) -> u128 {
        let pct = u128::from(self.reserve_percent.min(100));
        // available · pct / 100 without overflow.
        let kept_pct = available / 100 * pct + available % 100 * pct / 100;
        let keep = kept_pct.max(self.reserve_min);
        available.saturating_sub(keep)
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

// ---------------------------------------------------------------------------
// State machine types
// ---------------------------------------------------------------------------

/// A request this replica sent and has not seen answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRequest {
    pub request: QuotaRequest,
    /// How many times it has been sent (1 after `request_quota`).
    pub attempt: u32,
    pub first_sent_ms: u64,
    /// When `poll` resends it (or gives it up, after the last attempt).
    pub next_retry_at: u64,
}

/// What [`EscrowManager::poll`] found due.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Poll {
    /// Requests to send again (same id), in request-id order.
    pub resend: Vec<QuotaRequest>,
    /// Requests given up after `max_attempts` sends, in request-id order. A
    /// grant that still arrives for one is credited once.
    pub gave_up: Vec<QuotaRequest>,
}

/// What [`EscrowManager::on_grant`] did with a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantOutcome {
    /// Credited `amount` to the local quota; the request is resolved.
    Applied { amount: u128 },
    /// Credited `amount` for a request that had already been given up.
    AppliedLate { amount: u128 },
    /// The peer granted nothing; the request is resolved, and new requests to
    /// that peer wait out a backoff (see [`EscrowManager::request_quota`]).
    Denied,
    /// Not for a pending request: a duplicate, a replay, a stale answer, or
    /// from the wrong peer. Nothing changed.
    Ignored,
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EscrowStats {
    pub requests_sent: u64,
    pub retries_sent: u64,
    pub requests_given_up: u64,
    pub grants_applied: u64,
    pub denials_received: u64,
    pub grants_ignored: u64,
    pub grants_issued: u64,
    /// Quota that left this replica in grants.
    pub granted_out: u128,
    /// Quota that arrived at this replica in grants.
    pub granted_in: u128,
    /// Quota created here by `credit`.
    pub credited: u128,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Share {
    /// The node's allotment, consumed part included.
    quota: u128,
    /// Invariant: `consumed <= quota`.
    consumed: u128,
}

impl Share {
    fn available(&self) -> u128 {
        self.quota - self.consumed
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct PeerBackoff {
    consecutive_denials: u32,
    until_ms: u64,
}

/// Escrow of a global bound; see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct EscrowManager {
    total: u128,
    shares: BTreeMap<NodeId, Share>,
    initialized: bool,
    local: Option<NodeId>,
    config: EscrowConfig,
    next_request_id: u64,
    pending: BTreeMap<u64, PendingRequest>,
    abandoned: BTreeMap<u64, QuotaRequest>,
    /// Granter side: the last grant issued per requester.
    last_grant: BTreeMap<NodeId, QuotaGrant>,
    /// Requester side: backoff after denials, per peer.
    denials: BTreeMap<NodeId, PeerBackoff>,
    /// Replica mode: local quota created by [`credit`](Self::credit) and not
    /// yet consumed. It is spendable here but never granted away (see
    /// "Credits stay local" in the module docs). `pinned <= available(local)`.
    pinned: u128,
    stats: EscrowStats,
}

/// A replica's own share, as a durable replica persists it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalShare {
    pub total: u128,
    pub quota: u128,
    pub consumed: u128,
    pub pinned: u128,
}

/// What [`EscrowManager::consume_local`] took, for an exact
/// [`undo_consume`](EscrowManager::undo_consume).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Consumed {
    pub amount: u128,
    /// The part drawn from credited (pinned) quota.
    pub pinned: u128,
}

impl EscrowManager {
    /// A ledger over the global bound `total`, with no nodes yet.
    pub fn new(total: u128) -> Self {
        Self::with_config(total, EscrowConfig::default())
    }

    pub fn with_config(total: u128, config: EscrowConfig) -> Self {
        EscrowManager {
            total,
            shares: BTreeMap::new(),
            initialized: false,
            local: None,
            config,
            next_request_id: 1,
            pending: BTreeMap::new(),
            abandoned: BTreeMap::new(),
            last_grant: BTreeMap::new(),
            denials: BTreeMap::new(),
            pinned: 0,
            stats: EscrowStats::default(),
        }
    }

    /// A replica-mode manager: `with_config` + `initialize(nodes)` +
    /// `set_local(local)`.
    pub fn replica(total: u128, nodes: &[NodeId], local: NodeId, config: EscrowConfig) -> Result<Self, EscrowError> {
        let mut m = Self::with_config(total, config);
        m.initialize(nodes)?;
        m.set_local(local)?;
        Ok(m)
    }

    /// Splits the total evenly over `nodes`; the remainder goes one unit each
    /// to the lowest node ids, so every replica computes the same split from
    /// the same set, whatever its order. Fails on an empty list, a duplicate
    /// id, or a second call (re-splitting would forget consumption and could
    /// exceed the bound; membership changes are not handled here).
    pub fn initialize(&mut self, nodes: &[NodeId]) -> Result<(), EscrowError> {
        if self.initialized {
            return Err(EscrowError::InvalidArgument("escrow already initialized"));
        }
        if nodes.is_empty() {
            return Err(EscrowError::InvalidArgument("initialize needs at least one node"));
        }
        let mut sorted = nodes.to_vec();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(EscrowError::InvalidArgument("duplicate node id"));
        }
        let n = sorted.len() as u128; // >= 1
        let each = self.total / n;
        let remainder = self.total % n; // < n, fits usize
        let mut shares = BTreeMap::new();
        for (i, node) in sorted.iter().enumerate() {
            let extra = u128::from((i as u128) < remainder);
            shares.insert(*node, Share { quota: each + extra, consumed: 0 });
        }
        self.shares = shares;
        self.initialized = true;
        Ok(())
    }

    /// Switches to replica mode with `node` as the local replica. `node` must
    /// be a member; the local node cannot be changed once set.
    pub fn set_local(&mut self, node: NodeId) -> Result<(), EscrowError> {
        if !self.shares.contains_key(&node) {
            return Err(EscrowError::UnknownNode { node });
        }
        match self.local {
            Some(l) if l != node => Err(EscrowError::InvalidArgument("local node already set")),
            _ => {
                self.local = Some(node);
                Ok(())
            }
        }
    }

    /// Request ids continue from `next` if it is larger than the current
    /// counter (never moves backwards). See "Restarts" in the module docs.
    pub fn set_next_request_id(&mut self, next: u64) {
        self.next_request_id = self.next_request_id.max(next);
    }

    pub fn next_request_id(&self) -> u64 {
        self.next_request_id
    }

    pub fn local(&self) -> Option<NodeId> {
        self.local
    }

    pub fn config(&self) -> &EscrowConfig {
        &self.config
    }

    pub fn stats(&self) -> EscrowStats {
        self.stats
    }

    /// The global bound as this manager knows it (initial total + local
    /// credits).
    pub fn total(&self) -> u128 {
        self.total
    }

    /// Member node ids, ascending.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.shares.keys().copied()
    }

    pub fn contains(&self, node: NodeId) -> bool {
        self.shares.contains_key(&node)
    }

    /// The node's allotment (available + consumed); `None` if unknown. In
    /// replica mode a peer's entry is its initial split.
    pub fn quota(&self, node: NodeId) -> Option<u128> {
        self.shares.get(&node).map(|s| s.quota)
    }

    pub fn consumed(&self, node: NodeId) -> Option<u128> {
        self.shares.get(&node).map(|s| s.consumed)
    }

    pub fn available(&self, node: NodeId) -> Option<u128> {
        self.shares.get(&node).map(Share::available)
    }

    fn share_mut(&mut self, node: NodeId) -> Result<&mut Share, EscrowError> {
        if let Some(local) = self.local
            && node != local
        {
            return if self.shares.contains_key(&node) {
                Err(EscrowError::NotLocal { node })
            } else {
                Err(EscrowError::UnknownNode { node })
            };
        }
        self.shares.get_mut(&node).ok_or(EscrowError::UnknownNode { node })
    }

    /// Consumes `amount` of the node's quota, with no coordination. Refused
    /// (and nothing changes) if the available quota does not cover it.
    pub fn try_consume(&mut self, node: NodeId, amount: u128) -> Result<(), EscrowError> {
        let share = self.share_mut(node)?;
        let available = share.available();
        if amount > available {
            return Err(EscrowError::InsufficientQuota { available, requested: amount });
        }
        share.consumed += amount;
        let available = share.available();
        self.pinned = self.pinned.min(available);
        Ok(())
    }

    /// Replica mode: consumes `amount` of the local quota, credited (pinned)
    /// quota first, and says how much of each was taken.
    pub fn consume_local(&mut self, amount: u128) -> Result<Consumed, EscrowError> {
        let local = self.require_local()?;
        let pinned = self.pinned.min(amount);
        let before = self.pinned;
        self.try_consume(local, amount)?;
        self.pinned = before - pinned;
        Ok(Consumed { amount, pinned })
    }

    /// Undoes a [`consume_local`](Self::consume_local) exactly (the fact it
    /// paid for was refused after all).
    pub fn undo_consume(&mut self, taken: Consumed) -> Result<(), EscrowError> {
        let local = self.require_local()?;
        self.release(local, taken.amount)?;
        self.pinned += taken.pinned;
        Ok(())
    }

    /// Credited local quota not consumed yet (never granted away).
    pub fn pinned(&self) -> u128 {
        self.pinned
    }

    /// Replica mode: what a durable replica persists of its own share.
    pub fn local_state(&self) -> Option<LocalShare> {
        let local = self.local?;
        let s = self.shares.get(&local)?;
        Some(LocalShare { total: self.total, quota: s.quota, consumed: s.consumed, pinned: self.pinned })
    }

    /// Replica mode: restores a persisted local share (recovery).
    pub fn restore_local(&mut self, share: LocalShare) -> Result<(), EscrowError> {
        let local = self.require_local()?;
        let s = self.shares.get_mut(&local).ok_or(EscrowError::UnknownNode { node: local })?;
        s.quota = share.quota;
        s.consumed = share.consumed.min(share.quota);
        self.total = share.total;
        self.pinned = share.pinned.min(s.quota - s.consumed);
        Ok(())
    }

    /// Replica mode, recovery: a grant this replica issued (quota left).
    pub fn replay_grant_out(&mut self, amount: u128) {
        if let Some(local) = self.local
            && let Some(s) = self.shares.get_mut(&local)
        {
            s.quota = s.quota.saturating_sub(amount).max(s.consumed);
        }
        self.pinned = self.pinned.min(self.available(self.local.unwrap_or(0)).unwrap_or(0));
    }

    /// Replica mode, recovery: a grant this replica received (quota arrived).
    pub fn replay_grant_in(&mut self, amount: u128) {
        if let Some(local) = self.local
            && let Some(s) = self.shares.get_mut(&local)
        {
            s.quota = s.quota.saturating_add(amount);
        }
    }

    /// Replica mode, recovery: consumption by a logged local fact. Never
    /// fails: consumption beyond the quota is capped (the quota is then
    /// exhausted — never created).
    pub fn replay_consume(&mut self, amount: u128) {
        let pinned = self.pinned.min(amount);
        self.pinned -= pinned;
        if let Some(local) = self.local
            && let Some(s) = self.shares.get_mut(&local)
        {
            s.consumed = s.consumed.saturating_add(amount).min(s.quota);
        }
    }

    /// Replica mode, after a restart that lost this replica's memory: the
    /// local share is unknown, so it is forfeited (quota 0). Quota is never
    /// re-created by a restart; peers can grant some again. Pending requests
    /// are forgotten (their grants will be ignored) and request ids continue
    /// from `next_request_id`, which must exceed every id used before.
    pub fn forfeit_local(&mut self, next_request_id: u64) -> Result<(), EscrowError> {
        let local = self.require_local()?;
        if let Some(s) = self.shares.get_mut(&local) {
            *s = Share::default();
        }
        self.pinned = 0;
        self.pending.clear();
        self.abandoned.clear();
        self.last_grant.clear();
        self.denials.clear();
        self.set_next_request_id(next_request_id);
        Ok(())
    }

    /// Gives back `amount` of earlier consumption (a refund, an undone
    /// debit): consumed goes down, available goes up, quota and total stay.
    /// More than was consumed is [`EscrowError::ExceedsConsumed`] — new
    /// headroom is [`credit`](Self::credit).
    pub fn release(&mut self, node: NodeId, amount: u128) -> Result<(), EscrowError> {
        let share = self.share_mut(node)?;
        if amount > share.consumed {
            return Err(EscrowError::ExceedsConsumed { consumed: share.consumed, requested: amount });
        }
        share.consumed -= amount;
        Ok(())
    }

    /// New headroom created at this node (a credit fact admitted here, for a
    /// lower bound): the node's quota and the total both grow by `amount`.
    /// Apply it on the admitting replica only.
    pub fn credit(&mut self, node: NodeId, amount: u128) -> Result<(), EscrowError> {
        let total = self.total.checked_add(amount).ok_or(EscrowError::Overflow)?;
        let share = self.share_mut(node)?;
        // quota <= total always, so this cannot overflow when total did not.
        share.quota = share.quota.checked_add(amount).ok_or(EscrowError::Overflow)?;
        self.total = total;
        if self.local.is_some() {
            self.pinned += amount;
        }
        self.stats.credited = self.stats.credited.saturating_add(amount);
        Ok(())
    }

    /// Ledger mode: moves `amount` of available quota from one node to
    /// another, atomically. Refused in replica mode (use request/grant).
    pub fn transfer(&mut self, from: NodeId, to: NodeId, amount: u128) -> Result<(), EscrowError> {
        if let Some(local) = self.local {
            let node = if from != local { from } else { to };
            return Err(EscrowError::NotLocal { node });
        }
        let available = self.shares.get(&from).ok_or(EscrowError::UnknownNode { node: from })?.available();
        let to_quota = self.shares.get(&to).ok_or(EscrowError::UnknownNode { node: to })?.quota;
        if amount > available {
            return Err(EscrowError::InsufficientQuota { available, requested: amount });
        }
        if from == to {
            return Ok(());
        }
        let new_to = to_quota.checked_add(amount).ok_or(EscrowError::Overflow)?;
        if let Some(s) = self.shares.get_mut(&from) {
            s.quota -= amount;
        }
        if let Some(s) = self.shares.get_mut(&to) {
            s.quota = new_to;
        }
        Ok(())
    }

    fn require_local(&self) -> Result<NodeId, EscrowError> {
        self.local.ok_or(EscrowError::NotLocal { node: 0 })
    }

    // -- requester side ----------------------------------------------------

    /// Asks `peer` for `amount` of quota. Returns the message to send, or
    /// `None` when there is nothing to send now: `amount == 0`, a request to
    /// that peer is already pending (one at a time per peer — its retries are
    /// [`poll`](Self::poll)'s job), or the peer denied recently and its
    /// denial backoff (the same 500 ms → 4 s schedule, growing with
    /// consecutive denials) has not elapsed.
    pub fn request_quota(&mut self, peer: NodeId, amount: u128, now_ms: u64) -> Result<Option<QuotaRequest>, EscrowError> {
        let local = self.require_local()?;
        if peer == local || !self.shares.contains_key(&peer) {
            return Err(EscrowError::UnknownNode { node: peer });
        }
        if amount == 0 || self.pending.values().any(|p| p.request.to == peer) {
            return Ok(None);
        }
        if self.denials.get(&peer).is_some_and(|b| now_ms < b.until_ms) {
            return Ok(None);
        }
        let request_id = self.next_request_id;
        self.next_request_id = request_id.checked_add(1).ok_or(EscrowError::Overflow)?;
        let request = QuotaRequest { request_id, from: local, to: peer, amount };
        let next_retry_at = now_ms.saturating_add(self.config.delay_ms(request_id, 1));
        self.pending.insert(request_id, PendingRequest { request, attempt: 1, first_sent_ms: now_ms, next_retry_at });
        self.stats.requests_sent += 1;
        Ok(Some(request))
    }

    /// Requests whose timeout has expired at `now_ms`: resent with the next
    /// backoff step, or given up after `max_attempts` sends.
    pub fn poll(&mut self, now_ms: u64) -> Poll {
        let mut out = Poll::default();
        let max = self.config.effective_max_attempts();
        let mut expired = Vec::new();
        for (id, p) in self.pending.iter_mut() {
            if p.next_retry_at > now_ms {
                continue;
            }
            if p.attempt >= max {
                expired.push(*id);
            } else {
                p.attempt += 1;
                p.next_retry_at = now_ms.saturating_add(self.config.delay_ms(*id, p.attempt));
                out.resend.push(p.request);
                self.stats.retries_sent += 1;
            }
        }
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                out.gave_up.push(p.request);
                self.stats.requests_given_up += 1;
                if self.config.abandoned_capacity > 0 {
                    self.abandoned.insert(id, p.request);
                    while self.abandoned.len() > self.config.abandoned_capacity {
                        self.abandoned.pop_first();
                    }
                }
            }
        }
        out
    }

    /// The earliest `next_retry_at` among pending requests: when to call
    /// `poll` next.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.values().map(|p| p.next_retry_at).min()
    }

    /// Pending requests in request-id order.
    pub fn pending(&self) -> impl Iterator<Item = &PendingRequest> + '_ {
        self.pending.values()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Applies a grant received from a peer. Idempotent: a request id is
    /// credited at most once, so duplicated or replayed grants are
    /// [`GrantOutcome::Ignored`]. The credit is `min(grant.amount,
    /// requested)`. `now_ms` times the denial backoff.
    pub fn on_grant(&mut self, grant: &QuotaGrant, now_ms: u64) -> Result<GrantOutcome, EscrowError> {
        let local = self.require_local()?;
        if grant.to != local {
            return Err(EscrowError::NotLocal { node: grant.to });
        }
        let (request, late) = if let Some(p) = self.pending.get(&grant.request_id) {
            (p.request, false)
        } else if let Some(r) = self.abandoned.get(&grant.request_id) {
            (*r, true)
        } else {
            self.stats.grants_ignored += 1;
            return Ok(GrantOutcome::Ignored);
        };
        if request.to != grant.from || (late && grant.amount == 0) {
            // Wrong peer, or a denial of something already given up.
            self.stats.grants_ignored += 1;
            return Ok(GrantOutcome::Ignored);
        }
        let amount = grant.amount.min(request.amount);
        if amount == 0 {
            self.pending.remove(&grant.request_id);
            let b = self.denials.entry(grant.from).or_default();
            b.consecutive_denials = b.consecutive_denials.saturating_add(1);
            b.until_ms = now_ms.saturating_add(self.config.delay_ms(grant.request_id, b.consecutive_denials));
            self.stats.denials_received += 1;
            return Ok(GrantOutcome::Denied);
        }
        let share = self.shares.get_mut(&local).ok_or(EscrowError::UnknownNode { node: local })?;
        share.quota = share.quota.checked_add(amount).ok_or(EscrowError::Overflow)?;
        if late {
            self.abandoned.remove(&grant.request_id);
        } else {
            self.pending.remove(&grant.request_id);
        }
        self.denials.remove(&grant.from);
        self.stats.grants_applied += 1;
        self.stats.granted_in = self.stats.granted_in.saturating_add(amount);
        Ok(if late { GrantOutcome::AppliedLate { amount } } else { GrantOutcome::Applied { amount } })
    }

    // -- granter side ------------------------------------------------------

    /// Answers a peer's request. The granted amount leaves the local quota
    /// now (it is in flight until the requester receives it). Policy:
    /// `min(requested, surplus)` where the surplus keeps
    /// `max(reserve_min, reserve_percent % of available)`; nothing while this
    /// replica has requests of its own pending (a node short of quota does
    /// not give any away). A repeated request (same id as the last one from
    /// that peer) gets the same grant again without a second debit; an older
    /// id gets a zero grant.
    pub fn on_request(&mut self, req: &QuotaRequest) -> Result<QuotaGrant, EscrowError> {
        let local = self.require_local()?;
        if req.to != local {
            return Err(EscrowError::NotLocal { node: req.to });
        }
        if req.from == local || !self.shares.contains_key(&req.from) {
            return Err(EscrowError::UnknownNode { node: req.from });
        }
        let zero = QuotaGrant { request_id: req.request_id, from: local, to: req.from, amount: 0 };
        if let Some(last) = self.last_grant.get(&req.from) {
            if req.request_id == last.request_id {
                return Ok(*last);
            }
            if req.request_id < last.request_id {
                return Ok(zero);
            }
        }
        // Credited quota stays here: only the rest can be granted.
        let available = self.available(local).unwrap_or(0).saturating_sub(self.pinned);
        let amount = if self.pending.is_empty() { req.amount.min(self.config.surplus(available)) } else { 0 };
        if let Some(s) = self.shares.get_mut(&local) {
            // amount <= surplus <= available = quota - consumed.
            s.quota -= amount;
        }
        let grant = QuotaGrant { amount, ..zero };
        self.last_grant.insert(req.from, grant);
        self.stats.grants_issued += 1;
        self.stats.granted_out = self.stats.granted_out.saturating_add(amount);
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ledger_sum(m: &EscrowManager) -> (u128, u128, u128) {
        let mut q = 0;
        let mut a = 0;
        let mut c = 0;
        for n in m.nodes().collect::<Vec<_>>() {
            q += m.quota(n).unwrap();
            a += m.available(n).unwrap();
            c += m.consumed(n).unwrap();
        }
        (q, a, c)
    }

    #[test]
    fn initialize_splits_exactly_and_deterministically() {
        let mut m = EscrowManager::new(1000);
        m.initialize(&[3, 1, 2]).unwrap();
        assert_eq!(m.quota(1), Some(334));
        assert_eq!(m.quota(2), Some(333));
        assert_eq!(m.quota(3), Some(333));
        assert_eq!(ledger_sum(&m).0, 1000);
        let mut m2 = EscrowManager::new(1000);
        m2.initialize(&[2, 3, 1]).unwrap();
        for n in [1, 2, 3] {
            assert_eq!(m.quota(n), m2.quota(n));
        }
        // Reference example: 500/500.
        let mut r = EscrowManager::new(1000);
        r.initialize(&[1, 2]).unwrap();
        assert_eq!((r.quota(1), r.quota(2)), (Some(500), Some(500)));
        // Huge totals do not overflow.
        let mut h = EscrowManager::new(u128::MAX);
        h.initialize(&[7, 8, 9]).unwrap();
        assert_eq!(ledger_sum(&h).0, u128::MAX);
    }

    #[test]
    fn initialize_refuses_bad_input() {
        let mut m = EscrowManager::new(10);
        assert_eq!(m.initialize(&[]).unwrap_err().code(), "INVALID_ARGUMENT");
        assert_eq!(m.initialize(&[1, 1]).unwrap_err().code(), "INVALID_ARGUMENT");
        assert_eq!(m.try_consume(1, 1).unwrap_err(), EscrowError::UnknownNode { node: 1 });
        m.initialize(&[1]).unwrap();
        assert_eq!(m.initialize(&[1, 2]).unwrap_err().code(), "INVALID_ARGUMENT");
        assert_eq!(m.quota(1), Some(10));
    }

    #[test]
    fn reference_example() {
        let mut e = EscrowManager::new(1000);
        e.initialize(&[1, 2]).unwrap();
        e.try_consume(1, 400).unwrap();
        e.transfer(1, 2, 50).unwrap();
        assert_eq!(e.available(1), Some(50));
        assert_eq!(e.quota(1), Some(450));
        assert_eq!(e.available(2), Some(550));
        // The remaining 50 can move, not 51.
        assert_eq!(
            e.transfer(1, 2, 51).unwrap_err(),
            EscrowError::InsufficientQuota { available: 50, requested: 51 }
        );
        assert_eq!(ledger_sum(&e), (1000, 600, 400));
    }

    #[test]
    fn try_consume_never_overdraws_and_refusal_changes_nothing() {
        let mut m = EscrowManager::new(100);
        m.initialize(&[1, 2]).unwrap();
        m.try_consume(1, 30).unwrap();
        let before = (m.quota(1), m.consumed(1), m.available(1));
        let err = m.try_consume(1, 21).unwrap_err();
        assert_eq!(err, EscrowError::InsufficientQuota { available: 20, requested: 21 });
        assert_eq!(err.code(), "INSUFFICIENT_QUOTA");
        assert_eq!((m.quota(1), m.consumed(1), m.available(1)), before);
        m.try_consume(1, 20).unwrap();
        assert_eq!(m.available(1), Some(0));
        assert!(m.try_consume(1, 1).is_err());
        m.try_consume(1, 0).unwrap();
        assert_eq!(m.try_consume(9, 1).unwrap_err().code(), "UNKNOWN_NODE");
    }

    #[test]
    fn release_and_credit() {
        let mut m = EscrowManager::new(100);
        m.initialize(&[1, 2]).unwrap();
        m.try_consume(1, 40).unwrap();
        m.release(1, 15).unwrap();
        assert_eq!((m.consumed(1), m.available(1)), (Some(25), Some(25)));
        let e = m.release(1, 26).unwrap_err();
        assert_eq!(e, EscrowError::ExceedsConsumed { consumed: 25, requested: 26 });
        assert_eq!(e.code(), "EXCEEDS_CONSUMED");
        m.credit(2, 10).unwrap();
        assert_eq!((m.total(), m.quota(2)), (110, Some(60)));
        let (q, a, c) = ledger_sum(&m);
        assert_eq!((q, a + c), (110, 110));
        let mut big = EscrowManager::new(u128::MAX);
        big.initialize(&[1]).unwrap();
        assert_eq!(big.credit(1, 1).unwrap_err(), EscrowError::Overflow);
        assert_eq!(big.total(), u128::MAX);
    }

    #[test]
    fn transfer_conserves() {
        let mut m = EscrowManager::new(10);
        m.initialize(&[1, 2, 3]).unwrap();
        m.transfer(1, 3, 4).unwrap();
        m.transfer(2, 2, 3).unwrap();
        assert_eq!((m.quota(1), m.quota(2), m.quota(3)), (Some(0), Some(3), Some(7)));
        assert_eq!(ledger_sum(&m).0, 10);
        assert_eq!(m.transfer(1, 9, 0).unwrap_err().code(), "UNKNOWN_NODE");
        assert_eq!(m.transfer(9, 1, 0).unwrap_err().code(), "UNKNOWN_NODE");
    }

    #[test]
    fn replica_mode_touches_only_the_local_share() {
        let mut m = EscrowManager::replica(100, &[1, 2], 1, EscrowConfig::default()).unwrap();
        assert_eq!(m.try_consume(2, 1).unwrap_err(), EscrowError::NotLocal { node: 2 });
        assert_eq!(m.try_consume(3, 1).unwrap_err(), EscrowError::UnknownNode { node: 3 });
        assert_eq!(m.transfer(1, 2, 1).unwrap_err().code(), "NOT_LOCAL_NODE");
        assert_eq!(m.set_local(2).unwrap_err().code(), "INVALID_ARGUMENT");
        m.set_local(1).unwrap();
        assert_eq!(m.request_quota(1, 5, 0).unwrap_err().code(), "UNKNOWN_NODE");
        let mut ledger = EscrowManager::new(1);
        ledger.initialize(&[1, 2]).unwrap();
        assert_eq!(ledger.request_quota(2, 1, 0).unwrap_err().code(), "NOT_LOCAL_NODE");
    }

    #[test]
    fn backoff_schedule_is_500_1000_2000_4000_capped() {
        let cfg = EscrowConfig { max_attempts: 8, ..EscrowConfig::default() };
        let steps: Vec<u64> = (1..=7).map(|a| cfg.backoff_ms(a)).collect();
        assert_eq!(steps, [500, 1000, 2000, 4000, 4000, 4000, 4000]);
        assert_eq!(cfg.backoff_ms(u32::MAX), 4000);

        let mut m = EscrowManager::replica(100, &[1, 2], 1, cfg).unwrap();
        let req = m.request_quota(2, 10, 1_000).unwrap().unwrap();
        assert_eq!(req, QuotaRequest { request_id: 1, from: 1, to: 2, amount: 10 });
        // Only one pending request per peer.
        assert_eq!(m.request_quota(2, 10, 1_000).unwrap(), None);
        let mut now = 1_000;
        let mut delays = Vec::new();
        for attempt in 1..=8u32 {
            let due = m.next_deadline().unwrap();
            delays.push(due - now);
            // Nothing is due one millisecond early.
            assert_eq!(m.poll(due - 1), Poll::default());
            now = due;
            let p = m.poll(now);
            if attempt < 8 {
                assert_eq!(p.resend, vec![req]);
                assert!(p.gave_up.is_empty());
                assert_eq!(m.pending().next().unwrap().attempt, attempt + 1);
            } else {
                assert!(p.resend.is_empty());
                assert_eq!(p.gave_up, vec![req]);
            }
        }
        assert_eq!(delays, [500, 1000, 2000, 4000, 4000, 4000, 4000, 4000]);
        assert_eq!(m.pending_len(), 0);
        let s = m.stats();
        assert_eq!((s.requests_sent, s.retries_sent, s.requests_given_up), (1, 7, 1));
        // A late grant is still credited, once.
        let g = QuotaGrant { request_id: 1, from: 2, to: 1, amount: 10 };
        assert_eq!(m.on_grant(&g, now).unwrap(), GrantOutcome::AppliedLate { amount: 10 });
        assert_eq!(m.on_grant(&g, now).unwrap(), GrantOutcome::Ignored);
        assert_eq!(m.quota(1), Some(60));
    }

    #[test]
    fn jitter_is_deterministic_and_bounded() {
        let cfg = EscrowConfig { jitter_ms: 100, ..EscrowConfig::default() };
        for id in 0..50u64 {
            for a in 1..6 {
                let d = cfg.delay_ms(id, a);
                assert_eq!(d, cfg.delay_ms(id, a));
                assert!(d >= cfg.backoff_ms(a) && d <= cfg.backoff_ms(a) + 100);
            }
        }
    }

    #[test]
    fn grants_are_idempotent_and_requests_are_not_granted_twice() {
        let cfg = EscrowConfig::default();
        let mut a = EscrowManager::replica(100, &[1, 2], 1, cfg).unwrap();
        let mut b = EscrowManager::replica(100, &[1, 2], 2, cfg).unwrap();
        let req = a.request_quota(2, 40, 0).unwrap().unwrap();
        let g1 = b.on_request(&req).unwrap();
        assert_eq!(g1.amount, 25); // keeps half of 50
        assert_eq!(b.quota(2), Some(25));
        // The retried request gets the same grant, no second debit.
        let g2 = b.on_request(&req).unwrap();
        assert_eq!(g1, g2);
        assert_eq!(b.quota(2), Some(25));
        assert_eq!(a.on_grant(&g1, 0).unwrap(), GrantOutcome::Applied { amount: 25 });
        assert_eq!(a.on_grant(&g2, 0).unwrap(), GrantOutcome::Ignored);
        assert_eq!(a.quota(1), Some(75));
        assert_eq!(a.quota(1).unwrap() + b.quota(2).unwrap(), 100);
        // A newer request; then a stale copy of the old one gets a zero grant.
        let req2 = a.request_quota(2, 5, 10).unwrap().unwrap();
        assert!(req2.request_id > req.request_id);
        let g3 = b.on_request(&req2).unwrap();
        assert_eq!(g3.amount, 5);
        assert_eq!(b.on_request(&req).unwrap().amount, 0);
        assert_eq!(b.quota(2), Some(20));
        // A grant from the wrong peer, or for an id never issued, is ignored.
        let forged = QuotaGrant { from: 3, ..g3 };
        assert_eq!(a.on_grant(&forged, 10).unwrap(), GrantOutcome::Ignored);
        let unknown = QuotaGrant { request_id: 999, ..g3 };
        assert_eq!(a.on_grant(&unknown, 10).unwrap(), GrantOutcome::Ignored);
        assert_eq!(a.on_grant(&QuotaGrant { to: 2, ..g3 }, 10).unwrap_err().code(), "NOT_LOCAL_NODE");
        // Over-granting is clamped to what was requested.
        let over = QuotaGrant { amount: 1000, ..g3 };
        assert_eq!(a.on_grant(&over, 10).unwrap(), GrantOutcome::Applied { amount: 5 });
        assert_eq!(a.quota(1), Some(80));
        // Requests from strangers, or not addressed here, are refused.
        let stranger = QuotaRequest { request_id: 1, from: 7, to: 2, amount: 1 };
        assert_eq!(b.on_request(&stranger).unwrap_err().code(), "UNKNOWN_NODE");
        assert_eq!(b.on_request(&QuotaRequest { to: 1, ..req2 }).unwrap_err().code(), "NOT_LOCAL_NODE");
    }

    #[test]
    fn denial_resolves_and_backs_off() {
        let cfg = EscrowConfig { reserve_percent: 100, ..EscrowConfig::default() };
        let mut a = EscrowManager::replica(100, &[1, 2], 1, cfg).unwrap();
        let mut b = EscrowManager::replica(100, &[1, 2], 2, cfg).unwrap();
        let r = a.request_quota(2, 10, 0).unwrap().unwrap();
        let g = b.on_request(&r).unwrap();
        assert_eq!(g.amount, 0);
        assert_eq!(b.quota(2), Some(50));
        assert_eq!(a.on_grant(&g, 100).unwrap(), GrantOutcome::Denied);
        assert_eq!(a.pending_len(), 0);
        assert_eq!(a.request_quota(2, 10, 599).unwrap(), None);
        let r2 = a.request_quota(2, 10, 600).unwrap().unwrap();
        let g2 = b.on_request(&r2).unwrap();
        assert_eq!(a.on_grant(&g2, 600).unwrap(), GrantOutcome::Denied);
        // Second consecutive denial: 1 s.
        assert_eq!(a.request_quota(2, 10, 1599).unwrap(), None);
        assert!(a.request_quota(2, 10, 1600).unwrap().is_some());
    }

    #[test]
    fn a_node_with_pending_requests_grants_nothing() {
        let cfg = EscrowConfig::default();
        let mut a = EscrowManager::replica(90, &[1, 2, 3], 1, cfg).unwrap();
        a.request_quota(3, 5, 0).unwrap().unwrap();
        let r = QuotaRequest { request_id: 1, from: 2, to: 1, amount: 5 };
        assert_eq!(a.on_request(&r).unwrap().amount, 0);
        assert_eq!(a.quota(1), Some(30));
    }

    #[test]
    fn messages_round_trip_and_reject_malformed_input() {
        let r = QuotaRequest { request_id: 0x0102_0304_0506_0708, from: 1, to: u64::MAX, amount: u128::MAX - 3 };
        let bytes = r.encode();
        assert_eq!(bytes.len(), MESSAGE_LEN);
        assert_eq!(bytes[0], QUOTA_REQUEST_TAG);
        assert_eq!(&bytes[1..9], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(QuotaRequest::decode(&bytes).unwrap(), r);
        let g = QuotaGrant { request_id: 9, from: 2, to: 1, amount: 0 };
        let mut v = Vec::new();
        g.encode_into(&mut v);
        assert_eq!(QuotaGrant::decode(&v).unwrap(), g);

        let code = |e: EscrowError| e.code();
        assert_eq!(code(QuotaGrant::decode(&bytes).unwrap_err()), "MALFORMED_MESSAGE");
        assert_eq!(code(QuotaRequest::decode(&v).unwrap_err()), "MALFORMED_MESSAGE");
        assert!(QuotaRequest::decode(&bytes[..40]).is_err());
        assert!(QuotaRequest::decode(&[]).is_err());
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(QuotaRequest::decode(&long).is_err());
        let zero = QuotaRequest { amount: 0, ..r }.encode();
        assert!(QuotaRequest::decode(&zero).is_err());
        let selfaddr = QuotaGrant { to: 2, ..g }.encode();
        assert!(QuotaGrant::decode(&selfaddr).is_err());
    }

    /// The counterexample: TotalSupply balance 100, min 0, two replicas.
    #[test]
    fn two_replica_counterexample() {
        // Without escrow: each replica checks its own copy of the balance.
        let (min, start) = (0i128, 100i128);
        let spend = 60i128;
        let a_ok = start - spend >= min;
        let b_ok = start - spend >= min;
        assert!(a_ok && b_ok, "both pass locally");
        let merged = start - spend - spend;
        assert_eq!(merged, -20, "and the merged balance breaks the bound");

        // With escrow: the headroom (balance − min = 100) is split 50/50.
        let cfg = EscrowConfig::default();
        let total = (start - min) as u128;
        let mut a = EscrowManager::replica(total, &[1, 2], 1, cfg).unwrap();
        let mut b = EscrowManager::replica(total, &[1, 2], 2, cfg).unwrap();
        let mut balance = start;
        let mut admit = |m: &mut EscrowManager, node: NodeId, debit: i128| -> bool {
            match m.try_consume(node, debit as u128) {
                Ok(()) => {
                    balance -= debit;
                    true
                }
                Err(e) => {
                    assert_eq!(e.code(), "INSUFFICIENT_QUOTA");
                    false
                }
            }
        };
        // Both 60s are refused locally: 50 < 60.
        assert!(!admit(&mut a, 1, spend));
        assert!(!admit(&mut b, 2, spend));
        // A asks B for the missing 10; B keeps half of its 50 and grants 10.
        let req = a.request_quota(2, 10, 0).unwrap().unwrap();
        let grant = b.on_request(&QuotaRequest::decode(&req.encode()).unwrap()).unwrap();
        assert_eq!(grant.amount, 10);
        assert_eq!(
            a.on_grant(&QuotaGrant::decode(&grant.encode()).unwrap(), 1).unwrap(),
            GrantOutcome::Applied { amount: 10 }
        );
        assert!(admit(&mut a, 1, spend));
        // B now holds 40: its 60 stays refused until quota comes back.
        assert!(!admit(&mut b, 2, spend));
        assert!(admit(&mut b, 2, 40));
        assert_eq!(balance, 0);
        assert!(balance >= min);
        assert_eq!(a.consumed(1).unwrap() + b.consumed(2).unwrap(), total);
    }

    // -- properties ------------------------------------------------------

    #[derive(Clone, Debug)]
    enum LedgerOp {
        Consume(usize, u128),
        Release(usize, u128),
        Transfer(usize, usize, u128),
    }

    fn ledger_op() -> impl Strategy<Value = LedgerOp> {
        prop_oneof![
            (0..6usize, 0..400u128).prop_map(|(n, a)| LedgerOp::Consume(n, a)),
            (0..6usize, 0..400u128).prop_map(|(n, a)| LedgerOp::Release(n, a)),
            (0..6usize, 0..6usize, 0..400u128).prop_map(|(f, t, a)| LedgerOp::Transfer(f, t, a)),
        ]
    }

    #[derive(Clone, Debug)]
    enum NetOp {
        Consume(usize, u128),
        Release(usize, u128),
        Request(usize, usize, u128),
        Deliver(usize),
        Duplicate(usize),
        Drop(usize),
        Tick(u64),
    }

    fn net_op() -> impl Strategy<Value = NetOp> {
        prop_oneof![
            3 => (0..5usize, 0..300u128).prop_map(|(n, a)| NetOp::Consume(n, a)),
            1 => (0..5usize, 0..100u128).prop_map(|(n, a)| NetOp::Release(n, a)),
            3 => (0..5usize, 0..5usize, 1..400u128).prop_map(|(n, p, a)| NetOp::Request(n, p, a)),
            5 => any::<usize>().prop_map(NetOp::Deliver),
            1 => any::<usize>().prop_map(NetOp::Duplicate),
            1 => any::<usize>().prop_map(NetOp::Drop),
            2 => (0..5000u64).prop_map(NetOp::Tick),
        ]
    }

    #[derive(Clone, Copy, Debug)]
    enum Msg {
        Req([u8; MESSAGE_LEN]),
        Grant([u8; MESSAGE_LEN]),
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn ledger_conserves(total in 0..2000u128, n in 1..6usize, ops in prop::collection::vec(ledger_op(), 0..60)) {
            let nodes: Vec<NodeId> = (10..10 + n as u64).collect();
            let mut m = EscrowManager::new(total);
            m.initialize(&nodes).unwrap();
            for op in ops {
                let before = m.clone();
                let res = match op {
                    LedgerOp::Consume(i, a) => m.try_consume(nodes[i % n], a),
                    LedgerOp::Release(i, a) => m.release(nodes[i % n], a),
                    LedgerOp::Transfer(f, t, a) => m.transfer(nodes[f % n], nodes[t % n], a),
                };
                if res.is_err() {
                    for node in &nodes {
                        prop_assert_eq!(m.quota(*node), before.quota(*node));
                        prop_assert_eq!(m.consumed(*node), before.consumed(*node));
                    }
                }
                let (q, a, c) = ledger_sum(&m);
                prop_assert_eq!(q, total);
                prop_assert_eq!(a + c, total);
                for node in &nodes {
                    prop_assert!(m.consumed(*node).unwrap() <= m.quota(*node).unwrap());
                }
            }
        }

        #[test]
        fn cluster_never_creates_quota(
            total in 0..3000u128,
            n in 2..=5usize,
            max_attempts in 1..5u32,
            small_memory in any::<bool>(),
            ops in prop::collection::vec(net_op(), 0..120),
        ) {
            let nodes: Vec<NodeId> = (1..=n as u64).collect();
            let abandoned_capacity = if small_memory { 1 } else { 1024 };
            let cfg = EscrowConfig { max_attempts, abandoned_capacity, ..EscrowConfig::default() };
            let mut ms: Vec<EscrowManager> =
                nodes.iter().map(|&l| EscrowManager::replica(total, &nodes, l, cfg).unwrap()).collect();
            let mut net: Vec<Msg> = Vec::new();
            let mut now = 0u64;
            // Debited grants: (granter, requester, id) -> amount; and the credited ones.
            let mut debited: BTreeMap<(NodeId, NodeId, u64), u128> = BTreeMap::new();
            let mut credited: BTreeMap<(NodeId, NodeId, u64), u128> = BTreeMap::new();
            let mut dropped_any = false;

            let own = |ms: &[EscrowManager]| -> (u128, u128) {
                ms.iter().fold((0, 0), |(q, c), m| {
                    let l = m.local().unwrap();
                    (q + m.quota(l).unwrap(), c + m.consumed(l).unwrap())
                })
            };

            let deliver = |ms: &mut Vec<EscrowManager>, net: &mut Vec<Msg>, msg: Msg, now: u64,
                           debited: &mut BTreeMap<(NodeId, NodeId, u64), u128>,
                           credited: &mut BTreeMap<(NodeId, NodeId, u64), u128>| -> Result<(), TestCaseError> {
                match msg {
                    Msg::Req(b) => {
                        let r = QuotaRequest::decode(&b).unwrap();
                        let g = &mut ms[(r.to - 1) as usize];
                        let before = g.quota(r.to).unwrap();
                        let grant = g.on_request(&r).unwrap();
                        let drop_by = before - g.quota(r.to).unwrap();
                        prop_assert!(grant.amount <= r.amount);
                        if drop_by > 0 {
                            prop_assert_eq!(drop_by, grant.amount);
                            let key = (grant.from, grant.to, grant.request_id);
                            prop_assert!(debited.insert(key, drop_by).is_none(), "debited twice");
                        }
                        net.push(Msg::Grant(grant.encode()));
                    }
                    Msg::Grant(b) => {
                        let g = QuotaGrant::decode(&b).unwrap();
                        let m = &mut ms[(g.to - 1) as usize];
                        let key = (g.from, g.to, g.request_id);
                        match m.on_grant(&g, now).unwrap() {
                            GrantOutcome::Applied { amount } | GrantOutcome::AppliedLate { amount } => {
                                prop_assert_eq!(debited.get(&key).copied(), Some(amount));
                                prop_assert!(credited.insert(key, amount).is_none(), "credited twice");
                            }
                            GrantOutcome::Denied | GrantOutcome::Ignored => {}
                        }
                    }
                }
                Ok(())
            };

            for op in ops {
                match op {
                    NetOp::Consume(i, a) => {
                        let m = &mut ms[i % n];
                        let l = m.local().unwrap();
                        let before = (m.quota(l), m.consumed(l));
                        if m.try_consume(l, a).is_err() {
                            prop_assert_eq!((m.quota(l), m.consumed(l)), before);
                        }
                    }
                    NetOp::Release(i, a) => {
                        let m = &mut ms[i % n];
                        let l = m.local().unwrap();
                        let _ = m.release(l, a);
                    }
                    NetOp::Request(i, p, a) => {
                        let (i, p) = (i % n, p % n);
                        if i != p
                            && let Some(r) = ms[i].request_quota(nodes[p], a, now).unwrap()
                        {
                            net.push(Msg::Req(r.encode()));
                        }
                    }
                    NetOp::Deliver(k) => {
                        if !net.is_empty() {
                            let msg = net.remove(k % net.len());
                            deliver(&mut ms, &mut net, msg, now, &mut debited, &mut credited)?;
                        }
                    }
                    NetOp::Duplicate(k) => {
                        if !net.is_empty() {
                            let msg = net[k % net.len()];
                            net.push(msg);
                        }
                    }
                    NetOp::Drop(k) => {
                        if !net.is_empty() {
                            net.remove(k % net.len());
                            dropped_any = true;
                        }
                    }
                    NetOp::Tick(dt) => {
                        now += dt;
                        for m in ms.iter_mut() {
                            for r in m.poll(now).resend {
                                net.push(Msg::Req(r.encode()));
                            }
                        }
                    }
                }
                let (q, c) = own(&ms);
                let in_flight: u128 = debited.iter().filter(|(k, _)| !credited.contains_key(*k)).map(|(_, v)| *v).sum();
                prop_assert!(c <= q);
                prop_assert!(c <= total, "consumed beyond the bound");
                prop_assert!(q <= total, "quota created");
                // Exact: every debited unit is held by a replica or in a grant not yet credited.
                prop_assert_eq!(q + in_flight, total);
            }

            // Drain the network (duplicates included) in order.
            while !net.is_empty() {
                let msg = net.remove(0);
                deliver(&mut ms, &mut net, msg, now, &mut debited, &mut credited)?;
            }
            let (q, _) = own(&ms);
            prop_assert!(q <= total);
            if !dropped_any && !small_memory {
                // Nothing dropped (and given-up ids all remembered): every
                // debited grant was credited.
                let lost: u128 = debited.iter().filter(|(k, _)| !credited.contains_key(*k)).map(|(_, v)| *v).sum();
                prop_assert_eq!(lost, 0);
                prop_assert_eq!(q, total);
            }
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(r) = QuotaRequest::decode(&bytes) {
                let enc = r.encode();
                prop_assert_eq!(enc.as_slice(), bytes.as_slice());
            }
            if let Ok(g) = QuotaGrant::decode(&bytes) {
                let enc = g.encode();
                prop_assert_eq!(enc.as_slice(), bytes.as_slice());
            }
        }

        #[test]
        fn split_is_exact(total in any::<u128>(), mut nodes in prop::collection::btree_set(any::<u64>(), 1..20)) {
            let list: Vec<NodeId> = std::mem::take(&mut nodes).into_iter().rev().collect();
            let mut m = EscrowManager::new(total);
            m.initialize(&list).unwrap();
            let quotas: Vec<u128> = m.nodes().map(|x| m.quota(x).unwrap()).collect();
            let sum = quotas.iter().try_fold(0u128, |s, q| s.checked_add(*q));
            prop_assert_eq!(sum, Some(total));
            // Non-increasing by ascending id, differing by at most one.
            prop_assert!(quotas.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
        }
    }
}
