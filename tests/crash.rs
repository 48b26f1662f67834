//! The crash harness, short: writers killed with SIGKILL at random moments during ingests,
//! merges, update-mode sessions, rollbacks and gc, each leaving a store that opens,
//! verifies and holds a committed state. `tests/crash_harness.py --kills 200` is the long
//! run.

mod common;
use common::*;

#[test]
fn killed_writers_leave_a_committed_state() {
    let work = tmp();
    let script = root().join("tests/crash_harness.py");
    let out = ok(
        "/usr/bin/python3",
        &[
            s(&script),
            "--kills",
            "20",
            "--seed",
            "7",
            "--work",
            s(work.path()),
            "--gridstore",
            env!("CARGO_BIN_EXE_gridstore"),
            "--plugin-dir",
            s(plugin_dir()),
        ],
    );
    assert!(out.contains("20 kill(s)"), "{out}");
}
