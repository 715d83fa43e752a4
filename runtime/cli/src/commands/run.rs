//! `weir run` and its flags. Flags override the config file, which overrides
//! defaults; every flag can also come from a `WEIR_*` variable.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use weir_host::config::{
    parse_key_value, ConfigError, FailurePolicy, OffsetReset, PluginConfig, ProcessingOrder,
    RunConfig,
};

/// Flags of `weir run`; each overrides the same setting from `--config`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML config file (see README); flags and env override its values.
    #[arg(long, env = "WEIR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Schema registry around the plugins.
    #[command(flatten)]
    pub schema: super::schema_flags::SchemaFlags,
    /// Kafka bootstrap servers, `host:port[,host:port...]`.
    #[arg(long, env = "WEIR_BROKERS")]
    pub brokers: Option<String>,
    /// Consumer group id.
    #[arg(long, env = "WEIR_GROUP")]
    pub group: Option<String>,
    /// Input topic; repeat for several (env: comma-separated).
    #[arg(long = "topic", env = "WEIR_TOPICS", value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Plugin component (`.wasm`).
    #[arg(long, env = "WEIR_PLUGIN")]
    pub plugin: Option<PathBuf>,
    /// A further plugin fed with the previous one's outputs (a chain); repeatable.
    /// Settings beyond the path go in the config file's `[[then]]` tables.
    #[arg(long = "then", value_name = "PLUGIN.wasm")]
    pub then: Vec<PathBuf>,
    /// Topic for the plugin's outputs.
    #[arg(long, env = "WEIR_OUTPUT_TOPIC")]
    pub output_topic: Option<String>,
    /// Plugin configuration `KEY=VALUE`, passed to the plugin's init; repeatable.
    #[arg(long = "plugin-config", value_name = "KEY=VALUE")]
    pub plugin_config: Vec<String>,
    /// A topic (or `*` pattern) plugins may send outputs to besides the output
    /// topic; repeatable. Outputs to any other topic fail their record.
    #[arg(long = "allowed-output-topic", value_name = "TOPIC")]
    pub allowed_output_topics: Vec<String>,
    /// librdkafka property `KEY=VALUE` for consumer and producer (TLS, SASL...); repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub librdkafka: Vec<String>,
    /// Where a new group starts reading.
    #[arg(long, env = "WEIR_AUTO_OFFSET_RESET")]
    pub auto_offset_reset: Option<OffsetReset>,
    /// Most records per plugin call.
    #[arg(long, env = "WEIR_BATCH_SIZE")]
    pub batch_size: Option<usize>,
    /// Records buffered per partition before it is paused.
    #[arg(long, env = "WEIR_PARTITION_BUFFER")]
    pub partition_buffer: Option<usize>,
    /// Longest wait for a batch to fill, e.g. `5ms`.
    #[arg(long, env = "WEIR_LINGER", value_parser = humantime::parse_duration)]
    pub linger: Option<Duration>,
    /// Plugin instances (partitions processed in parallel); default: CPU cores.
    #[arg(long, env = "WEIR_INSTANCES")]
    pub instances: Option<usize>,
    /// Time limit for one plugin call, e.g. `5s`.
    #[arg(long, env = "WEIR_PLUGIN_TIMEOUT", value_parser = humantime::parse_duration)]
    pub plugin_timeout: Option<Duration>,
    /// Memory cap per plugin instance, in MiB.
    #[arg(long, env = "WEIR_PLUGIN_MEMORY_MIB")]
    pub plugin_memory_mib: Option<u64>,
    /// Fuel (about one per wasm instruction) per plugin call; default: unmetered.
    #[arg(long, env = "WEIR_PLUGIN_FUEL")]
    pub plugin_fuel: Option<u64>,
    /// Most outputs one input record may produce.
    #[arg(long, env = "WEIR_MAX_OUTPUTS_PER_RECORD")]
    pub max_outputs_per_record: Option<usize>,
    /// What to do with a record the plugin fails on: dead-letter it, skip it, or stop.
    #[arg(long, env = "WEIR_ON_FAILURE")]
    pub on_failure: Option<FailurePolicy>,
    /// Dead-letter topic (default: `<input topic>.dlq`, created if missing).
    #[arg(long, env = "WEIR_DLQ_TOPIC")]
    pub dlq_topic: Option<String>,
    /// Calls per record when the plugin says its error is retryable (first included).
    #[arg(long, env = "WEIR_MAX_ATTEMPTS")]
    pub max_attempts: Option<u32>,
    /// First wait before a retry, doubling each time, e.g. `100ms`.
    #[arg(long, env = "WEIR_RETRY_BACKOFF", value_parser = humantime::parse_duration)]
    pub retry_backoff: Option<Duration>,
    /// Do not reload the plugin when its file changes (SIGHUP and the admin endpoint still do).
    #[arg(long, env = "WEIR_NO_WATCH")]
    pub no_watch: bool,
    /// A host the (first) plugin may send HTTP requests to, `scheme://host[:port]`
    /// (`*.` before a domain for its subdomains); repeat for more. None by
    /// default; `[[then]]` plugins get theirs in the config file.
    #[arg(
        long = "allowed-outbound-host",
        value_name = "URL",
        env = "WEIR_ALLOWED_OUTBOUND_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_outbound_hosts: Vec<String>,
    /// A PEM file of CA certificates the (first) plugin's `https` requests trust
    /// besides the Mozilla roots (an internal CA).
    #[arg(long, env = "WEIR_HTTP_CA_FILE")]
    pub http_ca_file: Option<PathBuf>,
    /// A request header the (first) plugin may not set, e.g. `authorization`
    /// when a gateway adds credentials; repeat for more. Hop-by-hop headers
    /// are always refused.
    #[arg(
        long = "http-forbidden-header",
        value_name = "NAME",
        env = "WEIR_HTTP_FORBIDDEN_HEADERS",
        value_delimiter = ','
    )]
    pub http_forbidden_headers: Vec<String>,
    /// Add a `weir.plugin.version` header to every output.
    #[arg(long, env = "WEIR_VERSION_HEADER")]
    pub version_header: bool,
    /// Read-only admin endpoint address (`IP:PORT`, port 0 for any free port, or
    /// `off`): `/metrics`, `/healthz`, `/readyz`, plugin versions.
    #[arg(long, env = "WEIR_ADMIN_ADDR")]
    pub admin_addr: Option<String>,
    /// Control endpoint address (plugin reload and rollback): `IP:PORT`, port 0
    /// for any free port, or `off`. Off loopback it needs an admin token.
    #[arg(long, env = "WEIR_CONTROL_ADDR")]
    pub control_addr: Option<String>,
    /// Token that control requests must carry (`Authorization: Bearer TOKEN`).
    #[arg(long, env = "WEIR_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// A directory a reload with `?path=` may load plugin files from, besides
    /// each plugin's own directory.
    #[arg(long, env = "WEIR_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// How often per-partition lag and broker state are refreshed, e.g. `5s`.
    #[arg(long, env = "WEIR_STATS_INTERVAL", value_parser = humantime::parse_duration)]
    pub stats_interval: Option<Duration>,
    /// Export a span per traced record to this OTLP/HTTP endpoint, e.g.
    /// `http://localhost:4318/v1/traces` (off by default).
    #[arg(long, env = "WEIR_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Directory for compiled plugin artifacts.
    #[arg(long, env = "WEIR_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Where plugin state is kept on local disk (default: `state` in the
    /// cache directory).
    #[arg(long, env = "WEIR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Longest wait for in-flight work on shutdown or revocation, e.g. `30s`.
    #[arg(long, env = "WEIR_DRAIN_TIMEOUT", value_parser = humantime::parse_duration)]
    pub drain_timeout: Option<Duration>,
    /// How often finished offsets are committed, e.g. `1s`.
    #[arg(long, env = "WEIR_COMMIT_INTERVAL", value_parser = humantime::parse_duration)]
    pub commit_interval: Option<Duration>,
    /// Commit outputs and offsets atomically in Kafka transactions.
    #[arg(long, env = "WEIR_EXACTLY_ONCE")]
    pub exactly_once: bool,
    /// `transactional.id` for exactly-once mode (default: derived from group and
    /// instance id, else from group, host and pid).
    #[arg(long, env = "WEIR_TRANSACTIONAL_ID")]
    pub transactional_id: Option<String>,
    /// This process's stable name in its group (static membership): a restart
    /// keeps its partitions, and in exactly-once mode aborts its crashed
    /// predecessor's transaction at once. Unique per process.
    #[arg(long, env = "WEIR_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Most MiB of consumed records in flight before partitions pause.
    #[arg(long, env = "WEIR_MAX_IN_FLIGHT_MIB")]
    pub max_in_flight_mib: Option<u64>,
    /// How a partition's records may be processed: `partition` (in offset
    /// order, one call at a time), `key` (each key in order, keys side by
    /// side) or `unordered`.
    #[arg(long, value_enum, env = "WEIR_ORDERING")]
    pub ordering: Option<ProcessingOrder>,
    /// Plugin calls in flight per partition under `key` / `unordered`
    /// (default: the plugin's instances).
    #[arg(long, env = "WEIR_MAX_CONCURRENCY")]
    pub max_concurrency: Option<usize>,
    /// Most records per partition taken in and not yet finished.
    #[arg(long, env = "WEIR_MAX_UNCOMMITTED")]
    pub max_uncommitted: Option<usize>,
}

