//! Range checks of a parsed manifest: every number and text the rest of the code trusts.
//!
//! A manifest is the first thing a reader takes from a store, and everything after it
//! (allocations, loops over levels and tiles, the sizes handed to GDAL) is computed from
//! it. Each field is therefore checked here once, against bounds chosen so that the
//! arithmetic done on it later (tile indices as `i32`, pixel coordinates as `i64`, byte
//! counts as `usize`) cannot overflow. A field that names a feature this build does not
//! have yet is refused as such, not as damage.

use crate::dtype::DataType;
use crate::grid::{Layout, PixelRect, MAX_TILE_INDEX};

use super::{
    BandSpec, ColorTable, Manifest, SnapshotInfo, FORMAT_VERSION, MAX_SNAPSHOT_ID,
    MAX_SOURCE_LIST_LEN,
};

/// Longest name-like text: ids, dates, colour interpretations, units, metadata keys.
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest free text: writer names, band descriptions, metadata values, the CRS's WKT.
pub const MAX_TEXT_BYTES: usize = 1 << 20;
/// Most entries of one metadata list (dataset or band).
pub const MAX_METADATA_ITEMS: usize = 65_536;
/// Most colour table entries: one per value of a UInt16 band.
pub const MAX_COLOR_ENTRIES: usize = 65_536;
/// Largest decoded tile, all bands (bytes). Readers and writers hold several at once, one
/// per thread; 2 GiB is 4096 x 4096 Float64 tiles of 16 bands.
pub const MAX_TILE_BYTES: u64 = 1 << 31;
/// The release of gridstore that is to read what this one refuses as "not yet supported".
pub const NEXT_RELEASE: &str = "0.3";

/// Why a manifest is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A value no gridstore writes: the manifest is damaged (or crafted).
    Damaged(String),
    /// A feature a later gridstore will have.
    NeedsNewer(String),
}

type Check = Result<(), Refusal>;

fn damaged(detail: impl Into<String>) -> Check {
    Err(Refusal::Damaged(detail.into()))
}

/// Checks every field of `m`; the message names the field at fault.
pub fn validate(m: &Manifest) -> Check {
    check_reserved(m)?;
    check_identity(m)?;
    check_snapshot(&m.snapshot)?;
    check_description(m)?;
    check_encoding(m)?;
    check_pyramids(m)?;
    check_extent(m)?;
    check_time(m)?;
    check_index(m)?;
    check_sources(m)
}

/// The newest source list was written by this snapshot or an earlier one, and its count
/// and length are possible.
fn check_sources(m: &Manifest) -> Check {
    let Some(list) = &m.sources else {
        return Ok(());
    };
    if !(1..=m.snapshot.id).contains(&list.id) {
        return damaged(format!(
            "sources.id {} is not snapshot.id {} or an earlier one",
            list.id, m.snapshot.id
        ));
    }
    // Each source takes a line of at least `{"id":""}` and a newline.
    if list.bytes > MAX_SOURCE_LIST_LEN || list.count > list.bytes / 10 {
        return damaged(format!(
            "sources says {} source(s) in {} bytes (at most {MAX_SOURCE_LIST_LEN} bytes, at \
             least 10 per source)",
            list.count, list.bytes
        ));
    }
    Ok(())
}

/// The time axis: every text a name, the axis's arithmetic sound, its counts consistent
/// with each other and with the index (each step has a record there).
fn check_time(m: &Manifest) -> Check {
    let Some(t) = &m.time else {
        return Ok(());
    };
    let texts = [
        ("time.calendar", &t.calendar),
        ("time.origin", &t.origin),
        ("time.step", &t.step),
        ("time.units", &t.units),
    ];
    for (field, text) in texts {
        if text.len() > MAX_NAME_BYTES {
            return damaged(format!("{field} is longer than {MAX_NAME_BYTES} bytes"));
        }
    }
    if let Some(b) = &t.bounds {
        if b.before.len() > MAX_NAME_BYTES || b.after.len() > MAX_NAME_BYTES {
            return damaged(format!("time.bounds is longer than {MAX_NAME_BYTES} bytes"));
        }
    }
    if let Err(e) = t.axis() {
        return damaged(e.to_string());
    }
    if t.steps > m.index.tiles {
        return damaged(format!(
            "time.steps is {} but the index holds only {} entries",
            t.steps, m.index.tiles
        ));
    }
    Ok(())
}

