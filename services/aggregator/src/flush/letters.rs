//! Delivering a batch's dead letters. A letter acknowledged once is never sent again by a
//! retry of its batch ([`Sent`]); one larger than the dead-letter producer may send is cut to
//! fit, with headers saying so and giving the original sizes, so that no message the consumer
//! could fetch makes every attempt fail. A topic that refuses every write fails each attempt
//! the same way: the `dlq` check says why, and the flush waits (no duplicates pile up).

use std::collections::HashSet;

use fleet::kafka::{AsyncProducer, Outgoing};
use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};

use crate::batch::DeadLetter;
use crate::metrics::Metrics;
use crate::sources::Source;
use crate::topics::Topics;

/// Room left for the headers and the record's framing within `max_bytes`.
const HEADERS_ROOM: usize = 1024;

/// The dead-letter producer and where it writes.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    pub producer: AsyncProducer,
    pub topic: String,
    /// The largest record the producer sends (its `message.max.bytes`).
    pub max_bytes: usize,
}

/// The letters of one flush acknowledged so far, by where they were read.
#[derive(Debug, Default)]
pub(super) struct Sent(HashSet<(Source, i32, i64)>);

impl Sent {
    /// Whether every one of `letters` was acknowledged.
    pub fn all(&self, letters: &[DeadLetter]) -> bool {
        letters.iter().all(|l| self.0.contains(&id(l)))
    }
}

fn id(letter: &DeadLetter) -> (Source, i32, i64) {
    (letter.source, letter.partition, letter.offset)
}

impl DeadLetters {
    /// Produces every letter not acknowledged yet and waits for the acknowledgements; the
    /// first error if any was not delivered (the others are kept as sent).
    pub(super) async fn deliver(
        &self,
        letters: &[DeadLetter],
        sent: &mut Sent,
        topics: &Topics,
        metrics: &Metrics,
    ) -> Result<(), KafkaError> {
        let todo: Vec<&DeadLetter> = letters
            .iter()
            .filter(|l| !sent.0.contains(&id(l)))
            .collect();
        let sends = todo.iter().map(|letter| self.send(letter, topics));
        let mut first_error = None;
        for (letter, result) in todo.iter().zip(join_all(sends).await) {
            match result {
                Ok(()) => {
                    sent.0.insert(id(letter));
                    metrics
                        .dead_letters
                        .with_label_values(&[topics.name(letter.source)])
                        .inc();
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn send(&self, letter: &DeadLetter, topics: &Topics) -> Result<(), KafkaError> {
        let partition = letter.partition.to_string();
        let offset = letter.offset.to_string();
        let key = letter.key.as_deref();
        let payload = letter.payload.as_deref();
        let fitted = fit(key, payload, self.max_bytes.saturating_sub(HEADERS_ROOM));
        let mut headers = OwnedHeaders::new()
            .insert(header("fleet.dlq.source.topic", topics.name(letter.source)))
            .insert(header("fleet.dlq.source.partition", &partition))
            .insert(header("fleet.dlq.source.offset", &offset))
            .insert(header("fleet.dlq.reason", letter.reason.as_str()));
        if let Some(sqlstate) = &letter.sqlstate {
            headers = headers.insert(header("fleet.dlq.sqlstate", sqlstate));
        }
        let sizes = (key.map_or(0, <[u8]>::len), payload.map_or(0, <[u8]>::len));
        let (key_bytes, payload_bytes) = (sizes.0.to_string(), sizes.1.to_string());
        if fitted.truncated {
            headers = headers
                .insert(header("fleet.dlq.truncated", "true"))
                .insert(header("fleet.dlq.original.key.bytes", &key_bytes))
                .insert(header("fleet.dlq.original.payload.bytes", &payload_bytes));
        }
        self.producer
            .send(Outgoing {
                topic: &self.topic,
                key: fitted.key,
                payload: fitted.payload,
                headers: Some(headers),
            })
            .await
    }
}

/// A letter's key and payload cut to fit `budget` bytes together.
#[derive(Debug, PartialEq)]
struct Fitted<'a> {
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    truncated: bool,
}

/// Cuts the payload first (the key identifies the message: kept whole while it takes at most
/// half the budget), then the key.
fn fit<'a>(key: Option<&'a [u8]>, payload: Option<&'a [u8]>, budget: usize) -> Fitted<'a> {
    let (k, p) = (key.map_or(0, <[u8]>::len), payload.map_or(0, <[u8]>::len));
    if k + p <= budget {
        return Fitted {
            key,
            payload,
            truncated: false,
        };
    }
    let key_room = k.min(budget / 2);
    let payload_room = budget - key_room;
    Fitted {
        key: key.map(|b| &b[..key_room]),
        payload: payload.map(|b| &b[..b.len().min(payload_room)]),
        truncated: true,
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a [u8]> {
    Header {
        key,
        value: Some(value.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_that_fits_is_sent_whole() {
        let f = fit(Some(b"key"), Some(b"payload"), 10);
        assert_eq!(
            (f.key, f.payload, f.truncated),
            (Some(&b"key"[..]), Some(&b"payload"[..]), false)
        );
        let f = fit(None, None, 0);
        assert!(!f.truncated);
    }

    #[test]
    fn the_payload_is_cut_before_the_key() {
        let payload = vec![7u8; 100];
        let f = fit(Some(b"key"), Some(&payload), 40);
        assert_eq!(f.key, Some(&b"key"[..]));
        assert_eq!(f.payload.map(<[u8]>::len), Some(37));
        assert!(f.truncated);
    }

    #[test]
    fn a_huge_key_keeps_half_the_room() {
        let (key, payload) = (vec![1u8; 100], vec![2u8; 100]);
        let f = fit(Some(&key), Some(&payload), 40);
        assert_eq!(f.key.map(<[u8]>::len), Some(20));
        assert_eq!(f.payload.map(<[u8]>::len), Some(20));
        let f = fit(Some(&key), None, 40);
        assert_eq!(f.key.map(<[u8]>::len), Some(20));
        assert!(f.truncated);
    }
}
