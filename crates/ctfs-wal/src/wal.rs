//! The log: single-producer append API, SPSC byte ring, writer thread with
//! group commit, durable frontier.
//!
//! ## Queue
//! A byte ring of `buffer_capacity` bytes shared by the producer (the owner
//! of `&mut Wal`, i.e. the JS thread) and the writer thread. Positions are
//! monotonically increasing `u64`s (`head` written by the producer, `tail` by
//! the writer); the byte index is `pos % capacity`. A record is encoded in
//! place, never split: when it does not fit before the end of the ring the
//! producer skips to the start (writing a zero `len` as a skip marker when at
//! least four bytes remain; fewer than four remaining bytes are skipped
//! implicitly). A record is limited to `capacity / 2` so an empty ring always
//! has room. The producer path allocates nothing and makes no syscall except
//! a Condvar notify when the writer is parked (Dekker handshake: producer
//! stores `head`, SeqCst fence, loads `parked`; writer stores `parked`,
//! re-loads `head` under the mutex before waiting). Between
//! [`Wal::hold_wakes`] and [`Wal::release_wakes`] (a batch of appends made in
//! one call) the producer does not wake a parked writer until the release
//! (or until an eighth of the ring is held): a writer woken by the first
//! record would take that record alone into a batch and sync it while the
//! rest of the call waits for the next sync.
//!
//! ## Writer
//! Takes everything between its position and `head`, seals each record
//! (CRC32C computed here, off the producer's thread), writes the batch with
//! one vectored write at the segment offset and one fdatasync (or one
//! io_uring submission), then publishes `durable_seq`, calls the notifier
//! once, and releases the ring space. Everything that arrives meanwhile
//! forms the next batch: group commit without any timer. A batch that does
//! not fit in the segment's room starts the next segment (if it is small
//! beside a segment; a larger one fills the segment, then writes and syncs
//! those records, and rolls inside). Made from the spare zeroed ahead
//! (`spare.rs`), the new segment gets its header in the same write and sync
//! as its first records, which are then reported durable; its name and a
//! directory sync follow (a spare with a valid header is read as the newest
//! segment). Created on the spot (no spare ready), it gets its header synced
//! and the directory synced first. Either way a named segment always has a
//! synced header.
//!
//! A failed write or sync puts the log in the failed state for good:
//! `durable_seq` never moves again, the failure callback runs once, and every
//! later `append` / `flush` returns `WalError::Failed`.

use crate::backend::{Backend, FaultHook, Faulty, Io, Portable, UringMode, probe_uring};
use crate::error::WalError;
use crate::format::{
    HARD_MAX_RECORD_LEN, Id, MIN_RECORD_LEN, RecordRef, encode_record_parts_unsealed, encode_segment_header, fsync_dir,
    list_segments, record_size, seal_record, segment_file_name, segment_header_len,
};
use crate::recovery::{NO_REPLAY, Recovery, ScanOptions, scan};
use crate::spare::Spare;
use ctfs_core::metrics::{AtomicHistogram, Histogram, now_ns};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Called by the writer thread once per durable batch with the new durable
/// seq (every record with a seq <= it is on disk and fdatasync'ed).
pub type Notifier = Box<dyn Fn(u64) + Send>;
/// Called by the writer thread once when the log enters the failed state.
pub type FailureNotifier = Box<dyn Fn(&str) + Send>;

/// Options of [`Wal::open`].
pub struct WalOptions {
    /// I/O backend (default: `Auto`, io_uring when the probe passes).
    pub backend: Backend,
    /// How io_uring makes a batch durable (default: the faster one measured
    /// by `benches/wal_durable.rs`).
    pub uring_mode: UringMode,
    /// Roll to a new segment when the next record would take the segment
    /// past this size (default 64 MiB). A larger record gets a segment alone.
    pub segment_size: u64,
    /// Bytes of the in-memory queue (default 16 MiB).
    pub buffer_capacity: usize,
    /// Largest record accepted (default 1 MiB; at most `buffer_capacity / 2`
    /// and 64 MiB).
    pub max_record_bytes: usize,
    /// On corruption before the tail (and not covered by the caller's
    /// checkpoint, see [`Wal::open_with_replay`]): cut the log there instead
    /// of failing with `WAL_CORRUPT`. The bytes removed are moved aside into
    /// `*.corrupt` files next to the log, never deleted.
    pub truncate_corrupt: bool,
    /// The configuration fingerprint of the log's user (opaque here; see
    /// `ctfs_core::fingerprint`): written into every segment header, and
    /// every existing segment must carry the same bytes, or opening fails
    /// with `CONFIG_MISMATCH` (default: empty).
    pub fingerprint: Vec<u8>,
    /// Durable-frontier callback, once per batch, on the writer thread.
    pub notifier: Option<Notifier>,
    /// Failure callback, once, on the writer thread.
    pub on_failure: Option<FailureNotifier>,
    /// Test-only: fault injection into the writer's durable writes.
    #[doc(hidden)]
    pub fault_hook: Option<FaultHook>,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            backend: Backend::Auto,
            uring_mode: UringMode::default(),
            segment_size: 64 << 20,
            buffer_capacity: 16 << 20,
            max_record_bytes: 1 << 20,
            truncate_corrupt: false,
            fingerprint: Vec::new(),
            notifier: None,
            on_failure: None,
            fault_hook: None,
        }
    }
}

impl std::fmt::Debug for WalOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalOptions")
            .field("backend", &self.backend)
            .field("uring_mode", &self.uring_mode)
            .field("segment_size", &self.segment_size)
            .field("buffer_capacity", &self.buffer_capacity)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("truncate_corrupt", &self.truncate_corrupt)
            .field("fingerprint", &self.fingerprint.len())
            .field("notifier", &self.notifier.is_some())
            .field("on_failure", &self.on_failure.is_some())
            .finish()
    }
}

/// Counters (monotonic since open), for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// fdatasync/fsync calls (or io_uring equivalents) made by the writer,
    /// including segment-header and directory syncs.
    pub fsyncs: u64,
    /// Durable batches (= notifier calls).
    pub batches: u64,
    pub records_written: u64,
    pub bytes_written: u64,
    pub segments_created: u64,
    pub durable_seq: u64,
    pub appended_seq: u64,
}

