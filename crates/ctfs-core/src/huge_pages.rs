//! Memory on transparent huge pages, for the exact index's big structures.
//!
//! On this project's development VM a TLB miss is very expensive (nested
//! paging): a random dependent read of one line in 64 MB takes ~280 ns on
//! 4 KiB pages and ~180 ns on 2 MiB pages. The exact index reads one random
//! table bucket per admission (and one arena entry per dependency), so its
//! large memory is served from here once the index is large.
//!
//! * [`HugeBlock`] — an owned, zero-filled region whose length is a multiple
//!   of 2 MiB, 2 MiB-aligned and advised `MADV_HUGEPAGE` before its first
//!   touch (Linux, `mmap` + `madvise`); elsewhere, or when `mmap` fails, a
//!   plain zeroed heap allocation. Unmapped (or freed) on drop.
//! * [`HugePool`] — a bump allocator over such blocks with a free list, for
//!   slots of at most 2 MiB (arena chunks, table segments), in multiples of
//!   64 bytes. Freed ranges merge with free neighbours (and with the unused
//!   tail of the current block); [`HugePool::alloc`] takes the smallest free
//!   range that fits (best fit) and keeps a rest under 32 KiB with the slot
//!   rather than leave an unusable sliver; [`HugePool::alloc_exact`] (for
//!   slots never freed) takes only an exact fit or a range with a usable
//!   rest. It bumps into the current block only when no free range fits, and
//!   takes a new block only while the free ranges stay under a cap the owner
//!   sets ([`HugePool::set_free_cap`]; past it the caller uses the heap).
//!   The pool is inert until [`HugePool::activate`] (a small index stays on
//!   the heap: one tenant among thousands must not reserve 2 MiB), and
//!   [`HugePool::reserved_bytes`] counts every block whole, partly used or
//!   not, plus a block being faulted in ahead.
//! * Prefaulting ([`HugePool::set_prefault`]): the first touch of a huge
//!   page zeroes 2 MiB at once, which took 1–7 ms on the development VM
//!   (host faults behind nested paging); on 4 KiB pages the same cost is
//!   spread over 512 faults. So once the current block is 7/8 used, a helper
//!   thread maps and touches the next one, and a request that needs a new
//!   block before it is ready is answered `None` (the caller uses the heap
//!   this time): a huge page is never first touched by the admitting thread.
//!
//! Fragmentation, measured at 3M ids: per-size free lists held ~5 bytes per
//! id (a growing table frees sizes it no longer asks for); best fit with
//! merging but arena chunks mixed into the same blocks, ~2.8 (permanent
//! chunks pin the holes); so the exact index keeps two pools, one for arena
//! chunks (packed exactly, 64 per block) and one for table segments.
//!
//! Nothing here is visible outside the crate's index; the memory it hands
//! out is reached through raw pointers whose owner (the index) keeps the
//! pool alive for as long as it uses them.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::collections::{BTreeMap, BTreeSet};
use std::ptr::NonNull;

/// The size and alignment of a transparent huge page on x86-64 and aarch64 (4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;
/// The next block is faulted in ahead once the current one is used this far.
const PREFAULT_AT: usize = HUGE_PAGE / 8 * 7;
/// A free range is split only if the rest is at least this large (the
/// smallest request of the exact index: a 32 KiB arena chunk).
const MIN_SPLIT: usize = 32 << 10;
/// Slots are rounded up to a multiple of this (one cache line), and aligned to it.
const SLOT_ALIGN: usize = 64;

/// An owned region of `len` bytes (a multiple of [`HUGE_PAGE`]), zero-filled
/// at creation. See the module documentation.
pub struct HugeBlock {
    ptr: NonNull<u8>,
    len: usize,
    /// `true`: from `mmap` (unmap on drop); `false`: from the heap (or empty).
    mapped: bool,
    /// `madvise(MADV_HUGEPAGE)` succeeded on it.
    advised: bool,
}

// SAFETY: a HugeBlock owns its region exclusively (like a Box<[u8]>); it has
// no interior mutability and no thread affinity.
unsafe impl Send for HugeBlock {}
// SAFETY: shared access only reads the pointer and length.
unsafe impl Sync for HugeBlock {}

impl HugeBlock {
    /// A block of at least `len` bytes, advised for huge pages where possible.
    /// `len == 0` gives an empty block (no allocation).
    pub fn new(len: usize) -> HugeBlock {
        Self::with_source(len, true)
    }

