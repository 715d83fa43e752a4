//! Start-up checks that turn the most common mistakes (wrong address, missing
//! or misspelt topic, missing rights) into one clear error each instead of a
//! consumer that silently waits, and the cluster's topic list that topic
//! patterns are matched against.

use super::clients::WeirConsumer;
use super::KafkaSetupError;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// How long to wait for the cluster to answer a metadata request at start-up.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Check that the brokers answer and that every topic in `topics` exists and
/// may be read.
pub fn check_topics(
    consumer: &WeirConsumer,
    brokers: &str,
    topics: &[&str],
) -> Result<(), KafkaSetupError> {
    for &topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(|source| topic_error(brokers, topic, source))?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {}
            Some(t) => {
                let code = t
                    .error()
                    .map_or(RDKafkaErrorCode::UnknownTopicOrPartition, Into::into);
                return Err(topic_error(brokers, topic, KafkaError::MetadataFetch(code)));
            }
            None => {
                return Err(KafkaSetupError::MissingTopic {
                    topic: topic.to_string(),
                    brokers: brokers.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// Every topic of the cluster, for matching topic patterns.
pub fn cluster_topics(
    consumer: &WeirConsumer,
    brokers: &str,
) -> Result<Vec<String>, KafkaSetupError> {
    let metadata = consumer
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|source| KafkaSetupError::Unreachable {
            brokers: brokers.to_string(),
            source,
        })?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name().to_string())
        .collect())
}

/// The start-up error for a metadata request about `topic` that failed with
/// `source`: the topic is missing, its name invalid, reading it not allowed,
/// or (for anything else) the cluster did not answer.
fn topic_error(brokers: &str, topic: &str, source: KafkaError) -> KafkaSetupError {
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    match source.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            KafkaSetupError::MissingTopic { topic, brokers }
        }
        Some(RDKafkaErrorCode::InvalidTopic) => KafkaSetupError::InvalidTopic { topic, brokers },
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed,
        ) => KafkaSetupError::NotAuthorized { topic, brokers },
        _ => KafkaSetupError::Unreachable { brokers, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_metadata_failure_gets_its_own_error() {
        let error = |code| topic_error("b:9092", "t", KafkaError::MetadataFetch(code));
        assert!(matches!(
            error(RDKafkaErrorCode::UnknownTopicOrPartition),
            KafkaSetupError::MissingTopic { .. }
        ));
        assert!(matches!(
            error(RDKafkaErrorCode::InvalidTopic),
            KafkaSetupError::InvalidTopic { .. }
        ));
        assert!(matches!(
            error(RDKafkaErrorCode::TopicAuthorizationFailed),
            KafkaSetupError::NotAuthorized { .. }
        ));
        assert!(matches!(
            error(RDKafkaErrorCode::AllBrokersDown),
            KafkaSetupError::Unreachable { .. }
        ));
    }
}
