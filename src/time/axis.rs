//! A store's time axis: how the manifest describes it, and the arithmetic between a step's
//! number in tile keys, its instant, and the value GDAL and xarray see.
//!
//! Every step of a store is a *tick* `t` (a `u32`): its instant is `origin + t * step`. On a
//! regular axis each tick is a step users expect, and a tick between the first and last
//! without data is a hole. On an irregular axis `step` is only the resolution of the
//! instants, and only the ticks stored are steps. Either way the instant of a step and the
//! step of an instant are found in O(1), and ticks sort in time order, so the tile index
//! (keyed by tick first) keeps each step's tiles together and in time order.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::{Calendar, CfUnits, DateTime, RegularAxis, Step};

/// The largest tick of a step: `u32::MAX` is kept for the step records of the tile index.
pub const MAX_TICK: u32 = u32::MAX - 1;

/// Whether every tick of the axis is a step, or only the ticks stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AxisKind {
    Regular,
    Irregular,
}

impl AxisKind {
    pub fn name(self) -> &'static str {
        match self {
            AxisKind::Regular => "regular",
            AxisKind::Irregular => "irregular",
        }
    }
}

/// The interval each step covers, relative to its label: `[label - before, label + after]`
/// (rain over the 5 minutes ending at the label is `before = PT5M`, `after = PT0S`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundsSpec {
    pub before: String,
    pub after: String,
}

/// The manifest's `time` object (docs/FORMAT.md §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSpec {
    pub kind: AxisKind,
    /// CF calendar name.
    pub calendar: String,
    /// The instant of tick 0, ISO 8601.
    pub origin: String,
    /// ISO 8601 duration between ticks: the step of a regular axis, the resolution of an
    /// irregular one.
    pub step: String,
    /// CF units of the values GDAL and xarray see (`minutes since 2020-01-01T00:00:00Z`).
    pub units: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<BoundsSpec>,
    /// How many steps the snapshot holds, and the first and last of their ticks.
    pub steps: u64,
    pub first: Option<u32>,
    pub last: Option<u32>,
    /// Ticks per time block (docs/FORMAT.md §8): closed blocks of this many ticks are
    /// compacted into time-blocked chunks. Absent in stores made before time blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_block: Option<u32>,
}

/// The ticks per time block a new axis gets: a point's series of one block is then one
/// frame of 64-256 KiB decoded for the usual sample types (docs/FORMAT.md §8).
pub const DEFAULT_SERIES_BLOCK: u32 = 128;

/// A checked [`TimeSpec`]: the arithmetic of its ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeAxis {
    pub kind: AxisKind,
    ticks: RegularAxis,
    units: CfUnits,
    /// How far before and after its label a step's interval reaches (`None`: zero).
    bounds: Option<(Option<Step>, Option<Step>)>,
}

impl TimeSpec {
    /// A new, empty axis. `units` defaults to the tick's own unit since the origin.
    pub fn new(
        kind: AxisKind,
        calendar: Calendar,
        origin: DateTime,
        step: Step,
        units: Option<CfUnits>,
    ) -> Result<TimeSpec> {
        let units = match units {
            Some(u) => u,
            None => CfUnits::new(super::TimeUnit::for_step(step), origin, calendar),
        };
        if units.calendar() != calendar {
            return Err(Error::InvalidInput(format!(
                "the time units {:?} are in the {} calendar, the axis in the {calendar} one",
                units.format(),
                units.calendar()
            )));
        }
        let spec = TimeSpec {
            kind,
            calendar: calendar.name().to_string(),
            origin: origin.to_string(),
            step: step.format(),
            units: units.format(),
            bounds: None,
            steps: 0,
            first: None,
            last: None,
            series_block: Some(DEFAULT_SERIES_BLOCK),
        };
        spec.axis()?;
        Ok(spec)
    }

