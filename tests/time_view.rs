//! How GDAL, rasterio, netCDF and rioxarray see a store with a time axis (docs/DRIVER.md,
//! "Time stores"): one dataset per variable whose bands are the time steps, the netCDF
//! driver's time metadata, the open options that choose steps, subdatasets, point reads
//! over many steps, and the refusal of GDAL's update mode.
//!
//! Stores are made by `gridstore append` from slices that tests/python/time_view_checks.py
//! writes; every value read back is compared with the slices themselves.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn gridstore() -> String {
    env!("CARGO_BIN_EXE_gridstore").to_string()
}

/// The instants of the slices s0, s1, s3 (s2 is left out: a hole on an hourly axis).
const TIMES: [&str; 4] = [
    "2024-01-01T00:00:00Z",
    "2024-01-01T01:00:00Z",
    "2024-01-01T02:00:00Z",
    "2024-01-01T03:00:00Z",
];

/// `n` slices in `dir` (see time_view_checks.py `slices`).
fn slices(dir: &Path, n: usize, extra: &[&str]) -> Vec<PathBuf> {
    let mut args = vec!["slices", s(dir)];
    let count = n.to_string();
    args.push(&count);
    args.extend_from_slice(extra);
    python_ok("time_view_checks.py", &args);
    (0..n).map(|i| dir.join(format!("s{i}.tif"))).collect()
}

/// Appends `slice` at `time` (to a new store: hourly steps unless `step` is None, 32-pixel
/// tiles so that the slices span several blocks and levels).
fn append(store: &Path, slice: &Path, time: &str, step: Option<&str>) {
    let mut args = vec![
        "append",
        s(store),
        s(slice),
        "--time",
        time,
        "-q",
        "--insert",
    ];
    args.extend(["--co", "BLOCKSIZE=32"]);
    if let Some(step) = step {
        args.extend(["--time-step", step]);
    }
    ok(&gridstore(), &args);
}

/// A two-variable store on an hourly axis with steps at TIMES 0, 1 and 3 (a hole at 2),
/// and its slices.
fn rain_store(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let src = slices(dir, 4, &[]);
    let store = dir.join("rain.gridstore");
    for i in [0, 1, 3] {
        append(&store, &src[i], TIMES[i], Some("PT1H"));
    }
    (store, src)
}

/// `GRIDSTORE:"<store>":<selection>`.
fn conn(store: &Path, selection: &str) -> String {
    format!("GRIDSTORE:\"{}\":{selection}", s(store))
}

fn info_json(dataset: &str, args: &[&str]) -> Value {
    let mut all = vec!["-json"];
    all.extend_from_slice(args);
    all.push(dataset);
    serde_json::from_str(&ok("gdalinfo", &all)).expect("gdalinfo -json")
}

fn bands(info: &Value) -> &Vec<Value> {
    info["bands"].as_array().expect("bands")
}

fn descriptions(info: &Value) -> Vec<String> {
    bands(info)
        .iter()
        .map(|b| b["description"].as_str().unwrap_or("").to_string())
        .collect()
}

fn item<'a>(md: &'a Value, key: &str) -> &'a str {
    md[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {md}"))
}

/// The slice paths as time_view_checks.py `series` takes them: "hole" for the hole.
fn expected(src: &[PathBuf], steps: &[usize]) -> Vec<String> {
    steps
        .iter()
        .map(|&i| match i {
            2 => "hole".to_string(),
            i => s(&src[i]).to_string(),
        })
        .collect()
}

fn series_ok(dataset: &str, band: usize, src: &[PathBuf], steps: &[usize]) {
    let mut args = vec!["series".to_string(), dataset.to_string(), band.to_string()];
    args.extend(expected(src, steps));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    python_ok("time_view_checks.py", &args);
}

