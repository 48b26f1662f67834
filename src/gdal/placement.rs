//! Placing a GDAL raster on a store's grid.
//!
//! A source that already lies on the grid (same CRS and cell size, corner on a cell
//! boundary) is read as it is, at an offset. Any other source goes through GDAL's warper: a
//! warped VRT whose pixels are exactly the store's cells over the source's footprint, so
//! that every tile read from it is warped on demand, with the same result as `gdalwarp`
//! onto that grid.

use std::ffi::c_int;

use gdal_sys::GDALDatasetH;

use crate::error::{Error, Result};
use crate::grid::PixelRect;
use crate::ingest::SourceInfo;
use crate::manifest::Manifest;

use super::cpl::{last_error_message, CStringList, QuietErrors};

/// How a source is resampled when it has to be warped onto the store grid: a `gdalwarp -r`
/// method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarpResampling(&'static str);

impl Default for WarpResampling {
    /// Nearest neighbour: values arrive unchanged, which classes and counts need.
    fn default() -> Self {
        WarpResampling("near")
    }
}

const WARP_METHODS: [&str; 14] = [
    "near",
    "bilinear",
    "cubic",
    "cubicspline",
    "lanczos",
    "average",
    "rms",
    "mode",
    "max",
    "min",
    "med",
    "q1",
    "q3",
    "sum",
];

