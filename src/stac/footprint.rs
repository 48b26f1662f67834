//! Where a store lies, as STAC wants it: its EPSG code, and its footprint in EPSG:4326
//! (RFC 7946 GeoJSON, cut at the antimeridian, correct over the poles).
//!
//! The footprint is the rectangle of the store's extent in its own CRS with every edge
//! densified, transformed, and cut at the antimeridian on its coordinates
//! ([`crate::catalog::antimeridian`]), which splits a ring that crosses 180° into parts
//! and closes a ring around a pole along its latitude; what that declines goes through
//! GDAL's geometry transformer with `WRAPDATELINE=YES`. (GDAL 3.6's transformer leaves
//! some polar stereographic rectangles across 180° whole, spanning the globe.)

use std::ffi::{c_void, CString};

use gdal_sys::{OGRGeometryH, OGRSpatialReferenceH};
use serde_json::Value;

use crate::catalog::antimeridian;
use crate::catalog::outline;
use crate::catalog::wkb::Polygons;
use crate::error::{Error, Result};
use crate::gdal::cpl::{from_c, last_error_message, CStringList};

/// Points added along each edge of the extent before it is transformed, so that edges
/// that curve in EPSG:4326 (long UTM edges, polar grids) are followed closely.
const POINTS_PER_EDGE: usize = 64;
/// Points of the transformed footprint closer than this (degrees, about 1 cm) to the line
/// through their neighbours are dropped: straight edges keep only their ends.
const SIMPLIFY_DEGREES: f64 = 1e-7;

/// A spatial reference handle, destroyed on drop.
struct Srs(OGRSpatialReferenceH);

impl Srs {
    fn from_wkt(wkt: &str) -> Result<Srs> {
        let c = CString::new(wkt)
            .map_err(|_| Error::InvalidInput("the store's CRS holds a NUL byte".into()))?;
        // SAFETY: OSRNewSpatialReference copies the string; a null result is checked.
        let h = unsafe { gdal_sys::OSRNewSpatialReference(c.as_ptr()) };
        if h.is_null() {
            return Err(Error::InvalidInput(format!(
                "GDAL cannot read the store's CRS ({})",
                last_error_message()
            )));
        }
        // SAFETY: `h` is a valid handle; longitude first, as GeoJSON has it.
        unsafe {
            gdal_sys::OSRSetAxisMappingStrategy(
                h,
                gdal_sys::OSRAxisMappingStrategy::OAMS_TRADITIONAL_GIS_ORDER,
            )
        };
        Ok(Srs(h))
    }
}

impl Drop for Srs {
    fn drop(&mut self) {
        // SAFETY: the handle was created by OSRNewSpatialReference and is dropped once.
        unsafe { gdal_sys::OSRDestroySpatialReference(self.0) };
    }
}

/// A geometry handle, destroyed on drop.
struct Geom(OGRGeometryH);

impl Drop for Geom {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: an owned geometry, destroyed once.
            unsafe { gdal_sys::OGR_G_DestroyGeometry(self.0) };
        }
    }
}

/// The EPSG code of a CRS given as WKT, when the CRS itself carries one (`ID["EPSG",n]`
/// on its root); `None` for a CRS without one (a custom projection, a compound CRS).
pub fn epsg_code(wkt: &str) -> Result<Option<u32>> {
    let srs = Srs::from_wkt(wkt)?;
    // SAFETY: valid handle; a null target asks about the root; returned strings belong to
    // the handle and are copied at once.
    let (name, code) = unsafe {
        (
            from_c(gdal_sys::OSRGetAuthorityName(srs.0, std::ptr::null())),
            from_c(gdal_sys::OSRGetAuthorityCode(srs.0, std::ptr::null())),
        )
    };
    Ok(match (name.as_deref(), code) {
        (Some(n), Some(c)) if n.eq_ignore_ascii_case("EPSG") => c.parse().ok(),
        _ => None,
    })
}

