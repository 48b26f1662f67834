//! [`CfUnits`]: CF time units, `<unit> since <reference>`, with their calendar.
//!
//! This is what netCDF files carry in `time:units` and what GDAL (`time#units`,
//! `NETCDF_DIM_time_VALUES`) and xarray expect: a number per step, meaning a count of
//! units after the reference instant in the given calendar.

use super::calendar::Calendar;
use super::instant::{DateTime, SECONDS_PER_DAY};
use super::Step;
use crate::{Error, Result};

/// The unit of a CF time count. Only units of fixed length: CF's months and years are
/// udunits' fixed fractions of a tropical year (about 30.44 and 365.24 days), which do not
/// land on calendar months, so they are refused (see [`CfUnits::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    Second,
    Minute,
    Hour,
    Day,
}

impl TimeUnit {
    /// Reads a unit word as CF and udunits write it, in either number.
    pub fn parse(word: &str) -> Result<TimeUnit> {
        match word.to_ascii_lowercase().as_str() {
            "second" | "seconds" | "sec" | "secs" | "s" => Ok(TimeUnit::Second),
            "minute" | "minutes" | "min" | "mins" => Ok(TimeUnit::Minute),
            "hour" | "hours" | "hr" | "hrs" | "h" => Ok(TimeUnit::Hour),
            "day" | "days" | "d" => Ok(TimeUnit::Day),
            "month" | "months" | "mon" | "year" | "years" | "yr" | "yrs" | "common_year"
            | "common_years" => Err(Error::NotSupported(format!(
                "time units in {word:?} are not supported: CF and udunits define a month as \
                 a fixed 30.436875 days and a year as 365.2425 days, which do not fall on \
                 calendar months, so values would not land on the dates they seem to name. \
                 Use days since a reference (or a calendar step such as P1M for the axis)"
            ))),
            _ => Err(Error::option(
                "time unit",
                word,
                "seconds (second, secs, s), minutes (minute, min), hours (hour, hr, h) or \
                 days (day, d)",
            )),
        }
    }

    /// How many seconds one unit is.
    pub fn seconds(self) -> i64 {
        match self {
            TimeUnit::Second => 1,
            TimeUnit::Minute => 60,
            TimeUnit::Hour => 3600,
            TimeUnit::Day => SECONDS_PER_DAY,
        }
    }

    /// The largest unit that divides `step` (days for calendar months and years): the
    /// natural unit of an axis's values.
    pub fn for_step(step: Step) -> TimeUnit {
        let Step::Seconds(s) = step else {
            return TimeUnit::Day;
        };
        [TimeUnit::Day, TimeUnit::Hour, TimeUnit::Minute]
            .into_iter()
            .find(|u| s % u.seconds() == 0)
            .unwrap_or(TimeUnit::Second)
    }

    /// The canonical (plural) CF word.
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Second => "seconds",
            TimeUnit::Minute => "minutes",
            TimeUnit::Hour => "hours",
            TimeUnit::Day => "days",
        }
    }
}

/// CF time units in one calendar: `minutes since 2020-01-01T00:00:00Z` + `standard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CfUnits {
    unit: TimeUnit,
    reference: DateTime,
    calendar: Calendar,
}

impl CfUnits {
    pub fn new(unit: TimeUnit, reference: DateTime, calendar: Calendar) -> CfUnits {
        CfUnits {
            unit,
            reference,
            calendar,
        }
    }

    /// Reads `<unit> since <reference>`, e.g. `hours since 1900-01-01 00:00:00.0`,
    /// `days since 1970-1-1`, `minutes since 2020-01-01T00:00:00Z`, `seconds since
    /// 2020-01-01 00:00:00 +01:00` (the offset is converted to UTC). The reference must be a
    /// date of `calendar`.
    pub fn parse(text: &str, calendar: Calendar) -> Result<CfUnits> {
        let mut words = text.split_whitespace();
        let (Some(unit), Some(since)) = (words.next(), words.next()) else {
            return Err(not_units(text, "expected \"<unit> since <reference>\""));
        };
        if !since.eq_ignore_ascii_case("since") {
            return Err(not_units(text, "expected \"since\" after the unit"));
        }
        let unit = TimeUnit::parse(unit)?;
        let reference = words.collect::<Vec<_>>().join(" ");
        if reference.is_empty() {
            return Err(not_units(
                text,
                "the reference date after \"since\" is missing",
            ));
        }
        let reference = DateTime::parse_lenient(&reference, calendar)
            .map_err(|e| not_units(text, &e.to_string()))?;
        Ok(CfUnits::new(unit, reference, calendar))
    }

