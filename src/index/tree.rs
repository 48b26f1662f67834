//! Lookups in, and copy-on-write updates of, the tile index B+tree.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::node::Records;
use super::{Entry, Node, NodeRef, TileKey};
use crate::error::{Error, Result};
use crate::storage::Storage;

/// Most entries a leaf holds (30 KiB as version 3 records).
#[cfg(not(test))]
pub const LEAF_MAX: usize = 1024;
/// Most children an internal node holds. A first read in a fresh process pays for every
/// level it walks down, so internal nodes are wide: two levels index two million tiles.
#[cfg(not(test))]
pub const INTERNAL_MAX: usize = 2048;
/// Unit tests use small nodes, so that modest trees are several levels deep.
#[cfg(test)]
pub const LEAF_MAX: usize = 64;
#[cfg(test)]
pub const INTERNAL_MAX: usize = 8;

/// The longest index node object read: twice the ~2 MiB a version 1 node of the most
/// entries it may claim could take (nodes written now are at most about 52 KiB).
const MAX_NODE_LEN: usize = 4 << 20;

/// Reads index nodes, keeping recently used ones decoded in memory. Nodes are immutable, so
/// a cached node never goes stale.
pub struct IndexReader {
    storage: Arc<dyn Storage>,
    cache: Mutex<LruCache<NodeRef, Arc<Node>>>,
    /// Held while a node is fetched, so that threads missing the same node at once (the
    /// first parallel read of a fresh dataset: every thread starts at the root) fetch it
    /// once between them.
    fetching: Mutex<()>,
}

impl IndexReader {
    pub fn new(storage: Arc<dyn Storage>, cached_nodes: usize) -> Self {
        IndexReader {
            storage,
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(cached_nodes.max(1)).expect("max(1)"),
            )),
            fetching: Mutex::new(()),
        }
    }

    pub fn node(&self, r: NodeRef) -> Result<Arc<Node>> {
        if let Some(n) = self.cache.lock().expect("poisoned").get(&r) {
            return Ok(n.clone());
        }
        // The guard protects no data, so a panic elsewhere cannot leave anything half done.
        let _fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = self.cache.lock().expect("poisoned").get(&r) {
            return Ok(n.clone()); // fetched by another thread meanwhile
        }
        let key = r.object_key();
        let bytes = self
            .storage
            .read_at_most(&key, MAX_NODE_LEN)?
            .ok_or_else(|| {
                Error::corrupt(self.storage.location().join(&key), "index node is missing")
            })?;
        let node = Arc::new(Node::decode(bytes, &key)?);
        self.cache.lock().expect("poisoned").put(r, node.clone());
        Ok(node)
    }

    fn remember(&self, r: NodeRef, node: Node) {
        self.cache.lock().expect("poisoned").put(r, Arc::new(node));
    }

    /// The entry for `key` in the tree rooted at `root`.
    pub fn get(&self, root: Option<NodeRef>, key: &TileKey) -> Result<Option<Entry>> {
        let Some(mut at) = root else {
            return Ok(None);
        };
        loop {
            match step(&*self.node(at)?, key) {
                Step::Found(e) => return Ok(e),
                Step::Child(c) => at = c,
            }
        }
    }

    /// The entries for many keys at once, in the order given. Each node on the way is
    /// fetched once, by the calling thread. A read of many tiles resolves them this way
    /// before its threads start: in a fresh process every thread would otherwise miss the
    /// same few nodes at once and wait in turn for them.
    pub fn get_many(&self, root: Option<NodeRef>, keys: &[TileKey]) -> Result<Vec<Option<Entry>>> {
        let Some(root) = root else {
            return Ok(vec![None; keys.len()]);
        };
        // The nodes of one request are few (a root, an internal node, a leaf or two).
        let mut held: Vec<(NodeRef, Arc<Node>)> = Vec::new();
        keys.iter()
            .map(|key| {
                let mut at = root;
                loop {
                    let node = match held.iter().find(|(r, _)| *r == at) {
                        Some((_, n)) => n.clone(),
                        None => {
                            let n = self.node(at)?;
                            held.push((at, n.clone()));
                            n
                        }
                    };
                    match step(&node, key) {
                        Step::Found(e) => return Ok(e),
                        Step::Child(c) => at = c,
                    }
                }
            })
            .collect()
    }

    /// Calls `f` for every entry with `lo <= key < hi`, in key order.
    pub fn range(
        &self,
        root: Option<NodeRef>,
        lo: &TileKey,
        hi: &TileKey,
        f: &mut dyn FnMut(TileKey, Entry) -> Result<()>,
    ) -> Result<()> {
        match root {
            Some(r) => self.range_in(r, lo, hi, f),
            None => Ok(()),
        }
    }

    fn range_in(
        &self,
        at: NodeRef,
        lo: &TileKey,
        hi: &TileKey,
        f: &mut dyn FnMut(TileKey, Entry) -> Result<()>,
    ) -> Result<()> {
        let node = self.node(at)?;
        match &*node {
            Node::Leaf(entries) => {
                let start = entries.partition_point(|k| k < lo);
                for (k, e) in entries.iter().skip(start) {
                    if k >= *hi {
                        break;
                    }
                    f(k, e)?;
                }
            }
            Node::Internal(children) => {
                let first = child_for(children, lo);
                for (k, child) in children.iter().skip(first) {
                    if k >= *hi {
                        break;
                    }
                    self.range_in(child, lo, hi, f)?;
                }
            }
        }
        Ok(())
    }

    /// Calls `f` for every node reachable from `root` (for maintenance: gc, verify).
    pub fn visit_nodes(
        &self,
        root: Option<NodeRef>,
        f: &mut dyn FnMut(NodeRef, &Node) -> Result<()>,
    ) -> Result<()> {
        let Some(r) = root else { return Ok(()) };
        let node = self.node(r)?;
        f(r, &node)?;
        if let Node::Internal(children) = &*node {
            for (_, c) in children.iter() {
                self.visit_nodes(Some(c), f)?;
            }
        }
        Ok(())
    }
}

