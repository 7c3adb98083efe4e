//! Configuration fingerprints: a canonical, versioned encoding of everything
//! that decides how a kernel reads logged facts and checkpointed state — the
//! invariant kind and every parameter (initial state included), the
//! causality mode and its threshold, the names and kinds of a multi kernel's
//! members, a custom invariant's name, declared class, version and initial
//! state. A durable kernel records it in every log segment header and every
//! checkpoint, and a directory is only ever reopened under the same
//! fingerprint: bytes are never reinterpreted by another configuration.
//!
//! Limits (`max_payload`, `max_deps`, `max_facts`) are deliberately not
//! part of it: they may change between opens (a logged fact beyond a lowered
//! limit is refused on replay, never misread).
//!
//! ## Encoding (little-endian), version 1
//! | bytes | field |
//! |---|---|
//! | 8 | magic `CTFSCFG\0` |
//! | 2 | version (1) |
//! | 2 | entry count |
//! | per entry | `key_len` u8, key (ASCII), `tag` u8, `len` u16, value |
//!
//! Tags: 1 signed integer (i128, 16 bytes), 2 unsigned integer (u128, 16
//! bytes), 3 boolean (1 byte, 0 or 1), 4 string (UTF-8), 5 bytes, 6 float
//! (f64 bits, 8 bytes), 7 absent (0 bytes: an optional parameter not set).
//! Keys are unique; [`Fingerprint::of_kernel`] always emits the same keys in
//! the same order for the same configuration, so equal configurations have
//! byte-identical encodings and comparing fingerprints is comparing bytes.
//!
//! Keys of version 1: `causality`, `escalationThreshold`; for a kernel with
//! one invariant `invariant.kind` and `invariant.<parameter>`; for a multi
//! kernel `members` and `member.<i>.name`, `member.<i>.kind`,
//! `member.<i>.<parameter>`; and `replica` (absent: not replicated — the
//! replication work records its parameters under `replica.*`). Decoding
//! accepts any key, so new sections can be added without a new version.

use std::fmt;

use crate::invariant::CellInvariant;
use crate::invariants::Builtin;
use crate::kernel::{CausalityMode, KernelConfig};
use crate::multi::Multi;

/// Magic of an encoded fingerprint.
pub const MAGIC: [u8; 8] = *b"CTFSCFG\0";
/// Encoding version written by this build.
pub const VERSION: u16 = 1;
/// Largest encoded fingerprint accepted (a multi kernel of 64 custom
/// members is well below it).
pub const MAX_ENCODED_LEN: usize = 64 * 1024;

/// One parameter's value.
#[derive(Clone, Debug)]
pub enum Value {
    Int(i128),
    UInt(u128),
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
    Float(f64),
    /// An optional parameter that is not set.
    Absent,
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::UInt(a), Value::UInt(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Absent, Value::Absent) => true,
            _ => false,
        }
    }
}

impl Value {
    fn tag(&self) -> u8 {
        match self {
            Value::Int(_) => 1,
            Value::UInt(_) => 2,
            Value::Bool(_) => 3,
            Value::Str(_) => 4,
            Value::Bytes(_) => 5,
            Value::Float(_) => 6,
            Value::Absent => 7,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::UInt(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Bool(v) => out.push(*v as u8),
            Value::Str(s) => out.extend_from_slice(s.as_bytes()),
            Value::Bytes(b) => out.extend_from_slice(b),
            Value::Float(f) => out.extend_from_slice(&f.to_bits().to_le_bytes()),
            Value::Absent => {}
        }
    }

    fn decode(tag: u8, b: &[u8]) -> Result<Value, String> {
        let fixed = |n: usize| if b.len() == n { Ok(()) } else { Err(format!("value of tag {tag} is {} bytes, expected {n}", b.len())) };
        Ok(match tag {
            1 => {
                fixed(16)?;
                Value::Int(i128::from_le_bytes(b.try_into().map_err(|_| "int")?))
            }
            2 => {
                fixed(16)?;
                Value::UInt(u128::from_le_bytes(b.try_into().map_err(|_| "uint")?))
            }
            3 => {
                fixed(1)?;
                match b[0] {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    x => return Err(format!("boolean value {x}")),
                }
            }
            4 => Value::Str(String::from_utf8(b.to_vec()).map_err(|_| "string value is not UTF-8".to_string())?),
            5 => Value::Bytes(b.to_vec()),
            6 => {
                fixed(8)?;
                Value::Float(f64::from_bits(u64::from_le_bytes(b.try_into().map_err(|_| "float")?)))
            }
            7 => {
                fixed(0)?;
                Value::Absent
            }
            t => return Err(format!("unknown value tag {t}")),
        })
    }
}

fn plain(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i128::MIN) => f.write_str("-∞"),
            Value::Int(i128::MAX) => f.write_str("∞"),
            Value::Int(v) => write!(f, "{v}"),
            Value::UInt(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Str(s) if plain(s) => f.write_str(s),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => {
                f.write_str("0x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
            Value::Float(v) => write!(f, "{v}"),
            Value::Absent => f.write_str("none"),
        }
    }
}

/// A configuration as an ordered list of unique `key = value` entries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fingerprint {
    entries: Vec<(String, Value)>,
}