    pub fn unit(&self) -> TimeUnit {
        self.unit
    }
    pub fn reference(&self) -> DateTime {
        self.reference
    }
    pub fn calendar(&self) -> Calendar {
        self.calendar
    }

    /// The canonical text, `minutes since 2020-01-01T00:00:00Z` (the calendar goes in its
    /// own attribute, as in CF).
    pub fn format(&self) -> String {
        format!("{} since {}", self.unit.name(), self.reference)
    }

    /// The count of units from the reference to `at`. Exact when the interval is a whole
    /// number of units; otherwise the nearest `f64` to the exact quotient (both operands
    /// are integers below 2^53, so only the one division rounds).
    pub fn to_value(&self, at: &DateTime) -> Result<f64> {
        let seconds = at.seconds_since(&self.reference, self.calendar)?;
        Ok(seconds as f64 / self.unit.seconds() as f64)
    }

    /// The instant `value` units after the reference, rounded to the nearest second (halves
    /// away from zero). NaN, infinities and instants outside years -9999..=9999 are errors.
    pub fn to_datetime(&self, value: f64) -> Result<DateTime> {
        let seconds = (value * self.unit.seconds() as f64).round();
        // Twenty thousand years is about 6.4e11 s; anything beyond 1e15 (still exact in
        // f64 and far inside i64) is out of range anyway, so the cast below cannot saturate.
        if !seconds.is_finite() || seconds.abs() > 1e15 {
            return Err(self.out_of_range(value));
        }
        self.reference
            .plus_seconds(self.calendar, seconds as i64)
            .map_err(|_| self.out_of_range(value))
    }

    fn out_of_range(&self, value: f64) -> Error {
        Error::InvalidInput(format!(
            "time value {value} {} is not an instant between years -9999 and 9999 in the {} \
             calendar",
            self.format(),
            self.calendar
        ))
    }
}

