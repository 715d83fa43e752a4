//! Start-up checks that turn the most common mistakes (wrong address, missing
//! topic) into one clear error instead of a consumer that silently waits.

use super::clients::WeirConsumer;
use super::KafkaSetupError;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// How long to wait for the cluster to answer a metadata request at start-up.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Check that the brokers answer and that every topic in `topics` exists.
pub fn check_topics(
    consumer: &WeirConsumer,
    brokers: &str,
    topics: &[&str],
) -> Result<(), KafkaSetupError> {
    for &topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(|source| KafkaSetupError::Unreachable {
                brokers: brokers.to_string(),
                source,
            })?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        let exists = match found {
            Some(t) => t.error().is_none() && !t.partitions().is_empty(),
            None => false,
        };
        if !exists {
            if let Some(err) = found.and_then(|t| t.error()) {
                let code = RDKafkaErrorCode::from(err);
                if code != RDKafkaErrorCode::UnknownTopicOrPartition {
                    return Err(KafkaSetupError::Unreachable {
                        brokers: brokers.to_string(),
                        source: KafkaError::MetadataFetch(code),
                    });
                }
            }
            return Err(KafkaSetupError::MissingTopic {
                topic: topic.to_string(),
                brokers: brokers.to_string(),
            });
        }
    }
    Ok(())
}
