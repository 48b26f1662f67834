//! [`DateTime`]: a date and a time of day, to the second, in UTC.
//!
//! Time steps are labelled to the second: radar scans and model steps never need finer, and
//! whole seconds keep every conversion exact in integers. Text is ISO 8601; the calendar
//! decides which dates exist, so parsing and arithmetic take one.
//!
//! Years are written with four digits, or a minus sign and four digits for years before 0
//! (astronomical numbering, `-0001` is 2 BC). Longer years (ISO 8601's expanded form,
//! `+10000`) are refused: the calendars here cover -9999..=9999 only.

use super::calendar::{show_date, Calendar, MAX_YEAR, MIN_YEAR};
use crate::{Error, Result};

/// Seconds in a day: CF calendars have no leap seconds and no daylight saving.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// A calendar date and a time of day in UTC, to the second.
///
/// It does not carry its calendar: the same fields mean the same label in every calendar
/// where the date exists, and whoever holds a `DateTime` also holds the axis's calendar.
/// The derived order (year, month, day, hour, minute, second) is chronological in every
/// calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl DateTime {
    /// A checked date and time: the date must exist in `calendar`, the time be 00:00:00 to
    /// 23:59:59.
    pub fn new(
        calendar: Calendar,
        (year, month, day): (i32, u8, u8),
        (hour, minute, second): (u8, u8, u8),
    ) -> Result<DateTime> {
        calendar.day_number(year, month, day)?;
        if hour > 23 || minute > 59 || second > 59 {
            return Err(Error::InvalidInput(format!(
                "{hour:02}:{minute:02}:{second:02} is not a time of day: hours run 0..=23, \
                 minutes and seconds 0..=59 (there are no leap seconds in CF calendars)"
            )));
        }
        Ok(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    pub fn year(&self) -> i32 {
        self.year
    }
    pub fn month(&self) -> u8 {
        self.month
    }
    pub fn day(&self) -> u8 {
        self.day
    }
    pub fn hour(&self) -> u8 {
        self.hour
    }
    pub fn minute(&self) -> u8 {
        self.minute
    }
    pub fn second(&self) -> u8 {
        self.second
    }

    /// Seconds since 1970-01-01T00:00:00 of `calendar` (negative before).
    ///
    /// Fails only when the date does not exist in `calendar` (a `DateTime` made in another
    /// calendar, such as 30 February from a `360_day` axis read as `standard`).
    pub fn to_seconds(&self, calendar: Calendar) -> Result<i64> {
        let days = calendar.day_number(self.year, self.month, self.day)?;
        // |days| < 4e6, so this stays far inside i64.
        Ok(days * SECONDS_PER_DAY + self.seconds_of_day())
    }

    /// The instant `seconds` after 1970-01-01T00:00:00 of `calendar`; an error when it
    /// falls outside the years -9999..=9999.
    pub fn from_seconds(calendar: Calendar, seconds: i64) -> Result<DateTime> {
        let (year, month, day) = calendar.date(seconds.div_euclid(SECONDS_PER_DAY))?;
        let sod = seconds.rem_euclid(SECONDS_PER_DAY);
        Ok(DateTime {
            year,
            month,
            day,
            // sod < 86400, so each part fits in u8.
            hour: (sod / 3600) as u8,
            minute: (sod / 60 % 60) as u8,
            second: (sod % 60) as u8,
        })
    }

    /// This instant moved by `seconds` (either sign), with overflow and range checked.
    pub fn plus_seconds(&self, calendar: Calendar, seconds: i64) -> Result<DateTime> {
        let total = self
            .to_seconds(calendar)?
            .checked_add(seconds)
            .ok_or_else(|| {
                Error::InvalidInput(format!("{self} plus {seconds} s is out of range"))
            })?;
        DateTime::from_seconds(calendar, total)
    }

    /// Seconds from `since` to this instant (negative when this one is earlier).
    pub fn seconds_since(&self, since: &DateTime, calendar: Calendar) -> Result<i64> {
        // Both are bounded by the supported years, so the difference cannot overflow.
        Ok(self.to_seconds(calendar)? - since.to_seconds(calendar)?)
    }

    fn seconds_of_day(&self) -> i64 {
        i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second)
    }

    /// Reads ISO 8601: `2024-03-31T02:30:00Z`, `2024-03-31T02:30:00`, `2024-03-31`,
    /// `2024-03-31 02:30`, `2024-03-31T02:30:00+01:00` (converted to UTC). Without an
    /// offset the time is taken as UTC. A fraction of a second is accepted only when it is
    /// zero (`00:00:00.0`, common in netCDF units), since labels are whole seconds.
    pub fn parse(text: &str, calendar: Calendar) -> Result<DateTime> {
        parse_with(text, calendar, Digits::Iso)
    }

    /// Like [`DateTime::parse`], but also takes the short fields netCDF writers leave in
    /// CF units references (`1970-1-1 0:0:0`, `1-1-1`).
    pub(crate) fn parse_lenient(text: &str, calendar: Calendar) -> Result<DateTime> {
        parse_with(text, calendar, Digits::Lenient)
    }
}

