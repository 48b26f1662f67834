//! The binary form of index nodes.
//!
//! ```text
//! offset size  field
//!   0     4    magic "GSIX"
//!   4     1    node format version (4 or 5; versions 1 to 3 are still read)
//!   5     1    kind: 0 leaf, 1 internal
//!   6     2    reserved, zero
//!   8     4    entry count
//!  12     4    body length
//!  16     n    body
//! 16+n    4    CRC-32C of bytes [0, 16 + n)
//! ```
//!
//! A version 5 body is the entries as fixed-width records, in key order, uncompressed: a
//! 14-byte key (time u32, pyramid u8, level u8, col i32, row i32), then for a leaf the
//! chunk's snapshot u64, size u32, CRC-32C u32, base snapshot u64 (0: none), pack u32 (0:
//! none) and offset in the pack u64 (50 bytes), for an internal node the child's snapshot
//! u64 and node id u32 (26 bytes). All little-endian. Version 4 is version 5 without pack
//! and offset (38-byte leaf records); writers write it for every node whose entries name
//! no pack, so that a store without packs stays readable by builds from before them. A node in memory is its object's bytes as read: a lookup binary-searches
//! the records where they lie, so a fresh process pays for reading a node, and not for
//! decoding all of it (the first read of a window in a large store walks down two or three
//! nodes of a thousand entries each).
//!
//! Version 3 bodies (still read, and searched where they lie too) are the same records
//! without the base (30-byte leaf records); version 2 bodies hold those entries
//! delta-encoded as varints; version 1 bodies are version 3 records, zstd-compressed.

use std::marker::PhantomData;

use crate::codec::Compression;
use crate::error::{Error, Result};

use super::{Entry, NodeRef, TileKey};

pub use crate::keys::NODE_PREFIX;
const MAGIC: [u8; 4] = *b"GSIX";
const VERSION: u8 = 5;
/// Fixed records without a chunk's pack, written where no entry of a node is in a pack, so
/// that builds from before packs read the stores that have none.
const VERSION_4: u8 = 4;
/// Fixed records without a chunk's base, still read (and searched in place).
const VERSION_3: u8 = 3;
/// Delta-encoded varint records, still read.
const VERSION_2: u8 = 2;
/// The zstd-compressed fixed records of the first stores, still read.
const VERSION_1: u8 = 1;
const HEADER_LEN: usize = 16;
const KEY_LEN: usize = 14;
/// Most entries a version-1 node may claim (more than any node ever held).
const MAX_V1_ENTRIES: usize = 1 << 16;

/// What a record holds after its key.
pub trait RecordValue: Copy {
    /// The node kind byte of nodes of these records.
    const KIND: u8;
    /// Its length in the fixed records of a node of `version` (1, 3, 4 or 5).
    fn len_in(version: u8) -> usize;
    /// The oldest node version this build writes that can hold it.
    fn version_needed(&self) -> u8 {
        VERSION_4
    }
    /// The value from its record bytes, of any length [`RecordValue::len_in`] gives.
    fn get(b: &[u8]) -> Self;
    /// Appends its record bytes as a node of `version` lays them out.
    fn put(&self, version: u8, out: &mut Vec<u8>);
}

impl RecordValue for Entry {
    const KIND: u8 = 0;
    fn len_in(version: u8) -> usize {
        match version {
            VERSION => 36,
            VERSION_4 => 24,
            _ => 16,
        }
    }
    fn version_needed(&self) -> u8 {
        match self.pack() {
            Some(_) => VERSION,
            None => VERSION_4,
        }
    }
    fn get(b: &[u8]) -> Self {
        // Chunks indexed by version 3 nodes were written before bases existed, and those
        // of version 4 nodes before packs.
        let has = |version| b.len() >= Self::len_in(version);
        Entry {
            seq: u64_at(b, 0),
            size: u32_at(b, 8),
            crc: u32_at(b, 12),
            base: if has(VERSION_4) { u64_at(b, 16) } else { 0 },
            pack: if has(VERSION) { u32_at(b, 24) } else { 0 },
            offset: if has(VERSION) { u64_at(b, 28) } else { 0 },
        }
    }
    fn put(&self, version: u8, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
        if version >= VERSION_4 {
            out.extend_from_slice(&self.base.to_le_bytes());
        }
        if version >= VERSION {
            out.extend_from_slice(&self.pack.to_le_bytes());
            out.extend_from_slice(&self.offset.to_le_bytes());
        }
    }
}

