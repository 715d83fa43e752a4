//! Checking a configuration before anything starts: required settings,
//! ranges, and rules across fields (timeouts against each other, topic names
//! that must differ). Each error names the setting and what to do.

use super::{ConfigError, FailurePolicy, HttpConfig, PluginConfig, RunConfig};
use crate::outbound::{AllowList, OutboundSettings};
use std::time::Duration;

impl RunConfig {
    /// Check required settings and cross-field rules, of every pipeline.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let pipelines = self.pipelines();
        let mut groups = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for pipeline in &pipelines {
            pipeline.validate_pipeline()?;
            if let Some(registry) = &pipeline.schema_registry {
                registry.stage_settings()?;
            }
            pipeline.validate_concurrency()?;
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

    /// Check the ordering and concurrency settings.
    fn validate_concurrency(&self) -> Result<(), ConfigError> {
        if self.max_concurrency == Some(0) || self.max_uncommitted == 0 {
            return Err(ConfigError::Invalid {
                key: "max_concurrency",
                reason: "max_concurrency and max_uncommitted must be at least 1".into(),
            });
        }
        at_most(
            "max_concurrency",
            self.max_concurrency.unwrap_or(1),
            MAX_CONCURRENCY,
        )?;
        at_most("max_uncommitted", self.max_uncommitted, MAX_UNCOMMITTED)
    }

    /// Check one pipeline's settings.
    fn validate_pipeline(&self) -> Result<(), ConfigError> {
        self.check_required()?;
        self.check_processing()?;
        self.check_kafka()
    }

    /// The settings every pipeline needs are there.
    fn check_required(&self) -> Result<(), ConfigError> {
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
        self.subscription().map_err(|e| ConfigError::Invalid {
            key: "topics",
            reason: e.to_string(),
        })?;
        if self
            .topics
            .iter()
            .any(|t| super::subscription::is_pattern(t))
        {
            self.topic_refresh()?;
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
        super::subscription::check_topic_name(&self.output_topic).map_err(|reason| {
            ConfigError::Invalid {
                key: "output_topic",
                reason: format!(
                    "`{}` is not a valid Kafka topic name: {reason}",
                    self.output_topic
                ),
            }
        })?;
        Ok(())
    }

    /// Batching, plugins and the failure policy.
    fn check_processing(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_string(),
        };
        if self.batch.max_records == 0 {
            return Err(invalid("batch.max_records", "must be at least 1"));
        }
        at_most(
            "batch.max_records",
            self.batch.max_records,
            MAX_BATCH_RECORDS,
        )?;
        at_most(
            "batch.partition_buffer",
            self.batch.partition_buffer,
            MAX_PARTITION_BUFFER,
        )?;
        at_most_time("batch.linger", self.batch.linger, MAX_INTERVAL)?;
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
        at_most_time(
            "plugin.failure.retry_backoff_max",
            failure.retry_backoff_max,
            MAX_INTERVAL,
        )?;
        at_most("plugin.failure.max_attempts", failure.max_attempts, 1_000)?;
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
            if let Some(dlq) = &failure.dlq_topic {
                if self.topics.contains(dlq) || *dlq == self.output_topic {
                    return Err(ConfigError::Invalid {
                        key: "plugin.failure.dlq_topic",
                        reason: format!(
                            "`{dlq}` is also an input or the output topic; name a topic of its own"
                        ),
                    });
                }
            }
            // Patterns never match dead-letter topics (see `Subscription`).
            for topic in self
                .topics
                .iter()
                .filter(|t| !super::subscription::is_pattern(t))
            {
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
        Ok(())
    }

    /// Commit, flow and client settings, and their limits against the
    /// transaction and session timeouts.
    fn check_kafka(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_string(),
        };
        let admin = self.admin_settings()?;
        match (&admin.token, admin.control_addr) {
            (Some(token), _) if token.chars().count() < 16 => {
                return Err(invalid(
                    "admin_token",
                    "must be at least 16 characters; generate one, e.g. with `openssl rand -hex 24`",
                ))
            }
            (None, Some(addr)) if !addr.ip().is_loopback() => {
                return Err(ConfigError::Invalid {
                    key: "control_addr",
                    reason: format!(
                        "{addr} is reachable from other machines, and anyone who reaches it could reload plugins; set admin_token (WEIR_ADMIN_TOKEN) or keep it on loopback"
                    ),
                })
            }
            _ => {}
        }
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
        at_most(
            "max_in_flight_mib",
            self.max_in_flight_mib,
            MAX_IN_FLIGHT_MIB,
        )?;
        at_most_time("commit_interval", self.commit_interval, MAX_INTERVAL)?;
        at_most_time("stats_interval", self.stats_interval, MAX_INTERVAL)?;
        at_most_time("drain_timeout", self.drain_timeout(), MAX_INTERVAL)?;
        self.check_passthrough()?;
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
        let drain = self.drain_timeout();
        if drain >= session {
            let fits = humantime_serde::re::humantime::format_duration(session * 2 / 3);
            return Err(ConfigError::Invalid {
                key: "drain_timeout",
                reason: format!(
                    "{} must be shorter than the session timeout (session.timeout.ms = {}), or the group evicts this member while it drains; pass e.g. --drain-timeout {fits} (drain_timeout = \"{fits}\"), or leave it unset to get two thirds of the session timeout",
                    humantime_serde::re::humantime::format_duration(drain),
                    session.as_millis()
                ),
            });
        }
        Ok(())
    }
}

impl PluginConfig {
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
        at_most(
            "plugin.instances",
            self.instances.unwrap_or(1),
            MAX_INSTANCES,
        )?;
        // A 32-bit WebAssembly memory cannot grow past 4 GiB.
        at_most("plugin.max_memory_mib", self.max_memory_mib, 4096)?;
        at_most_time("plugin.timeout", self.timeout, MAX_INTERVAL)?;
        at_most(
            "plugin.max_outputs_per_record",
            self.max_outputs_per_record,
            MAX_OUTPUTS_PER_RECORD,
        )?;
        at_most(
            "plugin.max_output_bytes_per_record",
            self.max_output_bytes_per_record,
            MAX_OUTPUT_BYTES_PER_RECORD,
        )?;
        self.allowed_outbound()?;
        self.init_config()?;
        self.state.validate(&self.display_name())?;
        self.http.validate()
    }

