//! Polygons as plain coordinates, read from and written to ISO WKB and read from GeoJSON
//! without OGR: the catalog's footprints are polygons, and going through OGR's geometry
//! objects for each of a million of them costs more than the work itself.
//!
//! Only Polygon and MultiPolygon, 2D or with Z, are read; anything else is declined
//! (`None`) and the caller hands it to OGR, which reads every geometry type and says what
//! is wrong with a bad one.

use serde_json::Value as Json;

const POLYGON: u32 = 3;
const MULTI_POLYGON: u32 = 6;
/// ISO WKB adds this to a type code for geometries with Z.
const WITH_Z: u32 = 1000;

/// A ring: its points one after the other, `dims` numbers each (x, y and maybe z).
pub type Ring = Vec<f64>;

/// Polygons (each an exterior ring then its holes) with 2 or 3 numbers per point.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygons {
    /// Written as a MultiPolygon (else as a Polygon, which then has exactly one part).
    pub multi: bool,
    /// Numbers per point: 2, or 3 with Z.
    pub dims: usize,
    pub parts: Vec<Vec<Ring>>,
}

impl Polygons {
    /// Reads a Polygon or MultiPolygon from ISO WKB (either byte order); `None` for
    /// anything else, a count the bytes cannot hold, or bytes left over.
    pub fn from_wkb(wkb: &[u8]) -> Option<Polygons> {
        let mut r = Reader {
            rest: wkb,
            little_endian: true,
        };
        let (kind, dims) = r.header()?;
        let (multi, parts) = match kind {
            POLYGON => (false, vec![r.polygon(dims)?]),
            _ => {
                let count = r.count(9)?;
                let mut parts = Vec::with_capacity(count);
                for _ in 0..count {
                    if r.header()? != (POLYGON, dims) {
                        return None;
                    }
                    parts.push(r.polygon(dims)?);
                }
                (true, parts)
            }
        };
        r.rest.is_empty().then_some(Polygons { multi, dims, parts })
    }

    /// Reads a GeoJSON Polygon or MultiPolygon whose positions all have 2 numbers, or all
    /// 3; `None` for anything else.
    pub fn from_geojson(geometry: &Json) -> Option<Polygons> {
        let coordinates = geometry.get("coordinates")?.as_array()?;
        let (multi, polygons) = match geometry.get("type")?.as_str()? {
            "Polygon" => (false, std::slice::from_ref(geometry.get("coordinates")?)),
            "MultiPolygon" => (true, coordinates.as_slice()),
            _ => return None,
        };
        let dims = first_position(polygons)?.len();
        if dims != 2 && dims != 3 {
            return None;
        }
        let mut parts = Vec::with_capacity(polygons.len());
        for polygon in polygons {
            let mut rings = Vec::new();
            for ring in polygon.as_array()? {
                let positions = ring.as_array()?;
                let mut out = Vec::with_capacity(positions.len() * dims);
                for p in positions {
                    let p = p.as_array().filter(|p| p.len() == dims)?;
                    for v in p {
                        out.push(v.as_f64()?);
                    }
                }
                rings.push(out);
            }
            parts.push(rings);
        }
        Some(Polygons { multi, dims, parts })
    }

    /// ISO WKB, little-endian.
    pub fn to_wkb(&self) -> Vec<u8> {
        let numbers: usize = self.rings().map(Vec::len).sum();
        let mut out = Vec::with_capacity(9 + 9 * self.parts.len() + 8 * numbers);
        let z = if self.dims == 3 { WITH_Z } else { 0 };
        if self.multi {
            out.push(1);
            out.extend((MULTI_POLYGON + z).to_le_bytes());
            out.extend((self.parts.len() as u32).to_le_bytes());
        }
        for polygon in &self.parts {
            out.push(1);
            out.extend((POLYGON + z).to_le_bytes());
            out.extend((polygon.len() as u32).to_le_bytes());
            for ring in polygon {
                out.extend(((ring.len() / self.dims) as u32).to_le_bytes());
                for v in ring {
                    out.extend(v.to_le_bytes());
                }
            }
        }
        out
    }

    /// Every ring of every polygon.
    pub fn rings(&self) -> impl Iterator<Item = &Ring> {
        self.parts.iter().flatten()
    }

    /// Whether every ring is closed and has at least four points, every number is
    /// finite, and there is at least one polygon, each with an exterior ring.
    pub fn is_well_formed(&self) -> bool {
        let d = self.dims;
        !self.parts.is_empty()
            && self.parts.iter().all(|p| !p.is_empty())
            && self.rings().all(|r| {
                r.len() % d == 0
                    && r.len() >= 4 * d
                    && r[..d] == r[r.len() - d..]
                    && r.iter().all(|v| v.is_finite())
            })
    }

