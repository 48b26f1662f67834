//! Stores written on object storage: an S3 server (moto) and an Azure Blob Storage server
//! (Azurite) started here on 127.0.0.1, written through GDAL's `/vsis3/` and `/vsiaz/` by
//! the real tools. Writers there take no lock: each commits by a conditional write of the
//! manifest and starts over from the new state when another came first (docs/FORMAT.md
//! §7). Checked on both: what the tools write there equals what they
//! write on disk; writers running at once on disjoint tiles give the same store as one
//! after another; racing writers on the same tiles each land whole, never mixed; a writer
//! killed at any moment leaves a committed state (also the crash harness, on S3); gc leaves
//! writes in flight alone; QGIS renders and saves stores there. An ingest there writes
//! larger packs than on disk, and a manifest that carries a copy of the index root, read
//! with it (S3).

mod common;
use common::servers::{azurite, checks_on, gridstore, moto, ok_on, run_on, Server};
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// An object storage server and the bucket (container) the stores go in, as a GDAL path.
struct Backend {
    server: Server,
    bucket: &'static str,
}

impl Backend {
    /// The path of store `name` in the bucket.
    fn store(&self, name: &str) -> String {
        format!("{}/{name}", self.bucket)
    }
}

fn s3() -> Backend {
    Backend {
        server: moto("stores"),
        bucket: "/vsis3/stores",
    }
}

fn azure() -> Backend {
    Backend {
        server: azurite("stores"),
        bucket: "/vsiaz/stores",
    }
}

/// The content digest `gridstore verify` gives a store (or one of its snapshots), which
/// must find no damage.
fn digest(server: &Server, store: &str, snapshot: Option<u64>) -> String {
    let snap = snapshot.map(|n| n.to_string());
    let mut args = vec!["verify", store];
    if let Some(n) = &snap {
        args.extend(["--snapshot", n]);
    }
    let out = ok_on(server, &gridstore(), &args);
    assert!(out.contains("no problems"), "{store}: {out}");
    out.lines()
        .find_map(|l| l.strip_prefix("content digest: "))
        .unwrap_or_else(|| panic!("no digest: {out}"))
        .to_string()
}

/// The ids of a store's snapshots, oldest first, from `gridstore log`.
fn snapshots(server: &Server, store: &str) -> Vec<u64> {
    let log = ok_on(server, &gridstore(), &["log", store]);
    let mut ids: Vec<u64> = log
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    ids.reverse();
    ids
}

fn keys(server: &Server, store: &str) -> Vec<String> {
    checks_on(server, &["keys", store])
        .lines()
        .map(str::to_string)
        .collect()
}

/// `gdal_translate -srcwin` of the Olinda DEM, its values rescaled so that each part
/// differs from the store it goes into.
fn dem_part(dir: &Path, name: &str, win: [u32; 4], scale: u32) -> PathBuf {
    let out = dir.join(format!("{name}.tif"));
    let win: Vec<String> = win.iter().map(u32::to_string).collect();
    let top = (500 + scale).to_string();
    ok(
        "gdal_translate",
        &[
            "-q",
            "-srcwin",
            &win[0],
            &win[1],
            &win[2],
            &win[3],
            "-scale",
            "0",
            "100",
            &top,
            "900",
            s(&sample("olinda_dem_utm25s.tif")),
            s(&out),
        ],
    );
    out
}

/// A store of the Olinda DEM in 16-pixel tiles (7 x 7 tiles, 3 levels), at `store`.
fn dem_store(store: &str, server: Option<&Server>) {
    let dem = sample("olinda_dem_utm25s.tif");
    let args = [
        "-q",
        "-of",
        "GRIDSTORE",
        "-co",
        "BLOCKSIZE=16",
        s(&dem),
        store,
    ];
    match server {
        Some(server) => ok_on(server, "gdal_translate", &args),
        None => ok("gdal_translate", &args),
    };
}

