//! JSON targets: the manifest (`gridstore.json`), snapshot manifests
//! (`snapshots/<id>.json`, the documents history walks), and the writer lock.

use std::collections::BTreeMap;
use std::path::Path;

use crate::aggregate::Resampling;
use crate::codec::{Compression, Predictor};
use crate::dtype::DataType;
use crate::fuzz::{mutate, Rng, Target};
use crate::grid::PixelRect;
use crate::index::NodeRef;
use crate::manifest::{
    BandSpec, Checkpoint, ColorTable, EncodingSpec, GridSpec, IndexSpec, Manifest, PyramidSpec,
    SnapshotInfo, FORMAT_NAME, FORMAT_VERSION,
};
use crate::store::lock::LockInfo;

/// Manifests are small documents: nothing decoding one needs more than this at once.
const MANIFEST_BOUND: usize = 64 << 20;

/// `Manifest::parse`, and what every reader computes from a manifest right after (its
/// layout, tile size, chunk shape), against `to_json`.
pub struct ManifestTarget;

/// The same parser on snapshot manifests: later snapshots, with parents, restores and
/// checkpoints, as history and `SNAPSHOT=` read them.
pub struct SnapshotTarget;

/// The writer lock's contents, as `read_lock` parses them.
pub struct LockTarget;

impl Target for ManifestTarget {
    type Decoded = Manifest;

    fn name(&self) -> &'static str {
        "manifest"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        manifests(false).iter().map(Manifest::to_json).collect()
    }

    fn mutate_structured(&self, input: &mut Vec<u8>, other: &[u8], rng: &mut Rng) -> bool {
        mutate::json(input, other, rng)
    }

    fn decode(&self, input: &[u8]) -> Option<Manifest> {
        parse_manifest(input)
    }

    fn check(&self, _input: &[u8], m: Manifest) -> Result<(), String> {
        round_trip(&m)
    }

    fn alloc_bound(&self, _input: &[u8]) -> usize {
        MANIFEST_BOUND
    }
}

impl Target for SnapshotTarget {
    type Decoded = Manifest;

    fn name(&self) -> &'static str {
        "snapshot"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        manifests(true).iter().map(Manifest::to_json).collect()
    }

    fn mutate_structured(&self, input: &mut Vec<u8>, other: &[u8], rng: &mut Rng) -> bool {
        mutate::json(input, other, rng)
    }

    fn decode(&self, input: &[u8]) -> Option<Manifest> {
        let m = parse_manifest(input)?;
        // What history computes from a snapshot: the keys of it and of its parent.
        std::hint::black_box(crate::manifest::snapshot_key(m.snapshot.id));
        if let Some(parent) = m.snapshot.parent {
            std::hint::black_box(crate::manifest::snapshot_key(parent));
        }
        Some(m)
    }

    fn check(&self, _input: &[u8], m: Manifest) -> Result<(), String> {
        round_trip(&m)
    }

    fn alloc_bound(&self, _input: &[u8]) -> usize {
        MANIFEST_BOUND
    }
}

impl Target for LockTarget {
    type Decoded = LockInfo;

    fn name(&self) -> &'static str {
        "lock"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        locks()
            .iter()
            .map(|l| serde_json::to_vec(l).unwrap_or_default())
            .collect()
    }

    fn mutate_structured(&self, input: &mut Vec<u8>, other: &[u8], rng: &mut Rng) -> bool {
        mutate::json(input, other, rng)
    }

    fn decode(&self, input: &[u8]) -> Option<LockInfo> {
        // `read_lock` takes what is refused here as a damaged (stale) lock; what reads is used.
        let lock = LockInfo::parse(input).ok()?;
        std::hint::black_box(lock.describe());
        Some(lock)
    }

    fn check(&self, _input: &[u8], lock: LockInfo) -> Result<(), String> {
        let json = serde_json::to_vec(&lock).map_err(|e| format!("does not serialize: {e}"))?;
        let back = LockInfo::parse(&json).map_err(|e| format!("its own JSON is refused: {e}"))?;
        if back != lock {
            return Err(format!("reads back as {back:?}, not {lock:?}"));
        }
        Ok(())
    }

    fn alloc_bound(&self, _input: &[u8]) -> usize {
        MANIFEST_BOUND
    }
}

/// Parses a manifest and computes what readers compute from it straight away.
fn parse_manifest(input: &[u8]) -> Option<Manifest> {
    let m = Manifest::parse(input, Path::new("fuzz/gridstore.json")).ok()?;
    std::hint::black_box((m.layout(), m.tile_bytes(), m.chunk_shape(), m.georef()));
    if let Some(layout) = m.layout() {
        for level in 0..layout.level_count() {
            std::hint::black_box(layout.level_rect(level as u8));
        }
    }
    Some(m)
}

/// The reference: a manifest the parser accepted is written by `to_json` as a document the
/// parser accepts again, and that writes the same bytes (NaN nodata values compare equal
/// this way, where `==` on the values would not).
fn round_trip(m: &Manifest) -> Result<(), String> {
    let json = m.to_json();
    let back = Manifest::parse(&json, Path::new("fuzz/again.json"))
        .map_err(|e| format!("its own JSON is refused: {e}"))?;
    let again = back.to_json();
    if again != json {
        return Err(format!(
            "reads back differently:\n{}\nvs\n{}",
            String::from_utf8_lossy(&json),
            String::from_utf8_lossy(&again)
        ));
    }
    Ok(())
}

