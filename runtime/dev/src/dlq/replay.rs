//! `weir dlq replay`: write dead letters back to the topics they came from,
//! as a committed consumer group of the dead-letter topic, so a replay that
//! is stopped resumes where it stopped.
//!
//! A letter's offset is committed only after the broker acknowledged the
//! record written back for it (and for every letter before it in its
//! partition); letters the filter does not select, and letters refused (at
//! `--max-replays`, or truncated), are passed over and committed too, so the
//! group's position means "dealt with". Ctrl-C or SIGTERM stops reading,
//! waits for the acknowledgements of what was sent and commits. After a
//! `kill -9`, what was acknowledged since the last commit (at most a second's
//! worth) is written again on the next run: at-least-once, as for `weir run`.

use super::{DlqError, Filter, Letter, Refusal, Source};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use weir_host::kafka::{OutputSink, PendingDelivery, WeirConsumer, WeirContext, WeirProducer};
use weir_host::letters::{self, LetterReader, REQUEST_TIMEOUT};
use weir_host::telemetry::PipelineMetrics;

/// Most records written back and not yet acknowledged.
const MAX_UNACKNOWLEDGED: usize = 10_000;
/// How often acknowledged letters are committed.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// What to replay.
pub struct ReplayRequest<'a> {
    /// The dead-letter topic.
    pub source: Source<'a>,
    /// The consumer group whose committed offsets say what was dealt with.
    pub group: &'a str,
    /// Which letters to write back.
    pub filter: &'a Filter,
    /// Write every letter here instead of to its `weir.source.topic`.
    pub to: Option<&'a str>,
    /// Refuse letters already replayed this many times.
    pub max_replays: u32,
    /// Write back at most this many letters per second (a large replay
    /// need not flood the source topic); unlimited if `None`.
    pub rate: Option<u32>,
    /// List what would be written back without writing or committing.
    pub dry_run: bool,
    /// Stop early (Ctrl-C): finish what was sent, commit, return.
    pub stop: &'a CancellationToken,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Letters written back (or, in a dry run, that would be).
    pub replayed: u64,
    /// Letters the filter did not select.
    pub passed_over: u64,
    /// Letters refused, with the reason logged.
    pub refused: u64,
    /// Whether it stopped before the end.
    pub interrupted: bool,
}

/// A letter read, in partition order, waiting for its record's acknowledgement
/// (`None`: nothing was written for it) before its offset can be committed.
struct InFlight {
    partition: i32,
    offset: i64,
    delivery: Option<PendingDelivery>,
}

/// Replay the letters `request` names; a dry run lists them on `out`.
pub async fn replay(
    request: &ReplayRequest<'_>,
    out: &mut impl Write,
) -> Result<ReplaySummary, DlqError> {
    let source = &request.source;
    let consumer = letters::reader_consumer(source, "weir-dlq-replay", request.group)?;
    let (starts, total) = starts(request, &consumer)?;
    let sink = if request.dry_run {
        None
    } else {
        Some(output_sink(request)?)
    };
    let progress = progress_bar(total);
    let mut reader = LetterReader::open(source, &consumer, &starts)?;
    let mut summary = ReplaySummary::default();
    let mut in_flight = VecDeque::new();
    let mut done = BTreeMap::new();
    let started = Instant::now();
    let mut last_commit = started;
    let result = loop {
        if request.stop.is_cancelled() {
            summary.interrupted = true;
            break Ok(());
        }
        let letter = match reader.next_letter() {
            Ok(Some(letter)) => letter,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.into()),
        };
        progress.inc(1);
        let delivery = match handle(request, &letter, sink.as_ref(), &mut summary, out).await {
            Ok(delivery) => delivery,
            Err(e) => break Err(e),
        };
        in_flight.push_back(InFlight {
            partition: letter.record.partition,
            offset: letter.record.offset,
            delivery,
        });
        if let (Some(rate), false) = (request.rate, request.dry_run) {
            let due = started + Duration::from_secs_f64(summary.replayed as f64 / f64::from(rate));
            tokio::time::sleep_until(due.into()).await;
        }
        progress.set_message(format!(
            "replayed {}, passed over {}, refused {}",
            summary.replayed, summary.passed_over, summary.refused
        ));
        // Once a second, wait for every acknowledgement and commit, so a
        // kill -9 replays at most that second again; in between, keep the
        // letters in flight bounded.
        let commit_due = last_commit.elapsed() >= COMMIT_INTERVAL;
        if commit_due || in_flight.len() > MAX_UNACKNOWLEDGED {
            let keep = if commit_due {
                0
            } else {
                MAX_UNACKNOWLEDGED / 2
            };
            if let Err(e) = settle(source.topic, &mut in_flight, &mut done, keep).await {
                break Err(e);
            }
            if commit_due {
                commit(request, &consumer, &mut done)?;
                last_commit = Instant::now();
            }
        }
    };
    // Whatever ended the loop, commit what the broker has acknowledged.
    let settled = settle(source.topic, &mut in_flight, &mut done, 0).await;
    commit(request, &consumer, &mut done)?;
    progress.finish_and_clear();
    result.and(settled).map(|()| summary)
}

