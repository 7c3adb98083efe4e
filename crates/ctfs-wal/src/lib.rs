//! # ctfs-wal: durability for ctfs
//!
//! A write-ahead log of checksummed records in append-only segment files,
//! written by a dedicated thread with group commit (io_uring where the
//! kernel and seccomp allow it, `pwrite` + `fdatasync` otherwise), a durable
//! frontier (seq) published only after the sync returned success, crash
//! recovery that cuts a torn tail and reports corruption before it, and
//! BLAKE3-verified checkpoints that let old segments be deleted. No N-API
//! here; the Node binding wraps [`Wal`].
//!
//! ## Record format (little-endian)
//! | bytes | field |
//! |---|---|
//! | 4 | `len`: bytes after this field (= 52 + 32 × dep_count + payload_len) |
//! | 8 | `seq` (contiguous, from 1) |
//! | 32 | fact id |
//! | 2 | `dep_count` |
//! | 2 | `flags` (caller-defined) |
//! | 4 | `payload_len` |
//! | 32 × dep_count | deps |
//! | payload_len | payload |
//! | 4 | CRC32C (Castagnoli) of every byte above, `len` included |
//!
//! `len` is also validated structurally: at least 52, at most 64 MiB − 4,
//! and equal to what `dep_count` and `payload_len` imply, so a damaged length
//! can neither make recovery read out of bounds nor allocate.
//!
//! **Why CRC32C and not keyed BLAKE3 per record.** The log is local: the
//! threat is torn writes, misdirected or lost writes and media bit rot, not
//! an adversary who can write our files (who could also rewrite any key-
//! less or co-located-key MAC). CRC32C runs in hardware (SSE4.2 `crc32`,
//! ARMv8 CRC) at several GB/s with no set-up cost, detects every error burst
//! up to 32 bits and every 1-, 2- and 3-bit error in records of the sizes we
//! write, and leaves a 2^-32 chance for anything else; together with the
//! structural `len` check, the seq continuity check and the "nothing valid
//! after it" rule for tails, that is the standard WAL trade-off (ext4
//! journal, RocksDB, etcd). A per-record BLAKE3 would cost ~100 ns for a
//! small record on both the write and the replay path and cap replay well
//! below the 2M records/s target. BLAKE3 is used where its strength pays:
//! checkpoints (large, long-lived, copied around), see [`checkpoint`].
//!
//! ## Segment files
//! `wal-<first_seq:020>.log`, starting with a header: magic `CTFSWAL\0`,
//! format version u32 (2), header length u32 (32 + f), first seq u64,
//! fingerprint length u32 (f), the log user's configuration fingerprint
//! ([`WalOptions::fingerprint`], f bytes), CRC32C of everything before it.
//! Every segment must carry the fingerprint the log is opened with, or
//! opening fails with `CONFIG_MISMATCH` (nothing is read, cut or moved).
//! Format 1 (a 32-byte header whose fingerprint-length field was reserved)
//! records no fingerprint and is refused the same way until
//! [`upgrade_format`] stamps it. A segment is
//! rolled when the next record would take it past
//! [`WalOptions::segment_size`] (default 64 MiB); a batch that would not
//! fit, and is under an eighth of a segment, starts the next segment whole.
//! Once the active segment is a quarter full, a helper thread zeroes the
//! next segment's file ahead (`wal-spare.tmp`, the segment size, synced in
//! 256 KiB chunks, then the directory synced). A roll onto it writes the
//! segment's header in the same write as its first records, so that **one
//! fdatasync** makes both durable and acknowledges them; the rename to the
//! segment's name and the directory sync follow, off the acknowledgement's
//! path. A spare with a valid header is therefore the newest segment (a
//! crash between that sync and the rename): recovery, replay and
//! [`inspect`] read it as one and an open renames it; a spare whose header
//! is zeros holds nothing acknowledged (an open deletes it, as it does an
//! unused one; a close deletes an unused one); a damaged header with
//! records after it is corruption. Without a spare ready, the writer
//! creates the segment itself: header synced and directory fsynced before
//! any record goes into it. A named segment always has a synced header.
//! The log directory holds up to one segment size more than its segments.
//!
//! **Pacing** ([`Wal::set_pacing`], off by default; the Node binding turns
//! it on and reports each durable callback processed with
//! [`Wal::consumed`]): after a small group commit the writer waits, at most
//! [`PACE_MAX`], for that report before taking the next batch, so that the
//! producers it acknowledged join the next sync instead of alternating with
//! another group and waiting up to two syncs.
//!
//! **Zeros written ahead.** When a batch's records reach the end of the
//! zeroed part of the segment, the same write carries 256 KiB of zeros after
//! them (up to `segment_size`), so the batches that follow overwrite
//! existing blocks and their fdatasync changes no file size: on ext4 no
//! journal commit (a 3 KiB batch synced in 130 µs instead of 330 µs on the
//! development VM; one 0.8 ms write per 256 KiB of log). A roll and a clean
//! close cut the zeros; recovery and [`inspect`] read an all-zero remainder
//! as the clean end of a segment (a torn write leaves non-zero bytes there,
//! which is a torn tail as before).
//!
//! ## Durability contract
//! * `durable_seq` (and the notifier) advance only after `fdatasync` (or the
//!   io_uring `FSYNC(DATASYNC)` / `RWF_DSYNC` write) returned success for
//!   every record up to it.
//! * A failed write or sync puts the log into the failed state: no further
//!   durability is reported, every later append returns `WAL_FAILED`. We do
//!   not retry fsync (after an error the page cache may have dropped the
//!   dirty pages, so a later "successful" fsync would be a lie).
//! * Back-pressure (`BUFFER_FULL`) is returned before any state changes;
//!   [`Wal::can_append`] / [`Wal::can_append_all`] let the caller check first.
//!
//! ## Recovery
//! [`Wal::open`] scans the segments in seq order and validates each header
//! and record (length limits, `len` vs `dep_count`/`payload_len`, CRC32C, seq
//! continuity within and across segments). Records below the replay start
//! of [`Wal::open_with_replay`] are covered by the caller's checkpoint:
//! damage among them and gaps below it are skipped and reported in
//! [`Recovery::covered_damage`], never cut. Otherwise, the first invalid
//! bytes are a **torn tail** when they lie in the last segment and no valid
//! record with seq >= the expected one starts anywhere after them: the file
//! is truncated to the last valid record (a last segment whose header is
//! torn is removed), [`Recovery::bytes_cut`] / [`Recovery::torn_tail_at`]
//! say so, and appends continue from there. Anything else (a gap included)
//! is **corruption**: `WAL_CORRUPT` with segment and offset, or, with
//! [`WalOptions::truncate_corrupt`], a cut there: the bytes removed are
//! moved aside into `*.corrupt` files first (never deleted), reported in
//! [`Recovery::truncated_at`], [`Recovery::truncate_reason`] and
//! [`Recovery::moved_aside`]. [`inspect`] decides health with the same
//! scan, read-only. Records are handed to the
//! replay callback during the same pass ([`Wal::open_with_replay`]), or
//! later, read-only, with [`Wal::replay`]. While one segment is replayed,
//! the next is read, and its records' checksums checked, on a read-ahead
//! thread; the replay then skips the checksum of a record on that verified
//! chain (any resynchronisation leaves the chain and checks again), so the
//! callback's thread does the reading and checking of the first segment
//! only. Replay runs at 15–26 M small records/s from the page cache
//! (`benches/wal_recovery.rs`).
//!
//! Known limit: a crash can in theory persist a later page of the last,
//! never-acknowledged batch but not an earlier one; recovery then sees valid
//! records after the hole and reports `WAL_CORRUPT` rather than cutting
//! (those records were never reported durable, so `truncate_corrupt` is
//! safe for that case). We chose the strict rule so that bit rot in an
//! acknowledged batch is never silently cut.
//!
//! ## Backends
//! [`Backend::Auto`] uses the portable `pwrite` + `fdatasync` writer: on the
//! 2-core development VM it acknowledged with a lower tail than io_uring at
//! 1, 8 and 64 concurrent producers, quiet disk or loaded, at no lower
//! throughput (io_uring runs the `RWF_DSYNC` write on a kernel worker thread:
//! one more thread hand-off per batch, competing for the same cores).
//! [`Backend::IoUring`] is opt-in: it probes io_uring at open (ring setup,
//! opcode probe for `WRITEV`/`FSYNC`, a `NOP` round trip;
//! `io_uring_disabled = 2` and seccomp `ENOSYS`/`EPERM` refuse with
//! `BACKEND_UNAVAILABLE`). [`Wal::backend`] says which backend runs.
//! The default [`UringMode`] is `WriteDsync` (one `WRITEV` with
//! `RWF_DSYNC`): in `benches/wal_durable.rs` it was the fastest mode with
//! unbounded producers and equal to linked `WRITEV` + `FSYNC(DATASYNC)`
//! within noise otherwise (the fsync dominates both).
//!
//! ## Typical use (the binding)
//! ```no_run
//! use ctfs_wal::*;
//! let dir = std::path::Path::new("/tmp/ctfs-data");
//! let fingerprint = b"the kernel's configuration".to_vec();
//! let ckpt = latest_valid_checkpoint(dir).unwrap();
//! let from = ckpt.checkpoint.as_ref().map_or(1, |c| c.seq + 1);
//! // ... restore the kernel from `ckpt.checkpoint` sections ...
//! if let Some(c) = &ckpt.checkpoint { c.check_fingerprint(&fingerprint).unwrap(); }
//! let opts = WalOptions { fingerprint, notifier: Some(Box::new(|durable| { /* resolve promises <= durable */ let _ = durable; })), ..Default::default() };
//! let (mut wal, recovery) = Wal::open_with_replay(dir, opts, from, |r| {
//!     // kernel.apply(r.seq, r.id, r.deps, r.payload, r.flags)
//!     let _ = r;
//!     Ok::<(), WalError>(())
//! }).unwrap();
//! wal.can_append(1, 16).unwrap();          // before touching kernel state
//! let seq = wal.append(&[1; 32], &[[2; 32]], &[0; 16], 0).unwrap();
//! wal.flush().unwrap();
//! assert!(wal.durable_seq() >= seq);
//! # let _ = recovery;
//! ```

