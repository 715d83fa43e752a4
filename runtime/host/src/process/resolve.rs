//! From a batch of records to one resolution per record: run the batch through
//! the plugin; if the call fails (a trap, a deadline, the memory cap), call the
//! plugin again with each record alone so that only the offending record fails
//! and the good ones still go through; retry records whose error the plugin
//! marks retryable, with exponential backoff, up to the attempt limit, each
//! apart from the rest of its call (so a record waiting to be retried holds
//! back no other); hold each record's outputs to the per-record output limits.

use crate::process::{Backoff, FailureKind, RecordFailure};
use crate::record::{Outcome, Output, Record};
use crate::state::{PartitionState, RecordWrites};
use crate::wasm::{OutputLimits, PluginError, PluginPool, TrapKind};
use futures::future::BoxFuture;
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
    /// Its state writes in the call that resolved it with outputs.
    writes: Option<RecordWrites>,
}

enum State {
    Resolved(Resolution),
    /// The plugin said trying again may succeed.
    Retry {
        message: String,
    },
}

/// One record of a call, resolved.
#[derive(Debug)]
pub struct Settled {
    /// Its place in the records the call was given.
    pub index: usize,
    /// The record (as the call was given it).
    pub record: Record,
    /// What became of it.
    pub resolution: Resolution,
    /// Its state writes, one entry per plugin of the chain that wrote; they
    /// take effect only if the resolution is outputs.
    pub writes: Vec<RecordWrites>,
}

/// Work still going on for records of a call that wait for a retry: it
/// resolves to more progress.
pub type Later = BoxFuture<'static, Result<Progress, PluginError>>;

/// Where a call's records stand: those resolved, and those still retrying.
/// A record waiting for a retry does not hold back the others.
#[derive(Default)]
pub struct Progress {
    /// Records resolved.
    pub settled: Vec<Settled>,
    /// The records still retrying, each group with its own future.
    pub later: Vec<Later>,
}

impl Progress {
    /// Wait for every record still retrying; the records resolved, in the
    /// order they were given.
    pub async fn finish(self) -> Result<Vec<Settled>, PluginError> {
        let mut settled = self.settled;
        let mut later = self.later;
        while let Some(work) = later.pop() {
            let more = work.await?;
            settled.extend(more.settled);
            later.extend(more.later);
        }
        settled.sort_by_key(|s| s.index);
        Ok(settled)
    }
}

/// One plugin of a chain, at the version a call uses.
#[derive(Clone)]
pub struct ChainStage {
    /// The plugin's instances.
    pub pool: Arc<PluginPool>,
    /// Its retry settings and output limits.
    pub settings: ResolveSettings,
    /// Its state of the partition being processed, if it has state.
    pub state: Option<Arc<PartitionState>>,
}

/// The plugins a call goes through, first to last.
pub type Chain = Arc<[ChainStage]>;

/// Resolve `records` (one partition, in offset order) through a chain of
/// plugins: each record's outputs from one plugin are resolved by the next as
/// records of their own (with the original's topic, partition, offset and
/// timestamp); the record's resolution is the last plugin's outputs, or the
/// first failure (or stop) any of its outputs met. Records the plugin calls
/// retryable are retried with backoff in [`Progress::later`], each apart from
/// the rest. Once `stop` is cancelled, records not yet resolved are left
/// unfinished. Fails only if a plugin cannot make a fresh instance, which is
/// no record's fault.
pub async fn resolve_chain(
    chain: Chain,
    records: Vec<Record>,
    stop: CancellationToken,
) -> Result<Progress, PluginError> {
    let first = &chain[0];
    let pending = first_pass(first, records, &stop).await?;
    let mut settled = Vec::with_capacity(pending.len());
    let mut later: Vec<Later> = Vec::new();
    for (index, item) in pending.into_iter().enumerate() {
        match item.state {
            State::Resolved(resolution) => {
                settled.push(Settled {
                    index,
                    record: item.record,
                    resolution,
                    writes: item.writes.into_iter().collect(),
                });
            }
            State::Retry { .. } => {
                let (chain, stop) = (Arc::clone(&chain), stop.clone());
                later.push(Box::pin(async move {
                    let first = &chain[0];
                    let (record, resolution, writes) = retry(first, item, &stop).await?;
                    count_processed(&first.pool, &resolution);
                    let owner = Settled {
                        index,
                        record,
                        resolution,
                        writes: writes.into_iter().collect(),
                    };
                    continue_chain(chain, 1, vec![owner], stop).await
                }));
            }
        }
    }
    // One atomic add per call, not per record.
    let processed = settled
        .iter()
        .filter(|s| matches!(s.resolution, Resolution::Outputs(_)))
        .count();
    first.pool.metrics().processed.inc_by(processed as u64);
    let mut progress = continue_chain(chain, 1, settled, stop).await?;
    progress.later.extend(later);
    Ok(progress)
}