/// Checks what a writer describes a store with: its grid, bands and metadata.
pub fn check_description(m: &Manifest) -> Check {
    check_grid(m)?;
    check_bands(m)?;
    check_map("metadata", &m.metadata)
}

/// Features the format reserves room for but this build does not read.
fn check_reserved(m: &Manifest) -> Check {
    let newer = |what: &str| {
        Err(Refusal::NeedsNewer(format!(
            "{what} needs a newer gridstore ({NEXT_RELEASE} or later; this is {})",
            env!("CARGO_PKG_VERSION")
        )))
    };
    if m.pyramids.len() > 1 {
        return newer(&format!(
            "more than one pyramid ({} in \"pyramids\")",
            m.pyramids.len()
        ));
    }
    Ok(())
}

fn check_identity(m: &Manifest) -> Check {
    if !(1..=FORMAT_VERSION).contains(&m.format_version) {
        return damaged(format!(
            "format_version {} is not one of 1 to {FORMAT_VERSION}",
            m.format_version
        ));
    }
    if m.store_id.is_empty() {
        return damaged("store_id is empty");
    }
    check_name("store_id", &m.store_id)?;
    check_map("metadata", &m.metadata)
}

fn check_snapshot(s: &SnapshotInfo) -> Check {
    let id = s.id;
    if !(1..=MAX_SNAPSHOT_ID).contains(&id) {
        return damaged(format!(
            "snapshot.id {id} is outside 1 to {MAX_SNAPSHOT_ID}"
        ));
    }
    // Every id a snapshot refers to was given before it.
    for (field, earlier) in [("parent", s.parent), ("restores", s.restores)] {
        if let Some(e) = earlier.filter(|e| !(1..id).contains(e)) {
            return damaged(format!(
                "snapshot.{field} {e} is not an earlier snapshot than snapshot.id {id}"
            ));
        }
    }
    check_name("snapshot.created", &s.created)?;
    check_text("snapshot.writer", &s.writer)?;
    // tiles_written and tiles_removed are only counted and printed: any value is harmless.
    if let Some(steps) = &s.steps {
        for text in [&steps.first, &steps.last].into_iter().flatten() {
            check_name("snapshot.steps", text)?;
        }
    }
    if let Some(c) = &s.checkpoint {
        check_name("snapshot.checkpoint.run", &c.run)?;
        if c.done == 0 || c.done > c.of {
            return damaged(format!(
                "snapshot.checkpoint says batch {} of {}",
                c.done, c.of
            ));
        }
    }
    Ok(())
}

fn check_grid(m: &Manifest) -> Check {
    let g = &m.grid;
    check_text("grid.crs_wkt", &g.crs_wkt)?;
    if !(crate::grid::MIN_TILE_SIZE..=crate::grid::MAX_TILE_SIZE).contains(&g.tile_size)
        || g.tile_size % 16 != 0
    {
        return damaged(format!(
            "grid.tile_size {} is out of range (a multiple of 16 from {} to {})",
            g.tile_size,
            crate::grid::MIN_TILE_SIZE,
            crate::grid::MAX_TILE_SIZE
        ));
    }
    if g.factor != 2 {
        return damaged(format!("grid.factor {} is not 2", g.factor));
    }
    if !g.origin.iter().all(|v| v.is_finite()) {
        return damaged(format!("grid.origin {:?} is not finite", g.origin));
    }
    // Normal (not subnormal) sizes, so that multiples of them stay exact enough to be
    // georeferenced and dividing by them stays finite.
    if !g.cell_size.iter().all(|v| v.is_normal()) {
        return damaged(format!(
            "grid.cell_size {:?} must be finite and non-zero",
            g.cell_size
        ));
    }
    Ok(())
}

