//! The one error type of the crate, with stable machine-readable codes.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Every error this crate returns. [`WalError::code`] gives a stable string
/// that the Node binding exposes as `err.code`.
#[derive(Debug)]
pub enum WalError {
    /// The in-memory queue has no room for the record(s). Nothing was
    /// changed: no sequence number was taken, nothing was queued.
    BufferFull { needed: usize, available: usize },
    /// A record or segment header before the tail of the log is damaged
    /// (valid data follows it, or it lies in a segment that is not the
    /// last). Recovery refuses to continue unless
    /// [`WalOptions::truncate_corrupt`](crate::WalOptions::truncate_corrupt).
    Corrupt { segment: PathBuf, offset: u64, reason: String },
    /// A checkpoint file failed verification (bit flip, truncation, bad
    /// header, ...). It is never loaded.
    CheckpointCorrupt { path: PathBuf, reason: String },
    /// A write or fdatasync failed. The log is in the failed state: no
    /// further durability is reported and every later append fails
    /// (an fsync error is never retried and then trusted: "fsyncgate").
    Failed { reason: String },
    /// Any other I/O error (open, read, rename, ...).
    Io { context: String, source: io::Error },
    /// A record larger than `max_record_bytes` (code `INVALID_ARGUMENT`:
    /// the caller's record, not the log, is at fault).
    RecordTooLarge { size: usize, max: usize },
    /// A caller error: bad options, too many deps, ...
    InvalidArgument(String),
    /// `Backend::IoUring` was forced but io_uring cannot be used here.
    BackendUnavailable(String),
    /// The log was closed.
    Closed,
    /// A segment or checkpoint was written under another configuration
    /// fingerprint than the one the log is opened with (`found: None`: an
    /// old file of format 1, which records none). Nothing is read from it.
    ConfigMismatch { path: PathBuf, found: Option<Vec<u8>>, expected: Vec<u8> },
}

impl WalError {
    /// Stable code: `BUFFER_FULL`, `WAL_CORRUPT`, `CHECKPOINT_CORRUPT`,
    /// `WAL_FAILED`, `IO_ERROR`, `INVALID_ARGUMENT`, `BACKEND_UNAVAILABLE`,
    /// `WAL_CLOSED`, `CONFIG_MISMATCH`.
    pub fn code(&self) -> &'static str {
        match self {
            WalError::BufferFull { .. } => "BUFFER_FULL",
            WalError::Corrupt { .. } => "WAL_CORRUPT",
            WalError::CheckpointCorrupt { .. } => "CHECKPOINT_CORRUPT",
            WalError::Failed { .. } => "WAL_FAILED",
            WalError::Io { .. } => "IO_ERROR",
            WalError::RecordTooLarge { .. } | WalError::InvalidArgument(_) => "INVALID_ARGUMENT",
            WalError::BackendUnavailable(_) => "BACKEND_UNAVAILABLE",
            WalError::Closed => "WAL_CLOSED",
            WalError::ConfigMismatch { .. } => "CONFIG_MISMATCH",
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> WalError {
        WalError::Io { context: context.into(), source }
    }

    pub(crate) fn corrupt(segment: &std::path::Path, offset: u64, reason: impl Into<String>) -> WalError {
        WalError::Corrupt { segment: segment.to_path_buf(), offset, reason: reason.into() }
    }

    pub(crate) fn ckpt(path: &std::path::Path, reason: impl Into<String>) -> WalError {
        WalError::CheckpointCorrupt { path: path.to_path_buf(), reason: reason.into() }
    }
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::BufferFull { needed, available } => {
                write!(f, "BUFFER_FULL: WAL queue full ({needed} bytes needed, {available} free)")
            }
            WalError::Corrupt { segment, offset, reason } => {
                write!(f, "WAL_CORRUPT: {} at offset {offset}: {reason}", segment.display())
            }
            WalError::CheckpointCorrupt { path, reason } => {
                write!(f, "CHECKPOINT_CORRUPT: {}: {reason}", path.display())
            }
            WalError::Failed { reason } => write!(f, "WAL_FAILED: {reason}"),
            WalError::Io { context, source } => write!(f, "IO_ERROR: {context}: {source}"),
            WalError::RecordTooLarge { size, max } => {
                write!(f, "INVALID_ARGUMENT: record of {size} bytes exceeds max_record_bytes {max}")
            }
            WalError::InvalidArgument(m) => write!(f, "INVALID_ARGUMENT: {m}"),
            WalError::BackendUnavailable(m) => write!(f, "BACKEND_UNAVAILABLE: {m}"),
            WalError::Closed => write!(f, "WAL_CLOSED: the WAL is closed"),
            WalError::ConfigMismatch { path, found: Some(found), expected } => write!(
                f,
                "CONFIG_MISMATCH: {} was {}; nothing was read. Open the directory with the configuration that wrote it",
                path.display(),
                ctfs_core::fingerprint::describe_mismatch(found, expected)
            ),
            WalError::ConfigMismatch { path, found: None, expected } => write!(
                f,
                "CONFIG_MISMATCH: {} was written in an older format (1) that does not record the kernel's configuration, so it cannot be checked against this one ({}); nothing was read. If it was written with exactly this configuration, open it once with the upgradeFormat option to record it; otherwise open it with the configuration that wrote it",
                path.display(),
                ctfs_core::fingerprint::describe(expected)
            ),
        }
    }
}

impl std::error::Error for WalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WalError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