/// `gridstore ingest` started in the background against `server`.
fn spawn_ingest(server: &Server, store: &str, file: &Path) -> Child {
    cmd(&gridstore())
        .args(["ingest", "-q", store, s(file)])
        .envs(server.env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_ok(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "an ingest failed: {err}");
    err
}

#[test]
fn gdal_and_the_cli_write_there_what_they_write_on_disk_on_s3() {
    gdal_and_the_cli_write_there_what_they_write_on_disk(s3());
}

#[test]
fn gdal_and_the_cli_write_there_what_they_write_on_disk_on_azure() {
    gdal_and_the_cli_write_there_what_they_write_on_disk(azure());
}

fn gdal_and_the_cli_write_there_what_they_write_on_disk(b: Backend) {
    let dir = tmp();
    let server = &b.server;
    let local = dir.path().join("dem.gridstore");
    let vsi = &b.store("dem.gridstore");
    dem_store(s(&local), None);
    dem_store(vsi, Some(server));
    let gdal_name = format!("GRIDSTORE:{vsi}");
    checks_on(server, &["same", s(&local), &gdal_name]);
    let patch = dem_part(dir.path(), "patch", [10, 20, 60, 50], 40);
    ok(&gridstore(), &["ingest", "-q", s(&local), s(&patch)]);
    ok_on(server, &gridstore(), &["ingest", "-q", vsi, s(&patch)]);
    checks_on(server, &["same", s(&local), &gdal_name]);
    assert_eq!(digest(server, vsi, None), digest(server, s(&local), None));

    // Rollback, history and gc.
    ok_on(server, &gridstore(), &["rollback", "--to", "1", vsi]);
    assert_eq!(digest(server, vsi, None), digest(server, vsi, Some(1)));
    assert_eq!(snapshots(server, vsi), vec![1, 2, 3]);
    // Within the grace period every snapshot stays; past it, only the newest.
    ok_on(server, &gridstore(), &["gc", "--keep", "1", vsi]);
    assert_eq!(snapshots(server, vsi), vec![1, 2, 3]);
    ok_on(
        server,
        &gridstore(),
        &["gc", "--keep", "1", "--grace", "0s", vsi],
    );
    assert_eq!(snapshots(server, vsi), vec![3]);
    let left = keys(server, vsi);
    assert!(
        !left
            .iter()
            .any(|k| k.starts_with("claims/") || k.starts_with("snapshots/1")),
        "{left:?}"
    );
    ok(&gridstore(), &["rollback", "--to", "1", s(&local)]);
    checks_on(server, &["same", s(&local), &gdal_name]);

    // rm takes it all.
    ok_on(server, &gridstore(), &["rm", vsi]);
    assert!(keys(server, vsi).is_empty());
    let out = run_on(server, "gdalinfo", &[vsi]);
    assert!(!out.status.success());
}

/// Noise in 256-pixel tiles (about 6 MB of level-0 chunks, all in one block of tiles)
/// ingested by gdal_translate into a store in `dir` and one there, which verify finds
/// the same. Returns both stores.
fn noise_here_and_there(b: &Backend, dir: &Path) -> (PathBuf, String) {
    let src = dir.join("noise.tif");
    python_ok("make_raster.py", &[s(&src), "Float32", "2048", "1024", "1"]);
    let local = dir.join("noise.gridstore");
    let vsi = b.store("noise.gridstore");
    for to in [s(&local), vsi.as_str()] {
        let args = [
            "-q",
            "-of",
            "GRIDSTORE",
            "-co",
            "BLOCKSIZE=256",
            s(&src),
            to,
        ];
        ok_on(&b.server, "gdal_translate", &args);
    }
    let there = digest(&b.server, &vsi, None);
    assert_eq!(there, digest(&b.server, s(&local), None));
    (local, vsi)
}

#[test]
fn an_ingest_there_writes_larger_packs_than_on_disk() {
    let b = s3();
    let dir = tmp();
    let (local, vsi) = noise_here_and_there(&b, dir.path());
    // On disk, packs of 4 MiB: the level-0 chunks take two. There, one of up to 8 MiB.
    let packs_on_disk = std::fs::read_dir(local.join("chunks/1")).unwrap().count();
    let packs_there = keys(&b.server, &vsi)
        .iter()
        .filter(|k| k.starts_with("chunks/1/"))
        .count();
    assert_eq!(packs_there + 1, packs_on_disk);
}

#[test]
fn an_ingest_on_azure_keeps_each_pack_within_what_one_request_writes() {
    // Azure takes a conditional write in one request of at most 4 MiB: the level-0 chunks
    // must go in two packs there, not one.
    let dir = tmp();
    noise_here_and_there(&azure(), dir.path());
}

#[test]
fn a_store_written_there_opens_its_index_with_its_manifest() {
    let b = s3();
    let server = &b.server;
    let dir = tmp();
    let vsi = &b.store("dem.gridstore");
    dem_store(vsi, Some(server));
    server.clear_log();
    let out = dir.path().join("window.tif");
    let name = format!("GRIDSTORE:{vsi}");
    let window = ["-q", "-srcwin", "40", "40", "20", "20", &name, s(&out)];
    ok_on(server, "gdal_translate", &window);
    // The manifest, which carries a copy of the index root, then the window's chunk.
    let requests = server.requests();
    assert!(
        !requests.iter().any(|r| r.contains("/index/")),
        "{requests:#?}"
    );
    assert_eq!(requests.len(), 2, "{requests:#?}");
    // verify compares the copy with the root node's object.
    digest(server, vsi, None);
}

#[test]
fn a_store_created_there_refuses_to_be_created_again_and_a_time_store_appends_on_s3() {
    a_store_created_there_refuses_to_be_created_again_and_a_time_store_appends(s3());
}

#[test]
fn a_store_created_there_refuses_to_be_created_again_and_a_time_store_appends_on_azure() {
    a_store_created_there_refuses_to_be_created_again_and_a_time_store_appends(azure());
}

fn a_store_created_there_refuses_to_be_created_again_and_a_time_store_appends(b: Backend) {
    let dir = tmp();
    let server = &b.server;
    let vsi = &b.store("dem.gridstore");
    dem_store(vsi, Some(server));
    let before = keys(server, vsi);
    let out = run_on(
        server,
        &gridstore(),
        &[
            "create",
            vsi,
            "--crs",
            "EPSG:32725",
            "--origin",
            "0",
            "0",
            "--cell-size",
            "10",
        ],
    );
    let err = failed_cleanly(&out);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        keys(server, vsi),
        before,
        "a refused creation changed objects"
    );

    // `gridstore create` and `ingest` there give what they give on disk.
    let local = dir.path().join("made.gridstore");
    let remote = &b.store("made.gridstore");
    let dem = sample("olinda_dem_utm25s.tif");
    for store in [s(&local), remote] {
        let create = [
            "create",
            store,
            "--crs",
            "EPSG:32725",
            "--origin",
            "0",
            "0",
            "--cell-size",
            "90",
            "--tile-size",
            "16",
        ];
        ok_on(server, &gridstore(), &create);
        ok_on(server, &gridstore(), &["ingest", "-q", store, s(&dem)]);
    }
    assert_eq!(
        digest(server, remote, None),
        digest(server, s(&local), None)
    );
    checks_on(server, &["same", s(&local), &format!("GRIDSTORE:{remote}")]);

    // A time store appended there equals one appended on disk, read by GDAL at a step.
    let rain = sample("test_stageiv_xyt.nc");
    let local = dir.path().join("rain.gridstore");
    let remote = &b.store("rain.gridstore");
    ok(&gridstore(), &["append", "-q", s(&local), s(&rain)]);
    ok_on(server, &gridstore(), &["append", "-q", remote, s(&rain)]);
    assert_eq!(
        digest(server, remote, None),
        digest(server, s(&local), None)
    );
    checks_on(
        server,
        &[
            "same",
            s(&local),
            &format!("GRIDSTORE:{remote}"),
            "TIME=2018-09-14T06:00:00Z",
        ],
    );
}

