//! Frames: the unit every transport carries.
//!
//! ```text
//! offset  field
//!  0      magic "CF"
//!  2      version u8 (1)
//!  3      kind u8                 (see [`Kind`])
//!  4      body length u32 LE
//!  8      config tag u64 LE       (first 8 bytes of the cluster's configuration id)
//! 16      sender node u64 LE
//! 24      sender epoch u64 LE
//! 32      sequence u64 LE         (per sender → receiver link, from 1)
//! 40      body
//! 40+len  MAC [16]                keyed BLAKE3 (cluster key) of receiver u64 LE ‖ header ‖ body, first 16 bytes
//! ```
//!
//! The MAC covers the receiver's node id without carrying it, so a frame
//! addressed to one replica does not verify at another; the sequence, with a
//! sliding window per sender ([`ReplayWindow`]), drops a replayed frame.
//!
//! One kind is addressed to every member: [`Kind::Broadcast`] (an origin's
//! own facts, published once to a stream that every replica reads). Its MAC
//! is computed with receiver [`BROADCAST`] (0), so any member verifies it;
//! the kind byte is inside the MAC, so no point-to-point frame can be turned
//! into a broadcast one or back. Its sequence field is the origin sequence of
//! its first fact, and it has no replay window: a stream replays by design,
//! and facts are idempotent (an origin's facts already held are counted as
//! duplicates by the version vector, and the kernel refuses a known id). A
//! frame is checked in this order — length bounds (before anything is
//! read), magic, version, kind, MAC, then the body — and any failure drops
//! it with a [`FrameError`]: nothing is admitted, nothing allocated beyond
//! the frame itself. The reference's frames carried a CRC only, which anyone
//! can forge.

use ctfs_core::NodeId;

