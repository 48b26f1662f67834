//! Lookups in, and copy-on-write updates of, the tile index B+tree.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::node::{damaged, Records};
use super::{Entry, Node, NodeRef, TileKey};
use crate::error::{Error, Result};
use crate::manifest::{IndexSpec, Manifest};
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

/// The most nodes a path from an index's root to a leaf can hold. A tree grows a level only
/// when nodes overflow and split, and a node splits only once more than its maximum of
/// children were made below it (each by a split of its own), so a tree of depth `d` took
/// roughly `(INTERNAL_MAX / 2)^(d - 2) * LEAF_MAX / 2` tile writes to build; removals never
/// make it deeper. Even with the 8-child nodes of the unit tests, 64 levels would take more
/// than 2^64 tile writes, while a store of a billion tiles is three or four levels deep.
/// The bound keeps a crafted chain of nodes from costing more than this many reads, and a
/// walk's recursion within a small stack.
pub const MAX_DEPTH: usize = 64;

/// A tile index as a snapshot's manifest names it: its root node (none when the snapshot
/// holds no tiles) and the snapshot's id, which no node or chunk of the tree can be newer
/// than.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tree {
    pub root: Option<NodeRef>,
    pub snapshot: u64,
}

impl Tree {
    /// The index of the snapshot `m` describes.
    pub fn of(m: &Manifest) -> Tree {
        Tree {
            root: m.index.root,
            snapshot: m.snapshot.id,
        }
    }
}

/// Where a walk stands in a tree: what the node it steps to must satisfy to belong there.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// The snapshot whose tree this is.
    snapshot: u64,
    /// The node above, which the node here must be older than in (seq, id) order: a writer
    /// writes children before their parents, and shares only nodes of earlier snapshots, so
    /// every step of a valid walk goes to an older node and no walk can go round in a
    /// cycle. `None` at the root, which must be no newer than the snapshot.
    parent: Option<NodeRef>,
    /// The keys the node may hold: from `lo` up to, not including, `hi` (no bound if none).
    lo: Option<TileKey>,
    hi: Option<TileKey>,
    /// How many nodes are above this one.
    depth: usize,
}

impl Place {
    fn root(snapshot: u64) -> Place {
        Place {
            snapshot,
            parent: None,
            lo: None,
            hi: None,
            depth: 0,
        }
    }

    /// The place of child `i` of the internal node `at` standing here: from its key in
    /// `at` to the next child's key.
    fn child(&self, at: NodeRef, children: &Records<NodeRef>, i: usize) -> Place {
        Place {
            snapshot: self.snapshot,
            parent: Some(at),
            lo: Some(children.key(i)),
            hi: if i + 1 < children.len() {
                Some(children.key(i + 1))
            } else {
                self.hi
            },
            depth: self.depth + 1,
        }
    }
}

/// The longest index node object read: twice the ~2 MiB a version 1 node of the most
/// entries it may claim could take (nodes written now are at most about 52 KiB).
const MAX_NODE_LEN: usize = 4 << 20;

/// The largest root node a manifest carries a copy of: a root of up to some 600 leaf
/// entries (or 2,500 children), whose copy adds a third more to the manifest in base64.
pub const MAX_ROOT_COPY: usize = 32 << 10;

