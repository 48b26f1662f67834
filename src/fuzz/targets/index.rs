//! Index nodes of every version (`Node::decode`), against `Node::leaf` / `Node::internal`.

use crate::codec::Compression;
use crate::fuzz::{Field, Target};
use crate::index::{Entry, Node, NodeRef, TileKey};

/// Nodes hold at most a few thousand records of a few dozen bytes: nothing decoding one
/// needs more than this at once.
const NODE_BOUND: usize = 64 << 20;
const HEADER_LEN: usize = 16;

/// The object every input is read as: a node snapshot 1000 wrote, later than any chunk
/// or child the seeds name (a reader checks a node's entries against it).
const WRITER: NodeRef = NodeRef { seq: 1000, id: 0 };

pub struct IndexTarget;

impl Target for IndexTarget {
    type Decoded = Node;

    fn name(&self) -> &'static str {
        "index"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for n in [1, 3, 300] {
            let leaf = leaf(n);
            let internal = internal(n);
            for node in [&leaf, &internal] {
                out.push(node.bytes().to_vec());
                out.push(old_version(3, node, fixed_records(node)));
                out.push(old_version(2, node, deltas(node)));
                let mut packed = Vec::new();
                if Compression::Zstd
                    .compress(1, &fixed_records(node), &mut packed)
                    .is_ok()
                {
                    out.push(old_version(1, node, packed));
                }
            }
        }
        out
    }

    fn fields(&self, input: &[u8]) -> Vec<Field> {
        let mut fields = vec![
            Field {
                offset: 4,
                width: 1,
            },
            Field {
                offset: 5,
                width: 1,
            },
            Field {
                offset: 8,
                width: 4,
            },
            Field {
                offset: 12,
                width: 4,
            },
        ];
        // The first record's key fields and values (version 3 and 4 layouts).
        for (offset, width) in [(0, 4), (4, 1), (5, 1), (6, 4), (10, 4), (14, 8), (22, 4)] {
            if HEADER_LEN + offset + width <= input.len() {
                fields.push(Field {
                    offset: HEADER_LEN + offset,
                    width,
                });
            }
        }
        fields
    }

    fn fix_checksums(&self, input: &mut [u8], lengths: bool) {
        let len = input.len();
        if len < HEADER_LEN + 4 {
            return;
        }
        if lengths {
            input[12..16].copy_from_slice(&((len - HEADER_LEN - 4) as u32).to_le_bytes());
        }
        let crc = crc32c::crc32c(&input[..len - 4]);
        input[len - 4..].copy_from_slice(&crc.to_le_bytes());
    }

    fn decode(&self, input: &[u8]) -> Option<Node> {
        let key = WRITER.object_key();
        let node = Node::decode(input.to_vec(), &key).ok()?;
        // Readers check what a node names against the snapshot that wrote it.
        node.check_written_by(WRITER, &key).ok()?;
        // What readers do with a node: search it and read its records.
        let probe = TileKey::base(0, 0);
        match &node {
            Node::Leaf(r) => {
                let _ = std::hint::black_box((r.search(&probe), r.iter().count()));
            }
            Node::Internal(r) => {
                let _ = std::hint::black_box((r.search(&probe), r.iter().count()));
            }
        }
        Some(node)
    }

    fn check(&self, _input: &[u8], node: Node) -> Result<(), String> {
        let again = match &node {
            Node::Leaf(r) => Node::leaf(r.iter().collect()),
            Node::Internal(r) => Node::internal(r.iter().collect()),
        };
        let back = Node::decode(again.bytes().to_vec(), "index/1/1")
            .map_err(|e| format!("the re-encoded node is refused: {e}"))?;
        if back != node {
            return Err(format!("re-encoded, {back:?} reads back, not {node:?}"));
        }
        Ok(())
    }

    fn alloc_bound(&self, _input: &[u8]) -> usize {
        NODE_BOUND
    }
}

/// A key of a tile spread out over the key space (negative columns, several levels).
fn key(i: usize) -> TileKey {
    TileKey {
        time: (i / 200) as u32,
        pyramid: (i / 100 % 2) as u8,
        level: (i / 50 % 2) as u8,
        col: i as i32 * 37 - 5000,
        row: (i % 50) as i32 - 7,
    }
}

/// `records` in key order, as a writer keeps them (the keys are distinct).
fn in_key_order<V>(mut records: Vec<(TileKey, V)>) -> Vec<(TileKey, V)> {
    records.sort_by_key(|(k, _)| *k);
    records
}

