//! Stores read over the network through GDAL's virtual file systems: over HTTP from nginx
//! (`/vsicurl/`) and from an S3 server (moto, `/vsis3/`), both started here on 127.0.0.1.
//! What GDAL, rasterio and the CLI read there equals what they read from the same store on
//! disk; reads never list a prefix, fetch each object in one GET (over HTTP, all but the
//! manifest) and the chunks that lie together in a pack in one request, a window's chunks
//! at once; a server's error is no missing chunk; a new open
//! sees a commit made since; writes over HTTP are refused, changing nothing (writes on S3:
//! tests/object_storage.rs). A store on a Google Cloud Storage emulator (`/vsigs/`) reads
//! the same, and refuses writes.

mod common;
use common::servers::{checks_on, checks_s3, gcs, gridstore, moto, nginx, ok_on, run_on};
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A store with levels (the 111 x 111 Olinda DEM in 32-pixel tiles: 16 tiles and 2 levels).
fn dem_store(dir: &Path) -> PathBuf {
    let store = dir.join("dem.gridstore");
    ingest(
        s(&sample("olinda_dem_utm25s.tif")),
        &store,
        &["BLOCKSIZE=32"],
    );
    store
}

/// A time store: the hourly Stage IV precipitation, appended.
fn rain_store(dir: &Path) -> PathBuf {
    let store = dir.join("rain.gridstore");
    let src = sample("test_stageiv_xyt.nc");
    ok(&gridstore(), &["append", "-q", s(&store), s(&src)]);
    store
}

/// Every request must name an object (no listing of a prefix or directory).
fn assert_no_listing(requests: &[String]) {
    for r in requests {
        let path = r.split_whitespace().nth(1).unwrap_or("");
        assert!(
            !path.ends_with('/') && !path.contains("list-type") && !path.contains("delimiter"),
            "a read listed a prefix: {r} (all: {requests:#?})"
        );
    }
}

/// A read of every tile of `store` must have fetched chunks, and the chunks that lie
/// together in a pack in one request: far fewer requests than tiles.
fn assert_chunks_fetched_together<V: std::fmt::Debug>(
    store: &Path,
    per_object: &BTreeMap<String, V>,
    requests: impl Fn(&V) -> usize,
) {
    let tiles = gridstore::store::Snapshot::open(store, None)
        .unwrap()
        .manifest()
        .index
        .tiles;
    let chunk_requests: usize = per_object
        .iter()
        .filter(|(k, _)| k.starts_with("chunks/"))
        .map(|(_, v)| requests(v))
        .sum();
    assert!(
        chunk_requests > 0 && (chunk_requests as u64) * 4 < tiles,
        "{chunk_requests} requests for chunks of {tiles} tiles: {per_object:?}"
    );
}

#[test]
fn over_http_gdal_rasterio_and_the_cli_read_what_is_on_disk() {
    let dir = tmp();
    let dem = dem_store(dir.path());
    let rain = rain_store(dir.path());
    let server = nginx(dir.path());
    let url = |store: &Path| {
        format!(
            "GRIDSTORE:/vsicurl/http://127.0.0.1:{}/{}",
            server.port,
            store.file_name().unwrap().to_str().unwrap()
        )
    };
    // Every band, mask and level, through GDAL and rasterio.
    python_ok("remote_checks.py", &["same", s(&dem), &url(&dem)]);
    python_ok(
        "remote_checks.py",
        &["same", s(&rain), &url(&rain), "TIME=2018-09-14T06:00:00Z"],
    );
    python_ok("remote_checks.py", &["same", s(&rain), &url(&rain)]);
    assert_no_listing(&server.requests());

    // The CLI: info, log, verify and a point series read the same.
    let remote = url(&rain);
    let remote = remote.strip_prefix("GRIDSTORE:").unwrap();
    for args in [
        vec!["series", "10", "20", "--pixel"],
        vec!["log"],
        vec!["verify"],
    ] {
        let at = |store: &str| {
            let mut a = vec![args[0], store];
            a.extend_from_slice(&args[1..]);
            ok(&gridstore(), &a).replace(store, "STORE")
        };
        assert_eq!(at(s(&rain)), at(remote), "gridstore {args:?}");
    }
    let info = ok(&gridstore(), &["info", remote]);
    assert!(
        info.contains("Time:") && info.contains("23 step(s)"),
        "{info}"
    );
}

