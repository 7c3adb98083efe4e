//! Admission targets: the (kernel, domain) pairs the shared fast-path
//! functions admit into, named by a number.
//!
//! The raw N-API admission functions (`fast.rs`) exist once per thread, not
//! once per kernel: V8 calls a native function through its fast API-call
//! path only from a call site that has seen a single target function. With
//! one function object per kernel, the call site in the TypeScript layer saw
//! as many targets as there were kernels and fell back to the generic path
//! (`Builtin_HandleApiCall`): measured +30–50 ns per call as soon as a
//! second kernel existed. So a call names its kernel and domain with a
//! *target* handle instead, registered here when the JS domain is created.
//!
//! A handle is `generation * 2^32 + slot`, carried as a JS number. A slot is
//! freed when its kernel is dropped and reused with the next generation, so
//! a stale handle (its kernel gone) is refused, never admitted elsewhere.
//! The registry holds the kernels weakly: it never keeps one alive.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use crate::kernel::KernelState;

/// Live targets at once, at most (one per kernel domain in use).
const MAX_SLOTS: usize = 1 << 31;
/// Generations wrap below 2^21, so that a handle stays an exact JS number.
const GENERATIONS: u32 = 1 << 21;

struct Slot<K> {
    /// Starts at 1: a handle with generation 0 (e.g. `0`, `NaN`) names nothing.
    generation: u32,
    target: Option<(Weak<K>, u32)>,
}

/// The targets of one thread (one JS environment); `K` is the kernel.
pub(crate) struct Targets<K> {
    slots: Vec<Slot<K>>,
    free: Vec<u32>,
}

impl<K> Default for Targets<K> {
    fn default() -> Self {
        Targets { slots: Vec::new(), free: Vec::new() }
    }
}

pub(crate) type SharedTargets = Rc<RefCell<Targets<RefCell<KernelState>>>>;

thread_local! {
    static TARGETS: SharedTargets = Rc::new(RefCell::new(Targets::default()));
}

/// This thread's registry (the shared functions hold it as their data).
pub(crate) fn registry() -> SharedTargets {
    TARGETS.with(Rc::clone)
}

/// Why a handle names no kernel.
pub(crate) enum Stale {
    /// Not a handle this registry gave out (or its slot was reused).
    Unknown,
    /// Its kernel was dropped.
    Gone,
}

impl<K> Targets<K> {
    /// Registers `(kernel, domain)`; returns the handle and the slot (the
    /// kernel keeps its slots, to release them when it is dropped).
    pub(crate) fn register(&mut self, kernel: &Rc<K>, domain: u32) -> Option<(f64, u32)> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(Slot { generation: 0, target: None });
                (self.slots.len() - 1) as u32
            }
            None => return None,
        };
        let s = &mut self.slots[slot as usize];
        s.generation = s.generation % (GENERATIONS - 1) + 1;
        s.target = Some((Rc::downgrade(kernel), domain));
        Some((s.generation as f64 * 4_294_967_296.0 + slot as f64, slot))
    }

    /// The kernel and domain `handle` names.
    #[inline(always)]
    pub(crate) fn resolve(&self, handle: f64) -> Result<(Rc<K>, u32), Stale> {
        // `as` saturates: NaN, negatives and fractions land on slot 0 /
        // generation 0 or on a generation that does not match.
        let h = handle as u64;
        let (generation, slot) = ((h >> 32) as u32, h as u32 as usize);
        match self.slots.get(slot) {
            Some(Slot { generation: g, target: Some((kernel, domain)) }) if *g == generation && h as f64 == handle => {
                kernel.upgrade().map(|k| (k, *domain)).ok_or(Stale::Gone)
            }
            _ => Err(Stale::Unknown),
        }
    }

    /// Frees the slots of a dropped kernel.
    pub(crate) fn release(&mut self, slots: &[u32]) {
        for &slot in slots {
            if let Some(s) = self.slots.get_mut(slot as usize)
                && s.target.take().is_some()
            {
                self.free.push(slot);
            }
        }
    }
}

/// Registers domain `domain` of `kernel` in this thread's registry and
/// returns its handle; the kernel keeps the slot, which [`release`] frees
/// when it is dropped. `None` when the registry is being changed (never
/// while JavaScript runs) or full.
pub(crate) fn register(kernel: &Rc<RefCell<KernelState>>, st: &mut KernelState, domain: u32) -> Option<f64> {
    let (handle, slot) = TARGETS.with(|t| t.try_borrow_mut().ok()?.register(kernel, domain))?;
    st.fast_slots.push(slot);
    Some(handle)
}

/// Frees `slots` in this thread's registry; a no-op once the thread's
/// registry is gone (a kernel dropped during thread teardown).
pub(crate) fn release(slots: &[u32]) {
    if slots.is_empty() {
        return;
    }
    let _ = TARGETS.try_with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            t.release(slots);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_handle_is_refused_after_its_slot_is_reused() {
        let mut t = Targets::<&str>::default();
        let a = Rc::new("a");
        let (ha, sa) = t.register(&a, 0).unwrap();
        assert!(matches!(t.resolve(ha), Ok((k, 0)) if *k == "a"));
        for bad in [0.0, f64::NAN, -1.0, ha + 0.5, ha + 1.0, 1e300] {
            assert!(matches!(t.resolve(bad), Err(Stale::Unknown)), "{bad}");
        }
        drop(a);
        assert!(matches!(t.resolve(ha), Err(Stale::Gone)));
        t.release(&[sa]);
        let b = Rc::new("b");
        let (hb, sb) = t.register(&b, 3).unwrap();
        assert_eq!(sa, sb, "the slot is reused");
        assert!(matches!(t.resolve(ha), Err(Stale::Unknown)), "the old handle names nothing");
        assert!(matches!(t.resolve(hb), Ok((k, 3)) if *k == "b"));
    }
}
