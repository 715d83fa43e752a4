//! Prometheus metrics: one registry per process, served as text at `/metrics`.
//!
//! [`Metrics`] owns the registry and every metric family. A pipeline takes a
//! [`PipelineMetrics`] handle (labelled with its consumer group), and each plugin
//! of its chain a [`PluginMetrics`] handle (labelled with the plugin's name too).
//! Handles hold the hot-path metrics already resolved to their labels, so that
//! counting a record is one atomic add, not a map lookup.

use super::families::{Families, Labels};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The process's metrics registry.
pub struct Metrics {
    registry: Registry,
    families: Families,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every Weir metric registered (and no samples yet).
    pub fn new() -> Self {
        let (registry, families) = Families::registry();
        Self { registry, families }
    }

    /// The metrics of the pipeline consuming as `group`.
    pub fn pipeline(&self, group: &str) -> PipelineMetrics {
        PipelineMetrics::new(self.families.clone(), group)
    }

    /// Every metric, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

/// One pipeline's metrics, labelled `pipeline=<group>`. Cheap to clone.
#[derive(Clone)]
pub struct PipelineMetrics {
    families: Families,
    pipeline: String,
    /// Records per batch.
    pub batch_records: Histogram,
    /// The longest wait of a record of each call for that call, in seconds.
    pub key_wait: Histogram,
    /// Record timestamp to outputs acknowledged, in seconds.
    pub end_to_end: Histogram,
    /// Duration of the commits Weir makes itself.
    pub commit_duration: Histogram,
    /// Partitions assigned by rebalances.
    pub partitions_assigned: Counter,
    /// Partitions revoked by rebalances.
    pub partitions_revoked: Counter,
    /// Partitions currently assigned.
    pub assigned: Gauge,
    /// Records in flight.
    pub in_flight_records: Gauge,
    /// Bytes in flight.
    pub in_flight_bytes: Gauge,
    /// Partitions paused for backpressure.
    pub paused: Gauge,
    /// Records in the producer's queue.
    pub producer_queue: Gauge,
    /// Restarts after Kafka failures.
    pub restarts: Counter,
    /// Skipped records.
    pub skipped: Counter,
    /// Offsets committed by transactions (exactly-once mode), which the
    /// consumer's own statistics do not see.
    transaction_offsets: Arc<Mutex<HashMap<(String, i32), i64>>>,
}

/// How much of one partition's work is in flight.
#[derive(Clone)]
pub struct ConcurrencyGauges {
    /// Plugin calls in flight.
    pub calls: Gauge,
    /// Keys held by calls in flight or records waiting for a retry.
    pub keys: Gauge,
    /// Offsets taken in and not finished.
    pub unfinished: Gauge,
}

/// One plugin's state figures of one partition.
#[derive(Clone)]
pub struct StateGauges {
    /// Bytes of keys and values held.
    pub bytes: Gauge,
    /// Changelog records still to read before the state is restored.
    pub restore_remaining: Gauge,
    /// How long restores took (all partitions of the plugin).
    pub restore_seconds: Histogram,
    /// Changelog records read by restores (all partitions of the plugin).
    pub restored: Counter,
}

/// A partition's offsets from the consumer's statistics (-1 where unknown).
#[derive(Debug, Clone, Copy)]
pub struct PartitionOffsets {
    /// The group's committed offset.
    pub committed: i64,
    /// The offset Weir stored as processed, not yet committed.
    pub stored: i64,
    /// Where a group without commits starts: the first retained offset, or
    /// the consumer's position when it starts at the end (`auto_offset_reset = "latest"`).
    pub start: i64,
    /// The end: the high watermark, or the last stable offset when reading committed records only.
    pub end: i64,
}

impl PipelineMetrics {
    fn new(families: Families, group: &str) -> Self {
        let own = labels(&[("pipeline", group)]);
        Self {
            batch_records: families.batch_records.get_or_create_owned(&own),
            key_wait: families.key_wait.get_or_create_owned(&own),
            end_to_end: families.end_to_end.get_or_create_owned(&own),
            commit_duration: families.commit_duration.get_or_create_owned(&own),
            partitions_assigned: families.assigned_total.get_or_create_owned(&own),
            partitions_revoked: families.revoked_total.get_or_create_owned(&own),
            assigned: families.assigned.get_or_create_owned(&own),
            in_flight_records: families.in_flight_records.get_or_create_owned(&own),
            in_flight_bytes: families.in_flight_bytes.get_or_create_owned(&own),
            paused: families.paused.get_or_create_owned(&own),
            producer_queue: families.producer_queue.get_or_create_owned(&own),
            restarts: families.restarts.get_or_create_owned(&own),
            skipped: families.skipped.get_or_create_owned(&own),
            transaction_offsets: Arc::default(),
            pipeline: group.to_string(),
            families,
        }
    }

