//! The per-partition worker: batch records, run them through the plugin, produce
//! the outputs (or apply the failure policy to records the plugin failed on), and
//! store the input offset once every record up to it is done.
//!
//! One worker per assigned partition keeps that partition's order: batches are
//! processed one after another, outputs are handed to the producer in record
//! order, and the stored offset never passes a record whose outputs are not yet
//! acknowledged (see `offsets`). Partitions run in parallel, bounded by the
//! plugin pool's size.

use crate::commit::{BatchInTransaction, CommitError, Committer, Transactions};
use crate::config::{BatchConfig, FailurePolicy};
use crate::failure::{dead_letter, headers, Backoff, FailureKind, RecordFailure};
use crate::flow::{InFlightBudget, Load, PartitionShare};
use crate::kafka::{OutputSink, PendingDelivery, ProduceError, WeirConsumer};
use crate::metrics::PipelineMetrics;
use crate::offsets::{OffsetError, OffsetTracker};
use crate::otlp::RecordSpan;
use crate::resolve::{resolve_chain, ChainStage, Resolution, ResolveSettings};
use crate::trace_context::Tracing;
use crate::wasm::{Header, InputRecord, OutputRecord, PluginError, PluginPool, PluginSlot};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a partition stopped processing.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The plugin cannot run at all any more (no new instance can be made).
    #[error("{topic}/{partition}: {source}")]
    Plugin {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// Why.
        source: PluginError,
    },
    /// A record failed under the `stop` policy. Earlier records are committed,
    /// so a restart begins at this record.
    #[error("{topic}/{partition} offset {offset}: plugin `{plugin}` failed on the record ({failure}); stopping as plugin.failure.policy = \"stop\" asks (use \"dlq\" or \"skip\" to go on past such records)")]
    RecordFailed {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// Input offset.
        offset: i64,
        /// Plugin name.
        plugin: String,
        /// What went wrong (boxed: it is large and rare).
        failure: Box<RecordFailure>,
    },
    /// An output could not be produced.
    #[error("{topic}/{partition}: {source}")]
    Produce {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// The producer's error (boxed: it is large and rare).
        source: Box<ProduceError>,
    },
    /// Offsets arrived out of order (a bug, or a broker serving odd offsets).
    #[error("{topic}/{partition}: {source}")]
    Offsets {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// The tracker's complaint.
        source: OffsetError,
    },
}

/// The parts of the pipeline shared by all partition workers.
pub struct Shared {
    /// The plugins, in chain order; each batch takes their current versions.
    pub stages: Vec<Stage>,
    /// Whether outputs get a `weir.plugin.version` header.
    pub version_header: bool,
    /// Where outputs go.
    pub output: OutputSink,
    /// The consumer, for storing offsets.
    pub consumer: Arc<WeirConsumer>,
    /// How finished offsets get committed.
    pub committer: Committer,
    /// Batch settings.
    pub batch: BatchConfig,
    /// Bytes in flight across all partitions; workers give back what they finish.
    pub budget: Arc<InFlightBudget>,
    /// Retries, limits and the policy for records the plugin fails on.
    pub failure: FailureHandling,
    /// The pipeline's metrics.
    pub metrics: PipelineMetrics,
    /// How traces continue through the pipeline.
    pub tracing: Tracing,
}

impl Shared {
    /// Commit everything finished so far (see [`Committer::commit`]), timing it;
    /// transaction commits are counted here, offset commits by the consumer's
    /// commit callback (which also sees librdkafka's own periodic commits).
    pub fn commit(
        &self,
        consumer: &WeirConsumer,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), CommitError> {
        let started = std::time::Instant::now();
        let result = self.committer.commit(consumer, runtime);
        match result {
            Ok(false) => {}
            Ok(true) | Err(_) => {
                self.metrics
                    .commit_duration
                    .observe(started.elapsed().as_secs_f64());
                if self.committer.commits_on_timer() {
                    self.metrics.commit(result.is_ok());
                }
            }
        }
        result.map(|_| ())
    }
}

/// One plugin of the chain.
#[derive(Clone)]
pub struct Stage {
    /// Its live version.
    pub slot: Arc<PluginSlot>,
    /// Its retries and output limits.
    pub resolve: ResolveSettings,
}

