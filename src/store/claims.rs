//! Claims: how writers without a lock (stores on object storage) keep their objects apart.
//!
//! Before it writes anything, a writer claims a snapshot id by creating `claims/<id>` only
//! if it does not exist (`If-None-Match: *`); every object it then writes is named after
//! that id, so no two writers ever write the same key. A writer that loses the race for
//! the commit and starts over from the new state claims a further id for what it writes
//! next. Claims are removed once the commit is in or the write given up; `gc` treats the
//! ids of claims younger than its grace period as writes in flight and removes nothing of
//! theirs (docs/FORMAT.md §7).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::MAX_SNAPSHOT_ID;
use crate::storage::Storage;

pub use crate::keys::CLAIM_PREFIX;

/// How many ids past the committed one a writer tries before giving up: each taken one
/// is a writer in flight (or one that died less than a gc grace period ago).
const MAX_CLAIM_TRIES: u64 = 256;

/// The largest claim a reader accepts.
const MAX_CLAIM_BYTES: usize = 4096;

fn claim_key(id: u64) -> String {
    crate::keys::claim(id)
}

/// What a claim says: who claimed the id, and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    pub writer: String,
    pub host: String,
    pub pid: u32,
    /// UTC, RFC 3339.
    pub started: String,
    /// Unique to this claim, so that its claimer knows the claim it reads back for its own.
    #[serde(default)]
    pub token: String,
}

impl Claim {
    fn new(writer: &str) -> Claim {
        Claim {
            writer: writer.to_string(),
            host: crate::store::lock::hostname(),
            pid: std::process::id(),
            started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            token: unique_token(),
        }
    }

    /// How long ago the claim was made; `None` when its time does not read (then the
    /// claim is old: no writer writes such a claim).
    pub fn age(&self) -> Option<Duration> {
        let started = humantime::parse_rfc3339(&self.started).ok()?;
        Some(
            SystemTime::now()
                .duration_since(started)
                .unwrap_or_default(),
        )
    }
}

/// A token no other claim has: the time in nanoseconds and a count within this process
/// (the host and process are in the claim beside it).
fn unique_token() -> String {
    static CLAIMS_MADE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let count = CLAIMS_MADE.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}-{count}")
}

/// Claims the first free id after `committed` for a write by `writer`.
///
/// An id whose claim is free is not free when a writer committed under it and released
/// its claim since `committed` was read: the committed id is read again once the claim is
/// held, and an id at or below it is given back and the search goes on above it. (Its
/// owner released the claim only after its commit was in, so the read sees that commit.)
///
/// Once the claim is made, the check that the storage honours conditional writes and the
/// read of the committed id go at once: on object storage each is a round trip.
pub fn claim_next(storage: &dyn Storage, committed: u64, writer: &str) -> Result<u64> {
    let mut after = committed;
    loop {
        let id = claim_free(storage, after, writer)?;
        let (held, now) = std::thread::scope(|scope| {
            let held = scope.spawn(|| check_conditions_hold(storage, id, writer));
            let now = committed_id(storage);
            (held.join(), now)
        });
        let held = held.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // Nothing is written under the claim yet: on a failure it is given back, or a
        // claim of a live writer would hold the id until gc's grace period.
        let now = match held.and(now) {
            Ok(now) => now,
            Err(e) => {
                let _ = release(storage, id);
                return Err(e);
            }
        };
        if id > now {
            return Ok(id);
        }
        release(storage, id)?;
        after = now;
    }
}

/// Claims the first id after `committed` whose claim is free.
fn claim_free(storage: &dyn Storage, committed: u64, writer: &str) -> Result<u64> {
    let body = serde_json::to_vec(&Claim::new(writer)).expect("a claim serializes");
    let last = committed
        .saturating_add(MAX_CLAIM_TRIES)
        .min(MAX_SNAPSHOT_ID);
    for id in committed.saturating_add(1)..=last {
        if storage.create_new(&claim_key(id), &body)? {
            return Ok(id);
        }
    }
    Err(Error::Locked(format!(
        "{}: the {MAX_CLAIM_TRIES} snapshot ids after the committed one ({committed}) are all \
         claimed by writers in flight or by writers that died; `gridstore gc` removes the \
         claims of dead writers once they are older than its grace period",
        storage.location().display()
    )))
}

/// Checks that the storage honours conditional writes, by creating claim `id`, just made,
/// once more with another token: that must be refused. A server that ignores
/// `If-None-Match` (some S3-compatible ones do) would let writers overwrite each other's
/// objects and commits, so writing there is refused.
fn check_conditions_hold(storage: &dyn Storage, id: u64, writer: &str) -> Result<()> {
    let again = serde_json::to_vec(&Claim::new(writer)).expect("a claim serializes");
    if !storage.create_new(&claim_key(id), &again)? {
        return Ok(());
    }
    let _ = release(storage, id);
    Err(Error::NotSupported(format!(
        "{}: the server ignores conditional writes (a PUT with If-None-Match: * replaced an \
         existing object), so writers there could overwrite each other's commits; nothing \
         was written. Use a server that honours If-None-Match and If-Match (AWS S3 does), or \
         write to a local store and copy it there",
        storage.location().display()
    )))
}

/// The id of the committed snapshot (0 before the first commit): one plain read, since
/// only the id is needed, not a version to write against.
fn committed_id(storage: &dyn Storage) -> Result<u64> {
    use crate::manifest::{Manifest, MANIFEST_KEY, MAX_MANIFEST_LEN};
    let Some(bytes) = storage.read_at_most(MANIFEST_KEY, MAX_MANIFEST_LEN)? else {
        return Ok(0);
    };
    let path = storage.location().join(MANIFEST_KEY);
    Ok(Manifest::parse(&bytes, &path)?.snapshot.id)
}

/// Removes claim `id` (the write under it is committed or given up).
pub fn release(storage: &dyn Storage, id: u64) -> Result<()> {
    storage.delete(&claim_key(id))
}

/// The claim on `id`, if any. One that does not parse counts as a claim of unknown age.
pub fn read(storage: &dyn Storage, id: u64) -> Result<Option<Option<Claim>>> {
    Ok(storage
        .read_at_most(&claim_key(id), MAX_CLAIM_BYTES)?
        .map(|bytes| serde_json::from_slice(&bytes).ok()))
}