    /// The caps on the plugin's state.
    pub fn state_limits(&self) -> crate::state::StateLimits {
        crate::state::StateLimits {
            max_key_bytes: self.state.max_key_bytes,
            max_value_bytes: self.state.max_value_bytes,
            max_partition_bytes: self.state.max_mib_per_partition.saturating_mul(1 << 20),
        }
    }

    /// The key/value pairs the plugin's `init` gets, with `${env:...}` and
    /// `${file:...}` references resolved.
    pub fn init_config(&self) -> Result<Vec<(String, String)>, ConfigError> {
        self.config
            .iter()
            .map(|(k, v)| Ok((k.clone(), super::secrets::resolve("plugin.config", k, v)?)))
            .collect()
    }

    /// The parsed `allowed_outbound_hosts`.
    pub fn allowed_outbound(&self) -> Result<AllowList, ConfigError> {
        AllowList::parse(&self.allowed_outbound_hosts).map_err(|e| ConfigError::Invalid {
            key: "plugin.allowed_outbound_hosts",
            reason: format!("{e} (plugin `{}`)", self.display_name()),
        })
    }
}

impl HttpConfig {
    /// Check the limits on outbound HTTP.
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("plugin.http.connect_timeout", self.connect_timeout),
            ("plugin.http.first_byte_timeout", self.first_byte_timeout),
            (
                "plugin.http.between_bytes_timeout",
                self.between_bytes_timeout,
            ),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be above zero".into(),
                });
            }
            at_most_time(key, value, MAX_INTERVAL)?;
        }
        if self.max_concurrent_requests == 0 || self.max_response_bytes == 0 {
            return Err(ConfigError::Invalid {
                key: "plugin.http.max_concurrent_requests",
                reason: "limits on outbound HTTP must be at least 1".into(),
            });
        }
        at_most(
            "plugin.http.max_concurrent_requests",
            self.max_concurrent_requests,
            MAX_HTTP_CONCURRENT_REQUESTS,
        )?;
        at_most(
            "plugin.http.max_response_bytes",
            self.max_response_bytes,
            MAX_HTTP_RESPONSE_BYTES,
        )?;
        self.settings().map(drop)
    }

    /// These limits as the outbound module takes them; fails on a forbidden
    /// header that is not a header name.
    pub fn settings(&self) -> Result<OutboundSettings, ConfigError> {
        let forbidden_headers = self
            .forbidden_headers
            .iter()
            .map(|name| {
                http::HeaderName::try_from(name.as_str()).map_err(|_| ConfigError::Invalid {
                    key: "plugin.http.forbidden_headers",
                    reason: format!(
                        "`{name}` is not an HTTP header name (letters, digits and `-`, e.g. `authorization`)"
                    ),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(OutboundSettings {
            connect_timeout: self.connect_timeout,
            first_byte_timeout: self.first_byte_timeout,
            between_bytes_timeout: self.between_bytes_timeout,
            max_concurrent_requests: self.max_concurrent_requests,
            max_response_bytes: self.max_response_bytes,
            ca_file: self.ca_file.clone(),
            forbidden_headers,
        })
    }
}

/// Most plugin calls in flight per partition.
const MAX_CONCURRENCY: usize = 1024;
/// Most unfinished offsets per partition.
const MAX_UNCOMMITTED: usize = 10_000_000;

/// Most outbound HTTP requests one plugin may have in flight.
const MAX_HTTP_CONCURRENT_REQUESTS: usize = 4096;
/// Largest response body a plugin may be allowed (its memory cap is at most 4 GiB).
const MAX_HTTP_RESPONSE_BYTES: u64 = 4 << 30;

/// Longest duration any setting accepts (a day): longer ones are mistakes, and
/// adding them to a clock could overflow.
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Upper bounds of sizes: beyond them memory would be reserved up front that no
/// machine has.
const MAX_BATCH_RECORDS: usize = 1_000_000;
const MAX_PARTITION_BUFFER: usize = 10_000_000;
const MAX_IN_FLIGHT_MIB: u64 = 1 << 20;
const MAX_INSTANCES: usize = 4096;
const MAX_OUTPUTS_PER_RECORD: usize = 1_000_000;
const MAX_OUTPUT_BYTES_PER_RECORD: usize = 1 << 30;

/// Refuse `value` of setting `key` above `max`.
fn at_most<T: PartialOrd + std::fmt::Display>(
    key: &'static str,
    value: T,
    max: T,
) -> Result<(), ConfigError> {
    if value > max {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("{value} is more than the most it accepts, {max}"),
        });
    }
    Ok(())
}

/// Refuse a duration of setting `key` above `max`.
fn at_most_time(key: &'static str, value: Duration, max: Duration) -> Result<(), ConfigError> {
    if value > max {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("{value:?} is longer than the most it accepts, {max:?}"),
        });
    }
    Ok(())
}

