//! Time stores made through GDAL (`gdal_translate -of GRIDSTORE` of netCDF, `-co TIME=`),
//! packed values, and point series, checked against the sources read independently.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use gridstore::grid::PixelRect;
use gridstore::store::Snapshot;

fn gridstore() -> &'static str {
    env!("CARGO_BIN_EXE_gridstore")
}

fn info(store: &Path) -> String {
    ok(gridstore(), &["info", s(store)])
}

/// The snapshot id and content digest: what must not change when a write is refused.
fn state(store: &Path) -> String {
    let out = ok(gridstore(), &["verify", s(store)]);
    assert!(out.contains("no problems"), "{out}");
    out
}

#[test]
fn a_netcdf_time_series_becomes_a_time_store_through_gdal_translate() {
    let dir = tmp();
    let st = dir.path().join("rain.gridstore");
    let nc = sample("test_stageiv_xyt.nc");
    translate_into_ok(&nc, &st, &[]);
    let text = info(&st);
    assert!(
        text.contains("23 step(s), 2018-09-13T19:00:00Z to 2018-09-14T17:00:00Z"),
        "{text}"
    );
    assert!(text.contains("proleptic_gregorian"), "{text}");
    for (x, y) in [("40", "60"), ("0", "0"), ("86", "117"), ("10", "100")] {
        python_ok(
            "time_checks.py",
            &["series", gridstore(), s(&st), s(&nc), x, y],
        );
    }
    // The same source again is recognised as already in: nothing new is committed.
    let before = state(&st);
    translate_into_ok(&nc, &st, &[]);
    assert_eq!(state(&st), before);
}

/// A one-band GeoTIFF of step `band` of the Stage IV series.
fn one_step(dir: &Path, band: u32, name: &str) -> PathBuf {
    let out = dir.join(name);
    let b = band.to_string();
    ok(
        "gdal_translate",
        &["-q", "-b", &b, s(&sample("test_stageiv_xyt.nc")), s(&out)],
    );
    out
}

#[test]
fn creation_options_write_one_step_at_a_time() {
    let dir = tmp();
    let st = dir.path().join("t.gridstore");
    let (a, b) = (
        one_step(dir.path(), 3, "a.tif"),
        one_step(dir.path(), 9, "b.tif"),
    );
    let regular = [
        "TIME=2024-01-01T00:00:00",
        "TIME_STEP=PT5M",
        "TIME_CALENDAR=noleap",
    ];
    translate_into_ok(&a, &st, &regular);
    translate_into_ok(&b, &st, &["TIME=2024-01-01T00:10:00"]);
    let text = info(&st);
    assert!(text.contains("regular axis, 2 step(s)"), "{text}");
    assert!(text.contains("step PT5M, noleap calendar"), "{text}");
    assert!(text.contains("1 hole(s)"), "{text}");
    let before = state(&st);
    // Off the 5-minute step, a time taken by other content, a store without time: refused,
    // nothing written.
    for (src, opts, says) in [
        (
            &a,
            vec!["TIME=2024-01-01T00:12:00"],
            "not a step of the store's time axis",
        ),
        (&a, vec!["TIME=2024-01-01T00:10:00"], "--replace"),
        (
            &a,
            vec!["TIME=2024-01-01T00:05:00"],
            "not after the store's last step",
        ),
    ] {
        let err = failed_cleanly(&translate_into(src, &st, &opts));
        assert!(err.contains(says), "{opts:?}: {err}");
        assert_eq!(state(&st), before, "{opts:?} changed the store");
    }
    // Replacing makes the step equal to the new slice; filling the hole needs TIME_INSERT.
    translate_into_ok(&a, &st, &["TIME=2024-01-01T00:10:00", "TIME_REPLACE=YES"]);
    translate_into_ok(&b, &st, &["TIME=2024-01-01T00:05:00", "TIME_INSERT=YES"]);
    assert!(info(&st).contains("3 step(s)") && info(&st).contains("0 hole(s)"));
    let series = ok(gridstore(), &["series", s(&st), "40", "60", "--pixel"]);
    let a_value = ok("gdallocationinfo", &["-valonly", s(&a), "40", "60"]);
    let b_value = ok("gdallocationinfo", &["-valonly", s(&b), "40", "60"]);
    let rows: Vec<&str> = series.lines().skip(1).collect();
    let value = |row: &str| row.split(',').nth(1).unwrap().parse::<f32>().ok();
    let want = |v: &str| v.trim().parse::<f32>().ok();
    assert_eq!(value(rows[0]), want(&a_value), "{series}");
    assert_eq!(value(rows[1]), want(&b_value), "{series}");
    assert_eq!(value(rows[2]), want(&a_value), "{series}");

    // A raster without time makes a store without time, which takes no time steps.
    let plain = dir.path().join("plain.gridstore");
    translate_into_ok(&sample("elev.tif"), &plain, &[]);
    assert!(!info(&plain).contains("Time:"));
    let err = failed_cleanly(&translate_into(&a, &plain, &["TIME=2024-01-01T00:00:00"]));
    assert!(err.contains("has no time axis"), "{err}");
}