fn check_bands(m: &Manifest) -> Check {
    if m.bands.is_empty() || m.bands.len() > u16::MAX as usize {
        return damaged(format!(
            "bands has {} entries (1 to {} allowed)",
            m.bands.len(),
            u16::MAX
        ));
    }
    let tile_bytes =
        (m.grid.tile_size as u64).pow(2) * m.bands.len() as u64 * m.data_type.size() as u64;
    if tile_bytes > MAX_TILE_BYTES {
        return damaged(format!(
            "a tile of {} bands of {} at {} pixels a side holds {tile_bytes} bytes, more than \
             the {MAX_TILE_BYTES} a store allows",
            m.bands.len(),
            m.data_type.name(),
            m.grid.tile_size
        ));
    }
    for (i, b) in m.bands.iter().enumerate() {
        check_band(&format!("bands[{i}]"), b, m.data_type)?;
    }
    Ok(())
}

fn check_band(at: &str, b: &BandSpec, dtype: DataType) -> Check {
    if let Some(nd) = b.nodata.filter(|nd| !dtype.can_hold(*nd)) {
        return damaged(format!("{at}.nodata {nd} is not a {} value", dtype.name()));
    }
    check_text(&format!("{at}.description"), &b.description)?;
    check_name(&format!("{at}.color_interp"), &b.color_interp)?;
    check_name(&format!("{at}.unit"), &b.unit)?;
    for (field, v) in [("scale", b.scale), ("offset", b.offset)] {
        if let Some(v) = v.filter(|v| !v.is_finite()) {
            return damaged(format!("{at}.{field} {v} is not finite"));
        }
    }
    if let Some(t) = &b.color_table {
        check_color_table(&format!("{at}.color_table"), t)?;
    }
    check_map(&format!("{at}.metadata"), &b.metadata)
}

fn check_color_table(at: &str, t: &ColorTable) -> Check {
    if !["Gray", "RGB", "CMYK", "HLS"].contains(&t.interp.as_str()) {
        return damaged(format!(
            "{at}.interp {:?} is not one of Gray, RGB, CMYK, HLS",
            t.interp
        ));
    }
    if t.entries.len() > MAX_COLOR_ENTRIES {
        return damaged(format!(
            "{at} has {} entries (at most {MAX_COLOR_ENTRIES})",
            t.entries.len()
        ));
    }
    Ok(())
}

fn check_encoding(m: &Manifest) -> Check {
    let e = &m.encoding;
    if let Some((lo, hi)) = e.compression.level_range() {
        if !(lo..=hi).contains(&e.level) {
            return damaged(format!(
                "encoding.level {} is outside {}'s levels {lo} to {hi}",
                e.level,
                e.compression.option_name()
            ));
        }
    }
    // Codecs without levels ignore the number, whatever it is.
    if e.predictor == crate::codec::Predictor::FloatingPoint && !m.data_type.is_float() {
        return damaged(format!(
            "encoding.predictor floating_point does not apply to {} data",
            m.data_type.name()
        ));
    }
    Ok(())
}

fn check_pyramids(m: &Manifest) -> Check {
    let Some(p) = m.pyramids.first() else {
        return damaged("pyramids is empty");
    };
    check_name("pyramids[0].name", &p.name)?;
    if p.resampling.len() != m.bands.len() {
        return damaged(format!(
            "pyramids[0].resampling has {} methods for {} bands (one per band)",
            p.resampling.len(),
            m.bands.len()
        ));
    }
    Ok(())
}

