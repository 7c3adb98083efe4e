//! Admission errors and the stable error codes shared with the JS API.

use std::borrow::Cow;
use std::fmt;

use crate::fact::FactId;
use crate::invariant::{AlgebraicClass, InvariantError};

/// Stable error codes. The numeric value crosses the N-API boundary as a
/// status; the string is the `code` of a `CtfsError` in JS. Never renumber.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Ok = 0,
    DuplicateFact = 1,
    CausalityViolation = 2,
    InvariantViolation = 3,
    MalformedFact = 4,
    PayloadTooLarge = 5,
    CausalHorizonExceeded = 6,
    RequiresCoordination = 7,
    DuplicateElement = 8,
    BufferFull = 9,
    InsufficientQuota = 10,
    WalFailed = 11,
    WalClosed = 12,
    /// The kernel was called from inside one of its own admissions (a
    /// custom invariant's rule calling back into its kernel). Never produced
    /// by the core itself: the bindings report it; nothing changed.
    Busy = 13,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::Ok,
        ErrorCode::DuplicateFact,
        ErrorCode::CausalityViolation,
        ErrorCode::InvariantViolation,
        ErrorCode::MalformedFact,
        ErrorCode::PayloadTooLarge,
        ErrorCode::CausalHorizonExceeded,
        ErrorCode::RequiresCoordination,
        ErrorCode::DuplicateElement,
        ErrorCode::BufferFull,
        ErrorCode::InsufficientQuota,
        ErrorCode::WalFailed,
        ErrorCode::WalClosed,
        ErrorCode::Busy,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Ok => "OK",
            ErrorCode::DuplicateFact => "DUPLICATE_FACT",
            ErrorCode::CausalityViolation => "CAUSALITY_VIOLATION",
            ErrorCode::InvariantViolation => "INVARIANT_VIOLATION",
            ErrorCode::MalformedFact => "MALFORMED_FACT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::CausalHorizonExceeded => "CAUSAL_HORIZON_EXCEEDED",
            ErrorCode::RequiresCoordination => "REQUIRES_COORDINATION",
            ErrorCode::DuplicateElement => "DUPLICATE_ELEMENT",
            ErrorCode::BufferFull => "BUFFER_FULL",
            ErrorCode::InsufficientQuota => "INSUFFICIENT_QUOTA",
            ErrorCode::WalFailed => "WAL_FAILED",
            ErrorCode::WalClosed => "WAL_CLOSED",
            ErrorCode::Busy => "BUSY",
        }
    }
}

/// Why a fact was not admitted. The kernel is unchanged in every case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdmitError {
    /// This id was admitted before (retries are idempotent: nothing changes).
    /// `certain` is false only in Bloom mode, where a saturated clock cannot
    /// tell a retry from a new id and refuses rather than risk applying twice.
    DuplicateFact { id: FactId, certain: bool },
    /// Dependency `deps[index]` has not been admitted here.
    CausalityViolation { id: FactId, missing: FactId, index: usize },
    /// The invariant refused the fact.
    Invariant { id: FactId, error: InvariantError },
    /// The fact's shape is wrong (too many deps, truncated batch record...).
    MalformedFact { reason: Cow<'static, str> },
    PayloadTooLarge { len: usize, max: usize },
    /// The kernel tracks at most `limit` facts and is full. It refuses new
    /// facts rather than forgetting old ones.
    CausalHorizonExceeded { limit: usize },
    /// The invariant's class needs coordination for this replicated admission.
    RequiresCoordination { invariant: String, class: AlgebraicClass },
    /// Replicated admission of a bounded invariant: this replica's escrow
    /// quota does not cover the fact; request quota from a peer.
    InsufficientQuota { invariant: String, reason: String },
    /// Refused by the durability layer before anything changed:
    /// `BufferFull` (the log's queue is full; retry after it drains),
    /// `WalFailed` (a write or fdatasync failed; the log accepts nothing
    /// more) or `WalClosed`.
    Log { code: ErrorCode, reason: Cow<'static, str> },
}

impl AdmitError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AdmitError::DuplicateFact { .. } => ErrorCode::DuplicateFact,
            AdmitError::CausalityViolation { .. } => ErrorCode::CausalityViolation,
            AdmitError::Invariant { error, .. } => match error {
                InvariantError::Violation(_) => ErrorCode::InvariantViolation,
                InvariantError::MalformedPayload(_) => ErrorCode::MalformedFact,
                InvariantError::DuplicateElement => ErrorCode::DuplicateElement,
            },
            AdmitError::MalformedFact { .. } => ErrorCode::MalformedFact,
            AdmitError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            AdmitError::CausalHorizonExceeded { .. } => ErrorCode::CausalHorizonExceeded,
            AdmitError::RequiresCoordination { .. } => ErrorCode::RequiresCoordination,
            AdmitError::InsufficientQuota { .. } => ErrorCode::InsufficientQuota,
            AdmitError::Log { code, .. } => *code,
        }
    }

    /// The id of the refused fact, where one is known.
    pub fn fact_id(&self) -> Option<&FactId> {
        match self {
            AdmitError::DuplicateFact { id, .. }
            | AdmitError::CausalityViolation { id, .. }
            | AdmitError::Invariant { id, .. } => Some(id),
            _ => None,
        }
    }

    pub fn malformed(reason: impl Into<Cow<'static, str>>) -> Self {
        AdmitError::MalformedFact { reason: reason.into() }
    }
}

impl fmt::Display for AdmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdmitError::DuplicateFact { id, certain: true } => {
                write!(f, "fact {id} was already admitted; nothing changed")
            }
            AdmitError::DuplicateFact { id, certain: false } => write!(
                f,
                "fact {id} may have been admitted before: bloom mode cannot tell once its clock fills, and refuses rather than apply a fact twice; use causality 'exact', or let the kernel derive ids"
            ),
            AdmitError::CausalityViolation { id, missing, index } => write!(
                f,
                "fact {id} depends on {missing} (deps[{index}]), which has not been admitted; admit the dependency first"
            ),
            AdmitError::Invariant { id, error } => write!(f, "fact {id} refused: {error}"),
            AdmitError::MalformedFact { reason } => write!(f, "malformed fact: {reason}"),
            AdmitError::PayloadTooLarge { len, max } => {
                write!(f, "payload is {len} bytes; the limit is {max} (maxPayloadBytes)")
            }
            AdmitError::CausalHorizonExceeded { limit } => write!(
                f,
                "the kernel tracks at most {limit} facts (maxFacts) and is full; it refuses new facts rather than forget old ones"
            ),
            AdmitError::RequiresCoordination { invariant, class } => write!(
                f,
                "invariant '{invariant}' is {} and needs {} for replicated admission",
                class.as_str(),
                class.coordination().as_str()
            ),
            AdmitError::InsufficientQuota { invariant, reason } => write!(
                f,
                "invariant '{invariant}' is bounded and this replica's escrow quota does not cover the fact ({reason}); request quota from a peer"
            ),
            AdmitError::Log { reason, .. } => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for AdmitError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::COUNT);
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = AdmitError::CausalityViolation { id: FactId([1; 32]), missing: FactId([2; 32]), index: 0 };
        assert!(e.to_string().contains("admit the dependency first"));
        assert_eq!(e.code().as_str(), "CAUSALITY_VIOLATION");
    }
}
