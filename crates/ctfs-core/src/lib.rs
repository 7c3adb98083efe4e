//! # ctfs-core
//!
//! The pure-Rust heart of ctfs: no I/O, no N-API, testable with `cargo test`.
//!
//! A *fact* is an immutable, content-addressed state transition: a 32-byte
//! [`FactId`], zero or more causal dependencies and a payload. A [`Kernel`]
//! admits facts into a state guarded by an [`Invariant`]:
//!
//! 1. **dedup** — an id admitted before is refused ([`AdmitError::DuplicateFact`]);
//! 2. **causality** — every dependency must have been admitted
//!    ([`AdmitError::CausalityViolation`]);
//! 3. **invariant** — the invariant checks the fact against the current state
//!    and produces an effect without touching the state;
//! 4. **commit** — state, clock, index and frontier change together.
//!
//! Any failure leaves the kernel exactly as it was.
//!
//! Causality has three instruments and one judge: the [`BloomClock`] is a fast
//! negative filter and a compact digest, the [`PreciseClock`] remembers the 16
//! most recent facts, and the [`ExactIndex`] is the ground truth (growable, no
//! horizon). Only [`CausalityMode::Bloom`] lets the Bloom clock judge alone.

pub mod batch;
pub mod bloom;
pub mod conflict;
pub mod custom;
pub mod error;
pub mod escrow;
pub mod exact_index;
#[cfg(test)]
mod exactness;
pub mod fact;
pub mod fingerprint;
pub mod frontier;
pub mod hash;
pub mod huge_pages;
pub mod id_arena;
pub mod invariant;
pub mod invariants;
mod keyed_hash8;
pub mod kernel;
pub mod metrics;
pub mod multi;
pub mod precise;
mod prefault;
pub mod replica;
pub mod state;
pub mod tenant;

pub use bloom::BloomClock;
pub use conflict::{compare_fact_ids, lowest_fact_id};
pub use error::{AdmitError, ErrorCode};
pub use escrow::{
    Consumed, EscrowConfig, EscrowError, EscrowManager, LocalShare, EscrowStats, GrantOutcome, NodeId, PendingRequest, Poll, QuotaGrant,
    QuotaRequest,
};
pub use exact_index::ExactIndex;
pub use fact::{Fact, FactId, IdDeriver};
pub use fingerprint::Fingerprint;
pub use frontier::Frontier;
pub use invariant::{AlgebraicClass, CellInvariant, Coordination, Invariant, InvariantError};
pub use multi::{MemberCounts, Multi, MultiEffect};
pub use kernel::{CausalityMode, Containment, Kernel, KernelConfig, KernelMetrics, KernelSnapshot, KernelStats, Prefetch, Requirement, SnapshotState, View};
pub use precise::PreciseClock;
pub use state::StateCell;
pub use tenant::Tenants;
