//! Step records: which time steps a snapshot holds, and what wrote each.
//!
//! A store with a time axis keeps one record per step in its tile index, under the key
//! [`TileKey::step_record`], pointing at a small JSON object `steps/<seq>/<t>` (docs/
//! FORMAT.md §8). Records sort after every tile and in tick order, so listing the steps is
//! a range walk over the index's last leaves, and finding one a lookup; copy-on-write,
//! snapshots, rollback, gc and verify cover them as they cover chunks.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::{Entry, IndexReader, TileKey, Tree};
use crate::storage::Storage;
use crate::time::TimeSpec;

/// The longest step record read: far beyond what a writer writes (a few hundred bytes).
pub const MAX_RECORD_BYTES: usize = 64 << 10;

/// What one step's record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's instant, ISO 8601 (what its tick gives: a check, and for people).
    pub time: String,
    /// Where the step's data came from (a file name, or a tool).
    pub source: String,
    /// SHA-256 of what was written as this step (its source's content and the options that
    /// shaped it), hex: how a rerun of an append recognises a slice already in.
    pub digest: String,
}

impl StepRecord {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a step record always serializes")
    }

    /// Reads a record object checked against its index entry (size and CRC-32C).
    pub fn decode(bytes: &[u8], entry: &Entry, object: &str) -> Result<StepRecord> {
        let damaged =
            |what: String| Error::InvalidInput(format!("{object}: damaged step record: {what}"));
        if bytes.len() != entry.size as usize {
            return Err(damaged(format!(
                "{} bytes, the index says {}",
                bytes.len(),
                entry.size
            )));
        }
        if crc32c::crc32c(bytes) != entry.crc {
            return Err(damaged("its checksum does not match the index".into()));
        }
        serde_json::from_slice(bytes).map_err(|e| damaged(e.to_string()))
    }

    /// Reads the record of `key` (a step record key) that `entry` points to.
    pub fn read(storage: &dyn Storage, key: &TileKey, entry: &Entry) -> Result<StepRecord> {
        let object = key.object_key(entry.seq, crate::index::ChunkNaming::Blocks);
        if entry.size as usize > MAX_RECORD_BYTES {
            return Err(Error::InvalidInput(format!(
                "{object}: damaged step record: the index gives it {} bytes (at most \
                 {MAX_RECORD_BYTES})",
                entry.size
            )));
        }
        let bytes = storage
            .read_at_most(&object, MAX_RECORD_BYTES)?
            .ok_or_else(|| Error::InvalidInput(format!("{object}: step record missing")))?;
        StepRecord::decode(&bytes, entry, &object)
    }
}

/// Calls `f` with every step of `tree` from tick `from` up to and including `to`, in
/// time order, with its record's entry; `f` returns false to stop.
pub fn for_each_step(
    index: &IndexReader,
    tree: Tree,
    from: u32,
    to: u32,
    f: &mut dyn FnMut(u32, Entry) -> bool,
) -> Result<()> {
    let hi = match to.checked_add(1) {
        Some(next) => TileKey::step_record(next),
        None => TileKey::after_all(),
    };
    index.range(tree, &TileKey::step_record(from), &hi, &mut |k, e| {
        let t = k
            .recorded_step()
            .expect("the range holds step records only");
        Ok(f(t, e))
    })
}

/// Brings the manifest's step counts up to date after a commit changed step records:
/// `added` and `removed` are how many records appeared and went; `tree` is the new index.
/// The first and last ticks come from the index itself when a step at either end went.
pub fn refresh_counts(
    spec: &mut TimeSpec,
    index: &IndexReader,
    tree: Tree,
    added: &[u32],
    removed: &[u32],
) -> Result<()> {
    for &t in added {
        spec.note_added(t);
    }
    spec.steps = spec.steps.saturating_sub(removed.len() as u64);
    let ends_removed = removed
        .iter()
        .any(|&t| Some(t) == spec.first || Some(t) == spec.last);
    if ends_removed {
        let (mut first, mut last, mut steps) = (None, None, 0);
        for_each_step(index, tree, 0, u32::MAX, &mut |t, _| {
            first = first.or(Some(t));
            last = Some(t);
            steps += 1;
            true
        })?;
        (spec.first, spec.last, spec.steps) = (first, last, steps);
    }
    if spec.steps == 0 {
        (spec.first, spec.last) = (None, None);
    }
    Ok(())
}

