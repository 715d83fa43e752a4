//! Run configuration: defaults, then a TOML file, then environment variables and
//! flags (see `cli`). Every field's doc comment is user documentation.

mod defaults;
mod derived;
mod error;
mod schema_registry;
mod secrets;
mod settings;
mod subscription;
#[cfg(test)]
mod tests;
mod topic_patterns;
mod validate;

pub use defaults::DEFAULT_TRANSACTION_TIMEOUT;
use defaults::*;
pub use error::ConfigError;
pub use settings::{DeadLetterRoute, PipelineSettings, RunSettings};
pub use subscription::{check_topic_name, Subscription, TopicEntryError, DEAD_LETTER_SUFFIX};
pub use topic_patterns::TopicPatterns;
pub use validate::parse_key_value;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `weir run` needs, after layering defaults, file, env and flags.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Kafka bootstrap servers, comma-separated `host:port` list.
    #[serde(default)]
    pub brokers: String,
    /// Consumer group id. Processes with the same group share the partitions.
    #[serde(default)]
    pub group: String,
    /// Input topics to consume.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Topic that outputs go to unless the plugin names another.
    #[serde(default)]
    pub output_topic: String,
    /// Topics a plugin may send outputs to besides `output_topic`: names, or
    /// patterns where `*` stands for any run of characters (`"audit-*"`). An
    /// output to any other topic fails its record (kind `contract`): a plugin
    /// cannot forge dead letters, feed another pipeline or make the broker
    /// create topics.
    #[serde(default)]
    pub allowed_output_topics: Vec<String>,
    /// Where to start when the group has no committed offset: `earliest` or `latest`.
    #[serde(default)]
    pub auto_offset_reset: OffsetReset,
    /// The processing plugin.
    #[serde(default)]
    pub plugin: PluginConfig,
    /// Further plugins forming a chain (`[[then]]` tables, same keys as
    /// `[plugin]`): each record's outputs from one plugin are the next one's
    /// inputs (keeping the original topic, partition, offset and timestamp), and
    /// the last plugin's outputs are produced. Each plugin has its own instances,
    /// limits and reloads; the chain shares `[plugin.failure]` (a
    /// `[then.failure]` table is refused).
    #[serde(default, deserialize_with = "chained_plugins")]
    pub then: Vec<PluginConfig>,
    /// How records are grouped into plugin calls.
    #[serde(default)]
    pub batch: BatchConfig,
    /// How long finishing in-flight work may take, on shutdown and before a
    /// revoked partition is handed over, e.g. `"30s"`. Must stay below the
    /// consumer's `session.timeout.ms`. On shutdown, running out of it exits non-zero.
    /// Unset: 30 s, or two thirds of a shorter session timeout
    /// ([`RunConfig::drain_timeout`]).
    #[serde(default, with = "humantime_serde")]
    pub drain_timeout: Option<Duration>,
    /// How often finished offsets are committed, e.g. `"1s"`. After a crash, up
    /// to this much finished work (plus what was in flight) is processed again.
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Most bytes of consumed records in flight in the whole process (buffered,
    /// in the plugin, or waiting for output acknowledgements), in MiB. When
    /// reached, partitions are paused until work finishes.
    #[serde(default = "default_max_in_flight_mib")]
    pub max_in_flight_mib: u64,
    /// Commit outputs and input offsets atomically in Kafka transactions, so that
    /// consumers reading the outputs with `isolation.level=read_committed` see each
    /// input's outputs exactly once, even across crashes. Needs broker support for
    /// transactions; inputs are then read with `read_committed` too.
    #[serde(default)]
    pub exactly_once: bool,
    /// The producer's `transactional.id` in exactly-once mode. Defaults to
    /// `weir-<group>-<instance_id>` with an `instance_id`, else
    /// `weir-<group>-<host>-<pid>`; the consumer group's generation fences zombies.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// This process's stable name in its consumer group (static membership,
    /// `group.instance.id`): a restart within the session timeout gets its
    /// partitions back without a rebalance, and in exactly-once mode the restarted
    /// producer (same transactional id) aborts its crashed predecessor's open
    /// transaction at once instead of after `transaction.timeout.ms`. Unique per
    /// process in a group.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Address of the read-only admin HTTP endpoint (`/metrics`, `/healthz`,
    /// `/readyz`, plugin versions), e.g. `"0.0.0.0:9898"` for Prometheus; port 0
    /// picks a free port (logged); `"off"` turns it off. It cannot change anything.
    #[serde(default = "default_admin_addr")]
    pub admin_addr: String,
    /// Address of the control endpoint (plugin reload and rollback), e.g.
    /// `"127.0.0.1:9899"`; port 0 picks a free port (logged); `"off"` turns it
    /// off. Off loopback it needs `admin_token`.
    #[serde(default = "default_control_addr")]
    pub control_addr: String,
    /// The token control requests must carry (`Authorization: Bearer TOKEN`),
    /// at least 16 characters. Better given as `WEIR_ADMIN_TOKEN` than in a file.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// A directory a reload with `?path=` may load plugin files from, besides
    /// each plugin's own directory.
    #[serde(default)]
    pub plugin_dir: Option<PathBuf>,
    /// How often librdkafka reports statistics, which refresh the per-partition
    /// lag, committed-offset and high-watermark metrics and broker readiness,
    /// e.g. `"5s"`.
    #[serde(default = "default_stats_interval", with = "humantime_serde")]
    pub stats_interval: Duration,
    /// Export a span per traced record (one that arrives with a `traceparent`)
    /// to this OTLP/HTTP endpoint, e.g. `"http://localhost:4318/v1/traces"`.
    /// Off when unset.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Extra librdkafka properties applied to both the consumer and the producer
    /// (e.g. `"security.protocol" = "SASL_SSL"`). They override Weir's own settings.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
    /// How a partition's records may be processed relative to each other:
    /// `partition` (default: in offset order, one plugin call at a time),
    /// `key` (each key in offset order, different keys side by side) or
    /// `unordered`.
    #[serde(default)]
    pub ordering: ProcessingOrder,
    /// Plugin calls in flight per partition under `key` and `unordered`
    /// (default: the first plugin's instances).
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Most records per partition taken in and not yet finished; past it the
    /// partition takes no more (and pauses). Bounds what a crash redelivers.
    #[serde(default = "default_max_uncommitted")]
    pub max_uncommitted: usize,
    /// A Confluent Schema Registry that decodes records for the plugins and
    /// encodes their outputs (`[schema_registry]`); none by default.
    #[serde(default)]
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// Where plugin state is kept on local disk (a cache of the changelog
    /// topics), under `<group>/<instance_id>/<plugin>/`. Defaults to `state`
    /// in the cache directory (`$XDG_CACHE_HOME/weir` or `~/.cache/weir`).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// More pipelines in this process (`[[pipeline]]` tables): each has its own
    /// input topics, output topic, plugins and consumer group, and shares every
    /// other setting with the top-level pipeline.
    #[serde(default)]
    pub pipeline: Vec<PipelineConfig>,
}

