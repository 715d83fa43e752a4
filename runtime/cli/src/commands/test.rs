//! `weir test`: run a plugin over a JSON-lines file without Kafka; results on
//! stdout, the summary and problems on stderr.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use weir_host::config::{parse_key_value, ConfigError, PluginConfig};

/// Flags of `weir test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Plugin component (`.wasm`).
    #[arg(long)]
    pub plugin: PathBuf,
    /// JSON-lines file of input records (`{"key": .., "value": .., "headers": [[..]]}`).
    #[arg(long)]
    pub input: PathBuf,
    /// Plugin configuration `KEY=VALUE`, passed to the plugin's init; repeatable.
    #[arg(long = "plugin-config", value_name = "KEY=VALUE")]
    pub plugin_config: Vec<String>,
    /// Time limit for one plugin call, e.g. `5s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub plugin_timeout: Option<Duration>,
    /// Memory cap of the plugin, in MiB.
    #[arg(long)]
    pub plugin_memory_mib: Option<u64>,
    /// Directory for compiled plugin artifacts.
    #[arg(long, env = "WEIR_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// A host the plugin may send HTTP requests to, `scheme://host[:port]`
    /// (`*.` before a domain for its subdomains); repeat for more. None by default.
    #[arg(long = "allowed-outbound-host", value_name = "URL")]
    pub allowed_outbound_hosts: Vec<String>,
    /// A PEM file of CA certificates the plugin's `https` requests trust besides
    /// the Mozilla roots (an internal CA).
    #[arg(long)]
    pub http_ca_file: Option<PathBuf>,
    /// A request header the plugin may not set (besides the hop-by-hop ones);
    /// repeat for more.
    #[arg(long = "http-forbidden-header", value_name = "NAME")]
    pub http_forbidden_headers: Vec<String>,
    /// Schema registry around the plugin (`--schema-registry URL`).
    #[command(flatten)]
    pub schema: super::schema_flags::SchemaFlags,
    /// The topic outputs without one of their own go to (names the subject
    /// outputs are encoded with).
    #[arg(long, default_value = "test-out")]
    pub output_topic: String,
    /// JSON-lines file of state to start from, for a plugin with state
    /// (`{"key": "k", "value": "v", "topic": "test", "partition": 0}`);
    /// state is kept in memory and carried from line to line.
    #[arg(long, value_name = "FILE")]
    pub state_seed: Option<PathBuf>,
}

impl TestArgs {
    /// The plugin settings these flags describe (one instance; defaults otherwise).
    pub fn plugin(&self) -> Result<PluginConfig, ConfigError> {
        let mut plugin = PluginConfig {
            path: self.plugin.clone(),
            instances: Some(1),
            cache_dir: self.cache_dir.clone(),
            watch: false,
            ..PluginConfig::default()
        };
        if let Some(timeout) = self.plugin_timeout {
            plugin.timeout = timeout;
        }
        if let Some(mib) = self.plugin_memory_mib {
            plugin.max_memory_mib = mib;
        }
        for arg in &self.plugin_config {
            let (k, v) = parse_key_value("--plugin-config", arg)?;
            plugin.config.insert(k, v);
        }
        plugin
            .allowed_outbound_hosts
            .clone_from(&self.allowed_outbound_hosts);
        plugin.allowed_outbound()?;
        plugin.http.ca_file.clone_from(&self.http_ca_file);
        plugin
            .http
            .forbidden_headers
            .clone_from(&self.http_forbidden_headers);
        plugin.http.settings()?;
        Ok(plugin)
    }
}

/// Run the plugin over the file: exit 0 if every record went through, 1 if
/// any failed, 2 for bad flags or an unreadable plugin or file.
pub fn execute(args: &TestArgs) -> ExitCode {
    let plugin = match args.plugin() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let Some(runtime) = super::async_runtime() else {
        return ExitCode::FAILURE;
    };
    let mut stdout = std::io::stdout().lock();
    let schema = match args.schema.apply(None) {
        Ok(schema) => schema,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let result = runtime.block_on(weir_dev::testrun::run_file(
        &plugin,
        &args.input,
        schema.as_ref().map(|s| (s, args.output_topic.as_str())),
        args.state_seed.as_deref(),
        &mut stdout,
    ));
    match result {
        Ok(summary) => {
            tracing::info!(
                records = summary.records,
                failed = summary.failed,
                "test run finished"
            );
            if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(super::EXIT_CONFIG)
        }
    }
}
