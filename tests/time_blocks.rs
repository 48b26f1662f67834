//! Time blocks (docs/FORMAT.md §8) through the real CLI and GDAL: compaction keeps every
//! series and window read equal, value by value, while reads go through the time blocks;
//! writes to a compacted block drop its time blocks in the same commit; gc, rollback and
//! verify cover them, and verify catches crafted ones with valid checksums.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gridstore::chunk::time_block::{assemble, encode_band_frame, encode_mask_frame, BlockObject};
use gridstore::grid::TileLoc;
use gridstore::index::{Node, TileKey, Tree};
use gridstore::store::lock::LockWait;
use gridstore::store::time_blocks::{gather_frames, new_shape, present_steps};
use gridstore::store::{point_series, point_series_counted, PointSample, Snapshot, Transaction};
use gridstore::time::MAX_TICK;

fn gridstore() -> &'static str {
    env!("CARGO_BIN_EXE_gridstore")
}

/// Map size: 3 x 2 tiles of 16 pixels, the last column and row of tiles partly filled.
const W: usize = 40;
const H: usize = 30;

/// The file name of the slice of tick `t` (a 5-minute axis from 2024-01-01T00:00).
fn slice_name(dir: &Path, t: u32) -> PathBuf {
    let (h, m) = (t * 5 / 60, t * 5 % 60);
    dir.join(format!("RAD_20240101{h:02}{m:02}.tif"))
}

/// Writes the slice of tick `t` (every fourth one with a nodata quadrant).
fn make_slice(dir: &Path, t: u32, seed: u64) -> PathBuf {
    let path = slice_name(dir, t);
    let (w, h, seed) = (W.to_string(), H.to_string(), seed.to_string());
    let mut args = vec!["tiff", s(&path), &w, &h, &seed];
    if t % 4 == 1 {
        args.push("--hole");
    }
    python_ok("time_slices.py", &args);
    path
}

/// Appends the slices of `ticks` (in one run) with `extra` options.
fn append(store: &Path, dir: &Path, ticks: &[u32], extra: &[&str]) -> String {
    let paths: Vec<PathBuf> = ticks
        .iter()
        .map(|&t| make_slice(dir, t, 1000 + u64::from(t)))
        .collect();
    let mut args = vec![
        "append",
        "-q",
        s(store),
        "--time-pattern",
        "RAD_%Y%m%d%H%M.tif",
        "--time-step",
        "PT5M",
        "--co",
        "BLOCKSIZE=16",
        "--co",
        "SERIES_BLOCK=4",
    ];
    args.extend_from_slice(extra);
    args.extend(paths.iter().map(|p| s(p)));
    ok(gridstore(), &args)
}

/// Ticks 0..=10 without tick 2 (a hole): blocks [0, 4) and [4, 8) are closed, [8, 12) is
/// not.
fn fixture(dir: &Path) -> PathBuf {
    let store = dir.join("rain.gridstore");
    let ticks: Vec<u32> = (0..=10).filter(|&t| t != 2).collect();
    append(&store, dir, &ticks, &["--no-compact"]);
    store
}

fn all_ticks(snap: &Snapshot) -> Vec<u32> {
    snap.steps(0, MAX_TICK, usize::MAX).unwrap()
}

/// Every pixel's series, the hole tick included (it reads as no data).
fn every_series(store: &Path) -> Vec<Vec<PointSample>> {
    let snap = Snapshot::open(store, None).unwrap();
    let ticks: Vec<u32> = (0..=snap.manifest().time.as_ref().unwrap().last.unwrap()).collect();
    let mut out = Vec::new();
    for y in 0..H as i64 {
        for x in 0..W as i64 {
            out.push(point_series(&snap, &ticks, x, y).unwrap());
        }
    }
    out
}

fn series_cli(store: &Path, x: &str, y: &str) -> String {
    ok(gridstore(), &["series", s(store), x, y, "--pixel"])
}