    /// A block from the heap (the fallback path), never advised.
    pub fn new_heap(len: usize) -> HugeBlock {
        Self::with_source(len, false)
    }

    fn with_source(len: usize, try_map: bool) -> HugeBlock {
        let Some(len) = len.checked_next_multiple_of(HUGE_PAGE) else { handle_alloc_error(Layout::new::<u8>()) };
        if len == 0 {
            return HugeBlock { ptr: NonNull::dangling(), len: 0, mapped: false, advised: false };
        }
        #[cfg(target_os = "linux")]
        if try_map && let Some(b) = Self::map(len) {
            return b;
        }
        let _ = try_map;
        let layout = Self::heap_layout(len);
        // SAFETY: the layout has a non-zero size (len > 0).
        let p = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(p) else { handle_alloc_error(layout) };
        HugeBlock { ptr, len, mapped: false, advised: false }
    }

    fn heap_layout(len: usize) -> Layout {
        // A base page of alignment is enough for the fallback (its users need 64).
        match Layout::from_size_align(len, 4096) {
            Ok(l) => l,
            Err(_) => handle_alloc_error(Layout::new::<u8>()),
        }
    }

    /// Maps `len + HUGE_PAGE` bytes, trims them to a 2 MiB-aligned `len`,
    /// and advises the rest for huge pages. `None` if `mmap` fails.
    #[cfg(target_os = "linux")]
    fn map(len: usize) -> Option<HugeBlock> {
        let total = len.checked_add(HUGE_PAGE)?;
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choice touches no existing memory.
        let raw = unsafe {
            libc::mmap(std::ptr::null_mut(), total, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let base = raw as usize;
        let start = base.next_multiple_of(HUGE_PAGE);
        let head = start - base;
        let tail = total - head - len;
        // SAFETY: [base, base + head) and [start + len, base + total) lie
        // inside the mapping just made and are page-aligned (mmap returns
        // page-aligned addresses; start and len are multiples of 2 MiB);
        // nothing refers to them. A failed munmap leaves them mapped (a leak
        // of at most 2 MiB of address space, no unsoundness).
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((start + len) as *mut libc::c_void, tail);
            }
        }
        // SAFETY: [start, start + len) is mapped and ours; MADV_HUGEPAGE only
        // changes how the kernel backs it (its contents stay zero).
        let advised = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE) } == 0;
        // start > 0: it is inside a successful mapping.
        let ptr = NonNull::new(start as *mut u8)?;
        Some(HugeBlock { ptr, len, mapped: true, advised })
    }

    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block came from `mmap` and `madvise(MADV_HUGEPAGE)` accepted it
    /// (the kernel may still back it with base pages if none are free).
    pub fn is_advised(&self) -> bool {
        self.advised
    }
}

impl Drop for HugeBlock {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        if self.mapped {
            #[cfg(target_os = "linux")]
            // SAFETY: [ptr, ptr + len) is exactly the mapping kept by `map`,
            // owned by this block, and nothing uses it after the drop.
            unsafe {
                libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len);
            }
        } else {
            // SAFETY: allocated in `with_source` with this very layout.
            unsafe { dealloc(self.ptr.as_ptr(), Self::heap_layout(self.len)) };
        }
    }
}

/// A slot handed out by a [`HugePool`]: `bytes` bytes at `ptr`, 64-byte aligned.
/// Its contents are unspecified (zero when fresh, old data when reused):
/// the user initialises what it reads.
#[derive(Debug)]
pub struct Slot {
    ptr: NonNull<u8>,
    bytes: usize,
}

impl Slot {
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    #[inline]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Bump allocation over [`HugeBlock`]s, with free lists. See the module documentation.
pub struct HugePool {
    blocks: Vec<HugeBlock>,
    /// Offset of the first unused byte in the last block.
    bump: usize,
    /// Free ranges: address → length, and (length, address) for best fit.
    /// Adjacent free ranges are always merged.
    free_at: BTreeMap<usize, usize>,
    free_by_len: BTreeSet<(usize, usize)>,
    free_bytes: usize,
    active: bool,
    /// A new block is taken only while free ranges hold at most this many
    /// bytes (see [`HugePool::set_free_cap`]).
    free_cap: usize,
    /// Take blocks from the heap (tests of the fallback path).
    heap_only: bool,
    /// Fault the next block in on a helper thread (see `start_prefault`).
    prefault: bool,
    /// The block being faulted in ahead of time (counted as reserved).
    pending: Option<std::sync::mpsc::Receiver<HugeBlock>>,
}

// SAFETY: the pool owns its blocks; the free lists point into them. No
// interior mutability, no thread affinity.
unsafe impl Send for HugePool {}
// SAFETY: `&HugePool` only reads sizes.
unsafe impl Sync for HugePool {}

impl Default for HugePool {
    fn default() -> HugePool {
        HugePool::new()
    }
}

impl HugePool {
    /// An inactive pool (allocates nothing until [`HugePool::activate`]).
    pub fn new() -> HugePool {
        HugePool {
            blocks: Vec::new(),
            bump: 0,
            free_at: BTreeMap::new(),
            free_by_len: BTreeSet::new(),
            free_bytes: 0,
            active: false,
            free_cap: usize::MAX,
            heap_only: false,
            prefault: false,
            pending: None,
        }
    }

