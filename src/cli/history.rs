//! `gridstore log`, `rollback`, `gc` and `repair`: the commands about a store's history
//! and its recovery after a failed write.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use gridstore::manifest::SnapshotInfo;
use gridstore::storage::LocalStorage;
use gridstore::store::history::{gc, history, rollback};
use gridstore::store::lock::LockWait;
use gridstore::store::maintenance::{check_store_to_change, repair};
use gridstore::text::printable;

use super::info::human_bytes;

pub fn log(store: &Path) -> Result<()> {
    println!(
        "{:>8}  {:<20}  {:>9}  {:>9}  writer",
        "snapshot", "created (UTC)", "written", "removed"
    );
    for s in history(store)? {
        println!(
            "{:>8}  {:<20}  {:>9}  {:>9}  {}",
            s.id,
            printable(&s.created),
            s.tiles_written,
            s.tiles_removed,
            describe_writer(&s)
        );
    }
    Ok(())
}

fn describe_writer(s: &SnapshotInfo) -> String {
    let mut text = printable(&s.writer).into_owned();
    if let Some(c) = s.checkpoint.as_ref().filter(|c| c.of > 1) {
        text.push_str(&format!(" [checkpoint {} of {}]", c.done, c.of));
    }
    if let Some(r) = s.restores {
        text.push_str(&format!(" [restores snapshot {r}]"));
    }
    if let Some(steps) = &s.steps {
        text.push_str(&format!(" [time steps: {} written", steps.written));
        match (&steps.first, &steps.last) {
            (Some(a), Some(b)) if a == b => text.push_str(&format!(", {}", printable(a))),
            (Some(a), Some(b)) => text.push_str(&format!(", {} to {}", printable(a), printable(b))),
            _ => {}
        }
        if steps.removed > 0 {
            text.push_str(&format!("; {} removed", steps.removed));
        }
        text.push(']');
    }
    text
}

pub fn run_rollback(store: &Path, to: u64, wait: LockWait) -> Result<()> {
    check_store_to_change(store, "rollback")?;
    let m = rollback(store, to, wait)?;
    println!(
        "snapshot {to} is current again, as snapshot {} ({} tiles differ from before, {} \
         removed); `gridstore rollback --to {}` undoes this",
        m.snapshot.id,
        m.snapshot.tiles_written,
        m.snapshot.tiles_removed,
        m.snapshot.id - 1
    );
    Ok(())
}

pub fn run_gc(store: &Path, keep: usize, grace: Duration, wait: LockWait) -> Result<()> {
    check_store_to_change(store, "gc")?;
    let local = !gridstore::storage::is_vsi_path(store);
    let usage = || match local {
        true => LocalStorage::new(store).usage(),
        false => (0, 0),
    };
    let (_, before) = usage();
    let r = gc(store, keep, grace, wait)?;
    let (_, after) = usage();
    let kept: Vec<String> = r.kept.iter().map(u64::to_string).collect();
    // Object storage is not walked for sizes (a listing of every object).
    let freed = match gridstore::storage::is_vsi_path(store) {
        true => String::new(),
        false => format!(": {} freed", human_bytes(before.saturating_sub(after))),
    };
    let lists = match r.source_lists_removed {
        0 => String::new(),
        n => format!(", {n} source list(s)"),
    };
    println!(
        "kept snapshot(s) {}; removed {} snapshot(s), {} chunk(s), {} index node(s){lists}{freed}",
        kept.join(", "),
        r.snapshots_removed,
        r.chunks_removed,
        r.nodes_removed,
    );
    if r.dead_writers > 0 {
        println!(
            "removed what {} writer(s) that died left (claims older than the grace period)",
            r.dead_writers
        );
    }
    if !r.unknown_left.is_empty() {
        let names: Vec<String> = r
            .unknown_left
            .iter()
            .map(|n| n.escape_debug().to_string())
            .collect();
        println!(
            "left {} name(s) that are no object of the store, untouched: {}",
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}

pub fn run_repair(store: &Path, wait: LockWait) -> Result<()> {
    let r = repair(store, wait)?;
    if r.removed_unfinished_creation {
        println!(
            "{}: its creation had been interrupted before anything was committed; removed it",
            store.display()
        );
        return Ok(());
    }
    if let Some(rec) = &r.recovered {
        println!(
            "the writer lock of {} was left by a process that is gone; took it over",
            rec.holder.describe()
        );
    }
    let removed: Vec<&String> = r
        .recovered
        .iter()
        .flat_map(|rec| &rec.cleanup.removed)
        .chain(&r.cleanup.removed)
        .collect();
    if removed.is_empty() {
        println!("nothing to repair: no unfinished write was found");
    } else {
        println!(
            "removed what the unfinished write of snapshot {} left: {}",
            r.cleanup.seq,
            removed
                .iter()
                .map(|s| printable(s))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("the committed state is untouched; `gridstore verify` checks it");
    Ok(())
}