fn not_units(text: &str, why: &str) -> Error {
    Error::InvalidInput(format!(
        "{text:?} are not CF time units: {why}. Write e.g. \"minutes since \
         2020-01-01T00:00:00Z\""
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Calendar = Calendar::Standard;

    fn units(text: &str) -> CfUnits {
        CfUnits::parse(text, G).unwrap()
    }

    #[test]
    fn every_unit_word_parses() {
        let cases = [
            (&["seconds", "second", "secs", "sec", "s", "SECONDS"][..], 1),
            (&["minutes", "minute", "min", "mins", "Minutes"][..], 60),
            (&["hours", "hour", "hr", "hrs", "h"][..], 3600),
            (&["days", "day", "d", "DAYS"][..], 86_400),
        ];
        for (words, seconds) in cases {
            for word in words {
                let u = units(&format!("{word} since 1970-01-01"));
                assert_eq!(u.unit().seconds(), seconds, "{word}");
            }
        }
    }

    #[test]
    fn every_reference_form_parses_to_the_same_instant() {
        let want = units("days since 1970-01-01T00:00:00Z").reference();
        for text in [
            "days since 1970-01-01",
            "days since 1970-01-01 00:00:00",
            "days since 1970-1-1 0:0:0",
            "days since 1970-01-01 00:00:00.0",
            "days since 1970-01-01 00:00",
            "days  SINCE  1970-01-01T00:00:00Z",
            "days since 1970-01-01 00:00:00 UTC",
            "days since 1970-01-01T01:00:00+01:00",
            "days since 1969-12-31 23:00:00 -1:00",
        ] {
            assert_eq!(units(text).reference(), want, "{text}");
        }
    }

    #[test]
    fn format_is_canonical_and_parses_back() {
        let u = units("min since 2020-1-1 0:0:0");
        assert_eq!(u.format(), "minutes since 2020-01-01T00:00:00Z");
        assert_eq!(CfUnits::parse(&u.format(), G).unwrap(), u);
        let h = units("hr since 2020-01-01T05:00:00+02:00");
        assert_eq!(h.format(), "hours since 2020-01-01T03:00:00Z");
    }

    #[test]
    fn months_and_years_are_refused_saying_why() {
        for text in [
            "months since 2000-01-01",
            "years since 2000-01-01",
            "month since 2000-1-1",
        ] {
            let err = CfUnits::parse(text, G).unwrap_err().to_string();
            assert!(err.contains("30.436875") && err.contains("P1M"), "{err}");
        }
    }

    #[test]
    fn malformed_units_are_refused() {
        let cases = [
            ("", "<unit> since <reference>"),
            ("days", "<unit> since <reference>"),
            ("days after 1970-01-01", "\"since\""),
            ("days since", "missing"),
            ("weeks since 1970-01-01", "seconds (second"),
            ("days since yesterday", "not a date"),
            ("days since 1970-02-30", "28 days"),
            ("days since 1970-01-01 00:00:00.5", "fraction"),
        ];
        for (text, why) in cases {
            let err = CfUnits::parse(text, G).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
        // 30 February is a fine reference in a 360-day calendar.
        assert!(CfUnits::parse("days since 1970-02-30", Calendar::Day360).is_ok());
    }

    #[test]
    fn values_count_units_in_the_calendar() {
        let at = DateTime::parse("2000-03-01T00:00:00Z", G).unwrap();
        let days_in = |cal| {
            CfUnits::parse("days since 2000-02-01", cal)
                .unwrap()
                .to_value(&at)
                .unwrap()
        };
        assert_eq!(days_in(Calendar::Standard), 29.0);
        assert_eq!(days_in(Calendar::NoLeap), 28.0);
        assert_eq!(days_in(Calendar::Day360), 30.0);
        let u = units("hours since 2000-03-01 00:00");
        let half_hour = DateTime::parse("2000-03-01T00:30:00Z", G).unwrap();
        assert_eq!(u.to_value(&half_hour).unwrap(), 0.5);
        let before = DateTime::parse("2000-02-29T23:00:00Z", G).unwrap();
        assert_eq!(u.to_value(&before).unwrap(), -1.0);
    }

    #[test]
    fn values_round_to_the_nearest_second() {
        let u = units("hours since 2000-01-01");
        let t = |v: f64| u.to_datetime(v).unwrap().to_string();
        assert_eq!(t(0.1), "2000-01-01T00:06:00Z");
        assert_eq!(t(1.0 / 3.0), "2000-01-01T00:20:00Z");
        // 0.4 s and 0.5 s after the reference, and 0.5 s before it.
        assert_eq!(t(0.4 / 3600.0), "2000-01-01T00:00:00Z");
        assert_eq!(t(0.5 / 3600.0), "2000-01-01T00:00:01Z");
        assert_eq!(t(-0.5 / 3600.0), "1999-12-31T23:59:59Z");
        for cal in Calendar::ALL {
            let u = CfUnits::parse("minutes since 1999-12-01", cal).unwrap();
            for v in [-1e7, -1.0, 0.0, 59.0, 1e6, 3e6 + 17.0] {
                let back = u.to_value(&u.to_datetime(v).unwrap()).unwrap();
                assert_eq!(back, v, "{cal} {v}");
            }
        }
    }

    #[test]
    fn values_that_are_no_instant_are_errors() {
        let u = units("seconds since 1970-01-01");
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -1e300,
            1e15,
            4e11,
        ] {
            let err = u.to_datetime(v).unwrap_err().to_string();
            assert!(err.contains("seconds since 1970-01-01T00:00:00Z"), "{err}");
        }
        let days = units("days since 9999-12-31");
        assert!(days.to_datetime(1.0).is_err());
        assert!(days.to_datetime(0.0).is_ok());
    }
}
