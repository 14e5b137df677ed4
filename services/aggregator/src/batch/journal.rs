//! Every message of a batch, byte for byte, with what it was judged by: what lets a flush that
//! PostgreSQL refused for its data be split and replayed (see `crate::flush`). The bytes go
//! into one growing buffer, so recording costs a copy, not an allocation per message; an entry
//! keeps only what differs between messages (a partition's topic id is its progress's).

use std::ops::Range;

use crate::part::{Ingest, Message};
use crate::sources::Source;

/// Per-entry bookkeeping, for the memory budget.
const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
/// The length of an absent key or payload.
const ABSENT: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: i64,
    /// What it was judged by: the clock, and its partition's watermark.
    now_ms: i64,
    watermark_ms: i64,
    /// Where its key starts in the buffer; its payload follows.
    start: u32,
    key_len: u32,
    payload_len: u32,
    partition: i32,
    source: Source,
}

/// The messages of one batch, in the order they were recorded.
#[derive(Debug, Default)]
pub(super) struct Journal {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// The rules and limits of the run (the same for every message; only the times differ).
    ingest: Option<Ingest>,
}

impl Journal {
    pub fn push(&mut self, source: Source, message: &Message<'_>, cx: &Ingest) {
        // A batch is bounded by `AGG_MAX_PENDING_BYTES`, far below 4 GiB.
        let start = self.bytes.len() as u32;
        let mut keep = |bytes: Option<&[u8]>| match bytes {
            Some(bytes) => {
                self.bytes.extend_from_slice(bytes);
                bytes.len() as u32
            }
            None => ABSENT,
        };
        let key_len = keep(message.key);
        let payload_len = keep(message.payload);
        self.entries.push(Entry {
            offset: message.offset,
            now_ms: cx.now_ms,
            watermark_ms: cx.watermark_ms,
            start,
            key_len,
            payload_len,
            partition: message.partition,
            source,
        });
        if self.ingest.is_none() {
            self.ingest = Some(*cx);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn approx_bytes(&self) -> usize {
        self.bytes.capacity() + self.entries.capacity() * ENTRY_BYTES
    }

    /// The messages `range`, each with the judgement it was recorded under; `topic_id` gives
    /// a partition's topic id.
    pub fn entries<'a>(
        &'a self,
        range: Range<usize>,
        topic_id: impl Fn(Source, i32) -> i64 + 'a,
    ) -> impl Iterator<Item = (Source, Message<'a>, Ingest)> + 'a {
        self.entries[range].iter().filter_map(move |e| {
            let mut at = e.start as usize;
            let mut take = |len: u32| {
                (len != ABSENT).then(|| {
                    let bytes = &self.bytes[at..][..len as usize];
                    at += len as usize;
                    bytes
                })
            };
            let (key, payload) = (take(e.key_len), take(e.payload_len));
            let cx = Ingest {
                now_ms: e.now_ms,
                watermark_ms: e.watermark_ms,
                ..self.ingest?
            };
            let message = Message {
                topic_id: topic_id(e.source, e.partition),
                partition: e.partition,
                offset: e.offset,
                key,
                payload,
            };
            Some((e.source, message, cx))
        })
    }
}
