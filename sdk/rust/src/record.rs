//! Records as a plugin sees them: what came in, what goes out, and errors.

/// A Kafka record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value (a null value on the wire arrives empty).
    pub value: Vec<u8>,
}

impl Header {
    /// A header from a name and a value.
    pub fn new(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// One record consumed from Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Topic the record came from.
    pub topic: String,
    /// Partition the record came from.
    pub partition: i32,
    /// Offset of the record in its partition.
    pub offset: i64,
    /// Timestamp in milliseconds since the Unix epoch, if the record has one.
    pub timestamp: Option<i64>,
    /// Key, `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// Value, `None` for a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers in wire order.
    pub headers: Vec<Header>,
}

impl Record {
    /// The value as UTF-8 text, if it is present and valid UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first header named `key`, if any.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .map(|h| h.value.as_slice())
    }

    /// An output that carries this record's key, value and headers over unchanged
    /// (to the pipeline's output topic). Moves the data; nothing is copied.
    pub fn into_output(self) -> Output {
        Output {
            topic: None,
            partition: None,
            key: self.key,
            value: self.value,
            headers: self.headers,
        }
    }
}

/// One record for the host to produce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Target topic; `None` means the pipeline's output topic.
    pub topic: Option<String>,
    /// Target partition; `None` lets the partitioner choose by key.
    pub partition: Option<i32>,
    /// Key, `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// Value, `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<Header>,
}

impl Output {
    /// An output with this value, no key and no headers.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// Replace the value.
    pub fn with_value(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Replace the key.
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Append a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }

    /// Send to `topic` instead of the pipeline's output topic.
    pub fn to_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Send to a fixed partition instead of letting the partitioner choose.
    pub fn to_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
}

/// A plugin's refusal to process one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessError {
    /// What went wrong, for the operator.
    pub message: String,
    /// Whether the same record may succeed if tried again.
    pub retryable: bool,
}

impl ProcessError {
    /// An error that will not go away by retrying (e.g. malformed input).
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }

    /// An error from a transient condition; the host may try the record again.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }
}

impl std::fmt::Display for ProcessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProcessError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn into_output_keeps_key_value_and_headers() {
        let record = Record {
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: vec![Header::new("h", "1")],
            ..Record::default()
        };
        assert_eq!(record.header("h"), Some(&b"1"[..]));
        let out = record.into_output().with_header("x", "y");
        assert_eq!(out.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out.value.as_deref(), Some(&b"v"[..]));
        assert_eq!(out.headers.len(), 2);
        assert_eq!(out.topic, None);
    }
}
