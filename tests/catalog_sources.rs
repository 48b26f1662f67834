//! `gridstore ingest` and `gridstore append` with `--from-catalog`: the sources a catalog
//! search finds, in time order, written as if named one by one.

mod common;

use std::path::Path;

use common::{ok, python_ok, s, tmp};

fn gridstore(args: &[&str]) -> String {
    ok(env!("CARGO_BIN_EXE_gridstore"), args)
}

/// Everything GDAL reports of a store with checksums, its path left out.
fn report(store: &Path) -> String {
    let text = ok("gdalinfo", &["-checksum", "-nomd", s(store)]);
    text.replace(s(store), "STORE")
        .lines()
        .filter(|l| !l.contains("Files:") && !l.trim_start().starts_with("STORE"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn sources(dir: &Path) -> Vec<String> {
    python_ok("catalog_sources.py", &[s(dir)]);
    ["west_0", "east_1", "west_2", "east_3"]
        .iter()
        .map(|n| s(&dir.join(format!("{n}.tif"))).to_string())
        .collect()
}

const CO: [&str; 6] = [
    "--co",
    "BLOCKSIZE=64",
    "--co",
    "COMPRESS=ZSTD",
    "--co",
    "PREDICTOR=YES",
];

#[test]
fn ingest_from_a_catalog_writes_the_matching_sources_in_time_order() {
    let dir = tmp();
    let files = sources(dir.path());
    let cat = dir.path().join("catalog.sqlite");
    let cat = s(&cat);
    gridstore(&["catalog", "init", cat]);
    let mut add = vec!["catalog", "add", cat, "--collection", "rain"];
    add.extend(files.iter().map(String::as_str));
    gridstore(&add);
    let make = |name: &str| {
        let store = dir.path().join(name);
        gridstore(&[
            "create",
            s(&store),
            "--crs",
            "EPSG:4326",
            "--origin",
            "5",
            "52.64",
            "--cell-size",
            "0.01",
            "--bands",
            "1",
            "--type",
            "Float32",
            "--nodata",
            "-1",
            "--tile-size",
            "64",
        ]);
        store
    };
    // The east sources only (hours 1 and 3), by place, in time order.
    let from_catalog = make("from_catalog.gridstore");
    gridstore(&[
        "ingest",
        "-q",
        s(&from_catalog),
        "--from-catalog",
        cat,
        "--bbox",
        "5.70,52.2,5.9,52.5",
    ]);
    let named = make("named.gridstore");
    gridstore(&["ingest", "-q", s(&named), &files[1], &files[3]]);
    assert_eq!(report(&from_catalog), report(&named));
    // The other order gives other pixels (the later source wins where they overlap): the
    // order matters and the comparison sees it.
    let reversed = make("reversed.gridstore");
    gridstore(&["ingest", "-q", s(&reversed), &files[3], &files[1]]);
    assert_ne!(report(&from_catalog), report(&reversed));
    // A property filter and a time range choose too; nothing matching is an error.
    let by_property = make("by_property.gridstore");
    gridstore(&[
        "ingest",
        "-q",
        s(&by_property),
        "--from-catalog",
        cat,
        "--where",
        "RUN >= 2",
        "--time-range",
        "2024-05-01T02:00:00Z/..",
        "--bbox",
        "5.70,52.2,5.9,52.5",
    ]);
    let only_3 = make("only_3.gridstore");
    gridstore(&["ingest", "-q", s(&only_3), &files[3]]);
    assert_eq!(report(&by_property), report(&only_3));
    let out = common::run(
        env!("CARGO_BIN_EXE_gridstore"),
        &[
            "ingest",
            s(&only_3),
            "--from-catalog",
            cat,
            "--where",
            "RUN > 99",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no item") && err.contains("gridstore catalog search"),
        "{err}"
    );
    let out = common::run(
        env!("CARGO_BIN_EXE_gridstore"),
        &["ingest", s(&only_3), &files[0], "--bbox", "0,0,1,1"],
    );
    assert!(
        !out.status.success(),
        "criteria without a catalog are refused"
    );
}

#[test]
fn append_from_a_catalog_takes_each_slice_at_its_catalogued_time() {
    let dir = tmp();
    let files = sources(dir.path());
    let cat = dir.path().join("catalog.sqlite");
    let cat = s(&cat);
    gridstore(&["catalog", "init", cat]);
    // Catalogued at times of their own (a month after what the files' metadata says), so
    // the slices can only get these times from the catalog.
    let times = [
        "2024-06-01T00:00:00Z",
        "2024-06-01T01:00:00Z",
        "2024-06-01T02:00:00Z",
        "2024-06-01T03:00:00Z",
    ];
    for (file, time) in files.iter().zip(times) {
        gridstore(&[
            "catalog",
            "add",
            cat,
            "--collection",
            "rain",
            "--time",
            time,
            file,
        ]);
    }
    // The west slices: hours 0 and 2.
    let from_catalog = dir.path().join("from_catalog.gridstore");
    let mut args = vec![
        "append",
        "-q",
        s(&from_catalog),
        "--from-catalog",
        cat,
        "--collection",
        "rain",
        "--bbox",
        "5.0,52.2,5.3,52.5",
        "--time-step",
        "PT1H",
    ];
    args.extend(CO);
    gridstore(&args);
    let named = dir.path().join("named.gridstore");
    for (file, time) in [(&files[0], times[0]), (&files[2], times[2])] {
        let mut args = vec![
            "append",
            "-q",
            s(&named),
            file,
            "--time",
            time,
            "--time-step",
            "PT1H",
        ];
        args.extend(CO);
        gridstore(&args);
    }
    assert_eq!(report(&from_catalog), report(&named));
    let info = gridstore(&["info", s(&from_catalog)]);
    assert!(
        info.contains("2024-06-01T00:00:00") && info.contains("2024-06-01T02:00:00"),
        "{info}"
    );
}