#[test]
fn a_variable_opens_with_its_time_steps_as_bands() {
    let dir = tmp();
    let (store, src) = rain_store(dir.path());
    // Two variables: the plain open lists them, like the netCDF driver, and has no bands.
    let plain = info_json(s(&store), &[]);
    assert!(bands(&plain).is_empty(), "{plain}");
    let subs = &plain["metadata"]["SUBDATASETS"];
    assert_eq!(item(subs, "SUBDATASET_1_NAME"), conn(&store, "BAND=1"));
    assert_eq!(item(subs, "SUBDATASET_2_NAME"), conn(&store, "BAND=2"));
    let desc = item(subs, "SUBDATASET_2_DESC");
    assert!(desc.starts_with("temp: 4 time steps from"), "{desc}");

    for (band, name) in [(1, "rain"), (2, "temp")] {
        let ds = item(subs, &format!("SUBDATASET_{band}_NAME")).to_string();
        let info = info_json(&ds, &[]);
        assert_eq!(descriptions(&info), TIMES);
        let md = &info["metadata"][""];
        assert_eq!(item(md, "NETCDF_DIM_EXTRA"), "{time}");
        assert_eq!(item(md, "NETCDF_DIM_time_DEF"), "{4,6}");
        assert_eq!(item(md, "NETCDF_DIM_time_VALUES"), "{0,1,2,3}");
        assert_eq!(item(md, "time#units"), "hours since 2024-01-01T00:00:00Z");
        assert_eq!(item(md, "time#calendar"), "standard");
        assert_eq!(item(md, "time#standard_name"), "time");
        assert_eq!(item(md, "time#axis"), "T");
        for (i, b) in bands(&info).iter().enumerate() {
            let bmd = &b["metadata"][""];
            assert_eq!(item(bmd, "NETCDF_DIM_time"), i.to_string());
            assert_eq!(item(bmd, "NETCDF_VARNAME"), name);
            assert_eq!(b["overviews"].as_array().map(Vec::len), Some(2), "{b}");
            assert_eq!(b["noDataValue"].as_f64(), Some(-9999.0));
        }
        // Every step's pixels are its slice's; the hole reads as nodata.
        series_ok(&ds, band, &src, &[0, 1, 2, 3]);
    }
    // The variable by name gives the same dataset.
    let by_name = info_json(s(&store), &["-oo", "BAND=temp"]);
    assert_eq!(descriptions(&by_name), TIMES);
    assert_eq!(
        item(&bands(&by_name)[0]["metadata"][""], "NETCDF_VARNAME"),
        "temp"
    );
}

#[test]
fn open_options_and_connection_strings_choose_steps() {
    let dir = tmp();
    let (store, src) = rain_store(dir.path());
    // TIME: one step, every store band, as a store without time.
    let one = info_json(s(&store), &["-oo", "TIME=2024-01-01T01:00:00Z"]);
    assert_eq!(descriptions(&one), ["rain", "temp"]);
    assert_eq!(item(&one["metadata"][""], "TIME"), TIMES[1]);
    let at = conn(&store, "TIME=2024-01-01T03:00:00Z");
    assert_eq!(descriptions(&info_json(&at, &[])), ["rain", "temp"]);
    python_ok(
        "time_view_checks.py",
        &[
            "series",
            &conn(&store, "TIME=2024-01-01T03:00:00Z,BAND=2"),
            "2",
            s(&src[3]),
        ],
    );
    // TIME_RANGE (both ends included, instants between steps allowed) and LAST.
    let range = info_json(
        s(&store),
        &[
            "-oo",
            "BAND=1",
            "-oo",
            "TIME_RANGE=2024-01-01T00:30:00Z/2024-01-01T02:00:00Z",
        ],
    );
    assert_eq!(descriptions(&range), &TIMES[1..3]);
    let last = conn(&store, "BAND=rain,LAST=2");
    assert_eq!(descriptions(&info_json(&last, &[])), &TIMES[2..]);
    series_ok(&last, 1, &src, &[2, 3]);
    let both = conn(
        &store,
        "BAND=1,TIME_RANGE=2024-01-01T00:00:00Z/2024-01-01T02:00:00Z,LAST=1",
    );
    assert_eq!(descriptions(&info_json(&both, &[])), &TIMES[2..3]);
    // The cap: the last steps, with a warning that names the options to use.
    let out = run(
        "gdalinfo",
        &["-json", "-oo", "BAND=1", "-oo", "MAX_BANDS=3", s(&store)],
    );
    assert!(out.status.success());
    let capped: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(descriptions(&capped), &TIMES[1..]);
    let warning = String::from_utf8_lossy(&out.stderr);
    for word in ["Warning", "4 time steps", "TIME_RANGE", "LAST"] {
        assert!(warning.contains(word), "{word}: {warning}");
    }
    // A selection in the plain open carries over into the subdataset names.
    let listed = info_json(s(&store), &["-oo", "LAST=2"]);
    assert_eq!(
        item(&listed["metadata"]["SUBDATASETS"], "SUBDATASET_1_NAME"),
        conn(&store, "BAND=1,LAST=2")
    );
}

