//! The consumer loop and the router: poll Kafka on a dedicated thread, hand each
//! record to its partition's worker, pause partitions whose worker (or the
//! process-wide byte budget) is full, and finish a partition's work before
//! librdkafka takes it away in a rebalance.
//!
//! Everything here runs on the consumer thread, including librdkafka's rebalance
//! callback (it is served inside `poll`), so the router needs no cross-thread
//! coordination beyond the mutex the callback reaches it through.

use crate::budget::{Load, PartitionShare};
use crate::commit::CommitError;
use crate::kafka::{self, RebalanceListener, WeirConsumer, WeirContext};
use crate::partition::{PartitionWorker, PipelineContext, PipelineError};
use crate::wasm::InputRecord;
use prometheus_client::metrics::counter::Counter;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc as sync_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Poll timeout while nothing waits to be routed.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Poll timeout while partitions are paused, so they resume soon after room appears.
const PARKED_POLL: Duration = Duration::from_millis(5);

/// Records routed between two looks at worker results and timers.
const CHECK_EVERY: u32 = 64;

/// How often the in-flight, paused and producer-queue gauges are refreshed.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// A worker's final result, labelled `topic/partition`.
pub type WorkerResult = (String, Result<(), PipelineError>);

/// One assigned partition's worker and what the router holds back for it.
struct Slot {
    sender: mpsc::Sender<InputRecord>,
    /// Records consumed but not yet accepted by the worker or the byte budget,
    /// in offset order.
    parked: VecDeque<InputRecord>,
    /// Whether the partition is paused at the consumer.
    paused: bool,
    /// The records and bytes of this partition in flight.
    share: Arc<PartitionShare>,
    /// Records consumed from this partition's topic.
    consumed: Counter,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

/// Routes records to partition workers; owned by the consumer thread.
pub struct Router {
    context: Arc<PipelineContext>,
    runtime: tokio::runtime::Handle,
    slots: HashMap<(String, i32), Slot>,
    results: sync_mpsc::Sender<WorkerResult>,
    drain_timeout: Duration,
    /// While draining, commit what is finished this often, where Weir commits
    /// on a timer (transactions): a drain must not keep a transaction open past
    /// the broker's transaction timeout.
    drain_commit_interval: Option<Duration>,
    /// A commit that failed inside the rebalance callback, for the loop to act on.
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
}

/// Why stopping workers failed.
#[derive(Debug)]
pub struct DrainTimedOut {
    /// Partitions whose workers were still busy, as `topic/partition`.
    pub partitions: Vec<String>,
}

impl Router {
    /// A router spawning workers on `runtime` and reporting their results to
    /// `results`; a drain waits up to `drain_timeout`, committing every
    /// `commit_interval` when Weir commits on a timer.
    pub fn new(
        context: Arc<PipelineContext>,
        runtime: tokio::runtime::Handle,
        results: sync_mpsc::Sender<WorkerResult>,
        drain_timeout: Duration,
        commit_interval: Duration,
    ) -> Self {
        let drain_commit_interval = context
            .committer
            .commits_on_timer()
            .then_some(commit_interval);
        Self {
            context,
            runtime,
            slots: HashMap::new(),
            results,
            drain_timeout,
            drain_commit_interval,
            commit_failure: None,
            commit_failed: false,
            paused: 0,
        }
    }

