//! A store's objects in memory, with object-storage semantics and injected faults: the
//! backend for tests of the commit protocol.
//!
//! [`MemoryStorage`] behaves as object storage does (its writers commit optimistically):
//! a new object is never written over an existing one, every object carries a version (its
//! ETag), and a conditional write of an object is atomic. On top of that, a test can plan
//! faults ([`MemoryStorage::fail_next`]): a refused condition (HTTP 412), a server error
//! (500), a lost response (the write took place, but the caller hears it failed), a delay
//! or a timeout. It can also run code just before an operation
//! ([`MemoryStorage::before_next`]; [`MemoryStorage::before_manifest_write`] for the
//! conditional write of the manifest), such as another writer's whole commit, to force a
//! lost race deterministically. Every operation is counted by kind.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::{Commits, Expect, Storage, Version, Written};
use crate::error::{Error, Result};
use crate::manifest::MANIFEST_KEY;

/// The kinds of operation a [`MemoryStorage`] counts and can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StorageOp {
    /// `read`, `read_at_most`, `read_into`.
    Read,
    ReadRange,
    ReadVersioned,
    /// `write` and `write_parts`: a new object (`If-None-Match: *`).
    Write,
    CreateNew,
    /// A conditional write (`write_if`).
    WriteIf,
    Claim,
    Replace,
    Delete,
    DeletePrefix,
    List,
}

/// What an injected fault does to the operation it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 412: the condition fails and nothing is written (`write_if` returns
    /// [`Written::Refused`], `create_new` and `claim` false, `write` an error as for an
    /// existing key; any other operation fails with the 412 as its error).
    Refuse,
    /// HTTP 500: nothing is done, and the caller gets an error ([`Written::Unknown`] from
    /// `write_if`).
    ServerError,
    /// The operation IS carried out, but its response is lost: the caller gets an error
    /// ([`Written::Unknown`] from `write_if`).
    LostResponse,
    /// The operation waits this long, then runs normally.
    Delay(Duration),
    /// The operation waits this long, then fails as [`Fault::ServerError`] does, with a
    /// timeout as its error.
    Timeout(Duration),
}

/// A fault planned for the next operation of kind `op` on a key starting with
/// `key_prefix` (`""` matches every key).
#[derive(Debug, Clone)]
pub struct FaultRule {
    pub op: StorageOp,
    pub key_prefix: String,
    pub fault: Fault,
}

/// Code run before an operation; returns whether to run it again before the next one.
type Hook = Box<dyn FnMut(&Arc<MemoryStorage>) -> bool + Send>;

/// A hook, and the operations it runs before: of kind `op`, on keys starting with
/// `key_prefix`.
struct PlannedHook {
    op: StorageOp,
    key_prefix: String,
    hook: Hook,
}

/// An object and its version.
type Object = (Vec<u8>, u64);

/// A store's objects in memory, with object-storage semantics and injected faults (see the
/// module documentation). Made by [`MemoryStorage::new`], shared as an `Arc`.
pub struct MemoryStorage {
    location: PathBuf,
    objects: Mutex<BTreeMap<String, Object>>,
    /// The last version given out: each write of an object gives it a new one.
    last_version: Mutex<u64>,
    plan: Mutex<VecDeque<FaultRule>>,
    counts: Mutex<BTreeMap<StorageOp, u64>>,
    hooks: Mutex<Vec<PlannedHook>>,
    /// Set while a hook runs: the operations it makes (or any other thread makes
    /// meanwhile) run no hook.
    in_hook: AtomicBool,
    /// Set by [`MemoryStorage::ignore_conditions`]: writes ignore their conditions, as
    /// some S3-compatible servers do.
    ignoring: AtomicBool,
    /// This storage, for the hooks.
    me: Weak<MemoryStorage>,
}

/// What the operation about to run must do.
enum Outcome {
    Proceed,
    Refuse,
    Fail(std::io::Error),
    /// Carry it out, then fail with this error.
    Lose(std::io::Error),
}

