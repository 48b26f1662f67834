//! Readers and writers at the same time, through the real tools: GDAL readers while commits
//! land, writers racing for the lock (`gridstore ingest`, `gdal_translate` into a store,
//! GDAL update mode), and writers killed with SIGKILL while holding it (docs/FORMAT.md §7).

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

const HELPER: &str = "concurrency_cases.py";

fn gridstore() -> &'static str {
    env!("CARGO_BIN_EXE_gridstore")
}

fn helper(args: &[&str]) -> String {
    python_ok(HELPER, args)
}

fn helper_command(args: &[&str]) -> Command {
    let mut c = cmd("/usr/bin/python3");
    c.arg(root().join("tests/python").join(HELPER)).args(args);
    c
}

/// A process running in the background. A test that fails early kills and reaps it, so
/// that no process outlives the test, holding a lock or looping.
struct Running(Option<Child>);

impl Running {
    fn spawn(c: &mut Command) -> Running {
        Running(Some(c.spawn().expect("cannot start a background process")))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("still running")
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().expect("still running").id()
    }

    fn still_running(&mut self) -> bool {
        self.child().try_wait().expect("waitpid").is_none()
    }

    fn finish(mut self) -> Output {
        self.0
            .take()
            .expect("still running")
            .wait_with_output()
            .expect("waitpid")
    }

    /// SIGKILL, then reaped: a killed process stays a zombie until its parent reaps it,
    /// and the lock of a zombie counts as held (its pid and start time still exist).
    fn kill(mut self) {
        let mut child = self.0.take().expect("still running");
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("waitpid");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}{}",
        out.status,
        stdout_of(out),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A GDAL update-mode session in a Python process (`concurrency_cases.py hold`), driven
/// line by line over its stdin.
struct Session {
    process: Running,
    commands: ChildStdin,
    replies: BufReader<ChildStdout>,
}

impl Session {
    /// Starts opening `store` for update; `ready` tells when (and whether) it got the lock.
    fn start(store: &Path, lock_timeout: &str) -> Session {
        let mut process = Running::spawn(
            helper_command(&["hold", s(store), lock_timeout])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        let commands = process.child().stdin.take().unwrap();
        let replies = BufReader::new(process.child().stdout.take().unwrap());
        Session {
            process,
            commands,
            replies,
        }
    }

    fn reply(&mut self) -> String {
        let mut line = String::new();
        self.replies.read_line(&mut line).expect("reading a reply");
        line.trim_end().to_string()
    }

    /// Waits until the session holds the lock; the error message when the open failed.
    fn ready(&mut self) -> Result<(), String> {
        let line = self.reply();
        if line == format!("READY {}", self.process.pid()) {
            Ok(())
        } else {
            Err(line)
        }
    }

    fn open(store: &Path) -> Session {
        let mut session = Session::start(store, "5");
        session.ready().expect("opening for update");
        session
    }

    /// Queues a command: it runs once the commands before it have, even if the session
    /// is still waiting for the lock.
    fn send(&mut self, command: &str) {
        writeln!(self.commands, "{command}").expect("sending a command");
        self.commands.flush().unwrap();
    }

    fn expect(&mut self, expected: &str) {
        assert_eq!(self.reply(), expected);
    }

    fn ask(&mut self, command: &str, expected: &str) {
        self.send(command);
        assert_eq!(self.reply(), expected, "reply to {command:?}");
    }

    fn close(mut self) {
        self.send("close");
        self.closed();
    }

    /// Waits for the reply to a queued "close" and for the process to end.
    fn closed(mut self) {
        self.expect("closed");
        assert_success("the update session", &self.process.finish());
    }
}

/// The pid recorded in the store's writer lock, if there is one.
fn lock_holder(store: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(store.join("writer.lock")).ok()?;
    let lock: serde_json::Value = serde_json::from_str(&text).expect("a lock file in JSON");
    Some(lock["pid"].as_u64().expect("a pid in the lock") as u32)
}

/// Verifies the store (every object of the current snapshot) and returns its content digest.
fn digest(store: &Path) -> String {
    let out = ok(gridstore(), &["verify", s(store)]);
    out.lines()
        .find_map(|l| l.strip_prefix("content digest: "))
        .unwrap_or_else(|| panic!("no content digest in:\n{out}"))
        .to_string()
}

fn snapshots(store: &Path) -> usize {
    ok(gridstore(), &["log", s(store)])
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u64>().is_ok())
        })
        .count()
}

