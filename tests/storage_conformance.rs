//! The same checks of the `Storage` trait against every backend: the local disk, the
//! in-memory backend of the protocol tests, GDAL's `/vsis3/` on moto's S3 server and GDAL's
//! `/vsiaz/` on Azurite's Blob Storage server. What
//! the store relies on must hold on each: reads bounded as asked, new objects never written
//! over, listing as a directory of `/`-separated keys, and, where writers commit
//! optimistically, versioned reads and conditional writes.

mod common;

use std::ffi::CString;
use std::sync::Arc;

use gridstore::storage::{
    Commits, Expect, LocalStorage, MemoryStorage, Part, Storage, Version, VsiStorage, Written,
};

/// Every check, on `s`, under keys that begin with `p/`.
fn conforms(s: &dyn Storage, p: &str) {
    reads_what_was_written(s, p);
    reads_within_bounds(s, p);
    reads_ranges(s, p);
    never_writes_over_an_object(s, p);
    writes_parts(s, p);
    creates_only_new_objects(s, p);
    deletes(s, p);
    lists_and_deletes_prefixes(s, p);
    if s.commits() == Commits::Optimistic {
        writes_conditionally(s, p);
    }
}

fn read(s: &dyn Storage, key: &str) -> Option<Vec<u8>> {
    s.read(key).unwrap_or_else(|e| panic!("reading {key}: {e}"))
}

fn reads_what_was_written(s: &dyn Storage, p: &str) {
    let key = format!("{p}/rw/a.bin");
    assert_eq!(read(s, &key), None, "a missing object reads as none");
    s.write(&key, b"hello").unwrap();
    assert_eq!(read(s, &key).as_deref(), Some(&b"hello"[..]));
    let empty = format!("{p}/rw/empty");
    s.write(&empty, b"").unwrap();
    assert_eq!(
        read(s, &empty).as_deref(),
        Some(&b""[..]),
        "an empty object exists"
    );
}

fn reads_within_bounds(s: &dyn Storage, p: &str) {
    let key = format!("{p}/bounds/a");
    s.write(&key, b"0123456789").unwrap();
    let mut buf = b"junk".to_vec();
    assert!(s.read_into(&key, 10, &mut buf).unwrap());
    assert_eq!(
        buf, b"0123456789",
        "read_into replaces the buffer's content"
    );
    let err = s.read_into(&key, 9, &mut buf).unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");
    assert_eq!(s.read_at_most(&key, 9).ok(), None, "too long: an error");
    assert!(!s
        .read_into(&format!("{p}/bounds/none"), 10, &mut buf)
        .unwrap());
    assert_eq!(
        s.read_at_most(&format!("{p}/bounds/none"), 10).unwrap(),
        None
    );
}

fn reads_ranges(s: &dyn Storage, p: &str) {
    let key = format!("{p}/range/a");
    s.write(&key, b"0123456789").unwrap();
    let mut buf = b"junk".to_vec();
    assert!(s.read_range(&key, 2, 3, &mut buf).unwrap());
    assert_eq!(buf, b"234");
    assert!(s.read_range(&key, 8, 100, &mut buf).unwrap());
    assert_eq!(buf, b"89", "fewer bytes where the object ends");
    assert!(s.read_range(&key, 20, 4, &mut buf).unwrap());
    assert_eq!(buf, b"", "nothing past the end");
    assert!(!s
        .read_range(&format!("{p}/range/none"), 0, 4, &mut buf)
        .unwrap());
}

fn never_writes_over_an_object(s: &dyn Storage, p: &str) {
    let key = format!("{p}/once/a");
    s.write(&key, b"first").unwrap();
    assert!(
        s.write(&key, b"second").is_err(),
        "an existing key is refused"
    );
    assert_eq!(read(s, &key).as_deref(), Some(&b"first"[..]));
}