/// `2024-03-31T02:30:00Z`: ISO 8601 in UTC, the form every text output uses.
impl std::fmt::Display for DateTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}T{:02}:{:02}:{:02}Z",
            show_date(self.year, self.month, self.day),
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// How many digits each field may have.
#[derive(Clone, Copy, PartialEq)]
enum Digits {
    /// ISO 8601: four-digit years, two-digit months, days, hours, minutes, seconds.
    Iso,
    /// udunits references: one to four digits for the year, one or two for the rest.
    Lenient,
}

fn parse_with(text: &str, calendar: Calendar, digits: Digits) -> Result<DateTime> {
    let bad = |why: &str| {
        Error::InvalidInput(format!(
            "{text:?} is not a date and time: {why}. Write ISO 8601, e.g. \
             2024-03-31T02:30:00Z, 2024-03-31 02:30 or 2024-03-31"
        ))
    };
    let mut cur = Cursor {
        rest: text.trim(),
        digits,
    };
    let negative = cur.eat('-');
    if cur.rest.bytes().take_while(u8::is_ascii_digit).count() > 4 {
        return Err(bad(&format!(
            "years have at most four digits (supported: {MIN_YEAR}..={MAX_YEAR})"
        )));
    }
    let year_digits = if digits == Digits::Iso { 4..=4 } else { 1..=4 };
    let year = cur.number(year_digits, "the year").map_err(|e| bad(&e))?;
    let year = if negative {
        -(year as i32)
    } else {
        year as i32
    };
    cur.expect('-', "a '-' after the year")
        .map_err(|e| bad(&e))?;
    let month = cur.number(cur.short(), "the month").map_err(|e| bad(&e))? as u8;
    cur.expect('-', "a '-' after the month")
        .map_err(|e| bad(&e))?;
    let day = cur.number(cur.short(), "the day").map_err(|e| bad(&e))? as u8;
    let (mut hour, mut minute, mut second) = (0u8, 0u8, 0u8);
    if cur.eat('T') || cur.eat('t') || cur.eat(' ') {
        cur.skip_spaces();
        hour = cur.number(cur.short(), "the hour").map_err(|e| bad(&e))? as u8;
        cur.expect(':', "':' and the minutes after the hour")
            .map_err(|e| bad(&e))?;
        minute = cur
            .number(cur.short(), "the minutes")
            .map_err(|e| bad(&e))? as u8;
        if cur.eat(':') {
            second = cur
                .number(cur.short(), "the seconds")
                .map_err(|e| bad(&e))? as u8;
            if cur.eat('.') || cur.eat(',') {
                cur.zero_fraction().map_err(|e| bad(&e))?;
            }
        }
    }
    let offset = cur.offset().map_err(|e| bad(&e))?;
    if !cur.rest.is_empty() {
        return Err(bad(&format!("unexpected {:?} at the end", cur.rest)));
    }
    let local = DateTime::new(calendar, (year, month, day), (hour, minute, second))?;
    if offset == 0 {
        return Ok(local);
    }
    local.plus_seconds(calendar, -offset)
}

/// A reader over the remaining text of a date.
struct Cursor<'a> {
    rest: &'a str,
    digits: Digits,
}

