//! Replicated admission: what a replica may admit on its own.
//!
//! A [`Replication`] gate sits in front of a [`Kernel`] on one replica:
//!
//! * a fact addressed to an invariant whose class needs coordination
//!   ([`Coordination::Required`]) is refused with
//!   [`AdmitError::RequiresCoordination`] — the kernel cannot make it safe
//!   without consensus, and says so instead of admitting it;
//! * a fact for a *bounded* invariant ([`Coordination::Escrow`]) first
//!   consumes this replica's escrow quota for the headroom it uses (a debit of
//!   a TotalSupply with a finite `min` uses headroom above `min`; a credit
//!   under a finite `max`, or a BoundedGCounter increment, uses headroom below
//!   the bound). Without enough quota it is refused with
//!   [`AdmitError::InsufficientQuota`] and the replica should request quota
//!   from a peer (the [`EscrowManager`] request/grant machine). When the
//!   kernel then refuses the fact for another reason the quota is released;
//!   when it admits it, the headroom it *creates* on the opposite side (a
//!   debit makes room under `max`) is credited to this replica;
//! * coordination-free facts go straight to the kernel.
//!
//! Facts received from peers are admitted with [`Kernel::admit`] directly:
//! the replica that created them already consumed its own quota, and the
//! global bound holds because the quotas sum to the headroom.

use crate::escrow::{Consumed, EscrowConfig, EscrowError, EscrowManager, NodeId};
use crate::fact::FactId;
use crate::invariant::{AlgebraicClass, Coordination, Invariant};
use crate::kernel::Kernel;
use crate::error::{AdmitError, ErrorCode};

/// Headroom of one member's state to its bounds (`None`: that side is unbounded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Headroom {
    /// How far the value may still fall (to `min`).
    pub down: Option<u128>,
    /// How far it may still rise (to `max` / the bound).
    pub up: Option<u128>,
}

/// The headroom one fact would use on one member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    pub member: usize,
    /// Headroom used towards the lower bound (a debit).
    pub down: u128,
    /// Headroom used towards the upper bound (a credit / increment).
    pub up: u128,
}

/// An invariant that can say what a fact needs from escrow.
pub trait Escrowed: Invariant {
    /// Members (1 for a single invariant).
    fn member_count(&self) -> usize {
        1
    }
    /// Name and class of a member.
    fn member_class(&self, member: usize) -> (&str, AlgebraicClass);
    /// Headroom of member `member` in `state`.
    fn headroom(&self, member: usize, state: &Self::State) -> Headroom;
    /// Members addressed by `payload`, with what they would use. A payload
    /// the invariant cannot decode yields nothing (the kernel refuses it).
    fn demands(&self, payload: &[u8], out: &mut Vec<Demand>);
    /// Whether `member` refuses an element it already holds (a uniqueness
    /// set). Replicas merge such duplicates as no-ops, so a fact that pairs
    /// this member with another one would have an order-dependent outcome.
    fn refuses_duplicates(&self, _member: usize) -> bool {
        false
    }
}

/// Quota taken from one pool side for one demand.
#[derive(Clone, Copy, Debug, Default)]
struct Taken {
    down: Consumed,
    up: Consumed,
}

/// The escrow pools of one member: one per bounded side.
#[derive(Clone, Debug, Default)]
struct Pools {
    down: Option<EscrowManager>,
    up: Option<EscrowManager>,
}

/// Replicated-admission gate for one replica.
#[derive(Clone, Debug)]
pub struct Replication {
    local: NodeId,
    pools: Vec<Pools>,
    scratch: Vec<Demand>,
    taken: Vec<Taken>,
}

/// Which bound a pool guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Down,
    Up,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Down => "down",
            Side::Up => "up",
        }
    }
}

impl Replication {
    /// Splits the current headroom of every escrowed member of `kernel`
    /// evenly over `nodes`; this replica is `local`. Every replica of the
    /// cluster must call this with the same state and node list.
    pub fn new<I: Escrowed>(kernel: &Kernel<I>, nodes: &[NodeId], local: NodeId, config: EscrowConfig) -> Result<Self, EscrowError> {
        let inv = kernel.invariant();
        let mut pools = Vec::with_capacity(inv.member_count());
        for m in 0..inv.member_count() {
            let (_, class) = inv.member_class(m);
            let mut p = Pools::default();
            if class.coordination() == Coordination::Escrow {
                let h = inv.headroom(m, kernel.state());
                if let Some(total) = h.down {
                    p.down = Some(EscrowManager::replica(total, nodes, local, config.clone())?);
                }
                if let Some(total) = h.up {
                    p.up = Some(EscrowManager::replica(total, nodes, local, config.clone())?);
                }
            }
            pools.push(p);
        }
        Ok(Replication { local, pools, scratch: Vec::new(), taken: Vec::new() })
    }