#[test]
fn writers_at_once_on_disjoint_tiles_give_the_store_one_after_another_gives_on_s3() {
    writers_at_once_on_disjoint_tiles_give_the_store_one_after_another_gives(s3());
}

#[test]
fn writers_at_once_on_disjoint_tiles_give_the_store_one_after_another_gives_on_azure() {
    writers_at_once_on_disjoint_tiles_give_the_store_one_after_another_gives(azure());
}

fn writers_at_once_on_disjoint_tiles_give_the_store_one_after_another_gives(b: Backend) {
    let dir = tmp();
    let server = &b.server;
    // Four quarters split at pixel 48: each holds 3 x 3 tiles, and the level tiles along
    // the splits (and the top one) are shared by several writers.
    let quarters: Vec<PathBuf> = [
        [0, 0, 48, 48],
        [48, 0, 63, 48],
        [0, 48, 48, 63],
        [48, 48, 63, 63],
    ]
    .iter()
    .enumerate()
    .map(|(i, w)| dem_part(dir.path(), &format!("q{i}"), *w, 10 * i as u32))
    .collect();
    let local = dir.path().join("one_by_one.gridstore");
    dem_store(s(&local), None);
    for q in &quarters {
        ok(&gridstore(), &["ingest", "-q", s(&local), s(q)]);
    }
    let want = digest(server, s(&local), None);
    for round in 0..2 {
        let vsi = b.store(&format!("at_once{round}.gridstore"));
        dem_store(&vsi, Some(server));
        let children: Vec<Child> = quarters
            .iter()
            .map(|q| spawn_ingest(server, &vsi, q))
            .collect();
        for child in children {
            // Disjoint level-0 tiles never conflict: a writer that lost a race goes on top
            // of the winner (a rebase), it never has to start over.
            let err = wait_ok(child);
            assert!(!err.contains("starting over"), "{err}");
        }
        assert_eq!(digest(server, &vsi, None), want, "round {round}");
        checks_on(server, &["same", s(&local), &format!("GRIDSTORE:{vsi}")]);
        // Each write landed once: the creation and four ingests.
        assert_eq!(snapshots(server, &vsi).len(), 5);
        let left = keys(server, &vsi);
        assert!(!left.iter().any(|k| k.starts_with("claims/")), "{left:?}");
    }
}