    /// Checks every field (the counts against each other) and returns the arithmetic.
    pub fn axis(&self) -> Result<TimeAxis> {
        let calendar = Calendar::parse(&self.calendar)?;
        let origin = DateTime::parse(&self.origin, calendar)?;
        let step = Step::parse(&self.step)?;
        let ticks = RegularAxis::new(origin, step, calendar)?;
        let units = CfUnits::parse(&self.units, calendar)?;
        let bounds = match &self.bounds {
            Some(b) => Some((parse_offset(&b.before)?, parse_offset(&b.after)?)),
            None => None,
        };
        self.check_counts()?;
        self.check_series_block()?;
        Ok(TimeAxis {
            kind: self.kind,
            ticks,
            units,
            bounds,
        })
    }

    fn check_counts(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidInput(format!("time: {what}")));
        match (self.first, self.last) {
            (None, None) if self.steps == 0 => Ok(()),
            (Some(f), Some(l)) if f <= l && l <= MAX_TICK => {
                let span = u64::from(l - f) + 1;
                if self.steps == 0 || self.steps > span {
                    return bad(format!(
                        "{} steps cannot lie between ticks {f} and {l}",
                        self.steps
                    ));
                }
                if f == l && self.steps != 1 {
                    return bad(format!("{} steps at the single tick {f}", self.steps));
                }
                Ok(())
            }
            _ => bad(format!(
                "steps {}, first {:?}, last {:?} do not agree",
                self.steps, self.first, self.last
            )),
        }
    }

    /// A block of ticks spans 1 to [`MAX_BLOCK_TICKS`](crate::chunk::time_block::MAX_BLOCK_TICKS):
    /// readers size their buffers by it.
    fn check_series_block(&self) -> Result<()> {
        let max = crate::chunk::time_block::MAX_BLOCK_TICKS;
        match self.series_block {
            Some(d) if d == 0 || d > max => Err(Error::InvalidInput(format!(
                "time: series_block is {d}, not 1 to {max}"
            ))),
            _ => Ok(()),
        }
    }

    /// Records that tick `t` now holds a step (`added`) or no longer does, given whether it
    /// held one before. `first`/`last` after a removal are given by the caller, which knows
    /// the neighbours.
    pub fn note_added(&mut self, t: u32) {
        self.steps += 1;
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }

    /// Holes of a regular axis: ticks between the first and last step without one.
    pub fn holes(&self) -> u64 {
        match (self.kind, self.first, self.last) {
            (AxisKind::Regular, Some(f), Some(l)) => u64::from(l - f) + 1 - self.steps,
            _ => 0,
        }
    }
}

impl TimeAxis {
    pub fn calendar(&self) -> Calendar {
        self.ticks.calendar()
    }
    pub fn step(&self) -> Step {
        self.ticks.step()
    }
    pub fn units(&self) -> &CfUnits {
        &self.units
    }

    /// The instant of tick `t`.
    pub fn instant(&self, t: u32) -> Result<DateTime> {
        self.ticks.instant(i64::from(t))
    }

    /// The tick of instant `at`; an error that says why when `at` is not one.
    pub fn tick(&self, at: &DateTime) -> Result<u32> {
        let Some(n) = self.ticks.index_of(at) else {
            let what = match self.kind {
                AxisKind::Regular => "a step of",
                AxisKind::Irregular => "a whole number of the resolution of",
            };
            return Err(Error::InvalidInput(format!(
                "{at} is not {what} the store's time axis ({} + n * {}, {} calendar)",
                self.ticks.origin(),
                self.ticks.step(),
                self.calendar()
            )));
        };
        u32::try_from(n)
            .ok()
            .filter(|&t| t <= MAX_TICK)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{at} is outside the store's time axis: it starts at {} and holds at most \
                     {MAX_TICK} steps of {} after it (an axis is fixed when its store is made: \
                     give a new store an earlier --time-origin, or a coarser step or \
                     resolution, to reach further)",
                    self.ticks.origin(),
                    self.ticks.step()
                ))
            })
    }

    /// The value of tick `t` in the axis's CF units.
    pub fn value(&self, t: u32) -> Result<f64> {
        self.units.to_value(&self.instant(t)?)
    }

    /// The interval tick `t` covers, when the axis has bounds.
    pub fn interval(&self, t: u32) -> Result<Option<(DateTime, DateTime)>> {
        let Some((before, after)) = self.bounds else {
            return Ok(None);
        };
        let at = self.instant(t)?;
        let moved = |by: Option<Step>, n: i64| match by {
            Some(s) => RegularAxis::new(at, s, self.calendar())?.instant(n),
            None => Ok(at),
        };
        Ok(Some((moved(before, -1)?, moved(after, 1)?)))
    }

    /// The label of tick `t`: its instant, or `start/end` when the axis has bounds.
    pub fn label(&self, t: u32) -> Result<String> {
        Ok(match self.interval(t)? {
            Some((a, b)) => format!("{a}/{b}"),
            None => self.instant(t)?.to_string(),
        })
    }
}

