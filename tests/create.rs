//! New stores made through GDAL's Create, by every tool that makes its output that way:
//! gdalwarp, gdal_calc.py, gdal_merge.py, gdal_rasterize, gdal_grid, rasterio's 'w' mode
//! and the GDAL Python bindings' Driver.Create.
//!
//! Each tool runs twice with the same command line, once writing a GTiff and once a store;
//! the store must hold the GTiff's size, georeferencing, nodata, band types and pixels, its
//! masks must be GTiff's wherever the tool wrote blocks (and empty elsewhere), and its
//! levels must equal an independent computation from its level 0 (tests/python/levels.py).

mod common;
use common::*;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

fn gridstore() -> String {
    env!("CARGO_BIN_EXE_gridstore").to_string()
}

/// How a tool names its output format and creation options.
#[derive(Clone, Copy)]
struct Flags {
    format: &'static str,
    option: &'static str,
}

const GDAL_FLAGS: Flags = Flags {
    format: "-of",
    option: "-co",
};

/// gdal_calc.py spells them its own way.
const CALC_FLAGS: Flags = Flags {
    format: "--format",
    option: "--co",
};

/// The format words of one output: 64-pixel tiles in both formats, so that the small test
/// rasters span several blocks and levels, and a tool's partial writes fill the same blocks.
fn format_words(flags: Flags, store: bool) -> String {
    let (name, options): (&str, &[&str]) = if store {
        ("GRIDSTORE", &["BLOCKSIZE=64"])
    } else {
        ("GTiff", &["TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64"])
    };
    let mut words = format!("{} {name}", flags.format);
    for o in options {
        words += &format!(" {} {o}", flags.option);
    }
    words
}

/// Runs `program` twice, with `{of}` in `template` replaced by the output format's words
/// and `{out}` by the output: `name.gridstore`, then `name.tif`, in `dir`. Returns both.
fn both(dir: &Path, name: &str, program: &str, flags: Flags, template: &str) -> (PathBuf, PathBuf) {
    let store = dir.join(format!("{name}.gridstore"));
    let gtiff = dir.join(format!("{name}.tif"));
    for (out, is_store) in [(&store, true), (&gtiff, false)] {
        let line = template
            .replace("{of}", &format_words(flags, is_store))
            .replace("{out}", s(out));
        ok(program, &line.split_whitespace().collect::<Vec<_>>());
    }
    (store, gtiff)
}

/// The store equals the GTiff (every block written unless `written` lists the datasets whose
/// footprints the tool wrote), has levels, and its levels equal an independent computation.
fn check(store: &Path, gtiff: &Path, written: &[&Path]) {
    let mut args = vec!["compare", s(store), s(gtiff)];
    for w in written {
        args.extend(["--written", s(w)]);
    }
    python_ok("create_checks.py", &args);
    check_levels(store);
}

fn check_levels(store: &Path) {
    let info = ok("gdalinfo", &[s(store)]);
    assert!(
        info.contains("Overviews:"),
        "the store has no levels:\n{info}"
    );
    python_ok("levels.py", &[s(store), s(store)]);
}

fn snapshots(store: &Path) -> usize {
    // One line per snapshot after the header.
    ok(&gridstore(), &["log", s(store)]).lines().count() - 1
}

