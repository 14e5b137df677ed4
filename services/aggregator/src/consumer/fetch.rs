//! Fetched messages read in batches (`rd_kafka_consume_batch_queue`), which rdkafka's safe API
//! does not offer. `BaseConsumer::poll` costs a clock read, an allocation and a queue lock per
//! message: about a fifth of the consume thread's time at full speed (perf).
//!
//! rdkafka takes rebalances as events, and librdkafka answers a rebalance met by a batch call
//! with an unassign of its own, so the batch call must never see the consumer queue. Instead
//! each assigned partition's fetch queue is forwarded to a [`FetchQueue`] of ours, and the
//! consumer queue keeps the rebalance, statistics and error events (still served by
//! `BaseConsumer::poll`). librdkafka drops that forwarding when a partition's fetcher stops
//! (asynchronously, so it can land after the next assignment routed the partition again) and
//! then leaves the partition's messages in its own queue: [`FetchQueue::route`] is called
//! before every assignment and again periodically. Forwarding moves queued messages over in
//! order, and a routed partition's messages never go anywhere else, so the order per partition
//! holds.
#![expect(
    unsafe_code,
    reason = "librdkafka's batch consume, which rdkafka does not wrap"
)]

use std::ffi::{CStr, CString, c_void};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;

/// A queue of ours that the assigned partitions' messages are forwarded to.
#[derive(Debug)]
pub struct FetchQueue {
    queue: NonNull<rd::rd_kafka_queue_t>,
    client: NonNull<rd::rd_kafka_t>,
}

// SAFETY: librdkafka queue and client handles may be used from any thread.
unsafe impl Send for FetchQueue {}
// SAFETY: as above; every call on them takes librdkafka's own locks.
unsafe impl Sync for FetchQueue {}

impl FetchQueue {
    /// A new, empty queue on `consumer`'s client; `None` if librdkafka gives none.
    ///
    /// # Safety
    ///
    /// The queue keeps the client's raw handle: it (and every clone of an `Arc` holding it)
    /// must be dropped before `consumer` is.
    pub unsafe fn new<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<Self> {
        let client = NonNull::new(consumer.client().native_ptr())?;
        // SAFETY: `client` is a live client handle.
        let queue = NonNull::new(unsafe { rd::rd_kafka_queue_new(client.as_ptr()) })?;
        Some(Self { queue, client })
    }

    /// Forwards `topic`/`partition`'s messages here (again); false if librdkafka has no such
    /// partition, whose messages then stay on the consumer queue.
    pub fn route(&self, topic: &str, partition: i32) -> bool {
        let Ok(topic) = CString::new(topic) else {
            return false;
        };
        // SAFETY: live handles; the partition queue handle is released right after use.
        unsafe {
            let partition_queue =
                rd::rd_kafka_queue_get_partition(self.client.as_ptr(), topic.as_ptr(), partition);
            if partition_queue.is_null() {
                return false;
            }
            rd::rd_kafka_queue_forward(partition_queue, self.queue.as_ptr());
            rd::rd_kafka_queue_destroy(partition_queue);
        }
        true
    }

    /// Takes up to `max` messages: returns when `max` have arrived or `timeout` has passed.
    pub fn consume(&self, timeout: Duration, max: usize) -> Fetched {
        let mut messages: Vec<*mut rd::rd_kafka_message_t> = Vec::with_capacity(max);
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the array has room for `max` pointers; librdkafka fills the first `n`.
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                timeout_ms,
                messages.as_mut_ptr(),
                max,
            )
        };
        // SAFETY: librdkafka wrote `n` message pointers (negative: an error, none written).
        unsafe { messages.set_len(usize::try_from(n).unwrap_or(0).min(max)) };
        Fetched { messages }
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: our handle, released once; queued messages are purged with it.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// Messages taken by one [`FetchQueue::consume`]; released when dropped.
#[derive(Debug)]
pub struct Fetched {
    messages: Vec<*mut rd::rd_kafka_message_t>,
}

impl Fetched {
    /// How many were taken.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// The messages, in queue order.
    pub fn iter(&self) -> impl Iterator<Item = Record<'_>> {
        self.messages.iter().filter_map(|&m| {
            Some(Record {
                message: NonNull::new(m)?,
                fetched: PhantomData,
            })
        })
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        for &m in &self.messages {
            // SAFETY: each message is released exactly once, here.
            unsafe { rd::rd_kafka_message_destroy(m) }
        }
    }
}

/// One fetched message, alive as long as its [`Fetched`].
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// A pointer, not a reference: librdkafka writes into the message (it parses the headers
    /// on first use and keeps them there), which a shared reference held meanwhile forbids.
    message: NonNull<rd::rd_kafka_message_t>,
    fetched: PhantomData<&'a Fetched>,
}

impl<'a> Record<'a> {
    /// A copy of the message's public fields, read through the pointer.
    fn fields(&self) -> rd::rd_kafka_message_t {
        // SAFETY: the message is alive while its `Fetched` is (`'a`), and only librdkafka's
        // calls below write to it, never while this plain read runs.
        unsafe { std::ptr::read(self.message.as_ptr()) }
    }

