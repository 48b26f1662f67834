//! Keeping aggregation levels up to date: after a write, exactly the ancestors of the tiles
//! it touched are recomputed, level by level, in parallel.
//!
//! The writer tells the builder up front which level-0 tiles it will produce, then hands
//! over each one as soon as it is made ([`PyramidBuilder::offer`]). The builder keeps, for
//! every parent to recompute, the downsampled quarters received so far; once a parent has
//! all the quarters it is waiting for, it is ready. Quarters of children the write did not
//! touch come from the committed state. Because children are reduced to quarters at once
//! and parents are built as soon as they are complete, memory holds about one row of tiles
//! per level, whatever the size of the write.
//!
//! A parent that the committed state already holds is updated in place, and only in the
//! area its changed children cover: it decodes just the chunk blocks of that area that the
//! hand-overs do not fill, and re-encodes just the blocks of the area (the new chunk keeps
//! the others where they are). It then hands its own parent only that area, reduced. A
//! change under one child is a quadrant of its parent, a sixteenth of the grandparent, and
//! so on: a small write costs a few blocks per level, not a whole tile per level.
//!
//! The result is the same, bit for bit, as building every level from scratch: a tile
//! depends only on its four children, and a parent pixel only on the 2 x 2 child pixels
//! below it.

mod place;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use crate::aggregate::{downsample, downsample_area, Resampling};
use crate::area::{covered_by_quadrants, Area};
use crate::chunk::{self, Head};
use crate::error::{Error, Result};
use crate::grid::{Layout, PixelRect, TileLoc};
use crate::index::TileKey;
use crate::store::{ChunkRef, Transaction};
use crate::tile::{BandValidity, Tile};

pub use place::Handed;
use place::{assemble, handed_area, place};

/// A parent tile being assembled.
struct Pending {
    /// What the children received so far handed over (`None` from a child without data).
    quarters: [Handed; 4],
    /// Which children this write will still hand over.
    awaited: [bool; 4],
    /// Which children this write handed over (a received `None` quarter holds no data;
    /// a child never received is unchanged and comes from the committed state).
    received: [bool; 4],
}

impl Pending {
    fn new() -> Self {
        Pending {
            quarters: Default::default(),
            awaited: [false; 4],
            received: [false; 4],
        }
    }
}

pub struct PyramidBuilder<'a> {
    txn: &'a Transaction,
    time: u32,
    pyramid: u8,
    methods: Vec<Resampling>,
    validity: Vec<BandValidity>,
    top: u8,
    /// The top level the committed state maintains (`None`: no committed state).
    committed_top: Option<u8>,
    /// Tiles made for a level the committed state did not have.
    forced: HashSet<TileLoc>,
    state: Mutex<State>,
    /// For a small write, the committed parents it rebuilds, fetched ahead of need, with
    /// what each will need if every planned child changes.
    ahead: Vec<(TileLoc, Need, Mutex<Ahead>)>,
}

/// What an update in place needs of a parent's committed chunk: every pixel of `area`
/// right, where the hand-overs placed in the quadrants (`covered`, one area each, empty
/// for a child that hands nothing) do not already fill it.
#[derive(Debug, Clone, Default)]
struct Need {
    area: Area,
    covered: [Area; 4],
}

impl Need {
    /// The blocks of a chunk with head `head` to decode for this need.
    fn blocks(&self, head: &Head) -> Vec<usize> {
        head.blocks_meeting(&self.area)
            .into_iter()
            .filter(|&k| !covered_by_quadrants(&head.block_area(k), &self.covered, head.size()))
            .collect()
    }
}

/// A committed parent opened for an update in place: the tile with the blocks `decoded`
/// decoded (the others hold zeros), and its chunk when the new chunk can keep the other
/// blocks in it (`chunk` and `decoded` are `None` when the tile was decoded whole, and is
/// encoded whole).
struct Opened {
    tile: Tile,
    decoded: Option<Vec<bool>>,
    chunk: Option<ChunkRef>,
}

impl Opened {
    fn is_complete(&self) -> bool {
        self.decoded.as_ref().is_none_or(|d| d.iter().all(|x| *x))
    }
}

/// A committed parent fetched and decoded ahead ([`PyramidBuilder::fetch_ahead`]).
enum Ahead {
    Waiting,
    Fetched(Box<Result<Option<Opened>>>),
    /// Taken by the build, or read by it before the fetch came to it.
    Taken,
}

