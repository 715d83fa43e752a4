//! The librdkafka client context: routes librdkafka's logs into `tracing`, lets
//! the router finish a partition's work before a rebalance takes it away, and
//! feeds the pipeline's metrics and readiness from rebalances, commits and
//! librdkafka's periodic statistics (lag per partition, broker state).

use crate::telemetry::{PartitionOffsets, PipelineHealth, PipelineMetrics};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;
use std::sync::{Arc, OnceLock};

/// Told about revocations before librdkafka takes the partitions away.
pub trait RebalanceListener: Send + Sync {
    /// Finish (or give up on, within a deadline) the work of `partitions` and
    /// commit it. Runs inside the consumer's `poll`; the rebalance waits for it.
    fn on_revoke(&self, consumer: &BaseConsumer<WeirContext>, partitions: &[(String, i32)]);
}

/// Context shared by Weir's consumer and producer.
#[derive(Default)]
pub struct WeirContext {
    listener: OnceLock<Arc<dyn RebalanceListener>>,
    metrics: OnceLock<PipelineMetrics>,
    health: OnceLock<Arc<PipelineHealth>>,
    /// Where lag is measured from and to.
    lag: OnceLock<LagBounds>,
}

/// Where the lag of a partition ends, and where it starts before any commit.
#[derive(Debug, Clone, Copy)]
pub struct LagBounds {
    /// The consumer reads committed records only: lag ends at the last stable offset.
    pub read_committed: bool,
    /// A group without commits starts at the end of the partition.
    pub starts_at_end: bool,
}

impl WeirContext {
    /// A context with no rebalance listener yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Install the rebalance listener (once; later calls are ignored).
    pub fn set_listener(&self, listener: Arc<dyn RebalanceListener>) {
        let _ = self.listener.set(listener);
    }

    /// Report rebalances, commits and lag to `metrics`, and the group and
    /// broker state to `health` (once; later calls are ignored); `lag` says how
    /// lag is measured.
    pub fn observe(&self, metrics: PipelineMetrics, health: Arc<PipelineHealth>, lag: LagBounds) {
        let _ = self.metrics.set(metrics);
        let _ = self.health.set(health);
        let _ = self.lag.set(lag);
    }

    /// Set the assigned-partitions gauge from the consumer's assignment.
    fn count_assignment(&self, consumer: &BaseConsumer<Self>) {
        if let (Some(metrics), Ok(assignment)) = (self.metrics.get(), consumer.assignment()) {
            metrics.assigned.set(assignment.count() as i64);
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ClientContext for WeirContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // Connection failures repeat every retry while a broker is down; the runner
        // reports an unreachable cluster once, clearly, so keep these at debug.
        if facility == "FAIL" {
            tracing::debug!(target: "librdkafka", facility, "{message}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            if let Some(health) = self.health.get() {
                health.set_broker_reachable(false);
            }
        }
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    }

    fn stats(&self, statistics: Statistics) {
        let (Some(metrics), Some(health)) = (self.metrics.get(), self.health.get()) else {
            return;
        };
        let up = statistics.brokers.values().any(|b| b.state == "UP");
        health.set_broker_reachable(up);
        for (name, topic) in &statistics.topics {
            // Partition -1 is librdkafka's internal "unassigned" queue.
            for p in topic.partitions.values().filter(|p| p.partition >= 0) {
                let bounds = self.lag.get().copied().unwrap_or(LagBounds {
                    read_committed: false,
                    starts_at_end: false,
                });
                let end = if bounds.read_committed {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                if p.desired && end >= 0 {
                    let seen = PartitionOffsets {
                        committed: p.committed_offset,
                        stored: p.stored_offset,
                        start: if bounds.starts_at_end {
                            p.app_offset
                        } else {
                            p.lo_offset
                        },
                        end,
                    };
                    metrics.partition_offsets(name, p.partition, seen);
                } else {
                    metrics.forget_partition(name, p.partition);
                }
            }
        }
    }
}

impl ConsumerContext for WeirContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let revoked = partitions(tpl);
                tracing::info!(partitions = ?revoked, "partitions revoked; finishing their work");
                if let Some(listener) = self.listener.get() {
                    listener.on_revoke(consumer, &revoked);
                }
                if let Some(metrics) = self.metrics.get() {
                    metrics.partitions_revoked.inc_by(revoked.len() as u64);
                    for (topic, partition) in &revoked {
                        metrics.forget_partition(topic, *partition);
                    }
                }
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.count_assignment(consumer);
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = ?partitions(tpl), "partitions assigned");
            if let Some(metrics) = self.metrics.get() {
                metrics.partitions_assigned.inc_by(tpl.count() as u64);
            }
            if let Some(health) = self.health.get() {
                health.set_joined(true);
            }
            // librdkafka keeps a partition's pause flag across revoke and reassign:
            // a partition paused for backpressure when it was revoked would come
            // back paused with no worker left to resume it, and never be consumed.
            if let Err(e) = consumer.resume(tpl) {
                tracing::warn!(error = %e, "cannot clear the pause state of newly assigned partitions");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let counted = !matches!(
            result,
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                RDKafkaErrorCode::NoOffset
            ))
        );
        if let (true, Some(metrics)) = (counted, self.metrics.get()) {
            metrics.commit(result.is_ok());
        }
        match result {
            Ok(()) => {
                if let Some(health) = self.health.get() {
                    // A commit went through: some broker is reachable.
                    health.set_broker_reachable(true);
                }
                tracing::debug!(offsets = ?offsets.to_topic_map(), "offsets committed")
            }
            // Nothing new to commit since the last time: not a failure.
            Err(rdkafka::error::KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed; it is retried with the next commit")
            }
        }
    }
}