    /// Commit everything finished so far. A failed transaction stops the loop; a
    /// failed offset commit (e.g. the assignment was lost while the broker was
    /// away) only means the next owner redoes some records, so it is a warning.
    pub fn commit(&mut self) {
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

    /// Hand `record` to its partition's worker, or park it and pause the
    /// partition if the worker's buffer or the byte budget is full.
    pub fn route(&mut self, consumer: &WeirConsumer, record: InputRecord) {
        let key = (record.topic.clone(), record.partition);
        if !self.slots.contains_key(&key) {
            let slot = self.spawn_worker(&key.0, key.1);
            self.slots.insert(key.clone(), slot);
        }
        let slot = self.slots.get_mut(&key).expect("inserted above");
        slot.consumed.inc();
        if !slot.parked.is_empty() {
            slot.parked.push_back(record);
            return;
        }
        if let Some(record) = offer(slot, record) {
            slot.parked.push_back(record);
            if !slot.paused {
                set_paused(consumer, &key, true);
                slot.paused = true;
                self.paused += 1;
            }
        }
    }

    /// Move parked records on where there is room again, and resume paused
    /// partitions once their worker has drained to half its buffer and the byte
    /// budget is half free (resuming at the first free slot would pause again
    /// at once, and each pause makes librdkafka drop and refetch its prefetch).
    pub fn flush_parked(&mut self, consumer: &WeirConsumer) {
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
                set_paused(consumer, key, false);
                slot.paused = false;
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

    /// Stop the workers of `partitions` and wait (up to the drain timeout) until
    /// each has finished its current batch and its outputs are acknowledged.
    pub fn stop_partitions(&mut self, partitions: &[(String, i32)]) -> Result<(), DrainTimedOut> {
        let slots: Vec<((String, i32), Slot)> = partitions
            .iter()
            .filter_map(|key| self.slots.remove_entry(key))
            .collect();
        self.stop_slots(slots)
    }

    /// Stop every worker and wait for them, as for a revocation.
    pub fn stop_all(&mut self) -> Result<(), DrainTimedOut> {
        let slots: Vec<_> = self.slots.drain().collect();
        self.stop_slots(slots)
    }

    fn stop_slots(&mut self, slots: Vec<((String, i32), Slot)>) -> Result<(), DrainTimedOut> {
        if slots.is_empty() {
            return Ok(());
        }
        self.paused -= slots.iter().filter(|(_, s)| s.paused).count();
        for (_, slot) in &slots {
            slot.stop.cancel();
        }
        let (keys, (shares, mut handles)): (Vec<_>, (Vec<_>, Vec<_>)) = slots
            .into_iter()
            .map(|(key, slot)| (key, (slot.share, slot.handle)))
            .unzip();
        let deadline = std::time::Instant::now() + self.drain_timeout;
        let finished = loop {
            let now = std::time::Instant::now();
            let left = deadline.saturating_duration_since(now);
            let wait = match self.drain_commit_interval {
                Some(interval) => interval.min(left),
                None => left,
            };
            let all_done = self.runtime.block_on(async {
                tokio::time::timeout(wait, async {
                    for handle in handles.iter_mut().filter(|h| !h.is_finished()) {
                        // A panicking worker already reported nothing; the runner sees the panic.
                        let _ = handle.await;
                    }
                })
                .await
                .is_ok()
            });
            if all_done || std::time::Instant::now() >= deadline {
                break all_done;
            }
            if !self.commit_failed {
                self.commit();
            }
        };
        if finished {
            return Ok(());
        }
        let mut busy = Vec::new();
        for (((topic, partition), share), handle) in keys.into_iter().zip(shares).zip(handles) {
            if !handle.is_finished() {
                busy.push(format!("{topic}/{partition}"));
                handle.abort();
                // Once the task is gone, nothing else gives its bytes back.
                let _ = self.runtime.block_on(handle);
                share.release_all();
            }
        }
        Err(DrainTimedOut { partitions: busy })
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
            paused: false,
            share,
            consumed: self.context.metrics.consumed(topic),
            stop,
            handle,
        }
    }
}

/// Try to pass `record` to the slot's worker within the byte budget; give it
/// back if there is no room.
fn offer(slot: &Slot, record: InputRecord) -> Option<InputRecord> {
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

fn set_paused(consumer: &WeirConsumer, (topic, partition): &(String, i32), paused: bool) {
    let mut tpl = TopicPartitionList::with_capacity(1);
    tpl.add_partition(topic, *partition);
    let result = if paused {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    match result {
        Ok(()) => tracing::debug!(topic, partition, paused, "partition flow changed"),
        Err(e) => {
            tracing::warn!(topic, partition, paused, error = %e, "cannot pause/resume partition")
        }
    }
}

/// The rebalance listener: finish and commit revoked partitions before they go.
/// Holds the router weakly: the router owns (through the workers' shared state)
/// the consumer whose context holds this listener.
pub struct RouterRebalance {
    router: Weak<Mutex<Router>>,
}

impl RouterRebalance {
    /// Listen on behalf of `router`.
    pub fn new(router: Weak<Mutex<Router>>) -> Self {
        Self { router }
    }
}

impl RebalanceListener for RouterRebalance {
    fn on_revoke(&self, _consumer: &BaseConsumer<WeirContext>, partitions: &[(String, i32)]) {
        // Gone once the runner finished; its final commit already happened.
        let Some(router) = self.router.upgrade() else {
            return;
        };
        let mut router = lock(&router);
        if let Err(e) = router.stop_partitions(partitions) {
            tracing::warn!(partitions = ?e.partitions,
                "revoked partitions did not finish in time; their unfinished records will be processed again by the new owner");
        }
        router.commit();
        router.context.committer.forget(partitions);
    }
}

/// Lock the router; a panic elsewhere cannot leave it half-updated in a way
/// that matters more than stopping would.
pub fn lock(router: &Mutex<Router>) -> MutexGuard<'_, Router> {
    router.lock().unwrap_or_else(|p| p.into_inner())
}

/// Poll Kafka and route records until `shutdown` is cancelled, a worker fails
/// or a commit fails; commit every `commit_interval` where Weir (not librdkafka)
/// commits. Returns why it stopped early, if it did.
pub fn consume_loop(
    consumer: &WeirConsumer,
    router: &Mutex<Router>,
    results: &sync_mpsc::Receiver<WorkerResult>,
    shutdown: &CancellationToken,
    commit_interval: Duration,
) -> Option<StopCause> {
    let mut last_commit = std::time::Instant::now();
    let mut last_sample = std::time::Instant::now();
    // Worker results and timers are looked at every CHECK_EVERY records, and
    // whenever the consumer is idle: reading the clock per record costs more
    // than routing it.
    let mut until_check = 0;
    let mut paused = false;
    while !shutdown.is_cancelled() {
        if until_check == 0 {
            until_check = CHECK_EVERY;
            while let Ok((label, result)) = results.try_recv() {
                if let Err(e) = result {
                    tracing::error!(partition = %label, error = %e, "partition stopped");
                    return Some(StopCause::Partition(e));
                }
            }
            let mut router = lock(router);
            if router.context.committer.commits_on_timer()
                && last_commit.elapsed() >= commit_interval
            {
                router.commit();
                last_commit = std::time::Instant::now();
            }
            if let Some(e) = router.commit_failure.take() {
                return Some(StopCause::Commit(e));
            }
            if last_sample.elapsed() >= SAMPLE_INTERVAL {
                router.sample_gauges();
                last_sample = std::time::Instant::now();
            }
        }
        until_check -= 1;
        let timeout = if paused { PARKED_POLL } else { IDLE_POLL };
        // The router must not be locked here: poll runs the rebalance callback.
        let polled = consumer.poll(timeout);
        let mut router = lock(router);
        match polled {
            Some(Ok(message)) => router.route(consumer, kafka::input_record(&message)),
            Some(Err(e)) => log_consumer_error(&e),
            None => until_check = 0,
        }
        if router.has_paused() {
            router.flush_parked(consumer);
        }
        paused = router.has_paused();
    }
    None
}

fn log_consumer_error(error: &KafkaError) {
    match error {
        KafkaError::MessageConsumption(RDKafkaErrorCode::PartitionEOF) => {}
        KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown) => {
            tracing::warn!(%error, "all brokers are down; retrying")
        }
        _ => tracing::warn!(%error, "consumer error; retrying"),
    }
}