/// Committed parents are fetched ahead while they take at most this much memory decoded:
/// a small write then finds them ready instead of decoding one per level in turn.
const AHEAD_MAX_BYTES: usize = 64 << 20;

#[derive(Default)]
struct State {
    pending: HashMap<TileLoc, Pending>,
    ready: Vec<TileLoc>,
}

impl<'a> PyramidBuilder<'a> {
    /// Plans the update of `pyramid` up to level `top`, for a write that produces the
    /// level-0 tiles `dirty`. `forced` lists tiles of upper levels to recompute even though
    /// none of their children change (the new levels when a store outgrows its top tile).
    pub fn new(
        txn: &'a Transaction,
        time: u32,
        pyramid: u8,
        top: u8,
        dirty: impl IntoIterator<Item = TileLoc>,
        forced: impl IntoIterator<Item = TileLoc>,
    ) -> Self {
        let manifest = &txn.manifest;
        let mut state = State::default();
        let forced: HashSet<TileLoc> = forced.into_iter().collect();
        let mut forced_by_level: HashMap<u8, Vec<TileLoc>> = HashMap::new();
        for t in forced.iter().copied() {
            forced_by_level.entry(t.level).or_default().push(t);
        }
        let dirty_base: BTreeSet<TileLoc> = dirty.into_iter().collect();
        let mut level = dirty_base.clone();
        for z in 1..=top {
            let mut parents = BTreeSet::new();
            for child in &level {
                let p = child.parent();
                let entry = state.pending.entry(p).or_insert_with(Pending::new);
                entry.awaited[child.quadrant()] = true;
                parents.insert(p);
            }
            for t in forced_by_level.remove(&z).unwrap_or_default() {
                let newly = parents.insert(t);
                state.pending.entry(t).or_insert_with(Pending::new);
                if newly {
                    state.ready.push(t);
                }
            }
            level = parents;
        }
        // The parents `build` will update in place from their committed version.
        let committed_top = txn
            .committed_for_tick()
            .and_then(|b| b.layout())
            .map(|l| l.top);
        let size = manifest.grid.tile_size as usize;
        let planned = planned_needs(&dirty_base, top, size, |t| {
            updated_in_place(t, committed_top, &forced)
        });
        let mut from_committed: Vec<(TileLoc, Need)> = planned.into_iter().collect();
        // Lowest levels first: they are needed first.
        from_committed.sort_by_key(|(t, _)| (t.level, t.row, t.col));
        let tile_bytes = manifest.tile_bytes().max(1);
        let ahead = if from_committed.len() <= AHEAD_MAX_BYTES / tile_bytes {
            from_committed
                .into_iter()
                .map(|(t, need)| (t, need, Mutex::new(Ahead::Waiting)))
                .collect()
        } else {
            Vec::new()
        };
        PyramidBuilder {
            txn,
            time,
            pyramid,
            methods: manifest.pyramids[pyramid as usize].resampling.clone(),
            validity: manifest.validity(),
            top,
            committed_top,
            forced,
            state: Mutex::new(state),
            ahead,
        }
    }

    /// Fetches the committed parents a small write will update, and decodes the blocks
    /// they will need, lowest level first, while the write reads its sources: the chain
    /// of levels above a write then finds them ready. Runs on a thread of its own, outside
    /// the encoders' pool: a build that needs a parent being fetched waits for it, which
    /// must not hold up a pool thread that the fetch itself needs. One thread is enough,
    /// and leaves the other core to the reader. Optional: a parent not fetched yet when its
    /// build needs it is read by the build.
    fn fetch_ahead(&self) {
        for (loc, need, slot) in &self.ahead {
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            if matches!(*slot, Ahead::Waiting) {
                *slot = Ahead::Fetched(Box::new(self.open_committed(*loc, need)));
            }
        }
    }