impl MemoryStorage {
    /// An empty storage; `location` names it in messages.
    pub fn new(location: impl Into<PathBuf>) -> Arc<MemoryStorage> {
        let location = location.into();
        Arc::new_cyclic(|me| MemoryStorage {
            location,
            objects: Mutex::default(),
            last_version: Mutex::new(0),
            plan: Mutex::default(),
            counts: Mutex::default(),
            hooks: Mutex::default(),
            in_hook: AtomicBool::new(false),
            ignoring: AtomicBool::new(false),
            me: me.clone(),
        })
    }

    /// Plans a fault for the next operation `rule` matches. Rules are used once each, in
    /// the order planned; the first matching rule is the one used.
    pub fn fail_next(&self, rule: FaultRule) {
        self.plan.lock().expect("poisoned").push_back(rule);
    }

    /// The planned faults no operation has hit yet.
    pub fn pending_faults(&self) -> Vec<FaultRule> {
        self.plan
            .lock()
            .expect("poisoned")
            .iter()
            .cloned()
            .collect()
    }

    /// Runs `hook` once, with this storage, just before the next operation of kind `op` on
    /// a key starting with `key_prefix` (before any fault planned for it): there, a test
    /// can commit another writer's transaction. Hooks run in the order planned; the first
    /// matching one is the one run.
    pub fn before_next(
        &self,
        op: StorageOp,
        key_prefix: &str,
        hook: impl FnOnce(&Arc<MemoryStorage>) + Send + 'static,
    ) {
        let mut hook = Some(hook);
        self.before_each(op, key_prefix, move |s| {
            if let Some(h) = hook.take() {
                h(s);
            }
            false
        });
    }

    /// Runs `hook` before every operation of kind `op` on a key starting with
    /// `key_prefix`, until it returns false or [`clear_hooks`](MemoryStorage::clear_hooks)
    /// is called. Operations made while a hook runs run no hook.
    pub fn before_each(
        &self,
        op: StorageOp,
        key_prefix: &str,
        hook: impl FnMut(&Arc<MemoryStorage>) -> bool + Send + 'static,
    ) {
        self.hooks.lock().expect("poisoned").push(PlannedHook {
            op,
            key_prefix: key_prefix.to_string(),
            hook: Box::new(hook),
        });
    }

    /// Runs `hook` once, just before the next conditional write of the manifest: to
    /// commit another writer's transaction there, so that the write that follows loses
    /// the race.
    pub fn before_manifest_write(&self, hook: impl FnOnce(&Arc<MemoryStorage>) + Send + 'static) {
        self.before_next(StorageOp::WriteIf, MANIFEST_KEY, hook);
    }

    /// Runs `hook` before every conditional write of the manifest, until it returns false
    /// or the hooks are cleared.
    pub fn before_each_manifest_write(
        &self,
        hook: impl FnMut(&Arc<MemoryStorage>) -> bool + Send + 'static,
    ) {
        self.before_each(StorageOp::WriteIf, MANIFEST_KEY, hook);
    }

    /// Removes every hook.
    pub fn clear_hooks(&self) {
        self.hooks.lock().expect("poisoned").clear();
    }

    /// How many operations of kind `op` were asked for so far (faulty ones included).
    pub fn count(&self, op: StorageOp) -> u64 {
        self.counts
            .lock()
            .expect("poisoned")
            .get(&op)
            .copied()
            .unwrap_or(0)
    }

