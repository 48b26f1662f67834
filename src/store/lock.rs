//! One writer at a time.
//!
//! A writer creates `writer.lock` (create-if-absent, atomic on file systems and object
//! stores alike) holding who it is. Readers never look at it. A lock whose process is gone
//! (same host, and no live process with that pid and start time) is stale: the next writer
//! removes what the dead write left behind and takes over.
//!
//! What a dead write leaves behind is always under the one snapshot id a writer may use,
//! the committed id + 1, so recovery needs no record of its progress.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::NODE_PREFIX;
use crate::manifest::{snapshot_key, Manifest, MANIFEST_KEY};
use crate::storage::Storage;

pub const LOCK_KEY: &str = "writer.lock";

/// The pid given to a lock whose file does not parse (no process has pid 0).
const DAMAGED_LOCK_PID: u32 = 0;

/// Called once when a write starts waiting for another writer's lock, with the holder and
/// the longest wait; set by programs that want to tell their user (the CLI does).
static WAIT_NOTICE: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// A duration as seconds, without decimals when it has none.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

/// Sets what is called when a write starts waiting for the lock (once per process).
pub fn set_wait_notice(notice: fn(&str)) {
    let _ = WAIT_NOTICE.set(notice);
}

/// What to do when another writer holds the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once, naming the holder.
    Fail,
    /// Wait up to this long for the holder to finish.
    Wait(Duration),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub host: String,
    pub pid: u32,
    /// Start time of the process in clock ticks since boot, to tell a reused pid apart.
    pub process_start: Option<u64>,
    /// UTC, RFC 3339.
    pub started: String,
    pub writer: String,
}

impl LockInfo {
    fn mine(writer: &str) -> LockInfo {
        let pid = std::process::id();
        LockInfo {
            host: hostname(),
            pid,
            process_start: process_start_ticks(pid),
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            writer: writer.to_string(),
        }
    }

