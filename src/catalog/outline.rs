//! Plane geometry on polygons held as plain coordinates ([`Polygons`]), for footprints
//! that need no cutting at the antimeridian: densifying edges before a transformation,
//! simplifying after it, the checks that decide whether cutting is needed, and the
//! centroid. The longitude checks take any polygons; the other functions 2D ones
//! (`dims == 2`).

use super::wkb::{Polygons, Ring};

/// The most points densifying adds to an outline (a square densified to 1/8192 of its
/// side, the finest footprints are made with, needs half as many). A polygon with
/// many long edges (a footprint or a query polygon, read from untrusted input, can
/// zigzag across its whole width) is densified less, never past it.
pub const MAX_ADDED_POINTS: f64 = (1u64 << 16) as f64;

/// The step `step` raised where need be, so that densifying an outline as long as
/// `perimeter` by it adds at most [`MAX_ADDED_POINTS`].
pub fn bounded_step(step: f64, perimeter: f64) -> f64 {
    step.max(perimeter / MAX_ADDED_POINTS)
}

/// The length of every ring's edges of `shape` in the plane, added up.
pub fn perimeter(shape: &Polygons) -> f64 {
    let dims = shape.dims.max(2);
    let points = |ring| <[f64]>::chunks_exact(ring, dims);
    shape
        .rings()
        .flat_map(|r| points(r).zip(points(r).skip(1)))
        .map(|(a, b)| (b[0] - a[0]).hypot(b[1] - a[1]))
        .sum()
}

/// A copy of `shape` with points added along each edge longer than `step`, evenly, so
/// that no piece is longer than `step`; or than [`bounded_step`], for an outline so long
/// that it would add more than [`MAX_ADDED_POINTS`].
pub fn densified(shape: &Polygons, step: f64) -> Polygons {
    let step = bounded_step(step, perimeter(shape));
    let parts = shape
        .parts
        .iter()
        .map(|rings| rings.iter().map(|r| densified_ring(r, step)).collect())
        .collect();
    Polygons {
        parts,
        ..shape.clone()
    }
}

fn densified_ring(ring: &Ring, step: f64) -> Ring {
    let mut out = Vec::with_capacity(ring.len() * 2);
    for edge in edges(ring) {
        let [x0, y0, x1, y1] = *edge else { continue };
        let pieces = ((x1 - x0).hypot(y1 - y0) / step)
            .ceil()
            .clamp(1.0, MAX_ADDED_POINTS);
        let pieces = pieces as usize;
        for i in 0..pieces {
            let f = i as f64 / pieces as f64;
            out.extend([x0 + (x1 - x0) * f, y0 + (y1 - y0) * f]);
        }
    }
    out.extend_from_slice(&ring[ring.len() - 2..]);
    out
}

/// Over every ring, the largest longitude difference between consecutive points,
/// measured the short way round (so a step across 180° counts as small).
pub fn largest_longitude_step(shape: &Polygons) -> f64 {
    let mut widest: f64 = 0.0;
    for ring in shape.rings() {
        for (a, b) in xs(ring, shape.dims).zip(xs(ring, shape.dims).skip(1)) {
            let d = (b - a).abs() % 360.0;
            widest = widest.max(d.min(360.0 - d));
        }
    }
    widest
}

/// Whether every longitude is within -180..180 and no step between consecutive points is
/// more than half a turn (none crosses the antimeridian).
pub fn within_one_turn(shape: &Polygons) -> bool {
    shape.rings().all(|ring| {
        xs(ring, shape.dims).all(|v| (-180.0..=180.0).contains(&v))
            && xs(ring, shape.dims)
                .zip(xs(ring, shape.dims).skip(1))
                .all(|(a, b)| (b - a).abs() <= 180.0)
    })
}

/// The edges of a 2D ring, each `[x0, y0, x1, y1]`, read where they lie.
fn edges(ring: &Ring) -> impl Iterator<Item = &[f64]> {
    ring.windows(4).step_by(2)
}

fn xs(ring: &Ring, dims: usize) -> impl Iterator<Item = f64> + '_ {
    ring.chunks_exact(dims).map(|p| p[0])
}

/// `shape` without the points that lie within `tolerance` of the outline the others
/// draw (Douglas-Peucker, ring by ring). A ring that would keep fewer than four points is
/// kept whole.
pub fn simplified(shape: &Polygons, tolerance: f64) -> Polygons {
    let parts = shape
        .parts
        .iter()
        .map(|rings| {
            rings
                .iter()
                .map(|r| simplified_ring(r, tolerance))
                .collect()
        })
        .collect();
    Polygons {
        parts,
        ..shape.clone()
    }
}

fn simplified_ring(ring: &Ring, tolerance: f64) -> Ring {
    let n = ring.len() / 2;
    let point = |i: usize| (ring[2 * i], ring[2 * i + 1]);
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[n - 1] = true;
    // Sections still to look at, as (first, last) point indices: no recursion, whatever
    // the number of points.
    let mut sections = vec![(0, n - 1)];
    while let Some((first, last)) = sections.pop() {
        let (a, b) = (point(first), point(last));
        let farthest = (first + 1..last)
            .map(|i| (i, squared_distance_to_segment(point(i), a, b)))
            .max_by(|x, y| x.1.total_cmp(&y.1));
        if let Some((i, d2)) = farthest {
            if d2 > tolerance * tolerance {
                keep[i] = true;
                sections.push((first, i));
                sections.push((i, last));
            }
        }
    }
    if keep.iter().filter(|&&k| k).count() < 4 {
        return ring.clone();
    }
    (0..n)
        .filter(|&i| keep[i])
        .flat_map(|i| [ring[2 * i], ring[2 * i + 1]])
        .collect()
}