#[test]
fn racing_writers_on_the_same_tiles_each_land_whole_on_s3() {
    racing_writers_on_the_same_tiles_each_land_whole(s3());
}

#[test]
fn racing_writers_on_the_same_tiles_each_land_whole_on_azure() {
    racing_writers_on_the_same_tiles_each_land_whole(azure());
}

fn racing_writers_on_the_same_tiles_each_land_whole(b: Backend) {
    let dir = tmp();
    let server = &b.server;
    let parts: Vec<PathBuf> = [[0, 0, 70, 70], [30, 30, 70, 70], [20, 50, 80, 40]]
        .iter()
        .enumerate()
        .map(|(i, w)| dem_part(dir.path(), &format!("p{i}"), *w, 30 * i as u32))
        .collect();
    // Every order of the three, one after another on disk: the states each goes through.
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let mut sequences = Vec::new();
    for (n, order) in orders.iter().enumerate() {
        let local = dir.path().join(format!("order{n}.gridstore"));
        dem_store(s(&local), None);
        let mut states = Vec::new();
        for &i in order {
            ok(&gridstore(), &["ingest", "-q", s(&local), s(&parts[i])]);
            states.push(digest(server, s(&local), None));
        }
        sequences.push(states);
    }
    let vsi = &b.store("race.gridstore");
    dem_store(vsi, Some(server));
    let children: Vec<Child> = parts.iter().map(|p| spawn_ingest(server, vsi, p)).collect();
    for c in children {
        wait_ok(c);
    }
    // The history after the creation: three commits, each state that of the parts
    // committed so far, whole, in some order.
    let ids = snapshots(server, vsi);
    assert_eq!(ids.len(), 4, "{ids:?}");
    let states: Vec<String> = ids[1..]
        .iter()
        .map(|id| digest(server, vsi, Some(*id)))
        .collect();
    assert!(
        sequences.contains(&states),
        "the states {states:?} are no order of whole writes: {sequences:?}"
    );
}

