//! Making sure dead-letter topics exist before the first record can need one:
//! a missing one is created like its input topic (same partition count) with the
//! replication the cluster allows (up to 3).

use super::clients::{WeirAdmin, WeirConsumer};
use super::KafkaSetupError;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// How long metadata requests and topic creation may take at start-up.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// For each `(input topic, dead-letter topic)` pair, create the dead-letter topic
/// if it does not exist yet.
pub async fn ensure_dead_letter_topics(
    consumer: &WeirConsumer,
    admin: &WeirAdmin,
    pairs: &[(String, String)],
) -> Result<(), KafkaSetupError> {
    for (source, dlq) in pairs {
        let fail = |reason: String| KafkaSetupError::DeadLetterTopic {
            topic: dlq.clone(),
            reason,
        };
        if partition_count(consumer, dlq).map_err(&fail)? > 0 {
            continue;
        }
        let partitions = partition_count(consumer, source).map_err(&fail)?.max(1);
        let brokers = consumer
            .fetch_metadata(None, ADMIN_TIMEOUT)
            .map(|m| m.brokers().len())
            .map_err(|e| fail(e.to_string()))?;
        let replication = brokers.clamp(1, 3) as i32;
        let topic = NewTopic::new(dlq, partitions, TopicReplication::Fixed(replication));
        let results = admin
            .create_topics(
                &[topic],
                &AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)),
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        for result in results {
            match result {
                Ok(_) => tracing::info!(topic = %dlq, partitions, replication,
                    "created dead-letter topic"),
                // Another process of the group created it first.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(fail(code.to_string())),
            }
        }
    }
    Ok(())
}

/// Partitions of `topic`, 0 if it does not exist.
fn partition_count(consumer: &WeirConsumer, topic: &str) -> Result<i32, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
        .map_err(|e| e.to_string())?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len() as i32))
}
