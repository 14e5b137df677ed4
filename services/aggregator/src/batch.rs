//! The pure core of aggregation: a [`Batch`] collects, between two flushes, the deltas of every
//! event-time window touched, the long calls, the dead letters, and how far each partition got.
//! A flush writes the whole batch in one transaction, so a batch is the unit of exactly-once.

use std::collections::HashMap;

use crate::decode::{Call, Invalid};

/// Rough per-entry overheads for the memory budget (struct, map slot, allocation headers).
const LONG_CALL_OVERHEAD: usize = 96;
const DEAD_LETTER_OVERHEAD: usize = 128;

/// Additive statistics of one window; merging two deltas is associative and commutative, which
/// is what lets late events and several aggregators add into the same row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowDelta {
    pub calls: i64,
    pub duration_sum_ms: i64,
    pub duration_min_ms: i64,
    pub duration_max_ms: i64,
    pub long_calls: i64,
}

impl WindowDelta {
    fn single(duration_ms: i64, long: bool) -> Self {
        Self {
            calls: 1,
            duration_sum_ms: duration_ms,
            duration_min_ms: duration_ms,
            duration_max_ms: duration_ms,
            long_calls: i64::from(long),
        }
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.duration_sum_ms += other.duration_sum_ms;
        self.duration_min_ms = self.duration_min_ms.min(other.duration_min_ms);
        self.duration_max_ms = self.duration_max_ms.max(other.duration_max_ms);
        self.long_calls += other.long_calls;
    }
}

/// Where a message came from; also the primary key of the rows it produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A call above the long-call threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct LongCall {
    pub partition: i32,
    pub offset: i64,
    pub call_id: Option<uuid::Uuid>,
    pub caller: String,
    pub callee: String,
    pub start_ms: i64,
    pub duration_ms: i64,
}

/// An invalid message, kept byte for byte for the dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub reason: Invalid,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// How far one partition got within the batch, and where the stored offset stood before it:
/// `expected` is the fence (`-1`: no stored offset yet), `next` the offset to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub partition: i32,
    pub expected: i64,
    pub next: i64,
}

/// Everything consumed from one topic since the last flush.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Window deltas keyed by window start (seconds since the epoch).
    pub windows: HashMap<i64, WindowDelta>,
    pub long_calls: Vec<LongCall>,
    pub dead_letters: Vec<DeadLetter>,
    pub progress: Vec<Progress>,
    /// Valid calls in the batch.
    pub calls: u64,
    /// Sum of their durations, in milliseconds.
    pub duration_ms: i64,
    approx_bytes: usize,
}

/// Aggregation parameters.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub window_secs: i64,
    /// Strictly longer calls are long calls.
    pub long_call_threshold_ms: i64,
}

impl Rules {
    /// Start (seconds since the epoch) of the window holding `start_ms`; floors, so times
    /// before 1970 land in the right window too.
    pub fn window_of(&self, start_ms: i64) -> i64 {
        start_ms.div_euclid(self.window_secs * 1000) * self.window_secs
    }
}

impl Batch {
    /// Adds a valid call read at `partition`/`offset`.
    pub fn record_call(&mut self, rules: &Rules, call: &Call<'_>, partition: i32, offset: i64) {
        let long = call.duration_ms > rules.long_call_threshold_ms;
        let delta = WindowDelta::single(call.duration_ms, long);
        self.windows
            .entry(rules.window_of(call.start_ms))
            .and_modify(|w| w.merge(&delta))
            .or_insert(delta);
        self.calls += 1;
        self.duration_ms += call.duration_ms;
        if long {
            self.approx_bytes += LONG_CALL_OVERHEAD + call.caller.len() + call.callee.len();
            self.long_calls.push(LongCall {
                partition,
                offset,
                call_id: call.call_id,
                caller: call.caller.to_string(),
                callee: call.callee.to_string(),
                start_ms: call.start_ms,
                duration_ms: call.duration_ms,
            });
        }
    }

    /// Keeps an invalid message for the dead-letter topic.
    pub fn record_dead_letter(&mut self, letter: DeadLetter) {
        self.approx_bytes += DEAD_LETTER_OVERHEAD
            + letter.key.as_ref().map_or(0, Vec::len)
            + letter.payload.as_ref().map_or(0, Vec::len);
        self.dead_letters.push(letter);
    }

    /// Notes that `offset` of `partition` is covered by this batch. `expected` is consulted
    /// only the first time the partition appears in the batch.
    pub fn advance(&mut self, partition: i32, offset: i64, expected: impl FnOnce() -> i64) {
        match self.progress.iter_mut().find(|p| p.partition == partition) {
            Some(p) => p.next = p.next.max(offset + 1),
            None => self.progress.push(Progress {
                partition,
                expected: expected(),
                next: offset + 1,
            }),
        }
    }

    /// True when a flush would change anything (even only offsets past invalid messages).
    pub fn is_empty(&self) -> bool {
        self.progress.is_empty()
    }

    /// Kafka messages the batch covers (valid or not).
    pub fn messages(&self) -> u64 {
        self.calls + self.dead_letters.len() as u64
    }

    /// Approximate heap held by the batch, for the memory budget.
    pub fn approx_bytes(&self) -> usize {
        self.approx_bytes + self.windows.len() * 64
    }

    /// Window deltas sorted by window start: every flush locks rows in the same order, so two
    /// aggregators flushing at once cannot deadlock.
    pub fn sorted_windows(&self) -> Vec<(i64, WindowDelta)> {
        let mut windows: Vec<_> = self.windows.iter().map(|(k, v)| (*k, *v)).collect();
        windows.sort_unstable_by_key(|(start, _)| *start);
        windows
    }
}

#[cfg(test)]
mod tests;