    /// Starts [`fetch_ahead`](Self::fetch_ahead) on a thread of `scope` (none when nothing
    /// is fetched ahead).
    pub fn start_fetch_ahead<'s>(&'s self, scope: &'s std::thread::Scope<'s, '_>) {
        if !self.ahead.is_empty() {
            scope.spawn(move || self.fetch_ahead());
        }
    }

    /// Opens the committed chunk of `loc` and decodes the blocks `need` asks for, reading
    /// only them; or all of it when its frames cannot go into the new chunk as they are (a
    /// chunk of the first format), which must then be encoded whole.
    fn open_committed(&self, loc: TileLoc, need: &Need) -> Result<Option<Opened>> {
        let Some(base) = self.txn.committed_for_tick() else {
            return Ok(None);
        };
        let m = &self.txn.manifest;
        let size = m.grid.tile_size as usize;
        let key = TileKey::new(self.time, self.pyramid, loc);
        let Some(c) = base.open_chunk(&key)? else {
            return Ok(None);
        };
        if !c.head.frames_reusable(&m.encoding()) {
            let Some(whole) = base.read_tile(&key)? else {
                return Ok(None);
            };
            return Ok(Some(Opened {
                tile: whole,
                decoded: None,
                chunk: None,
            }));
        }
        // Blocks left undecoded are never read: zeroed memory that is never written costs
        // no page of memory.
        let mut tile = Tile::zeroed(m.data_type, self.validity.len(), size);
        let mut mask = c.head.has_mask().then(|| vec![0u8; size * size]);
        let blocks = need.blocks(&c.head);
        let read = |at, offset, len| base.read_chunk_range(&c, at, offset, len);
        let data = tile.data.bytes_mut();
        chunk::read_blocks(&c.head, &blocks, read, data, mask.as_deref_mut(), &c.path)?;
        tile.mask = mask;
        let mut decoded = vec![false; c.head.blocks()];
        for k in blocks {
            decoded[k] = true;
        }
        Ok(Some(Opened {
            tile,
            decoded: Some(decoded),
            chunk: Some(c),
        }))
    }

    /// Decodes the blocks `blocks` of an opened parent too, those not decoded yet (the
    /// mask is whole already).
    fn decode_more(&self, mut opened: Opened, blocks: &[usize]) -> Result<Opened> {
        let (Some(c), Some(decoded), Some(base)) = (
            &opened.chunk,
            opened.decoded.as_mut(),
            self.txn.committed_for_tick(),
        ) else {
            return Ok(opened); // decoded whole
        };
        let missing: Vec<usize> = blocks.iter().copied().filter(|&k| !decoded[k]).collect();
        if missing.is_empty() {
            return Ok(opened);
        }
        let read = |at, offset, len| base.read_chunk_range(c, at, offset, len);
        let data = opened.tile.data.bytes_mut();
        chunk::read_blocks(&c.head, &missing, read, data, None, &c.path)?;
        for k in missing {
            decoded[k] = true;
        }
        Ok(opened)
    }

    /// The committed version of a parent with at least what `need` asks for decoded:
    /// fetched ahead, or read now.
    fn committed(&self, loc: TileLoc, need: &Need) -> Result<Option<Opened>> {
        if let Some((_, _, slot)) = self.ahead.iter().find(|(t, _, _)| *t == loc) {
            // Held while reading, so a fetch that has not come to this parent yet skips it.
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            if let Ahead::Fetched(fetched) = std::mem::replace(&mut *slot, Ahead::Taken) {
                return match (*fetched)? {
                    // Other children may have changed than planned: decode what this need
                    // asks for and the fetch did not.
                    Some(o) => {
                        let blocks = o.chunk.as_ref().map(|c| need.blocks(&c.head));
                        match blocks {
                            Some(blocks) => self.decode_more(o, &blocks).map(Some),
                            None => Ok(Some(o)),
                        }
                    }
                    None => Ok(None),
                };
            }
        }
        self.open_committed(loc, need)
    }

    /// The levels above 0 this builder maintains.
    pub fn top(&self) -> u8 {
        self.top
    }

    /// True when the tile `loc` is updated from its committed version (in place), rather
    /// than made from its four children: a tile of a level the committed state maintains,
    /// and not one made for a new level.
    fn in_place(&self, loc: TileLoc) -> bool {
        updated_in_place(loc, self.committed_top, &self.forced)
    }

    /// Reduces a freshly written tile (`None`: it holds no data) to what its parent needs.
    /// Call it in the worker that made the tile, then pass the result to
    /// [`offer`](Self::offer).
    pub fn quarter_of(&self, tile: Option<&Tile>) -> Handed {
        if self.top == 0 {
            return None;
        }
        tile.map(|t| downsample(t, &self.methods, &self.validity))
    }

    /// How a tile is reduced for its parent (each band's method, and what holds data in
    /// it); `None` when no parent is built.
    pub fn reduction(&self) -> Option<(&[Resampling], &[BandValidity])> {
        (self.top > 0).then_some((&self.methods, &self.validity))
    }

    /// Hands over the (downsampled) content of a tile this write produced.
    pub fn offer(&self, loc: TileLoc, quarter: Handed) {
        if loc.level >= self.top {
            return;
        }
        let parent = loc.parent();
        let mut s = self.state.lock().expect("poisoned");
        let Some(p) = s.pending.get_mut(&parent) else {
            return;
        };
        let q = loc.quadrant();
        p.quarters[q] = quarter;
        p.awaited[q] = false;
        p.received[q] = true;
        if !p.awaited.iter().any(|a| *a) {
            s.ready.push(parent);
        }
    }

    /// Tells the builder that a tile it was told about did not change after all (no
    /// source had data in it): its parent takes it from the committed state.
    pub fn unchanged(&self, loc: TileLoc) {
        let mut s = self.state.lock().expect("poisoned");
        self.settle_unchanged(&mut s, loc);
    }

    fn settle_unchanged(&self, s: &mut State, loc: TileLoc) {
        if loc.level >= self.top {
            return;
        }
        let parent = loc.parent();
        let Some(p) = s.pending.get_mut(&parent) else {
            return;
        };
        p.awaited[loc.quadrant()] = false;
        if !p.awaited.iter().any(|a| *a) {
            s.ready.push(parent);
        }
    }

    /// Takes the parents that are ready to build. A parent none of whose children changed
    /// is not built: it stays as committed, and so does everything above it.
    fn take_ready(&self) -> Vec<(TileLoc, Pending)> {
        let mut s = self.state.lock().expect("poisoned");
        let mut batch = Vec::new();
        while let Some(t) = s.ready.pop() {
            let Some(p) = s.pending.remove(&t) else {
                continue;
            };
            // A tile made for a new level is built even if none of its children changed.
            if !self.forced.contains(&t) && !p.received.iter().any(|r| *r) {
                self.settle_unchanged(&mut s, t);
            } else {
                batch.push((t, p));
            }
        }
        batch
    }

    /// Builds, stores and hands upward every parent that is complete, until none is.
    pub fn build_ready(&self) -> Result<()> {
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        rayon::scope(|scope| self.spawn_ready(scope, &failure));
        match failure.into_inner().expect("poisoned") {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Starts building every parent that is ready, each as its own task.
    fn spawn_ready<'s>(&'s self, scope: &rayon::Scope<'s>, failure: &'s Mutex<Option<Error>>) {
        for (loc, pending) in self.take_ready() {
            scope.spawn(move |scope| {
                if let Err(e) = self.build_and_store(scope, failure, loc, pending) {
                    failure.lock().expect("poisoned").get_or_insert(e);
                }
            });
        }
    }

    fn build_and_store<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        failure: &'s Mutex<Option<Error>>,
        loc: TileLoc,
        pending: Pending,
    ) -> Result<()> {
        let built = self.build(loc, pending)?;
        if loc.level < self.top {
            let quarter = built.has_data.then(|| {
                downsample_area(&built.tile, &built.handed, &self.methods, &self.validity)
            });
            self.offer(loc, quarter);
        }
        // The encode is left to any thread, and the parent, if complete now, is spawned
        // after it: a thread takes its own newest task first and others steal the oldest,
        // so this thread goes on up the chain of levels while another encodes.
        scope.spawn(move |_| {
            if let Err(e) = self.store(loc, built) {
                failure.lock().expect("poisoned").get_or_insert(e);
            }
        });
        self.spawn_ready(scope, failure);
        Ok(())
    }

    /// Builds whatever is still pending (parents of children the write never handed over,
    /// which then come from the committed state) and checks nothing is left.
    pub fn finish(&self) -> Result<()> {
        loop {
            self.build_ready()?;
            let mut s = self.state.lock().expect("poisoned");
            if s.pending.is_empty() {
                return Ok(());
            }
            // Lowest levels first, so their results can still reach their parents.
            let lowest = s.pending.keys().map(|t| t.level).min().expect("non-empty");
            let stragglers: Vec<TileLoc> = s
                .pending
                .iter_mut()
                .filter(|(t, _)| t.level == lowest)
                .map(|(t, p)| {
                    p.awaited = [false; 4];
                    *t
                })
                .collect();
            s.ready.extend(stragglers);
        }
    }

    /// Makes a parent from what its changed children handed over: in place from its
    /// committed version, or from its four children.
    fn build(&self, loc: TileLoc, mut pending: Pending) -> Result<Built> {
        let m = &self.txn.manifest;
        let size = m.grid.tile_size as usize;
        if self.in_place(loc) {
            return self.update(loc, &pending);
        }
        if let Some(base) = self.txn.committed_for_tick() {
            for (q, child) in loc.children().into_iter().enumerate() {
                if pending.received[q] {
                    continue;
                }
                let key = TileKey::new(self.time, self.pyramid, child);
                if let Some(tile) = base.read_tile(&key)? {
                    pending.quarters[q] = Some(downsample(&tile, &self.methods, &self.validity));
                }
            }
        }
        let tile = assemble(m.data_type, &self.validity, size, &pending.quarters);
        Ok(Built {
            has_data: !tile.is_empty(&self.validity),
            tile,
            changed: Area::whole(size),
            handed: Area::whole(size),
            committed: None,
        })
    }

    /// Updates a parent the committed state holds, in the area its changed children cover.
    fn update(&self, loc: TileLoc, pending: &Pending) -> Result<Built> {
        let m = &self.txn.manifest;
        let size = m.grid.tile_size as usize;
        let covered: [Area; 4] = std::array::from_fn(|q| match pending.received[q] {
            true => handed_area(&pending.quarters[q], size).in_parent(q, size),
            false => Area::default(),
        });
        let changed = covered
            .iter()
            .fold(Area::default(), |a, b| a.hull(b))
            .even(size);
        // A parent updated in place takes only the changed area; one made from its
        // children takes whole quarters.
        let whole = self.hands_whole(loc);
        let handed = if whole {
            Area::whole(size)
        } else {
            changed.clone()
        };
        let need = Need {
            area: handed.clone(),
            covered,
        };
        let Some(mut opened) = self.committed(loc, &need)? else {
            // Nothing committed: the children the write did not touch hold no data.
            let mut tile = Tile::empty(m.data_type, &self.validity, size);
            place(
                &mut tile,
                &self.validity,
                &pending.quarters,
                &pending.received,
            );
            return Ok(Built {
                has_data: !tile.is_empty(&self.validity),
                tile,
                handed,
                changed,
                committed: None,
            });
        };
        place(
            &mut opened.tile,
            &self.validity,
            &pending.quarters,
            &pending.received,
        );
        if !opened.is_complete() && !opened.tile.area_holds_data(&self.validity, &changed) {
            // Whether the tile still holds data depends on the blocks not decoded: decode
            // them too (the placed pixels stay, since those blocks lie outside what
            // changed). Rare: only writes that erase data get here.
            let all: Vec<usize> = opened
                .decoded
                .as_ref()
                .map_or(Vec::new(), |d| (0..d.len()).collect());
            opened = self.decode_more(opened, &all)?;
        }
        let has_data = if opened.is_complete() {
            !opened.tile.is_empty(&self.validity)
        } else {
            true // the changed area, complete, holds data
        };
        Ok(Built {
            tile: opened.tile,
            has_data,
            handed,
            changed,
            committed: opened.chunk,
        })
    }

    /// True when `loc` must hand its parent whole quarters: the parent is made from its
    /// children, not updated in place.
    fn hands_whole(&self, loc: TileLoc) -> bool {
        loc.level < self.top && !self.in_place(loc.parent())
    }

    /// Stores a built tile: only the blocks of its changed area are encoded when the
    /// committed chunk holds the others.
    fn store(&self, loc: TileLoc, built: Built) -> Result<()> {
        let key = TileKey::new(self.time, self.pyramid, loc);
        match &built.committed {
            Some(stored) if built.has_data => {
                self.txn
                    .put_changed_area(key, &built.tile, stored, built.changed)
            }
            _ => self.txn.put_tile(key, &built.tile).map(|_| ()),
        }
    }
}

