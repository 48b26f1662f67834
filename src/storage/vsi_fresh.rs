//! Fresh reads and writes of the objects replaced in place (the manifest, claims) through
//! GDAL's virtual file systems, one thread at a time per object.
//!
//! GDAL caches what it fetches (an object's size and its bytes) in one cache for the whole
//! process. Before such an object is read its cached entries are dropped, but that is not
//! enough when several threads use it: a thread whose request was answered before a
//! replacement can put the old size or bytes into the cache after another thread dropped
//! them, and that thread then reads a mix of two versions, or the old one after it saw the
//! new version's ETag. GDAL's own writes cache too: a single-request PUT to S3 records the
//! size and ETag it wrote once it is done. So every read of such an object (from dropping
//! its cache entries to closing it, ETag requests included) and every write or deletion
//! (to dropping what GDAL cached of it on the way) holds [`hold`] for its path; another
//! thread waits. The same thread may hold it again (a versioned read opens the object
//! between two ETag requests; a creation reads back what it wrote). Other processes have
//! caches of their own and are not concerned.
//!
//! What is left outside the turns is GDAL's own open of a store's `gridstore.json` when a
//! user opens that file with GDAL by name: its first read can still put an older version
//! into the cache of that process. A read torn by it does not give a manifest that parses
//! whole (it ends early, or has bytes after its end), so an open fails with a damaged
//! manifest rather than reading a wrong one; opening again reads it whole.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;

/// The objects being read: path, the thread reading it, how many holds it has.
static READING: Mutex<Vec<(PathBuf, ThreadId, usize)>> = Mutex::new(Vec::new());
/// Signalled when an object is no longer being read.
static DONE: Condvar = Condvar::new();

/// The right to read the object at a path fresh, released when dropped.
pub struct FreshRead {
    path: PathBuf,
}

/// Waits until no other thread reads the object at `path`, and holds it.
pub fn hold(path: &Path) -> FreshRead {
    let me = std::thread::current().id();
    let mut reading = lock();
    loop {
        match reading.iter_mut().find(|(p, _, _)| p == path) {
            None => {
                reading.push((path.to_path_buf(), me, 1));
                break;
            }
            Some((_, thread, holds)) if *thread == me => {
                *holds += 1;
                break;
            }
            Some(_) => reading = DONE.wait(reading).unwrap_or_else(PoisonError::into_inner),
        }
    }
    FreshRead {
        path: path.to_path_buf(),
    }
}

fn lock() -> MutexGuard<'static, Vec<(PathBuf, ThreadId, usize)>> {
    // The list stays consistent whatever panicked while holding it: each change is one
    // push, one increment, or one decrement and removal.
    READING.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for FreshRead {
    fn drop(&mut self) {
        let mut reading = lock();
        let Some(i) = reading.iter().position(|(p, _, _)| *p == self.path) else {
            return;
        };
        reading[i].2 -= 1;
        if reading[i].2 == 0 {
            reading.swap_remove(i);
            DONE.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_thread_at_a_time_per_object_and_again_by_the_same_thread() {
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        let _outer = hold(Path::new("/vsis3/b/s/gridstore.json"));
                        let _inner = hold(Path::new("/vsis3/b/s/gridstore.json"));
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(lock()
            .iter()
            .all(|(p, _, _)| !p.ends_with("s/gridstore.json")));
    }

    #[test]
    fn other_objects_are_read_meanwhile() {
        let _held = hold(Path::new("/vsis3/b/one/gridstore.json"));
        std::thread::scope(|scope| {
            scope
                .spawn(|| drop(hold(Path::new("/vsis3/b/two/gridstore.json"))))
                .join()
                .unwrap();
        });
    }
}