/// Histograms and gauges of the log (see [`ctfs_core::metrics`]), read
/// with [`Wal::metrics`].
#[derive(Clone, Debug, Default)]
pub struct WalMetrics {
    /// Records per group commit (one per durable batch).
    pub group_records: Histogram,
    /// Bytes per group commit.
    pub group_bytes: Histogram,
    /// Nanoseconds of the write phase of a batch (portable backend: the
    /// `pwrite`s; io_uring writes and syncs in one operation: empty).
    pub write_ns: Histogram,
    /// Nanoseconds of making a batch durable: `fdatasync` (portable), or the
    /// whole write + sync operation (io_uring).
    pub sync_ns: Histogram,
    /// Nanoseconds from [`Wal::mark_ack`] (called by the log's user right
    /// after an append) to the batch holding that record being durable; at
    /// most one mark in flight.
    pub ack_ns: Histogram,
    /// Bytes queued in the ring and not yet durable.
    pub queue_bytes: u64,
    /// Size of the ring.
    pub queue_capacity: u64,
}

/// Timings of one durable batch, recorded by the writer thread while
/// tracing is on ([`Wal::set_trace`]). Times are `CLOCK_MONOTONIC`
/// nanoseconds (the clock of Node's `process.hrtime`), so they line up with
/// timestamps taken in JavaScript.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchTrace {
    /// The writer saw the batch (first record) in the queue.
    pub picked_ns: u64,
    /// Written and fdatasync'ed (every record of the batch durable).
    pub synced_ns: u64,
    /// The notifier returned (the durable seq was posted to its listener).
    pub notified_ns: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Segment rolls inside the batch (each adds a header write, a file sync
    /// and a directory sync before the batch is durable).
    pub rolls: u32,
}

/// Most batches a trace keeps (older ones are dropped).
const TRACE_MAX: usize = 1 << 20;
/// Zeros written past the records once they reach the end of the zeroed
/// part of a segment (see `Writer::write_runs`): one slower write per
/// 256 KiB of log (0.8 ms for 256 KiB + fdatasync on the development VM,
/// 2.7 ms for 1 MiB, whose spikes showed in the ack p99 with 1,024 facts in
/// flight: 6.3 ms against 3.6 ms), and the syncs in between change no file
/// size.
const ZERO_AHEAD: usize = 1 << 18;
/// Longest wait of a paced writer for its consumer (see [`Wal::set_pacing`]).
pub const PACE_MAX: Duration = Duration::from_micros(500);
/// A paced writer waits only when the batch it notified and the records
/// already waiting come to at most this many: with more, the consumer's
/// turn (a continuation and an admission per record) costs more than the
/// sync it would save (measured: 1,024 facts in flight lost throughput when
/// every batch was paced). Up to 64 it pays: 64 producers awaiting one fact
/// each went from two alternating groups of 63 and 1 (most facts waiting
/// for the other group's sync first) to one group of 64 per sync, ack p99
/// 1.19–1.38 → 0.90–1.16 ms on portable and 1.73–3.38 → 1.32–1.36 ms on
/// io_uring, at 150–214k facts/s (this limit was 16 before).
const PACE_RECORDS: u64 = 64;

fn monotonic_ns() -> u64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: valid pointer; CLOCK_MONOTONIC is always available on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    #[cfg(not(unix))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
    }
}

/// Result of [`Wal::compact_before`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub removed: Vec<PathBuf>,
    pub bytes: u64,
}

#[repr(align(128))]
struct Padded<T>(T);

struct Shared {
    buf: *mut u8,
    cap: usize,
    head: Padded<AtomicU64>,
    tail: Padded<AtomicU64>,
    durable: Padded<AtomicU64>,
    appended: AtomicU64,
    parked: AtomicBool,
    closing: AtomicBool,
    failed: AtomicBool,
    writer_exited: AtomicBool,
    failure: Mutex<Option<String>>,
    park_lock: Mutex<()>,
    park_cv: Condvar,
    durable_lock: Mutex<()>,
    durable_cv: Condvar,
    fsyncs: AtomicU64,
    batches: AtomicU64,
    records_written: AtomicU64,
    bytes_written: AtomicU64,
    segments_created: AtomicU64,
    group_records: AtomicHistogram,
    group_bytes: AtomicHistogram,
    write_ns: AtomicHistogram,
    sync_ns: AtomicHistogram,
    ack_ns: AtomicHistogram,
    /// The marked record in flight (seq, 0: none) and when it was marked
    /// ([`now_ns`]): set by the producer, claimed (compare-exchange to 0) by
    /// whichever side sees it durable first.
    ack_seq: AtomicU64,
    ack_t: AtomicU64,
    /// Batch timings, when tracing (see [`Wal::set_trace`]).
    trace_on: AtomicBool,
    trace: Mutex<Vec<BatchTrace>>,
    /// Pacing by the consumer of durable notifications (see
    /// [`Wal::set_pacing`]): on/off, the last seq it reported processed,
    /// the writer waiting for it, and a flush asking it not to wait.
    pacing: AtomicBool,
    consumed: AtomicU64,
    pacing_wait: AtomicBool,
    hurry: AtomicBool,
}

// SAFETY: `buf` is a heap allocation owned by `Shared`; the ring protocol
// gives the producer exclusive access to `[head, tail + cap)` and the writer
// exclusive access to `[tail, head)`, with Release/Acquire on head and tail.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: allocated in `Shared::new` as a boxed slice of `cap` bytes.
        unsafe { drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.buf, self.cap))) };
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn new(cap: usize, last_seq: u64) -> Shared {
        let buf = Box::into_raw(vec![0u8; cap].into_boxed_slice()) as *mut u8;
        Shared {
            buf,
            cap,
            head: Padded(AtomicU64::new(0)),
            tail: Padded(AtomicU64::new(0)),
            durable: Padded(AtomicU64::new(last_seq)),
            appended: AtomicU64::new(last_seq),
            parked: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            writer_exited: AtomicBool::new(false),
            failure: Mutex::new(None),
            park_lock: Mutex::new(()),
            park_cv: Condvar::new(),
            durable_lock: Mutex::new(()),
            durable_cv: Condvar::new(),
            fsyncs: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            records_written: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            segments_created: AtomicU64::new(0),
            group_records: AtomicHistogram::new(),
            group_bytes: AtomicHistogram::new(),
            write_ns: AtomicHistogram::new(),
            sync_ns: AtomicHistogram::new(),
            ack_ns: AtomicHistogram::new(),
            ack_seq: AtomicU64::new(0),
            ack_t: AtomicU64::new(0),
            trace_on: AtomicBool::new(false),
            trace: Mutex::new(Vec::new()),
            pacing: AtomicBool::new(false),
            consumed: AtomicU64::new(0),
            pacing_wait: AtomicBool::new(false),
            hurry: AtomicBool::new(false),
        }
    }

    fn wake_writer(&self) {
        let _g = lock(&self.park_lock);
        self.park_cv.notify_one();
    }

    /// The writer's wait: raises `flag` (whoever changes what `done` reads
    /// and sees the flag wakes the writer), then sleeps at most `timeout`
    /// unless `done` already holds. The caller looks again afterwards.
    fn writer_wait(&self, flag: &AtomicBool, done: impl Fn() -> bool, timeout: Duration) {
        let g = lock(&self.park_lock);
        flag.store(true, Ordering::SeqCst);
        if !done() {
            let _ = self.park_cv.wait_timeout(g, timeout);
        }
        flag.store(false, Ordering::SeqCst);
    }

    fn consumed(&self, seq: u64) {
        self.consumed.fetch_max(seq, Ordering::SeqCst);
        if self.pacing_wait.load(Ordering::SeqCst) {
            self.wake_writer();
        }
    }

    fn wake_durable_waiters(&self) {
        let _g = lock(&self.durable_lock);
        self.durable_cv.notify_all();
    }

    /// Records the marked ack `seq` once, whoever gets here first.
    fn claim_ack(&self, seq: u64) {
        let t0 = self.ack_t.load(Ordering::Relaxed);
        if self.ack_seq.compare_exchange(seq, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            self.ack_ns.record(now_ns().saturating_sub(t0));
        }
    }

    fn failed_error(&self) -> WalError {
        let reason = lock(&self.failure).clone().unwrap_or_else(|| "write or fdatasync failed".into());
        WalError::Failed { reason }
    }
}