fn writes_parts(s: &dyn Storage, p: &str) {
    let from = format!("{p}/parts/from");
    let key = format!("{p}/parts/to");
    s.write(&from, b"abcdefgh").unwrap();
    let parts = [
        Part::Bytes(b"<"),
        Part::Copy {
            key: &from,
            offset: 2,
            len: 3,
        },
        Part::Bytes(b">"),
    ];
    s.write_parts(&key, &parts).unwrap();
    assert_eq!(read(s, &key).as_deref(), Some(&b"<cde>"[..]));
    let past_end = [Part::Copy {
        key: &from,
        offset: 6,
        len: 3,
    }];
    assert!(s.write_parts(&format!("{p}/parts/bad"), &past_end).is_err());
}

fn creates_only_new_objects(s: &dyn Storage, p: &str) {
    let key = format!("{p}/claims/1");
    assert!(s.create_new(&key, b"mine").unwrap());
    assert!(!s.create_new(&key, b"theirs").unwrap());
    assert_eq!(read(s, &key).as_deref(), Some(&b"mine"[..]));
}

fn deletes(s: &dyn Storage, p: &str) {
    let key = format!("{p}/del/a");
    s.write(&key, b"x").unwrap();
    s.delete(&key).unwrap();
    assert_eq!(read(s, &key), None);
    s.delete(&key)
        .expect("deleting a missing object is no error");
    s.write(&key, b"again")
        .expect("a deleted key can be written anew");
    assert_eq!(read(s, &key).as_deref(), Some(&b"again"[..]));
}

fn lists_and_deletes_prefixes(s: &dyn Storage, p: &str) {
    for k in ["a", "b/c", "b/d", "b/e/f", "g.json"] {
        s.write(&format!("{p}/list/{k}"), k.as_bytes()).unwrap();
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let listed = sorted(s.list(&format!("{p}/list/")).unwrap());
    assert_eq!(
        listed,
        ["a", "b", "g.json"],
        "the names directly under the prefix"
    );
    let listed = sorted(s.list(&format!("{p}/list/b/")).unwrap());
    assert_eq!(listed, ["c", "d", "e"]);
    assert!(s.list(&format!("{p}/list/none/")).unwrap().is_empty());
    s.delete_prefix(&format!("{p}/list/b/")).unwrap();
    let listed = sorted(s.list(&format!("{p}/list/")).unwrap());
    assert_eq!(listed, ["a", "g.json"]);
    assert_eq!(
        read(s, &format!("{p}/list/b/e/f")),
        None,
        "deleted deep down too"
    );
    assert_eq!(read(s, &format!("{p}/list/a")).as_deref(), Some(&b"a"[..]));
    s.delete_prefix(&format!("{p}/list/none/"))
        .expect("deleting an empty prefix is no error");
}

fn writes_conditionally(s: &dyn Storage, p: &str) {
    let key = format!("{p}/cond.json");
    assert!(s.read_versioned(&key, 100).unwrap().is_none());
    assert!(matches!(
        s.write_if(&key, b"one", Expect::Absent),
        Written::Done
    ));
    // A refused condition is Refused, or Unknown where the backend cannot tell it from a
    // failed request (GDAL): either way nothing is written.
    let again = s.write_if(&key, b"two", Expect::Absent);
    assert!(!matches!(again, Written::Done), "{again:?}");
    let (data, v1) = s.read_versioned(&key, 100).unwrap().unwrap();
    assert_eq!(data, b"one");
    assert!(
        s.read_versioned(&key, 2).is_err(),
        "bounded as read_into is"
    );
    assert!(matches!(
        s.write_if(&key, b"two", Expect::At(&v1)),
        Written::Done
    ));
    let (data, v2) = s.read_versioned(&key, 100).unwrap().unwrap();
    assert_eq!(data, b"two");
    assert_ne!(v1, v2, "a new version with each write");
    let stale = s.write_if(&key, b"three", Expect::At(&v1));
    assert!(!matches!(stale, Written::Done), "{stale:?}");
    assert_eq!(read(s, &key).as_deref(), Some(&b"two"[..]));
    let missing = s.write_if(&format!("{p}/none.json"), b"x", Expect::At(&v2));
    assert!(!matches!(missing, Written::Done), "{missing:?}");
    assert_eq!(read(s, &format!("{p}/none.json")), None);
}

#[test]
fn local_storage_conforms() {
    let dir = common::tmp();
    let s = LocalStorage::new(dir.path());
    assert_eq!(s.commits(), Commits::Locked);
    conforms(&s, "t");
}

#[test]
fn memory_storage_conforms() {
    let s = MemoryStorage::new("memory/t.gridstore");
    assert_eq!(s.commits(), Commits::Optimistic);
    conforms(&*s, "t");
    let s: Arc<dyn Storage> = s;
    conforms(&*s, "u");
}

/// moto's server program, if it is installed where the S3 tests look for it.
fn moto_installed() -> bool {
    let venv = common::root().join("target/moto-venv/bin/moto_server");
    venv.exists()
        || std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|d| d.join("moto_server").exists())
        })
}

