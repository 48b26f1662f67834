//! Cutting polygons in longitude/latitude at the antimeridian, on plain coordinates.
//!
//! A footprint transformed into EPSG:4326 that crosses 180° comes out of the
//! transformation with longitudes that jump by nearly 360° between neighbouring points.
//! [`cut`] makes each ring continuous again ("unwrapped": a ring that starts at 179° and
//! goes east continues at 181°), splits each polygon along the meridian it crosses, and
//! shifts the pieces back into -180..180: one polygon becomes two, meeting at ±180°, as
//! GDAL's geometry transformer cuts them with `WRAPDATELINE=YES`.
//!
//! It declines (`None`) what it does not handle, for the caller to leave to GDAL: a ring
//! that goes round a pole (its longitudes do not come back to where they started), a
//! polygon more than a turn wide, and anything that cutting would leave ill-formed.

use super::wkb::{Polygons, Ring};

type Point = (f64, f64);

/// `shape` (2D, in degrees, consecutive points less than 180° of longitude apart the
/// short way round) cut at the antimeridian into pieces within -180..180; `None` when
/// it cannot be cut here.
pub fn cut(shape: &Polygons) -> Option<Polygons> {
    if shape.dims != 2 {
        return None;
    }
    let mut parts = Vec::new();
    for rings in &shape.parts {
        parts.extend(cut_polygon(rings)?);
    }
    let multi = shape.multi || parts.len() > 1;
    let cut = Polygons {
        multi,
        dims: 2,
        parts,
    };
    cut.is_well_formed().then_some(cut)
}

/// One polygon (exterior, then holes) cut into the polygons it becomes.
fn cut_polygon(rings: &[Ring]) -> Option<Vec<Vec<Ring>>> {
    let Some(exterior) = unwrapped(rings.first()?) else {
        return round_a_pole(rings).map(|polygon| vec![polygon]);
    };
    let (west, east) = longitude_range(&exterior);
    if east - west >= 360.0 {
        return None;
    }
    let middle = (west + east) / 2.0;
    let mut oriented = vec![with_winding(exterior, true)];
    for hole in &rings[1..] {
        let hole = unwrapped(hole)?;
        let (w, e) = longitude_range(&hole);
        let turns = ((middle - (w + e) / 2.0) / 360.0).round();
        let hole = shifted(&hole, turns * 360.0);
        oriented.push(with_winding(hole, false));
    }
    // The meridian 180° + k·360° strictly inside the range, if there is one (a range
    // under a turn wide holds at most one); else the polygon is only moved into
    // -180..180.
    let line = 180.0 + ((east - 180.0) / 360.0).ceil() * 360.0 - 360.0;
    if !(west < line && line < east) {
        let shift = -((east - 180.0) / 360.0).ceil() * 360.0;
        return Some(vec![oriented
            .iter()
            .map(|r| flat(&shifted(r, shift)))
            .collect()]);
    }
    let mut out = Vec::new();
    for side in [Side::West, Side::East] {
        let shift = match side {
            Side::West => 180.0 - line,
            Side::East => -180.0 - line,
        };
        for polygon in split(&oriented, line, side)? {
            out.push(polygon.iter().map(|r| flat(&shifted(r, shift))).collect());
        }
    }
    Some(out)
}

