//! Run configuration: defaults, then a TOML file, then environment variables and
//! flags (see `cli`). Every field's doc comment is user documentation.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
    /// limits and reloads; the chain shares `[plugin.failure]`.
    #[serde(default)]
    pub then: Vec<PluginConfig>,
    /// How records are grouped into plugin calls.
    #[serde(default)]
    pub batch: BatchConfig,
    /// How long finishing in-flight work may take, on shutdown and before a
    /// revoked partition is handed over, e.g. `"30s"`. Must stay below the
    /// consumer's `session.timeout.ms`. On shutdown, running out of it exits non-zero.
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
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
    /// Address of the admin HTTP endpoint (plugin versions, reload, rollback), e.g.
    /// `"127.0.0.1:9898"`; port 0 picks a free port (logged); `"off"` turns it off.
    /// Anyone who can reach it can reload plugins: keep it on localhost or a
    /// private network.
    #[serde(default = "default_admin_addr")]
    pub admin_addr: String,
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
    /// Its (first) plugin.
    pub plugin: PluginConfig,
    /// Further plugins of its chain.
    #[serde(default)]
    pub then: Vec<PluginConfig>,
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
    /// Key/value configuration passed to the plugin's `init`.
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

/// The transaction timeout in exactly-once mode unless `transaction.timeout.ms`
/// is set (librdkafka's own default is 60 s). After a crash without an
/// `instance_id`, the crashed process's open transaction holds back
/// `read_committed` readers of its output partitions until the broker aborts it
/// after this long; Kafka Streams uses the same 10 s for the same reason.
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_commit_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_max_in_flight_mib() -> u64 {
    64
}
fn default_plugin_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_memory_mib() -> u64 {
    256
}
fn default_true() -> bool {
    true
}
fn default_stats_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_admin_addr() -> String {
    "127.0.0.1:9898".to_string()
}
fn default_max_outputs_per_record() -> usize {
    10_000
}
fn default_max_output_bytes_per_record() -> usize {
    16 << 20
}
fn default_max_attempts() -> u32 {
    3
}
fn default_retry_backoff() -> Duration {
    Duration::from_millis(100)
}
fn default_retry_backoff_max() -> Duration {
    Duration::from_secs(10)
}
fn default_batch_max_records() -> usize {
    500
}
fn default_linger() -> Duration {
    Duration::from_millis(5)
}
fn default_partition_buffer() -> usize {
    // Each time a partition pauses, librdkafka drops what it prefetched for it
    // and fetches again; a deep buffer keeps that rare (the byte budget, not
    // this, bounds memory).
    10_000
}

impl Default for RunConfig {
    fn default() -> Self {
        toml::from_str("").expect("the empty config deserializes to the defaults")
    }
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            name: None,
            config: BTreeMap::new(),
            instances: None,
            timeout: default_plugin_timeout(),
            max_memory_mib: default_max_memory_mib(),
            cache_dir: None,
            fuel: None,
            max_outputs_per_record: default_max_outputs_per_record(),
            max_output_bytes_per_record: default_max_output_bytes_per_record(),
            failure: FailureConfig::default(),
            watch: true,
            version_header: false,
        }
    }
}

impl Default for FailureConfig {
    fn default() -> Self {
        Self {
            policy: FailurePolicy::default(),
            dlq_topic: None,
            max_attempts: default_max_attempts(),
            retry_backoff: default_retry_backoff(),
            retry_backoff_max: default_retry_backoff_max(),
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: default_batch_max_records(),
            linger: default_linger(),
            partition_buffer: default_partition_buffer(),
        }
    }
}

/// A configuration problem the user has to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for Weir.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, with line and column.
        message: String,
    },
    /// A required setting is absent.
    #[error("missing {what}: pass {flag} (or set {env}, or `{key}` in the config file)")]
    Missing {
        /// What is missing.
        what: &'static str,
        /// The flag that sets it.
        flag: &'static str,
        /// The environment variable that sets it.
        env: &'static str,
        /// The config file key that sets it.
        key: &'static str,
    },
    /// A setting has a value outside its range.
    #[error("invalid {key}: {reason}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// Why the value is refused.
        reason: String,
    },
    /// A `key=value` argument lacks the `=`.
    #[error("invalid {flag} argument `{arg}`: expected KEY=VALUE")]
    KeyValue {
        /// The flag.
        flag: &'static str,
        /// What was given.
        arg: String,
    },
}