    pub fn local(&self) -> NodeId {
        self.local
    }

    /// After a restart that lost this replica's memory (an in-memory replica,
    /// or a durable one whose quotas were not persisted): every local share
    /// is forfeited — a restart never re-creates quota — and request ids
    /// continue from `next_request_id`.
    pub fn forfeit_local(&mut self, next_request_id: u64) {
        for p in &mut self.pools {
            for m in [p.down.as_mut(), p.up.as_mut()].into_iter().flatten() {
                let _ = m.forfeit_local(next_request_id);
            }
        }
    }

    /// Recovery of a durable replica: re-applies the escrow effects of a
    /// logged fact this replica admitted itself (its consumption, and the
    /// headroom it created). Never fails.
    pub fn replay_local<I: Escrowed>(&mut self, invariant: &I, payload: &[u8]) {
        let mut demands = std::mem::take(&mut self.scratch);
        demands.clear();
        invariant.demands(payload, &mut demands);
        for d in &demands {
            if let Some(p) = self.pools.get_mut(d.member) {
                if d.down > 0
                    && let Some(m) = p.down.as_mut()
                {
                    m.replay_consume(d.down);
                }
                if d.up > 0
                    && let Some(m) = p.up.as_mut()
                {
                    m.replay_consume(d.up);
                }
            }
            self.credit_opposite(d);
        }
        self.scratch = demands;
    }

    /// Every pool's local share, for a checkpoint: `(member, side, share)`.
    pub fn local_shares(&self) -> Vec<(usize, Side, crate::escrow::LocalShare)> {
        self.pools().filter_map(|(m, s, p)| p.local_state().map(|share| (m, s, share))).collect()
    }