/// One step of a lookup: the entry of `key` if `node` is a leaf, else the child to go on to.
enum Step {
    Found(Option<Entry>),
    Child(NodeRef),
}

fn step(node: &Node, key: &TileKey) -> Step {
    match node {
        Node::Leaf(entries) => Step::Found(entries.search(key).ok().map(|i| entries.value(i))),
        Node::Internal(children) => Step::Child(children.value(child_for(children, key))),
    }
}

/// The child of an internal node that holds `key`.
fn child_for(children: &Records<NodeRef>, key: &TileKey) -> usize {
    children.partition_point(|k| k <= key).saturating_sub(1)
}

/// Writes the nodes of one commit as `index/<seq>/<n>`.
pub struct NodeWriter<'a> {
    storage: &'a dyn Storage,
    reader: &'a IndexReader,
    seq: u64,
    next_id: u32,
}

impl<'a> NodeWriter<'a> {
    pub fn new(storage: &'a dyn Storage, reader: &'a IndexReader, seq: u64) -> Self {
        NodeWriter {
            storage,
            reader,
            seq,
            next_id: 0,
        }
    }

    fn write(&mut self, node: Node) -> Result<(TileKey, NodeRef)> {
        let r = NodeRef {
            seq: self.seq,
            id: self.next_id,
        };
        self.next_id += 1;
        self.storage.write(&r.object_key(), node.bytes())?;
        let first = node.first_key().expect("nodes written are never empty");
        self.reader.remember(r, node);
        Ok((first, r))
    }

    /// How many nodes this writer wrote.
    pub fn written(&self) -> u32 {
        self.next_id
    }
}

/// Applies `changes` (sorted by key, each key once; `None` removes the key) to the tree at
/// `root`, writing new nodes for the changed paths only. Returns the new root.
pub fn apply_changes(
    reader: &IndexReader,
    root: Option<NodeRef>,
    changes: &[(TileKey, Option<Entry>)],
    writer: &mut NodeWriter,
) -> Result<Option<NodeRef>> {
    debug_assert!(changes.windows(2).all(|w| w[0].0 < w[1].0));
    if changes.is_empty() {
        return Ok(root);
    }
    let mut level = match root {
        Some(r) => apply_node(reader, r, changes, writer)?,
        None => write_leaves(
            changes
                .iter()
                .filter_map(|(k, e)| e.map(|e| (*k, e)))
                .collect(),
            writer,
        )?,
    };
    // Grow upwards until one node holds everything.
    while level.len() > 1 {
        level = write_internals(level, writer)?;
    }
    let Some(mut root) = level.first().map(|x| x.1) else {
        return Ok(None);
    };
    // Shrink from the top while the root has a single child.
    loop {
        match &*reader.node(root)? {
            Node::Internal(c) if c.len() == 1 => root = c.value(0),
            _ => return Ok(Some(root)),
        }
    }
}

