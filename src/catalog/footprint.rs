//! Footprints and query areas: with [`super::ogr`], the only modules of the catalog that
//! call OGR and OSR.
//!
//! A footprint is a polygon in the item's native CRS, kept exactly (as WKB), plus its parts
//! in EPSG:4326 longitude/latitude: the polygon with its edges densified, transformed, and
//! cut (see [`super::antimeridian`]), so that a footprint crossing the antimeridian becomes
//! parts on either side of it and one around a pole reaches latitude 90 across all
//! longitudes; what cannot be cut on coordinates goes through GDAL's geometry transformer
//! with `WRAPDATELINE=YES`. Backends prefilter on the boxes of these parts; the exact test
//! ([`Footprint::intersects`]) runs in the item's own CRS.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;

use serde_json::Value as Json;

use super::antimeridian;
use super::geojson;
use super::ogr::{gdal_error, truncate, wgs84_srs, Geom, GeomTransformer, Srs, Transform};
use super::outline;
use super::wkb::Polygons;
use crate::error::{Error, Result};
use crate::gdal::cpl::{last_error_message, QuietErrors};

/// West, south, east, north.
pub type Bbox = [f64; 4];

/// The 4326 parts are simplified by this fraction of their size (1e-5: 1 m on 100 km).
const SIMPLIFY_FRACTION: f64 = 1e-5;

/// Each densified edge is at most this fraction of the polygon's larger side.
const DENSIFY_FRACTION: f64 = 1.0 / 16.0;

/// The most points a footprint that goes through GDAL's geometry functions may have.
/// They cut it at the antimeridian with GEOS, which is slow over a polygon of
/// many points that crosses itself (such as one zigzagging across a pole); a footprint
/// cut on its coordinates has no such bound.
const MAX_POINTS_THROUGH_GDAL: usize = 10_000;

/// A coordinate reference system: WKT2, and its EPSG code when it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Crs {
    pub wkt: String,
    pub epsg: Option<u32>,
}

impl Crs {
    /// Anything GDAL accepts: `EPSG:32633`, a PROJ string, WKT. Each definition is read
    /// once per thread (at most [`CACHED_TRANSFORMS`] kept): items name few CRSs, each
    /// many times.
    pub fn from_user(definition: &str) -> Result<Crs> {
        if let Some(crs) = CRSS.with(|c| c.borrow().get(definition).cloned()) {
            return Ok(crs);
        }
        let srs = Srs::from_user(definition)?;
        let crs = Crs {
            wkt: srs.wkt()?,
            epsg: srs.epsg(),
        };
        CRSS.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= CACHED_TRANSFORMS {
                c.clear();
            }
            c.insert(definition.to_string(), crs.clone());
        });
        Ok(crs)
    }

    /// EPSG:4326 with longitude/latitude axis order.
    pub fn wgs84() -> Crs {
        Crs {
            wkt: Srs::from_user("EPSG:4326")
                .and_then(|s| s.wkt())
                .unwrap_or_default(),
            epsg: Some(4326),
        }
    }

    /// `EPSG:<code>`, or the WKT for a CRS without a code: what backends group by.
    pub fn key(&self) -> String {
        match self.epsg {
            Some(c) => format!("EPSG:{c}"),
            None => self.wkt.clone(),
        }
    }

    fn srs(&self) -> Result<Srs> {
        match self.epsg {
            Some(c) => Srs::from_user(&format!("EPSG:{c}")),
            None => Srs::from_user(&self.wkt),
        }
    }
}

/// An item's footprint.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    pub crs: Crs,
    /// The polygon or multipolygon in the native CRS (x/y = easting/northing or
    /// longitude/latitude), ISO WKB, as given.
    pub native_wkb: Vec<u8>,
    /// West, south, east, north of the native polygon, in the native CRS.
    pub native_bounds: Bbox,
    /// The parts in EPSG:4326 (longitude, latitude) as one ISO WKB MultiPolygon.
    pub wgs84_wkb: Vec<u8>,
    /// The box of each part of `wgs84_wkb`, west <= east.
    pub boxes: Vec<Bbox>,
    /// Longitude of the native polygon's centroid (degrees east, -180 to 180): where the
    /// item's solar time is counted.
    pub centroid_lon: f64,
}

impl Footprint {
    /// Builds a footprint from a polygon in its native CRS.
    pub fn new(crs: Crs, native_wkb: Vec<u8>) -> Result<Footprint> {
        let plain = Polygons::from_wkb(&native_wkb);
        Footprint::made(crs, plain, &native_wkb)
    }

    /// The footprint of `native_wkb`, read as `plain` (when it could be): made on its
    /// coordinates when it is a well-formed 2D polygon that GDAL need not or can cut, else
    /// through OGR.
    fn made(crs: Crs, plain: Option<Polygons>, native_wkb: &[u8]) -> Result<Footprint> {
        let to = to_wgs84(&crs)?;
        let plain = plain.filter(|p| p.dims == 2 && p.is_well_formed());
        let points = plain
            .as_ref()
            .map(|p| p.rings().map(|r| r.len() / p.dims).sum());
        match plain.and_then(|native| Footprint::from_coordinates(&crs, &native, &to)) {
            Some(footprint) => Ok(footprint),
            None => {
                // A WKB point takes at least 16 bytes.
                let points = points.unwrap_or(native_wkb.len() / 16);
                if points > MAX_POINTS_THROUGH_GDAL {
                    return Err(Error::InvalidInput(format!(
                        "the footprint has {points} points and cannot be cut at the \
                         antimeridian on its coordinates (it may cross itself), and GDAL, \
                         which cuts the others, takes at most {MAX_POINTS_THROUGH_GDAL}: fix or \
                         simplify it (`ogr2ogr -makevalid`, `ogr2ogr -simplify`)"
                    )));
                }
                Footprint::through_ogr(crs, native_wkb, &to)
            }
        }
    }

    /// The footprint of a well-formed 2D polygon, densified, transformed and cut at the
    /// antimeridian on its coordinates; only a polygon that [`antimeridian::cut`]
    /// declines goes through GDAL's geometry transformer. A million items' worth of OGR geometries would
    /// cost more than the work. `None` when its points do not all transform, its
    /// centroid is not defined, or GDAL cannot cut it: the OGR path then makes it as it
    /// makes any polygon, or says what is wrong.
    fn from_coordinates(crs: &Crs, native: &Polygons, to: &ToWgs84) -> Option<Footprint> {
        let native_bounds = native.bounds();
        let (centroid_lon, (step, transformed)) = {
            let _quiet = QuietErrors::push();
            (
                centroid_longitude_of(native, &to.ct)?,
                densified_for_wrap(native, native_bounds, &to.ct)?,
            )
        };
        let plain =
            if !to.may_surround_a_pole(&native_bounds) && outline::within_one_turn(&transformed) {
                let tolerance = simplify_tolerance(transformed.bounds());
                Some(outline::simplified(&transformed, tolerance))
            } else {
                antimeridian::cut(&transformed).map(|cut| {
                    let pieces = (0..cut.parts.len()).map(|i| cut.part_box(i));
                    outline::simplified(&cut, simplify_tolerance(largest(pieces)))
                })
            };
        let (wgs84_wkb, boxes) = if let Some(parts) = plain {
            let boxes = (0..parts.parts.len()).map(|i| parts.part_box(i)).collect();
            (parts.to_wkb(), boxes)
        } else {
            if native.rings().map(|r| r.len() / 2).sum::<usize>() > MAX_POINTS_THROUGH_GDAL {
                return None;
            }
            let _quiet = QuietErrors::push();
            let dense = outline::densified(native, step);
            let parts = wrapped(&Geom::from_wkb(&dense.to_wkb()).ok()?, to).ok()?;
            (parts.to_wkb().ok()?, parts.part_boxes())
        };
        if boxes.is_empty() {
            return None;
        }
        Some(Footprint {
            crs: crs.clone(),
            native_wkb: native.to_wkb(),
            native_bounds,
            wgs84_wkb,
            boxes,
            centroid_lon,
        })
    }

