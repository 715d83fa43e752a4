//! From a batch of records to one resolution per record: run the batch through
//! the plugin; if the call fails (a trap, a deadline, the memory cap), call the
//! plugin again with each record alone so that only the offending record fails
//! and the good ones still go through; retry records whose error the plugin
//! marks retryable, with exponential backoff, up to the attempt limit; hold each
//! record's outputs to the per-record output limits.

use crate::process::{Backoff, FailureKind, RecordFailure};
use crate::record::{Outcome, Output, Record};
use crate::wasm::{OutputLimits, PluginError, PluginPool, TrapKind};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What became of one record.
#[derive(Debug)]
pub enum Resolution {
    /// The plugin's outputs for it (none means it was filtered out).
    Outputs(Vec<Output>),
    /// It was given up on; the failure policy decides what happens next.
    Failed(RecordFailure),
    /// Processing stopped (revocation or shutdown) while it waited for a retry:
    /// neither processed nor given up on; whoever owns the partition next
    /// processes it again.
    Unfinished,
}

/// Limits and retry settings for resolving records.
#[derive(Debug, Clone, Copy)]
pub struct ResolveSettings {
    /// Plugin calls per record for retryable errors, the first included.
    pub max_attempts: u32,
    /// Wait between retries.
    pub backoff: Backoff,
    /// Most outputs per input record.
    pub max_outputs: usize,
    /// Most output bytes (keys, values, headers) per input record.
    pub max_output_bytes: usize,
    /// Most records per plugin call (`batch.max_records`), also when a chained
    /// plugin gets the previous plugin's outputs.
    pub max_batch: usize,
}

impl ResolveSettings {
    /// The per-record output limits a call's results are lifted under.
    pub fn output_limits(&self) -> OutputLimits {
        OutputLimits {
            max_outputs: self.max_outputs,
            max_bytes: self.max_output_bytes,
        }
    }
}

/// A record on its way to a resolution.
struct Pending {
    record: Record,
    attempts: u32,
    state: State,
}

enum State {
    Resolved(Resolution),
    /// The plugin said trying again may succeed.
    Retry {
        message: String,
    },
}

/// Resolve every record of `records` (one partition, in offset order). The result
/// keeps the order. Once `stop` is cancelled, records not yet resolved are left
/// unfinished. Fails only if the plugin cannot make a fresh instance, which is no
/// record's fault.
pub async fn resolve(
    pool: &Arc<PluginPool>,
    settings: &ResolveSettings,
    records: Vec<Record>,
    stop: &CancellationToken,
) -> Result<Vec<(Record, Resolution)>, PluginError> {
    let batch = pool.process(records, settings.output_limits()).await;
    let pending: Vec<Pending> = match batch.outcomes {
        Ok(outcomes) => batch
            .records
            .into_iter()
            .zip(outcomes)
            .map(|(record, outcome)| judge(pool, settings, record, outcome, 1))
            .collect(),
        Err(error @ PluginError::Unavailable { .. }) => return Err(error),
        Err(error) if batch.records.len() == 1 => batch
            .records
            .into_iter()
            .map(|record| trapped(pool, record, &error, 1))
            .collect(),
        Err(error) => {
            let (first, last) = offsets(&batch.records);
            tracing::warn!(topic = %batch.records[0].topic, partition = batch.records[0].partition,
                offset = first, last_offset = last, %error,
                "plugin call failed; calling it again record by record to isolate the cause");
            let mut isolated = Vec::with_capacity(batch.records.len());
            for record in batch.records {
                if stop.is_cancelled() {
                    isolated.push(Pending {
                        record,
                        attempts: 1,
                        state: State::Resolved(Resolution::Unfinished),
                    });
                } else {
                    isolated.push(call_alone(pool, settings, record, 2).await?);
                }
            }
            isolated
        }
    };
    let mut resolved = Vec::with_capacity(pending.len());
    for item in pending {
        resolved.push(retry(pool, settings, item, stop).await?);
    }
    let processed = resolved
        .iter()
        .filter(|(_, r)| matches!(r, Resolution::Outputs(_)))
        .count();
    pool.metrics().processed.inc_by(processed as u64);
    Ok(resolved)
}

