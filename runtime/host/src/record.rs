//! The host's own record types: a record consumed from Kafka, a record a plugin
//! asks the host to produce, and what a plugin made of one record. Kafka messages
//! are converted to and from these in `kafka/`, the WIT bindings in `wasm/` only;
//! every stage in between sees these types and neither library's.

/// A Kafka record header. A header whose value is null on the wire has an empty value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: Vec<u8>,
}

/// One record consumed from Kafka.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Topic it was consumed from.
    pub topic: String,
    /// Partition it was consumed from.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Timestamp in milliseconds since the Unix epoch, if any.
    pub timestamp: Option<i64>,
    /// Key; `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// Value; `None` for a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers, in wire order.
    pub headers: Vec<Header>,
}

/// One record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Target topic; `None` means the pipeline's output topic.
    pub topic: Option<String>,
    /// Target partition; `None` lets the producer's partitioner decide.
    pub partition: Option<i32>,
    /// Key; `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// Value; `None` for a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

/// A plugin's refusal to process one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What went wrong, for the operator.
    pub message: String,
    /// Whether trying the same record again may succeed.
    pub retryable: bool,
}

impl Output {
    /// Bytes this output counts against `max_output_bytes_per_record`: its
    /// topic name, key, value, header names and values, and
    /// [`HEADER_OVERHEAD`] per header.
    pub fn counted_bytes(&self) -> usize {
        let len = |b: &Option<Vec<u8>>| b.as_ref().map_or(0, Vec::len);
        self.topic.as_ref().map_or(0, String::len)
            + len(&self.key)
            + len(&self.value)
            + self
                .headers
                .iter()
                .map(|h| HEADER_OVERHEAD + h.key.len() + h.value.len())
                .sum::<usize>()
    }
}

/// Fixed per-header overhead (its name's and value's allocations), counted on
/// top of a header's bytes: a record of many empty headers costs memory too.
pub const HEADER_OVERHEAD: usize = 48;

/// What a plugin made of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its outputs; none filters it out.
    Outputs(Vec<Output>),
    /// The plugin refused it.
    Refused(Refusal),
    /// The plugin returned more outputs, or output bytes, than the per-record
    /// limits allow; none of them was copied into the host.
    OverLimit {
        /// How many outputs it returned.
        outputs: usize,
    },
}

/// Longest refusal message kept from a plugin; the rest is cut, so a plugin
/// cannot make every log line and dead letter about one of its records huge.
pub const MAX_REFUSAL_BYTES: usize = 4096;

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn cut_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Bytes as a JSON string when they are UTF-8, else `{"base64": ".."}`.
pub fn bytes_json(bytes: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::Value::String(text.to_string()),
        Err(_) => {
            serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{bytes_json, cut_at_char};

    #[test]
    fn bytes_are_json_text_or_base64() {
        assert_eq!(bytes_json(b"hi"), serde_json::json!("hi"));
        assert_eq!(bytes_json(&[0xff]), serde_json::json!({"base64": "/w=="}));
    }

    #[test]
    fn cutting_keeps_whole_characters() {
        assert_eq!(cut_at_char("héllo", 2), "h");
        assert_eq!(cut_at_char("héllo", 3), "hé");
        assert_eq!(cut_at_char("hi", 10), "hi");
    }
}
