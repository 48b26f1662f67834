//! How slices are converted for a store: to its type, and packed as scaled integers, through
//! an in-memory VRT of the bands of one step.

use std::ffi::CString;

use gdal_sys::GDALDatasetH;

use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::manifest::Manifest;

use super::super::cpl::last_error_message;
use super::AppendOptions;

/// Scale and offset of packed values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packing {
    pub scale: f64,
    pub offset: f64,
}

/// How slices are converted for the store `m` (or a new store): to which type, and packed
/// with which scale, offset and nodata value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Conversion {
    dtype: Option<DataType>,
    packing: Option<(Packing, f64)>,
}

impl Conversion {
    pub(super) fn for_store(opts: &AppendOptions, m: Option<&Manifest>) -> Result<Conversion> {
        let dtype = opts.data_type.or(m.map(|m| m.data_type));
        let stored = m.and_then(|m| {
            let b = m.bands.first()?;
            Some((
                Packing {
                    scale: b.scale?,
                    offset: b.offset.unwrap_or(0.0),
                },
                b.nodata?,
            ))
        });
        let packing = match (opts.packing, stored) {
            (Some(p), _) => {
                let t = dtype.filter(|t| !t.is_float()).ok_or_else(|| {
                    Error::InvalidInput(
                        "packing (--scale, --offset) needs an integer --type, e.g. UInt16".into(),
                    )
                })?;
                if !(p.scale.is_finite() && p.scale != 0.0 && p.offset.is_finite()) {
                    return Err(Error::InvalidInput(format!(
                        "--scale {} --offset {}: the scale must be a non-zero number",
                        p.scale, p.offset
                    )));
                }
                let nodata = m
                    .and_then(|m| m.bands[0].nodata)
                    .unwrap_or(packed_nodata(t));
                Some((p, nodata))
            }
            (None, stored) => stored.filter(|_| dtype.is_some_and(|t| !t.is_float())),
        };
        Ok(Conversion {
            dtype: opts.data_type.or(packing.and(dtype)),
            packing,
        })
    }
}

/// The nodata value of packed integers: the type's largest value (smallest for signed).
fn packed_nodata(t: DataType) -> f64 {
    match t {
        DataType::Byte => 255.0,
        DataType::UInt16 => 65535.0,
        DataType::UInt32 => 4294967295.0,
        DataType::Int16 => -32768.0,
        DataType::Int32 => -2147483648.0,
        _ => f64::NAN,
    }
}

/// A dataset of some bands of a slice, converted to `dtype` if given: the slice itself
/// when that is all of it, else an in-memory VRT.
pub(super) enum BandView {
    Whole(GDALDatasetH),
    Vrt(GDALDatasetH),
}

impl BandView {
    pub(super) fn handle(&self) -> GDALDatasetH {
        match self {
            BandView::Whole(h) | BandView::Vrt(h) => *h,
        }
    }
}

impl Drop for BandView {
    fn drop(&mut self) {
        if let BandView::Vrt(h) = self {
            // SAFETY: made by `band_view`, closed once.
            unsafe { gdal_sys::GDALClose(*h) };
        }
    }
}

pub(super) unsafe fn band_view(
    ds: GDALDatasetH,
    bands: &[usize],
    to: Conversion,
) -> Result<BandView> {
    // SAFETY: valid handle (contract).
    let count = unsafe { gdal_sys::GDALGetRasterCount(ds) }.max(0) as usize;
    let all = bands.iter().copied().eq(1..=count);
    // SAFETY: valid handle (contract); band 1 exists when there are bands.
    let same_type = to.dtype.is_none_or(|t| unsafe {
        count > 0
            && gdal_sys::GDALGetRasterDataType(gdal_sys::GDALGetRasterBand(ds, 1)) as u32
                == t.gdal_code()
    });
    if all && same_type && to.packing.is_none() {
        return Ok(BandView::Whole(ds));
    }
    let mut args: Vec<String> = vec!["-of".into(), "VRT".into()];
    for b in bands {
        args.extend(["-b".into(), b.to_string()]);
    }
    if let Some(t) = to.dtype {
        args.extend(["-ot".into(), t.name().to_string()]);
    }
    if let Some((p, nodata)) = to.packing {
        let (lo, hi) = (p.offset, p.offset + p.scale);
        args.extend([
            "-scale".into(),
            lo.to_string(),
            hi.to_string(),
            "0".into(),
            "1".into(),
        ]);
        args.extend(["-a_scale".into(), p.scale.to_string()]);
        args.extend(["-a_offset".into(), p.offset.to_string()]);
        args.extend(["-a_nodata".into(), nodata.to_string()]);
    }
    let c: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()).expect("no NUL in options"))
        .collect();
    let mut ptrs: Vec<*mut std::ffi::c_char> = c.iter().map(|a| a.as_ptr() as *mut _).collect();
    ptrs.push(std::ptr::null_mut());
    let empty = CString::new("").expect("no NUL");
    // SAFETY: a NULL-terminated list of NUL-terminated options, alive for the call; the
    // options object is freed after use; an empty name makes an in-memory VRT.
    let out = unsafe {
        let o = gdal_sys::GDALTranslateOptionsNew(ptrs.as_mut_ptr(), std::ptr::null_mut());
        let out = gdal_sys::GDALTranslate(empty.as_ptr(), ds, o, std::ptr::null_mut());
        gdal_sys::GDALTranslateOptionsFree(o);
        out
    };
    if out.is_null() {
        return Err(Error::InvalidInput(format!(
            "cannot select bands {bands:?} of the slice: {}",
            last_error_message()
        )));
    }
    Ok(BandView::Vrt(out))
}