/// A leaf of `n` entries, written by snapshot `WRITER.seq`: chunks of that snapshot or
/// earlier ones, each with bytes, some keeping frames in an older chunk (their base), some
/// in a pack.
fn leaf(n: usize) -> Node {
    Node::leaf(in_key_order(
        (0..n)
            .map(|i| {
                let entry = Entry {
                    seq: 1 + i as u64,
                    size: 1000 + i as u32,
                    crc: (i as u32).wrapping_mul(0x9e37_79b9),
                    base: if i % 3 == 0 { 0 } else { i as u64 },
                    pack: if i % 6 == 0 { 1 + i as u32 % 4 } else { 0 },
                    offset: if i % 6 == 0 { 4096 * i as u64 } else { 0 },
                };
                (key(i), entry)
            })
            .collect(),
    ))
}

/// An internal node of `n` children, written by earlier snapshots than `WRITER.seq`.
fn internal(n: usize) -> Node {
    Node::internal(in_key_order(
        (0..n)
            .map(|i| {
                let child = NodeRef {
                    seq: 1 + i as u64 / 7,
                    id: i as u32,
                };
                (key(i * 11), child)
            })
            .collect(),
    ))
}

/// The fixed-width key of a record (docs/FORMAT.md §4).
fn put_key(out: &mut Vec<u8>, k: &TileKey) {
    out.extend_from_slice(&k.time.to_le_bytes());
    out.extend_from_slice(&[k.pyramid, k.level]);
    out.extend_from_slice(&k.col.to_le_bytes());
    out.extend_from_slice(&k.row.to_le_bytes());
}

/// The records of a version 1 or 3 node: version 4's without the chunks' bases.
fn fixed_records(node: &Node) -> Vec<u8> {
    let mut body = Vec::new();
    match node {
        Node::Leaf(r) => r.iter().for_each(|(k, e)| {
            put_key(&mut body, &k);
            body.extend_from_slice(&e.seq.to_le_bytes());
            body.extend_from_slice(&e.size.to_le_bytes());
            body.extend_from_slice(&e.crc.to_le_bytes());
        }),
        Node::Internal(r) => r.iter().for_each(|(k, c)| {
            put_key(&mut body, &k);
            body.extend_from_slice(&c.seq.to_le_bytes());
            body.extend_from_slice(&c.id.to_le_bytes());
        }),
    }
    body
}

/// The body of a version 2 node: each key field as a zigzag varint of its difference from
/// the key before, then the value's fields as varints (a leaf's CRC as 4 bytes).
fn deltas(node: &Node) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut body = Vec::new();
    let mut prev = [0i64; 5];
    let mut put_key = |body: &mut Vec<u8>, k: &TileKey| {
        let now = [
            k.time as i64,
            k.pyramid as i64,
            k.level as i64,
            k.col as i64,
            k.row as i64,
        ];
        for (a, b) in now.iter().zip(prev) {
            let d = a - b;
            varint(body, ((d << 1) ^ (d >> 63)) as u64);
        }
        prev = now;
    };
    match node {
        Node::Leaf(r) => r.iter().for_each(|(k, e)| {
            put_key(&mut body, &k);
            varint(&mut body, e.seq);
            varint(&mut body, e.size as u64);
            body.extend_from_slice(&e.crc.to_le_bytes());
        }),
        Node::Internal(r) => r.iter().for_each(|(k, c)| {
            put_key(&mut body, &k);
            varint(&mut body, c.seq);
            varint(&mut body, c.id as u64);
        }),
    }
    body
}

/// A node object of an older `version` around `body`.
fn old_version(version: u8, node: &Node, body: Vec<u8>) -> Vec<u8> {
    let kind = matches!(node, Node::Internal(_)) as u8;
    let mut out = b"GSIX".to_vec();
    out.extend_from_slice(&[version, kind, 0, 0]);
    out.extend_from_slice(&(node.len() as u32).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_mutation_the_checksum_is_right_and_the_count_check_speaks() {
        for seed in IndexTarget.seeds() {
            let decoded = IndexTarget.decode(&seed).expect("a valid node decodes");
            IndexTarget.check(&seed, decoded).unwrap();
            let mut more = seed.clone();
            more[8] += 1; // one entry more than the body holds
            let e = Node::decode(more.clone(), "n").unwrap_err().to_string();
            assert!(
                e.contains("checksum"),
                "without the fix, the checksum speaks: {e}"
            );
            IndexTarget.fix_checksums(&mut more, false);
            let e = Node::decode(more, "n").unwrap_err().to_string();
            assert!(!e.contains("checksum"), "{e}");
        }
    }
}