/// librdkafka properties that would silently break Weir's delivery
/// guarantees if passed through, with what to do instead. The check says
/// which values are refused.
const GUARANTEES: &[(&str, &str)] = &[
    ("enable.auto.offset.store", "Weir stores an offset only once its record is processed and its outputs acknowledged; this cannot be changed"),
    ("enable.auto.commit", "Weir decides when offsets commit; set commit_interval (--commit-interval) instead"),
    ("auto.commit.interval.ms", "set commit_interval (--commit-interval) instead"),
    ("enable.idempotence", "outputs must not be duplicated or reordered by producer retries; it stays on"),
    ("acks", "outputs are acknowledged by all in-sync replicas (acks=all) before their input is committed; only `all` or `-1` is accepted"),
    ("request.required.acks", "only `all` or `-1` is accepted (see acks)"),
    ("transactional.id", "set transactional_id (--transactional-id) instead"),
    ("isolation.level", "exactly-once mode reads committed records only; only `read_committed` is accepted with exactly_once"),
    ("group.id", "set group (--group) instead"),
    ("bootstrap.servers", "set brokers (--brokers) instead"),
];

impl RunConfig {
    /// Refuse passthrough properties that would break the guarantees.
    fn check_passthrough(&self) -> Result<(), ConfigError> {
        for (key, value) in &self.librdkafka {
            let Some((_, instead)) = GUARANTEES.iter().find(|(k, _)| k == key) else {
                continue;
            };
            let value = value.trim();
            let harmless = match key.as_str() {
                "acks" | "request.required.acks" => matches!(value, "all" | "-1"),
                "enable.idempotence" => value == "true",
                "isolation.level" => !self.exactly_once || value == "read_committed",
                _ => false,
            };
            if !harmless {
                return Err(ConfigError::Invalid {
                    key: "librdkafka",
                    reason: format!("`{key}={value}` is refused: {instead}"),
                });
            }
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

/// Longest state value: one changelog record, below the broker's default
/// `message.max.bytes` (1 MiB) with room for its key and headers.
const MAX_STATE_VALUE_BYTES: usize = 1000 << 10;

impl super::StateConfig {
    fn validate(&self, plugin: &str) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: format!("{reason} (plugin `{plugin}`)"),
        };
        if self.max_key_bytes == 0 || self.max_value_bytes == 0 || self.max_mib_per_partition == 0 {
            return Err(invalid(
                "plugin.state",
                "max_key_bytes, max_value_bytes and max_mib_per_partition must be at least 1",
            ));
        }
        if self.max_value_bytes > MAX_STATE_VALUE_BYTES {
            return Err(invalid(
                "plugin.state.max_value_bytes",
                "must be at most 1024000: each value is one changelog record, which must stay below the broker's message.max.bytes",
            ));
        }
        Ok(())
    }
}