/// A parent made by [`PyramidBuilder::build`].
struct Built {
    /// The tile: whole, or, when updated in place, right in the blocks that meet `handed`
    /// (the only ones encoded and handed upward).
    tile: Tile,
    /// Whether the tile holds data anywhere.
    has_data: bool,
    /// The pixels that may differ from the committed version (even bounds).
    changed: Area,
    /// The pixels to hand to the parent (even bounds, all right).
    handed: Area,
    /// The committed chunk, when the tile was updated in place from it.
    committed: Option<ChunkRef>,
}

/// True when tile `loc` is updated from its committed version: a tile of a level the
/// committed state maintains (up to `committed_top`), not one made for a new level.
fn updated_in_place(loc: TileLoc, committed_top: Option<u8>, forced: &HashSet<TileLoc>) -> bool {
    committed_top.is_some_and(|top| loc.level <= top) && !forced.contains(&loc)
}

/// What each parent updated in place needs if every level-0 tile in `dirty` changes: what
/// to decode ahead. Level-0 tiles hand over all of themselves; a parent updated in place
/// hands over its changed area, one made from its children all of itself.
fn planned_needs(
    dirty: &BTreeSet<TileLoc>,
    top: u8,
    size: usize,
    in_place: impl Fn(TileLoc) -> bool,
) -> HashMap<TileLoc, Need> {
    let mut planned = HashMap::new();
    let mut handed: Vec<(TileLoc, Area)> = dirty.iter().map(|t| (*t, Area::whole(size))).collect();
    for _ in 1..=top {
        let mut parents: HashMap<TileLoc, [Area; 4]> = HashMap::new();
        for (child, area) in handed {
            let q = child.quadrant();
            parents.entry(child.parent()).or_default()[q] = area.in_parent(q, size);
        }
        handed = Vec::with_capacity(parents.len());
        for (p, covered) in parents {
            let changed = covered
                .iter()
                .fold(Area::default(), |a, b| a.hull(b))
                .even(size);
            let whole = p.level < top && !in_place(p.parent());
            let area = if whole { Area::whole(size) } else { changed };
            handed.push((p, area.clone()));
            if in_place(p) {
                planned.insert(p, Need { area, covered });
            }
        }
    }
    planned
}

