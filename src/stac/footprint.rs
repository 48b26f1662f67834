//! Where a store lies, as STAC wants it: its EPSG code, and its footprint in EPSG:4326
//! (RFC 7946 GeoJSON, cut at the antimeridian, correct over the poles).
//!
//! The footprint is the rectangle of the store's extent in its own CRS, made into a
//! footprint as the catalog makes every item's ([`crate::catalog::footprint`]): its edges
//! densified, transformed, and cut at the antimeridian, so that a ring that crosses 180°
//! becomes parts on either side and one around a pole reaches it at every longitude.

use serde_json::Value;

use crate::catalog::footprint::{wrapped_bbox, Crs, Footprint};
use crate::catalog::geojson;
use crate::catalog::ogr::Srs;
use crate::catalog::wkb::Polygons;
use crate::error::{Error, Result};

/// The EPSG code of a CRS given as WKT, when the CRS itself carries one (`ID["EPSG",n]`
/// on its root); `None` for a CRS without one (a custom projection, a compound CRS).
pub fn epsg_code(wkt: &str) -> Result<Option<u32>> {
    Ok(Srs::from_user(wkt)?.declared_epsg())
}

/// The footprint in EPSG:4326 of rectangle `rect` (`[xmin, ymin, xmax, ymax]` in the CRS
/// `wkt`): a GeoJSON Polygon or MultiPolygon, and its bbox (west > east when it crosses
/// the antimeridian).
pub fn footprint_4326(wkt: &str, rect: [f64; 4]) -> Result<(Value, [f64; 4])> {
    let [x0, y0, x1, y1] = rect;
    let rectangle = Polygons {
        multi: false,
        dims: 2,
        parts: vec![vec![vec![x0, y0, x1, y0, x1, y1, x0, y1, x0, y0]]],
    };
    let footprint = Footprint::new(Crs::from_user(wkt)?, rectangle.to_wkb())?;
    let geometry = geojson::polygons(&footprint.wgs84_wkb, true)
        .ok_or_else(|| Error::Gdal("cannot write the store's footprint as GeoJSON".into()))?;
    Ok((geometry, wrapped_bbox(&footprint.boxes)))
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