    /// West, south, east, north of polygon `i`.
    pub fn part_box(&self, i: usize) -> [f64; 4] {
        let mut b = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for p in self.parts[i].iter().flat_map(|r| r.chunks_exact(self.dims)) {
            b = [
                b[0].min(p[0]),
                b[1].min(p[1]),
                b[2].max(p[0]),
                b[3].max(p[1]),
            ];
        }
        b
    }

    /// The box of all the polygons.
    pub fn bounds(&self) -> [f64; 4] {
        (0..self.parts.len())
            .map(|i| self.part_box(i))
            .reduce(|a, b| {
                [
                    a[0].min(b[0]),
                    a[1].min(b[1]),
                    a[2].max(b[2]),
                    a[3].max(b[3]),
                ]
            })
            .unwrap_or([f64::NAN; 4])
    }
}

/// The first position of the first ring of the first polygon.
fn first_position(polygons: &[Json]) -> Option<&Vec<Json>> {
    polygons.first()?.get(0)?.get(0)?.as_array()
}

/// Reads WKB from the front of a byte slice; every count is checked against the bytes
/// left before anything is allocated.
struct Reader<'a> {
    rest: &'a [u8],
    little_endian: bool,
}

impl Reader<'_> {
    /// A geometry's byte order and type: (type without Z, numbers per point).
    fn header(&mut self) -> Option<(u32, usize)> {
        let (&order, rest) = self.rest.split_first()?;
        self.little_endian = match order {
            1 => true,
            0 => false,
            _ => return None,
        };
        self.rest = rest;
        let code = self.u32()?;
        match code {
            POLYGON | MULTI_POLYGON => Some((code, 2)),
            c if c == POLYGON + WITH_Z || c == MULTI_POLYGON + WITH_Z => Some((c - WITH_Z, 3)),
            _ => None,
        }
    }

    fn polygon(&mut self, dims: usize) -> Option<Vec<Ring>> {
        let rings = self.count(4)?;
        let mut out = Vec::with_capacity(rings);
        for _ in 0..rings {
            let points = self.count(8 * dims)?;
            let mut ring = Vec::with_capacity(points * dims);
            for _ in 0..points * dims {
                ring.push(self.f64()?);
            }
            out.push(ring);
        }
        Some(out)
    }

    /// A count of things each at least `min_bytes` long: refused if they cannot fit.
    fn count(&mut self, min_bytes: usize) -> Option<usize> {
        let n = usize::try_from(self.u32()?).ok()?;
        (n.checked_mul(min_bytes)? <= self.rest.len()).then_some(n)
    }

    fn u32(&mut self) -> Option<u32> {
        self.little_endian_bytes().map(u32::from_le_bytes)
    }

    fn f64(&mut self) -> Option<f64> {
        self.little_endian_bytes().map(f64::from_le_bytes)
    }

    /// The next `N` bytes, reversed when the geometry is big-endian.
    fn little_endian_bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut bytes: [u8; N] = self.take()?;
        if !self.little_endian {
            bytes.reverse();
        }
        Some(bytes)
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.rest.len() < N {
            return None;
        }
        let (head, rest) = self.rest.split_at(N);
        self.rest = rest;
        head.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wkb_written_is_read_back() {
        for (multi, dims) in [(false, 2), (true, 2), (false, 3), (true, 3)] {
            let ring: Ring = (0..5 * dims).map(|i| (i % 7) as f64 - 0.5).collect();
            let p = Polygons {
                multi,
                dims,
                parts: vec![vec![ring.clone(), ring]],
            };
            assert_eq!(Polygons::from_wkb(&p.to_wkb()), Some(p));
        }
    }

    #[test]
    fn geojson_is_read_with_its_positions() {
        let g = json!({"type": "MultiPolygon", "coordinates": [
            [[[0, 0], [2, 0], [2, 1], [0, 0]]],
            [[[5, 5, 1], [6, 5, 1], [6, 6, 1], [5, 5, 1]]]]});
        assert_eq!(Polygons::from_geojson(&g), None, "2D and 3D mixed");
        let g = json!({"type": "Polygon", "coordinates": [[[0, 0], [2, 0.5], [2, 1], [0, 0]]]});
        let p = Polygons::from_geojson(&g).unwrap();
        assert!(!p.multi && p.dims == 2 && p.is_well_formed());
        assert_eq!(p.parts[0][0], vec![0.0, 0.0, 2.0, 0.5, 2.0, 1.0, 0.0, 0.0]);
        assert_eq!(p.bounds(), [0.0, 0.0, 2.0, 1.0]);
        let open = json!({"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 1], [0, 1]]]});
        assert!(!Polygons::from_geojson(&open).unwrap().is_well_formed());
        let point = json!({"type": "Point", "coordinates": [0, 0]});
        assert_eq!(Polygons::from_geojson(&point), None);
    }
}
