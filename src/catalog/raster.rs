//! Catalog items from rasters GDAL reads: footprint from the valid data, time from the
//! raster's metadata, flat properties from its metadata items, bands from its bands.

use std::collections::BTreeMap;
use std::ffi::c_void;

use serde_json::{json, Value as Json};

use super::footprint::{Crs, Footprint};
use super::item::{check_property_key, Item, Value};
use super::when::TimeRange;
use crate::error::{Error, Result};
use crate::gdal::cpl::last_error_message;
use crate::gdal::ingest::OpenedDataset as Dataset;
use crate::gdal::slice_time::{slice_steps, TimeSource};
use crate::gdal::source::{describe, GMF_ALL_VALID};
use crate::ingest::valid_cells::ValidCells;
use crate::ingest::SourceInfo;
use crate::time::Calendar;
use gdal_sys::GDALDatasetH;

/// The valid-data mask is read at most this many cells on its longer side.
const MASK_CELLS: usize = crate::ingest::valid_cells::MAX_CELLS;

/// How to make an item of a raster.
#[derive(Debug, Clone, Default)]
pub struct RasterOptions {
    pub collection: String,
    /// The item's time; without it, the raster's metadata (netCDF or GRIB band times,
    /// `TIFFTAG_DATETIME`, `ACQUISITIONDATETIME`).
    pub time: Option<TimeRange>,
}

fn open(path: &str) -> Result<Dataset> {
    crate::gdal::crs::register_drivers();
    Dataset::open(path)
}

/// The item of one raster. Its id is the path made absolute (for local files), so that
/// adding the same file again replaces its item.
pub fn raster_item(path: &str, options: &RasterOptions) -> Result<Item> {
    let ds = open(path)?;
    let time = match options.time {
        Some(t) => Some(t.start.zip(t.end).ok_or_else(|| {
            Error::option("time", format!("{t:?}"), "a closed range or an instant")
        })?),
        None => None,
    };
    // SAFETY: ds is open and used by this thread only.
    let mut item = unsafe { dataset_item(ds.0, path, time, None)? };
    if time.is_none() {
        // SAFETY: as above.
        (item.start_us, item.end_us) = unsafe { metadata_time(ds.0, path)? };
    }
    item.collection = options.collection.clone();
    Ok(item)
}

/// The record of a source a write read, for the snapshot's source list (docs/FORMAT.md
/// §12): its item as STAC, without a collection (a catalog gives it the store's). Its time
/// is `time`, else what its metadata says, else `written` (the time of the write), which
/// the property `gridstore:time` = `"written"` then tells. Its footprint is made of `cells`
/// when the write marked them all, else of its mask, read again.
///
/// # Safety
/// `ds` must be a valid, open dataset handle, not used by another thread during the call.
pub unsafe fn source_record(
    ds: GDALDatasetH,
    name: &str,
    time: Option<(i64, i64)>,
    written: i64,
    cells: Option<&ValidCells>,
) -> Result<Json> {
    let cells = cells.filter(|c| c.is_complete());
    // SAFETY: forwarded contract.
    let mut item = unsafe { dataset_item(ds, name, time, cells)? };
    if time.is_none() {
        // SAFETY: forwarded contract.
        match unsafe { metadata_time(ds, name) } {
            Ok((start, end)) => (item.start_us, item.end_us) = (start, end),
            Err(_) => {
                (item.start_us, item.end_us) = (written, written + 1);
                let how = Value::String("written".into());
                item.properties.insert("gridstore:time".into(), how);
            }
        }
    }
    let mut record = item.to_stac();
    if let Some(o) = record.as_object_mut() {
        o.remove("collection");
    }
    Ok(record)
}