/// Sets GDAL's configuration (process-wide) to reach `server`.
fn configure(server: &common::servers::Server) {
    for (name, value) in &server.env {
        let (n, v) = (
            CString::new(*name).unwrap(),
            CString::new(value.as_str()).unwrap(),
        );
        // SAFETY: NUL-terminated strings; GDAL copies them.
        unsafe { gdal_sys::CPLSetConfigOption(n.as_ptr(), v.as_ptr()) };
    }
}

#[test]
fn vsis3_storage_conforms() {
    if !moto_installed() {
        eprintln!(
            "skipped: moto_server is not installed (python3 -m venv target/moto-venv && \
             target/moto-venv/bin/pip install 'moto[server]')"
        );
        return;
    }
    let server = common::servers::moto("conformance");
    configure(&server);
    let s = VsiStorage::new("/vsis3/conformance/t.gridstore");
    assert_eq!(s.commits(), Commits::Optimistic);
    conforms(&s, "t");
    creations_exclude_each_other("/vsis3/conformance/x.gridstore");
    // S3 gives an object written in one request its MD5 digest as ETag: a versioned read
    // is then two requests (GDAL asks for the headers with a GET of its own, then the
    // bytes), with no third to see that the version held.
    s.write("v.json", b"{\"v\": 1}").unwrap();
    let before = server.requests().len();
    let (bytes, version) = s.read_versioned("v.json", 100).unwrap().unwrap();
    assert_eq!(bytes, b"{\"v\": 1}");
    let log = server.requests();
    assert_eq!(log.len() - before, 2, "{:#?}", &log[before..]);
    let stale = s.write_if("v.json", b"{}", Expect::At(&Version("\"0\"".into())));
    assert!(!matches!(stale, Written::Done), "{stale:?}");
    assert_eq!(read(&s, "v.json").as_deref(), Some(&b"{\"v\": 1}"[..]));
    let written = s.write_if("v.json", b"{}", Expect::At(&version));
    assert!(matches!(written, Written::Done), "{written:?}");
}

#[test]
fn vsiaz_storage_conforms() {
    let server = common::servers::azurite("conformance");
    configure(&server);
    let s = VsiStorage::new("/vsiaz/conformance/t.gridstore");
    assert_eq!(s.commits(), Commits::Optimistic);
    conforms(&s, "t");
    // Azure refuses a creation over an existing blob with 409, to which GDAL answers by
    // deleting the blob and sending the PUT again: that DELETE must have left it alone.
    let log = server.requests();
    let refused = "PUT /devstoreaccount1/conformance/t.gridstore/t/once/a HTTP/1.1 409";
    assert!(log.iter().any(|l| l == refused), "{log:#?}");
    let stale = "PUT /devstoreaccount1/conformance/t.gridstore/t/cond.json HTTP/1.1 412";
    assert!(log.iter().any(|l| l == stale), "{log:#?}");
    // A blob over 4 MiB would be written in several requests, which cannot be conditional.
    let big = vec![7u8; (4 << 20) + 1];
    let err = s.write("t/big", &big).unwrap_err().to_string();
    assert!(err.contains("4 MiB") && err.contains("tiles"), "{err}");
    assert_eq!(read(&s, "t/big"), None);
    s.write("t/just", &big[1..]).unwrap();
    assert_eq!(read(&s, "t/just").map(|d| d.len()), Some(4 << 20));
    // One server for the whole test: GDAL's configuration is process-wide.
    reads_whole_while_replaced("/vsiaz/conformance/r.gridstore");
    creations_exclude_each_other("/vsiaz/conformance/x.gridstore");
}

