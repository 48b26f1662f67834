//! Packs: a write holds back the chunks it makes whole and stores several in one object
//! (docs/FORMAT.md §5), so that an ingest writes far fewer objects, and a read of
//! neighbouring tiles asks for one range of one object where it asked for one object each.
//!
//! Chunks are held by the 16 x 16 block of tiles of a level that the index orders them by,
//! and a block's held chunks are written as one pack, in index order, once they reach
//! [`PACK_BYTES`] ([`REMOTE_PACK_BYTES`] on object storage) or when the write publishes. A
//! chunk that keeps frames in another, or copies ranges of one (a level update above a
//! small write), is written as an object of its own, as before packs.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::index::{Entry, TileKey};
use crate::storage::Storage;

/// A block's held chunks are written as a pack once they reach this many bytes, on
/// storage read without requests (a local disk): there a pack's size only matters to the
/// write, which holds the chunks back until then (docs/PERFORMANCE.md measures its peak
/// memory with these packs).
pub const PACK_BYTES: usize = 4 << 20;

/// The size of a pack on storage where every read is a request (object storage): a
/// row of a block's tiles of 512 x 512 Float32 samples, which a read of a wide window, a
/// level or the whole raster fetches in one request. Larger packs would need fewer
/// requests still, but a write holds a pack's chunks in memory until it is written.
pub const REMOTE_PACK_BYTES: usize = 8 << 20;

/// The most a write holds back in all: past it, the largest block's chunks are written as
/// a pack, however few, so that a write across many blocks at once (a wide raster copied
/// row by row of tiles) holds a bounded amount of memory.
pub const MAX_HELD_BYTES: usize = 16 << 20;

/// The pack number of a chunk held back, in the entry a write records for it until its
/// pack is written: never one of a stored entry (writing a pack numbered so is refused).
pub const HELD: u32 = u32::MAX;

/// The tiles whose chunks share packs: a level's 16 x 16 block of tiles in the order of
/// the index (time, pyramid, level, row >> 4, col >> 4).
type Group = (u32, u8, u8, i32, i32);

fn group_of(key: &TileKey) -> Group {
    (key.time, key.pyramid, key.level, key.row >> 4, key.col >> 4)
}

/// A chunk to store in a pack: its tile, its whole object, and the object's checksum.
pub struct Held {
    pub key: TileKey,
    pub bytes: Arc<[u8]>,
    pub crc: u32,
}

/// The chunks held back, by group, and their bytes in all.
#[derive(Default)]
struct HeldBack {
    groups: BTreeMap<Group, Waiting>,
    bytes: usize,
    /// The chunks handed back to be written as a pack, until their entries say where
    /// they are: a read of such a tile meanwhile takes them from here.
    writing: HashMap<TileKey, Arc<[u8]>>,
}

/// The chunks of one group held back, in index order, and their bytes.
#[derive(Default)]
struct Waiting {
    chunks: BTreeMap<TileKey, (Arc<[u8]>, u32)>,
    bytes: usize,
}

/// The chunks a write holds back, and the numbers of the packs it has written.
pub struct Packer {
    held: Mutex<HeldBack>,
    /// The last pack number handed out (packs are numbered from 1).
    last: AtomicU32,
    /// How many bytes of a block's chunks make a pack.
    pack_bytes: usize,
    /// The most bytes a pack may have: the most one object may be written with there.
    max_pack: Option<usize>,
}

impl Packer {
    /// A packer for a write to `storage`, whose packs are [`REMOTE_PACK_BYTES`] where
    /// each read is a request, [`PACK_BYTES`] elsewhere, and never more than an object may
    /// be there.
    pub fn for_storage(storage: &dyn Storage) -> Self {
        let pack_bytes = match storage.reads_by_request() {
            true => REMOTE_PACK_BYTES,
            false => PACK_BYTES,
        };
        Packer::with_pack_bytes(pack_bytes, storage.max_object_bytes())
    }

    /// A packer whose packs are `pack_bytes` bytes (or fewer, past [`MAX_HELD_BYTES`]),
    /// and at most `max_pack`.
    pub fn with_pack_bytes(pack_bytes: usize, max_pack: Option<usize>) -> Self {
        Packer {
            held: Mutex::default(),
            last: AtomicU32::new(0),
            pack_bytes,
            max_pack,
        }
    }

