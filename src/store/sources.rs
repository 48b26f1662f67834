//! The sources the writes read, kept with the snapshots they made (docs/FORMAT.md §12), so
//! that a catalog can index what went into a store.
//!
//! A write that records its sources writes them in *source lists*,
//! `sources/<id>/<part>.jsonl` of about [`PART_LEN`] bytes each: a header line linking to
//! the state's previous list, then one JSON line per source, each a STAC Item (its path,
//! footprint, time, bands and properties). The manifest links to the
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

/// The records a list holds, at most: past this many bytes a write starts the next part, so
/// that every object stays small (Azure takes at most 4 MiB in one request).
pub const PART_LEN: usize = 1 << 20;

/// Writes the source lists of snapshot `id`, the first linking to `previous`, and returns
/// the link to the last.
pub(super) fn write(
    storage: &dyn Storage,
    id: u64,
    mut previous: Option<SourceListRef>,
    records: &[Json],
) -> Result<SourceListRef> {
    let lines: Vec<Vec<u8>> = records
        .iter()
        .map(|r| serde_json::to_vec(r).expect("JSON values serialize"))
        .collect();
    let mut part = 0u32;
    let mut rest = &lines[..];
    while !rest.is_empty() {
        // At least one record a part, then as many as fit.
        let mut n = 1;
        let mut len = rest[0].len();
        while n < rest.len() && len + rest[n].len() < PART_LEN {
            len += rest[n].len();
            n += 1;
        }
        let link = write_part(storage, id, part, previous, &rest[..n])?;
        previous = Some(link);
        rest = &rest[n..];
        part += 1;
    }
    Ok(previous.expect("a write records at least one source"))
}

/// Writes part `part` of snapshot `id`'s source lists.
fn write_part(
    storage: &dyn Storage,
    id: u64,
    part: u32,
    previous: Option<SourceListRef>,
    lines: &[Vec<u8>],
) -> Result<SourceListRef> {
    let mut bytes = serde_json::to_vec(&Header { previous }).expect("the header serializes");
    bytes.push(b'\n');
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    if bytes.len() as u64 > MAX_SOURCE_LIST_LEN {
        return Err(Error::InvalidInput(format!(
            "the record of one source takes {} bytes, more than the {MAX_SOURCE_LIST_LEN} a \
             source list may have",
            bytes.len()
        )));
    }
    storage.write(&source_list(id, part), &bytes)?;
    Ok(SourceListRef {
        id,
        part,
        count: lines.len() as u64,
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
    let key = source_list(link.id, link.part);
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
    let order = |l: &SourceListRef| (l.id, l.part);
    if let Some(p) = list.previous.as_ref().filter(|p| order(p) >= order(link)) {
        return Err(damaged(format!(
            "it links to list {} of snapshot {}, which is not older than itself (list {} of \
             snapshot {})",
            p.part, p.id, link.part, link.id
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
    // Each link goes to an older list (checked in `read`), so this ends.
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

/// The source lists (snapshot, part) the states `heads` reach, for `gc`: every list of
/// every chain, each checked.
pub(super) fn reachable(
    storage: &dyn Storage,
    heads: impl IntoIterator<Item = Option<SourceListRef>>,
) -> Result<HashSet<(u64, u32)>> {
    let mut marked = HashSet::new();
    for head in heads {
        // Chains share their older lists: a list marked already was walked from there.
        walk(storage, head.as_ref(), &mut |link, _| {
            marked.insert((link.id, link.part))
        })?;
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn many_sources_take_several_lists_linked_in_order() {
        let storage = crate::storage::MemoryStorage::new("mem");
        let big = "x".repeat(PART_LEN / 3);
        let records: Vec<Json> = (0..7)
            .map(|i| json!({"id": i.to_string(), "pad": big}))
            .collect();
        let first = write(&*storage, 1, None, &records[..1]).unwrap();
        let head = write(&*storage, 2, Some(first), &records[1..]).unwrap();
        // Three records of a third of a part fill a part only with two: 6 records, 3 parts.
        assert_eq!((head.id, head.part), (2, 2));
        let mut seen = Vec::new();
        walk(&*storage, Some(&head), &mut |link, list| {
            seen.push((link.id, link.part, list.records.len()));
            true
        })
        .unwrap();
        assert_eq!(seen, [(2, 2, 2), (2, 1, 2), (2, 0, 2), (1, 0, 1)]);
    }

    fn list(previous: Option<SourceListRef>, records: &[Json]) -> Vec<u8> {
        let storage = crate::storage::MemoryStorage::new("mem");
        let link = write(&*storage, 9, previous, records).unwrap();
        storage.read(&source_list(link.id, 0)).unwrap().unwrap()
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