/// One more pipeline of the process.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Its consumer group; defaults to `<group>-<its first plugin's name>`.
    #[serde(default)]
    pub group: Option<String>,
    /// Its input topics.
    pub topics: Vec<String>,
    /// Its output topic.
    pub output_topic: String,
    /// Further topics its plugins may send outputs to (see the top-level key).
    #[serde(default)]
    pub allowed_output_topics: Vec<String>,
    /// Its (first) plugin.
    pub plugin: PluginConfig,
    /// Further plugins of its chain (no `[then.failure]`, as above).
    #[serde(default, deserialize_with = "chained_plugins")]
    pub then: Vec<PluginConfig>,
    /// Its schema registry settings; the top-level `[schema_registry]` if
    /// unset.
    #[serde(default)]
    pub schema_registry: Option<SchemaRegistryConfig>,
}

/// `[[then]]` tables: plugin settings like `[plugin]`'s, except that a chain
/// has one failure policy, so a `failure` table there is refused rather than
/// silently ignored.
fn chained_plugins<'de, D>(deserializer: D) -> Result<Vec<PluginConfig>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    let tables = Vec::<toml::Table>::deserialize(deserializer)?;
    tables
        .into_iter()
        .map(|table| {
            if table.contains_key("failure") {
                return Err(D::Error::custom(
                    "a [[then]] plugin has no `failure` table of its own: the chain shares \
                     [plugin.failure] (retries, policy, dead-letter topic); set them there",
                ));
            }
            table.try_into().map_err(D::Error::custom)
        })
        .collect()
}

/// How records of a partition may be processed relative to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProcessingOrder {
    /// In offset order, one plugin call at a time per partition.
    #[default]
    Partition,
    /// Records of one key in offset order; different keys side by side.
    Key,
    /// Side by side, in any order.
    Unordered,
}

/// Which end of a partition a group without committed offsets starts from.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// Process the whole retained history.
    #[default]
    Earliest,
    /// Process only records produced from now on.
    Latest,
}