/// A window crossing tile edges over every band of the GDAL time view, as one dataset
/// read (the many-band window path), and `gdallocationinfo` of one pixel.
fn gdal_window(store: &Path) -> String {
    let script = "import hashlib, sys\nfrom osgeo import gdal\nds = gdal.Open(sys.argv[1])\n\
                  b = ds.ReadRaster(14, 13, 5, 6)\nprint(ds.RasterCount, hashlib.sha256(b).hexdigest())";
    let window = ok("/usr/bin/python3", &["-c", script, s(store)]);
    let point = ok("gdallocationinfo", &["-valonly", s(store), "3", "2"]);
    format!("{window}{point}")
}

fn compact(store: &Path) -> String {
    ok(gridstore(), &["compact", s(store)])
}

/// The time-block keys the current snapshot holds.
fn time_blocks(store: &Path) -> Vec<TileKey> {
    let snap = Snapshot::open(store, None).unwrap();
    let mut out = Vec::new();
    snap.index()
        .range(
            Tree::of(snap.manifest()),
            &TileKey::first_of_tick(0),
            &TileKey::after_all(),
            &mut |k, _| {
                if k.is_time_block() {
                    out.push(k);
                }
                Ok(true)
            },
        )
        .unwrap();
    out
}

fn verify(store: &Path) -> std::process::Output {
    run(gridstore(), &["verify", s(store)])
}

fn snapshot_id(store: &Path) -> u64 {
    Snapshot::open(store, None).unwrap().manifest().snapshot.id
}

#[test]
fn compaction_keeps_every_series_and_reads_go_through_time_blocks() {
    let dir = tmp();
    let store = fixture(dir.path());
    assert!(
        time_blocks(&store).is_empty(),
        "--no-compact wrote time blocks"
    );
    let series = every_series(&store);
    let cli = [series_cli(&store, "3", "2"), series_cli(&store, "17", "20")];
    let window = gdal_window(&store);

    let out = compact(&store);
    assert!(out.contains("compacted 2 block(s)"), "{out}");
    // Blocks [0, 4) and [4, 8), each over the 3 x 2 tiles.
    let keys = time_blocks(&store);
    assert_eq!(keys.len(), 12, "{keys:?}");
    assert_eq!(
        keys.iter().map(|k| k.time).collect::<BTreeSet<_>>(),
        BTreeSet::from([0, 4])
    );
    assert!(verify(&store).status.success());

    assert_eq!(every_series(&store), series, "series after compaction");
    assert_eq!(
        [series_cli(&store, "3", "2"), series_cli(&store, "17", "20")],
        cli
    );
    assert_eq!(gdal_window(&store), window);

    // The read went through the time blocks: one per closed block, and a step chunk for
    // each of ticks 8, 9 and 10 only.
    let snap = Snapshot::open(&store, None).unwrap();
    let (_, read) = point_series_counted(&snap, &all_ticks(&snap), 3, 2).unwrap();
    assert_eq!((read.time_blocks, read.step_chunks), (2, 3));

    // A second compaction has nothing to do.
    let again = compact(&store);
    assert!(again.contains("no closed block"), "{again}");
}

#[test]
fn a_series_reads_from_time_blocks_without_the_step_chunks() {
    let dir = tmp();
    let store = fixture(dir.path());
    let series = every_series(&store);
    compact(&store);
    // Remove the level-0 chunks of ticks 0..8: only the time blocks hold them now.
    let snap = Snapshot::open(&store, None).unwrap();
    let naming = snap.manifest().chunk_naming();
    let (mut removed, mut objects) = (0, BTreeSet::new());
    snap.index()
        .range(
            Tree::of(snap.manifest()),
            &TileKey::first_of_tick(0),
            &TileKey::first_of_tick(8),
            &mut |k, e| {
                if k.level == 0 && k.pyramid == 0 {
                    objects.insert(k.chunk_at(&e, naming).object);
                    removed += 1;
                }
                Ok(true)
            },
        )
        .unwrap();
    assert_eq!(removed, 7 * 6);
    // A level's chunks of a tick share packs with no other level's or tick's.
    for object in objects {
        std::fs::remove_file(store.join(object)).unwrap();
    }
    assert_eq!(every_series(&store), series);
}

