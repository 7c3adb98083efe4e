//! The next segment's file, zeroed ahead by a helper thread.
//!
//! An `fdatasync` is cheapest when it changes no file size and allocates no
//! block: then ext4 and XFS commit no journal transaction for it. The writer
//! keeps that true inside a segment by writing zeros ahead of its records
//! (`ZERO_AHEAD` in `wal.rs`), but each of those writes made its batch
//! ~0.8 ms slower on the development VM, and each segment roll (a new file:
//! its header synced, the directory synced, then its first zeros) ~1.5 ms:
//! in a run of 64 producers over 1 MiB segments those batches were more
//! than 1 % of the acknowledgements, so they *were* the p99.
//!
//! Instead, once the active segment is a quarter full, a helper thread
//! writes the next segment's file, [`SPARE_NAME`], full of zeros (the
//! segment size), in chunks each synced, and syncs the directory, so that
//! it never holds the device for long. At the roll the writer takes it if it
//! is ready ([`Spare::take`]): the segment's header goes into the same write
//! as its first records, into blocks that exist, so **one sync** (no
//! journal commit) makes both durable, and those records are reported
//! durable then. Right after, off the acknowledgement's path, the writer
//! renames the file to the segment's name and syncs the directory
//! ([`Spare::name_as`]). A segment made from a spare needs no zeros written
//! ahead. If the spare is not ready, or preparing one failed (e.g. the disk
//! is full), the writer creates the segment itself, as before.
//!
//! So a crash between the sync and the rename leaves acknowledged records
//! under the spare's name. The spare's header tells: a spare with a valid
//! header *is* the newest segment ([`left_segment`]: listed with the
//! segments, renamed by the next open); one whose header is not valid was
//! never written by a roll whose sync completed, so nothing in it was
//! acknowledged, and an open deletes it, unless its header is damaged (not
//! zeros) and records follow it, which is corruption ([`LeftSpare::Damaged`]).
//! A close deletes an unused spare; a taken one is never deleted. The helper
//! starts only when a log first asks for a spare, so that short-lived logs
//! never write one; it prepares the next spare only when asked again, which
//! the writer does after the taken one has its segment's name.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::backend::{Io, Portable};
use crate::checkpoint::MAX_FINGERPRINT;
use crate::format::{SEGMENT_HEADER_MIN_LEN, fsync_dir, parse_segment_header, segment_file_name, segment_header_len, valid_record_after};
use std::io::Read;

/// The spare's file name in the log directory (not a segment's name:
/// recovery, replay and `inspect` read it as a segment only when its
/// header is valid; see the module docs).
pub(crate) const SPARE_NAME: &str = "wal-spare.tmp";

/// Bytes of zeros written and synced at a time.
const CHUNK: usize = 1 << 18;