    /// Holds a chunk back (replacing one held for the same tile). Returns chunks to write
    /// as a pack now: its group's, when they reach its pack size, or the largest group's,
    /// when all held reach [`MAX_HELD_BYTES`]. Where a pack has a largest size, a group
    /// that this chunk would take past it is written first, without it.
    pub fn hold(&self, chunk: Held) -> Option<Vec<Held>> {
        let mut held = self.held.lock().expect("poisoned");
        let group = group_of(&chunk.key);
        held.remove(&chunk.key);
        let len = chunk.bytes.len();
        let before = held.groups.get(&group).map_or(0, |w| w.bytes);
        if self
            .max_pack
            .is_some_and(|max| before > 0 && before + len > max)
        {
            let full = held.take(&group);
            held.insert(chunk);
            return full;
        }
        held.insert(chunk);
        let take = match before + len >= self.pack_bytes {
            true => group,
            false if held.bytes >= MAX_HELD_BYTES => held.largest()?,
            false => return None,
        };
        held.take(&take)
    }

    /// Lets go of the chunk held for `key`, if any.
    pub fn forget(&self, key: &TileKey) {
        self.held.lock().expect("poisoned").remove(key);
    }

    /// The chunk held for `key`, or being written as part of a pack, if any.
    pub fn held(&self, key: &TileKey) -> Option<Arc<[u8]>> {
        let held = self.held.lock().expect("poisoned");
        let waiting = held
            .groups
            .get(&group_of(key))
            .and_then(|g| g.chunks.get(key));
        match waiting {
            Some((bytes, _)) => Some(bytes.clone()),
            None => held.writing.get(key).cloned(),
        }
    }

    /// Lets go of `chunks`, written as a pack and their entries recorded.
    pub fn written(&self, chunks: &[Held]) {
        let mut held = self.held.lock().expect("poisoned");
        for c in chunks {
            if held
                .writing
                .get(&c.key)
                .is_some_and(|b| Arc::ptr_eq(b, &c.bytes))
            {
                held.writing.remove(&c.key);
            }
        }
    }

    /// Every chunk still held, group by group, all in index order; none is held after.
    pub fn take_all(&self) -> Vec<Vec<Held>> {
        let mut held = self.held.lock().expect("poisoned");
        let groups: Vec<Group> = held.groups.keys().copied().collect();
        groups.iter().filter_map(|g| held.take(g)).collect()
    }

    /// The number of the next pack.
    pub fn next_number(&self) -> Result<u32> {
        let n = self.last.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if n == 0 || n == HELD {
            return Err(Error::InvalidInput(
                "a write made more packs than their numbers allow; write in smaller parts".into(),
            ));
        }
        Ok(n)
    }
}

impl HeldBack {
    /// Holds `chunk` in its group.
    fn insert(&mut self, chunk: Held) {
        let waiting = self.groups.entry(group_of(&chunk.key)).or_default();
        waiting.bytes += chunk.bytes.len();
        self.bytes += chunk.bytes.len();
        waiting.chunks.insert(chunk.key, (chunk.bytes, chunk.crc));
    }

    /// Lets go of the chunk held for `key`, if any.
    fn remove(&mut self, key: &TileKey) {
        let Some(waiting) = self.groups.get_mut(&group_of(key)) else {
            return;
        };
        if let Some((old, _)) = waiting.chunks.remove(key) {
            waiting.bytes -= old.len();
            self.bytes -= old.len();
        }
    }

    /// The group holding the most bytes.
    fn largest(&self) -> Option<Group> {
        self.groups
            .iter()
            .max_by_key(|(_, w)| w.bytes)
            .map(|(g, _)| *g)
    }

    /// The chunks of `group`, in index order, no longer held but being written.
    fn take(&mut self, group: &Group) -> Option<Vec<Held>> {
        let waiting = self.groups.remove(group)?;
        self.bytes -= waiting.bytes;
        let chunks = in_order(waiting);
        for c in &chunks {
            self.writing.insert(c.key, c.bytes.clone());
        }
        (!chunks.is_empty()).then_some(chunks)
    }
}

fn in_order(group: Waiting) -> Vec<Held> {
    group
        .chunks
        .into_iter()
        .map(|(key, (bytes, crc))| Held { key, bytes, crc })
        .collect()
}