#[test]
fn bad_selections_are_refused_naming_the_option_and_the_axis() {
    let dir = tmp();
    let (store, _) = rain_store(dir.path());
    let axis = "the store's regular time axis holds 3 step(s) from 2024-01-01T00:00:00Z to \
                2024-01-01T03:00:00Z (standard calendar)";
    for (option, words) in [
        (
            "TIME=2024-01-01T00:30:00Z",
            vec!["TIME", "not a step", axis],
        ),
        ("TIME=2023-12-31T23:00:00Z", vec!["TIME", axis]),
        ("TIME=yesterday", vec!["TIME", "ISO 8601"]),
        ("TIME_RANGE=2025-01-01/2025-02-01", vec!["TIME_RANGE", axis]),
        ("TIME_RANGE=2024-01-01", vec!["TIME_RANGE", "START/END"]),
        ("TIME_RANGE=2024-01-01/soon", vec!["TIME_RANGE", "ISO 8601"]),
        ("LAST=0", vec!["LAST", "from 1 to 65536"]),
        ("BAND=3", vec!["BAND", "rain, temp"]),
        ("BAND=snow", vec!["BAND", "rain, temp"]),
    ] {
        let out = run("gdalinfo", &["-oo", option, s(&store)]);
        let err = failed_cleanly(&out);
        for w in words {
            assert!(err.contains(w), "{option}: {w:?} not in {err}");
        }
    }
    for bad in [
        format!("GRIDSTORE:\"{}", s(&store)),
        conn(&store, "SNAPSHOT=1"),
    ] {
        let err = failed_cleanly(&run("gdalinfo", &[&bad]));
        assert!(err.contains("KEY=VALUE"), "{bad}: {err}");
    }
    let err = failed_cleanly(&run(
        "gdalinfo",
        &[
            "-oo",
            "TIME=2024-01-01T00:00:00Z",
            "-oo",
            "LAST=1",
            s(&store),
        ],
    ));
    assert!(err.contains("cannot be combined"), "{err}");
}