/// The write-ahead log. One producer (`&mut self`), one writer thread.
pub struct Wal {
    shared: Arc<Shared>,
    head: u64,
    cached_tail: u64,
    next_seq: u64,
    max_record: usize,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
    backend: &'static str,
    backend_note: Option<String>,
    closed: bool,
    /// Head position when [`Wal::hold_wakes`] was called, while holding.
    held_from: Option<u64>,
    /// flock'ed `LOCK` file; released by `close`.
    lock_file: Option<File>,
    /// The directory itself, opened at `open`: tells whether it was removed.
    dir_handle: Option<File>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("backend", &self.backend)
            .field("appended_seq", &self.appended_seq())
            .field("durable_seq", &self.durable_seq())
            .finish()
    }
}

fn check_options(o: &WalOptions) -> Result<(), WalError> {
    let bad = |m: String| Err(WalError::InvalidArgument(m));
    if o.buffer_capacity < 4096 || o.buffer_capacity > (1usize << 40) {
        return bad(format!("buffer_capacity {} outside 4 KiB..1 TiB", o.buffer_capacity));
    }
    if o.max_record_bytes < MIN_RECORD_LEN
        || o.max_record_bytes > o.buffer_capacity / 2
        || o.max_record_bytes > HARD_MAX_RECORD_LEN
    {
        return bad(format!(
            "max_record_bytes {} must be within {MIN_RECORD_LEN}..=min(buffer_capacity/2, 64 MiB)",
            o.max_record_bytes
        ));
    }
    if o.fingerprint.len() > crate::checkpoint::MAX_FINGERPRINT {
        return bad(format!("fingerprint of {} bytes (at most {})", o.fingerprint.len(), crate::checkpoint::MAX_FINGERPRINT));
    }
    if o.segment_size < (segment_header_len(o.fingerprint.len()) + MIN_RECORD_LEN) as u64 {
        return bad(format!("segment_size {} too small", o.segment_size));
    }
    Ok(())
}

fn select_backend(o: &WalOptions) -> Result<(Box<dyn Io>, Option<String>), WalError> {
    match o.backend {
        Backend::Portable => Ok((Box::new(Portable), None)),
        Backend::IoUring => probe_uring(o.uring_mode).map(|io| (io, None)).map_err(WalError::BackendUnavailable),
        // Measured (bench:durable, 2-core VM, quiet and loaded disks): the
        // portable writer acknowledges with a lower tail at 1, 8 and 64
        // producers and no lower throughput; io_uring runs the synced write
        // on a kernel worker thread, one more hand-off per batch.
        Backend::Auto => Ok((Box::new(Portable), None)),
    }
}

#[cfg(target_os = "linux")]
pub(crate) fn lock_dir(dir: &Path) -> Result<File, WalError> {
    use std::os::fd::AsRawFd;
    let p = dir.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| WalError::io(format!("open {}", p.display()), e))?;
    // SAFETY: flock on an fd we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        return Err(WalError::io(
            format!("WAL directory {} is locked by another open Wal", dir.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(f)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn lock_dir(dir: &Path) -> Result<File, WalError> {
    let p = dir.join("LOCK");
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| WalError::io(format!("open {}", p.display()), e))
}