/// Rewrites one subtree; returns what replaces it (none, one, or several nodes).
fn apply_node(
    reader: &IndexReader,
    at: NodeRef,
    changes: &[(TileKey, Option<Entry>)],
    writer: &mut NodeWriter,
) -> Result<Vec<(TileKey, NodeRef)>> {
    let node = reader.node(at)?;
    match &*node {
        Node::Leaf(entries) => {
            let entries: Vec<_> = entries.iter().collect();
            write_leaves(merge(&entries, changes), writer)
        }
        Node::Internal(children) => {
            let mut out = Vec::with_capacity(children.len() + 1);
            let mut rest = changes;
            for (i, (first, child)) in children.iter().enumerate() {
                // This child takes the changes below the next child's first key.
                let take = if i + 1 < children.len() {
                    let next = children.key(i + 1);
                    rest.partition_point(|(k, _)| *k < next)
                } else {
                    rest.len()
                };
                let (mine, later) = rest.split_at(take);
                rest = later;
                if mine.is_empty() {
                    out.push((first, child));
                } else {
                    out.extend(apply_node(reader, child, mine, writer)?);
                }
            }
            write_internals(out, writer)
        }
    }
}

/// Merges sorted `changes` into sorted `entries`.
fn merge(
    entries: &[(TileKey, Entry)],
    changes: &[(TileKey, Option<Entry>)],
) -> Vec<(TileKey, Entry)> {
    let mut out = Vec::with_capacity(entries.len() + changes.len());
    let (mut i, mut j) = (0, 0);
    while i < entries.len() || j < changes.len() {
        let take_change = match (entries.get(i), changes.get(j)) {
            (Some(e), Some(c)) => {
                if c.0 == e.0 {
                    i += 1; // the change replaces or removes this entry
                }
                c.0 <= e.0
            }
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) => unreachable!(),
        };
        if take_change {
            if let Some(e) = changes[j].1 {
                out.push((changes[j].0, e));
            }
            j += 1;
        } else {
            out.push(entries[i]);
            i += 1;
        }
    }
    out
}

/// Splits `items` into `n` nearly equal runs of at most `max` items.
fn even_runs<T>(items: Vec<T>, max: usize) -> Vec<Vec<T>> {
    let runs = items.len().div_ceil(max);
    let mut out = Vec::with_capacity(runs);
    let mut it = items.into_iter();
    let total = it.len();
    for r in 0..runs {
        let take = total * (r + 1) / runs - total * r / runs;
        out.push(it.by_ref().take(take).collect());
    }
    out
}

fn write_leaves(
    entries: Vec<(TileKey, Entry)>,
    writer: &mut NodeWriter,
) -> Result<Vec<(TileKey, NodeRef)>> {
    even_runs(entries, LEAF_MAX)
        .into_iter()
        .map(|run| writer.write(Node::leaf(run)))
        .collect()
}

