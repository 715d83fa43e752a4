//! Dead letters, in one place: which topic a failed record goes to, the letter
//! itself (the original record, unchanged, plus `weir.*` headers saying why),
//! making sure the topics exist, handing letters to the producer, and retrying
//! a letter the broker refuses. A letter refused for good (too large, a
//! timestamp the broker will not take) is written again without the record's
//! value and headers; a dead letter is never skipped: while one cannot be
//! written, its partition waits (the others go on).

use crate::commit::BatchScope;
use crate::config::DeadLetterRoute;
use crate::kafka::KafkaSetupError;
use crate::kafka::{self, OutputSink, PendingDelivery, ProduceError, WeirAdmin, WeirConsumer};
use crate::process::{Backoff, RecordFailure};
use crate::record::{cut_at_char, Header, Output, Record};
use crate::telemetry::PipelineMetrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Header names Weir adds: to dead letters (after the original headers,
/// unchanged) and, when asked, the plugin version to outputs.
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
    /// Present when the broker refused the whole letter: why the record's value,
    /// key or headers were left out.
    pub const TRUNCATED: &str = "weir.letter.truncated";
    /// How many times `weir dlq replay` has put the record back on its topic.
    pub const REPLAY_COUNT: &str = "weir.replay.count";
    /// The headers every letter gets after the record's own, in this order.
    pub const ADDED: [&str; 9] = [
        MESSAGE, KIND, ATTEMPTS, TIMESTAMP, PLUGIN, VERSION, TOPIC, PARTITION, OFFSET,
    ];
}

/// Longest error message a dead letter carries; the rest is cut.
const MAX_MESSAGE_BYTES: usize = 4096;
/// Longest key a letter without the record's value keeps.
const MAX_SLIM_KEY_BYTES: usize = 1024;

/// First wait before writing a dead letter again after the broker refused it.
const RETRY: Backoff = Backoff {
    first: Duration::from_millis(500),
    max: Duration::from_secs(30),
};

/// A pipeline's dead letters: where they go and how they are written.
pub struct DeadLetters {
    /// The dead-letter topic of each input topic.
    route: DeadLetterRoute,
    sink: Arc<OutputSink>,
    metrics: PipelineMetrics,
}

/// How handing a record's dead letter to the producer ended.
pub enum LetterHandOver {
    /// The producer took it (in the open transaction, if there is one).
    Taken(PendingDelivery),
    /// Refused at once outside a transaction: handed over again while its
    /// acknowledgement is awaited.
    Later,
    /// A stop came while it waited between transactions: the record stays unfinished.
    GaveUp,
}

/// How a dead letter the broker refuses is retried in place (outside transactions).
pub struct RetryInPlace {
    /// Give up (leaving the record incomplete) when this is cancelled.
    pub stop: CancellationToken,
    /// Set while retrying, so the worker starts no new batches.
    pub blocked: Arc<AtomicBool>,
}

impl DeadLetters {
    /// Letters for records of each input topic go to its dead-letter topic by
    /// `route`, through `sink`; written letters are counted in `metrics`.
    pub fn new(route: DeadLetterRoute, sink: Arc<OutputSink>, metrics: PipelineMetrics) -> Self {
        Self {
            route,
            sink,
            metrics,
        }
    }

    /// Create the dead-letter topics of the input topics `sources` that do not
    /// exist yet, like their input topics.
    pub async fn ensure_topics(
        &self,
        consumer: &WeirConsumer,
        admin: &WeirAdmin,
        sources: impl IntoIterator<Item = &str>,
    ) -> Result<(), KafkaSetupError> {
        let pairs: Vec<(String, String)> = sources
            .into_iter()
            .map(|source| (source.to_string(), self.route.topic_for(source)))
            .collect();
        kafka::ensure_dead_letter_topics(consumer, admin, &pairs).await
    }

    /// The letter for `record`, to its input topic's dead-letter topic.
    pub fn letter_for(&self, record: &Record, failure: &RecordFailure) -> Output {
        letter(record, failure, &self.route.topic_for(&record.topic))
    }