pub const MAGIC: [u8; 2] = *b"CF";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 40;
pub const MAC_LEN: usize = 16;
/// Header + MAC.
pub const OVERHEAD: usize = HEADER_LEN + MAC_LEN;
/// The receiver id in the MAC of [`Kind::Broadcast`] frames.
pub const BROADCAST: NodeId = 0;
/// Default largest frame (header, body and MAC).
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// Facts with their dependencies, grouped by origin (push and anti-entropy).
    Facts = 1,
    /// Anti-entropy round 1: count and digests.
    Probe = 2,
    /// "Same digests": the answer to a probe when nothing differs.
    Match = 3,
    /// Anti-entropy round 2: digests and the version vector.
    Summary = 4,
    QuotaRequest = 5,
    QuotaGrant = 6,
    SnapshotRequest = 7,
    SnapshotChunk = 8,
    /// "I hold facts you need that I cannot send (they predate my snapshot)."
    Gap = 9,
    /// The sender's own facts, for every member (a stream): MAC with
    /// receiver [`BROADCAST`], no replay window.
    Broadcast = 10,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Facts,
            2 => Kind::Probe,
            3 => Kind::Match,
            4 => Kind::Summary,
            5 => Kind::QuotaRequest,
            6 => Kind::QuotaGrant,
            7 => Kind::SnapshotRequest,
            8 => Kind::SnapshotChunk,
            9 => Kind::Gap,
            10 => Kind::Broadcast,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Facts => "facts",
            Kind::Probe => "probe",
            Kind::Match => "match",
            Kind::Summary => "summary",
            Kind::QuotaRequest => "quotaRequest",
            Kind::QuotaGrant => "quotaGrant",
            Kind::SnapshotRequest => "snapshotRequest",
            Kind::SnapshotChunk => "snapshotChunk",
            Kind::Gap => "gap",
            Kind::Broadcast => "broadcast",
        }
    }

    pub const ALL: [Kind; 10] = [
        Kind::Facts,
        Kind::Probe,
        Kind::Match,
        Kind::Summary,
        Kind::QuotaRequest,
        Kind::QuotaGrant,
        Kind::SnapshotRequest,
        Kind::SnapshotChunk,
        Kind::Gap,
        Kind::Broadcast,
    ];
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub body_len: u32,
    pub config: u64,
    pub sender: NodeId,
    pub epoch: u64,
    pub seq: u64,
}

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameError {
    /// Shorter than a header and a MAC.
    Truncated,
    /// Longer than the configured maximum (checked before anything else).
    TooLarge { len: usize, max: usize },
    BadMagic,
    UnsupportedVersion(u8),
    UnknownKind(u8),
    /// The length field does not match the bytes received.
    LengthMismatch,
    /// The MAC does not verify: wrong cluster key, tampering, or a frame
    /// addressed to another replica.
    Unauthenticated,
    /// Authenticated, but written under another cluster configuration.
    ConfigMismatch,
    /// Authenticated, but its sequence was seen already (or is too old).
    Replayed,
    /// Authenticated, but the body does not decode.
    Malformed(&'static str),
    /// Claims to come from this replica, or from a node not in the cluster.
    UnknownSender,
}

impl FrameError {
    /// Stable code (the JS `CtfsError` code for a dropped frame).
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::Truncated | FrameError::LengthMismatch | FrameError::BadMagic | FrameError::Malformed(_) => "MALFORMED_FRAME",
            FrameError::TooLarge { .. } => "FRAME_TOO_LARGE",
            FrameError::UnsupportedVersion(_) | FrameError::UnknownKind(_) => "UNSUPPORTED_FRAME",
            FrameError::Unauthenticated => "AUTH_FAILED",
            FrameError::ConfigMismatch => "CONFIG_MISMATCH",
            FrameError::Replayed => "REPLAYED_FRAME",
            FrameError::UnknownSender => "UNKNOWN_PEER",
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated => write!(f, "frame shorter than its {OVERHEAD}-byte header and MAC"),
            FrameError::TooLarge { len, max } => write!(f, "frame of {len} bytes exceeds the {max}-byte limit"),
            FrameError::BadMagic => write!(f, "not a ctfs frame (bad magic)"),
            FrameError::UnsupportedVersion(v) => write!(f, "frame version {v} is not supported (this build speaks {VERSION})"),
            FrameError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            FrameError::LengthMismatch => write!(f, "frame length field does not match the bytes received"),
            FrameError::Unauthenticated => write!(f, "frame MAC does not verify (wrong cluster key, tampered, or addressed to another node)"),
            FrameError::ConfigMismatch => write!(f, "frame written under another cluster configuration (invariant, mode or cluster id differ)"),
            FrameError::Replayed => write!(f, "frame sequence already seen (replay)"),
            FrameError::Malformed(m) => write!(f, "malformed frame body: {m}"),
            FrameError::UnknownSender => write!(f, "frame from a node that is not a peer of this replica"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Computes the MAC of `frame[..len - MAC_LEN]` for `receiver`.
fn mac(key: &[u8; 32], receiver: NodeId, signed: &[u8]) -> [u8; MAC_LEN] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&receiver.to_le_bytes());
    h.update(signed);
    let full = h.finalize();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full.as_bytes()[..MAC_LEN]);
    out
}

/// What a sender puts in every header.
#[derive(Clone, Copy, Debug)]
pub struct Sender {
    pub config: u64,
    pub node: NodeId,
    pub epoch: u64,
}

