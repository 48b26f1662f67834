//! Every object key of a store, built and parsed here (docs/FORMAT.md §1). Keys are
//! `/`-separated paths relative to the store; objects a write makes lie under a
//! directory named after the snapshot id that wrote them.

use crate::index::{ChunkNaming, TileKey};

/// The manifest of the current snapshot.
pub const MANIFEST_KEY: &str = "gridstore.json";
/// Who is writing, on local disk (docs/FORMAT.md §7).
pub const LOCK_KEY: &str = "writer.lock";
/// The manifests of every snapshot: `snapshots/<id>.json`.
pub const SNAPSHOT_PREFIX: &str = "snapshots/";
/// Chunks: `chunks/<id>/...`.
pub const CHUNK_PREFIX: &str = "chunks/";
/// Index nodes: `index/<id>/<n>`.
pub const NODE_PREFIX: &str = "index/";
/// Time step records: `steps/<id>/<t>`.
pub const STEP_PREFIX: &str = "steps/";
/// What each write read, for catalogs: `sources/<id>/<part>.jsonl` (docs/FORMAT.md §12).
pub const SOURCE_PREFIX: &str = "sources/";
/// Claims of writers on object storage: `claims/<id>`.
pub const CLAIM_PREFIX: &str = "claims/";
/// The prefixes under which a write puts its objects, each in a directory named by its
/// snapshot id: what discarding an unfinished write removes.
pub const WRITE_PREFIXES: [&str; 4] = [CHUNK_PREFIX, NODE_PREFIX, STEP_PREFIX, SOURCE_PREFIX];

/// The manifest of snapshot `id`.
pub fn snapshot(id: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{id}.json")
}

/// The snapshot id of `name`, a name under `snapshots/`, if it is one a writer gives
/// (`<id>.json`, the id with no sign and no leading zero).
pub fn snapshot_id(name: &str) -> Option<u64> {
    canonical_number(name.strip_suffix(".json")?)
}

/// Part `part` of the list of the sources snapshot `id` read.
pub fn source_list(id: u64, part: u32) -> String {
    format!("{SOURCE_PREFIX}{id}/{part}.jsonl")
}

/// The part number of `name`, a name under `sources/<id>/`, if it is one a writer gives.
pub fn source_list_part(name: &str) -> Option<u32> {
    canonical_number(name.strip_suffix(".jsonl")?)
}

/// The claim of snapshot id `id`.
pub fn claim(id: u64) -> String {
    format!("{CLAIM_PREFIX}{id}")
}

/// Index node `id` written by snapshot `seq`.
pub fn node(seq: u64, id: u32) -> String {
    format!("{NODE_PREFIX}{seq}/{id}")
}

/// The directory under `prefix` (one of [`WRITE_PREFIXES`]) of what snapshot `seq` wrote.
pub fn write_dir(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq}/")
}

/// The object of tile `key`'s chunk (or step record) written by snapshot `seq`, named as
/// `naming` says.
pub fn tile_object(key: &TileKey, seq: u64, naming: ChunkNaming) -> String {
    if let Some(t) = key.recorded_step() {
        return format!("{STEP_PREFIX}{seq}/{t}");
    }
    let (t, p, z, row, col) = (key.time, key.pyramid, key.level, key.row, key.col);
    match naming {
        ChunkNaming::Packs | ChunkNaming::Blocks | ChunkNaming::DottedBlocks => {
            let (brow, bcol) = key.corner_block();
            let s = naming.separator();
            format!("{CHUNK_PREFIX}{seq}/{t}{s}{p}{s}{brow}{s}{bcol}/{z}{s}{row}{s}{col}")
        }
        ChunkNaming::Nested => format!("{CHUNK_PREFIX}{seq}/{t}/{p}/{z}/{row}/{col}"),
    }
}

/// Pack `pack` of snapshot `seq`: an object holding chunks one after the other (format
/// version 4 on), named by a number where a tile's own object is named by a directory and
/// a name.
pub fn pack(seq: u64, pack: u32) -> String {
    format!("{CHUNK_PREFIX}{seq}/{pack}")
}

/// The pack number of `rest`, a key below `chunks/<seq>/`, if it is the name of a pack.
pub fn pack_of(rest: &str) -> Option<u32> {
    canonical_number(rest).filter(|n| *n != 0)
}

/// The tile whose chunk is `rest`, a key below `chunks/<seq>/` named as `naming` says.
pub fn tile_of_chunk(rest: &str, naming: ChunkNaming) -> Option<TileKey> {
    let number = |s: &str| s.parse::<i64>().ok();
    let key = |t: &str, p: &str, z: &str, row: &str, col: &str| {
        Some(TileKey {
            time: t.parse().ok()?,
            pyramid: p.parse().ok()?,
            level: z.parse().ok()?,
            row: row.parse().ok()?,
            col: col.parse().ok()?,
        })
    };
    match naming {
        ChunkNaming::Packs | ChunkNaming::Blocks | ChunkNaming::DottedBlocks => {
            let (dir, name) = rest.split_once('/')?;
            let dir: Vec<&str> = dir.split(naming.separator()).collect();
            let name: Vec<&str> = name.split(naming.separator()).collect();
            let ([t, p, brow, bcol], [z, row, col]) = (&dir[..], &name[..]) else {
                return None;
            };
            let k = key(t, p, z, row, col)?;
            // A name in another block's directory is not a chunk of this store.
            (k.corner_block() == (number(brow)?, number(bcol)?)).then_some(k)
        }
        ChunkNaming::Nested => {
            let parts: Vec<&str> = rest.split('/').collect();
            let [t, p, z, row, col] = parts[..] else {
                return None;
            };
            key(t, p, z, row, col)
        }
    }
}

/// `name` as a number, if it is written exactly as a writer writes that number.
pub fn canonical_number<T: std::str::FromStr + ToString>(name: &str) -> Option<T> {
    let n: T = name.parse().ok()?;
    (n.to_string() == name).then_some(n)
}

/// True for the objects whose content or existence changes while a store is in use,
/// which no cache may answer for: those at the top (the manifest, the lock) and claims.
/// Every other object is written once and never changes.
pub fn is_replaced_in_place(key: &str) -> bool {
    !key.contains('/') || key.starts_with(CLAIM_PREFIX)
}
