//! The loop's handling of pending partitions (see [`super::offsets`]): after a flush that did
//! not commit every assigned partition is rewound to its stored offset, which means reading it
//! again; a partition whose offset cannot be read (PostgreSQL down) or sought stays paused and
//! pending, and is retried with backoff.
//!
//! A partition whose offset lies outside its log (`auto.offset.reset=error`: never moved
//! silently) is either of a topic deleted and created again, which the stored position's topic
//! id tells (read again from the new topic's start, see `AggregatorContext::stored_offsets`),
//! or *stopped*: messages deleted before they were read (retention), or a log truncated below
//! the stored offset (an unclean leader election). A stopped partition stays pending, with
//! `health_status` 0, `aggregator_offsets_out_of_range` saying how far out it is and a log line
//! giving the statement that resumes it, until an operator moves its stored offset.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use fleet::retry::Backoff;
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::Offset;

use super::offsets::resume_at;
use super::rebalance::{OFFSETS_READ_WAIT, is_cooperative};
use super::{ConsumeLoop, OFFSETS_CHECK, PENDING_RETRY_MAX};
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
        let (go, restart) = self.keep_stopped(&stored);
        if !restart.is_empty() && !is_cooperative(&self.consumer) {
            return self.restart_all(&pending, &stored, &go, &restart);
        }
        let sought: HashMap<Tp, Position> = go
            .into_iter()
            .filter(|(tp, at)| {
                if restart.contains(tp) {
                    self.context().reassign(&self.consumer, *tp, at.offset)
                } else {
                    self.context().seek(&self.consumer, *tp, at.offset)
                }
            })
            .collect();
        self.resumed(sought.keys().filter(|tp| restart.contains(tp)));
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

    /// Handles the partitions librdkafka found outside their log (see the module docs).
    pub(super) fn stop_out_of_range(&mut self) {
        let found = std::mem::take(&mut self.ingest.out_of_range);
        // A recreated topic shows here first: read its id again, so that the next read of the
        // stored positions recognizes it.
        self.context().describe_topics(&self.consumer);
        for (tp, offset) in found {
            let (stored, fence) =
                (self.context().positions()).read(|p| (p.stored(tp), p.fence(tp)));
            if self.context().is_recreated(tp.0, fence.topic_id) {
                self.stopped.insert(tp, None);
            } else {
                self.stop(tp, offset, stored.unwrap_or(offset));
            }
            self.context()
                .positions()
                .update(|p| p.assign_pending([tp]));
            let list = self.context().list([(tp, Offset::Invalid)]);
            if let Err(err) = self.consumer.pause(&list) {
                tracing::warn!(%err, "pause failed (its messages are dropped meanwhile)");
            }
        }
        self.pending_retry = (Instant::now(), Backoff::new(PENDING_RETRY_MAX));
        self.check_offsets();
    }

    /// Stops `tp`, whose fetch `offset` lies outside its log; `stored`: its stored offset.
    fn stop(&mut self, tp: Tp, offset: i64, stored: i64) {
        let topic = self.context().topics().name(tp.0).to_string();
        let partition = tp.1;
        let (low, high) = self
            .consumer
            .fetch_watermarks(&topic, partition, OFFSETS_READ_WAIT)
            .unwrap_or((-1, -1));
        let (beyond, resume_at, why) = if offset < low {
            (
                low - offset,
                low,
                "messages were deleted before they were read",
            )
        } else {
            (offset - high, high, "the log ends before it (truncated)")
        };
        (self.context().metrics().offsets_out_of_range)
            .with_label_values(&[topic.as_str(), &partition.to_string()])
            .set(beyond);
        self.stopped.insert(tp, Some(stored));
        let group = self.context().group().to_string();
        tracing::error!(
            topic,
            partition,
            offset,
            log_start = low,
            log_end = high,
            "offset outside the partition's log: {why}; the partition is stopped. To resume it at \
             {resume_at}: UPDATE consumer_offsets SET next_offset = {resume_at}, watermark_ms = NULL \
             WHERE group_id = '{group}' AND topic = '{topic}' AND partition = {partition}"
        );
    }

    /// The partitions among `stored` that may go: all but those stopped whose stored offset
    /// did not move; and those of them librdkafka stopped on an offset error, whose fetchers
    /// only a new assignment restarts (it refuses to seek them).
    fn keep_stopped(&self, stored: &HashMap<Tp, Position>) -> (HashMap<Tp, Position>, HashSet<Tp>) {
        let mut go = HashMap::with_capacity(stored.len());
        let mut restart = HashSet::new();
        for (tp, at) in stored {
            match self.stopped.get(tp) {
                Some(Some(was)) if *was == at.offset => continue,
                Some(_) => {
                    restart.insert(*tp);
                }
                None => {}
            }
            go.insert(*tp, *at);
        }
        (go, restart)
    }

    /// `partitions` were assigned again: no longer stopped.
    fn resumed<'a>(&mut self, partitions: impl Iterator<Item = &'a Tp>) {
        for tp in partitions {
            if let Some(Some(_)) = self.stopped.remove(tp) {
                let topic = self.context().topics().name(tp.0);
                (self.context().metrics().offsets_out_of_range)
                    .with_label_values(&[topic, &tp.1.to_string()])
                    .set(0);
                tracing::info!(
                    topic,
                    partition = tp.1,
                    "stored offset moved: the stopped partition resumes"
                );
            }
        }
        self.check_offsets();
    }

    /// With the eager protocol a fetcher librdkafka stopped restarts only when the whole
    /// assignment is assigned again: every partition is rewound (its unflushed messages
    /// dropped, to be read again), then all are assigned at their stored offsets, those still
    /// stopped paused.
    fn restart_all(
        &mut self,
        pending: &[Tp],
        stored: &HashMap<Tp, Position>,
        go: &HashMap<Tp, Position>,
        restart: &HashSet<Tp>,
    ) {
        let assigned = self.context().positions().read(|p| p.len());
        if assigned != pending.len() {
            return self.rewind(); // then here again, with every partition pending
        }
        let list = (self.context()).list(stored.iter().map(|(tp, at)| (*tp, resume_at(at.offset))));
        if let Err(err) = self.consumer.assign(&list) {
            tracing::warn!(%err, "assigning the partitions again failed, retrying");
            self.pending_retry.0 = Instant::now() + self.pending_retry.1.next_delay();
            return;
        }
        self.context()
            .routes()
            .route(self.context().topics(), stored.keys().copied());
        let held = (self.context()).list(
            stored
                .keys()
                .filter(|tp| !go.contains_key(tp))
                .map(|tp| (*tp, Offset::Invalid)),
        );
        if held.count() > 0
            && let Err(err) = self.consumer.pause(&held)
        {
            tracing::warn!(%err, "pause failed (their messages are dropped meanwhile)");
        }
        // A partition's pause outlives its assignment: the going ones are resumed.
        let going = (self.context()).list(go.keys().map(|tp| (*tp, Offset::Invalid)));
        if !self.paused
            && let Err(err) = self.consumer.resume(&going)
        {
            tracing::warn!(%err, "resume failed, retrying");
            self.context().metrics().resume_errors.inc();
            self.pending_retry.0 = Instant::now() + self.pending_retry.1.next_delay();
            return;
        }
        self.resumed(restart.iter());
        self.context().positions().update(|p| p.assign(go));
        tracing::info!(
            partitions = stored.len(),
            "partitions assigned again at their stored offsets"
        );
        if go.len() < stored.len() {
            self.pending_retry.0 = Instant::now() + self.pending_retry.1.next_delay();
        } else {
            self.pending_retry.1.reset();
        }
    }

    fn check_offsets(&self) {
        let mut stopped: Vec<String> = (self.stopped.iter())
            .filter(|(_, at)| at.is_some())
            .map(|((s, p), _)| format!("{}[{p}]", self.context().topics().name(*s)))
            .collect();
        if stopped.is_empty() {
            self.health.pass(OFFSETS_CHECK);
        } else {
            stopped.sort();
            self.health.fail(
                OFFSETS_CHECK,
                format!("stopped, offset outside the log: {}", stopped.join(", ")),
            );
        }
    }
}
