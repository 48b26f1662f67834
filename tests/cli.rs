//! The gridstore command line: info, verify, log, rm.

mod common;
use common::*;

use std::path::{Path, PathBuf};

fn gridstore() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gridstore"))
}

fn cli(args: &[&str]) -> std::process::Output {
    cmd(gridstore().to_str().unwrap())
        .args(args)
        .output()
        .unwrap()
}

fn store(dir: &Path) -> PathBuf {
    let st = dir.join("l7.gridstore");
    ingest(s(&sample("L7_ETMs.tif")), &st, &["BLOCKSIZE=64"]);
    st
}

#[test]
fn info_describes_the_store() {
    let dir = tmp();
    let st = store(dir.path());
    let out = cli(&["info", s(&st)]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "UTM zone 25S",
        "349 x 352 pixels",
        "Levels:     4 (349x352, 175x176, 88x88, 44x44)",
        "6 band(s) of Byte",
        "tiles",
        "On disk:",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let json = cli(&["info", "--json", s(&st.join("gridstore.json"))]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["format"], "gridstore");
}

#[test]
fn verify_passes_a_sound_store_and_names_a_damaged_chunk() {
    let dir = tmp();
    let st = store(dir.path());
    let out = cli(&["verify", s(&st)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no problems"));
    // Damage one chunk of level 1.
    let level1 = st.join("chunks/1/0.0.0.0/1.0.0");
    let mut bytes = std::fs::read(&level1).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&level1, bytes).unwrap();
    let out = cli(&["verify", s(&st)]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("DAMAGED chunks/1/0.0.0.0/1.0.0") && text.contains("1 problem"),
        "{text}"
    );
}

#[test]
fn log_lists_the_snapshot_that_created_the_store() {
    let dir = tmp();
    let st = store(dir.path());
    let out = cli(&["log", s(&st)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GDAL CreateCopy of"), "{text}");
}

#[test]
fn rm_removes_stores_and_nothing_else() {
    let dir = tmp();
    let st = store(dir.path());
    let out = cli(&["rm", s(&st)]);
    assert!(out.status.success());
    assert!(!st.exists());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let out = cli(&["rm", s(&other)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was removed"));
    assert!(other.exists());
}

#[test]
fn errors_are_one_clear_line() {
    let out = cli(&["info", "/nonexistent/none.gridstore"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("gridstore: ") && err.contains("does not exist"),
        "{err}"
    );
}
