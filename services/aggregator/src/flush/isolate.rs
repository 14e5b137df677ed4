//! Finding the messages PostgreSQL refuses. The batch is split in halves by message, in the
//! order they were read, each half replayed ([`Batch::replay`]) and flushed as a batch of its
//! own; a half that is refused again is split again, until a single message is refused: that
//! one is dead-lettered (`rejected_by_database`, its SQLSTATE in a header) and its offset
//! stored past it in the same transaction as any other batch. Halves commit in order, each
//! fenced from where the previous one left its partitions, so the guarantee is the one of
//! consecutive batches; a refusal that depends on what is stored (a sum that overflows only
//! once added to the stored one) is judged against what the halves before it stored, as a
//! consumer reading one message at a time would. One bad message in `n` costs about
//! `2·log2(n)` transactions and three times the batch's rows, once.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::letters::Sent;
use super::{FlushFailure, Flusher, Outcome};
use crate::batch::Batch;
use crate::decode::Invalid;
use crate::sources::Source;
use crate::store::Stored;

/// Stores `batch` (which PostgreSQL refused whole) but the messages it refuses on their own.
pub(super) async fn isolate(
    flusher: &Flusher,
    batch: &Batch,
    sent: &mut Sent,
    took: &mut Duration,
    cancel: &CancellationToken,
) -> Result<Stored, FlushFailure> {
    let mut fences: HashMap<(Source, i32), i64> = batch
        .progress
        .iter()
        .map(|p| ((p.source, p.partition), p.expected))
        .collect();
    let mut stored = Stored {
        offsets: 0,
        parts: Vec::new(),
    };
    // Ranges still to store, the next one last; the whole batch was refused already.
    let mut todo = halves(0..batch.recorded());
    while let Some(range) = todo.pop() {
        let expected = |s: Source, p: i32| fences.get(&(s, p)).copied().unwrap_or(-1);
        let part = batch.replay(range.clone(), expected, None);
        let done = match flusher.commit(&part, sent, took, cancel).await {
            Ok(done) => done,
            Err(Outcome::Failed(failure)) => return Err(failure),
            Err(Outcome::Refused(_)) if range.len() > 1 => {
                todo.extend(halves(range));
                continue;
            }
            Err(Outcome::Refused(sqlstate)) => {
                let letter = batch.replay(range, expected, Some(&sqlstate));
                let done = match flusher.commit(&letter, sent, took, cancel).await {
                    Ok(done) => done,
                    Err(Outcome::Failed(failure)) => return Err(failure),
                    // Only offsets left to write: nothing of the data can be refused. Should
                    // it happen, the batch is re-read rather than an offset skipped.
                    Err(Outcome::Refused(again)) => {
                        tracing::error!(sqlstate = again, "offsets refused by PostgreSQL");
                        return Err(FlushFailure::Abandoned);
                    }
                };
                count_rejected(flusher, &letter, &sqlstate);
                done_with(&mut fences, &letter);
                merge(&mut stored, done);
                continue;
            }
        };
        done_with(&mut fences, &part);
        merge(&mut stored, done);
    }
    Ok(stored)
}

/// `range` split in two, the first half last (popped first); a single message stays whole.
fn halves(range: Range<usize>) -> Vec<Range<usize>> {
    if range.len() <= 1 {
        return vec![range];
    }
    let mid = range.start + range.len() / 2;
    vec![mid..range.end, range.start..mid]
}

fn count_rejected(flusher: &Flusher, letter: &Batch, sqlstate: &str) {
    for dead in &letter.dead_letters {
        let topic = flusher.topics.name(dead.source);
        tracing::warn!(
            topic,
            partition = dead.partition,
            offset = dead.offset,
            sqlstate,
            "message refused by PostgreSQL: dead-lettered"
        );
        (flusher.metrics.invalid_events)
            .with_label_values(&[topic, Invalid::RejectedByDatabase.as_str()])
            .inc();
    }
}

/// The next part of a partition is fenced where this one left it.
fn done_with(fences: &mut HashMap<(Source, i32), i64>, part: &Batch) {
    for p in &part.progress {
        fences.insert((p.source, p.partition), p.next);
    }
}

fn merge(stored: &mut Stored, done: Stored) {
    stored.offsets += done.offsets;
    stored.parts.extend(done.parts);
}

#[cfg(test)]
mod tests {
    use super::halves;

    #[test]
    fn halves_cover_the_range_in_order() {
        let mut todo = halves(0..5);
        let mut popped = Vec::new();
        while let Some(r) = todo.pop() {
            if r.len() > 1 {
                todo.extend(halves(r));
            } else {
                popped.push(r.start);
            }
        }
        assert_eq!(popped, vec![0, 1, 2, 3, 4]);
        assert_eq!(halves(3..4), vec![3..4]);
    }
}
