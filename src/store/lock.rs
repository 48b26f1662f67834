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
use crate::index::WRITE_PREFIXES;
use crate::manifest::{snapshot_key, Manifest, MANIFEST_KEY, MAX_MANIFEST_LEN, MAX_SNAPSHOT_ID};
use crate::storage::Storage;
use crate::text::printable;

pub use crate::keys::LOCK_KEY;

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
    /// Set when the lock file does not parse, or holds what no writer could have written:
    /// what is wrong with it. Such a lock is stale.
    #[serde(skip)]
    pub damage: Option<String>,
}

/// Largest lock file: its writer name is the one long field, and is bounded like a
/// manifest's text.
pub const MAX_LOCK_BYTES: u64 = 2 * crate::manifest::MAX_TEXT_BYTES as u64;

/// Longest host name a lock may give (Linux allows 64 bytes, other systems 255).
const MAX_HOST_BYTES: usize = 255;
/// How far in the future a lock's `started` may be before it counts as impossible: clocks
/// of hosts sharing a store may disagree, and a clock may be stepped back, by far less.
const FUTURE_SLACK: Duration = Duration::from_secs(24 * 3600);
/// The largest pid any Linux system gives (PID_MAX_LIMIT on 64-bit systems), for locks of
/// other hosts whose own limit cannot be read from here.
const PID_MAX_LIMIT: u32 = 1 << 22;

impl LockInfo {
    fn mine(writer: &str) -> LockInfo {
        let pid = std::process::id();
        LockInfo {
            host: hostname(),
            pid,
            process_start: process_start_ticks(pid),
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            writer: writer.to_string(),
            damage: None,
        }
    }

    /// Reads a lock file strictly: `Err` says what makes it impossible (it does not parse,
    /// or names a pid, start time or host no writer could have had).
    pub fn parse(bytes: &[u8]) -> std::result::Result<LockInfo, String> {
        if bytes.len() as u64 > MAX_LOCK_BYTES {
            return Err(format!(
                "it is {} bytes long, larger than any lock",
                bytes.len()
            ));
        }
        let info: LockInfo = serde_json::from_slice(bytes).map_err(|e| {
            if bytes.is_empty() {
                "the file is empty".to_string()
            } else {
                format!("it is not a gridstore lock: {e}")
            }
        })?;
        match info.impossibility() {
            Some(why) => Err(why),
            None => Ok(info),
        }
    }

    /// What no live writer could have written in its lock, if anything.
    fn impossibility(&self) -> Option<String> {
        let here = self.host == hostname();
        if self.host.is_empty() || self.host.len() > MAX_HOST_BYTES {
            return Some(format!("its host name is {} bytes long", self.host.len()));
        }
        let pid_max = if here { pid_max() } else { PID_MAX_LIMIT };
        if self.pid == 0 || self.pid >= pid_max {
            return Some(format!(
                "pid {} is outside the range of process ids (1 to {})",
                self.pid,
                pid_max - 1
            ));
        }
        if let (true, Some(start), Some(now)) = (here, self.process_start, ticks_since_boot()) {
            if start > now {
                return Some(format!(
                    "its process started at tick {start} after boot, later than now ({now})"
                ));
            }
        }
        let started = humantime::parse_rfc3339(&self.started)
            .map_err(|_| format!("its start time {:?} is not a date", self.started));
        match started {
            Err(why) => return Some(why),
            Ok(t) if t > std::time::SystemTime::now() + FUTURE_SLACK => {
                return Some(format!("its start time {} is in the future", self.started))
            }
            Ok(_) => {}
        }
        if self.writer.len() > crate::manifest::MAX_TEXT_BYTES {
            return Some(format!(
                "its writer name is {} bytes long",
                self.writer.len()
            ));
        }
        None
    }

    /// True when the holder is known to be gone, or the lock is damaged. A sound lock of
    /// another host is never stale: its process cannot be checked from here.
    pub fn is_stale(&self) -> bool {
        if self.damage.is_some() {
            return true;
        }
        self.host == hostname() && !process_alive(self.pid, self.process_start)
    }

