//! A store on a nearly full file system: every write that cannot fit fails with a message
//! that says the device is full, and leaves the store exactly as its last commit left it;
//! once there is space again, writes succeed. `tests/full_disk.py` does the work on a small
//! tmpfs, which needs a private mount namespace (`unshare -rm`).

mod common;
use common::*;

/// The steps of a write, as `full_disk.py` names them: a failure must come in each.
const STEPS: [&str; 5] = [
    "taking the lock",
    "writing chunks",
    "writing index nodes",
    "writing the snapshot manifest",
    "replacing gridstore.json",
];

#[test]
fn writes_that_do_not_fit_leave_the_store_as_it_was() {
    let work = tmp();
    // Only a file system of our own can be filled up without harm, and mounting one takes a
    // user and mount namespace, which some machines (containers) do not allow.
    let probe = work.path().join("probe");
    std::fs::create_dir(&probe).unwrap();
    let mounted = cmd("unshare")
        .args([
            "-rm",
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            s(&probe),
        ])
        .output();
    let refused = match mounted {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Some(format!("cannot run unshare: {e}")),
    };
    if let Some(why) = refused {
        println!(
            "SKIPPED writes_that_do_not_fit_leave_the_store_as_it_was: cannot mount a private \
             tmpfs with `unshare -rm` here: {why}"
        );
        return;
    }
    let script = root().join("tests/full_disk.py");
    let out = ok(
        "unshare",
        &[
            "-rm",
            "/usr/bin/python3",
            s(&script),
            "--gridstore",
            env!("CARGO_BIN_EXE_gridstore"),
            "--work",
            s(work.path()),
            "--size",
            "6m",
        ],
    );
    for writer in ["gridstore ingest", "gdal_translate"] {
        for step in STEPS {
            assert!(
                out.contains(&format!("{writer} of one tile failed {step}")),
                "{writer} never failed {step}:\n{out}"
            );
        }
    }
    assert!(
        out.contains("creating a store with gdal_translate failed; nothing left"),
        "{out}"
    );
    assert!(out.contains("each left the store as it was"), "{out}");
}