/// A bound's offset from the label: an ISO 8601 duration, or zero (`PT0S`).
fn parse_offset(text: &str) -> Result<Option<Step>> {
    let zero = ["PT0S", "PT0M", "PT0H", "P0D"];
    if zero.iter().any(|z| text.eq_ignore_ascii_case(z)) {
        return Ok(None);
    }
    Step::parse(text).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: AxisKind, origin: &str, step: &str) -> TimeSpec {
        let cal = Calendar::Standard;
        TimeSpec::new(
            kind,
            cal,
            DateTime::parse(origin, cal).unwrap(),
            Step::parse(step).unwrap(),
            None,
        )
        .unwrap()
    }

    #[test]
    fn ticks_and_instants_agree() {
        let s = spec(AxisKind::Regular, "2024-02-28T00:00:00", "PT5M");
        let a = s.axis().unwrap();
        let at = DateTime::parse("2024-02-29T01:05:00", Calendar::Standard).unwrap();
        let t = a.tick(&at).unwrap();
        assert_eq!(t, (24 * 60 + 65) / 5);
        assert_eq!(a.instant(t).unwrap(), at);
        assert_eq!(s.units, "minutes since 2024-02-28T00:00:00Z");
        assert_eq!(a.value(t).unwrap(), f64::from(t * 5));
    }

    #[test]
    fn off_step_and_before_origin_are_refused_with_reasons() {
        let a = spec(AxisKind::Regular, "2024-01-01T00:00:00", "PT5M")
            .axis()
            .unwrap();
        let cal = Calendar::Standard;
        let off = DateTime::parse("2024-01-01T00:07:00", cal).unwrap();
        assert!(a.tick(&off).unwrap_err().to_string().contains("not a step"));
        let before = DateTime::parse("2023-12-31T23:55:00", cal).unwrap();
        assert!(a.tick(&before).unwrap_err().to_string().contains("outside"));
    }

    #[test]
    fn counts_that_disagree_are_refused() {
        let mut s = spec(AxisKind::Irregular, "1970-01-01T00:00:00", "PT1S");
        s.note_added(10);
        s.note_added(3);
        assert_eq!((s.steps, s.first, s.last), (2, Some(3), Some(10)));
        s.axis().unwrap();
        for (steps, first, last) in [
            (9, Some(3), Some(10)),
            (0, Some(3), Some(10)),
            (1, None, Some(3)),
            (2, Some(4), Some(4)),
            (1, Some(5), Some(4)),
            (1, Some(u32::MAX), Some(u32::MAX)),
        ] {
            let mut bad = s.clone();
            (bad.steps, bad.first, bad.last) = (steps, first, last);
            assert!(bad.axis().is_err(), "{steps} {first:?} {last:?}");
        }
    }

    #[test]
    fn holes_of_a_regular_axis() {
        let mut s = spec(AxisKind::Regular, "2024-01-01T00:00:00", "P1D");
        for t in [0, 1, 5] {
            s.note_added(t);
        }
        assert_eq!(s.holes(), 3);
    }

    #[test]
    fn bounds_give_intervals() {
        let mut s = spec(AxisKind::Regular, "2024-01-01T00:00:00", "PT5M");
        s.bounds = Some(BoundsSpec {
            before: "PT5M".into(),
            after: "PT0S".into(),
        });
        let a = s.axis().unwrap();
        assert_eq!(
            a.label(1).unwrap(),
            "2024-01-01T00:00:00Z/2024-01-01T00:05:00Z"
        );
    }
}