#[derive(Default)]
struct State {
    /// The writer asked for a spare and none is ready.
    wanted: bool,
    /// A spare of the segment size, zeroed and synced.
    ready: Option<File>,
    /// Preparing one failed: the writer creates its segments from now on.
    gave_up: bool,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    closing: AtomicBool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer's side of the spare segment of one log.
pub(crate) struct Spare {
    dir: PathBuf,
    size: u64,
    /// The writer took the spare and has not renamed it yet: it may hold
    /// acknowledged records, so it is never deleted.
    taken: bool,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Spare {
    /// Spares of `size` bytes in `dir` (nothing starts until [`Spare::want`]).
    pub(crate) fn new(dir: PathBuf, size: u64) -> Spare {
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), cv: Condvar::new(), closing: AtomicBool::new(false) });
        Spare { dir, size, taken: false, shared, thread: None }
    }

    /// Deletes a spare left in `dir` by a process that did not close its
    /// log. Call after recovery (which renames one that holds a segment).
    pub(crate) fn remove_stale(dir: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(dir.join(SPARE_NAME)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Asks for a spare (the helper starts on the first call). Returns at
    /// once.
    pub(crate) fn want(&mut self) {
        if self.taken {
            return; // the next spare would take the taken one's name
        }
        let mut st = lock(&self.shared.state);
        if st.gave_up || st.ready.is_some() {
            return;
        }
        st.wanted = true;
        drop(st);
        if self.thread.is_none() {
            let (shared, path, size) = (self.shared.clone(), self.dir.join(SPARE_NAME), self.size);
            match std::thread::Builder::new().name("ctfs-wal-spare".into()).spawn(move || helper(&shared, &path, size)) {
                Ok(t) => self.thread = Some(t),
                Err(_) => lock(&self.shared.state).gave_up = true,
            }
        } else {
            self.shared.cv.notify_one();
        }
    }

    /// The spare, if one is ready: a file of the segment size, zeroed and
    /// synced, still under [`SPARE_NAME`]. The caller writes the segment's
    /// header and first records into it, syncs them, then calls
    /// [`Spare::name_as`]. `None` when no spare is ready (the caller
    /// creates the segment).
    pub(crate) fn take(&mut self) -> Option<File> {
        let f = lock(&self.shared.state).ready.take();
        self.taken |= f.is_some();
        f
    }

    /// Gives the taken spare, its header synced, the segment's name `path`,
    /// and syncs the directory.
    pub(crate) fn name_as(&mut self, path: &Path) -> std::io::Result<()> {
        std::fs::rename(self.dir.join(SPARE_NAME), path)?;
        self.taken = false;
        fsync_dir(&self.dir)
    }
}

impl Drop for Spare {
    /// Stops the helper and deletes an unused spare (best effort: an open
    /// deletes what is left). A taken spare stays: the next open reads it.
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shared.closing.store(true, Ordering::SeqCst);
            {
                let _g = lock(&self.shared.state);
                self.shared.cv.notify_one();
            }
            let _ = t.join();
            if !self.taken {
                let _ = std::fs::remove_file(self.dir.join(SPARE_NAME));
            }
        }
    }
}

/// The helper thread: prepares a spare whenever one is wanted.
fn helper(shared: &Shared, path: &Path, size: u64) {
    loop {
        {
            let mut st = lock(&shared.state);
            while !(st.wanted || shared.closing.load(Ordering::SeqCst)) {
                st = shared.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if shared.closing.load(Ordering::SeqCst) {
                return;
            }
        }
        // Synced into the directory too: records written into it are
        // acknowledged before it is renamed (see the module docs).
        let made = zeroed_file(path, size, &shared.closing).and_then(|f| {
            let dir = path.parent().unwrap_or(Path::new("."));
            fsync_dir(dir).map(|()| f)
        });
        let mut st = lock(&shared.state);
        st.wanted = false;
        match made {
            Ok(f) => st.ready = Some(f),
            Err(_) if shared.closing.load(Ordering::SeqCst) => return,
            Err(_) => {
                st.gave_up = true;
                let _ = std::fs::remove_file(path);
                return;
            }
        }
    }
}

/// `path` created (or truncated) and filled with `size` zero bytes, synced
/// chunk by chunk; `Interrupted` when `stop` is raised.
fn zeroed_file(path: &Path, size: u64, stop: &AtomicBool) -> std::io::Result<File> {
    let f = OpenOptions::new().create(true).truncate(true).write(true).open(path)?;
    let zeros = vec![0u8; CHUNK];
    let mut off = 0u64;
    while off < size {
        if stop.load(Ordering::SeqCst) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = (size - off).min(CHUNK as u64) as usize;
        Portable.write_durable(&f, off, &[&zeros[..n]])?;
        off += n as u64;
    }
    Ok(f)
}

/// What a spare left in a log directory holds (see the module docs).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LeftSpare {
    /// No spare, or one that holds no segment: nothing in it was
    /// acknowledged.
    Unused,
    /// A valid header: the newest segment, starting at this seq, with
    /// acknowledged records.
    Segment(u64),
    /// A header that is neither valid nor zeros, followed by records; or a
    /// segment whose name another file has.
    Damaged(String),
}