/// Creates segment `first_seq` in `dir`: header written and fsynced, then
/// the directory fsynced. Returns the open file.
fn create_segment(dir: &Path, first_seq: u64, fingerprint: &[u8]) -> std::io::Result<(PathBuf, File)> {
    let path = dir.join(segment_file_name(first_seq));
    let f = OpenOptions::new().create(true).truncate(true).write(true).open(&path)?;
    let h = encode_segment_header(first_seq, fingerprint);
    // Header + file size durable (fdatasync), then the directory entry.
    crate::backend::Portable.write_durable(&f, 0, &[&h])?;
    fsync_dir(dir)?;
    Ok((path, f))
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`: recovers it (torn tail
    /// cut, corruption reported) and starts the writer thread. Replays
    /// nothing; see [`Wal::open_with_replay`].
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<(Wal, Recovery), WalError> {
        Wal::open_with_replay(dir, opts, NO_REPLAY, |_| Ok::<(), WalError>(()))
    }

    /// Like [`Wal::open`], and hands every valid record with `seq >= from_seq`
    /// to `f` during the recovery scan (one pass over the files). Typical
    /// use: load the newest valid checkpoint (seq `S`), then
    /// `open_with_replay(dir, opts, S + 1, apply)`. Records are passed before
    /// the whole log is validated: if recovery then fails (`WAL_CORRUPT`),
    /// the caller must discard what it applied.
    ///
    /// Records below `from_seq` are covered by the caller (its checkpoint):
    /// damage among them is skipped and reported in
    /// [`Recovery::covered_damage`], never cut; a log that ends below
    /// `from_seq` continues in a new segment starting there. A log that
    /// starts after `from_seq` (a missing segment) is `WAL_CORRUPT`.
    pub fn open_with_replay<E, F>(
        dir: impl AsRef<Path>,
        mut opts: WalOptions,
        from_seq: u64,
        f: F,
    ) -> Result<(Wal, Recovery), E>
    where
        E: From<WalError>,
        F: FnMut(RecordRef<'_>) -> Result<(), E>,
    {
        let dir = dir.as_ref().to_path_buf();
        check_options(&opts)?;
        let (io, backend_note) = select_backend(&opts)?;
        std::fs::create_dir_all(&dir).map_err(|e| WalError::io(format!("create {}", dir.display()), e))?;
        let lock_file = lock_dir(&dir)?;
        let dir_handle = File::open(&dir).map_err(|e| WalError::io(format!("open {}", dir.display()), e))?;
        let scan_opts = ScanOptions {
            repair: true,
            truncate_corrupt: opts.truncate_corrupt,
            from_seq,
            fingerprint: Some(&opts.fingerprint),
        };
        let scanned = scan(&dir, &scan_opts, f)?;
        Spare::remove_stale(&dir).map_err(|e| WalError::io(format!("remove the spare segment in {}", dir.display()), e))?;
        let mut recovery = scanned.recovery;
        let next_seq = recovery.last_seq + 1;
        let header_len = segment_header_len(opts.fingerprint.len()) as u64;

        let (seg_path, seg_file, seg_len) = match scanned.active {
            Some((path, _first, len)) => {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| WalError::io(format!("open {}", path.display()), e))?;
                // After a process crash the tail may sit in the page cache
                // without ever having been synced: make it durable before
                // `durable_seq` starts at `last_seq` (earlier segments were
                // synced before the next one was created).
                f.sync_all().map_err(|e| WalError::io(format!("fsync {}", path.display()), e))?;
                (path, f, len)
            }
            None => {
                let (p, f) = create_segment(&dir, next_seq, &opts.fingerprint)
                    .map_err(|e| WalError::io(format!("create segment in {}", dir.display()), e))?;
                recovery.segments += 1;
                (p, f, header_len)
            }
        };

        // A clean end may be followed by zeros written ahead (see `write_runs`).
        let seg_zeroed = seg_file.metadata().map_or(seg_len, |m| m.len().max(seg_len));
        let backend = io.name();
        let io: Box<dyn Io> = match opts.fault_hook.take() {
            Some(hook) => Box::new(Faulty { inner: io, hook }),
            None => io,
        };
        let shared = Arc::new(Shared::new(opts.buffer_capacity, recovery.last_seq));
        let writer = Writer {
            shared: shared.clone(),
            io,
            dir: dir.clone(),
            seg_file,
            seg_path,
            seg_len,
            seg_written: seg_len,
            seg_zeroed,
            zeros: vec![0; ZERO_AHEAD],
            seg_limit: opts.segment_size,
            header_len,
            fingerprint: std::mem::take(&mut opts.fingerprint),
            pos: 0,
            next_seq,
            runs: Vec::with_capacity(4),
            notifier: opts.notifier.take(),
            on_failure: opts.on_failure.take(),
            rolls: 0,
            spare: Spare::new(dir.clone(), opts.segment_size),
            spare_asked: false,
            pending_header: Vec::new(),
            unnamed: None,
            retired: None,
        };
        let thread = std::thread::Builder::new()
            .name("ctfs-wal-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| WalError::io("spawn WAL writer thread", e))?;
        Ok((
            Wal {
                shared,
                head: 0,
                cached_tail: 0,
                next_seq,
                max_record: opts.max_record_bytes,
                thread: Some(thread),
                dir,
                backend,
                backend_note,
                closed: false,
                held_from: None,
                lock_file: Some(lock_file),
                dir_handle: Some(dir_handle),
            },
            recovery,
        ))
    }

    /// Streams the records of a (closed or live) log with `seq >= from_seq`
    /// to `f`, read-only: a torn tail ends the replay (reported in
    /// `bytes_cut`/`torn_tail_at`, nothing is modified); corruption is
    /// `WAL_CORRUPT`. Records borrow an internal read buffer (zero-copy).
    /// Every segment must carry `fingerprint`.
    pub fn replay<E, F>(dir: impl AsRef<Path>, fingerprint: &[u8], from_seq: u64, f: F) -> Result<Recovery, E>
    where
        E: From<WalError>,
        F: FnMut(RecordRef<'_>) -> Result<(), E>,
    {
        let o = ScanOptions { repair: false, truncate_corrupt: false, from_seq, fingerprint: Some(fingerprint) };
        Ok(scan(dir.as_ref(), &o, f)?.recovery)
    }

    /// `IO_ERROR` unless the directory opened at [`Wal::open`] is still
    /// reachable under its path: not removed (its link count is not 0) and
    /// not replaced by another directory. Checkpoints check this first, so
    /// that writing one into a removed directory fails instead of "succeeding"
    /// somewhere nothing will ever read it.
    pub fn check_dir(&self) -> Result<(), WalError> {
        let gone = |why: &str| {
            WalError::io(
                format!("the data directory {} {why}", self.dir.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        };
        let Some(h) = &self.dir_handle else { return Err(WalError::Closed) };
        let open = h.metadata().map_err(|e| WalError::io(format!("fstat {}", self.dir.display()), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if open.nlink() == 0 {
                return Err(gone("was removed while the kernel was open"));
            }
            match std::fs::metadata(&self.dir) {
                Ok(now) if now.dev() == open.dev() && now.ino() == open.ino() => Ok(()),
                Ok(_) => Err(gone("was replaced by another directory while the kernel was open")),
                Err(_) => Err(gone("was removed while the kernel was open")),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = open;
            std::fs::metadata(&self.dir).map(|_| ()).map_err(|_| gone("was removed while the kernel was open"))
        }
    }

    /// `"io_uring"` or `"portable"`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// A note on the backend choice, if any (`None` for every choice made
    /// today; kept for choices made at run time).
    pub fn backend_note(&self) -> Option<&str> {
        self.backend_note.as_deref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every record with a seq <= this is durable (fdatasync returned OK).
    #[inline]
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable.0.load(Ordering::Acquire)
    }

    /// Seq of the last appended record (0 if none ever).
    #[inline]
    pub fn appended_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// A handle that reads the durable frontier from any thread.
    pub fn durable_handle(&self) -> DurableHandle {
        DurableHandle(self.shared.clone())
    }

    /// `true` once a write or fdatasync failed.
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Starts (and clears) or stops recording a [`BatchTrace`] per durable
    /// batch: a diagnostic for where acknowledgement latency goes. Off by
    /// default; when off the writer reads one flag per batch.
    pub fn set_trace(&self, on: bool) {
        if on {
            lock(&self.shared.trace).clear();
        }
        self.shared.trace_on.store(on, Ordering::Relaxed);
    }

    /// The batches traced so far (oldest first), emptying the trace.
    pub fn take_trace(&self) -> Vec<BatchTrace> {
        std::mem::take(&mut *lock(&self.shared.trace))
    }

    pub fn stats(&self) -> WalStats {
        let s = &self.shared;
        WalStats {
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            records_written: s.records_written.load(Ordering::Relaxed),
            bytes_written: s.bytes_written.load(Ordering::Relaxed),
            segments_created: s.segments_created.load(Ordering::Relaxed),
            durable_seq: self.durable_seq(),
            appended_seq: self.appended_seq(),
        }
    }

    /// Histograms (group commit size, write and sync latency, durable-ack
    /// latency) and the queue's fill.
    pub fn metrics(&self) -> WalMetrics {
        let s = &self.shared;
        WalMetrics {
            group_records: s.group_records.snapshot(),
            group_bytes: s.group_bytes.snapshot(),
            write_ns: s.write_ns.snapshot(),
            sync_ns: s.sync_ns.snapshot(),
            ack_ns: s.ack_ns.snapshot(),
            queue_bytes: self.head.saturating_sub(s.tail.0.load(Ordering::Acquire)),
            queue_capacity: s.cap as u64,
        }
    }

    /// Total on-disk size of a record; the unit of the space checks.
    #[inline]
    pub fn record_size(dep_count: usize, payload_len: usize) -> usize {
        record_size(dep_count, payload_len)
    }

    #[inline]
    fn check_state(&self) -> Result<(), WalError> {
        if self.closed {
            return Err(WalError::Closed);
        }
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(self.shared.failed_error());
        }
        Ok(())
    }

    #[inline]
    fn check_size(&self, dep_count: usize, payload_len: usize) -> Result<usize, WalError> {
        if dep_count > u16::MAX as usize {
            return Err(WalError::InvalidArgument(format!("{dep_count} deps (at most 65535)")));
        }
        let n = record_size(dep_count, payload_len);
        if n > self.max_record {
            return Err(WalError::RecordTooLarge { size: n, max: self.max_record });
        }
        Ok(n)
    }

    /// Where a record of `n` bytes would go: (start position, skip bytes).
    #[inline]
    fn place(&mut self, n: usize) -> Result<(u64, usize), WalError> {
        let cap = self.shared.cap;
        let off = (self.head % cap as u64) as usize;
        let pad = if cap - off < n { cap - off } else { 0 };
        let need = (pad + n) as u64;
        if self.head - self.cached_tail + need > cap as u64 {
            self.cached_tail = self.shared.tail.0.load(Ordering::Acquire);
            if self.head - self.cached_tail + need > cap as u64 {
                return Err(WalError::BufferFull {
                    needed: n,
                    available: cap - (self.head - self.cached_tail) as usize,
                });
            }
        }
        Ok((self.head + pad as u64, pad))
    }

    /// Would a record with `dep_count` deps and `payload_len` payload bytes
    /// be accepted now? With a single producer, free space only grows, so
    /// after `Ok` the next [`Wal::append`] of that size cannot fail with
    /// `BUFFER_FULL` or `INVALID_ARGUMENT` (only with `WAL_FAILED` if the
    /// writer failed in between).
    pub fn can_append(&mut self, dep_count: usize, payload_len: usize) -> Result<(), WalError> {
        self.check_state()?;
        let n = self.check_size(dep_count, payload_len)?;
        self.place(n).map(|_| ())
    }

    /// Would all these records (total sizes from [`Wal::record_size`]), appended
    /// in this order, fit now? Exact (simulates the ring's wrap-around). For
    /// batch admission: check first, then change state, then append them all.
    pub fn can_append_all<I: IntoIterator<Item = usize>>(&mut self, record_sizes: I) -> Result<(), WalError> {
        self.check_state()?;
        let cap = self.shared.cap as u64;
        self.cached_tail = self.shared.tail.0.load(Ordering::Acquire);
        let mut h = self.head;
        for n in record_sizes {
            if n < MIN_RECORD_LEN || n > self.max_record {
                return Err(WalError::InvalidArgument(format!("record size {n} outside {MIN_RECORD_LEN}..={}", self.max_record)));
            }
            let off = h % cap;
            let pad = if cap - off < n as u64 { cap - off } else { 0 };
            h += pad + n as u64;
            if h - self.cached_tail > cap {
                return Err(WalError::BufferFull {
                    needed: (h - self.head) as usize,
                    available: (cap - (self.head - self.cached_tail)) as usize,
                });
            }
        }
        Ok(())
    }

    /// Appends one record and returns its seq (assigned here, contiguous from
    /// 1). Fails before changing anything: `WAL_CLOSED`, `WAL_FAILED`,
    /// `INVALID_ARGUMENT` (too large), `BUFFER_FULL`. Durable once
    /// `durable_seq() >= seq` / the notifier reported it.
    #[inline]
    pub fn append(&mut self, id: &Id, deps: &[Id], payload: &[u8], flags: u16) -> Result<u64, WalError> {
        self.append_with_trailer(id, deps, payload, &[], flags)
    }

    /// [`append`](Self::append) with `trailer` stored after the payload in
    /// the record's payload field (replay returns them together; the flags
    /// tell the caller how to split them). Size checks count both.
    #[inline]
    pub fn append_with_trailer(&mut self, id: &Id, deps: &[Id], payload: &[u8], trailer: &[u8], flags: u16) -> Result<u64, WalError> {
        self.check_state()?;
        let n = self.check_size(deps.len(), payload.len() + trailer.len())?;
        let (start, pad) = self.place(n)?;
        let cap = self.shared.cap;
        let seq = self.next_seq;
        // SAFETY: [head, start + n) lies within the producer's exclusive part
        // of the ring (checked by `place`), and `start % cap + n <= cap`.
        unsafe {
            if pad >= 4 {
                let off = (self.head % cap as u64) as usize;
                std::ptr::write_bytes(self.shared.buf.add(off), 0, 4);
            }
            let off = (start % cap as u64) as usize;
            let dst = std::slice::from_raw_parts_mut(self.shared.buf.add(off), n);
            encode_record_parts_unsealed(dst, seq, id, deps, payload, trailer, flags);
        }
        self.head = start + n as u64;
        self.next_seq = seq + 1;
        self.shared.appended.store(seq, Ordering::Relaxed);
        self.shared.head.0.store(self.head, Ordering::Release);
        if let Some(from) = self.held_from
            && self.head - from < (self.shared.cap / 8) as u64
        {
            return Ok(seq);
        }
        self.wake_if_parked();
        Ok(seq)
    }

    /// The producer's side of the handshake: after storing `head`.
    #[inline]
    fn wake_if_parked(&self) {
        fence(Ordering::SeqCst);
        if self.shared.parked.load(Ordering::Relaxed) {
            self.shared.wake_writer();
        }
    }

    /// Until [`release_wakes`](Self::release_wakes), appends do not wake a
    /// parked writer (except past an eighth of the ring), so that the records
    /// of one call go to the writer together. Always pair it with
    /// `release_wakes`: records appended meanwhile are written only once the
    /// writer wakes (at the latest at its 100 ms park timeout).
    pub fn hold_wakes(&mut self) {
        self.held_from = Some(self.head);
    }

    /// Paces group commits by the consumer of the durable notifications
    /// (the notifier of [`WalOptions`]): after a batch is durable and
    /// notified, the writer waits, at most [`PACE_MAX`], until
    /// [`consumed`](Self::consumed) reports that notification processed,
    /// before it takes the next batch. The producers one sync acknowledged
    /// then join the next sync together with the records already waiting,
    /// instead of those going alone and the acknowledged producers waiting
    /// for the sync after (two groups alternating, each fact waiting up to
    /// two syncs). Turn it on only if the consumer calls `consumed` for
    /// every notification; off by default.
    pub fn set_pacing(&self, on: bool) {
        self.shared.pacing.store(on, Ordering::SeqCst);
        if !on {
            self.shared.wake_writer();
        }
    }

    /// The consumer of durable notifications has processed every one up to
    /// `seq`, and what it triggered (see [`set_pacing`](Self::set_pacing)).
    pub fn consumed(&self, seq: u64) {
        self.shared.consumed(seq);
    }

    /// Ends [`hold_wakes`](Self::hold_wakes): wakes the writer if it is
    /// parked and anything was appended. Idempotent.
    pub fn release_wakes(&mut self) {
        if let Some(from) = self.held_from.take()
            && self.head != from
        {
            self.wake_if_parked();
        }
    }

    /// Starts a durable-ack measurement of the last record appended: the
    /// time from now until the batch holding it is durable goes into
    /// [`WalMetrics::ack_ns`]. Ignored while an earlier mark is in flight or
    /// when nothing was appended. Called by the log's user outside its
    /// append loops (the Node binding: on sampled calls), so `append`
    /// itself never reads a clock.
    pub fn mark_ack(&self) {
        let seq = self.appended_seq();
        let s = &self.shared;
        if !ctfs_core::metrics::ENABLED || seq == 0 || s.ack_seq.load(Ordering::Acquire) != 0 {
            return;
        }
        s.ack_t.store(now_ns(), Ordering::Relaxed);
        s.ack_seq.store(seq, Ordering::Release);
        // Already durable (the writer may have passed it before the mark):
        // claim it here, or the writer's next batch would record a long wait.
        if s.durable.0.load(Ordering::Acquire) >= seq {
            s.claim_ack(seq);
        }
    }

    /// Blocks until everything appended so far is durable; returns that seq.
    /// `WAL_FAILED` if the log failed first.
    pub fn flush(&self) -> Result<u64, WalError> {
        if self.closed {
            return if self.is_failed() { Err(self.shared.failed_error()) } else { Ok(self.durable_seq()) };
        }
        let target = self.appended_seq();
        // records appended under `hold_wakes` may not have woken the writer,
        // and a paced writer may be waiting for this (blocked) thread
        self.shared.hurry.store(true, Ordering::SeqCst);
        if self.shared.pacing_wait.load(Ordering::SeqCst) {
            self.shared.wake_writer();
        }
        self.wake_if_parked();
        let s = &self.shared;
        let mut g = lock(&s.durable_lock);
        loop {
            if s.durable.0.load(Ordering::Acquire) >= target {
                return Ok(target);
            }
            if s.failed.load(Ordering::Acquire) {
                return Err(s.failed_error());
            }
            if s.writer_exited.load(Ordering::Acquire) {
                return Err(WalError::Closed);
            }
            g = s.durable_cv.wait_timeout(g, Duration::from_millis(50)).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Alias of [`Wal::flush`].
    pub fn sync(&self) -> Result<u64, WalError> {
        self.flush()
    }

    /// Drains the queue, syncs, stops the writer thread. Idempotent; `Drop`
    /// calls it. `WAL_FAILED` if the log is (or became) failed.
    pub fn close(&mut self) -> Result<(), WalError> {
        if let Some(t) = self.thread.take() {
            self.shared.closing.store(true, Ordering::SeqCst);
            self.shared.wake_writer();
            if t.join().is_err() {
                let mut f = lock(&self.shared.failure);
                if f.is_none() {
                    *f = Some("WAL writer thread panicked".into());
                }
                self.shared.failed.store(true, Ordering::Release);
            }
        }
        self.closed = true;
        self.lock_file = None;
        self.dir_handle = None;
        if self.is_failed() { Err(self.shared.failed_error()) } else { Ok(()) }
    }

    /// Deletes whole segments whose every record has a seq < `seq` (i.e. the
    /// next segment starts at or before `seq`). Call with `checkpoint.seq + 1`
    /// after the checkpoint is durably written. The active (last) segment is
    /// never deleted. The directory is fsynced afterwards.
    pub fn compact_before(&self, seq: u64) -> Result<CompactReport, WalError> {
        compact_dir(&self.dir, seq.min(self.durable_seq() + 1))
    }
}

/// [`Wal::compact_before`] on a directory (no open `Wal` needed).
pub fn compact_dir(dir: &Path, seq: u64) -> Result<CompactReport, WalError> {
    let segs = list_segments(dir).map_err(|e| WalError::io(format!("list {}", dir.display()), e))?;
    let mut rep = CompactReport::default();
    for w in segs.windows(2) {
        if w[1].0 > seq {
            break;
        }
        let p = &w[0].1;
        rep.bytes += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        std::fs::remove_file(p).map_err(|e| WalError::io(format!("remove {}", p.display()), e))?;
        rep.removed.push(p.clone());
    }
    if !rep.removed.is_empty() {
        fsync_dir(dir).map_err(|e| WalError::io(format!("fsync dir {}", dir.display()), e))?;
    }
    Ok(rep)
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Reads the durable frontier from any thread.
#[derive(Clone)]
pub struct DurableHandle(Arc<Shared>);

impl DurableHandle {
    /// [`Wal::consumed`], from the consumer's thread.
    pub fn consumed(&self, seq: u64) {
        self.0.consumed(seq);
    }
    pub fn durable_seq(&self) -> u64 {
        self.0.durable.0.load(Ordering::Acquire)
    }
    pub fn appended_seq(&self) -> u64 {
        self.0.appended.load(Ordering::Relaxed)
    }
    pub fn is_failed(&self) -> bool {
        self.0.failed.load(Ordering::Acquire)
    }
}

struct Writer {
    shared: Arc<Shared>,
    io: Box<dyn Io>,
    dir: PathBuf,
    seg_file: File,
    seg_path: PathBuf,
    /// Bytes of the segment including queued-but-unwritten records.
    seg_len: u64,
    /// Bytes of the segment already written.
    seg_written: u64,
    /// Length of the segment file: past `seg_written` it holds zeros,
    /// written ahead (see `write_runs`).
    seg_zeroed: u64,
    /// `ZERO_AHEAD` zero bytes (a zeroed allocation: untouched pages).
    zeros: Vec<u8>,
    seg_limit: u64,
    /// Bytes of a segment header (it carries the fingerprint).
    header_len: u64,
    fingerprint: Vec<u8>,
    pos: u64,
    next_seq: u64,
    /// Contiguous ring ranges (offset, len) to write to the current segment.
    runs: Vec<(usize, usize)>,
    notifier: Option<Notifier>,
    on_failure: Option<FailureNotifier>,
    /// Segment rolls so far (for the trace).
    rolls: u32,
    /// The next segment's file, zeroed ahead by a helper (see `spare.rs`).
    spare: Spare,
    /// A spare was asked for since the last roll.
    spare_asked: bool,
    /// The header of a segment made from the spare, not yet written: it
    /// goes into the segment's first write (see `roll`). Empty otherwise.
    pending_header: Vec<u8>,
    /// The segment made from the spare is written but still has the
    /// spare's name: renamed once its first batch is notified.
    unnamed: Option<PathBuf>,
    /// The segment before the last roll and its length: its zeros written
    /// ahead are cut once the rolling batch is reported durable.
    retired: Option<(File, u64)>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let closing = self.shared.closing.load(Ordering::SeqCst);
            let head = self.shared.head.0.load(Ordering::Acquire);
            if head == self.pos {
                if closing {
                    self.trim_zeros();
                    break;
                }
                self.park();
                continue;
            }
            match self.batch(head) {
                Ok((records, bytes)) => self.pace(records, bytes),
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
        }
        self.shared.writer_exited.store(true, Ordering::Release);
        self.shared.wake_durable_waiters();
    }

    /// With pacing on (and a notifier), waits until the consumer reports the
    /// batch just notified as processed, the log closes, a flush asks, or
    /// [`PACE_MAX`] passes. Appends do not wake this wait.
    fn pace(&self, records: u64, bytes: u64) {
        let s = &self.shared;
        if self.notifier.is_none() || !s.pacing.load(Ordering::Relaxed) || records == 0 {
            return;
        }
        // The records just notified plus those already waiting (estimated
        // from their bytes): the group the next sync would merge.
        let waiting = s.head.0.load(Ordering::Acquire).saturating_sub(self.pos);
        if records + waiting * records / bytes.max(1) > PACE_RECORDS {
            return;
        }
        let notified = s.durable.0.load(Ordering::Acquire);
        let deadline = std::time::Instant::now() + PACE_MAX;
        let done = || {
            s.consumed.load(Ordering::SeqCst) >= notified
                || s.closing.load(Ordering::SeqCst)
                || s.hurry.load(Ordering::SeqCst)
                || !s.pacing.load(Ordering::SeqCst)
        };
        while !done() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            s.writer_wait(&s.pacing_wait, &done, left);
        }
        s.hurry.store(false, Ordering::SeqCst);
    }

    fn park(&self) {
        let s = &self.shared;
        let work = || s.head.0.load(Ordering::SeqCst) != self.pos || s.closing.load(Ordering::SeqCst);
        s.writer_wait(&s.parked, work, Duration::from_millis(100));
    }

    fn fail(&mut self, e: std::io::Error) {
        let msg = format!("{} (segment {}): {e}", self.io.name(), self.seg_path.display());
        *lock(&self.shared.failure) = Some(msg.clone());
        self.shared.failed.store(true, Ordering::Release);
        if let Some(cb) = &self.on_failure {
            cb(&msg);
        }
        self.shared.wake_durable_waiters();
    }

    fn write_runs(&mut self) -> std::io::Result<()> {
        if self.runs.is_empty() {
            return Ok(());
        }
        let buf = self.shared.buf;
        // A segment made from the spare: its header leads its first write.
        let header = std::mem::take(&mut self.pending_header);
        let mut lead: &[u8] = &header;
        let mut slices: [&[u8]; 10] = [&[]; 10];
        let mut bytes = 0usize;
        let mut off = self.seg_written;
        // At most 2 runs per batch in practice (ring wrap); chunk defensively.
        for chunk in self.runs.chunks(8) {
            let mut k = 0;
            let mut len = 0;
            let mut at = off;
            if !lead.is_empty() {
                debug_assert_eq!(off, lead.len() as u64, "a segment's header precedes its first record");
                slices[0] = lead;
                k = 1;
                at = 0;
                lead = &[];
            }
            for &(o, l) in chunk {
                // SAFETY: [o, o + l) is inside the writer's exclusive part of
                // the ring until `tail` is released after this batch.
                slices[k] = unsafe { std::slice::from_raw_parts(buf.add(o), l) };
                k += 1;
                len += l;
            }
            // Records that reach past the zeroed part of the segment are
            // followed, in the same write, by `ZERO_AHEAD` zeros (up to the
            // segment limit): the next records then overwrite blocks that
            // exist, and their fdatasync changes no file size, which spares
            // it a journal commit (on ext4, a ~3 KiB batch synced in 130 us
            // instead of 330 us on the development VM). Recovery reads an
            // all-zero remainder as the clean end of a segment.
            let end = off + len as u64;
            let mut zeroed = self.seg_zeroed;
            if end > zeroed {
                zeroed = (end + ZERO_AHEAD as u64).min(self.seg_limit.max(end));
                let z = (zeroed - end) as usize;
                if z > 0 {
                    slices[k] = &self.zeros[..z];
                    k += 1;
                }
            }
            let t0 = if ctfs_core::metrics::ENABLED { now_ns() } else { 0 };
            let write = self.io.write_durable(&self.seg_file, at, &slices[..k])?;
            self.seg_zeroed = zeroed;
            if ctfs_core::metrics::ENABLED {
                let total = now_ns() - t0;
                match write {
                    Some(w) => {
                        self.shared.write_ns.record(w);
                        self.shared.sync_ns.record(total.saturating_sub(w));
                    }
                    None => self.shared.sync_ns.record(total),
                }
            }
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
            off += len as u64;
            bytes += len;
        }
        if !header.is_empty() {
            // Header and records synced: durable, under the spare's name.
            self.unnamed = Some(self.seg_path.clone());
        }
        self.seg_written = off;
        self.shared.bytes_written.fetch_add(bytes as u64, Ordering::Relaxed);
        self.runs.clear();
        Ok(())
    }

    /// Cuts the zeros written ahead off the segment (at a clean close, and
    /// after a roll, see `trim_retired`, so that closed segments hold
    /// exactly their records).
    /// Best effort, and not synced: zeros that stay are read as the
    /// segment's clean end.
    fn trim_zeros(&mut self) {
        if self.seg_zeroed > self.seg_written && self.seg_file.set_len(self.seg_written).is_ok() {
            self.seg_zeroed = self.seg_written;
        }
    }

    /// Gives a segment made from the spare its name (see `spare.rs`).
    fn name_spare(&mut self) -> std::io::Result<()> {
        if let Some(path) = self.unnamed.take() {
            self.spare.name_as(&path)?;
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Cuts the zeros written ahead off the segment before the last roll
    /// (see `trim_zeros`).
    fn trim_retired(&mut self) {
        if let Some((file, len)) = self.retired.take() {
            let _ = file.set_len(len);
        }
    }

    /// Ends the segment (its records in the batch so far written and
    /// synced) and starts the next at `next_seq`. From the spare, the new
    /// segment's header waits for its first records' write (`write_runs`):
    /// one sync for both, and the rename after the batch is notified.
    /// Without a spare, the segment is created here.
    fn roll(&mut self) -> std::io::Result<()> {
        self.write_runs()?;
        self.name_spare()?;
        self.trim_retired();
        let (path, file, zeroed) = match self.spare.take() {
            Some(file) => {
                self.pending_header = encode_segment_header(self.next_seq, &self.fingerprint);
                // A spare is zeroed to the segment size: nothing to write ahead in it.
                (self.dir.join(segment_file_name(self.next_seq)), file, self.seg_limit)
            }
            None => {
                let (path, file) = create_segment(&self.dir, self.next_seq, &self.fingerprint)?;
                self.shared.fsyncs.fetch_add(2, Ordering::Relaxed);
                (path, file, self.header_len)
            }
        };
        self.shared.segments_created.fetch_add(1, Ordering::Relaxed);
        self.rolls = self.rolls.wrapping_add(1);
        self.spare_asked = false;
        let old = std::mem::replace(&mut self.seg_file, file);
        if self.seg_zeroed > self.seg_written {
            self.retired = Some((old, self.seg_written));
        }
        self.seg_path = path;
        self.seg_len = self.header_len;
        self.seg_written = self.seg_len;
        self.seg_zeroed = zeroed;
        Ok(())
    }

    /// Writes and syncs what lies in the ring up to `head`, publishes it as
    /// durable and notifies it. Returns its records and bytes.
    fn batch(&mut self, head: u64) -> std::io::Result<(u64, u64)> {
        let tracing = self.shared.trace_on.load(Ordering::Relaxed);
        let picked_ns = if tracing { monotonic_ns() } else { 0 };
        let rolls0 = self.rolls;
        let cap = self.shared.cap;
        let buf = self.shared.buf;
        let mut pos = self.pos;
        let first_seq = self.next_seq;
        let mut bytes = 0u64;
        // A batch that would not fit in the segment's room, and is small
        // beside a segment, starts the next one: the roll then syncs no
        // records of the old segment (at most an eighth of a segment is
        // left unused). A larger batch fills the segment and rolls inside.
        let pending = head - pos;
        if self.seg_len > self.header_len && self.seg_len + pending > self.seg_limit && pending <= self.seg_limit / 8 {
            self.roll()?;
        }
        while pos < head {
            let off = (pos % cap as u64) as usize;
            if cap - off < 4 {
                pos += (cap - off) as u64;
                continue;
            }
            // SAFETY: inside [tail, head), owned by the writer.
            let len = unsafe { std::ptr::read_unaligned(buf.add(off) as *const [u8; 4]) };
            let len = u32::from_le_bytes(len) as usize;
            if len == 0 {
                pos += (cap - off) as u64;
                continue;
            }
            let total = len + 4;
            if self.seg_len + total as u64 > self.seg_limit && self.seg_len > self.header_len {
                self.roll()?;
            }
            // SAFETY: as above; the producer wrote the whole record before
            // publishing `head`.
            let rec = unsafe { std::slice::from_raw_parts_mut(buf.add(off), total) };
            seal_record(rec);
            match self.runs.last_mut() {
                Some((o, l)) if *o + *l == off => *l += total,
                _ => self.runs.push((off, total)),
            }
            self.seg_len += total as u64;
            self.next_seq += 1;
            pos += total as u64;
            bytes += total as u64;
        }
        self.write_runs()?;
        let synced_ns = if tracing { monotonic_ns() } else { 0 };
        // Written and synced: the ring space can be reused.
        self.pos = pos;
        self.shared.tail.0.store(pos, Ordering::Release);
        let durable = self.next_seq - 1;
        self.shared.records_written.fetch_add(self.next_seq - first_seq, Ordering::Relaxed);
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        self.shared.group_records.record(self.next_seq - first_seq);
        self.shared.group_bytes.record(bytes);
        self.shared.durable.0.store(durable, Ordering::Release);
        let marked = self.shared.ack_seq.load(Ordering::Acquire);
        if marked != 0 && marked <= durable {
            self.shared.claim_ack(marked);
        }
        if let Some(cb) = &self.notifier {
            cb(durable);
        }
        self.shared.wake_durable_waiters();
        let notified_ns = if tracing { monotonic_ns() } else { 0 };
        // Off the acknowledgement's path: the new segment's name, the
        // previous one's zeros.
        self.name_spare()?;
        self.trim_retired();
        // A quarter into the segment, the next one starts being zeroed
        // (never before the last spare has its segment's name: the helper
        // writes the next one under the same name).
        if !self.spare_asked && self.seg_len >= self.seg_limit / 4 {
            self.spare_asked = true;
            self.spare.want();
        }
        if tracing {
            let t = BatchTrace {
                picked_ns,
                synced_ns,
                notified_ns,
                first_seq,
                last_seq: durable,
                rolls: self.rolls.wrapping_sub(rolls0),
            };
            let mut tr = lock(&self.shared.trace);
            if tr.len() < TRACE_MAX {
                tr.push(t);
            }
        }
        Ok((self.next_seq - first_seq, bytes))
    }
}
