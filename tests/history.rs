//! A store's history through the real tools: `gridstore log`, `rollback`, `gc` and
//! `repair`, with GDAL reading current and past snapshots.
//!
//! What a snapshot holds is read here from its objects as docs/FORMAT.md describes them
//! (manifest, index nodes), independently of the library, so that what gc removes and what
//! log counts can be checked against the bytes on disk.

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn gridstore() -> &'static str {
    env!("CARGO_BIN_EXE_gridstore")
}

fn cli_ok(args: &[&str]) -> String {
    ok(gridstore(), args)
}

/// A raster from `update_cases.py make`: VALUE plus column and row patterns, 10 m cells in
/// UTM 31N, nodata -9999.
fn make(path: &Path, x0: f64, y0: f64, w: usize, h: usize, value: f64) {
    let args = [x0, y0, w as f64, h as f64, value].map(|v| v.to_string());
    let mut all = vec!["make", s(path)];
    all.extend(args.iter().map(String::as_str));
    all.extend(["--nodata", "-9999"]);
    python_ok("update_cases.py", &all);
}

/// A 200 x 160 store with 64-pixel tiles (4 x 3 tiles at level 0, three levels) made by
/// gdal_translate: snapshot 1.
fn base_store(dir: &Path) -> PathBuf {
    base_store_with(dir, &[])
}

/// [`base_store`] made with more creation options.
fn base_store_with(dir: &Path, options: &[&str]) -> PathBuf {
    let a = dir.join("a.tif");
    make(&a, 500000.0, 5000000.0, 200, 160, 100.0);
    let st = dir.join("s.gridstore");
    let mut all = vec!["BLOCKSIZE=64"];
    all.extend(options);
    ingest(s(&a), &st, &all);
    st
}

/// `gdalinfo -checksum` of a past snapshot: bands, then overviews.
fn checksums_at(store: &Path, id: u64) -> Vec<String> {
    let option = format!("SNAPSHOT={id}");
    checksums_opened_with(s(store), &["-oo", &option])
}

fn size_line(store: &Path) -> String {
    ok("gdalinfo", &[s(store)])
        .lines()
        .find(|l| l.starts_with("Size is"))
        .expect("gdalinfo prints the size")
        .to_string()
}

/// The content digest `gridstore verify` prints, insisting that it found no problem.
fn digest(store: &Path, snapshot: Option<u64>) -> String {
    let id = snapshot.map(|i| i.to_string());
    let mut args = vec!["verify", s(store)];
    if let Some(id) = &id {
        args.extend(["--snapshot", id.as_str()]);
    }
    let out = cli_ok(&args);
    assert!(out.contains("no problems"), "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("content digest: "))
        .unwrap_or_else(|| panic!("no digest in:\n{out}"))
        .to_string()
}

/// One row of `gridstore log`.
#[derive(Debug)]
struct LogRow {
    id: u64,
    created: SystemTime,
    written: u64,
    removed: u64,
    writer: String,
}

fn log(store: &Path) -> Vec<LogRow> {
    let out = cli_ok(&["log", s(store)]);
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    for column in ["snapshot", "created", "written", "removed", "writer"] {
        assert!(header.contains(column), "no {column} column:\n{out}");
    }
    lines
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            assert!(words.len() >= 5, "short log row {l:?}");
            LogRow {
                id: words[0].parse().unwrap(),
                created: humantime::parse_rfc3339(words[1])
                    .unwrap_or_else(|e| panic!("{l:?}: the time is not RFC 3339: {e}")),
                written: words[2].parse().unwrap(),
                removed: words[3].parse().unwrap(),
                writer: words[4..].join(" "),
            }
        })
        .collect()
}

fn ids(rows: &[LogRow]) -> Vec<u64> {
    rows.iter().map(|r| r.id).collect()
}