    /// Metrics that no registry exports (for `weir test` and unit tests).
    pub fn detached() -> Self {
        Metrics::new().pipeline("detached")
    }

    /// The counter of records consumed from `topic`.
    pub fn consumed(&self, topic: &str) -> Counter {
        self.families
            .consumed
            .get_or_create_owned(&labels(&[("pipeline", &self.pipeline), ("topic", topic)]))
    }

    /// The counter of records acknowledged by the broker on `topic`.
    pub fn produced(&self, topic: &str) -> Counter {
        self.families
            .produced
            .get_or_create_owned(&labels(&[("pipeline", &self.pipeline), ("topic", topic)]))
    }

    /// Show the input topics `added` to the subscription, and stop showing those `removed`.
    pub fn subscription_changed<'a>(
        &self,
        added: impl IntoIterator<Item = &'a String>,
        removed: impl IntoIterator<Item = &'a String>,
    ) {
        let family = &self.families.subscribed;
        let key = |topic: &str| labels(&[("pipeline", &self.pipeline), ("topic", topic)]);
        for topic in added {
            family.get_or_create(&key(topic)).set(1);
        }
        for topic in removed {
            family.remove(&key(topic));
        }
    }

    /// Count a dead letter acknowledged on `topic`.
    pub fn dead_lettered(&self, topic: &str) {
        self.families
            .dead_lettered
            .get_or_create(&labels(&[("pipeline", &self.pipeline), ("topic", topic)]))
            .inc();
    }

    /// Count a record given up on by `plugin` with a failure of `kind`.
    pub fn failed(&self, plugin: &str, kind: &str) {
        self.families
            .failures
            .get_or_create(&labels(&[
                ("pipeline", &self.pipeline),
                ("plugin", plugin),
                ("kind", kind),
            ]))
            .inc();
    }

    /// Count a commit and whether it succeeded.
    pub fn commit(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.families
            .commits
            .get_or_create(&labels(&[("pipeline", &self.pipeline), ("result", result)]))
            .inc();
    }

    /// Record an assigned partition's offsets as the consumer last saw them;
    /// its lag is `end` minus the committed offset. In exactly-once mode the
    /// offsets committed with the transactions count instead of `committed`.
    pub fn partition_offsets(&self, topic: &str, partition: i32, seen: PartitionOffsets) {
        let key = self.partition_labels(topic, partition);
        let committed = self
            .transaction_offsets()
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(seen.committed);
        // Before the first commit: from what is processed, else from where
        // consumption started.
        let from = [committed, seen.stored, seen.start]
            .into_iter()
            .find(|o| *o >= 0)
            .unwrap_or(0);
        self.families
            .lag
            .get_or_create(&key)
            .set((seen.end - from).max(0));
        self.families
            .committed_offset
            .get_or_create(&key)
            .set(committed);
        self.families
            .high_watermark
            .get_or_create(&key)
            .set(seen.end);
    }

    /// Record offsets committed inside a transaction: `(topic, partition, next offset)`.
    pub fn transaction_committed<'a>(
        &self,
        offsets: impl IntoIterator<Item = (&'a str, i32, i64)>,
    ) {
        let mut known = self.transaction_offsets();
        for (topic, partition, next) in offsets {
            known.insert((topic.to_string(), partition), next);
        }
    }

    fn transaction_offsets(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), i64>> {
        self.transaction_offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Stop exporting per-partition figures of a partition no longer assigned.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let key = self.partition_labels(topic, partition);
        self.transaction_offsets()
            .remove(&(topic.to_string(), partition));
        self.families.lag.remove(&key);
        self.families.committed_offset.remove(&key);
        self.families.high_watermark.remove(&key);
        self.families.calls_in_flight.remove(&key);
        self.families.keys_in_flight.remove(&key);
        self.families.unfinished_offsets.remove(&key);
        self.families.partition_paused.remove(&key);
    }

    /// Whether a partition is paused for backpressure (1) or not (0), set
    /// by the consumer loop.
    pub fn partition_paused(&self, topic: &str, partition: i32) -> Gauge {
        self.families
            .partition_paused
            .get_or_create_owned(&self.partition_labels(topic, partition))
    }

