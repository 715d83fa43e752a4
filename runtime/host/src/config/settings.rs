//! A configuration that passed validation, split in two: what the process has
//! once (the admin endpoint, span export) and each pipeline's own settings,
//! with every derived value (transactional id, dead-letter topics, byte budget)
//! worked out. Nothing downstream re-checks or unwraps.

use super::{
    BatchConfig, ConfigError, FailureConfig, OffsetReset, PluginConfig, RunConfig, Subscription,
    TopicPatterns, DEAD_LETTER_SUFFIX,
};
use crate::admin::AdminSettings;
use std::collections::BTreeMap;
use std::time::Duration;

/// Everything `weir run` does, validated.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The admin endpoints.
    pub admin: AdminSettings,
    /// Where spans of traced records are exported, if anywhere.
    pub otlp_endpoint: Option<String>,
    /// The pipelines, the top-level one first.
    pub pipelines: Vec<PipelineSettings>,
}

/// Where the dead letters of each input topic go: the fixed topic if one is
/// configured, else `<topic>.dlq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRoute {
    /// The one dead-letter topic of every input topic, if configured.
    pub fixed: Option<String>,
}

impl DeadLetterRoute {
    /// The dead-letter topic of records consumed from `source`.
    pub fn topic_for(&self, source: &str) -> String {
        match &self.fixed {
            Some(topic) => topic.clone(),
            None => format!("{source}{DEAD_LETTER_SUFFIX}"),
        }
    }
}

/// One pipeline's settings: its Kafka clients, topics, plugins and limits.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Consumer group.
    pub group: String,
    /// Input topics: names and patterns.
    pub subscription: Subscription,
    /// Default output topic.
    pub output_topic: String,
    /// Topics plugin outputs may go to: the output topic and the allowed ones.
    pub output_topics: TopicPatterns,
    /// Where a group without commits starts.
    pub auto_offset_reset: OffsetReset,
    /// The chain of plugins, in the order records go through them; never empty.
    pub plugins: Vec<PluginConfig>,
    /// What happens to records the chain fails on.
    pub failure: FailureConfig,
    /// The schema registry around the plugins, if any (validated).
    pub schema_registry: Option<super::SchemaRegistryConfig>,
    /// How each partition's records are scheduled into plugin calls.
    pub concurrency: crate::partition::Concurrency,
    /// Most unfinished offsets per partition.
    pub max_uncommitted: usize,
    /// Whether outputs carry the `weir.plugin.version` header.
    pub version_header: bool,
    /// Dead-letter topic of each input topic.
    pub dead_letter: DeadLetterRoute,
    /// How often the topic patterns are matched against the cluster's topics
    /// again (librdkafka's `topic.metadata.refresh.interval.ms`); `None`:
    /// only at start-up.
    pub topic_refresh: Option<Duration>,
    /// Batching into plugin calls.
    pub batch: BatchConfig,
    /// How long finishing in-flight work may take.
    pub drain_timeout: Duration,
    /// How often finished offsets are committed.
    pub commit_interval: Duration,
    /// Most bytes of consumed records in flight.
    pub max_in_flight_bytes: usize,
    /// The producer's transactional id in exactly-once mode; `None` for
    /// at-least-once.
    pub transactional_id: Option<String>,
    /// Static group membership id.
    pub instance_id: Option<String>,
    /// How often librdkafka reports statistics.
    pub stats_interval: Duration,
    /// librdkafka properties passed through to the clients.
    pub librdkafka: BTreeMap<String, String>,
    /// Where plugin state is kept on local disk.
    pub state_dir: std::path::PathBuf,
}

impl Default for PipelineSettings {
    /// Every setting at its default, as an unconfigured `weir run` would have it.
    fn default() -> Self {
        pipeline_settings(&RunConfig::default())
    }
}

impl PipelineSettings {
    /// Whether outputs and offsets commit in Kafka transactions.
    pub fn exactly_once(&self) -> bool {
        self.transactional_id.is_some()
    }
}

impl RunConfig {
    /// Validate, then split into process and pipeline settings.
    pub fn settings(&self) -> Result<RunSettings, ConfigError> {
        self.validate()?;
        Ok(RunSettings {
            admin: self.admin_settings()?,
            otlp_endpoint: self.otlp_endpoint.clone(),
            pipelines: self.pipelines().iter().map(pipeline_settings).collect(),
        })
    }
}

/// The settings of one pipeline, from its configuration as `pipelines()` gives it.
fn pipeline_settings(config: &RunConfig) -> PipelineSettings {
    PipelineSettings {
        brokers: config.brokers.clone(),
        group: config.group.clone(),
        subscription: config
            .subscription()
            .expect("validate() checked the topic entries"),
        output_topic: config.output_topic.clone(),
        output_topics: TopicPatterns::new(
            std::iter::once(&config.output_topic).chain(&config.allowed_output_topics),
        ),
        auto_offset_reset: config.auto_offset_reset,
        plugins: config.plugins().cloned().collect(),
        failure: config.plugin.failure.clone(),
        version_header: config.plugin.version_header,
        schema_registry: config.schema_registry.clone(),
        concurrency: crate::partition::Concurrency {
            ordering: config.ordering,
            max_calls: match config.ordering {
                super::ProcessingOrder::Partition => 1,
                _ => config.max_concurrency.unwrap_or_else(|| {
                    config.plugin.instances.unwrap_or_else(|| {
                        std::thread::available_parallelism().map_or(2, |n| n.get())
                    })
                }),
            },
            max_records: config.batch.max_records,
            linger: config.batch.linger,
        },
        max_uncommitted: config.max_uncommitted,
        dead_letter: config.dead_letter_route(),
        // Checked by validate() where there are patterns; unused elsewhere.
        topic_refresh: config.topic_refresh().unwrap_or_default(),
        batch: config.batch.clone(),
        drain_timeout: config.drain_timeout(),
        commit_interval: config.commit_interval,
        max_in_flight_bytes: config.max_in_flight_bytes(),
        transactional_id: config.exactly_once.then(|| config.transactional_id()),
        instance_id: config.instance_id.clone(),
        stats_interval: config.stats_interval,
        librdkafka: config.librdkafka.clone(),
        state_dir: config.state_dir.clone().unwrap_or_else(|| {
            crate::wasm::default_cache_dir()
                .unwrap_or_else(|| std::path::PathBuf::from(".weir-cache"))
                .join("state")
        }),
    }
}