    /// Every escrow pool: `(member, side, manager)`.
    pub fn pools(&self) -> impl Iterator<Item = (usize, Side, &EscrowManager)> + '_ {
        self.pools.iter().enumerate().flat_map(|(i, p)| {
            p.down.iter().map(move |m| (i, Side::Down, m)).chain(p.up.iter().map(move |m| (i, Side::Up, m)))
        })
    }

    /// The escrow pool of `member` guarding `side`, for the request/grant
    /// exchange with peers.
    pub fn pool(&self, member: usize, side: Side) -> Option<&EscrowManager> {
        let p = self.pools.get(member)?;
        match side {
            Side::Down => p.down.as_ref(),
            Side::Up => p.up.as_ref(),
        }
    }

    pub fn pool_mut(&mut self, member: usize, side: Side) -> Option<&mut EscrowManager> {
        let p = self.pools.get_mut(member)?;
        match side {
            Side::Down => p.down.as_mut(),
            Side::Up => p.up.as_mut(),
        }
    }

    /// Admits a fact created on this replica (`id: None` derives one).
    pub fn admit_local<I: Escrowed>(
        &mut self,
        kernel: &mut Kernel<I>,
        id: Option<&FactId>,
        deps: &[crate::FactId],
        payload: &[u8],
    ) -> Result<FactId, AdmitError> {
        let mut demands = std::mem::take(&mut self.scratch);
        demands.clear();
        kernel.invariant().demands(payload, &mut demands);
        let r = self.admit_gated(kernel, id, deps, payload, &demands);
        self.scratch = demands;
        // Refusals of the gate itself (the kernel counts its own) appear in
        // the kernel's refusal counters like every other refusal.
        if let Err(e) = &r
            && matches!(e.code(), ErrorCode::RequiresCoordination | ErrorCode::InsufficientQuota)
        {
            kernel.note_refusal(e.code());
        }
        r
    }

    fn admit_gated<I: Escrowed>(
        &mut self,
        kernel: &mut Kernel<I>,
        id: Option<&FactId>,
        deps: &[FactId],
        payload: &[u8],
        demands: &[Demand],
    ) -> Result<FactId, AdmitError> {
        let inv = kernel.invariant();
        for d in demands {
            let (name, class) = inv.member_class(d.member);
            if class.coordination() == Coordination::Required {
                return Err(AdmitError::RequiresCoordination { invariant: name.to_owned(), class });
            }
            if demands.len() > 1 && inv.refuses_duplicates(d.member) {
                return Err(AdmitError::RequiresCoordination {
                    invariant: format!(
                        "{name} (a uniqueness check that guards the fact's other parts: whether it passes depends on which replica's fact arrives first)"
                    ),
                    class,
                });
            }
        }
        // Consume quota for every demand; undo on the first shortfall.
        let mut taken = std::mem::take(&mut self.taken);
        taken.clear();
        let mut failure = None;
        for d in demands {
            match self.consume(d) {
                Ok(t) => taken.push(t),
                Err(e) => {
                    let (name, _) = kernel.invariant().member_class(d.member);
                    failure = Some(AdmitError::InsufficientQuota { invariant: name.to_owned(), reason: e.to_string() });
                    break;
                }
            }
        }
        if let Some(e) = failure {
            for (d, t) in demands.iter().zip(&taken) {
                self.undo(d, *t);
            }
            self.taken = taken;
            return Err(e);
        }
        let r = match id {
            Some(id) => kernel.admit(id, deps, payload).map(|()| *id),
            None => kernel.admit_derived(deps, payload),
        };
        match &r {
            Ok(_) => {
                for d in demands {
                    self.credit_opposite(d);
                }
            }
            Err(_) => {
                for (d, t) in demands.iter().zip(&taken) {
                    self.undo(d, *t);
                }
            }
        }
        self.taken = taken;
        r
    }

    fn consume(&mut self, d: &Demand) -> Result<Taken, EscrowError> {
        let mut t = Taken::default();
        let Some(p) = self.pools.get_mut(d.member) else { return Ok(t) };
        if d.down > 0 {
            if let Some(m) = p.down.as_mut() {
                t.down = m.consume_local(d.down)?;
            }
        }
        if d.up > 0 {
            if let Some(m) = p.up.as_mut() {
                match m.consume_local(d.up) {
                    Ok(c) => t.up = c,
                    Err(e) => {
                        if let Some(m) = p.down.as_mut()
                            && t.down.amount > 0
                        {
                            let _ = m.undo_consume(t.down);
                        }
                        return Err(e);
                    }
                }
            }
        }
        Ok(t)
    }

    fn undo(&mut self, d: &Demand, t: Taken) {
        let Some(p) = self.pools.get_mut(d.member) else { return };
        if t.down.amount > 0
            && let Some(m) = p.down.as_mut()
        {
            let _ = m.undo_consume(t.down);
        }
        if t.up.amount > 0
            && let Some(m) = p.up.as_mut()
        {
            let _ = m.undo_consume(t.up);
        }
    }

    /// A debit makes room under the upper bound and a credit above the lower
    /// one; that room was created here, so this replica may use it.
    fn credit_opposite(&mut self, d: &Demand) {
        let local = self.local;
        let Some(p) = self.pools.get_mut(d.member) else { return };
        if d.down > 0 {
            if let Some(m) = p.up.as_mut() {
                let _ = m.credit(local, d.down);
            }
        }
        if d.up > 0 {
            if let Some(m) = p.down.as_mut() {
                let _ = m.credit(local, d.up);
            }
        }
    }
}

/// Escrow view of an i128 value within `[min, max]` changed by `delta`.
fn bounded_i128_headroom(value: i128, min: i128, max: i128) -> Headroom {
    Headroom {
        down: (min != i128::MIN).then(|| value.abs_diff(min)),
        up: (max != i128::MAX).then(|| max.abs_diff(value)),
    }
}

/// The headroom a signed delta uses.
fn i128_delta_demand(member: usize, delta: i128) -> Demand {
    if delta < 0 {
        Demand { member, down: delta.unsigned_abs(), up: 0 }
    } else {
        Demand { member, down: 0, up: delta as u128 }
    }
}

impl Escrowed for crate::invariants::TotalSupply {
    fn member_class(&self, _member: usize) -> (&str, AlgebraicClass) {
        ("totalSupply", crate::CellInvariant::class(self))
    }

