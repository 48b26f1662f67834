//! `gridstore series`: the values of one point over the time steps of a store.

use std::ffi::CString;
use std::fmt::Write;

use anyhow::{bail, Context, Result};

use gridstore::gdal::crs::{register_drivers, wkt_from_user_input};
use gridstore::manifest::Manifest;
use gridstore::store::{point_series, PointSample, Snapshot};
use gridstore::time::{DateTime, TimeAxis, MAX_TICK};

/// The arguments of `gridstore series`.
#[derive(clap::Args)]
pub struct SeriesCmd {
    pub store: String,
    /// X of the point (in the store's CRS unless --crs, or a pixel column with --pixel)
    #[arg(allow_negative_numbers = true)]
    pub x: f64,
    /// Y of the point
    #[arg(allow_negative_numbers = true)]
    pub y: f64,
    /// The CRS of X and Y (EPSG code, PROJ string or WKT)
    #[arg(long, conflicts_with = "pixel")]
    pub crs: Option<String>,
    /// X and Y are the column and row of a pixel of the store's grid
    #[arg(long)]
    pub pixel: bool,
    /// First time (ISO 8601, inclusive)
    #[arg(long)]
    pub from: Option<String>,
    /// Last time (ISO 8601, inclusive)
    #[arg(long)]
    pub to: Option<String>,
    /// csv or json
    #[arg(long, default_value = "csv")]
    pub format: String,
}

pub fn run(store: &std::path::Path, cmd: &SeriesCmd) -> Result<()> {
    let snap = Snapshot::open(store, None)?;
    let m = snap.manifest();
    let Some(spec) = &m.time else {
        bail!("{}: this store has no time axis", store.display());
    };
    let axis = spec.axis()?;
    let (x, y) = grid_pixel(m, cmd)?;
    let from = tick_bound(&axis, cmd.from.as_deref(), 0)?;
    let to = tick_bound(&axis, cmd.to.as_deref(), MAX_TICK)?;
    let ticks = snap.steps(from, to, usize::MAX)?;
    let mut samples = point_series(&snap, &ticks, x, y)?;
    unpack(m, &mut samples);
    let text = match cmd.format.as_str() {
        "csv" => csv(m, &axis, &samples)?,
        "json" => json(&axis, &samples)?,
        other => bail!("--format {other}: use csv or json"),
    };
    print!("{text}");
    Ok(())
}

/// The tick of a time bound: the first tick at or after it for `--from`, at or before it
/// for `--to` (`none` when absent).
fn tick_bound(axis: &TimeAxis, text: Option<&str>, none: u32) -> Result<u32> {
    let Some(text) = text else {
        return Ok(none);
    };
    let at = DateTime::parse(text, axis.calendar())?;
    let origin = axis.instant(0)?;
    if at <= origin {
        return Ok(0);
    }
    // Bisection over ticks: instants grow with ticks on every calendar and step.
    let (mut lo, mut hi) = (0u32, MAX_TICK);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match axis.instant(mid) {
            Ok(t) if t < at => lo = mid + 1,
            _ => hi = mid,
        }
    }
    let exact = axis.instant(lo).map(|t| t == at).unwrap_or(false);
    Ok(if none == 0 || exact {
        lo
    } else {
        lo.saturating_sub(1)
    })
}

/// The level-0 grid pixel holding the point.
fn grid_pixel(m: &Manifest, cmd: &SeriesCmd) -> Result<(i64, i64)> {
    if cmd.pixel {
        return Ok((cmd.x.floor() as i64, cmd.y.floor() as i64));
    }
    let (mut x, mut y) = (cmd.x, cmd.y);
    if let Some(crs) = &cmd.crs {
        register_drivers();
        (x, y) = transform(&wkt_from_user_input(crs)?, &m.grid.crs_wkt, x, y)?;
    }
    let g = &m.grid;
    let px = ((x - g.origin[0]) / g.cell_size[0]).floor();
    let py = ((y - g.origin[1]) / g.cell_size[1]).floor();
    if !(px.is_finite() && py.is_finite()) || px.abs() > 1e15 || py.abs() > 1e15 {
        bail!("the point ({x}, {y}) is not on the store's grid");
    }
    Ok((px as i64, py as i64))
}

/// (x, y) from CRS `from` to CRS `to` (both WKT), in GIS axis order.
fn transform(from: &str, to: &str, x: f64, y: f64) -> Result<(f64, f64)> {
    if to.is_empty() {
        bail!("the store has no CRS: give the point in its grid coordinates, or --pixel");
    }
    let (cf, ct) = (CString::new(from)?, CString::new(to)?);
    // SAFETY: handles created and destroyed here; the WKT strings outlive the calls.
    unsafe {
        let a = gdal_sys::OSRNewSpatialReference(cf.as_ptr());
        let b = gdal_sys::OSRNewSpatialReference(ct.as_ptr());
        for s in [a, b] {
            gdal_sys::OSRSetAxisMappingStrategy(
                s,
                gdal_sys::OSRAxisMappingStrategy::OAMS_TRADITIONAL_GIS_ORDER,
            );
        }
        let t = gdal_sys::OCTNewCoordinateTransformation(a, b);
        let (mut xs, mut ys, mut zs) = ([x], [y], [0.0]);
        let ok = !t.is_null()
            && gdal_sys::OCTTransform(t, 1, xs.as_mut_ptr(), ys.as_mut_ptr(), zs.as_mut_ptr()) != 0;
        if !t.is_null() {
            gdal_sys::OCTDestroyCoordinateTransformation(t);
        }
        gdal_sys::OSRDestroySpatialReference(a);
        gdal_sys::OSRDestroySpatialReference(b);
        if !ok {
            bail!("cannot transform ({x}, {y}) into the store's CRS");
        }
        Ok((xs[0], ys[0]))
    }
}

/// Packed values (bands with a scale or offset) as the numbers they stand for.
fn unpack(m: &Manifest, samples: &mut [PointSample]) {
    for s in samples {
        for (v, b) in s.values.iter_mut().zip(&m.bands) {
            if let Some(x) = v {
                *x = *x * b.scale.unwrap_or(1.0) + b.offset.unwrap_or(0.0);
            }
        }
    }
}

fn show(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| x.to_string())
}

fn csv(m: &Manifest, axis: &TimeAxis, samples: &[PointSample]) -> Result<String> {
    let mut out = String::from("time");
    for (i, b) in m.bands.iter().enumerate() {
        let name = if b.description.is_empty() {
            format!("band{}", i + 1)
        } else {
            b.description.replace([',', '"', '\n'], " ")
        };
        let _ = write!(out, ",{name}");
    }
    out.push('\n');
    for s in samples {
        out.push_str(&axis.label(s.tick).context("a step's time")?);
        for v in &s.values {
            let _ = write!(out, ",{}", show(*v));
        }
        out.push('\n');
    }
    Ok(out)
}

fn json(axis: &TimeAxis, samples: &[PointSample]) -> Result<String> {
    let rows: Vec<serde_json::Value> = samples
        .iter()
        .map(|s| {
            Ok(serde_json::json!({
                "time": axis.label(s.tick)?,
                "values": s.values,
            }))
        })
        .collect::<gridstore::error::Result<_>>()?;
    Ok(serde_json::to_string_pretty(&rows)? + "\n")
}