fn opt_u(v: Option<impl Into<u128>>) -> Value {
    v.map_or(Value::Absent, |v| Value::UInt(v.into()))
}

fn push_invariant(fp: &mut Fingerprint, prefix: &str, inv: &Builtin) {
    let mut p = |k: &str, v: Value| {
        fp.push(format!("{prefix}{k}"), v);
    };
    p("kind", Value::Str(inv.kind().into()));
    match inv {
        Builtin::TotalSupply(t) => {
            p("initial", Value::Int(t.initial));
            p("min", Value::Int(t.min));
            p("max", Value::Int(t.max));
        }
        Builtin::Max(m) => p("initial", Value::Int(m.initial)),
        Builtin::GCounter(g) => p("initial", Value::UInt(g.initial)),
        Builtin::BoundedGCounter(g) => {
            p("initial", Value::UInt(g.initial));
            p("bound", Value::UInt(g.bound));
        }
        Builtin::Lww(_) | Builtin::UniquenessCell(_) => {}
        Builtin::UniqueSet(u) => p("maxElements", opt_u(u.max_elements)),
        Builtin::GGraphCell(g) => {
            let l = g.limits();
            p("maxOutDegree", opt_u(l.max_out));
            p("maxInDegree", opt_u(l.max_in));
            p("allowSelfLoops", Value::Bool(l.allow_self_loops));
        }
        Builtin::Graph(g) => {
            let l = g.limits();
            p("maxOutDegree", opt_u(l.max_out));
            p("maxInDegree", opt_u(l.max_in));
            p("allowSelfLoops", Value::Bool(l.allow_self_loops));
            p("maxEdges", opt_u(g.max_edges()));
        }
        Builtin::Custom(c) => {
            p("name", Value::Str(CellInvariant::name(c).into()));
            p("class", Value::Str(CellInvariant::class(c).as_str().into()));
            p("version", Value::UInt(c.version().into()));
            p("initial", Value::Bytes(c.initial_bytes().to_vec()));
        }
    }
}

impl Fingerprint {
    pub fn new() -> Self {
        Fingerprint::default()
    }

