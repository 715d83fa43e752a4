//! The failure policy for a record the plugins (or the broker) gave up on:
//! dead-letter it, skip it, or stop at it. Each failure is logged and counted
//! by one call. Also which outputs are refused before they reach the producer.

use super::dead_letter::RetryInPlace;
use super::segment::AckError;
use super::PipelineContext;
use crate::config::{FailurePolicy, TopicPatterns};
use crate::process::{FailureKind, RecordFailure};
use crate::record::{Output, Record};
use crate::wasm::{PluginPool, TrapKind};

/// Log and count that `record` failed, saying what the failure policy does with it.
pub fn note_failure(context: &PipelineContext, record: &Record, failure: &RecordFailure) {
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
    record: &Record,
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

/// A failure of kind `contract` if one of `outputs` names a topic outside
/// `allowed`, or a state changelog topic of the pipeline's `stages` (checked
/// before any output of the record is handed over).
pub(super) fn forbidden_topic(
    allowed: &TopicPatterns,
    stages: &[super::Stage],
    outputs: &[Output],
    pool: &PluginPool,
) -> Option<RecordFailure> {
    let is_changelog = |topic: &str| {
        stages
            .iter()
            .filter_map(|s| s.state.as_ref())
            .any(|store| store.changelog() == topic)
    };
    let topic = outputs
        .iter()
        .filter_map(|o| o.topic.as_deref())
        .find(|topic| !allowed.matches(topic) || is_changelog(topic))?;
    Some(RecordFailure {
        kind: FailureKind::Trap(TrapKind::Contract),
        message: format!(
            "sent an output to topic `{topic}`, which this pipeline does not allow; add it to allowed_output_topics (--allowed-output-topic) if it should"
        ),
        attempts: 1,
        plugin: pool.identity(),
    })
}