/// Option words (split at spaces) followed by paths.
fn line<'a>(options: &'a str, paths: &[&'a Path]) -> Vec<&'a str> {
    options
        .split_whitespace()
        .chain(paths.iter().map(|p| s(p)))
        .collect()
}

// ---- gdalwarp --------------------------------------------------------------------------

#[test]
fn gdalwarp_reprojects_into_a_new_store() {
    let dir = tmp();
    let src = sample("L7_ETMs.tif");
    let template = format!("-q -t_srs EPSG:4326 {{of}} {} {{out}}", s(&src));
    let (store, gtiff) = both(dir.path(), "warp", "gdalwarp", GDAL_FLAGS, &template);
    check(&store, &gtiff, &[]);
}

#[test]
fn gdalwarp_with_a_target_resolution() {
    let dir = tmp();
    let src = sample("L7_ETMs.tif");
    let template = format!(
        "-q -t_srs EPSG:4326 -tr 0.0004 0.0003 -r bilinear {{of}} {} {{out}}",
        s(&src)
    );
    let (store, gtiff) = both(dir.path(), "warp_tr", "gdalwarp", GDAL_FLAGS, &template);
    check(&store, &gtiff, &[]);
}

#[test]
fn gdalwarp_with_a_destination_nodata() {
    let dir = tmp();
    // Float32 with a compound CRS; everything outside the tilted footprint is nodata.
    let src = sample("olinda_dem_utm25s.tif");
    let template = format!(
        "-q -t_srs EPSG:4326 -dstnodata -9999 {{of}} {} {{out}}",
        s(&src)
    );
    let (store, gtiff) = both(dir.path(), "warp_nd", "gdalwarp", GDAL_FLAGS, &template);
    let info = ok("gdalinfo", &[s(&store)]);
    assert!(info.contains("NoData Value=-9999"), "{info}");
    check(&store, &gtiff, &[]);
}

// ---- gdal_calc.py ----------------------------------------------------------------------

#[test]
fn gdal_calc_doubles_an_int16_raster() {
    let dir = tmp();
    let src = sample("elev.tif");
    let template = format!("-A {} --calc=A*2 --quiet {{of}} --outfile={{out}}", s(&src));
    let (store, gtiff) = both(dir.path(), "calc", "gdal_calc.py", CALC_FLAGS, &template);
    check(&store, &gtiff, &[]);
}

#[test]
fn gdal_calc_with_a_nodata_value() {
    let dir = tmp();
    let src = sample("L7_ETMs.tif");
    // Band 4 of the Landsat scene as Int16, pixels under 40 made nodata (0).
    let template = format!(
        "-A {} --A_band=4 --calc=(A>=40)*A --type=Int16 --NoDataValue=0 --quiet {{of}} \
         --outfile={{out}}",
        s(&src)
    );
    let (store, gtiff) = both(dir.path(), "calc_nd", "gdal_calc.py", CALC_FLAGS, &template);
    let info = ok("gdalinfo", &["-stats", s(&gtiff)]);
    assert!(info.contains("NoData Value=0"), "{info}");
    check(&store, &gtiff, &[]);
}

// ---- gdal_merge.py ---------------------------------------------------------------------

/// Two overlapping 10 m UTM rasters of Int16 patterns (update_cases.py make): their union
/// leaves the top-right and bottom-left corners uncovered, whole 64-pixel blocks of them.
fn two_overlapping(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    let a = dir.join("a.tif");
    let b = dir.join("b.tif");
    for (path, x0, y0, w, h, value) in [
        (&a, "500000", "5000000", "200", "150", "100"),
        (&b, "501500", "4998800", "199", "232", "300"),
    ] {
        let mut args = vec!["make", s(path), x0, y0, w, h, value, "--type", "Int16"];
        args.extend_from_slice(extra);
        python_ok("update_cases.py", &args);
    }
    (a, b)
}

#[test]
fn gdal_merge_of_two_overlapping_rasters() {
    let dir = tmp();
    let (a, b) = two_overlapping(dir.path(), &[]);
    let template = format!("-q {{of}} -o {{out}} {} {}", s(&a), s(&b));
    let (store, gtiff) = both(dir.path(), "merge", "gdal_merge.py", GDAL_FLAGS, &template);
    // Blocks neither input touches were never written: no data there.
    check(&store, &gtiff, &[&a, &b]);
}

#[test]
fn gdal_merge_with_nodata() {
    let dir = tmp();
    // The top-left quarter of each input is nodata (0): the first input shows through the
    // second's hole.
    let (a, b) = two_overlapping(dir.path(), &["--nodata", "0", "--hole"]);
    let template = format!("-q -n 0 -a_nodata 0 {{of}} -o {{out}} {} {}", s(&a), s(&b));
    let (store, gtiff) = both(
        dir.path(),
        "merge_nd",
        "gdal_merge.py",
        GDAL_FLAGS,
        &template,
    );
    check(&store, &gtiff, &[&a, &b]);
}

// ---- gdal_rasterize --------------------------------------------------------------------

/// Two lon/lat polygons (one with a hole) as a GeoJSON layer.
fn polygons(dir: &Path) -> PathBuf {
    let path = dir.join("polygons.geojson");
    let layer = serde_json::json!({
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"value": 7},
             "geometry": {"type": "Polygon", "coordinates": [
                 [[2.0, 48.0], [2.31, 48.02], [2.27, 48.23], [2.03, 48.2], [2.0, 48.0]],
                 [[2.1, 48.08], [2.2, 48.08], [2.2, 48.15], [2.1, 48.08]]]}},
            {"type": "Feature", "properties": {"value": 12},
             "geometry": {"type": "Polygon", "coordinates": [
                 [[2.25, 47.91], [2.43, 47.95], [2.4, 48.12], [2.25, 47.91]]]}}
        ]
    });
    std::fs::write(&path, layer.to_string()).unwrap();
    path
}