/// What happens to records the plugins fail on.
pub struct FailureHandling {
    /// Dead-letter, skip or stop.
    pub policy: FailurePolicy,
    /// The dead-letter topic of each input topic.
    pub dead_letter_topics: BTreeMap<String, String>,
}

/// First wait before writing a dead-letter record again after the broker refused it.
const DEAD_LETTER_RETRY: Backoff = Backoff {
    first: Duration::from_millis(500),
    max: Duration::from_secs(30),
};

/// Work whose outputs are all acknowledged: the offsets now complete and the
/// records and bytes they held.
#[derive(Default)]
struct Finished {
    offsets: Vec<i64>,
    load: Load,
}

/// Records of a batch whose outputs are acknowledged together.
#[derive(Default)]
struct Segment {
    deliveries: Vec<Delivery>,
    finished: Finished,
    /// The records with outputs, kept until those are acknowledged so that one
    /// whose output the broker refuses for good can still be dead-lettered.
    sources: Vec<InputRecord>,
    /// The exported spans of its records; they end when dropped, once the
    /// segment's deliveries are acknowledged.
    spans: Vec<RecordSpan>,
}

/// Resolves when every output of a batch is acknowledged.
type BatchAck = BoxFuture<'static, Result<Finished, AckError>>;

/// Why a segment's acknowledgement failed.
enum AckError {
    /// An output or dead letter was not acknowledged.
    Produce(ProduceError),
    /// The broker refused a record's output for good under the `stop` policy.
    Stop {
        /// The record's offset.
        offset: i64,
        /// Its failure.
        failure: Box<RecordFailure>,
    },
}

impl From<ProduceError> for AckError {
    fn from(e: ProduceError) -> Self {
        AckError::Produce(e)
    }
}

/// Processes the records of one partition, in order.
pub struct PartitionWorker {
    topic: String,
    partition: i32,
    records: mpsc::Receiver<InputRecord>,
    shared: Arc<Shared>,
    /// This partition's part of the in-flight byte budget.
    share: Arc<PartitionShare>,
    tracker: OffsetTracker,
    stored: Option<i64>,
    acks: FuturesUnordered<BatchAck>,
    /// Records received but not yet handed to the plugin.
    pending_batch: Vec<InputRecord>,
    /// Set while a dead letter is being retried: no new batches start, so the
    /// partition's buffer fills and the router pauses it.
    dead_letter_blocked: Arc<AtomicBool>,
}

