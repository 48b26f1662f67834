//! The CF calendars: which dates exist, and the number of each day.
//!
//! A time axis stores counts ("minutes since ..."), and turning a count into a date is only
//! well defined once the calendar says how long each month and year is. CF names several
//! calendars; model output in particular uses the idealised ones (`noleap`, `360_day`), where
//! 30 February can be a real day. Every conversion here is closed-form arithmetic (O(1), no
//! loop over years), so finding step 1,000,000 costs the same as finding step 10.
//!
//! Years use astronomical numbering, as ISO 8601 does: year 0 exists and is 1 BC, year -1
//! is 2 BC. Supported years are [`MIN_YEAR`]..=[`MAX_YEAR`], the range four-digit ISO 8601
//! years can write.

use crate::{Error, Result};

/// The first year a date may have (ISO 8601's four-digit range, astronomical numbering).
pub const MIN_YEAR: i32 = -9999;
/// The last year a date may have.
pub const MAX_YEAR: i32 = 9999;

/// A CF calendar (CF conventions section 4.4.1), as used by cftime and xarray.
///
/// `julian` and `none` are not supported: the first is rare in data and would be a
/// sixth set of rules to carry through every later part; the second has no dates at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Calendar {
    /// `standard` (alias `gregorian`): the Julian calendar up to 1582-10-04, the Gregorian
    /// calendar from the next day, 1582-10-15. The ten dates between do not exist.
    Standard,
    /// `proleptic_gregorian`: the Gregorian leap rule for every year.
    ProlepticGregorian,
    /// `noleap` (alias `365_day`): every year has 365 days.
    NoLeap,
    /// `all_leap` (alias `366_day`): every year has 366 days.
    AllLeap,
    /// `360_day`: twelve months of 30 days.
    Day360,
}

/// Every name [`Calendar::parse`] accepts, for error messages.
const ACCEPTED: &str = "standard (or gregorian), proleptic_gregorian, noleap (or 365_day), \
                        all_leap (or 366_day), 360_day";

/// The first day of the Gregorian part of the standard calendar.
const GREGORIAN_START: (i32, u8, u8) = (1582, 10, 15);

