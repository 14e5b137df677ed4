//! The loop's handling of pending partitions (see [`super::offsets`]): after a flush that did
//! not commit every assigned partition is rewound to its stored offset, which means reading it
//! again; a partition whose offset cannot be read (PostgreSQL down) or sought stays paused and
//! pending, and is retried with backoff.

use std::collections::HashMap;
use std::time::Instant;

use fleet::retry::Backoff;
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::Offset;

use super::rebalance::OFFSETS_READ_WAIT;
use super::{ConsumeLoop, PENDING_RETRY_MAX};
use crate::batch::Position;
use crate::sources::Tp;

impl ConsumeLoop {
    /// Drops unflushed data, and makes every assigned partition pending: paused until its
    /// stored offset is read again and the partition sought there.
    pub(super) fn rewind(&mut self) {
        self.ingest.drop_batch();
        let assigned = self.context().positions().update(|p| {
            let assigned = p.assigned();
            p.assign_pending(assigned.iter().copied());
            assigned
        });
        let list = self
            .context()
            .list(assigned.into_iter().map(|tp| (tp, Offset::Invalid)));
        if let Err(err) = self.consumer.pause(&list) {
            tracing::warn!(%err, "pause failed (their messages are dropped meanwhile)");
        }
        self.pending_retry = (Instant::now(), Backoff::new(PENDING_RETRY_MAX));
        self.resolve_pending();
    }

    /// Reads the stored offsets of the pending partitions (when due), seeks them there and
    /// resumes them. A partition whose seek failed stays pending: resumed, it would read on
    /// from wherever it stood.
    pub(super) fn resolve_pending(&mut self) {
        if !self.context().positions().any_pending() || Instant::now() < self.pending_retry.0 {
            return;
        }
        if self.shutdown.is_cancelled() {
            return; // at a stop, they are not read again: the loop is leaving
        }
        let pending: Vec<Tp> =
            (self.context().positions()).read(|p| p.pending().iter().copied().collect());
        let stored = match self.context().stored_offsets(&pending, OFFSETS_READ_WAIT) {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(%err, "cannot read stored offsets yet, retrying");
                self.pending_retry.0 = Instant::now() + self.pending_retry.1.next_delay();
                return;
            }
        };
        let sought: HashMap<Tp, Position> = stored
            .into_iter()
            .filter(|(tp, at)| self.context().seek(&self.consumer, *tp, at.offset))
            .collect();
        self.context().positions().update(|p| p.assign(&sought));
        let mut failed = pending.len() - sought.len();
        if !sought.is_empty() {
            tracing::info!(
                ?sought,
                failed,
                "stored offsets read: partitions resume from them"
            );
        }
        if !self.paused {
            let list = self
                .context()
                .list(sought.keys().map(|tp| (*tp, Offset::Invalid)));
            if let Err(err) = self.consumer.resume(&list) {
                // Left paused they would never be read again: pending, they are retried.
                tracing::warn!(%err, "resume failed, retrying");
                self.context().metrics().resume_errors.inc();
                (self.context().positions()).update(|p| p.assign_pending(sought.keys().copied()));
                failed += sought.len();
            }
        }
        if failed > 0 {
            self.pending_retry.0 = Instant::now() + self.pending_retry.1.next_delay();
        } else {
            self.pending_retry.1.reset();
        }
    }
}
