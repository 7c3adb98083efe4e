//! Memory whose pages are faulted in ahead of use, on a helper thread.
//!
//! The exact index's arena appends ids to 32 KiB chunks. Below the size at
//! which its chunks come from huge pages, a 0 → 4M run of single admissions
//! had most of its admissions of 2 µs or more at two places (counted per
//! admission: minor faults, and the time of each step of a chunk start):
//!
//! * first-touch faults: a chunk's eight 4 KiB pages, written page after
//!   page by the admissions that fill it, fault one by one, 1–2 µs each on
//!   the development VM (nested paging): 9.2–9.3K admissions of 2 µs or
//!   more between 1M and 4M ids, 1.1–1.7K below 1M;
//! * the chunk's `malloc` of 32 KiB: 2 µs or more at 2.7K of the ~4K chunk
//!   starts below 4M (a heap that the growing table keeps freeing large
//!   segments into).
//!
//! So from 64 chunks on, the arena carves its chunks from a [`Reservation`]
//! (an address range mapped once per 64 chunks, no `malloc`), and asks
//! [`populate_later`] to fault the *next* chunk in while admissions fill the
//! current one: a helper thread does it (`MADV_POPULATE_WRITE`, Linux
//! 5.14+). Faulting a chunk with one call on the admitting thread instead
//! made every chunk start a 2 µs+ admission, and waking the helper at every
//! request did too (an IPI to the other core costs the requester several µs
//! on a VM), so the helper polls while requests keep coming (about twice
//! per interval between them) and parks when they stop.
//!
//! Populating changes no content, so it is harmless whenever it runs: a
//! chunk used before the helper reached it faults as usual. A request holds
//! its reservation (an `Arc`), so the mapping outlives every request made
//! on it: the helper never touches an address that was unmapped or reused.
//! Elsewhere than Linux, or when the helper cannot be started, nothing is
//! done and pages fault on first touch; without `mmap` the arena keeps using
//! the heap.

/// Asks the helper thread to fault in the pages of `len` bytes at `offset`
/// in `r` (clamped to the reservation, rounded out to whole 4 KiB pages).
/// Returns at once: no system call unless the helper is parked (or, at the
/// process's first request, not started yet).
pub fn populate_later(r: &std::sync::Arc<Reservation>, offset: usize, len: usize) {
    let offset = offset.min(r.len);
    let len = len.min(r.len - offset);
    #[cfg(target_os = "linux")]
    linux::request(std::sync::Arc::clone(r), offset, len);
    #[cfg(not(target_os = "linux"))]
    let _ = (offset, len);
}

