//! The manifest: the JSON document that describes one snapshot of a store.
//!
//! `gridstore.json` at the top of a store is the manifest of the current snapshot; a commit
//! replaces it atomically. Every snapshot's manifest is also kept as
//! `snapshots/<id>.json`, which is what history and `SNAPSHOT=` read. Everything a reader
//! needs to open the store (grid, bands, extent, levels, the index root) is in this one
//! small document, so opening costs one read whatever the store's size.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::aggregate::Resampling;
use crate::chunk::{self, Encoding};
use crate::codec::{Compression, Predictor};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::grid::{Georef, Layout, PixelRect};
use crate::index::{ChunkNaming, NodeRef};
use crate::text::printable;
use crate::tile::BandValidity;
use crate::time::TimeSpec;

mod validate;

use validate::Refusal;
pub use validate::{
    MAX_COLOR_ENTRIES, MAX_METADATA_ITEMS, MAX_NAME_BYTES, MAX_TEXT_BYTES, MAX_TILE_BYTES,
};

pub const FORMAT_NAME: &str = "gridstore";
/// Bumped whenever a reader of the previous version could misread a store. Version 2 names
/// chunk objects by block of tiles, version 3 with no dot in their names, version 4 stores
/// chunks several to an object, in packs (docs/FORMAT.md §1, §5); stores of earlier
/// versions keep their names and are written without packs.
pub const FORMAT_VERSION: u32 = 4;
pub use crate::keys::{MANIFEST_KEY, SNAPSHOT_PREFIX};
/// The largest snapshot id a store may reach. Ids name objects (`chunks/<id>/`,
/// `index/<id>/`, `snapshots/<id>.json`), so they must never wrap: a commit that would go
/// past this fails before it writes anything. 2^53 - 1 also keeps every id exact in
/// readers that hold JSON numbers as doubles.
pub const MAX_SNAPSHOT_ID: u64 = (1 << 53) - 1;
/// The longest manifest (`gridstore.json` or `snapshots/<id>.json`) read: far beyond what a
/// store writes (a few KiB, more with long metadata), so that a file planted or grown in
/// its place is refused rather than read whole.
pub const MAX_MANIFEST_LEN: usize = 64 << 20;
/// The longest source list a snapshot may have (docs/FORMAT.md §12).
pub const MAX_SOURCE_LIST_LEN: u64 = 256 << 20;

pub fn snapshot_key(id: u64) -> String {
    crate::keys::snapshot(id)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always "gridstore": tells this document apart from other JSON.
    pub format: String,
    pub format_version: u32,
    /// Random identifier given at creation; stays with the store.
    pub store_id: String,
    pub snapshot: SnapshotInfo,
    pub grid: GridSpec,
    pub data_type: DataType,
    pub bands: Vec<BandSpec>,
    /// Dataset metadata (GDAL's default domain).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub encoding: EncodingSpec,
    /// Aggregation pyramids; the first is the one GDAL shows as overviews.
    pub pyramids: Vec<PyramidSpec>,
    /// Level-0 pixels that have ever received data; `None` for an empty store.
    pub extent: Option<PixelRect>,
    /// True when every pixel inside the extent holds data in the bands without nodata, so
    /// GDAL needs no mask band.
    pub all_valid: bool,
    /// The time axis; `None` for a store of one moment (every tile at tick 0).
    #[serde(default)]
    pub time: Option<TimeSpec>,
    pub index: IndexSpec,
    /// The newest source list of this state (docs/FORMAT.md §12), which links to the
    /// earlier ones; none until a write records its sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<SourceListRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub id: u64,
    pub parent: Option<u64>,
    /// UTC, RFC 3339.
    pub created: String,
    /// What wrote this snapshot (tool and arguments).
    pub writer: String,
    pub tiles_written: u64,
    pub tiles_removed: u64,
    /// Set by `gridstore rollback`: the snapshot whose state this one restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores: Option<u64>,
    /// Set by each checkpoint of a `gridstore ingest`, so a rerun can resume after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// The time steps this snapshot wrote and removed (stores with a time axis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<StepChanges>,
}