impl WarpResampling {
    /// Parses a `gdalwarp -r` method name (NEAREST is accepted for near).
    pub fn from_name(name: &str) -> Result<WarpResampling> {
        let lower = name.to_ascii_lowercase();
        let lower = if lower == "nearest" {
            "near".to_string()
        } else {
            lower
        };
        match WARP_METHODS.iter().find(|m| **m == lower) {
            Some(m) => Ok(WarpResampling(m)),
            None => Err(Error::option(
                "WARP_RESAMPLING",
                name,
                "one of NEAREST, BILINEAR, CUBIC, CUBICSPLINE, LANCZOS, AVERAGE, RMS, MODE, \
                 MAX, MIN, MED, Q1, Q3, SUM (gdalwarp's -r names)",
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        self.0
    }
}

/// A GDAL dataset whose pixels are store cells: level-0 pixel `(x0 + x, y0 + y)` is its
/// pixel `(x, y)`.
pub struct Placed {
    /// The source itself, or a warped VRT over it that this value owns.
    pub ds: GDALDatasetH,
    owns_ds: bool,
    pub x0: i64,
    pub y0: i64,
    pub width: usize,
    pub height: usize,
}

impl Placed {
    pub fn footprint(&self) -> PixelRect {
        PixelRect::new(
            self.x0,
            self.y0,
            self.x0 + self.width as i64,
            self.y0 + self.height as i64,
        )
    }

    pub fn is_warped(&self) -> bool {
        self.owns_ds
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        if self.owns_ds {
            // SAFETY: the warped VRT was made by `place` and is closed once, here; closing
            // it drops its reference to the source, which its owner closes.
            unsafe { gdal_sys::GDALClose(self.ds) };
        }
    }
}

// SAFETY: a `Placed` is used by one thread at a time (it moves to the reader thread that
// uses it); GDAL dataset handles may change threads between calls.
unsafe impl Send for Placed {}

/// Checks that `source` can go into the store `m` describes without loss, and places it on
/// the store grid (warping it if needed).
///
/// # Safety
/// `ds` must be a valid open dataset that outlives the returned value and is not used by
/// another thread meanwhile.
pub unsafe fn place(
    ds: GDALDatasetH,
    source: &SourceInfo,
    m: &Manifest,
    resampling: WarpResampling,
) -> Result<Placed> {
    check_compatible(source, m)?;
    let name = &source.description;
    let grid = &m.grid;
    let Some(gt) = source.geotransform else {
        if !grid.georeferenced {
            // Neither has a position: the source goes where the store began.
            return Ok(unwarped(ds, source, 0, 0));
        }
        return Err(Error::InvalidInput(format!(
            "{name}: the source has no georeferencing, so there is no telling where it goes \
             in the store. Give it a position first (gdal_translate -a_ullr ... -a_srs ...)"
        )));
    };
    if !grid.georeferenced {
        return Err(Error::InvalidInput(format!(
            "{name}: the store has no georeferencing (it was made from a raster without one), \
             so a georeferenced source cannot be placed in it. Create a georeferenced store \
             with `gridstore create`"
        )));
    }
    // SAFETY: valid dataset per the contract.
    let same_crs = unsafe { same_crs(&source.crs_wkt, &grid.crs_wkt) }?;
    if same_crs {
        if let Some((x0, y0)) = aligned_offset(&gt, grid.origin, grid.cell_size) {
            return Ok(unwarped(ds, source, x0, y0));
        }
    }
    // SAFETY: forwarded contract.
    unsafe { warped(ds, source, m, resampling) }
}

fn unwarped(ds: GDALDatasetH, source: &SourceInfo, x0: i64, y0: i64) -> Placed {
    Placed {
        ds,
        owns_ds: false,
        x0,
        y0,
        width: source.width,
        height: source.height,
    }
}

/// Refuses sources whose bands or values the store cannot hold exactly.
fn check_compatible(source: &SourceInfo, m: &Manifest) -> Result<()> {
    let name = &source.description;
    if source.bands.len() != m.bands.len() {
        return Err(Error::InvalidInput(format!(
            "{name}: the source has {} band(s) and the store {}; select matching bands with \
             gdal_translate -b",
            source.bands.len(),
            m.bands.len()
        )));
    }
    if !source.data_type.fits_in(m.data_type) {
        return Err(Error::InvalidInput(format!(
            "{name}: the source is {} and the store holds {}, which cannot keep every {} \
             value exactly. Convert it first if that loss is acceptable (gdal_translate -ot {})",
            source.data_type.name(),
            m.data_type.name(),
            source.data_type.name(),
            m.data_type.name()
        )));
    }
    Ok(())
}

/// Whether two CRSs (as WKT; empty for none) are the same. A source without a CRS cannot go
/// into a store with one, or the other way round: guessing would misplace data silently.
unsafe fn same_crs(a: &str, b: &str) -> Result<bool> {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ok(true),
        (false, false) => {}
        (true, false) => {
            return Err(Error::InvalidInput(
                "the source has a geotransform but no CRS, so it cannot be placed in the \
                 store's CRS. Assign its CRS first (gdal_translate -a_srs or gdal_edit.py \
                 -a_srs)"
                    .into(),
            ))
        }
        (false, true) => {
            return Err(Error::InvalidInput(
                "the store has no CRS but the source has one; add it to a store created \
                 with a CRS (gridstore create --crs)"
                    .into(),
            ))
        }
    }
    if a == b {
        return Ok(true);
    }
    let (ca, cb) = (c_string(a), c_string(b));
    // SAFETY: SRS handles made here from NUL-terminated WKT, destroyed before returning.
    unsafe {
        let sa = gdal_sys::OSRNewSpatialReference(ca.as_ptr());
        let sb = gdal_sys::OSRNewSpatialReference(cb.as_ptr());
        let same = if sa.is_null() || sb.is_null() {
            false
        } else {
            for s in [sa, sb] {
                gdal_sys::OSRSetAxisMappingStrategy(
                    s,
                    gdal_sys::OSRAxisMappingStrategy::OAMS_TRADITIONAL_GIS_ORDER,
                );
            }
            gdal_sys::OSRIsSame(sa, sb) != 0
        };
        gdal_sys::OSRDestroySpatialReference(sa);
        gdal_sys::OSRDestroySpatialReference(sb);
        Ok(same)
    }
}

fn c_string(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s.replace('\0', " ")).expect("NULs were replaced")
}

/// The level-0 pixel at which a north-up source with geotransform `gt` starts, when its
/// cells are the store's cells; `None` when it would need resampling.
pub fn aligned_offset(gt: &[f64; 6], origin: [f64; 2], cell: [f64; 2]) -> Option<(i64, i64)> {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(f64::MIN_POSITIVE);
    if gt[2] != 0.0 || gt[4] != 0.0 || !close(gt[1], cell[0]) || !close(gt[5], cell[1]) {
        return None;
    }
    let fx = (gt[0] - origin[0]) / cell[0];
    let fy = (gt[3] - origin[1]) / cell[1];
    let (rx, ry) = (fx.round(), fy.round());
    // A thousandth of a cell: well above float noise, far below anything visible.
    if (fx - rx).abs() > 1e-3 || (fy - ry).abs() > 1e-3 || rx.abs() > 1e15 || ry.abs() > 1e15 {
        return None;
    }
    Some((rx as i64, ry as i64))
}

/// Makes a warped VRT of `ds` on the store grid, over the cells its footprint covers.
unsafe fn warped(
    ds: GDALDatasetH,
    source: &SourceInfo,
    m: &Manifest,
    resampling: WarpResampling,
) -> Result<Placed> {
    // SAFETY: forwarded contract.
    let rect = unsafe { store_cells_covered(ds, &source.description, m)? };
    // SAFETY: forwarded contract.
    let vrt = unsafe { warp_onto(ds, &source.description, m, rect, resampling)? };
    Ok(Placed {
        ds: vrt,
        owns_ds: true,
        x0: rect.x0,
        y0: rect.y0,
        width: rect.width() as usize,
        height: rect.height() as usize,
    })
}

/// The level-0 cells of the store that the footprint of `ds` (named `name`) covers, when
/// that is a usable area in the part of the world where the store's CRS is defined.
///
/// # Safety
/// `ds` is a valid dataset handle.
unsafe fn store_cells_covered(ds: GDALDatasetH, name: &str, m: &Manifest) -> Result<PixelRect> {
    let grid = &m.grid;
    // SAFETY: forwarded contract.
    unsafe { check_area_of_use(ds, name, &grid.crs_wkt)? };
    // SAFETY: forwarded contract.
    let extent = match unsafe { extent_in(ds, &grid.crs_wkt) } {
        Ok(e) => e,
        Err(Unplaceable::NoTransformation(why)) => {
            return Err(Error::InvalidInput(format!(
                "{name}: cannot transform from the source's CRS to the store's: {why}"
            )))
        }
        Err(Unplaceable::NoExtent(why)) => {
            return Err(Error::InvalidInput(format!(
                "{name}: the source does not overlap the area where the store's CRS is \
                 defined, so none of it can be placed in the store ({why})"
            )))
        }
    };
    let rect = cells_covering(extent, grid.origin, grid.cell_size);
    let too_big = rect.width() > i32::MAX as i64 / 2 || rect.height() > i32::MAX as i64 / 2;
    if rect.is_empty() || too_big {
        return Err(Error::InvalidInput(format!(
            "{name}: the source covers {} x {} store cells, which is not a usable area; \
             check that its georeferencing and CRS are right",
            rect.width(),
            rect.height()
        )));
    }
    Ok(rect)
}

/// `ds` warped onto the store cells `rect`, as a VRT the caller owns.
///
/// gdalwarp itself makes the warped view (as `gdalwarp -of VRT` would), so a store gets
/// exactly what gdalwarp writes onto the same grid: exact transformation, an alpha band
/// marking where the source has data, its nodata carried over.
///
/// # Safety
/// `ds` is a valid dataset handle, kept open longer than the VRT, which refers to it.
unsafe fn warp_onto(
    ds: GDALDatasetH,
    name: &str,
    m: &Manifest,
    rect: PixelRect,
    resampling: WarpResampling,
) -> Result<GDALDatasetH> {
    let gt = m.georef().geotransform(0, rect.x0, rect.y0);
    if gt[5] >= 0.0 {
        return Err(Error::NotSupported(format!(
            "{name}: the store grid is not north-up, so sources in other grids cannot be \
             warped onto it"
        )));
    }
    let (xmin, ymax) = (gt[0], gt[3]);
    let xmax = xmin + rect.width() as f64 * gt[1];
    let ymin = ymax + rect.height() as f64 * gt[5];
    let args = CStringList::new(
        [
            "-of",
            "VRT",
            "-t_srs",
            &m.grid.crs_wkt,
            "-te",
            &fmt(xmin),
            &fmt(ymin),
            &fmt(xmax),
            &fmt(ymax),
            "-ts",
            &rect.width().to_string(),
            &rect.height().to_string(),
            "-r",
            resampling.name(),
            "-et",
            "0",
            "-dstalpha",
            "-q",
        ]
        .map(str::to_string),
    );
    // SAFETY (whole block): `ds` is valid (contract); the warp app options made here are
    // freed on every path; the VRT GDALWarp returns is the caller's.
    unsafe {
        let opts = gdal_sys::GDALWarpAppOptionsNew(args.as_ptr(), std::ptr::null_mut());
        if opts.is_null() {
            return Err(Error::Gdal(format!(
                "{name}: cannot set up the warp onto the store grid: {}",
                last_error_message()
            )));
        }
        let mut sources = [ds];
        let mut usage_error: c_int = 0;
        let vrt = gdal_sys::GDALWarp(
            c"".as_ptr(),
            std::ptr::null_mut(),
            1,
            sources.as_mut_ptr(),
            opts,
            &mut usage_error,
        );
        gdal_sys::GDALWarpAppOptionsFree(opts);
        if vrt.is_null() {
            return Err(Error::Gdal(format!(
                "{name}: cannot warp the source onto the store grid: {}",
                last_error_message()
            )));
        }
        Ok(vrt)
    }
}

/// A coordinate as text that reads back to the same double.
fn fmt(v: f64) -> String {
    format!("{v:?}")
}

/// Refuses a source that lies wholly outside the area where the store's CRS is defined
/// (its EPSG area of use): projections give nonsense far from their area, and placing
/// data there would scatter it over a huge, meaningless extent.
unsafe fn check_area_of_use(ds: GDALDatasetH, name: &str, store_wkt: &str) -> Result<()> {
    let wkt = c_string(store_wkt);
    // SAFETY (block): the SRS made here is destroyed before returning;
    // `ds` is valid (caller); the area name is owned by the SRS and copied before it goes.
    unsafe {
        let srs = gdal_sys::OSRNewSpatialReference(wkt.as_ptr());
        if srs.is_null() {
            return Ok(());
        }
        let (mut w, mut s, mut e, mut n) = (0.0, 0.0, 0.0, 0.0);
        let mut area: *const std::ffi::c_char = std::ptr::null();
        let known = gdal_sys::OSRGetAreaOfUse(srs, &mut w, &mut s, &mut e, &mut n, &mut area) != 0;
        // The first sentence names the area; the rest lists countries.
        let area_name = super::cpl::from_c(area)
            .and_then(|a| a.split(". ").next().map(str::to_string))
            .unwrap_or_else(|| "its area of use".into());
        gdal_sys::OSRDestroySpatialReference(srs);
        if !known {
            return Ok(());
        }
        // Without a way to lon/lat, the warp itself reports what is wrong.
        let Ok(ext) = extent_in(ds, "OGC:CRS84") else {
            return Ok(());
        };
        let lat = ext[1] <= n && ext[3] >= s;
        let lon = if w <= e {
            ext[0] <= e && ext[2] >= w
        } else {
            // The area crosses the antimeridian.
            ext[2] >= w || ext[0] <= e
        };
        if lat && lon {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "{name}: the source (longitude {:.4} to {:.4}, latitude {:.4} to {:.4}) lies \
             outside the area where the store's CRS is defined ({area_name}: longitude {w} \
             to {e}, latitude {s} to {n}); nothing was written. Put it in a store whose CRS \
             covers it",
            ext[0], ext[2], ext[1], ext[3]
        )))
    }
}

