//! The optimistic commit protocol (claims, conditional writes, read-back, rebase) against
//! the in-memory backend with injected faults: lost races forced by committing another
//! writer's change just before the manifest write, lost responses, server errors and
//! timeouts. Each case checks the writer's outcome, and that the store ends in a committed
//! state that verifies, holds the right content, and keeps nothing of a failed write.
//! The last test runs writers at once on `/vsis3/` (moto's S3 server), where the same
//! protocol meets a real server's conditional writes.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gridstore::dtype::DataType;
use gridstore::grid::{PixelRect, TileLoc};
use gridstore::index::TileKey;
use gridstore::ingest::{new_store_manifest, SourceInfo};
use gridstore::manifest::{BandSpec, Manifest, MANIFEST_KEY};
use gridstore::options::CreateOptions;
use gridstore::storage::{Fault, FaultRule, MemoryStorage, Storage, StorageOp, VsiStorage};
use gridstore::store::lock::LockWait;
use gridstore::store::maintenance::verify;
use gridstore::store::{NewStore, Snapshot, Transaction, MAX_REBASES};
use gridstore::tile::Tile;
use gridstore::Error;

/// Tiles of 16 pixels, 4 x 4 of them: levels 0 to 2.
const TILE: usize = 16;
const TILES: i32 = 4;
const NODATA: f64 = -9999.0;

/// A level-0 tile (column, row) and the value its pixels are made from.
type Change = (i32, i32, f32);

fn new_manifest() -> Manifest {
    let size = TILE * TILES as usize;
    let source = SourceInfo {
        description: "test".into(),
        width: size,
        height: size,
        data_type: DataType::Float32,
        geotransform: None,
        crs_wkt: String::new(),
        bands: vec![BandSpec::gray(Some(NODATA))],
        metadata: BTreeMap::new(),
    };
    let opts = CreateOptions::parse(&[("BLOCKSIZE".into(), TILE.to_string())]).unwrap();
    new_store_manifest(&source, &opts).unwrap()
}

/// A tile whose pixels are `value` plus a little of their place in it.
fn tile(txn: &Transaction, value: f32) -> Tile {
    let mut t = Tile::empty(DataType::Float32, &txn.manifest.validity(), TILE);
    for (i, v) in t.data.typed_mut::<f32>().iter_mut().enumerate() {
        *v = value + (i % TILE) as f32 * 0.25 + (i / TILE) as f32;
    }
    t
}

fn key(level: u8, col: i32, row: i32) -> TileKey {
    TileKey::new(0, 0, TileLoc::new(level, col, row))
}

/// Writes `changes` at level 0 and makes the level tiles above them again from their
/// children, as a writer does.
fn write(txn: &Transaction, changes: &[Change]) -> gridstore::Result<()> {
    let mut locs: Vec<TileLoc> = Vec::new();
    for &(col, row, value) in changes {
        txn.put_tile(key(0, col, row), &tile(txn, value))?;
        locs.push(TileLoc::new(0, col, row));
    }
    let top = txn.manifest.layout().expect("a store with data").top;
    for _ in 0..top {
        locs = locs.iter().map(|l| l.parent()).collect();
        locs.sort_by_key(|l| (l.row, l.col));
        locs.dedup();
        for l in &locs {
            gridstore::pyramid::rebuild_from_children(txn, key(l.level, l.col, l.row))?;
        }
    }
    Ok(())
}

/// A store in memory holding every level-0 tile (value 1), committed by "creator".
fn store() -> Arc<MemoryStorage> {
    let s = MemoryStorage::new("memory/test.gridstore");
    create(&s, "creator").commit().unwrap();
    s
}

/// The creation of the store in `s` by `writer`, written but not committed.
fn create<S: Storage + 'static>(s: &Arc<S>, writer: &str) -> Transaction {
    let new = NewStore {
        path: s.location().to_path_buf(),
        manifest: new_manifest(),
    };
    let mut txn = Transaction::create_in(s.clone() as Arc<dyn Storage>, new, writer).unwrap();
    let size = (TILE as i64) * TILES as i64;
    txn.manifest.extent = Some(PixelRect::new(0, 0, size, size));
    let all: Vec<Change> = (0..TILES)
        .flat_map(|r| (0..TILES).map(move |c| (c, r, 1.0)))
        .collect();
    write(&txn, &all).unwrap();
    txn
}