/// Pass the outputs of `owners` (resolved up to plugin `at - 1`) through the
/// chain from plugin `at` on.
fn continue_chain(
    chain: Chain,
    at: usize,
    mut owners: Vec<Settled>,
    stop: CancellationToken,
) -> BoxFuture<'static, Result<Progress, PluginError>> {
    Box::pin(async move {
        let Some(stage) = chain.get(at).cloned() else {
            return Ok(Progress {
                settled: owners,
                later: Vec::new(),
            });
        };
        let mut inputs = Vec::new();
        let mut of_owner = Vec::new();
        for (owner, settled) in owners.iter_mut().enumerate() {
            if let Resolution::Outputs(outputs) = &mut settled.resolution {
                let record = &settled.record;
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
                    of_owner.push(owner);
                }
            }
        }
        if inputs.is_empty() {
            return Ok(Progress {
                settled: owners,
                later: Vec::new(),
            });
        }
        // In calls of at most `max_batch` records, like the first plugin's.
        let mut pending: Vec<Vec<Pending>> = owners.iter().map(|_| Vec::new()).collect();
        let mut inputs = inputs.into_iter().peekable();
        let mut of_owner = of_owner.into_iter();
        while inputs.peek().is_some() {
            let call: Vec<Record> = inputs
                .by_ref()
                .take(stage.settings.max_batch.max(1))
                .collect();
            for item in first_pass(&stage, call, &stop).await? {
                pending[of_owner.next().expect("one owner per input")].push(item);
            }
        }
        let mut done = Vec::with_capacity(owners.len());
        let mut later: Vec<Later> = Vec::new();
        for (mut owner, items) in owners.into_iter().zip(pending) {
            if !matches!(owner.resolution, Resolution::Outputs(_)) {
                done.push(owner);
            } else if items
                .iter()
                .all(|item| matches!(item.state, State::Resolved(_)))
            {
                let mut writes = Vec::new();
                let outcomes: Vec<Resolution> = items
                    .into_iter()
                    .map(|item| {
                        writes.extend(item.writes);
                        match item.state {
                            State::Resolved(resolution) => resolution,
                            State::Retry { .. } => unreachable!("checked above"),
                        }
                    })
                    .collect();
                owner.resolution = combine(&stage, outcomes);
                owner.writes.extend(writes);
                done.push(owner);
            } else {
                let (chain, stop, stage) = (Arc::clone(&chain), stop.clone(), stage.clone());
                later.push(Box::pin(async move {
                    let mut outcomes = Vec::with_capacity(items.len());
                    for item in items {
                        let (_, resolution, writes) = retry(&stage, item, &stop).await?;
                        owner.writes.extend(writes);
                        outcomes.push(resolution);
                    }
                    owner.resolution = combine(&stage, outcomes);
                    continue_chain(chain, at + 1, vec![owner], stop).await
                }));
            }
        }
        let mut progress = continue_chain(chain, at + 1, done, stop).await?;
        progress.later.extend(later);
        Ok(progress)
    })
}

/// A record's resolution from the resolutions of its outputs by `stage`: all
/// their outputs together (within the per-record limits), or the first
/// failure (or stop) any of them met.
fn combine(stage: &ChainStage, outcomes: impl IntoIterator<Item = Resolution>) -> Resolution {
    let mut combined = Vec::new();
    for outcome in outcomes {
        count_processed(&stage.pool, &outcome);
        match outcome {
            Resolution::Outputs(mut more) => combined.append(&mut more),
            other => return other,
        }
    }
    // Each output was checked alone; together they are one record's outputs.
    check_output_limits(&stage.pool, &stage.settings, combined, 1)
}