/// One plugin of a chain, at the version a batch uses.
pub struct ChainStage<'a> {
    /// The plugin's instances.
    pub pool: &'a Arc<PluginPool>,
    /// Its retry settings and output limits.
    pub settings: &'a ResolveSettings,
}

/// Resolve `records` through a chain of plugins: each record's outputs from one
/// plugin are resolved by the next as records of their own (with the original's
/// topic, partition, offset and timestamp); the record's resolution is the last
/// plugin's outputs, or the first failure (or stop) any of its outputs met.
pub async fn resolve_chain(
    stages: &[ChainStage<'_>],
    records: Vec<Record>,
    stop: &CancellationToken,
) -> Result<Vec<(Record, Resolution)>, PluginError> {
    let (first, rest) = stages
        .split_first()
        .expect("a chain has at least one plugin");
    let mut resolved = resolve(first.pool, first.settings, records, stop).await?;
    for stage in rest {
        resolved = feed(stage, resolved, stop).await?;
    }
    Ok(resolved)
}

/// Pass the outputs in `resolved` through `stage`.
async fn feed(
    stage: &ChainStage<'_>,
    mut resolved: Vec<(Record, Resolution)>,
    stop: &CancellationToken,
) -> Result<Vec<(Record, Resolution)>, PluginError> {
    let mut inputs = Vec::new();
    let mut owners = Vec::new();
    for (owner, (record, resolution)) in resolved.iter_mut().enumerate() {
        if let Resolution::Outputs(outputs) = resolution {
            for output in std::mem::take(outputs) {
                inputs.push(Record {
                    topic: record.topic.clone(),
                    partition: record.partition,
                    offset: record.offset,
                    timestamp: record.timestamp,
                    key: output.key,
                    value: output.value,
                    headers: output.headers,
                });
                owners.push(owner);
            }
        }
    }
    if inputs.is_empty() {
        return Ok(resolved);
    }
    // In calls of at most `max_batch` records, like the first plugin's.
    let mut next = Vec::with_capacity(inputs.len());
    let mut inputs = inputs.into_iter().peekable();
    while inputs.peek().is_some() {
        let call: Vec<Record> = inputs
            .by_ref()
            .take(stage.settings.max_batch.max(1))
            .collect();
        next.extend(resolve(stage.pool, stage.settings, call, stop).await?);
    }
    for ((_, outcome), owner) in next.into_iter().zip(owners) {
        let resolution = &mut resolved[owner].1;
        match (&mut *resolution, outcome) {
            (Resolution::Outputs(outputs), Resolution::Outputs(mut more)) => {
                outputs.append(&mut more)
            }
            // The first failure (or stop) of any of its outputs decides the record.
            (Resolution::Outputs(_), other) => *resolution = other,
            _ => {}
        }
    }
    // Each output was checked alone; together they are one record's outputs.
    for (_, resolution) in &mut resolved {
        if let Resolution::Outputs(outputs) = resolution {
            let combined = std::mem::take(outputs);
            *resolution = check_output_limits(stage.pool, stage.settings, combined, 1);
        }
    }
    Ok(resolved)
}

/// Retry `item` while the plugin calls its error retryable and attempts remain.
async fn retry(
    pool: &Arc<PluginPool>,
    settings: &ResolveSettings,
    mut item: Pending,
    stop: &CancellationToken,
) -> Result<(Record, Resolution), PluginError> {
    loop {
        let message = match item.state {
            State::Resolved(resolution) => return Ok((item.record, resolution)),
            State::Retry { message } => message,
        };
        if item.attempts >= settings.max_attempts {
            let failure = RecordFailure {
                kind: FailureKind::Error,
                message: format!(
                    "{message} (retryable; gave up after {} attempts)",
                    item.attempts
                ),
                attempts: item.attempts,
                plugin: pool.identity(),
            };
            return Ok((item.record, Resolution::Failed(failure)));
        }
        let delay = settings.backoff.delay(item.attempts);
        tracing::debug!(topic = %item.record.topic, partition = item.record.partition,
            offset = item.record.offset, attempt = item.attempts + 1, ?delay, %message, "retrying record");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return Ok((item.record, Resolution::Unfinished)),
        }
        pool.metrics().retries.inc();
        item = call_alone(pool, settings, item.record, item.attempts + 1).await?;
    }
}

