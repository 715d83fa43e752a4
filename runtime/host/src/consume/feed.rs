//! The poll side of consuming: a thread that polls Kafka and sends what it gets
//! to the consumer loop as messages, records in batches and revocations as
//! requests the loop answers once the revoked partitions' work is finished.
//!
//! librdkafka serves rebalances inside `poll`, so the revocation message is sent
//! from the callback, and the callback waits for the answer: librdkafka takes
//! the partitions away only after their finished work has been committed.

use crate::kafka::{self, RebalanceListener, WeirConsumer, WeirContext};
use crate::record::Record;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// Poll timeout while nothing is waiting to be sent; also how long a pause or
/// resume may wait to be applied when nothing arrives.
const IDLE_POLL: Duration = Duration::from_millis(5);
/// Records sent to the consumer loop in one message.
const BATCH: usize = 64;
/// Batches the channel holds before the poll thread waits for the loop.
const CHANNEL_BATCHES: usize = 4;

/// What the poll thread tells the consumer loop.
pub enum ConsumerEvent {
    /// Records polled, in the order Kafka returned them.
    Records(Vec<Record>),
    /// librdkafka is taking `partitions` away: finish and commit their work,
    /// then answer on `done`. Every record of theirs polled before was sent first.
    Revoke {
        /// The revoked partitions, as (topic, partition).
        partitions: Vec<(String, i32)>,
        /// Answered (or dropped) when the loop is done with them.
        done: SyncSender<()>,
    },
    /// The poll thread stopped; nothing follows.
    Stopped,
}

/// The poll thread's outbox, shared with the rebalance callback it serves.
pub struct Feed {
    events: SyncSender<ConsumerEvent>,
    /// Records polled but not yet sent. Only the poll thread touches it (the
    /// callback runs inside its `poll`), so the lock is never contended.
    pending: Mutex<Vec<Record>>,
    /// Pauses and resumes asked for by the consumer loop, applied by the poll
    /// thread between polls: librdkafka refetches a resumed partition from the
    /// last record returned, which only the polling thread knows for sure.
    flow: Mutex<Vec<((String, i32), bool)>>,
    stopping: AtomicBool,
}

impl Feed {
    /// A feed and the receiving end the consumer loop reads.
    pub fn new() -> (Self, Receiver<ConsumerEvent>) {
        let (events, receiver) = mpsc::sync_channel(CHANNEL_BATCHES);
        let feed = Self {
            events,
            pending: Mutex::new(Vec::with_capacity(BATCH)),
            flow: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        };
        (feed, receiver)
    }

    /// Pause (or resume) a partition at the consumer, from the next poll on.
    pub fn set_paused(&self, key: &(String, i32), paused: bool) {
        self.flow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((key.clone(), paused));
    }

    /// Drop the pauses and resumes not yet applied to `partitions`, which a
    /// rebalance is taking away: applied after it, a stale pause would stop a
    /// partition that comes back with nothing left to resume it.
    pub fn forget(&self, partitions: &[(String, i32)]) {
        self.flow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(key, _)| !partitions.contains(key));
    }

    /// Apply the pauses and resumes asked for.
    fn apply_flow(&self, consumer: &WeirConsumer) {
        let changes = std::mem::take(&mut *self.flow.lock().unwrap_or_else(|p| p.into_inner()));
        for (key, paused) in &changes {
            set_paused(consumer, key, *paused);
        }
    }

    /// Ask the poll thread to stop; it sends [`ConsumerEvent::Stopped`] last.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Poll `consumer` and send what it returns until [`Feed::stop`] is called
    /// or the consumer loop is gone. Runs on its own thread.
    pub fn poll_loop(&self, consumer: &WeirConsumer) {
        while !self.stopping.load(Ordering::Relaxed) {
            self.apply_flow(consumer);
            let waiting = self.pending().len();
            // With records waiting, look only at what is already fetched: send
            // them as soon as nothing more is at hand.
            let timeout = if waiting == 0 {
                IDLE_POLL
            } else {
                Duration::ZERO
            };
            let sent = match consumer.poll(timeout) {
                Some(Ok(message)) => self.push(kafka::input_record(&message)),
                Some(Err(e)) => {
                    log_consumer_error(&e);
                    true
                }
                None => self.flush(),
            };
            if !sent {
                return;
            }
        }
        // Records not sent are not processed, so their offsets are not committed.
        let _ = self.events.send(ConsumerEvent::Stopped);
    }

    /// Add a record; send the batch once full. False once the loop is gone.
    fn push(&self, record: Record) -> bool {
        let full = {
            let mut pending = self.pending();
            pending.push(record);
            pending.len() >= BATCH
        };
        !full || self.flush()
    }

    /// Send the records waiting, if any. False once the loop is gone.
    fn flush(&self) -> bool {
        let batch = std::mem::take(&mut *self.pending());
        batch.is_empty() || self.events.send(ConsumerEvent::Records(batch)).is_ok()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
        // Pushing to a Vec cannot leave it inconsistent if a panic interrupts.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RebalanceListener for Feed {
    fn on_revoke(&self, _consumer: &BaseConsumer<WeirContext>, partitions: &[(String, i32)]) {
        let (done, answered) = mpsc::sync_channel(1);
        let request = ConsumerEvent::Revoke {
            partitions: partitions.to_vec(),
            done,
        };
        // Once the loop is gone (shutdown, the final commit already made),
        // sending fails, or the request is dropped unanswered: either way there
        // is nothing left to finish.
        if self.flush() && self.events.send(request).is_ok() {
            let _ = answered.recv();
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

fn log_consumer_error(error: &KafkaError) {
    match error {
        KafkaError::MessageConsumption(RDKafkaErrorCode::PartitionEOF) => {}
        KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown) => {
            tracing::warn!(%error, "all brokers are down; retrying")
        }
        _ => tracing::warn!(%error, "consumer error; retrying"),
    }
}
