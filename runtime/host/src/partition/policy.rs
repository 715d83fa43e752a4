//! The failure policy for a record the plugins (or the broker) gave up on:
//! dead-letter it, skip it, or stop at it. Each failure is logged and counted
//! by one call.

use super::dead_letter::RetryInPlace;
use super::segment::AckError;
use super::PipelineContext;
use crate::config::FailurePolicy;
use crate::process::RecordFailure;
use crate::wasm::InputRecord;

/// Log and count that `record` failed, saying what the failure policy does with it.
pub fn note_failure(context: &PipelineContext, record: &InputRecord, failure: &RecordFailure) {
    let metrics = &context.metrics;
    metrics.failed(&failure.plugin.name, failure.kind.as_str());
    let action = match context.policy {
        FailurePolicy::Dlq => "writing it to the dead-letter topic",
        FailurePolicy::Skip => {
            metrics.skipped.inc();
            "skipping it (policy skip)"
        }
        FailurePolicy::Stop => "stopping (policy stop)",
    };
    tracing::warn!(topic = %record.topic, partition = record.partition,
        offset = record.offset, plugin = %failure.plugin.name, version = %failure.plugin.version,
        kind = %failure.kind, attempts = failure.attempts,
        error = %failure.message, "record failed; {action}");
}

/// The failure policy for `record`, one of whose outputs the broker refused for
/// good in its delivery report: dead-letter it (waiting for that write), skip
/// it, or stop at it. Returns false if a stop gave up the dead-letter write.
pub async fn apply_to_refused(
    context: &PipelineContext,
    record: &InputRecord,
    failure: RecordFailure,
    retry: Option<&RetryInPlace>,
) -> Result<bool, AckError> {
    note_failure(context, record, &failure);
    match context.policy {
        FailurePolicy::Dlq => {
            let letters = &context.dead_letters;
            let letter = letters.letter_for(record, &failure);
            Ok(letters
                .acknowledged(None, &letter, record.timestamp, retry)
                .await?)
        }
        FailurePolicy::Skip => Ok(true),
        FailurePolicy::Stop => Err(AckError::Stop {
            offset: record.offset,
            failure: Box::new(failure),
        }),
    }
}