#[test]
fn gdal_rasterize_with_a_target_size() {
    let dir = tmp();
    let layer = polygons(dir.path());
    let template = format!(
        "-q -burn 200 -init 5 -ot Byte -ts 257 190 {{of}} {} {{out}}",
        s(&layer)
    );
    let (store, gtiff) = both(
        dir.path(),
        "rast_ts",
        "gdal_rasterize",
        GDAL_FLAGS,
        &template,
    );
    check(&store, &gtiff, &[]);
}

#[test]
fn gdal_rasterize_with_a_target_resolution_and_nodata() {
    let dir = tmp();
    let layer = polygons(dir.path());
    let template = format!(
        "-q -a value -a_nodata 0 -init 0 -ot Int16 -tr 0.0015 0.001 {{of}} {} {{out}}",
        s(&layer)
    );
    let (store, gtiff) = both(
        dir.path(),
        "rast_tr",
        "gdal_rasterize",
        GDAL_FLAGS,
        &template,
    );
    let info = ok("gdalinfo", &[s(&store)]);
    assert!(info.contains("NoData Value=0"), "{info}");
    check(&store, &gtiff, &[]);
}

// ---- gdal_grid -------------------------------------------------------------------------

/// Scattered lon/lat points with a smooth `value`, as a GeoJSON layer.
fn points(dir: &Path) -> PathBuf {
    let path = dir.join("points.geojson");
    let features: Vec<_> = (0..60)
        .map(|i| {
            let (x, y) = (
                6.0 + (i * 37 % 60) as f64 * 0.01,
                49.5 + (i * 23 % 60) as f64 * 0.008,
            );
            serde_json::json!({
                "type": "Feature",
                "properties": {"value": (x * 10.0).sin() * 50.0 + y * 3.0},
                "geometry": {"type": "Point", "coordinates": [x, y]}
            })
        })
        .collect();
    let layer = serde_json::json!({"type": "FeatureCollection", "features": features});
    std::fs::write(&path, layer.to_string()).unwrap();
    path
}

#[test]
fn gdal_grid_nearest_with_an_output_size() {
    let dir = tmp();
    let layer = points(dir.path());
    let template = format!(
        "-q -zfield value -a nearest -ot Float32 -outsize 150 100 {{of}} {} {{out}}",
        s(&layer)
    );
    let (store, gtiff) = both(dir.path(), "grid", "gdal_grid", GDAL_FLAGS, &template);
    check(&store, &gtiff, &[]);
}