/// A polygon whose exterior goes once round a pole, as one polygon in -180..180: the
/// exterior from where it crosses 180° round to 180° again (at -180°), closed along
/// the pole's latitude, as GDAL's transformer makes it. `None` when the exterior crosses
/// 180° more than once, goes round more than once, has points on both sides of the
/// equator, or a hole is not wholly within -180..180.
fn round_a_pole(rings: &[Ring]) -> Option<Vec<Ring>> {
    let path = continuous(&rings[0]);
    let (first, last) = (*path.first()?, *path.last()?);
    let turns = ((last.0 - first.0) / 360.0).round();
    if turns.abs() != 1.0 || first.1 != last.1 {
        return None;
    }
    let pole = match path.iter().all(|p| p.1 > 0.0) {
        true => 90.0,
        false if path.iter().all(|p| p.1 < 0.0) => -90.0,
        false => return None,
    };
    // Start the ring where it meets the meridian 180° + k·360° it crosses first.
    let n = path.len() - 1;
    let onward = |i: usize| {
        let (p, lap) = (path[i % n], (i / n) as f64);
        (p.0 + lap * turns * 360.0, p.1)
    };
    let laps = (first.0 - 180.0) / 360.0;
    let at = 180.0
        + 360.0
            * if turns > 0.0 {
                laps.ceil()
            } else {
                laps.floor()
            };
    let meets = |i: usize| {
        let (d0, d1) = (onward(i).0 - at, onward(i + 1).0 - at);
        d0 == 0.0 || (d0 < 0.0) != (d1 < 0.0)
    };
    let i = (0..n).find(|&i| meets(i))?;
    let start = crossing(onward(i), onward(i + 1), at);
    let mut round = vec![start];
    for j in i + 1..=i + n {
        push_distinct(&mut round, onward(j));
    }
    push_distinct(&mut round, (start.0 + turns * 360.0, start.1));
    let shift = -180.0 - round[0].0.min(round.last()?.0);
    let mut round = shifted(&round, shift);
    if round.iter().any(|p| !(-180.0..=180.0).contains(&p.0)) {
        return None;
    }
    let (end, begin) = (*round.last()?, round[0]);
    round.extend([(end.0, pole), (begin.0, pole), begin]);
    let mut polygon = vec![flat(&with_winding(round, true))];
    for hole in &rings[1..] {
        let hole = unwrapped(hole)?;
        let (w, e) = longitude_range(&hole);
        let shift = -((e - 180.0) / 360.0).ceil() * 360.0;
        if w + shift < -180.0 {
            return None;
        }
        polygon.push(flat(&with_winding(shifted(&hole, shift), false)));
    }
    Some(polygon)
}

/// The ring's points with longitudes made continuous (each step taken the short way
/// round): a ring round a pole ends a turn away from where it started.
fn continuous(ring: &Ring) -> Vec<Point> {
    let mut points: Vec<Point> = Vec::with_capacity(ring.len() / 2);
    for p in ring.chunks_exact(2) {
        let x = match points.last() {
            None => p[0],
            Some(&(previous, _)) => {
                let step = (p[0] - previous).rem_euclid(360.0);
                previous + if step > 180.0 { step - 360.0 } else { step }
            }
        };
        points.push((x, p[1]));
    }
    points
}

/// The ring made [`continuous`]; `None` when it does not close, that is when it goes
/// round a pole.
fn unwrapped(ring: &Ring) -> Option<Vec<Point>> {
    let points = continuous(ring);
    let (first, last) = (points.first()?, points.last()?);
    ((first.0 - last.0).abs() < 1e-9 && first.1 == last.1).then_some(points)
}

fn longitude_range(ring: &[Point]) -> (f64, f64) {
    ring.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(w, e), p| {
            (w.min(p.0), e.max(p.0))
        })
}

fn shifted(ring: &[Point], dx: f64) -> Vec<Point> {
    ring.iter().map(|&(x, y)| (x + dx, y)).collect()
}

fn flat(ring: &[Point]) -> Ring {
    ring.iter().flat_map(|&(x, y)| [x, y]).collect()
}

/// Twice the signed area: positive when the ring turns counter-clockwise.
fn twice_area(ring: &[Point]) -> f64 {
    let (x0, y0) = ring[0];
    ring.windows(2)
        .map(|w| (w[0].0 - x0) * (w[1].1 - y0) - (w[1].0 - x0) * (w[0].1 - y0))
        .sum()
}