#[test]
fn over_http_each_object_is_one_get_and_a_packs_chunks_come_together() {
    let dir = tmp();
    let dem = dem_store(dir.path());
    let server = nginx(dir.path());
    let url = format!(
        "GRIDSTORE:/vsicurl/http://127.0.0.1:{}/dem.gridstore",
        server.port
    );
    let out = run("gdalinfo", &["-checksum", &url]);
    assert!(out.status.success(), "{out:?}");
    let local = run("gdalinfo", &["-checksum", s(&dem)]);
    let checksums = |o: &std::process::Output| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let sums: Vec<String> = text
            .lines()
            .filter(|l| l.contains("hecksum"))
            .map(str::to_string)
            .collect();
        sums
    };
    assert!(!checksums(&local).is_empty());
    assert_eq!(checksums(&out), checksums(&local));

    let requests = server.requests();
    assert_no_listing(&requests);
    // GDAL asks a web server for an object's size (a HEAD) before its bytes unless the
    // name has no dot: chunks, index nodes and step records have none, and each comes in
    // one GET. Only the manifest, `gridstore.json`, is asked for its size first.
    let mut per_object = BTreeMap::new();
    for r in &requests {
        let mut words = r.split_whitespace();
        let (method, path) = (words.next().unwrap(), words.next().unwrap());
        let key = path
            .strip_prefix("/dem.gridstore/")
            .unwrap_or_else(|| panic!("a request outside the store: {r}"));
        per_object
            .entry(key.to_string())
            .or_insert_with(Vec::new)
            .push(method.to_string());
    }
    assert_chunks_fetched_together(&dem, &per_object, Vec::len);
    assert!(per_object.keys().any(|k| k.starts_with("index/")));
    for (key, methods) in &per_object {
        if key != "gridstore.json" {
            assert_eq!(methods, &["GET"], "{key}: {per_object:?}");
        }
    }

    // Opened without asking for its size, a missing chunk still reads as missing.
    let gone = per_object
        .keys()
        .find(|k| k.starts_with("chunks/"))
        .unwrap();
    std::fs::remove_file(dem.join(gone)).unwrap();
    let remote = url.strip_prefix("GRIDSTORE:").unwrap();
    let out = run(&gridstore(), &["verify", remote]);
    let said = said(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(gone.as_str()) && said.contains("missing"),
        "{said}"
    );
}

#[test]
fn over_http_verify_fetches_a_packs_chunks_together() {
    let dir = tmp();
    // Chunks of tens of kilobytes: more than GDAL fetches of an object at a time.
    let store = dir.path().join("l7.gridstore");
    ingest(s(&sample("L7_ETMs.tif")), &store, &["BLOCKSIZE=128"]);
    let server = nginx(dir.path());
    let remote = format!("/vsicurl/http://127.0.0.1:{}/l7.gridstore", server.port);
    assert_eq!(
        ok(&gridstore(), &["verify", &remote]).replace(&remote, "STORE"),
        ok(&gridstore(), &["verify", s(&store)]).replace(s(&store), "STORE")
    );
    let mut per_object = BTreeMap::new();
    for r in server.requests() {
        let path = r.split_whitespace().nth(1).unwrap().to_string();
        let key = path.strip_prefix("/l7.gridstore/").unwrap().to_string();
        *per_object.entry(key).or_insert(0) += 1;
    }
    assert_chunks_fetched_together(&store, &per_object, |n| *n);
}

#[test]
fn over_http_a_window_asks_for_its_chunks_at_once() {
    let dir = tmp();
    // 16-pixel tiles: tile columns 15 and 16 are in different 16 x 16 blocks of tiles, so
    // their chunks are in different packs.
    let store = dir.path().join("l7.gridstore");
    ingest(s(&sample("L7_ETMs.tif")), &store, &["BLOCKSIZE=16"]);
    // A window across both: the server answers a chunk only once another is asked for, so
    // read one after the other they would fail.
    let out = python_ok(
        "remote_checks.py",
        &["together", s(&store), "248", "0", "16", "8"],
    );
    assert!(out.contains("asked for together"), "{out}");
}

#[test]
fn over_http_a_windows_chunks_in_one_pack_come_in_one_request() {
    let dir = tmp();
    let dem = dem_store(dir.path());
    let server = nginx(dir.path());
    let url = format!("/vsicurl/http://127.0.0.1:{}/dem.gridstore", server.port);
    let (remote, local) = (dir.path().join("remote.tif"), dir.path().join("local.tif"));
    // Two tiles side by side, then four.
    for (window, tiles) in [(["16", "0", "32", "16"], 2), (["16", "16", "32", "32"], 4)] {
        server.clear_log();
        for (from, to) in [(url.as_str(), &remote), (s(&dem), &local)] {
            let mut args = vec!["-q", "-srcwin"];
            args.extend(window);
            args.extend([from, s(to)]);
            ok("gdal_translate", &args);
        }
        assert_eq!(checksums(s(&remote)), checksums(s(&local)));
        let requests = server.requests();
        let chunks: Vec<&String> = requests
            .iter()
            .filter(|r| r.contains("/dem.gridstore/chunks/"))
            .collect();
        assert_eq!(chunks.len(), 1, "{tiles} tiles: {requests:#?}");
    }
}

