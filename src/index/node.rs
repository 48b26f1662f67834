//! The binary form of index nodes.
//!
//! ```text
//! offset size  field
//!   0     4    magic "GSIX"
//!   4     1    node format version (2; version 1 is still read)
//!   5     1    kind: 0 leaf, 1 internal
//!   6     2    reserved, zero
//!   8     4    entry count
//!  12     4    body length
//!  16     n    body
//! 16+n    4    CRC-32C of bytes [0, 16 + n)
//! ```
//!
//! Version 2 bodies are not compressed: entries are sorted, so each key is written as the
//! differences of its fields from the previous key's (zigzag LEB128 varints, mostly one
//! byte each), which makes them about as small as compressing would, and a fresh process
//! decodes a full leaf in microseconds instead of first setting up a decompressor (the
//! first window read of a large store reads several nodes). A leaf entry continues with
//! the chunk's snapshot and size (varints) and its CRC-32C (4 bytes); an internal entry
//! with the child's snapshot and node id (varints).
//!
//! Version 1 bodies are zstd-compressed fixed records: a 14-byte key (time u32, pyramid
//! u8, level u8, col i32, row i32), then for a leaf the snapshot u64, size u32 and CRC-32C
//! u32, for an internal node the snapshot u64 and node id u32. All little-endian.

use crate::codec::Compression;
use crate::error::{Error, Result};

use super::{Entry, NodeRef, TileKey};

pub const NODE_PREFIX: &str = "index/";
const MAGIC: [u8; 4] = *b"GSIX";
const VERSION: u8 = 2;
/// The zstd-compressed fixed records of the first stores, still read.
const VERSION_1: u8 = 1;
const HEADER_LEN: usize = 16;
const KEY_LEN: usize = 14;
const LEAF_ENTRY_LEN: usize = KEY_LEN + 16;
/// Most entries a version-1 node may claim (more than any node ever held).
const MAX_V1_ENTRIES: usize = 1 << 16;
const INTERNAL_ENTRY_LEN: usize = KEY_LEN + 12;
/// Node bodies are small and read often; a fast level is enough for their regular bytes.

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Leaf(Vec<(TileKey, Entry)>),
    /// Children with the first key each holds; child `i` holds the keys from its first key
    /// up to the next child's first key (the first child also holds everything below).
    Internal(Vec<(TileKey, NodeRef)>),
}