/// An address range mapped for later use, of which only the pages touched
/// (or populated) take memory: the arena carves chunks from it, in order,
/// and counts as memory only the chunks it carved and the one populated
/// ahead. Not advised for huge pages (`MADV_NOHUGEPAGE`), so that a first
/// touch never makes 2 MiB resident. Unmapped on drop.
pub struct Reservation {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the reservation owns its mapping; it hands out raw pointers only.
unsafe impl Send for Reservation {}
// SAFETY: as above (no interior mutability).
unsafe impl Sync for Reservation {}

impl Reservation {
    /// Maps `len` bytes (a multiple of 4 KiB); `None` where `mmap` is not
    /// available or fails (the caller uses the heap).
    pub fn new(len: usize) -> Option<Reservation> {
        #[cfg(target_os = "linux")]
        {
            if len == 0 || !len.is_multiple_of(4096) {
                return None;
            }
            // SAFETY: an anonymous private mapping at an address of the
            // kernel's choice; checked for failure below.
            let raw = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if raw == libc::MAP_FAILED {
                return None;
            }
            // SAFETY: the range was just mapped; a failure only leaves THP's default.
            unsafe { libc::madvise(raw, len, libc::MADV_NOHUGEPAGE) };
            std::ptr::NonNull::new(raw as *mut u8).map(|ptr| Reservation { ptr, len })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = len;
            None
        }
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        // SAFETY: the range was mapped by `new` and is unmapped once; whoever
        // carved chunks from it (the arena) drops it after its last use.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len);
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::Reservation;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::thread::Thread;
    use std::time::{Duration, Instant};

    const PAGE: usize = 4096;

    /// Ranges waiting for the helper; each holds its mapping alive.
    type Request = (Arc<Reservation>, usize, usize);
    static QUEUE: Mutex<Vec<Request>> = Mutex::new(Vec::new());
    /// The helper (`None` when its thread could not be started).
    static HELPER: OnceLock<Option<Thread>> = OnceLock::new();
    /// Set while the helper is parked until a request wakes it.
    static PARKED: AtomicBool = AtomicBool::new(false);

    /// Polls while requests keep coming, about twice per interval between
    /// requests (a moving average, within [`MIN_POLL`, `MAX_POLL`]), and
    /// parks once none came for [`PARK_AFTER`] such intervals (and at least
    /// [`PARK_AFTER_MIN`]). A request only pushes to the queue (no system
    /// call) unless the helper is parked: waking a thread on the other core
    /// costs the requester several µs on a VM (an IPI), which was measured
    /// as a 2 µs+ admission at every chunk start when each request woke the
    /// helper. Polling at a fixed 100 µs instead woke it ~10,000 times a
    /// second under durable batches and worsened their ack p99 (the log
    /// writer shares the two cores).
    const MIN_POLL: Duration = Duration::from_micros(100);
    const MAX_POLL: Duration = Duration::from_millis(5);
    const PARK_AFTER: u32 = 64;
    const PARK_AFTER_MIN: Duration = Duration::from_millis(50);

    fn helper_loop() {
        // Swapped with the queue, so that neither side allocates once warm.
        let mut work: Vec<Request> = Vec::new();
        let mut interval = MAX_POLL;
        let mut last = Instant::now();
        loop {
            std::mem::swap(&mut work, &mut *QUEUE.lock().unwrap_or_else(|e| e.into_inner()));
            let now = Instant::now();
            if !work.is_empty() {
                interval = (interval * 3 + (now - last).min(MAX_POLL * 2)) / 4;
                last = now;
                for (r, offset, len) in work.drain(..) {
                    populate(r.as_ptr() as usize + offset, len);
                }
                continue;
            }
            if now - last < (interval * PARK_AFTER).max(PARK_AFTER_MIN) {
                std::thread::sleep((interval / 2).clamp(MIN_POLL, MAX_POLL));
            } else {
                PARKED.store(true, Ordering::SeqCst);
                // A request pushed before the flag was set is seen here; one
                // pushed after it sees the flag and unparks.
                if QUEUE.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
                    std::thread::park();
                }
                PARKED.store(false, Ordering::SeqCst);
                // The first request after a pause is served at once; the
                // interval is measured again from it.
                interval = MAX_POLL;
                last = Instant::now();
            }
        }
    }

    pub(super) fn request(r: Arc<Reservation>, offset: usize, len: usize) {
        if len == 0 {
            return;
        }
        let helper = HELPER.get_or_init(|| {
            let spawned = std::thread::Builder::new().name("ctfs-populate".into()).stack_size(64 << 10).spawn(helper_loop);
            spawned.ok().map(|h| h.thread().clone())
        });
        let Some(helper) = helper else { return };
        QUEUE.lock().unwrap_or_else(|e| e.into_inner()).push((r, offset, len));
        if PARKED.load(Ordering::SeqCst) {
            helper.unpark();
        }
    }