    /// The footprint of any polygon, made with OGR's geometries and GDAL's geometry
    /// transformer.
    fn through_ogr(crs: Crs, native_wkb: &[u8], to: &ToWgs84) -> Result<Footprint> {
        let native = Geom::from_wkb(native_wkb)?;
        native.check_areal()?;
        let native_bounds = native.envelope();
        let parts = to_wgs84_parts(&native, to)?;
        let boxes = parts.part_boxes();
        if boxes.is_empty() {
            return Err(no_area());
        }
        let centroid_lon = centroid_longitude(&native, &to.ct)?;
        Ok(Footprint {
            crs,
            native_wkb: native.to_wkb()?,
            native_bounds,
            wgs84_wkb: parts.to_wkb()?,
            boxes,
            centroid_lon,
        })
    }

    /// A footprint read back from storage: the boxes are rebuilt from the 4326 parts, the
    /// rest is taken as stored.
    pub fn from_stored(
        crs: Crs,
        native_wkb: Vec<u8>,
        native_bounds: Bbox,
        wgs84_wkb: Vec<u8>,
        centroid_lon: f64,
    ) -> Result<Footprint> {
        let boxes = Geom::from_wkb(&wgs84_wkb)?.part_boxes();
        Ok(Footprint {
            crs,
            native_wkb,
            native_bounds,
            wgs84_wkb,
            boxes,
            centroid_lon,
        })
    }

    /// Builds a footprint from WKT in a CRS given as GDAL accepts it.
    pub fn from_wkt(crs: &str, wkt: &str) -> Result<Footprint> {
        let crs = Crs::from_user(crs)?;
        let wkb = Geom::from_wkt(wkt)?.to_wkb()?;
        Footprint::new(crs, wkb)
    }

    /// A footprint for a box in its CRS (a raster's extent).
    pub fn from_bounds(crs: Crs, bounds: Bbox) -> Result<Footprint> {
        let wkb = Geom::rectangle(bounds).to_wkb()?;
        Footprint::new(crs, wkb)
    }

    /// A footprint from a GeoJSON geometry (a Polygon or MultiPolygon) in `crs`.
    pub fn from_geojson(crs: Crs, geometry: &Json) -> Result<Footprint> {
        if let Some(plain) = Polygons::from_geojson(geometry).filter(Polygons::is_well_formed) {
            let wkb = plain.to_wkb();
            return Footprint::made(crs, Some(plain), &wkb);
        }
        let text = CString::new(geometry.to_string())
            .map_err(|_| Error::InvalidInput("a geometry cannot contain NUL".into()))?;
        // SAFETY: a NUL-terminated string; the result (or null) is ours.
        let h = unsafe { gdal_sys::OGR_G_CreateGeometryFromJson(text.as_ptr()) };
        if h.is_null() {
            return Err(Error::InvalidInput(format!(
                "{}: not a GeoJSON geometry",
                truncate(&geometry.to_string())
            )));
        }
        let wkb = Geom(h).to_wkb()?;
        Footprint::new(crs, wkb)
    }

    /// The valid-data footprint of a raster from a grid of cells (row by row, `true` =
    /// holds valid data) whose geotransform is `gt`: the union of the valid cells (of a
    /// coarser grid when they are too scattered, see [`super::cells`]), simplified by half
    /// a cell. An error when no cell is valid.
    pub fn from_valid_cells(
        crs: Crs,
        gt: [f64; 6],
        width: usize,
        height: usize,
        valid: &[bool],
    ) -> Result<Footprint> {
        let (rects, factor) = super::cells::rectangles(width, height, valid);
        let corner = |col: usize, row: usize| {
            let (c, r) = (col as f64, row as f64);
            (gt[0] + c * gt[1] + r * gt[2], gt[3] + c * gt[4] + r * gt[5])
        };
        let cells = Geom::new(gdal_sys::OGRwkbGeometryType::wkbMultiPolygon);
        for r in rects {
            let ((a, b), (top, bottom)) = (r.cols, r.rows);
            let ring = Geom::new(gdal_sys::OGRwkbGeometryType::wkbLinearRing);
            for (c, r) in [(a, top), (b, top), (b, bottom), (a, bottom), (a, top)] {
                let (x, y) = corner(c, r);
                // SAFETY: ring is a valid line geometry.
                unsafe { gdal_sys::OGR_G_AddPoint_2D(ring.0, x, y) };
            }
            let poly = Geom::new(gdal_sys::OGRwkbGeometryType::wkbPolygon);
            poly.add(&ring)?;
            cells.add(&poly)?;
        }
        if cells.part_count() == 0 {
            return Err(Error::InvalidInput(
                "the raster holds no valid data (every pixel is nodata or masked), so it has \
                 no footprint"
                    .into(),
            ));
        }
        // SAFETY: valid handle; the union (or null) is ours.
        let union = unsafe { gdal_sys::OGR_G_UnionCascaded(cells.0) };
        if union.is_null() {
            return Err(gdal_error("cannot merge the valid cells"));
        }
        let union = Geom(union);
        // Half a cell of the grid the rectangles were made on.
        let half_cell = 0.5 * factor as f64 * (gt[1].hypot(gt[4])).min(gt[2].hypot(gt[5]));
        // SAFETY: valid handle; the simplified copy (or null) is ours.
        let simple = unsafe { gdal_sys::OGR_G_SimplifyPreserveTopology(union.0, half_cell) };
        let shape = if simple.is_null() {
            union
        } else {
            Geom(simple)
        };
        Footprint::new(crs, shape.to_wkb()?)
    }