#[test]
fn gc_leaves_a_write_in_flight_alone_and_removes_what_a_dead_one_left_on_s3() {
    gc_leaves_a_write_in_flight_alone_and_removes_what_a_dead_one_left(s3());
}

#[test]
fn gc_leaves_a_write_in_flight_alone_and_removes_what_a_dead_one_left_on_azure() {
    gc_leaves_a_write_in_flight_alone_and_removes_what_a_dead_one_left(azure());
}

fn gc_leaves_a_write_in_flight_alone_and_removes_what_a_dead_one_left(b: Backend) {
    let dir = tmp();
    let server = &b.server;
    let vsi = &b.store("dem.gridstore");
    dem_store(vsi, Some(server));
    let committed = keys(server, vsi);
    let want = digest(server, vsi, None);
    // A write in flight: its claim on id 7, made now, and a chunk it wrote.
    let flight = dir.path().join("flight");
    let claim = flight.join("claims/7");
    std::fs::create_dir_all(claim.parent().unwrap()).unwrap();
    let now = ok("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    std::fs::write(
        &claim,
        format!(
            "{{\"writer\":\"test\",\"host\":\"h\",\"pid\":1,\"started\":\"{}\"}}",
            now.trim()
        ),
    )
    .unwrap();
    let chunk = flight.join("chunks/7/0_0_0_0/0_0_0");
    std::fs::create_dir_all(chunk.parent().unwrap()).unwrap();
    std::fs::write(&chunk, b"a chunk being written").unwrap();
    checks_on(server, &["upload", s(&flight), vsi]);
    let with_flight = keys(server, vsi);
    assert_eq!(with_flight.len(), committed.len() + 2, "{with_flight:?}");

    let out = ok_on(server, &gridstore(), &["gc", "--keep", "1", vsi]);
    assert_eq!(
        keys(server, vsi),
        with_flight,
        "gc touched a write in flight: {out}"
    );
    // Past the grace period the writer counts as dead: what it left goes.
    let out = ok_on(
        server,
        &gridstore(),
        &["gc", "--keep", "1", "--grace", "0s", vsi],
    );
    assert!(out.contains("1 writer(s) that died"), "{out}");
    assert_eq!(keys(server, vsi), committed);
    assert_eq!(digest(server, vsi, None), want);
}

#[test]
fn a_writer_killed_at_any_moment_leaves_a_committed_state_on_s3() {
    a_writer_killed_at_any_moment_leaves_a_committed_state(s3());
}

#[test]
fn a_writer_killed_at_any_moment_leaves_a_committed_state_on_azure() {
    a_writer_killed_at_any_moment_leaves_a_committed_state(azure());
}

fn a_writer_killed_at_any_moment_leaves_a_committed_state(b: Backend) {
    let dir = tmp();
    let server = &b.server;
    // A source of many tiles, so that a kill falls inside the write.
    let big = dir.path().join("big.tif");
    ok(
        "gdal_translate",
        &[
            "-q",
            "-outsize",
            "888",
            "888",
            "-r",
            "bilinear",
            s(&sample("olinda_dem_utm25s.tif")),
            s(&big),
        ],
    );
    let vsi = &b.store("big.gridstore");
    dem_store(vsi, Some(server));
    let before = digest(server, vsi, None);
    // How long a whole ingest takes, on a copy.
    let copy = &b.store("timing.gridstore");
    dem_store(copy, Some(server));
    let started = std::time::Instant::now();
    wait_ok(spawn_ingest(server, copy, &big));
    let whole = started.elapsed();
    let after = digest(server, copy, None);
    for k in 1..=6 {
        let mut child = spawn_ingest(server, vsi, &big);
        std::thread::sleep(whole * k / 7);
        let _ = child.kill();
        let _ = child.wait();
        let now = digest(server, vsi, None);
        assert!(
            now == before || now == after,
            "after a kill at {k}/7 of the write, the store holds neither state"
        );
        if now == after {
            break;
        }
    }
    // The next writer is not held up by what the killed ones left, and gc removes it.
    wait_ok(spawn_ingest(server, vsi, &big));
    assert_eq!(digest(server, vsi, None), after);
    ok_on(
        server,
        &gridstore(),
        &["gc", "--keep", "1", "--grace", "0s", vsi],
    );
    let left = keys(server, vsi);
    assert!(!left.iter().any(|k| k.starts_with("claims/")), "{left:?}");
    assert_eq!(digest(server, vsi, None), after);
}