/// `changes` by `writer`, written but not committed.
fn edit<S: Storage + 'static>(s: &Arc<S>, writer: &str, changes: &[Change]) -> Transaction {
    let txn = Transaction::begin_in(s.clone() as Arc<dyn Storage>, writer, LockWait::Fail).unwrap();
    write(&txn, changes).unwrap();
    txn
}

/// `changes` by `writer`, committed.
fn commit<S: Storage + 'static>(s: &Arc<S>, writer: &str, changes: &[Change]) -> Manifest {
    edit(s, writer, changes).commit().unwrap()
}

/// The committed state, checked: every object it refers to is there and sound. Returns it
/// with its content digest.
fn verified<S: Storage + 'static>(s: &Arc<S>) -> (Snapshot, String) {
    let snap = Snapshot::open_in(s.clone() as Arc<dyn Storage>, None).unwrap();
    let report = verify(&snap).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    (snap, report.content_digest)
}

/// The first pixel of the committed level-0 tile (column, row).
fn first_pixel(snap: &Snapshot, col: i32, row: i32) -> f32 {
    let t = snap.read_tile(&key(0, col, row)).unwrap().expect("a tile");
    t.data.typed::<f32>()[0]
}

/// The keys of objects written under snapshot id `seq`: its chunks, index nodes, step
/// records, snapshot manifest and claim.
fn objects_of(s: &MemoryStorage, seq: u64) -> Vec<String> {
    let under: Vec<String> = gridstore::index::WRITE_PREFIXES
        .iter()
        .map(|p| format!("{p}{seq}/"))
        .collect();
    let named = [format!("snapshots/{seq}.json"), format!("claims/{seq}")];
    s.keys()
        .into_iter()
        .filter(|k| under.iter().any(|p| k.starts_with(p)) || named.contains(k))
        .collect()
}

/// Who wrote the chunks, index nodes and step records in the store, by the snapshot each
/// was written under ("none" for objects of a snapshot that is not there).
fn writers_of_objects(s: &Arc<MemoryStorage>) -> Vec<String> {
    let mut writers = std::collections::BTreeSet::new();
    for k in s.keys() {
        let Some(rest) = gridstore::index::WRITE_PREFIXES
            .iter()
            .find_map(|p| k.strip_prefix(p))
        else {
            continue;
        };
        let seq: u64 = rest.split('/').next().unwrap().parse().unwrap();
        writers.insert(match Snapshot::open_in(s.clone(), Some(seq)) {
            Ok(snap) => snap.manifest().snapshot.writer.clone(),
            Err(_) => "none".to_string(),
        });
    }
    writers.into_iter().collect()
}

fn claims<S: Storage>(s: &Arc<S>) -> Vec<String> {
    s.list("claims/").unwrap()
}

/// Commits `changes` by "them" just before the next manifest write.
fn race(s: &Arc<MemoryStorage>, changes: &'static [Change]) {
    s.before_manifest_write(move |s| {
        commit(s, "them", changes);
    });
}

#[test]
fn a_lost_race_with_a_disjoint_change_rebases_and_keeps_both() {
    let s = store();
    let ours = edit(&s, "us", &[(3, 3, 7.0)]);
    let first_try = ours.seq();
    race(&s, &[(0, 0, 5.0)]);
    let committed = ours
        .commit()
        .expect("a disjoint change goes on top of theirs");
    let theirs = Snapshot::open_in(s.clone(), Some(committed.snapshot.parent.unwrap()))
        .unwrap()
        .manifest()
        .clone();
    assert_eq!(theirs.snapshot.writer, "them", "committed on top of theirs");
    assert!(committed.snapshot.id > first_try, "under a new claim");
    let (snap, digest) = verified(&s);
    assert_eq!(snap.manifest().snapshot.writer, "us");
    assert_eq!(first_pixel(&snap, 0, 0), 5.0);
    assert_eq!(first_pixel(&snap, 3, 3), 7.0);
    assert_eq!(first_pixel(&snap, 1, 1), 1.0);
    assert!(claims(&s).is_empty(), "{:?}", claims(&s));
    assert!(objects_of(&s, first_try)
        .iter()
        .all(|k| k.starts_with("chunks/")));
    // The same two writes one after the other: the level tiles both changed (the top one)
    // are what a write on top of the other makes.
    let one_by_one = store();
    commit(&one_by_one, "them", &[(0, 0, 5.0)]);
    commit(&one_by_one, "us", &[(3, 3, 7.0)]);
    assert_eq!(digest, verified(&one_by_one).1);
}