/// Days in each month of a common year and of a leap year (index 0 is January).
const MONTH_DAYS: [[u8; 12]; 2] = [
    [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
    [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
];

/// Days before each month in a common year and in a leap year.
const DAYS_BEFORE_MONTH: [[u16; 12]; 2] = [
    [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334],
    [0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335],
];

impl Calendar {
    /// Every calendar, for tests and listings.
    pub const ALL: [Calendar; 5] = [
        Calendar::Standard,
        Calendar::ProlepticGregorian,
        Calendar::NoLeap,
        Calendar::AllLeap,
        Calendar::Day360,
    ];

    /// Reads a CF calendar name or alias, ignoring case and surrounding spaces.
    pub fn parse(text: &str) -> Result<Calendar> {
        match text.trim().to_ascii_lowercase().as_str() {
            "standard" | "gregorian" => Ok(Calendar::Standard),
            "proleptic_gregorian" => Ok(Calendar::ProlepticGregorian),
            "noleap" | "365_day" => Ok(Calendar::NoLeap),
            "all_leap" | "366_day" => Ok(Calendar::AllLeap),
            "360_day" => Ok(Calendar::Day360),
            _ => Err(Error::option(
                "calendar",
                text,
                format!("one of the CF calendars {ACCEPTED}"),
            )),
        }
    }

    /// The canonical CF name (what `time#calendar` and the manifest carry).
    pub fn name(self) -> &'static str {
        match self {
            Calendar::Standard => "standard",
            Calendar::ProlepticGregorian => "proleptic_gregorian",
            Calendar::NoLeap => "noleap",
            Calendar::AllLeap => "all_leap",
            Calendar::Day360 => "360_day",
        }
    }

    /// Whether `year` has a 29 February (for `360_day`: whether it is longer than others,
    /// which is never).
    pub fn is_leap(self, year: i32) -> bool {
        match self {
            Calendar::Standard if year < GREGORIAN_START.0 => julian_leap(year),
            Calendar::Standard | Calendar::ProlepticGregorian => gregorian_leap(year),
            Calendar::NoLeap | Calendar::Day360 => false,
            Calendar::AllLeap => true,
        }
    }

    /// The number of the last day of `month` (1..=12) in `year`, or `None` for a month
    /// outside 1..=12. In the standard calendar October 1582 still ends on the 31st, but
    /// its days 5..=14 do not exist: use [`Calendar::is_valid_date`] to check a date.
    pub fn month_length(self, year: i32, month: u8) -> Option<u8> {
        if !(1..=12).contains(&month) {
            return None;
        }
        match self {
            Calendar::Day360 => Some(30),
            _ => Some(MONTH_DAYS[self.is_leap(year) as usize][usize::from(month - 1)]),
        }
    }

    /// Whether the date exists in this calendar (year within the supported range, month
    /// 1..=12, day within the month, and not in the standard calendar's 1582 gap).
    pub fn is_valid_date(self, year: i32, month: u8, day: u8) -> bool {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return false;
        }
        let Some(last) = self.month_length(year, month) else {
            return false;
        };
        if day < 1 || day > last {
            return false;
        }
        !(self == Calendar::Standard && in_gregorian_gap(year, month, day))
    }

    /// The number of a date: days since 1970-01-01 of this calendar (negative before).
    /// Differences of day numbers are exact day counts, across the 1582 switch too.
    pub fn day_number(self, year: i32, month: u8, day: u8) -> Result<i64> {
        if !self.is_valid_date(year, month, day) {
            return Err(Error::InvalidInput(format!(
                "{} is not a date in the {} calendar{}",
                show_date(year, month, day),
                self.name(),
                self.why_invalid(year, month, day)
            )));
        }
        let (y, m, d) = (i64::from(year), i64::from(month), i64::from(day));
        Ok(match self {
            Calendar::Standard if (year, month, day) < GREGORIAN_START => julian_days(y, m, d),
            Calendar::Standard | Calendar::ProlepticGregorian => gregorian_days(y, m, d),
            Calendar::NoLeap => fixed_year_days(y, m, d, 0) - fixed_year_days(1970, 1, 1, 0),
            Calendar::AllLeap => fixed_year_days(y, m, d, 1) - fixed_year_days(1970, 1, 1, 1),
            Calendar::Day360 => (y - 1970) * 360 + (m - 1) * 30 + (d - 1),
        })
    }

    /// The date with day number `days` (the inverse of [`Calendar::day_number`]); an error
    /// when that date falls outside years [`MIN_YEAR`]..=[`MAX_YEAR`].
    pub fn date(self, days: i64) -> Result<(i32, u8, u8)> {
        let out_of_range = || {
            Error::InvalidInput(format!(
                "day {days} after 1970-01-01 is outside the years {MIN_YEAR}..={MAX_YEAR} \
                 that the {} calendar supports here",
                self.name()
            ))
        };
        // The supported years lie within about 4.4 million days of 1970; bounding first
        // keeps all arithmetic below far from overflow.
        if days.unsigned_abs() > 5_000_000 {
            return Err(out_of_range());
        }
        let (y, m, d) = match self {
            Calendar::Standard if days < gregorian_days(1582, 10, 15) => julian_date(days),
            Calendar::Standard | Calendar::ProlepticGregorian => gregorian_date(days),
            Calendar::NoLeap => fixed_year_date(days + fixed_year_days(1970, 1, 1, 0), 0),
            Calendar::AllLeap => fixed_year_date(days + fixed_year_days(1970, 1, 1, 1), 1),
            Calendar::Day360 => {
                let z = days + 1970 * 360;
                let doy = z.rem_euclid(360);
                (z.div_euclid(360), doy / 30 + 1, doy % 30 + 1)
            }
        };
        match i32::try_from(y) {
            Ok(year) if (MIN_YEAR..=MAX_YEAR).contains(&year) => {
                // Month and day come out of the arithmetic within 1..=12 and 1..=31.
                Ok((year, m as u8, d as u8))
            }
            _ => Err(out_of_range()),
        }
    }

    /// The reason part of an invalid-date message.
    fn why_invalid(self, year: i32, month: u8, day: u8) -> String {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return format!(": years run from {MIN_YEAR} to {MAX_YEAR}");
        }
        match self.month_length(year, month) {
            None => ": months run from 1 to 12".into(),
            Some(last) if day < 1 || day > last => {
                format!(": month {month:02} of {year} has {last} days")
            }
            _ => ": the days 1582-10-05..=1582-10-14 do not exist (the Julian calendar ends \
                  on 1582-10-04 and the Gregorian begins on 1582-10-15)"
                .into(),
        }
    }
}