/// The item of an open raster named `name`, with its time `time` or, without it, none yet
/// (0 to 1 µs): the callers find it.
///
/// # Safety
/// `ds` must be a valid, open dataset handle, not used by another thread during the call.
unsafe fn dataset_item(
    ds: GDALDatasetH,
    name: &str,
    time: Option<(i64, i64)>,
    cells: Option<&ValidCells>,
) -> Result<Item> {
    // SAFETY: forwarded contract.
    let info = unsafe { describe(ds) }.map_err(|e| in_file(name, e))?;
    let gt = info.geotransform.ok_or_else(|| {
        Error::InvalidInput(format!(
            "{name}: has no georeferencing, so it has no footprint; assign one with \
             gdal_translate -a_ullr / -a_srs"
        ))
    })?;
    if info.crs_wkt.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{name}: has no CRS; assign one with gdal_translate -a_srs"
        )));
    }
    let crs = Crs::from_user(&info.crs_wkt)?;
    let footprint = match cells {
        Some(c) => {
            let (cols, rows) = c.shape();
            let gt = cell_geotransform(gt, info.width, info.height, cols, rows);
            Footprint::from_valid_cells(crs, gt, cols, rows, &c.marked())
        }
        // SAFETY: forwarded contract.
        None => unsafe { footprint(ds, &info, crs, gt) },
    }
    .map_err(|e| in_file(name, e))?;
    let (start_us, end_us) = time.unwrap_or((0, 1));
    let id = std::fs::canonicalize(name)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| name.to_string());
    Ok(Item {
        id: id.clone(),
        collection: String::new(),
        start_us,
        end_us,
        footprint,
        properties: properties(&info),
        extra: Json::Null,
        bands: bands(&info),
        href: Some(id),
    })
}

fn in_file(path: &str, e: Error) -> Error {
    match e {
        Error::InvalidInput(m) if !m.starts_with(path) => {
            Error::InvalidInput(format!("{path}: {m}"))
        }
        other => other,
    }
}

/// The raster's extent when all its pixels are valid, else the polygon of its valid
/// cells on a grid of at most [`MASK_CELLS`] on a side.
///
/// # Safety
/// `ds` must be a valid, open dataset handle, not used by another thread during the call.
unsafe fn footprint(
    ds: GDALDatasetH,
    info: &SourceInfo,
    crs: Crs,
    gt: [f64; 6],
) -> Result<Footprint> {
    let (w, h) = (info.width, info.height);
    // SAFETY: band 1 exists (describe refuses rasters without bands).
    let band = unsafe { gdal_sys::GDALGetRasterBand(ds, 1) };
    // SAFETY: valid band handle.
    let flags = unsafe { gdal_sys::GDALGetMaskFlags(band) };
    if flags & GMF_ALL_VALID != 0 {
        return Footprint::from_valid_cells(crs, cell_geotransform(gt, w, h, 1, 1), 1, 1, &[true]);
    }
    let factor = w.max(h).div_ceil(MASK_CELLS).max(1);
    let (cw, ch) = (w.div_ceil(factor), h.div_ceil(factor));
    let mut buf = vec![0u8; cw * ch];
    let mut extra = gdal_sys::GDALRasterIOExtraArg {
        nVersion: 1,
        eResampleAlg: gdal_sys::GDALRIOResampleAlg::GRIORA_Average,
        pfnProgress: None,
        pProgressData: std::ptr::null_mut(),
        bFloatingPointWindowValidity: 0,
        dfXOff: 0.0,
        dfYOff: 0.0,
        dfXSize: 0.0,
        dfYSize: 0.0,
    };
    // SAFETY: the mask band belongs to the open dataset; buf holds cw * ch bytes, the
    // buffer size given.
    let err = unsafe {
        let mask = gdal_sys::GDALGetMaskBand(band);
        gdal_sys::GDALRasterIOEx(
            mask,
            gdal_sys::GDALRWFlag::GF_Read,
            0,
            0,
            w as i32,
            h as i32,
            buf.as_mut_ptr() as *mut c_void,
            cw as i32,
            ch as i32,
            gdal_sys::GDALDataType::GDT_Byte,
            0,
            0,
            &mut extra,
        )
    };
    if err != gdal_sys::CPLErr::CE_None {
        return Err(Error::Gdal(format!(
            "cannot read the valid-data mask: {}",
            last_error_message()
        )));
    }
    let valid: Vec<bool> = buf.iter().map(|&v| v > 0).collect();
    Footprint::from_valid_cells(crs, cell_geotransform(gt, w, h, cw, ch), cw, ch, &valid)
}

