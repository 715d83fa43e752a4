//! The loop of one partition's worker: take records into its window, start
//! plugin calls as the scheduler allows (one at a time, or side by side by
//! key), resolve each through the plugin chain, hand outputs (or dead letters)
//! to the producer in offset order, and complete offsets as segments are
//! acknowledged.
//! The committable offset never passes a record whose outputs are not yet
//! acknowledged (see `offsets`).

use super::dead_letter::{LetterHandOver, RetryInPlace};
use super::policy::{forbidden_topic, note_failure};
use super::reorder::{Reorder, Resolved, Versions};
use super::schedule::Scheduler;
use super::segment::{AckError, Delivery, Finished, Segment};
use super::{headers, PipelineContext, PipelineError};
use crate::budget::{Load, PartitionShare};
use crate::commit::{BatchScope, PartitionCommits};
use crate::config::FailurePolicy;
use crate::kafka::ProduceError;
use crate::offsets::{OffsetError, OffsetTracker};
use crate::panics::{self, Stage};
use crate::process::{
    resolve_chain, Chain, ChainStage, FailureKind, Progress, RecordFailure, Resolution,
};
use crate::record::{Header, Output, Record};
use crate::state::{PartitionState, RecordWrites};
use crate::telemetry::ConcurrencyGauges;
use crate::wasm::{PluginError, PluginPool, TrapKind};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Resolves when every delivery of a segment is acknowledged.
type SegmentAck = BoxFuture<'static, Result<Finished, AckError>>;

/// A plugin call of this partition, or the retries of some of its records,
/// running.
type Call = BoxFuture<'static, CallStep>;

/// What a plugin call, or the retries of some of its records, came back with.
struct CallStep {
    /// Which call of the partition.
    call: u64,
    /// Whether this is the call itself (not retries of its records).
    first: bool,
    /// The plugin versions it used.
    versions: Versions,
    /// When the call started.
    started: SystemTime,
    /// The records resolved, and the retries still going on.
    progress: Result<Progress, PluginError>,
}

/// Processes the records of one partition: in offset order under `ordering =
/// "partition"`, with calls side by side under `key` and `unordered`.
pub struct PartitionWorker {
    topic: String,
    partition: i32,
    records: mpsc::Receiver<Record>,
    context: Arc<PipelineContext>,
    /// This partition's part of the in-flight byte budget.
    share: Arc<PartitionShare>,
    tracker: OffsetTracker,
    commits: PartitionCommits,
    acks: FuturesUnordered<SegmentAck>,
    /// Records taken in and not yet in a plugin call.
    scheduler: Scheduler,
    /// Plugin calls, and retries of their records, in flight.
    calls: FuturesUnordered<Call>,
    /// How many steps each call still has in flight.
    steps_in_flight: HashMap<u64, usize>,
    /// The id of the next call.
    next_call: u64,
    /// Resolutions waiting for earlier records' before being handed over.
    reorder: Reorder,
    /// Set once a hand-over stopped short (a stop, or the `stop` policy):
    /// nothing later is handed over.
    handing_over_ended: bool,
    /// Set while a dead letter is being retried: no new calls start, so the
    /// partition's buffer fills and the router pauses it.
    dead_letter_blocked: Arc<AtomicBool>,
    /// Each plugin's state of this partition (`None` for a plugin without
    /// state), in chain order; opened when the worker starts.
    states: Vec<Option<Arc<PartitionState>>>,
    /// This partition's concurrency gauges.
    gauges: ConcurrencyGauges,
    /// What this worker last set them to.
    reported: InFlightReport,
}

/// What a worker last reported of its concurrency.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct InFlightReport {
    calls: i64,
    keys: i64,
    unfinished: i64,
}

/// Records handed over together, under one commit scope.
struct BatchInFlight<'c> {
    /// Its hold on the commit (the open transaction, in exactly-once mode).
    scope: BatchScope<'c>,
    /// The segment being filled.
    segment: Segment,
    /// The load of the records placed in segments so far.
    accounted: Load,
    /// The offset after the last record the batch finished (or gave up on).
    next: i64,
    /// Why the batch stopped the partition, under the `stop` policy.
    halt: Option<PipelineError>,
    /// When the batch started, for the records' spans.
    started: SystemTime,
}

