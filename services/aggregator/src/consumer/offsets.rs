//! Offset bookkeeping: [`Positions`] is the one owner of where each assigned partition stands.
//! The rebalance callback adds and removes partitions, the loop hands batches off and settles
//! them; both run on the consumer thread, the statistics callback reads it for the lag.
//!
//! Three facts per partition: the next offset stored in PostgreSQL (what a new owner resumes
//! from), the fence of the next batch (the `next` of the last batch handed off to a flush,
//! which may not have committed yet), and whether the stored offset is known at all: a
//! partition assigned while PostgreSQL did not answer is *pending*, paused, its messages
//! dropped, until the loop reads its offset and seeks there.
//!
//! [`Tracked`] shares them between the loop and librdkafka's callbacks, with the gauges that
//! show them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rdkafka::topic_partition_list::Offset;

use crate::batch::{Position, Progress};
use crate::metrics::Metrics;
use crate::sources::Tp;

/// The positions as the loop and the callbacks share them. librdkafka runs the callbacks that
/// change them on the consumer thread, inside `poll`, so the lock is not contended; it makes
/// the sharing with `&self` callbacks sound.
#[derive(Debug)]
pub struct Tracked {
    positions: Mutex<Positions>,
    /// Whether any partition is pending: spares the ingest a lock per message.
    any_pending: AtomicBool,
    metrics: Metrics,
}

impl Tracked {
    /// No partition yet; `metrics` shows how many are assigned and pending.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            positions: Mutex::default(),
            any_pending: AtomicBool::new(false),
            metrics,
        }
    }

    /// Changes the positions (the only way to, so that `any_pending` and the gauges follow).
    pub fn update<R>(&self, change: impl FnOnce(&mut Positions) -> R) -> R {
        let mut positions = lock(&self.positions);
        let result = change(&mut positions);
        let pending = positions.pending().len();
        self.any_pending.store(pending > 0, Ordering::Release);
        self.metrics.assigned_partitions.set(positions.len() as i64);
        self.metrics.partitions_pending.set(pending as i64);
        result
    }

    /// Reads the positions.
    pub fn read<R>(&self, look: impl FnOnce(&Positions) -> R) -> R {
        look(&lock(&self.positions))
    }

    /// Whether any assigned partition is pending (without taking the lock).
    pub fn any_pending(&self) -> bool {
        self.any_pending.load(Ordering::Acquire)
    }

    /// Whether the messages of `tp` are dropped until its stored offset is read.
    pub fn is_pending(&self, tp: Tp) -> bool {
        self.any_pending() && self.read(|p| p.pending().contains(&tp))
    }
}

/// Where to resume a partition whose stored next offset is `next` (-1: nothing stored yet).
pub fn resume_at(next: i64) -> Offset {
    if next >= 0 {
        Offset::Offset(next)
    } else {
        Offset::Beginning
    }
}

/// Locks `m`, whether or not a panic poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // State behind these locks stays consistent at every await-free step; keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where every assigned partition stands (see the module docs), with its watermark.
#[derive(Debug, Default, Clone)]
pub struct Positions {
    stored: HashMap<Tp, Position>,
    fences: HashMap<Tp, Position>,
    pending: HashSet<Tp>,
}

impl Positions {
    /// Partitions assigned with their stored positions known.
    pub fn assign(&mut self, stored: &HashMap<Tp, Position>) {
        for (tp, at) in stored {
            self.pending.remove(tp);
            self.stored.insert(*tp, *at);
            self.fences.insert(*tp, *at);
        }
    }

    /// Partitions assigned (or kept) whose stored offsets are not known yet.
    pub fn assign_pending(&mut self, partitions: impl IntoIterator<Item = Tp>) {
        for tp in partitions {
            self.stored.remove(&tp);
            self.fences.remove(&tp);
            self.pending.insert(tp);
        }
    }

    /// Partitions revoked.
    pub fn revoke(&mut self, partitions: &[Tp]) {
        for tp in partitions {
            self.stored.remove(tp);
            self.fences.remove(tp);
            self.pending.remove(tp);
        }
    }

    /// A batch was handed off to a flush: the next batch is fenced on where it ends.
    pub fn hand_off(&mut self, progress: &[Progress]) {
        for p in progress {
            self.fences.insert((p.source, p.partition), p.reached());
        }
    }

