//! `gridstore append` and `gridstore delete-time` through the real CLI, on real netCDF
//! data and on slices made with GDAL: each step lands at the instant its source gives
//! (decoded apart from gridstore, by cftime or Python's own clock), holds the source's
//! pixels (read back through the library), and every refusal writes nothing.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gridstore::grid::PixelRect;
use gridstore::index::{TileKey, Tree};
use gridstore::store::Snapshot;
use gridstore::time::MAX_TICK;

fn gridstore() -> &'static str {
    env!("CARGO_BIN_EXE_gridstore")
}

fn append_ok(store: &Path, args: &[&str]) -> String {
    let mut all = vec!["append", "-q", s(store)];
    all.extend_from_slice(args);
    ok(gridstore(), &all)
}

fn info(store: &Path) -> String {
    ok(gridstore(), &["info", s(store)])
}

/// The `Time:` line of `gridstore info`.
fn time_line(store: &Path) -> String {
    info(store)
        .lines()
        .find(|l| l.starts_with("Time:"))
        .unwrap_or_else(|| panic!("no Time line in the info of {}", store.display()))
        .to_string()
}

/// The content digest `gridstore verify` prints; verify must pass.
fn digest(store: &Path) -> String {
    let out = ok(gridstore(), &["verify", s(store)]);
    out.lines()
        .find_map(|l| l.strip_prefix("content digest: "))
        .unwrap_or_else(|| panic!("verify printed no digest:\n{out}"))
        .to_string()
}

/// Runs `time_slices.py` and returns its output lines.
fn slices(args: &[&str]) -> Vec<String> {
    python_ok("time_slices.py", args)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A GeoTIFF slice of `w` x `h` random pixels (seeded) on the helper's fixed grid.
fn tiff(path: &Path, w: usize, h: usize, seed: u64, extra: &[&str]) -> PathBuf {
    let (w, h, seed) = (w.to_string(), h.to_string(), seed.to_string());
    let mut args = vec!["tiff", s(path), &w, &h, &seed];
    args.extend_from_slice(extra);
    python_ok("time_slices.py", &args);
    path.to_path_buf()
}

/// The instants of the steps a store holds, in order, as the axis gives them (ISO 8601 to
/// the second, without the zone); each step record must say the same.
fn instants(store: &Path) -> Vec<String> {
    let snap = Snapshot::open(store, None).unwrap();
    let axis = snap.manifest().time.as_ref().unwrap().axis().unwrap();
    snap.steps(0, MAX_TICK, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|t| {
            let at = axis.instant(t).unwrap().to_string();
            let record = snap
                .step_record(t)
                .unwrap()
                .expect("a held step has a record");
            assert_eq!(record.time, at, "the record of tick {t}");
            at.trim_end_matches('Z').to_string()
        })
        .collect()
}

/// The pixels of step `tick` over the store pixels `0..w`, `0..h`, band by band, NaN where
/// the store holds no data (its nodata value, or its mask).
fn step_pixels(snap: &Snapshot, tick: u32, w: i64, h: i64) -> Vec<f32> {
    let m = snap.manifest();
    let n = (w * h) as usize;
    let mut data = vec![0u8; n * m.bands.len() * 4];
    let mut mask = vec![0u8; n];
    snap.read_region(
        tick,
        0,
        0,
        PixelRect::new(0, 0, w, h),
        &mut data,
        Some(&mut mask),
    )
    .unwrap();
    let values: &[f32] = bytemuck_f32(&data);
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let nodata = m.bands[i / n].nodata;
            let missing = mask[i % n] == 0 || nodata.is_some_and(|d| d as f32 == v);
            if missing {
                f32::NAN
            } else {
                v
            }
        })
        .collect()
}

fn bytemuck_f32(bytes: &[u8]) -> &[f32] {
    assert_eq!(bytes.len() % 4, 0);
    // SAFETY: a Vec<u8> buffer of a multiple of 4 bytes; f32 has no invalid bit patterns;
    // the alignment is checked below.
    let (head, body, tail) = unsafe { bytes.align_to::<f32>() };
    assert!(head.is_empty() && tail.is_empty(), "aligned buffer");
    body
}