    /// Appends an entry. Keys must be unique, ASCII and at most 255 bytes
    /// (a violation is a programming error; [`Fingerprint::encode`] of such
    /// a fingerprint would not decode, so it panics in debug builds).
    pub fn push(&mut self, key: impl Into<String>, value: Value) -> &mut Self {
        let key = key.into();
        debug_assert!(key.is_ascii() && !key.is_empty() && key.len() <= 255, "bad fingerprint key {key:?}");
        debug_assert!(self.get(&key).is_none(), "duplicate fingerprint key {key:?}");
        self.entries.push((key, value));
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The fingerprint of a kernel running `inv` with `cfg`. `member_names`
    /// are the names of a multi kernel's members (in member order), `None`
    /// for a kernel built from one invariant.
    pub fn of_kernel(inv: &Multi<Builtin>, cfg: &KernelConfig, member_names: Option<&[String]>) -> Result<Fingerprint, String> {
        let mut fp = Fingerprint::new();
        fp.push("causality", Value::Str(cfg.mode.as_str().into()));
        fp.push(
            "escalationThreshold",
            match cfg.mode {
                CausalityMode::Escalating { threshold } => Value::Float(threshold),
                _ => Value::Absent,
            },
        );
        match member_names {
            None if inv.len() == 1 => push_invariant(&mut fp, "invariant.", &inv.members()[0]),
            names => {
                if let Some(n) = names
                    && n.len() != inv.len()
                {
                    return Err(format!("{} member names for {} members", n.len(), inv.len()));
                }
                fp.push("members", Value::UInt(inv.len() as u128));
                for (i, m) in inv.members().iter().enumerate() {
                    let name = names.and_then(|n| n.get(i)).map_or(Value::Absent, |s| Value::Str(s.clone()));
                    fp.push(format!("member.{i}"), name);
                    push_invariant(&mut fp, &format!("member.{i}."), m);
                }
            }
        }
        fp.push("replica", Value::Absent);
        Ok(fp)
    }

    /// Records that the kernel is a replica of the cluster `nodes`; `local`:
    /// which one (a durable replica's directory belongs to one node; the
    /// configuration replicas compare with each other leaves it out).
    pub fn set_replica(&mut self, nodes: &[u64], local: Option<u64>) -> &mut Self {
        let mut sorted = nodes.to_vec();
        sorted.sort_unstable();
        let bytes: Vec<u8> = sorted.iter().flat_map(|n| n.to_le_bytes()).collect();
        self.entries.retain(|(k, _)| k != "replica" && !k.starts_with("replica."));
        self.entries.push(("replica".into(), Value::Str("escrow".into())));
        self.entries.push(("replica.nodes".into(), Value::Bytes(bytes)));
        self.entries.push(("replica.local".into(), local.map_or(Value::Absent, |l| Value::UInt(l as u128))));
        self
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 32 * self.entries.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u16).to_le_bytes());
        for (k, v) in &self.entries {
            out.push(k.len() as u8);
            out.extend_from_slice(k.as_bytes());
            out.push(v.tag());
            let at = out.len();
            out.extend_from_slice(&[0, 0]);
            v.encode(&mut out);
            let len = (out.len() - at - 2) as u16;
            out[at..at + 2].copy_from_slice(&len.to_le_bytes());
        }
        out
    }

    /// Decodes [`Fingerprint::encode`]'s bytes; any other input is an error
    /// naming what is wrong (never a panic).
    pub fn decode(b: &[u8]) -> Result<Fingerprint, String> {
        if b.len() > MAX_ENCODED_LEN {
            return Err(format!("{} bytes (at most {MAX_ENCODED_LEN})", b.len()));
        }
        let rest = b.strip_prefix(&MAGIC[..]).ok_or("bad magic")?;
        let mut r = Reader(rest);
        let version = u16::from_le_bytes(r.take(2)?.try_into().map_err(|_| "version")?);
        if version != VERSION {
            return Err(format!("fingerprint version {version} (this build reads version {VERSION}; written by a newer ctfs?)"));
        }
        let count = u16::from_le_bytes(r.take(2)?.try_into().map_err(|_| "count")?);
        let mut fp = Fingerprint::new();
        for _ in 0..count {
            let klen = r.take(1)?[0] as usize;
            let key = std::str::from_utf8(r.take(klen)?).ok().filter(|k| !k.is_empty() && k.is_ascii()).ok_or("bad key")?;
            if fp.get(key).is_some() {
                return Err(format!("duplicate key {key}"));
            }
            let tag = r.take(1)?[0];
            let vlen = u16::from_le_bytes(r.take(2)?.try_into().map_err(|_| "length")?) as usize;
            let value = Value::decode(tag, r.take(vlen)?).map_err(|e| format!("{key}: {e}"))?;
            fp.entries.push((key.to_owned(), value));
        }
        if !r.0.is_empty() {
            return Err(format!("{} trailing bytes", r.0.len()));
        }
        Ok(fp)
    }

    /// The invariant part in one line, e.g. `totalSupply{initial=0,min=0,max=∞}`
    /// or `multi{a:gCounter{initial=0},b:lww{}}`.
    pub fn invariant_summary(&self) -> String {
        let one = |prefix: &str| -> String {
            let kind = self.get(&format!("{prefix}kind")).map_or("?".into(), |v| v.to_string());
            let params: Vec<String> = self
                .entries
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|p| (p, v)))
                .filter(|(p, _)| *p != "kind")
                .map(|(p, v)| format!("{p}={v}"))
                .collect();
            format!("{kind}{{{}}}", params.join(","))
        };
        match self.get("members") {
            Some(Value::UInt(n)) => {
                let parts: Vec<String> = (0..*n)
                    .map(|i| {
                        let prefix = format!("member.{i}.");
                        let name = self.get(&format!("member.{i}")).map_or("?".into(), |v| v.to_string());
                        format!("{name}:{}", one(&prefix))
                    })
                    .collect();
                format!("multi{{{}}}", parts.join(","))
            }
            _ => one("invariant."),
        }
    }

    /// A readable summary: the invariant, then the causality mode.
    pub fn summary(&self) -> String {
        let mode = self.get("causality").map_or("?".into(), |v| v.to_string());
        match self.get("escalationThreshold") {
            Some(t @ Value::Float(_)) => format!("invariant {}, causality {mode} (threshold {t})", self.invariant_summary()),
            _ => format!("invariant {}, causality {mode}", self.invariant_summary()),
        }
    }

    /// The keys whose values differ (a key missing on one side included), as
    /// `key: this → other`.
    pub fn diff(&self, other: &Fingerprint) -> Vec<String> {
        let show = |v: Option<&Value>| v.map_or("(not set)".to_string(), |v| v.to_string());
        let mut out = Vec::new();
        for (k, v) in &self.entries {
            let o = other.get(k);
            if o != Some(v) {
                let (a, b) = (v.to_string(), show(o));
                let note = if a == b { " (of another type)" } else { "" };
                out.push(format!("{k}: {a} → {b}{note}"));
            }
        }
        for (k, v) in &other.entries {
            if self.get(k).is_none() {
                out.push(format!("{k}: (not set) → {v}"));
            }
        }
        out
    }
}