impl Cursor<'_> {
    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start_matches(' ');
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected {what}"))
        }
    }

    /// The digit counts allowed for fields other than the year.
    fn short(&self) -> std::ops::RangeInclusive<usize> {
        match self.digits {
            Digits::Iso => 2..=2,
            Digits::Lenient => 1..=2,
        }
    }

    fn number(&mut self, len: std::ops::RangeInclusive<usize>, what: &str) -> Result<u32, String> {
        let n = self.rest.bytes().take_while(u8::is_ascii_digit).count();
        if !len.contains(&n) {
            let want = if len.start() == len.end() {
                format!("{} digits", len.start())
            } else {
                format!("{} to {} digits", len.start(), len.end())
            };
            return Err(format!("expected {what} as {want}"));
        }
        let (digits, rest) = self.rest.split_at(n);
        self.rest = rest;
        // At most four ASCII digits: always fits.
        digits.parse().map_err(|_| format!("expected {what}"))
    }

    /// A fraction of a second after the separator; only zeros are accepted.
    fn zero_fraction(&mut self) -> Result<(), String> {
        let n = self.rest.bytes().take_while(u8::is_ascii_digit).count();
        let (digits, rest) = self.rest.split_at(n);
        if n == 0 || digits.bytes().any(|b| b != b'0') {
            return Err("times are whole seconds; a fraction of a second must be zero".into());
        }
        self.rest = rest;
        Ok(())
    }

    /// An optional `Z`, `UTC`, or `+hh:mm`/`-hh:mm`/`+hhmm`/`+hh` offset, in seconds east.
    fn offset(&mut self) -> Result<i64, String> {
        self.skip_spaces();
        if self.eat('Z') || self.eat('z') {
            return Ok(0);
        }
        if let Some(r) = self.rest.strip_prefix("UTC") {
            self.rest = r;
            return Ok(0);
        }
        let sign = if self.eat('+') {
            1
        } else if self.eat('-') {
            -1
        } else {
            return Ok(0);
        };
        // `hh`, `hh:mm` or `hhmm` (and `h`, `h:mm` in the lenient form).
        let digits = self.rest.bytes().take_while(u8::is_ascii_digit).count();
        let (hours, minutes) = if digits == 4 {
            let hhmm = self.number(4..=4, "the offset")?;
            (hhmm / 100, hhmm % 100)
        } else {
            let hours = self.number(self.short(), "the offset's hours")?;
            let minutes = if self.eat(':') {
                self.number(2..=2, "the offset's minutes")?
            } else {
                0
            };
            (hours, minutes)
        };
        if hours > 23 || minutes > 59 {
            return Err(format!("{hours:02}:{minutes:02} is not a UTC offset"));
        }
        Ok(sign * i64::from(hours * 3600 + minutes * 60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(cal: Calendar, text: &str) -> DateTime {
        DateTime::parse(text, cal).unwrap()
    }

    fn ymdhms(y: i32, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> DateTime {
        DateTime::new(Calendar::ProlepticGregorian, (y, mo, d), (h, mi, s)).unwrap()
    }

    #[test]
    fn every_iso_form_parses() {
        let g = Calendar::Standard;
        let t = ymdhms(2024, 3, 31, 2, 30, 0);
        for text in [
            "2024-03-31T02:30:00Z",
            "2024-03-31T02:30:00",
            "2024-03-31 02:30",
            "2024-03-31T02:30",
            "2024-03-31t02:30:00z",
            "2024-03-31T02:30:00.000Z",
            "2024-03-31T03:30:00+01:00",
            "2024-03-31T03:30:00+0100",
            "2024-03-31T03:30:00+01",
            "2024-03-30T23:00:00-03:30",
            "  2024-03-31T02:30:00 UTC ",
        ] {
            assert_eq!(dt(g, text), t, "{text}");
        }
        assert_eq!(dt(g, "2024-03-31"), ymdhms(2024, 3, 31, 0, 0, 0));
    }

    #[test]
    fn offsets_carry_across_days_months_and_years() {
        let g = Calendar::Standard;
        assert_eq!(
            dt(g, "2024-01-01T00:30:00+01:00"),
            ymdhms(2023, 12, 31, 23, 30, 0)
        );
        assert_eq!(
            dt(g, "2024-02-28T23:00:00-02:00"),
            ymdhms(2024, 2, 29, 1, 0, 0)
        );
        assert_eq!(
            dt(Calendar::Day360, "2024-02-30T23:00:00-02:00").to_string(),
            "2024-03-01T01:00:00Z"
        );
    }

    #[test]
    fn format_round_trips_through_parse() {
        for cal in Calendar::ALL {
            for text in [
                "2024-03-30T02:30:59Z",
                "0000-01-01T00:00:00Z",
                "-0001-12-30T23:59:59Z",
                "-4713-01-01T12:00:00Z",
                "9999-12-30T00:00:00Z",
            ] {
                assert_eq!(dt(cal, text).to_string(), text, "{cal}");
            }
        }
    }

    #[test]
    fn dates_are_checked_against_the_calendar() {
        assert!(DateTime::parse("2023-02-30", Calendar::Day360).is_ok());
        assert!(DateTime::parse("2023-02-29", Calendar::AllLeap).is_ok());
        for cal in [
            Calendar::Standard,
            Calendar::ProlepticGregorian,
            Calendar::NoLeap,
        ] {
            let err = DateTime::parse("2023-02-30", cal).unwrap_err().to_string();
            assert!(
                err.contains("2023-02-30") && err.contains("28 days"),
                "{err}"
            );
        }
        assert!(DateTime::parse("2024-02-29", Calendar::NoLeap).is_err());
        assert!(DateTime::parse("1582-10-10", Calendar::Standard).is_err());
        assert!(DateTime::parse("1582-10-10", Calendar::ProlepticGregorian).is_ok());
    }

    #[test]
    fn malformed_text_is_refused_with_what_was_expected() {
        let cases = [
            ("", "the year"),
            ("24-03-31", "4 digits"),
            ("+2024-03-31", "the year"),
            ("12024-03-31", "at most four digits"),
            ("-10000-01-01", "at most four digits"),
            ("2024/03/31", "'-' after the year"),
            ("2024-3-31", "the month as 2 digits"),
            ("2024-03-31T2:30", "the hour"),
            ("2024-03-31T02", "':'"),
            ("2024-03-31T02:30:00.5Z", "fraction"),
            ("2024-03-31T02:30:00+25:00", "not a UTC offset"),
            ("2024-03-31T02:30:00Zjunk", "unexpected"),
            ("2024-03-31T24:00:00", "not a time of day"),
            ("2024-03-31T23:60:00", "not a time of day"),
            ("2024-03-31T23:59:60", "leap seconds"),
            ("2024-13-01", "months run"),
            ("2024-00-01", "months run"),
        ];
        for (text, why) in cases {
            let err = DateTime::parse(text, Calendar::Standard)
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn lenient_form_takes_short_fields() {
        let g = Calendar::Standard;
        let parsed = DateTime::parse_lenient("1970-1-1 0:0:0", g).unwrap();
        assert_eq!(parsed, ymdhms(1970, 1, 1, 0, 0, 0));
        assert_eq!(DateTime::parse_lenient("1-1-1", g).unwrap().year(), 1);
        assert!(DateTime::parse("1970-1-1", g).is_err());
    }

    #[test]
    fn seconds_round_trip_and_count_days_exactly() {
        for cal in Calendar::ALL {
            let t = dt(cal, "2001-03-01T12:34:56Z");
            let s = t.to_seconds(cal).unwrap();
            assert_eq!(DateTime::from_seconds(cal, s).unwrap(), t);
            let feb1 = dt(cal, "2001-02-01T12:34:56Z");
            let feb_days = i64::from(cal.month_length(2001, 2).unwrap());
            assert_eq!(
                t.seconds_since(&feb1, cal).unwrap(),
                feb_days * SECONDS_PER_DAY
            );
            // One second before midnight of 1970-01-01 is the previous day.
            let before = DateTime::from_seconds(cal, -1).unwrap();
            assert_eq!((before.year(), before.month()), (1969, 12));
            assert_eq!(Some(before.day()), cal.month_length(1969, 12));
            assert_eq!(
                (before.hour(), before.minute(), before.second()),
                (23, 59, 59)
            );
        }
    }

    #[test]
    fn arithmetic_out_of_range_is_an_error() {
        let g = Calendar::Standard;
        let t = dt(g, "9999-12-31T23:59:59Z");
        assert!(t.plus_seconds(g, 1).is_err());
        assert!(t.plus_seconds(g, i64::MAX).is_err());
        assert!(t.plus_seconds(g, i64::MIN).is_err());
        assert!(DateTime::from_seconds(g, i64::MIN).is_err());
        let first = dt(g, "-9999-01-01T00:00:00Z");
        assert!(first.plus_seconds(g, -1).is_err());
        // A 360_day date read in another calendar is refused, not guessed.
        let feb30 = dt(Calendar::Day360, "2023-02-30");
        assert!(feb30.to_seconds(Calendar::Standard).is_err());
    }
}