/// Band `b` (1-based) of a dataset as `time_slices.py planes` wrote it, with its size.
fn plane(dir: &Path, b: usize) -> Vec<f32> {
    let bytes = std::fs::read(dir.join(format!("band{b}.f32"))).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Writes every band of `dataset` to `dir` and returns (width, height, bands).
fn planes(dataset: &str, dir: &Path) -> (i64, i64, usize) {
    let out = slices(&["planes", dataset, s(dir)]);
    let v: Vec<i64> = out[0]
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1], v[2] as usize)
}

/// Asserts two planes are equal, NaN matching NaN; returns how many pixels hold data.
fn assert_same(got: &[f32], want: &[f32], what: &str) -> usize {
    assert_eq!(got.len(), want.len(), "{what}: sizes");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = (g.is_nan() && w.is_nan()) || g == w;
        assert!(same, "{what}: pixel {i} is {g}, the source has {w}");
    }
    want.iter().filter(|v| !v.is_nan()).count()
}

/// Asserts that every step of a store made from the single-variable `dataset` (one step per
/// band, store pixel (0, 0) at the dataset's) holds that band's pixels.
fn assert_steps_hold_bands(store: &Path, dataset: &str, work: &Path) {
    let dir = work.join("planes");
    let (w, h, bands) = planes(dataset, &dir);
    let snap = Snapshot::open(store, None).unwrap();
    let ticks = snap.steps(0, MAX_TICK, usize::MAX).unwrap();
    assert_eq!(ticks.len(), bands, "one step per band");
    let mut with_data = 0;
    for (b, &t) in ticks.iter().enumerate() {
        let what = format!("{dataset} band {}, step tick {t}", b + 1);
        with_data += assert_same(&step_pixels(&snap, t, w, h), &plane(&dir, b + 1), &what);
    }
    assert!(with_data > 0, "{dataset}: the comparison saw data");
}

#[test]
fn stageiv_hourly_steps_land_at_the_netcdf_times_with_its_pixels() {
    let dir = tmp();
    let nc = s(&sample("test_stageiv_xyt.nc")).to_string();
    let store = dir.path().join("stageiv.gridstore");
    let out = append_ok(&store, &[&nc]);
    assert!(out.contains("23 step(s) added"), "{out}");
    let want = slices(&["times", &nc]);
    assert_eq!(want.len(), 23);
    assert_eq!(instants(&store), want);
    assert!(time_line(&store).contains("23 step(s)"), "{}", info(&store));
    assert_steps_hold_bands(&store, &nc, dir.path());
    digest(&store);
}

#[test]
fn bcsd_variables_each_make_a_monthly_store() {
    let dir = tmp();
    let nc = s(&sample("bcsd_obs_1999.nc")).to_string();
    let want = slices(&["times", &nc]);
    assert_eq!(want.len(), 12);
    for var in ["pr", "tas"] {
        let sub = format!("NETCDF:\"{nc}\":{var}");
        let store = dir.path().join(format!("{var}.gridstore"));
        append_ok(&store, &[&sub, "--time-step", "P1M"]);
        let line = time_line(&store);
        for part in ["regular axis", "12 step(s)", "step P1M", "0 hole(s)"] {
            assert!(line.contains(part), "{var}: {part} in {line}");
        }
        assert_eq!(instants(&store), want, "{var}");
        assert_steps_hold_bands(&store, &sub, dir.path());
    }
}

#[test]
fn every_calendar_counts_its_own_days() {
    let dir = tmp();
    for cal in [
        "standard",
        "proleptic_gregorian",
        "noleap",
        "all_leap",
        "360_day",
    ] {
        let nc = dir.path().join(format!("{cal}.nc"));
        let want = slices(&["calendar", cal, s(&nc)]);
        let store = dir.path().join(format!("{cal}.gridstore"));
        append_ok(&store, &[s(&nc)]);
        assert_eq!(instants(&store), want, "{cal}");
        let line = time_line(&store);
        assert!(line.contains(&format!("{cal} calendar")), "{line}");
    }
}

