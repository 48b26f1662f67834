//! Time in catalog queries: instants, half-open UTC ranges, and days in a time zone or
//! in solar time.
//!
//! All times are UTC microseconds since 1970-01-01. An item's time `[start, end)` matches a
//! range `[a, b)` when the two overlap: `start < b && end > a`.

use jiff::civil::{Date, DateTime};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::Timestamp;

use crate::error::{Error, Result};

/// Microseconds in an hour.
pub const HOUR_US: i64 = 3_600_000_000;
/// Microseconds in a day.
pub const DAY_US: i64 = 24 * HOUR_US;
/// Microseconds of solar time per degree of longitude (24 h / 360°).
pub const SOLAR_US_PER_DEGREE: f64 = 240_000_000.0;

/// A half-open UTC range; `None` on either side is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl TimeRange {
    /// Whether an item's `[start, end)` overlaps this range.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.end.is_none_or(|b| start < b) && self.start.is_none_or(|a| end > a)
    }

    /// Both ranges at once; `None` when they do not overlap.
    pub fn intersect(&self, other: &TimeRange) -> TimeRange {
        TimeRange {
            start: max_opt(self.start, other.start),
            end: min_opt(self.end, other.end),
        }
    }

    /// Parses `A/B` (either side `..` or empty for open), or a single date (that UTC day)
    /// or instant (that microsecond).
    pub fn parse(text: &str) -> Result<TimeRange> {
        let bad = |detail: String| {
            Error::option(
                "time",
                text,
                format!(
                    "{detail}; give START/END in ISO 8601 (2024-03-01/2024-04-01, \
                     2024-03-01T06:00:00Z/.., ../2024-01-01), or one date or instant"
                ),
            )
        };
        let range = match text.split_once('/') {
            Some((a, b)) => TimeRange {
                start: open_or(a)
                    .map(parse_instant)
                    .transpose()
                    .map_err(|e| bad(e.to_string()))?,
                end: open_or(b)
                    .map(parse_instant)
                    .transpose()
                    .map_err(|e| bad(e.to_string()))?,
            },
            None => match text.trim().parse::<Date>() {
                Ok(d) => {
                    let start = date_start_utc(d)?;
                    TimeRange {
                        start: Some(start),
                        end: Some(start + DAY_US),
                    }
                }
                Err(_) => {
                    let t = parse_instant(text).map_err(|e| bad(e.to_string()))?;
                    TimeRange {
                        start: Some(t),
                        end: Some(t + 1),
                    }
                }
            },
        };
        if let (Some(a), Some(b)) = (range.start, range.end) {
            if b <= a {
                return Err(bad("the end is not after the start".into()));
            }
        }
        Ok(range)
    }
}

fn open_or(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty() && s != "..").then_some(s)
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) | (None, x) => x,
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) | (None, x) => x,
    }
}

/// Which clock a day query counts days in.
#[derive(Debug, Clone)]
pub enum DayZone {
    /// A named IANA zone (from the tz database bundled into gridstore).
    Named { name: String, zone: TimeZone },
    /// Each item's local solar time: UTC + the longitude of its footprint's centroid / 15 h
    /// (as the Open Data Cube's solar day).
    Solar,
}

/// `--day D --tz Z`: the items whose time overlaps calendar day D in zone Z.
#[derive(Debug, Clone)]
pub struct Day {
    pub date: Date,
    pub zone: DayZone,
}

impl Day {
    /// Parses a date (`2024-03-31`) and a zone (`Europe/Amsterdam`, `UTC`, `solar`).
    pub fn parse(date: &str, zone: &str) -> Result<Day> {
        let date = date
            .trim()
            .parse::<Date>()
            .map_err(|e| Error::option("day", date, format!("a date as YYYY-MM-DD ({e})")))?;
        let zone = if zone.eq_ignore_ascii_case("solar") {
            DayZone::Solar
        } else {
            let tz = bundled_zones().get(zone).map_err(|e| {
                Error::option(
                    "tz",
                    zone,
                    format!(
                        "an IANA time zone name such as Europe/Amsterdam or UTC, or `solar` ({e})"
                    ),
                )
            })?;
            DayZone::Named {
                name: zone.to_string(),
                zone: tz,
            }
        };
        Ok(Day { date, zone })
    }

    /// For a named zone: `[local midnight, next local midnight)` in UTC (23 or 25 hours on
    /// days when clocks change). For solar days, the UTC day of the same date, which
    /// [`Day::solar_range`] shifts per item.
    pub fn utc_range(&self) -> Result<TimeRange> {
        let (start, end) = match &self.zone {
            DayZone::Named { zone, .. } => (
                local_midnight(self.date, zone)?,
                local_midnight(next_date(self.date)?, zone)?,
            ),
            DayZone::Solar => {
                let s = date_start_utc(self.date)?;
                (s, s + DAY_US)
            }
        };
        Ok(TimeRange {
            start: Some(start),
            end: Some(end),
        })
    }

    /// A UTC range that holds every item time this day can match, whatever the item's
    /// longitude: for solar days the UTC day widened by 12 hours on each side.
    pub fn prefilter_range(&self) -> Result<TimeRange> {
        let r = self.utc_range()?;
        Ok(match self.zone {
            DayZone::Named { .. } => r,
            DayZone::Solar => TimeRange {
                start: r.start.map(|s| s - 12 * HOUR_US),
                end: r.end.map(|e| e + 12 * HOUR_US),
            },
        })
    }