    /// The exact test: whether the query area meets the native polygon, tested in the
    /// item's CRS with the query clipped to the footprint's 4326 boxes first (so that
    /// query parts far outside the item CRS's area of use are never projected).
    pub fn intersects(&self, area: &PreparedArea) -> Result<bool> {
        if !self
            .boxes
            .iter()
            .any(|b| area.boxes.iter().any(|q| boxes_meet(b, q)))
        {
            return Ok(false);
        }
        let native = Geom::from_wkb(&self.native_wkb)?;
        if let Some(same) = area.native_in(&self.crs) {
            return Ok(same.intersects(&native));
        }
        let Some(to_native) = area.transform_to(&self.crs)? else {
            // A geographic CRS: the 4326 parts are the footprint itself, cut at 180°
            // (its native longitudes may run past 180).
            return self.intersects_in_wgs84(area);
        };
        let _quiet = QuietErrors::push();
        for part in &area.parts {
            for b in &self.boxes {
                let clip = Geom::rectangle(widen(*b));
                let Some(piece) = part.intersection(&clip) else {
                    continue;
                };
                if piece.is_empty() {
                    continue;
                }
                piece.segmentize(0.25);
                match piece.transformed(&to_native) {
                    Some(p) if p.intersects(&native) => return Ok(true),
                    Some(_) => {}
                    // Not projectable into the item's CRS: decide in longitude/latitude.
                    None => {
                        if Geom::from_wkb(&self.wgs84_wkb)?.intersects(&piece) {
                            return Ok(true);
                        }
                    }
                }
            }
        }
        Ok(false)
    }

    /// A second, independent test for cross-checking: the 4326 parts of the footprint
    /// against the 4326 parts of the query.
    pub fn intersects_in_wgs84(&self, area: &PreparedArea) -> Result<bool> {
        let mine = Geom::from_wkb(&self.wgs84_wkb)?;
        Ok(area.parts.iter().any(|p| p.intersects(&mine)))
    }

    /// The native polygon as GeoJSON geometry (coordinates in the native CRS).
    pub fn native_geometry(&self) -> GeoJson {
        match geojson::geometry(&self.native_wkb, false) {
            Some(g) => GeoJson::Read(g),
            None => GeoJson::Ogr(
                Geom::from_wkb(&self.native_wkb)
                    .and_then(|g| g.to_geojson())
                    .unwrap_or(Json::Null),
            ),
        }
    }

    /// The 4326 parts as a GeoJSON Polygon (one part) or MultiPolygon.
    pub fn wgs84_geometry(&self) -> GeoJson {
        match geojson::geometry(&self.wgs84_wkb, true) {
            Some(g) => GeoJson::Read(g),
            None => GeoJson::Ogr(ogr_geojson_of_parts(&self.wgs84_wkb)),
        }
    }

    /// [`Footprint::native_geometry`] as a JSON value.
    pub fn native_geojson(&self) -> Json {
        serde_json::to_value(self.native_geometry()).unwrap_or(Json::Null)
    }

    /// [`Footprint::wgs84_geometry`] as a JSON value.
    pub fn wgs84_geojson(&self) -> Json {
        serde_json::to_value(self.wgs84_geometry()).unwrap_or(Json::Null)
    }

    /// The RFC 7946 bbox: west > east when the footprint crosses the antimeridian.
    pub fn bbox_4326(&self) -> Bbox {
        wrapped_bbox(&self.boxes)
    }
}

/// A footprint's GeoJSON geometry, to be serialized: read from its WKB here, or, for WKB
/// that [`geojson`] declines, as OGR writes it (`null` if OGR cannot).
#[derive(Debug)]
pub enum GeoJson {
    Read(geojson::Geometry),
    Ogr(Json),
}

impl serde::Serialize for GeoJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            GeoJson::Read(g) => g.serialize(s),
            GeoJson::Ogr(j) => j.serialize(s),
        }
    }
}

/// The GeoJSON of 4326 parts as OGR writes it: one part as a Polygon.
fn ogr_geojson_of_parts(wkb: &[u8]) -> Json {
    let Ok(g) = Geom::from_wkb(wkb) else {
        return Json::Null;
    };
    let single = (g.part_count() == 1).then(|| g.part(0)).flatten();
    single.unwrap_or(g).to_geojson().unwrap_or(Json::Null)
}

/// A query area as given by the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Area {
    /// West, south, east, north. In EPSG:4326 (`crs` None) west > east means the box
    /// crosses the antimeridian.
    Bbox { bbox: Bbox, crs: Option<String> },
    /// A polygon or multipolygon as WKT, in `crs` (EPSG:4326 longitude/latitude if None).
    Polygon { wkt: String, crs: Option<String> },
}

/// A query area ready for testing footprints: its 4326 parts and their boxes, and
/// transformations into item CRSs, made once per CRS.
pub struct PreparedArea {
    parts: Vec<Geom>,
    /// The box of each part, west <= east.
    pub boxes: Vec<Bbox>,
    /// The area in its own CRS, when that is not EPSG:4326.
    native: Option<(Crs, Geom)>,
    transforms: RefCell<HashMap<String, Option<std::rc::Rc<Transform>>>>,
}

impl std::fmt::Debug for PreparedArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedArea")
            .field("boxes", &self.boxes)
            .finish()
    }
}

impl PreparedArea {
    pub fn new(area: &Area) -> Result<PreparedArea> {
        let (crs, geom) = match area {
            Area::Bbox { bbox, crs } => match crs_unless_wgs84(crs.as_deref())? {
                None => return PreparedArea::from_wgs84_box(*bbox),
                Some(c) => {
                    check_box_order(*bbox, false)?;
                    (Some(c), Geom::rectangle(*bbox))
                }
            },
            Area::Polygon { wkt, crs } => {
                let g = Geom::from_wkt(wkt)?;
                g.check_areal()?;
                (crs_unless_wgs84(crs.as_deref())?, g)
            }
        };
        match crs {
            None => {
                let b = geom.envelope();
                if b[0] < -180.0 || b[2] > 180.0 || b[1] < -90.0 || b[3] > 90.0 {
                    return Err(Error::InvalidInput(format!(
                        "the query polygon reaches beyond longitude -180..180 or latitude \
                         -90..90 ({b:?}); cut it at the antimeridian into a MULTIPOLYGON, or \
                         give it in its own CRS with --polygon-crs"
                    )));
                }
                let parts = geom.polygons();
                Ok(PreparedArea::from_parts(parts, None))
            }
            Some(crs) => {
                let parts = to_wgs84_parts(&geom, &*to_wgs84(&crs)?)?;
                Ok(PreparedArea::from_parts(
                    parts.polygons(),
                    Some((crs, geom)),
                ))
            }
        }
    }

    fn from_wgs84_box(b: Bbox) -> Result<PreparedArea> {
        check_box_order(b, true)?;
        let boxes = if b[0] > b[2] {
            vec![[b[0], b[1], 180.0, b[3]], [-180.0, b[1], b[2], b[3]]]
        } else {
            vec![b]
        };
        let parts = boxes.iter().map(|b| Geom::rectangle(*b)).collect();
        Ok(PreparedArea::from_parts(parts, None))
    }

    fn from_parts(parts: Vec<Geom>, native: Option<(Crs, Geom)>) -> PreparedArea {
        let boxes = parts.iter().map(|p| p.envelope()).collect();
        PreparedArea {
            parts,
            boxes,
            native,
            transforms: RefCell::new(HashMap::new()),
        }
    }