impl Node {
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.len() * 16);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.kind());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]); // body length, filled below
        let mut prev = KeyFields::default();
        match self {
            Node::Leaf(entries) => {
                for (k, e) in entries {
                    prev = put_key_delta(&mut out, prev, k);
                    put_varint(&mut out, e.seq);
                    put_varint(&mut out, e.size as u64);
                    out.extend_from_slice(&e.crc.to_le_bytes());
                }
            }
            Node::Internal(children) => {
                for (k, r) in children {
                    prev = put_key_delta(&mut out, prev, k);
                    put_varint(&mut out, r.seq);
                    put_varint(&mut out, r.id as u64);
                }
            }
        }
        let body_len = (out.len() - HEADER_LEN) as u32;
        out[12..16].copy_from_slice(&body_len.to_le_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    fn kind(&self) -> u8 {
        match self {
            Node::Leaf(_) => 0,
            Node::Internal(_) => 1,
        }
    }

    fn len(&self) -> usize {
        match self {
            Node::Leaf(e) => e.len(),
            Node::Internal(c) => c.len(),
        }
    }

    pub fn decode(bytes: &[u8], key: &str) -> Result<Node> {
        let bad = |detail: String| Error::corrupt(key, format!("index node: {detail}"));
        if bytes.len() < HEADER_LEN + 4 || bytes[0..4] != MAGIC {
            return Err(bad(format!(
                "not an index node ({} bytes, bad header)",
                bytes.len()
            )));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let want = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
        if crc32c::crc32c(body) != want {
            return Err(bad("checksum mismatch".into()));
        }
        if bytes[4] != VERSION && bytes[4] != VERSION_1 {
            return Err(Error::NotSupported(format!(
                "{key}: index node version {} is newer than this build supports; upgrade \
                 gridstore",
                bytes[4]
            )));
        }
        let count = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        let body_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
        if HEADER_LEN + body_len != body.len() {
            return Err(bad("body length does not match the object size".into()));
        }
        let leaf = match bytes[5] {
            0 => true,
            1 => false,
            k => return Err(bad(format!("unknown node kind {k}"))),
        };
        let body = &body[HEADER_LEN..];
        if bytes[4] == VERSION {
            return decode_deltas(body, leaf, count).ok_or_else(|| {
                bad(format!(
                    "body does not hold {count} {} entries",
                    if leaf { "leaf" } else { "internal" }
                ))
            });
        }
        // Version 1: zstd-compressed fixed records. A count that the body cannot hold is
        // refused before anything is allocated for it.
        let entry_len = if leaf {
            LEAF_ENTRY_LEN
        } else {
            INTERNAL_ENTRY_LEN
        };
        if count > MAX_V1_ENTRIES {
            return Err(bad(format!("entry count {count} is implausible")));
        }
        let mut raw = vec![0u8; count * entry_len];
        Compression::Zstd.decompress(body, &mut raw).map_err(bad)?;
        let entries = raw.chunks_exact(entry_len);
        Ok(if leaf {
            Node::Leaf(
                entries
                    .map(|e| {
                        (
                            get_key(e),
                            Entry {
                                seq: u64::from_le_bytes(e[14..22].try_into().expect("8")),
                                size: u32::from_le_bytes(e[22..26].try_into().expect("4")),
                                crc: u32::from_le_bytes(e[26..30].try_into().expect("4")),
                            },
                        )
                    })
                    .collect(),
            )
        } else {
            Node::Internal(
                entries
                    .map(|e| {
                        (
                            get_key(e),
                            NodeRef {
                                seq: u64::from_le_bytes(e[14..22].try_into().expect("8")),
                                id: u32::from_le_bytes(e[22..26].try_into().expect("4")),
                            },
                        )
                    })
                    .collect(),
            )
        })
    }

    pub fn first_key(&self) -> Option<TileKey> {
        match self {
            Node::Leaf(e) => e.first().map(|x| x.0),
            Node::Internal(c) => c.first().map(|x| x.0),
        }
    }
}

/// The fields of the key before, which the next key is written relative to.
#[derive(Default, Clone, Copy)]
struct KeyFields([i64; 5]);

impl KeyFields {
    fn of(k: &TileKey) -> KeyFields {
        KeyFields([
            k.time as i64,
            k.pyramid as i64,
            k.level as i64,
            k.col as i64,
            k.row as i64,
        ])
    }
}

fn put_key_delta(out: &mut Vec<u8>, prev: KeyFields, k: &TileKey) -> KeyFields {
    let now = KeyFields::of(k);
    for (a, b) in now.0.iter().zip(prev.0) {
        let d = a - b;
        put_varint(out, ((d << 1) ^ (d >> 63)) as u64);
    }
    now
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

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
            entries.push((key, Entry { seq, size, crc }));
        }
        Node::Leaf(entries)
    } else {
        let mut children = Vec::with_capacity(count);
        for _ in 0..count {
            let key = next_key(&mut r)?;
            let seq = r.varint()?;
            let id = u32::try_from(r.varint()?).ok()?;
            children.push((key, NodeRef { seq, id }));
        }
        Node::Internal(children)
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

fn get_key(b: &[u8]) -> TileKey {
    TileKey {
        time: u32::from_le_bytes(b[0..4].try_into().expect("4")),
        pyramid: b[4],
        level: b[5],
        col: i32::from_le_bytes(b[6..10].try_into().expect("4")),
        row: i32::from_le_bytes(b[10..14].try_into().expect("4")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(seq: u64, size: u32, crc: u32) -> Entry {
        Entry { seq, size, crc }
    }

    /// A version-1 node, as the first stores wrote them.
    fn encode_v1(node: &Node) -> Vec<u8> {
        let mut body = Vec::new();
        let put_key = |body: &mut Vec<u8>, k: &TileKey| {
            body.extend_from_slice(&k.time.to_le_bytes());
            body.push(k.pyramid);
            body.push(k.level);
            body.extend_from_slice(&k.col.to_le_bytes());
            body.extend_from_slice(&k.row.to_le_bytes());
        };
        match node {
            Node::Leaf(entries) => {
                for (k, e) in entries {
                    put_key(&mut body, k);
                    body.extend_from_slice(&e.seq.to_le_bytes());
                    body.extend_from_slice(&e.size.to_le_bytes());
                    body.extend_from_slice(&e.crc.to_le_bytes());
                }
            }
            Node::Internal(children) => {
                for (k, r) in children {
                    put_key(&mut body, k);
                    body.extend_from_slice(&r.seq.to_le_bytes());
                    body.extend_from_slice(&r.id.to_le_bytes());
                }
            }
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[VERSION_1, node.kind(), 0, 0]);
        out.extend_from_slice(&(node.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        Compression::Zstd.compress(1, &body, &mut out).unwrap();
        let n = (out.len() - HEADER_LEN) as u32;
        out[12..16].copy_from_slice(&n.to_le_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
        let crc = crc32c::crc32c(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    #[test]
    fn nodes_round_trip_and_damage_is_detected() {
        let leaf = Node::Leaf(vec![
            (TileKey::base(-3, 7), entry(9, 1234, 0xdeadbeef)),
            (TileKey::base(5, -2_000_000), entry(u64::MAX, u32::MAX, 0)),
            (
                TileKey {
                    time: u32::MAX,
                    pyramid: 255,
                    level: 30,
                    col: i32::MIN,
                    row: i32::MAX,
                },
                entry(0, 0, 1),
            ),
        ]);
        let internal = Node::Internal(vec![
            (TileKey::base(1, 2), NodeRef { seq: 4, id: 17 }),
            (
                TileKey::base(1, 3),
                NodeRef {
                    seq: 5,
                    id: u32::MAX,
                },
            ),
        ]);
        for n in [leaf, internal, Node::Leaf(vec![])] {
            let mut bytes = n.encode().unwrap();
            assert_eq!(bytes[4], VERSION);
            assert_eq!(Node::decode(&bytes, "k").unwrap(), n);
            // The first stores' nodes still read the same.
            assert_eq!(Node::decode(&encode_v1(&n), "k").unwrap(), n);
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            assert!(Node::decode(&bytes, "k").is_err());
            assert!(Node::decode(&bytes[..10], "k").is_err());
        }
    }

    #[test]
    fn a_full_leaf_of_neighbours_is_small() {
        let entries: Vec<_> = (0..crate::index::LEAF_MAX as i32)
            .map(|i| {
                (
                    TileKey::base(i % 32, i / 32),
                    entry(3, 40_000 + i as u32, 0x1234_5678),
                )
            })
            .collect();
        let bytes = Node::Leaf(entries).encode().unwrap();
        // Keys of one or two bytes a field, size in three, CRC in four: 13 to 14 bytes each.
        assert!(
            bytes.len() < 15 * crate::index::LEAF_MAX,
            "{} bytes",
            bytes.len()
        );
    }

    proptest! {
        /// Whatever a body holds, as long as its checksum matches (a bug, not damage),
        /// decoding returns a node or an error and never panics or allocates wildly.
        #[test]
        fn any_body_with_a_valid_checksum_decodes_or_fails_cleanly(
            kind in 0u8..3, count in 0u32..5000, body in prop::collection::vec(any::<u8>(), 0..300)
        ) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&[VERSION, kind, 0, 0]);
            bytes.extend_from_slice(&count.to_le_bytes());
            bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&body);
            let _ = Node::decode(&with_crc(bytes), "k");
        }

        #[test]
        fn sorted_leaves_round_trip(mut keys in prop::collection::vec(
            (0u32..3, 0u8..2, 0u8..20, -5000i32..5000, -5000i32..5000), 0..200),
            seq in any::<u64>(), size in any::<u32>(), crc in any::<u32>()) {
            keys.sort();
            keys.dedup();
            let node = Node::Leaf(keys.iter().map(|&(time, pyramid, level, col, row)| {
                (TileKey { time, pyramid, level, col, row }, entry(seq, size, crc))
            }).collect());
            prop_assert_eq!(Node::decode(&node.encode().unwrap(), "k").unwrap(), node);
        }
    }
}