/// Each partition's first letter to read (the group's committed offset, else
/// the partition's first, moved up to `--from-offset`), and how many letters
/// there are from there to the ends the broker lists now (for the progress bar).
fn starts(
    request: &ReplayRequest<'_>,
    consumer: &WeirConsumer,
) -> Result<(BTreeMap<i32, i64>, i64), DlqError> {
    let source = &request.source;
    let marks = source.watermarks(consumer)?;
    let mut asked = TopicPartitionList::new();
    for &partition in marks.keys() {
        asked.add_partition(source.topic, partition);
    }
    let committed = consumer
        .committed_offsets(asked, REQUEST_TIMEOUT)
        .map_err(source.kafka_error("reading the group's committed offsets"))?;
    let mut total = 0;
    let starts = marks
        .into_iter()
        .map(|(partition, (low, high))| {
            let resume = match committed
                .find_partition(source.topic, partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(next)) => next.max(low),
                _ => low,
            };
            let start = request
                .filter
                .from_offset
                .map_or(resume, |from| resume.max(from));
            total += (high - start).max(0);
            (partition, start)
        })
        .collect();
    Ok((starts, total))
}

/// The producer records are written back with: idempotent, `acks=all`.
fn output_sink(request: &ReplayRequest<'_>) -> Result<OutputSink, DlqError> {
    let source = &request.source;
    let producer: WeirProducer = source
        .client_config("weir-dlq-replay")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create_with_context(WeirContext::new())
        .map_err(source.kafka_error("creating the producer"))?;
    let default_topic = request.to.unwrap_or_default().to_string();
    Ok(OutputSink::new(
        producer,
        default_topic,
        [],
        PipelineMetrics::detached(),
    ))
}

/// Deal with one letter: pass it over, refuse it (logged), list it (dry
/// run) or write its record back.
async fn handle(
    request: &ReplayRequest<'_>,
    letter: &Letter,
    sink: Option<&OutputSink>,
    summary: &mut ReplaySummary,
    out: &mut impl Write,
) -> Result<Option<PendingDelivery>, DlqError> {
    if !letter.selected_by(request.filter) {
        summary.passed_over += 1;
        return Ok(None);
    }
    let record = &letter.record;
    let output = match letter.replay(request.to, request.max_replays) {
        Ok(output) => output,
        Err(refusal) => {
            summary.refused += 1;
            log_refusal(record, &refusal);
            if request.dry_run {
                writeln!(out, "refused  {}  ({refusal})", letter.summary_line())?;
            }
            return Ok(None);
        }
    };
    summary.replayed += 1;
    let Some(sink) = sink else {
        let to = output.topic.as_deref().unwrap_or_default();
        writeln!(out, "replay → {to}  {}", letter.summary_line())?;
        return Ok(None);
    };
    sink.send(&output, record.timestamp)
        .await
        .map(Some)
        .map_err(|e| DlqError::Produce {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            reason: e.to_string(),
        })
}

fn log_refusal(record: &weir_host::record::Record, refusal: &Refusal) {
    tracing::warn!(
        topic = %record.topic,
        partition = record.partition,
        offset = record.offset,
        "letter not replayed: {refusal}"
    );
}

/// Wait for the oldest letters' acknowledgements until at most `keep` are
/// in flight, noting each partition's next offset to commit.
async fn settle(
    topic: &str,
    in_flight: &mut VecDeque<InFlight>,
    done: &mut BTreeMap<i32, i64>,
    keep: usize,
) -> Result<(), DlqError> {
    while in_flight.len() > keep {
        let Some(oldest) = in_flight.pop_front() else {
            break;
        };
        if let Some(delivery) = oldest.delivery {
            delivery
                .acknowledged()
                .await
                .map_err(|e| DlqError::Produce {
                    topic: topic.to_string(),
                    partition: oldest.partition,
                    offset: oldest.offset,
                    reason: e.to_string(),
                })?;
        }
        done.insert(oldest.partition, oldest.offset + 1);
    }
    Ok(())
}

/// Commit the acknowledged letters' offsets (not in a dry run).
fn commit(
    request: &ReplayRequest<'_>,
    consumer: &WeirConsumer,
    done: &mut BTreeMap<i32, i64>,
) -> Result<(), DlqError> {
    if request.dry_run || done.is_empty() {
        return Ok(());
    }
    let source = &request.source;
    let mut offsets = TopicPartitionList::new();
    for (&partition, &next) in done.iter() {
        offsets
            .add_partition_offset(source.topic, partition, Offset::Offset(next))
            .map_err(source.kafka_error("committing"))?;
    }
    consumer
        .commit(&offsets, CommitMode::Sync)
        .map_err(source.kafka_error("committing"))?;
    done.clear();
    Ok(())
}

/// A bar on the terminal (hidden when stderr is not one).
fn progress_bar(total: i64) -> ProgressBar {
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} letters  {per_sec}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
