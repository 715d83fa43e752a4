//! Default values of every setting (see the field docs in `config`).

use super::{
    BatchConfig, FailureConfig, FailurePolicy, HttpConfig, PluginConfig, RunConfig, StateConfig,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The transaction timeout in exactly-once mode unless `transaction.timeout.ms`
/// is set (librdkafka's own default is 60 s). After a crash without an
/// `instance_id`, the crashed process's open transaction holds back
/// `read_committed` readers of its output partitions until the broker aborts it
/// after this long; Kafka Streams uses the same 10 s for the same reason.
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The drain timeout unless `drain_timeout` or a shorter session timeout
/// says otherwise.
pub(super) const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
pub(super) fn default_commit_interval() -> Duration {
    Duration::from_secs(1)
}
pub(super) fn default_max_in_flight_mib() -> u64 {
    64
}
pub(super) fn default_plugin_timeout() -> Duration {
    Duration::from_secs(5)
}
pub(super) fn default_max_memory_mib() -> u64 {
    256
}
pub(super) fn default_true() -> bool {
    true
}
pub(super) fn default_stats_interval() -> Duration {
    Duration::from_secs(5)
}
pub(super) fn default_admin_addr() -> String {
    "127.0.0.1:9898".to_string()
}
pub(super) fn default_control_addr() -> String {
    "127.0.0.1:9899".to_string()
}
pub(super) fn default_max_outputs_per_record() -> usize {
    10_000
}
pub(super) fn default_max_output_bytes_per_record() -> usize {
    16 << 20
}
pub(super) fn default_max_uncommitted() -> usize {
    10_000
}
pub(super) fn default_registry_timeout() -> Duration {
    Duration::from_secs(10)
}
pub(super) fn default_latest_ttl() -> Duration {
    Duration::from_secs(60)
}
pub(super) fn default_schema_decode() -> super::SchemaParts {
    super::SchemaParts::Value
}
pub(super) fn default_max_decoded_bytes() -> usize {
    16 << 20
}
pub(super) fn default_http_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
pub(super) fn default_http_response_timeout() -> Duration {
    Duration::from_secs(30)
}
pub(super) fn default_http_max_concurrent_requests() -> usize {
    16
}
pub(super) fn default_http_max_response_bytes() -> u64 {
    8 << 20
}
pub(super) fn default_max_attempts() -> u32 {
    3
}
pub(super) fn default_retry_backoff() -> Duration {
    Duration::from_millis(100)
}
pub(super) fn default_retry_backoff_max() -> Duration {
    Duration::from_secs(10)
}
pub(super) fn default_batch_max_records() -> usize {
    500
}
pub(super) fn default_linger() -> Duration {
    Duration::from_millis(5)
}
pub(super) fn default_partition_buffer() -> usize {
    // Each time a partition pauses, librdkafka drops what it prefetched for it
    // and fetches again; a deep buffer keeps that rare (the byte budget, not
    // this, bounds memory).
    10_000
}

pub(super) fn default_state_max_key_bytes() -> usize {
    1024
}
pub(super) fn default_state_max_value_bytes() -> usize {
    256 << 10
}
pub(super) fn default_state_max_mib_per_partition() -> u64 {
    1024
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            max_key_bytes: default_state_max_key_bytes(),
            max_value_bytes: default_state_max_value_bytes(),
            max_mib_per_partition: default_state_max_mib_per_partition(),
        }
    }
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
            allowed_outbound_hosts: Vec::new(),
            http: HttpConfig::default(),
            state: StateConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: default_http_connect_timeout(),
            first_byte_timeout: default_http_response_timeout(),
            between_bytes_timeout: default_http_response_timeout(),
            max_concurrent_requests: default_http_max_concurrent_requests(),
            max_response_bytes: default_http_max_response_bytes(),
            ca_file: None,
            forbidden_headers: Vec::new(),
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