/// The extent stays within `MAX_TILE_INDEX` tiles of the origin in every direction, so
/// that tile indices fit `i32` with room for doubling, and every level up to the one that
/// fits a tile exists. The corners must also map to finite coordinates.
fn check_extent(m: &Manifest) -> Check {
    let Some(e) = m.extent else {
        return Ok(());
    };
    if e.is_empty() {
        return damaged(format!("extent {} is empty; it should be null", show(&e)));
    }
    let bound = MAX_TILE_INDEX * m.grid.tile_size as i64;
    if [e.x0, e.y0, e.x1, e.y1]
        .iter()
        .any(|v| v.unsigned_abs() > bound.unsigned_abs())
    {
        return damaged(format!(
            "extent {} reaches beyond {bound} pixels from the origin ({MAX_TILE_INDEX} tiles \
             of {} pixels), further than any store may grow",
            show(&e),
            m.grid.tile_size
        ));
    }
    let layout = Layout::for_extent(e, m.grid.tile_size);
    let (w, h) = layout.level_size(layout.top);
    if w > m.grid.tile_size as i64 || h > m.grid.tile_size as i64 {
        return damaged(format!(
            "extent {} needs more levels than a store may have",
            show(&e)
        ));
    }
    // Both corners of the dataset, and the pixel size of its top level.
    let geo = m.georef();
    let near = geo.geotransform(0, layout.base.x0, layout.base.y0);
    let far = geo.geotransform(0, layout.base.x1, layout.base.y1);
    let top = geo.geotransform(layout.top, 0, 0);
    if ![near, far, top].iter().flatten().all(|v| v.is_finite()) {
        return damaged(format!(
            "extent {} lies beyond the range of coordinates at this origin and cell size",
            show(&e)
        ));
    }
    Ok(())
}

fn check_index(m: &Manifest) -> Check {
    let ix = &m.index;
    if let Some(root) = ix.root {
        if !(1..=m.snapshot.id).contains(&root.seq) {
            return damaged(format!(
                "index.root names snapshot {}, not one of 1 to snapshot.id {}",
                root.seq, m.snapshot.id
            ));
        }
    } else if ix.tiles != 0 {
        return damaged(format!(
            "index.tiles is {} but index.root is null",
            ix.tiles
        ));
    }
    Ok(())
}

fn show(e: &PixelRect) -> String {
    format!("x {}..{}, y {}..{}", e.x0, e.x1, e.y0, e.y1)
}

fn check_name(field: &str, s: &str) -> Check {
    check_len(field, s, MAX_NAME_BYTES)
}

fn check_text(field: &str, s: &str) -> Check {
    check_len(field, s, MAX_TEXT_BYTES)
}

fn check_len(field: &str, s: &str, most: usize) -> Check {
    if s.len() > most {
        return damaged(format!(
            "{field} is {} bytes long (at most {most})",
            s.len()
        ));
    }
    Ok(())
}

