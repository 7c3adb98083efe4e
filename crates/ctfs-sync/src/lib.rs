//! # ctfs-sync
//!
//! The replication protocol of ctfs as a pure state machine: no sockets, no
//! threads, no wall clock, no randomness, no N-API. A [`Node`] consumes
//! inputs — a frame from a peer, a timer tick with the time, a fact admitted
//! locally, a quota shortfall — and produces outputs: frames to send and
//! events. The replica's kernel is lent to it through [`Host`].
//!
//! Because everything is a function of the inputs, the [`sim`] module can
//! run whole clusters over a seeded, adversarial network (drops,
//! duplicates, reordering, delays, partitions, crash-restarts) and replay any
//! run exactly from its seed. The same code runs under the real transports
//! (TCP mesh, NATS), which only move bytes.
//!
//! * [`frame`]: versioned, authenticated (keyed BLAKE3) frames with replay
//!   protection.
//! * [`message`]: frame bodies (facts in the packed batch layout with their
//!   dependencies, digests, version vectors, escrow messages, snapshot chunks).
//! * [`origin`]: per-origin numbering and version vectors.
//! * [`store`], [`buffer`]: the facts held (to serve peers) and the facts
//!   waiting for their causal past.
//! * [`snapshot`]: containers for joining by snapshot.
//! * [`node`]: the state machine.

pub mod buffer;
pub mod frame;
pub mod host;
pub mod message;
pub mod node;
pub mod origin;
pub mod sim;
pub mod snapshot;
pub mod store;

pub use buffer::{BufferLimits, CausalBuffer};
pub use frame::{FrameError, Kind};
pub use host::{Host, Replicated};
pub use node::{Event, Node, Outbox, Outgoing, PeerStats, SyncConfig, SyncStats};
pub use origin::{Origin, VersionVector};