/// The ring of a rectangle `[x0, y0, x1, y1]`, densified, closed, counter-clockwise.
pub fn densified_ring(r: [f64; 4]) -> Vec<[f64; 2]> {
    let [x0, y0, x1, y1] = r;
    let corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
    let mut ring = Vec::with_capacity(4 * POINTS_PER_EDGE + 1);
    for (i, a) in corners.iter().enumerate() {
        let b = corners[(i + 1) % 4];
        for k in 0..POINTS_PER_EDGE {
            let f = k as f64 / POINTS_PER_EDGE as f64;
            ring.push([a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f]);
        }
    }
    ring.push(corners[0]);
    ring
}

/// The footprint in EPSG:4326 of rectangle `rect` (`[xmin, ymin, xmax, ymax]` in the CRS
/// `wkt`): a GeoJSON Polygon or MultiPolygon, and its bbox (west > east when it crosses
/// the antimeridian).
pub fn footprint_4326(wkt: &str, rect: [f64; 4]) -> Result<(Value, [f64; 4])> {
    let geom = simplified(transformed(wkt, &densified_ring(rect))?);
    // SAFETY: a valid geometry; the JSON string is GDAL's and freed with VSIFree.
    let json = unsafe {
        let p = gdal_sys::OGR_G_ExportToJson(geom.0);
        let s = from_c(p);
        gdal_sys::VSIFree(p as *mut c_void);
        s
    };
    let json = json.ok_or_else(|| Error::Gdal("cannot write the footprint as GeoJSON".into()))?;
    let value: Value = serde_json::from_str(&json)
        .map_err(|e| Error::Gdal(format!("GDAL wrote a footprint that is not JSON: {e}")))?;
    Ok((value, bbox_of(&geom)))
}

/// The polygon of `ring` (in CRS `wkt`) transformed into EPSG:4326, wrapped at 180°.
fn transformed(wkt: &str, ring: &[[f64; 2]]) -> Result<Geom> {
    let from = Srs::from_wkt(wkt)?;
    let to = Srs::from_wkt(&crate::gdal::crs::wkt_from_user_input("EPSG:4326")?)?;
    let options = CStringList::new(["WRAPDATELINE=YES".to_string()]);
    // SAFETY: every handle is checked for null and owned by a guard or destroyed here;
    // the ring is added to the polygon, which takes ownership of it.
    unsafe {
        let ct = gdal_sys::OCTNewCoordinateTransformation(from.0, to.0);
        if ct.is_null() {
            return Err(Error::InvalidInput(format!(
                "GDAL cannot transform the store's CRS into EPSG:4326 ({})",
                last_error_message()
            )));
        }
        let poly = Geom(gdal_sys::OGR_G_CreateGeometry(
            gdal_sys::OGRwkbGeometryType::wkbPolygon,
        ));
        let r = gdal_sys::OGR_G_CreateGeometry(gdal_sys::OGRwkbGeometryType::wkbLinearRing);
        for p in ring {
            gdal_sys::OGR_G_AddPoint_2D(r, p[0], p[1]);
        }
        gdal_sys::OGR_G_AddGeometryDirectly(poly.0, r);
        if let Some(cut) = cut_on_coordinates(ct, ring) {
            gdal_sys::OCTDestroyCoordinateTransformation(ct);
            return Ok(cut);
        }
        let transformer =
            gdal_sys::OGR_GeomTransformer_Create(ct, options.as_ptr() as gdal_sys::CSLConstList);
        let out = if transformer.is_null() {
            std::ptr::null_mut()
        } else {
            gdal_sys::OGR_GeomTransformer_Transform(transformer, poly.0)
        };
        if !transformer.is_null() {
            gdal_sys::OGR_GeomTransformer_Destroy(transformer);
        }
        gdal_sys::OCTDestroyCoordinateTransformation(ct);
        if out.is_null() {
            return Err(Error::InvalidInput(format!(
                "GDAL cannot transform the store's extent into EPSG:4326 ({})",
                last_error_message()
            )));
        }
        Ok(Geom(out))
    }
}