    /// Faults in the pages of `[addr, addr + len)`, rounded out to pages.
    pub(super) fn populate(addr: usize, len: usize) {
        let start = addr & !(PAGE - 1);
        let Some(end) = addr.checked_add(len).and_then(|e| e.checked_next_multiple_of(PAGE)) else {
            return;
        };
        if end > start {
            // SAFETY: the range lies in a live reservation (the request
            // holds it) or in memory the caller owns; MADV_POPULATE_WRITE
            // only faults pages in, changing no content, and fails (ignored)
            // on kernels before 5.14.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_POPULATE_WRITE) };
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn minor_faults() -> i64 {
            // SAFETY: a zeroed rusage is valid; getrusage fills it.
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
            u.ru_minflt
        }

        #[test]
        fn populated_pages_do_not_fault_again_and_keep_their_content() {
            let mut v: Vec<u8> = Vec::with_capacity(1 << 20);
            let p = v.as_mut_ptr();
            // Content written before must survive.
            // SAFETY: within capacity.
            unsafe { p.add(1).write(7) };
            populate(p as usize, 1 << 20);
            let before = minor_faults();
            // SAFETY: within capacity.
            let kept = unsafe {
                for off in (0..1 << 20).step_by(PAGE) {
                    p.add(off).write_volatile(1);
                }
                p.add(1).read()
            };
            let faults = minor_faults() - before;
            // A kernel without MADV_POPULATE_WRITE (before 5.14) faults 256 times.
            assert!(faults <= 2, "{faults} faults after populating");
            assert_eq!(kept, 7);
        }

        /// Resident pages of `[p, p + len)` (`mincore`).
        fn resident(p: *mut u8, len: usize) -> usize {
            let mut vec = vec![0u8; len.div_ceil(PAGE)];
            // SAFETY: p is page-aligned and the range is mapped; vec has a
            // byte per page.
            let rc = unsafe { libc::mincore(p as *mut libc::c_void, len, vec.as_mut_ptr()) };
            assert_eq!(rc, 0);
            vec.iter().filter(|&&b| b & 1 == 1).count()
        }

        /// Waits until the helper has populated `[p, p + len)` (pages).
        fn wait_resident(p: *mut u8, len: usize) {
            let t = std::time::Instant::now();
            while resident(p, len) < len / PAGE {
                assert!(t.elapsed() < std::time::Duration::from_secs(10), "the helper never populated the range");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }

        #[test]
        fn the_helper_faults_in_what_was_asked_and_nothing_more() {
            let r = Arc::new(Reservation::new(16 * PAGE).expect("mmap"));
            assert_eq!(resident(r.as_ptr(), 16 * PAGE), 0, "a reservation takes no memory until used");
            // Pages 4..12, asked from the middle of page 4 to the middle of page 11.
            super::super::populate_later(&r, 4 * PAGE + 100, 7 * PAGE);
            // SAFETY: inside the reservation.
            wait_resident(unsafe { r.as_ptr().add(4 * PAGE) }, 8 * PAGE);
            assert_eq!(resident(r.as_ptr(), 16 * PAGE), 8, "only the pages asked for");
            // SAFETY: inside the reservation, which is zero-filled.
            assert_eq!(unsafe { r.as_ptr().add(5 * PAGE).read() }, 0);
            // Past the end: clamped to the reservation.
            super::super::populate_later(&r, 14 * PAGE, usize::MAX);
            super::super::populate_later(&r, usize::MAX, 1);
            // SAFETY: inside the reservation.
            wait_resident(unsafe { r.as_ptr().add(14 * PAGE) }, 2 * PAGE);
            assert_eq!(resident(r.as_ptr(), 16 * PAGE), 10);
        }

        #[test]
        fn a_request_keeps_its_mapping_alive() {
            let r = Arc::new(Reservation::new(64 * PAGE).expect("mmap"));
            let weak = Arc::downgrade(&r);
            super::super::populate_later(&r, 0, 64 * PAGE);
            drop(r);
            // Unmapped once the helper has served (and dropped) the request.
            let t = std::time::Instant::now();
            while weak.upgrade().is_some() {
                assert!(t.elapsed() < std::time::Duration::from_secs(10), "the request was never served");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}
