//! The crash harness, short: writers killed with SIGKILL at random moments during ingests,
//! merges, update-mode sessions, rollbacks and gc, and during appends of time slices,
//! inserts, replaces and deletes of time steps, each leaving a store that opens, verifies
//! and holds a committed state. `tests/crash_harness.py --kills 200` (and `--mode append`)
//! is the long run.

mod common;
use common::*;

/// Runs the harness in `mode` for `kills` kills and returns its report.
fn harness(mode: &str, kills: &str, seed: &str) -> String {
    let work = tmp();
    let script = root().join("tests/crash_harness.py");
    ok(
        "/usr/bin/python3",
        &[
            s(&script),
            "--mode",
            mode,
            "--kills",
            kills,
            "--seed",
            seed,
            "--work",
            s(work.path()),
            "--gridstore",
            env!("CARGO_BIN_EXE_gridstore"),
            "--plugin-dir",
            s(plugin_dir()),
        ],
    )
}

#[test]
fn killed_writers_leave_a_committed_state() {
    let out = harness("writes", "20", "7");
    assert!(out.contains("20 kill(s)"), "{out}");
}

#[test]
fn killed_appends_leave_a_committed_state_and_resume() {
    let out = harness("append", "20", "11");
    assert!(out.contains("20 kill(s)"), "{out}");
}
