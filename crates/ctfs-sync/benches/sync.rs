//! The `sync` suite (see BENCHMARKING.md): frames, push, anti-entropy and
//! snapshot join of the replication protocol, in one process, with controls.
//!
//! `cargo bench -p ctfs-sync --bench sync` (full: n = 1,000,000);
//! `CTFS_SYNC_N=100000` for a quicker run; `CTFS_BENCH_JSON=file` writes the
//! figures. Under `cargo test --benches` it shrinks to a smoke run.
//!
//! Measured, each with its control beside it:
//! * frame encode + MAC + decode + verify per fact, 1,000 facts per frame
//!   (control: `blake3::keyed_hash` of the same bytes);
//! * push between two in-process replicas, batches of 1,000: A admits and
//!   flushes, B receives and admits; facts/s (control: B admitting the same
//!   facts straight into its kernel, no protocol);
//! * bytes on the wire per fact against the packed fact size;
//! * anti-entropy between replicas holding n common facts and d more on one
//!   side, d ∈ {0, 1, 100, 10,000}: round trips, bytes each way, CPU per
//!   round when nothing differs;
//! * snapshot join of an empty replica from one holding n facts: bytes per
//!   fact and import rate (control: the same facts pushed one frame at a time).

use std::time::Instant;

use ctfs_core::invariants::Builtin;
use ctfs_core::{CausalityMode, EscrowConfig, FactId, KernelConfig, Multi};
use ctfs_sync::frame::{self, Kind, Sender};
use ctfs_sync::message::FactsWriter;
use ctfs_sync::{Host, Node, Origin, Outbox, Replicated, SyncConfig};

type R = Replicated<Multi<Builtin>>;

fn full_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}

