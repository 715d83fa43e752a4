//! Host-side bindings generated from `wit/` (the `plugin` world). Generated
//! code carries no doc comments.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
    // Async, so that a call can be stopped while the guest waits in the host.
    exports: { default: async },
    // A state store that fails (disk full, I/O error) traps the call, so its
    // records are isolated and retried instead of seeing wrong state.
    imports: {
        "weir:processor/state.get": trappable,
        "weir:processor/state.set": trappable,
        "weir:processor/state.delete": trappable,
    },
});

pub use self::weir::processor::types::{Header, InputRecord};

use crate::record;

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
