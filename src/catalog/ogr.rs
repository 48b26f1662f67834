//! Owned handles on GDAL's OGR geometries, OSR spatial references and coordinate
//! transformations, for the catalog's footprints and query areas ([`super::footprint`]):
//! each handle is released when its value drops, and each call says what it needs.

use std::ffi::{c_char, c_void, CString};

use serde_json::Value as Json;

use super::footprint::Bbox;
use super::geojson;
use super::outline;
use super::wkb::Polygons;
use crate::error::{Error, Result};
use crate::gdal::cpl::{from_c, last_error_message, CStringList, QuietErrors};

/// GDAL's geometry transformer.
pub(crate) struct GeomTransformer(pub(crate) gdal_sys::OGRGeomTransformerH);

impl GeomTransformer {
    /// A transformer by `ct` that cuts at the antimeridian (`WRAPDATELINE=YES`).
    pub(crate) fn wrapping(ct: &Transform) -> Result<GeomTransformer> {
        let options = CStringList::new(["WRAPDATELINE=YES".to_string()]);
        // SAFETY: ct is a valid handle, which the transformer copies; the options are a
        // NULL-terminated list alive during the call.
        let t = unsafe { gdal_sys::OGR_GeomTransformer_Create(ct.0, options.as_ptr() as _) };
        if t.is_null() {
            return Err(gdal_error("cannot make a geometry transformer"));
        }
        Ok(GeomTransformer(t))
    }

    /// `g` transformed, `None` if that failed.
    pub(crate) fn transform(&self, g: &Geom) -> Option<Geom> {
        // SAFETY: both handles are valid; the returned geometry (or null) is ours.
        let out = unsafe { gdal_sys::OGR_GeomTransformer_Transform(self.0, g.0) };
        (!out.is_null()).then_some(Geom(out))
    }
}

impl Drop for GeomTransformer {
    fn drop(&mut self) {
        // SAFETY: created by OGR_GeomTransformer_Create, destroyed once.
        unsafe { gdal_sys::OGR_GeomTransformer_Destroy(self.0) }
    }
}

pub(crate) fn gdal_error(what: &str) -> Error {
    Error::Gdal(format!("{what}: {}", last_error_message()))
}

pub(crate) fn wgs84_srs() -> Result<Srs> {
    Srs::from_user("EPSG:4326")
}

/// An OSR spatial reference with traditional GIS axis order (x = easting/longitude).
pub(crate) struct Srs(pub(crate) gdal_sys::OGRSpatialReferenceH);

impl Srs {
    pub(crate) fn from_user(definition: &str) -> Result<Srs> {
        let c = CString::new(definition)
            .map_err(|_| Error::InvalidInput("a CRS definition cannot contain NUL".into()))?;
        // SAFETY: a new handle, owned by the returned value (or released on failure).
        unsafe {
            let h = gdal_sys::OSRNewSpatialReference(std::ptr::null());
            let srs = Srs(h);
            if gdal_sys::OSRSetFromUserInput(h, c.as_ptr()) != 0 {
                return Err(Error::InvalidInput(format!(
                    "{definition:?} is not a CRS GDAL knows ({}); give an EPSG code \
                     (EPSG:32633), a PROJ string or WKT",
                    last_error_message()
                )));
            }
            gdal_sys::OSRSetAxisMappingStrategy(
                h,
                gdal_sys::OSRAxisMappingStrategy::OAMS_TRADITIONAL_GIS_ORDER,
            );
            Ok(srs)
        }
    }

    pub(crate) fn wkt(&self) -> Result<String> {
        let options = CStringList::new(["FORMAT=WKT2_2019".to_string()]);
        let mut out: *mut c_char = std::ptr::null_mut();
        // SAFETY: valid handle; the exported string is freed with VSIFree.
        unsafe {
            let err = gdal_sys::OSRExportToWktEx(self.0, &mut out, options.as_ptr() as _);
            let wkt = if err == 0 { from_c(out) } else { None };
            gdal_sys::VSIFree(out as *mut c_void);
            wkt.ok_or_else(|| gdal_error("cannot write a CRS as WKT"))
        }
    }

    pub(crate) fn is_geographic(&self) -> bool {
        // SAFETY: valid handle.
        unsafe { gdal_sys::OSRIsGeographic(self.0) != 0 }
    }

    /// The EPSG code, when the definition is (or is identified as) an EPSG CRS.
    pub(crate) fn epsg(&self) -> Option<u32> {
        self.declared_epsg().or_else(|| {
            // SAFETY: valid handle.
            unsafe {
                let _quiet = QuietErrors::push();
                gdal_sys::OSRAutoIdentifyEPSG(self.0);
            }
            self.declared_epsg()
        })
    }

