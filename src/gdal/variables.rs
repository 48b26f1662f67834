//! A file of several variables on one grid (a netCDF with `pr` and `tas`) as one slice:
//! its subdatasets combined into a VRT whose bands are, step by step, each variable's band
//! for that step. The store then holds the variables as its bands.

use std::ffi::CStr;
use std::fmt::Write;

use gdal_sys::GDALDatasetH;

use crate::error::{Error, Result};

use super::cpl::from_c;
use super::ingest::OpenedDataset;

/// What the combination needs to know of one variable.
struct Variable {
    name: String,
    /// The subdataset's connection string.
    source: String,
    size: (i32, i32),
    geotransform: [f64; 6],
    /// GDAL's name of the type.
    dtype: String,
    bands: Vec<Band>,
    srs: Option<String>,
    /// The variable's `time#units` and `time#calendar`.
    time: [Option<String>; 2],
}

struct Band {
    nodata: Option<f64>,
    time: Option<String>,
}

/// The variables of `ds` (a dataset without bands that lists subdatasets) combined into
/// one dataset, or `None` when `ds` has bands or no subdatasets.
///
/// # Safety
/// `ds` must be a valid dataset handle.
pub(crate) unsafe fn combine_variables(
    ds: GDALDatasetH,
    path: &str,
) -> Result<Option<OpenedDataset>> {
    // SAFETY (block): forwarded contract.
    let names = unsafe {
        if gdal_sys::GDALGetRasterCount(ds) > 0 {
            return Ok(None);
        }
        subdataset_names(ds)
    };
    if names.is_empty() {
        return Ok(None);
    }
    let vars: Vec<Variable> = names.iter().map(|n| variable(n)).collect::<Result<_>>()?;
    check_shared_grid(path, &vars)?;
    OpenedDataset::open(&vrt_xml(&vars)).map(Some).map_err(|_| {
        Error::InvalidInput(format!(
            "{path}: cannot combine its variables into one slice; append each variable to \
                 its own store, e.g. {}",
            vars[0].source
        ))
    })
}

/// `SUBDATASET_<n>_NAME` values, in order.
unsafe fn subdataset_names(ds: GDALDatasetH) -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: valid handle; the domain name is a NUL-terminated literal; GDAL owns the list.
    let list = unsafe { gdal_sys::GDALGetMetadata(ds, c"SUBDATASETS".as_ptr()) };
    if list.is_null() {
        return out;
    }
    for i in 0.. {
        // SAFETY: a NULL-terminated list of NUL-terminated strings.
        let item = unsafe { *list.add(i) };
        if item.is_null() {
            break;
        }
        // SAFETY: as above.
        let text = unsafe { CStr::from_ptr(item) }.to_string_lossy();
        if let Some((key, value)) = text.split_once('=') {
            if key.ends_with("_NAME") {
                out.push(value.to_string());
            }
        }
    }
    out
}

/// Opens subdataset `source` and describes it.
fn variable(source: &str) -> Result<Variable> {
    let opened = OpenedDataset::open(source)?;
    let ds = opened.0;
    // SAFETY (block): `ds` is open for the block; band indices are within the count.
    unsafe {
        let mut gt = [0.0; 6];
        gdal_sys::GDALGetGeoTransform(ds, gt.as_mut_ptr());
        let count = gdal_sys::GDALGetRasterCount(ds);
        let mut bands = Vec::new();
        let mut dtype = String::new();
        for b in 1..=count {
            let band = gdal_sys::GDALGetRasterBand(ds, b);
            dtype = from_c(gdal_sys::GDALGetDataTypeName(
                gdal_sys::GDALGetRasterDataType(band),
            ))
            .unwrap_or_default();
            let mut ok = 0;
            let nd = gdal_sys::GDALGetRasterNoDataValue(band, &mut ok);
            let time =
                gdal_sys::GDALGetMetadataItem(band, c"NETCDF_DIM_time".as_ptr(), std::ptr::null());
            bands.push(Band {
                nodata: (ok != 0).then_some(nd),
                time: from_c(time),
            });
        }
        let name = source.rsplit(':').next().unwrap_or(source).to_string();
        Ok(Variable {
            name,
            source: source.to_string(),
            size: (
                gdal_sys::GDALGetRasterXSize(ds),
                gdal_sys::GDALGetRasterYSize(ds),
            ),
            geotransform: gt,
            dtype,
            bands,
            srs: from_c(gdal_sys::GDALGetProjectionRef(ds)).filter(|s| !s.is_empty()),
            time: [c"time#units", c"time#calendar"].map(|k| {
                from_c(gdal_sys::GDALGetMetadataItem(
                    ds,
                    k.as_ptr(),
                    std::ptr::null(),
                ))
            }),
        })
    }
}

/// Variables combine only when they share size, georeferencing, type and time steps.
fn check_shared_grid(path: &str, vars: &[Variable]) -> Result<()> {
    let first = &vars[0];
    let times = |v: &Variable| v.bands.iter().map(|b| b.time.clone()).collect::<Vec<_>>();
    for v in &vars[1..] {
        let same = v.size == first.size
            && v.geotransform == first.geotransform
            && v.dtype == first.dtype
            && times(v) == times(first);
        if !same {
            return Err(Error::InvalidInput(format!(
                "{path}: its variables {} and {} differ in grid, type or time steps, so they \
                 cannot be one store's bands; append each variable to its own store, e.g. \
                 {}",
                first.name, v.name, first.source
            )));
        }
    }
    Ok(())
}

/// The VRT of the combined variables: band `k * n + i` is variable `i`'s band `k`.
fn vrt_xml(vars: &[Variable]) -> String {
    let first = &vars[0];
    let mut x = format!(
        "<VRTDataset rasterXSize=\"{}\" rasterYSize=\"{}\">",
        first.size.0, first.size.1
    );
    if let Some(srs) = &first.srs {
        let _ = write!(x, "<SRS>{}</SRS>", escape(srs));
    }
    let gt: Vec<String> = first
        .geotransform
        .iter()
        .map(|v| format!("{v:e}"))
        .collect();
    let _ = write!(x, "<GeoTransform>{}</GeoTransform><Metadata>", gt.join(","));
    for (k, v) in ["time#units", "time#calendar"].iter().zip(&first.time) {
        if let Some(v) = v {
            let _ = write!(x, "<MDI key=\"{k}\">{}</MDI>", escape(v));
        }
    }
    x.push_str("</Metadata>");
    let type_name = &first.dtype;
    for k in 0..first.bands.len() {
        for v in vars {
            let b = &v.bands[k];
            let _ = write!(
                x,
                "<VRTRasterBand dataType=\"{type_name}\"><Description>{}</Description>",
                escape(&v.name)
            );
            if let Some(nd) = b.nodata {
                let _ = write!(x, "<NoDataValue>{nd:e}</NoDataValue>");
            }
            if let Some(t) = &b.time {
                let _ = write!(
                    x,
                    "<Metadata><MDI key=\"NETCDF_DIM_time\">{}</MDI></Metadata>",
                    escape(t)
                );
            }
            let _ = write!(
                x,
                "<SimpleSource><SourceFilename relativeToVRT=\"0\">{}</SourceFilename>\
                 <SourceBand>{}</SourceBand></SimpleSource></VRTRasterBand>",
                escape(&v.source),
                k + 1
            );
        }
    }
    x.push_str("</VRTDataset>");
    x
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