impl std::fmt::Display for Calendar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `YYYY-MM-DD` with a sign for negative years, for messages.
pub(crate) fn show_date(year: i32, month: u8, day: u8) -> String {
    if year < 0 {
        format!("-{:04}-{month:02}-{day:02}", year.unsigned_abs())
    } else {
        format!("{year:04}-{month:02}-{day:02}")
    }
}

fn julian_leap(year: i32) -> bool {
    year.rem_euclid(4) == 0
}

fn gregorian_leap(year: i32) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

fn in_gregorian_gap(year: i32, month: u8, day: u8) -> bool {
    year == 1582 && month == 10 && (5..=14).contains(&day)
}

/// Counts the year from 1 March, so that the leap day is the last day of a "year" and the
/// month lengths before it never depend on the year: returns (that year, day of it 0..=365).
fn march_based(y: i64, m: i64, d: i64) -> (i64, i64) {
    let (y, mp) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    // 153 days in every five months from March (31+30+31+30+31): this linear form gives
    // the days before month `mp` exactly.
    (y, (153 * mp + 2) / 5 + d - 1)
}

/// The inverse of [`march_based`]'s day of year: (month 1..=12, day 1..=31, whether the
/// month is January or February of the next civil year).
fn from_march_day(doy: i64) -> (i64, i64, bool) {
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    if mp < 10 {
        (mp + 3, d, false)
    } else {
        (mp - 9, d, true)
    }
}

/// Days from 0000-03-01 (proleptic Gregorian) to 1970-01-01.
const GREGORIAN_EPOCH: i64 = 719_468;
/// Days in 400 Gregorian years.
const DAYS_PER_400Y: i64 = 146_097;
/// Days in 4 Julian years.
const DAYS_PER_4Y: i64 = 1_461;

fn gregorian_days(y: i64, m: i64, d: i64) -> i64 {
    let (y, doy) = march_based(y, m, d);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * DAYS_PER_400Y + doe - GREGORIAN_EPOCH
}

fn gregorian_date(days: i64) -> (i64, i64, i64) {
    let z = days + GREGORIAN_EPOCH;
    let era = z.div_euclid(DAYS_PER_400Y);
    let doe = z.rem_euclid(DAYS_PER_400Y);
    // Remove the leap days before this day of the era to find its year of the era.
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / (DAYS_PER_400Y - 1)) / 365;
    let doy = doe - (yoe * 365 + yoe / 4 - yoe / 100);
    let (m, d, next_year) = from_march_day(doy);
    (era * 400 + yoe + i64::from(next_year), m, d)
}

/// Julian day count from its own 0000-03-01, before aligning to 1970-01-01.
fn julian_raw(y: i64, m: i64, d: i64) -> i64 {
    let (y, doy) = march_based(y, m, d);
    y.div_euclid(4) * DAYS_PER_4Y + y.rem_euclid(4) * 365 + doy
}

/// Aligns Julian counts with Gregorian ones: Julian 1582-10-04 is the day before
/// Gregorian 1582-10-15.
fn julian_shift() -> i64 {
    gregorian_days(1582, 10, 15) - 1 - julian_raw(1582, 10, 4)
}

fn julian_days(y: i64, m: i64, d: i64) -> i64 {
    julian_raw(y, m, d) + julian_shift()
}

fn julian_date(days: i64) -> (i64, i64, i64) {
    let z = days - julian_shift();
    let cycle = z.div_euclid(DAYS_PER_4Y);
    let doc = z.rem_euclid(DAYS_PER_4Y);
    // The leap day is the last day of the fourth year, so day 1460 still belongs to it.
    let yoc = (doc / 365).min(3);
    let (m, d, next_year) = from_march_day(doc - yoc * 365);
    (cycle * 4 + yoc + i64::from(next_year), m, d)
}