/// Call the plugin with `record` alone; this is its `attempts`-th call.
async fn call_alone(
    pool: &Arc<PluginPool>,
    settings: &ResolveSettings,
    record: Record,
    attempts: u32,
) -> Result<Pending, PluginError> {
    let mut call = pool.process(vec![record], settings.output_limits()).await;
    let record = call.records.pop().expect("the pool hands records back");
    match call.outcomes {
        Ok(mut outcomes) => {
            let outcome = outcomes.pop().expect("one outcome per record is checked");
            Ok(judge(pool, settings, record, outcome, attempts))
        }
        Err(error @ PluginError::Unavailable { .. }) => Err(error),
        Err(error) => Ok(trapped(pool, record, &error, attempts)),
    }
}

/// What the plugin's `outcome` for `record` means.
fn judge(
    pool: &PluginPool,
    settings: &ResolveSettings,
    record: Record,
    outcome: Outcome,
    attempts: u32,
) -> Pending {
    let state = match outcome {
        Outcome::Outputs(outputs) => {
            State::Resolved(check_output_limits(pool, settings, outputs, attempts))
        }
        Outcome::OverLimit { outputs } => {
            let produced = if outputs > settings.max_outputs {
                format!("produced {outputs} outputs")
            } else {
                format!("produced {outputs} outputs of more than the byte limit together")
            };
            State::Resolved(over_limit(pool, settings, produced, attempts))
        }
        Outcome::Refused(e) if e.retryable => State::Retry { message: e.message },
        Outcome::Refused(e) => State::Resolved(Resolution::Failed(RecordFailure {
            kind: FailureKind::Error,
            message: e.message,
            attempts,
            plugin: pool.identity(),
        })),
    };
    Pending {
        record,
        attempts,
        state,
    }
}

/// `outputs` if they are within the per-record output limits, else a failure.
fn check_output_limits(
    pool: &PluginPool,
    settings: &ResolveSettings,
    outputs: Vec<Output>,
    attempts: u32,
) -> Resolution {
    let bytes: usize = outputs.iter().map(Output::counted_bytes).sum();
    if outputs.len() <= settings.max_outputs && bytes <= settings.max_output_bytes {
        return Resolution::Outputs(outputs);
    }
    let produced = format!("produced {} outputs of {bytes} bytes", outputs.len());
    over_limit(pool, settings, produced, attempts)
}

/// The failure of a record whose outputs (`produced`) go past the limits.
fn over_limit(
    pool: &PluginPool,
    settings: &ResolveSettings,
    produced: String,
    attempts: u32,
) -> Resolution {
    Resolution::Failed(RecordFailure {
        kind: FailureKind::OutputLimit,
        message: format!(
            "{produced}; the limits per record are {} outputs and {} bytes (plugin.max_outputs_per_record, plugin.max_output_bytes_per_record)",
            settings.max_outputs,
            settings.max_output_bytes
        ),
        attempts,
        plugin: pool.identity(),
    })
}

/// A call with `record` alone failed: the record is the cause.
fn trapped(pool: &PluginPool, record: Record, error: &PluginError, attempts: u32) -> Pending {
    let kind = match error {
        PluginError::Trap { kind, .. } => *kind,
        _ => TrapKind::Trap,
    };
    Pending {
        record,
        attempts,
        state: State::Resolved(Resolution::Failed(RecordFailure {
            kind: FailureKind::Trap(kind),
            message: error.to_string(),
            attempts,
            plugin: pool.identity(),
        })),
    }
}

fn offsets(records: &[Record]) -> (i64, i64) {
    (records[0].offset, records[records.len() - 1].offset)
}