    /// The area as ISO WKB MultiPolygon in EPSG:4326 (for backends that test in SQL).
    pub fn wgs84_wkb(&self) -> Result<Vec<u8>> {
        let multi = Geom::new(gdal_sys::OGRwkbGeometryType::wkbMultiPolygon);
        for p in &self.parts {
            multi.add(p)?;
        }
        multi.to_wkb()
    }

    /// The area in its own geometry when the item is in the same CRS.
    fn native_in(&self, crs: &Crs) -> Option<&Geom> {
        match &self.native {
            Some((c, g)) if c.key() == crs.key() => Some(g),
            _ => None,
        }
    }

    /// The transformation from EPSG:4326 into `crs`, or `None` when `crs` is geographic.
    fn transform_to(&self, crs: &Crs) -> Result<Option<std::rc::Rc<Transform>>> {
        let key = crs.key();
        if let Some(t) = self.transforms.borrow().get(&key) {
            return Ok(t.clone());
        }
        let t = from_wgs84(crs)?;
        self.transforms.borrow_mut().insert(key, t.clone());
        Ok(t)
    }
}

fn crs_unless_wgs84(crs: Option<&str>) -> Result<Option<Crs>> {
    let Some(def) = crs else { return Ok(None) };
    let c = Crs::from_user(def)?;
    Ok((c.epsg != Some(4326)).then_some(c))
}

fn check_box_order(b: Bbox, wgs84: bool) -> Result<()> {
    let ok = b.iter().all(|v| v.is_finite())
        && b[1] < b[3]
        && (wgs84 || b[0] < b[2])
        && (!wgs84
            || (b[0] != b[2]
                && b.iter().step_by(2).all(|x| x.abs() <= 180.0)
                && b[1] >= -90.0
                && b[3] <= 90.0));
    if ok {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "bbox {b:?}: give WEST,SOUTH,EAST,NORTH with south < north{}",
        if wgs84 {
            " in degrees (longitude -180..180, latitude -90..90); west > east crosses the \
             antimeridian"
        } else {
            " and west < east in the box's CRS"
        }
    )))
}

fn boxes_meet(a: &Bbox, b: &Bbox) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

/// A 4326 box grown by a small margin (clamped to the globe), so that clipping never cuts
/// off what touches its edges.
fn widen(b: Bbox) -> Bbox {
    const M: f64 = 1e-6;
    [
        (b[0] - M).max(-180.0),
        (b[1] - M).max(-90.0),
        (b[2] + M).min(180.0),
        (b[3] + M).min(90.0),
    ]
}

/// The smallest box holding all `boxes` in longitude, going across the antimeridian
/// (west > east) when that is shorter: the complement of the largest longitude gap.
pub fn wrapped_bbox(boxes: &[Bbox]) -> Bbox {
    if boxes.is_empty() {
        return [f64::NAN; 4];
    }
    let south = boxes.iter().map(|b| b[1]).fold(f64::INFINITY, f64::min);
    let north = boxes.iter().map(|b| b[3]).fold(f64::NEG_INFINITY, f64::max);
    let mut spans: Vec<(f64, f64)> = boxes.iter().map(|b| (b[0], b[2])).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Merge overlapping longitude spans.
    let mut merged: Vec<(f64, f64)> = Vec::new();
    for (w, e) in spans {
        match merged.last_mut() {
            Some(last) if w <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((w, e)),
        }
    }
    // The gap across the antimeridian, from the last east to the first west.
    let first = merged[0];
    let last = *merged.last().expect("not empty");
    let mut best_gap = (first.0 + 180.0) + (180.0 - last.1);
    let mut bbox = [first.0, south, last.1, north];
    for pair in merged.windows(2) {
        let gap = pair[1].0 - pair[0].1;
        if gap > best_gap {
            best_gap = gap;
            bbox = [pair[1].0, south, pair[0].1, north];
        }
    }
    if best_gap <= 0.0 {
        bbox = [-180.0, south, 180.0, north];
    }
    bbox
}

/// The smallest box (west > east across the antimeridian) holding two such boxes.
pub fn merge_wrapped(a: Bbox, b: Bbox) -> Bbox {
    let mut boxes = Vec::with_capacity(4);
    for x in [a, b] {
        if x[0] > x[2] {
            boxes.push([x[0], x[1], 180.0, x[3]]);
            boxes.push([-180.0, x[1], x[2], x[3]]);
        } else {
            boxes.push(x);
        }
    }
    wrapped_bbox(&boxes)
}

/// Densifies a copy of `native` and transforms it into EPSG:4326. A polygon that stays
/// within -180..180 without a step across the antimeridian and surrounds no pole is the
/// transformed copy as it is; any other goes through GDAL's geometry transformer with
/// `WRAPDATELINE=YES`, which cuts it at the antimeridian and reaches the pole.
fn to_wgs84_parts(native: &Geom, to: &ToWgs84) -> Result<Geom> {
    let (dense, transformed) = densify_for_wrap(native, &to.ct);
    match transformed.filter(|t| taken_as_transformed(native, t, to)) {
        Some(plain) => Ok(simplified(plain)),
        None => wrapped(&dense, to),
    }
}

/// Whether `transformed`, the densified `native` polygon in EPSG:4326, is already its 4326
/// parts: no pole in the native polygon's box, every longitude within -180..180 and no
/// step across the antimeridian.
fn taken_as_transformed(native: &Geom, transformed: &Geom, to: &ToWgs84) -> bool {
    !to.may_surround_a_pole(&native.envelope()) && transformed.within_one_turn()
}

/// `dense` transformed by GDAL's geometry transformer with `WRAPDATELINE=YES`, the one
/// this thread keeps for the CRS. A transformer kept from one geometry to the next can
/// fail where a new one succeeds (on the edge of a geostationary disk, GDAL 3.6), so a
/// failure is retried once with a new one, which is then kept.
fn wrapped(dense: &Geom, to: &ToWgs84) -> Result<Geom> {
    let mut kept = to.wrapper.borrow_mut();
    let mut out = None;
    for fresh in [false, true] {
        if fresh || kept.is_none() {
            *kept = Some(GeomTransformer::wrapping(&to.ct)?);
        }
        out = kept.as_ref().and_then(|t| t.transform(dense));
        if out.is_some() {
            break;
        }
    }
    let out = out.ok_or_else(|| {
        Error::InvalidInput(format!(
            "the polygon cannot be transformed to longitude/latitude ({}); check that its \
             coordinates are in the CRS given",
            last_error_message()
        ))
    })?;
    Ok(simplified(out))
}

/// The 4326 parts without the points densifying left on nearly straight edges: within
/// [`SIMPLIFY_FRACTION`] of the largest part's size of the densified outline.
fn simplified(g: Geom) -> Geom {
    let tolerance = simplify_tolerance(largest(g.part_boxes()));
    // SAFETY: valid handle; the simplified copy (or null) is ours.
    let h = unsafe { gdal_sys::OGR_G_Simplify(g.0, tolerance) };
    if h.is_null() {
        return g;
    }
    let s = Geom(h);
    if s.is_empty() {
        g
    } else {
        s
    }
}