/// Days from 0000-01-01 in a calendar whose years all have the same length
/// (`leap` 0: 365 days, 1: 366 days).
fn fixed_year_days(y: i64, m: i64, d: i64, leap: usize) -> i64 {
    let year_len = 365 + leap as i64;
    y * year_len + i64::from(DAYS_BEFORE_MONTH[leap][(m - 1) as usize]) + d - 1
}

fn fixed_year_date(z: i64, leap: usize) -> (i64, i64, i64) {
    let year_len = 365 + leap as i64;
    let doy = z.rem_euclid(year_len);
    // Twelve months: the last one starting on or before the day of the year.
    let before = &DAYS_BEFORE_MONTH[leap];
    let month = before.partition_point(|&start| i64::from(start) <= doy);
    let d = doy - i64::from(before[month - 1]) + 1;
    (z.div_euclid(year_len), month as i64, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The years around which leap rules or the calendar switch change.
    const EDGE_YEARS: [i32; 10] = [-9999, -4713, -1, 0, 1582, 1600, 1700, 1900, 2000, 2100];

    fn check_round_trip(cal: Calendar, year: i32) {
        let mut expected_next: Option<i64> = None;
        for month in 1..=12u8 {
            let last = cal.month_length(year, month).unwrap();
            for day in 1..=last {
                if !cal.is_valid_date(year, month, day) {
                    continue;
                }
                let n = cal.day_number(year, month, day).unwrap();
                if let Some(next) = expected_next {
                    assert_eq!(n, next, "{cal}: {year}-{month}-{day} is not the next day");
                }
                expected_next = Some(n + 1);
                assert_eq!(cal.date(n).unwrap(), (year, month, day), "{cal} day {n}");
            }
        }
    }

    #[test]
    fn every_day_of_edge_years_round_trips_and_follows_the_previous_one() {
        for cal in Calendar::ALL {
            for year in EDGE_YEARS.into_iter().chain([9998, 9999]) {
                check_round_trip(cal, year);
                // And the year boundary itself.
                if year < MAX_YEAR {
                    let dec31 = cal.day_number(year, 12, cal.month_length(year, 12).unwrap());
                    assert_eq!(dec31.unwrap() + 1, cal.day_number(year + 1, 1, 1).unwrap());
                }
            }
        }
    }

    #[test]
    fn year_lengths_follow_each_calendars_leap_rule() {
        let year_len = |cal: Calendar, y: i32| {
            cal.day_number(y + 1, 1, 1).unwrap() - cal.day_number(y, 1, 1).unwrap()
        };
        for y in [
            1500i32, 1600, 1700, 1900, 2000, 2001, 2004, 2100, 0, -4, -100,
        ] {
            let greg = if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) {
                366
            } else {
                365
            };
            let jul = if y.rem_euclid(4) == 0 { 366 } else { 365 };
            assert_eq!(year_len(Calendar::ProlepticGregorian, y), greg, "{y}");
            let std = if y < 1582 { jul } else { greg };
            if y != 1582 {
                assert_eq!(year_len(Calendar::Standard, y), std, "{y}");
            }
            assert_eq!(year_len(Calendar::NoLeap, y), 365);
            assert_eq!(year_len(Calendar::AllLeap, y), 366);
            assert_eq!(year_len(Calendar::Day360, y), 360);
        }
        // 1582 lost ten days to the switch.
        assert_eq!(year_len(Calendar::Standard, 1582), 355);
    }

    #[test]
    fn month_lengths() {
        assert_eq!(Calendar::Standard.month_length(1900, 2), Some(28));
        assert_eq!(Calendar::Standard.month_length(1500, 2), Some(29));
        assert_eq!(Calendar::ProlepticGregorian.month_length(1500, 2), Some(28));
        assert_eq!(Calendar::ProlepticGregorian.month_length(2000, 2), Some(29));
        assert_eq!(Calendar::NoLeap.month_length(2000, 2), Some(28));
        assert_eq!(Calendar::AllLeap.month_length(2001, 2), Some(29));
        assert_eq!(Calendar::Day360.month_length(2001, 2), Some(30));
        assert_eq!(Calendar::Day360.month_length(2001, 1), Some(30));
        assert_eq!(Calendar::NoLeap.month_length(2001, 4), Some(30));
        assert_eq!(Calendar::NoLeap.month_length(2001, 0), None);
        assert_eq!(Calendar::NoLeap.month_length(2001, 13), None);
    }

    #[test]
    fn the_gregorian_gap_does_not_exist_in_the_standard_calendar_only() {
        let std = Calendar::Standard;
        for day in 5..=14 {
            assert!(!std.is_valid_date(1582, 10, day));
            let err = std.day_number(1582, 10, day).unwrap_err().to_string();
            assert!(
                err.contains("1582-10-04") && err.contains("standard"),
                "{err}"
            );
            assert!(Calendar::ProlepticGregorian.is_valid_date(1582, 10, day));
        }
        let before = std.day_number(1582, 10, 4).unwrap();
        assert_eq!(std.day_number(1582, 10, 15).unwrap(), before + 1);
        assert_eq!(std.date(before + 1).unwrap(), (1582, 10, 15));
        // The Julian calendar runs ten days behind the Gregorian one at the switch.
        assert_eq!(
            std.day_number(1582, 10, 4).unwrap(),
            Calendar::ProlepticGregorian
                .day_number(1582, 10, 14)
                .unwrap()
        );
    }

    #[test]
    fn day_zero_is_1970_01_01_in_every_calendar() {
        for cal in Calendar::ALL {
            assert_eq!(cal.day_number(1970, 1, 1).unwrap(), 0, "{cal}");
            assert_eq!(cal.date(0).unwrap(), (1970, 1, 1), "{cal}");
            assert_eq!(
                cal.date(-1).unwrap(),
                (1969, 12, cal.month_length(1969, 12).unwrap())
            );
        }
    }

    #[test]
    fn impossible_dates_are_refused_with_the_reason() {
        let cases: [(Calendar, i32, u8, u8, &str); 6] = [
            (Calendar::Standard, 2023, 2, 29, "has 28 days"),
            (Calendar::Standard, 2024, 2, 30, "has 29 days"),
            (Calendar::NoLeap, 2024, 2, 29, "has 28 days"),
            (Calendar::Standard, 2024, 13, 1, "months run"),
            (Calendar::Day360, 2024, 1, 31, "has 30 days"),
            (Calendar::Standard, 10_000, 1, 1, "years run"),
        ];
        for (cal, y, m, d, why) in cases {
            let err = cal.day_number(y, m, d).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(cal.name()), "{err}");
        }
        assert!(Calendar::Day360.is_valid_date(2023, 2, 30));
        assert!(Calendar::AllLeap.is_valid_date(2023, 2, 29));
        assert!(!Calendar::Standard.is_valid_date(2024, 1, 0));
    }

    #[test]
    fn dates_outside_the_supported_years_are_errors_not_wraps() {
        for cal in Calendar::ALL {
            let first = cal.day_number(MIN_YEAR, 1, 1).unwrap();
            let last = cal.day_number(
                MAX_YEAR,
                12,
                31.min(cal.month_length(MAX_YEAR, 12).unwrap()),
            );
            assert!(cal.date(first - 1).is_err());
            assert!(cal.date(last.unwrap() + 1).is_err());
            assert!(cal.date(i64::MAX).is_err() && cal.date(i64::MIN).is_err());
        }
    }

    #[test]
    fn names_and_aliases_parse_case_insensitively() {
        let cases = [
            ("standard", Calendar::Standard),
            ("Gregorian", Calendar::Standard),
            ("PROLEPTIC_GREGORIAN", Calendar::ProlepticGregorian),
            ("noleap", Calendar::NoLeap),
            ("365_day", Calendar::NoLeap),
            ("all_leap", Calendar::AllLeap),
            ("366_DAY", Calendar::AllLeap),
            (" 360_day ", Calendar::Day360),
        ];
        for (text, cal) in cases {
            assert_eq!(Calendar::parse(text).unwrap(), cal, "{text}");
        }
        for cal in Calendar::ALL {
            assert_eq!(Calendar::parse(cal.name()).unwrap(), cal);
        }
        for bad in ["julian", "none", "gregorain", "", "360day"] {
            let err = Calendar::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("proleptic_gregorian") && err.contains("360_day"),
                "{err}"
            );
        }
    }
}
