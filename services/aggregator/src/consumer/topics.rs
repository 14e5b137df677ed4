//! Partition lists in librdkafka's terms, from and to the consumed partitions ([`Tp`]).

use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::sources::Tp;
use crate::topics::Topics;

/// A list of `partitions`, each at its offset.
pub fn list(
    topics: &Topics,
    partitions: impl IntoIterator<Item = (Tp, Offset)>,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for ((source, partition), offset) in partitions {
        if let Err(err) = tpl.add_partition_offset(topics.name(source), partition, offset) {
            tracing::error!(%err, partition, "cannot build a partition list");
        }
    }
    tpl
}

/// The partitions of `tpl` that belong to topics we consume.
pub fn partitions_of(topics: &Topics, tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .filter_map(|e| Some((topics.source_of(e.topic())?, e.partition())))
        .collect()
}