impl OffsetReset {
    /// The librdkafka `auto.offset.reset` value.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// The WebAssembly component that processes records, and its sandbox.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Path to the plugin's `.wasm` component.
    #[serde(default)]
    pub path: PathBuf,
    /// Name used in logs; defaults to the file name without extension.
    #[serde(default)]
    pub name: Option<String>,
    /// Key/value configuration passed to the plugin's `init`. A value
    /// `${env:NAME}` is taken from the environment, `${file:PATH}` from a file
    /// (for tokens that should not sit in this file); never logged.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Number of plugin instances, i.e. how many partitions are processed in
    /// parallel. Defaults to the number of CPU cores.
    #[serde(default)]
    pub instances: Option<usize>,
    /// Wall-clock limit for one plugin call (a batch), e.g. `"5s"`. A call that
    /// runs longer is interrupted.
    #[serde(default = "default_plugin_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Linear memory cap per plugin instance, in MiB.
    #[serde(default = "default_max_memory_mib")]
    pub max_memory_mib: u64,
    /// Directory for compiled plugin artifacts, so restarts skip compilation.
    /// Defaults to `$XDG_CACHE_HOME/weir` or `~/.cache/weir`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Fuel (about one unit per wasm instruction) one plugin call may use, as a
    /// deterministic CPU bound next to `timeout`. Off by default: metering costs a
    /// few percent of plugin speed.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Most output records one input record may produce; more is a failure of
    /// that record (kind `output-limit`).
    #[serde(default = "default_max_outputs_per_record")]
    pub max_outputs_per_record: usize,
    /// Most output bytes (keys, values and headers) one input record may
    /// produce; more is a failure of that record (kind `output-limit`).
    #[serde(default = "default_max_output_bytes_per_record")]
    pub max_output_bytes_per_record: usize,
    /// What happens to a record the plugin cannot process.
    #[serde(default)]
    pub failure: FailureConfig,
    /// Load the plugin again, as a new version, when its file changes.
    #[serde(default = "default_true")]
    pub watch: bool,
    /// Add a `weir.plugin.version` header (the SHA-256 of the plugin file) to
    /// every output, saying which version produced it.
    #[serde(default)]
    pub version_header: bool,
    /// Hosts the plugin may send HTTP requests to (`wasi:http`), each
    /// `scheme://host[:port]`, a host may start with `*.` for its subdomains;
    /// e.g. `["https://api.example.com", "http://127.0.0.1:8080"]`. Empty (the
    /// default): no request is allowed.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Limits on the plugin's outbound HTTP.
    #[serde(default)]
    pub http: HttpConfig,
    /// Caps on the plugin's state (`[plugin.state]`), for a plugin that uses
    /// the state interface.
    #[serde(default)]
    pub state: StateConfig,
}

/// Caps on a plugin's state. A write over them is refused and fails its
/// record (kind `state`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Longest state key, in bytes.
    #[serde(default = "default_state_max_key_bytes")]
    pub max_key_bytes: usize,
    /// Longest state value, in bytes (it also goes to the changelog topic as
    /// one record, so it must stay below the broker's `message.max.bytes`).
    #[serde(default = "default_state_max_value_bytes")]
    pub max_value_bytes: usize,
    /// Most MiB of keys and values one input partition's state may hold.
    #[serde(default = "default_state_max_mib_per_partition")]
    pub max_mib_per_partition: u64,
}

/// Limits on a plugin's outbound HTTP requests. The plugin call's deadline
/// covers the time spent waiting on them too.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Longest wait for a connection, e.g. `"5s"` (a plugin may ask for less).
    #[serde(default = "default_http_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for a response's first byte (a plugin may ask for less).
    #[serde(default = "default_http_response_timeout", with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Longest wait between two bytes of a response (a plugin may ask for less).
    #[serde(default = "default_http_response_timeout", with = "humantime_serde")]
    pub between_bytes_timeout: Duration,
    /// Most requests the plugin (all its instances) has in flight at once;
    /// more wait for a free slot.
    #[serde(default = "default_http_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Most bytes of one response body; a longer body fails with
    /// `HttpResponseBodySize`.
    #[serde(default = "default_http_max_response_bytes")]
    pub max_response_bytes: u64,
    /// A PEM file of CA certificates trusted for `https` besides the Mozilla
    /// roots, e.g. an internal CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Request headers the plugin may not set, besides the hop-by-hop ones
    /// always refused (`connection`, `host`, `proxy-authorization`, ...), e.g.
    /// `["authorization", "cookie"]` when a gateway adds credentials.
    #[serde(default)]
    pub forbidden_headers: Vec<String>,
}