    /// A batch committed: its offsets are stored. Returns those of partitions still assigned
    /// here (to commit to Kafka for lag tools).
    pub fn commit(&mut self, progress: &[Progress]) -> Vec<(Tp, i64)> {
        let mut kept = Vec::with_capacity(progress.len());
        for p in progress {
            let tp = (p.source, p.partition);
            if let Some(stored) = self.stored.get_mut(&tp) {
                *stored = p.reached();
                kept.push((tp, p.next));
            }
        }
        kept
    }

    /// The unflushed batch was dropped: the next one starts from the stored offsets.
    pub fn restart_from_stored(&mut self) {
        self.fences.clone_from(&self.stored);
    }

    /// The fence of `tp` for the next batch, with the watermark it starts from.
    pub fn fence(&self, tp: Tp) -> Position {
        self.fences.get(&tp).copied().unwrap_or(Position::START)
    }

    /// The stored offset of `tp`; `None` unless assigned here and known.
    pub fn stored(&self, tp: Tp) -> Option<i64> {
        self.stored.get(&tp).map(|at| at.offset)
    }

    /// Every assigned partition with a known stored offset.
    pub fn known(&self) -> impl Iterator<Item = (Tp, i64)> + '_ {
        self.stored.iter().map(|(tp, at)| (*tp, at.offset))
    }

    /// The partitions waiting for their stored offset.
    pub fn pending(&self) -> &HashSet<Tp> {
        &self.pending
    }

    /// Every assigned partition, pending or not.
    pub fn assigned(&self) -> Vec<Tp> {
        let known = self.stored.keys();
        known.chain(&self.pending).copied().collect()
    }

    /// How many partitions are assigned here.
    pub fn len(&self) -> usize {
        self.stored.len() + self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::Source;

    const A: Tp = (Source::Calls, 0);
    const B: Tp = (Source::Hosts, 0);

    fn progress(tp: Tp, expected: i64, next: i64) -> Progress {
        Progress {
            source: tp.0,
            partition: tp.1,
            expected,
            next,
            watermark_ms: next * 1000,
            topic_id: 7,
        }
    }

    /// Stored positions whose watermark is a function of the offset, for brevity.
    fn at(stored: &[(Tp, i64)]) -> HashMap<Tp, Position> {
        let position = |offset: i64| Position {
            offset,
            watermark_ms: offset * 1000,
            topic_id: 7,
        };
        stored.iter().map(|(tp, o)| (*tp, position(*o))).collect()
    }

    fn offset(p: Position) -> i64 {
        p.offset
    }

    #[test]
    fn a_handed_off_batch_fences_the_next_one_before_it_commits() {
        let mut p = Positions::default();
        p.assign(&at(&[(A, 10)]));
        assert_eq!((offset(p.fence(A)), p.fence(B)), (10, Position::START));
        p.hand_off(&[progress(A, 10, 15)]);
        assert_eq!(
            p.fence(A),
            Position {
                offset: 15,
                watermark_ms: 15_000,
                topic_id: 7,
            },
            "the next batch starts where this one ends, with its watermark"
        );
        assert_eq!(p.stored(A), Some(10), "not stored before the commit");
        assert_eq!(p.commit(&[progress(A, 10, 15)]), [(A, 15)]);
        assert_eq!(p.stored(A), Some(15));
    }

    #[test]
    fn a_dropped_batch_restarts_from_the_stored_offsets() {
        let mut p = Positions::default();
        p.assign(&at(&[(A, 10)]));
        p.hand_off(&[progress(A, 10, 15)]);
        p.restart_from_stored();
        assert_eq!((offset(p.fence(A)), p.fence(A).watermark_ms), (10, 10_000));
    }

    #[test]
    fn a_commit_after_the_revocation_is_not_kept() {
        let mut p = Positions::default();
        p.assign(&at(&[(A, 10), (B, 3)]));
        p.revoke(&[A]);
        assert_eq!(
            p.commit(&[progress(A, 10, 15), progress(B, 3, 4)]),
            [(B, 4)]
        );
        assert_eq!((p.stored(A), p.len()), (None, 1));
    }

    #[test]
    fn a_pending_partition_has_no_position_until_its_offset_is_read() {
        let mut p = Positions::default();
        p.assign_pending([A]);
        assert_eq!((p.stored(A), p.len()), (None, 1));
        assert!(p.pending().contains(&A));
        assert_eq!(p.assigned(), [A]);
        p.assign(&at(&[(A, 7)]));
        assert!(p.pending().is_empty());
        assert_eq!((p.stored(A), offset(p.fence(A))), (Some(7), 7));
    }
}