/// The levels a write must update: up to the level at which everything the store will
/// hold (`reach`: its old extent and what is written) fits in one tile. When that is above
/// the old top level, every tile of the first new level is listed (to be made from the old
/// top level) whether or not the write touches it.
pub fn levels_to_update(
    old_extent: Option<PixelRect>,
    reach: PixelRect,
    tile_size: u32,
) -> (u8, Vec<TileLoc>) {
    let top = Layout::for_extent(reach, tile_size).top;
    let forced = match old_extent {
        Some(old) if !old.is_empty() => {
            let old_top = Layout::for_extent(old, tile_size).top;
            if top > old_top {
                let level = old_top + 1;
                old.coarsen(level).tiles(level, tile_size).iter().collect()
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    (top, forced)
}

/// Makes the level tile `key` again from its four children as the write `txn` has them
/// (its own chunks, else its base's), and stores it. For a write that starts over from a
/// newer state in which another writer changed the same parent (docs/FORMAT.md §7): call
/// it for such parents lowest level first, so that each is made from children already
/// right. Bit for bit what a build from scratch gives, since a tile depends only on its
/// four children.
pub fn rebuild_from_children(txn: &Transaction, key: TileKey) -> Result<()> {
    let m = &txn.manifest;
    let pyramid = m.pyramids.get(key.pyramid as usize).ok_or_else(|| {
        Error::InvalidInput(format!(
            "{}: tile {} names a pyramid the store does not have",
            txn.location().display(),
            key.describe()
        ))
    })?;
    let validity = m.validity();
    let mut quarters: [Handed; 4] = Default::default();
    for (q, child) in key.loc().children().into_iter().enumerate() {
        let child = TileKey::new(key.time, key.pyramid, child);
        if let Some(tile) = txn.read_current(&child)? {
            quarters[q] = Some(downsample(&tile, &pyramid.resampling, &validity));
        }
    }
    let tile = assemble(m.data_type, &validity, m.grid.tile_size as usize, &quarters);
    txn.put_tile(key, &tile).map(|_| ())
}
