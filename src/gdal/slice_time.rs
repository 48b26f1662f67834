//! The time steps a slice holds: which of its bands belong to which instant.
//!
//! A slice names its time in its own metadata (netCDF's `NETCDF_DIM_time` per band with
//! `time#units` and `time#calendar`; GRIB's `GRIB_VALID_TIME` per band; `TIFFTAG_DATETIME`
//! or any named item of the dataset), in its file name (`RAD_%Y%m%d%H%M.tif`), or is told
//! it (`--time`). Bands sharing an instant form one step, in band order.

use std::ffi::{CStr, CString};

use gdal_sys::GDALDatasetH;

use crate::error::{Error, Result};
use crate::time::{Calendar, CfUnits, DateTime};

/// Where a slice's time comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeSource {
    /// The slice's own metadata: netCDF or GRIB band times, else `TIFFTAG_DATETIME`.
    Metadata,
    /// A named item of the dataset's metadata (ISO 8601, or TIFF's `YYYY:MM:DD HH:MM:SS`).
    Item(String),
    /// A pattern over the file name: `%Y %m %d %H %M %S %j` and literal text.
    Pattern(String),
    /// One instant for the whole slice.
    Fixed(String),
    /// One instant per slice, by the slice's path (each slice whole at its instant): the
    /// times a catalog recorded.
    PerSlice(std::collections::HashMap<String, String>),
}

/// One step of a slice: its instant and its bands (1-based), in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceStep {
    pub at: DateTime,
    pub bands: Vec<usize>,
}

/// What a slice says about its own time axis (netCDF): calendar and units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SliceAxis {
    pub calendar: Option<Calendar>,
    pub units: Option<String>,
}

/// The steps of the slice `path`, open as `ds`, its times read in `calendar` (the store's,
/// or for a new store the slice's own or the standard one).
///
/// # Safety
/// `ds` must be a valid dataset handle.
pub unsafe fn slice_steps(
    ds: GDALDatasetH,
    path: &str,
    source: &TimeSource,
    calendar: Calendar,
) -> Result<Vec<SliceStep>> {
    // SAFETY: forwarded contract.
    let bands = unsafe { gdal_sys::GDALGetRasterCount(ds) }.max(0) as usize;
    let all: Vec<usize> = (1..=bands).collect();
    let whole = |at: DateTime| {
        Ok(vec![SliceStep {
            at,
            bands: all.clone(),
        }])
    };
    match source {
        TimeSource::Fixed(text) => whole(parse_instant(text, calendar, "--time")?),
        TimeSource::Pattern(p) => whole(time_from_name(path, p, calendar)?),
        TimeSource::PerSlice(times) => {
            let text = times.get(path).ok_or_else(|| {
                Error::InvalidInput(format!("{path}: no time was given for this slice"))
            })?;
            whole(parse_instant(text, calendar, "the catalog's time")?)
        }
        TimeSource::Item(key) => {
            // SAFETY: forwarded contract.
            let value = unsafe { dataset_item(ds, key) }.ok_or_else(|| {
                Error::InvalidInput(format!("{path}: has no metadata item {key:?}"))
            })?;
            whole(parse_instant(&value, calendar, key)?)
        }
        // SAFETY: forwarded contract.
        TimeSource::Metadata => unsafe { steps_from_metadata(ds, path, bands, calendar) },
    }
}

/// The calendar and units a slice's netCDF time axis declares.
///
/// # Safety
/// `ds` must be a valid dataset handle.
pub unsafe fn slice_axis(ds: GDALDatasetH) -> Result<SliceAxis> {
    // SAFETY: forwarded contract.
    let (cal, units) = unsafe {
        (
            dataset_item(ds, "time#calendar"),
            dataset_item(ds, "time#units"),
        )
    };
    Ok(SliceAxis {
        calendar: cal.map(|c| Calendar::parse(&c)).transpose()?,
        units,
    })
}

