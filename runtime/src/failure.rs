//! What went wrong with one record, and the dead-letter record that reports it:
//! the original record, unchanged, plus `weir.error.*` headers saying why.

use crate::wasm::{Header, InputRecord, OutputRecord, TrapKind};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header names added to dead-letter records. The original headers come first,
/// unchanged; these follow.
pub mod headers {
    /// What went wrong, for the operator.
    pub const MESSAGE: &str = "weir.error.message";
    /// `error`, `trap`, `timeout`, `oom`, `fuel`, `contract`, `output-limit` or `produce`.
    pub const KIND: &str = "weir.error.kind";
    /// How many plugin calls included the record.
    pub const ATTEMPTS: &str = "weir.error.attempts";
    /// When the record was given up on, in milliseconds since the Unix epoch.
    pub const TIMESTAMP: &str = "weir.error.timestamp";
    /// The plugin's name.
    pub const PLUGIN: &str = "weir.plugin.name";
    /// The plugin's version: SHA-256 of its `.wasm` file.
    pub const VERSION: &str = "weir.plugin.version";
    /// The topic the record was consumed from.
    pub const TOPIC: &str = "weir.source.topic";
    /// Its partition.
    pub const PARTITION: &str = "weir.source.partition";
    /// Its offset.
    pub const OFFSET: &str = "weir.source.offset";
}

/// Why a record could not be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The plugin returned an error for it (not retryable, or retries ran out).
    Error,
    /// A plugin call with only this record trapped or hit a limit.
    Trap(TrapKind),
    /// Its outputs exceeded the per-record output limits.
    OutputLimit,
    /// The producer refused one of its outputs for good (e.g. larger than
    /// `message.max.bytes`, or a partition that does not exist).
    Produce,
}

impl FailureKind {
    /// The short name used in logs and in the `weir.error.kind` header.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Error => "error",
            FailureKind::Trap(kind) => kind.as_str(),
            FailureKind::OutputLimit => "output-limit",
            FailureKind::Produce => "produce",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// What happened, for the operator.
    pub message: String,
    /// How many plugin calls included the record.
    pub attempts: u32,
    /// The plugin that gave up on it.
    pub plugin: PluginIdentity,
}

impl std::fmt::Display for RecordFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} after {} attempt(s): {}",
            self.kind, self.attempts, self.message
        )
    }
}

/// Which plugin gave up on a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginIdentity {
    /// Its name.
    pub name: String,
    /// Its content hash.
    pub version: String,
}

/// The record to write to `dlq_topic` for `record`: same key, value, timestamp
/// (kept by the producer) and headers, plus the failure headers.
pub fn dead_letter(record: &InputRecord, failure: &RecordFailure, dlq_topic: &str) -> OutputRecord {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    let mut all_headers = record.headers.clone();
    let mut add = |key: &str, value: String| {
        all_headers.push(Header {
            key: key.to_string(),
            value: value.into_bytes(),
        })
    };
    add(headers::MESSAGE, failure.message.clone());
    add(headers::KIND, failure.kind.as_str().to_string());
    add(headers::ATTEMPTS, failure.attempts.to_string());
    add(headers::TIMESTAMP, now_ms.to_string());
    add(headers::PLUGIN, failure.plugin.name.clone());
    add(headers::VERSION, failure.plugin.version.clone());
    add(headers::TOPIC, record.topic.clone());
    add(headers::PARTITION, record.partition.to_string());
    add(headers::OFFSET, record.offset.to_string());
    OutputRecord {
        topic: Some(dlq_topic.to_string()),
        partition: None,
        key: record.key.clone(),
        value: record.value.clone(),
        headers: all_headers,
    }
}

/// Exponential backoff between retries of one record: `first`, doubling, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Wait before the first retry.
    pub first: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first retry).
    pub fn delay(self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.first.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dead_letter_keeps_the_record_and_says_why() {
        let record = InputRecord {
            topic: "in".into(),
            partition: 3,
            offset: 42,
            timestamp: Some(7),
            key: Some(b"k".to_vec()),
            value: Some(vec![0xff, 0]),
            headers: vec![Header {
                key: "h".into(),
                value: b"v".to_vec(),
            }],
        };
        let failure = RecordFailure {
            kind: FailureKind::Trap(TrapKind::Timeout),
            message: "too slow".into(),
            attempts: 2,
            plugin: PluginIdentity {
                name: "p".into(),
                version: "abc".into(),
            },
        };
        let out = dead_letter(&record, &failure, "in.dlq");
        assert_eq!(out.topic.as_deref(), Some("in.dlq"));
        assert_eq!((out.key, out.value), (record.key, record.value));
        assert_eq!(out.headers[0].key, "h");
        let header = |name: &str| {
            let h = out.headers.iter().find(|h| h.key == name).unwrap();
            String::from_utf8(h.value.clone()).unwrap()
        };
        assert_eq!(header(headers::KIND), "timeout");
        assert_eq!(header(headers::ATTEMPTS), "2");
        assert_eq!(header(headers::OFFSET), "42");
        assert_eq!(header(headers::PARTITION), "3");
        assert_eq!(header(headers::VERSION), "abc");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        let delays: Vec<u128> = (1..=4).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        assert_eq!(b.delay(200), Duration::from_millis(350));
    }
}