    /// A pool whose blocks come from the plain heap (the fallback path).
    pub fn heap_only() -> HugePool {
        HugePool { heap_only: true, ..HugePool::new() }
    }

    pub fn activate(&mut self) {
        self.active = true;
    }

    /// Bounds fragmentation: while more than `bytes` are free (in ranges
    /// too small for the request at hand), `alloc` answers `None` instead of
    /// reserving another block, and the caller uses the heap. The default
    /// is no bound (`usize::MAX`); the exact index sets one byte per id.
    #[inline]
    pub fn set_free_cap(&mut self, bytes: usize) {
        self.free_cap = bytes;
    }

    #[inline]
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// A slot of at least `bytes` bytes (`0 < bytes <= HUGE_PAGE`), or `None`
    /// when the pool is inactive or the size is out of range (use the heap).
    pub fn alloc(&mut self, bytes: usize) -> Option<Slot> {
        self.alloc_in(bytes, true)
    }

    /// `alloc` that hands out exactly the size asked (rounded up to 64
    /// bytes), for slots that are never freed (they would keep a sliver for
    /// good): it takes a free range of exactly that size, or one large
    /// enough to leave a usable rest, or else bumps.
    pub fn alloc_exact(&mut self, bytes: usize) -> Option<Slot> {
        self.alloc_in(bytes, false)
    }

    fn alloc_in(&mut self, bytes: usize, absorb: bool) -> Option<Slot> {
        if !self.active || bytes == 0 || bytes > HUGE_PAGE {
            return None;
        }
        let size = bytes.next_multiple_of(SLOT_ALIGN);
        let fit = if absorb {
            self.free_by_len.range((size, 0)..).next()
        } else {
            self.free_by_len.range((size, 0)..(size + 1, 0)).next().or_else(|| self.free_by_len.range((size + MIN_SPLIT, 0)..).next())
        };
        if let Some(&(len, addr)) = fit {
            self.take_free(addr, len);
            // A rest too small to serve a request goes with the slot (and
            // comes back with it) instead of lingering as a sliver.
            let size = if len - size < MIN_SPLIT { len } else { size };
            if len > size {
                self.put_free(addr + size, len - size);
            }
            // SAFETY: addr is inside a live block (free ranges are carved from blocks), so non-null.
            return Some(Slot { ptr: unsafe { NonNull::new_unchecked(addr as *mut u8) }, bytes: size });
        }
        if self.blocks.is_empty() || self.bump + size > HUGE_PAGE {
            if self.free_bytes > self.free_cap {
                // Enough is free already, though in pieces too small: do not
                // reserve more (the caller uses the heap this time).
                return None;
            }
            // No block ready yet: the heap this time.
            let b = self.next_block()?;
            // The rest of the current block becomes a free range.
            if let Some(last) = self.blocks.last() {
                let rest = HUGE_PAGE - self.bump;
                if rest > 0 {
                    let at = last.as_ptr() as usize + self.bump;
                    self.bump = HUGE_PAGE;
                    self.free_range(at, rest, false);
                }
            }
            self.blocks.push(b);
            self.bump = 0;
        }
        let last = self.blocks.last()?;
        // SAFETY: bump + size <= HUGE_PAGE = the block's length.
        let ptr = unsafe { NonNull::new_unchecked(last.as_ptr().add(self.bump)) };
        self.bump += size;
        if self.bump >= PREFAULT_AT && self.prefault {
            self.start_prefault();
        }
        Some(Slot { ptr, bytes: size })
    }