/// A STAC-like record of a source named `id`.
fn source(id: &str) -> serde_json::Value {
    serde_json::json!({"type": "Feature", "id": id, "properties": {}})
}

#[test]
fn a_lost_race_where_both_recorded_sources_links_ours_after_theirs() {
    let s = store();
    let mut ours = edit(&s, "us", &[(3, 3, 7.0)]);
    ours.record_sources([source("ours.tif")]);
    let first_try = ours.seq();
    s.before_manifest_write(|s| {
        let mut theirs = edit(s, "them", &[(0, 0, 5.0)]);
        theirs.record_sources([source("theirs.tif")]);
        theirs.commit().unwrap();
    });
    let committed = ours
        .commit()
        .expect("sources recorded by both are no conflict");
    let (snap, _) = verified(&s);
    let ids: Vec<(u64, String)> = gridstore::store::sources::sources_in(&snap)
        .unwrap()
        .into_iter()
        .map(|(seq, r)| (seq, r["id"].as_str().unwrap().to_string()))
        .collect();
    let theirs = committed.snapshot.parent.unwrap();
    assert_eq!(
        ids,
        [
            (committed.snapshot.id, "ours.tif".to_string()),
            (theirs, "theirs.tif".to_string())
        ]
    );
    assert!(
        !objects_of(&s, first_try)
            .iter()
            .any(|k| k.starts_with("sources/")),
        "the first try's list is gone"
    );
}

#[test]
fn a_lost_race_on_the_same_tile_is_a_conflict_that_leaves_nothing_behind() {
    let s = store();
    let ours = edit(&s, "us", &[(0, 0, 7.0), (3, 3, 7.0)]);
    let seq = ours.seq();
    race(&s, &[(0, 0, 5.0)]);
    let err = ours
        .commit()
        .expect_err("both wrote tile (0, 0) at level 0");
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("both wrote tile") && msg.contains("Run it again"),
        "{msg}"
    );
    let (snap, _) = verified(&s);
    assert_eq!(snap.manifest().snapshot.writer, "them");
    assert_eq!(first_pixel(&snap, 0, 0), 5.0);
    assert_eq!(first_pixel(&snap, 3, 3), 1.0);
    assert_eq!(objects_of(&s, seq), Vec::<String>::new());
    assert_eq!(writers_of_objects(&s), ["creator", "them"]);
    assert!(claims(&s).is_empty(), "{:?}", claims(&s));
}

#[test]
fn a_lost_response_to_the_manifest_write_is_a_commit() {
    let s = store();
    let ours = edit(&s, "us", &[(2, 1, 7.0)]);
    let claims_made = s.count(StorageOp::CreateNew);
    s.fail_next(FaultRule {
        op: StorageOp::WriteIf,
        key_prefix: MANIFEST_KEY.into(),
        fault: Fault::LostResponse,
    });
    let committed = ours.commit().expect("the read-back finds the commit in");
    assert!(s.pending_faults().is_empty(), "the fault was hit");
    assert_eq!(
        s.count(StorageOp::CreateNew),
        claims_made,
        "no further claim"
    );
    assert_eq!(
        s.count(StorageOp::WriteIf),
        2,
        "one manifest write after creation's"
    );
    let (snap, _) = verified(&s);
    assert_eq!(snap.manifest().snapshot.id, committed.snapshot.id);
    assert_eq!(first_pixel(&snap, 2, 1), 7.0);
    assert!(claims(&s).is_empty(), "{:?}", claims(&s));
}

