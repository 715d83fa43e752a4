//! Acknowledgement segments: the records of a batch whose outputs are
//! acknowledged together. A new segment starts at each dead letter, so a letter
//! that cannot be written holds back only its own record and those after it.
//! A segment's records complete once every delivery in it is acknowledged; an
//! output the broker refuses for good sends its record through the failure
//! policy then.

use super::dead_letter::RetryInPlace;
use super::policy::apply_to_refused;
use super::PipelineContext;
use crate::budget::Load;
use crate::kafka::{PendingDelivery, ProduceError};
use crate::process::{FailureKind, RecordFailure};
use crate::record::{Output, Record};
use crate::telemetry::PipelineMetrics;
use crate::trace::RecordSpan;
use crate::wasm::PluginPool;
use std::sync::Arc;

/// Work whose outputs are all acknowledged: the offsets now complete and the
/// records and bytes they held.
#[derive(Default)]
pub struct Finished {
    /// Offsets of the records now complete.
    pub offsets: Vec<i64>,
    /// What they held of the in-flight budget.
    pub load: Load,
}

/// Records of a batch whose outputs are acknowledged together.
#[derive(Default)]
pub struct Segment {
    /// What was handed to the producer, in order.
    pub deliveries: Vec<Delivery>,
    /// What completes once they are all acknowledged.
    pub finished: Finished,
    /// The records with outputs, kept until those are acknowledged so that one
    /// whose output the broker refuses for good can still be dead-lettered.
    pub sources: Vec<Record>,
    /// The exported spans of its records; they end when dropped, once the
    /// segment's deliveries are acknowledged.
    pub spans: Vec<RecordSpan>,
    /// The plugin states its records wrote to: if the broker refuses one of
    /// its records' outputs for good, that record's writes (already applied)
    /// miss the changelog, so the states must not be trusted on disk.
    pub states: Vec<Arc<crate::state::PartitionState>>,
}

/// One record handed to the producer for a batch.
pub enum Delivery {
    /// A plugin output of the segment's record number `source`.
    Output {
        /// Its acknowledgement.
        pending: PendingDelivery,
        /// Index of its record in [`Segment::sources`] (once it is there).
        source: usize,
    },
    /// A record the plugins failed on, on its way to the dead-letter topic.
    /// `pending` is `None` when the producer refused it at once; it is then
    /// handed over again while waiting for acknowledgement.
    DeadLetter {
        /// Its acknowledgement, once handed over.
        pending: Option<PendingDelivery>,
        /// The letter.
        letter: Output,
        /// The failed record's timestamp, which the letter keeps.
        timestamp: Option<i64>,
    },
}

/// Why a segment's acknowledgement failed.
pub enum AckError {
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

impl Segment {
    /// Whether outputs of the record being handed over (the next to join
    /// `sources`) are among the deliveries: it was partly sent when one failed.
    pub fn has_outputs_of_next_source(&self) -> bool {
        let next = self.sources.len();
        self.deliveries
            .iter()
            .any(|d| matches!(d, Delivery::Output { source, .. } if *source == next))
    }

    /// Whether the last delivery is an output of the record being handed over.
    pub fn ends_with_output_of_next_source(&self) -> bool {
        let next = self.sources.len();
        matches!(self.deliveries.last(), Some(Delivery::Output { source, .. }) if *source == next)
    }

    /// Wait until every delivery is acknowledged (outputs refused for good go
    /// through the failure policy, dead letters refused are retried with
    /// `retry`), then return what finished. Records given up at a stop stay
    /// incomplete: only their load comes back.
    pub async fn acknowledged(
        self,
        context: Arc<PipelineContext>,
        pool: Arc<PluginPool>,
        retry: Option<RetryInPlace>,
    ) -> Result<Finished, AckError> {
        let Segment {
            deliveries,
            finished,
            sources,
            spans: _spans,
            states,
        } = self;
        // The last record whose refused output was dead-lettered: one dead
        // letter per record, however many outputs were refused.
        let mut refused = None;
        for delivery in deliveries {
            let written = match delivery {
                Delivery::Output { pending, source } => match pending.acknowledged().await {
                    Ok(()) => true,
                    Err(e) if e.is_permanent() && retry.is_some() => {
                        // A record missing from `sources` already failed at
                        // hand-over and went through the policy then.
                        match sources.get(source) {
                            Some(record) if refused != Some(source) => {
                                refused = Some(source);
                                for state in &states {
                                    state.mark_out_of_sync();
                                }
                                let failure = RecordFailure {
                                    kind: FailureKind::Produce,
                                    message: e.to_string(),
                                    attempts: 1,
                                    plugin: pool.identity(),
                                };
                                apply_to_refused(&context, record, failure, retry.as_ref()).await?
                            }
                            _ => true,
                        }
                    }
                    Err(e) => return Err(e.into()),
                },
                Delivery::DeadLetter {
                    pending,
                    letter,
                    timestamp,
                } => {
                    context
                        .dead_letters
                        .acknowledged(pending, &letter, timestamp, retry.as_ref())
                        .await?
                }
            };
            if !written {
                return Ok(Finished {
                    offsets: Vec::new(),
                    load: finished.load,
                });
            }
        }
        observe_end_to_end(&context.metrics, &sources);
        Ok(finished)
    }
}

/// Observe, for each of `records` (whose outputs are all acknowledged now), the
/// time since its timestamp.
fn observe_end_to_end(metrics: &PipelineMetrics, records: &[Record]) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for timestamp in records.iter().filter_map(|r| r.timestamp) {
        metrics
            .end_to_end
            .observe((now_ms - timestamp).max(0) as f64 / 1000.0);
    }
}