    /// True when the holder is known to be gone. A lock of another host is never stale:
    /// its process cannot be checked from here.
    pub fn is_stale(&self) -> bool {
        if self.pid == DAMAGED_LOCK_PID {
            return true;
        }
        if self.host != hostname() {
            return false;
        }
        // SAFETY: kill with signal 0 checks for existence only and sends nothing.
        let alive = unsafe { libc::kill(self.pid as libc::pid_t, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        // A killed process its parent has not reaped yet (a zombie) still has its pid, but
        // will never write again.
        let Some(now) = ProcessStat::read(self.pid) else {
            return !alive;
        };
        if !alive || now.state == 'Z' {
            return true;
        }
        match self.process_start {
            Some(start) => start != now.start_ticks, // the pid now belongs to another process
            None => false,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "process {} on host {} ({}), since {}",
            self.pid, self.host, self.writer, self.started
        )
    }
}

/// A held writer lock; released on drop.
pub struct WriterLock {
    storage: Arc<dyn Storage>,
    released: bool,
    /// Set when taking the lock meant recovering it from a writer that died.
    recovered: Option<Recovered>,
}

/// A dead writer's lock, taken over, and what its write had left.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    pub holder: LockInfo,
    pub cleanup: Cleanup,
}

impl Recovered {
    /// What a writer tells its user after taking the lock over.
    pub fn describe(&self) -> String {
        let what = if self.cleanup.removed.is_empty() {
            "it had written nothing"
        } else {
            "its unfinished write was removed"
        };
        format!(
            "took over the writer lock of {}, which is gone; {what}",
            self.holder.describe()
        )
    }
}

/// What removing an unfinished write found.
#[derive(Debug, Clone, PartialEq)]
pub struct Cleanup {
    /// The snapshot id the unfinished write was making.
    pub seq: u64,
    /// Objects of it that were found and removed (chunks, index nodes, its manifest, a
    /// half-written replacement of `gridstore.json`).
    pub removed: Vec<String>,
}

impl WriterLock {
    /// Takes the lock, recovering it from a dead writer if need be.
    pub fn acquire(storage: Arc<dyn Storage>, writer: &str, wait: LockWait) -> Result<WriterLock> {
        let me = serde_json::to_vec_pretty(&LockInfo::mine(writer)).expect("serializable");
        let started = Instant::now();
        let mut told = false;
        loop {
            if storage.create_new(LOCK_KEY, &me)? {
                return Ok(WriterLock {
                    storage,
                    released: false,
                    recovered: None,
                });
            }
            let Some(raw) = storage.read(LOCK_KEY)? else {
                continue; // released between our attempt and the read
            };
            let h = parse_lock(&raw);
            if h.is_stale() {
                // Take the dead writer's lock over in one step, then clean up under our own
                // lock, so that no other writer starts (or cleans up) meanwhile.
                if storage.claim(LOCK_KEY, &raw, &me)? {
                    let cleanup = discard_unfinished_write(&*storage)?;
                    return Ok(WriterLock {
                        storage,
                        released: false,
                        recovered: Some(Recovered { holder: h, cleanup }),
                    });
                }
                continue; // another writer took it over first
            }
            let waited = match wait {
                LockWait::Fail => None,
                LockWait::Wait(limit) if started.elapsed() >= limit => Some(limit),
                LockWait::Wait(limit) => {
                    if !told {
                        if let Some(notice) = WAIT_NOTICE.get() {
                            notice(&format!(
                                "waiting up to {} s for another write to finish: {}",
                                seconds(limit),
                                h.describe()
                            ));
                        }
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let what_now = match waited {
                None => "Wait for it to finish, or let this write wait for it: \
                         `--wait <seconds>` on the command line, LOCK_TIMEOUT=<seconds> as a \
                         GDAL open (-oo) or creation (-co) option"
                    .to_string(),
                Some(limit) => format!(
                    "Waited {} s for it; try again later, or wait longer",
                    seconds(limit)
                ),
            };
            return Err(Error::Locked(format!(
                "{}: another write is in progress: {}. {what_now}",
                storage.location().display(),
                h.describe()
            )));
        }
    }

    /// The dead writer this lock was taken over from, if any.
    pub fn recovered(&self) -> Option<&Recovered> {
        self.recovered.as_ref()
    }

    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.storage.delete(LOCK_KEY)
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.storage.delete(LOCK_KEY);
        }
    }
}

pub fn read_lock(storage: &dyn Storage) -> Result<Option<LockInfo>> {
    Ok(storage.read(LOCK_KEY)?.map(|bytes| parse_lock(&bytes)))
}

fn parse_lock(bytes: &[u8]) -> LockInfo {
    // Locks appear with their whole content (`Storage::create_new`), so one that does not
    // parse was damaged after its writer wrote it (a power loss before it reached the
    // disk): that writer is gone, and the lock counts as stale.
    serde_json::from_slice(bytes).unwrap_or(LockInfo {
        host: hostname(),
        pid: DAMAGED_LOCK_PID,
        process_start: None,
        started: "unknown".into(),
        writer: "unknown (damaged lock file)".into(),
    })
}

/// The snapshot id the next (or a dead) writer uses: one past the committed one.
pub fn next_snapshot_id(storage: &dyn Storage) -> Result<u64> {
    Ok(
        match storage.read_at_most(MANIFEST_KEY, super::snapshot::MAX_MANIFEST_LEN)? {
            Some(bytes) => {
                let path = storage.location().join(MANIFEST_KEY);
                Manifest::parse(&bytes, &path)?.snapshot.id + 1
            }
            None => 1,
        },
    )
}

/// Removes every object an uncommitted write may have made. Must hold the lock (or own
/// the stale one).
pub fn discard_unfinished_write(storage: &dyn Storage) -> Result<Cleanup> {
    let seq = next_snapshot_id(storage)?;
    let mut removed = Vec::new();
    for prefix in ["chunks/".to_string(), NODE_PREFIX.to_string()] {
        if storage.list(&prefix)?.contains(&seq.to_string()) {
            let key = format!("{prefix}{seq}/");
            storage.delete_prefix(&key)?;
            removed.push(key);
        }
    }
    let manifest = snapshot_key(seq);
    if storage
        .read_at_most(&manifest, super::snapshot::MAX_MANIFEST_LEN)?
        .is_some()
    {
        storage.delete(&manifest)?;
        removed.push(manifest);
    }
    // A replace of gridstore.json cut short leaves its temporary file
    // (`.gridstore.json.<pid>.<n>.tmp`), a lock creation or takeover cut short its own
    // (`.writer.lock.<pid>.<n>.new|claim`). Only those of processes that are gone are removed: another
    // writer may be creating its lock right now.
    for name in storage.list("")? {
        if temporary_of_dead_process(&name) {
            storage.delete(&name)?;
            removed.push(name);
        }
    }
    Ok(Cleanup { seq, removed })
}

/// True for `.<gridstore.json|writer.lock>.<pid>.<n>.<suffix>` when process `pid` is gone.
fn temporary_of_dead_process(name: &str) -> bool {
    let rest = [MANIFEST_KEY, LOCK_KEY]
        .iter()
        .find_map(|key| name.strip_prefix(&format!(".{key}.")));
    let Some(pid) = rest
        .and_then(|r| r.split('.').next())
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return false;
    };
    let probe = LockInfo {
        host: hostname(),
        pid,
        process_start: None,
        started: String::new(),
        writer: String::new(),
    };
    probe.is_stale()
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, which is what we pass.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// What /proc/<pid>/stat says of a process that matters to a lock.
struct ProcessStat {
    /// Field 3: R running, S sleeping, Z zombie, ...
    state: char,
    /// Field 22: when the process started, in ticks since boot.
    start_ticks: u64,
}

impl ProcessStat {
    fn read(pid: u32) -> Option<ProcessStat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces and parentheses; fields after it
        // follow the last ')'.
        let mut fields = stat[stat.rfind(')')? + 2..].split(' ');
        let state = fields.next()?.chars().next()?;
        let start_ticks = fields.nth(18)?.parse().ok()?;
        Some(ProcessStat { state, start_ticks })
    }
}

fn process_start_ticks(pid: u32) -> Option<u64> {
    ProcessStat::read(pid).map(|s| s.start_ticks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalStorage;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_name() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let held = WriterLock::acquire(s.clone(), "first", LockWait::Fail).unwrap();
        let e = WriterLock::acquire(s.clone(), "second", LockWait::Fail)
            .err()
            .unwrap();
        assert!(e.to_string().contains("first"), "{e}");
        assert!(e.to_string().contains(&std::process::id().to_string()));
        held.release().unwrap();
        WriterLock::acquire(s, "second", LockWait::Fail).unwrap();
    }

    #[test]
    fn waiting_gives_up_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let _held = WriterLock::acquire(s.clone(), "first", LockWait::Fail).unwrap();
        let t = Instant::now();
        let r = WriterLock::acquire(s, "second", LockWait::Wait(Duration::from_millis(300)));
        assert!(r.is_err());
        assert!(t.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn a_dead_writers_lock_and_debris_are_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        // A child process that has exited: its pid is free (or reused, with another start).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = LockInfo {
            host: hostname(),
            pid,
            process_start: Some(1),
            started: "then".into(),
            writer: "dead".into(),
        };
        s.write(LOCK_KEY, &serde_json::to_vec(&dead).unwrap())
            .unwrap();
        s.write("chunks/1/0/0/0/0/0", b"debris").unwrap();
        s.write("index/1/0", b"debris").unwrap();
        let lock = WriterLock::acquire(s.clone(), "next", LockWait::Fail).unwrap();
        assert_eq!(s.read("chunks/1/0/0/0/0/0").unwrap(), None);
        assert_eq!(s.read("index/1/0").unwrap(), None);
        lock.release().unwrap();
    }

