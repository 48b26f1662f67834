//! The sources the writes read, kept with the snapshots they made (docs/FORMAT.md §12), so
//! that a catalog can index what went into a store.
//!
//! A write that records its sources writes one *source list*, `sources/<id>/sources.jsonl`:
//! a header line linking to the state's previous list, then one JSON line per source, each
//! a STAC Item (its path, footprint, time, bands and properties). The manifest links to the
//! state's newest list, so the lists of a state form a chain back through every write whose
//! data it holds, whatever `gc` removed of the snapshots; a rollback brings back the chain
//! of the state it restores. Every link says the list's snapshot, count, length and
//! CRC-32C, all checked before a line is believed, and links go only to older snapshots, so
//! a walk ends.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::keys::source_list;
use crate::manifest::{SourceListRef, MAX_SOURCE_LIST_LEN};
use crate::storage::Storage;

/// The first line of a source list.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    /// The state's list before this one.
    previous: Option<SourceListRef>,
}

/// Writes the source list of snapshot `id`, linking to `previous`, and returns the link to
/// it.
pub(super) fn write(
    storage: &dyn Storage,
    id: u64,
    previous: Option<SourceListRef>,
    records: &[Json],
) -> Result<SourceListRef> {
    let mut bytes = serde_json::to_vec(&Header { previous }).expect("the header serializes");
    bytes.push(b'\n');
    for r in records {
        serde_json::to_writer(&mut bytes, r).expect("JSON values serialize");
        bytes.push(b'\n');
    }
    if bytes.len() as u64 > MAX_SOURCE_LIST_LEN {
        return Err(Error::InvalidInput(format!(
            "the list of the {} sources this write read takes {} bytes, more than the \
             {MAX_SOURCE_LIST_LEN} a snapshot may have; write them in several runs",
            records.len(),
            bytes.len()
        )));
    }
    storage.write(&source_list(id), &bytes)?;
    Ok(SourceListRef {
        id,
        count: records.len() as u64,
        bytes: bytes.len() as u64,
        crc32c: crc32c::crc32c(&bytes),
    })
}

/// One source list, read and checked against the link to it.
#[derive(Debug)]
pub struct SourceList {
    pub previous: Option<SourceListRef>,
    /// Each a JSON object with a string `id`.
    pub records: Vec<Json>,
}

/// Reads the list `link` names and checks it against the link: present, its length, its
/// CRC-32C, its count, and a previous list older than itself.
pub fn read(storage: &dyn Storage, link: &SourceListRef) -> Result<SourceList> {
    let key = source_list(link.id);
    let damaged = |detail: String| Error::corrupt(storage.location().join(&key), detail);
    if link.bytes > MAX_SOURCE_LIST_LEN {
        return Err(damaged(format!(
            "a link says it holds {} bytes, more than a source list may ({MAX_SOURCE_LIST_LEN})",
            link.bytes
        )));
    }
    let len = link.bytes as usize;
    // One more byte than the link says shows an object too long.
    let bytes = storage.read_at_most(&key, len + 1)?.ok_or_else(|| {
        damaged(format!(
            "the list of {} sources snapshot {} recorded is missing",
            link.count, link.id
        ))
    })?;
    if bytes.len() != len {
        return Err(damaged(format!(
            "holds {} bytes where its link says {len}",
            bytes.len()
        )));
    }
    let crc = crc32c::crc32c(&bytes);
    if crc != link.crc32c {
        return Err(damaged(format!(
            "its CRC-32C is {crc:08x} where its link says {:08x}",
            link.crc32c
        )));
    }
    let list = parse(&bytes, link.count).map_err(damaged)?;
    if let Some(p) = list.previous.as_ref().filter(|p| p.id >= link.id) {
        return Err(damaged(format!(
            "it links to the list of snapshot {}, which is not older than its own ({})",
            p.id, link.id
        )));
    }
    Ok(list)
}