/// The ring turning counter-clockwise (an exterior) or clockwise (a hole): the polygon's
/// inside is then on the left of every edge, which [`split`] relies on.
fn with_winding(mut ring: Vec<Point>, counter_clockwise: bool) -> Vec<Point> {
    if (twice_area(&ring) > 0.0) != counter_clockwise {
        ring.reverse();
    }
    ring
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    /// Longitudes below the line.
    West,
    /// Longitudes from the line up.
    East,
}

impl Side {
    fn holds(self, p: Point, line: f64) -> bool {
        match self {
            Side::West => p.0 < line,
            Side::East => p.0 >= line,
        }
    }
}

/// The polygons that `rings` (exterior counter-clockwise, holes clockwise) leave on
/// `side` of the meridian `line`; `None` when the pieces do not join up as a valid
/// polygon's would.
///
/// The rings are walked; each stretch on `side` becomes a chain from the point where it
/// enters to the point where it leaves, both on the line. With the inside on the left of
/// every edge, the pieces' outlines follow the line northwards on the west side and
/// southwards on the east: from where a chain leaves, the next chain is the one entering
/// nearest in that direction. Rings wholly on `side` are kept: exteriors as polygons,
/// holes in the polygon that holds them.
fn split(rings: &[Vec<Point>], line: f64, side: Side) -> Option<Vec<Vec<Vec<Point>>>> {
    let mut chains = Vec::new();
    let mut whole_exteriors = Vec::new();
    let mut whole_holes = Vec::new();
    for (i, ring) in rings.iter().enumerate() {
        let on_side = ring.iter().filter(|&&p| side.holds(p, line)).count();
        if on_side == ring.len() {
            match i {
                0 => whole_exteriors.push(ring.clone()),
                _ => whole_holes.push(ring.clone()),
            }
        } else if on_side > 0 {
            chains.extend(chains_of(ring, line, side));
        }
    }
    let mut exteriors = join(&chains, side)?;
    exteriors.extend(whole_exteriors);
    let mut polygons: Vec<Vec<Vec<Point>>> = exteriors.into_iter().map(|e| vec![e]).collect();
    for hole in whole_holes {
        let holder = polygons.iter_mut().find(|p| contains(&p[0], hole[0]))?;
        holder.push(hole);
    }
    Some(polygons)
}

/// The stretches of `ring` on `side` of `line`, each from its entry to its exit on the
/// line. `ring` has points on both sides.
fn chains_of(ring: &[Point], line: f64, side: Side) -> Vec<Vec<Point>> {
    let n = ring.len() - 1; // distinct points: the last repeats the first
    let start = (0..n).find(|&i| !side.holds(ring[i], line)).unwrap_or(0);
    let mut chains = Vec::new();
    let mut chain: Vec<Point> = Vec::new();
    for step in 0..n {
        let a = ring[(start + step) % n];
        let b = ring[(start + step + 1) % n];
        match (side.holds(a, line), side.holds(b, line)) {
            (false, true) => {
                chain = vec![crossing(a, b, line)];
                push_distinct(&mut chain, b);
            }
            (true, true) => push_distinct(&mut chain, b),
            (true, false) => {
                push_distinct(&mut chain, crossing(a, b, line));
                chains.push(std::mem::take(&mut chain));
            }
            (false, false) => {}
        }
    }
    chains
}

fn push_distinct(chain: &mut Vec<Point>, p: Point) {
    if chain.last() != Some(&p) {
        chain.push(p);
    }
}

/// Where the edge from `a` to `b` meets the meridian `line`.
fn crossing(a: Point, b: Point, line: f64) -> Point {
    if a.0 == line {
        return (line, a.1);
    }
    if b.0 == line {
        return (line, b.1);
    }
    let f = (line - a.0) / (b.0 - a.0);
    (line, a.1 + (b.1 - a.1) * f)
}