    /// Who holds the lock, for messages; text from the lock file is escaped.
    pub fn describe(&self) -> String {
        if let Some(why) = &self.damage {
            return format!("a damaged lock file ({})", printable(why));
        }
        format!(
            "process {} on host {} ({}), since {}",
            self.pid,
            printable(&self.host),
            printable(&self.writer),
            printable(&self.started)
        )
    }
}

/// True while process `pid` of this host runs, and (when `start` is known) is the process
/// that started then rather than a later one given the same pid.
fn process_alive(pid: u32, start: Option<u64>) -> bool {
    let Ok(signed) = libc::pid_t::try_from(pid) else {
        return false; // beyond pid_t; kill() would take it for a process group
    };
    if signed <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 checks for existence only and sends nothing.
    let alive = unsafe { libc::kill(signed, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // A killed process its parent has not reaped yet (a zombie) still has its pid, but
    // will never write again.
    let Some(now) = ProcessStat::read(pid) else {
        return alive;
    };
    if !alive || now.state == 'Z' {
        return false;
    }
    match start {
        Some(start) => start == now.start_ticks, // else the pid belongs to another process
        None => true,
    }
}

/// One more than the largest pid this system gives (/proc/sys/kernel/pid_max).
fn pid_max() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|n| (2..=PID_MAX_LIMIT).contains(n))
        .unwrap_or(PID_MAX_LIMIT)
}

/// Clock ticks since boot, in the unit of /proc/<pid>/stat's start times.
fn ticks_since_boot() -> Option<u64> {
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let seconds: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0 && seconds.is_finite()).then(|| (seconds * hz as f64).ceil() as u64 + 1)
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
                    let cleanup = match discard_unfinished_write(&*storage) {
                        Ok(c) => c,
                        Err(e) => {
                            // Refused (a damaged store): the lock is ours, let it go.
                            let _ = storage.delete(LOCK_KEY);
                            return Err(e);
                        }
                    };
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
    // disk), and one naming an impossible process was not written by a writer at all:
    // either way no writer holds it, and it counts as stale.
    LockInfo::parse(bytes).unwrap_or_else(|why| LockInfo {
        host: hostname(),
        pid: 0,
        process_start: None,
        started: "unknown".into(),
        writer: "unknown".into(),
        damage: Some(why),
    })
}

/// The snapshot id the next (or a dead) writer uses: one past the committed one.
pub fn next_snapshot_id(storage: &dyn Storage) -> Result<u64> {
    let committed = committed_manifest(storage)?;
    snapshot_after(storage, committed.map_or(0, |m| m.snapshot.id))
}

/// The store's committed manifest; `None` before its first commit.
fn committed_manifest(storage: &dyn Storage) -> Result<Option<Manifest>> {
    let Some(bytes) = storage.read_at_most(MANIFEST_KEY, MAX_MANIFEST_LEN)? else {
        return Ok(None);
    };
    let path = storage.location().join(MANIFEST_KEY);
    Manifest::parse(&bytes, &path).map(Some)
}

/// The id of the snapshot after `committed`. Ids name objects, so they never wrap: a store
/// at [`MAX_SNAPSHOT_ID`] takes no more writes, and says so before anything is written.
pub fn snapshot_after(storage: &dyn Storage, committed: u64) -> Result<u64> {
    committed
        .checked_add(1)
        .filter(|id| *id <= MAX_SNAPSHOT_ID)
        .ok_or_else(|| {
            Error::corrupt(
                storage.location().join(MANIFEST_KEY),
                format!(
                    "its snapshot id {committed} is the largest a store may reach \
                     ({MAX_SNAPSHOT_ID}), so no further snapshot can be written; no real \
                     history gets that far, so the manifest was probably altered. Nothing was \
                     written"
                ),
            )
        })
}