#[test]
fn over_http_a_server_error_is_no_missing_chunk() {
    let dir = tmp();
    let dem = dem_store(dir.path());
    // Its chunks' bytes refused with 503: the read fails, and says it is the reading that
    // failed, not that the store lost an object.
    let out = python_ok("remote_checks.py", &["refused", s(&dem)]);
    assert!(out.contains("reading failed"), "{out}");
}

#[test]
fn over_s3_each_object_is_one_get_and_nothing_is_listed() {
    let dir = tmp();
    let dem = dem_store(dir.path());
    let server = moto("stores");
    checks_s3(&server, &["upload", s(&dem), "/vsis3/stores/dem.gridstore"]);
    let keys = checks_s3(&server, &["keys", "/vsis3/stores/dem.gridstore"]);
    server.clear_log();

    let remote = "GRIDSTORE:/vsis3/stores/dem.gridstore";
    checks_s3(&server, &["same", s(&dem), remote]);
    let requests = server.requests();
    assert_no_listing(&requests);
    // One GET per object read, each object read once per open (two opens of the store
    // in `same`: GDAL's and rasterio's), and only objects of the store.
    let gets: Vec<&String> = requests.iter().filter(|r| r.starts_with("GET ")).collect();
    assert_eq!(gets.len(), requests.len(), "only GETs: {requests:#?}");
    let mut per_object = BTreeMap::new();
    for g in &gets {
        let path = g.split_whitespace().nth(1).unwrap();
        let key = path
            .strip_prefix("/stores/dem.gridstore/")
            .unwrap_or_else(|| panic!("a request outside the store: {g}"));
        assert!(keys.lines().any(|k| k == key), "{key} is not an object");
        *per_object.entry(key.to_string()).or_insert(0) += 1;
    }
    assert_chunks_fetched_together(&dem, &per_object, |n| *n);
    for (key, n) in &per_object {
        assert!(
            *n <= 2,
            "{key} was fetched {n} times in two opens: {per_object:?}"
        );
    }
}

#[test]
fn over_s3_a_chunk_far_into_a_pack_is_one_request() {
    let dir = tmp();
    // Noise in 256-pixel tiles: chunks of some 200 KB, all 16 tiles in one pack.
    let src = dir.path().join("noise.tif");
    python_ok("make_raster.py", &[s(&src), "Float32", "1024", "1024", "1"]);
    let store = dir.path().join("noise.gridstore");
    ingest(s(&src), &store, &["BLOCKSIZE=256"]);
    let last = gridstore::index::TileKey::base(3, 3);
    let (pack, range) = tile_chunk(&store, last);
    assert!(range.start > 1 << 20, "the chunk starts at {}", range.start);
    let mut server = moto("stores");
    checks_s3(
        &server,
        &["upload", s(&store), "/vsis3/stores/noise.gridstore"],
    );
    // As many users of COGs configure GDAL: the store's own opens must not heed it.
    server
        .env
        .push(("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR".into()));
    server.clear_log();
    let (remote, local) = (dir.path().join("remote.tif"), dir.path().join("local.tif"));
    let window = ["-q", "-srcwin", "768", "768", "256", "256"];
    let vsi = "GRIDSTORE:/vsis3/stores/noise.gridstore";
    ok_on(
        &server,
        "gdal_translate",
        &[&window[..], &[vsi, s(&remote)]].concat(),
    );
    ok(
        "gdal_translate",
        &[&window[..], &[s(&store), s(&local)]].concat(),
    );
    assert_eq!(checksums(s(&remote)), checksums(s(&local)));
    // The manifest, the index node, and the chunk's range of its pack: no request at the
    // pack's open, none for its size.
    let requests = server.requests();
    let key = pack.strip_prefix(&store).unwrap().to_str().unwrap();
    let of_pack = requests.iter().filter(|r| r.contains(key)).count();
    assert_eq!(of_pack, 1, "{requests:#?}");
    assert_eq!(requests.len(), 3, "{requests:#?}");
}

