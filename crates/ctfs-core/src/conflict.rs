//! Deterministic conflict order: when two facts conflict, the one with the
//! lowest id (bytewise, unsigned) wins. No clocks, no arrival order, the same
//! answer on every replica.

use std::cmp::Ordering;

use crate::fact::FactId;

#[inline]
pub fn compare_fact_ids(a: &FactId, b: &FactId) -> Ordering {
    a.0.cmp(&b.0)
}

/// The winner among conflicting facts, or `None` for an empty set.
pub fn lowest_fact_id<'a>(ids: impl IntoIterator<Item = &'a FactId>) -> Option<&'a FactId> {
    ids.into_iter().min_by(|a, b| compare_fact_ids(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_wins_regardless_of_order() {
        let ids = [FactId([3; 32]), FactId([1; 32]), FactId([2; 32])];
        assert_eq!(lowest_fact_id(&ids), Some(&FactId([1; 32])));
        let rev: Vec<_> = ids.iter().rev().copied().collect();
        assert_eq!(lowest_fact_id(&rev), Some(&FactId([1; 32])));
        assert_eq!(lowest_fact_id(std::iter::empty()), None);
        let mut a = [0u8; 32];
        a[0] = 1;
        let mut b = [0u8; 32];
        b[31] = 255;
        assert_eq!(compare_fact_ids(&FactId(b), &FactId(a)), Ordering::Less);
    }
}