fn check_map(field: &str, map: &std::collections::BTreeMap<String, String>) -> Check {
    if map.len() > MAX_METADATA_ITEMS {
        return damaged(format!(
            "{field} has {} entries (at most {MAX_METADATA_ITEMS})",
            map.len()
        ));
    }
    for (k, v) in map {
        check_name(&format!("{field} key"), k)?;
        check_text(&format!("{field}[{k:?}]"), v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{json, Value};

    use crate::error::Error;
    use crate::manifest::tests::sample;
    use crate::manifest::Manifest;

    /// The sample manifest as JSON, changed by `edit`, parsed: the error's message.
    fn refused(edit: impl FnOnce(&mut Value)) -> Error {
        let mut v: Value = serde_json::from_slice(&sample().to_json()).unwrap();
        edit(&mut v);
        Manifest::parse(v.to_string().as_bytes(), Path::new("s/gridstore.json"))
            .expect_err("the changed manifest was accepted")
    }

    /// Asserts the change makes a damaged manifest whose message names `field`.
    fn damaged_at(field: &str, edit: impl FnOnce(&mut Value)) {
        let e = refused(edit);
        assert!(matches!(e, Error::BadManifest { .. }), "{field}: {e}");
        assert!(e.to_string().contains(field), "{field}: {e}");
    }

    #[test]
    fn the_sample_passes() {
        Manifest::parse(&sample().to_json(), Path::new("m")).unwrap();
    }

    #[test]
    fn identity_and_snapshot_ids_are_bounded() {
        damaged_at("format_version 0", |v| v["format_version"] = 0.into());
        damaged_at("store_id is empty", |v| v["store_id"] = "".into());
        damaged_at("snapshot.id 0", |v| v["snapshot"]["id"] = 0.into());
        damaged_at("snapshot.id", |v| v["snapshot"]["id"] = (1u64 << 53).into());
        damaged_at("snapshot.parent 1", |v| v["snapshot"]["parent"] = 1.into());
        damaged_at("snapshot.parent 0", |v| {
            v["snapshot"]["id"] = 5.into();
            v["snapshot"]["parent"] = 0.into();
        });
        damaged_at("snapshot.restores 9", |v| {
            v["snapshot"]["id"] = 5.into();
            v["snapshot"]["restores"] = 9.into();
        });
        damaged_at("snapshot.checkpoint", |v| {
            v["snapshot"]["checkpoint"] = json!({"run": "r", "done": 3, "of": 2});
        });
    }

    #[test]
    fn texts_are_bounded() {
        let long = "x".repeat(super::MAX_TEXT_BYTES + 1);
        let name = "n".repeat(super::MAX_NAME_BYTES + 1);
        damaged_at("snapshot.writer", |v| {
            v["snapshot"]["writer"] = long.clone().into()
        });
        damaged_at("snapshot.created", |v| {
            v["snapshot"]["created"] = name.clone().into()
        });
        damaged_at("grid.crs_wkt", |v| {
            v["grid"]["crs_wkt"] = long.clone().into()
        });
        damaged_at("bands[0].description", |v| {
            v["bands"][0]["description"] = long.clone().into()
        });
        damaged_at("bands[0].unit", |v| {
            v["bands"][0]["unit"] = name.clone().into()
        });
        damaged_at("metadata key", |v| {
            v["metadata"] = json!({ name.clone(): "x" })
        });
        damaged_at("bands[0].metadata[\"k\"]", |v| {
            v["bands"][0]["metadata"] = json!({ "k": long.clone() })
        });
        damaged_at("pyramids[0].name", |v| {
            v["pyramids"][0]["name"] = name.clone().into()
        });
    }

    #[test]
    fn grid_numbers_are_finite_and_in_range() {
        damaged_at("grid.tile_size 8", |v| v["grid"]["tile_size"] = 8.into());
        damaged_at("grid.tile_size 8192", |v| {
            v["grid"]["tile_size"] = 8192.into()
        });
        damaged_at("grid.factor 3", |v| v["grid"]["factor"] = 3.into());
        damaged_at("grid.cell_size", |v| {
            v["grid"]["cell_size"] = json!([0.0, -1.0])
        });
        damaged_at("grid.cell_size", |v| {
            v["grid"]["cell_size"] = json!([1e-320, -1.0])
        });
        // A finite origin whose extent's corner is not.
        damaged_at("range of coordinates", |v| {
            v["grid"]["origin"] = json!([1.7e308, 0.0]);
            v["grid"]["cell_size"] = json!([1e307, -1.0]);
        });
    }

    #[test]
    fn bands_and_encoding_are_checked() {
        damaged_at("bands has 0 entries", |v| v["bands"] = json!([]));
        damaged_at("bytes, more than", |v| {
            let band = v["bands"][0].clone();
            v["bands"] = Value::Array(vec![band; 20]);
            v["pyramids"][0]["resampling"] = json!(vec!["average"; 20]);
            v["grid"]["tile_size"] = 4096.into();
            v["data_type"] = "Float64".into();
        });
        damaged_at("bands[0].nodata -1 is not a Byte value", |v| {
            v["data_type"] = "Byte".into();
            v["encoding"]["predictor"] = "horizontal".into();
            v["bands"][0]["nodata"] = (-1).into();
        });
        damaged_at("bands[0].scale", |v| v["bands"][0]["scale"] = "inf".into());
        damaged_at("bands[0].color_table.interp", |v| {
            v["bands"][0]["color_table"] = json!({"interp": "Sepia", "entries": []});
        });
        damaged_at("encoding.level 40", |v| v["encoding"]["level"] = 40.into());
        damaged_at("encoding.predictor", |v| {
            v["data_type"] = "Int16".into();
            v["bands"][0]["nodata"] = Value::Null;
        });
        damaged_at("pyramids[0].resampling", |v| {
            v["pyramids"][0]["resampling"] = json!(["average", "min"]);
        });
        damaged_at("pyramids is empty", |v| v["pyramids"] = json!([]));
    }

    #[test]
    fn an_extent_too_far_for_tile_indices_is_damage() {
        // The crafted case of a zero-width dataset: x1 - x0 overflows i64 without the bound.
        damaged_at("extent x -4611686018427387904..4611686018427387904", |v| {
            v["extent"] = json!({"x0": -(1i64 << 62), "y0": 0, "x1": 1i64 << 62, "y1": 10});
        });
        let edge = super::MAX_TILE_INDEX * 256;
        damaged_at("further than any store may grow", |v| {
            v["extent"] = json!({"x0": 0, "y0": 0, "x1": edge + 1, "y1": 10});
        });
        damaged_at("it should be null", |v| {
            v["extent"] = json!({"x0": 5, "y0": 0, "x1": 5, "y1": 10});
        });
        // The end of the i64 range, whose magnitude i64 cannot hold (found by fuzzing).
        damaged_at("further than any store may grow", |v| {
            v["extent"] = json!({"x0": i64::MIN, "y0": 0, "x1": 5, "y1": 10});
        });
        // The largest extent passes, and every level's numbers are sound.
        let mut m = sample();
        m.extent = Some(crate::grid::PixelRect::new(-edge, -edge, edge, edge));
        let back = Manifest::parse(&m.to_json(), Path::new("m")).unwrap();
        let layout = back.layout().unwrap();
        assert!(layout.level_size(layout.top).0 <= 256);
    }

    #[test]
    fn index_counts_fit_the_root() {
        damaged_at("index.tiles is 5 but index.root is null", |v| {
            v["index"]["tiles"] = 5.into()
        });
        damaged_at("index.root names snapshot 2", |v| {
            v["index"] = json!({"root": {"seq": 2, "id": 0}, "tiles": 1, "bytes": 10});
        });
    }

    #[test]
    fn a_time_axis_is_checked_field_by_field() {
        let axis = json!({"kind": "regular", "calendar": "standard",
            "origin": "2024-01-01T00:00:00Z", "step": "PT5M",
            "units": "minutes since 2024-01-01T00:00:00Z", "steps": 0,
            "first": null, "last": null});
        let mut v: Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["time"] = axis.clone();
        let ok = Manifest::parse(v.to_string().as_bytes(), Path::new("m")).unwrap();
        assert!(ok.time.is_some());
        for (detail, edit) in [
            ("calendar", json!({"calendar": "julian"})),
            ("time step", json!({"step": "PT0S"})),
            ("do not agree", json!({"steps": 1})),
            ("time units", json!({"units": "months since 2024-01-01"})),
            ("longer than", json!({"origin": "9".repeat(2000)})),
            (
                "index holds only",
                json!({"steps": 2, "first": 0, "last": 9}),
            ),
        ] {
            damaged_at(detail, |v| {
                let mut a = axis.clone();
                for (k, x) in edit.as_object().unwrap() {
                    a[k] = x.clone();
                }
                v["time"] = a;
            });
        }
    }

    #[test]
    fn features_of_later_versions_are_refused_by_name() {
        let e = refused(|v| {
            let p = v["pyramids"][0].clone();
            v["pyramids"] = json!([p.clone(), p]);
        });
        assert!(e.to_string().contains("more than one pyramid"), "{e}");
        assert!(matches!(e, Error::NotSupported(_)), "{e}");
        assert!(e.to_string().contains("0.3 or later"), "{e}");
    }

    #[test]
    fn raster_size_refuses_what_gdal_cannot_address() {
        let mut m = sample();
        assert_eq!(m.raster_size(Path::new("s")).unwrap(), Some((100, 100)));
        let wide = 3i64 << 30;
        m.extent = Some(crate::grid::PixelRect::new(0, 0, wide, 10));
        m.validate(Path::new("s")).unwrap();
        let e = m.raster_size(Path::new("s")).unwrap_err();
        assert!(matches!(e, Error::NotSupported(_)), "{e}");
        assert!(e.to_string().contains("3221225472 x 10 pixels"), "{e}");
        m.extent = None;
        assert_eq!(m.raster_size(Path::new("s")).unwrap(), None);
    }
}