/// The squared distance from `p` to the segment from `a` to `b` (to `a` when they are
/// one point).
fn squared_distance_to_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (ex, ey) = (p.0 - (a.0 + t * dx), p.1 - (a.1 + t * dy));
    ex * ex + ey * ey
}

/// The centroid of the polygons' area (holes taken out), as GEOS computes it; `None`
/// when they have no area.
pub fn centroid(shape: &Polygons) -> Option<(f64, f64)> {
    let base = (
        *shape.parts.first()?.first()?.first()?,
        shape.parts[0][0][1],
    );
    let (mut area, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for rings in &shape.parts {
        for (i, ring) in rings.iter().enumerate() {
            let (a, cx, cy) = ring_moments(ring, base);
            // The exterior adds its area, holes take theirs away, whatever their winding.
            let sign = if (i == 0) == (a >= 0.0) { 1.0 } else { -1.0 };
            area += sign * a;
            sx += sign * cx;
            sy += sign * cy;
        }
    }
    (area.abs() > 0.0 && area.is_finite()).then(|| (sx / area, sy / area))
}

/// A ring's signed area and first moments (area times centroid), from triangles fanned
/// out of `base` (close to the points, for precision).
fn ring_moments(ring: &Ring, base: (f64, f64)) -> (f64, f64, f64) {
    let (mut area, mut cx, mut cy) = (0.0, 0.0, 0.0);
    for edge in edges(ring) {
        let (x0, y0) = (edge[0] - base.0, edge[1] - base.1);
        let (x1, y1) = (edge[2] - base.0, edge[3] - base.1);
        let cross = x0 * y1 - x1 * y0;
        area += cross / 2.0;
        cx += cross * (x0 + x1) / 6.0;
        cy += cross * (y0 + y1) / 6.0;
    }
    (area, cx + area * base.0, cy + area * base.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: f64, y: f64, side: f64) -> Ring {
        vec![x, y, x + side, y, x + side, y + side, x, y + side, x, y]
    }

    fn one(rings: Vec<Ring>) -> Polygons {
        Polygons {
            multi: false,
            dims: 2,
            parts: vec![rings],
        }
    }

    #[test]
    fn densifying_adds_a_bounded_number_of_points() {
        // 20,001 edges zigzagging across 4,000 units, densified by 1: 80 million points
        // without the bound.
        let mut ring: Vec<f64> = (0..=20_000)
            .flat_map(|i| [f64::from(i) * 0.2, if i % 2 == 0 { 0.0 } else { 4000.0 }])
            .collect();
        ring.extend([4000.0, -10.0, 0.0, -10.0, 0.0, 0.0]);
        let shape = one(vec![ring]);
        let dense = densified(&shape, 1.0);
        let points = dense.parts[0][0].len() / 2;
        let before = shape.parts[0][0].len() / 2;
        assert!(points > before + MAX_ADDED_POINTS as usize / 2, "{points}");
        assert!(points <= before + MAX_ADDED_POINTS as usize, "{points}");
        assert!(dense.is_well_formed());
    }

    #[test]
    fn densifying_cuts_every_edge_to_the_step_and_keeps_the_corners() {
        let d = densified(&one(vec![square(0.0, 0.0, 10.0)]), 3.0);
        let ring = &d.parts[0][0];
        assert_eq!(
            ring.len() / 2,
            4 * 4 + 1,
            "each side of 10 in 4 pieces of 2.5"
        );
        for corner in [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]] {
            assert!(ring.chunks_exact(2).any(|p| p == corner), "{corner:?}");
        }
        assert!(d.is_well_formed());
    }

    #[test]
    fn simplifying_drops_only_points_near_the_outline() {
        let dense = densified(&one(vec![square(0.0, 0.0, 10.0)]), 1.0);
        let mut bent = dense.clone();
        bent.parts[0][0][11] += 0.5; // one point of the first side moved up by 0.5
        assert_eq!(simplified(&dense, 0.01).parts[0][0], square(0.0, 0.0, 10.0));
        // The bend keeps its tip and the two points where it leaves the side.
        let kept = simplified(&bent, 0.01).parts[0][0].clone();
        assert_eq!(kept[..8], [0.0, 0.0, 4.0, 0.0, 5.0, 0.5, 6.0, 0.0]);
        assert_eq!(kept.len() / 2, 7 + 1);
        assert_eq!(simplified(&bent, 1.0).parts[0][0], square(0.0, 0.0, 10.0));
    }

    #[test]
    fn the_centroid_takes_holes_out_whatever_the_winding() {
        let c = centroid(&one(vec![square(0.0, 0.0, 10.0)])).unwrap();
        assert_eq!(c, (5.0, 5.0));
        let clockwise = vec![0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 10.0, 0.0, 0.0, 0.0];
        let holed = one(vec![clockwise, square(0.0, 0.0, 5.0)]);
        let (x, y) = centroid(&holed).unwrap();
        // 100 at (5, 5) less 25 at (2.5, 2.5): 75 at (5.8333, 5.8333).
        assert!((x - 35.0 / 6.0).abs() < 1e-12 && (y - 35.0 / 6.0).abs() < 1e-12);
        assert_eq!(
            centroid(&one(vec![vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]])),
            None
        );
    }

    #[test]
    fn a_step_across_the_antimeridian_is_short_but_not_within_one_turn() {
        let crossing = one(vec![vec![179.0, 0.0, -179.0, 0.0, -179.0, 1.0, 179.0, 0.0]]);
        assert_eq!(largest_longitude_step(&crossing), 2.0);
        assert!(!within_one_turn(&crossing));
        assert!(within_one_turn(&one(vec![square(170.0, 0.0, 10.0)])));
        assert!(!within_one_turn(&one(vec![square(175.0, 0.0, 10.0)])));
    }
}
