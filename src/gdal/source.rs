//! Reading a GDAL dataset: what it is (size, georeferencing, bands), and its pixels in
//! strips for the ingest.

use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};

use gdal_sys::{GDALDatasetH, GDALRasterBandH};

use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ingest::{RasterSource, SourceInfo, Window};
use crate::manifest::{BandSpec, ColorTable};

use super::cpl::{from_c, from_c_list, last_error_message};

// Mask flags of gdal.h (macros, so not in the generated bindings).
pub const GMF_ALL_VALID: c_int = 0x01;
pub const GMF_PER_DATASET: c_int = 0x02;
pub const GMF_ALPHA: c_int = 0x04;
pub const GMF_NODATA: c_int = 0x08;

fn band(ds: GDALDatasetH, i: usize) -> GDALRasterBandH {
    // SAFETY: callers pass a valid dataset and an index below its band count.
    unsafe { gdal_sys::GDALGetRasterBand(ds, i as c_int + 1) }
}

/// Describes an open GDAL dataset, as GDAL reports it (see [`drop_impossible_nodata`]).
///
/// # Safety
/// `ds` must be a valid, open dataset handle, not used by another thread during the call.
pub unsafe fn describe(ds: GDALDatasetH) -> Result<SourceInfo> {
    // SAFETY (whole function): `ds` is valid per the contract; every band handle comes from
    // GDALGetRasterBand with an index below the band count; strings GDAL returns are copied
    // before the next call that could invalidate them.
    unsafe {
        let width = gdal_sys::GDALGetRasterXSize(ds) as usize;
        let height = gdal_sys::GDALGetRasterYSize(ds) as usize;
        let count = gdal_sys::GDALGetRasterCount(ds) as usize;
        if count == 0 {
            return Err(Error::InvalidInput(
                "the source has no raster bands (is it a vector dataset, or a container \
                 of subdatasets? open one of its subdatasets instead)"
                    .into(),
            ));
        }
        let code = gdal_sys::GDALGetRasterDataType(band(ds, 0));
        let data_type = DataType::from_gdal_code(code)?;
        for i in 1..count {
            let other = gdal_sys::GDALGetRasterDataType(band(ds, i));
            if other != code {
                return Err(Error::NotSupported(format!(
                    "the source's bands have different data types (band 1 is {}, band {} is \
                     {}); a store holds one type: convert with gdal_translate -ot",
                    data_type.name(),
                    i + 1,
                    DataType::from_gdal_code(other)
                        .map(|t| t.name())
                        .unwrap_or("another type")
                )));
            }
        }
        let mut gt = [0.0f64; 6];
        let has_gt =
            gdal_sys::GDALGetGeoTransform(ds, gt.as_mut_ptr()) == gdal_sys::CPLErr::CE_None;
        let crs_wkt = crs_wkt(ds);
        let bands = (0..count).map(|i| band_spec(band(ds, i))).collect();
        let metadata = metadata_map(gdal_sys::GDALGetMetadata(ds, std::ptr::null()));
        let description = from_c(gdal_sys::GDALGetDescription(ds)).unwrap_or_default();
        Ok(SourceInfo {
            description,
            width,
            height,
            data_type,
            geotransform: has_gt.then_some(gt),
            crs_wkt,
            bands,
            metadata,
        })
    }
}

/// The dataset's CRS as WKT2, which keeps compound and vertical CRSs whole.
unsafe fn crs_wkt(ds: GDALDatasetH) -> String {
    // SAFETY: `ds` is valid (caller); the SRS handle is owned by the dataset and only read;
    // the exported string is freed with VSIFree as GDAL requires.
    unsafe {
        let srs = gdal_sys::GDALGetSpatialRef(ds);
        if srs.is_null() {
            return String::new();
        }
        let options = super::cpl::CStringList::new(["FORMAT=WKT2_2019".to_string()]);
        let mut out: *mut std::ffi::c_char = std::ptr::null_mut();
        let err = gdal_sys::OSRExportToWktEx(srs, &mut out, options.as_ptr() as *const *const _);
        let wkt = if err == 0 { from_c(out) } else { None };
        gdal_sys::VSIFree(out as *mut c_void);
        wkt.unwrap_or_default()
    }
}