#[test]
fn an_irregular_axis_shows_only_its_steps_and_last_finds_the_latest() {
    let dir = tmp();
    let src = slices(dir.path(), 4, &[]);
    let store = dir.path().join("irregular.gridstore");
    let times = [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:07:00Z",
        "2024-01-03T12:00:00Z",
        "2024-02-01T00:00:00Z",
    ];
    for (slice, t) in src.iter().zip(times) {
        append(&store, slice, t, None);
    }
    let all = conn(&store, "BAND=1");
    assert_eq!(descriptions(&info_json(&all, &[])), times);
    let mut args = vec!["series", &all, "1"];
    args.extend(src.iter().map(|p| s(p)));
    python_ok("time_view_checks.py", &args);
    let values = info_json(&all, &[]);
    // A new irregular axis counts seconds since 1970.
    let md = &values["metadata"][""];
    assert_eq!(item(md, "time#units"), "seconds since 1970-01-01T00:00:00Z");
    assert_eq!(
        item(md, "NETCDF_DIM_time_VALUES"),
        "{1704067200,1704067620,1704283200,1706745600}"
    );
    // The last steps of an irregular axis are found without listing all of them.
    let last = info_json(&conn(&store, "BAND=1,LAST=2"), &[]);
    assert_eq!(descriptions(&last), &times[2..]);
    let out = run("gdalinfo", &["-json", &conn(&store, "BAND=1,MAX_BANDS=3")]);
    let capped: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(descriptions(&capped), &times[1..]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAX_BANDS"));
    let range = conn(
        &store,
        "BAND=1,TIME_RANGE=2024-01-01T00:01:00Z/2024-01-31T00:00:00Z",
    );
    assert_eq!(descriptions(&info_json(&range, &[])), &times[1..3]);
}

#[test]
fn point_reads_over_all_steps_equal_band_reads() {
    let dir = tmp();
    let (store, _) = rain_store(dir.path());
    let ds = conn(&store, "BAND=2");
    python_ok("time_view_checks.py", &["points", &ds]);
    // gdallocationinfo reads band by band: the same values, the hole as nodata.
    let out = ok("gdallocationinfo", &["-valonly", &ds, "5", "7"]);
    let got: Vec<f64> = out.lines().map(|l| l.trim().parse().unwrap()).collect();
    let v = |step: f64| step * 1000.0 + 200.0 + ((5 * 7 + 7 * 13) % 97) as f64;
    assert_eq!(got, vec![v(0.0), v(1.0), -9999.0, v(3.0)]);
}

#[test]
fn bands_without_nodata_have_a_mask_per_step() {
    let dir = tmp();
    let src = slices(dir.path(), 4, &["--no-nodata"]);
    let store = dir.path().join("bytes.gridstore");
    for i in [0, 1, 3] {
        append(&store, &src[i], TIMES[i], Some("PT1H"));
    }
    // One variable: the plain open is the time view, each band its own mask.
    let info = info_json(s(&store), &[]);
    assert_eq!(descriptions(&info), TIMES);
    for b in bands(&info) {
        assert_eq!(b["mask"]["flags"], serde_json::json!([]), "{b}");
    }
    series_ok(s(&store), 1, &src, &[0, 1, 2, 3]);
    python_ok("time_view_checks.py", &["points", s(&store)]);
    // A step alone: its mask shows every pixel (series_ok checks it).
    let last = conn(&store, "LAST=1");
    assert_eq!(descriptions(&info_json(&last, &[])), &TIMES[3..]);
    series_ok(&last, 1, &src, &[3]);
}

#[test]
fn netcdf_export_keeps_values_and_times() {
    let dir = tmp();
    let (store, src) = rain_store(dir.path());
    let nc = dir.path().join("rain.nc");
    ok(
        "gdal_translate",
        &["-q", "-of", "netCDF", &conn(&store, "BAND=rain"), s(&nc)],
    );
    let mut args = vec!["netcdf", s(&nc), "rain"];
    args.extend(TIMES);
    args.push("--");
    let names = expected(&src, &[0, 1, 2, 3]);
    args.extend(names.iter().map(String::as_str));
    python_ok("time_view_checks.py", &args);
}

#[test]
fn rioxarray_builds_a_time_coordinate() {
    let dir = tmp();
    let (store, _) = rain_store(dir.path());
    let mut args = vec!["rioxarray".to_string(), conn(&store, "BAND=1")];
    args.extend(TIMES.iter().map(|t| t.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    python_ok("time_view_checks.py", &args);
}

#[test]
fn a_real_netcdf_series_shows_its_own_times_and_values() {
    let dir = tmp();
    let nc = sample("test_stageiv_xyt.nc");
    let store = dir.path().join("stageiv.gridstore");
    ok(&gridstore(), &["append", s(&store), s(&nc), "-q"]);
    // The slice's own time items (its 23 values, in its units) give way to the view's.
    let info = info_json(s(&store), &[]);
    let md = &info["metadata"][""];
    assert_eq!(item(md, "NETCDF_DIM_time_DEF"), "{23,6}");
    let var = "Total_precipitation_surface_1_Hour_Accumulation";
    assert_eq!(
        item(&bands(&info)[0]["metadata"][""], "NETCDF_VARNAME"),
        var
    );
    python_ok("time_view_checks.py", &["source", s(&store), s(&nc), var]);
}

#[test]
fn update_mode_is_refused_saying_how_to_write() {
    let dir = tmp();
    let (store, _) = rain_store(dir.path());
    let before = std::fs::read(store.join("gridstore.json")).unwrap();
    let out = run("gdal_edit.py", &["-mo", "A=B", &conn(&store, "BAND=1")]);
    let err = failed_cleanly(&out);
    for w in ["time axis", "gridstore append", "-co TIME="] {
        assert!(err.contains(w), "{w}: {err}");
    }
    assert_eq!(std::fs::read(store.join("gridstore.json")).unwrap(), before);
}

#[test]
fn a_store_without_time_opens_as_before() {
    let dir = tmp();
    let store = small_store(dir.path());
    let info = info_json(s(&store), &[]);
    assert_eq!(bands(&info).len(), 6);
    assert!(info["metadata"].get("SUBDATASETS").is_none(), "{info}");
    let md = &info["metadata"][""];
    assert!(md.get("NETCDF_DIM_EXTRA").is_none(), "{md}");
    assert_eq!(
        band_checksums(s(&store)),
        band_checksums(s(&sample("L7_ETMs.tif")))
    );
    let err = failed_cleanly(&run(
        "gdalinfo",
        &["-oo", "TIME=2024-01-01T00:00:00Z", s(&store)],
    ));
    assert!(err.contains("no time axis"), "{err}");
}