/// Largest longitude step between neighbouring points (the short way round) for which
/// the ring's way round is not in doubt.
const MAX_LONGITUDE_STEP: f64 = 2.0;

/// `ring` transformed by `ct` point by point and cut at the antimeridian; `None` when a
/// point does not transform, neighbouring points lie too far apart in longitude, or
/// [`antimeridian::cut`] declines the ring.
///
/// # Safety
/// `ct` must be a valid coordinate transformation.
unsafe fn cut_on_coordinates(
    ct: gdal_sys::OGRCoordinateTransformationH,
    ring: &[[f64; 2]],
) -> Option<Geom> {
    let mut x: Vec<f64> = ring.iter().map(|p| p[0]).collect();
    let mut y: Vec<f64> = ring.iter().map(|p| p[1]).collect();
    let mut ok = vec![0i32; ring.len()];
    let n = i32::try_from(ring.len()).ok()?;
    // SAFETY: `ct` is valid (the caller's promise); the arrays hold `n` values each and
    // the z array may be null.
    let all = unsafe {
        gdal_sys::OCTTransformEx(
            ct,
            n,
            x.as_mut_ptr(),
            y.as_mut_ptr(),
            std::ptr::null_mut(),
            ok.as_mut_ptr(),
        )
    };
    if all == 0 || ok.contains(&0) || x.iter().chain(&y).any(|v| !v.is_finite()) {
        return None;
    }
    let flat = x.iter().zip(&y).flat_map(|(&a, &b)| [a, b]).collect();
    let shape = Polygons {
        multi: false,
        dims: 2,
        parts: vec![vec![flat]],
    };
    if outline::largest_longitude_step(&shape) > MAX_LONGITUDE_STEP {
        return None;
    }
    let cut = antimeridian::cut(&shape)?;
    let wkb = cut.to_wkb();
    let mut h: OGRGeometryH = std::ptr::null_mut();
    // SAFETY: the bytes are alive during the call; `h` receives a new geometry or stays
    // null.
    let err = unsafe {
        gdal_sys::OGR_G_CreateFromWkb(
            wkb.as_ptr() as *const c_void,
            std::ptr::null_mut(),
            &mut h,
            wkb.len() as i32,
        )
    };
    (err == gdal_sys::OGRErr::OGRERR_NONE && !h.is_null()).then_some(Geom(h))
}

/// `geom` without the points that only lie on straight lines (or `geom` itself if GDAL
/// cannot simplify it).
fn simplified(geom: Geom) -> Geom {
    // SAFETY: `geom` is valid; the result is a new geometry, owned by the returned guard.
    let out = unsafe { gdal_sys::OGR_G_SimplifyPreserveTopology(geom.0, SIMPLIFY_DEGREES) };
    if out.is_null() {
        geom
    } else {
        Geom(out)
    }
}

/// The envelope of each polygon of `geom` (one, or each part of a multipolygon).
fn part_envelopes(geom: &Geom) -> Vec<[f64; 4]> {
    let envelope = |g: OGRGeometryH| {
        let mut e = gdal_sys::OGREnvelope {
            MinX: 0.0,
            MaxX: 0.0,
            MinY: 0.0,
            MaxY: 0.0,
        };
        // SAFETY: `g` is a valid geometry owned by `geom`.
        unsafe { gdal_sys::OGR_G_GetEnvelope(g, &mut e) };
        [e.MinX, e.MinY, e.MaxX, e.MaxY]
    };
    // SAFETY: `geom` is valid; its parts are borrowed for the calls only.
    unsafe {
        let flat = gdal_sys::OGR_GT_Flatten(gdal_sys::OGR_G_GetGeometryType(geom.0));
        if flat == gdal_sys::OGRwkbGeometryType::wkbMultiPolygon {
            (0..gdal_sys::OGR_G_GetGeometryCount(geom.0))
                .map(|i| envelope(gdal_sys::OGR_G_GetGeometryRef(geom.0, i)))
                .collect()
        } else {
            vec![envelope(geom.0)]
        }
    }
}