/// Inverse distance sums in an order that follows the output blocks (the last bits of a
/// value change with the tiling): both outputs have 64-pixel tiles, so they must be equal.
#[test]
fn gdal_grid_inverse_distance_on_an_explicit_extent() {
    let dir = tmp();
    let layer = points(dir.path());
    let template = format!(
        "-q -zfield value -a invdist:power=2:radius1=0.1:radius2=0.1:nodata=-1 -ot Float64 \
         -txe 5.95 6.65 -tye 49.45 50.0 -outsize 140 110 -a_srs EPSG:4326 {{of}} {} {{out}}",
        s(&layer)
    );
    let (store, gtiff) = both(dir.path(), "grid_idw", "gdal_grid", GDAL_FLAGS, &template);
    check(&store, &gtiff, &[]);
}

// ---- creation options -----------------------------------------------------------------

#[test]
fn creation_options_are_those_of_create_copy() {
    let dir = tmp();
    let layer = polygons(dir.path());
    let store = dir.path().join("options.gridstore");
    ok(
        "gdal_rasterize",
        &line(
            "-q -a value -ot Byte -ts 200 150 -of GRIDSTORE -co BLOCKSIZE=32 \
             -co COMPRESS=DEFLATE -co LEVEL=9 -co RESAMPLING=MODE",
            &[&layer, &store],
        ),
    );
    let info = ok(&gridstore(), &["info", s(&store)]);
    for expected in ["tiles of 32x32 pixels", "DEFLATE level 9", "levels by MODE"] {
        assert!(info.contains(expected), "{expected}:\n{info}");
    }
    python_ok("levels.py", &[s(&store), s(&store), "MODE"]);
    // A bad value is refused before anything is made.
    for (option, name) in [
        ("BLOCKSIZE=17", "BLOCKSIZE"),
        ("COMPRESS=FANCY", "COMPRESS"),
    ] {
        let bad = dir.path().join("bad.gridstore");
        let options = format!("-q -a value -ot Byte -ts 200 150 -of GRIDSTORE -co {option}");
        let err = failed_cleanly(&run("gdal_rasterize", &line(&options, &[&layer, &bad])));
        assert!(err.contains(name), "{option}: {err}");
        assert!(!bad.exists(), "{option}: something was left at the path");
    }
}

// ---- rasterio 'w' mode -----------------------------------------------------------------

#[test]
fn rasterio_writes_windows_out_of_order() {
    let dir = tmp();
    let store = dir.path().join("rio.gridstore");
    let gtiff = dir.path().join("rio.tif");
    // Writes both, checks both read back as written, and compares them.
    python_ok(
        "create_checks.py",
        &["rasterio-write", s(&store), s(&gtiff)],
    );
    check_levels(&store);
    assert_eq!(snapshots(&store), 1, "the whole write is one commit");
}

// ---- GDAL Python Driver.Create ---------------------------------------------------------

