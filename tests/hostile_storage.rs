//! Stores holding what no gridstore put there: a chunk longer than its index entry, FIFOs
//! in place of objects, symbolic links planted where the next commit writes. Every case
//! ends in a clear error naming the object, without blocking, and nothing outside the
//! store is read or written.

mod common;
use common::*;

use std::path::Path;

fn gridstore() -> &'static str {
    env!("CARGO_BIN_EXE_gridstore")
}

fn mkfifo(path: &Path) {
    std::fs::remove_file(path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

/// Appends `n` zero bytes to a file.
fn lengthen(path: &Path, n: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, n));
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_chunk_longer_than_its_index_entry_is_not_read() {
    let dir = tmp();
    let st = small_store(dir.path());
    // A pack is read only where its chunks lie: bytes after them change nothing.
    let before = checksums(s(&st));
    lengthen(&first_chunk(&st), 1 << 20);
    assert_eq!(checksums(s(&st)), before);
    // A chunk that is an object of its own (the level-1 tile above a patch, updated in
    // place of its chunk in a pack) must be exactly as long as its entry says.
    let patch = dir.path().join("patch.tif");
    let src = sample("L7_ETMs.tif");
    ok(
        "gdal_translate",
        &["-q", "-srcwin", "0", "0", "40", "40", s(&src), s(&patch)],
    );
    translate_into_ok(&patch, &st, &[]);
    let chunk = st.join("chunks/2/0_0_0_0/1_0_0");
    lengthen(&chunk, 1 << 20);
    let out = st.parent().unwrap().join("half.tif");
    let read = run(
        "gdal_translate",
        &["-q", "-outsize", "50%", "50%", s(&st), s(&out)],
    );
    let err = failed_cleanly(&read);
    assert!(
        err.contains(s(&chunk)) && err.contains("more than the") && err.contains("damaged"),
        "{err}"
    );
    // verify lists the damaged objects on its standard output.
    let out = run(gridstore(), &["verify", s(&st)]);
    failed_cleanly(&out);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("more than the"), "{listed}");
}

#[test]
fn a_fifo_in_place_of_a_chunk_or_the_manifest_does_not_block() {
    let dir = tmp();
    let st = small_store(dir.path());
    let chunk = first_chunk(&st);
    mkfifo(&chunk);
    let err = failed_cleanly(&read_all(&st));
    assert!(
        err.contains(s(&chunk)) && err.contains("is a FIFO"),
        "{err}"
    );
    mkfifo(&st.join("gridstore.json"));
    let err = failed_cleanly(&run("gdalinfo", &[s(&st)]));
    assert!(
        err.contains("gridstore.json") && err.contains("is a FIFO"),
        "{err}"
    );
}

#[test]
fn links_planted_where_the_next_commit_writes_do_not_redirect_it() {
    let dir = tmp();
    let st = small_store(dir.path());
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let before = checksums(s(&st));
    // The next commit is snapshot 2: its chunks go under chunks/2/, its snapshot manifest
    // is snapshots/2.json.
    std::os::unix::fs::symlink(&outside, st.join("chunks/2")).unwrap();
    let err = failed_cleanly(&run(
        gridstore(),
        &["ingest", "-q", s(&st), s(&sample("L7_ETMs.tif"))],
    ));
    assert!(err.contains("a symbolic link stands where"), "{err}");
    // The failed write removed what it found under its own name (the link itself).
    let _ = std::fs::remove_file(st.join("chunks/2"));
    std::os::unix::fs::symlink(outside.join("2.json"), st.join("snapshots/2.json")).unwrap();
    let err = failed_cleanly(&run(
        gridstore(),
        &["ingest", "-q", s(&st), s(&sample("L7_ETMs.tif"))],
    ));
    // Refused when the write looks for an unfinished snapshot there, or when it creates it.
    assert!(
        err.contains("already exists") || err.contains("is a symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(
        checksums(s(&st)),
        before,
        "the committed state is untouched"
    );
}

/// Objects are never written over, yet a write may store a tile twice (an edit parks a
/// tile as a chunk, then changes it again): the second replaces the first, and so does a
/// tile emptied and filled again.
#[test]
fn a_tile_stored_twice_in_one_write_replaces_its_own_chunk() {
    use gridstore::index::TileKey;
    use gridstore::store::{lock::LockWait, Snapshot, Transaction};
    use gridstore::tile::Tile;
    let dir = tmp();
    let st = small_store(dir.path());
    let txn = Transaction::begin(&st, "test", LockWait::Fail).unwrap();
    let base = txn.base().unwrap().clone();
    let extent = txn.manifest.extent.unwrap();
    let loc = extent
        .tiles(0, txn.manifest.grid.tile_size)
        .iter()
        .next()
        .unwrap();
    let key = TileKey::new(0, 0, loc);
    let mut tile = base.read_tile(&key).unwrap().unwrap();
    for change in 0..2 {
        tile.data.bytes_mut()[change] ^= 1;
        assert!(txn.put_tile(key, &tile).unwrap());
    }
    let empty = Tile::empty(tile.dtype, &txn.manifest.validity(), tile.size);
    assert!(!txn.put_tile(key, &empty).unwrap());
    tile.data.bytes_mut()[2] ^= 1;
    assert!(txn.put_tile(key, &tile).unwrap());
    txn.commit().unwrap();
    let after = Snapshot::open(&st, None).unwrap().read_tile(&key).unwrap();
    assert_eq!(after.as_ref(), Some(&tile));
}