impl RunArgs {
    /// Layer these flags over the config file (if any) and the defaults, then validate.
    pub fn into_config(self) -> Result<RunConfig, ConfigError> {
        let mut c = match &self.config {
            Some(path) => RunConfig::from_file(path)?,
            None => RunConfig::default(),
        };
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *slot = v;
            }
        }
        c.schema_registry = self.schema.apply(c.schema_registry.take())?;
        set(&mut c.brokers, self.brokers);
        set(&mut c.group, self.group);
        if !self.topics.is_empty() {
            c.topics = self.topics;
        }
        set(&mut c.output_topic, self.output_topic);
        c.allowed_output_topics
            .extend(self.allowed_output_topics.iter().cloned());
        set(&mut c.plugin.path, self.plugin);
        for path in self.then {
            c.then.push(PluginConfig {
                path,
                ..PluginConfig::default()
            });
        }
        set(&mut c.auto_offset_reset, self.auto_offset_reset);
        set(&mut c.batch.max_records, self.batch_size);
        set(&mut c.batch.linger, self.linger);
        match self.partition_buffer {
            Some(records) => c.batch.partition_buffer = records,
            // Unless asked otherwise, room for at least one full batch.
            None => c.batch.partition_buffer = c.batch.partition_buffer.max(c.batch.max_records),
        }
        // Sandbox flags apply to every plugin of the chain.
        for plugin in std::iter::once(&mut c.plugin).chain(c.then.iter_mut()) {
            set(&mut plugin.timeout, self.plugin_timeout);
            set(&mut plugin.max_memory_mib, self.plugin_memory_mib);
            if self.plugin_fuel.is_some() {
                plugin.fuel = self.plugin_fuel;
            }
            set(
                &mut plugin.max_outputs_per_record,
                self.max_outputs_per_record,
            );
            plugin.watch &= !self.no_watch;
            if self.instances.is_some() {
                plugin.instances = self.instances;
            }
            if self.cache_dir.is_some() {
                plugin.cache_dir.clone_from(&self.cache_dir);
            }
        }
        if self.state_dir.is_some() {
            c.state_dir = self.state_dir;
        }
        set(&mut c.plugin.failure.policy, self.on_failure);
        if self.dlq_topic.is_some() {
            c.plugin.failure.dlq_topic = self.dlq_topic;
        }
        set(&mut c.plugin.failure.max_attempts, self.max_attempts);
        if let Some(backoff) = self.retry_backoff {
            c.plugin.failure.retry_backoff = backoff;
            c.plugin.failure.retry_backoff_max = c.plugin.failure.retry_backoff_max.max(backoff);
        }
        if self.drain_timeout.is_some() {
            c.drain_timeout = self.drain_timeout;
        }
        set(&mut c.commit_interval, self.commit_interval);
        set(&mut c.max_in_flight_mib, self.max_in_flight_mib);
        set(&mut c.ordering, self.ordering);
        if self.max_concurrency.is_some() {
            c.max_concurrency = self.max_concurrency;
        }
        set(&mut c.max_uncommitted, self.max_uncommitted);
        c.exactly_once |= self.exactly_once;
        c.plugin.version_header |= self.version_header;
        c.plugin
            .allowed_outbound_hosts
            .extend(self.allowed_outbound_hosts.iter().cloned());
        if self.http_ca_file.is_some() {
            c.plugin.http.ca_file.clone_from(&self.http_ca_file);
        }
        c.plugin
            .http
            .forbidden_headers
            .extend(self.http_forbidden_headers.iter().cloned());
        set(&mut c.admin_addr, self.admin_addr);
        set(&mut c.control_addr, self.control_addr);
        if self.admin_token.is_some() {
            c.admin_token = self.admin_token;
        }
        if self.plugin_dir.is_some() {
            c.plugin_dir = self.plugin_dir;
        }
        set(&mut c.stats_interval, self.stats_interval);
        if self.otlp_endpoint.is_some() {
            c.otlp_endpoint = self.otlp_endpoint;
        }
        if self.transactional_id.is_some() {
            c.transactional_id = self.transactional_id;
        }
        if self.instance_id.is_some() {
            c.instance_id = self.instance_id;
        }
        add_key_values(&mut c, &self.plugin_config, &self.librdkafka)?;
        c.validate()?;
        Ok(c)
    }
}