/// Why a source's footprint cannot be found in a CRS.
enum Unplaceable {
    /// GDAL has no transformation from the source's CRS (or position) to it.
    NoTransformation(String),
    /// The transformation fails over the source (it lies outside the CRS's domain).
    NoExtent(String),
}

/// The source's footprint in `crs` (WKT or any GDAL CRS name), as `[minx, miny, maxx,
/// maxy]`: the bounds GDAL would suggest for warping it there.
///
/// # Safety
/// `ds` must be a valid open dataset used by no other thread during the call.
unsafe fn extent_in(ds: GDALDatasetH, crs: &str) -> std::result::Result<[f64; 4], Unplaceable> {
    let options = CStringList::new([format!("DST_SRS={crs}")]);
    // Points that do not transform (off the Earth, outside the CRS's domain) are expected
    // here and left out of the extent; a failure of the whole is reported by the caller.
    let _quiet = QuietErrors::push();
    // SAFETY: `ds` is valid (contract); the transformer is destroyed before returning.
    unsafe {
        let t =
            gdal_sys::GDALCreateGenImgProjTransformer2(ds, std::ptr::null_mut(), options.as_ptr());
        if t.is_null() {
            return Err(Unplaceable::NoTransformation(last_error_message()));
        }
        let mut gt = [0.0f64; 6];
        let (mut px, mut ln) = (0 as c_int, 0 as c_int);
        let mut extent = [0.0f64; 4];
        let err = gdal_sys::GDALSuggestedWarpOutput2(
            ds,
            Some(gdal_sys::GDALGenImgProjTransform),
            t,
            gt.as_mut_ptr(),
            &mut px,
            &mut ln,
            extent.as_mut_ptr(),
            0,
        );
        gdal_sys::GDALDestroyGenImgProjTransformer(t);
        if err != gdal_sys::CPLErr::CE_None || !extent.iter().all(|v| v.is_finite()) {
            return Err(Unplaceable::NoExtent(last_error_message()));
        }
        Ok(extent)
    }
}