#[test]
fn packed_values_round_trip_within_half_a_step() {
    let dir = tmp();
    let src = dir.path().join("holes.tif");
    // A step with NaN holes, as radar data has outside its range.
    let step = one_step(dir.path(), 5, "s.tif");
    python_ok("time_checks.py", &["holes", s(&step), s(&src)]);
    let st = dir.path().join("packed.gridstore");
    let out = cmd(gridstore())
        .args(["append", s(&st), s(&src), "--time", "2024-01-01T00:00:00"])
        .args([
            "--type", "UInt16", "--scale", "0.01", "--offset", "-1", "-q",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap = Snapshot::open(&st, None).unwrap();
    let m = snap.manifest();
    assert_eq!(
        (m.bands[0].scale, m.bands[0].offset),
        (Some(0.01), Some(-1.0))
    );
    let e = m.extent.unwrap();
    let mut raw = vec![0u8; (e.width() * e.height()) as usize * 2];
    let tick = m.time.as_ref().unwrap().first.unwrap();
    let rect = PixelRect::new(0, 0, e.width(), e.height());
    snap.read_region(tick, 0, 0, rect, &mut raw, None).unwrap();
    let raw_path = dir.path().join("packed.raw");
    std::fs::write(&raw_path, &raw).unwrap();
    let nodata = m.bands[0].nodata.unwrap().to_string();
    python_ok(
        "time_checks.py",
        &["packed", s(&raw_path), s(&src), "0.01", "-1", &nodata],
    );
}

#[test]
fn a_netcdf_of_several_variables_on_one_grid_becomes_their_bands() {
    let dir = tmp();
    let st = dir.path().join("bcsd.gridstore");
    let nc = sample("bcsd_obs_1999.nc");
    ok(
        gridstore(),
        &["append", s(&st), s(&nc), "--time-step", "P1M", "-q"],
    );
    let text = info(&st);
    assert!(
        text.contains("12 step(s), 1999-01-31T00:00:00Z to 1999-12-31T00:00:00Z"),
        "{text}"
    );
    assert!(
        text.contains("\"pr\"") && text.contains("\"tas\""),
        "{text}"
    );
    let series = ok(gridstore(), &["series", s(&st), "40", "20", "--pixel"]);
    let rows: Vec<Vec<&str>> = series.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0], ["time", "pr", "tas"]);
    for (column, var) in [(1, "pr"), (2, "tas")] {
        let source = format!("NETCDF:{}:{var}", s(&nc));
        let want = ok("gdallocationinfo", &["-valonly", &source, "40", "20"]);
        let want: Vec<f32> = want.lines().map(|v| v.trim().parse().unwrap()).collect();
        let got: Vec<f32> = rows[1..]
            .iter()
            .map(|r| r[column].parse().unwrap())
            .collect();
        assert_eq!(got, want, "{var}");
    }
}

#[test]
fn verify_finds_a_step_record_that_names_another_time() {
    use gridstore::store::lock::LockWait;
    use gridstore::store::{StepRecord, Transaction};
    let dir = tmp();
    let st = dir.path().join("t.gridstore");
    ok(
        gridstore(),
        &[
            "append",
            s(&st),
            s(&one_step(dir.path(), 2, "a.tif")),
            "--time",
            "2024-01-01T00:00:00",
            "-q",
        ],
    );
    assert!(state(&st).contains("no problems"));
    // A record written through the store's own API, so its checksum and index entry are
    // right, naming an instant its tick does not have.
    let txn = Transaction::begin(&st, "crafted", LockWait::Fail).unwrap();
    let tick = txn.manifest.time.as_ref().unwrap().first.unwrap();
    let lie = StepRecord {
        time: "1999-01-01T00:00:00Z".into(),
        source: "crafted".into(),
        digest: String::new(),
    };
    txn.put_step(tick, &lie).unwrap();
    txn.commit().unwrap();
    let out = run(gridstore(), &["verify", s(&st)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("it says 1999-01-01T00:00:00Z but its tick"),
        "{text}"
    );
}