#[test]
fn pixels_before_georeferencing_and_nodata_after_pixels() {
    let dir = tmp();
    let store = dir.path().join("first.gridstore");
    let gtiff = dir.path().join("first.tif");
    let windows = python_ok("create_checks.py", &["pixels-first", s(&store), s(&gtiff)]);
    let mut args = vec!["compare".to_string(), s(&store).into(), s(&gtiff).into()];
    for window in windows.lines() {
        args.push("--written-window".into());
        args.extend(window.split_whitespace().map(str::to_string));
    }
    python_ok(
        "create_checks.py",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    // The reference keeps what was set, so the check itself is sound.
    python_ok("create_checks.py", &["check-metadata", s(&gtiff)]);
    python_ok("create_checks.py", &["check-metadata", s(&store)]);
    check_levels(&store);
    assert_eq!(snapshots(&store), 1, "the whole write is one commit");
}

#[test]
fn a_colour_table_is_kept() {
    let dir = tmp();
    let store = dir.path().join("classes.gridstore");
    let gtiff = dir.path().join("classes.tif");
    python_ok("create_checks.py", &["palette", s(&store), s(&gtiff)]);
    // compare checks the colour tables; levels.py uses NEAREST for a band with one.
    check(&store, &gtiff, &[]);
    let info = ok("gdalinfo", &[s(&store)]);
    assert!(info.contains("ColorInterp=Palette"), "{info}");
}

#[test]
fn a_flush_commits_what_was_written_and_the_write_goes_on() {
    let dir = tmp();
    let store = dir.path().join("flushed.gridstore");
    let gtiff = dir.path().join("flushed.tif");
    python_ok("create_checks.py", &["flush-midway", s(&store), s(&gtiff)]);
    check(&store, &gtiff, &[]);
    assert_eq!(
        snapshots(&store),
        2,
        "one commit at the flush, one at the close"
    );
}

/// A store's manifest without what differs from one write to another (its id, snapshot,
/// index).
fn manifest_contents(store: &Path) -> serde_json::Value {
    let text = ok(&gridstore(), &["info", "--json", s(store)]);
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let object = v.as_object_mut().expect("a JSON object");
    for key in ["store_id", "snapshot", "index"] {
        object.remove(key);
    }
    v
}

#[test]
fn a_raster_never_georeferenced_is_stored_as_gdal_translate_stores_it() {
    let dir = tmp();
    let store = dir.path().join("plain.gridstore");
    let gtiff = dir.path().join("plain.tif");
    python_ok("create_checks.py", &["no-georef", s(&store), s(&gtiff)]);
    let translated = dir.path().join("translated.gridstore");
    translate_into_ok(&gtiff, &translated, &["BLOCKSIZE=64"]);
    assert_eq!(manifest_contents(&store), manifest_contents(&translated));
    python_ok("create_checks.py", &["compare", s(&store), s(&translated)]);
    check(&store, &gtiff, &[]);
}

#[test]
fn unsupported_types_are_refused_and_nothing_is_left() {
    let dir = tmp();
    for type_name in ["Int64", "CInt16"] {
        let store = dir.path().join(format!("{type_name}.gridstore"));
        let out = python_ok(
            "create_checks.py",
            &["create-refused", s(&store), type_name],
        );
        // CPLE_NotSupported is 6.
        assert!(out.starts_with("refused 6:"), "{type_name}: {out}");
        for supported in [
            "Byte", "UInt16", "Int16", "UInt32", "Int32", "Float32", "Float64",
        ] {
            assert!(out.contains(supported), "{type_name}: {out}");
        }
        assert!(
            !store.exists(),
            "{type_name}: something was left at the path"
        );
    }
}

#[test]
fn a_rotated_geotransform_is_refused_by_the_setter() {
    let dir = tmp();
    let store = dir.path().join("rotated.gridstore");
    let out = python_ok("create_checks.py", &["rotated", s(&store)]);
    // CPLE_NotSupported is 6; the dataset keeps no geotransform.
    assert!(out.starts_with("refused 6:"), "{out}");
    assert!(out.contains("north-up"), "{out}");
    assert!(out.ends_with("None\n"), "{out}");
}

/// Every file under `path` (or the file itself) with its contents.
fn tree(path: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    if path.is_file() {
        files.insert(path.to_path_buf(), std::fs::read(path).unwrap());
        return files;
    }
    for entry in std::fs::read_dir(path).unwrap() {
        let entry = entry.unwrap().path();
        files.insert(entry.clone(), Vec::new());
        files.extend(tree(&entry));
    }
    files
}

#[test]
fn an_existing_path_is_refused_and_left_as_it_was() {
    let dir = tmp();
    let store = small_store(dir.path());
    let file = dir.path().join("file.gridstore");
    std::fs::write(&file, b"not a store").unwrap();
    let full = dir.path().join("full.gridstore");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("notes.txt"), b"keep me").unwrap();
    for path in [&store, &file, &full] {
        let before = tree(path);
        let out = python_ok("create_checks.py", &["create-refused", s(path), "Byte"]);
        assert!(out.starts_with("refused"), "{}: {out}", path.display());
        assert!(
            out.contains(path.file_name().unwrap().to_str().unwrap()),
            "the error names the path: {out}"
        );
        assert_eq!(tree(path), before, "{} changed", path.display());
    }
    assert_eq!(snapshots(&store), 1);
}