    fn headroom(&self, _member: usize, state: &crate::StateCell) -> Headroom {
        let s = Self::read(state);
        bounded_i128_headroom(s.balance, s.min, s.max)
    }

    fn demands(&self, payload: &[u8], out: &mut Vec<Demand>) {
        if let Ok(raw) = <[u8; 16]>::try_from(payload) {
            out.push(i128_delta_demand(0, i128::from_le_bytes(raw)));
        }
    }
}

impl<I: Escrowed> Escrowed for crate::multi::Multi<I> {
    fn member_count(&self) -> usize {
        self.len()
    }

    fn member_class(&self, member: usize) -> (&str, AlgebraicClass) {
        self.members()[member].member_class(0)
    }

    fn headroom(&self, member: usize, state: &Vec<I::State>) -> Headroom {
        self.members()[member].headroom(0, &state[member])
    }

    fn refuses_duplicates(&self, member: usize) -> bool {
        self.members()[member].refuses_duplicates(0)
    }

    fn demands(&self, payload: &[u8], out: &mut Vec<Demand>) {
        if self.len() == 1 {
            return self.members()[0].demands(payload, out);
        }
        let Ok(mut parts) = crate::multi::Parts::new(payload, self.len()) else { return };
        while let Ok(Some((index, part))) = parts.next_part() {
            let start = out.len();
            self.members()[index as usize].demands(part, out);
            for d in &mut out[start..] {
                d.member = index as usize;
            }
            if start == out.len() {
                // addressed but nothing to escrow: still report the member
                // so that its class is checked
                out.push(Demand { member: index as usize, down: 0, up: 0 });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::TotalSupply;
    use crate::kernel::CausalityMode;
    use crate::multi::{Multi, encode_parts};

    fn d(v: i128) -> [u8; 16] {
        v.to_le_bytes()
    }

    fn balance(k: &Kernel<TotalSupply>) -> i128 {
        TotalSupply::read(k.state()).balance
    }

    /// The counterexample: balance 100, min 0, two replicas each
    /// spend 60. Without escrow both pass locally and the merged history
    /// breaks the bound; with escrow the second replica is refused.
    #[test]
    fn two_replicas_spending_60_of_100() {
        let inv = TotalSupply::new(100, 0, i128::MAX).unwrap();
        // without escrow
        let mut a = Kernel::new(inv, CausalityMode::Exact);
        let mut b = Kernel::new(inv, CausalityMode::Exact);
        a.admit(&FactId([1; 32]), &[], &d(-60)).unwrap();
        b.admit(&FactId([2; 32]), &[], &d(-60)).unwrap();
        // merging b's fact into a is refused: the union is not admissible
        assert!(a.admit(&FactId([2; 32]), &[], &d(-60)).is_err());

        // with escrow: 50 each
        let mut a = Kernel::new(inv, CausalityMode::Exact);
        let mut b = Kernel::new(inv, CausalityMode::Exact);
        let mut ra = Replication::new(&a, &[1, 2], 1, EscrowConfig::default()).unwrap();
        let mut rb = Replication::new(&b, &[1, 2], 2, EscrowConfig::default()).unwrap();
        let e = ra.admit_local(&mut a, Some(&FactId([1; 32])), &[], &d(-60)).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InsufficientQuota);
        assert_eq!(balance(&a), 100, "refused: nothing changed");
        ra.admit_local(&mut a, Some(&FactId([1; 32])), &[], &d(-50)).unwrap();
        rb.admit_local(&mut b, Some(&FactId([2; 32])), &[], &d(-50)).unwrap();
        assert!(rb.admit_local(&mut b, Some(&FactId([3; 32])), &[], &d(-1)).is_err());
        // exchange: every fact admitted locally is admissible everywhere
        a.admit(&FactId([2; 32]), &[], &d(-50)).unwrap();
        b.admit(&FactId([1; 32]), &[], &d(-50)).unwrap();
        assert_eq!((balance(&a), balance(&b)), (0, 0));
    }

    #[test]
    fn credits_made_here_can_be_spent_here() {
        let inv = TotalSupply::new(10, 0, i128::MAX).unwrap();
        let mut k = Kernel::new(inv, CausalityMode::Exact);
        let mut r = Replication::new(&k, &[1, 2], 1, EscrowConfig::default()).unwrap();
        assert!(r.admit_local(&mut k, None, &[], &d(-6)).is_err());
        r.admit_local(&mut k, None, &[], &d(20)).unwrap();
        r.admit_local(&mut k, None, &[], &d(-25)).unwrap();
        assert_eq!(balance(&k), 5);
        assert_eq!(r.pool(0, Side::Down).unwrap().available(1), Some(0));
    }

    #[test]
    fn quota_is_released_when_the_kernel_refuses() {
        let inv = TotalSupply::new(100, 0, i128::MAX).unwrap();
        let mut k = Kernel::new(inv, CausalityMode::Exact);
        let mut r = Replication::new(&k, &[1], 1, EscrowConfig::default()).unwrap();
        let e = r.admit_local(&mut k, Some(&FactId([1; 32])), &[FactId([9; 32])], &d(-30)).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::CausalityViolation);
        assert_eq!(r.pool(0, Side::Down).unwrap().available(1), Some(100));
        assert_eq!(k.stats().rejected[crate::ErrorCode::CausalityViolation as usize], 1, "counted once, by the kernel");
    }

    #[test]
    fn gate_refusals_are_counted_in_the_kernel_stats() {
        let inv = TotalSupply::new(100, 0, i128::MAX).unwrap();
        let mut k = Kernel::new(inv, CausalityMode::Exact);
        let mut r = Replication::new(&k, &[1, 2], 1, EscrowConfig::default()).unwrap();
        for i in 0..3 {
            let e = r.admit_local(&mut k, Some(&FactId([i; 32])), &[], &d(-60)).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::InsufficientQuota);
        }
        r.admit_local(&mut k, None, &[], &d(-10)).unwrap();
        let s = k.stats();
        assert_eq!(s.admitted, 1);
        assert_eq!(s.rejected[crate::ErrorCode::InsufficientQuota as usize], 3);
        assert_eq!(s.rejected.iter().sum::<u64>(), 3);
    }