    /// The next block. Prefaulting: the one faulted in ahead of time, or
    /// `None` while it is not ready (one is then requested), so that a huge
    /// page is never first touched by the caller. Otherwise a new block.
    fn next_block(&mut self) -> Option<HugeBlock> {
        if !self.prefault {
            return Some(HugeBlock::with_source(HUGE_PAGE, !self.heap_only));
        }
        if let Some(rx) = &self.pending {
            match rx.try_recv() {
                Ok(b) => {
                    self.pending = None;
                    return Some(b);
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return None,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => self.pending = None,
            }
        }
        self.start_prefault();
        None
    }

    /// Maps and faults in the next block on a helper thread, so that the
    /// first touch of a huge page (zeroing 2 MiB: 1–7 ms on the development
    /// VM) does not stall the thread that admits. At most one is in flight;
    /// it counts as reserved from now on. If the thread cannot start, the
    /// block is faulted where it is first used, as without prefaulting.
    fn start_prefault(&mut self) {
        if self.pending.is_some() {
            return;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let try_map = !self.heap_only;
        let spawned = std::thread::Builder::new().name("ctfs-prefault".into()).spawn(move || {
            let b = HugeBlock::with_source(HUGE_PAGE, try_map);
            // SAFETY: the block holds HUGE_PAGE bytes and is ours; one write
            // per base page faults the whole range in (one fault when the
            // kernel backs it with a huge page).
            unsafe {
                for off in (0..b.len()).step_by(4096) {
                    std::ptr::write_volatile(b.as_ptr().add(off), 0);
                }
            }
            // The pool may be gone: the block is then dropped (unmapped) here.
            let _ = tx.send(b);
        });
        if spawned.is_ok() {
            self.pending = Some(rx);
        }
    }

    fn take_free(&mut self, addr: usize, len: usize) {
        self.free_at.remove(&addr);
        self.free_by_len.remove(&(len, addr));
        self.free_bytes -= len;
    }

    fn put_free(&mut self, addr: usize, len: usize) {
        self.free_at.insert(addr, len);
        self.free_by_len.insert((len, addr));
        self.free_bytes += len;
    }

    /// Frees `[addr, addr + len)`, merged with its free neighbours; a range
    /// that ends where the current block's unused tail begins goes back to it.
    fn free_range(&mut self, mut addr: usize, mut len: usize, to_tail: bool) {
        if let Some((&pa, &pl)) = self.free_at.range(..addr).next_back()
            && pa + pl == addr
        {
            self.take_free(pa, pl);
            addr = pa;
            len += pl;
        }
        if let Some(&nl) = self.free_at.get(&(addr + len)) {
            self.take_free(addr + len, nl);
            len += nl;
        }
        if let Some(last) = self.blocks.last().filter(|_| to_tail) {
            let base = last.as_ptr() as usize;
            if addr + len == base + self.bump && addr >= base {
                self.bump = addr - base;
                return;
            }
        }
        self.put_free(addr, len);
    }

    /// Returns a slot for reuse.
    ///
    /// # Safety
    /// `slot` came from this pool's `alloc`, is given back once, and nothing
    /// reads or writes it afterwards.
    pub unsafe fn free(&mut self, slot: Slot) {
        self.free_range(slot.ptr.as_ptr() as usize, slot.bytes, true);
    }

    /// Bytes reserved: every block counted whole, and the one being
    /// faulted in ahead of time.
    pub fn reserved_bytes(&self) -> usize {
        (self.blocks.len() + self.pending.is_some() as usize) * HUGE_PAGE
    }

    /// The block being faulted in ahead of time, if any.
    pub fn in_flight_bytes(&self) -> usize {
        self.pending.is_some() as usize * HUGE_PAGE
    }

    /// Fault each next block in on a helper thread once the current one is
    /// 7/8 used (the exact index turns this on).
    pub fn set_prefault(&mut self, on: bool) {
        self.prefault = on;
    }

    /// Bytes of free ranges (reserved, not in use; the current block's
    /// unused tail excluded).
    pub fn free_bytes(&self) -> usize {
        self.free_bytes
    }

    /// The current block's unused tail.
    pub fn tail_bytes(&self) -> usize {
        if self.blocks.is_empty() { 0 } else { HUGE_PAGE - self.bump }
    }

    /// Blocks taken so far, and how many of them `madvise` accepted.
    pub fn blocks(&self) -> (usize, usize) {
        (self.blocks.len(), self.blocks.iter().filter(|b| b.is_advised()).count())
    }
}

/// A fresh pool (same activation and source); slots are never shared.
impl Clone for HugePool {
    fn clone(&self) -> HugePool {
        HugePool { active: self.active, heap_only: self.heap_only, free_cap: self.free_cap, prefault: self.prefault, ..HugePool::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_zeroed_and_writable() {
        for len in [1, HUGE_PAGE, HUGE_PAGE + 1] {
            for b in [HugeBlock::new(len), HugeBlock::new_heap(len)] {
                assert!(b.len() >= len && b.len() % HUGE_PAGE == 0);
                // SAFETY: the block holds b.len() bytes.
                let s = unsafe { std::slice::from_raw_parts_mut(b.as_ptr(), b.len()) };
                assert!(s.iter().all(|&x| x == 0));
                s[0] = 1;
                s[b.len() - 1] = 2;
            }
        }
        #[cfg(target_os = "linux")]
        {
            let b = HugeBlock::new(HUGE_PAGE);
            assert_eq!(b.as_ptr() as usize % HUGE_PAGE, 0, "a mapped block is 2 MiB-aligned");
            assert!(b.mapped);
        }
        assert!(!HugeBlock::new_heap(1).is_advised());
    }

    #[test]
    fn zero_length_allocates_nothing() {
        let b = HugeBlock::new(0);
        assert!(b.is_empty());
        let h = HugeBlock::new_heap(0);
        assert_eq!(h.len(), 0);
        let mut p = HugePool::new();
        p.activate();
        assert!(p.alloc(0).is_none());
        assert_eq!(p.reserved_bytes(), 0);
    }

    #[test]
    fn inactive_or_oversized_requests_go_to_the_heap() {
        let mut p = HugePool::new();
        assert!(p.alloc(4096).is_none());
        p.activate();
        assert!(p.alloc(HUGE_PAGE + 1).is_none());
        assert!(p.alloc(HUGE_PAGE).is_some());
    }

    #[test]
    fn freeing_the_newest_slot_returns_it_to_the_bump_tail() {
        let mut p = HugePool::new();
        p.activate();
        let a = p.alloc(4096).unwrap();
        let b = p.alloc(8192).unwrap();
        let bp = b.as_ptr();
        // SAFETY: `b` came from `p` and is not used again.
        unsafe { p.free(b) };
        assert_eq!(p.free_bytes(), 0);
        assert_eq!(p.alloc(4096).unwrap().as_ptr(), bp);
        let _ = a;
    }

    #[test]
    fn past_the_free_cap_no_block_is_added() {
        let mut p = HugePool::new();
        p.activate();
        let a = p.alloc(1 << 20).unwrap();
        let _b = p.alloc(1 << 20).unwrap();
        // SAFETY: `a` came from `p` and is not used again.
        unsafe { p.free(a) };
        p.set_free_cap(4096);
        // 1 MiB is free but a larger request does not fit it: heap.
        assert!(p.alloc((1 << 20) + 1).is_none());
        assert_eq!(p.reserved_bytes(), HUGE_PAGE);
        // What fits is still served from the free range.
        assert!(p.alloc(4096).is_some());
        p.set_free_cap(usize::MAX);
        assert!(p.alloc((1 << 20) + 1).is_some());
        assert_eq!(p.reserved_bytes(), 2 * HUGE_PAGE);
    }

    #[test]
    fn exact_allocations_leave_no_sliver() {
        let mut p = HugePool::new();
        p.activate();
        // Three holes, kept apart by slots in use.
        let mut holes = Vec::new();
        for bytes in [MIN_SPLIT + 4096, MIN_SPLIT, 3 * MIN_SPLIT] {
            holes.push(p.alloc(bytes).unwrap());
            p.alloc(64).unwrap();
        }
        let at: Vec<*mut u8> = holes.iter().map(|s| s.as_ptr()).collect();
        let (small, exact, large) = (at[0], at[1], at[2]);
        for s in holes {
            // SAFETY: `s` came from `p` and is not used again.
            unsafe { p.free(s) };
        }
        // Exactly the size: the exact hole; then only a hole with a usable rest.
        let a = p.alloc_exact(MIN_SPLIT).unwrap();
        assert_eq!((a.as_ptr(), a.bytes()), (exact, MIN_SPLIT));
        let b = p.alloc_exact(MIN_SPLIT).unwrap();
        assert_eq!((b.as_ptr(), b.bytes()), (large, MIN_SPLIT));
        assert!(p.free_bytes() == 2 * MIN_SPLIT + MIN_SPLIT + 4096);
        // The hole just over the size is left for an absorbing request.
        let c = p.alloc(MIN_SPLIT).unwrap();
        assert_eq!((c.as_ptr(), c.bytes()), (small, MIN_SPLIT + 4096));
    }

    #[test]
    fn prefaulted_blocks_are_taken_when_ready() {
        for mut p in [HugePool::new(), HugePool::heap_only()] {
            p.activate();
            p.set_prefault(true);
            // No block is ready: the caller uses the heap, one is in flight and counted.
            assert!(p.alloc(4096).is_none());
            assert_eq!(p.in_flight_bytes(), HUGE_PAGE);
            assert_eq!(p.reserved_bytes(), HUGE_PAGE);
            let mut a = None;
            for _ in 0..2500 {
                a = p.alloc(PREFAULT_AT);
                if a.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let a = a.expect("the prefaulted block arrives");
            assert_eq!(p.blocks().0, 1);
            // 7/8 used: the next one is in flight.
            assert_eq!(p.in_flight_bytes(), HUGE_PAGE);
            assert_eq!(p.reserved_bytes(), 2 * HUGE_PAGE);
            // SAFETY: the slot is ours and in range.
            unsafe { std::ptr::write_bytes(a.as_ptr(), 1, a.bytes()) };
            // Dropping a pool with a block in flight is fine (the helper unmaps it).
            drop(p);
        }
    }

    fn pool_cycle(mut p: HugePool) {
        p.activate();
        let a = p.alloc(100_000).unwrap();
        assert_eq!(a.bytes(), 100_000usize.next_multiple_of(64));
        assert_eq!(a.as_ptr() as usize % 64, 0);
        let b = p.alloc(300_000).unwrap();
        assert_eq!(b.as_ptr() as usize, a.as_ptr() as usize + a.bytes(), "bump allocation");
        assert_eq!(p.reserved_bytes(), HUGE_PAGE);
        let (ap, asz) = (a.as_ptr(), a.bytes());
        // SAFETY: `a` came from `p` and is not used again.
        unsafe { p.free(a) };
        assert_eq!(p.free_bytes(), asz);
        // A larger request does not fit there; a much smaller one takes its
        // front and leaves the rest free.
        let e = p.alloc(asz + 1).unwrap();
        assert!(e.as_ptr() != ap);
        let c = p.alloc(asz - MIN_SPLIT).unwrap();
        assert_eq!((c.as_ptr(), c.bytes()), (ap, asz - MIN_SPLIT));
        assert_eq!(p.free_bytes(), MIN_SPLIT);
        // A request that would leave a sliver takes the whole range.
        let d = p.alloc(MIN_SPLIT - 640).unwrap();
        assert_eq!((d.as_ptr() as usize, d.bytes()), (ap as usize + asz - MIN_SPLIT, MIN_SPLIT));
        assert_eq!(p.free_bytes(), 0);
        // Freed neighbours merge into one range that serves a larger request.
        // SAFETY: `c` and `d` came from `p` and are not used again.
        unsafe {
            p.free(d);
            p.free(c);
        }
        assert_eq!(p.free_bytes(), asz);
        let c = p.alloc(asz).unwrap();
        assert_eq!(c.as_ptr(), ap);
        // Filling past a block opens a second one; the first one's rest
        // becomes a free range: every byte is accounted for.
        let in_use = c.bytes() + b.bytes() + e.bytes();
        assert_eq!(p.free_bytes() + p.tail_bytes() + in_use, HUGE_PAGE);
        let big = p.alloc(HUGE_PAGE).unwrap();
        assert_eq!(p.reserved_bytes(), 2 * HUGE_PAGE);
        assert_eq!(p.free_bytes() + p.tail_bytes() + in_use + big.bytes(), 2 * HUGE_PAGE);
        // SAFETY: the slots are ours and in range.
        unsafe {
            std::ptr::write_bytes(big.as_ptr(), 7, big.bytes());
            std::ptr::write_bytes(c.as_ptr(), 9, c.bytes());
            assert_eq!(*big.as_ptr().add(HUGE_PAGE - 1), 7);
        }
    }

    #[test]
    fn pool_allocates_reuses_and_frees() {
        pool_cycle(HugePool::new());
    }

    #[test]
    fn pool_fallback_path_behaves_the_same() {
        pool_cycle(HugePool::heap_only());
        let mut p = HugePool::heap_only();
        p.activate();
        p.alloc(10).unwrap();
        assert_eq!(p.blocks(), (1, 0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn mapped_blocks_are_advised_when_thp_is_available() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        let b = HugeBlock::new(HUGE_PAGE);
        if thp.contains("[always]") || thp.contains("[madvise]") {
            assert!(b.is_advised());
        }
    }
}
