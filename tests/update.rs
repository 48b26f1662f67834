//! Adding data to existing stores through the real tools: gdal_translate into a store,
//! gdalwarp into a store, update mode from GDAL's Python bindings and rasterio,
//! `gridstore create` and `gridstore ingest`.

mod common;
use common::*;

use std::path::{Path, PathBuf};

fn gridstore() -> String {
    env!("CARGO_BIN_EXE_gridstore").to_string()
}

fn cli_ok(args: &[&str]) -> String {
    ok(&gridstore(), args)
}

fn make(path: &Path, x0: f64, y0: f64, w: usize, h: usize, value: f64, extra: &[&str]) {
    let (x0, y0, w, h, v) = (
        x0.to_string(),
        y0.to_string(),
        w.to_string(),
        h.to_string(),
        value.to_string(),
    );
    let mut args = vec!["make", s(path), &x0, &y0, &w, &h, &v];
    args.extend_from_slice(extra);
    python_ok("update_cases.py", &args);
}

/// The value `make` writes at pixel (col, row) of band 1 of a raster of `value`.
fn pattern(value: i64, col: i64, row: i64) -> i64 {
    value + col % 7 + (row % 5) * 10 + 1
}

/// Value and mask of band 1 at georeferenced points.
fn probe(dataset: &Path, points: &[(f64, f64)]) -> Vec<String> {
    let coords: Vec<String> = points
        .iter()
        .flat_map(|(x, y)| [x.to_string(), y.to_string()])
        .collect();
    let mut args = vec!["probe", s(dataset)];
    args.extend(coords.iter().map(String::as_str));
    python_ok("update_cases.py", &args)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Option words (split at spaces) followed by paths: long tool command lines stay readable.
fn line<'a>(options: &'a str, paths: &[&'a Path]) -> Vec<&'a str> {
    options
        .split_whitespace()
        .chain(paths.iter().map(|p| s(p)))
        .collect()
}

/// `gridstore create STORE OPTIONS`.
fn create(store: &Path, options: &str) {
    let mut args = vec!["create", s(store)];
    args.extend(options.split_whitespace());
    cli_ok(&args);
}

/// A dataset's georeferenced bounds, as `gdalwarp -te` takes them.
fn bounds(dataset: &Path) -> String {
    let info = ok("gdalinfo", &["-json", s(dataset)]);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    let gt: Vec<f64> = serde_json::from_value(v["geoTransform"].clone()).unwrap();
    let size: Vec<f64> = serde_json::from_value(v["size"].clone()).unwrap();
    let (xmin, ymax) = (gt[0], gt[3]);
    let (xmax, ymin) = (xmin + size[0] * gt[1], ymax + size[1] * gt[5]);
    format!("{xmin} {ymin} {xmax} {ymax}")
}

/// Compares a store with a reference raster on the same grid, pixel for pixel, validity
/// included; returns the number of pixels with data compared.
fn compare_on_grid(store: &Path, reference: &Path) -> usize {
    python_ok(
        "update_cases.py",
        &["same-grid-compare", s(store), s(reference)],
    )
    .trim()
    .parse()
    .unwrap()
}

fn snapshots(store: &Path) -> usize {
    // One line per snapshot after the header.
    cli_ok(&["log", s(store)]).lines().count() - 1
}

/// A 10 m UTM store made from a 200 x 160 raster of value 100 (+ patterns) at (500000,
/// 5000000), nodata -9999, with 64-pixel tiles.
fn base_store(dir: &Path) -> PathBuf {
    let a = dir.join("a.tif");
    make(
        &a,
        500000.0,
        5000000.0,
        200,
        160,
        100.0,
        &["--nodata", "-9999"],
    );
    let st = dir.join("s.gridstore");
    ingest(s(&a), &st, &["BLOCKSIZE=64"]);
    st
}

#[test]
fn new_data_replaces_and_nodata_never_erases() {
    let dir = tmp();
    let st = base_store(dir.path());
    // A patch of value 500 over the middle; its top-left quarter is nodata.
    let b = dir.path().join("b.tif");
    make(
        &b,
        500500.0,
        4999500.0,
        80,
        60,
        500.0,
        &["--nodata", "-9999", "--hole"],
    );
    translate_into_ok(&b, &st, &[]);
    let got = probe(
        &st,
        &[
            (500505.0, 4999495.0), // in the patch's nodata quarter: old data stays
            (501295.0, 4998905.0), // in the patch's data: replaced
            (500005.0, 4999995.0), // outside the patch: unchanged
        ],
    );
    assert_eq!(got[0], format!("{} 255", pattern(100, 50, 50)));
    assert_eq!(got[1], format!("{} 255", pattern(500, 79, 59)));
    assert_eq!(got[2], "101 255");
    python_ok("levels.py", &[s(&st), s(&st)]);
    assert_eq!(snapshots(&st), 2);
}

#[test]
fn stores_without_nodata_merge_through_their_mask() {
    let dir = tmp();
    let st = dir.path().join("m.gridstore");
    create(
        &st,
        "--crs EPSG:32631 --origin 500000 5000000 --cell-size 10 --tile-size 64 --type Int16",
    );
    let a = dir.path().join("a.tif");
    make(
        &a,
        500000.0,
        5000000.0,
        100,
        100,
        7.0,
        &["--type", "Int16", "--nodata", "0", "--hole"],
    );
    cli_ok(&["ingest", "-q", s(&st), s(&a)]);
    let got = probe(&st, &[(500005.0, 4999995.0), (500995.0, 4999005.0)]);
    // Nodata in the source is a missing pixel of the store (mask 0), data is data.
    assert_eq!(got[0], "0 0");
    assert_eq!(got[1], format!("{} 255", pattern(7, 99, 99)));
    // A second source of all data fills the hole but leaves the rest as it was.
    let b = dir.path().join("b.tif");
    make(&b, 500000.0, 5000000.0, 10, 10, 3.0, &["--type", "Int16"]);
    cli_ok(&["ingest", "-q", s(&st), s(&b)]);
    let got = probe(&st, &[(500005.0, 4999995.0), (500995.0, 4999005.0)]);
    assert_eq!(got[0], "4 255");
    assert_eq!(got[1], format!("{} 255", pattern(7, 99, 99)));
    python_ok("levels.py", &[s(&st), s(&st)]);
}

#[test]
fn the_extent_grows_in_every_direction_with_new_levels() {
    let dir = tmp();
    let st = base_store(dir.path());
    let before = ok("gdalinfo", &[s(&st)]);
    assert!(before.contains("Size is 200, 160"), "{before}");
    // Left of and above the origin, then right and below, far enough for new levels.
    let places = [
        (500000.0 - 3000.0, 5000000.0, 1.0),
        (500000.0, 5000000.0 + 2500.0, 2.0),
        (500000.0 + 6000.0, 5000000.0 - 100.0, 3.0),
        (500000.0 + 100.0, 5000000.0 - 5000.0, 4.0),
    ];
    for (i, (x, y, v)) in places.iter().enumerate() {
        let p = dir.path().join(format!("p{i}.tif"));
        make(&p, *x, *y, 50, 40, v * 1000.0, &["--nodata", "-9999"]);
        translate_into_ok(&p, &st, &[]);
    }
    let info = ok("gdalinfo", &[s(&st)]);
    // Data from x 497000 to 506500 and y 5002500 to 4994600 at 10 m: grid pixels -300 to
    // 650 and -250 to 540.
    let summary = cli_ok(&["info", s(&st)]);
    assert!(
        summary.contains("950 x 790 pixels (grid pixels -300..650, -250..540)"),
        "{summary}"
    );
    // GDAL's dataset starts a little further up and left, on a multiple of 2^levels pixels,
    // so that every overview lines up with the base.
    assert!(info.contains("Size is 954, 796"), "{info}");
    assert!(info.contains("Origin = (496960.0"), "{info}");
    assert!(info.contains("5002560.0"), "{info}");
    let levels = |text: &str| {
        text.lines()
            .find(|l| l.contains("Overviews:"))
            .map_or(0, |l| l.matches(',').count() + 1)
    };
    assert!(levels(&info) > levels(&before), "new top levels:\n{info}");
    let got = probe(
        &st,
        &[
            (497005.0, 4999995.0),
            (500005.0, 5002495.0),
            (506495.0, 4999895.0),
            (500105.0, 4994995.0),
            (500005.0, 4999995.0),
        ],
    );
    assert_eq!(
        got,
        ["1001 255", "2001 255", "3001 255", "4001 255", "101 255"]
    );
    // Every level, old and new, equals an independent computation from level 0.
    python_ok("levels.py", &[s(&st), s(&st)]);
}

#[test]
fn reprojected_sources_match_gdalwarp_on_the_store_grid() {
    let dir = tmp();
    // A geographic store; the UTM 25S Landsat scene and DEM go into it.
    let geo = dir.path().join("geo.gridstore");
    create(
        &geo,
        "--crs EPSG:4326 --origin -35 -7.8 --cell-size 0.0002 --tile-size 128 --type Byte \
         --bands 6",
    );
    let l7 = sample("L7_ETMs.tif");
    cli_ok(&["ingest", "-q", s(&geo), s(&l7)]);
    // gdalwarp onto the same grid (exact transformation, nearest neighbour) for reference:
    // the store's dataset starts on its grid, so its bounds are the target bounds.
    let reference = dir.path().join("ref.tif");
    let options = format!(
        "-q -t_srs EPSG:4326 -te {} -tr 0.0002 0.0002 -r near -et 0 -dstalpha",
        bounds(&geo)
    );
    ok("gdalwarp", &line(&options, &[&l7, &reference]));
    // Compare the data bands where gdalwarp has data (its alpha band is the mask).
    let bands = dir.path().join("ref_bands.vrt");
    ok(
        "gdal_translate",
        &line(
            "-q -of VRT -b 1 -b 2 -b 3 -b 4 -b 5 -b 6 -mask 7",
            &[&reference, &bands],
        ),
    );
    let compared = compare_on_grid(&geo, &bands);
    assert!(compared > 6 * 100_000, "compared {compared} pixels");

    // And back: the geographic elevation model of Luxembourg into a UTM store.
    let utm = dir.path().join("utm.gridstore");
    create(
        &utm,
        "--crs EPSG:32631 --origin 600000 5600000 --cell-size 250 --tile-size 64 \
         --type Int16 --nodata -32768",
    );
    let elev = sample("elev.tif");
    translate_into_ok(&elev, &utm, &[]);
    let reference = dir.path().join("ref_utm.tif");
    let options = format!(
        "-q -t_srs EPSG:32631 -te {} -tr 250 250 -r near -et 0",
        bounds(&utm)
    );
    ok("gdalwarp", &line(&options, &[&elev, &reference]));
    let compared = compare_on_grid(&utm, &reference);
    assert!(compared > 1000, "compared {compared} pixels");
    python_ok("levels.py", &[s(&utm), s(&utm)]);
}

#[test]
fn warp_resampling_is_chosen_per_ingest() {
    let dir = tmp();
    let st = base_store(dir.path());
    // A coarser source (30 m) needs resampling onto the 10 m grid.
    let c = dir.path().join("c.tif");
    make(
        &c,
        500300.0,
        4999700.0,
        20,
        20,
        50.0,
        &["--cell", "30", "--nodata", "-9999"],
    );
    translate_into_ok(&c, &st, &["WARP_RESAMPLING=BILINEAR"]);
    let bilinear = band_checksums(s(&st));
    let st2 = dir.path().join("t.gridstore");
    ingest(s(&dir.path().join("a.tif")), &st2, &["BLOCKSIZE=64"]);
    cli_ok(&["ingest", "-q", "-r", "near", s(&st2), s(&c)]);
    assert_ne!(
        band_checksums(s(&st2)),
        bilinear,
        "the method makes a difference"
    );
    let bad = failed_cleanly(&run(
        "gdal_translate",
        &[
            "-q",
            "-of",
            "GRIDSTORE",
            "-co",
            "WARP_RESAMPLING=FANCY",
            s(&c),
            s(&st),
        ],
    ));
    assert!(
        bad.contains("WARP_RESAMPLING") && bad.contains("BILINEAR"),
        "{bad}"
    );
}

#[test]
fn gdalwarp_writes_into_a_store() {
    let dir = tmp();
    let st = base_store(dir.path());
    // The same warp into a GeoTIFF copy of the store is the reference.
    let copy = dir.path().join("copy.tif");
    ok("gdal_translate", &["-q", s(&st), s(&copy)]);
    // A lon/lat raster over part of the store.
    let b = dir.path().join("b.tif");
    make(
        &b,
        500700.0,
        4999300.0,
        60,
        50,
        900.0,
        &["--nodata", "-9999"],
    );
    let src = dir.path().join("ll.tif");
    ok(
        "gdalwarp",
        &["-q", "-t_srs", "EPSG:4326", "-r", "near", s(&b), s(&src)],
    );
    for target in [&st, &copy] {
        ok(
            "gdalwarp",
            &["-q", "-r", "near", "-et", "0", s(&src), s(target)],
        );
    }
    assert_eq!(band_checksums(s(&st)), band_checksums(s(&copy)));
    assert_eq!(snapshots(&st), 2, "one gdalwarp, one commit");
    python_ok("levels.py", &[s(&st), s(&st)]);
}

#[test]
fn rasterio_writes_a_window_and_the_levels_follow() {
    let dir = tmp();
    let st = base_store(dir.path());
    python_ok(
        "update_cases.py",
        &["rasterio-write", s(&st), "10", "20", "30", "15", "777"],
    );
    let got = probe(
        &st,
        &[
            (500105.0, 4999795.0),
            (500395.0, 4999655.0),
            (500405.0, 4999795.0),
        ],
    );
    assert_eq!(got[0], "777 255");
    assert_eq!(got[1], "777 255");
    assert_ne!(got[2], "777 255");
    python_ok("levels.py", &[s(&st), s(&st)]);
}

#[test]
fn writing_an_overview_is_refused() {
    let dir = tmp();
    let st = base_store(dir.path());
    let before = checksums(s(&st));
    let out = python_ok("update_cases.py", &["gdal-write-overview", s(&st)]);
    assert!(out.contains("only be written at the base level"), "{out}");
    assert_eq!(checksums(s(&st)), before);
}

#[test]
fn bulk_ingest_equals_ingesting_one_by_one() {
    let dir = tmp();
    let mut files = Vec::new();
    // Overlapping files, some misaligned, one in another CRS.
    for i in 0..6 {
        let f = dir.path().join(format!("f{i}.tif"));
        let (x, y) = (
            500000.0 + i as f64 * 230.0 + (i % 2) as f64 * 5.0,
            5000000.0 - i as f64 * 170.0,
        );
        let mut extra = vec!["--nodata", "-9999"];
        if i % 3 == 0 {
            extra.push("--hole");
        }
        make(&f, x, y, 60, 50, i as f64 * 100.0, &extra);
        files.push(f);
    }
    let geo = dir.path().join("geo.tif");
    ok(
        "gdalwarp",
        &["-q", "-t_srs", "EPSG:4326", s(&files[2]), s(&geo)],
    );
    files.push(geo);
    let list = dir.path().join("list.txt");
    std::fs::write(
        &list,
        files
            .iter()
            .map(|f| format!("{}\n", f.display()))
            .collect::<String>(),
    )
    .unwrap();
    let on_grid = |p: &Path| {
        create(
            p,
            "--crs EPSG:32631 --origin 500000 5000000 --cell-size 10 --tile-size 32 \
             --nodata -9999",
        )
    };
    let (bulk, one) = (
        dir.path().join("bulk.gridstore"),
        dir.path().join("one.gridstore"),
    );
    on_grid(&bulk);
    on_grid(&one);
    cli_ok(&[
        "ingest",
        "-q",
        "--threads",
        "2",
        s(&bulk),
        "--from-list",
        s(&list),
    ]);
    for f in &files {
        translate_into_ok(f, &one, &[]);
    }
    assert_eq!(checksums(s(&bulk)), checksums(s(&one)));
    assert_eq!(snapshots(&bulk), 2, "one commit for all files");
    assert_eq!(snapshots(&one), 1 + files.len());
}

#[test]
fn real_data_in_different_crss_merged_into_one_store() {
    let dir = tmp();
    let st = dir.path().join("world.gridstore");
    create(
        &st,
        "--crs EPSG:4326 --origin -180 90 --cell-size 0.01 --tile-size 256 --type Float32 \
         --nodata -32768",
    );
    // Luxembourg (lon/lat, Int16) and Olinda, Brazil (UTM 25S + vertical CRS, Float32).
    let (elev, dem) = (sample("elev.tif"), sample("olinda_dem_utm25s.tif"));
    cli_ok(&["ingest", "-q", s(&st), s(&elev), s(&dem)]);
    for src in [&elev, &dem] {
        // The reference: gdalwarp of the source alone onto the store grid, over its
        // footprint; -tap aligns to multiples of the cell size, as the store grid (origin
        // -180, 90) is.
        let reference = dir.path().join("ref.tif");
        let _ = std::fs::remove_file(&reference);
        ok(
            "gdalwarp",
            &line(
                "-q -t_srs EPSG:4326 -tr 0.01 0.01 -tap -et 0 -r near -ot Float32 \
                 -dstnodata -32768",
                &[src, &reference],
            ),
        );
        let n = compare_on_grid(&st, &reference);
        // Luxembourg covers thousands of 0.01 degree cells, Olinda's 10 km DEM 81.
        assert!(n >= 81, "{n}");
    }
    let info = cli_ok(&["info", s(&st)]);
    assert!(info.contains("Levels:"), "{info}");
}

#[test]
fn bad_sources_are_refused_and_nothing_is_written() {
    let dir = tmp();
    let st = base_store(dir.path());
    let before = (checksums(s(&st)), snapshots(&st));
    let no_georef = dir.path().join("plain.tif");
    python_ok(
        "update_cases.py",
        &["make", s(&no_georef), "0", "0", "10", "10", "1"],
    );
    ok("gdal_edit.py", &["-unsetgt", s(&no_georef)]);
    let two_bands = dir.path().join("two.tif");
    make(
        &two_bands,
        500000.0,
        5000000.0,
        10,
        10,
        1.0,
        &["--bands", "2"],
    );
    let float64 = dir.path().join("f64.tif");
    make(
        &float64,
        500000.0,
        5000000.0,
        10,
        10,
        1.0,
        &["--type", "Float64"],
    );
    let far = dir.path().join("far.tif");
    make(
        &far,
        175.0,
        1.0,
        10,
        10,
        1.0,
        &["--epsg", "4326", "--cell", "0.1"],
    );
    for (src, expected) in [
        (&no_georef, "no georeferencing"),
        (&two_bands, "2 band(s) and the store 1"),
        (&float64, "cannot keep every Float64 value"),
        (&far, "outside the area where the store's CRS is defined"),
    ] {
        let err = failed_cleanly(&run(
            "gdal_translate",
            &["-q", "-of", "GRIDSTORE", s(src), s(&st)],
        ));
        assert!(err.contains(expected), "{}: {err}", src.display());
        let out = run(&gridstore(), &["ingest", "-q", s(&st), s(src)]);
        let err = failed_cleanly(&out);
        assert!(err.contains(expected), "{}: {err}", src.display());
        assert_eq!((checksums(s(&st)), snapshots(&st)), before);
    }
}