fn id(n: u64) -> FactId {
    FactId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

const KEY: [u8; 32] = [42; 32];
const NODES: [u64; 3] = [1, 2, 3];

fn replica(local: u64) -> (R, Node) {
    let host = Replicated::new(Multi::single(Builtin::g_counter(0)), KernelConfig::new(CausalityMode::Exact), &NODES, local, EscrowConfig::default())
        .expect("replica");
    let mut cfg = SyncConfig::new(local, 1, NODES.to_vec(), KEY, [7; 32]);
    cfg.push_max_facts = 1000;
    cfg.snapshot_min_facts = u64::MAX;
    cfg.anti_entropy_max_bytes = usize::MAX;
    cfg.buffer.max_facts = 1 << 22;
    cfg.buffer.max_bytes = 1 << 30;
    (host, Node::new(cfg).expect("node"))
}

fn payload(i: u64) -> [u8; 8] {
    (1 + i % 7).to_le_bytes()
}

/// Admits `n` facts at `a` (ids from `start`), each depending on nothing.
fn admit_local(a: &mut (R, Node), start: u64, n: u64) {
    for i in start..start + n {
        let fid = id(i);
        let p = payload(i);
        a.0.admit_local(Some(&fid), &[], &p).expect("admit");
        a.1.local_fact(&fid, &[], &p);
    }
}

/// Delivers every frame of `out` addressed to `to`, collecting replies.
fn deliver(to: &mut (R, Node), out: &mut Outbox, now: u64) -> (Outbox, u64) {
    let (replies, bytes, _) = deliver_counting(to, out, now);
    (replies, bytes)
}

/// [`deliver`], also counting the bytes of frames other than facts.
fn deliver_counting(to: &mut (R, Node), out: &mut Outbox, now: u64) -> (Outbox, u64, u64) {
    let mut replies = Outbox::default();
    let mut bytes = 0;
    let mut summary = 0;
    let frames = std::mem::take(&mut out.frames);
    let me = to.1.origin().node;
    for f in frames.iter().filter(|f| f.to == me) {
        bytes += f.bytes.len() as u64;
        if f.kind != Kind::Facts {
            summary += f.bytes.len() as u64;
        }
        let _ = to.1.handle_frame(&mut to.0, &f.bytes, now, &mut replies);
    }
    (replies, bytes, summary)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

struct Report {
    json: Vec<String>,
}

impl Report {
    fn row(&mut self, name: &str, value: f64, unit: &str, note: &str) {
        println!("{name:<58} {value:>14.2} {unit:<10} {note}");
        self.json.push(format!("{{\"name\":\"{name}\",\"value\":{value},\"unit\":\"{unit}\",\"note\":\"{}\"}}", note.replace('"', "'")));
    }
}

fn frames_bench(r: &mut Report, rounds: usize) {
    let sender = Sender { config: 7, node: 1, epoch: 1 };
    let mut records = Vec::new();
    for i in 0..1000u64 {
        ctfs_sync::message::encode_fact(&mut records, &id(i), &[], &payload(i));
    }
    let mut seal_open = Vec::with_capacity(rounds);
    let mut control = Vec::with_capacity(rounds);
    let mut out = Vec::with_capacity(records.len() + 200);
    for _ in 0..rounds {
        let t = Instant::now();
        let mut w = FactsWriter::new();
        w.begin(Origin { node: 1, epoch: 1 }, 1);
        w.records(&records, 1000);
        let body = w.finish();
        out.clear();
        frame::seal(&KEY, &sender, 2, 1, Kind::Facts, &body, &mut out);
        let (_, b) = frame::open(&KEY, 2, 1 << 20, &out).expect("open");
        let groups = ctfs_sync::message::decode_facts(b).expect("decode");
        let n: usize = groups.iter().map(|g| g.facts().count()).sum();
        assert_eq!(n, 1000);
        seal_open.push(t.elapsed().as_nanos() as f64 / 1000.0);
        let t = Instant::now();
        std::hint::black_box(blake3::keyed_hash(&KEY, std::hint::black_box(&out)));
        control.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    let p = percentile(&mut seal_open, 0.5);
    let c = percentile(&mut control, 0.5);
    r.row("frame encode+MAC+decode+verify, per fact (p50)", p, "ns", &format!("control keyed BLAKE3 of the frame {c:.1} ns/fact ({:.2}x)", p / c));
    let packed = records.len() as f64 / 1000.0;
    r.row("packed fact size (gCounter, 0 deps)", packed, "bytes", "record: header 8 + id 32 + payload 8");
    r.row("wire bytes per fact in a 1,000-fact frame", out.len() as f64 / 1000.0, "bytes", &format!("{:.3}x the packed size", out.len() as f64 / records.len() as f64));
}

fn push_bench(r: &mut Report, batches: u64) {
    let mut a = replica(1);
    let mut b = replica(2);
    let mut next = 0u64;
    let mut recv_ns = Vec::new();
    let mut total_ns = 0u128;
    let mut wire = 0u64;
    for _ in 0..batches {
        let t0 = Instant::now();
        admit_local(&mut a, next, 1000);
        next += 1000;
        let mut out = Outbox::default();
        a.1.flush(&mut out);
        let t1 = Instant::now();
        let (_, bytes) = deliver(&mut b, &mut out, 0);
        let t2 = Instant::now();
        wire += bytes;
        recv_ns.push((t2 - t1).as_nanos() as f64 / 1000.0);
        total_ns += (t2 - t0).as_nanos();
    }
    assert_eq!(b.0.fact_count(), batches * 1000, "every pushed fact admitted");
    let facts = (batches * 1000) as f64;
    r.row("push A→B, 1,000 per frame: facts/s end to end", facts / (total_ns as f64 / 1e9), "facts/s", "A admits + flushes, B verifies + admits");
    let p = percentile(&mut recv_ns, 0.5);
    r.row("push: receive path per fact (p50)", p, "ns", &format!("{:.2} M facts/s per core", 1e3 / p));
    r.row("push: wire bytes per fact", wire as f64 / facts, "bytes", "");
    // control: the same facts straight into a kernel
    let (mut c, _) = replica(3);
    let t = Instant::now();
    for i in 0..batches * 1000 {
        let _ = c.admit_merge(&id(i), &[], &payload(i), Origin { node: 1, epoch: 1 }, i + 1);
    }
    let per = t.elapsed().as_nanos() as f64 / facts;
    r.row("control: admit_merge of the same facts, per fact", per, "ns", &format!("receive path = {:.2}x", p / per));
}

/// One anti-entropy exchange from `a`'s probe until nothing is in flight.
fn anti_entropy(a: &mut (R, Node), b: &mut (R, Node), now: u64) -> (u32, u64, u64, u64) {
    let mut out = Outbox::default();
    a.1.probe_soon();
    a.1.tick(&mut a.0, now, &mut out);
    out.frames.retain(|f| f.kind == Kind::Probe && f.to == 2);
    let (mut a_to_b, mut b_to_a, mut legs, mut summary) = (0u64, 0u64, 0u32, 0u64);
    let mut towards_b = true;
    while !out.frames.is_empty() {
        legs += 1;
        let (replies, bytes, s) = if towards_b { deliver_counting(b, &mut out, now) } else { deliver_counting(a, &mut out, now) };
        summary += s;
        if towards_b { a_to_b += bytes } else { b_to_a += bytes }
        out = replies;
        out.frames.retain(|f| f.to == if towards_b { 1 } else { 2 });
        towards_b = !towards_b;
    }
    (legs.div_ceil(2), a_to_b, b_to_a, summary)
}

fn anti_entropy_bench(r: &mut Report, n: u64) {
    // A holds n facts and pushes them all to B.
    let mut a = replica(1);
    let mut b = replica(2);
    let t = Instant::now();
    let mut next = 0;
    while next < n {
        let step = (n - next).min(1000);
        admit_local(&mut a, next, step);
        next += step;
        let mut out = Outbox::default();
        a.1.flush(&mut out);
        deliver(&mut b, &mut out, 0);
    }
    println!("(setup: {n} facts at two replicas in {:.1} s)", t.elapsed().as_secs_f64());
    let mut now = 10;
    for d in [0u64, 1, 100, 10_000] {
        admit_local(&mut a, next, d);
        next += d;
        let mut sink = Outbox::default();
        a.1.flush(&mut sink); // the push is lost: anti-entropy must find the d facts
        now += 1;
        let t = Instant::now();
        let (rt, ab, ba, summary) = anti_entropy(&mut a, &mut b, now);
        let cpu = t.elapsed().as_nanos() as f64 / 1000.0;
        assert_eq!(a.0.id_digest(), b.0.id_digest(), "anti-entropy converged");
        r.row(&format!("anti-entropy n={n} d={d}: round trips"), rt as f64, "", "");
        r.row(&format!("anti-entropy n={n} d={d}: bytes A→B / B→A"), ab as f64, "bytes", &format!("B→A {ba} bytes, of which {summary} bytes of probes and summaries (all frames but the facts)"));
        r.row(&format!("anti-entropy n={n} d={d}: CPU, both sides"), cpu, "µs", "");
    }
    // CPU of one probe/match round when nothing differs, repeated
    let mut samples = Vec::new();
    for _ in 0..200 {
        now += 1;
        let t = Instant::now();
        let (rt, ab, ba, _) = anti_entropy(&mut a, &mut b, now);
        samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
        assert_eq!((rt, ab, ba), (1, 128, 128));
    }
    let p = percentile(&mut samples, 0.5);
    r.row(&format!("anti-entropy n={n} d=0: CPU per round (p50)"), p, "µs", "probe 128 B + match 128 B");
    // snapshot join
    let mut c = replica(3);
    let mut cfg = SyncConfig::new(3, 1, NODES.to_vec(), KEY, [7; 32]);
    cfg.snapshot_min_facts = 1;
    cfg.max_frame_bytes = 1 << 20;
    c.1 = Node::new(cfg).expect("node");
    let t = Instant::now();
    let mut out = Outbox::default();
    a.1.probe_soon();
    a.1.tick(&mut a.0, now, &mut out);
    out.frames.retain(|f| f.to == 3);
    let mut bytes = 0u64;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let (mut replies, _) = deliver(&mut c, &mut out, now);
        replies.frames.retain(|f| f.to == 1);
        let (_, _) = deliver(&mut a, &mut replies, now);
        let mut chunks = Outbox::default();
        a.1.tick(&mut a.0, now, &mut chunks);
        chunks.frames.retain(|f| f.to == 3 && f.kind == Kind::SnapshotChunk);
        if chunks.frames.is_empty() && c.0.fact_count() > 0 {
            break;
        }
        bytes += chunks.frames.iter().map(|f| f.bytes.len() as u64).sum::<u64>();
        out = chunks;
        if rounds > 100_000 {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let held = c.0.fact_count();
    assert_eq!(held, a.0.fact_count(), "snapshot join complete");
    r.row(&format!("snapshot join of {held} facts: bytes per fact"), bytes as f64 / held as f64, "bytes", "state + ids + version vector, chunked 1 MiB frames");
    r.row(&format!("snapshot join of {held} facts: import rate"), held as f64 / secs, "facts/s", &format!("{secs:.2} s including the source's snapshot"));
}

fn main() {
    let full = full_run();
    let n: u64 = std::env::var("CTFS_SYNC_N").ok().and_then(|v| v.parse().ok()).unwrap_or(if full { 1_000_000 } else { 20_000 });
    let mut r = Report { json: Vec::new() };
    println!("ctfs-sync suite (n = {n}); machine: {} cores", std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1));
    frames_bench(&mut r, if full { 2000 } else { 20 });
    push_bench(&mut r, if full { 500 } else { 5 });
    anti_entropy_bench(&mut r, n);
    if let Ok(path) = std::env::var("CTFS_BENCH_JSON") {
        let _ = std::fs::write(&path, format!("[{}]\n", r.json.join(",\n")));
        println!("wrote {path}");
    }
}