    #[test]
    fn an_empty_lock_file_is_stale_and_temporaries_of_dead_processes_go() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        s.write(LOCK_KEY, b"").unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let leftovers = [
            format!(".{LOCK_KEY}.{dead}.0.new"),
            format!(".{MANIFEST_KEY}.{dead}.3.tmp"),
        ];
        for name in &leftovers {
            s.write(name, b"partial").unwrap();
        }
        let mine = format!(".{MANIFEST_KEY}.{}.tmp", std::process::id());
        s.write(&mine, b"in progress").unwrap();
        let lock = WriterLock::acquire(s.clone(), "next", LockWait::Fail).unwrap();
        let removed = &lock.recovered().unwrap().cleanup.removed;
        for name in &leftovers {
            assert!(removed.contains(name), "{removed:?}");
            assert_eq!(s.read(name).unwrap(), None);
        }
        assert!(
            s.read(&mine).unwrap().is_some(),
            "a live process's file was removed"
        );
        lock.release().unwrap();
    }

    #[test]
    fn a_lock_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let held = WriterLock::acquire(s.clone(), "first", LockWait::Fail).unwrap();
        let info = read_lock(&*s).unwrap().unwrap();
        assert_eq!(info.pid, std::process::id());
        assert_eq!(info.writer, "first");
        // No temporary file is left beside it.
        assert_eq!(s.list("").unwrap(), vec![LOCK_KEY.to_string()]);
        held.release().unwrap();
    }

    #[test]
    fn of_writers_racing_to_take_over_a_dead_lock_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        for round in 0..20 {
            s.write(LOCK_KEY, b"").unwrap(); // damaged, so stale
            let start = std::sync::Barrier::new(4);
            let won = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for _ in 0..4 {
                    scope.spawn(|| {
                        start.wait();
                        match WriterLock::acquire(s.clone(), "racer", LockWait::Fail) {
                            Ok(lock) => {
                                won.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                // Hold it until every racer has tried.
                                std::thread::sleep(Duration::from_millis(300));
                                lock.release().unwrap();
                            }
                            Err(e) => assert!(e.to_string().contains("racer"), "{e}"),
                        }
                    });
                }
            });
            assert_eq!(won.into_inner(), 1, "round {round}");
            assert_eq!(s.read(LOCK_KEY).unwrap(), None);
        }
    }

    #[test]
    fn a_killed_writer_not_yet_reaped_is_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let info = LockInfo {
            host: hostname(),
            pid: child.id(),
            process_start: process_start_ticks(child.id()),
            started: "now".into(),
            writer: "sleep".into(),
        };
        assert!(!info.is_stale());
        child.kill().unwrap();
        // Not reaped yet: a zombie, once the kill has landed.
        let t = Instant::now();
        while ProcessStat::read(child.id()).map(|s| s.state) != Some('Z')
            && t.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(info.is_stale());
        child.wait().unwrap();
        assert!(info.is_stale());
    }

    #[test]
    fn this_process_reads_its_own_start_time() {
        assert!(process_start_ticks(std::process::id()).is_some());
        assert!(!LockInfo::mine("me").is_stale());
    }
}