/// A root node's bytes as a manifest carries them.
pub fn encode_root_copy(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The bytes of a root node's copy; `None` when it is not base64 or longer than
/// [`MAX_ROOT_COPY`].
pub fn decode_root_copy(copy: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    if copy.len() > MAX_ROOT_COPY.div_ceil(3) * 4 {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(copy).ok()
}

/// Reads index nodes, keeping recently used ones decoded in memory. Nodes are immutable, so
/// a cached node never goes stale.
///
/// Every walk steps from node to node through [`IndexReader::descend`], which checks that
/// the node may stand where the walk found it: so no damaged or crafted tree can make a
/// walk loop, recurse without bound or find keys out of place.
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

    /// The storage the nodes are read from.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Where node `r` is, as messages name it.
    fn path(&self, r: NodeRef) -> PathBuf {
        self.storage.location().join(r.object_key())
    }

    /// Node `r`, from the cache or storage, checked on its own (see [`Node::decode`] and
    /// [`Node::check_written_by`]) but not yet for its place in a tree.
    fn node(&self, r: NodeRef) -> Result<Arc<Node>> {
        if let Some(n) = self.cache.lock().expect("poisoned").get(&r) {
            return Ok(n.clone());
        }
        // The guard protects no data, so a panic elsewhere cannot leave anything half done.
        let _fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = self.cache.lock().expect("poisoned").get(&r) {
            return Ok(n.clone()); // fetched by another thread meanwhile
        }
        let path = self.path(r);
        let bytes = self
            .storage
            .read_at_most(&r.object_key(), MAX_NODE_LEN)?
            .ok_or_else(|| Error::corrupt(&path, "index node is missing"))?;
        let name = path.to_string_lossy();
        let node = Node::decode(bytes, &name)?;
        node.check_written_by(r, &name)?;
        let node = Arc::new(node);
        self.cache.lock().expect("poisoned").put(r, node.clone());
        Ok(node)
    }

    /// The bytes of node `r` (from the cache, where a write left the nodes it wrote).
    pub fn node_bytes(&self, r: NodeRef) -> Result<Vec<u8>> {
        Ok(self.node(r)?.bytes().to_vec())
    }

    /// Takes the copy of the root node a manifest carries (`index.root_copy`) as node
    /// `index.root`, checked as a node read from its object is, so that a walk does not
    /// fetch it. `manifest` names the manifest, for messages.
    pub fn take_root_copy(&self, index: &IndexSpec, manifest: &Path) -> Result<()> {
        let Some(copy) = &index.root_copy else {
            return Ok(());
        };
        let damaged = |why: String| {
            Error::corrupt(
                manifest,
                format!("the copy of the index root it holds {why}"),
            )
        };
        let Some(root) = index.root else {
            return Err(damaged("belongs to no root: the index is empty".into()));
        };
        let bytes = decode_root_copy(copy).ok_or_else(|| damaged("is not base64".into()))?;
        let name = format!("{} (copy of {})", manifest.display(), root.object_key());
        let node = Node::decode(bytes, &name)?;
        node.check_written_by(root, &name)?;
        self.remember(root, node);
        Ok(())
    }

    /// Checks that the copy of the root node a manifest carries, if any, holds the bytes of
    /// the root node's object: readers take the copy, so gc must not mark from the object
    /// what they do not see, nor the other way round.
    pub fn check_root_copy(&self, index: &IndexSpec, manifest: &Path) -> Result<()> {
        let (Some(copy), Some(root)) = (&index.root_copy, index.root) else {
            return Ok(());
        };
        let key = root.object_key();
        let object = self.storage.read_at_most(&key, MAX_NODE_LEN)?;
        if object.is_some() && object == decode_root_copy(copy) {
            return Ok(());
        }
        Err(Error::corrupt(
            manifest,
            format!(
                "the copy of the index root it holds is not what {key} holds, so readers and \
                 gc would see different indexes; restore the manifest from a backup or \
                 `gridstore rollback` to an earlier snapshot"
            ),
        ))
    }

    fn remember(&self, r: NodeRef, node: Node) {
        self.cache.lock().expect("poisoned").put(r, Arc::new(node));
    }

    /// Node `at`, which a walk reached at `place`, once checked to belong there.
    fn descend(&self, at: NodeRef, place: &Place) -> Result<Arc<Node>> {
        self.descend_via(at, place, |r| self.node(r))
    }

    /// [`Self::descend`], with the node taken from `fetch`.
    fn descend_via(
        &self,
        at: NodeRef,
        place: &Place,
        fetch: impl FnOnce(NodeRef) -> Result<Arc<Node>>,
    ) -> Result<Arc<Node>> {
        self.check_place(at, place)?;
        let node = fetch(at)?;
        self.check_keys(at, &node, place)?;
        Ok(node)
    }

    /// What can be checked of node `at` at `place` without reading it: not too deep, and
    /// older than its parent (or, for a root, no newer than its snapshot).
    fn check_place(&self, at: NodeRef, place: &Place) -> Result<()> {
        if place.depth >= MAX_DEPTH {
            return Err(damaged(
                self.path(at),
                format!(
                    "it lies {} nodes below the root of snapshot {}'s index, deeper than any \
                     index grows",
                    place.depth, place.snapshot
                ),
            ));
        }
        match place.parent {
            None if at.seq > place.snapshot => Err(damaged(
                self.path(at),
                format!(
                    "it is the root of snapshot {}'s index but was written by a later \
                     snapshot",
                    place.snapshot
                ),
            )),
            Some(p) if (at.seq, at.id) >= (p.seq, p.id) => Err(damaged(
                self.path(at),
                format!(
                    "it is a child of {}, which is not newer than it; a node only ever \
                     points to older ones, so the index loops back on itself or was \
                     rearranged",
                    p.object_key()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks that node `at` holds only keys of the range `place` gives it, so that
    /// subtrees never overlap or come out of order.
    fn check_keys(&self, at: NodeRef, node: &Node, place: &Place) -> Result<()> {
        let (Some(first), Some(last)) = (node.first_key(), node.last_key()) else {
            return Err(damaged(self.path(at), "the node holds no entries"));
        };
        let below = place.lo.is_some_and(|lo| first < lo);
        let above = place.hi.is_some_and(|hi| last >= hi);
        if below || above {
            let parent = place.parent.map_or(String::new(), |p| p.object_key());
            return Err(damaged(
                self.path(at),
                format!(
                    "its keys run from {} to {}, outside the range {parent} gives it: \
                     subtrees overlap or are out of order",
                    first.describe(),
                    last.describe()
                ),
            ));
        }
        Ok(())
    }

    /// The entry for `key` in `tree`.
    pub fn get(&self, tree: Tree, key: &TileKey) -> Result<Option<Entry>> {
        let Some(mut at) = tree.root else {
            return Ok(None);
        };
        let mut place = Place::root(tree.snapshot);
        loop {
            match step(&*self.descend(at, &place)?, at, &place, key) {
                Step::Found(e) => return Ok(e),
                Step::Child(c, p) => (at, place) = (c, p),
            }
        }
    }

    /// The entries for many keys at once, in the order given. Each node on the way is
    /// fetched once, by the calling thread. A read of many tiles resolves them this way
    /// before its threads start: in a fresh process every thread would otherwise miss the
    /// same few nodes at once and wait in turn for them.
    pub fn get_many(&self, tree: Tree, keys: &[TileKey]) -> Result<Vec<Option<Entry>>> {
        let Some(root) = tree.root else {
            return Ok(vec![None; keys.len()]);
        };
        // The nodes of one request are few (a root, an internal node, a leaf or two).
        let mut held: Vec<(NodeRef, Arc<Node>)> = Vec::new();
        keys.iter()
            .map(|key| {
                let (mut at, mut place) = (root, Place::root(tree.snapshot));
                loop {
                    let node = self.descend_via(at, &place, |r| {
                        if let Some((_, n)) = held.iter().find(|(h, _)| *h == r) {
                            return Ok(n.clone());
                        }
                        let n = self.node(r)?;
                        held.push((r, n.clone()));
                        Ok(n)
                    })?;
                    match step(&node, at, &place, key) {
                        Step::Found(e) => return Ok(e),
                        Step::Child(c, p) => (at, place) = (c, p),
                    }
                }
            })
            .collect()
    }

    /// Calls `f` for every entry with `lo <= key < hi`, in key order, until it returns
    /// false: the walk then stops, reading no further node.
    pub fn range(
        &self,
        tree: Tree,
        lo: &TileKey,
        hi: &TileKey,
        f: &mut dyn FnMut(TileKey, Entry) -> Result<bool>,
    ) -> Result<()> {
        match tree.root {
            Some(r) => self
                .range_in(r, &Place::root(tree.snapshot), lo, hi, f)
                .map(|_| ()),
            None => Ok(()),
        }
    }

    fn range_in(
        &self,
        at: NodeRef,
        place: &Place,
        lo: &TileKey,
        hi: &TileKey,
        f: &mut dyn FnMut(TileKey, Entry) -> Result<bool>,
    ) -> Result<bool> {
        let node = self.descend(at, place)?;
        match &*node {
            Node::Leaf(entries) => {
                let start = entries.partition_point(|k| k < lo);
                for (k, e) in entries.iter().skip(start) {
                    if k >= *hi || !f(k, e)? {
                        return Ok(false);
                    }
                }
            }
            Node::Internal(children) => {
                let first = child_for(children, lo);
                for (i, (k, child)) in children.iter().enumerate().skip(first) {
                    if k >= *hi
                        || !self.range_in(child, &place.child(at, children, i), lo, hi, f)?
                    {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    /// Calls `f` for every node of `tree`, each parent before its children (for
    /// maintenance: verify, rollback). Returns how many entries its leaves hold.
    pub fn visit_nodes(
        &self,
        tree: Tree,
        f: &mut dyn FnMut(NodeRef, &Node) -> Result<()>,
    ) -> Result<u64> {
        match tree.root {
            Some(r) => self.visit(r, &Place::root(tree.snapshot), None, f),
            None => Ok(0),
        }
    }

    /// [`Self::visit_nodes`] for one of several trees that share nodes (the snapshots `gc`
    /// keeps): a node in `seen`, walked with an earlier tree, is not walked again, and
    /// counts the entries `seen` says are below it. Its place in this tree is still
    /// checked as far as can be without reading it, so the walk ends all the same.
    pub fn visit_new_nodes(
        &self,
        tree: Tree,
        seen: &mut HashMap<NodeRef, u64>,
        f: &mut dyn FnMut(NodeRef, &Node) -> Result<()>,
    ) -> Result<u64> {
        match tree.root {
            Some(r) => self.visit(r, &Place::root(tree.snapshot), Some(seen), f),
            None => Ok(0),
        }
    }

    fn visit(
        &self,
        at: NodeRef,
        place: &Place,
        mut seen: Option<&mut HashMap<NodeRef, u64>>,
        f: &mut dyn FnMut(NodeRef, &Node) -> Result<()>,
    ) -> Result<u64> {
        if let Some(&below) = seen.as_deref().and_then(|s| s.get(&at)) {
            self.check_place(at, place)?;
            return Ok(below);
        }
        let node = self.descend(at, place)?;
        f(at, &node)?;
        let below = match &*node {
            Node::Leaf(entries) => entries.len() as u64,
            Node::Internal(children) => {
                let mut below = 0u64;
                for (i, (_, child)) in children.iter().enumerate() {
                    let place = place.child(at, children, i);
                    let n = self.visit(child, &place, seen.as_deref_mut(), f)?;
                    // Saturates rather than wraps: a count this large is wrong anyway, and
                    // the caller compares it with the manifest's.
                    below = below.saturating_add(n);
                }
                below
            }
        };
        if let Some(seen) = seen {
            seen.insert(at, below);
        }
        Ok(below)
    }
}

/// One step of a lookup: the entry of `key` if `node` is a leaf, else the child to go on
/// to and its place.
enum Step {
    Found(Option<Entry>),
    Child(NodeRef, Place),
}

/// The step from `node`, which stands at `at` and `place`, towards `key`.
fn step(node: &Node, at: NodeRef, place: &Place, key: &TileKey) -> Step {
    match node {
        Node::Leaf(entries) => Step::Found(entries.search(key).ok().map(|i| entries.value(i))),
        Node::Internal(children) => {
            let i = child_for(children, key);
            Step::Child(children.value(i), place.child(at, children, i))
        }
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
        // Ids name objects, so they never wrap (a commit would need four billion nodes).
        self.next_id = self.next_id.checked_add(1).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: this write needs more index nodes than one snapshot can name ({}); \
                 write the data in several smaller writes",
                self.storage.location().display(),
                u32::MAX
            ))
        })?;
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

/// Applies `changes` (sorted by key, each key once; `None` removes the key) to `tree`,
/// writing new nodes for the changed paths only. Returns the new root.
pub fn apply_changes(
    reader: &IndexReader,
    tree: Tree,
    changes: &[(TileKey, Option<Entry>)],
    writer: &mut NodeWriter,
) -> Result<Option<NodeRef>> {
    debug_assert!(changes.windows(2).all(|w| w[0].0 < w[1].0));
    if changes.is_empty() {
        return Ok(tree.root);
    }
    let mut level = match tree.root {
        Some(r) => apply_node(reader, r, &Place::root(tree.snapshot), changes, writer)?,
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
    let mut place = Place::root(writer.seq);
    loop {
        match &*reader.descend(root, &place)? {
            Node::Internal(c) if c.len() == 1 => {
                place = place.child(root, c, 0);
                root = c.value(0);
            }
            _ => return Ok(Some(root)),
        }
    }
}

/// Rewrites the subtree of node `at`, found at `place`; returns what replaces it (none,
/// one, or several nodes).
fn apply_node(
    reader: &IndexReader,
    at: NodeRef,
    place: &Place,
    changes: &[(TileKey, Option<Entry>)],
    writer: &mut NodeWriter,
) -> Result<Vec<(TileKey, NodeRef)>> {
    let node = reader.descend(at, place)?;
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
                    let place = place.child(at, children, i);
                    out.extend(apply_node(reader, child, &place, mine, writer)?);
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

    #[test]
    fn a_root_copy_round_trips_and_a_long_one_is_refused() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_root_copy(&encode_root_copy(&bytes)), Some(bytes));
        let largest = vec![7u8; MAX_ROOT_COPY];
        assert!(decode_root_copy(&encode_root_copy(&largest)).is_some());
        let longer = vec![7u8; MAX_ROOT_COPY + 3];
        assert_eq!(decode_root_copy(&encode_root_copy(&longer)), None);
        assert_eq!(decode_root_copy("not base64!"), None);
    }

    /// An entry of a chunk written by snapshot `seq` (at least 1), told apart by `n`.
    fn entry(seq: u64, n: u32) -> Entry {
        Entry {
            seq,
            size: n * 3 + 1,
            crc: n ^ 0x5555,
            base: seq / 2,
            ..Entry::default()
        }
    }

    /// The tree of snapshot `snapshot`, rooted at `root`.
    fn tree(root: Option<NodeRef>, snapshot: u64) -> Tree {
        Tree { root, snapshot }
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
    fn check(reader: &IndexReader, root: Tree, model: &BTreeMap<TileKey, Entry>) {
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
                Ok(true)
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
            let mut root = tree(None, 0);
            let mut history = Vec::new();
            for (seq, batch) in (1u64..).zip(&batches) {
                let mut changes: BTreeMap<TileKey, Option<Entry>> = BTreeMap::new();
                for (i, insert) in batch {
                    changes.insert(key(*i), insert.then(|| entry(seq, *i as u32)));
                }
                for (k, e) in &changes {
                    match e { Some(e) => { model.insert(*k, *e); } None => { model.remove(k); } }
                }
                let changes: Vec<_> = changes.into_iter().collect();
                let mut w = NodeWriter::new(&*storage, &reader, seq);
                root = tree(apply_changes(&reader, root, &changes, &mut w).unwrap(), seq);
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
            .map(|i| (TileKey::base(i % 500, i / 500), Some(entry(1, i as u32))))
            .collect();
        let mut sorted = all.clone();
        sorted.sort_by_key(|a| a.0);
        let mut w = NodeWriter::new(&*storage, &reader, 1);
        let root = tree(
            apply_changes(&reader, tree(None, 0), &sorted, &mut w).unwrap(),
            1,
        );
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
        let change = [(TileKey::base(7, 7), Some(entry(2, 0)))];
        let root2 = tree(apply_changes(&reader, root, &change, &mut w).unwrap(), 2);
        assert_eq!(
            w.written() as usize,
            depth,
            "one node per level: the path to the tile"
        );
        assert_eq!(
            reader.get(root2, &TileKey::base(7, 7)).unwrap(),
            Some(entry(2, 0))
        );
        assert_eq!(
            reader.get(root, &TileKey::base(7, 7)).unwrap(),
            Some(entry(1, 7 * 500 + 7))
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
        let add: Vec<_> = keys.iter().map(|k| (*k, Some(entry(1, 0)))).collect();
        let mut w = NodeWriter::new(&*storage, &reader, 1);
        let root = tree(
            apply_changes(&reader, tree(None, 0), &add, &mut w).unwrap(),
            1,
        );
        let del: Vec<_> = keys.iter().map(|k| (*k, None)).collect();
        let mut w = NodeWriter::new(&*storage, &reader, 2);
        assert_eq!(apply_changes(&reader, root, &del, &mut w).unwrap(), None);
    }
}

/// Trees crafted as an attacker would: every node carries a valid checksum, so what stops
/// each walk is the walk's own checks.
#[cfg(test)]
mod damaged {
    use super::*;
    use crate::storage::LocalStorage;

    fn k(i: i32) -> TileKey {
        TileKey::base(i, 0)
    }

    fn at(seq: u64, id: u32) -> NodeRef {
        NodeRef { seq, id }
    }

    fn entry(seq: u64) -> Entry {
        Entry {
            seq,
            size: 10,
            crc: 1,
            base: 0,
            ..Entry::default()
        }
    }

    struct Store {
        _dir: tempfile::TempDir,
        storage: Arc<dyn Storage>,
    }

    impl Store {
        fn new() -> Store {
            let dir = tempfile::tempdir().unwrap();
            let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
            Store { _dir: dir, storage }
        }

        fn put(&self, r: NodeRef, node: Node) -> &Self {
            // Crafted over whatever stood there (objects are otherwise never rewritten).
            self.storage.delete(&r.object_key()).unwrap();
            self.storage.write(&r.object_key(), node.bytes()).unwrap();
            self
        }

        /// A leaf of snapshot `r.seq` holding `keys`.
        fn leaf(&self, r: NodeRef, keys: &[i32]) -> &Self {
            self.put(
                r,
                Node::leaf(keys.iter().map(|&i| (k(i), entry(r.seq))).collect()),
            )
        }

        fn internal(&self, r: NodeRef, children: &[(i32, NodeRef)]) -> &Self {
            self.put(
                r,
                Node::internal(children.iter().map(|&(i, c)| (k(i), c)).collect()),
            )
        }

        /// Every walk of `tree` that goes by tile `through` fails with a damaged index
        /// naming node `named`, whatever cache the reader starts with.
        fn every_walk_fails(&self, tree: Tree, through: i32, named: NodeRef) {
            let check = |what: &str, r: Result<()>| {
                let e = r.expect_err(what);
                let said = e.to_string();
                assert!(
                    matches!(e, Error::Corrupt { .. })
                        && said.contains("damaged index")
                        && said.contains(&named.object_key()),
                    "{what}: {said}"
                );
            };
            let reader = || IndexReader::new(self.storage.clone(), 16);
            check("get", reader().get(tree, &k(through)).map(drop));
            check("get_many", reader().get_many(tree, &[k(through)]).map(drop));
            let (lo, hi) = (k(i32::MIN), k(i32::MAX));
            check(
                "range",
                reader().range(tree, &lo, &hi, &mut |_, _| Ok(true)),
            );
            check(
                "visit",
                reader().visit_nodes(tree, &mut |_, _| Ok(())).map(drop),
            );
            let mut seen = HashMap::new();
            let visit = reader().visit_new_nodes(tree, &mut seen, &mut |_, _| Ok(()));
            check("visit_new_nodes", visit.map(drop));
            let r = reader();
            let mut w = NodeWriter::new(&*self.storage, &r, tree.snapshot + 1);
            let change = [(k(through), Some(entry(tree.snapshot + 1)))];
            check("apply", apply_changes(&r, tree, &change, &mut w).map(drop));
        }
    }

    fn tree(root: NodeRef, snapshot: u64) -> Tree {
        Tree {
            root: Some(root),
            snapshot,
        }
    }

    #[test]
    fn a_node_that_points_to_itself() {
        let s = Store::new();
        s.internal(at(2, 0), &[(0, at(2, 0))]);
        s.every_walk_fails(tree(at(2, 0), 2), 0, at(2, 0));
    }

    #[test]
    fn a_child_that_points_back_to_an_ancestor() {
        let s = Store::new();
        s.leaf(at(1, 0), &[5, 6])
            .internal(at(3, 0), &[(0, at(3, 1))])
            .internal(at(3, 1), &[(0, at(3, 0)), (5, at(1, 0))]);
        s.every_walk_fails(tree(at(3, 1), 3), 0, at(3, 1));
        // The sound part of the tree still reads.
        let reader = IndexReader::new(s.storage.clone(), 16);
        let found = reader.get(tree(at(3, 1), 3), &k(6)).unwrap();
        assert_eq!(found, Some(entry(1)));
    }

    #[test]
    fn a_node_that_holds_nothing() {
        let s = Store::new();
        s.put(at(2, 0), Node::internal(Vec::new()));
        s.every_walk_fails(tree(at(2, 0), 2), 0, at(2, 0));
        s.put(at(2, 1), Node::leaf(Vec::new()));
        s.every_walk_fails(tree(at(2, 1), 2), 0, at(2, 1));
    }

    #[test]
    fn keys_out_of_order_within_a_node() {
        let s = Store::new();
        s.leaf(at(1, 0), &[3, 9, 5]);
        s.every_walk_fails(tree(at(1, 0), 1), 3, at(1, 0));
        s.leaf(at(1, 1), &[0, 1])
            .leaf(at(1, 2), &[4])
            .internal(at(1, 3), &[(4, at(1, 2)), (0, at(1, 1))]);
        s.every_walk_fails(tree(at(1, 3), 1), 0, at(1, 3));
        s.leaf(at(1, 4), &[2, 2]);
        s.every_walk_fails(tree(at(1, 4), 1), 2, at(1, 4));
    }

    #[test]
    fn children_that_overlap_or_stray_from_their_range() {
        let s = Store::new();
        // The first child holds 7, which its parent gives to the second.
        s.leaf(at(1, 0), &[0, 7])
            .leaf(at(1, 1), &[5, 6])
            .internal(at(1, 2), &[(0, at(1, 0)), (5, at(1, 1))]);
        s.every_walk_fails(tree(at(1, 2), 1), 0, at(1, 0));
        // A child whose keys start below its key in the parent.
        s.leaf(at(1, 3), &[1, 2])
            .leaf(at(1, 4), &[0])
            .internal(at(1, 5), &[(0, at(1, 4)), (2, at(1, 3))]);
        s.every_walk_fails(tree(at(1, 5), 1), 2, at(1, 3));
    }

    /// A chain of single-child nodes `depth` nodes deep above one leaf; returns its root.
    fn chain(s: &Store, depth: u32) -> NodeRef {
        s.leaf(at(1, 0), &[0]);
        for id in 1..=depth {
            s.internal(at(1, id), &[(0, at(1, id - 1))]);
        }
        at(1, depth)
    }

    #[test]
    fn a_chain_deeper_than_any_index() {
        let s = Store::new();
        // The deepest tree allowed still reads...
        let root = chain(&s, MAX_DEPTH as u32 - 1);
        let reader = IndexReader::new(s.storage.clone(), 16);
        assert_eq!(reader.get(tree(root, 1), &k(0)).unwrap(), Some(entry(1)));
        // ...one level more is damage, named where the walk gave up.
        let root = chain(&s, MAX_DEPTH as u32);
        s.every_walk_fails(tree(root, 1), 0, at(1, 0));
    }

    #[test]
    fn nodes_and_chunks_newer_than_their_snapshot() {
        let s = Store::new();
        // A root written after the snapshot that names it.
        s.leaf(at(5, 0), &[0]);
        s.every_walk_fails(tree(at(5, 0), 2), 0, at(5, 0));
        // A leaf naming a chunk written after the leaf itself.
        s.put(at(2, 0), Node::leaf(vec![(k(0), entry(5))]));
        s.every_walk_fails(tree(at(2, 0), 2), 0, at(2, 0));
        // A chunk keeping frames in a chunk that is not older, and an empty chunk.
        let base = Entry {
            base: 2,
            ..entry(2)
        };
        s.put(at(2, 1), Node::leaf(vec![(k(0), base)]));
        s.every_walk_fails(tree(at(2, 1), 2), 0, at(2, 1));
        let empty = Entry {
            size: 0,
            ..entry(2)
        };
        s.put(at(2, 2), Node::leaf(vec![(k(0), empty)]));
        s.every_walk_fails(tree(at(2, 2), 2), 0, at(2, 2));
    }

    #[test]
    fn a_commit_cannot_name_more_nodes_than_ids_allow() {
        let s = Store::new();
        let reader = IndexReader::new(s.storage.clone(), 16);
        let mut w = NodeWriter::new(&*s.storage, &reader, 1);
        w.next_id = u32::MAX;
        let change = [(k(0), Some(entry(1)))];
        let e = apply_changes(
            &reader,
            Tree {
                root: None,
                snapshot: 0,
            },
            &change,
            &mut w,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("more index nodes than one snapshot can name"),
            "{e}"
        );
    }
}
