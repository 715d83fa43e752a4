//! The router: hand each record to its partition's worker, pause partitions
//! whose worker (or the process-wide byte budget) is full, and stop the workers
//! of partitions a rebalance takes away. Owned by the consumer loop's thread.

use super::drain::Drain;
use super::feed::Feed;
use crate::budget::{Load, PartitionShare};
use crate::commit::CommitError;
use crate::partition::{PartitionWorker, PipelineContext, PipelineError};
use crate::record::Record;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::producer::Producer;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc as sync_mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A worker's final result, labelled `topic/partition`.
pub type WorkerResult = (String, Result<(), PipelineError>);

/// One assigned partition's worker and what the router holds back for it.
pub(super) struct Slot {
    sender: mpsc::Sender<Record>,
    /// Records consumed but not yet accepted by the worker or the byte budget,
    /// in offset order.
    parked: VecDeque<Record>,
    /// Whether the partition is paused at the consumer.
    paused: bool,
    /// Exports `paused` (1 or 0).
    paused_gauge: Gauge,
    /// One past the last offset routed: a record below it was polled twice.
    next_offset: i64,
    /// The records and bytes of this partition in flight.
    pub(super) share: Arc<PartitionShare>,
    /// Records consumed from this partition's topic.
    consumed: Counter,
    /// Cancelled to stop the worker.
    pub(super) stop: CancellationToken,
    /// The worker's task.
    pub(super) handle: JoinHandle<()>,
}

/// Routes records to partition workers; owned by the consumer thread.
pub struct Router {
    context: Arc<PipelineContext>,
    runtime: tokio::runtime::Handle,
    slots: HashMap<(String, i32), Slot>,
    results: sync_mpsc::Sender<WorkerResult>,
    drain_timeout: Duration,
    /// A commit that failed, for the loop to act on.
    commit_failure: Option<CommitError>,
    /// Whether any commit of this run failed: a drain then stops committing (the
    /// run ends with an error, and a restart resumes from the last commit).
    commit_failed: bool,
    /// How many slots are paused.
    paused: usize,
}

/// Why the consumer loop stopped before being asked to.
#[derive(Debug)]
pub enum StopCause {
    /// A partition's worker failed.
    Partition(PipelineError),
    /// Committing failed.
    Commit(CommitError),
    /// The thread polling Kafka could not start or stopped on its own.
    PollThread(String),
}

/// Why stopping workers failed.
#[derive(Debug)]
pub struct DrainTimedOut {
    /// Partitions whose workers were still busy, as `topic/partition`.
    pub partitions: Vec<String>,
}

impl Router {
    /// A router spawning workers on `runtime` and reporting their results to
    /// `results`; a drain waits up to `drain_timeout`.
    pub fn new(
        context: Arc<PipelineContext>,
        runtime: tokio::runtime::Handle,
        results: sync_mpsc::Sender<WorkerResult>,
        drain_timeout: Duration,
    ) -> Self {
        Self {
            context,
            runtime,
            slots: HashMap::new(),
            results,
            drain_timeout,
            commit_failure: None,
            commit_failed: false,
            paused: 0,
        }
    }

    /// Commit everything finished so far. A failed transaction stops the loop; a
    /// failed offset commit (e.g. the assignment was lost while the broker was
    /// away) only means the next owner redoes some records, so it is a warning.
    /// After a failed transaction nothing more is committed: the run ends with
    /// the error, and the next one resumes from the last commit.
    pub fn commit(&mut self) {
        if self.commit_failed {
            return;
        }
        match self.context.committer.commit(&self.runtime) {
            Ok(_) => {}
            Err(e @ CommitError::Offsets(_)) => tracing::warn!(error = %e, "commit failed"),
            Err(e) => {
                tracing::error!(error = %e, "commit failed");
                self.commit_failed = true;
                self.commit_failure.get_or_insert(e);
            }
        }
    }

    /// Whether Weir commits on a timer (transactions) rather than per batch.
    pub fn commits_on_timer(&self) -> bool {
        self.context.committer.commits_on_timer()
    }

    /// The commit failure not yet acted on, if any.
    pub fn take_commit_failure(&mut self) -> Option<CommitError> {
        self.commit_failure.take()
    }

    /// Route each of `records`, in order, then move parked records on.
    pub fn route_all(&mut self, feed: &Feed, records: Vec<Record>) {
        for record in records {
            self.route(feed, record);
        }
        if self.has_paused() {
            self.flush_parked(feed);
        }
    }

    /// Hand `record` to its partition's worker, or park it and pause the
    /// partition if the worker's buffer or the byte budget is full.
    fn route(&mut self, feed: &Feed, record: Record) {
        let key = (record.topic.clone(), record.partition);
        if !self.slots.contains_key(&key) {
            let slot = self.spawn_worker(&key.0, key.1);
            self.slots.insert(key.clone(), slot);
        }
        let slot = self.slots.get_mut(&key).expect("inserted above");
        if record.offset < slot.next_offset {
            // Already routed: pausing or resuming a partition while the poll
            // thread is returning its records can make librdkafka fetch again
            // from a position a little behind what was returned.
            tracing::debug!(topic = %key.0, partition = key.1, offset = record.offset,
                "dropping a record polled twice");
            return;
        }
        slot.next_offset = record.offset + 1;
        slot.consumed.inc();
        if !slot.parked.is_empty() {
            slot.parked.push_back(record);
            return;
        }
        if let Some(record) = offer(slot, record) {
            slot.parked.push_back(record);
            if !slot.paused {
                feed.set_paused(&key, true);
                slot.paused = true;
                slot.paused_gauge.set(1);
                self.paused += 1;
            }
        }
    }