    /// The error librdkafka put in place of a message, if this is one.
    pub fn error(&self) -> Option<String> {
        let err = self.fields().err;
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            return None;
        }
        // SAFETY: librdkafka's static error strings.
        let text = unsafe { CStr::from_ptr(rd::rd_kafka_err2str(err)) };
        Some(text.to_string_lossy().into_owned())
    }

    /// Whether this is librdkafka saying that the partition's fetch offset lies outside its log
    /// (`auto.offset.reset=error`): the partition is not fetched until it is sought again.
    pub fn is_offset_out_of_range(&self) -> bool {
        self.fields().err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET
    }

    /// The topic handle: equal pointers are the same topic while the message lives.
    pub fn topic_handle(&self) -> *const c_void {
        self.fields().rkt.cast()
    }

    /// The topic's name.
    pub fn topic(&self) -> Option<&'a str> {
        let rkt = self.fields().rkt;
        if rkt.is_null() {
            return None;
        }
        // SAFETY: the topic handle lives as long as the message; its name is NUL-terminated.
        unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(rkt)) }
            .to_str()
            .ok()
    }

    pub fn partition(&self) -> i32 {
        self.fields().partition
    }

    pub fn offset(&self) -> i64 {
        self.fields().offset
    }

    pub fn key(&self) -> Option<&'a [u8]> {
        let fields = self.fields();
        // SAFETY: `key_len` bytes at `key`, owned by the message, which librdkafka never
        // rewrites.
        unsafe { bytes(fields.key, fields.key_len) }
    }

    pub fn payload(&self) -> Option<&'a [u8]> {
        let fields = self.fields();
        // SAFETY: `len` bytes at `payload`, owned by the message, never rewritten.
        unsafe { bytes(fields.payload, fields.len) }
    }

    /// The last value of header `name`.
    pub fn header(&self, name: &CStr) -> Option<&'a [u8]> {
        let mut headers: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
        let mut value: *const c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: the headers belong to the message (parsed on first use, freed with it); no
        // reference into the message is held while librdkafka writes them.
        unsafe {
            if rd::rd_kafka_message_headers(self.message.as_ptr(), &mut headers)
                != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
                || rd::rd_kafka_header_get_last(headers, name.as_ptr(), &mut value, &mut size)
                    != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                return None;
            }
            bytes(value.cast_mut(), size)
        }
    }
}

/// `len` bytes at `ptr`, or `None` for a null pointer.
///
/// # Safety
///
/// `ptr` is null or points to `len` initialized bytes that stay unchanged and alive for `'a`
/// (a live message's key, payload or header value).
unsafe fn bytes<'a>(ptr: *mut c_void, len: usize) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller's promise.
    Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{Offset, TopicPartitionList};

    use super::*;

    /// The offsets read from `fetch` until `want` arrived or `within` passed.
    fn read(fetch: &FetchQueue, topic: &str, want: usize, within: Duration) -> Vec<i64> {
        let deadline = Instant::now() + within;
        let mut offsets = Vec::new();
        while offsets.len() < want && Instant::now() < deadline {
            let fetched = fetch.consume(Duration::from_millis(50), 100);
            for record in fetched.iter() {
                assert_eq!(record.error(), None);
                assert_eq!(record.topic(), Some(topic));
                assert_eq!(
                    record.payload(),
                    Some(record.offset().to_string().as_bytes())
                );
                offsets.push(record.offset());
            }
        }
        offsets
    }

    fn produce(producer: &BaseProducer, topic: &str, offsets: std::ops::Range<i64>) {
        for offset in offsets {
            let payload = offset.to_string();
            producer
                .send(
                    BaseRecord::<(), _>::to(topic)
                        .partition(0)
                        .payload(&payload),
                )
                .expect("queued");
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
    }

    /// What the consume loop relies on: a routed partition's messages arrive in order, a
    /// stopped fetcher drops the route (an unassign here), and routing again brings what was
    /// fetched meanwhile, still in order.
    #[test]
    fn routed_messages_arrive_in_order_and_a_dropped_route_is_restored_by_routing_again() {
        let bootstrap = testkit::kafka::bootstrap();
        let topic = testkit::kafka::unique("fetch");
        testkit::kafka::create_topics(&bootstrap, &[(&topic, 1)]);
        let t = topic.as_str();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("producer");
        produce(&producer, t, 0..10);
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", testkit::kafka::unique("fetch-test"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        // SAFETY: declared after the consumer, so dropped before it.
        let fetch = unsafe { FetchQueue::new(&consumer) }.expect("fetch queue");
        let at = |offset| {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(t, 0, offset).expect("tpl");
            tpl
        };

        assert!(fetch.route(t, 0));
        consumer.assign(&at(Offset::Beginning)).expect("assign");
        assert_eq!(
            read(&fetch, t, 10, Duration::from_secs(10)),
            (0..10).collect::<Vec<_>>()
        );

        consumer.unassign().expect("unassign");
        consumer
            .assign(&at(Offset::Offset(10)))
            .expect("assign again");
        produce(&producer, t, 10..15);
        assert_eq!(
            read(&fetch, t, 5, Duration::from_secs(1)),
            Vec::<i64>::new(),
            "the fetcher's stop dropped the route"
        );
        assert!(
            consumer.poll(Duration::from_millis(100)).is_none(),
            "nor do they go to the consumer queue"
        );

        assert!(fetch.route(t, 0));
        assert_eq!(
            read(&fetch, t, 5, Duration::from_secs(10)),
            (10..15).collect::<Vec<_>>()
        );
    }
}
