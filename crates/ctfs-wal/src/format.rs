//! On-disk layout of segments and records (see the crate docs for the
//! table). Every function here is total: any byte content yields `Ok` or a
//! reason string, never a panic.

use std::path::{Path, PathBuf};

/// Segment header magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"CTFSWAL\0";
/// Segment format version (2: the header carries the configuration fingerprint).
pub const FORMAT_VERSION: u32 = 2;
/// The format before configuration fingerprints (still read, never written).
pub const FORMAT_VERSION_LEGACY: u32 = 1;
/// Size of a segment header without fingerprint (format 1, or format 2 with
/// an empty fingerprint); format 2 adds the fingerprint's length.
pub const SEGMENT_HEADER_MIN_LEN: usize = 32;

/// Size of a format-2 segment header carrying a fingerprint of `fingerprint_len` bytes.
pub const fn segment_header_len(fingerprint_len: usize) -> usize {
    SEGMENT_HEADER_MIN_LEN + fingerprint_len
}
/// Bytes of a record before its deps: len, seq, id, dep_count, flags, payload_len.
pub const RECORD_FIXED_LEN: usize = 4 + 8 + 32 + 2 + 2 + 4;
/// Smallest record: no deps, empty payload, checksum.
pub const MIN_RECORD_LEN: usize = RECORD_FIXED_LEN + 4;
/// Hard upper bound on a record's total size, independent of options, used
/// to validate `len` on recovery (64 MiB).
pub const HARD_MAX_RECORD_LEN: usize = 64 << 20;

/// A 32-byte fact id.
pub type Id = [u8; 32];

/// Total on-disk size of a record with `dep_count` deps and `payload_len`
/// payload bytes (including the `len` field and the checksum).
#[inline]
pub const fn record_size(dep_count: usize, payload_len: usize) -> usize {
    MIN_RECORD_LEN + dep_count * 32 + payload_len
}

/// A record read from the log, borrowing the read buffer (zero-copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub seq: u64,
    pub id: &'a Id,
    pub deps: &'a [Id],
    pub payload: &'a [u8],
    pub flags: u16,
}

#[inline]
fn rd_u16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
#[inline]
pub(crate) fn rd_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
#[inline]
pub(crate) fn rd_u64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// Encodes everything of a record except its checksum into `out`, which must
/// be exactly `record_size(deps.len(), payload.len())` bytes. The last four
/// bytes (checksum) are left untouched; see [`seal_record`].
#[inline]
pub(crate) fn encode_record_unsealed(out: &mut [u8], seq: u64, id: &Id, deps: &[Id], payload: &[u8], flags: u16) {
    encode_record_parts_unsealed(out, seq, id, deps, payload, &[], flags)
}

/// [`encode_record_unsealed`] with the payload field made of `payload`
/// followed by `trailer` (caller-defined metadata the flags announce).
#[inline]
pub(crate) fn encode_record_parts_unsealed(out: &mut [u8], seq: u64, id: &Id, deps: &[Id], payload: &[u8], trailer: &[u8], flags: u16) {
    let total = out.len();
    let body = payload.len() + trailer.len();
    debug_assert_eq!(total, record_size(deps.len(), body));
    out[0..4].copy_from_slice(&((total - 4) as u32).to_le_bytes());
    out[4..12].copy_from_slice(&seq.to_le_bytes());
    out[12..44].copy_from_slice(id);
    out[44..46].copy_from_slice(&(deps.len() as u16).to_le_bytes());
    out[46..48].copy_from_slice(&flags.to_le_bytes());
    out[48..52].copy_from_slice(&(body as u32).to_le_bytes());
    let mut o = RECORD_FIXED_LEN;
    for d in deps {
        out[o..o + 32].copy_from_slice(d);
        o += 32;
    }
    out[o..o + payload.len()].copy_from_slice(payload);
    out[o + payload.len()..o + body].copy_from_slice(trailer);
}