    /// Move parked records on where there is room again, and resume paused
    /// partitions once their worker has drained to half its buffer and the byte
    /// budget is half free (resuming at the first free slot would pause again
    /// at once, and each pause makes librdkafka drop and refetch its prefetch).
    pub fn flush_parked(&mut self, feed: &Feed) {
        let budget_has_room = self.context.budget.used() <= self.context.budget.max() / 2;
        for (key, slot) in self.slots.iter_mut().filter(|(_, s)| s.paused) {
            while let Some(record) = slot.parked.pop_front() {
                if let Some(record) = offer(slot, record) {
                    slot.parked.push_front(record);
                    break;
                }
            }
            let worker_has_room = slot.sender.capacity() * 2 >= slot.sender.max_capacity();
            if slot.parked.is_empty() && worker_has_room && budget_has_room {
                feed.set_paused(key, false);
                slot.paused = false;
                slot.paused_gauge.set(0);
                self.paused -= 1;
            }
        }
    }

    /// Whether any partition is paused (so the loop should check back soon).
    pub fn has_paused(&self) -> bool {
        self.paused > 0
    }

    /// Set the gauges of what is in flight, paused and queued in the producer.
    pub fn sample_gauges(&self) {
        let metrics = &self.context.metrics;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        metrics
            .in_flight_records
            .set(count(self.context.budget.records()));
        metrics
            .in_flight_bytes
            .set(count(self.context.budget.used()));
        metrics.paused.set(count(self.paused));
        metrics
            .producer_queue
            .set(i64::from(self.context.output.producer().in_flight_count()));
    }

    /// Start stopping the workers of `partitions`: each finishes its current
    /// batch, and its outputs are acknowledged, within the drain timeout.
    pub fn drain(&mut self, partitions: &[(String, i32)]) -> Drain {
        let slots: Vec<_> = partitions
            .iter()
            .filter_map(|key| self.slots.remove_entry(key))
            .collect();
        self.start_drain(slots)
    }

    /// Start stopping every worker, as for a revocation.
    pub fn drain_all(&mut self) -> Drain {
        let slots: Vec<_> = self.slots.drain().collect();
        self.start_drain(slots)
    }

    fn start_drain(&mut self, slots: Vec<((String, i32), Slot)>) -> Drain {
        self.paused -= slots.iter().filter(|(_, s)| s.paused).count();
        Drain::start(slots, self.drain_timeout)
    }

    /// Wait a little for `drain`'s workers; true once they all finished or
    /// its time is up.
    pub fn step_drain(&self, drain: &mut Drain) -> bool {
        drain.wait(&self.runtime)
    }

    /// Wait until `drain`'s workers finished or its time is up, committing
    /// every `commit_interval` meanwhile where Weir commits on a timer: a drain
    /// must not keep a transaction open past the broker's transaction timeout.
    pub fn wait_out(&mut self, drain: &mut Drain, commit_interval: Duration) {
        let mut last_commit = std::time::Instant::now();
        while !self.step_drain(drain) {
            if self.commits_on_timer() && last_commit.elapsed() >= commit_interval {
                self.commit();
                last_commit = std::time::Instant::now();
            }
        }
    }

    /// Abort the workers of `drain` still busy (its time is up).
    pub fn end_drain(&self, drain: Drain) -> Result<(), DrainTimedOut> {
        drain.end(&self.runtime)
    }

    /// After a revocation's drain: commit what its partitions finished and
    /// forget them.
    pub fn release(&mut self, drain: Drain) {
        let partitions = drain.partitions().to_vec();
        if let Err(e) = self.end_drain(drain) {
            tracing::warn!(partitions = ?e.partitions,
                "revoked partitions did not finish in time; their unfinished records will be processed again by the new owner");
        }
        self.commit();
        self.context.committer.forget(&partitions);
    }

    fn spawn_worker(&self, topic: &str, partition: i32) -> Slot {
        let (sender, receiver) = mpsc::channel(self.context.batch.partition_buffer);
        let stop = CancellationToken::new();
        let share = Arc::new(PartitionShare::new(Arc::clone(&self.context.budget)));
        let worker = PartitionWorker::new(
            topic.to_string(),
            partition,
            receiver,
            Arc::clone(&self.context),
            Arc::clone(&share),
        );
        let label = format!("{topic}/{partition}");
        tracing::debug!(partition = %label, "starting partition worker");
        let results = self.results.clone();
        let worker_stop = stop.clone();
        let handle = self.runtime.spawn(async move {
            let result = worker.run(worker_stop).await;
            // The consumer loop may already be gone during shutdown.
            let _ = results.send((label, result));
        });
        Slot {
            sender,
            parked: VecDeque::new(),
            next_offset: i64::MIN,
            paused: false,
            paused_gauge: self.context.metrics.partition_paused(topic, partition),
            share,
            consumed: self.context.metrics.consumed(topic),
            stop,
            handle,
        }
    }
}

/// Try to pass `record` to the slot's worker within the byte budget; give it
/// back if there is no room.
fn offer(slot: &Slot, record: Record) -> Option<Record> {
    let load = Load::of(&record);
    if !slot.share.try_reserve(load) {
        return Some(record);
    }
    match slot.sender.try_send(record) {
        Ok(()) => None,
        Err(TrySendError::Full(record)) => {
            slot.share.release(load);
            Some(record)
        }
        Err(TrySendError::Closed(_)) => {
            // The worker stopped (its result is on its way to the consumer loop);
            // this record is not processed and its offset not stored.
            slot.share.release(load);
            None
        }
    }
}