/// An object replaced in place (a top-level key, as the manifest) in the store at `root`,
/// read while another thread replaces it, by turns with a short and a long content: every
/// read gives one of the two whole. (On `/vsiaz/` GDAL takes the size with a HEAD and the
/// bytes with a GET.)
fn reads_whole_while_replaced(root: &str) {
    let bodies = [vec![b's'; 3000], vec![b'l'; 5000]];
    let writer = VsiStorage::new(root);
    writer.write("m.json", &bodies[0]).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut turn = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (_, v) = writer.read_versioned("m.json", 10_000).unwrap().unwrap();
                let written = writer.write_if("m.json", &bodies[turn % 2], Expect::At(&v));
                assert!(matches!(written, Written::Done), "{written:?}");
                turn += 1;
                // A writer commits far less often; without a pause a read could find the
                // object changed each time it tries.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        let reader = VsiStorage::new(root);
        // The first read that is neither content; the writer stops whatever it is.
        let bad = (0..200).find_map(|i| {
            let got = reader.read("m.json");
            let whole = got
                .as_ref()
                .is_ok_and(|g| g.as_ref().is_some_and(|g| bodies.contains(g)));
            (!whole).then(|| (i, got.map(|g| g.map(|g| g.len()))))
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(bad.is_none(), "(read, the length it gave): {bad:?}");
    });
}

/// Writers taking turns at one key, as they do at a claim: each creates it if absent,
/// finds its own content there, and deletes it. A creation that reports success must have
/// made the object, even while another writer deletes its own. (On `/vsiaz/` GDAL answers
/// a refused creation by deleting the blob and trying again; when that DELETE finds the
/// blob gone, GDAL 3.6 reports the refused PUT as a success.)
fn creations_exclude_each_other(root: &str) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const ROUNDS: usize = 30;
    let held = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..3)
            .map(|writer| {
                let (held, failed) = (&held, &failed);
                scope.spawn(move || -> Result<(), String> {
                    let s = VsiStorage::new(root);
                    let body = format!("writer {writer}");
                    let mut rounds = 0;
                    while rounds < ROUNDS && !failed.load(Ordering::SeqCst) {
                        if !s.create_new("claims/1", body.as_bytes()).unwrap() {
                            // Taken: a claimer would go on to the next id; here it waits.
                            std::thread::sleep(std::time::Duration::from_millis(3));
                            continue;
                        }
                        let others = held.fetch_add(1, Ordering::SeqCst);
                        let there = s.read("claims/1").unwrap();
                        held.fetch_sub(1, Ordering::SeqCst);
                        if others != 0 || there.as_deref() != Some(body.as_bytes()) {
                            failed.store(true, Ordering::SeqCst);
                            return Err(format!(
                                "writer {writer}, round {rounds}: created, with {others} other \
                                 holders, and found {:?}",
                                there.map(|t| String::from_utf8_lossy(&t).into_owned())
                            ));
                        }
                        s.delete("claims/1").unwrap();
                        rounds += 1;
                    }
                    Ok(())
                })
            })
            .collect();
        writers
            .into_iter()
            .filter_map(|w| w.join().unwrap().err())
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}