/// Runs `ours` with `fault` on the first `op` under `prefix`: the write must fail, the
/// store stay exactly as it was, and nothing of the write remain.
fn fails_and_changes_nothing(
    op: StorageOp,
    prefix: &str,
    fault: Fault,
    ours: impl FnOnce(&Arc<MemoryStorage>) -> gridstore::Result<Manifest>,
) -> Error {
    let s = store();
    let before = s.contents();
    s.fail_next(FaultRule {
        op,
        key_prefix: prefix.into(),
        fault,
    });
    let err = ours(&s).expect_err("the write fails");
    assert!(s.pending_faults().is_empty(), "the fault was hit");
    assert_eq!(s.keys(), before.keys().cloned().collect::<Vec<_>>());
    assert!(s.contents() == before, "the store changed");
    verified(&s);
    err
}

/// Writes and commits one change by "us".
fn our_write(s: &Arc<MemoryStorage>) -> gridstore::Result<Manifest> {
    let txn = Transaction::begin_in(s.clone(), "us", LockWait::Fail)?;
    write(&txn, &[(1, 2, 7.0)])?;
    txn.commit()
}

#[test]
fn a_server_error_or_timeout_on_the_manifest_write_fails_and_leaves_nothing() {
    let err = fails_and_changes_nothing(
        StorageOp::WriteIf,
        MANIFEST_KEY,
        Fault::ServerError,
        our_write,
    );
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    let timeout = Fault::Timeout(Duration::from_millis(50));
    let err = fails_and_changes_nothing(StorageOp::WriteIf, MANIFEST_KEY, timeout, our_write);
    assert!(err.to_string().contains("no response within"), "{err}");
}

#[test]
fn a_refused_manifest_write_without_another_commit_fails_and_leaves_nothing() {
    let err = fails_and_changes_nothing(StorageOp::WriteIf, MANIFEST_KEY, Fault::Refuse, our_write);
    assert!(err.to_string().contains("refused"), "{err}");
}

#[test]
fn a_server_error_or_timeout_on_a_chunk_write_fails_and_leaves_nothing() {
    let err = fails_and_changes_nothing(StorageOp::Write, "chunks/", Fault::ServerError, our_write);
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    let timeout = Fault::Timeout(Duration::from_millis(50));
    let err = fails_and_changes_nothing(StorageOp::Write, "chunks/", timeout, our_write);
    assert!(
        matches!(&err, Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::TimedOut)
    );
    // Written all the same: the write removes it with the rest.
    let lost = Fault::LostResponse;
    fails_and_changes_nothing(StorageOp::Write, "chunks/", lost, our_write);
}

#[test]
fn a_failed_write_of_the_index_or_snapshot_manifest_leaves_nothing() {
    for prefix in ["index/", "snapshots/"] {
        for fault in [Fault::ServerError, Fault::LostResponse] {
            fails_and_changes_nothing(StorageOp::Write, prefix, fault, our_write);
        }
    }
}

#[test]
fn losing_every_race_gives_up_after_max_rebases() {
    let s = store();
    let ours = edit(&s, "us", &[(3, 3, 7.0)]);
    let lost = Arc::new(AtomicU32::new(0));
    let counter = lost.clone();
    s.before_each_manifest_write(move |s| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        commit(s, "them", &[(0, 0, 10.0 + n as f32)]);
        true
    });
    let err = ours.commit().expect_err("it never gets in");
    s.clear_hooks();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{MAX_REBASES} times in a row")) && msg.contains("Run it again"),
        "{msg}"
    );
    let races = lost.load(Ordering::SeqCst);
    assert_eq!(races, MAX_REBASES + 1, "the first try and each rebase lost");
    let (snap, _) = verified(&s);
    assert_eq!(snap.manifest().snapshot.writer, "them");
    assert_eq!(first_pixel(&snap, 0, 0), 10.0 + (races - 1) as f32);
    assert_eq!(first_pixel(&snap, 3, 3), 1.0);
    assert_eq!(writers_of_objects(&s), ["creator", "them"]);
    assert!(claims(&s).is_empty(), "{:?}", claims(&s));
}