/// Band times from netCDF or GRIB metadata, else one step at `TIFFTAG_DATETIME`.
unsafe fn steps_from_metadata(
    ds: GDALDatasetH,
    path: &str,
    bands: usize,
    calendar: Calendar,
) -> Result<Vec<SliceStep>> {
    // SAFETY (block): forwarded contract; bands are within the count.
    unsafe {
        if let Some(units) = dataset_item(ds, "time#units") {
            let cf = CfUnits::parse(&units, calendar)?;
            return group_bands(path, bands, |b| {
                let v = band_item(ds, b, "NETCDF_DIM_time")?;
                let value: f64 = v.trim().parse().ok()?;
                Some(cf.to_datetime(value))
            });
        }
        if band_item(ds, 1, "GRIB_VALID_TIME").is_some() {
            let epoch = CfUnits::parse("seconds since 1970-01-01", calendar)?;
            return group_bands(path, bands, |b| {
                let v = band_item(ds, b, "GRIB_VALID_TIME")?;
                let secs: f64 = v.split_whitespace().next()?.parse().ok()?;
                Some(epoch.to_datetime(secs))
            });
        }
        if let Some(v) = dataset_item(ds, "TIFFTAG_DATETIME") {
            let at = parse_instant(&v, calendar, "TIFFTAG_DATETIME")?;
            return Ok(vec![SliceStep {
                at,
                bands: (1..=bands).collect(),
            }]);
        }
    }
    Err(Error::InvalidInput(format!(
        "{path}: says nothing about its time (no netCDF time axis, GRIB valid time or \
         TIFFTAG_DATETIME): give --time, --time-pattern or --time-item"
    )))
}

/// Groups bands 1..=`bands` by the instant `time_of` gives each (consecutive bands with
/// equal instants are one step). A band without a time is an error naming it.
fn group_bands(
    path: &str,
    bands: usize,
    time_of: impl Fn(usize) -> Option<Result<DateTime>>,
) -> Result<Vec<SliceStep>> {
    let mut steps: Vec<SliceStep> = Vec::new();
    for b in 1..=bands {
        let at = time_of(b).ok_or_else(|| {
            Error::InvalidInput(format!("{path}: band {b} has no time in its metadata"))
        })??;
        match steps.last_mut() {
            Some(s) if s.at == at => s.bands.push(b),
            _ => steps.push(SliceStep { at, bands: vec![b] }),
        }
    }
    Ok(steps)
}

/// An instant as ISO 8601, or as TIFF writes it (`2024:03:31 12:00:00`).
fn parse_instant(text: &str, calendar: Calendar, what: &str) -> Result<DateTime> {
    let t = text.trim();
    let tiff = t.len() == 19 && t.as_bytes()[4] == b':' && t.as_bytes()[7] == b':';
    let iso = if tiff {
        format!("{}-{}-{}T{}", &t[0..4], &t[5..7], &t[8..10], &t[11..])
    } else {
        t.to_string()
    };
    DateTime::parse(&iso, calendar)
        .or_else(|_| DateTime::parse_lenient(&iso, calendar))
        .map_err(|e| Error::InvalidInput(format!("{what}: {text:?} is not an instant: {e}")))
}