/// Every file under `dir`, relative to it, with its size.
fn files(dir: &Path) -> BTreeMap<String, u64> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                walk(root, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_owned();
                out.insert(rel.to_str().unwrap().to_string(), meta.len());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A tile's key `(t, p, z, col, row)` and its index entry `(seq, size, crc, base, pack,
/// offset)`.
type Key = (u32, u8, u8, i32, i32);
type Entry = (u64, u32, u32, u64, u32, u64);

/// What a snapshot holds: its tiles, and every object it reaches (index nodes and chunks).
#[derive(Default)]
struct Contents {
    tiles: BTreeMap<Key, Entry>,
    objects: BTreeSet<String>,
}

fn contents(store: &Path, id: u64) -> Contents {
    let path = store.join(format!("snapshots/{id}.json"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(manifest["format_version"], 4, "stores are made in format 4");
    let mut c = Contents::default();
    let root = &manifest["index"]["root"];
    if !root.is_null() {
        let (seq, node) = (root["seq"].as_u64().unwrap(), root["id"].as_u64().unwrap());
        read_node(store, &format!("index/{seq}/{node}"), &mut c);
    }
    c
}

/// The object of a chunk of tile (t, p, z, col, row) written by snapshot `seq` as an object
/// of its own, named as a store of format 3 or 4 names it (docs/FORMAT.md §1): in the directory of the 16 x 16 block of
/// level-0 tiles that holds its top-left corner, with no dot in its names.
fn chunk_object(seq: u64, (t, p, z, col, row): Key) -> String {
    let block = |i: i32| (i64::from(i) << z) >> 4;
    let (brow, bcol) = (block(row), block(col));
    format!("chunks/{seq}/{t}_{p}_{brow}_{bcol}/{z}_{row}_{col}")
}

/// Reads an index node as docs/FORMAT.md §4 describes versions 4 and 5 (written here
/// independently of the library), and the nodes below it.
fn read_node(store: &Path, key: &str, c: &mut Contents) {
    let bytes = std::fs::read(store.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"));
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    assert_eq!(&bytes[..4], b"GSIX", "{key} is no index node");
    let version = bytes[4];
    assert!(
        [4, 5].contains(&version),
        "{key}: writers write node versions 4 and 5"
    );
    let leaf = bytes[5] == 0;
    let (count, len) = (u32_at(&bytes, 8) as usize, u32_at(&bytes, 12) as usize);
    let record = match (leaf, version) {
        (true, 5) => 50,
        (true, _) => 38,
        (false, _) => 26,
    };
    assert_eq!(
        len,
        count * record,
        "{key}: the body holds exactly its records"
    );
    assert_eq!(bytes.len(), 16 + len + 4, "{key}: header, body, checksum");
    c.objects.insert(key.to_string());
    for r in bytes[16..16 + len].chunks_exact(record) {
        let t = u32_at(r, 0);
        let (p, z) = (r[4], r[5]);
        let (col, row) = (u32_at(r, 6) as i32, u32_at(r, 10) as i32);
        let seq = u64_at(r, 14);
        let second = u32_at(r, 22);
        if leaf {
            let base = u64_at(r, 30);
            let (pack, offset) = match version {
                5 => (u32_at(r, 38), u64_at(r, 42)),
                _ => (0, 0),
            };
            let entry = (seq, second, u32_at(r, 26), base, pack, offset);
            c.tiles.insert((t, p, z, col, row), entry);
            c.objects.insert(match pack {
                0 => chunk_object(seq, (t, p, z, col, row)),
                _ => format!("chunks/{seq}/{pack}"),
            });
            // A chunk that keeps frames in an older chunk of its tile reaches that one.
            if base != 0 {
                c.objects.insert(chunk_object(base, (t, p, z, col, row)));
            }
        } else {
            read_node(store, &format!("index/{seq}/{second}"), c);
        }
    }
}

/// Tiles written (new, or with another chunk) and removed going from `before` to `after`.
fn differences(before: &Contents, after: &Contents) -> (u64, u64) {
    let written = after
        .tiles
        .iter()
        .filter(|(k, e)| before.tiles.get(k) != Some(e))
        .count();
    let removed = before
        .tiles
        .keys()
        .filter(|k| !after.tiles.contains_key(k))
        .count();
    (written as u64, removed as u64)
}

#[test]
fn log_lists_every_snapshot_newest_first() {
    let started = SystemTime::now() - Duration::from_secs(1);
    let dir = tmp();
    let st = dir.path().join("log.gridstore");
    cli_ok(&[
        "create",
        s(&st),
        "--crs",
        "EPSG:32631",
        "--origin",
        "500000",
        "5000000",
        "--cell-size",
        "10",
        "--tile-size",
        "64",
        "--nodata",
        "-9999",
    ]);
    let a = dir.path().join("a.tif");
    make(&a, 500000.0, 5000000.0, 200, 160, 100.0);
    cli_ok(&["ingest", "-q", s(&st), s(&a)]);
    // Beyond the right edge: new tiles, and a level more.
    let b = dir.path().join("b.tif");
    make(&b, 501800.0, 4999500.0, 300, 50, 700.0);
    translate_into_ok(&b, &st, &[]);
    // Back to before b: its tiles are removed again.
    cli_ok(&["rollback", s(&st), "--to", "2"]);

    let rows = log(&st);
    assert_eq!(ids(&rows), [4, 3, 2, 1], "{rows:#?}");
    let writers: [&[&str]; 4] = [
        &["gridstore rollback --to 2", "[restores snapshot 2]"],
        &["GDAL CreateCopy into the store, from", "b.tif"],
        &["gridstore ingest"],
        &["gridstore create"],
    ];
    for (row, words) in rows.iter().zip(writers) {
        for w in words {
            assert!(row.writer.contains(w), "{row:?} should say {w:?}");
        }
    }
    let now = SystemTime::now();
    for pair in rows.windows(2) {
        assert!(
            pair[0].created >= pair[1].created,
            "not newest first: {rows:#?}"
        );
    }
    for row in &rows {
        assert!(row.created >= started && row.created <= now, "{row:?}");
    }
    // The counts are those of the tiles each commit changed, as its index says.
    let held: Vec<Contents> = (1..=4).map(|id| contents(&st, id)).collect();
    assert!(held[0].tiles.is_empty());
    assert_eq!((rows[3].written, rows[3].removed), (0, 0));
    for id in 2..=4usize {
        let row = &rows[4 - id];
        let expected = differences(&held[id - 2], &held[id - 1]);
        assert_eq!((row.written, row.removed), expected, "{row:?}");
    }
    assert!(
        rows[0].removed > 0,
        "the rollback removed b's tiles: {rows:#?}"
    );
    assert_eq!(rows[1].removed, 0);
    assert!(rows[1].written > 0);
}

#[test]
fn rollback_restores_an_earlier_state_and_can_be_undone() {
    let dir = tmp();
    let st = base_store(dir.path());
    // Checksums and digest of each state while it is the current one.
    let mut at: BTreeMap<u64, (Vec<String>, String)> = BTreeMap::new();
    at.insert(1, (checksums(s(&st)), digest(&st, None)));
    let b = dir.path().join("b.tif");
    make(&b, 500500.0, 4999500.0, 80, 60, 500.0);
    cli_ok(&["ingest", "-q", s(&st), s(&b)]);
    at.insert(2, (checksums(s(&st)), digest(&st, None)));
    // Left of and above the origin: the extent grows and a level is added.
    let c = dir.path().join("c.tif");
    make(&c, 499000.0, 5001000.0, 120, 110, 900.0);
    translate_into_ok(&c, &st, &[]);
    at.insert(3, (checksums(s(&st)), digest(&st, None)));
    let size_at_3 = size_line(&st);
    assert_ne!(size_at_3, "Size is 200, 160");
    assert!(
        at[&1].0 != at[&2].0 && at[&2].0 != at[&3].0 && at[&1].1 != at[&3].1,
        "every commit changed the data: {at:?}"
    );
    for (id, (sums, _)) in &at {
        assert_eq!(&checksums_at(&st, *id), sums, "snapshot {id} read back");
    }

    let out = cli_ok(&["rollback", s(&st), "--to", "1"]);
    assert!(
        out.contains("snapshot 1 is current again, as snapshot 4"),
        "{out}"
    );
    assert!(
        out.contains("gridstore rollback --to 3"),
        "the undo is named: {out}"
    );
    assert_eq!(checksums(s(&st)), at[&1].0);
    assert_eq!(digest(&st, None), at[&1].1);
    assert_eq!(size_line(&st), "Size is 200, 160");
    let rows = log(&st);
    assert_eq!(ids(&rows), [4, 3, 2, 1], "nothing is lost: {rows:#?}");
    assert!(
        rows[0].writer.contains("[restores snapshot 1]"),
        "{rows:#?}"
    );
    // The later states are still there to read.
    assert_eq!(checksums_at(&st, 3), at[&3].0);

    // Rolling the rollback back returns to the state it replaced.
    let out = cli_ok(&["rollback", s(&st), "--to", "3"]);
    assert!(out.contains("as snapshot 5"), "{out}");
    assert_eq!(checksums(s(&st)), at[&3].0);
    assert_eq!(digest(&st, None), at[&3].1);
    assert_eq!(size_line(&st), size_at_3);
    let rows = log(&st);
    assert_eq!(ids(&rows), [5, 4, 3, 2, 1]);
    assert!(
        rows[0].writer.contains("[restores snapshot 3]"),
        "{rows:#?}"
    );

    // Refusals change nothing and leave no lock behind.
    let before = files(&st);
    for (to, expected) in [
        ("5", "snapshot 5 is already the current state"),
        ("42", "there is no snapshot 42"),
    ] {
        let err = failed_cleanly(&run(gridstore(), &["rollback", s(&st), "--to", to]));
        assert!(err.contains(expected), "rollback --to {to}: {err}");
        assert_eq!(files(&st), before, "rollback --to {to} changed the store");
    }
    assert_eq!(ids(&log(&st)), [5, 4, 3, 2, 1]);
}

#[test]
fn gc_removes_only_what_no_kept_snapshot_needs() {
    let dir = tmp();
    let st = base_store(dir.path());
    // Six commits. Patches replace some tiles (and always their ancestors) and leave the
    // others shared with snapshot 1; 4 restores 2, so it reaches the index node and the
    // chunks that snapshot 2 wrote.
    let patch = |name: &str, x: f64, y: f64, w: usize, h: usize, value: f64| {
        let p = dir.path().join(name);
        make(&p, x, y, w, h, value);
        p
    };
    // Tile (0, 0), then tile (2, 1), through both writers.
    translate_into_ok(
        &patch("p2.tif", 500100.0, 4999900.0, 40, 30, 500.0),
        &st,
        &[],
    );
    let p3 = patch("p3.tif", 501350.0, 4999250.0, 40, 30, 900.0);
    cli_ok(&["ingest", "-q", s(&st), s(&p3)]);
    cli_ok(&["rollback", s(&st), "--to", "2"]);
    // Tile (2, 2), then tiles (0, 0) and (1, 0) again.
    let p5 = patch("p5.tif", 501500.0, 4998700.0, 40, 25, 1300.0);
    cli_ok(&["ingest", "-q", s(&st), s(&p5)]);
    translate_into_ok(
        &patch("p6.tif", 500300.0, 4999800.0, 60, 30, 1700.0),
        &st,
        &[],
    );
    assert_eq!(ids(&log(&st)), [6, 5, 4, 3, 2, 1]);

    let all: Vec<u64> = (1..=6).collect();
    let (kept, removed) = (vec![4, 5, 6], vec![1, 2, 3]);
    let sums: BTreeMap<u64, Vec<String>> = all.iter().map(|&i| (i, checksums_at(&st, i))).collect();
    let digests: BTreeMap<u64, String> = all.iter().map(|&i| (i, digest(&st, Some(i)))).collect();
    let held: BTreeMap<u64, Contents> = all.iter().map(|&i| (i, contents(&st, i))).collect();
    let distinct: BTreeSet<&String> = digests.values().collect();
    assert_eq!(distinct.len(), 5, "only 4 repeats a state: {digests:?}");
    assert_eq!(sums[&4], sums[&2]);
    let needed: BTreeSet<String> = kept.iter().flat_map(|i| held[i].objects.clone()).collect();
    let garbage: BTreeSet<String> = removed
        .iter()
        .flat_map(|i| held[i].objects.clone())
        .filter(|o| !needed.contains(o))
        .collect();
    // The history exercises what it should: kept snapshots need objects written by removed
    // ones (a node of 2, chunks of 1), and some objects of 1 are garbage beside them.
    assert!(needed.contains("index/2/0"), "{needed:?}");
    assert!(needed.iter().any(|o| o.starts_with("chunks/1/")));
    assert!(
        garbage.iter().any(|o| o.starts_with("chunks/1/")),
        "{garbage:?}"
    );
    assert!(
        garbage.iter().any(|o| o.starts_with("chunks/3/")),
        "{garbage:?}"
    );
    let before = files(&st);
    let objects_before: BTreeSet<&String> = before
        .keys()
        .filter(|f| f.starts_with("chunks/") || f.starts_with("index/"))
        .collect();
    let referenced: BTreeSet<&String> = needed.iter().chain(&garbage).collect();
    assert_eq!(
        objects_before, referenced,
        "every object belongs to some snapshot"
    );

    let out = cli_ok(&["gc", s(&st), "--keep", "3"]);
    let garbage_chunks = garbage.iter().filter(|o| o.starts_with("chunks/")).count();
    let expected = format!(
        "kept snapshot(s) 6, 5, 4; removed 3 snapshot(s), {garbage_chunks} chunk(s), {} index \
         node(s)",
        garbage.len() - garbage_chunks
    );
    assert!(out.contains(&expected), "expected {expected:?}, got {out}");

    let after = files(&st);
    for o in &needed {
        assert!(
            after.contains_key(o),
            "gc removed {o}, which a kept snapshot uses"
        );
    }
    for o in &garbage {
        assert!(
            !after.contains_key(o),
            "gc left {o}, which only removed snapshots used"
        );
    }
    let objects_after: BTreeSet<&String> = after
        .keys()
        .filter(|f| f.starts_with("chunks/") || f.starts_with("index/"))
        .collect();
    assert_eq!(objects_after, needed.iter().collect());
    let manifests: Vec<&String> = after
        .keys()
        .filter(|f| f.starts_with("snapshots/"))
        .collect();
    assert_eq!(
        manifests,
        ["snapshots/4.json", "snapshots/5.json", "snapshots/6.json"]
    );
    let (size_before, size_after): (u64, u64) = (before.values().sum(), after.values().sum());
    assert!(
        size_after < size_before,
        "{size_before} -> {size_after} bytes"
    );

    for id in &kept {
        assert_eq!(digest(&st, Some(*id)), digests[id], "snapshot {id}");
        assert_eq!(checksums_at(&st, *id), sums[id], "snapshot {id}");
    }
    assert_eq!(checksums(s(&st)), sums[&6]);
    assert_eq!(
        ids(&log(&st)),
        kept.iter().rev().copied().collect::<Vec<_>>()
    );
    for id in &removed {
        let option = format!("SNAPSHOT={id}");
        let err = failed_cleanly(&run("gdalinfo", &["-oo", &option, s(&st)]));
        assert!(
            err.contains(&format!("no snapshot {id}")) && err.contains("gc"),
            "{err}"
        );
        let id = id.to_string();
        let err = failed_cleanly(&run(gridstore(), &["verify", s(&st), "--snapshot", &id]));
        assert!(err.contains("gc"), "{err}");
    }

    // Nothing is left for a second gc; and keeping nothing is refused.
    let out = cli_ok(&["gc", s(&st), "--keep", "3"]);
    assert!(
        out.contains("removed 0 snapshot(s), 0 chunk(s), 0 index node(s)"),
        "{out}"
    );
    assert_eq!(files(&st), after);
    let err = failed_cleanly(&run(gridstore(), &["gc", s(&st), "--keep", "0"]));
    assert!(err.contains("--keep must be at least 1"), "{err}");
    assert_eq!(files(&st), after);
}

#[test]
fn gc_keeps_the_chunks_that_updated_levels_keep_frames_in() {
    let dir = tmp();
    // 512 x 512 Float32 in 256-pixel tiles: 2 x 2 tiles at level 0, one at level 1, whose
    // chunk is cut in 2 x 2 blocks of 128 x 128.
    let a = dir.path().join("a.tif");
    make(&a, 500000.0, 5000000.0, 512, 512, 100.0);
    let st = dir.path().join("s.gridstore");
    ingest(s(&a), &st, &["BLOCKSIZE=256"]);
    // A patch in the top left tile changes the top left quadrant of the level-1 tile. Its
    // chunk of snapshot 1 is in a pack, which no chunk keeps frames in: the new chunk
    // (snapshot 2, an object of its own) copies the other blocks. A second patch there
    // makes a chunk (snapshot 3) that holds the changed block and keeps the others in
    // that one.
    let p = dir.path().join("p.tif");
    make(&p, 500100.0, 4999900.0, 50, 40, 900.0);
    translate_into_ok(&p, &st, &[]);
    let top = (0u32, 0u8, 1u8, 0i32, 0i32);
    let (seq, _, _, base, pack, _) = contents(&st, 2).tiles[&top];
    assert_eq!((seq, base, pack), (2, 0, 0));
    let p = dir.path().join("p2.tif");
    make(&p, 500200.0, 4999800.0, 30, 30, 950.0);
    translate_into_ok(&p, &st, &[]);
    let held = contents(&st, 3);
    let (seq, _, _, base, _, _) = held.tiles[&top];
    assert_eq!((seq, base), (3, 2), "{:?}", held.tiles);
    let sums = checksums(s(&st));
    let digest_before = digest(&st, None);

    let out = cli_ok(&["gc", s(&st), "--keep", "1"]);
    assert!(
        out.contains("kept snapshot(s) 3; removed 2 snapshot(s)"),
        "{out}"
    );
    let after = files(&st);
    assert!(!after.contains_key("snapshots/2.json"));
    assert!(
        after.contains_key("chunks/2/0_0_0_0/1_0_0"),
        "gc removed the base of a kept chunk: {after:?}"
    );
    assert_eq!(
        after
            .keys()
            .filter(|f| f.starts_with("chunks/") || f.starts_with("index/"))
            .collect::<BTreeSet<_>>(),
        held.objects.iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(checksums(s(&st)), sums);
    assert_eq!(digest(&st, None), digest_before);

    // Without its base, the chunk is reported damaged, never read as something else.
    std::fs::remove_file(st.join("chunks/2/0_0_0_0/1_0_0")).unwrap();
    let out = run(gridstore(), &["verify", s(&st)]);
    let said = said(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("chunks/2/0_0_0_0/1_0_0") && said.contains("missing"),
        "{said}"
    );
    // (gdalinfo reports a checksum it cannot compute, and exits with success.)
    let out = run("gdalinfo", &["-checksum", s(&st)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("chunks/2/0_0_0_0/1_0_0") && err.contains("damaged"),
        "{err}"
    );
}

/// Turns a store of format 3 into one of an earlier `version`, as the builds of that
/// format wrote them: chunk objects named `chunks/<id>/<t>/<p>/<z>/<row>/<col>` (format 1)
/// or `chunks/<id>/<t>.<p>.<brow>.<bcol>/<z>.<row>.<col>` (format 2).
fn as_format(store: &Path, version: u32) {
    for name in files(store).keys() {
        let Some(rest) = name.strip_prefix("chunks/") else {
            if name == "gridstore.json" || name.starts_with("snapshots/") {
                let path = store.join(name);
                let text = std::fs::read_to_string(&path).unwrap();
                let old = text.replace(
                    "\"format_version\": 3",
                    &format!("\"format_version\": {version}"),
                );
                assert_ne!(old, text, "{name}");
                std::fs::write(path, old).unwrap();
            }
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let [seq, dir, file] = parts[..] else {
            panic!("{name} is not named as format 3 names chunks")
        };
        let (dir, file): (Vec<&str>, Vec<&str>) =
            (dir.split('_').collect(), file.split('_').collect());
        let (&[t, p, brow, bcol], &[z, row, col]) = (&dir[..], &file[..]) else {
            panic!("{name} is not named as format 3 names chunks")
        };
        let old = match version {
            1 => format!("chunks/{seq}/{t}/{p}/{z}/{row}/{col}"),
            2 => format!("chunks/{seq}/{t}.{p}.{brow}.{bcol}/{z}.{row}.{col}"),
            _ => panic!("no format {version} to turn a store into"),
        };
        std::fs::create_dir_all(store.join(&old).parent().unwrap()).unwrap();
        std::fs::rename(store.join(name), store.join(&old)).unwrap();
        let _ = std::fs::remove_dir(store.join(name).parent().unwrap());
    }
}

/// A store of an earlier format `version` reads as before; written into by this build, it
/// keeps its version and names its new chunks as that version does (`depth` directory
/// levels below `chunks/<id>/`, `dotted` names or not); gc walks those names.
fn an_earlier_format_keeps_its_chunk_names(version: u32, depth: usize, dotted: bool) {
    let dir = tmp();
    // `new` and `old` start as stores of format 3 (every chunk an object of its own); `old`
    // then becomes one of `version`. `packed` is a store of this build's format.
    let made = |name: &str, options: &[&str]| {
        let parent = dir.path().join(name);
        std::fs::create_dir(&parent).unwrap();
        base_store_with(&parent, options)
    };
    let new = made("new", &["FORMAT_VERSION=3"]);
    let old = made("old", &["FORMAT_VERSION=3"]);
    let packed = made("packed", &[]);
    if version < 3 {
        as_format(&old, version);
    }
    assert_eq!(checksums(s(&old)), checksums(s(&new)), "it reads as before");
    assert_eq!(checksums(s(&old)), checksums(s(&packed)));
    let p = dir.path().join("p.tif");
    make(&p, 500100.0, 4999900.0, 90, 70, 700.0);
    for st in [&old, &new, &packed] {
        translate_into_ok(&p, st, &[]);
    }
    assert_eq!(checksums(s(&old)), checksums(s(&new)));
    assert_eq!(checksums(s(&old)), checksums(s(&packed)));
    assert_eq!(digest(&old, None), digest(&new, None));
    assert_eq!(
        digest(&old, None),
        digest(&packed, None),
        "the same content as in packs"
    );
    let written: Vec<String> = files(&old)
        .into_keys()
        .filter(|f| f.starts_with("chunks/2/"))
        .collect();
    assert!(!written.is_empty());
    for f in &written {
        assert_eq!(
            f.split('/').count(),
            2 + depth,
            "{f} is not named as format {version}"
        );
        let name = f.rsplit('/').next().unwrap();
        assert_eq!(
            name.contains('.'),
            dotted,
            "{f} is not named as format {version}"
        );
    }
    let manifest = std::fs::read_to_string(old.join("gridstore.json")).unwrap();
    let said = format!("\"format_version\": {version}");
    assert!(manifest.contains(&said), "{manifest}");
    for st in [&old, &new] {
        let out = cli_ok(&["gc", s(st), "--keep", "1"]);
        assert!(out.contains("removed 1 snapshot(s)"), "{out}");
    }
    assert_eq!(checksums(s(&old)), checksums(s(&new)));
    assert_eq!(digest(&old, None), digest(&new, None));
    let chunks = |st: &Path| {
        let names = files(st).into_keys();
        names.filter(|f| f.starts_with("chunks/")).count()
    };
    assert_eq!(chunks(&old), chunks(&new), "gc removed as much in both");
}

#[test]
fn a_store_of_format_1_keeps_its_nested_chunk_names() {
    an_earlier_format_keeps_its_chunk_names(1, 5, false);
}

#[test]
fn a_store_of_format_2_keeps_its_dotted_chunk_names() {
    an_earlier_format_keeps_its_chunk_names(2, 2, true);
}

#[test]
fn a_store_of_format_3_keeps_every_chunk_an_object_of_its_own() {
    an_earlier_format_keeps_its_chunk_names(3, 2, false);
}

/// What an interrupted creation leaves: a lock of `pid`, objects of snapshot 1 (none that
/// a new creation of the same raster writes), and no gridstore.json.
fn unfinished_creation(path: &Path, pid: u32, process_start: Option<u64>) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let lock = serde_json::json!({
        "host": host.trim(),
        "pid": pid,
        "process_start": process_start,
        "started": "2024-05-01T10:00:00Z",
        "writer": "GDAL CreateCopy of a.tif",
    });
    std::fs::create_dir_all(path.join("chunks/1/0_0_0_0")).unwrap();
    std::fs::write(path.join("writer.lock"), lock.to_string()).unwrap();
    std::fs::write(path.join("chunks/1/0_0_0_0/0_9_9"), b"half a chunk").unwrap();
    std::fs::create_dir_all(path.join("index/1")).unwrap();
    std::fs::write(path.join("index/1/7"), b"half a node").unwrap();
    std::fs::create_dir_all(path.join("steps/1")).unwrap();
    std::fs::write(path.join("steps/1/999"), b"a step record").unwrap();
    std::fs::create_dir_all(path.join("sources/1")).unwrap();
    std::fs::write(path.join("sources/1/7.jsonl"), b"{\"path\": \"a.tif\"}").unwrap();
}

/// When this process started, in clock ticks since boot, as a writer's lock records it.
fn own_start_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(19).unwrap().parse().unwrap()
}

#[test]
fn an_interrupted_creation_is_removed_or_taken_over_but_not_while_alive() {
    let dir = tmp();
    let a = dir.path().join("a.tif");
    make(&a, 500000.0, 5000000.0, 200, 160, 100.0);
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    // Start tick 1: if the pid is reused meanwhile, it is by another process.
    let dead_start = Some(1);

    let repaired = dir.path().join("repaired.gridstore");
    unfinished_creation(&repaired, dead, dead_start);
    let out = cli_ok(&["repair", s(&repaired)]);
    assert!(out.contains("creation had been interrupted"), "{out}");
    assert!(!repaired.exists(), "repair left {:?}", files(&repaired));

    let retried = dir.path().join("retried.gridstore");
    unfinished_creation(&retried, dead, dead_start);
    ingest(s(&a), &retried, &["BLOCKSIZE=64"]);
    assert_eq!(band_checksums(s(&retried)), band_checksums(s(&a)));
    digest(&retried, None);
    assert_eq!(ids(&log(&retried)), [1]);
    let left = files(&retried);
    let debris = [
        "writer.lock",
        "chunks/1/0_0_0_0/0_9_9",
        "index/1/7",
        "steps/1/999",
        "sources/1/7.jsonl",
    ];
    for debris in debris {
        assert!(
            !left.contains_key(debris),
            "{debris} is still there: {left:?}"
        );
    }

    // Killed before its lock was in place: only the lock's temporary file is there.
    let early = dir.path().join("early.gridstore");
    std::fs::create_dir_all(&early).unwrap();
    std::fs::write(early.join(format!(".writer.lock.{dead}.0.new")), b"{\"ho").unwrap();
    ingest(s(&a), &early, &["BLOCKSIZE=64"]);
    assert_eq!(band_checksums(s(&early)), band_checksums(s(&a)));
    assert!(!files(&early).keys().any(|f| f.starts_with(".writer.lock.")));
    // The same file of a process still running is not debris: the directory is refused.
    let busy = dir.path().join("busy.gridstore");
    std::fs::create_dir_all(&busy).unwrap();
    let temporary = busy.join(format!(".writer.lock.{}.0.new", std::process::id()));
    std::fs::write(&temporary, b"{").unwrap();
    let err = failed_cleanly(&run(
        "gdal_translate",
        &["-q", "-of", "GRIDSTORE", s(&a), s(&busy)],
    ));
    assert!(err.contains("not empty"), "{err}");
    assert!(temporary.exists());

    // A creation still running (this very process) is left alone.
    let me = std::process::id();
    let running = dir.path().join("running.gridstore");
    unfinished_creation(&running, me, Some(own_start_ticks()));
    let before = files(&running);
    let holder = format!("process {me} on host");
    let err = failed_cleanly(&run(gridstore(), &["repair", s(&running)]));
    assert!(
        err.contains("another write is in progress") && err.contains(&holder),
        "{err}"
    );
    assert_eq!(files(&running), before);
    let err = failed_cleanly(&run(
        "gdal_translate",
        &["-q", "-of", "GRIDSTORE", s(&a), s(&running)],
    ));
    assert!(
        err.contains("being created by") && err.contains(&holder),
        "{err}"
    );
    assert_eq!(files(&running), before);
}

// Crafted damage. Index nodes are written with valid checksums (through the library's own
// encoder), and manifests carry none, so what stops each command is its own checks.

/// A store of three snapshots: the base, then a patch of tile (0, 0) through GDAL, then
/// one of tile (2, 1) through the CLI. Snapshot 1's chunks of the patched tiles are
/// garbage for a gc keeping one snapshot.
fn store_of_three(dir: &Path) -> PathBuf {
    let st = base_store(dir);
    let p2 = dir.join("p2.tif");
    make(&p2, 500100.0, 4999900.0, 40, 30, 500.0);
    translate_into_ok(&p2, &st, &[]);
    let p3 = dir.join("p3.tif");
    make(&p3, 501350.0, 4999250.0, 40, 30, 900.0);
    cli_ok(&["ingest", "-q", s(&st), s(&p3)]);
    assert_eq!(ids(&log(&st)), [3, 2, 1]);
    st
}

/// Changes a manifest's JSON in place.
fn edit_json(path: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    change(&mut m);
    std::fs::write(path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// The root of the current index, as gridstore.json names it.
fn current_root(store: &Path) -> gridstore::index::NodeRef {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("gridstore.json")).unwrap()).unwrap();
    serde_json::from_value(m["index"]["root"].clone()).unwrap()
}

/// Asserts that `args` fails cleanly, saying each of `says`, and changes no file.
fn refused(store: &Path, args: &[&str], says: &[&str]) -> String {
    let before = files(store);
    let err = failed_cleanly(&run(gridstore(), args));
    let lower = err.to_lowercase();
    for word in says {
        assert!(
            word.split('|').any(|w| lower.contains(&w.to_lowercase())),
            "{args:?} should say {word:?}: {err}"
        );
    }
    assert_eq!(files(store), before, "{args:?} changed the store");
    err
}

#[test]
fn a_damaged_index_stops_gc_and_every_walk_before_anything_is_removed() {
    use gridstore::index::Node;
    let dir = tmp();
    let st = store_of_three(dir.path());
    let root = current_root(&st);
    let key = root.object_key();
    let path = st.join(&key);
    let first = Node::decode(std::fs::read(&path).unwrap(), &key)
        .unwrap()
        .first_key()
        .unwrap();
    // The root made to point to itself, then made empty.
    let crafted = [
        Node::internal(vec![(first, root)]),
        Node::internal(Vec::new()),
    ];
    for node in crafted {
        std::fs::write(&path, node.bytes()).unwrap();
        let stopped = ["damaged index", key.as_str()];
        let err = refused(&st, &["gc", s(&st), "--keep", "1"], &stopped);
        assert!(err.contains("gc stopped before removing anything"), "{err}");
        refused(&st, &["rollback", s(&st), "--to", "1"], &stopped);
        let verify = run(gridstore(), &["verify", s(&st)]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            failed_cleanly(&verify)
        );
        assert!(
            said.contains("damaged index") && said.contains(&key),
            "{said}"
        );
        // A read through GDAL reports it too, and ends.
        let read = run("gdalinfo", &["-checksum", s(&st)]);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(read.status.signal(), None);
        let said = String::from_utf8_lossy(&read.stderr);
        assert!(said.contains("damaged index"), "{said}");
    }
}

#[test]
fn a_gc_whose_index_holds_fewer_tiles_than_its_manifest_removes_nothing() {
    let dir = tmp();
    let st = store_of_three(dir.path());
    edit_json(&st.join("gridstore.json"), |m| {
        let tiles = m["index"]["tiles"].as_u64().unwrap();
        m["index"]["tiles"] = (tiles + 1).into();
    });
    let err = refused(
        &st,
        &["gc", s(&st), "--keep", "1"],
        &["snapshots/3.json", "records"],
    );
    assert!(err.contains("gc stopped before removing anything"), "{err}");
}

#[test]
fn a_parent_cycle_in_the_history_is_damage_not_an_endless_walk() {
    let dir = tmp();
    let st = store_of_three(dir.path());
    // Snapshot 2 claims 3, its child, as its parent.
    edit_json(&st.join("snapshots/2.json"), |m| {
        m["snapshot"]["parent"] = 3.into()
    });
    let says = [
        "damaged history|not an earlier snapshot",
        "snapshots/2.json",
    ];
    refused(&st, &["log", s(&st)], &says);
    refused(&st, &["gc", s(&st), "--keep", "3"], &says);
    // A parent that skips ahead is no better.
    edit_json(&st.join("snapshots/2.json"), |m| {
        m["snapshot"]["parent"] = 2.into()
    });
    refused(&st, &["log", s(&st)], &says);
}

#[test]
fn a_store_at_the_last_snapshot_id_takes_no_write() {
    let dir = tmp();
    let st = base_store(dir.path());
    let last = gridstore::manifest::MAX_SNAPSHOT_ID;
    edit_json(&st.join("gridstore.json"), |m| {
        m["snapshot"]["id"] = last.into()
    });
    let p = dir.path().join("p.tif");
    make(&p, 500100.0, 4999900.0, 40, 30, 500.0);
    refused(
        &st,
        &["ingest", "-q", s(&st), s(&p)],
        &["gridstore.json", "largest a store may reach"],
    );
    refused(&st, &["rollback", s(&st), "--to", "1"], &["largest"]);
}

#[test]
fn repair_removes_nothing_from_a_store_whose_manifest_is_older_than_its_history() {
    let dir = tmp();
    let st = store_of_three(dir.path());
    let manifest = st.join("gridstore.json");
    let current = std::fs::read(&manifest).unwrap();
    // gridstore.json put back to snapshot 1 while 2 and 3 exist: what lies under snapshot
    // 2 is theirs, not an unfinished write's.
    std::fs::copy(st.join("snapshots/1.json"), &manifest).unwrap();
    refused(
        &st,
        &["repair", s(&st)],
        &["snapshots/3.json", "Nothing was removed"],
    );
    let p = dir.path().join("p.tif");
    make(&p, 500100.0, 4999900.0, 40, 30, 500.0);
    refused(&st, &["ingest", "-q", s(&st), s(&p)], &["snapshots/3.json"]);
    refused(
        &st,
        &["rollback", s(&st), "--to", "3"],
        &["snapshots/3.json"],
    );
    // Its id lowered, the rest left as it was: its index is snapshot 3's.
    std::fs::write(&manifest, &current).unwrap();
    edit_json(&manifest, |m| {
        m["snapshot"]["id"] = 1.into();
        m["snapshot"]["parent"] = serde_json::Value::Null;
    });
    refused(
        &st,
        &["repair", s(&st)],
        &["gridstore.json", "nothing was removed"],
    );
    refused(&st, &["gc", s(&st), "--keep", "1"], &["gridstore.json"]);
}

#[test]
fn gc_leaves_names_that_are_no_object_of_the_store() {
    let dir = tmp();
    let st = store_of_three(dir.path());
    let planted = [
        "chunks/1/0_0_0_0/notes.txt",
        "chunks/1/0_0_0_0/0_+0_0",
        "chunks/01/0_0_0_0/0_0_0",
        "chunks/1/0.0.0.0/0.0.0",
        "chunks/1/README",
        "index/1/00",
        "index/1/notes.txt",
        "index/x/0",
        "snapshots/+1.json",
        "snapshots/old.json",
    ];
    for name in planted {
        let path = st.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"not gridstore's").unwrap();
    }
    let out = cli_ok(&["gc", s(&st), "--keep", "1"]);
    assert!(out.contains("removed 2 snapshot(s)"), "{out}");
    assert!(
        out.contains(&format!("left {} name(s)", planted.len())),
        "{out}"
    );
    let after = files(&st);
    for name in planted {
        assert!(after.contains_key(name), "gc removed {name}: {out}");
    }
    // And what the store does need still reads.
    digest(&st, None);
}