/// The header and records of a source list of `count` records.
fn parse(bytes: &[u8], count: u64) -> std::result::Result<SourceList, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("is not UTF-8 ({e})"))?;
    let mut lines = text
        .strip_suffix('\n')
        .ok_or("does not end with a newline")?
        .split('\n');
    let header: Header = serde_json::from_str(lines.next().unwrap_or_default())
        .map_err(|e| format!("line 1: not a source list's header ({e})"))?;
    let mut records = Vec::new();
    for (n, line) in lines.enumerate() {
        if records.len() as u64 == count {
            return Err(format!("holds more than the {count} sources its link says"));
        }
        let record: Json =
            serde_json::from_str(line).map_err(|e| format!("line {}: is not JSON ({e})", n + 2))?;
        if !record.get("id").is_some_and(Json::is_string) {
            return Err(format!("line {}: a source record without an id", n + 2));
        }
        records.push(record);
    }
    if records.len() as u64 != count {
        return Err(format!(
            "holds {} sources where its link says {count}",
            records.len()
        ));
    }
    Ok(SourceList {
        previous: header.previous,
        records,
    })
}

/// Calls `visit` with each list of the chain that starts at `head`, newest first, until the
/// chain ends or `visit` returns false. Each list is checked as [`read`] does.
pub fn walk(
    storage: &dyn Storage,
    head: Option<&SourceListRef>,
    visit: &mut dyn FnMut(&SourceListRef, SourceList) -> bool,
) -> Result<()> {
    let mut next = head.cloned();
    // Each link goes to an older snapshot (checked in `read`), so this ends.
    while let Some(link) = next {
        let list = read(storage, &link)?;
        next = list.previous.clone();
        if !visit(&link, list) {
            break;
        }
    }
    Ok(())
}

/// The sources of what a snapshot holds, newest first, each with the snapshot that
/// recorded it, one per source id (the newest record).
pub fn sources_in(snapshot: &super::Snapshot) -> Result<Vec<(u64, Json)>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let head = snapshot.manifest().sources.as_ref();
    walk(&**snapshot.storage(), head, &mut |link, list| {
        for record in list.records {
            let id = record["id"].as_str().unwrap_or_default().to_string();
            if seen.insert(id) {
                out.push((link.id, record));
            }
        }
        true
    })?;
    Ok(out)
}

/// The snapshots whose source lists the states `heads` reach, for `gc`: every list of
/// every chain, each checked.
pub(super) fn reachable(
    storage: &dyn Storage,
    heads: impl IntoIterator<Item = Option<SourceListRef>>,
) -> Result<HashSet<u64>> {
    let mut marked = HashSet::new();
    for head in heads {
        // Chains share their older lists: a list marked already was walked from there.
        walk(storage, head.as_ref(), &mut |link, _| {
            marked.insert(link.id)
        })?;
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(previous: Option<SourceListRef>, records: &[Json]) -> Vec<u8> {
        let storage = crate::storage::MemoryStorage::new("mem");
        let link = write(&*storage, 9, previous, records).unwrap();
        storage.read(&source_list(link.id)).unwrap().unwrap()
    }

    #[test]
    fn a_list_reads_back_and_its_count_is_checked() {
        let records = vec![json!({"id": "a", "x": 1}), json!({"id": "b"})];
        let bytes = list(None, &records);
        assert_eq!(parse(&bytes, 2).unwrap().records, records);
        assert!(parse(&bytes, 1).unwrap_err().contains("more than"));
        assert!(parse(&bytes, 3).unwrap_err().contains("holds 2"));
        let header = b"{\"previous\":null}\n";
        let with = |line: &[u8]| [&header[..], line].concat();
        assert!(parse(&with(b"{\"x\":1}\n"), 1)
            .unwrap_err()
            .contains("without an id"));
        assert!(parse(&with(b"{\n"), 1).unwrap_err().contains("not JSON"));
        assert!(parse(b"{\"before\":1}\n", 0)
            .unwrap_err()
            .contains("header"));
    }
}
