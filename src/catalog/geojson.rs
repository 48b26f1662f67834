//! GeoJSON geometries from the WKB a footprint keeps, written without OGR.
//!
//! A search writes a geometry for every item it returns, and OGR's GeoJSON writer spends
//! most of its time formatting numbers through C++ streams. This module reads the
//! polygons the catalog stores (ISO WKB Polygon or MultiPolygon, 2D or with Z) and gives
//! the GeoJSON geometry `OGR_G_ExportToJsonEx` gives with `COORDINATE_PRECISION=9`: the
//! same structure, every coordinate a floating-point number rounded to nine decimals.
//! OGR then also shortens a number whose digits end in a run of zeros or nines
//! (-86.188999998 becomes -86.189); this module keeps the nine decimals. Anything else
//! it declines (`None`), and the caller asks OGR.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value as Json;

use super::wkb::{Polygons, Ring};

/// Decimals kept in each coordinate, as OGR's `COORDINATE_PRECISION`.
pub const COORDINATE_PRECISION: usize = 9;

/// A GeoJSON Polygon or MultiPolygon read from WKB, written by serializing it: a search
/// writes one or two per item, and building them as JSON trees first cost more than
/// writing them.
#[derive(Debug)]
pub struct Geometry {
    shape: Polygons,
    /// Written as a Polygon: WKB Polygon, or a MultiPolygon of one part when asked.
    as_polygon: bool,
}

/// The GeoJSON geometry of `wkb`: a Polygon, or a MultiPolygon (a Polygon when it has
/// exactly one part and `one_part_as_polygon`). `None` for WKB this module does not read.
pub fn geometry(wkb: &[u8], one_part_as_polygon: bool) -> Option<Geometry> {
    let shape = Polygons::from_wkb(wkb)?;
    let as_polygon = !shape.multi || (one_part_as_polygon && shape.parts.len() == 1);
    Some(Geometry { shape, as_polygon })
}

/// [`geometry`] as a JSON value.
pub fn polygons(wkb: &[u8], one_part_as_polygon: bool) -> Option<Json> {
    serde_json::to_value(geometry(wkb, one_part_as_polygon)?).ok()
}

impl Serialize for Geometry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let dims = self.shape.dims;
        let mut map = s.serialize_map(Some(2))?;
        if self.as_polygon {
            map.serialize_entry("type", "Polygon")?;
            let rings = self.shape.parts.first().map_or(&[][..], |p| p.as_slice());
            map.serialize_entry("coordinates", &Rings { rings, dims })?;
        } else {
            map.serialize_entry("type", "MultiPolygon")?;
            map.serialize_entry("coordinates", &Parts(self))?;
        }
        map.end()
    }
}

struct Parts<'a>(&'a Geometry);

impl Serialize for Parts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let dims = self.0.shape.dims;
        s.collect_seq(self.0.shape.parts.iter().map(|rings| Rings { rings, dims }))
    }
}

struct Rings<'a> {
    rings: &'a [Ring],
    dims: usize,
}

impl Serialize for Rings<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.rings.iter().map(|ring| Points {
            ring,
            dims: self.dims,
        }))
    }
}

struct Points<'a> {
    ring: &'a [f64],
    dims: usize,
}

impl Serialize for Points<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.ring.chunks_exact(self.dims).map(Point))
    }
}

struct Point<'a>(&'a [f64]);

impl Serialize for Point<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|&v| rounded(v)))
    }
}

/// `x` rounded to [`COORDINATE_PRECISION`] decimals as `printf("%.9f")` rounds it (from
/// its exact binary value), read back as the nearest double.
///
/// Longitudes and latitudes take a short way: below 2^43 the product `x * 1e9` is off
/// its exact value by at most 2^-10, so unless it lies within 1/64 of a half its
/// rounding is the exact one; and the integer it rounds to, divided by 1e9 (both exact
/// doubles), is the nearest double to the decimal. Other numbers are formatted.
fn rounded(x: f64) -> f64 {
    const SCALE: f64 = 1e9;
    const EXACT_BELOW: f64 = (1u64 << 43) as f64;
    let scaled = x * SCALE;
    let from_half = (scaled - scaled.trunc()).abs() - 0.5;
    if scaled.abs() < EXACT_BELOW && from_half.abs() > 1.0 / 64.0 {
        return scaled.round() / SCALE;
    }
    format!("{x:.COORDINATE_PRECISION$}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POLYGON: u32 = 3;
    const WITH_Z: u32 = 1000;

    fn polygon_wkb(little: bool, z: bool, rings: &[&[[f64; 3]]]) -> Vec<u8> {
        let mut b = vec![u8::from(little)];
        let u = |v: u32| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let f = |v: f64| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        b.extend(u(if z { POLYGON + WITH_Z } else { POLYGON }));
        b.extend(u(rings.len() as u32));
        for ring in rings {
            b.extend(u(ring.len() as u32));
            for p in *ring {
                let dims = if z { 3 } else { 2 };
                for v in &p[..dims] {
                    b.extend(f(*v));
                }
            }
        }
        b
    }

    #[test]
    fn both_byte_orders_and_z_are_read() {
        let ring: &[[f64; 3]] = &[
            [0.0, 0.0, 1.0],
            [1.0, 0.0, 1.0],
            [0.0, 1.0, 1.0],
            [0.0, 0.0, 1.0],
        ];
        for little in [true, false] {
            let g = polygons(&polygon_wkb(little, false, &[ring]), true).unwrap();
            assert_eq!(g["coordinates"][0][1], json!([1.0, 0.0]));
            let g = polygons(&polygon_wkb(little, true, &[ring]), true).unwrap();
            assert_eq!(g["coordinates"][0][2], json!([0.0, 1.0, 1.0]));
        }
    }

    #[test]
    fn counts_beyond_the_bytes_and_trailing_bytes_are_declined() {
        let ring: &[[f64; 3]] = &[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]];
        let good = polygon_wkb(true, false, &[ring]);
        assert!(polygons(&good, true).is_some());
        let mut huge = good.clone();
        huge[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(polygons(&huge, true), None);
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(polygons(&longer, true), None);
        assert_eq!(polygons(&good[..good.len() - 1], true), None);
        let mut point = good;
        point[1] = 1;
        assert_eq!(polygons(&point, true), None);
    }

    #[test]
    fn the_short_way_rounds_as_formatting_does() {
        // Magnitudes from 1e-12 to 1e12, and values a hair either side of a half.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..400_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            let x = if i % 4 == 0 {
                let half = ((state >> 3) % 360_000_000_000) as f64 + 0.5;
                (half + (unit - 0.5) * 1e-3) / 1e9
            } else {
                (unit - 0.5) * 10f64.powi((i % 25) - 12)
            };
            let formatted: f64 = format!("{x:.9}").parse().unwrap();
            assert_eq!(rounded(x).to_bits(), formatted.to_bits(), "{x:e}");
        }
    }

    #[test]
    fn coordinates_round_as_printf_does() {
        assert_eq!(rounded(-89.12345678951), -89.12345679);
        assert_eq!(rounded(179.9999999996), 180.0);
        assert_eq!(rounded(-1e-10).to_bits(), (-0.0f64).to_bits());
        // The double nearest 123456789.123456789 is 123456789.12345679104328155517578125.
        let big: f64 = "123456789.123456789".parse().unwrap();
        assert_eq!(rounded(big), "123456789.123456791".parse::<f64>().unwrap());
    }
}