/// The closed rings the chains make, joined along the line (see [`split`]).
fn join(chains: &[Vec<Point>], side: Side) -> Option<Vec<Vec<Point>>> {
    let mut used = vec![false; chains.len()];
    let mut rings = Vec::new();
    for first in 0..chains.len() {
        if used[first] {
            continue;
        }
        let mut ring: Vec<Point> = Vec::new();
        let mut current = first;
        loop {
            used[current] = true;
            for &p in &chains[current] {
                push_distinct(&mut ring, p);
            }
            let exit = *chains[current].last()?;
            let next = next_chain(chains, exit, side)?;
            if next == first {
                break;
            }
            if used[next] {
                return None;
            }
            current = next;
        }
        let start = ring[0];
        push_distinct(&mut ring, start);
        if ring.len() < 4 {
            return None;
        }
        rings.push(ring);
    }
    Some(rings)
}

/// The chain entering nearest to `exit` along the line: northwards on the west side,
/// southwards on the east.
fn next_chain(chains: &[Vec<Point>], exit: Point, side: Side) -> Option<usize> {
    let ahead = |y: f64| match side {
        Side::West => y - exit.1,
        Side::East => exit.1 - y,
    };
    (0..chains.len())
        .map(|i| (i, ahead(chains[i][0].1)))
        .filter(|&(_, d)| d >= 0.0)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Whether `p` is inside `ring` (even-odd rule).
fn contains(ring: &[Point], p: Point) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if (y0 > p.1) != (y1 > p.1) && p.0 < x0 + (p.1 - y0) / (y1 - y0) * (x1 - x0) {
            inside = !inside;
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polygon(rings: Vec<Vec<Point>>) -> Polygons {
        Polygons {
            multi: false,
            dims: 2,
            parts: vec![rings.iter().map(|r| flat(r)).collect()],
        }
    }

    /// The ring's distinct points, starting from the smallest, counter-clockwise.
    fn normal(ring: &Ring) -> Vec<Point> {
        let mut points: Vec<Point> = ring.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        points.pop();
        if twice_area(&[points.clone(), vec![points[0]]].concat()) < 0.0 {
            points.reverse();
        }
        let first = (0..points.len())
            .min_by(|&a, &b| points[a].partial_cmp(&points[b]).unwrap())
            .unwrap();
        points.rotate_left(first);
        points
    }

    fn area(ring: &Ring) -> f64 {
        let points: Vec<Point> = ring.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        twice_area(&points).abs() / 2.0
    }

    #[test]
    fn a_box_across_180_becomes_two_that_meet_there() {
        // As a transformation leaves it: 170 to -170, clockwise.
        let cut = cut(&polygon(vec![vec![
            (170.0, 0.0),
            (170.0, 10.0),
            (-170.0, 10.0),
            (-170.0, 0.0),
            (170.0, 0.0),
        ]]))
        .unwrap();
        assert!(cut.multi);
        let mut pieces: Vec<Vec<Point>> = cut.parts.iter().map(|p| normal(&p[0])).collect();
        pieces.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap());
        assert_eq!(
            pieces,
            vec![
                vec![(-180.0, 0.0), (-170.0, 0.0), (-170.0, 10.0), (-180.0, 10.0)],
                vec![(170.0, 0.0), (180.0, 0.0), (180.0, 10.0), (170.0, 10.0)],
            ]
        );
    }

    #[test]
    fn a_polygon_that_does_not_cross_comes_back_whole_within_one_turn() {
        let east_of_180 = polygon(vec![vec![
            (181.0, 0.0),
            (185.0, 0.0),
            (185.0, 5.0),
            (181.0, 0.0),
        ]]);
        let cut = cut(&east_of_180).unwrap();
        assert_eq!(cut.parts.len(), 1);
        assert_eq!(
            normal(&cut.parts[0][0]),
            vec![(-179.0, 0.0), (-175.0, 0.0), (-175.0, 5.0)]
        );
    }

    #[test]
    fn a_u_crossing_twice_leaves_two_pieces_on_one_side() {
        // A U open to the west whose arms reach past 180: its arms become two pieces east
        // of -180, its base one piece west of 180.
        let u = vec![
            (170.0, 0.0),
            (-170.0, 0.0),
            (-170.0, 2.0),
            (175.0, 2.0),
            (175.0, 8.0),
            (-170.0, 8.0),
            (-170.0, 10.0),
            (170.0, 10.0),
            (170.0, 0.0),
        ];
        let cut = cut(&polygon(vec![u.clone()])).unwrap();
        assert_eq!(cut.parts.len(), 3);
        let east: Vec<f64> = cut
            .parts
            .iter()
            .filter(|p| p[0][0] < 0.0)
            .map(|p| area(&p[0]))
            .collect();
        assert_eq!(east, vec![20.0, 20.0]);
        let total: f64 = cut.parts.iter().map(|p| area(&p[0])).sum();
        let original = area(&polygon(vec![unwrapped(&flat(&u)).unwrap()]).parts[0][0]);
        assert!(
            (total - original).abs() < 1e-9,
            "{total} against {original}"
        );
    }

    #[test]
    fn a_hole_across_180_notches_the_pieces_and_one_inside_a_piece_stays_a_hole() {
        let exterior = vec![
            (170.0, 0.0),
            (-170.0, 0.0),
            (-170.0, 10.0),
            (170.0, 10.0),
            (170.0, 0.0),
        ];
        let across = vec![
            (175.0, 4.0),
            (-175.0, 4.0),
            (-175.0, 6.0),
            (175.0, 6.0),
            (175.0, 4.0),
        ];
        let inside_west = vec![(171.0, 1.0), (172.0, 1.0), (172.0, 2.0), (171.0, 1.0)];
        let cut = cut(&polygon(vec![exterior, across, inside_west])).unwrap();
        let total: f64 = cut
            .parts
            .iter()
            .map(|p| area(&p[0]) - p[1..].iter().map(area).sum::<f64>())
            .sum();
        assert!((total - (200.0 - 20.0 - 0.5)).abs() < 1e-9, "{total}");
        // The hole across 180 becomes a notch in each half; the small hole stays one.
        assert_eq!(cut.parts.len(), 2);
        assert!(
            cut.parts.iter().all(|p| p[0].len() / 2 == 9),
            "{:?}",
            cut.parts
        );
        assert_eq!(cut.parts.iter().map(|p| p.len() - 1).sum::<usize>(), 1);
    }

    #[test]
    fn rings_without_points_are_declined() {
        assert_eq!(cut(&polygon(vec![vec![]])), None);
        let one_point = Polygons {
            multi: false,
            dims: 2,
            parts: vec![vec![vec![179.0, 0.0]]],
        };
        assert_eq!(cut(&one_point), None);
    }

    #[test]
    fn a_ring_round_a_pole_reaches_it_from_180_to_minus_180() {
        // Latitude 80°S, westwards from 5°E, every 10°.
        let round: Vec<Point> = (0..=36)
            .map(|i| ((365.0 - (i * 10) as f64).rem_euclid(360.0), -80.0))
            .map(|(x, y)| (if x > 180.0 { x - 360.0 } else { x }, y))
            .collect();
        let cut = cut(&polygon(vec![round.clone()])).unwrap();
        assert_eq!(cut.parts.len(), 1);
        let ring = normal(&cut.parts[0][0]);
        assert_eq!(ring.len(), 36 + 2 + 2, "{ring:?}");
        assert_eq!(ring[..2], [(-180.0, -90.0), (180.0, -90.0)]);
        assert_eq!(ring[2], (180.0, -80.0));
        assert_eq!(*ring.last().unwrap(), (-180.0, -80.0));
        assert!((area(&cut.parts[0][0]) - 360.0 * 10.0).abs() < 1e-9);
        // Round twice, or across the equator: declined.
        let twice: Vec<Point> = round.iter().chain(&round[1..]).copied().collect();
        assert_eq!(super::cut(&polygon(vec![twice])), None);
        let mut across = round.clone();
        across[10].1 = 1.0;
        assert_eq!(super::cut(&polygon(vec![across])), None);
    }
}
