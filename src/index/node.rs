//! The binary form of index nodes.
//!
//! ```text
//! offset size  field
//!   0     4    magic "GSIX"
//!   4     1    node format version (1)
//!   5     1    kind: 0 leaf, 1 internal
//!   6     2    reserved, zero
//!   8     4    entry count
//!  12     4    compressed body length
//!  16     n    body, zstd-compressed
//! 16+n    4    CRC-32C of bytes [0, 16 + n)
//! ```
//!
//! A key is 14 bytes: time u32, pyramid u8, level u8, col i32, row i32. A leaf entry is a
//! key, then the chunk's snapshot u64, size u32 and CRC-32C u32 (30 bytes). An internal
//! entry is the first key of a child, then the child's node reference: snapshot u64 and node
//! id u32 (26 bytes). All little-endian.

use crate::codec::Compression;
use crate::error::{Error, Result};

use super::{Entry, NodeRef, TileKey};

pub const NODE_PREFIX: &str = "index/";
const MAGIC: [u8; 4] = *b"GSIX";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 16;
const KEY_LEN: usize = 14;
const LEAF_ENTRY_LEN: usize = KEY_LEN + 16;
const INTERNAL_ENTRY_LEN: usize = KEY_LEN + 12;
/// Node bodies are small and read often; a fast level is enough for their regular bytes.
const BODY_LEVEL: i32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Leaf(Vec<(TileKey, Entry)>),
    /// Children with the first key each holds; child `i` holds the keys from its first key
    /// up to the next child's first key (the first child also holds everything below).
    Internal(Vec<(TileKey, NodeRef)>),
}

impl Node {
    pub fn encode(&self) -> Result<Vec<u8>> {
        let (kind, count, body) = match self {
            Node::Leaf(entries) => {
                let mut body = Vec::with_capacity(entries.len() * LEAF_ENTRY_LEN);
                for (k, e) in entries {
                    put_key(&mut body, k);
                    body.extend_from_slice(&e.seq.to_le_bytes());
                    body.extend_from_slice(&e.size.to_le_bytes());
                    body.extend_from_slice(&e.crc.to_le_bytes());
                }
                (0u8, entries.len(), body)
            }
            Node::Internal(children) => {
                let mut body = Vec::with_capacity(children.len() * INTERNAL_ENTRY_LEN);
                for (k, r) in children {
                    put_key(&mut body, k);
                    body.extend_from_slice(&r.seq.to_le_bytes());
                    body.extend_from_slice(&r.id.to_le_bytes());
                }
                (1u8, children.len(), body)
            }
        };
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() / 4);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(kind);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(count as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        Compression::Zstd.compress(BODY_LEVEL, &body, &mut out)?;
        let body_len = (out.len() - HEADER_LEN) as u32;
        out[12..16].copy_from_slice(&body_len.to_le_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Decodes a node; `key` names the object in error messages.
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
        if bytes[4] != VERSION {
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
        let entry_len = match bytes[5] {
            0 => LEAF_ENTRY_LEN,
            1 => INTERNAL_ENTRY_LEN,
            k => return Err(bad(format!("unknown node kind {k}"))),
        };
        let mut raw = vec![0u8; count * entry_len];
        Compression::Zstd
            .decompress(&body[HEADER_LEN..], &mut raw)
            .map_err(bad)?;
        let entries = raw.chunks_exact(entry_len);
        Ok(if bytes[5] == 0 {
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

fn put_key(out: &mut Vec<u8>, k: &TileKey) {
    out.extend_from_slice(&k.time.to_le_bytes());
    out.push(k.pyramid);
    out.push(k.level);
    out.extend_from_slice(&k.col.to_le_bytes());
    out.extend_from_slice(&k.row.to_le_bytes());
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

    #[test]
    fn nodes_round_trip_and_damage_is_detected() {
        let leaf = Node::Leaf(vec![(
            TileKey::base(-3, 7),
            Entry {
                seq: 9,
                size: 1234,
                crc: 0xdeadbeef,
            },
        )]);
        let internal = Node::Internal(vec![(TileKey::base(1, 2), NodeRef { seq: 4, id: 17 })]);
        for n in [leaf, internal] {
            let mut bytes = n.encode().unwrap();
            assert_eq!(Node::decode(&bytes, "k").unwrap(), n);
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            assert!(Node::decode(&bytes, "k").is_err());
            assert!(Node::decode(&bytes[..10], "k").is_err());
        }
    }
}