    /// The concurrency gauges of one partition, set by its worker.
    pub fn partition_concurrency(&self, topic: &str, partition: i32) -> ConcurrencyGauges {
        let key = self.partition_labels(topic, partition);
        ConcurrencyGauges {
            calls: self.families.calls_in_flight.get_or_create_owned(&key),
            keys: self.families.keys_in_flight.get_or_create_owned(&key),
            unfinished: self.families.unfinished_offsets.get_or_create_owned(&key),
        }
    }

    /// The state metrics of `plugin` for one input partition.
    pub fn partition_state(&self, plugin: &str, topic: &str, partition: i32) -> StateGauges {
        let key = self.state_labels(plugin, topic, partition);
        let own = labels(&[("pipeline", &self.pipeline), ("plugin", plugin)]);
        StateGauges {
            bytes: self.families.state_bytes.get_or_create_owned(&key),
            restore_remaining: self
                .families
                .state_restore_remaining
                .get_or_create_owned(&key),
            restore_seconds: self.families.state_restore.get_or_create_owned(&own),
            restored: self.families.state_restored.get_or_create_owned(&own),
        }
    }

    /// Stop exporting `plugin`'s state figures of a partition no longer assigned.
    pub fn forget_partition_state(&self, plugin: &str, topic: &str, partition: i32) {
        let key = self.state_labels(plugin, topic, partition);
        self.families.state_bytes.remove(&key);
        self.families.state_restore_remaining.remove(&key);
    }

    fn state_labels(&self, plugin: &str, topic: &str, partition: i32) -> Labels {
        labels(&[
            ("pipeline", &self.pipeline),
            ("plugin", plugin),
            ("topic", topic),
            ("partition", &partition.to_string()),
        ])
    }

    fn partition_labels(&self, topic: &str, partition: i32) -> Labels {
        labels(&[
            ("pipeline", &self.pipeline),
            ("topic", topic),
            ("partition", &partition.to_string()),
        ])
    }

    /// The pipeline's schema registry metrics.
    pub fn schema(&self) -> SchemaMetrics {
        let own = labels(&[("pipeline", &self.pipeline)]);
        SchemaMetrics {
            cache_hits: self.families.schema_cache_hits.get_or_create_owned(&own),
            waits: self.families.registry_waits.get_or_create_owned(&own),
            requests: self.families.registry_requests.clone(),
            failures: self.families.schema_failures.clone(),
            labels: own,
        }
    }

    /// The metrics of the plugin `name` of this pipeline's chain.
    pub fn plugin(&self, name: &str) -> PluginMetrics {
        let own = labels(&[("pipeline", &self.pipeline), ("plugin", name)]);
        let reload = |result: &str| {
            let mut key = own.clone();
            key.push(("result", result.to_string()));
            self.families.reloads.get_or_create_owned(&key)
        };
        PluginMetrics {
            processed: self.families.processed.get_or_create_owned(&own),
            retries: self.families.retries.get_or_create_owned(&own),
            call_duration: self.families.plugin_call.get_or_create_owned(&own),
            reloads_ok: reload("ok"),
            reloads_failed: reload("failed"),
            log_dropped: self.families.log_dropped.clone(),
            http: HttpMetrics {
                denied: self.families.http_denied.get_or_create_owned(&own),
                duration: self.families.http_duration.get_or_create_owned(&own),
                in_flight: self.families.http_in_flight.get_or_create_owned(&own),
                requests: self.families.http_requests.clone(),
                labels: own.clone(),
            },
            info: self.families.plugin_info.clone(),
            shown: Arc::new(Mutex::new(None)),
            labels: own,
        }
    }
}

/// A pipeline's schema registry metrics. Cheap to clone.
#[derive(Clone)]
pub struct SchemaMetrics {
    /// Schemas served from the cache.
    pub cache_hits: Counter,
    /// Waits for an unavailable registry.
    pub waits: Counter,
    requests: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    labels: Labels,
}

impl SchemaMetrics {
    /// Registry requests that ended in `outcome`.
    pub fn requests(&self, outcome: &str) -> Counter {
        let mut key = self.labels.clone();
        key.push(("outcome", outcome.to_string()));
        self.requests.get_or_create_owned(&key)
    }

    /// Records failed while `direction` (`decode` or `encode`).
    pub fn failures(&self, direction: &str) -> Counter {
        let mut key = self.labels.clone();
        key.push(("direction", direction.to_string()));
        self.failures.get_or_create_owned(&key)
    }
}

/// One plugin's outbound HTTP metrics. Cheap to clone.
#[derive(Clone)]
pub struct HttpMetrics {
    /// Requests refused by the allow-list.
    pub denied: Counter,
    /// Time to a response's headers, in seconds.
    pub duration: Histogram,
    /// Requests in flight.
    pub in_flight: Gauge,
    requests: Family<Labels, Counter>,
    labels: Labels,
}