/// Count `resolution` as processed by `pool` if it has outputs.
fn count_processed(pool: &PluginPool, resolution: &Resolution) {
    if matches!(resolution, Resolution::Outputs(_)) {
        pool.metrics().processed.inc();
    }
}

/// Call `stage`'s plugin with `records` in one batch; if the call fails, call
/// it again with each record alone, so that only the record at fault fails.
/// One pending resolution per record, in order.
async fn first_pass(
    stage: &ChainStage,
    records: Vec<Record>,
    stop: &CancellationToken,
) -> Result<Vec<Pending>, PluginError> {
    let (pool, settings) = (&stage.pool, &stage.settings);
    let mut batch = pool
        .process(records, settings.output_limits(), stage.state.as_ref())
        .await;
    match batch.outcomes {
        Ok(outcomes) => Ok(batch
            .records
            .into_iter()
            .zip(outcomes)
            .map(|(record, outcome)| {
                let writes = batch.writes.claim(record.offset);
                judge(pool, settings, record, outcome, 1, writes)
            })
            .collect()),
        Err(error @ PluginError::Unavailable { .. }) => Err(error),
        Err(error) if batch.records.len() == 1 => Ok(batch
            .records
            .into_iter()
            .map(|record| trapped(pool, record, &error, 1))
            .collect()),
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
                        writes: None,
                    });
                } else {
                    isolated.push(call_alone(stage, record, 2).await?);
                }
            }
            Ok(isolated)
        }
    }
}

/// Retry `item` while the plugin calls its error retryable and attempts
/// remain: the record, its resolution and its state writes.
async fn retry(
    stage: &ChainStage,
    mut item: Pending,
    stop: &CancellationToken,
) -> Result<(Record, Resolution, Option<RecordWrites>), PluginError> {
    let (pool, settings) = (&stage.pool, &stage.settings);
    loop {
        let message = match item.state {
            State::Resolved(resolution) => return Ok((item.record, resolution, item.writes)),
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
            return Ok((item.record, Resolution::Failed(failure), None));
        }
        let delay = settings.backoff.delay(item.attempts);
        tracing::debug!(topic = %item.record.topic, partition = item.record.partition,
            offset = item.record.offset, attempt = item.attempts + 1, ?delay, %message, "retrying record");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return Ok((item.record, Resolution::Unfinished, None)),
        }
        pool.metrics().retries.inc();
        item = call_alone(stage, item.record, item.attempts + 1).await?;
    }
}

/// Call the plugin with `record` alone; this is its `attempts`-th call.
async fn call_alone(
    stage: &ChainStage,
    record: Record,
    attempts: u32,
) -> Result<Pending, PluginError> {
    let (pool, settings) = (&stage.pool, &stage.settings);
    let mut call = pool
        .process(vec![record], settings.output_limits(), stage.state.as_ref())
        .await;
    let record = call.records.pop().expect("the pool hands records back");
    match call.outcomes {
        Ok(mut outcomes) => {
            let outcome = outcomes.pop().expect("one outcome per record is checked");
            let writes = call.writes.claim(record.offset);
            Ok(judge(pool, settings, record, outcome, attempts, writes))
        }
        Err(error @ PluginError::Unavailable { .. }) => Err(error),
        Err(error) => Ok(trapped(pool, record, &error, attempts)),
    }
}

/// What the plugin's `outcome` for `record` means, given the state `writes`
/// the call made for it (or why one was refused, which fails the record).
fn judge(
    pool: &PluginPool,
    settings: &ResolveSettings,
    record: Record,
    outcome: Outcome,
    attempts: u32,
    writes: Result<Option<RecordWrites>, String>,
) -> Pending {
    let writes = match writes {
        Ok(writes) => writes,
        Err(reason) => {
            return Pending {
                record,
                attempts,
                state: State::Resolved(Resolution::Failed(RecordFailure {
                    kind: FailureKind::State,
                    message: reason,
                    attempts,
                    plugin: pool.identity(),
                })),
                writes: None,
            }
        }
    };
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
    // Only a record resolved with outputs keeps its writes.
    let writes = writes.filter(|_| matches!(state, State::Resolved(Resolution::Outputs(_))));
    Pending {
        record,
        attempts,
        state,
        writes,
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
        writes: None,
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