fn bbox_of(geom: &Geom) -> [f64; 4] {
    bbox_of_parts(&part_envelopes(geom))
}

/// The bbox of polygons given by their envelopes. Parts touching +180 and parts touching
/// -180 are one footprint cut at the antimeridian: its bbox runs from the west edge of the
/// eastern parts to the east edge of the western ones (RFC 7946 §5.2, west > east).
pub fn bbox_of_parts(parts: &[[f64; 4]]) -> [f64; 4] {
    const EDGE: f64 = 180.0 - 1e-9;
    let south = parts.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min);
    let north = parts.iter().map(|p| p[3]).fold(f64::NEG_INFINITY, f64::max);
    let east_side: Vec<_> = parts
        .iter()
        .filter(|p| p[2] >= EDGE && p[0] > -EDGE)
        .collect();
    let west_side: Vec<_> = parts
        .iter()
        .filter(|p| p[0] <= -EDGE && p[2] < EDGE)
        .collect();
    if parts.len() > 1 && !east_side.is_empty() && !west_side.is_empty() {
        let west = east_side.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
        let east = west_side
            .iter()
            .map(|p| p[2])
            .fold(f64::NEG_INFINITY, f64::max);
        return [west, south, east, north];
    }
    let west = parts.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
    let east = parts.iter().map(|p| p[2]).fold(f64::NEG_INFINITY, f64::max);
    [west, south, east, north]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wkt(code: &str) -> String {
        crate::gdal::crs::wkt_from_user_input(code).unwrap()
    }

    #[test]
    fn epsg_codes_come_from_the_crs_root() {
        assert_eq!(epsg_code(&wkt("EPSG:32633")).unwrap(), Some(32633));
        let custom = wkt("+proj=stere +lat_0=90 +lon_0=-105 +datum=WGS84");
        assert_eq!(epsg_code(&custom).unwrap(), None);
    }

    #[test]
    fn a_utm_tile_over_fiji_is_cut_at_the_antimeridian() {
        // UTM 60S, about 178.3E to 178.2W around 17S.
        let (geom, bbox) = footprint_4326(
            &wkt("EPSG:32760"),
            [700000.0, 8000000.0, 900000.0, 8150000.0],
        )
        .unwrap();
        assert_eq!(geom["type"], "MultiPolygon", "{geom}");
        assert!(bbox[0] > 170.0 && bbox[2] < -170.0, "{bbox:?}");
        assert!(bbox[1] < bbox[3]);
    }

    #[test]
    fn a_polar_grid_reaches_the_pole() {
        let (_, bbox) = footprint_4326(
            &wkt("EPSG:3413"),
            [-500000.0, -500000.0, 500000.0, 500000.0],
        )
        .unwrap();
        assert_eq!(bbox[3], 90.0, "{bbox:?}");
        assert_eq!((bbox[0], bbox[2]), (-180.0, 180.0), "{bbox:?}");
    }

    #[test]
    fn a_polar_grid_across_180_is_cut_there() {
        // EPSG:3031 over the Ross Sea: about 168°E to 168°W, 73°S to 79°S, without the pole.
        let (geom, bbox) = footprint_4326(
            &wkt("EPSG:3031"),
            [-300000.0, -1700000.0, 300000.0, -1300000.0],
        )
        .unwrap();
        assert_eq!(geom["type"], "MultiPolygon", "{geom}");
        assert!(bbox[0] > 160.0 && bbox[2] < -160.0, "{bbox:?}");
        assert!(bbox[1] > -80.0 && bbox[3] < -70.0, "{bbox:?}");
    }

    #[test]
    fn an_ordinary_extent_has_an_ordinary_bbox() {
        let (geom, bbox) = footprint_4326(
            &wkt("EPSG:32633"),
            [500000.0, 4000000.0, 510000.0, 4010000.0],
        )
        .unwrap();
        assert_eq!(geom["type"], "Polygon");
        assert!(
            bbox[0] < bbox[2] && (bbox[0] - 15.0).abs() < 0.2,
            "{bbox:?}"
        );
    }
}