unsafe fn band_spec(b: GDALRasterBandH) -> BandSpec {
    // SAFETY: `b` is a valid band handle (caller); returned strings are copied at once.
    unsafe {
        let mut ok: c_int = 0;
        let nodata = gdal_sys::GDALGetRasterNoDataValue(b, &mut ok);
        let nodata = (ok != 0).then_some(nodata);
        let interp = gdal_sys::GDALGetRasterColorInterpretation(b);
        let color_interp = from_c(gdal_sys::GDALGetColorInterpretationName(interp))
            .unwrap_or_else(|| "Undefined".into());
        let table = gdal_sys::GDALGetRasterColorTable(b);
        let color_table = (!table.is_null()).then(|| {
            let n = gdal_sys::GDALGetColorEntryCount(table);
            let entries = (0..n)
                .map(|i| {
                    let e = &*gdal_sys::GDALGetColorEntry(table, i);
                    [e.c1, e.c2, e.c3, e.c4]
                })
                .collect();
            let interp = gdal_sys::GDALGetPaletteInterpretation(table);
            ColorTable {
                interp: from_c(gdal_sys::GDALGetPaletteInterpretationName(interp))
                    .unwrap_or_else(|| "RGB".into()),
                entries,
            }
        });
        let scale = gdal_sys::GDALGetRasterScale(b, &mut ok);
        let scale = (ok != 0 && scale != 1.0).then_some(scale);
        let offset = gdal_sys::GDALGetRasterOffset(b, &mut ok);
        let offset = (ok != 0 && offset != 0.0).then_some(offset);
        BandSpec {
            nodata,
            description: from_c(gdal_sys::GDALGetDescription(b)).unwrap_or_default(),
            color_interp,
            color_table,
            scale,
            offset,
            unit: from_c(gdal_sys::GDALGetRasterUnitType(b)).unwrap_or_default(),
            metadata: metadata_map(gdal_sys::GDALGetMetadata(b, std::ptr::null())),
        }
    }
}

/// Drops the nodata values that no pixel of the source's type can equal: they mark no
/// pixel, so every pixel of such a band is data, and the store keeps only nodata values
/// its type holds. Returns one sentence per dropped value, for the caller to warn with.
pub fn drop_impossible_nodata(info: &mut SourceInfo) -> Vec<String> {
    let dtype = info.data_type;
    let name = &info.description;
    info.bands
        .iter_mut()
        .enumerate()
        .filter_map(|(i, band)| {
            let nodata = band.nodata.filter(|nd| !dtype.can_hold(*nd))?;
            band.nodata = None;
            Some(format!(
                "{name}: band {}'s nodata value {nodata} cannot occur in a {} band, so it \
                 marks no pixel; it was dropped, and every pixel of the band is read as data",
                i + 1,
                dtype.name()
            ))
        })
        .collect()
}

