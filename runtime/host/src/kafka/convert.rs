//! Converting between Kafka messages and the plugin's record types.

use crate::wasm::{Header, InputRecord};
use rdkafka::message::{BorrowedMessage, Headers, OwnedHeaders};
use rdkafka::Message;

/// Copy a consumed message into the record type handed to plugins.
pub fn input_record(message: &BorrowedMessage<'_>) -> InputRecord {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| Header {
                    key: h.key.to_string(),
                    value: h.value.unwrap_or_default().to_vec(),
                })
                .collect()
        })
        .unwrap_or_default();
    InputRecord {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// Kafka headers for an output record.
pub(crate) fn output_headers(headers: &[Header]) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let owned = headers
        .iter()
        .fold(OwnedHeaders::new_with_capacity(headers.len()), |acc, h| {
            acc.insert(rdkafka::message::Header {
                key: &h.key,
                value: Some(&h.value),
            })
        });
    Some(owned)
}