/// Removes the time steps at `times` (ISO 8601) from the store at `root` in one commit;
/// history keeps them. Every time must be a step the store holds, and be given once (so
/// that the count of times is the count of steps removed).
pub fn delete_steps(
    root: &std::path::Path,
    times: &[String],
    wait: super::lock::LockWait,
) -> Result<crate::manifest::Manifest> {
    let mut txn = super::Transaction::begin(root, "gridstore delete-time", wait)?;
    let spec = txn.manifest.time.clone().ok_or_else(|| {
        Error::InvalidInput(format!("{}: this store has no time axis", root.display()))
    })?;
    let axis = spec.axis()?;
    let base = txn
        .base()
        .cloned()
        .expect("an existing store has a committed state");
    let mut seen = std::collections::BTreeSet::new();
    for text in times {
        let at = crate::time::DateTime::parse(text, axis.calendar())?;
        let t = axis.tick(&at)?;
        if !seen.insert(t) {
            return Err(Error::InvalidInput(format!(
                "{}: the time {at} is given twice; nothing was deleted",
                root.display()
            )));
        }
        if base.step_entry(t)?.is_none() {
            return Err(Error::InvalidInput(format!(
                "{}: holds no step at {at}; nothing was deleted (`gridstore info` lists the \
                 steps)",
                root.display()
            )));
        }
        txn.remove_step(t)?;
    }
    txn.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_of(bytes: &[u8]) -> Entry {
        Entry {
            seq: 1,
            size: bytes.len() as u32,
            crc: crc32c::crc32c(bytes),
            base: 0,
            ..Entry::default()
        }
    }

    #[test]
    fn a_record_reads_back_only_as_its_entry_describes_it() {
        let r = StepRecord {
            time: "2024-01-01T00:00:00Z".into(),
            source: "a.tif".into(),
            digest: "00".repeat(32),
        };
        let bytes = r.encode();
        let e = entry_of(&bytes);
        assert_eq!(StepRecord::decode(&bytes, &e, "steps/1/0").unwrap(), r);
        let short = Entry {
            size: e.size - 1,
            ..e
        };
        let err = StepRecord::decode(&bytes, &short, "steps/1/0").unwrap_err();
        assert!(err.to_string().contains("the index says"), "{err}");
        let wrong = Entry {
            crc: e.crc ^ 1,
            ..e
        };
        let err = StepRecord::decode(&bytes, &wrong, "steps/1/0").unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn a_crafted_record_with_a_valid_checksum_is_still_checked() {
        // Not JSON, and JSON missing a field: both carry checksums that match.
        for bytes in [
            &b"\xff\xfe not json"[..],
            br#"{"time": "2024-01-01T00:00:00Z"}"#,
        ] {
            let err = StepRecord::decode(bytes, &entry_of(bytes), "steps/1/0").unwrap_err();
            assert!(err.to_string().contains("damaged step record"), "{err}");
        }
    }

    #[test]
    fn an_entry_claiming_a_huge_record_is_refused_before_reading() {
        let storage = crate::storage::LocalStorage::new(std::path::Path::new("/nonexistent"));
        let e = Entry {
            seq: 1,
            size: (MAX_RECORD_BYTES + 1) as u32,
            crc: 0,
            ..Entry::default()
        };
        let err = StepRecord::read(&storage, &TileKey::step_record(3), &e).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }
}
