//! The consumer loop: reads the poll thread's messages and acts on them in one
//! explicit state at a time. `Consuming`: route records to partition workers,
//! pause and resume partitions, commit on the timer, watch worker results.
//! `Draining`: a revocation is being served; the revoked partitions' workers
//! finish, their work is committed, and only then is the poll thread (waiting in
//! librdkafka's rebalance callback) told to let the partitions go.

use super::drain::Drain;
use super::feed::{ConsumerEvent, Feed};
use super::router::{Router, StopCause, WorkerResult};
use crate::kafka::WeirConsumer;
use rdkafka::consumer::Consumer;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Wait for the poll thread while nothing is paused.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Wait while partitions are paused, so they resume soon after room appears.
const PARKED_WAIT: Duration = Duration::from_millis(5);
/// How often the in-flight, paused and producer-queue gauges are refreshed.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// What the consumer loop is doing.
enum ConsumerState {
    /// Taking records from the poll thread.
    Consuming,
    /// Finishing revoked partitions; `done` answers the poll thread.
    Draining {
        /// The revoked partitions' workers.
        drain: Drain,
        /// Answered when they are finished and committed.
        done: SyncSender<()>,
    },
}

/// Poll Kafka (on a thread of its own) and route records until `shutdown` is
/// cancelled, a worker fails or a commit fails; commit every `commit_interval`
/// where Weir (not librdkafka) commits. Returns why it stopped early, if it
/// did. Revocations that arrive while stopping are still served in full.
pub fn consume_loop(
    consumer: &WeirConsumer,
    router: &mut Router,
    results: &Receiver<WorkerResult>,
    shutdown: &CancellationToken,
    commit_interval: Duration,
) -> Option<StopCause> {
    let (feed, events) = Feed::new();
    let feed = Arc::new(feed);
    consumer.context().set_listener(Arc::clone(&feed) as _);
    std::thread::scope(|scope| {
        let poller = std::thread::Builder::new()
            .name("weir-poll".into())
            .spawn_scoped(scope, || feed.poll_loop(consumer));
        if let Err(e) = poller {
            return Some(StopCause::PollThread(e.to_string()));
        }
        let mut looping = Looping {
            feed: &feed,
            router,
            events: &events,
            commit_interval,
            last_commit: Instant::now(),
            last_sample: Instant::now(),
        };
        let stop = looping.run(results, shutdown);
        feed.stop();
        looping.serve_until_stopped();
        stop
    })
}

/// The loop's working state.
struct Looping<'a> {
    feed: &'a Feed,
    router: &'a mut Router,
    events: &'a Receiver<ConsumerEvent>,
    commit_interval: Duration,
    last_commit: Instant,
    last_sample: Instant,
}

impl Looping<'_> {
    /// Act on messages until told to stop or something fails; returns in the
    /// `Consuming` state only.
    fn run(
        &mut self,
        results: &Receiver<WorkerResult>,
        shutdown: &CancellationToken,
    ) -> Option<StopCause> {
        let mut state = ConsumerState::Consuming;
        loop {
            self.on_timers();
            state = match state {
                ConsumerState::Consuming => {
                    if let Some(stop) = self.stop_cause(results, shutdown) {
                        return stop;
                    }
                    match self.next_event() {
                        Ok(ConsumerEvent::Records(records)) => {
                            self.router.route_all(self.feed, records);
                            ConsumerState::Consuming
                        }
                        Ok(ConsumerEvent::Revoke { partitions, done }) => {
                            let drain = self.router.drain(&partitions);
                            ConsumerState::Draining { drain, done }
                        }
                        Ok(ConsumerEvent::Stopped) | Err(RecvTimeoutError::Disconnected) => {
                            return Some(StopCause::PollThread(
                                "it stopped unexpectedly; see the log above".into(),
                            ));
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            if self.router.has_paused() {
                                self.router.flush_parked(self.feed);
                            }
                            ConsumerState::Consuming
                        }
                    }
                }
                ConsumerState::Draining { mut drain, done } => {
                    if self.router.step_drain(&mut drain) {
                        self.feed.forget(drain.partitions());
                        self.router.release(drain);
                        // The poll thread may have given up waiting; nothing to do then.
                        let _ = done.send(());
                        ConsumerState::Consuming
                    } else {
                        ConsumerState::Draining { drain, done }
                    }
                }
            };
        }
    }

    /// Why to stop now, if at all: shutdown (`Some(None)`), a failed worker or
    /// a failed commit.
    fn stop_cause(
        &mut self,
        results: &Receiver<WorkerResult>,
        shutdown: &CancellationToken,
    ) -> Option<Option<StopCause>> {
        if shutdown.is_cancelled() {
            return Some(None);
        }
        while let Ok((label, result)) = results.try_recv() {
            if let Err(e) = result {
                tracing::error!(partition = %label, error = %e, "partition stopped");
                return Some(Some(StopCause::Partition(e)));
            }
        }
        self.router
            .take_commit_failure()
            .map(|e| Some(StopCause::Commit(e)))
    }

    fn next_event(&self) -> Result<ConsumerEvent, RecvTimeoutError> {
        let wait = if self.router.has_paused() {
            PARKED_WAIT
        } else {
            IDLE_WAIT
        };
        self.events.recv_timeout(wait)
    }

    /// Commit where Weir commits on a timer, and refresh the gauges, when due.
    fn on_timers(&mut self) {
        if self.router.commits_on_timer() && self.last_commit.elapsed() >= self.commit_interval {
            self.router.commit();
            self.last_commit = Instant::now();
        }
        if self.last_sample.elapsed() >= SAMPLE_INTERVAL {
            self.router.sample_gauges();
            self.last_sample = Instant::now();
        }
    }

    /// After the loop ended: until the poll thread says it stopped, drop the
    /// records it still sends (never routed, so never committed) and serve
    /// revocations in full.
    fn serve_until_stopped(&mut self) {
        while let Ok(event) = self.events.recv() {
            match event {
                ConsumerEvent::Records(_) => {}
                ConsumerEvent::Revoke { partitions, done } => {
                    let mut drain = self.router.drain(&partitions);
                    self.router.wait_out(&mut drain, self.commit_interval);
                    self.feed.forget(&partitions);
                    self.router.release(drain);
                    let _ = done.send(());
                }
                ConsumerEvent::Stopped => return,
            }
        }
    }
}