#[test]
fn over_s3_a_new_open_sees_a_commit_made_since() {
    let dir = tmp();
    let store = dem_store(dir.path());
    let server = moto("stores");
    let vsi = "/vsis3/stores/dem.gridstore";
    checks_s3(&server, &["upload", s(&store), vsi]);
    // A later state: another raster ingested over part of the store, on disk.
    let newer = tmp();
    let later = newer.path().join("dem.gridstore");
    copy_dir(&store, &later);
    let patch = newer.path().join("patch.tif");
    ok(
        "gdal_translate",
        &[
            "-q",
            "-srcwin",
            "0",
            "0",
            "300",
            "200",
            "-scale",
            "0",
            "100",
            "500",
            "600",
            s(&sample("olinda_dem_utm25s.tif")),
            s(&patch),
        ],
    );
    ok(&gridstore(), &["ingest", "-q", s(&later), s(&patch)]);
    let out = checks_s3(
        &server,
        &["reopen", &format!("GRIDSTORE:{vsi}"), s(&later), vsi],
    );
    assert!(out.contains("sees the new state"), "{out}");
}

#[test]
fn over_gcs_gdal_rasterio_and_the_cli_read_what_is_on_disk_and_writes_are_refused() {
    let dir = tmp();
    let dem = dem_store(dir.path());
    let server = gcs("stores");
    let vsi = "/vsigs/stores/dem.gridstore";
    checks_on(&server, &["upload", s(&dem), vsi]);
    // Every band, mask and level, through GDAL and rasterio; the CLI's verify.
    checks_on(&server, &["same", s(&dem), &format!("GRIDSTORE:{vsi}")]);
    let verify = |store: &str| ok_on(&server, &gridstore(), &["verify", store]);
    assert_eq!(
        verify(vsi).replace(vsi, "STORE"),
        verify(s(&dem)).replace(s(&dem), "STORE")
    );
    // No write there: the emulator, like the stores gridstore writes, would need
    // preconditions honoured.
    let out = run_on(
        &server,
        &gridstore(),
        &["ingest", "-q", vsi, s(&sample("olinda_dem_utm25s.tif"))],
    );
    assert!(!out.status.success());
    assert!(said(&out).contains("read-only"), "{}", said(&out));
}

#[test]
fn writes_to_a_store_over_http_are_refused_and_change_nothing() {
    let dir = tmp();
    let store = dem_store(dir.path());
    let server = nginx(dir.path());
    let before = tree(&store);
    let remote = format!("/vsicurl/http://127.0.0.1:{}/dem.gridstore", server.port);
    let new_store = format!("/vsicurl/http://127.0.0.1:{}/new.gridstore", server.port);
    let src = sample("olinda_dem_utm25s.tif");
    let attempts: Vec<(String, Vec<&str>)> = vec![
        (
            "gdal_translate".into(),
            vec!["-q", "-of", "GRIDSTORE", s(&src), &remote],
        ),
        (
            "gdal_translate".into(),
            vec!["-q", "-of", "GRIDSTORE", s(&src), &new_store],
        ),
        (gridstore(), vec!["ingest", "-q", &remote, s(&src)]),
        (gridstore(), vec!["gc", "--keep", "1", &remote]),
        (gridstore(), vec!["rollback", "--to", "1", &remote]),
        (gridstore(), vec!["repair", &remote]),
        (gridstore(), vec!["rm", &remote]),
    ];
    for (program, args) in attempts {
        let out = run(&program, &args);
        let err = failed_cleanly(&out);
        assert!(
            err.contains("read-only") && err.contains("conditional"),
            "{program} {args:?} should say why it cannot write: {err}"
        );
    }
    // GDAL's update mode.
    let out = run(
        "/usr/bin/python3",
        &[
            "-c",
            "from osgeo import gdal; import sys\n\
             ds = gdal.OpenEx(sys.argv[1], gdal.OF_RASTER | gdal.OF_UPDATE)\n\
             sys.exit(0 if ds is None else 1)",
            &format!("GRIDSTORE:{remote}"),
        ],
    );
    assert!(out.status.success(), "an update open over HTTP must fail");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read-only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree(&store), before, "the store's files changed");
    assert!(!dir.path().join("new.gridstore").exists());
}

/// Every file under `dir` with its size, sorted.
fn tree(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            match e.file_type().unwrap().is_dir() {
                true => stack.push(e.path()),
                false => out.push((e.path(), e.metadata().unwrap().len())),
            }
        }
    }
    out.sort();
    out
}