impl PartitionWorker {
    /// A worker for `topic`/`partition` fed by `records`, whose bytes are held in `share`.
    pub fn new(
        topic: String,
        partition: i32,
        records: mpsc::Receiver<Record>,
        context: Arc<PipelineContext>,
        share: Arc<PartitionShare>,
    ) -> Self {
        let commits = context.committer.partition(&topic, partition);
        let scheduler = Scheduler::new(context.concurrency);
        let gauges = context.metrics.partition_concurrency(&topic, partition);
        Self {
            topic,
            partition,
            records,
            context,
            share,
            tracker: OffsetTracker::new(),
            commits,
            acks: FuturesUnordered::new(),
            scheduler,
            calls: FuturesUnordered::new(),
            steps_in_flight: HashMap::new(),
            next_call: 0,
            reorder: Reorder::default(),
            handing_over_ended: false,
            dead_letter_blocked: Arc::new(AtomicBool::new(false)),
            states: Vec::new(),
            gauges,
            reported: InFlightReport::default(),
        }
    }

    /// Run until `stop` is cancelled (revocation or shutdown) or the record
    /// channel closes, then wait for the outputs already produced; or until a
    /// record fails. On `stop`, the calls in flight finish and records still
    /// waiting are dropped unprocessed: their offsets are not stored, so
    /// whoever owns the partition next reads them again.
    pub async fn run(mut self, stop: CancellationToken) -> Result<(), PipelineError> {
        // Also cancelled when this worker fails, so that retries give up.
        let halt = stop.child_token();
        let result = match self.open_states(&halt).await {
            Ok(true) => self.consume(&halt).await,
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        if result.is_err() {
            halt.cancel();
            self.drain_acks().await;
        }
        self.share.release(Load::of_all(&self.scheduler.drain()));
        let dropped = self.reorder.drain();
        for resolved in &dropped {
            out_of_sync(&resolved.writes);
        }
        self.share
            .release(Load::of_all(dropped.iter().map(|r| &r.record)));
        self.records.close();
        while let Ok(record) = self.records.try_recv() {
            self.share.release(Load::of(&record));
        }
        self.report(InFlightReport::default());
        self.close_states(result.is_ok()).await;
        // A batch that ended in an error may keep its bytes: the error ends this
        // run of the pipeline, and the next run starts with a fresh budget.
        result
    }

    /// Open each stateful plugin's state of this partition, restored up to
    /// its changelog's end, before the first record is processed; records
    /// meanwhile wait in the channel (the router pauses the partition once it
    /// is full). False if `stop` came first.
    async fn open_states(&mut self, stop: &CancellationToken) -> Result<bool, PipelineError> {
        for stage in &self.context.stages {
            let Some(store) = stage.state.clone() else {
                self.states.push(None);
                continue;
            };
            let plugin = stage.slot.current().name().to_string();
            let gauges = self
                .context
                .metrics
                .partition_state(&plugin, &self.topic, self.partition);
            let (topic, partition, stopped) = (self.topic.clone(), self.partition, stop.clone());
            let opened = tokio::task::spawn_blocking(move || {
                let remaining = |n: i64| {
                    gauges.restore_remaining.set(n);
                };
                let opened = store.open_partition(
                    (&topic, partition),
                    Some(gauges.bytes.clone()),
                    &remaining,
                    &|| stopped.is_cancelled(),
                );
                if let Ok(Some((_, restored))) = &opened {
                    gauges.restore_seconds.observe(restored.took.as_secs_f64());
                    gauges.restored.inc_by(restored.records);
                }
                opened
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            .map_err(|source| PipelineError::State {
                topic: self.topic.clone(),
                partition: self.partition,
                source: Box::new(source),
            })?;
            match opened {
                Some((state, _)) => self.states.push(Some(state)),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Close this partition's states; after a clean stop (`clean`: every
    /// handed-over write acknowledged) they may be kept as checkpoints.
    async fn close_states(&mut self, clean: bool) {
        let stages = self.context.stages.iter();
        for (stage, state) in stages.zip(std::mem::take(&mut self.states)) {
            let (Some(store), Some(state)) = (stage.state.clone(), state) else {
                continue;
            };
            let plugin = state.plugin().to_string();
            if clean {
                let closed =
                    tokio::task::spawn_blocking(move || store.close_partition(state)).await;
                if let Ok(Err(error)) = closed {
                    tracing::warn!(topic = %self.topic, partition = self.partition, %error,
                        "could not keep a checkpoint of the plugin state; the next owner restores it from the changelog");
                }
            }
            self.context
                .metrics
                .forget_partition_state(&plugin, &self.topic, self.partition);
        }
    }

    async fn consume(&mut self, stop: &CancellationToken) -> Result<(), PipelineError> {
        let max_uncommitted = self.context.max_uncommitted;
        let mut open = true;
        let mut incoming = Vec::new();
        loop {
            let stopping = stop.is_cancelled();
            if !stopping && !self.dead_letter_blocked.load(Ordering::Acquire) {
                self.start_due_calls(!open, stop);
            }
            self.report(InFlightReport {
                calls: self.scheduler.calls() as i64,
                keys: self.scheduler.keys_in_flight() as i64,
                unfinished: self.tracker.in_flight() as i64,
            });
            let waiting = self.scheduler.waiting() > 0 && !stopping;
            if !open && !waiting && self.calls.is_empty() && self.acks.is_empty() {
                return Ok(());
            }
            let room = open
                && !stopping
                && self.scheduler.wants_more()
                && self.tracker.in_flight() < max_uncommitted;
            let deadline = self
                .scheduler
                .deadline()
                .filter(|_| waiting && self.scheduler.has_room());
            tokio::select! {
                biased;
                Some(ack) = self.acks.next(), if !self.acks.is_empty() => self.on_ack(ack)?,
                Some(done) = self.calls.next(), if !self.calls.is_empty() => self.on_call(done, stop).await?,
                _ = stop.cancelled(), if open => open = false,
                taken = self.records.recv_many(&mut incoming, self.context.batch.max_records), if room => {
                    if taken == 0 {
                        open = false;
                    }
                    let now = Instant::now();
                    for record in incoming.drain(..) {
                        self.take_in(record, now)?;
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
            }
        }
    }

    /// Take `record`, received at `now`, into the partition's window of
    /// unfinished offsets.
    fn take_in(&mut self, record: Record, now: Instant) -> Result<(), PipelineError> {
        self.tracker
            .dispatch(record.offset)
            .map_err(|source| self.offsets_error(source))?;
        self.reorder.expect(record.offset);
        self.scheduler.push(record, now);
        Ok(())
    }

    /// Start every plugin call that is due (`flush`: no more records come).
    fn start_due_calls(&mut self, flush: bool, stop: &CancellationToken) {
        while let Some(batch) = self.scheduler.next_batch(Instant::now(), flush) {
            let context = Arc::clone(&self.context);
            context
                .metrics
                .batch_records
                .observe(batch.records.len() as f64);
            context.metrics.key_wait.observe(batch.waited.as_secs_f64());
            // Every record of this call is processed by these versions.
            let versions: Versions =
                Arc::new(context.stages.iter().map(|s| s.slot.current()).collect());
            let chain: Chain = context
                .stages
                .iter()
                .zip(versions.iter())
                .zip(&self.states)
                .map(|((stage, pool), state)| ChainStage {
                    pool: Arc::clone(pool),
                    settings: stage.resolve,
                    state: state.clone(),
                })
                .collect();
            let (stop, records) = (stop.clone(), batch.records);
            let call = self.next_call;
            self.next_call += 1;
            self.steps_in_flight.insert(call, 1);
            let started = SystemTime::now();
            let step = async move {
                let progress = match &context.schema {
                    Some(schema) => {
                        let topic = Arc::clone(&context.output_topic);
                        Arc::clone(schema)
                            .resolve(chain, records, topic, stop)
                            .await
                    }
                    None => resolve_chain(chain, records, stop).await,
                };
                CallStep {
                    call,
                    first: true,
                    versions,
                    started,
                    progress,
                }
            };
            self.calls.push(step.boxed());
        }
    }

    /// A call (or retries of its records) came back: queue what it resolved,
    /// start what it still retries, and hand over what is due.
    async fn on_call(
        &mut self,
        step: CallStep,
        stop: &CancellationToken,
    ) -> Result<(), PipelineError> {
        let progress = step.progress.map_err(|source| PipelineError::Plugin {
            topic: self.topic.clone(),
            partition: self.partition,
            source,
        })?;
        let in_flight = self
            .steps_in_flight
            .get_mut(&step.call)
            .expect("a step of a known call");
        *in_flight = *in_flight - 1 + progress.later.len();
        let call_over = *in_flight == 0;
        if call_over {
            self.steps_in_flight.remove(&step.call);
        }
        // A call's slot is free once its batch is resolved, or, under
        // `partition`, once its retries are done too.
        let slot_free = if self.scheduler.retries_hold_the_slot() {
            call_over
        } else {
            step.first
        };
        if slot_free {
            self.scheduler.call_ended();
        }
        for later in progress.later {
            let (call, versions, started) = (step.call, Arc::clone(&step.versions), step.started);
            self.calls.push(
                async move {
                    CallStep {
                        call,
                        first: false,
                        versions,
                        started,
                        progress: later.await,
                    }
                }
                .boxed(),
            );
        }
        // Processed records' state writes take effect now, together, so that
        // the partition's next calls read them; they reach the changelog when
        // their records are handed over.
        let mut settled_records = progress.settled;
        let pool = step
            .versions
            .last()
            .expect("a chain has at least one plugin");
        for settled in &mut settled_records {
            // Outputs to a topic the pipeline does not allow fail their
            // record here, before its writes take effect.
            if let Resolution::Outputs(outputs) = &settled.resolution {
                let context = &self.context;
                let forbidden =
                    forbidden_topic(&context.output_topics, &context.stages, outputs, pool);
                if let Some(failure) = forbidden {
                    settled.resolution = Resolution::Failed(failure);
                }
            }
            if !matches!(settled.resolution, Resolution::Outputs(_)) {
                settled.writes.clear();
            }
        }
        apply_together(settled_records.iter().flat_map(|s| &s.writes)).map_err(|source| {
            PipelineError::State {
                topic: self.topic.clone(),
                partition: self.partition,
                source: Box::new(source),
            }
        })?;
        for settled in settled_records {
            self.scheduler.settled(settled.record.offset);
            self.reorder.insert(Resolved {
                record: settled.record,
                resolution: settled.resolution,
                versions: Arc::clone(&step.versions),
                started: step.started,
                writes: settled.writes,
            });
        }
        loop {
            let run = self.reorder.take_run();
            if run.is_empty() {
                return Ok(());
            }
            if self.handing_over_ended {
                // After a stop short of the end, later records stay unfinished.
                for resolved in &run {
                    out_of_sync(&resolved.writes);
                }
                let records: Vec<Record> = run.into_iter().map(|r| r.record).collect();
                self.share.release(Load::of_all(&records));
                continue;
            }
            self.hand_over_run(run, stop).await?;
        }
    }

    /// Hand a run of resolved records (consecutive offsets, one set of plugin
    /// versions) to the producer, in order.
    async fn hand_over_run(
        &mut self,
        run: Vec<Resolved>,
        stop: &CancellationToken,
    ) -> Result<(), PipelineError> {
        let context = Arc::clone(&self.context);
        let versions = Arc::clone(&run[0].versions);
        let next = run[run.len() - 1].record.offset + 1;
        let load = Load::of_all(run.iter().map(|r| &r.record));
        let mut batch = BatchInFlight {
            scope: context.committer.begin_batch().await,
            segment: Segment::default(),
            accounted: Load::default(),
            next,
            halt: None,
            started: run[0].started,
        };
        let mut run = run.into_iter();
        for resolved in run.by_ref() {
            let writes = resolved.writes;
            if !self
                .hand_over(
                    &context,
                    &versions,
                    &mut batch,
                    resolved.record,
                    (resolved.resolution, &writes),
                    stop,
                )
                .await?
            {
                out_of_sync(&writes);
                self.handing_over_ended = true;
                break;
            }
        }
        for resolved in run {
            out_of_sync(&resolved.writes);
        }
        batch.scope.close(&self.topic, self.partition, batch.next);
        // Records left unfinished give their load back with the last segment.
        batch.segment.finished.load += load - batch.accounted;
        let pool = versions.last().expect("a chain has at least one plugin");
        self.await_segment(batch.segment, pool, stop)?;
        match batch.halt {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Set this partition's concurrency gauges.
    fn report(&mut self, now: InFlightReport) {
        if now == self.reported {
            return;
        }
        self.gauges.calls.set(now.calls);
        self.gauges.keys.set(now.keys);
        self.gauges.unfinished.set(now.unfinished);
        self.reported = now;
    }

    /// Hand one resolved record's outputs, or its failure, over. Returns false
    /// when the batch ends at this record, which stays unfinished.
    async fn hand_over<'c>(
        &mut self,
        context: &'c PipelineContext,
        pools: &[Arc<PluginPool>],
        batch: &mut BatchInFlight<'c>,
        record: Record,
        (resolution, writes): (Resolution, &[RecordWrites]),
        stop: &CancellationToken,
    ) -> Result<bool, PipelineError> {
        // The plugin whose outputs are produced.
        let pool = pools.last().expect("a chain has at least one plugin");
        let failure = match resolution {
            Resolution::Outputs(mut outputs) => {
                if context.version_header {
                    tag_versions(&mut outputs, pools);
                }
                if let Some(span) =
                    context
                        .tracing
                        .continue_trace(&record, &mut outputs, batch.started)
                {
                    batch.segment.spans.push(span);
                }
                let handed = AssertUnwindSafe(self.send_all(
                    &outputs,
                    writes,
                    &record,
                    pool,
                    &mut batch.segment,
                ))
                .catch_unwind()
                .await;
                let failure =
                    handed.unwrap_or_else(|payload| Ok(Some(host_panicked(&*payload, pool))))?;
                if failure.is_some() {
                    // Applied at resolution, but not all in the changelog.
                    out_of_sync(writes);
                }
                failure
            }
            Resolution::Failed(failure) => Some(failure),
            Resolution::Unfinished => {
                batch.next = record.offset;
                return Ok(false);
            }
        };
        let failed = failure.is_some();
        if let Some(failure) = failure {
            if !self
                .apply_policy(context, batch, &record, failure, pool, stop)
                .await?
            {
                batch.next = record.offset;
                return Ok(false);
            }
        }
        let size = Load::of(&record);
        batch.segment.finished.offsets.push(record.offset);
        batch.segment.finished.load += size;
        batch.accounted += size;
        // A record that failed at hand-over went through the policy already;
        // only one whose outputs were all handed over can be refused later.
        if !failed && batch.segment.ends_with_output_of_next_source() {
            batch.segment.sources.push(record);
        }
        Ok(true)
    }

    /// Apply the failure policy to `record`, which failed with `failure`.
    /// Returns false when the batch ends at it (a stop, or a dead letter given
    /// up at a stop).
    async fn apply_policy<'c>(
        &mut self,
        context: &'c PipelineContext,
        batch: &mut BatchInFlight<'c>,
        record: &Record,
        failure: RecordFailure,
        pool: &Arc<PluginPool>,
        stop: &CancellationToken,
    ) -> Result<bool, PipelineError> {
        note_failure(context, record, &failure);
        match context.policy {
            FailurePolicy::Dlq => {
                // Outputs of this record handed over before one was refused
                // (earlier failed records' went with their own dead letters).
                let partly_sent = batch.segment.has_outputs_of_next_source();
                self.await_segment(std::mem::take(&mut batch.segment), pool, stop)?;
                let letters = &context.dead_letters;
                let letter = letters.letter_for(record, &failure);
                let pending = match letters
                    .hand_over(&mut batch.scope, &letter, record, partly_sent, stop)
                    .await
                    .map_err(|e| self.produce_error(e))?
                {
                    LetterHandOver::Taken(pending) => Some(pending),
                    LetterHandOver::Later => None,
                    LetterHandOver::GaveUp => return Ok(false),
                };
                batch.segment.deliveries.push(Delivery::DeadLetter {
                    pending,
                    letter,
                    timestamp: record.timestamp,
                });
                Ok(true)
            }
            FailurePolicy::Skip => Ok(true),
            FailurePolicy::Stop => {
                batch.halt = Some(PipelineError::RecordFailed {
                    topic: self.topic.clone(),
                    partition: self.partition,
                    offset: record.offset,
                    plugin: failure.plugin.name.clone(),
                    failure: Box::new(failure),
                });
                Ok(false)
            }
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
        if segment.deliveries.is_empty() {
            return self.on_ack(Ok(segment.finished));
        }
        // In a transaction a refused delivery aborts it instead (see `BatchScope`).
        let retry = (!self.context.committer.is_transactional()).then(|| RetryInPlace {
            stop: stop.clone(),
            blocked: Arc::clone(&self.dead_letter_blocked),
        });
        self.acks.push(
            segment
                .acknowledged(Arc::clone(&self.context), Arc::clone(pool), retry)
                .boxed(),
        );
        Ok(())
    }

    /// Hand `record`'s outputs, then its state writes' changelog records, to
    /// the producer. An output the producer refuses for good (too large, no
    /// such partition) makes the record a failure of kind `produce`, returned
    /// for the failure policy; other producer errors stop the pipeline.
    async fn send_all(
        &mut self,
        outputs: &[Output],
        writes: &[RecordWrites],
        record: &Record,
        pool: &PluginPool,
        segment: &mut Segment,
    ) -> Result<Option<RecordFailure>, PipelineError> {
        panics::inject(Stage::HandOver, record.value.as_deref());
        for written in writes {
            if !segment
                .states
                .iter()
                .any(|s| Arc::ptr_eq(s, &written.state))
            {
                segment.states.push(Arc::clone(&written.state));
            }
        }
        // The index `record` will have in `segment.sources` once its outputs are handed over.
        let source = segment.sources.len();
        let changelog: Vec<Output> = writes
            .iter()
            .flat_map(|w| w.writes.iter().map(|write| w.state.changelog_record(write)))
            .collect();
        for output in outputs.iter().chain(&changelog) {
            match self.context.output.send(output, record.timestamp).await {
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

    /// Mark a segment's records complete and report the new committable offset.
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
        if let Some(next) = self.tracker.committable() {
            self.commits.completed_up_to(next);
        }
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

/// Apply records' `writes`, in order, one store write per run of writes to
/// the same plugin's state.
fn apply_together<'w>(
    writes: impl Iterator<Item = &'w RecordWrites>,
) -> Result<(), crate::state::StateError> {
    let mut run: Option<(&Arc<PartitionState>, Vec<crate::state::StateWrite>)> = None;
    for record_writes in writes {
        match &mut run {
            Some((state, pending)) if Arc::ptr_eq(state, &record_writes.state) => {
                pending.extend(record_writes.writes.iter().cloned());
            }
            _ => {
                if let Some((state, pending)) = run.take() {
                    state.apply(&pending)?;
                }
                run = Some((&record_writes.state, record_writes.writes.clone()));
            }
        }
    }
    match run {
        Some((state, pending)) => state.apply(&pending),
        None => Ok(()),
    }
}

/// Say that `writes`, applied when their record was resolved, will not reach
/// the changelog (the record was not finished, or not all handed over).
fn out_of_sync(writes: &[RecordWrites]) {
    for record_writes in writes {
        record_writes.state.mark_out_of_sync();
    }
}

/// Say in headers of each output which plugin versions produced it, one header
/// per plugin of the chain, in order.
fn tag_versions(outputs: &mut [Output], pools: &[Arc<PluginPool>]) {
    for output in outputs {
        for pool in pools {
            output.headers.push(Header {
                key: headers::VERSION.to_string(),
                value: pool.version().as_bytes().to_vec(),
            });
        }
    }
}

/// The failure of a record whose hand-over panicked (a bug, caught here so
/// that the failure policy applies to that record instead of Weir exiting).
fn host_panicked(payload: &(dyn std::any::Any + Send), pool: &PluginPool) -> RecordFailure {
    RecordFailure {
        kind: FailureKind::Trap(TrapKind::HostPanic),
        message: format!(
            "the host panicked handing the record's outputs over: {}",
            panics::message(payload)
        ),
        attempts: 1,
        plugin: pool.identity(),
    }
}