    /// The EPSG code the definition itself gives its CRS (`ID["EPSG",n]` on its root);
    /// `None` for a CRS without one (a custom projection, a compound CRS).
    pub(crate) fn declared_epsg(&self) -> Option<u32> {
        // SAFETY: valid handle; a null target asks about the root; the returned strings
        // belong to the SRS and are copied at once.
        let (name, code) = unsafe {
            (
                from_c(gdal_sys::OSRGetAuthorityName(self.0, std::ptr::null())),
                from_c(gdal_sys::OSRGetAuthorityCode(self.0, std::ptr::null())),
            )
        };
        match (name.as_deref(), code) {
            (Some(n), Some(c)) if n.eq_ignore_ascii_case("EPSG") => c.parse().ok(),
            _ => None,
        }
    }
}

impl Drop for Srs {
    fn drop(&mut self) {
        // SAFETY: the handle was created by OSRNewSpatialReference and is released once.
        unsafe { gdal_sys::OSRRelease(self.0) }
    }
}

/// A coordinate transformation between two spatial references.
pub(crate) struct Transform(pub(crate) gdal_sys::OGRCoordinateTransformationH);

impl Transform {
    pub(crate) fn new(from: &Srs, to: &Srs) -> Result<Transform> {
        // SAFETY: both handles are valid; the transformation copies what it needs.
        let h = unsafe { gdal_sys::OCTNewCoordinateTransformation(from.0, to.0) };
        if h.is_null() {
            return Err(gdal_error("no coordinate transformation between the CRSs"));
        }
        Ok(Transform(h))
    }

    /// Transforms every point of 2D `shape` in place (in one call); false if any failed.
    pub(crate) fn polygons(&self, shape: &mut Polygons) -> bool {
        let count: usize = shape.rings().map(|r| r.len() / 2).sum();
        let (mut x, mut y) = (Vec::with_capacity(count), Vec::with_capacity(count));
        for p in shape.rings().flat_map(|r| r.chunks_exact(2)) {
            x.push(p[0]);
            y.push(p[1]);
        }
        if !self.points(&mut x, &mut y) {
            return false;
        }
        let mut xy = x.iter().zip(&y);
        for p in shape
            .parts
            .iter_mut()
            .flatten()
            .flat_map(|r| r.chunks_exact_mut(2))
        {
            let Some((&px, &py)) = xy.next() else {
                return false;
            };
            if !px.is_finite() || !py.is_finite() {
                return false;
            }
            (p[0], p[1]) = (px, py);
        }
        true
    }

    /// Transforms points in place; false if any failed.
    pub(crate) fn points(&self, x: &mut [f64], y: &mut [f64]) -> bool {
        // SAFETY: x and y have the same length, passed as the count.
        unsafe {
            gdal_sys::OCTTransform(
                self.0,
                x.len() as i32,
                x.as_mut_ptr(),
                y.as_mut_ptr(),
                std::ptr::null_mut(),
            ) != 0
        }
    }
}

impl Drop for Transform {
    fn drop(&mut self) {
        // SAFETY: created by OCTNewCoordinateTransformation, destroyed once.
        unsafe { gdal_sys::OCTDestroyCoordinateTransformation(self.0) }
    }
}

/// An owned OGR geometry.
pub(crate) struct Geom(pub(crate) gdal_sys::OGRGeometryH);

impl Drop for Geom {
    fn drop(&mut self) {
        // SAFETY: we own the handle and destroy it once.
        unsafe { gdal_sys::OGR_G_DestroyGeometry(self.0) }
    }
}

impl Geom {
    pub(crate) fn new(kind: gdal_sys::OGRwkbGeometryType::Type) -> Geom {
        // SAFETY: creates an empty geometry we own.
        Geom(unsafe { gdal_sys::OGR_G_CreateGeometry(kind) })
    }

    pub(crate) fn from_wkb(wkb: &[u8]) -> Result<Geom> {
        let mut h: gdal_sys::OGRGeometryH = std::ptr::null_mut();
        // SAFETY: the buffer and its length are passed together; on success h is ours.
        let err = unsafe {
            gdal_sys::OGR_G_CreateFromWkb(
                wkb.as_ptr() as *const c_void,
                std::ptr::null_mut(),
                &mut h,
                wkb.len() as i32,
            )
        };
        if err != 0 || h.is_null() {
            return Err(Error::InvalidInput(
                "a footprint is not valid WKB".to_string(),
            ));
        }
        Ok(Geom(h))
    }

    pub(crate) fn from_wkt(wkt: &str) -> Result<Geom> {
        let c =
            CString::new(wkt).map_err(|_| Error::InvalidInput("WKT cannot contain NUL".into()))?;
        let mut p = c.as_ptr() as *mut c_char;
        let mut h: gdal_sys::OGRGeometryH = std::ptr::null_mut();
        // SAFETY: p points into `c`, alive for the call; on success h is ours.
        let err = unsafe { gdal_sys::OGR_G_CreateFromWkt(&mut p, std::ptr::null_mut(), &mut h) };
        if err != 0 || h.is_null() {
            return Err(Error::InvalidInput(format!(
                "{:?} is not a WKT geometry; give POLYGON((x y, ...)) or MULTIPOLYGON(...)",
                truncate(wkt)
            )));
        }
        Ok(Geom(h))
    }