fn write_internals(
    children: Vec<(TileKey, NodeRef)>,
    writer: &mut NodeWriter,
) -> Result<Vec<(TileKey, NodeRef)>> {
    even_runs(children, INTERNAL_MAX)
        .into_iter()
        .map(|run| writer.write(Node::internal(run)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalStorage;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn entry(seq: u64) -> Entry {
        Entry {
            seq,
            size: seq as u32 * 3,
            crc: seq as u32 ^ 0x5555,
            base: seq / 2,
        }
    }

    fn key(i: i32) -> TileKey {
        // Spread keys over levels, blocks and negative indices.
        let level = (i.rem_euclid(3)) as u8;
        TileKey::new(
            0,
            0,
            crate::grid::TileLoc::new(level, i % 97 - 40, i / 97 - 20),
        )
    }

    /// Checks the tree against a plain map: every lookup, and a full range scan in order.
    fn check(reader: &IndexReader, root: Option<NodeRef>, model: &BTreeMap<TileKey, Entry>) {
        for (k, e) in model {
            assert_eq!(reader.get(root, k).unwrap(), Some(*e));
        }
        // A batch lookup, keys out of order and some absent, agrees with the model.
        let asked: Vec<TileKey> = (-50..6050).rev().step_by(7).map(key).collect();
        let want: Vec<Option<Entry>> = asked.iter().map(|k| model.get(k).copied()).collect();
        assert_eq!(reader.get_many(root, &asked).unwrap(), want);
        let mut seen = Vec::new();
        let lo = TileKey {
            time: 0,
            pyramid: 0,
            level: 0,
            col: i32::MIN,
            row: i32::MIN,
        };
        let hi = TileKey {
            time: u32::MAX,
            ..lo
        };
        reader
            .range(root, &lo, &hi, &mut |k, e| {
                seen.push((k, e));
                Ok(())
            })
            .unwrap();
        let want: Vec<_> = model.iter().map(|(k, e)| (*k, *e)).collect();
        assert_eq!(seen, want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Random batches of inserts, replacements and removals, applied as successive
        /// commits, always agree with a BTreeMap; old roots stay readable (snapshots).
        #[test]
        fn tree_matches_a_btreemap(batches in prop::collection::vec(
            prop::collection::vec((0i32..6000, any::<bool>()), 1..2500), 1..5)) {
            let dir = tempfile::tempdir().unwrap();
            let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
            let reader = IndexReader::new(storage.clone(), 4);
            let mut model = BTreeMap::new();
            let mut root = None;
            let mut history = Vec::new();
            for (seq, batch) in batches.iter().enumerate() {
                let mut changes: BTreeMap<TileKey, Option<Entry>> = BTreeMap::new();
                for (i, insert) in batch {
                    changes.insert(key(*i), insert.then(|| entry(seq as u64 * 10_000 + *i as u64)));
                }
                for (k, e) in &changes {
                    match e { Some(e) => { model.insert(*k, *e); } None => { model.remove(k); } }
                }
                let changes: Vec<_> = changes.into_iter().collect();
                let mut w = NodeWriter::new(&*storage, &reader, seq as u64 + 1);
                root = apply_changes(&reader, root, &changes, &mut w).unwrap();
                check(&reader, root, &model);
                history.push((root, model.clone()));
            }
            // Every earlier snapshot still reads as it was, through a cold cache.
            let cold = IndexReader::new(storage.clone(), 2);
            for (r, m) in &history {
                check(&cold, *r, m);
            }
        }
    }

    #[test]
    fn a_small_change_rewrites_only_one_path() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let reader = IndexReader::new(storage.clone(), 64);
        let all: Vec<_> = (0..200_000)
            .map(|i| (TileKey::base(i % 500, i / 500), Some(entry(1))))
            .collect();
        let mut sorted = all.clone();
        sorted.sort_by_key(|a| a.0);
        let mut w = NodeWriter::new(&*storage, &reader, 1);
        let root = apply_changes(&reader, None, &sorted, &mut w).unwrap();
        // Full nodes, level by level, up to a single root.
        let (mut level, mut nodes, mut depth) = (all.len().div_ceil(LEAF_MAX), 0, 0);
        loop {
            nodes += level;
            depth += 1;
            if level == 1 {
                break;
            }
            level = level.div_ceil(INTERNAL_MAX);
        }
        assert!(depth >= 3, "the test wants a tree with internal levels");
        assert_eq!(w.written() as usize, nodes);
        let mut w = NodeWriter::new(&*storage, &reader, 2);
        let change = [(TileKey::base(7, 7), Some(entry(2)))];
        let root2 = apply_changes(&reader, root, &change, &mut w).unwrap();
        assert_eq!(
            w.written() as usize,
            depth,
            "one node per level: the path to the tile"
        );
        assert_eq!(
            reader.get(root2, &TileKey::base(7, 7)).unwrap(),
            Some(entry(2))
        );
        assert_eq!(
            reader.get(root, &TileKey::base(7, 7)).unwrap(),
            Some(entry(1))
        );
    }

    #[test]
    fn removing_everything_leaves_an_empty_tree() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let reader = IndexReader::new(storage.clone(), 64);
        let keys: Vec<_> = (0..3000)
            .map(key)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let add: Vec<_> = keys.iter().map(|k| (*k, Some(entry(1)))).collect();
        let mut w = NodeWriter::new(&*storage, &reader, 1);
        let root = apply_changes(&reader, None, &add, &mut w).unwrap();
        let del: Vec<_> = keys.iter().map(|k| (*k, None)).collect();
        let mut w = NodeWriter::new(&*storage, &reader, 2);
        assert_eq!(apply_changes(&reader, root, &del, &mut w).unwrap(), None);
    }
}
