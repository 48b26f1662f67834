//! Chunks fetched ahead, neighbours in one request: a read of several tiles whose chunks
//! lie close together in a pack (docs/FORMAT.md §5) asks the storage for the span that
//! holds them once, where it would ask once per chunk, and the reads that follow take each
//! chunk's bytes from here. On object storage and HTTP that is one round trip for a
//! window's chunks in a pack, and a handful for a whole level.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::index::{ChunkAt, Entry};

/// Chunks further apart than this in a pack are fetched by separate requests: fetching
/// the bytes between costs more than a request saved.
pub const MAX_GAP: u64 = 256 << 10;

/// The most one request fetches: a larger span is cut, so that a large read still fetches
/// in parallel.
pub const MAX_SPAN: u64 = 16 << 20;

/// One request: `len` bytes from `start` of `object`, holding the chunks `chunks` (where
/// each lies, and its length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub object: String,
    pub start: u64,
    pub len: u64,
    pub chunks: Vec<(u64, u64)>,
}

/// The requests that fetch `chunks` (where each lies, with its index entry) when several of
/// them lie close together in one pack: only spans of two chunks or more, since a single
/// chunk is fetched alone anyway.
pub fn spans(chunks: &[(ChunkAt, Entry)]) -> Vec<Span> {
    let mut by_object: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
    for (at, e) in chunks.iter().filter(|(_, e)| e.pack().is_some()) {
        let range = (at.offset, u64::from(e.size));
        by_object.entry(at.object.as_str()).or_default().push(range);
    }
    let mut out = Vec::new();
    for (object, mut ranges) in by_object {
        ranges.sort_unstable();
        ranges.dedup();
        let mut run: Vec<(u64, u64)> = Vec::new();
        for (offset, len) in ranges {
            if let Some(&(first, _)) = run.first() {
                let end = run.iter().map(|(o, l)| o + l).max().unwrap_or(first);
                let joins = offset <= end.saturating_add(MAX_GAP)
                    && (offset + len).saturating_sub(first) <= MAX_SPAN;
                if !joins {
                    out.extend(span(object, std::mem::take(&mut run)));
                }
            }
            run.push((offset, len));
        }
        out.extend(span(object, run));
    }
    out.sort_by(|a, b| (&a.object, a.start).cmp(&(&b.object, b.start)));
    out
}

/// The request for the chunks of `run` (in offset order), if there are two or more.
fn span(object: &str, run: Vec<(u64, u64)>) -> Option<Span> {
    if run.len() < 2 {
        return None;
    }
    let start = run[0].0;
    let end = run.iter().map(|(o, l)| o + l).max()?;
    Some(Span {
        object: object.to_string(),
        start,
        len: end - start,
        chunks: run,
    })
}

/// Chunk bytes fetched ahead, by where they lie, each taken once.
#[derive(Default)]
pub struct Fetched {
    chunks: Mutex<HashMap<ChunkAt, Arc<[u8]>>>,
}

impl Fetched {
    /// Keeps the chunks of `span`, read as `bytes` (a read that came back short keeps the
    /// ones it holds whole).
    pub fn keep(&self, span: &Span, bytes: &[u8]) {
        let mut chunks = self.chunks.lock().expect("poisoned");
        for &(offset, len) in &span.chunks {
            let from = (offset - span.start) as usize;
            let Some(b) = bytes.get(from..from + len as usize) else {
                continue;
            };
            let at = ChunkAt {
                object: span.object.clone(),
                offset,
            };
            chunks.insert(at, Arc::from(b));
        }
    }

    /// The bytes of the chunk at `at`, `len` long, if they were fetched ahead; they are
    /// let go of.
    pub fn take(&self, at: &ChunkAt, len: usize) -> Option<Arc<[u8]>> {
        let mut chunks = self.chunks.lock().expect("poisoned");
        if chunks.is_empty() {
            return None;
        }
        chunks.remove(at).filter(|b| b.len() == len)
    }

    /// Lets go of the chunks of `spans` not taken.
    pub fn forget(&self, spans: &[Span]) {
        let mut chunks = self.chunks.lock().expect("poisoned");
        for s in spans {
            for &(offset, _) in &s.chunks {
                chunks.remove(&ChunkAt {
                    object: s.object.clone(),
                    offset,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(object: &str, offset: u64, size: u32) -> (ChunkAt, Entry) {
        let at = ChunkAt {
            object: object.into(),
            offset,
        };
        let e = Entry {
            seq: 1,
            size,
            crc: 0,
            pack: 1,
            offset,
            ..Entry::default()
        };
        (at, e)
    }

    #[test]
    fn neighbours_in_a_pack_are_one_request_and_lone_chunks_none() {
        let got = spans(&[
            chunk("p", 100, 50),
            chunk("p", 0, 100),
            chunk("p", 150 + MAX_GAP + 1, 10), // too far from the others
            chunk("q", 0, 10),                 // alone in its pack
            chunk("r", 0, 10),
            chunk("r", 20, 10), // a gap of 10 is fetched along
        ]);
        let want = [
            ("p", 0, 150, vec![(0, 100), (100, 50)]),
            ("r", 0, 30, vec![(0, 10), (20, 10)]),
        ];
        let want: Vec<Span> = want
            .into_iter()
            .map(|(object, start, len, chunks)| Span {
                object: object.into(),
                start,
                len,
                chunks,
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_long_run_is_cut_and_chunks_of_their_own_are_left_alone() {
        let size = (MAX_SPAN / 4) as u32;
        let run: Vec<_> = (0..8)
            .map(|i| chunk("p", i * u64::from(size), size))
            .collect();
        let got = spans(&run);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|s| s.len <= MAX_SPAN && s.chunks.len() == 4));
        let mut own = chunk("chunks/1/0_0_0_0/0_0_0", 0, 10);
        own.1.pack = 0;
        assert!(spans(&[own.clone(), own]).is_empty());
    }

    #[test]
    fn fetched_chunks_are_taken_once_and_only_whole() {
        let span = Span {
            object: "p".into(),
            start: 10,
            len: 30,
            chunks: vec![(10, 10), (20, 20)],
        };
        let f = Fetched::default();
        f.keep(&span, &[7u8; 25]); // cut short: the second chunk is not kept
        let first = ChunkAt {
            object: "p".into(),
            offset: 10,
        };
        assert_eq!(f.take(&first, 10).as_deref(), Some(&[7u8; 10][..]));
        assert_eq!(f.take(&first, 10), None);
        let second = ChunkAt {
            object: "p".into(),
            offset: 20,
        };
        assert_eq!(f.take(&second, 20), None);
    }
}