pub(crate) unsafe fn metadata_map(list: *mut *mut std::ffi::c_char) -> BTreeMap<String, String> {
    // SAFETY: GDAL metadata lists are NULL-terminated lists of strings (caller passes one
    // straight from GDALGetMetadata).
    unsafe { from_c_list(list) }
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// A GDAL dataset as a [`RasterSource`]. It borrows the handle; the caller closes it.
pub struct GdalSource {
    ds: GDALDatasetH,
    width: usize,
    height: usize,
    bands: usize,
    data_type: DataType,
    mask: Option<GDALRasterBandH>,
    /// The source's block size (width, height) in pixels.
    block: (usize, usize),
}

impl GdalSource {
    /// # Safety
    /// `ds` must stay open, and unused by anyone else, for the life of the source.
    pub unsafe fn new(ds: GDALDatasetH, info: &SourceInfo) -> GdalSource {
        // SAFETY: valid handle per the contract. A per-dataset mask (or alpha band) marks
        // missing pixels beyond nodata; masks derived from nodata need no separate read.
        let mask = unsafe {
            let b0 = band(ds, 0);
            let flags = gdal_sys::GDALGetMaskFlags(b0);
            let per_dataset = flags & (GMF_PER_DATASET | GMF_ALPHA) != 0;
            (per_dataset && flags & (GMF_ALL_VALID | GMF_NODATA) == 0)
                .then(|| gdal_sys::GDALGetMaskBand(b0))
        };
        let mut block = (0 as c_int, 0 as c_int);
        // SAFETY: valid band handle and two writable ints.
        unsafe { gdal_sys::GDALGetBlockSize(band(ds, 0), &mut block.0, &mut block.1) };
        GdalSource {
            ds,
            width: info.width,
            height: info.height,
            bands: info.bands.len(),
            data_type: info.data_type,
            mask,
            block: (block.0.max(1) as usize, block.1.max(1) as usize),
        }
    }
}

impl GdalSource {
    /// Takes the validity of every pixel from band `index` (0-based; nonzero is data), as
    /// for the alpha band of a warped view, which GDAL does not report as a mask.
    pub fn with_mask_band(mut self, index: usize) -> GdalSource {
        self.mask = Some(band(self.ds, index));
        self
    }

    /// Reads pixels converted to `dtype` (a type that holds the source's values exactly).
    pub fn reading_as(mut self, dtype: DataType) -> GdalSource {
        self.data_type = dtype;
        self
    }
}

impl RasterSource for GdalSource {
    fn width(&self) -> usize {
        self.width
    }

    fn height(&self) -> usize {
        self.height
    }

    fn band_count(&self) -> usize {
        self.bands
    }

    fn data_type(&self) -> DataType {
        self.data_type
    }

    fn has_mask(&self) -> bool {
        self.mask.is_some()
    }

    fn read_window(
        &mut self,
        win: Window,
        size: usize,
        band_stride: usize,
        data: &mut [u8],
        mask: Option<&mut [u8]>,
    ) -> Result<()> {
        let dsize = self.data_type.size();
        assert!(win.w <= size && win.h * size <= band_stride);
        assert!(data.len() >= ((self.bands - 1) * band_stride + win.h * size) * dsize);
        // SAFETY: the window lies inside the source; with these spacings (pixel, line,
        // band) GDAL writes rows `size` samples apart and bands `band_stride` apart, all
        // within `data` (checked above).
        let err = unsafe {
            gdal_sys::GDALDatasetRasterIOEx(
                self.ds,
                gdal_sys::GDALRWFlag::GF_Read,
                win.x as c_int,
                win.y as c_int,
                win.w as c_int,
                win.h as c_int,
                data.as_mut_ptr() as *mut c_void,
                win.w as c_int,
                win.h as c_int,
                self.data_type.gdal_code(),
                self.bands as c_int,
                std::ptr::null_mut(),
                dsize as i64,
                (size * dsize) as i64,
                (band_stride * dsize) as i64,
                std::ptr::null_mut(),
            )
        };
        if err != gdal_sys::CPLErr::CE_None {
            return Err(Error::Gdal(format!(
                "reading source pixels ({}, {}) to ({}, {}): {}",
                win.x,
                win.y,
                win.x + win.w,
                win.y + win.h,
                last_error_message()
            )));
        }
        if let (Some(mask_band), Some(mask)) = (self.mask, mask) {
            assert!(mask.len() >= win.h * size);
            // SAFETY: as above, one byte per pixel, rows `size` apart.
            let err = unsafe {
                gdal_sys::GDALRasterIOEx(
                    mask_band,
                    gdal_sys::GDALRWFlag::GF_Read,
                    win.x as c_int,
                    win.y as c_int,
                    win.w as c_int,
                    win.h as c_int,
                    mask.as_mut_ptr() as *mut c_void,
                    win.w as c_int,
                    win.h as c_int,
                    gdal_sys::GDALDataType::GDT_Byte,
                    1,
                    size as i64,
                    std::ptr::null_mut(),
                )
            };
            if err != gdal_sys::CPLErr::CE_None {
                return Err(Error::Gdal(format!(
                    "reading the source mask: {}",
                    last_error_message()
                )));
            }
        }
        Ok(())
    }

    fn release(&mut self, tile_size: usize, row_done: bool) {
        // Blocks that nest inside tiles are never read again once their tile is done; other
        // layouts (strips, blocks wider than tiles) are kept until the row of tiles is.
        let nested = self.block.0 < self.width
            && tile_size % self.block.0 == 0
            && tile_size % self.block.1 == 0;
        if row_done || nested {
            // Drop the source's cached blocks, so memory stays at a few blocks (or one row
            // of tiles) instead of growing with the raster.
            // SAFETY: valid handle; the source is read-only, so nothing dirty is written.
            unsafe { gdal_sys::GDALFlushCache(self.ds) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodata_values_an_integer_type_cannot_hold_cannot_occur() {
        for (nd, dtype) in [
            (-1.0, DataType::Byte),
            (256.0, DataType::Byte),
            (0.5, DataType::UInt16),
            (f64::NAN, DataType::Int16),
            (-32769.0, DataType::Int16),
            (4294967296.0, DataType::UInt32),
            (f64::INFINITY, DataType::Int32),
        ] {
            assert!(!dtype.can_hold(nd), "{nd} in {dtype:?}");
        }
        for (nd, dtype) in [
            (0.0, DataType::Byte),
            (255.0, DataType::Byte),
            (-32768.0, DataType::Int16),
            (i32::MIN as f64, DataType::Int32),
            (f64::NAN, DataType::Float32),
            (-1e300, DataType::Float64),
        ] {
            assert!(dtype.can_hold(nd), "{nd} in {dtype:?}");
        }
    }
}