#[test]
fn a_creation_that_loses_to_another_creation_is_already_exists() {
    let s = MemoryStorage::new("memory/test.gridstore");
    let ours = create(&s, "us");
    let seq = ours.seq();
    s.before_manifest_write(|s| {
        create(s, "them").commit().unwrap();
    });
    let err = ours.commit().expect_err("the store was created meanwhile");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("Another writer created"), "{err}");
    let (snap, _) = verified(&s);
    assert_eq!(snap.manifest().snapshot.writer, "them");
    assert_eq!(objects_of(&s, seq), Vec::<String>::new());
    assert_eq!(writers_of_objects(&s), ["them"]);
    assert!(claims(&s).is_empty(), "{:?}", claims(&s));
}

#[test]
fn a_creation_whose_response_is_lost_is_in() {
    let s = MemoryStorage::new("memory/test.gridstore");
    let ours = create(&s, "us");
    s.fail_next(FaultRule {
        op: StorageOp::WriteIf,
        key_prefix: MANIFEST_KEY.into(),
        fault: Fault::LostResponse,
    });
    let committed = ours
        .commit()
        .expect("the read-back finds the store created");
    assert!(s.pending_faults().is_empty(), "the fault was hit");
    let (snap, _) = verified(&s);
    assert_eq!(snap.manifest().snapshot.id, committed.snapshot.id);
    assert_eq!(first_pixel(&snap, 3, 3), 1.0);
    assert!(claims(&s).is_empty(), "{:?}", claims(&s));
}

#[test]
fn a_lost_response_whose_read_back_fails_keeps_the_commit_intact() {
    let s = store();
    let ours = edit(&s, "us", &[(2, 1, 7.0)]);
    s.fail_next(FaultRule {
        op: StorageOp::WriteIf,
        key_prefix: MANIFEST_KEY.into(),
        fault: Fault::LostResponse,
    });
    s.fail_next(FaultRule {
        op: StorageOp::ReadVersioned,
        key_prefix: MANIFEST_KEY.into(),
        fault: Fault::ServerError,
    });
    let outcome = ours.commit();
    assert!(s.pending_faults().is_empty(), "both faults were hit");
    // The write cannot tell whether it is in; it is, and the store must hold all of it.
    let (snap, _) = verified(&s);
    assert_eq!(snap.manifest().snapshot.writer, "us");
    assert_eq!(first_pixel(&snap, 2, 1), 7.0);
    let err = outcome.expect_err("the outcome is not known to the writer");
    let msg = err.to_string();
    assert!(
        msg.contains("HTTP 500") && msg.contains("may be in"),
        "{msg}"
    );
    // The claim stays: it keeps gc off the write's objects for its grace period.
    assert_eq!(claims(&s).len(), 1);
}

#[test]
fn a_refused_manifest_write_whose_read_back_fails_leaves_nothing() {
    let s = store();
    let before = s.contents();
    let ours = edit(&s, "us", &[(2, 1, 7.0)]);
    for (op, fault) in [
        (StorageOp::WriteIf, Fault::Refuse),
        (StorageOp::ReadVersioned, Fault::ServerError),
    ] {
        s.fail_next(FaultRule {
            op,
            key_prefix: MANIFEST_KEY.into(),
            fault,
        });
    }
    // Refused: nothing of it is in, so all of it goes.
    let err = ours.commit().expect_err("the write fails");
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert!(s.contents() == before, "the store changed");
}

#[test]
fn a_lost_response_with_another_commit_before_the_read_back_is_a_commit() {
    let s = store();
    let ours = edit(&s, "us", &[(2, 1, 7.0)]);
    let claims_made = s.count(StorageOp::CreateNew);
    s.fail_next(FaultRule {
        op: StorageOp::WriteIf,
        key_prefix: MANIFEST_KEY.into(),
        fault: Fault::LostResponse,
    });
    // Our write is in; theirs goes on top of it before we read the manifest back.
    s.before_next(StorageOp::ReadVersioned, MANIFEST_KEY, |s| {
        commit(s, "them", &[(0, 3, 5.0)]);
    });
    let committed = ours.commit().expect("found in the history behind theirs");
    // Their claim, and its check that the storage refuses to make it twice.
    assert_eq!(
        s.count(StorageOp::CreateNew),
        claims_made + 2,
        "their claim only"
    );
    let (snap, _) = verified(&s);
    assert_eq!(snap.manifest().snapshot.writer, "them");
    assert_eq!(snap.manifest().snapshot.parent, Some(committed.snapshot.id));
    assert_eq!(first_pixel(&snap, 2, 1), 7.0);
    assert_eq!(first_pixel(&snap, 0, 3), 5.0);
    assert!(claims(&s).is_empty(), "{:?}", claims(&s));
}