/// The error for a footprint left with no area in EPSG:4326.
fn no_area() -> Error {
    Error::InvalidInput(
        "the footprint has no area once transformed to longitude/latitude; check its CRS".into(),
    )
}

/// [`densify_for_wrap`] on coordinates: the step to which `native` (whose box is `b`) is
/// densified so that its transformation by `ct` has no longitude step over
/// [`MAX_LONGITUDE_STEP`], with that transformation; `None` when a point does not
/// transform or the edges would have to be shorter than 1/16384 of the polygon's size.
fn densified_for_wrap(native: &Polygons, b: Bbox, ct: &Transform) -> Option<(f64, Polygons)> {
    let size = (b[2] - b[0]).max(b[3] - b[1]);
    let mut step = size * DENSIFY_FRACTION;
    while step > size / 16384.0 {
        let mut transformed = outline::densified(native, step);
        if !ct.polygons(&mut transformed) {
            return None;
        }
        if outline::largest_longitude_step(&transformed) <= MAX_LONGITUDE_STEP {
            return Some((step, transformed));
        }
        step /= 8.0;
    }
    None
}

/// The longitude of the centroid of 2D `native`, `None` if it has no area or the
/// centroid does not transform.
fn centroid_longitude_of(native: &Polygons, ct: &Transform) -> Option<f64> {
    let (mut x, mut y) = outline::centroid(native).map(|(x, y)| ([x], [y]))?;
    (ct.points(&mut x, &mut y) && x[0].is_finite()).then(|| normalized_longitude(x[0]))
}

/// The largest of the boxes (by their larger side): polygons cut at the antimeridian are
/// simplified by the size of their largest piece, not by the whole turn that the pieces'
/// box spans.
fn largest(boxes: impl IntoIterator<Item = Bbox>) -> Bbox {
    let size = |b: &Bbox| (b[2] - b[0]).max(b[3] - b[1]);
    boxes
        .into_iter()
        .max_by(|a, b| size(a).total_cmp(&size(b)))
        .unwrap_or([0.0; 4])
}

/// How far simplifying may move the outline of 4326 parts whose box is `b`.
fn simplify_tolerance(b: Bbox) -> f64 {
    (b[2] - b[0]).max(b[3] - b[1]) * SIMPLIFY_FRACTION
}

/// Largest longitude step allowed between two points of a densified ring (the short way
/// round): GDAL's date-line cutting recognises a crossing only between rings whose other
/// steps are small.
const MAX_LONGITUDE_STEP: f64 = 2.0;

/// Densifies a copy of `native` until no edge spans more than [`MAX_LONGITUDE_STEP`] of
/// longitude (edges passing close to a pole need many points), or the edges are 1/16384
/// of the polygon's size. Returns it with its transformation by `ct` when that succeeded
/// and its steps are that short.
fn densify_for_wrap(native: &Geom, ct: &Transform) -> (Geom, Option<Geom>) {
    let b = native.envelope();
    let size = (b[2] - b[0]).max(b[3] - b[1]);
    let mut step = size * DENSIFY_FRACTION;
    loop {
        let dense = native.clone_geom();
        if step <= 0.0 {
            return (dense, None);
        }
        dense.segmentize(step);
        if step <= size / 16384.0 {
            return (dense, None);
        }
        let transformed = {
            let _quiet = QuietErrors::push();
            dense.transformed(ct)
        };
        match transformed {
            Some(t) if t.largest_longitude_step() > MAX_LONGITUDE_STEP => step /= 8.0,
            t => return (dense, t),
        }
    }
}

/// CRSs read, and transformations into EPSG:4326 made, on this thread, by definition or
/// CRS key (at most this many of each; more than the 120 UTM zones): making one costs far
/// more than using it.
const CACHED_TRANSFORMS: usize = 256;

thread_local! {
    static CRSS: RefCell<HashMap<String, Crs>> = RefCell::new(HashMap::new());
}

thread_local! {
    static TO_WGS84: RefCell<HashMap<String, std::rc::Rc<ToWgs84>>> = RefCell::new(HashMap::new());
}

thread_local! {
    static FROM_WGS84: RefCell<HashMap<String, Option<std::rc::Rc<Transform>>>> = RefCell::new(HashMap::new());
}

/// The transformation from EPSG:4326 into `crs`, `None` for a geographic `crs`; made once
/// per thread and CRS (at most [`CACHED_TRANSFORMS`] kept).
fn from_wgs84(crs: &Crs) -> Result<Option<std::rc::Rc<Transform>>> {
    let key = crs.key();
    if let Some(t) = FROM_WGS84.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(t);
    }
    let srs = crs.srs()?;
    let t = if srs.is_geographic() {
        None
    } else {
        Some(std::rc::Rc::new(Transform::new(&wgs84_srs()?, &srs)?))
    };
    FROM_WGS84.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHED_TRANSFORMS {
            c.clear();
        }
        c.insert(key, t.clone());
    });
    Ok(t)
}

/// The transformation from `crs` into EPSG:4326 (longitude, latitude); made once per
/// thread and CRS (at most [`CACHED_TRANSFORMS`] kept).
fn to_wgs84(crs: &Crs) -> Result<std::rc::Rc<ToWgs84>> {
    let key = crs.key();
    if let Some(t) = TO_WGS84.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(t);
    }
    let t = std::rc::Rc::new(ToWgs84::new(
        Transform::new(&crs.srs()?, &wgs84_srs()?)?,
        crs,
    )?);
    TO_WGS84.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHED_TRANSFORMS {
            c.clear();
        }
        c.insert(key, t.clone());
    });
    Ok(t)
}

fn centroid_longitude(native: &Geom, ct: &Transform) -> Result<f64> {
    let point = Geom::new(gdal_sys::OGRwkbGeometryType::wkbPoint);
    // SAFETY: both handles are valid; OGR_G_Centroid writes into the point geometry.
    if unsafe { gdal_sys::OGR_G_Centroid(native.0, point.0) } != 0 {
        return Err(gdal_error("cannot compute the footprint's centroid"));
    }
    let mut x = [point.x(0)];
    let mut y = [point.y(0)];
    if !ct.points(&mut x, &mut y) {
        return Err(gdal_error(
            "cannot transform the footprint's centroid to longitude",
        ));
    }
    Ok(normalized_longitude(x[0]))
}

/// `lon` brought into -180..180 by whole turns.
fn normalized_longitude(mut lon: f64) -> f64 {
    while lon > 180.0 {
        lon -= 360.0;
    }
    while lon < -180.0 {
        lon += 360.0;
    }
    lon
}

/// A CRS's way into EPSG:4326: the coordinate transformation, and where the poles are.
struct ToWgs84 {
    ct: Transform,
    poles: Poles,
    /// The transformer that cuts at the antimeridian, made when first needed.
    wrapper: RefCell<Option<GeomTransformer>>,
}