/// Manifests a writer could have written (each passes the manifest's range checks),
/// covering every data type, codec and predictor, with and without nodata, extent, colour
/// table, index root; snapshot manifests (`history`) also carry parents, restores and
/// checkpoints, every id in them earlier than the snapshot's own.
fn manifests(history: bool) -> Vec<Manifest> {
    let mut out = Vec::new();
    for (i, dtype) in DataType::ALL.into_iter().enumerate() {
        let bands = 1 + i % 4;
        let mut m = plain_manifest(dtype, bands);
        m.encoding = EncodingSpec {
            compression: [
                Compression::Zstd,
                Compression::Deflate,
                Compression::Lz4,
                Compression::None,
            ][i % 4],
            level: [3, 6, 0, 0][i % 4],
            predictor: match i % 3 {
                0 => Predictor::default_for(dtype),
                1 => Predictor::None,
                _ => Predictor::Horizontal,
            },
        };
        m.grid.tile_size = [256, 512, 16, 4096][i % 4];
        m.bands[0].nodata = nodata(dtype, i);
        if i % 2 == 1 {
            m.extent = None;
            m.index = IndexSpec {
                root: None,
                tiles: 0,
                bytes: 0,
                root_copy: None,
            };
        }
        if i == 2 {
            m.bands[0].color_interp = "Palette".into();
            m.bands[0].color_table = Some(ColorTable {
                interp: "RGB".into(),
                entries: vec![[0, 0, 0, 255], [255, 128, 0, 255], [-1, 32767, -32768, 0]],
            });
            m.grid.georeferenced = false;
            m.grid.crs_wkt = String::new();
        }
        if history {
            // Ids given before this one: the parent, the snapshot restored, the root's.
            m.snapshot.id = 2 + i as u64 * 1000;
            m.snapshot.parent = Some(m.snapshot.id - 1);
            m.snapshot.restores = (i % 3 == 0).then_some(1);
            if let Some(root) = &mut m.index.root {
                root.seq = m.snapshot.id - i as u64;
            }
            m.snapshot.checkpoint = (i % 2 == 0).then(|| Checkpoint {
                run: format!("{:064x}", i * 7919),
                done: 1 + i as u64,
                of: 10,
            });
            m.snapshot.writer = format!("gridstore ingest --band {i} a.tif");
        }
        out.push(m);
    }
    out
}

/// A nodata value a store of `dtype` may have (creation insists that an integer band's is
/// one of its values; a float band's may be anything, NaN and infinities included).
fn nodata(dtype: DataType, i: usize) -> Option<f64> {
    if dtype.is_float() {
        [
            None,
            Some(0.0),
            Some(f64::NAN),
            Some(-9999.0),
            Some(f64::INFINITY),
        ][i % 5]
    } else {
        [None, Some(0.0), Some(255.0)][i % 3]
    }
}

fn plain_manifest(dtype: DataType, bands: usize) -> Manifest {
    let mut band_specs = vec![BandSpec::gray(None); bands];
    for (b, spec) in band_specs.iter_mut().enumerate() {
        spec.description = format!("band {}", b + 1);
        spec.scale = (b == 1).then_some(0.5);
        spec.offset = (b == 1).then_some(-10.0);
        spec.unit = if b == 1 { "m".into() } else { String::new() };
        spec.metadata = BTreeMap::from([("STATISTICS_MINIMUM".into(), "0".into())]);
    }
    Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        store_id: "0123456789abcdef".into(),
        snapshot: SnapshotInfo {
            id: 1,
            parent: None,
            created: "2026-01-01T00:00:00Z".into(),
            writer: "gridstore create".into(),
            tiles_written: 12,
            tiles_removed: 0,
            restores: None,
            checkpoint: None,
            steps: None,
        },
        grid: GridSpec {
            crs_wkt: "GEOGCRS[\"WGS 84\",DATUM[\"World Geodetic System 1984\"]]".into(),
            origin: [-180.0, 90.0],
            cell_size: [0.25, -0.25],
            georeferenced: true,
            tile_size: 256,
            factor: 2,
        },
        data_type: dtype,
        bands: band_specs,
        metadata: BTreeMap::from([("AREA_OR_POINT".into(), "Area".into())]),
        encoding: EncodingSpec {
            compression: Compression::Zstd,
            level: 3,
            predictor: Predictor::default_for(dtype),
        },
        pyramids: vec![PyramidSpec {
            name: "average".into(),
            resampling: Resampling::ALL.into_iter().cycle().take(bands).collect(),
        }],
        extent: Some(PixelRect::new(-300, 20, 1440, 720)),
        all_valid: false,
        time: None,
        index: IndexSpec {
            root: Some(NodeRef { seq: 1, id: 3 }),
            tiles: 12,
            bytes: 123_456,
            root_copy: None,
        },
        sources: None,
    }
}

fn locks() -> Vec<LockInfo> {
    vec![
        LockInfo {
            host: "builder".into(),
            pid: 4242,
            process_start: Some(123_456_789),
            started: "2026-01-01T00:00:00Z".into(),
            writer: "gridstore ingest a.tif".into(),
            damage: None,
        },
        LockInfo {
            host: "other-host.example".into(),
            pid: 1,
            process_start: None,
            started: "2025-06-30T23:59:59Z".into(),
            writer: String::new(),
            damage: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed is a document a writer could write: the parser and its range checks
    /// accept it, and it passes the reference.
    fn seeds_decode<T: Target>(target: &T) {
        for (i, seed) in target.seeds().iter().enumerate() {
            let decoded = target.decode(seed).unwrap_or_else(|| {
                panic!("{} seed {i} is refused", target.name());
            });
            target.check(seed, decoded).unwrap();
        }
    }

    #[test]
    fn every_seed_decodes_and_passes_the_reference() {
        seeds_decode(&ManifestTarget);
        seeds_decode(&SnapshotTarget);
        seeds_decode(&LockTarget);
    }
}