    /// Every object's key, in order.
    pub fn keys(&self) -> Vec<String> {
        self.objects
            .lock()
            .expect("poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// Every object, by key.
    pub fn contents(&self) -> BTreeMap<String, Vec<u8>> {
        let objects = self.objects.lock().expect("poisoned");
        objects
            .iter()
            .map(|(k, (d, _))| (k.clone(), d.clone()))
            .collect()
    }

    /// Runs the first hook for the operation, counts it, and takes the first planned
    /// fault it matches.
    fn enter(&self, op: StorageOp, key: &str) -> Outcome {
        self.run_hook(op, key);
        *self.counts.lock().expect("poisoned").entry(op).or_default() += 1;
        let fault = {
            let mut plan = self.plan.lock().expect("poisoned");
            let at = plan
                .iter()
                .position(|r| r.op == op && key.starts_with(&r.key_prefix));
            at.and_then(|i| plan.remove(i)).map(|r| r.fault)
        };
        let injected = |what: &str| std::io::Error::other(format!("{what} (injected fault)"));
        match fault {
            None => Outcome::Proceed,
            Some(Fault::Delay(d)) => {
                std::thread::sleep(d);
                Outcome::Proceed
            }
            Some(Fault::Refuse) => Outcome::Refuse,
            Some(Fault::ServerError) => Outcome::Fail(injected("HTTP 500 Internal Server Error")),
            Some(Fault::Timeout(d)) => {
                std::thread::sleep(d);
                Outcome::Fail(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no response within {d:?} (injected fault)"),
                ))
            }
            Some(Fault::LostResponse) => {
                Outcome::Lose(injected("the connection closed before the response"))
            }
        }
    }

    /// Runs operation `op` on `key`: `apply` carries it out, `refused` is what a refused
    /// condition gives; faults planned for it change that as [`Fault`] says.
    fn run<T>(
        &self,
        op: StorageOp,
        key: &str,
        action: &'static str,
        apply: impl FnOnce() -> Result<T>,
        refused: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        match self.enter(op, key) {
            Outcome::Proceed => apply(),
            Outcome::Refuse => refused(),
            Outcome::Fail(e) => Err(Error::io(self.location.join(key), action, e)),
            Outcome::Lose(e) => {
                apply()?;
                Err(Error::io(self.location.join(key), action, e))
            }
        }
    }

    /// The error of an operation refused by an injected 412.
    fn precondition_failed(&self, key: &str, action: &'static str) -> Error {
        Error::io(
            self.location.join(key),
            action,
            std::io::Error::other("HTTP 412 Precondition Failed (injected fault)"),
        )
    }

    fn next_version(&self) -> u64 {
        let mut v = self.last_version.lock().expect("poisoned");
        *v += 1;
        *v
    }

    fn get(&self, key: &str) -> Option<Object> {
        self.objects.lock().expect("poisoned").get(key).cloned()
    }

    /// Puts `data` at `key` if `expect` holds for what is there, in one step; returns
    /// whether it did.
    fn put_if(&self, key: &str, data: &[u8], expect: Expect<'_>) -> bool {
        let ignoring = self.ignoring.load(Ordering::SeqCst);
        let mut objects = self.objects.lock().expect("poisoned");
        let holds = ignoring
            || match (expect, objects.get(key)) {
                (Expect::Absent, found) => found.is_none(),
                (Expect::At(v), Some((_, at))) => v.0 == at.to_string(),
                (Expect::At(_), None) => false,
            };
        if holds {
            objects.insert(key.to_string(), (data.to_vec(), self.next_version()));
        }
        holds
    }

    /// From now on, writes ignore `If-None-Match` and `If-Match`: they always write, as a
    /// server without conditional writes does.
    pub fn ignore_conditions(&self) {
        self.ignoring.store(true, Ordering::SeqCst);
    }

    fn put(&self, key: &str, data: &[u8]) {
        let version = self.next_version();
        let mut objects = self.objects.lock().expect("poisoned");
        objects.insert(key.to_string(), (data.to_vec(), version));
    }

    /// A new object at `key`; an existing one is an error, as on local disk.
    fn put_new(&self, key: &str, data: &[u8]) -> Result<()> {
        match self.put_if(key, data, Expect::Absent) {
            true => Ok(()),
            false => Err(self.exists(key)),
        }
    }

    fn exists(&self, key: &str) -> Error {
        Error::AlreadyExists {
            path: self.location.join(key),
            hint: "A new object is never written over an existing one".into(),
        }
    }

    /// Runs the first hook planned for operation `op` on `key`, unless a hook is running
    /// already.
    fn run_hook(&self, op: StorageOp, key: &str) {
        if self.in_hook.swap(true, Ordering::SeqCst) {
            return;
        }
        let planned = {
            let mut hooks = self.hooks.lock().expect("poisoned");
            let at = hooks
                .iter()
                .position(|h| h.op == op && key.starts_with(&h.key_prefix));
            at.map(|i| (i, hooks.remove(i)))
        };
        if let (Some((at, mut planned)), Some(me)) = (planned, self.me.upgrade()) {
            if (planned.hook)(&me) {
                let mut hooks = self.hooks.lock().expect("poisoned");
                let at = at.min(hooks.len());
                hooks.insert(at, planned);
            }
        }
        self.in_hook.store(false, Ordering::SeqCst);
    }
}

impl Storage for MemoryStorage {
    fn location(&self) -> &Path {
        &self.location
    }

    fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let apply = || Ok(self.get(key).map(|(d, _)| d));
        let refused = || Err(self.precondition_failed(key, "reading"));
        self.run(StorageOp::Read, key, "reading", apply, refused)
    }

    fn read_into(&self, key: &str, max_len: usize, buf: &mut Vec<u8>) -> Result<bool> {
        let found = self.read(key)?;
        let Some(data) = found else {
            return Ok(false);
        };
        if data.len() > max_len {
            return Err(Error::corrupt(
                self.location.join(key),
                format!(
                    "the object is {} bytes, more than the {max_len} it may be",
                    data.len()
                ),
            ));
        }
        buf.clear();
        buf.extend_from_slice(&data);
        Ok(true)
    }

    fn read_range(&self, key: &str, offset: u64, len: usize, buf: &mut Vec<u8>) -> Result<bool> {
        let apply = || {
            let Some((data, _)) = self.get(key) else {
                return Ok(false);
            };
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let end = start.saturating_add(len).min(data.len());
            buf.clear();
            buf.extend_from_slice(&data[start..end]);
            Ok(true)
        };
        let refused = || Err(self.precondition_failed(key, "reading"));
        self.run(StorageOp::ReadRange, key, "reading", apply, refused)
    }

    fn write(&self, key: &str, data: &[u8]) -> Result<()> {
        let apply = || self.put_new(key, data);
        self.run(StorageOp::Write, key, "writing", apply, || {
            Err(self.exists(key))
        })
    }

    fn create_new(&self, key: &str, data: &[u8]) -> Result<bool> {
        let apply = || Ok(self.put_if(key, data, Expect::Absent));
        self.run(StorageOp::CreateNew, key, "creating", apply, || Ok(false))
    }