impl ToWgs84 {
    /// Whether a polygon with the native box `b` may surround a pole, or reach one:
    /// for a geographic CRS when it reaches latitude 90 or -90, for a projected one when
    /// its box holds the point a pole projects to (or a pole does not project).
    fn may_surround_a_pole(&self, b: &Bbox) -> bool {
        match &self.poles {
            Poles::Geographic => b[1] <= -90.0 || b[3] >= 90.0,
            Poles::At(points) => points
                .iter()
                .any(|&(x, y)| x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3]),
            Poles::Unknown => true,
        }
    }

    fn new(ct: Transform, crs: &Crs) -> Result<ToWgs84> {
        let poles = Poles::of(crs)?;
        Ok(ToWgs84 {
            ct,
            poles,
            wrapper: RefCell::new(None),
        })
    }
}

/// Where the poles are in a CRS.
enum Poles {
    /// Along latitude 90 and -90.
    Geographic,
    /// At these points (those of the two that project).
    At(Vec<(f64, f64)>),
    /// Not known: every polygon is taken to be near one.
    Unknown,
}

impl Poles {
    fn of(crs: &Crs) -> Result<Poles> {
        let Some(from) = from_wgs84(crs)? else {
            return Ok(Poles::Geographic);
        };
        let _quiet = QuietErrors::push();
        // A pole that does not project is none of the projected polygons' concern; when
        // neither does, nothing is known.
        let mut points = Vec::new();
        for latitude in [90.0, -90.0] {
            let (mut px, mut py) = ([0.0], [latitude]);
            if from.points(&mut px, &mut py) && px[0].is_finite() && py[0].is_finite() {
                points.push((px[0], py[0]));
            }
        }
        Ok(match points.is_empty() {
            true => Poles::Unknown,
            false => Poles::At(points),
        })
    }
}