/// The instant a file name gives through `pattern` (matched against the name without its
/// directory): `%Y` four digits, `%m %d %H %M %S` two, `%j` three (day of the year); any
/// other character must be there as it is.
pub fn time_from_name(path: &str, pattern: &str, calendar: Calendar) -> Result<DateTime> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let fail = |why: String| {
        Error::InvalidInput(format!(
            "{path}: the name does not match --time-pattern {pattern:?} ({why})"
        ))
    };
    let mut f = [0i64, 1, 1, 0, 0, 0, 0]; // year month day hour minute second yday
    let (mut p, mut n) = (pattern.chars().peekable(), name);
    while let Some(c) = p.next() {
        if c != '%' {
            n = n
                .strip_prefix(c)
                .ok_or_else(|| fail(format!("expected {c:?} at {n:?}")))?;
            continue;
        }
        let spec = p.next().ok_or_else(|| fail("a lone % at the end".into()))?;
        let (slot, width) = match spec {
            'Y' => (0, 4),
            'm' => (1, 2),
            'd' => (2, 2),
            'H' => (3, 2),
            'M' => (4, 2),
            'S' => (5, 2),
            'j' => (6, 3),
            '%' => {
                n = n
                    .strip_prefix('%')
                    .ok_or_else(|| fail("expected %".into()))?;
                continue;
            }
            other => return Err(fail(format!("%{other} is not one of %Y %m %d %H %M %S %j"))),
        };
        let digits = n
            .get(..width)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
        let digits =
            digits.ok_or_else(|| fail(format!("expected {width} digits for %{spec} at {n:?}")))?;
        f[slot] = digits.parse().map_err(|_| fail("bad number".into()))?;
        n = &n[width..];
    }
    let year = i32::try_from(f[0]).map_err(|_| fail("bad year".into()))?;
    let (month, day) = if f[6] > 0 {
        day_of_year(calendar, year, f[6]).ok_or_else(|| fail(format!("day {} of {year}", f[6])))?
    } else {
        (f[1] as u8, f[2] as u8)
    };
    let clock = (f[3] as u8, f[4] as u8, f[5] as u8);
    DateTime::new(calendar, (year, month, day), clock).map_err(|e| fail(e.to_string()))
}

/// Month and day of day `yday` (1-based) of `year`.
fn day_of_year(calendar: Calendar, year: i32, yday: i64) -> Option<(u8, u8)> {
    let first = calendar.day_number(year, 1, 1).ok()?;
    let (y, m, d) = calendar.date(first + yday - 1).ok()?;
    (y == year && yday >= 1).then_some((m, d))
}

/// A dataset metadata item (default domain).
unsafe fn dataset_item(ds: GDALDatasetH, key: &str) -> Option<String> {
    let k = CString::new(key).ok()?;
    // SAFETY: valid handle (contract), NUL-terminated key; GDAL owns the returned string.
    let v = unsafe { gdal_sys::GDALGetMetadataItem(ds, k.as_ptr(), std::ptr::null()) };
    // SAFETY: non-null results are NUL-terminated strings that live while `ds` does.
    (!v.is_null()).then(|| unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
}

/// A band metadata item (default domain) of band `b` (1-based).
unsafe fn band_item(ds: GDALDatasetH, b: usize, key: &str) -> Option<String> {
    let k = CString::new(key).ok()?;
    // SAFETY: valid handle, band within the count (callers), NUL-terminated key.
    unsafe {
        let band = gdal_sys::GDALGetRasterBand(ds, b as i32);
        if band.is_null() {
            return None;
        }
        let v = gdal_sys::GDALGetMetadataItem(band, k.as_ptr(), std::ptr::null());
        (!v.is_null()).then(|| CStr::from_ptr(v).to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime {
        DateTime::parse(text, Calendar::Standard).unwrap()
    }

    #[test]
    fn names_give_times() {
        let cal = Calendar::Standard;
        let t = time_from_name("/d/RAD_202403311205.tif", "RAD_%Y%m%d%H%M.tif", cal).unwrap();
        assert_eq!(t, at("2024-03-31T12:05:00"));
        let t = time_from_name("x_2024_061.nc", "x_%Y_%j.nc", cal).unwrap();
        assert_eq!(t, at("2024-03-01T00:00:00"));
        for (name, why) in [
            ("RAD_2024033112.tif", "digits"),
            ("RUN_202403311205.tif", "expected"),
            ("RAD_202413311205.tif", "RAD_"),
        ] {
            let e = time_from_name(name, "RAD_%Y%m%d%H%M.tif", cal).unwrap_err();
            assert!(e.to_string().contains(why), "{name}: {e}");
        }
    }

    #[test]
    fn tiff_and_iso_instants() {
        let cal = Calendar::Standard;
        assert_eq!(
            parse_instant("2024:03:31 12:00:00", cal, "x").unwrap(),
            at("2024-03-31T12:00:00")
        );
        assert_eq!(
            parse_instant("2024-03-31T12:00:00Z", cal, "x").unwrap(),
            at("2024-03-31T12:00:00")
        );
        assert!(parse_instant("yesterday", cal, "x").is_err());
    }
}