/// Writes the CRC32C of `rec[..len-4]` into its last four bytes.
#[inline]
pub(crate) fn seal_record(rec: &mut [u8]) {
    let n = rec.len() - 4;
    let c = crc32c::crc32c(&rec[..n]);
    rec[n..].copy_from_slice(&c.to_le_bytes());
}

/// Encodes a complete, sealed record (used by tests and tools).
pub fn encode_record(seq: u64, id: &Id, deps: &[Id], payload: &[u8], flags: u16) -> Vec<u8> {
    let mut v = vec![0u8; record_size(deps.len(), payload.len())];
    encode_record_unsealed(&mut v, seq, id, deps, payload, flags);
    seal_record(&mut v);
    v
}

/// Parses the record starting at `buf[off..]`. Returns the record and its
/// total size, or a reason why the bytes there are not a valid record.
/// Checks: room for `len`, `len` within limits and consistent with
/// `dep_count`/`payload_len`, the whole record present, CRC32C.
#[inline]
pub fn parse_record(buf: &[u8], off: usize) -> Result<(RecordRef<'_>, usize), &'static str> {
    parse_record_checked(buf, off, true)
}

/// True when `rest` (what follows the last record of a segment) is all
/// zeros: the space the writer zeroed ahead of its records, read as the
/// clean end of the segment (a torn write leaves non-zero bytes there).
pub(crate) fn is_zero_tail(rest: &[u8]) -> bool {
    rest.chunks(64).all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

/// The offset past the longest run of well-formed records, checksums
/// included, that starts at `start` and follows record lengths (the chain
/// a replay walks when nothing is damaged). Recovery computes it for the
/// next segment on another thread while it replays the current one; a
/// record of that run can then be parsed without checking its checksum
/// again ([`parse_record_checked`] with `check_crc: false`).
pub(crate) fn verified_chain_end(buf: &[u8], start: usize) -> usize {
    let mut off = start;
    while let Ok((_, total)) = parse_record(buf, off) {
        off += total;
    }
    off
}

/// [`parse_record`], skipping the checksum comparison when `check_crc` is
/// false: only for a record at a chain offset below
/// [`verified_chain_end`], whose checksum has been checked already.
#[inline]
pub(crate) fn parse_record_checked(buf: &[u8], off: usize, check_crc: bool) -> Result<(RecordRef<'_>, usize), &'static str> {
    let rest = buf.len().saturating_sub(off);
    if rest < 4 {
        return Err("incomplete record length");
    }
    let len = rd_u32(buf, off) as usize;
    if len < MIN_RECORD_LEN - 4 {
        return Err("record length below minimum");
    }
    if len > HARD_MAX_RECORD_LEN - 4 {
        return Err("record length above limit");
    }
    let total = len + 4;
    if rest < RECORD_FIXED_LEN {
        return Err("incomplete record header");
    }
    let dep_count = rd_u16(buf, off + 44) as usize;
    let payload_len = rd_u32(buf, off + 48) as usize;
    if record_size(dep_count, payload_len) != total {
        return Err("record length does not match dep_count/payload_len");
    }
    if rest < total {
        return Err("incomplete record");
    }
    let rec = &buf[off..off + total];
    let stored = rd_u32(rec, total - 4);
    if check_crc && crc32c::crc32c(&rec[..total - 4]) != stored {
        return Err("checksum mismatch");
    }
    let seq = rd_u64(rec, 4);
    let id: &Id = match rec[12..44].try_into() {
        Ok(a) => a,
        Err(_) => return Err("internal: id slice"),
    };
    let flags = rd_u16(rec, 46);
    let deps_end = RECORD_FIXED_LEN + dep_count * 32;
    let (deps, tail) = rec[RECORD_FIXED_LEN..deps_end].as_chunks::<32>();
    if !tail.is_empty() {
        return Err("internal: deps slice");
    }
    let payload = &rec[deps_end..deps_end + payload_len];
    Ok((RecordRef { seq, id, deps, payload, flags }, total))
}

/// Looks for any valid record starting after `from` whose seq is at least
/// `min_seq`: evidence that the damage at `from` is not a torn tail.
pub(crate) fn valid_record_after(buf: &[u8], from: usize, min_seq: u64) -> Option<usize> {
    let end = buf.len().checked_sub(MIN_RECORD_LEN)?;
    let mut o = from;
    while o <= end {
        if let Ok((r, _)) = parse_record(buf, o)
            && r.seq >= min_seq
        {
            return Some(o);
        }
        o += 1;
    }
    None
}

/// Encodes a format-2 segment header: magic, version u32 (2), header length
/// u32 (32 + f), first seq u64, fingerprint length u32 (f), the fingerprint,
/// CRC32C of everything before it.
pub(crate) fn encode_segment_header(first_seq: u64, fingerprint: &[u8]) -> Vec<u8> {
    let n = segment_header_len(fingerprint.len());
    let mut h = Vec::with_capacity(n);
    h.extend_from_slice(&SEGMENT_MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&(n as u32).to_le_bytes());
    h.extend_from_slice(&first_seq.to_le_bytes());
    h.extend_from_slice(&(fingerprint.len() as u32).to_le_bytes());
    h.extend_from_slice(fingerprint);
    let c = crc32c::crc32c(&h);
    h.extend_from_slice(&c.to_le_bytes());
    h
}

/// A format-1 header (32 bytes, no fingerprint): for tests of the legacy rule.
#[doc(hidden)]
pub fn encode_segment_header_legacy(first_seq: u64) -> [u8; SEGMENT_HEADER_MIN_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_MIN_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION_LEGACY.to_le_bytes());
    h[12..16].copy_from_slice(&(SEGMENT_HEADER_MIN_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let c = crc32c::crc32c(&h[..28]);
    h[28..32].copy_from_slice(&c.to_le_bytes());
    h
}

/// A parsed segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader<'a> {
    pub first_seq: u64,
    /// Bytes of the header: records start here.
    pub len: usize,
    /// The writer's configuration fingerprint; `None` for format 1.
    pub fingerprint: Option<&'a [u8]>,
}

/// Validates a segment header (format 2, or the legacy format 1).
pub(crate) fn parse_segment_header(buf: &[u8]) -> Result<SegmentHeader<'_>, String> {
    if buf.len() < SEGMENT_HEADER_MIN_LEN {
        return Err(format!("segment header incomplete ({} of {SEGMENT_HEADER_MIN_LEN} bytes)", buf.len()));
    }
    if buf[0..8] != SEGMENT_MAGIC {
        return Err("bad segment magic".into());
    }
    let version = rd_u32(buf, 8);
    let len = rd_u32(buf, 12) as usize;
    let first_seq = rd_u64(buf, 16);
    match version {
        FORMAT_VERSION_LEGACY => {
            if crc32c::crc32c(&buf[..28]) != rd_u32(buf, 28) {
                return Err("segment header checksum mismatch".into());
            }
            if len != SEGMENT_HEADER_MIN_LEN {
                return Err("unexpected segment header length".into());
            }
            if rd_u32(buf, 24) != 0 {
                return Err("reserved header field not zero".into());
            }
            Ok(SegmentHeader { first_seq, len, fingerprint: None })
        }
        FORMAT_VERSION => {
            let fp_len = rd_u32(buf, 24) as usize;
            if fp_len > crate::checkpoint::MAX_FINGERPRINT || len != segment_header_len(fp_len) {
                return Err("segment header length does not match its fingerprint length".into());
            }
            if buf.len() < len {
                return Err(format!("segment header incomplete ({} of {len} bytes)", buf.len()));
            }
            if crc32c::crc32c(&buf[..len - 4]) != rd_u32(buf, len - 4) {
                return Err("segment header checksum mismatch".into());
            }
            Ok(SegmentHeader { first_seq, len, fingerprint: Some(&buf[28..len - 4]) })
        }
        v => Err(format!("unsupported segment format version {v}")),
    }
}

/// `wal-<first_seq:020>.log`
pub fn segment_file_name(first_seq: u64) -> String {
    format!("wal-{first_seq:020}.log")
}

pub(crate) fn parse_seq_name(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files of `dir`, sorted by first seq.
pub(crate) fn list_seq_files(dir: &Path, prefix: &str, suffix: &str) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = parse_seq_name(name, prefix, suffix) {
            v.push((seq, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// Segment files of `dir`, sorted by first seq, with the spare if it holds
/// the newest segment (a crash between a roll's sync and the spare's
/// rename; see `spare.rs`).
pub(crate) fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut v = list_seq_files(dir, "wal-", ".log")?;
    if let Some(s) = crate::spare::left_segment(dir)? {
        v.push(s);
        v.sort();
    }
    Ok(v)
}

/// fsync a directory so that created, renamed or deleted entries persist.
pub(crate) fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let id = [7u8; 32];
        let deps = [[1u8; 32], [2u8; 32]];
        let rec = encode_record(42, &id, &deps, b"hello", 3);
        assert_eq!(rec.len(), record_size(2, 5));
        let (r, n) = parse_record(&rec, 0).unwrap();
        assert_eq!(n, rec.len());
        assert_eq!(r.seq, 42);
        assert_eq!(r.id, &id);
        assert_eq!(r.deps, &deps);
        assert_eq!(r.payload, b"hello");
        assert_eq!(r.flags, 3);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let rec = encode_record(9, &[5u8; 32], &[[6u8; 32]], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], 0);
        for bit in 0..rec.len() * 8 {
            let mut r = rec.clone();
            r[bit / 8] ^= 1 << (bit % 8);
            assert!(parse_record(&r, 0).is_err(), "bit {bit} undetected");
        }
    }

    #[test]
    fn header_round_trip_and_garbage() {
        let fp = b"CTFSCFG\0 some fingerprint bytes";
        let h = encode_segment_header(77, fp);
        assert_eq!(h.len(), segment_header_len(fp.len()));
        assert_eq!(parse_segment_header(&h).unwrap(), SegmentHeader { first_seq: 77, len: h.len(), fingerprint: Some(&fp[..]) });
        for i in 0..h.len() * 8 {
            let mut x = h.clone();
            x[i / 8] ^= 1 << (i % 8);
            assert!(parse_segment_header(&x).is_err(), "bit {i}");
        }
        for n in 0..h.len() {
            assert!(parse_segment_header(&h[..n]).is_err());
        }
        // records follow the header: extra bytes are not part of it
        let mut more = h.clone();
        more.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse_segment_header(&more).unwrap().len, h.len());
        let empty = encode_segment_header(5, &[]);
        assert_eq!(parse_segment_header(&empty).unwrap().fingerprint, Some(&[][..]));
        // format 1 still parses, without a fingerprint
        let old = encode_segment_header_legacy(9);
        assert_eq!(parse_segment_header(&old).unwrap(), SegmentHeader { first_seq: 9, len: 32, fingerprint: None });
        for i in 0..SEGMENT_HEADER_MIN_LEN * 8 {
            let mut x = old;
            x[i / 8] ^= 1 << (i % 8);
            assert!(parse_segment_header(&x).is_err());
        }
        // No panic on arbitrary short/garbage input.
        for n in 0..80 {
            let g: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let _ = parse_record(&g, 0);
            let _ = parse_record(&g, n / 2);
            let _ = parse_segment_header(&g);
        }
    }

    #[test]
    fn names() {
        assert_eq!(segment_file_name(1), "wal-00000000000000000001.log");
        assert_eq!(parse_seq_name("wal-00000000000000000001.log", "wal-", ".log"), Some(1));
        assert_eq!(parse_seq_name("wal-1.log", "wal-", ".log"), None);
    }
}
