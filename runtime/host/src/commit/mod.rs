//! How finished input offsets become committed. Two strategies sit behind one
//! [`Committer`]: librdkafka commits the offsets Weir stores once a record and
//! everything before it are done (at-least-once, `stored`), or Weir commits them
//! inside the producer's transaction together with the outputs (exactly-once,
//! `transactions`). A partition worker sees only a [`BatchScope`] per batch and
//! a [`PartitionCommits`] for its completed offsets, never the strategy.

mod stored;
mod transactions;

pub use stored::PartitionCommits;

use crate::kafka::{WeirConsumer, WeirProducer};
use crate::telemetry::PipelineMetrics;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Arc;
use transactions::{BatchInTransaction, Transactions};

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

/// Commits a pipeline's finished offsets, by one of the two strategies.
pub struct Committer {
    consumer: Arc<WeirConsumer>,
    metrics: PipelineMetrics,
    transactions: Option<Transactions>,
}

impl Committer {
    /// At-least-once: workers store offsets; librdkafka commits them on its
    /// timer, and [`Committer::commit`] commits synchronously before a
    /// revocation and at shutdown.
    pub fn stored_offsets(consumer: Arc<WeirConsumer>, metrics: PipelineMetrics) -> Self {
        Self {
            consumer,
            metrics,
            transactions: None,
        }
    }

    /// Exactly-once: outputs and input offsets commit atomically in Kafka
    /// transactions of `producer` (initialised for transactions); the first
    /// transaction starts now.
    pub fn transactional(
        consumer: Arc<WeirConsumer>,
        producer: WeirProducer,
        metrics: PipelineMetrics,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            transactions: Some(Transactions::begin(producer, metrics.clone())?),
            consumer,
            metrics,
        })
    }

    /// Whether outputs and offsets commit in Kafka transactions.
    pub fn is_transactional(&self) -> bool {
        self.transactions.is_some()
    }

    /// Whether Weir must commit on a timer (librdkafka does it otherwise).
    pub fn commits_on_timer(&self) -> bool {
        self.transactions.is_some()
    }

    /// Commit everything finished so far, synchronously, timing it. Runs on the
    /// consumer thread. Returns whether there was anything to commit.
    /// Transaction commits are counted here; offset commits by the consumer's
    /// commit callback (which also sees librdkafka's own periodic commits).
    pub fn commit(&self, runtime: &tokio::runtime::Handle) -> Result<bool, CommitError> {
        let started = std::time::Instant::now();
        let result = match &self.transactions {
            None => match self.consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => Ok(true),
                // Nothing stored since the last commit.
                Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(false),
                Err(e) => Err(CommitError::Offsets(e)),
            },
            Some(t) => t.commit(&self.consumer, runtime),
        };
        if !matches!(result, Ok(false)) {
            self.metrics
                .commit_duration
                .observe(started.elapsed().as_secs_f64());
            if self.commits_on_timer() {
                self.metrics.commit(result.is_ok());
            }
        }
        result
    }

    /// Drop what is known about partitions this process no longer owns.
    pub fn forget(&self, partitions: &[(String, i32)]) {
        if let Some(t) = &self.transactions {
            t.forget(partitions);
        }
    }

    /// Open the scope in which a batch hands its outputs to the producer: in
    /// exactly-once mode, the open transaction (which cannot commit meanwhile).
    pub async fn begin_batch(&self) -> BatchScope<'_> {
        let transaction = match &self.transactions {
            Some(t) => Some(t.enter().await),
            None => None,
        };
        BatchScope {
            committer: self,
            transaction,
        }
    }

    /// Where `topic`/`partition`'s worker reports its committable offset.
    pub fn partition(&self, topic: &str, partition: i32) -> PartitionCommits {
        // In a transaction, a batch's scope records its position instead.
        let consumer = self
            .transactions
            .is_none()
            .then(|| Arc::clone(&self.consumer));
        PartitionCommits::new(consumer, topic, partition)
    }
}

/// One batch's hold on the commit: in exactly-once mode, its outputs are all in
/// the transaction that also commits its input offsets. Close it with
/// [`BatchScope::close`] once every output is handed over; dropped while open
/// (an error, or the task aborted), it poisons the open transaction, which then
/// aborts instead of committing.
pub struct BatchScope<'a> {
    committer: &'a Committer,
    transaction: Option<BatchInTransaction<'a>>,
}

impl BatchScope<'_> {
    /// Whether the batch's outputs go into a transaction. A delivery the broker
    /// refuses there aborts the transaction, so a refused dead letter cannot
    /// wait in place: it moves to a later transaction (see [`BatchScope::reopen`]).
    pub fn in_transaction(&self) -> bool {
        self.committer.is_transactional()
    }

    /// Say that every record of `topic`/`partition` before `next_offset` has its
    /// outputs handed over, and let the transaction commit. Nothing to do with
    /// stored offsets: workers store them as deliveries are acknowledged.
    pub fn close(&mut self, topic: &str, partition: i32, next_offset: i64) {
        if let Some(transaction) = self.transaction.take() {
            transaction.advance(topic, partition, next_offset);
        }
    }

    /// Hold the then-open transaction again after [`BatchScope::close`] (a
    /// dead letter continues in a later transaction).
    pub async fn reopen(&mut self) {
        if let Some(t) = &self.committer.transactions {
            self.transaction = Some(t.enter().await);
        }
    }

    /// Close having handed nothing over since the scope was (re)opened.
    pub fn abandon(&mut self) {
        if let Some(transaction) = self.transaction.take() {
            transaction.leave();
        }
    }
}