/// `key=value, key=value, ...`
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let (a, b) = self.0.split_at_checked(n).ok_or("truncated")?;
        self.0 = b;
        Ok(a)
    }
}

/// One line for an encoded fingerprint: its summary, or why it does not decode.
pub fn describe(encoded: &[u8]) -> String {
    match Fingerprint::decode(encoded) {
        Ok(fp) => fp.summary(),
        Err(e) => format!("an unreadable configuration ({e})"),
    }
}

/// Why two encoded fingerprints differ: `written by <summary>, opened as
/// <summary>; differing: key: a → b; ...`. Equal bytes give "".
pub fn describe_mismatch(written: &[u8], opened: &[u8]) -> String {
    if written == opened {
        return String::new();
    }
    match (Fingerprint::decode(written), Fingerprint::decode(opened)) {
        (Ok(w), Ok(o)) => {
            let d = w.diff(&o);
            format!("written by {}, opened as {}; differing: {}", w.summary(), o.summary(), d.join("; "))
        }
        _ => format!("written by {}, opened as {}", describe(written), describe(opened)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custom::Custom;
    use crate::invariant::AlgebraicClass;
    use crate::invariants::ggraph::DegreeLimits;
    use std::rc::Rc;

    fn fp(b: Builtin, mode: CausalityMode) -> Fingerprint {
        Fingerprint::of_kernel(&Multi::single(b), &KernelConfig::new(mode), None).unwrap()
    }

    fn supply(initial: i128, min: i128) -> Builtin {
        Builtin::total_supply(initial, min, i128::MAX).unwrap()
    }

    fn custom(name: &str, version: u32) -> Builtin {
        let rule: Rc<dyn crate::custom::CustomRule> = Rc::new(|_: &crate::Fact<'_>, _: &mut [u8]| Ok(()));
        Builtin::Custom(Custom::new(name, AlgebraicClass::CommutativeMonoid, &[1, 2], rule).unwrap().with_version(version).unwrap())
    }

    #[test]
    fn summary_reads_like_the_configuration() {
        let f = fp(supply(0, 0), CausalityMode::Exact);
        assert_eq!(f.invariant_summary(), "totalSupply{initial=0,min=0,max=∞}");
        assert_eq!(f.summary(), "invariant totalSupply{initial=0,min=0,max=∞}, causality exact");
        assert_eq!(fp(Builtin::uniqueness_cell(), CausalityMode::Bloom).invariant_summary(), "uniqueness{}");
        let e = fp(Builtin::lww(), CausalityMode::Escalating { threshold: 0.3 });
        assert_eq!(e.summary(), "invariant lww{}, causality escalating (threshold 0.3)");
        assert_eq!(
            fp(custom("adder", 2), CausalityMode::Exact).invariant_summary(),
            "custom{name=adder,class=commutativeMonoid,version=2,initial=0x0102}"
        );
        assert!(fp(custom("my adder", 1), CausalityMode::Exact).to_string().contains("invariant.name=\"my adder\""));
        let m = Multi::new(vec![Builtin::g_counter(0), Builtin::lww()]).unwrap();
        let names = ["views".to_string(), "title".to_string()];
        let f = Fingerprint::of_kernel(&m, &KernelConfig::new(CausalityMode::Exact), Some(&names)).unwrap();
        assert_eq!(f.invariant_summary(), "multi{views:gCounter{initial=0},title:lww{}}");
        assert!(Fingerprint::of_kernel(&m, &KernelConfig::new(CausalityMode::Exact), Some(&names[..1])).is_err());
    }

    #[test]
    fn round_trip_and_canonical_bytes() {
        let limits = DegreeLimits { allow_self_loops: true, max_out: Some(3), max_in: None };
        let all = [
            supply(5, -7),
            Builtin::max(i128::MIN),
            Builtin::g_counter(u128::MAX),
            Builtin::bounded_g_counter_from(1, 10).unwrap(),
            Builtin::lww(),
            Builtin::uniqueness_cell(),
            Builtin::unique_set(Some(9)).unwrap(),
            Builtin::unique_set(None).unwrap(),
            Builtin::g_graph_cell(limits).unwrap(),
            Builtin::graph(limits, Some(100)).unwrap(),
            custom("c", 1),
        ];
        let mut seen = Vec::new();
        for b in all {
            for mode in [CausalityMode::Exact, CausalityMode::Bloom, CausalityMode::Escalating { threshold: 0.4 }] {
                let f = fp(b.clone(), mode);
                let bytes = f.encode();
                assert_eq!(Fingerprint::decode(&bytes).unwrap(), f);
                assert_eq!(fp(b.clone(), mode).encode(), bytes, "deterministic");
                assert!(!seen.contains(&bytes), "two configurations with one fingerprint: {f}");
                seen.push(bytes);
            }
        }
    }

    #[test]
    fn every_parameter_counts() {
        let exact = CausalityMode::Exact;
        let pairs = [
            (supply(0, 0), supply(1, 0), "invariant.initial: 0 → 1"),
            (supply(0, 0), supply(0, -1), "invariant.min: 0 → -1"),
            (supply(0, 0), Builtin::uniqueness_cell(), "invariant.kind: totalSupply → uniqueness"),
            (Builtin::g_counter(0), Builtin::g_counter(2), "invariant.initial: 0 → 2"),
            (custom("a", 1), custom("a", 2), "invariant.version: 1 → 2"),
            (custom("a", 1), custom("b", 1), "invariant.name: a → b"),
            (Builtin::unique_set(None).unwrap(), Builtin::unique_set(Some(3)).unwrap(), "invariant.maxElements: none → 3"),
        ];
        for (a, b, expect) in pairs {
            let (fa, fb) = (fp(a, exact), fp(b, exact));
            assert_ne!(fa.encode(), fb.encode());
            let d = fa.diff(&fb);
            assert!(d.iter().any(|l| l == expect), "{d:?} lacks {expect}");
        }
        let d = fp(supply(0, 0), exact).diff(&fp(Builtin::lww(), exact));
        assert!(d.contains(&"invariant.max: ∞ → (not set)".to_string()), "{d:?}");
        let m = fp(Builtin::lww(), exact).diff(&fp(Builtin::lww(), CausalityMode::Escalating { threshold: 0.5 }));
        assert_eq!(m, vec!["causality: exact → escalating", "escalationThreshold: none → 0.5"]);
        assert!(fp(Builtin::lww(), exact).diff(&fp(Builtin::lww(), exact)).is_empty());
    }

    #[test]
    fn mismatch_message_names_both_sides_and_the_keys() {
        let w = fp(supply(0, 0), CausalityMode::Exact).encode();
        let o = fp(Builtin::uniqueness_cell(), CausalityMode::Exact).encode();
        let m = describe_mismatch(&w, &o);
        assert!(m.starts_with("written by invariant totalSupply{initial=0,min=0,max=∞}, causality exact, opened as invariant uniqueness{}"), "{m}");
        assert!(m.contains("invariant.kind: totalSupply → uniqueness"), "{m}");
        let g = describe_mismatch(&w, &fp(Builtin::g_counter(0), CausalityMode::Exact).encode());
        assert!(g.contains("invariant.initial: 0 → 0 (of another type)"), "{g}");
        assert_eq!(describe_mismatch(&w, &w), "");
        assert!(describe_mismatch(b"junk", &o).contains("unreadable"));
    }

    #[test]
    fn garbage_never_panics_and_is_refused() {
        let good = fp(custom("c", 1), CausalityMode::Escalating { threshold: 0.25 }).encode();
        for n in 0..good.len() {
            assert!(Fingerprint::decode(&good[..n]).is_err(), "truncated at {n}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(Fingerprint::decode(&longer).is_err());
        for bit in 0..good.len() * 8 {
            let mut b = good.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            // either refused, or a different fingerprint: never the same one
            if let Ok(f) = Fingerprint::decode(&b) {
                assert_ne!(f.encode(), good);
            }
        }
        let mut newer = good.clone();
        newer[8] = 2;
        assert!(Fingerprint::decode(&newer).unwrap_err().contains("newer"));
    }
}
