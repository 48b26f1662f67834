//! Time arithmetic against cftime, the reference CF implementation xarray uses: in every
//! calendar, thousands of pseudo-random instants spread over years -9999..=9999 and
//! crowded around the years where leap rules change, under several units strings. Both
//! directions: gridstore's values checked by cftime (tests/python/cf_time.py check), and
//! cftime's values checked by gridstore. A wrong leap rule, month length or 1582 switch in
//! any calendar moves some instant by a day and fails.

mod common;
use common::*;

use gridstore::time::{Calendar, CfUnits, DateTime, MAX_YEAR, MIN_YEAR};
use serde_json::{json, Value};

/// Units strings in the forms netCDF files carry, with references on both sides of the
/// 1582 switch and a UTC offset.
const UNITS: [&str; 5] = [
    "seconds since 1970-01-01 00:00:00",
    "minutes since 2020-01-01T00:00:00Z",
    "hours since 1900-1-1 0:0:0",
    "days since 0001-01-01",
    "hours since 1500-03-01 12:00:00 +01:00",
];

/// Years around which leap rules or the calendar switch change.
const EDGE_YEARS: [i32; 9] = [-4713, 0, 1582, 1600, 1700, 1900, 2000, 2100, 9998];

/// Random instants per (calendar, units) pair: 4,000 per calendar and direction, plus
/// every day around the end of February of the edge years.
const PER_PAIR: usize = 800;

/// xorshift64*: a fixed pseudo-random sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in lo..=hi (the modulo bias is irrelevant here).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// Seconds since 1970 of the first and last second of the supported years.
fn bounds(cal: Calendar) -> (i64, i64) {
    let first = DateTime::new(cal, (MIN_YEAR, 1, 1), (0, 0, 0)).unwrap();
    let dec = cal.month_length(MAX_YEAR, 12).unwrap();
    let last = DateTime::new(cal, (MAX_YEAR, 12, dec), (23, 59, 59)).unwrap();
    (
        first.to_seconds(cal).unwrap(),
        last.to_seconds(cal).unwrap(),
    )
}

/// Half uniform over all years, half within a few days of a random date of an edge year.
fn random_instant(rng: &mut Rng, cal: Calendar) -> DateTime {
    let (first, last) = bounds(cal);
    if rng.next() % 2 == 0 {
        return DateTime::from_seconds(cal, rng.range(first, last)).unwrap();
    }
    let year = EDGE_YEARS[rng.range(0, EDGE_YEARS.len() as i64 - 1) as usize] as i64;
    let near = DateTime::new(
        cal,
        (
            (year + rng.range(-1, 1)) as i32,
            rng.range(1, 12) as u8,
            rng.range(1, 28) as u8,
        ),
        (0, 0, 0),
    );
    // 1582-10-05..14 do not exist in the standard calendar: use the 15th instead.
    let near = near.unwrap_or_else(|_| DateTime::parse("1582-10-15", cal).unwrap());
    let seconds = near.to_seconds(cal).unwrap() + rng.range(-3 * 86_400, 3 * 86_400);
    DateTime::from_seconds(cal, seconds).unwrap()
}

/// Every day from 20 February to 10 March of each edge year and its neighbours (and of
/// October 1582), at a random time of day: the days a wrong leap rule or a misplaced
/// switch gets wrong, or wrongly calls invalid. Found by counting seconds from a date every
/// calendar has, so the calendar under test decides which days follow.
fn edge_instants(rng: &mut Rng, cal: Calendar) -> Vec<DateTime> {
    let mut starts: Vec<(i32, u8)> = EDGE_YEARS
        .iter()
        .flat_map(|&y| [(y - 1, 2), (y, 2), (y + 1, 2)])
        .filter(|&(y, _)| y < MAX_YEAR)
        .collect();
    starts.push((1582, 10));
    let mut out = Vec::new();
    for (year, month) in starts {
        let first = DateTime::new(cal, (year, month, 1), (0, 0, 0)).unwrap();
        let first = first.to_seconds(cal).unwrap() + 19 * 86_400;
        for day in 0..20 {
            let at = first + day * 86_400 + rng.range(0, 86_399);
            out.push(DateTime::from_seconds(cal, at).unwrap());
        }
    }
    out
}