/// `RAD_<yyyymmddHHMM>.tif` slices of the same 300 x 200 grid, one per minute given.
fn radar_slices(dir: &Path, minutes: &[u32], hole: bool) -> Vec<PathBuf> {
    minutes
        .iter()
        .map(|m| {
            let name = format!("RAD_2024033112{m:02}.tif");
            let extra: &[&str] = if hole { &["--hole"] } else { &[] };
            tiff(&dir.join(name), 300, 200, *m as u64, extra)
        })
        .collect()
}

const RADAR: &str = "RAD_%Y%m%d%H%M.tif";

#[test]
fn a_regular_axis_with_a_hole_filled_later() {
    let dir = tmp();
    let store = dir.path().join("radar.gridstore");
    let s0 = radar_slices(dir.path(), &[0, 5, 15], false);
    let mut args = vec!["--time-pattern", RADAR, "--time-step", "PT5M"];
    args.extend(s0.iter().map(|p| s(p)));
    append_ok(&store, &args);
    let line = time_line(&store);
    assert!(
        line.contains("3 step(s)") && line.contains("1 hole(s)"),
        "{line}"
    );
    // The hole is before the last step: only an insert may fill it.
    let late = radar_slices(dir.path(), &[10], false);
    let err = refused(
        &store,
        &["--time-pattern", RADAR, s(&late[0])],
        &["2024-03-31T12:10:00Z", "--insert"],
    );
    assert!(err.contains("not after"), "{err}");
    append_ok(&store, &["--time-pattern", RADAR, "--insert", s(&late[0])]);
    let line = time_line(&store);
    assert!(
        line.contains("4 step(s)") && line.contains("0 hole(s)"),
        "{line}"
    );
    assert_eq!(
        instants(&store),
        ["12:00", "12:05", "12:10", "12:15"].map(|t| format!("2024-03-31T{t}:00"))
    );
    // A time between two steps of the axis is refused, naming the step.
    let off = radar_slices(dir.path(), &[17], false);
    let err = refused(&store, &["--time-pattern", RADAR, s(&off[0])], &["PT5M"]);
    assert!(err.contains("12:17"), "{err}");
}

/// What a refusal must leave as it was: the snapshot, the content, and the files.
#[derive(Debug, PartialEq)]
struct State {
    snapshot: Option<u64>,
    digest: Option<String>,
    files: BTreeSet<(PathBuf, u64)>,
}

fn state(store: &Path) -> State {
    let exists = store.join("gridstore.json").exists();
    let mut files = BTreeSet::new();
    let mut dirs = vec![store.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let len = p.metadata().unwrap().len();
                files.insert((p, len));
            }
        }
    }
    State {
        snapshot: exists.then(|| Snapshot::open(store, None).unwrap().manifest().snapshot.id),
        digest: exists.then(|| digest(store)),
        files,
    }
}

/// Runs an append that must be refused: a clean failure whose message holds every one of
/// `words`, and the store (or its absence) exactly as before. Returns the message.
fn refused(store: &Path, args: &[&str], words: &[&str]) -> String {
    let mut all = vec!["append", "-q", s(store)];
    all.extend_from_slice(args);
    refused_command(store, &all, words)
}

/// `refused` for any `gridstore` command line.
fn refused_command(store: &Path, args: &[&str], words: &[&str]) -> String {
    let before = state(store);
    let err = failed_cleanly(&run(gridstore(), args));
    for w in words {
        assert!(
            err.contains(w),
            "{w:?} not in the refusal of {args:?}: {err}"
        );
    }
    assert_eq!(state(store), before, "{args:?} changed the store");
    err
}