/// A link to a source list, `sources/<id>/<part>.jsonl` (docs/FORMAT.md §12): the snapshot
/// that wrote it, how many sources it names, its length in bytes and its CRC-32C, all
/// checked on reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceListRef {
    pub id: u64,
    /// Which of the write's lists: a write's sources may take several, each linked to the
    /// one before (part 0 links to the state's list before the write).
    #[serde(default)]
    pub part: u32,
    pub count: u64,
    pub bytes: u64,
    pub crc32c: u32,
}

/// Which time steps a snapshot changed: how many it wrote (new or replaced) and removed,
/// and the first and last of those it wrote, as instants (ISO 8601).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepChanges {
    pub written: u64,
    pub removed: u64,
    pub first: Option<String>,
    pub last: Option<String>,
}

/// How far a multi-commit ingest had got when it committed this snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Digest of the run's inputs (files, their sizes and times, options): a rerun with the
    /// same inputs has the same digest.
    pub run: String,
    /// Batches of tiles committed so far, and in all.
    pub done: u64,
    pub of: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridSpec {
    /// CRS as WKT; empty when the data has none.
    pub crs_wkt: String,
    /// Georeferenced position of the top-left corner of level-0 pixel (0, 0).
    pub origin: [f64; 2],
    /// Level-0 pixel size as in a geotransform (y negative for north-up).
    pub cell_size: [f64; 2],
    /// False for data that came without a geotransform: GDAL then reports none.
    #[serde(default = "yes")]
    pub georeferenced: bool,
    pub tile_size: u32,
    /// Cells per level step in each direction; always 2.
    pub factor: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandSpec {
    #[serde(with = "nodata_serde", default)]
    pub nodata: Option<f64>,
    #[serde(default)]
    pub description: String,
    /// GDAL colour interpretation name (Gray, Red, Palette, ...).
    pub color_interp: String,
    #[serde(default)]
    pub color_table: Option<ColorTable>,
    #[serde(default)]
    pub scale: Option<f64>,
    #[serde(default)]
    pub offset: Option<f64>,
    #[serde(default)]
    pub unit: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl BandSpec {
    /// A plain grey band with only a nodata value (or none) set.
    pub fn gray(nodata: Option<f64>) -> BandSpec {
        BandSpec {
            nodata,
            description: String::new(),
            color_interp: "Gray".into(),
            color_table: None,
            scale: None,
            offset: None,
            unit: String::new(),
            metadata: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColorTable {
    /// GDAL palette interpretation: Gray, RGB, CMYK or HLS.
    pub interp: String,
    pub entries: Vec<[i16; 4]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EncodingSpec {
    pub compression: Compression,
    pub level: i32,
    pub predictor: Predictor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PyramidSpec {
    pub name: String,
    /// One method per band.
    pub resampling: Vec<Resampling>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexSpec {
    pub root: Option<NodeRef>,
    /// Tiles stored in this snapshot, all levels.
    pub tiles: u64,
    /// Bytes of chunk objects in this snapshot.
    pub bytes: u64,
    /// The root node's bytes, base64, when a write on object storage copied them here so
    /// that an open reads the root with the manifest: one request fewer (docs/FORMAT.md
    /// §3). Checked as the node object is; gc and verify check that the two are the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_copy: Option<String>,
}

impl Manifest {
    /// How this store names its chunk objects: fixed by the format version it was
    /// created with.
    pub fn chunk_naming(&self) -> ChunkNaming {
        ChunkNaming::of_format(self.format_version)
    }

    /// Parses and checks a manifest; `path` names it in error messages.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest> {
        // Details quote the manifest (serde names the unknown value it met): escaped.
        let bad = |detail: String| Error::BadManifest {
            path: path.to_path_buf(),
            detail: printable(&detail).into_owned(),
        };
        // Look at the version before the rest, so that a newer store is refused with the
        // right message rather than as a schema error.
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            bad(if e.is_eof() {
                format!("it ends early ({} bytes), as if truncated", bytes.len())
            } else {
                format!("not valid JSON: {e}")
            })
        })?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
            return Err(bad("it has no \"format\": \"gridstore\" entry".into()));
        }
        let version = value
            .get("format_version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| bad("it has no format_version".into()))?;
        if version > FORMAT_VERSION as u64 {
            return Err(Error::NewerFormat {
                path: path.to_path_buf(),
                found: version as u32,
                supported: FORMAT_VERSION,
            });
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let m: Manifest = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| bad(format!("at {}: {}", e.path(), e.inner())))?;
        m.validate(path)?;
        Ok(m)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifests always serialize");
        v.push(b'\n');
        v
    }

    /// Checks every field against the bounds the rest of the code relies on (see
    /// [`validate`]); `path` names the manifest in the error. Writers may call it before
    /// committing, so that they never publish a manifest readers would refuse.
    pub fn validate(&self, path: &Path) -> Result<()> {
        validate::validate(self).map_err(|refusal| match refusal {
            Refusal::Damaged(detail) => Error::BadManifest {
                path: path.to_path_buf(),
                detail: printable(&detail).into_owned(),
            },
            Refusal::NeedsNewer(what) => Error::NotSupported(format!("{}: {what}", path.display())),
        })
    }

    /// Checks a new description of a store (grid, bands, metadata) before a writer takes
    /// it, so that a value no reader would accept is refused when it is set.
    pub fn check_description(&self) -> Result<()> {
        validate::check_description(self).map_err(|refusal| {
            let (Refusal::Damaged(d) | Refusal::NeedsNewer(d)) = refusal;
            Error::InvalidInput(format!("{}; nothing was changed", printable(&d)))
        })
    }

    /// Checks a manifest a writer is about to commit, as [`validate`](Manifest::validate)
    /// checks one read: a write must never publish what readers would refuse (a text over
    /// its bound taken from a source's metadata, say). The error says nothing was committed.
    pub fn check_before_commit(&self) -> Result<()> {
        validate::validate(self).map_err(|refusal| {
            let detail = match refusal {
                Refusal::Damaged(d) | Refusal::NeedsNewer(d) => d,
            };
            Error::InvalidInput(format!(
                "this write would make a manifest that no reader accepts ({}); nothing was \
                 committed",
                printable(&detail)
            ))
        })
    }

    /// The level-0 size of the dataset GDAL shows (see [`Layout`]), or `None` for a store
    /// with no data yet. GDAL holds raster sizes as C `int`s, so a store wider or taller
    /// than `i32::MAX` pixels, which the format allows, is refused here with a message
    /// naming `store`.
    pub fn raster_size(&self, store: &Path) -> Result<Option<(i32, i32)>> {
        let Some(layout) = self.layout() else {
            return Ok(None);
        };
        let (w, h) = layout.level_size(0);
        match (i32::try_from(w), i32::try_from(h)) {
            (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok(Some((w, h))),
            _ => Err(Error::NotSupported(format!(
                "{}: the store is {w} x {h} pixels, more than GDAL can address ({} a side); \
                 the gridstore command line still reads its history and checks it",
                store.display(),
                i32::MAX
            ))),
        }
    }

    pub fn georef(&self) -> Georef {
        Georef {
            crs_wkt: self.grid.crs_wkt.clone(),
            origin: self.grid.origin,
            cell_size: self.grid.cell_size,
        }
    }

    pub fn layout(&self) -> Option<Layout> {
        self.extent
            .map(|e| Layout::for_extent(e, self.grid.tile_size))
    }

    pub fn encoding(&self) -> Encoding {
        Encoding {
            compression: self.encoding.compression,
            level: self.encoding.level,
            predictor: self.encoding.predictor,
        }
    }

    pub fn validity(&self) -> Vec<BandValidity> {
        self.bands
            .iter()
            .map(|b| BandValidity { nodata: b.nodata })
            .collect()
    }

    /// Bytes of one decoded tile, all bands.
    pub fn tile_bytes(&self) -> usize {
        (self.grid.tile_size as usize).pow(2) * self.bands.len() * self.data_type.size()
    }

    pub fn chunk_shape(&self) -> chunk::Expected {
        chunk::Expected {
            dtype: self.data_type,
            bands: self.bands.len(),
            size: self.grid.tile_size as usize,
        }
    }

    /// True when some band has no nodata value, so missing pixels need a mask.
    pub fn uses_mask(&self) -> bool {
        self.bands.iter().any(|b| b.nodata.is_none())
    }
}

fn yes() -> bool {
    true
}

/// Nodata values as JSON: finite numbers as numbers, NaN and infinities as strings (JSON
/// has no literal for them).
mod nodata_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(x) if x.is_nan() => s.serialize_some("nan"),
            Some(x) if x.is_infinite() => s.serialize_some(if *x > 0.0 { "inf" } else { "-inf" }),
            Some(x) => s.serialize_some(x),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Option::<Repr>::deserialize(d)? {
            None => Ok(None),
            Some(Repr::Number(x)) => Ok(Some(x)),
            Some(Repr::Text(t)) => match t.as_str() {
                "nan" => Ok(Some(f64::NAN)),
                "inf" => Ok(Some(f64::INFINITY)),
                "-inf" => Ok(Some(f64::NEG_INFINITY)),
                other => Err(serde::de::Error::custom(format!("bad nodata {other:?}"))),
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Manifest {
        Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            store_id: "test".into(),
            snapshot: SnapshotInfo {
                id: 1,
                parent: None,
                created: "2026-01-01T00:00:00Z".into(),
                writer: "test".into(),
                tiles_written: 0,
                tiles_removed: 0,
                restores: None,
                checkpoint: None,
                steps: None,
            },
            grid: GridSpec {
                crs_wkt: String::new(),
                origin: [0.0, 0.0],
                cell_size: [1.0, -1.0],
                georeferenced: true,
                tile_size: 256,
                factor: 2,
            },
            data_type: DataType::Float32,
            bands: vec![BandSpec::gray(Some(f64::NAN))],
            metadata: BTreeMap::new(),
            encoding: EncodingSpec {
                compression: Compression::Zstd,
                level: 3,
                predictor: Predictor::FloatingPoint,
            },
            pyramids: vec![PyramidSpec {
                name: "average".into(),
                resampling: vec![Resampling::Average],
            }],
            extent: Some(PixelRect::new(0, 0, 100, 100)),
            all_valid: true,
            time: None,
            index: IndexSpec {
                root: None,
                tiles: 0,
                bytes: 0,
                root_copy: None,
            },
            sources: None,
        }
    }

    #[test]
    fn round_trips_including_nan_nodata() {
        let m = sample();
        let back = Manifest::parse(&m.to_json(), Path::new("x")).unwrap();
        assert!(back.bands[0].nodata.unwrap().is_nan());
        let mut a = m.clone();
        let mut b = back.clone();
        a.bands[0].nodata = None;
        b.bands[0].nodata = None;
        assert_eq!(a, b);
    }

    #[test]
    fn floats_survive_the_manifest_bit_for_bit() {
        let mut m = sample();
        m.bands[0].nodata = Some(f32::from_bits(0x60ad78ec) as f64); // 1e20 as a Float32
        m.grid.origin = [288776.25000080315, 9120760.750028737];
        m.grid.cell_size = [28.49999999927454, -0.1 + 0.2];
        let back = Manifest::parse(&m.to_json(), Path::new("x")).unwrap();
        assert_eq!(
            back.bands[0].nodata.unwrap().to_bits(),
            m.bands[0].nodata.unwrap().to_bits()
        );
        assert_eq!(back.grid, m.grid);
    }

    #[test]
    fn newer_versions_are_refused_by_name() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["format_version"] = 99.into();
        v["some_future_field"] = "x".into();
        let e =
            Manifest::parse(v.to_string().as_bytes(), Path::new("s/gridstore.json")).unwrap_err();
        assert!(matches!(e, Error::NewerFormat { found: 99, .. }), "{e}");
        assert!(e.to_string().contains("Upgrade gridstore"));
    }

    #[test]
    fn values_quoted_from_a_manifest_are_escaped() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["data_type"] = "\u{1b}]0;owned\u{7}".into();
        let e = Manifest::parse(v.to_string().as_bytes(), Path::new("m")).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("\\x1b]0;owned\\x07"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn truncation_and_garbage_are_reported() {
        let json = sample().to_json();
        let e = Manifest::parse(&json[..json.len() / 2], Path::new("m")).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = Manifest::parse(b"{\"a\": 1}", Path::new("m")).unwrap_err();
        assert!(e.to_string().contains("format"), "{e}");
        let mut m = sample();
        m.grid.tile_size = 7;
        let e = Manifest::parse(&m.to_json(), Path::new("m")).unwrap_err();
        assert!(e.to_string().contains("grid.tile_size 7"), "{e}");
    }
}