impl HttpMetrics {
    /// Requests let through by allow-list entry `allowed` that ended in
    /// `status` (a status code, or `error`).
    pub fn requests(&self, allowed: &str, status: &str) -> Counter {
        let mut key = self.labels.clone();
        key.push(("allowed", allowed.to_string()));
        key.push(("status", status.to_string()));
        self.requests.get_or_create_owned(&key)
    }
}

/// One plugin's metrics, shared by all its versions. Cheap to clone.
#[derive(Clone)]
pub struct PluginMetrics {
    /// Records processed without failing.
    pub processed: Counter,
    /// Retried plugin calls.
    pub retries: Counter,
    /// Plugin call durations, in seconds.
    pub call_duration: Histogram,
    /// Reloads that put a new version in use.
    pub reloads_ok: Counter,
    /// Reloads that failed.
    pub reloads_failed: Counter,
    log_dropped: Family<Labels, Counter>,
    /// Its outbound HTTP.
    pub http: HttpMetrics,
    info: Family<Labels, Gauge>,
    /// The `plugin_info` labels currently exported.
    shown: Arc<Mutex<Option<Labels>>>,
    labels: Labels,
}

impl PluginMetrics {
    /// Metrics that no registry exports (for `weir test` and unit tests).
    pub fn detached() -> Self {
        PipelineMetrics::detached().plugin("detached")
    }

    /// Guest log lines dropped from `stream` (`log`, `stdout`, `stderr`)
    /// because a call went over its budget.
    pub fn log_lines_dropped(&self, stream: &str) -> Counter {
        let mut key = self.labels.clone();
        key.push(("stream", stream.to_string()));
        self.log_dropped.get_or_create_owned(&key)
    }

    /// Export `version` as the one in use (replacing the one shown before).
    pub fn show_version(&self, version: &str) {
        let mut key = self.labels.clone();
        key.push(("version", version.to_string()));
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = shown.take() {
            self.info.remove(&old);
        }
        self.info.get_or_create(&key).set(1);
        *shown = Some(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_counters_with_their_labels_in_prometheus_text() {
        let metrics = Metrics::new();
        let pipeline = metrics.pipeline("g");
        pipeline.consumed("in").inc_by(3);
        pipeline.dead_lettered("in.dlq");
        let seen = PartitionOffsets {
            committed: 40,
            stored: -1,
            start: 0,
            end: 100,
        };
        pipeline.partition_offsets("in", 2, seen);
        let plugin = pipeline.plugin("upper");
        plugin.show_version("aaa");
        plugin.show_version("bbb");
        let text = metrics.encode();
        assert!(
            text.contains(r#"weir_records_consumed_total{pipeline="g",topic="in"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"weir_records_dead_lettered_total{pipeline="g",topic="in.dlq"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"weir_consumer_lag{pipeline="g",topic="in",partition="2"} 60"#),
            "{text}"
        );
        assert!(
            text.contains(r#"weir_plugin_info{pipeline="g",plugin="upper",version="bbb"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains("aaa"),
            "the replaced version is no longer exported: {text}"
        );
        pipeline.forget_partition("in", 2);
        assert!(!metrics.encode().contains("partition=\"2\""));
    }

    #[test]
    fn lag_before_the_first_commit_counts_from_what_is_processed_then_the_start() {
        let metrics = Metrics::new();
        let pipeline = metrics.pipeline("g");
        let lag = |stored| {
            let seen = PartitionOffsets {
                committed: -1001,
                stored,
                start: 10,
                end: 50,
            };
            pipeline.partition_offsets("in", 0, seen);
            metrics.encode()
        };
        assert!(lag(45).contains(r#"weir_consumer_lag{pipeline="g",topic="in",partition="0"} 5"#));
        assert!(lag(-1).contains(r#"weir_consumer_lag{pipeline="g",topic="in",partition="0"} 40"#));
    }

    #[test]
    fn transactions_override_the_consumers_committed_offsets() {
        let metrics = Metrics::new();
        let pipeline = metrics.pipeline("g");
        pipeline.transaction_committed([("in", 0, 48)]);
        let seen = PartitionOffsets {
            committed: 20,
            stored: -1,
            start: 0,
            end: 50,
        };
        pipeline.partition_offsets("in", 0, seen);
        assert!(metrics
            .encode()
            .contains(r#"weir_consumer_lag{pipeline="g",topic="in",partition="0"} 2"#));
    }
}
