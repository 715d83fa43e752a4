//! Converting between Kafka messages and the host's record types.

use crate::panics::{self, Stage};
use crate::record::{Header, Record};
use rdkafka::message::{BorrowedMessage, OwnedHeaders};
use rdkafka::Message;
use std::panic::AssertUnwindSafe;

/// Copy a consumed message into the host's record type. Should reading its
/// headers panic (a library bug met by a hostile producer), the record goes on
/// without them, logged with its position, rather than the poll thread
/// ending: a restart would read the same record and panic again.
pub fn input_record(message: &BorrowedMessage<'_>) -> Record {
    let headers =
        std::panic::catch_unwind(AssertUnwindSafe(|| headers(message))).unwrap_or_else(|payload| {
            tracing::error!(topic = message.topic(), partition = message.partition(),
                offset = message.offset(), panic = %panics::message(&*payload),
                "reading the record's headers panicked; passing it on without headers");
            Vec::new()
        });
    Record {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// The message's headers, in wire order. Keys are bytes on the wire: one that
/// is not UTF-8 is read lossily (U+FFFD for each bad sequence). rdkafka's own
/// reader panics on such a key, and any producer can write one.
#[allow(unsafe_code)]
fn headers(message: &BorrowedMessage<'_>) -> Vec<Header> {
    panics::inject(Stage::Poll, message.payload());
    use rdkafka::bindings::{
        rd_kafka_header_cnt, rd_kafka_header_get_all, rd_kafka_headers_t, rd_kafka_message_headers,
        rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
    };
    let mut native: *mut rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `message.ptr()` is a valid message for as long as `message` is
    // borrowed; librdkafka points `native` at headers the message owns.
    let found = unsafe { rd_kafka_message_headers(message.ptr(), &mut native) };
    if found != RD_KAFKA_RESP_ERR_NO_ERROR || native.is_null() {
        return Vec::new();
    }
    // SAFETY: `native` is the message's valid header list.
    let count = unsafe { rd_kafka_header_cnt(native) };
    let mut headers = Vec::with_capacity(count);
    for index in 0..count {
        let mut name: *const std::ffi::c_char = std::ptr::null();
        let mut value: *const std::ffi::c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: `index` is below the count; librdkafka sets the out-pointers
        // to memory owned by the message.
        let read =
            unsafe { rd_kafka_header_get_all(native, index, &mut name, &mut value, &mut size) };
        if read != RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            continue;
        }
        // SAFETY: librdkafka's header names are NUL-terminated and live as long
        // as the message; a null value is a null header, else `size` bytes.
        let (key, value) = unsafe {
            let key = std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned();
            let value = if value.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(value.cast::<u8>(), size).to_vec()
            };
            (key, value)
        };
        headers.push(Header { key, value });
    }
    headers
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