impl RunConfig {
    /// Read a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })
    }

    /// Every pipeline of the process as a configuration of its own: the
    /// top-level one first, then each `[[pipeline]]`.
    pub fn pipelines(&self) -> Vec<RunConfig> {
        let top = RunConfig {
            pipeline: Vec::new(),
            ..self.clone()
        };
        let mut all = vec![top.clone()];
        for (n, extra) in self.pipeline.iter().enumerate() {
            all.push(RunConfig {
                group: extra
                    .group
                    .clone()
                    .unwrap_or_else(|| format!("{}-{}", self.group, extra.plugin.display_name())),
                topics: extra.topics.clone(),
                output_topic: extra.output_topic.clone(),
                plugin: extra.plugin.clone(),
                then: extra.then.clone(),
                // Each pipeline's transactional producer needs an id of its own.
                transactional_id: self
                    .transactional_id
                    .as_ref()
                    .map(|id| format!("{id}-{}", n + 1)),
                ..top.clone()
            });
        }
        all
    }

    /// Check required settings and cross-field rules, of every pipeline.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let pipelines = self.pipelines();
        let mut groups = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for pipeline in &pipelines {
            pipeline.validate_pipeline()?;
            if !groups.insert(pipeline.group.clone()) {
                return Err(ConfigError::Invalid {
                    key: "pipeline.group",
                    reason: format!(
                        "two pipelines use consumer group `{}`; give each its own",
                        pipeline.group
                    ),
                });
            }
            for plugin in pipeline.plugins() {
                if !names.insert(plugin.display_name()) {
                    return Err(ConfigError::Invalid {
                        key: "plugin.name",
                        reason: format!(
                            "two plugins are named `{}`; give each a `name` of its own",
                            plugin.display_name()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Check one pipeline's settings.
    fn validate_pipeline(&self) -> Result<(), ConfigError> {
        let missing = |what, flag, env, key| ConfigError::Missing {
            what,
            flag,
            env,
            key,
        };
        if self.brokers.trim().is_empty() {
            return Err(missing("brokers", "--brokers", "WEIR_BROKERS", "brokers"));
        }
        if self.group.trim().is_empty() {
            return Err(missing("consumer group", "--group", "WEIR_GROUP", "group"));
        }
        if self.topics.is_empty() {
            return Err(missing("input topic", "--topic", "WEIR_TOPICS", "topics"));
        }
        if self.output_topic.trim().is_empty() {
            return Err(missing(
                "output topic",
                "--output-topic",
                "WEIR_OUTPUT_TOPIC",
                "output_topic",
            ));
        }
        if self.plugin.path.as_os_str().is_empty() {
            return Err(missing("plugin", "--plugin", "WEIR_PLUGIN", "plugin.path"));
        }
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_string(),
        };
        if self.batch.max_records == 0 {
            return Err(invalid("batch.max_records", "must be at least 1"));
        }
        if self.batch.partition_buffer < self.batch.max_records {
            return Err(invalid(
                "batch.partition_buffer",
                "must be at least batch.max_records",
            ));
        }
        for stage in self.plugins() {
            stage.validate()?;
        }
        let failure = &self.plugin.failure;
        if failure.max_attempts == 0 {
            return Err(invalid(
                "plugin.failure.max_attempts",
                "must be at least 1 (the first call counts)",
            ));
        }
        if failure.retry_backoff_max < failure.retry_backoff {
            return Err(invalid(
                "plugin.failure.retry_backoff_max",
                "must be at least plugin.failure.retry_backoff",
            ));
        }
        if failure.policy == FailurePolicy::Dlq {
            for topic in &self.topics {
                let dlq = self.dead_letter_topic(topic);
                if self.topics.contains(&dlq) || dlq == self.output_topic {
                    return Err(ConfigError::Invalid {
                        key: "plugin.failure.dlq_topic",
                        reason: format!(
                            "`{dlq}` is also an input or the output topic; name a topic of its own"
                        ),
                    });
                }
            }
        }
        self.admin_socket()?;
        if self.stats_interval < Duration::from_millis(100) {
            return Err(invalid(
                "stats_interval",
                "must be at least 100ms (librdkafka's statistics cost CPU on every report)",
            ));
        }
        if self.commit_interval.is_zero() {
            return Err(invalid("commit_interval", "must be above zero"));
        }
        if self.max_in_flight_mib == 0 {
            return Err(invalid("max_in_flight_mib", "must be at least 1"));
        }
        if self.librdkafka.contains_key("statistics.interval.ms") {
            return Err(invalid(
                "librdkafka.statistics.interval.ms",
                "Weir sets it from stats_interval (the lag metrics and readiness need it); set stats_interval instead",
            ));
        }
        if self.librdkafka.contains_key("group.instance.id") {
            return Err(invalid(
                "librdkafka.group.instance.id",
                "set instance_id (--instance-id) instead; Weir also derives the transactional id from it",
            ));
        }
        if self.exactly_once {
            let transaction = self.transaction_timeout()?;
            // A transaction stays open up to about two commit intervals (the
            // interval, then a drain's first commit) plus the commit itself.
            if self.commit_interval * 3 > transaction {
                return Err(ConfigError::Invalid {
                    key: "commit_interval",
                    reason: format!(
                        "{:?} must be at most a third of transaction.timeout.ms ({transaction:?}) in exactly-once mode, or the broker may abort transactions before they commit",
                        self.commit_interval
                    ),
                });
            }
            for key in ["message.timeout.ms", "delivery.timeout.ms"] {
                if let Some(timeout) = self.librdkafka_millis(key)? {
                    if timeout > transaction {
                        return Err(ConfigError::Invalid {
                            key,
                            reason: format!(
                                "{timeout:?} must not exceed transaction.timeout.ms ({transaction:?}) in exactly-once mode (librdkafka refuses it); raise -X transaction.timeout.ms too"
                            ),
                        });
                    }
                }
            }
        }
        let session = self.session_timeout()?;
        if self.drain_timeout >= session {
            return Err(ConfigError::Invalid {
                key: "drain_timeout",
                reason: format!(
                    "{:?} must be shorter than the session timeout ({session:?}), or the group evicts this member while it drains",
                    self.drain_timeout
                ),
            });
        }
        Ok(())
    }

    /// The transactional id to use in exactly-once mode.
    pub fn transactional_id(&self) -> String {
        match (&self.transactional_id, &self.instance_id) {
            (Some(id), _) => id.clone(),
            (None, Some(instance)) => format!("weir-{}-{instance}", self.group),
            (None, None) => {
                let host = std::fs::read_to_string("/etc/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|_| "host".to_string());
                format!("weir-{}-{host}-{}", self.group, std::process::id())
            }
        }
    }

    /// How long the broker lets a transaction stay open before aborting it: the
    /// librdkafka property if set, else [`DEFAULT_TRANSACTION_TIMEOUT`].
    pub fn transaction_timeout(&self) -> Result<Duration, ConfigError> {
        self.librdkafka_millis("transaction.timeout.ms")
            .map(|ms| ms.unwrap_or(DEFAULT_TRANSACTION_TIMEOUT))
    }

    /// The in-flight byte budget.
    pub fn max_in_flight_bytes(&self) -> usize {
        usize::try_from(self.max_in_flight_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }

    /// The consumer session timeout in force: the librdkafka property if set,
    /// else librdkafka's default.
    fn session_timeout(&self) -> Result<Duration, ConfigError> {
        self.librdkafka_millis("session.timeout.ms")
            .map(|ms| ms.unwrap_or(Duration::from_millis(45_000)))
    }

    /// A librdkafka passthrough property given in milliseconds, if set.
    fn librdkafka_millis(&self, key: &'static str) -> Result<Option<Duration>, ConfigError> {
        self.librdkafka
            .get(key)
            .map(|ms| {
                ms.parse()
                    .map(Duration::from_millis)
                    .map_err(|_| ConfigError::Invalid {
                        key,
                        reason: format!("`{ms}` is not a number of milliseconds"),
                    })
            })
            .transpose()
    }

    /// The admin endpoint's address, `None` when turned off.
    pub fn admin_socket(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        match self.admin_addr.trim() {
            "off" | "" => Ok(None),
            addr => addr.parse().map(Some).map_err(|_| ConfigError::Invalid {
                key: "admin_addr",
                reason: format!(
                    "`{addr}` is not an IP:port address (e.g. 127.0.0.1:9898) or `off`"
                ),
            }),
        }
    }

    /// Where records from `source` that the plugin failed on are written under the
    /// `dlq` policy.
    pub fn dead_letter_topic(&self, source: &str) -> String {
        match &self.plugin.failure.dlq_topic {
            Some(topic) => topic.clone(),
            None => format!("{source}.dlq"),
        }
    }

    /// Every plugin, in the order records go through them.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginConfig> {
        std::iter::once(&self.plugin).chain(&self.then)
    }
}

impl PluginConfig {
    /// The plugin's display name: the configured one, or the file stem.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "plugin".to_string())
        })
    }

    /// Check this plugin's own settings.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: format!("{reason} (plugin `{}`)", self.display_name()),
        };
        if self.path.as_os_str().is_empty() {
            return Err(invalid("then.path", "every plugin needs a path"));
        }
        if self.instances == Some(0) {
            return Err(invalid("plugin.instances", "must be at least 1"));
        }
        if self.max_memory_mib == 0 {
            return Err(invalid("plugin.max_memory_mib", "must be at least 1"));
        }
        if self.timeout.is_zero() {
            return Err(invalid("plugin.timeout", "must be above zero"));
        }
        if self.fuel == Some(0) {
            return Err(invalid("plugin.fuel", "must be at least 1 (or unset)"));
        }
        if self.max_outputs_per_record == 0 || self.max_output_bytes_per_record == 0 {
            return Err(invalid(
                "plugin.max_outputs_per_record",
                "limits on outputs per record must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Split a `KEY=VALUE` argument.
pub fn parse_key_value(flag: &'static str, arg: &str) -> Result<(String, String), ConfigError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(ConfigError::KeyValue {
            flag,
            arg: arg.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sane_and_a_full_file_parses() {
        let d = RunConfig::default();
        assert_eq!(d.batch.max_records, 500);
        assert_eq!(d.plugin.timeout, Duration::from_secs(5));
        assert_eq!(d.auto_offset_reset, OffsetReset::Earliest);

        let c: RunConfig = toml::from_str(
            r#"
            brokers = "k:9092"
            group = "g"
            topics = ["a", "b"]
            output_topic = "out"
            auto_offset_reset = "latest"
            drain_timeout = "10s"
            commit_interval = "200ms"
            max_in_flight_mib = 16
            [plugin]
            path = "x.wasm"
            timeout = "250ms"
            config = { field = "country" }
            [plugin.failure]
            policy = "skip"
            max_attempts = 5
            retry_backoff = "10ms"
            [batch]
            linger = "1ms"
            [librdkafka]
            "security.protocol" = "SSL"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.plugin.timeout, Duration::from_millis(250));
        assert_eq!(c.plugin.config["field"], "country");
        assert_eq!(c.librdkafka["security.protocol"], "SSL");
        assert_eq!(c.plugin.display_name(), "x");
        assert_eq!(c.commit_interval, Duration::from_millis(200));
        assert_eq!(c.max_in_flight_bytes(), 16 << 20);
        assert_eq!(c.plugin.failure.policy, FailurePolicy::Skip);
        assert_eq!(c.plugin.failure.max_attempts, 5);
        assert_eq!(c.plugin.failure.retry_backoff, Duration::from_millis(10));
        assert_eq!(c.dead_letter_topic("a"), "a.dlq");
    }

    #[test]
    fn a_dead_letter_topic_must_not_be_an_input_or_the_output() {
        let mut c: RunConfig = toml::from_str(
            "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\n[plugin]\npath = \"p.wasm\"\n[plugin.failure]\ndlq_topic = \"o\"",
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("dlq_topic"), "{err}");
        c.plugin.failure.dlq_topic = None;
        c.topics.push("t.dlq".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("`t.dlq`"), "{err}");
        c.plugin.failure.policy = FailurePolicy::Skip;
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_missing_settings_are_reported() {
        assert!(toml::from_str::<RunConfig>("brokerz = 1").is_err());
        let err = RunConfig::default().validate().unwrap_err().to_string();
        assert!(
            err.contains("--brokers") && err.contains("WEIR_BROKERS"),
            "{err}"
        );
    }

    #[test]
    fn the_drain_deadline_must_be_below_the_session_timeout() {
        let mut c: RunConfig = toml::from_str(
            "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\n[plugin]\npath = \"p.wasm\"",
        )
        .unwrap();
        c.validate().unwrap();
        c.librdkafka
            .insert("session.timeout.ms".into(), "6000".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("drain_timeout"), "{err}");
        c.drain_timeout = Duration::from_secs(5);
        c.validate().unwrap();
    }

    #[test]
    fn exactly_once_commits_within_the_transaction_timeout() {
        let mut c: RunConfig = toml::from_str(
            "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\nexactly_once = true\ncommit_interval = \"10s\"\n[plugin]\npath = \"p.wasm\"",
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("commit_interval") && err.contains("a third of transaction.timeout.ms"),
            "{err}"
        );
        c.librdkafka
            .insert("transaction.timeout.ms".into(), "30000".into());
        c.validate().unwrap();
        assert_eq!(c.transaction_timeout().unwrap(), Duration::from_secs(30));
        c.librdkafka
            .insert("message.timeout.ms".into(), "60000".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("message.timeout.ms"), "{err}");
    }

    #[test]
    fn the_instance_id_names_the_transactional_id() {
        let mut c: RunConfig = toml::from_str(
            "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\ninstance_id = \"node-1\"\n[plugin]\npath = \"p.wasm\"",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.transactional_id(), "weir-g-node-1");
        c.transactional_id = Some("mine".into());
        assert_eq!(c.transactional_id(), "mine");
        c.librdkafka
            .insert("group.instance.id".into(), "node-1".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("--instance-id"), "{err}");
    }

    #[test]
    fn a_chain_needs_distinct_names_and_valid_stages() {
        let mut c: RunConfig = toml::from_str(
            "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\n[plugin]\npath = \"a/p.wasm\"\n[[then]]\npath = \"b/q.wasm\"\ntimeout = \"1s\"",
        )
        .unwrap();
        c.validate().unwrap();
        let names: Vec<String> = c.plugins().map(PluginConfig::display_name).collect();
        assert_eq!(names, ["p", "q"]);
        assert_eq!(c.then[0].timeout, Duration::from_secs(1));
        c.then[0].path = "c/p.wasm".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("named `p`"), "{err}");
        c.then[0].name = Some("second".into());
        c.then[0].instances = Some(0);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("plugin `second`"), "{err}");
    }

    #[test]
    fn more_pipelines_share_the_settings_and_need_their_own_group_and_names() {
        let c: RunConfig = toml::from_str(
            r#"
            brokers = "b"
            group = "g"
            topics = ["a"]
            output_topic = "a-out"
            commit_interval = "2s"
            [plugin]
            path = "up.wasm"
            [[pipeline]]
            topics = ["b"]
            output_topic = "b-out"
            [pipeline.plugin]
            path = "filter.wasm"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        let all = c.pipelines();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].group, "g-filter");
        assert_eq!(all[1].topics, ["b"]);
        assert_eq!(all[1].commit_interval, Duration::from_secs(2));
        let mut same_group = c.clone();
        same_group.pipeline[0].group = Some("g".into());
        assert!(same_group
            .validate()
            .unwrap_err()
            .to_string()
            .contains("consumer group `g`"));
        let mut same_name = c.clone();
        same_name.pipeline[0].plugin.path = "other/up.wasm".into();
        assert!(same_name
            .validate()
            .unwrap_err()
            .to_string()
            .contains("named `up`"));
    }

    #[test]
    fn key_values_need_an_equals_sign() {
        assert_eq!(
            parse_key_value("-X", "a.b=c=d").unwrap(),
            ("a.b".to_string(), "c=d".to_string())
        );
        assert!(parse_key_value("-X", "novalue").is_err());
    }
}
