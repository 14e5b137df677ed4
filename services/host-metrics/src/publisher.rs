//! Delivery with a backlog: samples wait in a bounded [`Backlog`] (oldest dropped first) until
//! Kafka acknowledges them, so an outage longer than librdkafka's own retries loses nothing
//! but what the buffer cannot hold, and the backlog drains when the broker returns.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fleet::kafka::{AsyncProducer, Outgoing};
use fleet::retry::Backoff;
use futures::future::join_all;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Samples sent at once while draining.
const CHUNK: usize = 256;

/// Encoded samples waiting for delivery, each with a sequence number. A sample pushed out of
/// a full backlog while its delivery is in flight counts as dropped only if that delivery
/// fails: every sample taken ends up delivered or dropped, never both.
#[derive(Debug)]
pub struct Backlog {
    queue: VecDeque<(u64, Arc<Vec<u8>>)>,
    max: usize,
    next_seq: u64,
    in_flight: HashSet<u64>,
    /// In flight, but no longer in the queue.
    evicted: HashSet<u64>,
}

impl Backlog {
    /// A backlog holding at most `max` samples.
    pub fn new(max: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            max: max.max(1),
            next_seq: 0,
            in_flight: HashSet::new(),
            evicted: HashSet::new(),
        }
    }

    /// Appends a sample; returns how many old ones were dropped for good to make room.
    pub fn push(&mut self, payload: Vec<u8>) -> u64 {
        let mut dropped = 0;
        while self.queue.len() >= self.max {
            let Some((seq, _)) = self.queue.pop_front() else {
                break;
            };
            if self.in_flight.contains(&seq) {
                self.evicted.insert(seq);
            } else {
                dropped += 1;
            }
        }
        self.queue.push_back((self.next_seq, Arc::new(payload)));
        self.next_seq += 1;
        dropped
    }

    /// The oldest `n` samples, still queued, now in flight.
    pub fn take_oldest(&mut self, n: usize) -> Vec<(u64, Arc<Vec<u8>>)> {
        let chunk: Vec<_> = self.queue.iter().take(n).cloned().collect();
        self.in_flight.extend(chunk.iter().map(|(seq, _)| *seq));
        chunk
    }

    /// Records the outcome of a chunk: delivered samples leave, failed ones stay for a retry
    /// unless they were evicted meanwhile. Returns how many of those were dropped for good.
    pub fn settle(&mut self, delivered: &[u64], failed: &[u64]) -> u64 {
        let done: HashSet<u64> = delivered.iter().copied().collect();
        self.queue.retain(|(seq, _)| !done.contains(seq));
        let mut dropped = 0;
        for seq in delivered.iter().chain(failed) {
            self.in_flight.remove(seq);
            if self.evicted.remove(seq) && failed.contains(seq) {
                dropped += 1;
            }
        }
        dropped
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The backlog shared by the sampler (which pushes) and the deliverer (which drains).
#[derive(Debug, Clone)]
pub struct Shared {
    backlog: Arc<Mutex<Backlog>>,
    wake: Arc<Notify>,
    metrics: Metrics,
}

impl Shared {
    pub fn new(max: usize, metrics: Metrics) -> Self {
        Self {
            backlog: Arc::new(Mutex::new(Backlog::new(max))),
            wake: Arc::new(Notify::new()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a sample for delivery.
    pub fn push(&self, payload: Vec<u8>) {
        let mut backlog = self.lock();
        let dropped = backlog.push(payload);
        self.metrics.buffered.set(backlog.len() as i64);
        drop(backlog);
        if dropped > 0 {
            self.metrics.dropped.inc_by(dropped);
            tracing::warn!(dropped, "buffer full: oldest samples dropped");
        }
        self.wake.notify_one();
    }

    /// Samples waiting.
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }
}

/// Drains the backlog into `topic` until `stop`, retrying failures with backoff; then tries
/// once more to deliver what is left within `final_timeout`. Returns what stayed undelivered.
pub async fn deliver(
    shared: Shared,
    producer: AsyncProducer,
    topic: String,
    key: String,
    delivered: Arc<AtomicU64>,
    stop: CancellationToken,
    final_timeout: Duration,
) -> usize {
    let mut backoff = Backoff::new(Duration::from_secs(30));
    loop {
        let chunk = shared.lock().take_oldest(CHUNK);
        if chunk.is_empty() {
            if stop.is_cancelled() {
                return 0;
            }
            tokio::select! {
                () = shared.wake.notified() => continue,
                () = stop.cancelled() => continue,
            }
        }
        let attempt = send_chunk(&shared, &producer, &topic, &key, &delivered, &chunk);
        let failed = if stop.is_cancelled() {
            match tokio::time::timeout(final_timeout, attempt).await {
                Ok(failed) => failed,
                Err(_) => return shared.waiting(),
            }
        } else {
            attempt.await
        };
        if failed == 0 {
            backoff.reset();
            continue;
        }
        if stop.is_cancelled() {
            return shared.waiting();
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// Sends `chunk` and waits for every acknowledgement; returns how many failed.
async fn send_chunk(
    shared: &Shared,
    producer: &AsyncProducer,
    topic: &str,
    key: &str,
    delivered: &AtomicU64,
    chunk: &[(u64, Arc<Vec<u8>>)],
) -> usize {
    let sends = chunk.iter().map(|(seq, payload)| {
        let send = producer.send(Outgoing {
            topic,
            key: Some(key.as_bytes()),
            payload: Some(payload.as_slice()),
            headers: None,
        });
        async move { (*seq, send.await) }
    });
    let results = join_all(sends).await;
    let mut ok = Vec::with_capacity(results.len());
    let mut failed = Vec::new();
    for (seq, result) in results {
        match result {
            Ok(_) => ok.push(seq),
            Err(err) => {
                if failed.is_empty() {
                    tracing::warn!(%err, "sample not delivered, keeping it for a retry");
                }
                failed.push(seq);
            }
        }
    }
    let mut backlog = shared.lock();
    let dropped = backlog.settle(&ok, &failed);
    shared.metrics.buffered.set(backlog.len() as i64);
    drop(backlog);
    shared.metrics.dropped.inc_by(dropped);
    shared.metrics.published.inc_by(ok.len() as u64);
    shared.metrics.delivery_errors.inc_by(failed.len() as u64);
    delivered.fetch_add(ok.len() as u64, Ordering::Relaxed);
    failed.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_backlog_drops_the_oldest_first_and_says_how_many() {
        let mut b = Backlog::new(3);
        for i in 0..3u8 {
            assert_eq!(b.push(vec![i]), 0);
        }
        assert_eq!(b.push(vec![3]), 1);
        let oldest: Vec<Vec<u8>> = b.take_oldest(10).iter().map(|(_, p)| p.to_vec()).collect();
        assert_eq!(oldest, [vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn a_sample_evicted_in_flight_is_dropped_only_if_its_delivery_fails() {
        let mut b = Backlog::new(2);
        b.push(vec![0]);
        b.push(vec![1]);
        let chunk = b.take_oldest(2);
        // Both in flight; two new samples evict them from the queue, not yet dropped.
        assert_eq!(b.push(vec![2]), 0);
        assert_eq!(b.push(vec![3]), 0);
        // 0 was delivered after all; 1 failed and is gone for good.
        assert_eq!(b.settle(&[chunk[0].0], &[chunk[1].0]), 1);
        let left: Vec<u8> = b.take_oldest(10).iter().map(|(_, p)| p[0]).collect();
        assert_eq!(left, [2, 3]);
    }

    #[test]
    fn only_delivered_samples_leave_and_order_is_kept() {
        let mut b = Backlog::new(10);
        for i in 0..5u8 {
            b.push(vec![i]);
        }
        let chunk = b.take_oldest(3);
        assert_eq!(chunk.len(), 3);
        // 0 and 2 delivered, 1 failed: 1 stays at the front for the retry.
        assert_eq!(b.settle(&[chunk[0].0, chunk[2].0], &[chunk[1].0]), 0);
        let left: Vec<u8> = b.take_oldest(10).iter().map(|(_, p)| p[0]).collect();
        assert_eq!(left, [1, 3, 4]);
        assert_eq!(b.len(), 3);
    }
}