#[test]
fn writes_to_a_compacted_block_drop_its_time_blocks_in_the_same_commit() {
    let dir = tmp();
    let store = fixture(dir.path());
    compact(&store);
    let firsts = |store: &Path| {
        time_blocks(store)
            .iter()
            .map(|k| k.time)
            .collect::<BTreeSet<_>>()
    };

    // Replace tick 5: block [4, 8) loses its time blocks in that very commit.
    let before = snapshot_id(&store);
    let path = make_slice(dir.path(), 5, 77);
    ok(
        gridstore(),
        &[
            "append",
            "-q",
            s(&store),
            "--replace",
            "--no-compact",
            "--time-pattern",
            "RAD_%Y%m%d%H%M.tif",
            s(&path),
        ],
    );
    assert_eq!(snapshot_id(&store), before + 1, "one commit");
    assert_eq!(firsts(&store), BTreeSet::from([0]));
    let snap = Snapshot::open(&store, None).unwrap();
    let mut map = vec![0u8; W * H * 4];
    let rect = gridstore::grid::PixelRect::new(0, 0, W as i64, H as i64);
    snap.read_region(5, 0, 0, rect, &mut map, None).unwrap();
    let map: &[f32] = bytemuck::cast_slice(&map);
    let got = point_series(&snap, &[5], 7, 20).unwrap();
    assert_eq!(got[0].values[0], Some(f64::from(map[20 * W + 7])));

    // Fill the hole at tick 2, then delete tick 1: block [0, 4) goes too.
    let path = make_slice(dir.path(), 2, 78);
    ok(
        gridstore(),
        &[
            "append",
            "-q",
            s(&store),
            "--insert",
            "--no-compact",
            "--time-pattern",
            "RAD_%Y%m%d%H%M.tif",
            s(&path),
        ],
    );
    assert!(firsts(&store).is_empty());
    compact(&store);
    assert_eq!(firsts(&store), BTreeSet::from([0, 4]));
    ok(
        gridstore(),
        &["delete-time", s(&store), "2024-01-01T00:05:00Z"],
    );
    assert_eq!(firsts(&store), BTreeSet::from([4]));
    let series = every_series(&store);
    compact(&store);
    assert_eq!(firsts(&store), BTreeSet::from([0, 4]));
    assert_eq!(every_series(&store), series);
    assert!(verify(&store).status.success());

    // An append that closes block [8, 12) compacts it in a commit of its own; one that
    // closes none commits only its slice.
    let out = append(&store, dir.path(), &[11], &[]);
    assert!(out.contains("compacted 1 closed block(s)"), "{out}");
    assert_eq!(firsts(&store), BTreeSet::from([0, 4, 8]));
    let before = snapshot_id(&store);
    let out = append(&store, dir.path(), &[12], &[]);
    assert!(!out.contains("compacted"), "{out}");
    assert_eq!(snapshot_id(&store), before + 1);
}