#[test]
fn refusals_name_the_problem_and_write_nothing() {
    let dir = tmp();
    let d = dir.path();
    let store = d.join("s.gridstore");
    let a = tiff(&d.join("a.tif"), 120, 90, 1, &[]);
    // Refused before the store exists: no store appears.
    let bare = tiff(&d.join("bare.tif"), 120, 90, 2, &[]);
    refused(
        &store,
        &[s(&bare)],
        &["bare.tif", "says nothing about its time", "--time"],
    );
    assert!(!store.exists());
    let dry = ok(
        gridstore(),
        &[
            "append",
            "--dry-run",
            s(&store),
            "--time",
            "2024-01-01",
            s(&a),
        ],
    );
    assert!(
        dry.contains("nothing written") && dry.contains("add"),
        "{dry}"
    );
    assert!(!store.exists(), "a dry run created the store");

    append_ok(&store, &["--time", "2024-01-02T00:00:00Z", s(&a)]);
    let two = tiff(&d.join("two.tif"), 120, 90, 3, &["--bands", "2"]);
    refused(
        &store,
        &["--time", "2024-01-03", s(&two)],
        &["two.tif", "2 band(s)", "the store 1"],
    );
    let int = tiff(&d.join("int.tif"), 120, 90, 4, &["--type", "Int16"]);
    refused(
        &store,
        &["--time", "2024-01-03", s(&int)],
        &["int.tif", "Int16", "Float32", "--type Float32"],
    );
    refused(
        &store,
        &["--time", "2024-01-02", s(&bare)],
        &[
            "bare.tif",
            "already holds the time 2024-01-02T00:00:00Z",
            "--replace",
        ],
    );
    refused(
        &store,
        &["--time", "2024-01-01", s(&bare)],
        &["bare.tif", "2024-01-01T00:00:00Z", "not after", "--insert"],
    );
    let b = tiff(&d.join("b.tif"), 120, 90, 5, &[]);
    refused(
        &store,
        &["--time", "2024-01-05", s(&b), s(&bare)],
        &["2024-01-05T00:00:00Z", "twice"],
    );
    refused(&store, &[s(&b)], &["b.tif", "says nothing about its time"]);
    // A slice so far from the others that the store would need more levels, which the
    // steps it holds would not have.
    let far = d.join("far.tif");
    ok(
        "gdal_translate",
        &[
            "-q",
            "-a_ullr",
            "10500000",
            "5000000",
            "10501200",
            "4999100",
            s(&b),
            s(&far),
        ],
    );
    let err = refused(
        &store,
        &["--time", "2024-01-05", s(&far)],
        &[
            "more levels",
            "1 time step(s)",
            "nothing was written",
            "gridstore create",
        ],
    );
    assert!(!err.contains("  "), "{err}");
    refused(
        &store,
        &["--time-pattern", "RAD_%Y%m%d.tif", s(&b)],
        &["b.tif", "does not match --time-pattern", "RAD_%Y%m%d.tif"],
    );
    let missing = d.join("missing.tif");
    refused(
        &store,
        &["--time", "2024-01-05", s(&missing)],
        &["missing.tif"],
    );
    let waited = refused(
        &store,
        &[
            "--time",
            "2024-01-05",
            "--wait-for-slices",
            "1",
            s(&missing),
        ],
        &["missing.tif", "does not exist", "--wait-for-slices"],
    );
    // The one message, not GDAL's complaint at every look while waiting.
    assert_eq!(waited.lines().count(), 1, "{waited}");
    // A dry run checks and prints the plan, and writes nothing.
    let before = state(&store);
    let dry = ok(
        gridstore(),
        &[
            "append",
            "--dry-run",
            s(&store),
            "--time",
            "2024-01-04",
            s(&b),
        ],
    );
    assert!(dry.contains("2024-01-04T00:00:00Z add from"), "{dry}");
    assert_eq!(state(&store), before, "a dry run changed the store");
    // The declared conversion makes the Int16 slice fit.
    append_ok(
        &store,
        &["--time", "2024-01-03", "--type", "Float32", s(&int)],
    );
    assert_eq!(
        instants(&store),
        ["2024-01-02T00:00:00", "2024-01-03T00:00:00"]
    );
    let (w, h, _) = planes(s(&int), &d.join("int"));
    let snap = Snapshot::open(&store, None).unwrap();
    let t = snap.steps(0, MAX_TICK, 10).unwrap()[1];
    assert_same(
        &step_pixels(&snap, t, w, h),
        &plane(&d.join("int"), 1),
        "--type",
    );

    // A store without a time axis.
    let plain = d.join("plain.gridstore");
    ingest(s(&a), &plain, &[]);
    refused(
        &plain,
        &["--time", "2024-01-01", s(&b)],
        &["plain.gridstore", "no time axis", "gridstore ingest"],
    );
}