    /// Hand `letter`, the dead letter of `record`, to the producer. Refused
    /// outside a transaction, it is handed over again while its acknowledgement
    /// is awaited ([`LetterHandOver::Later`]). In a transaction, a permanent
    /// refusal for a record with nothing in it yet (`partly_sent` false) hands
    /// over the letter without the record's value at once; refused too, it
    /// closes `scope` before the record and retries that in later transactions;
    /// any other refusal is returned, failing the batch (whose unfinished
    /// transaction is then aborted).
    pub async fn hand_over(
        &self,
        scope: &mut BatchScope<'_>,
        letter: &Output,
        record: &Record,
        partly_sent: bool,
        stop: &CancellationToken,
    ) -> Result<LetterHandOver, ProduceError> {
        let mut error = match self.sink.send(letter, record.timestamp).await {
            Ok(pending) => return Ok(LetterHandOver::Taken(pending)),
            Err(e) => e,
        };
        if !scope.in_transaction() {
            tracing::error!(%error, "cannot hand a dead-letter record to the producer; retrying");
            return Ok(LetterHandOver::Later);
        }
        if !error.is_permanent() || partly_sent {
            return Err(error);
        }
        // Refused for good: a letter without the record's value may be taken.
        let slim = slim(letter, &error);
        match self.sink.send(&slim, None).await {
            Ok(pending) => return Ok(LetterHandOver::Taken(pending)),
            Err(e) if e.is_permanent() => error = e,
            Err(e) => return Err(e),
        }
        // Between attempts this partition waits (it is never skipped) while the
        // other partitions' transactions commit.
        scope.close(&record.topic, record.partition, record.offset);
        let mut failures = 0;
        loop {
            failures += 1;
            if !wait_to_retry(failures, &error, stop).await {
                return Ok(LetterHandOver::GaveUp);
            }
            scope.reopen().await;
            match self.sink.send(&slim, None).await {
                Ok(pending) => return Ok(LetterHandOver::Taken(pending)),
                Err(e) => {
                    scope.abandon();
                    error = e;
                }
            }
        }
    }

