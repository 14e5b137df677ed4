//! The rebalance callback, which librdkafka runs on the consumer thread inside `poll`.
//!
//! On an assignment it reads the new partitions' stored offsets from PostgreSQL, once and
//! bounded by [`OFFSETS_READ_WAIT`], and seeds the assignment with them (or the beginning).
//! When PostgreSQL does not answer in time the partitions are assigned paused and *pending*
//! ([`super::offsets`]); the loop reads their offsets with backoff and seeks there, so the
//! callback never waits on PostgreSQL without a bound. On a revocation it first lets the
//! in-flight flush land (bounded by [`REVOKE_WAIT`]; the fence protects a flush that lands
//! later) so that the next owner reads offsets that include it. Either way it marks the
//! context reassigned: the loop drops its batch at its next step.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use super::context::AggregatorContext;
use super::offsets::resume_at;
use super::topics::partitions_of;
use crate::sources::Tp;

/// How long one read of stored offsets may take (an assignment's, then the loop's retries)
/// before the partitions go, or stay, pending.
pub const OFFSETS_READ_WAIT: Duration = Duration::from_secs(5);
/// How long a revocation waits for the in-flight flush to settle.
const REVOKE_WAIT: Duration = Duration::from_secs(10);

impl ConsumerContext for AggregatorContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.metrics().rebalances.inc();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => on_assign(self, consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => on_revoke(self, consumer, tpl),
            other => {
                tracing::error!(?other, "rebalance error; dropping the assignment");
                on_revoke(self, consumer, tpl);
            }
        }
    }
}

type Consumed = BaseConsumer<AggregatorContext>;

/// Whether the group rebalances incrementally (partitions assigned and revoked one by one).
pub(super) fn is_cooperative(consumer: &Consumed) -> bool {
    matches!(
        consumer.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    )
}

fn on_assign(cx: &AggregatorContext, consumer: &Consumed, tpl: &TopicPartitionList) {
    let cooperative = is_cooperative(consumer);
    if cooperative {
        // The loop drops its batch on every reassignment, kept partitions included: settle
        // the in-flight flush and rewind them, as a revocation does.
        settle_in_flight(cx, consumer);
        rewind_kept(cx, consumer);
    }
    let partitions = partitions_of(cx.topics(), tpl);
    if !cx.topic_ids_known() {
        cx.describe_topics(consumer); // Kafka did not answer at start
    }
    let stored = cx.stored_offsets(&partitions, OFFSETS_READ_WAIT);
    // Pending partitions start at the end, paused: the little fetched before the pause is
    // dropped, and the seek to the stored offset discards it anyway.
    let seeded = match &stored {
        Ok(stored) => cx.list(stored.iter().map(|(tp, at)| (*tp, resume_at(at.offset)))),
        Err(_) => cx.list(partitions.iter().map(|tp| (*tp, Offset::End))),
    };
    // Routed before the fetchers start, so that no message of theirs goes elsewhere.
    cx.routes().route(cx.topics(), partitions.iter().copied());
    let assigned = if cooperative {
        consumer.incremental_assign(&seeded)
    } else {
        consumer.assign(&seeded)
    };
    if let Err(err) = assigned {
        tracing::error!(%err, "assign failed");
    }
    match stored {
        Ok(stored) => {
            tracing::info!(?stored, "partitions assigned, resuming from stored offsets");
            cx.positions().update(|p| p.assign(&stored));
        }
        Err(err) => {
            tracing::warn!(%err, ?partitions,
                "partitions assigned, stored offsets not readable yet: paused until they are");
            if let Err(err) = consumer.pause(&seeded) {
                tracing::warn!(%err, "pause failed (their messages are dropped meanwhile)");
            }
            cx.positions().update(|p| p.assign_pending(partitions));
        }
    }
    cx.mark_reassigned();
}

fn on_revoke(cx: &AggregatorContext, consumer: &Consumed, tpl: &TopicPartitionList) {
    // Let the in-flight flush land first, so the next owner reads offsets that include it.
    settle_in_flight(cx, consumer);
    let revoked = partitions_of(cx.topics(), tpl);
    tracing::info!(
        ?revoked,
        "partitions revoked, unflushed data dropped (it will be re-read)"
    );
    let result = match consumer.rebalance_protocol() {
        RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
        _ => consumer.unassign(),
    };
    if let Err(err) = result {
        tracing::error!(%err, "unassign failed");
    }
    cx.routes().unroute(&revoked);
    cx.positions().update(|p| p.revoke(&revoked));
    // Partitions we keep (cooperative protocol) must also drop their unflushed data.
    rewind_kept(cx, consumer);
    cx.metrics().consumer_lag.reset();
    cx.mark_reassigned();
}

/// Waits (bounded) for the in-flight flush and applies its result.
fn settle_in_flight(cx: &AggregatorContext, consumer: &Consumed) {
    match cx.commit().landed(REVOKE_WAIT) {
        Some(landed) => {
            if let Err(failure) = cx.settle(consumer, landed) {
                tracing::warn!(%failure, "in-flight flush did not commit");
            }
        }
        None => {
            if cx.commit().forget() {
                tracing::warn!(
                    "in-flight flush did not settle before the rebalance; its fence protects it"
                );
            }
        }
    }
}

/// Seeks every partition still assigned (and not pending) back to its stored offset: the
/// loop is about to drop the data it read past it. One that cannot be sought goes pending.
fn rewind_kept(cx: &AggregatorContext, consumer: &Consumed) {
    let known: Vec<(Tp, i64)> = cx.positions().read(|p| p.known().collect());
    let failed: Vec<Tp> = known
        .into_iter()
        .filter(|(tp, next)| !cx.seek(consumer, *tp, *next))
        .map(|(tp, _)| tp)
        .collect();
    if !failed.is_empty() {
        let list = cx.list(failed.iter().map(|tp| (*tp, Offset::Invalid)));
        if let Err(err) = consumer.pause(&list) {
            tracing::warn!(%err, "pause failed (their messages are dropped meanwhile)");
        }
        cx.positions().update(|p| p.assign_pending(failed));
    }
}