/// Reads the spare left in `dir`, if any (see [`LeftSpare`]).
pub(crate) fn left_spare(dir: &Path) -> std::io::Result<LeftSpare> {
    let path = dir.join(SPARE_NAME);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Ok(LeftSpare::Unused),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LeftSpare::Unused),
        Err(e) => return Err(e),
    }
    let mut f = File::open(&path)?;
    let mut head = Vec::new();
    (&mut f).take(SEGMENT_HEADER_MIN_LEN as u64).read_to_end(&mut head)?;
    // Never written by a roll (zeros), or a roll whose sync did not
    // complete: the common case (an unused spare) reads 32 bytes.
    if head.iter().all(|&b| b == 0) {
        return Ok(LeftSpare::Unused);
    }
    (&mut f).take((segment_header_len(MAX_FINGERPRINT) - SEGMENT_HEADER_MIN_LEN) as u64).read_to_end(&mut head)?;
    let reason = match parse_segment_header(&head) {
        Ok(h) => {
            let named = dir.join(segment_file_name(h.first_seq));
            return Ok(if named.exists() {
                LeftSpare::Damaged(format!("it holds segment {}, and {} exists too", h.first_seq, named.display()))
            } else {
                LeftSpare::Segment(h.first_seq)
            });
        }
        Err(reason) => reason,
    };
    let mut all = head;
    f.read_to_end(&mut all)?;
    Ok(match valid_record_after(&all, 0, 1) {
        Some(_) => LeftSpare::Damaged(format!("{reason}, and records follow it")),
        None => LeftSpare::Unused,
    })
}

/// The segment a spare left in `dir` holds, as (first seq, path): listed
/// with the segments (`format::list_segments`).
pub(crate) fn left_segment(dir: &Path) -> std::io::Result<Option<(u64, PathBuf)>> {
    Ok(match left_spare(dir)? {
        LeftSpare::Segment(first) => Some((first, dir.join(SPARE_NAME))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_segment_header, segment_file_name};
    use std::time::{Duration, Instant};

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ctfs-spare-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn wait_ready(s: &Spare) {
        let t0 = Instant::now();
        while lock(&s.shared.state).ready.is_none() {
            assert!(t0.elapsed() < Duration::from_secs(20), "spare not ready in 20 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn nothing_is_written_until_wanted() {
        let d = tmp("idle");
        let mut s = Spare::new(d.clone(), 1 << 20);
        assert!(s.take().is_none());
        assert!(!d.join(SPARE_NAME).exists());
        drop(s);
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn a_ready_spare_becomes_a_segment_with_its_header() {
        let d = tmp("install");
        let size = 3 * CHUNK as u64 + 100;
        let mut s = Spare::new(d.clone(), size);
        s.want();
        wait_ready(&s);
        assert_eq!(std::fs::metadata(d.join(SPARE_NAME)).expect("spare").len(), size);
        let f = s.take().expect("ready");
        let header = encode_segment_header(42, b"fingerprint");
        Portable.write_durable(&f, 0, &[&header, b"records"]).expect("write");
        let path = d.join(segment_file_name(42));
        s.name_as(&path).expect("rename");
        assert!(!d.join(SPARE_NAME).exists());
        let bytes = std::fs::read(&path).expect("segment");
        assert_eq!(bytes.len() as u64, size);
        assert_eq!(&bytes[..header.len()], &header[..]);
        assert_eq!(&bytes[header.len()..header.len() + 7], b"records");
        assert!(bytes[header.len() + 7..].iter().all(|&b| b == 0));
        // The next spare is prepared on the next request.
        assert!(s.take().is_none());
        s.want();
        wait_ready(&s);
        drop(s);
        assert!(!d.join(SPARE_NAME).exists(), "a close deletes an unused spare");
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn a_stale_spare_is_removed() {
        let d = tmp("stale");
        std::fs::write(d.join(SPARE_NAME), b"junk").expect("write");
        Spare::remove_stale(&d).expect("remove");
        assert!(!d.join(SPARE_NAME).exists());
        Spare::remove_stale(&d).expect("nothing to remove is fine");
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn a_failing_helper_gives_up_and_leaves_the_writer_to_create_segments() {
        let d = tmp("fail");
        // The spare's path is a directory: creating the file fails.
        std::fs::create_dir(d.join(SPARE_NAME)).expect("dir");
        let mut s = Spare::new(d.clone(), 1 << 20);
        s.want();
        let t0 = Instant::now();
        while !lock(&s.shared.state).gave_up {
            assert!(t0.elapsed() < Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(s.take().is_none());
        s.want();
        drop(s);
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
