//! `NativeKernel.metricsSnapshot()`: every counter, gauge and histogram of a
//! kernel (its domains, its log, its escrow pools, its replication protocol)
//! in one packed buffer, decoded by `src/metrics.ts`. Keep the two in step:
//! the layout is versioned by its first word.

use ctfs_core::metrics::{Encoder, Histogram, SAMPLE_EVERY};
use ctfs_core::replica::Side;
use ctfs_core::{ErrorCode, MemberCounts};
use napi::Result;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::kernel::{KernelState, NativeKernel};

/// Layout version (the first u64 of a snapshot).
pub(crate) const VERSION: u64 = 2;

const FLAG_DURABLE: u64 = 1;
const FLAG_REPLICATED: u64 = 2;
const FLAG_SYNC: u64 = 4;
const FLAG_CLOSED: u64 = 8;

/// Encodes the snapshot. Layout (every field a little-endian u64 unless
/// noted; `str` = length u64 + UTF-8 padded to 8 bytes; `hist` = sum, mask
/// of non-empty buckets, their counts; `f64` = IEEE little-endian):
///
/// ```text
/// header   version, sample_every, code_count C, flags
/// domains  D; D × { name str ("" for the kernel), admitted, rejected[C], tracked, index_bytes }
///          admit_ns hist, batch_records hist, batch_ns hist     (merged over domains)
/// members  M (0: single member); M × { admitted, refused[3] }   (summed over domains)
/// durable  (flag) backend str, failed, durable_seq, appended_seq, fsyncs, batches,
///          records_written, bytes_written, segments_created, queue_bytes, queue_capacity,
///          group_records hist, group_bytes hist, write_ns hist, sync_ns hist, ack_ns hist,
///          recovery_ns, facts_replayed, checkpoint_seq, checkpoints,
///          checkpoint_bytes_last, checkpoint_bytes_total, checkpoint_ns hist
/// escrow   (flag replicated) P; P × { member, side (0 down, 1 up), total f64, quota f64,
///          consumed f64, requests_sent, retries_sent, requests_given_up, grants_applied,
///          denials_received, grants_issued, granted_out f64, granted_in f64 }
/// sync     (flag) facts_received, facts_admitted, facts_duplicate, facts_buffered,
///          facts_discarded, remote_refused, facts_pushed, push_frames, probes_sent,
///          summaries_sent, ae_facts_sent, ae_bytes_sent, ae_repairs, quota_requests_sent,
///          quota_grants_sent, snapshots_sent, snapshots_installed, snapshot_bytes_in,
///          buffered, buffered_bytes, buffer_evicted, buffer_max_facts, buffer_max_bytes,
///          store_facts, store_bytes, unpushed;
///          K; K × { code str, count };  N; N × { peer, up, synced, frames_in, bytes_in,
///          frames_out, bytes_out, facts_in, facts_out };  O; O × { origin node, facts }
/// ```
pub(crate) fn encode(st: &KernelState) -> Vec<u8> {
    let mut e = Encoder::with_capacity(1024 + 160 * st.tenants.len());
    let mut flags = 0;
    if st.log.is_some() {
        flags |= FLAG_DURABLE;
    }
    if st.replication.is_some() {
        flags |= FLAG_REPLICATED;
    }
    if st.sync.is_some() {
        flags |= FLAG_SYNC;
    }
    if st.closed {
        flags |= FLAG_CLOSED;
    }
    e.u64(VERSION).u64(SAMPLE_EVERY as u64).u64(ErrorCode::COUNT as u64).u64(flags);

    // Domains: the kernel, then its tenants in slot order.
    let names = st.tenants.names_by_slot();
    e.u64(1 + names.len() as u64);
    let mut admit_ns = Histogram::new();
    let mut batch_records = Histogram::new();
    let mut batch_ns = Histogram::new();
    let members = st.main.invariant().len();
    let mut member_totals = vec![(0u64, [0u64; 3]); if members > 1 { members } else { 0 }];
    let domains = std::iter::once(("", &st.main)).chain(names.iter().enumerate().filter_map(|(slot, n)| st.tenants.get_slot(slot).map(|k| (*n, k))));
    for (name, k) in domains {
        let s = k.stats();
        e.str(name).u64(s.admitted);
        for n in s.rejected {
            e.u64(n);
        }
        e.u64(s.tracked as u64).u64(s.index_bytes as u64);
        admit_ns.merge(&k.metrics().admit_ns);
        batch_records.merge(&k.metrics().batch_records);
        batch_ns.merge(&k.metrics().batch_ns);
        for (t, c) in member_totals.iter_mut().zip(k.invariant().member_counts()) {
            add_member(t, c);
        }
    }
    e.histogram(&admit_ns).histogram(&batch_records).histogram(&batch_ns);
    e.u64(member_totals.len() as u64);
    for (admitted, refused) in &member_totals {
        e.u64(*admitted);
        for n in refused {
            e.u64(*n);
        }
    }

    if let Some(log) = &st.log {
        let w = log.wal();
        let s = w.stats();
        let m = w.metrics();
        e.str(w.backend()).bool(w.is_failed());
        e.u64(s.durable_seq).u64(s.appended_seq).u64(s.fsyncs).u64(s.batches);
        e.u64(s.records_written).u64(s.bytes_written).u64(s.segments_created);
        e.u64(m.queue_bytes).u64(m.queue_capacity);
        e.histogram(&m.group_records).histogram(&m.group_bytes).histogram(&m.write_ns).histogram(&m.sync_ns).histogram(&m.ack_ns);
        e.u64(log.recovery_ns).u64(log.recovery.records_replayed);
        e.u64(log.checkpoint_seq).u64(log.checkpoints).u64(log.checkpoint_bytes_last).u64(log.checkpoint_bytes_total);
        e.histogram(&log.checkpoint_ns);
    }

    if let Some(r) = &st.replication {
        let pools: Vec<_> = r.pools().collect();
        e.u64(pools.len() as u64);
        for (member, side, p) in pools {
            let share = p.local_state().unwrap_or_default();
            let s = p.stats();
            e.u64(member as u64).u64(matches!(side, Side::Up) as u64);
            e.f64(share.total as f64).f64(share.quota as f64).f64(share.consumed as f64);
            e.u64(s.requests_sent).u64(s.retries_sent).u64(s.requests_given_up).u64(s.grants_applied);
            e.u64(s.denials_received).u64(s.grants_issued);
            e.f64(s.granted_out as f64).f64(s.granted_in as f64);
        }
    }

    if let Some(node) = st.sync.as_deref() {
        let s = node.stats();
        let b = node.buffer();
        for n in [
            s.facts_received,
            s.facts_admitted,
            s.facts_duplicate,
            s.facts_buffered,
            s.facts_discarded,
            s.remote_refused,
            s.facts_pushed,
            s.push_frames,
            s.probes_sent,
            s.summaries_sent,
            s.anti_entropy_facts_sent,
            s.anti_entropy_bytes_sent,
            s.anti_entropy_repairs,
            s.quota_requests_sent,
            s.quota_grants_sent,
            s.snapshots_sent,
            s.snapshots_installed,
            s.snapshot_bytes_in,
            b.len() as u64,
            b.bytes() as u64,
            b.evicted(),
            b.limits().max_facts as u64,
            b.limits().max_bytes as u64,
            node.store().facts(),
            node.store().bytes(),
            node.unpushed(),
        ] {
            e.u64(n);
        }
        e.u64(s.dropped.len() as u64);
        for (code, n) in &s.dropped {
            e.str(code).u64(*n);
        }
        let up: Vec<u64> = node.up_peers().collect();
        e.u64(node.peers().len() as u64);
        for p in node.peers() {
            let ps = s.peers.get(p).copied().unwrap_or_default();
            e.u64(*p).bool(up.contains(p)).bool(node.is_synced(*p));
            e.u64(ps.frames_in).u64(ps.bytes_in).u64(ps.frames_out).u64(ps.bytes_out).u64(ps.facts_in).u64(ps.facts_out);
        }
        // Facts held per origin node (epochs summed): low cardinality.
        let mut origins: std::collections::BTreeMap<u64, u64> = Default::default();
        for (o, n) in node.version_vector().iter() {
            *origins.entry(o.node).or_default() += n;
        }
        e.u64(origins.len() as u64);
        for (node, n) in origins {
            e.u64(node).u64(n);
        }
    }
    e.finish()
}

fn add_member(t: &mut (u64, [u64; 3]), c: &MemberCounts) {
    t.0 += c.admitted.get();
    for (a, b) in t.1.iter_mut().zip(c.refused.iter()) {
        *a += b.get();
    }
}

#[napi]
impl NativeKernel {
    /// Every metric of this kernel in one packed buffer (see
    /// `bindings/node/src/metrics.rs` for the layout; decoded by
    /// `src/metrics.ts`). Works on a closed kernel (its log section is gone).
    #[napi(catch_unwind)]
    pub fn metrics_snapshot(&self) -> Result<Buffer> {
        let st = self.shared().try_borrow().map_err(|_| crate::kernel::busy())?;
        Ok(Buffer::from(encode(&st)))
    }
}