/// The entries of `chunks` once written one after the other as pack `pack` of snapshot
/// `seq`.
pub fn entries(seq: u64, pack: u32, chunks: &[Held]) -> Vec<(TileKey, Entry)> {
    let mut offset = 0u64;
    chunks
        .iter()
        .map(|c| {
            let entry = Entry {
                seq,
                size: c.bytes.len() as u32,
                crc: c.crc,
                base: 0,
                pack,
                offset,
            };
            offset += c.bytes.len() as u64;
            (c.key, entry)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::TileLoc;

    fn chunk(col: i32, len: usize) -> Held {
        Held {
            key: TileKey::new(0, 0, TileLoc::new(0, col, 0)),
            bytes: vec![col as u8; len].into(),
            crc: col as u32,
        }
    }

    #[test]
    fn a_block_is_handed_back_in_index_order_once_it_is_full() {
        let p = Packer::with_pack_bytes(PACK_BYTES, None);
        assert!(p.hold(chunk(3, PACK_BYTES / 2)).is_none());
        // Another block is held apart.
        assert!(p.hold(chunk(16, PACK_BYTES - 1)).is_none());
        // A replacement counts once.
        assert!(p.hold(chunk(3, PACK_BYTES / 2)).is_none());
        let full = p.hold(chunk(1, PACK_BYTES / 2)).expect("the block is full");
        let cols: Vec<i32> = full.iter().map(|c| c.key.col).collect();
        assert_eq!(cols, [1, 3]);
        // Handed back, it is read from what is being written until that is written.
        let first = chunk(1, 0).key;
        assert_eq!(p.held(&first).map(|b| b.len()), Some(PACK_BYTES / 2));
        p.written(&full);
        assert!(p.held(&first).is_none(), "written, no longer held");
        p.forget(&chunk(16, 0).key);
        assert!(p.take_all().is_empty());
    }

    #[test]
    fn the_largest_block_is_handed_back_once_all_held_reach_the_bound() {
        let p = Packer::with_pack_bytes(PACK_BYTES, None);
        let blocks = MAX_HELD_BYTES / (PACK_BYTES / 2);
        // Half a pack in each of `blocks` blocks, the third one larger.
        for b in 0..blocks - 1 {
            let extra = if b == 2 { 1 } else { 0 };
            assert!(p
                .hold(chunk(16 * b as i32, PACK_BYTES / 2 + extra))
                .is_none());
        }
        let out = p
            .hold(chunk(16 * 99, PACK_BYTES / 2))
            .expect("over the bound");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key.col, 32, "the largest block");
        assert_eq!(p.take_all().len(), blocks - 1);
    }

    #[test]
    fn a_pack_never_outgrows_the_largest_object() {
        // Packs of 1,000 bytes at most (an object's bound), 800 wanted.
        let p = Packer::with_pack_bytes(800, Some(1000));
        let mut packs = Vec::new();
        for col in 0..10 {
            packs.extend(p.hold(chunk(col, 300)));
        }
        packs.extend(p.take_all());
        let sizes: Vec<usize> = packs
            .iter()
            .map(|c| c.iter().map(|h| h.bytes.len()).sum())
            .collect();
        // 900 then 900: the fourth chunk would have made 1,200.
        assert_eq!(sizes, [900, 900, 900, 300]);
        let cols: Vec<i32> = packs.iter().flatten().map(|c| c.key.col).collect();
        assert_eq!(cols, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn entries_lie_one_after_the_other() {
        let chunks = [chunk(0, 10), chunk(1, 5), chunk(2, 7)];
        let e = entries(9, 2, &chunks);
        let at: Vec<(u64, u32)> = e.iter().map(|(_, e)| (e.offset, e.size)).collect();
        assert_eq!(at, [(0, 10), (10, 5), (15, 7)]);
        assert!(e
            .iter()
            .all(|(_, e)| e.seq == 9 && e.pack == 2 && e.crc < 3));
    }

    #[test]
    fn pack_numbers_start_at_one() {
        let p = Packer::with_pack_bytes(PACK_BYTES, None);
        assert_eq!(p.next_number().unwrap(), 1);
        assert_eq!(p.next_number().unwrap(), 2);
    }
}
