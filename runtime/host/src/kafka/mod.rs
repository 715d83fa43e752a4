//! Everything Kafka: client construction, the consumer context (logging and
//! rebalance events), start-up checks, and converting records to and from the
//! plugin's types.

mod clients;
mod context;
mod convert;
mod output;
mod preflight;
mod topics;

pub use clients::{
    create_admin, create_consumer, create_producer, restore_client_config, shared_properties,
    WeirAdmin, WeirConsumer, WeirProducer,
};
pub use context::{LagBounds, RebalanceListener, WeirContext};
pub use convert::input_record;
pub use output::{OutputSink, PendingDelivery, ProduceError};
pub use preflight::{check_topics, cluster_topics};
pub use topics::{ensure_changelog_topic, ensure_dead_letter_topics};

/// A Kafka problem the user has to act on.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// librdkafka refused the client configuration.
    #[error("invalid Kafka client configuration: {0}; check -X / [librdkafka] properties")]
    Client(#[source] rdkafka::error::KafkaError),
    /// No broker answered.
    #[error("cannot reach Kafka at {brokers} ({source}); check --brokers and that the broker is running (for the local one: scripts/broker start)")]
    Unreachable {
        /// The configured bootstrap servers.
        brokers: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// A topic Weir needs does not exist.
    #[error("topic `{topic}` does not exist on {brokers}; create it first (e.g. scripts/broker create-topic {topic} 4) or fix --topic/--output-topic")]
    MissingTopic {
        /// The topic.
        topic: String,
        /// The configured bootstrap servers.
        brokers: String,
    },
    /// A topic name the brokers refuse as invalid.
    #[error("`{topic}` is not a valid topic name for the brokers at {brokers}; topic names use ASCII letters, digits, `.`, `_` and `-` (a pattern starts with `^`); fix --topic/--output-topic")]
    InvalidTopic {
        /// The topic.
        topic: String,
        /// The configured bootstrap servers.
        brokers: String,
    },
    /// The brokers refuse Weir's credentials access to a topic.
    #[error("not authorized to use topic `{topic}` on {brokers}; grant this principal Describe and Read (Write for the output) on it, or check the credentials in -X sasl.* / [librdkafka]")]
    NotAuthorized {
        /// The topic.
        topic: String,
        /// The configured bootstrap servers.
        brokers: String,
    },
    /// Exactly-once mode needs transactions, which the brokers refused.
    #[error("exactly-once mode needs Kafka transactions, but the brokers at {brokers} refused to start one ({source}); use a broker with transactions enabled or drop --exactly-once")]
    Transactions {
        /// The configured bootstrap servers.
        brokers: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// A dead-letter topic is missing and could not be created.
    #[error("dead-letter topic `{topic}` does not exist and could not be created ({reason}); create it yourself, set plugin.failure.dlq_topic / --dlq-topic to an existing topic, or choose --on-failure skip|stop")]
    DeadLetterTopic {
        /// The topic.
        topic: String,
        /// Why creating it failed.
        reason: String,
    },
    /// A plugin state's changelog topic is missing and could not be created,
    /// or is too small.
    #[error("state changelog topic `{topic}`: {reason}")]
    ChangelogTopic {
        /// The topic.
        topic: String,
        /// What is wrong.
        reason: String,
    },
    /// Subscribing to the input topics failed.
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        /// The topics.
        topics: Vec<String>,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
}