    /// Wait for the broker to acknowledge `letter` (handed over as `pending`, or
    /// not yet when `None`). With `retry`, a letter the broker refuses is written
    /// again with backoff until it is accepted, holding its partition back;
    /// without it (in a transaction) the refusal is returned and aborts the
    /// transaction. Returns false if the retry was given up at a stop.
    pub async fn acknowledged(
        &self,
        mut pending: Option<PendingDelivery>,
        letter: &Output,
        timestamp: Option<i64>,
        retry: Option<&RetryInPlace>,
    ) -> Result<bool, ProduceError> {
        let mut slimmed: Option<Output> = None;
        let mut failures = 0;
        loop {
            let result = match pending.take() {
                Some(p) => p.acknowledged().await,
                None => {
                    // A slimmed letter takes the broker's time: the record's own
                    // timestamp may be what the broker refused.
                    let (current, at) = match &slimmed {
                        Some(slim) => (slim, None),
                        None => (letter, timestamp),
                    };
                    match self.sink.send(current, at).await {
                        Ok(p) => {
                            pending = Some(p);
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            let (error, retry) = match (result, retry) {
                (Ok(()), retry) => {
                    if let Some(retry) = retry {
                        retry.blocked.store(false, Ordering::Release);
                    }
                    self.metrics
                        .dead_lettered(letter.topic.as_deref().unwrap_or_default());
                    return Ok(true);
                }
                (Err(e), None) => return Err(e),
                (Err(e), Some(retry)) => (e, retry),
            };
            if error.is_permanent() && slimmed.is_none() {
                tracing::warn!(%error,
                    "the broker refuses this dead letter for good; writing it without the record's value and headers");
                slimmed = Some(slim(letter, &error));
                continue;
            }
            retry.blocked.store(true, Ordering::Release);
            failures += 1;
            if !wait_to_retry(failures, &error, &retry.stop).await {
                retry.blocked.store(false, Ordering::Release);
                return Ok(false);
            }
        }
    }
}

/// Log that a dead letter could not be written (`failures` times so far) and
/// wait the backoff before the next attempt. Returns false if `stop` came first.
async fn wait_to_retry(failures: u32, error: &ProduceError, stop: &CancellationToken) -> bool {
    let delay = RETRY.delay(failures);
    tracing::error!(%error, retry_in = ?delay,
        "cannot write a record to its dead-letter topic; its partition waits until it can (it is never skipped)");
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = stop.cancelled() => false,
    }
}

/// The record to write to `dlq_topic` for `record`: same key, value, timestamp
/// (kept by the producer) and headers, plus the failure headers.
pub fn letter(record: &Record, failure: &RecordFailure, dlq_topic: &str) -> Output {
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
    add(
        headers::MESSAGE,
        cut_at_char(&failure.message, MAX_MESSAGE_BYTES).to_string(),
    );
    add(headers::KIND, failure.kind.as_str().to_string());
    add(headers::ATTEMPTS, failure.attempts.to_string());
    add(headers::TIMESTAMP, now_ms.to_string());
    add(headers::PLUGIN, failure.plugin.name.clone());
    add(headers::VERSION, failure.plugin.version.clone());
    add(headers::TOPIC, record.topic.clone());
    add(headers::PARTITION, record.partition.to_string());
    add(headers::OFFSET, record.offset.to_string());
    Output {
        topic: Some(dlq_topic.to_string()),
        partition: None,
        key: record.key.clone(),
        value: record.value.clone(),
        headers: all_headers,
    }
}

/// `letter` without the record's value and headers (and without its key if
/// that is large): only the `weir.*` headers, plus one saying what was left
/// out and why.
fn slim(letter: &Output, refused: &ProduceError) -> Output {
    let mut headers: Vec<Header> = letter
        .headers
        .iter()
        .filter(|h| h.key.starts_with("weir."))
        .cloned()
        .collect();
    headers.push(Header {
        key: headers::TRUNCATED.to_string(),
        value: format!("the record's value and headers are left out: the broker refused the whole letter ({refused})")
            .into_bytes(),
    });
    Output {
        topic: letter.topic.clone(),
        partition: None,
        key: letter.key.clone().filter(|k| k.len() <= MAX_SLIM_KEY_BYTES),
        value: None,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{FailureKind, PluginIdentity};
    use crate::wasm::TrapKind;

    #[test]
    fn the_dead_letter_keeps_the_record_and_says_why() {
        let record = Record {
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
        let out = letter(&record, &failure, "in.dlq");
        assert_eq!(out.topic.as_deref(), Some("in.dlq"));
        assert_eq!((out.key, out.value), (record.key, record.value));
        assert_eq!(out.headers[0].key, "h");
        let added: Vec<&str> = out.headers[1..].iter().map(|h| h.key.as_str()).collect();
        assert_eq!(added, headers::ADDED, "`weir dlq replay` strips these");
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
    fn a_long_message_is_cut_and_a_slim_letter_keeps_only_the_failure() {
        let record = Record {
            topic: "in".into(),
            key: Some(vec![b'k'; 5000]),
            value: Some(vec![0; 10_000]),
            headers: vec![Header {
                key: "big".into(),
                value: vec![0; 10_000],
            }],
            ..Record::default()
        };
        let failure = RecordFailure {
            kind: FailureKind::Error,
            message: "é".repeat(5000),
            attempts: 1,
            plugin: PluginIdentity {
                name: "p".into(),
                version: "abc".into(),
            },
        };
        let full = letter(&record, &failure, "in.dlq");
        let message = full
            .headers
            .iter()
            .find(|h| h.key == headers::MESSAGE)
            .unwrap();
        assert!(message.value.len() <= MAX_MESSAGE_BYTES);
        assert!(std::str::from_utf8(&message.value).is_ok());
        let refused = ProduceError {
            topic: "in.dlq".into(),
            source: rdkafka::error::KafkaError::MessageProduction(
                rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge,
            ),
        };
        let slim = slim(&full, &refused);
        assert_eq!((slim.value, slim.key), (None, None));
        assert!(slim.headers.iter().all(|h| h.key.starts_with("weir.")));
        assert!(slim.headers.iter().any(|h| h.key == headers::TRUNCATED));
        assert!(slim.headers.iter().any(|h| h.key == headers::OFFSET));
    }
}