#[test]
fn waited_for_slices_are_appended_once_complete() {
    let dir = tmp();
    let d = dir.path();
    let store = d.join("s.gridstore");
    let full = tiff(&d.join("full.tif"), 400, 300, 9, &[]);
    let bytes = std::fs::read(&full).unwrap();
    let late = d.join("late.tif");
    // The slice appears after a while and grows in pieces before it is whole.
    let writer = {
        let late = late.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            std::thread::sleep(std::time::Duration::from_millis(700));
            let mut f = std::fs::File::create(&late).unwrap();
            for piece in bytes.chunks(bytes.len() / 4 + 1) {
                f.write_all(piece).unwrap();
                f.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        })
    };
    append_ok(
        &store,
        &["--time", "2024-01-01", "--wait-for-slices", "30", s(&late)],
    );
    writer.join().unwrap();
    let (w, h, _) = planes(s(&full), &d.join("full"));
    let snap = Snapshot::open(&store, None).unwrap();
    let t = snap.steps(0, MAX_TICK, 10).unwrap();
    assert_eq!(t.len(), 1);
    assert_same(
        &step_pixels(&snap, t[0], w, h),
        &plane(&d.join("full"), 1),
        "late",
    );

    // A subdataset has no size of its own to watch: it is ready once it opens.
    let nc = s(&sample("bcsd_obs_1999.nc")).to_string();
    let sub = format!("NETCDF:\"{nc}\":pr");
    let monthly = d.join("monthly.gridstore");
    append_ok(&monthly, &["--wait-for-slices", "5", &sub]);
    assert_eq!(instants(&monthly).len(), 12);
}

#[test]
fn a_changed_subdataset_is_not_taken_for_one_already_in() {
    let dir = tmp();
    let d = dir.path();
    let nc = d.join("v.nc");
    slices(&["calendar", "noleap", s(&nc), "0"]);
    let sub = format!("NETCDF:\"{}\":v", s(&nc));
    let store = d.join("s.gridstore");
    append_ok(&store, &[&sub]);
    let again = append_ok(&store, &[&sub]);
    assert!(
        again.contains("0 step(s) added, 0 replaced, 6 already in"),
        "{again}"
    );
    // The same times with other values, under the same name.
    slices(&["calendar", "noleap", s(&nc), "1"]);
    refused(
        &store,
        &[&sub],
        &["v.nc", "already holds the time", "--replace"],
    );
    let replaced = append_ok(&store, &["--replace", &sub]);
    assert!(
        replaced.contains("0 step(s) added, 6 replaced"),
        "{replaced}"
    );
    assert_steps_hold_bands(&store, &sub, d);
}