/// Checks that no snapshot can reach what lies under snapshot id `seq`, the one after the
/// committed state `committed`, so that it may be removed (what an unfinished write left)
/// or written:
/// - the committed index's root is no newer than the committed snapshot (every walk checks
///   that what lies below a node is older still, so no read of it reaches a later id);
/// - no snapshot manifest newer than `seq` exists, and one of `seq` (an unfinished write
///   writes it just before its commit point) was written from the committed state.
///
/// Older snapshots reach only older ids, as the committed state does. A store that fails
/// these checks had its `gridstore.json` replaced or altered; nothing is removed from it.
pub fn check_next_id_is_free(
    storage: &dyn Storage,
    committed: Option<&Manifest>,
    seq: u64,
) -> Result<()> {
    let committed_id = committed.map_or(0, |m| m.snapshot.id);
    let manifest_path = storage.location().join(MANIFEST_KEY);
    if let Some(root) = committed.and_then(|m| m.index.root) {
        if root.seq > committed_id {
            return Err(Error::corrupt(
                manifest_path,
                format!(
                    "its index root {} was written by a later snapshot than its own id \
                     ({committed_id}) says, so the manifest was altered and objects of \
                     snapshot {seq} may be in use; nothing was removed. Restore gridstore.json \
                     from the newest snapshots/<id>.json",
                    root.object_key()
                ),
            ));
        }
    }
    let (ids, _) = super::history::snapshot_files(storage)?;
    super::history::check_no_later_snapshot(storage, committed_id, &ids)?;
    let key = snapshot_key(seq);
    if !ids.contains(&seq) {
        return Ok(());
    }
    let Some(bytes) = storage.read_at_most(&key, MAX_MANIFEST_LEN)? else {
        return Ok(());
    };
    // One that does not parse was cut short while being written: no reader can open it.
    let Ok(unfinished) = Manifest::parse(&bytes, &storage.location().join(&key)) else {
        return Ok(());
    };
    let from_committed = committed.map(|m| m.snapshot.id);
    if unfinished.snapshot.parent != from_committed || unfinished.snapshot.id != seq {
        return Err(Error::corrupt(
            storage.location().join(&key),
            format!(
                "damaged history: this snapshot is no unfinished write of the committed \
                 state (snapshot {committed_id}): it says it is snapshot {} with parent {}; \
                 gridstore.json may have been replaced by an older snapshot, so nothing was \
                 removed",
                unfinished.snapshot.id,
                unfinished
                    .snapshot
                    .parent
                    .map_or("none".to_string(), |p| p.to_string())
            ),
        ));
    }
    Ok(())
}