    fn claim(&self, key: &str, expected: &[u8], new: &[u8]) -> Result<bool> {
        let apply = || {
            let mut objects = self.objects.lock().expect("poisoned");
            match objects.get(key) {
                Some((held, _)) if held == expected => {
                    objects.insert(key.to_string(), (new.to_vec(), self.next_version()));
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        self.run(StorageOp::Claim, key, "claiming", apply, || Ok(false))
    }

    fn replace(&self, key: &str, data: &[u8]) -> Result<()> {
        let apply = || {
            self.put(key, data);
            Ok(())
        };
        let refused = || Err(self.precondition_failed(key, "replacing"));
        self.run(StorageOp::Replace, key, "replacing", apply, refused)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let apply = || {
            self.objects.lock().expect("poisoned").remove(key);
            Ok(())
        };
        let refused = || Err(self.precondition_failed(key, "deleting"));
        self.run(StorageOp::Delete, key, "deleting", apply, refused)
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let dir = format!("{}/", prefix.trim_end_matches('/'));
        let apply = || {
            let mut objects = self.objects.lock().expect("poisoned");
            objects.retain(|k, _| !k.starts_with(&dir));
            Ok(())
        };
        let refused = || Err(self.precondition_failed(prefix, "deleting"));
        self.run(StorageOp::DeletePrefix, prefix, "deleting", apply, refused)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = match prefix.trim_end_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let apply = || {
            let objects = self.objects.lock().expect("poisoned");
            let names: std::collections::BTreeSet<String> = objects
                .keys()
                .filter_map(|k| k.strip_prefix(&dir))
                .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
                .filter(|n| !n.is_empty())
                .collect();
            Ok(names.into_iter().collect())
        };
        let refused = || Err(self.precondition_failed(prefix, "listing"));
        self.run(StorageOp::List, prefix, "listing", apply, refused)
    }

    fn sync(&self) -> Result<()> {
        // Each object is durable once written.
        Ok(())
    }

    fn commits(&self) -> Commits {
        Commits::Optimistic
    }

    fn read_versioned(&self, key: &str, max_len: usize) -> Result<Option<(Vec<u8>, Version)>> {
        let apply = || {
            let Some((data, version)) = self.get(key) else {
                return Ok(None);
            };
            if data.len() > max_len {
                return Err(Error::corrupt(
                    self.location.join(key),
                    format!(
                        "the object is {} bytes, more than the {max_len} it may be",
                        data.len()
                    ),
                ));
            }
            Ok(Some((data, Version(version.to_string()))))
        };
        let refused = || Err(self.precondition_failed(key, "reading"));
        self.run(StorageOp::ReadVersioned, key, "reading", apply, refused)
    }

    fn write_if(&self, key: &str, data: &[u8], expect: Expect<'_>) -> Written {
        let path = || self.location.join(key);
        match self.enter(StorageOp::WriteIf, key) {
            Outcome::Proceed => match self.put_if(key, data, expect) {
                true => Written::Done,
                false => Written::Refused,
            },
            Outcome::Refuse => Written::Refused,
            Outcome::Fail(e) => Written::Unknown(Error::io(path(), "writing", e)),
            Outcome::Lose(e) => {
                // The condition is checked as the server would; its answer is lost.
                self.put_if(key, data, expect);
                Written::Unknown(Error::io(path(), "writing", e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_response_applies_the_write_and_a_server_error_does_not() {
        let s = MemoryStorage::new("mem");
        s.fail_next(FaultRule {
            op: StorageOp::Write,
            key_prefix: "a".into(),
            fault: Fault::LostResponse,
        });
        s.fail_next(FaultRule {
            op: StorageOp::Write,
            key_prefix: "b".into(),
            fault: Fault::ServerError,
        });
        assert!(s.write("b", b"1").is_err());
        assert!(s.write("a", b"1").is_err());
        assert_eq!(s.keys(), vec!["a".to_string()]);
        assert_eq!(s.count(StorageOp::Write), 2);
        assert!(s.pending_faults().is_empty());
        // A fault is used once.
        assert!(s.write("b", b"1").is_ok());
    }

    #[test]
    fn a_delay_waits_then_succeeds_and_a_timeout_waits_then_fails() {
        let s = MemoryStorage::new("mem");
        let d = Duration::from_millis(30);
        for fault in [Fault::Delay(d), Fault::Timeout(d)] {
            s.fail_next(FaultRule {
                op: StorageOp::Read,
                key_prefix: String::new(),
                fault,
            });
        }
        let start = std::time::Instant::now();
        assert_eq!(s.read("x").unwrap(), None);
        assert!(start.elapsed() >= d);
        let err = s.read("x").unwrap_err();
        assert!(start.elapsed() >= 2 * d);
        assert!(err.to_string().contains("no response within"), "{err}");
    }

    #[test]
    fn conditional_writes_compare_versions_atomically() {
        let s = MemoryStorage::new("mem");
        assert!(matches!(
            s.write_if("m", b"1", Expect::Absent),
            Written::Done
        ));
        let (_, v) = s.read_versioned("m", 10).unwrap().unwrap();
        s.fail_next(FaultRule {
            op: StorageOp::WriteIf,
            key_prefix: "m".into(),
            fault: Fault::Refuse,
        });
        assert!(matches!(
            s.write_if("m", b"2", Expect::At(&v)),
            Written::Refused
        ));
        assert!(matches!(
            s.write_if("m", b"2", Expect::At(&v)),
            Written::Done
        ));
        assert!(matches!(
            s.write_if("m", b"3", Expect::At(&v)),
            Written::Refused
        ));
        assert_eq!(s.read("m").unwrap().unwrap(), b"2");
    }

    #[test]
    fn the_hook_runs_before_the_manifest_write_and_not_within_itself() {
        let s = MemoryStorage::new("mem");
        s.before_manifest_write(|s| {
            assert!(matches!(
                s.write_if(MANIFEST_KEY, b"theirs", Expect::Absent),
                Written::Done
            ));
        });
        assert!(matches!(
            s.write_if(MANIFEST_KEY, b"ours", Expect::Absent),
            Written::Refused
        ));
        assert_eq!(s.read(MANIFEST_KEY).unwrap().unwrap(), b"theirs");
        assert_eq!(s.count(StorageOp::WriteIf), 2);
    }
}