    #[test]
    fn unbounded_needs_no_escrow_and_multi_routes_per_member() {
        let m = Multi::new(vec![TotalSupply::unbounded(0), TotalSupply::new(10, 0, 20).unwrap()]).unwrap();
        let mut k = Kernel::new(m, CausalityMode::Exact);
        let mut r = Replication::new(&k, &[1, 2], 1, EscrowConfig::default()).unwrap();
        assert!(r.pool(0, Side::Down).is_none());
        assert_eq!(r.pool(1, Side::Down).unwrap().available(1), Some(5));
        assert_eq!(r.pool(1, Side::Up).unwrap().available(1), Some(5));
        let p = encode_parts(&[(0, &d(-1000)), (1, &d(-5))]).unwrap();
        r.admit_local(&mut k, None, &[], &p).unwrap();
        let p = encode_parts(&[(1, &d(-1))]).unwrap();
        assert_eq!(r.admit_local(&mut k, None, &[], &p).unwrap_err().code(), crate::ErrorCode::InsufficientQuota);
        // the debit of 5 made room for 5 more credits here (5 + 5)
        let p = encode_parts(&[(1, &d(10))]).unwrap();
        r.admit_local(&mut k, None, &[], &p).unwrap();
    }

    #[test]
    fn merge_admits_what_the_origin_admitted() {
        use crate::invariants::Builtin;
        // a duplicate element is a no-op, not a refusal: the id is recorded
        let mut k = Kernel::new(Builtin::uniqueness_cell(), CausalityMode::Exact);
        k.admit(&FactId([1; 32]), &[], &[7, 0]).unwrap();
        let before = k.state().clone();
        assert_eq!(k.admit(&FactId([2; 32]), &[], &[7, 0]).unwrap_err().code(), crate::ErrorCode::DuplicateElement);
        k.admit_merge(&FactId([2; 32]), &[], &[7, 0]).unwrap();
        assert_eq!(*k.state(), before);
        assert_eq!(k.len(), 2);
        assert_eq!(k.admit_merge(&FactId([2; 32]), &[], &[7, 0]).unwrap_err().code(), crate::ErrorCode::DuplicateFact);
        // causality still judged
        let e = k.admit_merge(&FactId([3; 32]), &[FactId([9; 32])], &[8, 0]).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::CausalityViolation);
        // uniqueSet: duplicate key no-op, max_elements left to escrow
        let mut k = Kernel::new(Builtin::unique_set(Some(1)).unwrap(), CausalityMode::Exact);
        k.admit(&FactId([1; 32]), &[], &[1; 32]).unwrap();
        let cell = k.state().cell;
        k.admit_merge(&FactId([2; 32]), &[], &[1; 32]).unwrap();
        assert_eq!(k.state().cell, cell);
        k.admit_merge(&FactId([3; 32]), &[], &[2; 32]).unwrap();
        assert_eq!(crate::invariants::uniqueness::UniqueSet::count(&k.state().cell), 2);
        // malformed payloads are still refused
        assert!(k.admit_merge(&FactId([4; 32]), &[], &[1; 3]).is_err());
        // totalSupply: escrowed bounds are the origin's business
        let mut k = Kernel::new(TotalSupply::new(10, 0, 20).unwrap(), CausalityMode::Exact);
        k.admit_merge(&FactId([1; 32]), &[], &d(-15)).unwrap();
        assert_eq!(balance(&k), -5);
        k.admit_merge(&FactId([2; 32]), &[], &d(30)).unwrap();
        assert_eq!(balance(&k), 25);
    }

    #[test]
    fn a_uniqueness_guard_on_other_parts_needs_coordination() {
        use crate::invariants::Builtin;
        let m = Multi::new(vec![Builtin::uniqueness_cell(), Builtin::total_supply(0, i128::MIN, i128::MAX).unwrap()]).unwrap();
        let mut k = Kernel::new(m, CausalityMode::Exact);
        let mut r = Replication::new(&k, &[1, 2], 1, EscrowConfig::default()).unwrap();
        let both = encode_parts(&[(0, &[7, 0]), (1, &d(5))]).unwrap();
        let e = r.admit_local(&mut k, None, &[], &both).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::RequiresCoordination);
        assert!(e.to_string().contains("uniqueness"), "{e}");
        let alone = encode_parts(&[(0, &[7, 0])]).unwrap();
        r.admit_local(&mut k, None, &[], &alone).unwrap();
        let pay = encode_parts(&[(1, &d(5))]).unwrap();
        r.admit_local(&mut k, None, &[], &pay).unwrap();
    }

    #[test]
    fn credited_quota_is_spent_here_never_granted() {
        use crate::escrow::QuotaRequest;
        let inv = TotalSupply::new(10, 0, i128::MAX).unwrap();
        let mut k = Kernel::new(inv, CausalityMode::Exact);
        let mut r = Replication::new(&k, &[1, 2], 1, EscrowConfig { reserve_percent: 0, ..EscrowConfig::default() }).unwrap();
        r.admit_local(&mut k, None, &[], &d(20)).unwrap();
        let pool = r.pool_mut(0, Side::Down).unwrap();
        assert_eq!((pool.available(1), pool.pinned()), (Some(25), 20));
        let g = pool.on_request(&QuotaRequest { request_id: 1, from: 2, to: 1, amount: 100 }).unwrap();
        assert_eq!(g.amount, 5, "only the initial share can leave");
        // spending draws on the credit first; a refused fact gives it back exactly
        let e = r.admit_local(&mut k, None, &[FactId([9; 32])], &d(-20)).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::CausalityViolation);
        assert_eq!(r.pool(0, Side::Down).unwrap().pinned(), 20);
        r.admit_local(&mut k, None, &[], &d(-20)).unwrap();
        assert_eq!(r.pool(0, Side::Down).unwrap().pinned(), 0);
        assert_eq!(balance(&k), 10);
    }

    #[test]
    fn a_restart_forfeits_the_local_share() {
        let inv = TotalSupply::new(100, 0, i128::MAX).unwrap();
        let mut k = Kernel::new(inv, CausalityMode::Exact);
        let mut r = Replication::new(&k, &[1, 2], 1, EscrowConfig::default()).unwrap();
        r.forfeit_local(1 << 40);
        assert_eq!(r.pool(0, Side::Down).unwrap().available(1), Some(0));
        assert_eq!(r.admit_local(&mut k, None, &[], &d(-1)).unwrap_err().code(), crate::ErrorCode::InsufficientQuota);
        assert_eq!(r.pool(0, Side::Down).unwrap().next_request_id(), 1 << 40);
        assert_eq!(r.pools().count(), 1);
    }
}
