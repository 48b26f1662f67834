//! The gridstore command line: info, verify, log, rm.

mod common;
use common::*;
use gridstore::grid::TileLoc;
use gridstore::index::TileKey;

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
    // Damage the chunk of one tile of level 1, in its pack.
    let key = TileKey::new(0, 0, TileLoc::new(1, 0, 0));
    let (pack, range) = tile_chunk(&st, key);
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[range.start + 40] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
    let out = cli(&["verify", s(&st)]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let name = pack.strip_prefix(&st).unwrap().display().to_string();
    assert!(
        text.contains(&format!(
            "DAMAGED {name}, the chunk of tile {}",
            key.describe()
        )) && text.contains("1 problem"),
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

/// An empty store made by `gridstore create`.
fn empty_store(dir: &Path) -> PathBuf {
    let st = dir.join("empty.gridstore");
    let out = cli(&[
        "create",
        s(&st),
        "--crs",
        "EPSG:4326",
        "--origin",
        "0",
        "0",
        "--cell-size",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    st
}

/// Runs every destructive command on `dir` and asserts each refused, left `precious` as it
/// was, and said why (`why`).
fn destructive_commands_refuse(dir: &Path, precious: &Path, why: &str) {
    let before = std::fs::read(precious).unwrap();
    for args in [
        vec!["rm", s(dir)],
        vec!["gc", s(dir), "--keep", "1"],
        vec!["repair", s(dir)],
        vec!["rollback", s(dir), "--to", "1"],
    ] {
        let err = failed_cleanly(&cli(&args));
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(
            err.to_lowercase()
                .contains("nothing was removed or changed"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(precious).unwrap(), before, "{args:?}");
    }
}

#[test]
fn a_directory_with_an_empty_writer_lock_is_no_store() {
    let dir = tmp();
    let other = dir.path().join("photos");
    std::fs::create_dir_all(other.join("chunks/1")).unwrap();
    std::fs::write(other.join("writer.lock"), b"").unwrap();
    let precious = other.join("chunks/1/holiday.jpg");
    std::fs::write(&precious, b"irreplaceable").unwrap();
    destructive_commands_refuse(&other, &precious, "writer.lock is not a gridstore lock");
    // Only the lock and what a creation writes, but the lock is not a gridstore lock.
    std::fs::write(other.join("writer.lock"), b"{\"pid\": 1}").unwrap();
    destructive_commands_refuse(&other, &precious, "not a gridstore lock");
    assert!(other.join("writer.lock").exists());
}

#[test]
fn a_directory_with_an_unreadable_manifest_is_no_store() {
    let dir = tmp();
    let other = dir.path().join("notes");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("gridstore.json"), b"my notes about gridstore").unwrap();
    std::fs::write(other.join("writer.lock"), b"").unwrap();
    let precious = other.join("thesis.txt");
    std::fs::write(&precious, b"four years of work").unwrap();
    destructive_commands_refuse(&other, &precious, "the manifest is damaged");
    let err = failed_cleanly(&cli(&["rm", s(&other)]));
    assert!(
        err.contains("delete it yourself") && err.contains("snapshots/"),
        "{err}"
    );
    assert!(other.join("gridstore.json").exists() && other.join("writer.lock").exists());
}

#[test]
fn rm_refuses_a_symlinked_store_path_naming_link_and_target() {
    let dir = tmp();
    let st = empty_store(dir.path());
    let link = dir.path().join("link.gridstore");
    std::os::unix::fs::symlink(&st, &link).unwrap();
    let err = failed_cleanly(&cli(&["rm", s(&link)]));
    assert!(
        err.contains("is a symbolic link to") && err.contains(s(&st)) && err.contains(s(&link)),
        "{err}"
    );
    assert!(st.join("gridstore.json").exists(), "the store was touched");
    assert!(link.exists());
}

#[test]
fn deletes_never_follow_a_symlink_out_of_a_store() {
    let dir = tmp();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let precious = outside.join("keep.txt");
    std::fs::write(&precious, b"keep me").unwrap();
    // A link planted inside a committed store, removed with it.
    let st = empty_store(dir.path());
    std::os::unix::fs::symlink(&outside, st.join("chunks-elsewhere")).unwrap();
    std::fs::create_dir_all(st.join("chunks")).unwrap();
    std::os::unix::fs::symlink(&outside, st.join("chunks/9")).unwrap();
    let out = cli(&["rm", s(&st)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!st.exists());
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
    // An interrupted creation (a dead writer's lock) with a link in chunks/, repaired away.
    let unfinished = dir.path().join("half.gridstore");
    std::fs::create_dir_all(unfinished.join("chunks")).unwrap();
    std::os::unix::fs::symlink(&outside, unfinished.join("chunks/1")).unwrap();
    let lock = serde_json::json!({
        "host": "elsewhere-but-damaged", "pid": 0, "process_start": null,
        "started": "2026-01-01T00:00:00Z", "writer": "gridstore create"
    });
    std::fs::write(unfinished.join("writer.lock"), lock.to_string()).unwrap();
    // pid 0 is no process: not a lock any writer wrote, so this is no store.
    failed_cleanly(&cli(&["repair", s(&unfinished)]));
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let host = String::from_utf8(std::fs::read("/proc/sys/kernel/hostname").unwrap()).unwrap();
    let lock = serde_json::json!({
        "host": host.trim(), "pid": dead, "process_start": null,
        "started": "2026-01-01T00:00:00Z", "writer": "gridstore create"
    });
    std::fs::write(unfinished.join("writer.lock"), lock.to_string()).unwrap();
    let out = cli(&["repair", s(&unfinished)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!unfinished.exists());
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
}

#[test]
fn too_many_threads_fail_at_once_naming_the_range() {
    let dir = tmp();
    let st = empty_store(dir.path());
    let new = dir.path().join("new.gridstore");
    for args in [
        vec!["ingest", s(&st), "--threads", "100000", "/nonexistent.tif"],
        vec![
            "create",
            s(&new),
            "--crs",
            "EPSG:4326",
            "--origin",
            "0",
            "0",
            "--cell-size",
            "1",
            "--co",
            "NUM_THREADS=100000",
        ],
    ] {
        let err = failed_cleanly(&cli(&args));
        assert!(
            err.contains("NUM_THREADS") && err.contains("from 1 to 1024"),
            "{args:?}: {err}"
        );
    }
    assert!(!new.exists());
    // The same option reaches the GDAL driver.
    let err = failed_cleanly(&run(
        "gdalinfo",
        &["-oo", "NUM_THREADS=100000", s(&store(dir.path()))],
    ));
    assert!(err.contains("from 1 to 1024"), "{err}");
}

#[test]
fn store_text_is_printed_with_control_characters_escaped() {
    let dir = tmp();
    let st = empty_store(dir.path());
    let evil = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\nforged line";
    for file in ["gridstore.json", "snapshots/1.json"] {
        let path = st.join(file);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["snapshot"]["writer"] = evil.into();
        v["bands"][0]["description"] = evil.into();
        std::fs::write(&path, v.to_string()).unwrap();
    }
    for args in [vec!["log", s(&st)], vec!["info", s(&st)]] {
        let out = cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("evil\\x1b]0;pwned\\x07\\x1b[2J\\nforged line"),
            "{args:?}: {text}"
        );
        assert!(
            !text.contains('\u{1b}') && !text.contains("\nforged"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn an_enormous_extent_is_a_damaged_manifest_not_a_zero_width_dataset() {
    let dir = tmp();
    let st = store(dir.path());
    let path = st.join("gridstore.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // x1 - x0 overflows i64: the dataset used to be 0 pixels wide, and GDAL divided by it.
    v["extent"] = serde_json::json!({"x0": -(1i64 << 62), "y0": 0, "x1": 1i64 << 62, "y1": 352});
    std::fs::write(&path, v.to_string()).unwrap();
    for (program, args) in [
        ("gdalinfo", vec!["-checksum", s(&st)]),
        (gridstore().to_str().unwrap(), vec!["info", s(&st)]),
    ] {
        let err = failed_cleanly(&run(program, &args));
        assert!(
            err.contains("the manifest is damaged") && err.contains("extent"),
            "{program}: {err}"
        );
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tmp();
    let st = store(dir.path());
    for args in [vec!["info", s(&st)], vec!["log", s(&st)]] {
        let mut child = cmd(gridstore().to_str().unwrap())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command prints (`gridstore log | head -0`).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {stderr}"
        );
    }
}