    /// The UTC range of this solar day at a longitude (degrees east, -180 to 180).
    pub fn solar_range(&self, longitude: f64) -> Result<TimeRange> {
        let r = self.utc_range()?;
        let shift = solar_shift_us(longitude);
        Ok(TimeRange {
            start: r.start.map(|s| s - shift),
            end: r.end.map(|e| e - shift),
        })
    }

    /// Whether an item's time overlaps this day (for solar days, at the item's longitude).
    pub fn matches(&self, start: i64, end: i64, longitude: f64) -> Result<bool> {
        Ok(match self.zone {
            DayZone::Named { .. } => self.utc_range()?.overlaps(start, end),
            DayZone::Solar => self.solar_range(longitude)?.overlaps(start, end),
        })
    }
}

/// How far solar time runs ahead of UTC at a longitude, in microseconds (rounded to the
/// microsecond, the same way in every backend).
pub fn solar_shift_us(longitude: f64) -> i64 {
    (longitude * SOLAR_US_PER_DEGREE).round() as i64
}

/// The time zone database compiled into gridstore, so that day queries give the same
/// answer on every machine, with or without system tzdata.
fn bundled_zones() -> &'static TimeZoneDatabase {
    static DB: std::sync::OnceLock<TimeZoneDatabase> = std::sync::OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

fn next_date(d: Date) -> Result<Date> {
    d.tomorrow()
        .map_err(|e| Error::InvalidInput(format!("{d}: no next day ({e})")))
}

/// The first instant of a date in a zone (01:00 where midnight falls into a gap).
fn local_midnight(d: Date, zone: &TimeZone) -> Result<i64> {
    d.to_zoned_datetime(zone.clone())
        .map(|z| z.timestamp().as_microsecond())
        .map_err(|e| Error::InvalidInput(format!("{d}: not representable ({e})")))
}

fn date_start_utc(d: Date) -> Result<i64> {
    local_midnight(d, &TimeZone::UTC)
}

/// Parses an instant: RFC 3339 with an offset, or a date or date-time without one (UTC).
pub fn parse_instant(text: &str) -> Result<i64> {
    let t = text.trim();
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts.as_microsecond());
    }
    let civil = t
        .parse::<DateTime>()
        .or_else(|_| t.parse::<Date>().map(DateTime::from))
        .map_err(|e| {
            Error::InvalidInput(format!(
                "{t:?} is not a date or time ({e}); use ISO 8601 such as 2024-03-31, \
                 2024-03-31T12:00:00Z or 2024-03-31T14:00:00+02:00"
            ))
        })?;
    civil
        .to_zoned_datetime(TimeZone::UTC)
        .map(|z| z.timestamp().as_microsecond())
        .map_err(|e| Error::InvalidInput(format!("{t:?}: out of range ({e})")))
}

/// RFC 3339 in UTC with a `Z`; fractional seconds only when there are any.
pub fn format_us(us: i64) -> String {
    match Timestamp::from_microsecond(us) {
        Ok(ts) => ts.to_string(),
        Err(_) => format!("{us} microseconds since 1970 (out of range)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: &str) -> i64 {
        parse_instant(s).unwrap()
    }

    #[test]
    fn local_days_around_dst_are_23_and_25_hours() {
        let spring = Day::parse("2024-03-31", "Europe/Amsterdam")
            .unwrap()
            .utc_range()
            .unwrap();
        assert_eq!(spring.start, Some(us("2024-03-30T23:00:00Z")));
        assert_eq!(spring.end.unwrap() - spring.start.unwrap(), 23 * HOUR_US);
        let autumn = Day::parse("2024-10-27", "Europe/Amsterdam")
            .unwrap()
            .utc_range()
            .unwrap();
        assert_eq!(autumn.start, Some(us("2024-10-26T22:00:00Z")));
        assert_eq!(autumn.end.unwrap() - autumn.start.unwrap(), 25 * HOUR_US);
    }

    #[test]
    fn solar_days_either_side_of_the_date_line() {
        let day = Day::parse("2024-01-02", "solar").unwrap();
        // 13:00 UTC at 179°E is 00:56 solar time on the next day.
        let t = us("2024-01-01T13:00:00Z");
        assert!(day.matches(t, t + 1, 179.0).unwrap());
        // The same instant at 179°W is 01:04 on 1 January.
        assert!(!day.matches(t, t + 1, -179.0).unwrap());
        let r = day.prefilter_range().unwrap();
        assert!(r.overlaps(t, t + 1));
    }

    #[test]
    fn ranges_parse_open_and_single() {
        let r = TimeRange::parse("2024-03-01/..").unwrap();
        assert_eq!(
            r,
            TimeRange {
                start: Some(us("2024-03-01")),
                end: None
            }
        );
        let d = TimeRange::parse("2024-03-01").unwrap();
        assert_eq!(d.end.unwrap() - d.start.unwrap(), DAY_US);
        assert!(TimeRange::parse("2024-03-02/2024-03-01").is_err());
        assert!(Day::parse("2024-03-31", "Mars/Olympus").is_err());
        assert_eq!(
            format_us(us("2024-03-31T12:00:00.5+02:00")),
            "2024-03-31T10:00:00.5Z"
        );
    }
}
