//! The fact store: the packed records of every fact this replica holds,
//! per origin, so that anti-entropy can send a peer exactly the facts it
//! lacks (a contiguous run of one origin's records is one slice: no
//! re-encoding on the way out).
//!
//! A replica that joined by snapshot holds the older facts only as ids in
//! its kernel, not as records: per origin the store starts at a *floor*
//! (`base`), and facts below it cannot be served from here.

use std::collections::BTreeMap;

use crate::origin::Origin;

#[derive(Clone, Debug, Default)]
struct OriginLog {
    /// Origin sequence of the first record held.
    base: u64,
    /// Start offset of each record in `bytes`.
    starts: Vec<usize>,
    bytes: Vec<u8>,
}

impl OriginLog {
    fn end_of(&self, i: usize) -> usize {
        self.starts.get(i + 1).copied().unwrap_or(self.bytes.len())
    }

    /// Sequence after the last record held.
    fn next(&self) -> u64 {
        self.base + self.starts.len() as u64
    }
}

/// Packed records per origin, contiguous from each origin's floor.
#[derive(Clone, Debug, Default)]
pub struct FactStore {
    logs: BTreeMap<Origin, OriginLog>,
    facts: u64,
    bytes: u64,
}

impl FactStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `origin`'s fact number `seq`. Records must arrive in order;
    /// a record out of order (or below the floor) is ignored and `false`
    /// returned.
    pub fn append(&mut self, origin: Origin, seq: u64, record: &[u8]) -> bool {
        let log = self.logs.entry(origin).or_insert_with(|| OriginLog { base: seq, ..OriginLog::default() });
        if seq != log.next() {
            return false;
        }
        log.starts.push(log.bytes.len());
        log.bytes.extend_from_slice(record);
        self.facts += 1;
        self.bytes += record.len() as u64;
        true
    }

    /// First sequence of `origin` held here (`None`: nothing held).
    pub fn floor(&self, origin: &Origin) -> Option<u64> {
        self.logs.get(origin).filter(|l| !l.starts.is_empty()).map(|l| l.base)
    }

    /// Whether record `seq` of `origin` can be served.
    pub fn has(&self, origin: &Origin, seq: u64) -> bool {
        self.logs.get(origin).is_some_and(|l| seq >= l.base && seq < l.next())
    }

    /// The records of `origin` from `from` on, as one slice, at most
    /// `max_facts` of them and at most `max_bytes` (at least one record if
    /// any is held, whatever its size). Returns the bytes and the count.
    pub fn run(&self, origin: &Origin, from: u64, max_facts: usize, max_bytes: usize) -> (&[u8], u32) {
        let Some(log) = self.logs.get(origin) else { return (&[], 0) };
        if from < log.base || from >= log.next() {
            return (&[], 0);
        }
        let first = (from - log.base) as usize;
        let start = log.starts[first];
        let mut last = first;
        let limit = first.saturating_add(max_facts.max(1)).min(log.starts.len());
        while last + 1 < limit && log.end_of(last + 1) - start <= max_bytes {
            last += 1;
        }
        (&log.bytes[start..log.end_of(last)], (last - first + 1) as u32)
    }

    /// Drops `origin`'s records and restarts it at `base` (after a snapshot
    /// join moved this replica past what it held).
    pub fn reset(&mut self, origin: Origin, base: u64) {
        if let Some(old) = self.logs.insert(origin, OriginLog { base, ..OriginLog::default() }) {
            self.facts -= old.starts.len() as u64;
            self.bytes -= old.bytes.len() as u64;
        }
    }

    /// Every record held, as one packed batch in an order that respects the
    /// dependencies (each origin in its own order, origins interleaved so
    /// that a record comes after the records it depends on; a dependency
    /// not held here — below a floor — is assumed present). Admitting the
    /// result with `admitBatch` into a kernel that holds what lies below the
    /// floors admits everything.
    pub fn export_causal(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes as usize);
        let held: std::collections::HashSet<ctfs_core::FactId> = self.ids().collect();
        let mut emitted = std::collections::HashSet::with_capacity(held.len());
        let mut cursor: Vec<(&OriginLog, usize)> = self.logs.values().map(|l| (l, 0)).collect();
        loop {
            let mut progress = false;
            let mut remaining = false;
            for (log, i) in cursor.iter_mut() {
                while *i < log.starts.len() {
                    let rec = &log.bytes[log.starts[*i]..log.end_of(*i)];
                    let Ok(r) = ctfs_core::batch::parse_record(rec, 0) else {
                        *i += 1;
                        continue;
                    };
                    let deps = ctfs_core::FactId::slice_from_bytes(&rec[r.deps..r.payload]).unwrap_or(&[]);
                    if deps.iter().any(|d| held.contains(d) && !emitted.contains(d)) {
                        break;
                    }
                    if let Some(id) = ctfs_core::FactId::from_slice(&rec[r.id..r.deps]) {
                        emitted.insert(id);
                    }
                    out.extend_from_slice(rec);
                    *i += 1;
                    progress = true;
                }
                remaining |= *i < log.starts.len();
            }
            if !remaining || !progress {
                break;
            }
        }
        out
    }

    /// Ids of every record held.
    pub fn ids(&self) -> impl Iterator<Item = ctfs_core::FactId> + '_ {
        self.logs.values().flat_map(|l| {
            (0..l.starts.len()).filter_map(move |i| {
                let rec = &l.bytes[l.starts[i]..l.end_of(i)];
                rec.get(8..40).and_then(ctfs_core::FactId::from_slice)
            })
        })
    }

    pub fn facts(&self) -> u64 {
        self.facts
    }

    /// Bytes of records held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: Origin = Origin { node: 1, epoch: 1 };

    #[test]
    fn runs_are_contiguous_slices() {
        let mut s = FactStore::new();
        for i in 1..=10u8 {
            assert!(s.append(O, i as u64, &vec![i; i as usize]));
        }
        assert!(!s.append(O, 12, b"gap"));
        let (b, n) = s.run(&O, 3, 3, usize::MAX);
        assert_eq!(n, 3);
        assert_eq!(b, [vec![3u8; 3], vec![4; 4], vec![5; 5]].concat());
        let (b, n) = s.run(&O, 9, 100, usize::MAX);
        assert_eq!((b.len(), n), (19, 2));
        // byte budget, but always one record
        assert_eq!(s.run(&O, 10, 5, 1).1, 1);
        assert_eq!(s.run(&O, 5, 5, 11).1, 2);
        assert_eq!(s.run(&O, 11, 5, 100).1, 0);
        s.reset(O, 21);
        assert_eq!(s.floor(&O), None);
        assert!(s.append(O, 21, b"a"));
        assert_eq!(s.floor(&O), Some(21));
        assert!(!s.has(&O, 20));
        assert_eq!(s.facts(), 1);
    }
}
