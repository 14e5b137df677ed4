//! The pure core of aggregation: a [`Batch`] collects, between two flushes, each source's part
//! (see [`crate::sources`]), the dead letters, and how far each partition got. A flush writes
//! the whole batch in one transaction, so a batch is the unit of exactly-once.

use std::ops::Range;

use crate::decode::Invalid;
use crate::part::{Ingest, Message, Part};
use crate::sources::Source;

mod journal;

use journal::Journal;

/// Rough per-entry overhead of a dead letter for the memory budget.
const DEAD_LETTER_OVERHEAD: usize = 128;

/// An invalid message, kept byte for byte for the dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub source: Source,
    pub partition: i32,
    pub offset: i64,
    pub reason: Invalid,
    /// The SQLSTATE of PostgreSQL's refusal, for [`Invalid::RejectedByDatabase`].
    pub sqlstate: Option<String>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// Where a partition stands in PostgreSQL: the next offset to read (`-1`: none stored yet),
/// and its *watermark*, the latest event time read from it up to there (milliseconds since
/// the epoch; `i64::MIN`: none yet). An event is late when it is older than the watermark by
/// more than `AGG_MAX_LATENESS_SECS`; the watermark is stored with the offset, so a restart
/// judges every message as the first read did. `topic_id` fingerprints the Kafka topic id the
/// offset belongs to (`0`: unknown): a topic deleted and created again has another, and its
/// offsets start again at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub offset: i64,
    pub watermark_ms: i64,
    pub topic_id: i64,
}

impl Position {
    /// A partition never stored.
    pub const START: Position = Position {
        offset: -1,
        watermark_ms: i64::MIN,
        topic_id: 0,
    };
}

/// How far one partition got within the batch, and where the stored offset stood before it:
/// `expected` is the fence (`-1`: no stored offset yet), `next` the offset to store,
/// `watermark_ms` the watermark to store with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub source: Source,
    pub partition: i32,
    pub expected: i64,
    pub next: i64,
    pub watermark_ms: i64,
    pub topic_id: i64,
}

impl Progress {
    /// Where the partition stands once this batch is stored.
    pub fn reached(&self) -> Position {
        Position {
            offset: self.next,
            watermark_ms: self.watermark_ms,
            topic_id: self.topic_id,
        }
    }
}

/// Everything consumed since the last flush, from every topic.
#[derive(Debug)]
pub struct Batch {
    /// One per source, in [`Source::ALL`] order.
    parts: Vec<Box<dyn Part>>,
    pub dead_letters: Vec<DeadLetter>,
    pub progress: Vec<Progress>,
    dead_letter_bytes: usize,
    /// Every message recorded, for [`Batch::replay`].
    journal: Journal,
    /// See [`Batch::span`].
    span: Option<(i64, i64)>,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            parts: Source::ALL.map(Source::part).into(),
            dead_letters: Vec::new(),
            progress: Vec::new(),
            dead_letter_bytes: 0,
            journal: Journal::default(),
            span: None,
        }
    }
}

impl Batch {
    /// Takes one message of `source`: notes that the batch covers its offset (`fence` says
    /// where its partition stood, asked the first time the partition appears), judges its
    /// event time against the partition's watermark, and decodes it into its part; an invalid
    /// one is kept as a dead letter and its reason returned.
    pub fn read(
        &mut self,
        source: Source,
        message: &Message<'_>,
        cx: &Ingest,
        fence: impl FnOnce() -> Position,
    ) -> Result<(), Invalid> {
        let at = self.advance(source, message.partition, message.offset, fence);
        let cx = Ingest {
            watermark_ms: self.progress[at].watermark_ms,
            ..*cx
        };
        let message = Message {
            topic_id: self.progress[at].topic_id,
            ..*message
        };
        let message = &message;
        self.journal.push(source, message, &cx);
        let read = self.fold(source, message, &cx);
        if let Ok(event_ms) = read {
            self.saw(at, event_ms);
        }
        read.map(|_| ())
    }

    /// A valid event at `event_ms` of the partition at `at`: it moves the partition's
    /// watermark and the batch's span.
    fn saw(&mut self, at: usize, event_ms: i64) {
        let watermark = &mut self.progress[at].watermark_ms;
        *watermark = (*watermark).max(event_ms);
        let (first, last) = self.span.unwrap_or((event_ms, event_ms));
        self.span = Some((first.min(event_ms), last.max(event_ms)));
    }

    /// The earliest and the latest event time of the batch's valid events, milliseconds since
    /// the epoch: the partitions its rows need.
    pub fn span(&self) -> Option<(i64, i64)> {
        self.span
    }