/// The box, in `target` (a projected CRS), holding the boxes given each in its own CRS.
pub fn union_bounds_in(bounds: &[(Crs, Bbox)], target: &str) -> Result<Bbox> {
    let target = Crs::from_user(target)?;
    let to = target.srs()?;
    let mut out = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for (crs, b) in bounds {
        let g = Geom::rectangle(*b);
        g.segmentize(((b[2] - b[0]).max(b[3] - b[1]) * DENSIFY_FRACTION).max(f64::MIN_POSITIVE));
        let t = Transform::new(&crs.srs()?, &to)?;
        let moved = {
            let _quiet = QuietErrors::push();
            g.transformed(&t)
        }
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "the extent in {} cannot be expressed in {} (the transformation fails); ask \
                 for it in EPSG:4326",
                crs.key(),
                target.key()
            ))
        })?;
        let e = moved.envelope();
        out = [
            out[0].min(e[0]),
            out[1].min(e[1]),
            out[2].max(e[2]),
            out[3].max(e[3]),
        ];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(b: Bbox) -> String {
        format!(
            "POLYGON(({0} {1},{2} {1},{2} {3},{0} {3},{0} {1}))",
            b[0], b[1], b[2], b[3]
        )
    }

    #[test]
    fn a_footprint_zigzagging_across_a_pole_is_refused_at_once() {
        // 20,001 points up and down across the south pole: GDAL's cut of it is slow, and
        // densifying it without a bound took gigabytes.
        let n = 20_000;
        let mut points: Vec<String> = (0..=n)
            .map(|i| {
                let x = -2e6 + 4e6 * f64::from(i) / f64::from(n);
                format!("{x} {}", if i % 2 == 0 { -2e6 } else { 2e6 })
            })
            .collect();
        points.extend(["2e6 2.1e6".into(), "-2e6 2.1e6".into(), "-2e6 -2e6".into()]);
        let wkt = format!("POLYGON(({}))", points.join(","));
        let err = Footprint::from_wkt("EPSG:3031", &wkt).expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("20004 points") && msg.contains("ogr2ogr"),
            "{msg}"
        );
    }

    #[test]
    fn around_a_pole_the_parts_reach_it_at_every_longitude() {
        let f = Footprint::from_wkt("EPSG:3413", &rect([-1e6, -1e6, 1e6, 1e6])).unwrap();
        assert_eq!(f.boxes.len(), 1);
        let b = f.boxes[0];
        assert!(b[0] == -180.0 && b[2] == 180.0 && b[3] == 90.0, "{b:?}");
        let s = Footprint::from_wkt("EPSG:3031", &rect([-1e6, -1e6, 1e6, 1e6])).unwrap();
        assert_eq!(s.bbox_4326()[1], -90.0);
    }

    #[test]
    fn near_a_pole_without_it_the_parts_are_cut_at_180() {
        // Passes 80 km from the North Pole, across 180°, without containing the pole.
        let wkt = rect([-291717.1, 77192.9, 844346.5, 221812.7]);
        let f = Footprint::from_wkt("EPSG:3413", &wkt).unwrap();
        assert_eq!(f.boxes.len(), 2, "{:?}", f.boxes);
        let lon0 = PreparedArea::new(&Area::Bbox {
            bbox: [-2.0, 71.0, 22.0, 90.0],
            crs: None,
        })
        .unwrap();
        assert!(!f.intersects_in_wgs84(&lon0).unwrap());
        assert!(!f.intersects(&lon0).unwrap());
    }

    #[test]
    fn geojson_is_what_ogr_writes_to_nine_decimals() {
        let cases = [
            ("EPSG:32633", "POLYGON((450000.123456789 4950000.5,550000 4950000,550000 5050000.987654321,450000 5050000,450000.123456789 4950000.5),(500000 5000000,510000 5000000,510000 5010000,500000 5000000))"),
            ("EPSG:32601", "POLYGON((290000 6950000,390000 6950000,390000 7050000,290000 7050000,290000 6950000))"),
            ("EPSG:3413", &rect([-1e6, -1e6, 1e6, 1e6])),
            ("EPSG:3031", &rect([-291717.1, 77192.9, 844346.5, 221812.7])),
            ("EPSG:4326", "MULTIPOLYGON(((179.5 -10,180 -10,180 10,179.5 10,179.5 -10)),((-180 -10,-179.25 -10,-179.25 10,-180 10,-180 -10)))"),
            ("EPSG:4326", "POLYGON Z((10 20 1.5,11 20 2,11 21 -0.0000000001,10 20 1.5))"),
        ];
        for (crs, wkt) in cases {
            let f = Footprint::from_wkt(crs, wkt).unwrap();
            let what = format!("{crs} {wkt}");
            let native = Geom::from_wkb(&f.native_wkb).unwrap().to_geojson().unwrap();
            assert_close(&f.native_geojson(), &native, &what);
            let parts = ogr_geojson_of_parts(&f.wgs84_wkb);
            assert_close(&f.wgs84_geojson(), &parts, &what);
            assert!(geojson::polygons(&f.wgs84_wkb, true).is_some(), "{what}");
        }
        // Where OGR shortens a run of nines, the nine decimals are kept.
        let wkt = rect([10.0, -86.188999998, 11.0, -86.0]);
        let f = Footprint::from_wkt("EPSG:4326", &wkt).unwrap();
        let first_y = |g: &Json| g["coordinates"][0][0][1].as_f64();
        assert_eq!(first_y(&f.native_geojson()), Some(-86.188999998));
        let ogr = Geom::from_wkb(&f.native_wkb).unwrap().to_geojson().unwrap();
        assert_eq!(first_y(&ogr), Some(-86.189));
    }

    /// The same GeoJSON but for numbers, which differ by at most 1e-8 (both round to 9
    /// decimals; OGR shortens some further).
    fn assert_close(ours: &Json, ogr: &Json, what: &str) {
        match (ours, ogr) {
            (Json::Array(a), Json::Array(b)) => {
                assert_eq!(a.len(), b.len(), "{what}: {ours} against {ogr}");
                a.iter().zip(b).for_each(|(x, y)| assert_close(x, y, what));
            }
            (Json::Object(a), Json::Object(b)) => {
                assert_eq!(a.len(), b.len(), "{what}: {ours} against {ogr}");
                a.iter().for_each(|(k, x)| assert_close(x, &b[k], what));
            }
            (Json::Number(x), Json::Number(y)) => {
                assert!(x.is_f64() && y.is_f64(), "{what}: {x} against {y}");
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                let close = (x - y).abs() <= 1e-8 * y.abs().max(1.0);
                assert!(close, "{what}: {x} against {y}");
            }
            _ => assert_eq!(ours, ogr, "{what}"),
        }
    }

    /// The 4326 parts of `wkt` in `crs`, and what GDAL's date-line cutting makes of them.
    fn parts_both_ways(crs: &str, wkt: &str) -> (Vec<u8>, Vec<u8>, bool) {
        let crs = Crs::from_user(crs).unwrap();
        let to = to_wgs84(&crs).unwrap();
        let native = Geom::from_wkt(wkt).unwrap();
        let (dense, transformed) = densify_for_wrap(&native, &to.ct);
        let plain = transformed.is_some_and(|t| taken_as_transformed(&native, &t, &to));
        let ours = to_wgs84_parts(&native, &to).unwrap().to_wkb().unwrap();
        let gdal = wrapped(&dense, &to).unwrap().to_wkb().unwrap();
        (ours, gdal, plain)
    }

    #[test]
    fn parts_taken_as_transformed_are_what_gdal_makes_and_the_others_are_gdals() {
        let square = |cx: f64, cy: f64, h: f64| {
            format!(
                "POLYGON(({} {},{} {},{} {},{} {},{} {}))",
                cx - h,
                cy - h,
                cx + h,
                cy - h,
                cx + h,
                cy + h,
                cx - h,
                cy + h,
                cx - h,
                cy - h
            )
        };
        // (CRS, polygon, taken as transformed)
        let cases = [
            ("EPSG:32633", square(500_000.0, 5_000_000.0, 50_000.0), true),
            ("EPSG:32601", square(500_000.0, 7_000_000.0, 50_000.0), true),
            ("EPSG:32760", square(550_000.0, 3_000_000.0, 40_000.0), true),
            (
                "EPSG:3413",
                square(1_500_000.0, -1_000_000.0, 100_000.0),
                true,
            ),
            ("EPSG:4326", square(10.5, 40.5, 0.5), true),
            // Across 180°, around the poles, past 180° in its own CRS: cut by GDAL.
            (
                "EPSG:32601",
                square(340_000.0, 7_000_000.0, 50_000.0),
                false,
            ),
            ("EPSG:3413", square(0.0, 0.0, 300_000.0), false),
            ("EPSG:3031", square(20_000.0, -30_000.0, 200_000.0), false),
            ("EPSG:4326", square(179.5, 10.5, 1.0), false),
            ("EPSG:4326", square(0.0, 89.5, 0.5), false),
        ];
        for (crs, wkt, plain) in cases {
            let (ours, gdal, taken) = parts_both_ways(crs, &wkt);
            assert_eq!(taken, plain, "{crs} {wkt}");
            assert_eq!(ours, gdal, "{crs} {wkt}");
        }
    }

    /// The footprint of `wkt` in `crs` made on coordinates, and made through OGR.
    fn footprint_both_ways(crs: &str, wkt: &str) -> (Footprint, Footprint) {
        let crs = Crs::from_user(crs).unwrap();
        let to = to_wgs84(&crs).unwrap();
        let wkb = Geom::from_wkt(wkt).unwrap().to_wkb().unwrap();
        let native = Polygons::from_wkb(&wkb).unwrap();
        let ours = Footprint::from_coordinates(&crs, &native, &to);
        let ogr = Footprint::through_ogr(crs, &wkb, &to).unwrap();
        (ours.expect("made on coordinates"), ogr)
    }

    /// The largest distance from a vertex of the polygons `a` to the outline of `b`.
    fn farthest_vertex(a: &[u8], b: &[u8]) -> f64 {
        let a = Polygons::from_wkb(a).unwrap();
        let b = Geom::from_wkb(b).unwrap();
        // SAFETY: a valid handle; the boundary (or null) is ours.
        let outline = Geom(unsafe { gdal_sys::OGR_G_Boundary(b.0) });
        assert!(!outline.0.is_null());
        let mut farthest: f64 = 0.0;
        for p in a.rings().flat_map(|r| r.chunks_exact(a.dims)) {
            let point = Geom::new(gdal_sys::OGRwkbGeometryType::wkbPoint);
            // SAFETY: valid handles; OGR_G_Distance only reads them.
            let d = unsafe {
                gdal_sys::OGR_G_SetPoint_2D(point.0, 0, p[0], p[1]);
                gdal_sys::OGR_G_Distance(point.0, outline.0)
            };
            assert!(d >= 0.0);
            farthest = farthest.max(d);
        }
        farthest
    }

    #[test]
    fn footprints_made_on_coordinates_are_those_ogr_makes() {
        let square = |cx: f64, cy: f64, h: f64| {
            let (w, s, e, n) = (cx - h, cy - h, cx + h, cy + h);
            format!("({w} {s},{e} {s},{e} {n},{w} {n},{w} {s})")
        };
        let one = |ring: String| format!("POLYGON({ring})");
        let cases = [
            ("EPSG:32633", one(square(500_000.0, 5_000_000.0, 50_000.0))),
            ("EPSG:32601", one(square(300_000.0, 8_000_000.0, 60_000.0))),
            ("EPSG:32760", one(square(550_000.0, 3_000_000.0, 40_000.0))),
            (
                "EPSG:3413",
                one(square(1_500_000.0, -1_000_000.0, 100_000.0)),
            ),
            ("EPSG:4326", one(square(10.5, 40.5, 0.5))),
            // A hole, and two parts.
            (
                "EPSG:32633",
                format!(
                    "POLYGON({},{})",
                    square(500_000.0, 5_000_000.0, 50_000.0),
                    square(510_000.0, 5_010_000.0, 10_000.0)
                ),
            ),
            (
                "EPSG:3031",
                format!(
                    "MULTIPOLYGON(({}),({}))",
                    square(1_000_000.0, 1_000_000.0, 100_000.0),
                    square(-1_500_000.0, 500_000.0, 200_000.0)
                ),
            ),
            // Across 180°: cut on coordinates (ours) and by GDAL (OGR's).
            ("EPSG:32601", one(square(340_000.0, 7_000_000.0, 50_000.0))),
            ("EPSG:32660", one(square(800_000.0, 7_000_000.0, 50_000.0))),
            ("EPSG:4326", one(square(179.5, 10.5, 1.0))),
            (
                "EPSG:4326",
                format!(
                    "POLYGON({},{},{})",
                    square(179.5, 10.5, 1.0),
                    square(179.9, 10.5, 0.2),
                    square(179.0, 10.0, 0.1)
                ),
            ),
            (
                "EPSG:4326",
                format!(
                    "MULTIPOLYGON(({}),({}))",
                    square(179.5, 10.5, 1.0),
                    square(10.5, 40.5, 0.5)
                ),
            ),
            // Around the poles: cut by GDAL both ways.
            ("EPSG:3413", one(square(0.0, 0.0, 300_000.0))),
            ("EPSG:3031", one(square(20_000.0, -30_000.0, 200_000.0))),
        ];
        for (crs, wkt) in cases {
            let what = format!("{crs} {wkt}");
            let (ours, ogr) = footprint_both_ways(crs, &wkt);
            assert_eq!(ours.native_wkb, ogr.native_wkb, "{what}");
            assert_eq!(ours.native_bounds, ogr.native_bounds, "{what}");
            // (180° and -180° are one longitude.)
            let turn = (ours.centroid_lon - ogr.centroid_lon).rem_euclid(360.0);
            assert!(turn.min(360.0 - turn) < 1e-9, "{what}");
            assert_eq!(ours.boxes.len(), ogr.boxes.len(), "{what}");
            // Both simplify the densified outline by up to this much.
            let b = ogr.bbox_4326();
            let tolerance = 2.0 * simplify_tolerance(b).max(1e-9);
            let sorted = |boxes: &[Bbox]| {
                let mut boxes = boxes.to_vec();
                boxes.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
                boxes
            };
            for (a, o) in sorted(&ours.boxes).iter().zip(&sorted(&ogr.boxes)) {
                let off = (0..4).map(|i| (a[i] - o[i]).abs()).fold(0.0, f64::max);
                assert!(off <= tolerance, "{what}: boxes {a:?} {o:?}");
            }
            let apart = farthest_vertex(&ours.wgs84_wkb, &ogr.wgs84_wkb)
                .max(farthest_vertex(&ogr.wgs84_wkb, &ours.wgs84_wkb));
            assert!(apart <= tolerance, "{what}: outlines {apart} apart");
            // Moving the outline by up to the tolerance changes the area by up to the
            // tolerance times the outline's length.
            let (a, o) = (
                area_and_validity(&ours.wgs84_wkb),
                area_and_validity(&ogr.wgs84_wkb),
            );
            assert!(a.1, "{what}: ours is not a valid polygon");
            let most = tolerance * outline_length(&ogr.wgs84_wkb);
            assert!(
                (a.0 - o.0).abs() <= most,
                "{what}: areas {a:?} {o:?}, {most}"
            );
        }
    }

    #[test]
    fn polar_polygons_across_180_are_cut_where_gdal_leaves_them_whole() {
        // GDAL 3.6's transformer with WRAPDATELINE=YES returns these squares of polar
        // stereographic CRSs, each a few degrees either side of 180°, as one polygon whose
        // edges jump across the globe.
        let cases = [
            (
                "EPSG:3413",
                "POLYGON((-1100000 900000,-900000 900000,-900000 1100000,\
                 -1100000 1100000,-1100000 900000))",
            ),
            (
                "EPSG:3031",
                "POLYGON((-150000 -1650000,150000 -1650000,150000 -1350000,\
                 -150000 -1350000,-150000 -1650000))",
            ),
        ];
        for (crs, wkt) in cases {
            let (ours, ogr) = footprint_both_ways(crs, wkt);
            assert_eq!(ogr.boxes.len(), 1, "{crs}");
            assert!(ogr.boxes[0][2] - ogr.boxes[0][0] > 350.0, "{:?}", ogr.boxes);
            // Ours: two pieces that meet at 180°, each a few degrees wide.
            let mut boxes = ours.boxes.clone();
            boxes.sort_by(|a, b| a[0].total_cmp(&b[0]));
            assert_eq!(boxes.len(), 2, "{crs}");
            assert_eq!(boxes[0][0], -180.0);
            assert_eq!(boxes[1][2], 180.0);
            assert!(boxes[0][2] < -170.0 && boxes[1][0] > 170.0, "{boxes:?}");
            // Together they have the area that PROJ gives the polygon, densified to 1 km,
            // in longitudes from 0° to 360° (+lon_wrap=180), where it is whole.
            let native = Crs::from_user(crs).unwrap().srs().unwrap();
            let to_0_360 = Crs::from_user("+proj=longlat +datum=WGS84 +lon_wrap=180")
                .and_then(|c| c.srs())
                .unwrap();
            let g = Geom::from_wkt(wkt).unwrap();
            g.segmentize(1000.0);
            let whole = g
                .transformed(&Transform::new(&native, &to_0_360).unwrap())
                .unwrap();
            let (a, w) = (
                area_and_validity(&ours.wgs84_wkb),
                area_and_validity(&whole.to_wkb().unwrap()),
            );
            assert!(a.1 && w.1, "{crs}: {a:?} {w:?}");
            assert!((a.0 - w.0).abs() <= 1e-4 * w.0, "{crs}: areas {a:?} {w:?}");
        }
    }

    fn outline_length(wkb: &[u8]) -> f64 {
        let g = Geom::from_wkb(wkb).unwrap();
        // SAFETY: a valid handle, only read; the boundary is ours.
        let outline = Geom(unsafe { gdal_sys::OGR_G_Boundary(g.0) });
        // SAFETY: a valid handle, only read.
        unsafe { gdal_sys::OGR_G_Length(outline.0) }
    }

    /// The area of the polygons in `wkb`, and whether GEOS finds them valid.
    fn area_and_validity(wkb: &[u8]) -> (f64, bool) {
        let g = Geom::from_wkb(wkb).unwrap();
        // SAFETY: a valid handle, only read.
        unsafe { (gdal_sys::OGR_G_Area(g.0), gdal_sys::OGR_G_IsValid(g.0) != 0) }
    }

    #[test]
    fn epsg_codes_are_found() {
        assert_eq!(Crs::from_user("EPSG:4326").unwrap().epsg, Some(4326));
        assert_eq!(Crs::from_user("EPSG:32760").unwrap().epsg, Some(32760));
        let wkt = Crs::from_user("EPSG:3413").unwrap().wkt;
        assert_eq!(Crs::from_user(&wkt).unwrap().epsg, Some(3413));
        let odd = Crs::from_user("+proj=tmerc +lon_0=7.3 +datum=WGS84").unwrap();
        assert_eq!(odd.epsg, None);
        assert_eq!(odd.key(), odd.wkt);
    }
}