#[test]
fn writers_committing_at_once_all_get_in_on_top_of_each_other() {
    let s = store();
    let writes: [Change; 4] = [(0, 0, 5.0), (3, 0, 6.0), (0, 3, 7.0), (3, 3, 8.0)];
    // Each object write takes a moment, so the writers overlap.
    for _ in 0..40 {
        s.fail_next(FaultRule {
            op: StorageOp::Write,
            key_prefix: String::new(),
            fault: Fault::Delay(Duration::from_millis(2)),
        });
    }
    let start = Arc::new(std::sync::Barrier::new(writes.len()));
    let writers: Vec<_> = writes
        .iter()
        .enumerate()
        .map(|(i, &change)| {
            let (s, start) = (s.clone(), start.clone());
            std::thread::spawn(move || {
                let txn = edit(&s, &format!("w{i}"), &[change]);
                start.wait();
                txn.commit()
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap().expect("a disjoint write gets in");
    }
    let (snap, digest) = verified(&s);
    for &(col, row, value) in &writes {
        assert_eq!(first_pixel(&snap, col, row), value);
    }
    assert_eq!(snap.manifest().snapshot.parent.map(|_| ()), Some(()));
    assert!(claims(&s).is_empty(), "{:?}", claims(&s));
    let one_by_one = store();
    for (i, &change) in writes.iter().enumerate() {
        commit(&one_by_one, &format!("w{i}"), &[change]);
    }
    assert_eq!(digest, verified(&one_by_one).1);
}

#[test]
fn an_id_another_writer_committed_under_is_never_claimed_again() {
    let s = store();
    // Just as we claim the id after the one we read as committed, another writer takes it,
    // commits under it and releases its claim.
    s.before_next(StorageOp::CreateNew, "claims/", |s| {
        commit(s, "them", &[(0, 0, 5.0)]);
    });
    let ours = Transaction::begin_in(s.clone(), "us", LockWait::Fail).unwrap();
    let theirs = verified(&s).0.manifest().snapshot.id;
    assert!(
        ours.seq() > theirs,
        "claimed {} after their {theirs}",
        ours.seq()
    );
    write(&ours, &[(3, 3, 7.0)]).expect("nothing is written over theirs");
    ours.commit().unwrap();
    let (snap, _) = verified(&s);
    assert_eq!(first_pixel(&snap, 0, 0), 5.0);
    assert_eq!(first_pixel(&snap, 3, 3), 7.0);
    assert!(claims(&s).is_empty(), "{:?}", claims(&s));
}

#[test]
fn writers_committing_at_once_on_vsis3_all_get_in() {
    let moto = common::root().join("target/moto-venv/bin/moto_server");
    if !moto.exists() {
        eprintln!("skipped: {} is not installed", moto.display());
        return;
    }
    let server = common::servers::moto("stores");
    for (name, value) in common::servers::s3_env(server.port) {
        let (n, v) = (
            std::ffi::CString::new(name).unwrap(),
            std::ffi::CString::new(value).unwrap(),
        );
        // SAFETY: NUL-terminated strings; GDAL copies them.
        unsafe { gdal_sys::CPLSetConfigOption(n.as_ptr(), v.as_ptr()) };
    }
    let s = Arc::new(VsiStorage::new("/vsis3/stores/race.gridstore"));
    create(&s, "creator").commit().unwrap();
    let writes: [Change; 3] = [(0, 0, 5.0), (3, 0, 6.0), (0, 3, 7.0)];
    let start = Arc::new(std::sync::Barrier::new(writes.len()));
    let writers: Vec<_> = writes
        .iter()
        .enumerate()
        .map(|(i, &change)| {
            let (s, start) = (s.clone(), start.clone());
            std::thread::spawn(move || {
                let txn = edit(&s, &format!("w{i}"), &[change]);
                start.wait();
                txn.commit()
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap().expect("a disjoint write gets in");
    }
    let (snap, digest) = verified(&s);
    for &(col, row, value) in &writes {
        assert_eq!(first_pixel(&snap, col, row), value);
    }
    assert!(claims(&s).is_empty(), "{:?}", claims(&s));
    let one_by_one = store();
    for (i, &change) in writes.iter().enumerate() {
        commit(&one_by_one, &format!("w{i}"), &[change]);
    }
    assert_eq!(digest, verified(&one_by_one).1);
}

#[test]
fn a_server_that_ignores_conditions_is_not_written_to() {
    let s = store();
    let before = s.contents();
    s.ignore_conditions();
    let err = Transaction::begin_in(s.clone() as Arc<dyn Storage>, "us", LockWait::Fail)
        .err()
        .expect("a write must be refused");
    let msg = err.to_string();
    assert!(msg.contains("ignores conditional writes"), "{msg}");
    assert!(s.contents() == before, "the store changed");
}

#[test]
fn a_small_chunk_opened_for_its_blocks_is_read_in_one_request() {
    let s = store();
    let snap = Snapshot::open_in(s.clone() as Arc<dyn Storage>, None).unwrap();
    let k = key(0, 1, 2);
    let before = s.count(StorageOp::ReadRange);
    let opened = snap.open_chunk(&k).unwrap().expect("a chunk");
    let len = opened.head.object_len();
    let tail = snap
        .read_chunk_range(
            &opened,
            gridstore::chunk::Location::Object,
            len / 2,
            len - len / 2,
        )
        .unwrap();
    // The head and the blocks after it: one request.
    assert_eq!(s.count(StorageOp::ReadRange) - before, 1);
    // The same bytes as a reader of the head alone gets (a chunk this small, under the
    // 16 KiB read for a head, comes whole to it too).
    let head_only = snap.read_head(&k).unwrap().expect("a chunk");
    let again = snap
        .read_chunk_range(
            &head_only,
            gridstore::chunk::Location::Object,
            len / 2,
            len - len / 2,
        )
        .unwrap();
    assert_eq!(tail, again);
    assert_eq!(s.count(StorageOp::ReadRange) - before, 2);
    // A range past the chunk's end is damage, as when read from the object.
    let past = snap.read_chunk_range(&opened, gridstore::chunk::Location::Object, len - 1, 2);
    assert!(past.is_err());
}

#[test]
fn a_claim_whose_check_fails_is_given_back() {
    let s = store();
    // The read of the committed id that follows the claim fails; then the check that the
    // storage refuses a second creation of the claim does.
    for (op, key) in [
        (StorageOp::Read, MANIFEST_KEY.to_string()),
        (StorageOp::CreateNew, "claims/".to_string()),
    ] {
        let claims_before = s.count(StorageOp::CreateNew);
        let faults = match op {
            // The claim itself, then its check.
            StorageOp::CreateNew => vec![None, Some(Fault::ServerError)],
            _ => vec![Some(Fault::ServerError)],
        };
        for fault in faults {
            s.fail_next(FaultRule {
                op,
                key_prefix: key.clone(),
                fault: fault.unwrap_or(Fault::Delay(Duration::ZERO)),
            });
        }
        let begun = Transaction::begin_in(s.clone() as Arc<dyn Storage>, "us", LockWait::Fail);
        let err = begun.err().expect("the write cannot begin");
        assert!(err.to_string().contains("HTTP 500"), "{err}");
        assert!(s.pending_faults().is_empty(), "{op:?}: the faults were hit");
        assert!(
            s.count(StorageOp::CreateNew) > claims_before,
            "{op:?}: claimed"
        );
        assert!(claims(&s).is_empty(), "{op:?}: {:?}", claims(&s));
    }
}
