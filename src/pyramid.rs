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
//! The result is the same, bit for bit, as building every level from scratch: a tile
//! depends only on its four children.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use crate::aggregate::{downsample, Resampling};
use crate::error::{Error, Result};
use crate::grid::{Layout, PixelRect, TileLoc};
use crate::index::TileKey;
use crate::store::Transaction;
use crate::tile::{BandValidity, Tile};
use crate::with_sample_type;

/// A parent tile being assembled.
struct Pending {
    /// Downsampled children received so far; `None` where a child has no data or has not
    /// arrived.
    quarters: [Option<Tile>; 4],
    /// Which children this write will still hand over.
    awaited: [bool; 4],
    /// Which children this write handed over (a received `None` quarter holds no data;
    /// a child never received is unchanged and comes from the committed state).
    received: [bool; 4],
    /// Rebuilt even if no child changed (a tile of a level the store did not have).
    forced: bool,
}

impl Pending {
    fn new() -> Self {
        Pending {
            quarters: Default::default(),
            awaited: [false; 4],
            received: [false; 4],
            forced: false,
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
    state: Mutex<State>,
    /// For a small write, the committed parents it rebuilds, fetched ahead of need.
    ahead: Vec<(TileLoc, Mutex<Ahead>)>,
}

/// A committed parent fetched ahead ([`PyramidBuilder::fetch_ahead`]).
enum Ahead {
    Waiting,
    Fetched(Result<Option<Tile>>),
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
        let mut forced_by_level: HashMap<u8, Vec<TileLoc>> = HashMap::new();
        for t in forced {
            forced_by_level.entry(t.level).or_default().push(t);
        }
        let mut level: BTreeSet<TileLoc> = dirty.into_iter().collect();
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
                let entry = state.pending.entry(t).or_insert_with(Pending::new);
                entry.forced = true;
                if newly {
                    state.ready.push(t);
                }
            }
            level = parents;
        }
        // The parents `build` will start from their committed version.
        let maintained = txn.base().and_then(|b| b.layout()).map(|l| l.top);
        let mut from_committed: Vec<TileLoc> = state
            .pending
            .iter()
            .filter(|(t, p)| !p.forced && maintained.is_some_and(|top| t.level <= top))
            .map(|(t, _)| *t)
            .collect();
        // Lowest levels first: they are needed first.
        from_committed.sort_by_key(|t| (t.level, t.row, t.col));
        let tile_bytes = manifest.tile_bytes().max(1);
        let ahead = if from_committed.len() <= AHEAD_MAX_BYTES / tile_bytes {
            from_committed
                .into_iter()
                .map(|t| (t, Mutex::new(Ahead::Waiting)))
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
            state: Mutex::new(state),
            ahead,
        }
    }

    /// Fetches and decodes the committed parents a small write will rebuild, lowest level
    /// first, so that the chain of levels above a write does not wait for one decode per
    /// level. Runs on threads of its own, outside the encoders' pool (`part` of `parts`
    /// each): a build that needs a parent being fetched waits for it, which must not hold
    /// up a pool thread that the fetch itself needs. Optional: a parent not fetched yet
    /// when its build needs it is read by the build.
    fn fetch_ahead(&self, part: usize, parts: usize) {
        for (loc, slot) in self.ahead.iter().skip(part).step_by(parts.max(1)) {
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            if matches!(*slot, Ahead::Waiting) {
                *slot = Ahead::Fetched(self.read_committed(*loc));
            }
        }
    }

    /// Starts [`fetch_ahead`](Self::fetch_ahead) on threads of `scope` (none when nothing
    /// is fetched ahead).
    pub fn start_fetch_ahead<'s>(&'s self, scope: &'s std::thread::Scope<'s, '_>) {
        let parts = self.ahead.len().min(2);
        for part in 0..parts {
            scope.spawn(move || self.fetch_ahead(part, parts));
        }
    }

    fn read_committed(&self, loc: TileLoc) -> Result<Option<Tile>> {
        match self.txn.base() {
            Some(base) => base.read_tile(&TileKey::new(self.time, self.pyramid, loc)),
            None => Ok(None),
        }
    }

    /// The committed version of a parent: fetched ahead, or read now.
    fn committed(&self, loc: TileLoc) -> Result<Option<Tile>> {
        if let Some((_, slot)) = self.ahead.iter().find(|(t, _)| *t == loc) {
            // Held while reading, so a fetch that has not come to this parent yet skips it.
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            return match std::mem::replace(&mut *slot, Ahead::Taken) {
                Ahead::Fetched(fetched) => fetched,
                Ahead::Waiting | Ahead::Taken => self.read_committed(loc),
            };
        }
        self.read_committed(loc)
    }

    /// The levels above 0 this builder maintains.
    pub fn top(&self) -> u8 {
        self.top
    }

    /// Reduces a freshly written tile to the quarter its parent needs. Call it in the
    /// worker that made the tile, then pass the result to [`offer`](Self::offer).
    pub fn quarter_of(&self, tile: Option<&Tile>) -> Option<Tile> {
        if self.top == 0 {
            return None;
        }
        tile.map(|t| downsample(t, &self.methods, &self.validity))
    }

    /// Hands over the (downsampled) content of a tile this write produced.
    pub fn offer(&self, loc: TileLoc, quarter: Option<Tile>) {
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
            if !p.forced && !p.received.iter().any(|r| *r) {
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
        let tile = self.build(loc, pending)?;
        let has_data = !tile.is_empty(&self.validity);
        let quarter = (loc.level < self.top && has_data)
            .then(|| downsample(&tile, &self.methods, &self.validity));
        self.offer(loc, quarter);
        // The encode is left to any thread, and the parent, if complete now, is spawned
        // after it: a thread takes its own newest task first and others steal the oldest,
        // so this thread goes on up the chain of levels while another encodes.
        scope.spawn(move |_| {
            let key = TileKey::new(self.time, self.pyramid, loc);
            if let Err(e) = self.txn.put_tile(key, &tile) {
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

    /// Assembles a parent from its quarters, fetching the ones this write did not touch.
    fn build(&self, loc: TileLoc, mut pending: Pending) -> Result<Tile> {
        let m = &self.txn.manifest;
        let size = m.grid.tile_size as usize;
        if let Some(base) = self.txn.base() {
            // The committed parent already holds the quarters of every unchanged child:
            // one decode instead of one per child. Only for levels the committed state
            // maintained, and not for tiles being made for a new level.
            let maintained = base.layout().is_some_and(|l| loc.level <= l.top);
            if maintained && !pending.forced {
                let old = self
                    .committed(loc)?
                    .unwrap_or_else(|| Tile::empty(m.data_type, &self.validity, size));
                return Ok(replace_quarters(
                    old,
                    &self.validity,
                    &pending.quarters,
                    &pending.received,
                ));
            }
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
        Ok(assemble(
            m.data_type,
            &self.validity,
            m.grid.tile_size as usize,
            &pending.quarters,
        ))
    }
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

/// Replaces the quarters of `tile` whose children were received with their new content
/// (a missing quarter holds no data); the others stay.
pub fn replace_quarters(
    mut tile: Tile,
    validity: &[BandValidity],
    quarters: &[Option<Tile>; 4],
    received: &[bool; 4],
) -> Tile {
    let size = tile.size;
    let (half, n) = (size / 2, size * size);
    let h = half * half;
    let dtype = tile.dtype;
    let needs_mask = validity.iter().any(|v| v.nodata.is_none());
    if needs_mask && tile.mask.is_none() {
        tile.mask = Some(vec![255; n]);
    }
    with_sample_type!(dtype, T => {
        let dst = tile.data.typed_mut::<T>();
        for q in (0..4).filter(|q| received[*q]) {
            let (ox, oy) = ((q % 2) * half, (q / 2) * half);
            for (b, v) in validity.iter().enumerate() {
                let fill = crate::tile::fill_value::<T>(v);
                for y in 0..half {
                    let d = b * n + (oy + y) * size + ox;
                    match &quarters[q] {
                        Some(quarter) => {
                            let s = b * h + y * half;
                            dst[d..d + half].copy_from_slice(&quarter.data.typed::<T>()[s..s + half]);
                        }
                        None => dst[d..d + half].fill(fill),
                    }
                }
            }
        }
    });
    if let Some(mask) = tile.mask.as_mut() {
        for q in (0..4).filter(|q| received[*q]) {
            let (ox, oy) = ((q % 2) * half, (q / 2) * half);
            for y in 0..half {
                let d = (oy + y) * size + ox;
                match quarters[q].as_ref().map(|t| &t.mask) {
                    Some(Some(m)) => {
                        mask[d..d + half].copy_from_slice(&m[y * half..(y + 1) * half])
                    }
                    Some(None) => mask[d..d + half].fill(255),
                    None => mask[d..d + half].fill(0),
                }
            }
        }
    }
    tile.normalize_mask();
    tile
}

/// Places four half-size quarters into one tile; a missing quarter holds no data.
pub fn assemble(
    dtype: crate::dtype::DataType,
    validity: &[BandValidity],
    size: usize,
    quarters: &[Option<Tile>; 4],
) -> Tile {
    let mut out = Tile::empty(dtype, validity, size);
    let half = size / 2;
    let n = size * size;
    let h = half * half;
    with_sample_type!(dtype, T => {
        let dst = out.data.typed_mut::<T>();
        for (q, quarter) in quarters.iter().enumerate() {
            let Some(quarter) = quarter else { continue };
            let (ox, oy) = ((q % 2) * half, (q / 2) * half);
            let src = quarter.data.typed::<T>();
            for b in 0..validity.len() {
                for y in 0..half {
                    let s = b * h + y * half;
                    let d = b * n + (oy + y) * size + ox;
                    dst[d..d + half].copy_from_slice(&src[s..s + half]);
                }
            }
        }
    });
    if let Some(mask) = out.mask.as_mut() {
        for (q, quarter) in quarters.iter().enumerate() {
            let Some(quarter) = quarter else { continue };
            let (ox, oy) = ((q % 2) * half, (q / 2) * half);
            for y in 0..half {
                let d = (oy + y) * size + ox;
                match &quarter.mask {
                    Some(m) => mask[d..d + half].copy_from_slice(&m[y * half..(y + 1) * half]),
                    None => mask[d..d + half].fill(255),
                }
            }
        }
    }
    out.normalize_mask();
    out
}