/// The geotransform of a `cw` x `ch` grid of cells covering a `w` x `h` raster.
fn cell_geotransform(gt: [f64; 6], w: usize, h: usize, cw: usize, ch: usize) -> [f64; 6] {
    let (fx, fy) = (w as f64 / cw as f64, h as f64 / ch as f64);
    [gt[0], gt[1] * fx, gt[2] * fy, gt[3], gt[4] * fx, gt[5] * fy]
}

/// The time the raster's metadata gives: its instants' range (end one microsecond after
/// the last instant).
///
/// # Safety
/// `ds` must be a valid, open dataset handle, not used by another thread during the call.
unsafe fn metadata_time(ds: GDALDatasetH, path: &str) -> Result<(i64, i64)> {
    let mut result = None;
    let mut first_error = None;
    for source in [
        TimeSource::Metadata,
        TimeSource::Item("ACQUISITIONDATETIME".into()),
        TimeSource::Item("ACQUISITION_DATETIME".into()),
    ] {
        // SAFETY: ds is open.
        match unsafe { slice_steps(ds, path, &source, Calendar::Standard) } {
            Ok(steps) if !steps.is_empty() => {
                result = Some(steps);
                break;
            }
            Ok(_) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let steps = result.ok_or_else(|| {
        Error::InvalidInput(format!(
            "{path}: says nothing about its time (no netCDF time axis, GRIB valid time, \
             TIFFTAG_DATETIME or ACQUISITIONDATETIME{}); give --time",
            first_error
                .map(|e| e.to_string())
                .filter(|e| !e.contains("says nothing about its time"))
                .map(|e| format!("; {e}"))
                .unwrap_or_default()
        ))
    })?;
    let to_us = |s: &crate::time::DateTime| s.to_seconds(Calendar::Standard).map(|v| v * 1_000_000);
    let first = steps
        .iter()
        .map(|s| to_us(&s.at))
        .collect::<Result<Vec<_>>>()?;
    let start = *first.iter().min().expect("steps are not empty");
    let end = *first.iter().max().expect("steps are not empty") + 1;
    Ok((start, end))
}

/// Flat properties from the dataset's metadata items (numbers parsed, full RFC 3339
/// timestamps as datetimes), and the driver's name as `gdal:driver`.
fn properties(info: &SourceInfo) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (k, v) in &info.metadata {
        if check_property_key(k).is_err() {
            continue;
        }
        let t = v.trim();
        let value = if let Ok(i) = t.parse::<i64>() {
            Value::Int(i)
        } else if let Some(f) = t.parse::<f64>().ok().filter(|f| f.is_finite()) {
            Value::Float(f)
        } else {
            Value::from_json(&json!(t)).unwrap_or_else(|| Value::String(t.to_string()))
        };
        out.insert(k.clone(), value);
    }
    out
}

/// STAC 1.1 `bands`: name, data type, nodata, unit, scale and offset.
fn bands(info: &SourceInfo) -> Json {
    let data_type = stac_data_type(info.data_type.name());
    let list: Vec<Json> = info
        .bands
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut band = json!({
                "name": if b.description.is_empty() { format!("b{}", i + 1) } else { b.description.clone() },
                "data_type": data_type,
            });
            if let Some(n) = b.nodata {
                band["nodata"] = if n.is_nan() { json!("nan") } else if n.is_infinite() {
                    json!(if n > 0.0 { "inf" } else { "-inf" })
                } else {
                    json!(n)
                };
            }
            if !b.unit.is_empty() {
                band["unit"] = json!(b.unit);
            }
            if let Some(s) = b.scale {
                band["raster:scale"] = json!(s);
            }
            if let Some(o) = b.offset {
                band["raster:offset"] = json!(o);
            }
            band
        })
        .collect();
    Json::Array(list)
}

/// STAC's name of a GDAL data type.
fn stac_data_type(gdal: &str) -> String {
    match gdal {
        "Byte" => "uint8".into(),
        "Int8" => "int8".into(),
        other => other.to_ascii_lowercase(),
    }
}
