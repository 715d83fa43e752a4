//! How finished input offsets become committed: either librdkafka commits the
//! offsets Weir stored (at-least-once), or Weir commits them inside the
//! producer's transaction together with the outputs (exactly-once).

use crate::kafka::{WeirConsumer, WeirProducer};
use crate::metrics::PipelineMetrics;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{RwLock, RwLockReadGuard};

/// How long one transaction step may take before Weir gives up.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// A commit that failed; the pipeline stops, and a restart resumes from the
/// last successful commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Committing stored offsets failed.
    #[error("offset commit failed: {0}; records since the last commit will be processed again after restart")]
    Offsets(KafkaError),
    /// The consumer has not joined its group, so the broker cannot fence the commit.
    #[error("cannot commit the transaction: the consumer has no group metadata yet")]
    NoGroupMetadata,
    /// A batch stopped halfway through handing its outputs to the transaction; the
    /// transaction is aborted so that no output is committed without its input offset.
    #[error("a batch failed halfway through the open transaction, which was aborted; its inputs will be processed again")]
    HalfBatch,
    /// A transaction step failed; the open transaction is aborted.
    #[error("transaction commit failed: {0}; its outputs are discarded and its inputs will be processed again after restart")]
    Transaction(KafkaError),
}

/// The commit strategy of a run.
pub enum Committer {
    /// Workers store offsets; librdkafka commits them every `commit_interval`,
    /// and Weir commits synchronously before a revocation and at shutdown.
    StoredOffsets,
    /// Outputs and input offsets commit atomically in Kafka transactions.
    Transactional(Box<Transactions>),
}

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

impl Committer {
    /// Whether Weir must commit on a timer (librdkafka does it otherwise).
    pub fn commits_on_timer(&self) -> bool {
        matches!(self, Committer::Transactional(_))
    }

    /// Commit everything finished so far, synchronously. Runs on the consumer
    /// thread. Returns whether there was anything to commit.
    pub fn commit(
        &self,
        consumer: &WeirConsumer,
        runtime: &tokio::runtime::Handle,
    ) -> Result<bool, CommitError> {
        match self {
            Committer::StoredOffsets => match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => Ok(true),
                // Nothing stored since the last commit.
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(false),
                Err(e) => Err(CommitError::Offsets(e)),
            },
            Committer::Transactional(t) => t.commit(consumer, runtime),
        }
    }

    /// Drop what is known about partitions this process no longer owns.
    pub fn forget(&self, partitions: &[(String, i32)]) {
        if let Committer::Transactional(t) = self {
            let mut positions = t.positions();
            for key in partitions {
                positions.remove(key);
            }
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

    fn positions(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), i64>> {
        self.positions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn commit(
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