impl RecordValue for NodeRef {
    const KIND: u8 = 1;
    fn len_in(_version: u8) -> usize {
        12
    }
    fn get(b: &[u8]) -> Self {
        NodeRef {
            seq: u64_at(b, 0),
            id: u32_at(b, 8),
        }
    }
    fn put(&self, _version: u8, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
    }
}

/// A node's entries in key order, as the fixed-width records of a version 3 or 4 object,
/// held in that object's bytes (header and checksum included), so that the node is written
/// and searched as it is, without copying or decoding.
#[derive(Clone)]
pub struct Records<V> {
    object: Vec<u8>,
    count: usize,
    /// Bytes per record: key and value, as the object's version lays them out.
    record_len: usize,
    value: PhantomData<V>,
}

impl<V: RecordValue> Records<V> {
    /// Records held in a checked object of `count` records of `value_len`-byte values.
    fn from_object(object: Vec<u8>, count: usize, value_len: usize) -> Self {
        Records {
            object,
            count,
            record_len: KEY_LEN + value_len,
            value: PhantomData,
        }
    }

    /// The records of `items` (sorted by key), as a complete object of the version this
    /// build writes.
    fn build(items: &[(TileKey, V)]) -> Self {
        let version = items
            .iter()
            .map(|(_, v)| v.version_needed())
            .max()
            .unwrap_or(VERSION_4);
        let count = items.len();
        let value_len = V::len_in(version);
        let body_len = count * (KEY_LEN + value_len);
        let mut object = Vec::with_capacity(HEADER_LEN + body_len + 4);
        object.extend_from_slice(&MAGIC);
        object.extend_from_slice(&[version, V::KIND, 0, 0]);
        object.extend_from_slice(&(count as u32).to_le_bytes());
        object.extend_from_slice(&(body_len as u32).to_le_bytes());
        for (k, v) in items {
            put_key(&mut object, k);
            v.put(version, &mut object);
        }
        let crc = crc32c::crc32c(&object);
        object.extend_from_slice(&crc.to_le_bytes());
        Records::from_object(object, count, value_len)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn record(&self, i: usize) -> &[u8] {
        let at = HEADER_LEN + i * self.record_len;
        &self.object[at..at + self.record_len]
    }

    pub fn key(&self, i: usize) -> TileKey {
        get_key(self.record(i))
    }

    pub fn value(&self, i: usize) -> V {
        V::get(&self.record(i)[KEY_LEN..])
    }

    pub fn get(&self, i: usize) -> (TileKey, V) {
        (self.key(i), self.value(i))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (TileKey, V)> + '_ {
        (0..self.count).map(|i| self.get(i))
    }

    /// True when every key is greater than the one before.
    fn keys_increase(&self) -> bool {
        let mut keys = (0..self.count).map(|i| self.key(i));
        let Some(mut prev) = keys.next() else {
            return true;
        };
        keys.all(|k| std::mem::replace(&mut prev, k) < k)
    }

    /// The last key; the records are never empty once checked.
    pub fn last_key(&self) -> Option<TileKey> {
        self.count.checked_sub(1).map(|i| self.key(i))
    }

    /// Where `key` is (`Ok`), or where it would go (`Err`).
    pub fn search(&self, key: &TileKey) -> std::result::Result<usize, usize> {
        let at = self.partition_point(|k| k < key);
        if at < self.count && self.key(at) == *key {
            Ok(at)
        } else {
            Err(at)
        }
    }

    /// How many records come first whose key satisfies `pred` (which must hold for a
    /// prefix of the records).
    pub fn partition_point(&self, pred: impl Fn(&TileKey) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(&self.key(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

impl<V: RecordValue + PartialEq> PartialEq for Records<V> {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.iter().eq(other.iter())
    }
}

impl<V: RecordValue + std::fmt::Debug> std::fmt::Debug for Records<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Leaf(Records<Entry>),
    /// Children with the first key each holds; child `i` holds the keys from its first key
    /// up to the next child's first key (the first child also holds everything below).
    Internal(Records<NodeRef>),
}

impl Node {
    pub fn leaf(entries: Vec<(TileKey, Entry)>) -> Node {
        Node::Leaf(Records::build(&entries))
    }

    pub fn internal(children: Vec<(TileKey, NodeRef)>) -> Node {
        Node::Internal(Records::build(&children))
    }

    /// The node's object, as it is written.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Node::Leaf(r) => &r.object,
            Node::Internal(r) => &r.object,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Node::Leaf(r) => r.len(),
            Node::Internal(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn first_key(&self) -> Option<TileKey> {
        (!self.is_empty()).then(|| match self {
            Node::Leaf(r) => r.key(0),
            Node::Internal(r) => r.key(0),
        })
    }

    pub fn last_key(&self) -> Option<TileKey> {
        match self {
            Node::Leaf(r) => r.last_key(),
            Node::Internal(r) => r.last_key(),
        }
    }

    /// Checks a node object read from storage (`key` names it in messages) and takes it as
    /// the node; a version 3 or 4 object is used as it is, older ones are converted.
    pub fn decode(bytes: Vec<u8>, key: &str) -> Result<Node> {
        let bad = |detail: String| Error::corrupt(key, format!("index node: {detail}"));
        if bytes.len() < HEADER_LEN + 4 || bytes[0..4] != MAGIC {
            return Err(bad(format!(
                "not an index node ({} bytes, bad header)",
                bytes.len()
            )));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let want = u32_at(tail, 0);
        if crc32c::crc32c(body) != want {
            return Err(bad("checksum mismatch".into()));
        }
        let version = bytes[4];
        if ![VERSION, VERSION_4, VERSION_3, VERSION_2, VERSION_1].contains(&version) {
            return Err(Error::NotSupported(format!(
                "{key}: index node version {version} is newer than this build supports; \
                 upgrade gridstore"
            )));
        }
        let count = u32_at(&bytes, 8) as usize;
        let body_len = u32_at(&bytes, 12) as usize;
        if HEADER_LEN + body_len != body.len() {
            return Err(bad("body length does not match the object size".into()));
        }
        let leaf = match bytes[5] {
            0 => true,
            1 => false,
            k => return Err(bad(format!("unknown node kind {k}"))),
        };
        let wrong_count = || {
            bad(format!(
                "body does not hold {count} {} entries",
                if leaf { "leaf" } else { "internal" }
            ))
        };
        let value_len = match leaf {
            true => Entry::len_in(version),
            false => NodeRef::len_in(version),
        };
        let record_len = KEY_LEN + value_len;
        let node = match version {
            VERSION | VERSION_4 | VERSION_3 => {
                if count.checked_mul(record_len) != Some(body_len) {
                    return Err(wrong_count());
                }
                if leaf {
                    Node::Leaf(Records::from_object(bytes, count, value_len))
                } else {
                    Node::Internal(Records::from_object(bytes, count, value_len))
                }
            }
            VERSION_2 => decode_deltas(&body[HEADER_LEN..], leaf, count).ok_or_else(wrong_count)?,
            _ => {
                // Version 1: the version 3 records, zstd-compressed. A count that cannot
                // be right is refused before anything is allocated for it.
                if count > MAX_V1_ENTRIES {
                    return Err(bad(format!("entry count {count} is implausible")));
                }
                let mut raw = vec![0u8; count * record_len];
                Compression::Zstd
                    .decompress(&body[HEADER_LEN..], &mut raw)
                    .map_err(bad)?;
                let records = raw.chunks_exact(record_len);
                if leaf {
                    Node::leaf(
                        records
                            .map(|r| (get_key(r), Entry::get(&r[KEY_LEN..])))
                            .collect(),
                    )
                } else {
                    Node::internal(
                        records
                            .map(|r| (get_key(r), NodeRef::get(&r[KEY_LEN..])))
                            .collect(),
                    )
                }
            }
        };
        node.check_records()
            .map_err(|detail| damaged(key, detail))?;
        Ok(node)
    }

    /// What every node a writer makes satisfies, whatever its place in a tree: it holds
    /// entries (an empty tree has no root rather than an empty one), its keys strictly
    /// increase, and each leaf entry names a chunk that has bytes and whose base, if any, is
    /// older than it. One pass over the records, made once per node read from storage.
    fn check_records(&self) -> std::result::Result<(), String> {
        if self.is_empty() {
            return Err("the node holds no entries".into());
        }
        let sorted = match self {
            Node::Leaf(r) => r.keys_increase(),
            Node::Internal(r) => r.keys_increase(),
        };
        if !sorted {
            return Err("its keys are not in strictly increasing order".into());
        }
        let Node::Leaf(entries) = self else {
            return Ok(());
        };
        for (k, e) in entries.iter() {
            if e.size == 0 {
                return Err(format!("the chunk of tile {} has size 0", k.describe()));
            }
            if e.pack().is_some() && (k.recorded_step().is_some() || k.is_time_block()) {
                return Err(format!(
                    "{} is in a pack: only chunks of tiles are",
                    k.describe()
                ));
            }
            if e.pack().is_some() && e.base().is_some() {
                return Err(format!(
                    "the chunk of tile {} is in a pack and keeps frames in another chunk: \
                     no writer makes one",
                    k.describe()
                ));
            }
            if e.offset.checked_add(u64::from(e.size)).is_none() {
                return Err(format!(
                    "the chunk of tile {} ends past the largest offset",
                    k.describe()
                ));
            }
            if e.base().is_some_and(|b| b >= e.seq) {
                return Err(format!(
                    "the chunk of tile {} (snapshot {}) keeps frames in a chunk of \
                     snapshot {}, which is not older",
                    k.describe(),
                    e.seq,
                    e.base
                ));
            }
        }
        Ok(())
    }

    /// Checks what the node points to against the object it was read from, `at`: a leaf
    /// written by snapshot `at.seq` can only name chunks that snapshot or earlier ones
    /// wrote. (An internal node's children are checked as a walk steps down to them.)
    pub fn check_written_by(&self, at: NodeRef, key: &str) -> Result<()> {
        let Node::Leaf(entries) = self else {
            return Ok(());
        };
        match entries.iter().find(|(_, e)| e.seq > at.seq) {
            Some((k, e)) => Err(damaged(
                key,
                format!(
                    "written by snapshot {}, it names a chunk of a later snapshot ({}) for \
                     tile {}",
                    at.seq,
                    e.seq,
                    k.describe()
                ),
            )),
            None => Ok(()),
        }
    }
}

/// The error for an index node `key` whose content is impossible for a writer to make.
pub(super) fn damaged(key: impl AsRef<std::path::Path>, detail: impl std::fmt::Display) -> Error {
    Error::corrupt(key, format!("damaged index: {detail}"))
}

fn put_key(out: &mut Vec<u8>, k: &TileKey) {
    out.extend_from_slice(&k.time.to_le_bytes());
    out.push(k.pyramid);
    out.push(k.level);
    out.extend_from_slice(&k.col.to_le_bytes());
    out.extend_from_slice(&k.row.to_le_bytes());
}

fn get_key(b: &[u8]) -> TileKey {
    TileKey {
        time: u32_at(b, 0),
        pyramid: b[4],
        level: b[5],
        col: u32_at(b, 6) as i32,
        row: u32_at(b, 10) as i32,
    }
}

/// The little-endian `u32` at `at` (which the caller has checked lies within `b`).
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The little-endian `u64` at `at` (which the caller has checked lies within `b`).
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The fields of the key before, which a version 2 key is written relative to.
#[derive(Default, Clone, Copy)]
struct KeyFields([i64; 5]);

/// Reads version-2 entries; `None` if the body does not hold exactly `count` of them.
fn decode_deltas(body: &[u8], leaf: bool, count: usize) -> Option<Node> {
    let mut r = Reader { bytes: body, at: 0 };
    // Every entry takes at least 5 key bytes: a count the body cannot hold is refused
    // before anything is allocated for it.
    if count > body.len() / 5 {
        return None;
    }
    let mut prev = KeyFields::default();
    let mut next_key = |r: &mut Reader| -> Option<TileKey> {
        for f in prev.0.iter_mut() {
            let z = r.varint()?;
            *f = f.checked_add(((z >> 1) as i64) ^ -((z & 1) as i64))?;
        }
        let [time, pyramid, level, col, row] = prev.0;
        Some(TileKey {
            time: u32::try_from(time).ok()?,
            pyramid: u8::try_from(pyramid).ok()?,
            level: u8::try_from(level).ok()?,
            col: i32::try_from(col).ok()?,
            row: i32::try_from(row).ok()?,
        })
    };
    let node = if leaf {
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let key = next_key(&mut r)?;
            let seq = r.varint()?;
            let size = u32::try_from(r.varint()?).ok()?;
            let crc = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
            entries.push((
                key,
                Entry {
                    seq,
                    size,
                    crc,
                    ..Entry::default()
                },
            ));
        }
        Node::leaf(entries)
    } else {
        let mut children = Vec::with_capacity(count);
        for _ in 0..count {
            let key = next_key(&mut r)?;
            let seq = r.varint()?;
            let id = u32::try_from(r.varint()?).ok()?;
            children.push((key, NodeRef { seq, id }));
        }
        Node::internal(children)
    };
    (r.at == body.len()).then_some(node)
}

/// A cursor over a node body.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at)?;
            self.at += 1;
            v |= ((b & 0x7f) as u64).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An entry; one without a base and of an odd snapshot is in a pack.
    fn entry(seq: u64, size: u32, crc: u32, base: u64) -> Entry {
        let packed = base == 0 && seq % 2 == 1;
        Entry {
            seq,
            size,
            crc,
            base,
            pack: if packed { (seq % 7) as u32 + 1 } else { 0 },
            offset: if packed { u64::from(size) * 3 } else { 0 },
        }
    }

    /// The node as one of a version without bases holds it: every base 0, and no pack.
    fn without_bases(node: &Node) -> Node {
        match node {
            Node::Leaf(entries) => Node::leaf(
                entries
                    .iter()
                    .map(|(k, e)| {
                        (
                            k,
                            Entry {
                                base: 0,
                                pack: 0,
                                offset: 0,
                                ..e
                            },
                        )
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The records of a node as version 1 or 3 lay them out (no bases).
    fn fixed_records(node: &Node) -> Vec<u8> {
        let mut body = Vec::new();
        match node {
            Node::Leaf(entries) => entries.iter().for_each(|(k, e)| {
                put_key(&mut body, &k);
                e.put(VERSION_3, &mut body);
            }),
            Node::Internal(children) => children.iter().for_each(|(k, r)| {
                put_key(&mut body, &k);
                r.put(VERSION_3, &mut body);
            }),
        }
        body
    }

    /// An object of an older version around `body`.
    fn object(version: u8, node: &Node, body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        let kind = matches!(node, Node::Internal(_)) as u8;
        out.extend_from_slice(&[version, kind, 0, 0]);
        out.extend_from_slice(&(node.len() as u32).to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
        with_crc(out)
    }

    /// A version-3 node: fixed records without bases.
    fn encode_v3(node: &Node) -> Vec<u8> {
        object(VERSION_3, node, &fixed_records(node))
    }

    /// A version-1 node, as the first stores wrote them.
    fn encode_v1(node: &Node) -> Vec<u8> {
        let mut body = Vec::new();
        Compression::Zstd
            .compress(1, &fixed_records(node), &mut body)
            .unwrap();
        object(VERSION_1, node, &body)
    }

    /// A version-2 node: each key field as a zigzag varint of its difference from the key
    /// before, then the value's fields as varints (a leaf's CRC as 4 bytes).
    fn encode_v2(node: &Node) -> Vec<u8> {
        fn varint(out: &mut Vec<u8>, mut v: u64) {
            while v >= 0x80 {
                out.push(v as u8 | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        let fields = |k: &TileKey| {
            [
                k.time as i64,
                k.pyramid as i64,
                k.level as i64,
                k.col as i64,
                k.row as i64,
            ]
        };
        let mut body = Vec::new();
        let mut prev = [0i64; 5];
        let mut key = |body: &mut Vec<u8>, k: &TileKey| {
            let now = fields(k);
            for (a, b) in now.iter().zip(prev) {
                let d = a - b;
                varint(body, ((d << 1) ^ (d >> 63)) as u64);
            }
            prev = now;
        };
        match node {
            Node::Leaf(entries) => entries.iter().for_each(|(k, e)| {
                key(&mut body, &k);
                varint(&mut body, e.seq);
                varint(&mut body, e.size as u64);
                body.extend_from_slice(&e.crc.to_le_bytes());
            }),
            Node::Internal(children) => children.iter().for_each(|(k, r)| {
                key(&mut body, &k);
                varint(&mut body, r.seq);
                varint(&mut body, r.id as u64);
            }),
        }
        object(VERSION_2, node, &body)
    }

    fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    #[test]
    fn nodes_round_trip_and_damage_is_detected() {
        let leaf = Node::leaf(vec![
            (
                TileKey::base(5, -2_000_000),
                entry(u64::MAX, u32::MAX, 0, u64::MAX - 1),
            ),
            (TileKey::base(-3, 7), entry(9, 1234, 0xdeadbeef, 3)),
            (
                TileKey {
                    time: u32::MAX,
                    pyramid: 255,
                    level: 30,
                    col: i32::MIN,
                    row: i32::MAX,
                },
                entry(1, 1, 1, 0),
            ),
        ]);
        let internal = Node::internal(vec![
            (TileKey::base(1, 2), NodeRef { seq: 4, id: 17 }),
            (
                TileKey::base(1, 3),
                NodeRef {
                    seq: 5,
                    id: u32::MAX,
                },
            ),
        ]);
        // A leaf without packs, written as version 4 for builds from before packs.
        let unpacked = Node::leaf(vec![(TileKey::base(0, 0), entry(2, 9, 9, 1))]);
        for (n, version) in [
            (leaf, VERSION),
            (internal, VERSION_4),
            (unpacked, VERSION_4),
        ] {
            let mut bytes = n.bytes().to_vec();
            assert_eq!(bytes[4], version);
            assert_eq!(Node::decode(bytes.clone(), "k").unwrap(), n);
            // Nodes of earlier versions still read the same, without the bases they did
            // not hold.
            let old = without_bases(&n);
            assert_eq!(Node::decode(encode_v3(&n), "k").unwrap(), old);
            assert_eq!(Node::decode(encode_v1(&n), "k").unwrap(), old);
            assert_eq!(Node::decode(encode_v2(&n), "k").unwrap(), old);
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            assert!(Node::decode(bytes.clone(), "k").is_err());
            assert!(Node::decode(bytes[..10].to_vec(), "k").is_err());
        }
    }

    #[test]
    fn nodes_no_writer_makes_are_refused_in_every_version() {
        let e = entry(5, 10, 0, 0);
        let (a, b) = (TileKey::base(0, 0), TileKey::base(1, 0));
        let r = NodeRef { seq: 1, id: 0 };
        let cases = [
            (Node::leaf(vec![]), "holds no entries"),
            (Node::internal(vec![]), "holds no entries"),
            (Node::leaf(vec![(b, e), (a, e)]), "strictly increasing"),
            (Node::leaf(vec![(a, e), (a, e)]), "strictly increasing"),
            (Node::internal(vec![(b, r), (a, r)]), "strictly increasing"),
            (Node::leaf(vec![(a, entry(5, 0, 0, 0))]), "size 0"),
        ];
        for (node, says) in cases {
            for bytes in [
                node.bytes().to_vec(),
                encode_v3(&node),
                encode_v2(&node),
                encode_v1(&node),
            ] {
                let e = Node::decode(bytes, "index/1/0").unwrap_err().to_string();
                assert!(e.contains("damaged index") && e.contains(says), "{e}");
                assert!(e.contains("index/1/0"), "{e}");
            }
        }
        // A base that is not older than its chunk (only version 4 nodes hold bases).
        let node = Node::leaf(vec![(a, entry(5, 10, 0, 5))]);
        let e = Node::decode(node.bytes().to_vec(), "k")
            .unwrap_err()
            .to_string();
        assert!(e.contains("which is not older"), "{e}");
        // Packs, only in version 5 nodes: a chunk in a pack keeps no frames in a base,
        // and ends within the largest offset.
        let packed = Entry {
            offset: u64::MAX - 5,
            ..entry(5, 10, 0, 0)
        };
        let in_base = Entry {
            base: 2,
            ..entry(5, 10, 0, 0)
        };
        let step = TileKey::step_record(3);
        let packed_cases = [
            (a, packed, "ends past"),
            (a, in_base, "is in a pack and keeps"),
            (step, entry(5, 10, 0, 0), "only chunks of tiles"),
        ];
        for (k, e, says) in packed_cases {
            let node = Node::leaf(vec![(k, e)]);
            let e = Node::decode(node.bytes().to_vec(), "k")
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn lookups_find_every_key_and_place_the_missing_ones() {
        let keys: Vec<TileKey> = (0..300)
            .map(|i| TileKey::base(2 * (i % 20), i / 20))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        let node = Node::leaf(sorted.iter().map(|k| (*k, entry(1, 2, 3, 4))).collect());
        // Version 3 records are searched where they lie too.
        let v3 = Node::decode(encode_v3(&node), "k").unwrap();
        for node in [node, v3] {
            let Node::Leaf(r) = &node else { unreachable!() };
            for (i, k) in sorted.iter().enumerate() {
                assert_eq!(r.search(k), Ok(i));
                assert_eq!(r.partition_point(|x| x < k), i);
                // An odd column is never stored: it belongs just after its even neighbour.
                let gap = TileKey::base(k.col + 1, k.row);
                assert_eq!(r.search(&gap), Err(sorted.partition_point(|x| *x < gap)));
            }
        }
    }

    proptest! {
        /// Whatever a body holds, as long as its checksum matches (a bug, not damage),
        /// decoding returns a node or an error and never panics or allocates wildly.
        #[test]
        fn any_body_with_a_valid_checksum_decodes_or_fails_cleanly(
            version in 1u8..5, kind in 0u8..3, count in 0u32..5000,
            body in prop::collection::vec(any::<u8>(), 0..300)
        ) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&[version, kind, 0, 0]);
            bytes.extend_from_slice(&count.to_le_bytes());
            bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&body);
            if let Ok(node) = Node::decode(with_crc(bytes), "k") {
                // Whatever decoded can be searched and read through.
                prop_assert_eq!(node.len(), count as usize);
                if let Node::Leaf(r) = &node {
                    let _ = r.search(&TileKey::base(0, 0));
                    prop_assert_eq!(r.iter().count(), count as usize);
                }
            }
        }

        #[test]
        fn sorted_leaves_round_trip(keys in prop::collection::vec(
            (0u32..3, 0u8..2, 0u8..20, -5000i32..5000, -5000i32..5000), 1..200),
            seq in 1..u64::MAX, size in 1..u32::MAX, crc in any::<u32>(), base in any::<u64>()) {
            let base = base % seq; // older than the chunk, or none
            let mut keys: Vec<TileKey> = keys.iter().map(|&(time, pyramid, level, col, row)| {
                TileKey { time, pyramid, level, col, row }
            }).collect();
            keys.sort();
            keys.dedup();
            let node = Node::leaf(keys.iter().map(|&k| (k, entry(seq, size, crc, base))).collect());
            prop_assert_eq!(&Node::decode(node.bytes().to_vec(), "k").unwrap(), &node);
            prop_assert_eq!(&Node::decode(encode_v2(&node), "k").unwrap(), &without_bases(&node));
        }
    }
}