/// Seals `body` into a frame for `receiver`, appending to `out`.
pub fn seal(key: &[u8; 32], from: &Sender, receiver: NodeId, seq: u64, kind: Kind, body: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(OVERHEAD + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&from.config.to_le_bytes());
    out.extend_from_slice(&from.node.to_le_bytes());
    out.extend_from_slice(&from.epoch.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(body);
    let tag = mac(key, receiver, &out[start..]);
    out.extend_from_slice(&tag);
}

/// Seals `body` (the sender's own facts) into a [`Kind::Broadcast`] frame
/// that every member verifies; `seq` is the origin sequence of its first fact.
pub fn seal_broadcast(key: &[u8; 32], from: &Sender, seq: u64, body: &[u8], out: &mut Vec<u8>) {
    seal(key, from, BROADCAST, seq, Kind::Broadcast, body, out)
}

/// Checks a frame addressed to `me` (or to every member: a
/// [`Kind::Broadcast`] frame) and returns its header and body. Does
/// not check the configuration tag or the sequence (the caller knows them).
pub fn open<'a>(key: &[u8; 32], me: NodeId, max_frame: usize, frame: &'a [u8]) -> Result<(Header, &'a [u8]), FrameError> {
    if frame.len() > max_frame {
        return Err(FrameError::TooLarge { len: frame.len(), max: max_frame });
    }
    if frame.len() < OVERHEAD {
        return Err(FrameError::Truncated);
    }
    if frame[0..2] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    if frame[2] != VERSION {
        return Err(FrameError::UnsupportedVersion(frame[2]));
    }
    let kind = Kind::from_u8(frame[3]).ok_or(FrameError::UnknownKind(frame[3]))?;
    let body_len = u32::from_le_bytes(frame[4..8].try_into().map_err(|_| FrameError::Truncated)?);
    if body_len as usize != frame.len() - OVERHEAD {
        return Err(FrameError::LengthMismatch);
    }
    let (signed, tag) = frame.split_at(frame.len() - MAC_LEN);
    let receiver = if kind == Kind::Broadcast { BROADCAST } else { me };
    let want = mac(key, receiver, signed);
    // Constant time is not needed for a MAC compare against a one-shot
    // forgery (no oracle reveals partial matches), but it costs nothing.
    if want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
        return Err(FrameError::Unauthenticated);
    }
    let u = |at: usize| u64::from_le_bytes(frame[at..at + 8].try_into().unwrap_or([0; 8]));
    let header = Header { kind, body_len, config: u(8), sender: u(16), epoch: u(24), seq: u(32) };
    Ok((header, &frame[HEADER_LEN..HEADER_LEN + body_len as usize]))
}

/// Sliding replay window over one sender's sequence numbers (per epoch).
/// Accepts each sequence once; frames up to [`ReplayWindow::SPAN`] behind
/// the newest are still accepted (reordering), older ones are dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    epoch: u64,
    newest: u64,
    /// Bit i: `newest - i` was seen.
    seen: u128,
}

impl ReplayWindow {
    pub const SPAN: u64 = 128;

