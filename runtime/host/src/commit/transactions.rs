//! Exactly-once: the open transaction, and per partition the next input offset
//! whose outputs it already holds. Batches hold the transaction open (shared)
//! while they hand outputs over; a commit holds it exclusively, sends the
//! offsets and commits, so no output straddles two transactions.

use super::CommitError;
use crate::kafka::{WeirConsumer, WeirProducer};
use crate::telemetry::PipelineMetrics;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{RwLock, RwLockReadGuard};

/// How long one transaction step may take before Weir gives up.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// State of exactly-once mode: the open transaction and, per partition, the next
/// input offset whose outputs it already contains.
pub struct Transactions {
    producer: WeirProducer,
    /// Workers hold it shared while they hand a batch's outputs to the producer;
    /// a commit holds it exclusively, so no output straddles two transactions.
    gate: RwLock<()>,
    positions: Mutex<HashMap<(String, i32), i64>>,
    dirty: AtomicBool,
    /// Set when a batch left the gate without recording its offsets: the open
    /// transaction holds outputs whose inputs it cannot commit, so it must abort.
    poisoned: AtomicBool,
    /// Told the offsets each commit makes (the consumer's statistics do not see them).
    metrics: PipelineMetrics,
}

/// A batch handing its outputs to the open transaction. Finish it with
/// [`BatchInTransaction::advance`]; dropped without that (an error, or the task
/// aborted), it poisons the transaction.
pub struct BatchInTransaction<'a> {
    transactions: &'a Transactions,
    _shared: RwLockReadGuard<'a, ()>,
    finished: bool,
}

impl BatchInTransaction<'_> {
    /// Record that the open transaction holds the outputs of every record of
    /// `topic`/`partition` before `next_offset`.
    pub fn advance(mut self, topic: &str, partition: i32, next_offset: i64) {
        self.transactions
            .positions()
            .insert((topic.to_string(), partition), next_offset);
        self.transactions.dirty.store(true, Ordering::Release);
        self.finished = true;
    }

    /// Leave having handed nothing to the producer: the transaction is unchanged.
    pub fn leave(mut self) {
        self.finished = true;
    }
}

impl Drop for BatchInTransaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.transactions.poisoned.store(true, Ordering::Release);
        }
    }
}

impl Transactions {
    /// Start the first transaction on an initialised transactional producer;
    /// committed offsets are reported to `metrics`.
    pub fn begin(producer: WeirProducer, metrics: PipelineMetrics) -> Result<Self, KafkaError> {
        producer.begin_transaction()?;
        Ok(Self {
            metrics,
            producer,
            gate: RwLock::new(()),
            positions: Mutex::new(HashMap::new()),
            dirty: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
        })
    }

    /// Hold the current transaction open while handing a batch's outputs to the producer.
    pub async fn enter(&self) -> BatchInTransaction<'_> {
        BatchInTransaction {
            transactions: self,
            _shared: self.gate.read().await,
            finished: false,
        }
    }

    /// Drop the positions of partitions this process no longer owns.
    pub fn forget(&self, partitions: &[(String, i32)]) {
        let mut positions = self.positions();
        for key in partitions {
            positions.remove(key);
        }
    }

    fn positions(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), i64>> {
        self.positions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commit the open transaction with the positions reached, and begin the next.
    pub fn commit(
        &self,
        consumer: &WeirConsumer,
        runtime: &tokio::runtime::Handle,
    ) -> Result<bool, CommitError> {
        let _exclusive = runtime.block_on(self.gate.write());
        if self.poisoned.load(Ordering::Acquire) {
            if let Err(abort) = self.producer.abort_transaction(TRANSACTION_TIMEOUT) {
                tracing::warn!(error = %abort, "aborting the poisoned transaction failed");
            }
            return Err(CommitError::HalfBatch);
        }
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), next) in self.positions().iter() {
            offsets
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(CommitError::Transaction)?;
        }
        let group = consumer
            .group_metadata()
            .ok_or(CommitError::NoGroupMetadata)?;
        let result = (|| {
            self.producer
                .send_offsets_to_transaction(&offsets, &group, TRANSACTION_TIMEOUT)?;
            self.producer.commit_transaction(TRANSACTION_TIMEOUT)?;
            self.producer.begin_transaction()
        })();
        if result.is_ok() {
            self.metrics.transaction_committed(
                self.positions()
                    .iter()
                    .map(|((topic, partition), next)| (topic.as_str(), *partition, *next)),
            );
        }
        result.map(|()| true).map_err(|e| {
            if let Err(abort) = self.producer.abort_transaction(TRANSACTION_TIMEOUT) {
                tracing::warn!(error = %abort, "aborting the failed transaction also failed");
            }
            CommitError::Transaction(e)
        })
    }
}
