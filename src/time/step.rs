//! [`Step`] and [`RegularAxis`]: a regular time axis `origin + n * step`.
//!
//! A regular axis is stored as an origin and an ISO 8601 duration, never as a list of
//! instants, so that finding step n, or the n of an instant, is arithmetic whatever the
//! length of the axis. Steps come in two kinds that cannot be mixed: fixed steps (a whole
//! number of seconds; CF days are always 86,400 s) and calendar steps (a whole number of
//! months, whose length depends on the month and the calendar; a year is 12 months).
//!
//! Month steps and short months: step n falls on the origin's day of the month, clipped to
//! the last day of shorter months, and is always computed from the origin, never from the
//! previous step. An axis from 31 January runs Jan 31, Feb 28 (29 in leap years), Mar 31,
//! Apr 30, ...: it keeps returning to the 31st instead of drifting to the 28th. This is
//! the rule pandas and xarray apply when adding months to a date. [`RegularAxis::index_of`]
//! inverts it exactly: it computes the candidate n from the month count and accepts the
//! instant only if [`RegularAxis::instant`] gives it back. In the standard calendar a month
//! step that lands in the days 1582-10-05..=14, which do not exist, is an error.

use super::calendar::{Calendar, MAX_YEAR, MIN_YEAR};
use super::instant::{DateTime, SECONDS_PER_DAY};
use crate::{Error, Result};

/// The spacing of a regular axis: a positive whole number of seconds or of months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// A fixed length, in seconds (always > 0).
    Seconds(i64),
    /// A calendar length, in months (always > 0).
    Months(i64),
}

impl Step {
    /// Reads an ISO 8601 duration: `PT5M`, `PT1H`, `PT30S`, `P1D`, `P7D`, `P1W`, `P1DT12H`,
    /// `P1M`, `P3M`, `P1Y`, `P1Y6M`. Refused: zero, negative, fractions (`PT0.5H`), and
    /// months or years mixed with days or times (`P1M1D`), which have no fixed length and
    /// no single rule for how the two parts combine.
    pub fn parse(text: &str) -> Result<Step> {
        let bad = |why: &str| {
            Error::option(
                "time step",
                text,
                format!("an ISO 8601 duration such as PT5M, PT1H, P1D, P1W, P1M or P1Y ({why})"),
            )
        };
        let upper = text.trim().to_ascii_uppercase();
        if upper.starts_with('-') || upper.starts_with('+') {
            return Err(bad("a step cannot be negative or signed"));
        }
        let Some(body) = upper.strip_prefix('P') else {
            return Err(bad("it must start with P"));
        };
        let (date_part, time_part) = match body.split_once('T') {
            Some((d, "")) => return Err(bad(&format!("no time after T in P{d}T"))),
            Some((d, t)) => (d, t),
            None => (body, ""),
        };
        let date = designated(date_part, &['Y', 'M', 'W', 'D']).map_err(|e| bad(&e))?;
        let time = designated(time_part, &['H', 'M', 'S']).map_err(|e| bad(&e))?;
        let overflow = || bad("it is too long");
        let months = date[0]
            .checked_mul(12)
            .and_then(|m| m.checked_add(date[1]))
            .ok_or_else(overflow)?;
        let seconds = [
            (date[2], 7 * SECONDS_PER_DAY),
            (date[3], SECONDS_PER_DAY),
            (time[0], 3600),
            (time[1], 60),
            (time[2], 1),
        ]
        .iter()
        .try_fold(0i64, |acc, &(n, unit)| {
            n.checked_mul(unit)?.checked_add(acc)
        })
        .ok_or_else(overflow)?;
        match (months, seconds) {
            (0, 0) => Err(bad("a step must be longer than zero")),
            (0, s) => Ok(Step::Seconds(s)),
            (m, 0) => Ok(Step::Months(m)),
            _ => Err(bad(
                "months and years cannot be mixed with weeks, days or times: their lengths vary",
            )),
        }
    }

    /// The canonical text: months as `P<n>Y` when a whole number of years, else `P<n>M`;
    /// fixed steps in the largest single unit that divides them (`P7D`, `PT90M`, `PT25H`).
    pub fn format(&self) -> String {
        match *self {
            Step::Months(m) if m % 12 == 0 => format!("P{}Y", m / 12),
            Step::Months(m) => format!("P{m}M"),
            Step::Seconds(s) if s % SECONDS_PER_DAY == 0 => format!("P{}D", s / SECONDS_PER_DAY),
            Step::Seconds(s) if s % 3600 == 0 => format!("PT{}H", s / 3600),
            Step::Seconds(s) if s % 60 == 0 => format!("PT{}M", s / 60),
            Step::Seconds(s) => format!("PT{s}S"),
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.format())
    }
}