/// Removes every object an uncommitted write may have made. Must hold the lock (or own
/// the stale one). Removes nothing a snapshot can reach: see [`check_next_id_is_free`].
pub fn discard_unfinished_write(storage: &dyn Storage) -> Result<Cleanup> {
    let committed = committed_manifest(storage)?;
    let committed_id = committed.as_ref().map_or(0, |m| m.snapshot.id);
    let mut removed = Vec::new();
    // At the last id no writer can have started, so nothing lies under the next one.
    let seq = committed_id.saturating_add(1);
    if seq <= MAX_SNAPSHOT_ID {
        check_next_id_is_free(storage, committed.as_ref(), seq)?;
        for prefix in WRITE_PREFIXES {
            if storage.list(prefix)?.contains(&seq.to_string()) {
                let key = crate::keys::write_dir(prefix, seq);
                storage.delete_prefix(&key)?;
                removed.push(key);
            }
        }
        let manifest = snapshot_key(seq);
        if storage.read_at_most(&manifest, MAX_MANIFEST_LEN)?.is_some() {
            storage.delete(&manifest)?;
            removed.push(manifest);
        }
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
pub(super) fn temporary_of_dead_process(name: &str) -> bool {
    let rest = [MANIFEST_KEY, LOCK_KEY]
        .iter()
        .find_map(|key| name.strip_prefix(&format!(".{key}.")));
    let Some(pid) = rest
        .and_then(|r| r.split('.').next())
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return false;
    };
    !process_alive(pid, None)
}

pub(crate) fn hostname() -> String {
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

    fn now_rfc3339() -> String {
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
    }

    /// This process's own lock, changed by `edit`, as a lock file's bytes.
    fn my_lock_with(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v = serde_json::to_value(LockInfo::mine("crafted")).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn a_lock_naming_an_impossible_pid_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        // u32::MAX is -1 as a pid_t: kill(-1, 0) succeeds, and this lock used to block
        // every writer for good.
        for pid in [u32::MAX, pid_max(), 0] {
            let crafted = my_lock_with(|v| v["pid"] = pid.into());
            let info = parse_lock(&crafted);
            assert!(info.is_stale(), "pid {pid}: {info:?}");
            assert!(
                info.describe().contains("outside the range"),
                "{}",
                info.describe()
            );
            s.write(LOCK_KEY, &crafted).unwrap();
            let lock = WriterLock::acquire(s.clone(), "next", LockWait::Fail).unwrap();
            assert!(lock.recovered().is_some());
            lock.release().unwrap();
        }
        // Another host's pid_max is not known here, but none exceeds the kernel's limit.
        let other = my_lock_with(|v| {
            v["host"] = "elsewhere".into();
            v["pid"] = PID_MAX_LIMIT.into();
        });
        assert!(parse_lock(&other).is_stale());
        let sound = my_lock_with(|v| v["host"] = "elsewhere".into());
        assert!(!parse_lock(&sound).is_stale());
    }

    #[test]
    fn a_lock_from_the_future_or_with_unreadable_fields_is_stale() {
        let in_a_year = std::time::SystemTime::now() + Duration::from_secs(366 * 86400);
        for (what, crafted) in [
            (
                "in the future",
                my_lock_with(|v| {
                    v["started"] = humantime::format_rfc3339_seconds(in_a_year)
                        .to_string()
                        .into()
                }),
            ),
            (
                "later than now",
                my_lock_with(|v| v["process_start"] = (u64::MAX / 2).into()),
            ),
            ("not a date", my_lock_with(|v| v["started"] = "soon".into())),
            ("host name", my_lock_with(|v| v["host"] = "".into())),
            ("not a gridstore lock", b"{\"pid\": \"x\"}".to_vec()),
            ("empty", Vec::new()),
        ] {
            let info = parse_lock(&crafted);
            assert!(info.is_stale(), "{what}: {info:?}");
            assert!(
                info.describe().contains(what),
                "{what}: {}",
                info.describe()
            );
        }
        // A clock a little ahead of ours is not a reason to take a live writer's lock.
        let ahead = std::time::SystemTime::now() + Duration::from_secs(600);
        let soon = my_lock_with(|v| {
            v["started"] = humantime::format_rfc3339_seconds(ahead).to_string().into()
        });
        assert!(!parse_lock(&soon).is_stale());
    }

    #[test]
    fn control_characters_of_a_lock_are_escaped_in_messages() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        s.write(
            LOCK_KEY,
            &my_lock_with(|v| v["writer"] = "evil\u{1b}[2J\n".into()),
        )
        .unwrap();
        let e = WriterLock::acquire(s, "second", LockWait::Fail)
            .err()
            .unwrap();
        let text = e.to_string();
        assert!(text.contains("evil\\x1b[2J\\n"), "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\n'), "{text}");
    }

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
            started: now_rfc3339(),
            writer: "dead".into(),
            damage: None,
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
            started: now_rfc3339(),
            writer: "sleep".into(),
            damage: None,
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

/// What an unfinished write leaves is removed only when no snapshot can reach it.
#[cfg(test)]
mod unfinished_writes {
    use super::*;
    use crate::index::NodeRef;
    use crate::manifest::tests::sample;
    use crate::storage::LocalStorage;

    /// The manifest of snapshot `id`, made from `parent`, its index rooted at `root`.
    fn manifest(id: u64, parent: Option<u64>, root: Option<NodeRef>) -> Manifest {
        let mut m = sample();
        m.snapshot.id = id;
        m.snapshot.parent = parent;
        m.index.root = root;
        m
    }

    /// A store whose committed state is `current`, holding the snapshot manifests `kept`
    /// and objects under snapshots 1 to 5.
    fn store(current: &Manifest, kept: &[Manifest]) -> (tempfile::TempDir, Arc<dyn Storage>) {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        s.write(MANIFEST_KEY, &current.to_json()).unwrap();
        for m in kept {
            s.write(&snapshot_key(m.snapshot.id), &m.to_json()).unwrap();
        }
        for seq in 1..=5 {
            s.write(&format!("chunks/{seq}/0_0_0_0/0_0_0"), b"chunk")
                .unwrap();
            s.write(&format!("index/{seq}/0"), b"node").unwrap();
        }
        (dir, s)
    }

    fn objects(s: &dyn Storage) -> Vec<String> {
        let mut all = s.list("snapshots/").unwrap();
        for prefix in ["chunks/", "index/"] {
            all.extend(
                s.list(prefix)
                    .unwrap()
                    .iter()
                    .map(|n| format!("{prefix}{n}")),
            );
        }
        all.sort();
        all
    }

    fn root(seq: u64) -> Option<NodeRef> {
        Some(NodeRef { seq, id: 0 })
    }

    #[test]
    fn an_unfinished_write_of_the_committed_state_is_removed() {
        let three = manifest(3, Some(2), root(3));
        let (_d, s) = store(&three, &[three.clone(), manifest(4, Some(3), root(4))]);
        let cleanup = discard_unfinished_write(&*s).unwrap();
        assert_eq!(cleanup.seq, 4);
        assert_eq!(
            cleanup.removed,
            ["chunks/4/", "index/4/", "snapshots/4.json"]
        );
    }

    #[test]
    fn nothing_is_removed_from_a_store_whose_manifest_is_older_than_its_history() {
        let three = manifest(3, Some(2), root(3));
        let later = [manifest(4, Some(3), root(4)), manifest(5, Some(4), root(5))];
        // gridstore.json replaced by snapshot 3 while 4 and 5 exist; then with its id
        // lowered to 3 but its index left at snapshot 5's; then a snapshot 4 that was not
        // written from the committed state.
        let lowered = manifest(3, Some(2), root(5));
        let cases = [
            (three.clone(), later.to_vec(), "snapshots/5.json"),
            // (Reading the manifest already refuses this one: its root is newer than it.)
            (lowered, Vec::new(), "index.root names snapshot 5"),
            (
                three,
                vec![manifest(4, Some(1), root(4))],
                "snapshots/4.json",
            ),
        ];
        for (current, kept, named) in cases {
            let (_d, s) = store(&current, &kept);
            let before = objects(&*s);
            let e = discard_unfinished_write(&*s).unwrap_err().to_string();
            assert!(
                e.contains(named)
                    && (e.to_lowercase().contains("nothing was removed")
                        || e.contains("the manifest is damaged")),
                "{e}"
            );
            assert_eq!(objects(&*s), before);
            // A writer taking over a dead writer's lock is refused the same way, and lets
            // the lock go.
            s.write(LOCK_KEY, b"").unwrap();
            let e = WriterLock::acquire(s.clone(), "next", LockWait::Fail).err();
            assert!(e.unwrap().to_string().contains(named));
            assert_eq!(objects(&*s), before);
            assert_eq!(s.read(LOCK_KEY).unwrap(), None);
        }
    }

    #[test]
    fn the_last_snapshot_id_takes_no_write_but_a_lock_is_still_recovered() {
        let last = manifest(MAX_SNAPSHOT_ID, Some(MAX_SNAPSHOT_ID - 1), root(3));
        let (_d, s) = store(&last, std::slice::from_ref(&last));
        let e = next_snapshot_id(&*s).unwrap_err().to_string();
        assert!(e.contains("largest a store may reach"), "{e}");
        let before = objects(&*s);
        s.write(LOCK_KEY, b"").unwrap();
        let lock = WriterLock::acquire(s.clone(), "next", LockWait::Fail).unwrap();
        assert!(lock.recovered().unwrap().cleanup.removed.is_empty());
        assert_eq!(objects(&*s), before);
    }
}
