//! Host-side bindings generated from `wit/` (the `plugin` world). Generated
//! code carries no doc comments.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
});

pub use self::weir::processor::types::{Header, InputRecord, OutputRecord, ProcessError};

use crate::record;

/// What the plugin returned for one input record.
pub type Outcome = Result<Vec<OutputRecord>, ProcessError>;

// The host's record types and the WIT's have the same fields: converting moves
// them, copying no bytes.

impl From<record::Header> for Header {
    fn from(h: record::Header) -> Self {
        Header {
            key: h.key,
            value: h.value,
        }
    }
}

impl From<Header> for record::Header {
    fn from(h: Header) -> Self {
        record::Header {
            key: h.key,
            value: h.value,
        }
    }
}

impl From<record::Record> for InputRecord {
    fn from(r: record::Record) -> Self {
        InputRecord {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r.headers.into_iter().map(Header::from).collect(),
        }
    }
}

impl From<InputRecord> for record::Record {
    fn from(r: InputRecord) -> Self {
        record::Record {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r.headers.into_iter().map(record::Header::from).collect(),
        }
    }
}

impl From<OutputRecord> for record::Output {
    fn from(o: OutputRecord) -> Self {
        record::Output {
            topic: o.topic,
            partition: o.partition,
            key: o.key,
            value: o.value,
            headers: o.headers.into_iter().map(record::Header::from).collect(),
        }
    }
}

/// The host's form of one outcome.
pub fn host_outcome(outcome: Outcome) -> record::Outcome {
    match outcome {
        Ok(outputs) => Ok(outputs.into_iter().map(record::Output::from).collect()),
        Err(mut e) => {
            let kept = record::cut_at_char(&e.message, record::MAX_REFUSAL_BYTES).len();
            e.message.truncate(kept);
            Err(record::Refusal {
                message: e.message,
                retryable: e.retryable,
            })
        }
    }
}
