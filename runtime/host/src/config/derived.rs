//! Values derived from the settings: the pipelines of a process, the
//! transactional id, timeouts in force, the admin address, dead-letter topics.

use super::defaults::DEFAULT_DRAIN_TIMEOUT;
use super::{ConfigError, PluginConfig, RunConfig, DEFAULT_TRANSACTION_TIMEOUT};
use crate::admin::AdminSettings;
use std::path::Path;
use std::time::Duration;

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
                allowed_output_topics: extra.allowed_output_topics.clone(),
                plugin: extra.plugin.clone(),
                then: extra.then.clone(),
                schema_registry: extra
                    .schema_registry
                    .clone()
                    .or_else(|| self.schema_registry.clone()),
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

    /// The drain timeout in force: `drain_timeout` if set, else 30 s or, when
    /// `session.timeout.ms` is lowered to 45 s or less, two thirds of it, so
    /// a drain ends before the group evicts this member.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout.unwrap_or_else(|| {
            let session = self.session_timeout().unwrap_or(DEFAULT_DRAIN_TIMEOUT);
            DEFAULT_DRAIN_TIMEOUT.min(session * 2 / 3)
        })
    }

    /// The consumer session timeout in force: the librdkafka property if set,
    /// else librdkafka's default.
    pub(super) fn session_timeout(&self) -> Result<Duration, ConfigError> {
        self.librdkafka_millis("session.timeout.ms")
            .map(|ms| ms.unwrap_or(Duration::from_millis(45_000)))
    }

    /// How often topic patterns are matched against the cluster's topics again:
    /// librdkafka's `topic.metadata.refresh.interval.ms` if set, else its
    /// default (5 minutes); at least a second; `None` (only at start-up) for
    /// a value of 0 or less, which turns librdkafka's refresh off too.
    pub fn topic_refresh(&self) -> Result<Option<Duration>, ConfigError> {
        const KEY: &str = "topic.metadata.refresh.interval.ms";
        let Some(ms) = self.librdkafka.get(KEY) else {
            return Ok(Some(Duration::from_secs(300)));
        };
        let ms: i64 = ms.parse().map_err(|_| ConfigError::Invalid {
            key: KEY,
            reason: format!("`{ms}` is not a number of milliseconds"),
        })?;
        Ok((ms > 0).then(|| Duration::from_millis(ms as u64).max(Duration::from_secs(1))))
    }

    /// A librdkafka passthrough property given in milliseconds, if set.
    pub(super) fn librdkafka_millis(
        &self,
        key: &'static str,
    ) -> Result<Option<Duration>, ConfigError> {
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

    /// The admin endpoints' settings: addresses (`None` when turned off),
    /// token and reload directories.
    pub fn admin_settings(&self) -> Result<AdminSettings, ConfigError> {
        Ok(AdminSettings {
            addr: socket("admin_addr", &self.admin_addr)?,
            control_addr: socket("control_addr", &self.control_addr)?,
            token: self.admin_token.clone(),
            plugin_dirs: self.plugin_dir.iter().cloned().collect(),
        })
    }

    /// Where records from `source` that the plugin failed on are written under the
    /// `dlq` policy.
    pub fn dead_letter_topic(&self, source: &str) -> String {
        self.dead_letter_route().topic_for(source)
    }

    /// Where dead letters go, by input topic.
    pub fn dead_letter_route(&self) -> super::DeadLetterRoute {
        super::DeadLetterRoute {
            fixed: self.plugin.failure.dlq_topic.clone(),
        }
    }

    /// The input topics: names and `^` patterns, which never match a topic
    /// the plugins may write to or a fixed dead-letter topic.
    pub fn subscription(&self) -> Result<super::Subscription, super::TopicEntryError> {
        // Nor the changelog topics of the plugins' state.
        let changelogs: Vec<String> = self
            .plugins()
            .map(|p| crate::state::changelog::topic_name(&self.group, &p.display_name()))
            .collect();
        let excluded = std::iter::once(&self.output_topic)
            .chain(&self.allowed_output_topics)
            .chain(&self.plugin.failure.dlq_topic)
            .chain(&changelogs);
        super::Subscription::new(&self.topics, super::TopicPatterns::new(excluded))
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
}

/// The address of setting `key`, `None` for `off`.
fn socket(key: &'static str, addr: &str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match addr.trim() {
        "off" | "" => Ok(None),
        addr => addr.parse().map(Some).map_err(|_| ConfigError::Invalid {
            key,
            reason: format!("`{addr}` is not an IP:port address (e.g. 127.0.0.1:9898) or `off`"),
        }),
    }
}
