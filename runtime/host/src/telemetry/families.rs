//! Every metric family Weir exports, defined once: the field that holds it,
//! its type, its name (exported as a constant in [`names`], as it appears in
//! `/metrics`, for `weir status` and the tests) and its help text.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A metric's labels, in order.
pub(super) type Labels = Vec<(&'static str, String)>;
/// A family of histograms sharing bucket boundaries.
pub(super) type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Define the families: a struct with one field per family, registration
/// under the name and help, and a constant per name as exported (counters end
/// in `_total`).
macro_rules! families {
    ($( #[doc = $help:literal] $field:ident: $ty:ty = $make:expr, $NAME:ident = $name:literal $suffix:literal; )*) => {
        /// Metric names as they appear in `/metrics` (histograms add
        /// `_bucket`, `_sum` and `_count`).
        pub mod names {
            $(
                #[doc = $help]
                pub const $NAME: &str = concat!("weir_", $name, $suffix);
            )*
        }

        /// Every metric family Weir exports.
        #[derive(Clone)]
        pub(super) struct Families {
            $( pub(super) $field: $ty, )*
        }

        impl Families {
            /// A registry with every family registered under `weir_`.
            pub(super) fn registry() -> (Registry, Self) {
                let mut registry = Registry::with_prefix("weir");
                let families = Families { $( $field: $make, )* };
                $( registry.register($name, $help.trim().trim_end_matches('.'), families.$field.clone()); )*
                (registry, families)
            }
        }
    };
}

families! {
    /// Records received from the input topics (records read again after a rebalance or restart count again).
    consumed: Family<Labels, Counter> = Family::default(), RECORDS_CONSUMED = "records_consumed" "_total";
    /// Records a plugin processed without failing.
    processed: Family<Labels, Counter> = Family::default(), RECORDS_PROCESSED = "records_processed" "_total";
    /// Plugin calls repeated for a retryable error.
    retries: Family<Labels, Counter> = Family::default(), RECORD_RETRIES = "record_retries" "_total";
    /// Records given up on, by plugin and failure kind (trap, timeout, oom, fuel, contract, error, output-limit, produce).
    failures: Family<Labels, Counter> = Family::default(), RECORD_FAILURES = "record_failures" "_total";
    /// Records the broker acknowledged, by target topic (outputs and dead letters; in exactly-once mode also those of transactions later aborted).
    produced: Family<Labels, Counter> = Family::default(), RECORDS_PRODUCED = "records_produced" "_total";
    /// Dead letters the broker acknowledged, by dead-letter topic.
    dead_lettered: Family<Labels, Counter> = Family::default(), RECORDS_DEAD_LETTERED = "records_dead_lettered" "_total";
    /// Failed records skipped under the skip policy.
    skipped: Family<Labels, Counter> = Family::default(), RECORDS_SKIPPED = "records_skipped" "_total";
    /// Records per batch handed to the plugin chain.
    batch_records: Histograms = Family::new_with_constructor(batch_buckets), BATCH_RECORDS = "batch_records" "";
    /// Plugin calls in flight per partition (several under `ordering = "key"` or `"unordered"`).
    calls_in_flight: Family<Labels, Gauge> = Family::default(), PLUGIN_CALLS_IN_FLIGHT = "plugin_calls_in_flight" "";
    /// Keys held by plugin calls in flight or by records waiting for a retry, per partition (`ordering = "key"`).
    keys_in_flight: Family<Labels, Gauge> = Family::default(), KEYS_IN_FLIGHT = "keys_in_flight" "";
    /// Offsets taken in and not yet finished, per partition (the records a crash would redeliver).
    unfinished_offsets: Family<Labels, Gauge> = Family::default(), UNFINISHED_OFFSETS = "unfinished_offsets" "";
    /// How long records waited for a plugin call (behind their key, a full batch or a free call slot), the longest of each call.
    key_wait: Histograms = Family::new_with_constructor(latency_buckets), RECORD_WAIT_SECONDS = "record_wait_seconds" "";
    /// Duration of one plugin call (a batch, or one record while isolating a failure).
    plugin_call: Histograms = Family::new_with_constructor(call_buckets), PLUGIN_CALL_SECONDS = "plugin_call_seconds" "";
    /// From a record's timestamp to the acknowledgement of all its outputs.
    end_to_end: Histograms = Family::new_with_constructor(latency_buckets), END_TO_END_LATENCY_SECONDS = "end_to_end_latency_seconds" "";
    /// Offset or transaction commits, by result.
    commits: Family<Labels, Counter> = Family::default(), COMMITS = "commits" "_total";
    /// Duration of the commits Weir makes itself (revocation, shutdown, transactions).
    commit_duration: Histograms = Family::new_with_constructor(commit_buckets), COMMIT_SECONDS = "commit_seconds" "";
    /// Input topics the pipeline is subscribed to (plain names and the topics its patterns match); always 1.
    subscribed: Family<Labels, Gauge> = Family::default(), SUBSCRIBED_TOPIC = "subscribed_topic" "";
    /// Partitions assigned to this process by rebalances.
    assigned_total: Family<Labels, Counter> = Family::default(), PARTITIONS_ASSIGNED = "partitions_assigned" "_total";
    /// Partitions revoked from this process by rebalances.
    revoked_total: Family<Labels, Counter> = Family::default(), PARTITIONS_REVOKED = "partitions_revoked" "_total";
    /// Partitions currently assigned.
    assigned: Family<Labels, Gauge> = Family::default(), ASSIGNED_PARTITIONS = "assigned_partitions" "";
    /// Records consumed whose work is not finished.
    in_flight_records: Family<Labels, Gauge> = Family::default(), IN_FLIGHT_RECORDS = "in_flight_records" "";
    /// Bytes of records consumed whose work is not finished.
    in_flight_bytes: Family<Labels, Gauge> = Family::default(), IN_FLIGHT_BYTES = "in_flight_bytes" "";
    /// Partitions paused for backpressure.
    paused: Family<Labels, Gauge> = Family::default(), PAUSED_PARTITIONS = "paused_partitions" "";
    /// 1 while an assigned partition is paused for backpressure, else 0.
    partition_paused: Family<Labels, Gauge> = Family::default(), PARTITION_PAUSED = "partition_paused" "";
    /// Records handed to the producer and not yet acknowledged.
    producer_queue: Family<Labels, Gauge> = Family::default(), PRODUCER_QUEUE_MESSAGES = "producer_queue_messages" "";
    /// High watermark minus committed offset, per assigned partition.
    lag: Family<Labels, Gauge> = Family::default(), CONSUMER_LAG = "consumer_lag" "";
    /// The group's committed offset, per assigned partition.
    committed_offset: Family<Labels, Gauge> = Family::default(), COMMITTED_OFFSET = "committed_offset" "";
    /// The partition's high watermark, per assigned partition.
    high_watermark: Family<Labels, Gauge> = Family::default(), HIGH_WATERMARK = "high_watermark" "";
    /// Restarts of a pipeline after a Kafka failure.
    restarts: Family<Labels, Counter> = Family::default(), PIPELINE_RESTARTS = "pipeline_restarts" "_total";
    /// The plugin version in use (SHA-256 of its .wasm file); always 1.
    plugin_info: Family<Labels, Gauge> = Family::default(), PLUGIN_INFO = "plugin_info" "";
    /// Plugin reloads, by result.
    reloads: Family<Labels, Counter> = Family::default(), PLUGIN_RELOADS = "plugin_reloads" "_total";
    /// Guest log lines dropped because one call logged or printed more than its budget, by stream (log, stdout, stderr).
    log_dropped: Family<Labels, Counter> = Family::default(), PLUGIN_LOG_LINES_DROPPED = "plugin_log_lines_dropped" "_total";
    /// Outbound HTTP requests plugins sent, by the allow-list entry that let them through and the response status (or `error`).
    http_requests: Family<Labels, Counter> = Family::default(), PLUGIN_HTTP_REQUESTS = "plugin_http_requests" "_total";
    /// Outbound HTTP requests refused because the host is not in the plugin's `allowed_outbound_hosts`.
    http_denied: Family<Labels, Counter> = Family::default(), PLUGIN_HTTP_REQUESTS_DENIED = "plugin_http_requests_denied" "_total";
    /// From sending an outbound HTTP request to its response's headers.
    http_duration: Histograms = Family::new_with_constructor(call_buckets), PLUGIN_HTTP_REQUEST_SECONDS = "plugin_http_request_seconds" "";
    /// Outbound HTTP requests in flight (sent, response not yet read to its end).
    http_in_flight: Family<Labels, Gauge> = Family::default(), PLUGIN_HTTP_REQUESTS_IN_FLIGHT = "plugin_http_requests_in_flight" "";
    /// Schema registry requests, by outcome (`ok`, `not-found`, `unavailable`, `refused`).
    registry_requests: Family<Labels, Counter> = Family::default(), SCHEMA_REGISTRY_REQUESTS = "schema_registry_requests" "_total";
    /// Schemas found in the cache instead of asked of the registry.
    schema_cache_hits: Family<Labels, Counter> = Family::default(), SCHEMA_CACHE_HITS = "schema_cache_hits" "_total";
    /// Records failed with kind `schema`, by direction (`decode`, `encode`).
    schema_failures: Family<Labels, Counter> = Family::default(), SCHEMA_FAILURES = "schema_failures" "_total";
    /// Bytes (keys plus values) of a plugin's state, per input partition assigned here.
    state_bytes: Family<Labels, Gauge> = Family::default(), STATE_BYTES = "state_bytes" "";
    /// Changelog records still to read before a partition's state is restored (0 once it is).
    state_restore_remaining: Family<Labels, Gauge> = Family::default(), STATE_RESTORE_REMAINING = "state_restore_remaining_records" "";
    /// How long restoring a partition's state from its changelog took.
    state_restore: Histograms = Family::new_with_constructor(latency_buckets), STATE_RESTORE_SECONDS = "state_restore_seconds" "";
    /// Changelog records read while restoring state.
    state_restored: Family<Labels, Counter> = Family::default(), STATE_RESTORED_RECORDS = "state_restored_records" "_total";
    /// Waits for an unavailable schema registry (each before a retry).
    registry_waits: Family<Labels, Counter> = Family::default(), SCHEMA_REGISTRY_WAITS = "schema_registry_waits" "_total";
}

fn batch_buckets() -> Histogram {
    Histogram::new([
        1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
    ])
}

/// 50 µs to ≈ 6.5 s.
fn call_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

/// 1 ms to ≈ 9 min.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// 1 ms to ≈ 16 s.
fn commit_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}