    /// Decodes a message into its part: its event time, or the reason it is invalid (it is
    /// then kept as a dead letter).
    fn fold(&mut self, source: Source, message: &Message<'_>, cx: &Ingest) -> Result<i64, Invalid> {
        let reason = match self.parts[source as usize].record(message, cx) {
            Ok(event_ms) => return Ok(event_ms),
            Err(reason) => reason,
        };
        self.record_dead_letter(DeadLetter {
            source,
            partition: message.partition,
            offset: message.offset,
            reason,
            sqlstate: None,
            key: message.key.map(<[u8]>::to_vec),
            payload: message.payload.map(<[u8]>::to_vec),
        });
        Err(reason)
    }

    /// Keeps an invalid message for the dead-letter topic.
    pub fn record_dead_letter(&mut self, letter: DeadLetter) {
        self.dead_letter_bytes += DEAD_LETTER_OVERHEAD
            + letter.key.as_ref().map_or(0, Vec::len)
            + letter.payload.as_ref().map_or(0, Vec::len);
        self.dead_letters.push(letter);
    }

    /// Notes that `offset` of `source`'s `partition` is covered by this batch; `fence` is
    /// consulted only the first time the partition appears in the batch. The index of its
    /// progress.
    fn advance(
        &mut self,
        source: Source,
        partition: i32,
        offset: i64,
        fence: impl FnOnce() -> Position,
    ) -> usize {
        let found =
            (self.progress.iter_mut()).position(|p| p.partition == partition && p.source == source);
        match found {
            Some(at) => {
                let p = &mut self.progress[at];
                p.next = p.next.max(offset + 1);
                at
            }
            None => {
                let fence = fence();
                self.progress.push(Progress {
                    source,
                    partition,
                    expected: fence.offset,
                    next: offset + 1,
                    watermark_ms: fence.watermark_ms,
                    topic_id: fence.topic_id,
                });
                self.progress.len() - 1
            }
        }
    }

    /// Each source's part, in [`Source::ALL`] order.
    pub fn parts(&self) -> impl Iterator<Item = (Source, &dyn Part)> {
        Source::ALL
            .into_iter()
            .zip(self.parts.iter().map(AsRef::as_ref))
    }

    /// True when a flush would change nothing (a batch of invalid messages only still moves
    /// offsets).
    pub fn is_empty(&self) -> bool {
        self.progress.is_empty()
    }

    /// Kafka messages the batch covers (valid or not).
    pub fn messages(&self) -> u64 {
        self.parts().map(|(_, p)| p.messages()).sum::<u64>() + self.dead_letters.len() as u64
    }

    /// Approximate heap held by the batch, for the memory budget.
    pub fn approx_bytes(&self) -> usize {
        self.parts().map(|(_, p)| p.approx_bytes()).sum::<usize>()
            + self.dead_letter_bytes
            + self.journal.approx_bytes()
    }

    /// Messages recorded, valid or not, in the order they were read.
    pub fn recorded(&self) -> usize {
        self.journal.len()
    }

    /// A batch of the recorded messages `range`, recorded again as they were read (judged
    /// against the same watermark and clock, so the same verdicts, and decoded again, so that
    /// each partition's watermark ends where the read left it), its fences taken from
    /// `expected`. Read in order,
    /// the messages of a range are a contiguous run of each partition they touch, so
    /// consecutive ranges commit one after the other like consecutive batches.
    ///
    /// `refused`: record them instead as dead letters PostgreSQL refused with that SQLSTATE.
    pub fn replay(
        &self,
        range: Range<usize>,
        expected: impl Fn(Source, i32) -> i64,
        refused: Option<&str>,
    ) -> Batch {
        let topic_id = |source: Source, partition: i32| {
            (self.progress.iter())
                .find(|p| p.source == source && p.partition == partition)
                .map_or(0, |p| p.topic_id)
        };
        let mut batch = Batch::default();
        for (source, message, cx) in self.journal.entries(range, topic_id) {
            let fence = || Position {
                offset: expected(source, message.partition),
                watermark_ms: cx.watermark_ms,
                topic_id: message.topic_id,
            };
            let at = batch.advance(source, message.partition, message.offset, fence);
            // Decoded again either way: its time moves the watermark as the read's did.
            let folded = match refused {
                None => batch.fold(source, &message, &cx),
                Some(_) => Batch::default().fold(source, &message, &cx),
            };
            if let Ok(event_ms) = folded {
                batch.saw(at, event_ms);
            }
            if let Some(sqlstate) = refused {
                batch.record_dead_letter(DeadLetter {
                    source,
                    partition: message.partition,
                    offset: message.offset,
                    reason: Invalid::RejectedByDatabase,
                    sqlstate: Some(sqlstate.to_string()),
                    key: message.key.map(<[u8]>::to_vec),
                    payload: message.payload.map(<[u8]>::to_vec),
                });
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests;