/// The distinct values of a window of band 1, comma-separated.
fn values(store: &Path, col: u32, row: u32, w: u32, h: u32) -> String {
    let args = [col, row, w, h].map(|v| v.to_string());
    let mut all = vec!["values", s(store)];
    all.extend(args.iter().map(String::as_str));
    helper(&all).trim().to_string()
}

/// A raster of `value` over the grid pixels col..col+w, row..row+h.
fn constant(path: &Path, col: u32, row: u32, w: u32, h: u32, value: u32) -> PathBuf {
    let args = [col, row, w, h, value].map(|v| v.to_string());
    let mut all = vec!["constant", s(path)];
    all.extend(args.iter().map(String::as_str));
    helper(&all);
    path.to_path_buf()
}

/// A 256 x 256 Float32 store of zeros in 64-pixel tiles: levels of 128 and 64 pixels.
fn base_store(dir: &Path, name: &str) -> PathBuf {
    let base = dir.join("base.tif");
    if !base.exists() {
        constant(&base, 0, 0, 256, 256, 0);
    }
    let st = dir.join(name);
    ingest(s(&base), &st, &["BLOCKSIZE=64"]);
    st
}

fn ingest_command(store: &Path, options: &[&str], files: &[PathBuf]) -> Command {
    let mut c = cmd(gridstore());
    c.args(["ingest", "-q"])
        .args(options)
        .arg(store)
        .args(files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Distinct values of a window, as the reader reports them.
type Window = Vec<f64>;

#[test]
fn readers_see_whole_commits_in_order_while_100_commits_land() {
    let dir = tmp();
    let st = base_store(dir.path(), "s.gridstore");
    // Commit k writes k over the reader's window (grid pixels 32..224, on a multiple of 4
    // so that both overviews of the area hold k alone).
    let series = dir.path().join("series");
    std::fs::create_dir(&series).unwrap();
    helper(&["series", s(&series), "100", "32", "32", "192", "192"]);
    let k_tif = |k: u32| series.join(format!("{k}.tif"));

    let stop = dir.path().join("stop");
    let mut reader =
        Running::spawn(helper_command(&["reader", s(&st), s(&stop)]).stdout(Stdio::piped()));
    let mut reader_out = BufReader::new(reader.child().stdout.take().unwrap());
    let mut line = String::new();
    reader_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY", "the reader did not start");

    // Every kind of writer takes a share: each has its own commit path. None of them may
    // wait for the readers (no --wait, no LOCK_TIMEOUT).
    for k in 1..=20 {
        ok(gridstore(), &["ingest", "-q", s(&st), s(&k_tif(k))]);
    }
    for k in 21..=40 {
        assert_success(
            "gdal_translate into the store",
            &translate_into(&k_tif(k), &st, &[]),
        );
    }
    let mut session = Session::start(&st, "0");
    session.ready().expect("the readers hold no lock");
    for k in 41..=100 {
        session.ask(&format!("write 32 32 192 192 {k}"), "written");
        session.ask("flush", "flushed");
    }
    session.close();

    std::fs::write(&stop, b"").unwrap();
    let mut report = String::new();
    reader_out.read_to_string(&mut report).unwrap();
    assert_success("the reader", &reader.finish());
    let report: serde_json::Value = serde_json::from_str(&report).expect("the reader's JSON");
    let window_list = |v: &serde_json::Value| -> Vec<Window> {
        serde_json::from_value(v.clone()).expect("[base, overview 0, overview 1]")
    };
    let reads: Vec<Vec<Window>> = report["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(window_list)
        .collect();

    // One committed state per read: the base window and both overview windows hold the
    // same single value.
    let state = |read: &[Window]| -> Option<f64> {
        (read[0].len() == 1 && read[1] == read[0] && read[2] == read[0]).then(|| read[0][0])
    };
    let mut seen: Vec<f64> = Vec::new();
    for (i, read) in reads.iter().enumerate() {
        let k = state(read).unwrap_or_else(|| {
            panic!("read {i} saw a mix of states (base, overview 0, overview 1): {read:?}")
        });
        if let Some(&last) = seen.last() {
            assert!(k >= last, "read {i} went back from state {last} to {k}");
        }
        if seen.last() != Some(&k) {
            seen.push(k);
        }
    }
    println!("{} reads saw {} distinct states", reads.len(), seen.len());
    assert!(
        seen.len() > 1,
        "the reader saw only state(s) {seen:?} in {} reads: it never overlapped a commit",
        reads.len()
    );
    assert_eq!(
        seen.last(),
        Some(&100.0),
        "the last read starts after the last commit"
    );

    // Opened before the first commit, first read after the last: still the state it opened.
    assert_eq!(
        window_list(&report["early"]),
        vec![vec![0.0]; 3],
        "a dataset opened before the commits"
    );
    // Opened mid-way, base read then, overviews read after the last commit: one state.
    let held = window_list(&report["held"]);
    let k = state(&held).unwrap_or_else(|| panic!("a dataset kept open mixed states: {held:?}"));
    assert!(k > 0.0 && k <= 100.0, "{held:?}");

    assert_eq!(snapshots(&st), 101);
    digest(&st);
}

#[test]
fn a_held_lock_refuses_or_delays_every_other_writer() {
    let dir = tmp();
    let st = base_store(dir.path(), "s.gridstore");
    let d = dir.path();
    // Every later writer overlaps the holder's window (32..160 both ways), none overlaps
    // another: the waiting writers may go in any order, the holder always comes first.
    let ingested = constant(&d.join("i.tif"), 128, 128, 96, 96, 7);
    let translated = constant(&d.join("t.tif"), 0, 128, 64, 96, 9);

    let mut holder = Session::open(&st);
    let pid = holder.process.pid();
    assert_eq!(lock_holder(&st), Some(pid));
    let before = (digest(&st), snapshots(&st));
    let names_holder = |err: &str| {
        assert!(
            err.contains("another write is in progress")
                && err.contains(&format!("process {pid} on host")),
            "the holder (pid {pid}) is not named: {err}"
        );
    };

    let no_wait = ingest_command(&st, &[], std::slice::from_ref(&ingested))
        .output()
        .unwrap();
    names_holder(&failed_cleanly(&no_wait));
    for options in [&[][..], &["LOCK_TIMEOUT=0"][..]] {
        names_holder(&failed_cleanly(&translate_into(&translated, &st, options)));
    }
    let mut refused = Session::start(&st, "0");
    let err = refused
        .ready()
        .expect_err("a second update-mode open got the lock");
    names_holder(&err);
    assert_eq!(refused.process.finish().status.code(), Some(1));
    assert_eq!(
        (digest(&st), snapshots(&st)),
        before,
        "a refused writer changed the store"
    );

    let waiting_ingest = Running::spawn(&mut ingest_command(
        &st,
        &["--wait", "30"],
        std::slice::from_ref(&ingested),
    ));
    let waiting_translate = Running::spawn(
        cmd("gdal_translate")
            .args(["-q", "-of", "GRIDSTORE", "-co", "LOCK_TIMEOUT=30"])
            .args([&translated, &st])
            .stderr(Stdio::piped()),
    );
    let mut waiting_session = Session::start(&st, "30");
    // Queued now: whichever waiter gets the lock first, none may need the test to move on.
    // Part of a tile whose rest the holder writes: the session must build on the holder's
    // commit, not on the state before it.
    waiting_session.send("write 128 48 96 16 11");
    waiting_session.send("close");
    // Time for the waiting writers to reach the lock. On a slow machine some get there
    // later, which changes nothing below.
    std::thread::sleep(Duration::from_secs(1));
    let mut waiting = [waiting_ingest, waiting_translate];
    for w in &mut waiting {
        assert!(w.still_running(), "a writer with a timeout did not wait");
    }
    assert!(waiting_session.process.still_running());
    assert_eq!(
        lock_holder(&st),
        Some(pid),
        "the lock changed hands while held"
    );

    holder.ask("write 32 32 128 128 5", "written");
    holder.close();
    for w in waiting {
        assert_success("a waiting writer", &w.finish());
    }
    waiting_session
        .ready()
        .expect("the waiting session got the lock");
    waiting_session.expect("written");
    waiting_session.closed();

    for (window, expected) in [
        ((64, 64, 32, 32), "5"),   // the holder's alone
        ((128, 128, 32, 32), "7"), // holder, then ingest
        ((192, 192, 32, 32), "7"), // ingest alone
        ((32, 128, 32, 32), "9"),  // holder, then gdal_translate
        ((0, 192, 64, 32), "9"),   // gdal_translate alone
        ((128, 48, 32, 16), "11"), // holder, then the waiting session
        ((192, 48, 32, 16), "11"), // the waiting session alone
        ((128, 32, 32, 16), "5"),  // the holder's, in a tile the session wrote later
        ((224, 224, 32, 32), "0"), // nobody's
    ] {
        let (c, r, w, h) = window;
        assert_eq!(values(&st, c, r, w, h), expected, "window {window:?}");
    }
    assert_eq!(snapshots(&st), before.1 + 4, "one commit per writer");
    assert_eq!(lock_holder(&st), None);
}

#[test]
fn ingests_started_together_both_commit_one_after_the_other() {
    let dir = tmp();
    let d = dir.path();
    let st = base_store(d, "s.gridstore");
    let a = vec![constant(&d.join("a.tif"), 0, 0, 192, 192, 10)];
    let b = vec![constant(&d.join("b.tif"), 64, 64, 192, 192, 20)];
    // The two orders, one after the other, on copies.
    let sequential = |name: &str, first: &[PathBuf], second: &[PathBuf]| {
        let copy = d.join(name);
        copy_dir(&st, &copy);
        for files in [first, second] {
            assert_success(
                "ingest",
                &ingest_command(&copy, &[], files).output().unwrap(),
            );
        }
        digest(&copy)
    };
    let a_then_b = sequential("ab.gridstore", &a, &b);
    let b_then_a = sequential("ba.gridstore", &b, &a);
    assert_ne!(a_then_b, b_then_a, "the overlap must tell the orders apart");

    for round in 0..4 {
        let race = d.join(format!("race{round}.gridstore"));
        copy_dir(&st, &race);
        let first = Running::spawn(&mut ingest_command(&race, &["--wait", "60"], &a));
        let second = Running::spawn(&mut ingest_command(&race, &["--wait", "60"], &b));
        assert_success("the first ingest", &first.finish());
        assert_success("the second ingest", &second.finish());
        let got = digest(&race);
        assert!(
            got == a_then_b || got == b_then_a,
            "round {round}: the result is neither order: {got}"
        );
        assert_eq!(snapshots(&race), 3, "round {round}");
        assert_eq!(lock_holder(&race), None);
    }
}

#[test]
fn a_killed_update_session_is_recovered_by_the_next_writer() {
    let dir = tmp();
    let st = base_store(dir.path(), "s.gridstore");
    let next = constant(&dir.path().join("c.tif"), 160, 32, 64, 64, 7);

    let mut session = Session::open(&st);
    session.ask("write 32 32 64 64 5", "written");
    session.ask("flush", "flushed");
    // Handed to the driver but never flushed: killed with the session.
    session.ask("write 128 128 64 64 6", "written");
    let pid = session.process.pid();
    session.process.kill();
    assert_eq!(
        lock_holder(&st),
        Some(pid),
        "a killed writer cannot release its lock"
    );

    let out = ingest_command(&st, &[], &[next]).output().unwrap();
    assert_success("the next ingest", &out);
    let said = stdout_of(&out);
    assert!(
        said.contains(&format!(
            "took over the writer lock of process {pid} on host"
        )),
        "{said}"
    );
    digest(&st);
    assert_eq!(values(&st, 32, 32, 64, 64), "5", "the session's commit");
    assert_eq!(
        values(&st, 128, 128, 64, 64),
        "0",
        "the killed session's write"
    );
    assert_eq!(values(&st, 160, 32, 64, 64), "7", "the next writer's");
    assert_eq!(snapshots(&st), 3);
    assert_eq!(lock_holder(&st), None);
}

/// `snapshot.id` and `snapshot.checkpoint` (done, of) of the current manifest.
fn committed(store: &Path) -> (u64, Option<(u64, u64)>) {
    let text = std::fs::read_to_string(store.join("gridstore.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let snapshot = &m["snapshot"];
    let checkpoint = snapshot["checkpoint"]
        .as_object()
        .map(|c| (c["done"].as_u64().unwrap(), c["of"].as_u64().unwrap()));
    (snapshot["id"].as_u64().unwrap(), checkpoint)
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid of our own child, which has not been reaped yet.
    assert_eq!(
        unsafe { libc::kill(pid as libc::pid_t, sig) },
        0,
        "kill {sig}"
    );
}

/// True once every thread of the process is stopped (state T): nothing of it moves.
fn all_stopped(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .all(|t| {
            let stat = std::fs::read_to_string(t.unwrap().path().join("stat")).unwrap_or_default();
            let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
            // A process that ended just before the SIGSTOP would never stop.
            assert_ne!(
                state,
                Some('Z'),
                "the ingest ended before it could be stopped"
            );
            state == Some('T')
        })
}

#[test]
fn a_killed_ingest_is_repaired_and_then_resumes_to_the_same_state() {
    let dir = tmp();
    let d = dir.path();
    let sources = d.join("sources");
    std::fs::create_dir(&sources).unwrap();
    // 16 overlapping 1024 x 1024 rasters of random values: about 16 checkpoints of 4 MB.
    helper(&["mosaic", s(&sources), "16", "1024", "960", "1"]);
    let files: Vec<PathBuf> = (0..16).map(|i| sources.join(format!("r{i}.tif"))).collect();
    let create = |store: &Path| {
        let grid = "--crs EPSG:3857 --origin 0 0 --cell-size 1 --nodata -1 --tile-size 128 \
                    --type Float32";
        let mut args = vec!["create", s(store)];
        args.extend(grid.split_whitespace());
        ok(gridstore(), &args);
    };
    let options = ["--checkpoint-mb", "4"];
    let st = d.join("s.gridstore");
    create(&st);

    // Stopped (SIGSTOP) while some checkpoints are committed and the next one is being
    // written, then killed there.
    let mut ingest = Running::spawn(&mut ingest_command(&st, &options, &files));
    let pid = ingest.pid();
    let writing_next = |st: &Path| {
        let (id, checkpoint) = committed(st);
        checkpoint.is_some_and(|(done, of)| done >= 1 && done < of)
            && st.join(format!("chunks/{}", id + 1)).exists()
    };
    loop {
        assert!(
            ingest.still_running(),
            "the ingest ended before it could be caught between checkpoints"
        );
        if writing_next(&st) {
            signal(pid, libc::SIGSTOP);
            while !all_stopped(pid) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if writing_next(&st) {
                break;
            }
            signal(pid, libc::SIGCONT);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    ingest.kill();
    let (id, checkpoint) = committed(&st);
    let (done, of) = checkpoint.unwrap();
    let unfinished = id + 1;
    assert_eq!(lock_holder(&st), Some(pid));
    let before = digest(&st);

    let said = ok(gridstore(), &["repair", s(&st)]);
    assert!(
        said.contains(&format!("the writer lock of process {pid} on host"))
            && said.contains("was left by a process that is gone; took it over"),
        "{said}"
    );
    assert!(said.contains(&format!("chunks/{unfinished}/")), "{said}");
    for debris in [
        format!("chunks/{unfinished}"),
        format!("index/{unfinished}"),
        format!("snapshots/{unfinished}.json"),
        "writer.lock".to_string(),
    ] {
        assert!(!st.join(&debris).exists(), "{debris} is left after repair");
    }
    assert_eq!(digest(&st), before, "repair changed the committed state");

    let again = ingest_command(&st, &options, &files).output().unwrap();
    assert_success("the ingest run again", &again);
    let said = stdout_of(&again);
    assert!(
        said.contains(&format!(
            "resumed an interrupted run of the same files: {done} of {of} checkpoint(s)"
        )),
        "{said}"
    );

    let uninterrupted = d.join("ref.gridstore");
    create(&uninterrupted);
    assert_success(
        "an uninterrupted ingest",
        &ingest_command(&uninterrupted, &options, &files)
            .output()
            .unwrap(),
    );
    assert_eq!(digest(&st), digest(&uninterrupted));
}

/// A lock file naming `pid` on this host, as a writer writes it.
fn plant_lock(store: &Path, pid: u32, writer: &str) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let lock = serde_json::json!({
        "host": host.trim(), "pid": pid, "process_start": null,
        "started": "2026-01-01T00:00:00Z", "writer": writer,
    });
    std::fs::write(store.join("writer.lock"), lock.to_string()).unwrap();
}

#[test]
fn gdal_writers_say_when_they_wait_and_when_they_take_over_a_dead_lock() {
    let dir = tmp();
    let st = base_store(dir.path(), "s.gridstore");
    let patch = constant(&dir.path().join("p.tif"), 0, 0, 64, 64, 5);

    // A lock of a process that has exited: gdal_translate takes it over and says so.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    plant_lock(&st, dead, "a writer that died");
    let out = translate_into(&patch, &st, &[]);
    assert_success("gdal_translate over a dead lock", &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Warning")
            && err.contains(&format!("took over the writer lock of process {dead}")),
        "{err}"
    );
    assert_eq!(values(&st, 0, 0, 64, 64), "5");

    // A live holder (this test process): an update open that may wait says whom it waits
    // for, then gives up naming it.
    plant_lock(&st, std::process::id(), "the test");
    let out = run(
        "gdal_translate",
        &[
            "-q",
            "-of",
            "GRIDSTORE",
            "-co",
            "LOCK_TIMEOUT=0.5",
            s(&patch),
            s(&st),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let me = format!("process {}", std::process::id());
    assert!(
        err.contains("waiting up to 0.5 s") && err.contains(&me),
        "{err}"
    );
    assert!(err.contains("Waited 0.5 s"), "{err}");
    std::fs::remove_file(st.join("writer.lock")).unwrap();
}