/// gridstore's rows: instants to values (whole seconds, so values are whole units or
/// exact-enough fractions), and random fractional values to instants.
fn gridstore_rows() -> Vec<Value> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rows = Vec::new();
    for cal in Calendar::ALL {
        for text in UNITS {
            let units = CfUnits::parse(text, cal).unwrap();
            let unit = units.unit().seconds() as f64;
            let mut instants: Vec<DateTime> = (0..PER_PAIR)
                .map(|_| random_instant(&mut rng, cal))
                .collect();
            instants.extend(edge_instants(&mut rng, cal));
            for (i, at) in instants.into_iter().enumerate() {
                let rounded = i % 2 == 1;
                let exact = units.to_value(&at);
                let exact = exact.unwrap_or_else(|e| panic!("{cal}: cannot count {at}: {e}"));
                let (value, at) = if !rounded {
                    (exact, at)
                } else {
                    // A value with a fraction of a second, away from a tie at half a second.
                    let value =
                        units.to_value(&at).unwrap() + rng.range(1, 999) as f64 / 1000.0 / unit;
                    let fraction = (value * unit).rem_euclid(1.0);
                    if (fraction - 0.5).abs() < 1e-3 {
                        continue;
                    }
                    let Ok(back) = units.to_datetime(value) else {
                        continue;
                    };
                    (value, back)
                };
                rows.push(json!({
                    "calendar": cal.name(), "units": text, "value": value, "iso": at.to_string(),
                    "rounded": rounded
                }));
            }
        }
    }
    rows
}

#[test]
fn cftime_agrees_with_gridstore_values_and_instants() {
    let dir = tmp();
    let path = dir.path().join("rows.json");
    let rows = gridstore_rows();
    assert!(rows.len() > Calendar::ALL.len() * UNITS.len() * PER_PAIR * 9 / 10);
    std::fs::write(&path, json!({ "rows": rows }).to_string()).unwrap();
    let out = python_ok("cf_time.py", &["check", s(&path)]);
    assert!(
        out.contains(&format!("{0} of {0} rows agree", rows.len())),
        "{out}"
    );
}

#[test]
fn gridstore_agrees_with_cftime_values_and_instants() {
    let dir = tmp();
    let path = dir.path().join("cftime.json");
    let request = json!({
        "calendars": Calendar::ALL.map(Calendar::name),
        "units": UNITS,
        "years": EDGE_YEARS,
    });
    std::fs::write(dir.path().join("cftime.json.request"), request.to_string()).unwrap();
    python_ok(
        "cf_time.py",
        &["make", s(&path), "17", &PER_PAIR.to_string()],
    );
    let rows: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let rows = rows["rows"].as_array().unwrap();
    assert!(rows.len() > Calendar::ALL.len() * UNITS.len() * PER_PAIR);
    let mut bad = Vec::new();
    for row in rows {
        let cal = Calendar::parse(row["calendar"].as_str().unwrap()).unwrap();
        let units = CfUnits::parse(row["units"].as_str().unwrap(), cal).unwrap();
        let value = row["value"].as_f64().unwrap();
        let iso = row["iso"].as_str().unwrap();
        let want = DateTime::parse(iso, cal).unwrap();
        let got = units.to_datetime(value).unwrap();
        let ours = units.to_value(&want).unwrap();
        let off_seconds = (ours - value).abs() * units.unit().seconds() as f64;
        if got != want || off_seconds > 1e-3 {
            bad.push(format!(
                "{cal} {units:?}: {value} -> cftime {iso}, gridstore {got} ({ours})"
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} rows differ:\n{}",
        bad.len(),
        rows.len(),
        bad[..bad.len().min(20)].join("\n")
    );
}
