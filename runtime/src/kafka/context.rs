//! The librdkafka client context: routes librdkafka's logs into `tracing` and
//! reports partition assignment changes to the runner.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::TopicPartitionList;
use tokio::sync::mpsc::UnboundedSender;

/// A change in this process's partition assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionEvent {
    /// These partitions are being taken away; stop dispatching their records.
    Revoked(Vec<(String, i32)>),
    /// These partitions were assigned.
    Assigned(Vec<(String, i32)>),
}

/// Context shared by Weir's consumer and producer.
pub struct WeirContext {
    events: Option<UnboundedSender<PartitionEvent>>,
}

impl WeirContext {
    /// A context that reports rebalances to `events` (consumers) or nowhere (producers).
    pub fn new(events: Option<UnboundedSender<PartitionEvent>>) -> Self {
        Self { events }
    }

    fn report(&self, event: PartitionEvent) {
        if let Some(events) = &self.events {
            // The runner may already be gone during shutdown; nothing to tell then.
            let _ = events.send(event);
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
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for WeirContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = ?partitions(tpl), "partitions revoked");
                self.report(PartitionEvent::Revoked(partitions(tpl)));
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = ?partitions(tpl), "partitions assigned");
            self.report(PartitionEvent::Assigned(partitions(tpl)));
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(offsets = ?offsets.to_topic_map(), "offsets committed"),
            // Nothing new to commit since the last time: not a failure.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed; it is retried with the next commit")
            }
        }
    }
}