// ---- a killed writer -------------------------------------------------------------------

/// The Python writer of create_checks.py (a `size` x `size` Float32 raster in strips of 64
/// rows), its stdout piped, with a small block cache so that written blocks reach the
/// driver long before the dataset is closed.
fn writer(path: &Path, size: usize, pixels_first: bool) -> std::process::Command {
    let mut c = cmd("/usr/bin/python3");
    c.arg(root().join("tests/python/create_checks.py"))
        .args(["writer", s(path), &size.to_string()])
        .env("GDAL_CACHEMAX", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if pixels_first {
        c.arg("--pixels-first");
    }
    c
}

/// Runs the writer to the end.
fn write_all(path: &Path, size: usize, pixels_first: bool) {
    let out = writer(path, size, pixels_first).output().unwrap();
    assert!(
        out.status.success(),
        "writing {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the writer after it reports `strips` strips written, and reaps it.
fn kill_after(mut child: Child, strips: usize) {
    let stdout = child.stdout.take().unwrap();
    let seen = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take_while(|line| line.starts_with("strip "))
        .take(strips)
        .count();
    if seen < strips {
        let out = child.wait_with_output().unwrap();
        panic!(
            "the writer stopped after {seen} strips ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("waitpid");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
}

/// Kills a Create-based write of a `size`-pixel square after `strips` strips; what it
/// leaves must not open and `gridstore repair` removes it; then the same write at that
/// path succeeds. Returns the store and the path.
fn kill_then_write_again(dir: &Path, size: usize, strips: usize, pixels_first: bool) -> PathBuf {
    let store = dir.join("killed.gridstore");
    let child = writer(&store, size, pixels_first)
        .spawn()
        .expect("start the writer");
    kill_after(child, strips);
    if store.exists() {
        let refused = failed_cleanly(&run("gdalinfo", &[s(&store)]));
        assert!(
            refused.contains("not recognized") || refused.contains("ERROR"),
            "{refused}"
        );
        ok(&gridstore(), &["repair", s(&store)]);
        assert!(!store.exists(), "repair removes what the killed write left");
    }
    write_all(&store, size, pixels_first);
    assert_eq!(snapshots(&store), 1);
    store
}

/// Kills a small write half way (16 of 32 strips: 8 MB written through a 2 MB cache), and
/// compares the store written again with the GTiff.
fn killed_write_leaves_no_store(pixels_first: bool) {
    let dir = tmp();
    let store = kill_then_write_again(dir.path(), 2048, 16, pixels_first);
    let gtiff = dir.path().join("reference.tif");
    write_all(&gtiff, 2048, pixels_first);
    check(&store, &gtiff, &[]);
}

#[test]
fn a_killed_writer_leaves_no_store() {
    killed_write_leaves_no_store(false);
}

#[test]
fn a_killed_writer_of_pixels_before_georeferencing_leaves_no_store() {
    killed_write_leaves_no_store(true);
}

/// Past 64 MiB of tiles in memory the driver moves whole tiles into the transaction: a
/// writer killed after 108 MiB (72 of 96 strips of a 6144-pixel square) leaves chunks
/// behind, which must stay invisible and be repaired away too.
#[test]
fn a_killed_writer_with_tiles_moved_into_its_transaction_leaves_no_store() {
    let dir = tmp();
    let store = kill_then_write_again(dir.path(), 6144, 72, false);
    let gtiff = dir.path().join("reference.tif");
    write_all(&gtiff, 6144, false);
    assert_eq!(band_checksums(s(&store)), band_checksums(s(&gtiff)));
    ok(&gridstore(), &["verify", s(&store)]);
}