/// The numbers before each of `designators` (in that order, each at most once, 0 when
/// absent) in one part of a duration.
fn designated(part: &str, designators: &[char]) -> std::result::Result<Vec<i64>, String> {
    let mut values = vec![0i64; designators.len()];
    let mut next = 0; // designators before this index are already used
    let mut rest = part;
    while !rest.is_empty() {
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (digits, tail) = rest.split_at(n);
        let mut chars = tail.chars();
        let designator = chars.next();
        if matches!(designator, Some('.') | Some(',')) {
            return Err("fractions are not allowed; use a smaller unit, e.g. PT30M".into());
        }
        if n == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let Some(d) = designator else {
            return Err(format!("{digits} has no unit letter"));
        };
        let Some(i) = designators[next..].iter().position(|&c| c == d) else {
            return Err(format!(
                "{d} is out of place: the order is P..Y..M..W..D then T..H..M..S, each once"
            ));
        };
        values[next + i] = digits.parse().map_err(|_| "it is too long".to_string())?;
        next += i + 1;
        rest = chars.as_str();
    }
    Ok(values)
}

/// A regular time axis: instant n is `origin + n * step` in `calendar` (n may be negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegularAxis {
    origin: DateTime,
    step: Step,
    calendar: Calendar,
}

impl RegularAxis {
    /// An axis; the origin must be a date of `calendar` and the step longer than zero
    /// (`Step`'s variants are public, so a step made without [`Step::parse`] is checked
    /// here; every other method relies on it).
    pub fn new(origin: DateTime, step: Step, calendar: Calendar) -> Result<RegularAxis> {
        origin.to_seconds(calendar)?;
        let (Step::Seconds(n) | Step::Months(n)) = step;
        if n <= 0 {
            return Err(Error::option(
                "time step",
                step.format(),
                "a step longer than zero",
            ));
        }
        Ok(RegularAxis {
            origin,
            step,
            calendar,
        })
    }

    pub fn origin(&self) -> DateTime {
        self.origin
    }
    pub fn step(&self) -> Step {
        self.step
    }
    pub fn calendar(&self) -> Calendar {
        self.calendar
    }