    pub(crate) fn rectangle(b: Bbox) -> Geom {
        let ring = Geom::new(gdal_sys::OGRwkbGeometryType::wkbLinearRing);
        for (x, y) in [
            (b[0], b[1]),
            (b[2], b[1]),
            (b[2], b[3]),
            (b[0], b[3]),
            (b[0], b[1]),
        ] {
            // SAFETY: ring is a valid line geometry.
            unsafe { gdal_sys::OGR_G_AddPoint_2D(ring.0, x, y) };
        }
        let poly = Geom::new(gdal_sys::OGRwkbGeometryType::wkbPolygon);
        poly.add(&ring).expect("a ring goes into a polygon");
        poly
    }

    pub(crate) fn check_areal(&self) -> Result<()> {
        let t = self.flat_type();
        if t != gdal_sys::OGRwkbGeometryType::wkbPolygon
            && t != gdal_sys::OGRwkbGeometryType::wkbMultiPolygon
        {
            return Err(Error::InvalidInput(
                "a footprint or query area must be a POLYGON or MULTIPOLYGON".into(),
            ));
        }
        if self.is_empty() {
            return Err(Error::InvalidInput("the polygon is empty".into()));
        }
        Ok(())
    }

    pub(crate) fn flat_type(&self) -> gdal_sys::OGRwkbGeometryType::Type {
        // SAFETY: valid handle.
        let t = unsafe { gdal_sys::OGR_G_GetGeometryType(self.0) };
        // SAFETY: pure function on the type code.
        unsafe { gdal_sys::OGR_GT_Flatten(t) }
    }

    pub(crate) fn is_empty(&self) -> bool {
        // SAFETY: valid handle.
        unsafe { gdal_sys::OGR_G_IsEmpty(self.0) != 0 }
    }

    pub(crate) fn clone_geom(&self) -> Geom {
        // SAFETY: valid handle; the clone is ours.
        Geom(unsafe { gdal_sys::OGR_G_Clone(self.0) })
    }

    pub(crate) fn add(&self, part: &Geom) -> Result<()> {
        // SAFETY: both valid; OGR_G_AddGeometry copies the part.
        if unsafe { gdal_sys::OGR_G_AddGeometry(self.0, part.0) } != 0 {
            return Err(gdal_error("cannot assemble a geometry"));
        }
        Ok(())
    }

    pub(crate) fn envelope(&self) -> Bbox {
        let mut e = gdal_sys::OGREnvelope {
            MinX: 0.0,
            MaxX: 0.0,
            MinY: 0.0,
            MaxY: 0.0,
        };
        // SAFETY: valid handle, e is written.
        unsafe { gdal_sys::OGR_G_GetEnvelope(self.0, &mut e) };
        [e.MinX, e.MinY, e.MaxX, e.MaxY]
    }

    /// Adds points along each edge longer than `max_length`; or than
    /// [`outline::bounded_step`], for a geometry so long that it would add more than
    /// [`outline::MAX_ADDED_POINTS`].
    pub(crate) fn segmentize(&self, max_length: f64) {
        // Footprints and query areas are polygons; anything else is not measured.
        let perimeter = self
            .to_wkb()
            .ok()
            .and_then(|wkb| Polygons::from_wkb(&wkb))
            .map_or(0.0, |p| outline::perimeter(&p));
        let max_length = outline::bounded_step(max_length, perimeter);
        // SAFETY: valid handle, modified in place.
        unsafe { gdal_sys::OGR_G_Segmentize(self.0, max_length) }
    }

    pub(crate) fn intersects(&self, other: &Geom) -> bool {
        // SAFETY: both valid.
        unsafe { gdal_sys::OGR_G_Intersects(self.0, other.0) != 0 }
    }

    pub(crate) fn intersection(&self, other: &Geom) -> Option<Geom> {
        // SAFETY: both valid; the result (or null) is ours.
        let h = unsafe { gdal_sys::OGR_G_Intersection(self.0, other.0) };
        (!h.is_null()).then_some(Geom(h))
    }

    /// A copy in another CRS; `None` when a point cannot be transformed.
    pub(crate) fn transformed(&self, t: &Transform) -> Option<Geom> {
        let g = self.clone_geom();
        // SAFETY: valid handles; the geometry is transformed in place.
        (unsafe { gdal_sys::OGR_G_Transform(g.0, t.0) } == 0).then_some(g)
    }

