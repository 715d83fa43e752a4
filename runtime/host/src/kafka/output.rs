//! Producing plugin outputs and waiting for the broker's acknowledgement.

use super::clients::WeirProducer;
use super::convert::output_headers;
use crate::record::Output;
use crate::telemetry::PipelineMetrics;
use prometheus_client::metrics::counter::Counter;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashMap;
use std::time::Duration;

/// How long to wait before retrying when the producer's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// The producer plus the topic that outputs go to unless they name another.
pub struct OutputSink {
    producer: WeirProducer,
    default_topic: String,
    metrics: PipelineMetrics,
    /// Records acknowledged per known topic, resolved once.
    known_topics: HashMap<String, Counter>,
}

/// An output that the broker refused or never acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("producing to topic `{topic}` failed: {source}")]
pub struct ProduceError {
    /// The target topic.
    pub topic: String,
    /// The client's error.
    #[source]
    pub source: KafkaError,
}

impl ProduceError {
    /// Whether handing the same record over again can never succeed: it is
    /// larger than the producer or broker allows, names a partition or topic
    /// that does not exist or is not a valid name, may not be written to, or
    /// has a timestamp the broker refuses. Other errors (timeouts, a broker
    /// away) are worth retrying.
    pub fn is_permanent(&self) -> bool {
        match &self.source {
            KafkaError::MessageProduction(code) => is_permanent_code(*code),
            _ => false,
        }
    }
}

/// Producer error codes that the same record will get again on every try.
fn is_permanent_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::InvalidTimestamp
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidMessage
    )
}

/// Waits for one output's acknowledgement.
pub struct PendingDelivery {
    topic: String,
    future: DeliveryFuture,
    /// Counts the record once acknowledged.
    produced: Counter,
}

impl PendingDelivery {
    /// Resolve once the broker acknowledged the record (all in-sync replicas).
    pub async fn acknowledged(self) -> Result<(), ProduceError> {
        let fail = |source| ProduceError {
            topic: self.topic.clone(),
            source,
        };
        match self.future.await {
            Ok(Ok(_)) => {
                self.produced.inc();
                Ok(())
            }
            Ok(Err((e, _))) => Err(fail(e)),
            Err(_) => Err(fail(KafkaError::Canceled)),
        }
    }
}

impl OutputSink {
    /// Outputs without a topic go to `default_topic`; acknowledged records are
    /// counted in `metrics`, with the counters of `default_topic` and of
    /// `other_topics` (e.g. the dead-letter topics) resolved up front.
    pub fn new(
        producer: WeirProducer,
        default_topic: String,
        other_topics: impl IntoIterator<Item = String>,
        metrics: PipelineMetrics,
    ) -> Self {
        let known_topics = std::iter::once(default_topic.clone())
            .chain(other_topics)
            .map(|topic| {
                let counter = metrics.produced(&topic);
                (topic, counter)
            })
            .collect();
        Self {
            producer,
            default_topic,
            metrics,
            known_topics,
        }
    }

    /// The underlying producer.
    pub fn producer(&self) -> &WeirProducer {
        &self.producer
    }

    /// Hand one output to the producer, waiting while its local queue is full.
    /// The output keeps the input record's timestamp. Outputs handed over in
    /// order are written in order within each target partition.
    pub async fn send(
        &self,
        output: &Output,
        timestamp: Option<i64>,
    ) -> Result<PendingDelivery, ProduceError> {
        let topic = output.topic.as_deref().unwrap_or(&self.default_topic);
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        record.key = output.key.as_deref();
        record.payload = output.value.as_deref();
        record.partition = output.partition;
        record.timestamp = timestamp;
        record.headers = output_headers(&output.headers);
        loop {
            match self.producer.send_result(record) {
                Ok(future) => {
                    let produced = match self.known_topics.get(topic) {
                        Some(counter) => counter.clone(),
                        None => self.metrics.produced(topic),
                    };
                    return Ok(PendingDelivery {
                        topic: topic.to_string(),
                        future,
                        produced,
                    });
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((source, _)) => {
                    return Err(ProduceError {
                        topic: topic.to_string(),
                        source,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: RDKafkaErrorCode) -> ProduceError {
        ProduceError {
            topic: "t".into(),
            source: KafkaError::MessageProduction(code),
        }
    }

    #[test]
    fn refusals_that_repeat_on_every_try_are_permanent_and_the_rest_are_retried() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::MessageBatchTooLarge,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::InvalidTimestamp,
            RDKafkaErrorCode::InvalidRecord,
        ] {
            assert!(refused(code).is_permanent(), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::OutOfOrderSequenceNumber,
        ] {
            assert!(!refused(code).is_permanent(), "{code:?}");
        }
    }
}