/// The chunk and step-record files of a store, relative to it.
fn objects(store: &Path) -> BTreeSet<String> {
    state(store)
        .files
        .into_iter()
        .map(|(p, _)| {
            p.strip_prefix(store)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|p| p.starts_with("chunks/") || p.starts_with("steps/"))
        .collect()
}

/// The chunk and step-record objects the current snapshot's index points to.
fn reachable(store: &Path) -> BTreeSet<String> {
    let snap = Snapshot::open(store, None).unwrap();
    let m = snap.manifest();
    let mut keys = BTreeSet::new();
    snap.index()
        .range(
            Tree::of(m),
            &TileKey::first_of_tick(0),
            &TileKey::after_all(),
            &mut |k, e| {
                keys.insert(k.chunk_at(&e, m.chunk_naming()).object);
                Ok(true)
            },
        )
        .unwrap();
    keys
}

#[test]
fn replace_insert_delete_rollback_and_gc() {
    let dir = tmp();
    let d = dir.path();
    let store = d.join("s.gridstore");
    let at = |day: u32| format!("2024-01-{day:02}T00:00:00");
    let full = tiff(&d.join("full.tif"), 200, 150, 1, &[]);
    let other = tiff(&d.join("other.tif"), 200, 150, 2, &[]);
    append_ok(&store, &["--time", &at(2), s(&full)]);
    append_ok(&store, &["--time", &at(4), s(&other)]);

    // Replace: the step becomes the new slice, its nodata quarter included.
    let holed = tiff(&d.join("holed.tif"), 200, 150, 3, &["--hole"]);
    refused(&store, &["--time", &at(2), s(&holed)], &["--replace"]);
    append_ok(&store, &["--time", &at(2), "--replace", s(&holed)]);
    let (w, h, _) = planes(s(&holed), &d.join("holed"));
    let want = plane(&d.join("holed"), 1);
    assert!(want[0].is_nan(), "the slice's top-left quarter has no data");
    let snap = Snapshot::open(&store, None).unwrap();
    let ticks = snap.steps(0, MAX_TICK, 10).unwrap();
    assert_same(&step_pixels(&snap, ticks[0], w, h), &want, "replaced");

    // Insert between the two steps of the irregular axis.
    append_ok(&store, &["--time", &at(3), "--insert", s(&full)]);
    assert_eq!(instants(&store), [at(2), at(3), at(4)]);
    let before_delete = digest(&store);

    // Delete, then rollback brings the step back.
    let deleted_tick = Snapshot::open(&store, None)
        .unwrap()
        .steps(0, MAX_TICK, 10)
        .unwrap()[2];
    let twice = ["delete-time", s(&store), &at(3), &at(4), &at(3)];
    refused_command(&store, &twice, &["2024-01-03T00:00:00Z", "twice"]);
    let out = ok(gridstore(), &["delete-time", s(&store), &at(4)]);
    assert!(out.contains("deleted 1 step(s)"), "{out}");
    assert_eq!(instants(&store), [at(2), at(3)]);
    let again = ["delete-time", s(&store), &at(3), &at(4)];
    refused_command(&store, &again, &["holds no step at 2024-01-04T00:00:00Z"]);
    ok(gridstore(), &["rollback", s(&store), "--to", "4"]);
    assert_eq!(instants(&store), [at(2), at(3), at(4)]);
    assert_eq!(digest(&store), before_delete);

    // Delete again and collect: exactly what the current snapshot reaches stays, and no
    // object of the deleted step.
    ok(gridstore(), &["delete-time", s(&store), &at(4)]);
    ok(gridstore(), &["gc", s(&store), "--keep", "1"]);
    digest(&store);
    let kept = objects(&store);
    assert_eq!(kept, reachable(&store));
    let prefix = format!("{deleted_tick}.");
    let leftover: Vec<&String> = kept
        .iter()
        .filter(|p| {
            let name = p.splitn(3, '/').nth(2).unwrap_or("");
            name.starts_with(&prefix) || name == deleted_tick.to_string()
        })
        .collect();
    assert!(
        leftover.is_empty(),
        "the deleted step's objects: {leftover:?}"
    );
    assert_eq!(instants(&store), [at(2), at(3)]);
}

#[test]
fn time_sources_name_each_slice_s_instant() {
    let dir = tmp();
    let d = dir.path();
    let store = d.join("s.gridstore");
    let py = |text: &str, format: &str| slices(&["strptime", text, format])[0].clone();
    let mut want = Vec::new();

    let fixed = tiff(&d.join("fixed.tif"), 64, 48, 1, &[]);
    append_ok(&store, &["--time", "2020-01-01T00:00:00Z", s(&fixed)]);
    want.push(py("2020-01-01 00:00:00", "%Y-%m-%d %H:%M:%S"));

    let named = tiff(&d.join("x_2020_061_1230.tif"), 64, 48, 2, &[]);
    append_ok(&store, &["--time-pattern", "x_%Y_%j_%H%M.tif", s(&named)]);
    want.push(py("x_2020_061_1230.tif", "x_%Y_%j_%H%M.tif"));

    let item = tiff(
        &d.join("item.tif"),
        64,
        48,
        3,
        &["--item", "ACQUIRED=2020-03-02T08:15:30Z"],
    );
    append_ok(&store, &["--time-item", "ACQUIRED", s(&item)]);
    want.push(py("2020-03-02T08:15:30Z", "%Y-%m-%dT%H:%M:%SZ"));

    let tag = tiff(
        &d.join("tag.tif"),
        64,
        48,
        4,
        &["--datetime", "2020:03:31 12:00:00"],
    );
    append_ok(&store, &[s(&tag)]);
    want.push(py("2020:03:31 12:00:00", "%Y:%m:%d %H:%M:%S"));

    assert_eq!(instants(&store), want);
    refused(
        &store,
        &["--time-item", "NOT_THERE", s(&tag)],
        &["tag.tif", "NOT_THERE"],
    );

    // GRIB: the valid time of each band (on its own grid, so in its own store).
    let grib = d.join("slice.grb");
    let valid = slices(&["grib", s(&grib), "2020-01-01T00:05:00Z"])[0].clone();
    let gstore = d.join("grib.gridstore");
    append_ok(&gstore, &[s(&grib)]);
    assert_eq!(instants(&gstore), [slices(&["epoch", &valid])[0].clone()]);
}

/// The id of a store's current snapshot, from its manifest (none while it has none).
fn snapshot_id(store: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(store.join("gridstore.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["snapshot"]["id"].as_u64()
}

#[test]
fn a_rerun_adds_nothing_and_resumes_a_killed_run() {
    let dir = tmp();
    let d = dir.path();
    let files: Vec<PathBuf> = (0..6u64)
        .map(|i| {
            let name = format!("RAD_2024033112{:02}.tif", i * 5);
            tiff(&d.join(name), 1024, 1024, i, &[])
        })
        .collect();
    let mut args = vec!["--time-pattern", RADAR, "--time-step", "PT5M"];
    args.extend(["--co", "BLOCKSIZE=256"]);
    args.extend(files.iter().map(|p| s(p)));

    let reference = d.join("reference.gridstore");
    append_ok(&reference, &args);
    let want = digest(&reference);
    let id = snapshot_id(&reference);
    let again = append_ok(&reference, &args);
    assert!(
        again.contains("0 step(s) added, 0 replaced, 6 already in"),
        "{again}"
    );
    assert_eq!(
        (snapshot_id(&reference), digest(&reference)),
        (id, want.clone())
    );

    // Killed while it creates the store, its first step records written but not
    // committed: a rerun starts it afresh.
    let early = d.join("early.gridstore");
    let mut all = vec!["append", "-q", s(&early)];
    all.extend_from_slice(&args);
    let mut child = cmd(gridstore()).args(&all).spawn().unwrap();
    while !early.join("steps").exists() && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    append_ok(&early, &args);
    assert_eq!(digest(&early), want);

    // Killed once its first commit is in (before its last, or the kill proves nothing).
    let mut tries = 0;
    let (victim, held) = loop {
        tries += 1;
        let victim = d.join(format!("victim{tries}.gridstore"));
        let mut all = vec!["append", "-q", s(&victim)];
        all.extend_from_slice(&args);
        let mut child = cmd(gridstore()).args(&all).spawn().unwrap();
        while snapshot_id(&victim).unwrap_or(0) < 1 && child.try_wait().unwrap().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        digest(&victim);
        let held = instants(&victim).len();
        if held < 6 || tries == 5 {
            break (victim, held);
        }
    };
    assert!(held < 6, "every run finished before it could be killed");
    assert!(held >= 1, "killed before its first commit");
    let rerun = append_ok(&victim, &args);
    let resumed = format!("{} step(s) added, 0 replaced, {held} already in", 6 - held);
    assert!(rerun.contains(&resumed), "{rerun}");
    assert_eq!(digest(&victim), want);
}