    pub(crate) fn part_count(&self) -> usize {
        // SAFETY: valid handle.
        unsafe { gdal_sys::OGR_G_GetGeometryCount(self.0) }.max(0) as usize
    }

    /// A copy of part `i` of a collection.
    pub(crate) fn part(&self, i: usize) -> Option<Geom> {
        if self.flat_type() != gdal_sys::OGRwkbGeometryType::wkbMultiPolygon {
            return None;
        }
        // SAFETY: i is below the part count; the reference is cloned before use.
        let h = unsafe { gdal_sys::OGR_G_GetGeometryRef(self.0, i as i32) };
        // SAFETY: h belongs to self and is valid while self is; we clone it.
        (!h.is_null()).then(|| Geom(unsafe { gdal_sys::OGR_G_Clone(h) }))
    }

    /// The polygons of this geometry (itself, or the areal parts of a collection).
    pub(crate) fn polygons(&self) -> Vec<Geom> {
        let t = self.flat_type();
        if t == gdal_sys::OGRwkbGeometryType::wkbPolygon {
            return vec![self.clone_geom()];
        }
        let mut out = Vec::new();
        for i in 0..self.part_count() {
            // SAFETY: i is below the part count; the reference is cloned at once.
            let h = unsafe { gdal_sys::OGR_G_GetGeometryRef(self.0, i as i32) };
            if h.is_null() {
                continue;
            }
            // SAFETY: h is valid while self is; cloned before self can go.
            let part = Geom(unsafe { gdal_sys::OGR_G_Clone(h) });
            out.extend(part.polygons());
        }
        out.retain(|p| !p.is_empty());
        out
    }

    /// The polygons as a MultiPolygon with their boxes.
    pub(crate) fn part_boxes(&self) -> Vec<Bbox> {
        self.polygons().iter().map(|p| p.envelope()).collect()
    }

    /// The polygons' coordinates, `None` if they cannot be read back.
    pub(crate) fn coordinates(&self) -> Option<Polygons> {
        Polygons::from_wkb(&self.to_wkb().ok()?)
    }

    /// See [`outline::largest_longitude_step`]; infinite for a geometry not read back.
    pub(crate) fn largest_longitude_step(&self) -> f64 {
        self.coordinates()
            .map_or(f64::INFINITY, |p| outline::largest_longitude_step(&p))
    }

    /// See [`outline::within_one_turn`].
    pub(crate) fn within_one_turn(&self) -> bool {
        self.coordinates()
            .is_some_and(|p| outline::within_one_turn(&p))
    }

    pub(crate) fn x(&self, i: i32) -> f64 {
        // SAFETY: valid handle.
        unsafe { gdal_sys::OGR_G_GetX(self.0, i) }
    }

    pub(crate) fn y(&self, i: i32) -> f64 {
        // SAFETY: valid handle.
        unsafe { gdal_sys::OGR_G_GetY(self.0, i) }
    }

    /// ISO WKB, little-endian; polygons of a collection become one MultiPolygon.
    pub(crate) fn to_wkb(&self) -> Result<Vec<u8>> {
        let t = self.flat_type();
        let g = if t == gdal_sys::OGRwkbGeometryType::wkbPolygon
            || t == gdal_sys::OGRwkbGeometryType::wkbMultiPolygon
        {
            self.clone_geom()
        } else {
            let multi = Geom::new(gdal_sys::OGRwkbGeometryType::wkbMultiPolygon);
            for p in self.polygons() {
                multi.add(&p)?;
            }
            multi
        };
        // SAFETY: valid handle.
        let size = unsafe { gdal_sys::OGR_G_WkbSizeEx(g.0) };
        let mut buf = vec![0u8; size];
        // SAFETY: buf holds exactly the size OGR reported.
        let err = unsafe {
            gdal_sys::OGR_G_ExportToIsoWkb(g.0, gdal_sys::OGRwkbByteOrder::wkbNDR, buf.as_mut_ptr())
        };
        if err != 0 {
            return Err(gdal_error("cannot write a geometry as WKB"));
        }
        Ok(buf)
    }

    pub(crate) fn to_geojson(&self) -> Result<Json> {
        let precision = geojson::COORDINATE_PRECISION;
        let options = CStringList::new([format!("COORDINATE_PRECISION={precision}")]);
        // SAFETY: valid handle; the string is freed with VSIFree after copying.
        let text = unsafe {
            let p = gdal_sys::OGR_G_ExportToJsonEx(self.0, options.as_ptr());
            let s = from_c(p);
            gdal_sys::VSIFree(p as *mut c_void);
            s
        };
        let text = text.ok_or_else(|| gdal_error("cannot write a geometry as GeoJSON"))?;
        serde_json::from_str(&text).map_err(|e| Error::Gdal(format!("GeoJSON from OGR: {e}")))
    }
}

pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}