/// The store cells (level-0 pixels) that a georeferenced extent `[minx, miny, maxx, maxy]`
/// touches.
pub fn cells_covering(extent: [f64; 4], origin: [f64; 2], cell: [f64; 2]) -> PixelRect {
    // Float noise must not add a row or column of cells the source only grazes.
    const EPS: f64 = 1e-6;
    let xa = (extent[0] - origin[0]) / cell[0];
    let xb = (extent[2] - origin[0]) / cell[0];
    let ya = (extent[1] - origin[1]) / cell[1];
    let yb = (extent[3] - origin[1]) / cell[1];
    PixelRect::new(
        (xa.min(xb) + EPS).floor() as i64,
        (ya.min(yb) + EPS).floor() as i64,
        (xa.max(xb) - EPS).ceil() as i64,
        (ya.max(yb) - EPS).ceil() as i64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_sources_are_placed_by_offset() {
        let gt = [1030.0, 10.0, 0.0, 4980.0, 0.0, -10.0];
        assert_eq!(
            aligned_offset(&gt, [1000.0, 5000.0], [10.0, -10.0]),
            Some((3, 2))
        );
        assert_eq!(
            aligned_offset(&gt, [-1000.0, 6000.0], [10.0, -10.0]),
            Some((203, 102))
        );
        // Half a cell off, or another cell size: warp.
        let off = [1035.0, 10.0, 0.0, 4980.0, 0.0, -10.0];
        assert_eq!(aligned_offset(&off, [1000.0, 5000.0], [10.0, -10.0]), None);
        let coarse = [1030.0, 20.0, 0.0, 4980.0, 0.0, -20.0];
        assert_eq!(
            aligned_offset(&coarse, [1000.0, 5000.0], [10.0, -10.0]),
            None
        );
    }

    #[test]
    fn covering_cells_round_outwards_but_ignore_noise() {
        let r = cells_covering(
            [1005.0, 4900.0, 1100.0, 4995.0],
            [1000.0, 5000.0],
            [10.0, -10.0],
        );
        assert_eq!(r, PixelRect::new(0, 0, 10, 10));
        let exact = cells_covering(
            [1000.0 + 1e-9, 4900.0, 1100.0 - 1e-9, 5000.0],
            [1000.0, 5000.0],
            [10.0, -10.0],
        );
        assert_eq!(exact, PixelRect::new(0, 0, 10, 10));
        let left = cells_covering([-20.0, -20.0, 0.0, 0.0], [0.0, 0.0], [10.0, -10.0]);
        assert_eq!(left, PixelRect::new(-2, 0, 0, 2));
    }
}