/// Add the `--plugin-config` and `-X` `KEY=VALUE` arguments to `c`.
fn add_key_values(
    c: &mut RunConfig,
    plugin_config: &[String],
    librdkafka: &[String],
) -> Result<(), ConfigError> {
    for arg in plugin_config {
        let (k, v) = parse_key_value("--plugin-config", arg)?;
        c.plugin.config.insert(k, v);
    }
    for arg in librdkafka {
        let (k, v) = parse_key_value("-X", arg)?;
        c.librdkafka.insert(k, v);
    }
    Ok(())
}

/// How long leftover background tasks get once `run` has returned.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

/// Run every pipeline until a signal or a failure.
pub fn execute(args: RunArgs) -> ExitCode {
    let settings = match args.into_config().and_then(|c| c.settings()) {
        Ok(settings) => settings,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let Some(runtime) = super::async_runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let shutdown = weir_host::shutdown::on_signal();
        weir_host::run::run(settings, shutdown).await
    });
    // A plugin call stuck past the drain deadline must not keep the process alive.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    super::exit_status(result, |()| {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> RunArgs {
        let mut argv = vec!["weir", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(a) => *a,
            other => panic!("not a run command: {other:?}"),
        }
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("weir-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("weir.toml");
        std::fs::write(
            &file,
            "brokers = \"file:9092\"\ngroup = \"g\"\ntopics = [\"a\"]\noutput_topic = \"o\"\n[plugin]\npath = \"p.wasm\"\nconfig = { x = \"1\" }\n",
        )
        .unwrap();
        let c = parse(&[
            "--config",
            file.to_str().unwrap(),
            "--brokers",
            "flag:9092",
            "--topic",
            "b",
            "--topic",
            "c",
            "--plugin-config",
            "y=2",
            "-X",
            "security.protocol=SSL",
            "--linger",
            "20ms",
        ])
        .into_config()
        .unwrap();
        assert_eq!(c.brokers, "flag:9092");
        assert_eq!(c.group, "g");
        assert_eq!(c.topics, ["b", "c"]);
        assert_eq!(c.plugin.config.len(), 2);
        assert_eq!(c.librdkafka["security.protocol"], "SSL");
        assert_eq!(c.batch.linger, Duration::from_millis(20));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sandbox_flags_apply_to_every_plugin_of_the_chain() {
        let c = parse(&[
            "--brokers=b",
            "--group=g",
            "--topic=t",
            "--output-topic=o",
            "--plugin=p.wasm",
            "--then=q.wasm",
            "--plugin-memory-mib=32",
            "--plugin-fuel=1000",
            "--plugin-timeout=2s",
            "--no-watch",
        ])
        .into_config()
        .unwrap();
        for plugin in std::iter::once(&c.plugin).chain(&c.then) {
            assert_eq!(plugin.max_memory_mib, 32);
            assert_eq!(plugin.fuel, Some(1000));
            assert_eq!(plugin.timeout, Duration::from_secs(2));
            assert!(!plugin.watch);
        }
    }

    #[test]
    fn a_bad_plugin_config_argument_is_refused() {
        let err = parse(&[
            "--brokers=b",
            "--group=g",
            "--topic=t",
            "--output-topic=o",
            "--plugin=p.wasm",
            "--plugin-config=novalue",
        ])
        .into_config()
        .unwrap_err();
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
    }
}