/// Every object the kept snapshots' indexes reach: chunks, their bases, step records.
fn reachable(store: &Path) -> BTreeSet<String> {
    let snap = Snapshot::open(store, None).unwrap();
    let naming = snap.manifest().chunk_naming();
    let mut out = BTreeSet::new();
    snap.index()
        .visit_nodes(Tree::of(snap.manifest()), &mut |_, node| {
            if let Node::Leaf(entries) = node {
                for (k, e) in entries.iter() {
                    out.insert(k.chunk_at(&e, naming).object);
                    if let Some(b) = e.base() {
                        out.insert(k.object_key(b, naming));
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    out
}

fn objects_on_disk(store: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for top in ["chunks", "steps"] {
        for e in walkdir(&store.join(top)) {
            out.insert(
                e.strip_prefix(store)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    out
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn gc_keeps_exactly_what_is_reachable_and_rollback_reads_the_same_series() {
    let dir = tmp();
    let store = fixture(dir.path());
    let series = every_series(&store);
    let before = snapshot_id(&store);
    compact(&store);
    ok(
        gridstore(),
        &["rollback", s(&store), "--to", &before.to_string()],
    );
    assert!(time_blocks(&store).is_empty());
    assert_eq!(every_series(&store), series);
    compact(&store);
    ok(gridstore(), &["gc", s(&store), "--keep", "1"]);
    assert_eq!(objects_on_disk(&store), reachable(&store));
    assert_eq!(time_blocks(&store).len(), 12);
    assert_eq!(every_series(&store), series);
    assert!(verify(&store).status.success());
}

/// Writes `object` as the time block `key` in a commit of its own (a crafted store).
fn put_crafted(store: &Path, key: TileKey, object: &BlockObject) {
    let txn = Transaction::begin(store, "test", LockWait::Fail).unwrap();
    txn.put_time_block(key, object).unwrap();
    txn.commit().unwrap();
}

/// The time block of tile (0, 0) over ticks [0, 4) as compaction makes it, with
/// `change` applied to its raw frames and `present` bits; checksums all valid.
fn crafted(
    store: &Path,
    present: impl Fn(&mut Vec<bool>),
    change: impl Fn(usize, &mut Vec<u8>),
    ticks: u32,
) -> BlockObject {
    let snap = Snapshot::open(store, None).unwrap();
    let m = snap.manifest();
    let mut bits = present_steps(&snap, 0, 4).unwrap();
    let shape = new_shape(m, 4, 0);
    let enc = m.encoding();
    let mut frames = Vec::new();
    gather_frames(
        &snap,
        &shape,
        TileLoc::new(0, 0, 0),
        &bits,
        &mut |s, raws| {
            for (i, raw) in raws.iter().enumerate() {
                let mut raw = raw.clone();
                change(s * shape.frames_per_block() + i, &mut raw);
                frames.push(match i < shape.bands {
                    true => encode_band_frame(&enc, shape.dtype, shape.ticks, &raw)?,
                    false => encode_mask_frame(&enc, &raw)?,
                });
            }
            Ok(())
        },
    )
    .unwrap();
    present(&mut bits);
    let mut object = assemble(&shape, &enc, &bits, frames).unwrap();
    if ticks != 4 {
        // The head's tick count (offset 16), with its checksums made valid again.
        object.head[16..20].copy_from_slice(&ticks.to_le_bytes());
        refresh_crcs(&mut object);
    }
    object
}

fn refresh_crcs(object: &mut BlockObject) {
    let n = object.head.len();
    let crc = crc32c::crc32c(&object.head[..n - 4]);
    object.head[n - 4..].copy_from_slice(&crc.to_le_bytes());
    let bytes = object.to_bytes();
    object.crc = crc32c::crc32c(&bytes[..bytes.len() - 4]);
}

fn verify_refuses(store: &Path, object: &BlockObject, want: &str) {
    let copy = tmp();
    let target = copy.path().join("c.gridstore");
    ok("cp", &["-r", s(store), s(&target)]);
    put_crafted(&target, TileKey::time_block(0, 0, 0), object);
    let out = verify(&target);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "verify passed a crafted block ({want}):\n{text}"
    );
    assert!(text.contains(want), "wanted {want:?}:\n{text}");
    assert!(text.contains("chunks/"), "the object is named:\n{text}");
}

#[test]
fn verify_catches_crafted_time_blocks_with_valid_checksums() {
    let dir = tmp();
    let store = fixture(dir.path());
    compact(&store);
    // The honest block passes.
    let honest = crafted(&store, |_| {}, |_, _| {}, 4);
    let copy = tmp();
    let target = copy.path().join("c.gridstore");
    ok("cp", &["-r", s(&store), s(&target)]);
    put_crafted(&target, TileKey::time_block(0, 0, 0), &honest);
    assert!(verify(&target).status.success());

    // One sample of the first band frame changed.
    let wrong = crafted(
        &store,
        |_| {},
        |i, raw| {
            if i == 0 {
                raw[0] ^= 1
            }
        },
        4,
    );
    verify_refuses(&store, &wrong, "differs from the tiles of its steps");
    // A present bit on the hole at tick 2.
    let hole = crafted(&store, |p| p[2] = true, |_, _| {}, 4);
    verify_refuses(
        &store,
        &hole,
        "present bits name tick 2, which holds no step",
    );
    // A head that says its block spans 8 ticks.
    let long = crafted(&store, |_| {}, |_, _| {}, 8);
    verify_refuses(&store, &long, "spans 8 ticks");
    // A frame length beyond what the codec makes of its frame.
    let mut big = crafted(&store, |_| {}, |_, _| {}, 4);
    let table = 32 + 1;
    big.head[table..table + 4].copy_from_slice(&(1u32 << 28).to_le_bytes());
    refresh_crcs(&mut big);
    verify_refuses(&store, &big, "claims 268435456 bytes");
}

/// A slice of Float32 random values without nodata (a store whose time blocks carry masks:
/// the pixels of the edge tiles beyond the map hold no data).
fn slice_without_nodata(dir: &Path, t: u32) -> PathBuf {
    let path = slice_name(dir, t);
    let script = "import sys\nimport numpy as np\nfrom osgeo import gdal\n\
        ds = gdal.GetDriverByName('GTiff').Create(sys.argv[1], 40, 30, 2, gdal.GDT_Float32)\n\
        ds.SetGeoTransform([500000, 10, 0, 5000000, 0, -10])\n\
        ds.SetProjection('EPSG:32631')\n\
        rng = np.random.default_rng(int(sys.argv[2]))\n\
        [ds.GetRasterBand(b).WriteArray(rng.normal(size=(30, 40))) for b in (1, 2)]\n";
    ok(
        "/usr/bin/python3",
        &["-c", script, s(&path), &t.to_string()],
    );
    path
}

#[test]
fn a_store_without_nodata_keeps_its_masks_in_time_blocks() {
    let dir = tmp();
    let store = dir.path().join("masked.gridstore");
    let paths: Vec<PathBuf> = (0..6)
        .map(|t| slice_without_nodata(dir.path(), t))
        .collect();
    let mut args = vec![
        "append",
        "-q",
        s(&store),
        "--time-pattern",
        "RAD_%Y%m%d%H%M.tif",
        "--time-step",
        "PT5M",
        "--co",
        "BLOCKSIZE=16",
        "--co",
        "SERIES_BLOCK=4",
        "--no-compact",
    ];
    args.extend(paths.iter().map(|p| s(p)));
    ok(gridstore(), &args);
    let snap = Snapshot::open(&store, None).unwrap();
    assert!(snap.manifest().uses_mask());
    let ticks = all_ticks(&snap);
    // The whole 3 x 2 tiles, beyond the 40 x 30 map, and a pixel of no tile.
    let pixels: Vec<(i64, i64)> = (0..32)
        .flat_map(|y| (0..48).map(move |x| (x, y)))
        .chain([(-3, -3)])
        .collect();
    let read = |store: &Path| {
        let snap = Snapshot::open(store, None).unwrap();
        pixels
            .iter()
            .map(|&(x, y)| point_series(&snap, &ticks, x, y).unwrap())
            .collect::<Vec<_>>()
    };
    let before = read(&store);
    assert_eq!(before[0][0].values.len(), 2);
    assert!(before[0][0].values[0].is_some());
    assert!(before[45][0].values[0].is_none(), "beyond the map: no data");
    compact(&store);
    assert_eq!(time_blocks(&store).len(), 6);
    assert_eq!(read(&store), before);
    let snap = Snapshot::open(&store, None).unwrap();
    let (_, r) = point_series_counted(&snap, &ticks, 45, 3).unwrap();
    assert_eq!((r.time_blocks, r.step_chunks), (1, 2));
    assert!(verify(&store).status.success());
}