    /// Records `(epoch, seq)`; false when it must be dropped. A newer epoch
    /// resets the window; an older one is refused.
    pub fn accept(&mut self, epoch: u64, seq: u64) -> bool {
        if seq == 0 || epoch < self.epoch {
            return false;
        }
        if epoch > self.epoch {
            *self = ReplayWindow { epoch, newest: seq, seen: 1 };
            return true;
        }
        if seq > self.newest {
            let shift = seq - self.newest;
            self.seen = if shift >= Self::SPAN { 1 } else { (self.seen << shift) | 1 };
            self.newest = seq;
            return true;
        }
        let back = self.newest - seq;
        if back >= Self::SPAN {
            return false;
        }
        let bit = 1u128 << back;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 32] = [7; 32];
    const FROM: Sender = Sender { config: 0xC0FF_EE00, node: 1, epoch: 5 };

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        seal(&KEY, &FROM, 2, 9, Kind::Probe, body, &mut out);
        out
    }

    #[test]
    fn round_trip_and_layout() {
        let f = frame(b"hello");
        assert_eq!(f.len(), OVERHEAD + 5);
        let (h, body) = open(&KEY, 2, DEFAULT_MAX_FRAME, &f).unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(h, Header { kind: Kind::Probe, body_len: 5, config: 0xC0FF_EE00, sender: 1, epoch: 5, seq: 9 });
    }

    #[test]
    fn every_check_refuses() {
        let f = frame(b"hello");
        assert_eq!(open(&[8; 32], 2, DEFAULT_MAX_FRAME, &f), Err(FrameError::Unauthenticated), "wrong key");
        assert_eq!(open(&KEY, 3, DEFAULT_MAX_FRAME, &f), Err(FrameError::Unauthenticated), "other receiver");
        assert_eq!(open(&KEY, 2, f.len() - 1, &f), Err(FrameError::TooLarge { len: f.len(), max: f.len() - 1 }));
        assert_eq!(open(&KEY, 2, DEFAULT_MAX_FRAME, &f[..OVERHEAD - 1]), Err(FrameError::Truncated));
        assert_eq!(open(&KEY, 2, DEFAULT_MAX_FRAME, &f[..f.len() - 1]), Err(FrameError::LengthMismatch));
        let mut g = f.clone();
        g[0] = b'X';
        assert_eq!(open(&KEY, 2, DEFAULT_MAX_FRAME, &g), Err(FrameError::BadMagic));
        let mut g = f.clone();
        g[2] = 2;
        assert_eq!(open(&KEY, 2, DEFAULT_MAX_FRAME, &g), Err(FrameError::UnsupportedVersion(2)));
        let mut g = f.clone();
        g[3] = 99;
        assert_eq!(open(&KEY, 2, DEFAULT_MAX_FRAME, &g), Err(FrameError::UnknownKind(99)));
    }

    #[test]
    fn broadcast_frames_verify_at_every_member_and_cannot_change_kind() {
        let mut b = Vec::new();
        seal_broadcast(&KEY, &FROM, 40, b"facts", &mut b);
        for me in [0, 2, 3, 1_000] {
            let (h, body) = open(&KEY, me, DEFAULT_MAX_FRAME, &b).unwrap();
            assert_eq!((h.kind, h.seq, body), (Kind::Broadcast, 40, &b"facts"[..]));
        }
        assert_eq!(open(&[8; 32], 2, DEFAULT_MAX_FRAME, &b), Err(FrameError::Unauthenticated), "wrong key");
        // a broadcast frame relabelled as point-to-point facts verifies nowhere
        let mut g = b.clone();
        g[3] = Kind::Facts as u8;
        for me in [0, 2, 3] {
            assert_eq!(open(&KEY, me, DEFAULT_MAX_FRAME, &g), Err(FrameError::Unauthenticated));
        }
        // nor does a point-to-point frame relabelled as broadcast (even one addressed to node 0)
        for to in [0, 2] {
            let mut p = Vec::new();
            seal(&KEY, &FROM, to, 40, Kind::Facts, b"facts", &mut p);
            p[3] = Kind::Broadcast as u8;
            for me in [0, 2, 3] {
                assert_eq!(open(&KEY, me, DEFAULT_MAX_FRAME, &p), Err(FrameError::Unauthenticated));
            }
        }
    }

    proptest! {
        #[test]
        fn any_bit_flip_is_refused(body in proptest::collection::vec(any::<u8>(), 0..200), at in any::<usize>(), bit in 0u8..8) {
            let mut f = frame(&body);
            let i = at % f.len();
            f[i] ^= 1 << bit;
            prop_assert!(open(&KEY, 2, DEFAULT_MAX_FRAME, &f).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = open(&KEY, 2, DEFAULT_MAX_FRAME, &bytes);
        }

        #[test]
        fn window_accepts_each_sequence_once(seqs in proptest::collection::vec(1u64..400, 1..300)) {
            let mut w = ReplayWindow::default();
            let mut seen = std::collections::HashSet::new();
            let mut newest = 0;
            for s in seqs {
                let ok = w.accept(1, s);
                if ok {
                    prop_assert!(seen.insert(s), "sequence {} accepted twice", s);
                    newest = newest.max(s);
                } else {
                    prop_assert!(seen.contains(&s) || newest - s >= ReplayWindow::SPAN);
                }
            }
        }
    }

    #[test]
    fn window_epochs() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(2, 1));
        assert!(!w.accept(2, 1));
        assert!(!w.accept(1, 7), "older epoch");
        assert!(w.accept(3, 1), "restart");
        assert!(w.accept(3, 200));
        assert!(!w.accept(3, 2), "too far behind");
        assert!(w.accept(3, 199));
    }
}