/// A Confluent Schema Registry around the plugins: records in its wire format
/// are decoded to JSON before the first plugin, and the last plugin's JSON
/// outputs are encoded with their subject's schema (Avro or JSON Schema).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// The registry's URL, e.g. `"http://registry:8081"`.
    pub url: String,
    /// `"user:password"` for HTTP basic auth (Confluent's
    /// `basic.auth.user.info`); `${env:NAME}` / `${file:PATH}` keep it out of
    /// the file.
    #[serde(default)]
    pub basic_auth: Option<String>,
    /// A bearer token instead (also `${env:...}` / `${file:...}`).
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// A PEM file of CA certificates trusted besides the Mozilla roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Longest wait for one answer of the registry.
    #[serde(default = "default_registry_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a subject's latest schema is used before asking again.
    #[serde(default = "default_latest_ttl", with = "humantime_serde")]
    pub latest_ttl: Duration,
    /// What is decoded to JSON before the plugins: `value` (default), `key`,
    /// `both` or `none`.
    #[serde(default = "default_schema_decode")]
    pub decode: SchemaParts,
    /// What of the outputs is encoded from JSON: `none` (default), `value`,
    /// `key` or `both`.
    #[serde(default)]
    pub encode: SchemaParts,
    /// How outputs' subjects are named: `topic` (`<topic>-value`, default),
    /// `record` (the record's full name) or `topic_record`.
    #[serde(default)]
    pub subject_name_strategy: SubjectNameStrategy,
    /// The record's full name for the `record` strategies, e.g.
    /// `"com.example.Order"` (else taken from `value_schema_file`).
    #[serde(default)]
    pub record_name: Option<String>,
    /// The subject version outputs are encoded with; the latest if unset.
    #[serde(default)]
    pub version: Option<u32>,
    /// Register `value_schema_file` / `key_schema_file` under the outputs'
    /// subjects and encode with them (off: Weir registers nothing).
    #[serde(default)]
    pub auto_register: bool,
    /// The outputs' value schema (`.avsc` for Avro, `.json` for JSON Schema),
    /// for `auto_register`.
    #[serde(default)]
    pub value_schema_file: Option<PathBuf>,
    /// The outputs' key schema, likewise.
    #[serde(default)]
    pub key_schema_file: Option<PathBuf>,
    /// Validate JSON Schema outputs against their schema before encoding.
    #[serde(default)]
    pub validate: bool,
    /// Most bytes of JSON one decoded key or value may take; a record that
    /// decodes to more fails (kind `schema`).
    #[serde(default = "default_max_decoded_bytes")]
    pub max_decoded_bytes: usize,
}

/// Which parts of a record the schema registry applies to.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SchemaParts {
    /// Neither.
    #[default]
    None,
    /// The value.
    Value,
    /// The key.
    Key,
    /// Key and value.
    Both,
}

/// How the subject of an output is named (Confluent's subject name strategies).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value` (TopicNameStrategy).
    #[default]
    Topic,
    /// The record's full name (RecordNameStrategy).
    Record,
    /// `<topic>-<record full name>` (TopicRecordNameStrategy).
    TopicRecord,
}

/// What happens to a record the plugin fails on: retries, then the policy.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FailureConfig {
    /// `dlq` (default): write the original record to the dead-letter topic, with
    /// headers saying why, and go on; `skip`: log it and go on; `stop`: stop the
    /// pipeline with an error (records before it are committed).
    #[serde(default)]
    pub policy: FailurePolicy,
    /// Dead-letter topic. Defaults to `<input topic>.dlq`; created at start-up
    /// (as many partitions as the input topic) if it does not exist.
    #[serde(default)]
    pub dlq_topic: Option<String>,
    /// Calls a record gets when the plugin marks its error retryable, counting
    /// the first; after the last, the policy applies.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the first retry, e.g. `"100ms"`; doubles on each retry.
    #[serde(default = "default_retry_backoff", with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Longest wait between retries, e.g. `"10s"`.
    #[serde(default = "default_retry_backoff_max", with = "humantime_serde")]
    pub retry_backoff_max: Duration,
}

/// What to do with a record the plugin could not process.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Send it to the dead-letter topic and go on.
    #[default]
    Dlq,
    /// Log it, count it and go on.
    Skip,
    /// Stop the pipeline with an error.
    Stop,
}

/// How records are grouped into plugin calls.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most records per plugin call.
    #[serde(default = "default_batch_max_records")]
    pub max_records: usize,
    /// How long to wait for a batch to fill before calling the plugin anyway, e.g. `"5ms"`.
    #[serde(default = "default_linger", with = "humantime_serde")]
    pub linger: Duration,
    /// Records buffered per partition between the consumer and the plugin (at
    /// least `max_records`); when full, the partition is paused until there is room.
    #[serde(default = "default_partition_buffer")]
    pub partition_buffer: usize,
}