    /// Instant number `n` (O(1)); an error when it overflows or leaves the supported years,
    /// or (month steps, standard calendar) falls in the 1582 gap.
    pub fn instant(&self, n: i64) -> Result<DateTime> {
        let out_of_range = || {
            Error::InvalidInput(format!(
                "time step {n} of the axis {} + n * {} ({} calendar) is outside the years \
                 {MIN_YEAR}..={MAX_YEAR}",
                self.origin, self.step, self.calendar
            ))
        };
        match self.step {
            Step::Seconds(s) => {
                let offset = n.checked_mul(s).ok_or_else(out_of_range)?;
                self.origin
                    .plus_seconds(self.calendar, offset)
                    .map_err(|_| out_of_range())
            }
            Step::Months(m) => {
                let months = n
                    .checked_mul(m)
                    .and_then(|k| k.checked_add(self.origin_month()))
                    .ok_or_else(out_of_range)?;
                let year = i32::try_from(months.div_euclid(12)).map_err(|_| out_of_range())?;
                if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
                    return Err(out_of_range());
                }
                let month = months.rem_euclid(12) as u8 + 1;
                let last = self.calendar.month_length(year, month).unwrap_or(28);
                let o = self.origin;
                DateTime::new(
                    self.calendar,
                    (year, month, o.day().min(last)),
                    (o.hour(), o.minute(), o.second()),
                )
            }
        }
    }

    /// The n for which [`RegularAxis::instant`] is `at`, or `None` when `at` is not on the
    /// axis (between steps, not a date of the calendar, or out of range). O(1).
    pub fn index_of(&self, at: &DateTime) -> Option<i64> {
        match self.step {
            Step::Seconds(s) => {
                let offset = at.seconds_since(&self.origin, self.calendar).ok()?;
                (offset.rem_euclid(s) == 0).then(|| offset.div_euclid(s))
            }
            Step::Months(m) => {
                let at_month = i64::from(at.year()) * 12 + i64::from(at.month()) - 1;
                let months = at_month - self.origin_month();
                if months.rem_euclid(m) != 0 {
                    return None;
                }
                let n = months.div_euclid(m);
                (self.instant(n).ok()? == *at).then_some(n)
            }
        }
    }

    /// The origin's month counted from January of year 0.
    fn origin_month(&self) -> i64 {
        i64::from(self.origin.year()) * 12 + i64::from(self.origin.month()) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(text: &str) -> Step {
        Step::parse(text).unwrap()
    }

    fn axis(origin: &str, step_text: &str, cal: Calendar) -> RegularAxis {
        RegularAxis::new(DateTime::parse(origin, cal).unwrap(), step(step_text), cal).unwrap()
    }

    #[test]
    fn every_accepted_step_parses_to_its_length() {
        let cases = [
            ("PT5M", Step::Seconds(300)),
            ("PT1H", Step::Seconds(3600)),
            ("PT30S", Step::Seconds(30)),
            ("P1D", Step::Seconds(86_400)),
            ("P7D", Step::Seconds(7 * 86_400)),
            ("P1W", Step::Seconds(7 * 86_400)),
            ("P1DT12H", Step::Seconds(36 * 3600)),
            ("PT1H30M", Step::Seconds(5400)),
            ("pt5m", Step::Seconds(300)),
            ("P1M", Step::Months(1)),
            ("P3M", Step::Months(3)),
            ("P1Y", Step::Months(12)),
            ("P1Y6M", Step::Months(18)),
        ];
        for (text, want) in cases {
            assert_eq!(step(text), want, "{text}");
        }
    }

    #[test]
    fn format_is_canonical_and_parses_back() {
        let cases = [
            ("PT5M", "PT5M"),
            ("PT60M", "PT1H"),
            ("P1W", "P7D"),
            ("PT24H", "P1D"),
            ("P1DT1H", "PT25H"),
            ("PT90S", "PT90S"),
            ("P12M", "P1Y"),
            ("P1Y6M", "P18M"),
        ];
        for (text, canonical) in cases {
            let s = step(text);
            assert_eq!(s.format(), canonical, "{text}");
            assert_eq!(step(canonical), s);
        }
    }

    #[test]
    fn refusals_say_why() {
        let cases = [
            ("", "start with P"),
            ("5M", "start with P"),
            ("-P1D", "negative"),
            ("P0D", "longer than zero"),
            ("PT0S", "longer than zero"),
            ("P", "longer than zero"),
            ("P1M1D", "cannot be mixed"),
            ("P1YT1H", "cannot be mixed"),
            ("PT0.5H", "fractions"),
            ("P1,5D", "fractions"),
            ("P1DT", "no time after T"),
            ("PD", "expected a number"),
            ("P1", "no unit letter"),
            ("P1D1Y", "out of place"),
            ("P1H", "out of place"),
            ("PT1D", "out of place"),
            ("P1D1D", "out of place"),
            ("P99999999999999999999D", "too long"),
            ("P9223372036854775807D", "too long"),
        ];
        for (text, why) in cases {
            let err = Step::parse(text).unwrap_err().to_string();
            assert!(
                err.contains(why) && err.contains("ISO 8601"),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn fixed_steps_map_both_ways() {
        for cal in Calendar::ALL {
            let a = axis("2024-02-27T23:55:00Z", "PT5M", cal);
            for n in [-100_000, -1, 0, 1, 2, 288, 1_000_000] {
                let t = a.instant(n).unwrap();
                assert_eq!(a.index_of(&t), Some(n), "{cal} {n}");
                let later = t.plus_seconds(cal, 60).unwrap();
                assert_eq!(a.index_of(&later), None);
            }
            // Step 1 is midnight, on 28 February in every calendar.
            assert_eq!(a.instant(1).unwrap().to_string(), "2024-02-28T00:00:00Z");
            // Counting days crosses the end of February by the calendar's rules.
            let d = axis("2024-02-28", "P1D", cal);
            let third = d.instant(2).unwrap();
            let want = match cal {
                Calendar::NoLeap => "2024-03-02T00:00:00Z",
                Calendar::Day360 => "2024-02-30T00:00:00Z",
                _ => "2024-03-01T00:00:00Z",
            };
            assert_eq!(third.to_string(), want, "{cal}");
        }
    }

    #[test]
    fn month_steps_clip_to_the_month_end_without_drifting() {
        let g = Calendar::Standard;
        let a = axis("2023-01-31T06:00:00Z", "P1M", g);
        let got: Vec<String> = (0..4).map(|n| a.instant(n).unwrap().to_string()).collect();
        assert_eq!(
            got,
            [
                "2023-01-31T06:00:00Z",
                "2023-02-28T06:00:00Z",
                "2023-03-31T06:00:00Z",
                "2023-04-30T06:00:00Z"
            ]
        );
        assert_eq!(a.instant(13).unwrap().to_string(), "2024-02-29T06:00:00Z");
        assert_eq!(a.instant(-11).unwrap().to_string(), "2022-02-28T06:00:00Z");
        let leap = axis("2024-01-31", "P1M", Calendar::NoLeap);
        assert_eq!(leap.instant(1).unwrap().to_string(), "2024-02-28T00:00:00Z");
        let d360 = axis("2024-01-30", "P1M", Calendar::Day360);
        assert_eq!(d360.instant(1).unwrap().to_string(), "2024-02-30T00:00:00Z");
    }

    #[test]
    fn month_index_of_inverts_instant_exactly() {
        for cal in Calendar::ALL {
            for (origin, step_text) in [("2000-01-31T12:00:00Z", "P1M"), ("1999-03-29", "P3M")] {
                // 31 January is no date of the 360_day calendar.
                let Ok(origin) = DateTime::parse(origin, cal) else {
                    continue;
                };
                let a = RegularAxis::new(origin, step(step_text), cal).unwrap();
                for n in -30..30 {
                    let Ok(t) = a.instant(n) else { continue };
                    assert_eq!(a.index_of(&t), Some(n), "{cal} {origin} {n}");
                    if let Ok(before) = t.plus_seconds(cal, -86_400) {
                        assert_eq!(a.index_of(&before), None, "{cal} {before}");
                    }
                }
            }
        }
        let a = axis("2000-01-31", "P1M", Calendar::Standard);
        // Right day, wrong time; right month, clipped day missed; between steps.
        for t in [
            "2000-02-29T00:00:01Z",
            "2000-02-28",
            "2000-02-15",
            "2000-03-30",
        ] {
            let t = DateTime::parse(t, Calendar::Standard).unwrap();
            assert_eq!(a.index_of(&t), None, "{t}");
        }
        let q = axis("2000-01-15", "P3M", Calendar::Standard);
        let feb = DateTime::parse("2000-02-15", Calendar::Standard).unwrap();
        assert_eq!(q.index_of(&feb), None);
        let y = axis("2000-02-29", "P1Y", Calendar::Standard);
        assert_eq!(y.instant(1).unwrap().to_string(), "2001-02-28T00:00:00Z");
        assert_eq!(y.instant(4).unwrap().to_string(), "2004-02-29T00:00:00Z");
    }

    #[test]
    fn month_steps_into_the_1582_gap_are_errors() {
        let a = axis("1582-09-10", "P1M", Calendar::Standard);
        let err = a.instant(1).unwrap_err().to_string();
        assert!(err.contains("1582-10-10"), "{err}");
        assert_eq!(a.instant(2).unwrap().to_string(), "1582-11-10T00:00:00Z");
        assert_eq!(a.index_of(&a.instant(2).unwrap()), Some(2));
    }

    #[test]
    fn axes_refuse_steps_that_are_not_longer_than_zero() {
        let origin = DateTime::parse("2000-01-01", Calendar::Standard).unwrap();
        for bad in [
            Step::Seconds(0),
            Step::Seconds(-60),
            Step::Months(0),
            Step::Months(-1),
        ] {
            let err = RegularAxis::new(origin, bad, Calendar::Standard).unwrap_err();
            assert!(err.to_string().contains("longer than zero"), "{err}");
        }
    }

    #[test]
    fn far_steps_are_errors_not_wraps() {
        for step_text in ["PT1S", "P1M", "P1000Y"] {
            let a = axis("2000-01-01", step_text, Calendar::Standard);
            for n in [i64::MAX, i64::MIN, 1 << 40, -(1 << 40)] {
                assert!(a.instant(n).is_err(), "{step_text} {n}");
            }
        }
        let far = axis("2000-01-01", "P100000000000D", Calendar::Standard);
        assert!(far.instant(2).is_err());
        assert_eq!(far.instant(0).unwrap().to_string(), "2000-01-01T00:00:00Z");
        let t = DateTime::parse("2000-01-02", Calendar::Standard).unwrap();
        assert_eq!(far.index_of(&t), None);
    }
}