impl PartitionWorker {
    /// A worker for `topic`/`partition` fed by `records`, whose bytes are held in `share`.
    pub fn new(
        topic: String,
        partition: i32,
        records: mpsc::Receiver<InputRecord>,
        shared: Arc<Shared>,
        share: Arc<PartitionShare>,
    ) -> Self {
        Self {
            topic,
            partition,
            records,
            shared,
            share,
            tracker: OffsetTracker::new(),
            stored: None,
            acks: FuturesUnordered::new(),
            pending_batch: Vec::new(),
            dead_letter_blocked: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Run until `stop` is cancelled (revocation or shutdown) or the record
    /// channel closes, then wait for the outputs already produced; or until a
    /// record fails. On `stop`, the batch being processed finishes and records
    /// still buffered are dropped unprocessed: their offsets are not stored, so
    /// whoever owns the partition next reads them again.
    pub async fn run(mut self, stop: CancellationToken) -> Result<(), PipelineError> {
        // Also cancelled when this worker fails, so that retries give up.
        let halt = stop.child_token();
        let result = self.consume(&halt).await;
        if result.is_err() {
            halt.cancel();
            self.drain_acks().await;
        }
        self.share.release(Load::of_all(&self.pending_batch));
        self.records.close();
        while let Ok(record) = self.records.try_recv() {
            self.share.release(Load::of(&record));
        }
        // A batch that ended in an error may keep its bytes: the error ends this
        // run of the pipeline, and the next run starts with a fresh budget.
        result
    }

    async fn consume(&mut self, stop: &CancellationToken) -> Result<(), PipelineError> {
        let max = self.shared.batch.max_records;
        let mut open = true;
        while open || !self.acks.is_empty() {
            tokio::select! {
                biased;
                Some(ack) = self.acks.next(), if !self.acks.is_empty() => self.on_ack(ack)?,
                _ = stop.cancelled(), if open => open = false,
                still_open = fill_batch(&mut self.records, &mut self.pending_batch, &self.shared.batch),
                    if open && !self.dead_letter_blocked.load(Ordering::Acquire) => {
                    open = still_open;
                    if !self.pending_batch.is_empty() {
                        let records = std::mem::replace(&mut self.pending_batch, Vec::with_capacity(max));
                        self.process(records, stop).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Run one batch through the plugin and hand its outputs (and dead-letter
    /// records) to the producer.
    async fn process(
        &mut self,
        records: Vec<InputRecord>,
        stop: &CancellationToken,
    ) -> Result<(), PipelineError> {
        for record in &records {
            self.tracker
                .dispatch(record.offset)
                .map_err(|source| self.offsets_error(source))?;
        }
        let last = records[records.len() - 1].offset;
        let load = Load::of_all(&records);
        let started = std::time::SystemTime::now();
        let shared = Arc::clone(&self.shared);
        shared.metrics.batch_records.observe(records.len() as f64);
        // Every record of this batch is processed by these versions.
        let pools: Vec<Arc<PluginPool>> = shared.stages.iter().map(|s| s.slot.current()).collect();
        let chain: Vec<ChainStage<'_>> = shared
            .stages
            .iter()
            .zip(&pools)
            .map(|(stage, pool)| ChainStage {
                pool,
                settings: &stage.resolve,
            })
            .collect();
        // The plugin whose outputs are produced.
        let pool = pools.last().expect("a chain has at least one plugin");
        let resolved = resolve_chain(&chain, records, stop)
            .await
            .map_err(|source| PipelineError::Plugin {
                topic: self.topic.clone(),
                partition: self.partition,
                source,
            })?;

        // In exactly-once mode, a batch's outputs all go into one transaction
        // (or several, if a dead letter has to wait; see
        // `retry_dead_letter_in_transaction`).
        let mut transaction = match &shared.committer {
            Committer::Transactional(t) => Some(t.enter().await),
            Committer::StoredOffsets => None,
        };
        // Acknowledgements are awaited per segment of the batch: a new segment
        // starts at each dead letter, so one that cannot be written holds back
        // only its own record and those after it.
        let mut segment = Segment::default();
        let mut accounted = Load::default();
        let mut next = last + 1;
        let mut halt = None;
        for (record, resolution) in resolved {
            let failure = match resolution {
                Resolution::Outputs(mut outputs) => {
                    if shared.version_header {
                        tag_versions(&mut outputs, &pools);
                    }
                    if let Some(span) =
                        shared
                            .tracing
                            .continue_trace(&record, &mut outputs, started)
                    {
                        segment.spans.push(span);
                    }
                    self.send_all(&outputs, &record, pool, &mut segment).await?
                }
                Resolution::Failed(failure) => Some(failure),
                Resolution::Unfinished => {
                    next = record.offset;
                    break;
                }
            };
            let failed = failure.is_some();
            if let Some(failure) = failure {
                note_failure(&shared, &record, &failure);
                match shared.failure.policy {
                    FailurePolicy::Dlq => {
                        // Outputs of this record handed over before one was refused
                        // (earlier failed records' went with their own dead letters).
                        let partly_sent = segment.deliveries.iter().any(|d| {
                            matches!(d, Delivery::Output { source, .. } if *source == segment.sources.len())
                        });
                        self.await_segment(std::mem::take(&mut segment), pool, stop)?;
                        let letter = dead_letter_for(&shared, &record, &failure);
                        let pending = match self
                            .hand_over_dead_letter(
                                &shared,
                                &mut transaction,
                                &letter,
                                &record,
                                partly_sent,
                                stop,
                            )
                            .await?
                        {
                            LetterHandOver::Taken(pending) => Some(pending),
                            LetterHandOver::Later => None,
                            LetterHandOver::GaveUp => {
                                next = record.offset;
                                break;
                            }
                        };
                        segment.deliveries.push(Delivery::DeadLetter {
                            pending,
                            letter,
                            timestamp: record.timestamp,
                        });
                    }
                    FailurePolicy::Skip => {}
                    FailurePolicy::Stop => {
                        halt = Some(PipelineError::RecordFailed {
                            topic: self.topic.clone(),
                            partition: self.partition,
                            offset: record.offset,
                            plugin: failure.plugin.name.clone(),
                            failure: Box::new(failure),
                        });
                        next = record.offset;
                        break;
                    }
                }
            }
            let size = Load::of(&record);
            segment.finished.offsets.push(record.offset);
            segment.finished.load += size;
            accounted += size;
            // A record that failed at hand-over went through the policy already;
            // only one whose outputs were all handed over can be refused later.
            if !failed
                && matches!(segment.deliveries.last(), Some(Delivery::Output { source, .. }) if *source == segment.sources.len())
            {
                segment.sources.push(record);
            }
        }
        if let Some(batch) = transaction {
            batch.advance(&self.topic, self.partition, next);
        }
        // Records left unfinished give their load back with the last segment.
        segment.finished.load += load - accounted;
        self.await_segment(segment, pool, stop)?;
        match halt {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Complete `segment`'s records once all its deliveries are acknowledged
    /// (at once if it has none).
    fn await_segment(
        &mut self,
        segment: Segment,
        pool: &Arc<PluginPool>,
        stop: &CancellationToken,
    ) -> Result<(), PipelineError> {
        let Segment {
            deliveries,
            finished,
            sources,
            spans,
        } = segment;
        if deliveries.is_empty() {
            return self.on_ack(Ok(finished));
        }
        let retry = self.retries_dead_letters().then(|| DeadLetterRetry {
            stop: stop.clone(),
            blocked: Arc::clone(&self.dead_letter_blocked),
        });
        let shared = Arc::clone(&self.shared);
        let pool = Arc::clone(pool);
        self.acks.push(
            async move {
                let _spans = spans;
                // The last record whose refused output was dead-lettered: one
                // dead letter per record, however many outputs were refused.
                let mut refused = None;
                for delivery in deliveries {
                    let written = match delivery {
                        Delivery::Output { pending, source } => {
                            match pending.acknowledged().await {
                                Ok(()) => true,
                                Err(e) if e.is_permanent() && retry.is_some() => {
                                    // A record missing from `sources` already failed at
                                    // hand-over and went through the policy then; one
                                    // dead letter per record, however many outputs were refused.
                                    match sources.get(source) {
                                        Some(record) if refused != Some(source) => {
                                            refused = Some(source);
                                            let failure = RecordFailure {
                                                kind: FailureKind::Produce,
                                                message: e.to_string(),
                                                attempts: 1,
                                                plugin: pool.identity(),
                                            };
                                            apply_to_refused(
                                                &shared,
                                                record,
                                                failure,
                                                retry.as_ref(),
                                            )
                                            .await?
                                        }
                                        _ => true,
                                    }
                                }
                                Err(e) => return Err(e.into()),
                            }
                        }
                        letter => letter.acknowledged(&shared, retry.as_ref()).await?,
                    };
                    if !written {
                        // Given up at a stop: these records stay incomplete.
                        return Ok(Finished {
                            offsets: Vec::new(),
                            load: finished.load,
                        });
                    }
                }
                observe_end_to_end(&shared.metrics, &sources);
                Ok(finished)
            }
            .boxed(),
        );
        Ok(())
    }

    /// Hand `record`'s outputs to the producer. An output the producer refuses
    /// for good (too large, no such partition) makes the record a failure of kind
    /// `produce`, returned for the failure policy; other producer errors stop
    /// the pipeline.
    async fn send_all(
        &mut self,
        outputs: &[OutputRecord],
        record: &InputRecord,
        pool: &PluginPool,
        segment: &mut Segment,
    ) -> Result<Option<RecordFailure>, PipelineError> {
        // The index `record` will have in `segment.sources` once its outputs are handed over.
        let source = segment.sources.len();
        for output in outputs {
            match self.shared.output.send(output, record.timestamp).await {
                Ok(pending) => segment
                    .deliveries
                    .push(Delivery::Output { pending, source }),
                Err(e) if e.is_permanent() => {
                    return Ok(Some(RecordFailure {
                        kind: FailureKind::Produce,
                        message: e.to_string(),
                        attempts: 1,
                        plugin: pool.identity(),
                    }))
                }
                Err(e) => return Err(self.produce_error(e)),
            }
        }
        Ok(None)
    }

    /// Hand `letter`, the dead letter of `record`, to the producer. Refused
    /// outside a transaction, it is handed over again while its acknowledgement
    /// is awaited. In a transaction, a permanent refusal for a record with
    /// nothing in it yet (`partly_sent` false) completes what precedes the record
    /// in `transaction` and retries the letter in later ones; any other refusal
    /// fails the batch, whose unfinished transaction is then aborted.
    async fn hand_over_dead_letter<'t>(
        &mut self,
        shared: &'t Shared,
        transaction: &mut Option<BatchInTransaction<'t>>,
        letter: &OutputRecord,
        record: &InputRecord,
        partly_sent: bool,
        stop: &CancellationToken,
    ) -> Result<LetterHandOver, PipelineError> {
        let error = match shared.output.send(letter, record.timestamp).await {
            Ok(pending) => return Ok(LetterHandOver::Taken(pending)),
            Err(e) => e,
        };
        match (&shared.committer, transaction.take()) {
            (Committer::Transactional(t), Some(batch)) if error.is_permanent() && !partly_sent => {
                batch.advance(&self.topic, self.partition, record.offset);
                let retried =
                    retry_dead_letter_in_transaction(shared, t, letter, record, error, stop).await;
                Ok(match retried {
                    Some((pending, batch)) => {
                        *transaction = Some(batch);
                        LetterHandOver::Taken(pending)
                    }
                    None => LetterHandOver::GaveUp,
                })
            }
            (Committer::Transactional(_), _) => Err(self.produce_error(error)),
            (Committer::StoredOffsets, _) => {
                tracing::error!(%error, "cannot hand a dead-letter record to the producer; retrying");
                Ok(LetterHandOver::Later)
            }
        }
    }

    /// Whether a dead-letter write the broker refuses in its delivery report is
    /// retried in place (the partition waits) rather than failing the batch: yes,
    /// except inside a transaction, which such a failure aborts.
    fn retries_dead_letters(&self) -> bool {
        matches!(self.shared.committer, Committer::StoredOffsets)
    }

    /// Mark a batch's records complete and store the new committable offset.
    fn on_ack(&mut self, ack: Result<Finished, AckError>) -> Result<(), PipelineError> {
        let finished = ack.map_err(|e| match e {
            AckError::Produce(source) => self.produce_error(source),
            AckError::Stop { offset, failure } => PipelineError::RecordFailed {
                topic: self.topic.clone(),
                partition: self.partition,
                offset,
                plugin: failure.plugin.name.clone(),
                failure,
            },
        })?;
        self.share.release(finished.load);
        for offset in finished.offsets {
            self.tracker
                .complete(offset)
                .map_err(|source| self.offsets_error(source))?;
        }
        self.store_committable();
        Ok(())
    }

    /// Wait for outstanding deliveries before stopping, storing what completed.
    async fn drain_acks(&mut self) {
        while let Some(ack) = self.acks.next().await {
            if let Err(e) = self.on_ack(ack) {
                tracing::error!(topic = %self.topic, partition = self.partition, error = %e,
                    "output not acknowledged while stopping; its input will be processed again");
            }
        }
    }

    fn store_committable(&mut self) {
        if !matches!(self.shared.committer, Committer::StoredOffsets) {
            return;
        }
        let Some(offset) = self.tracker.committable() else {
            return;
        };
        if self.stored == Some(offset) {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(1);
        if let Err(e) =
            tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(offset))
        {
            tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "cannot build offset list");
            return;
        }
        match self.shared.consumer.store_offsets(&tpl) {
            Ok(()) => self.stored = Some(offset),
            // After a revocation the partition is no longer ours; its new owner
            // resumes from the last commit, so these records are processed again.
            Err(e) => tracing::debug!(topic = %self.topic, partition = self.partition, offset,
                error = %e, "offset not stored (partition no longer assigned?)"),
        }
    }

    fn produce_error(&self, source: ProduceError) -> PipelineError {
        PipelineError::Produce {
            topic: self.topic.clone(),
            partition: self.partition,
            source: Box::new(source),
        }
    }

    fn offsets_error(&self, source: OffsetError) -> PipelineError {
        PipelineError::Offsets {
            topic: self.topic.clone(),
            partition: self.partition,
            source,
        }
    }
}

/// The dead letter for `record`, written to its input topic's dead-letter topic.
fn dead_letter_for(shared: &Shared, record: &InputRecord, failure: &RecordFailure) -> OutputRecord {
    let dlq = shared
        .failure
        .dead_letter_topics
        .get(&record.topic)
        .expect("every input topic has a dead-letter topic");
    dead_letter(record, failure, dlq)
}

/// The failure policy for `record`, one of whose outputs the broker refused for
/// good in its delivery report: dead-letter it (waiting for that write), skip
/// it, or stop at it. Returns false if a stop gave up the dead-letter write.
async fn apply_to_refused(
    shared: &Shared,
    record: &InputRecord,
    failure: RecordFailure,
    retry: Option<&DeadLetterRetry>,
) -> Result<bool, AckError> {
    note_failure(shared, record, &failure);
    match shared.failure.policy {
        FailurePolicy::Dlq => {
            let delivery = Delivery::DeadLetter {
                pending: None,
                letter: dead_letter_for(shared, record, &failure),
                timestamp: record.timestamp,
            };
            Ok(delivery.acknowledged(shared, retry).await?)
        }
        FailurePolicy::Skip => Ok(true),
        FailurePolicy::Stop => Err(AckError::Stop {
            offset: record.offset,
            failure: Box::new(failure),
        }),
    }
}

/// Hand `record`'s dead letter, which the producer refused with `error`, to
/// the producer again with backoff, each time in the then open transaction,
/// until it is taken. Between attempts this partition waits (it is never
/// skipped) while the other partitions' transactions commit. Returns the
/// pending write and the transaction it is in, or `None` if `stop` gave up.
async fn retry_dead_letter_in_transaction<'t>(
    shared: &Shared,
    transactions: &'t Transactions,
    letter: &OutputRecord,
    record: &InputRecord,
    mut error: ProduceError,
    stop: &CancellationToken,
) -> Option<(PendingDelivery, BatchInTransaction<'t>)> {
    let mut failures = 0;
    loop {
        failures += 1;
        if !wait_to_retry_dead_letter(failures, &error, stop).await {
            return None;
        }
        let batch = transactions.enter().await;
        match shared.output.send(letter, record.timestamp).await {
            Ok(pending) => return Some((pending, batch)),
            Err(e) => {
                batch.leave();
                error = e;
            }
        }
    }
}

/// Log that a dead letter could not be written (`failures` times so far) and
/// wait the backoff before the next attempt. Returns false if `stop` came first.
async fn wait_to_retry_dead_letter(
    failures: u32,
    error: &ProduceError,
    stop: &CancellationToken,
) -> bool {
    let delay = DEAD_LETTER_RETRY.delay(failures);
    tracing::error!(%error, retry_in = ?delay,
        "cannot write a record to its dead-letter topic; its partition waits until it can (it is never skipped)");
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = stop.cancelled() => false,
    }
}

/// Say in headers of each output which plugin versions produced it, one header
/// per plugin of the chain, in order.
fn tag_versions(outputs: &mut [OutputRecord], pools: &[Arc<PluginPool>]) {
    for output in outputs {
        for pool in pools {
            output.headers.push(Header {
                key: headers::VERSION.to_string(),
                value: pool.version().as_bytes().to_vec(),
            });
        }
    }
}

/// Log and count that `record` failed, saying what the failure policy does with it.
fn note_failure(shared: &Shared, record: &InputRecord, failure: &RecordFailure) {
    shared
        .metrics
        .failed(&failure.plugin.name, failure.kind.as_str());
    let action = match shared.failure.policy {
        FailurePolicy::Dlq => "writing it to the dead-letter topic",
        FailurePolicy::Skip => {
            shared.metrics.skipped.inc();
            "skipping it (policy skip)"
        }
        FailurePolicy::Stop => "stopping (policy stop)",
    };
    tracing::warn!(topic = %record.topic, partition = record.partition,
        offset = record.offset, plugin = %failure.plugin.name, version = %failure.plugin.version,
        kind = %failure.kind, attempts = failure.attempts,
        error = %failure.message, "record failed; {action}");
}

/// Observe, for each of `records` (whose outputs are all acknowledged now), the
/// time since its timestamp.
fn observe_end_to_end(metrics: &PipelineMetrics, records: &[InputRecord]) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for timestamp in records.iter().filter_map(|r| r.timestamp) {
        metrics
            .end_to_end
            .observe((now_ms - timestamp).max(0) as f64 / 1000.0);
    }
}

/// How handing a record's dead letter to the producer ended.
enum LetterHandOver {
    /// The producer took it (in the open transaction, if there is one).
    Taken(PendingDelivery),
    /// Refused at once outside a transaction: handed over again later.
    Later,
    /// A stop came while it waited between transactions: the record stays unfinished.
    GaveUp,
}

/// One record handed to the producer for a batch.
enum Delivery {
    /// A plugin output of the segment's record number `source`.
    Output {
        pending: PendingDelivery,
        source: usize,
    },
    /// A record the plugin failed on, on its way to the dead-letter topic.
    /// `pending` is `None` when the producer refused it at once; it is then
    /// handed over again while waiting for acknowledgement.
    DeadLetter {
        pending: Option<PendingDelivery>,
        letter: OutputRecord,
        timestamp: Option<i64>,
    },
}

/// How a dead letter the broker refuses is retried in place.
struct DeadLetterRetry {
    /// Give up (leaving the record incomplete) when this is cancelled.
    stop: CancellationToken,
    /// Set while retrying, so the worker starts no new batches.
    blocked: Arc<AtomicBool>,
}

impl Delivery {
    /// Wait for the broker's acknowledgement. With `retry`, a dead-letter record
    /// the broker refuses is written again with backoff until it is accepted,
    /// holding its partition back (it is never skipped); without it (in a
    /// transaction) the failure aborts the transaction instead. Returns false if
    /// the retry was given up at a stop.
    async fn acknowledged(
        self,
        shared: &Shared,
        retry: Option<&DeadLetterRetry>,
    ) -> Result<bool, ProduceError> {
        let sink = &shared.output;
        let (mut pending, letter, timestamp) = match self {
            Delivery::Output { pending, .. } => return pending.acknowledged().await.map(|()| true),
            Delivery::DeadLetter {
                pending,
                letter,
                timestamp,
            } => (pending, letter, timestamp),
        };
        let mut failures = 0;
        loop {
            let result = match pending.take() {
                Some(p) => p.acknowledged().await,
                None => match sink.send(&letter, timestamp).await {
                    Ok(p) => {
                        pending = Some(p);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            let (error, retry) = match (result, retry) {
                (Ok(()), retry) => {
                    if let Some(retry) = retry {
                        retry.blocked.store(false, Ordering::Release);
                    }
                    shared
                        .metrics
                        .dead_lettered(letter.topic.as_deref().unwrap_or_default());
                    return Ok(true);
                }
                (Err(e), None) => return Err(e),
                (Err(e), Some(retry)) => (e, retry),
            };
            retry.blocked.store(true, Ordering::Release);
            failures += 1;
            if !wait_to_retry_dead_letter(failures, &error, &retry.stop).await {
                retry.blocked.store(false, Ordering::Release);
                return Ok(false);
            }
        }
    }
}

/// Fill `batch` from `records` until it holds `max_records`, or `linger` has
/// passed since its first record. Cancel-safe: records received stay in `batch`.
/// Returns false once the channel is closed and empty.
async fn fill_batch(
    records: &mut mpsc::Receiver<InputRecord>,
    batch: &mut Vec<InputRecord>,
    settings: &BatchConfig,
) -> bool {
    let max = settings.max_records;
    if batch.is_empty() && records.recv_many(batch, max).await == 0 {
        return false;
    }
    let deadline = Instant::now() + settings.linger;
    while batch.len() < max {
        let room = max - batch.len();
        match tokio::time::timeout_at(deadline, records.recv_many(batch, room)).await {
            Ok(0) => return false,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(offset: i64) -> InputRecord {
        InputRecord {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp: None,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    #[tokio::test]
    async fn batches_fill_to_the_limit_or_stop_at_the_linger() {
        let settings = BatchConfig {
            max_records: 3,
            linger: Duration::from_millis(20),
            partition_buffer: 10,
        };
        let (tx, mut rx) = mpsc::channel(10);
        for o in 0..4 {
            tx.send(record(o)).await.unwrap();
        }
        let mut batch = Vec::new();
        assert!(fill_batch(&mut rx, &mut batch, &settings).await);
        assert_eq!(
            batch.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        batch.clear();
        let started = std::time::Instant::now();
        assert!(fill_batch(&mut rx, &mut batch, &settings).await);
        assert_eq!(batch.len(), 1);
        assert!(started.elapsed() >= Duration::from_millis(20));
        drop(tx);
        batch.clear();
        assert!(!fill_batch(&mut rx, &mut batch, &settings).await);
    }
}