#[test]
fn rasterio_updates_a_window_of_a_store_there_on_s3() {
    rasterio_updates_a_window_of_a_store_there(s3());
}

#[test]
fn rasterio_updates_a_window_of_a_store_there_on_azure() {
    rasterio_updates_a_window_of_a_store_there(azure());
}

fn rasterio_updates_a_window_of_a_store_there(b: Backend) {
    let dir = tmp();
    let server = &b.server;
    let local = dir.path().join("dem.gridstore");
    let vsi = &b.store("dem.gridstore");
    dem_store(s(&local), None);
    dem_store(vsi, Some(server));
    let script = "import sys, numpy as np, rasterio\n\
                  from rasterio.windows import Window\n\
                  with rasterio.open(sys.argv[1], 'r+') as ds:\n\
                  \x20   ds.write(np.full((30, 40), 77, dtype=ds.dtypes[0]), 1, window=Window(20, 25, 40, 30))\n";
    ok_on(server, "/usr/bin/python3", &["-c", script, s(&local)]);
    ok_on(server, "/usr/bin/python3", &["-c", script, vsi]);
    assert_eq!(digest(server, vsi, None), digest(server, s(&local), None));
    checks_on(server, &["same", s(&local), &format!("GRIDSTORE:{vsi}")]);
}

#[test]
fn qgis_renders_and_saves_stores_on_s3() {
    let qgis = cmd("/usr/bin/python3")
        .args(["-c", "import qgis.core"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !qgis {
        println!("skipped: QGIS is not installed (apt-get install qgis python3-qgis)");
        return;
    }
    let dir = tmp();
    let server = moto("stores");
    let local = dir.path().join("dem.gridstore");
    let vsi = "/vsis3/stores/dem.gridstore";
    dem_store(s(&local), None);
    dem_store(vsi, Some(&server));
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let script = root().join("tests/python/qgis_remote_checks.py");
    let out = cmd("/usr/bin/python3")
        .arg(script)
        .args([
            s(&local),
            &format!("GRIDSTORE:{vsi}"),
            "/vsis3/stores/saved.gridstore",
        ])
        .envs(server.env.iter().cloned())
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("QGIS_CUSTOM_CONFIG_PATH", dir.path().join("profile"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "qgis_remote_checks.py failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!keys(&server, "/vsis3/stores/saved.gridstore").is_empty());
}

/// tests/crash_harness.py with the store it kills writers of on the S3 server.
fn harness_on_s3(mode: &str, kills: &str, seed: &str) -> String {
    let work = tmp();
    let server = moto("harness");
    let script = root().join("tests/crash_harness.py");
    let args = [
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
        "--s3",
        "harness",
    ];
    ok_on(&server, "/usr/bin/python3", &args)
}

#[test]
fn killed_writers_on_s3_leave_a_committed_state() {
    let out = harness_on_s3("writes", "10", "3");
    assert!(out.contains("10 kill(s)"), "{out}");
}

#[test]
fn killed_appends_on_s3_leave_a_committed_state_and_resume() {
    let out = harness_on_s3("append", "8", "5");
    assert!(out.contains("8 kill(s)"), "{out}");
}
