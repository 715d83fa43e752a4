//! Making sure dead-letter and state changelog topics exist before the first
//! record can need one: a missing one is created with its input topics'
//! partition count and the replication the cluster allows (up to 3).

use super::clients::{WeirAdmin, WeirConsumer};
use super::KafkaSetupError;
use rdkafka::admin::{AdminOptions, NewPartitions, NewTopic, TopicReplication};
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
        create_topic(consumer, admin, dlq, partitions, &[])
            .await
            .map_err(fail)?;
    }
    Ok(())
}

/// Create the changelog topic of a plugin's state (compacted: only each
/// key's last value matters) with as many partitions as the largest of
/// `inputs`, if it does not exist yet; one with fewer partitions (an input
/// topic that grew, or one a pattern matched later) gets more: a partition's
/// state lives in the changelog partition of the same number.
pub async fn ensure_changelog_topic(
    consumer: &WeirConsumer,
    admin: &WeirAdmin,
    changelog: &str,
    inputs: impl Iterator<Item = &str>,
) -> Result<(), KafkaSetupError> {
    let fail = |reason: String| KafkaSetupError::ChangelogTopic {
        topic: changelog.to_string(),
        reason,
    };
    let mut needed = 1;
    for input in inputs {
        needed = needed.max(partition_count(consumer, input).map_err(&fail)?);
    }
    let existing = partition_count(consumer, changelog).map_err(&fail)?;
    if existing == 0 {
        return create_topic(
            consumer,
            admin,
            changelog,
            needed,
            &[("cleanup.policy", "compact")],
        )
        .await
        .map_err(fail);
    }
    if existing < needed {
        let more = NewPartitions::new(changelog, needed as usize);
        let results = admin
            .create_partitions(
                &[more],
                &AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)),
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        for result in results {
            result.map_err(|(_, code)| {
                fail(format!(
                    "it has {existing} partitions, the input topics up to {needed}, and adding them failed ({code}); add them yourself (kafka-topics --alter --partitions {needed})"
                ))
            })?;
        }
        tracing::info!(
            topic = changelog,
            from = existing,
            to = needed,
            "added partitions to the state changelog topic"
        );
    }
    Ok(())
}

/// Create `topic` with `partitions` and the replication the cluster allows
/// (up to 3); one another process created first is fine.
async fn create_topic(
    consumer: &WeirConsumer,
    admin: &WeirAdmin,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<(), String> {
    let brokers = consumer
        .fetch_metadata(None, ADMIN_TIMEOUT)
        .map(|m| m.brokers().len())
        .map_err(|e| e.to_string())?;
    let replication = brokers.clamp(1, 3) as i32;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (key, value) in configs {
        new = new.set(key, value);
    }
    let results = admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)),
        )
        .await
        .map_err(|e| e.to_string())?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, partitions, replication, "created topic"),
            // Another process of the group created it first.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(code.to_string()),
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