mod backend;
pub mod checkpoint;
mod error;
mod format;
mod inspect;
mod recovery;
mod spare;
mod upgrade;
mod wal;

pub use backend::{Backend, UringMode, io_uring_available};
#[doc(hidden)]
pub use backend::{FaultAction, FaultHook};
#[doc(hidden)]
pub use checkpoint::write_checkpoint_as;
pub use checkpoint::{
    CHECKPOINT_CHUNK, CHECKPOINT_VERSION, Checkpoint, LatestCheckpoint, checkpoint_file_name, latest_valid_checkpoint,
    list_checkpoints, load_checkpoint, remove_checkpoints_before, write_checkpoint,
};
pub use error::WalError;
#[doc(hidden)]
pub use format::encode_segment_header_legacy;
pub use format::{
    FORMAT_VERSION, FORMAT_VERSION_LEGACY, HARD_MAX_RECORD_LEN, Id, MIN_RECORD_LEN, RecordRef, SEGMENT_HEADER_MIN_LEN,
    SEGMENT_MAGIC, encode_record, parse_record, record_size, segment_file_name, segment_header_len,
};
pub use inspect::{CheckpointInfo, Damage, DamageKind, InspectReport, SegmentInfo, inspect};
pub use recovery::Recovery;
pub use upgrade::upgrade_format;
pub use wal::{BatchTrace, CompactReport, DurableHandle, FailureNotifier, Notifier, PACE_MAX, Wal, WalMetrics, WalOptions, WalStats, compact_dir};
