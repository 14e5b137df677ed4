//! The Kafka topic id of each consumed topic (Admin API `DescribeTopics`, which rdkafka does
//! not wrap). A topic deleted and created again under the same name gets a new id: that is how
//! a stored offset of the old topic is told apart from one of the new, whose offsets start
//! again at 0. The id is kept as a 64-bit fingerprint of its 128 bits (`consumer_offsets` and
//! `long_calls` store it as `bigint`); `0` means unknown.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;

/// Fingerprint of an unknown topic id.
pub const UNKNOWN: i64 = 0;

/// The ids of `topics` that exist, by name, within `timeout`; an error says why none could be
/// read.
#[expect(
    unsafe_code,
    reason = "librdkafka's DescribeTopics, which rdkafka does not wrap"
)]
pub fn describe<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &[&str],
    timeout: Duration,
) -> Result<HashMap<String, i64>, String> {
    let names: Vec<CString> = (topics.iter())
        .map(|t| CString::new(*t).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let client = consumer.client().native_ptr();
    let deadline = Instant::now() + timeout;
    // SAFETY: every object created here is destroyed before returning, after the last use of
    // what it owns; `names` outlives the collection built from its pointers.
    unsafe {
        let collection =
            rd::rd_kafka_TopicCollection_of_topic_names(pointers.as_mut_ptr(), pointers.len());
        let options = rd::rd_kafka_AdminOptions_new(
            client,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        );
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        rd::rd_kafka_AdminOptions_set_request_timeout(options, millis, std::ptr::null_mut(), 0);
        let queue = rd::rd_kafka_queue_new(client);
        rd::rd_kafka_DescribeTopics(client, collection, options, queue);
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(500);
        let event =
            rd::rd_kafka_queue_poll(queue, i32::try_from(wait.as_millis()).unwrap_or(i32::MAX));
        let ids = if event.is_null() {
            Err(format!("no answer within {timeout:?}"))
        } else {
            let ids = read_event(event);
            rd::rd_kafka_event_destroy(event);
            ids
        };
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_TopicCollection_destroy(collection);
        ids
    }
}

/// The ids a `DescribeTopics` result event carries (topics in error are left out).
#[expect(unsafe_code, reason = "reads librdkafka's result event")]
unsafe fn read_event(event: *mut rd::rd_kafka_event_t) -> Result<HashMap<String, i64>, String> {
    // SAFETY: `event` is a live event; everything read from it lives as long as it does.
    unsafe {
        if rd::rd_kafka_event_error(event) != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            let text = rd::rd_kafka_event_error_string(event);
            return Err(CStr::from_ptr(text).to_string_lossy().into_owned());
        }
        let result = rd::rd_kafka_event_DescribeTopics_result(event);
        if result.is_null() {
            return Err("not a DescribeTopics result".into());
        }
        let mut count = 0;
        let topics = rd::rd_kafka_DescribeTopics_result_topics(result, &mut count);
        let mut ids = HashMap::with_capacity(count);
        for i in 0..count {
            let topic = *topics.add(i);
            let error = rd::rd_kafka_TopicDescription_error(topic);
            if !error.is_null()
                && rd::rd_kafka_error_code(error) != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                continue;
            }
            let name = CStr::from_ptr(rd::rd_kafka_TopicDescription_name(topic));
            let id = rd::rd_kafka_TopicDescription_topic_id(topic);
            if id.is_null() {
                continue;
            }
            let (high, low) = (
                rd::rd_kafka_Uuid_most_significant_bits(id),
                rd::rd_kafka_Uuid_least_significant_bits(id),
            );
            ids.insert(name.to_string_lossy().into_owned(), fingerprint(high, low));
        }
        Ok(ids)
    }
}

/// A topic id's 128 bits folded to 64, never [`UNKNOWN`].
fn fingerprint(high: i64, low: i64) -> i64 {
    match high ^ low {
        UNKNOWN => 1,
        folded => folded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_never_unknown() {
        assert_eq!(fingerprint(5, 5), 1);
        assert_eq!(fingerprint(0x1234, 0), 0x1234);
    }
}
