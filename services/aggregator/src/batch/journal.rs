//! Every message of a batch, byte for byte, with what it was judged by: what lets a flush that
//! PostgreSQL refused for its data be split and replayed (see `crate::flush`). The bytes go
//! into one growing buffer, so recording costs a copy, not an allocation per message.

use std::ops::Range;

use crate::part::{Ingest, Message};
use crate::sources::Source;

/// Per-entry bookkeeping, for the memory budget.
const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

#[derive(Debug, Clone, Copy)]
struct Entry {
    source: Source,
    topic_id: i64,
    partition: i32,
    offset: i64,
    key: Option<(u32, u32)>,
    payload: Option<(u32, u32)>,
    /// What it was judged by.
    now_ms: i64,
    watermark_ms: i64,
    /// Its partition's watermark once it was read.
    watermark_after: i64,
}

/// The messages of one batch, in the order they were recorded.
#[derive(Debug, Default)]
pub(super) struct Journal {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// The rules and limits of the run (the same for every message; only the time differs).
    ingest: Option<Ingest>,
}

impl Journal {
    pub fn push(
        &mut self,
        source: Source,
        message: &Message<'_>,
        cx: &Ingest,
        watermark_after: i64,
    ) {
        let key = message.key.map(|k| self.keep(k));
        let payload = message.payload.map(|p| self.keep(p));
        self.entries.push(Entry {
            source,
            topic_id: message.topic_id,
            partition: message.partition,
            offset: message.offset,
            key,
            payload,
            now_ms: cx.now_ms,
            watermark_ms: cx.watermark_ms,
            watermark_after,
        });
        self.ingest.get_or_insert(*cx);
    }

    fn keep(&mut self, bytes: &[u8]) -> (u32, u32) {
        // A batch is bounded by `AGG_MAX_PENDING_BYTES`, far below 4 GiB.
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(bytes);
        (start, bytes.len() as u32)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn approx_bytes(&self) -> usize {
        self.bytes.capacity() + self.entries.capacity() * ENTRY_BYTES
    }

    /// The messages `range`, each with the judgement it was recorded under and its
    /// partition's watermark after it.
    pub fn entries(
        &self,
        range: Range<usize>,
    ) -> impl Iterator<Item = (Source, Message<'_>, Ingest, i64)> + '_ {
        self.entries[range].iter().filter_map(|e| {
            let slice = |(start, len): (u32, u32)| &self.bytes[start as usize..][..len as usize];
            let cx = Ingest {
                now_ms: e.now_ms,
                watermark_ms: e.watermark_ms,
                ..self.ingest?
            };
            let message = Message {
                topic_id: e.topic_id,
                partition: e.partition,
                offset: e.offset,
                key: e.key.map(slice),
                payload: e.payload.map(slice),
            };
            Some((e.source, message, cx, e.watermark_after))
        })
    }
}
