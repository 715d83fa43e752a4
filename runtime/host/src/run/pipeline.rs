//! One pipeline's lives: each runs its own consumer and producer on a
//! dedicated thread (the consumer loop blocks in `poll`); a Kafka failure ends a
//! life and, after a backoff, starts the next from the last committed offsets.

use super::topic_watch::{self, TopicWatch};
use super::{Pipeline, RunError};
use crate::budget::InFlightBudget;
use crate::commit::{CommitError, Committer};
use crate::config::{FailurePolicy, OffsetReset, PipelineSettings};
use crate::consume::{self, Router, StopCause};
use crate::kafka::{self, KafkaSetupError, LagBounds, OutputSink, WeirConsumer, WeirProducer};
use crate::partition::{DeadLetters, PipelineContext, PipelineError};
use crate::telemetry::PipelineMetrics;
use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;
use std::collections::BTreeSet;
use std::sync::{mpsc as sync_mpsc, Arc};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the final producer flush may take after workers drained.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing the Kafka clients (leaving the group) may take at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Run `pipeline` until `shutdown` is cancelled or it fails for good;
/// restart it after Kafka failures.
pub(super) async fn run(pipeline: Pipeline, shutdown: CancellationToken) -> Result<(), RunError> {
    let mut backoff = RESTART_BACKOFF_MIN;
    loop {
        let started = std::time::Instant::now();
        let result = run_once(pipeline.clone(), shutdown.clone()).await;
        pipeline.health.set_joined(false);
        match result {
            Err(e) if is_transient(&e) && !shutdown.is_cancelled() => {
                pipeline.metrics.restarts.inc();
                if started.elapsed() > RESTART_BACKOFF_MAX {
                    backoff = RESTART_BACKOFF_MIN;
                }
                tracing::warn!(error = %e, retry_in = ?backoff,
                    "Kafka failed under the pipeline; restarting it from the last committed offsets");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
                backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
            }
            other => return other,
        }
    }
}

/// First wait before restarting the pipeline after a Kafka failure; it doubles.
const RESTART_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between restarts; a run that lasted longer resets the backoff.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Failures of Kafka rather than of the plugin or the configuration: the
/// producer gave up on an output (e.g. the broker lost its idempotence state
/// across a restart) or a transaction failed. Nothing was committed past them,
/// so the pipeline restarts from the committed offsets; exactly-once holds too,
/// since the failed transaction was aborted.
fn is_transient(error: &RunError) -> bool {
    if let RunError::Pipeline(PipelineError::State { source, .. }) = error {
        // A changelog that could not be read (a broker hiccup) is read again
        // by the next life; a store that fails is not retried.
        return matches!(**source, crate::state::StateError::Restore { .. });
    }
    matches!(
        error,
        RunError::Pipeline(PipelineError::Produce { .. })
            | RunError::Commit(
                CommitError::Transaction(_) | CommitError::NoGroupMetadata | CommitError::HalfBatch
            )
    )
}

/// One life of the pipeline: its own consumer and producer, on its own thread.
async fn run_once(pipeline: Pipeline, shutdown: CancellationToken) -> Result<(), RunError> {
    let runtime = tokio::runtime::Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("weir-consumer".into())
        .spawn(move || {
            let _ = done_tx.send(consume(pipeline, runtime, shutdown));
        })
        .map_err(|e| RunError::ConsumerThread(e.to_string()))?;
    done_rx
        .await
        .map_err(|_| RunError::ConsumerThread("it panicked; see the log above".into()))?
}

/// The consumer thread: set up Kafka, route records until told to stop, drain,
/// commit, flush.
fn consume(
    pipeline: Pipeline,
    runtime: tokio::runtime::Handle,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let Pipeline {
        config,
        metrics,
        health,
        tracing,
        stages,
        schema,
    } = pipeline;
    let consumer = Arc::new(kafka::create_consumer(&config)?);
    consumer.context().observe(
        metrics.clone(),
        Arc::clone(&health),
        LagBounds {
            read_committed: config.exactly_once(),
            starts_at_end: config.auto_offset_reset == OffsetReset::Latest,
        },
    );
    let producer = kafka::create_producer(&config)?;
    let mut needed: Vec<&str> = config
        .subscription
        .names()
        .iter()
        .map(String::as_str)
        .collect();
    needed.push(&config.output_topic);
    kafka::check_topics(&consumer, &config.brokers, &needed)?;
    let topics = topic_watch::input_topics(&config, &consumer)?;
    let (output, dead_letters) =
        outputs(&config, &consumer, &producer, &metrics, &runtime, &topics)?;
    for store in stages.iter().filter_map(|s| s.state.as_ref()) {
        let admin = kafka::create_admin(&config)?;
        runtime.block_on(kafka::ensure_changelog_topic(
            &consumer,
            &admin,
            store.changelog(),
            topics.iter().map(String::as_str),
        ))?;
    }
    let context = Arc::new(PipelineContext {
        committer: committer(&config, &consumer, producer, &metrics)?,
        output,
        batch: config.batch.clone(),
        budget: Arc::new(InFlightBudget::new(config.max_in_flight_bytes)),
        stages,
        version_header: config.version_header,
        output_topics: config.output_topics.clone(),
        policy: config.failure.policy,
        dead_letters,
        metrics,
        tracing,
        schema,
        output_topic: Arc::from(config.output_topic.as_str()),
        concurrency: config.concurrency,
        max_uncommitted: config.max_uncommitted,
    });
    let (results_tx, results) = sync_mpsc::channel();
    let mut router = Router::new(
        Arc::clone(&context),
        runtime.clone(),
        results_tx,
        config.drain_timeout,
    );
    subscribe(&config, &consumer, &context, &topics)?;
    if topics.is_empty() {
        // Patterns that match nothing yet: there is no group to join until
        // they do, and the process is doing what it should.
        health.set_joined(true);
    }
    let watch = match (config.subscription.has_patterns(), config.topic_refresh) {
        (true, Some(refresh)) => Some(TopicWatch::start(
            &config,
            refresh,
            Arc::clone(&consumer),
            Arc::clone(&context),
            runtime.clone(),
            topics.clone(),
            shutdown.clone(),
        )?),
        (true, None) => {
            tracing::info!("topic patterns are matched at start-up only (topic.metadata.refresh.interval.ms is 0 or less)");
            None
        }
        (false, _) => None,
    };
    let stop = consume::consume_loop(
        &consumer,
        &mut router,
        &results,
        &shutdown,
        config.commit_interval,
    );
    // Not ready while draining: no new records are taken from here on.
    health.set_joined(false);
    // No subscription change from here on: it would start a rebalance
    // nobody serves while this life drains and commits.
    let subscribed = match watch {
        Some(watch) => watch.stop(),
        None => topics,
    };
    let mut failure = stop.map(|cause| match cause {
        StopCause::Partition(e) => RunError::Pipeline(e),
        StopCause::Commit(e) => RunError::Commit(e),
        StopCause::PollThread(reason) => RunError::ConsumerThread(reason),
    });
    if failure.is_none() {
        tracing::info!("shutdown requested; finishing in-flight batches");
    }
    let mut drain = router.drain_all();
    router.wait_out(&mut drain, config.commit_interval);
    if let Err(e) = router.end_drain(drain) {
        failure.get_or_insert(RunError::DrainTimeout {
            timeout: config.drain_timeout,
            partitions: e.partitions,
        });
    }
    if failure.is_none() {
        failure = results
            .try_iter()
            .find_map(|(_, result)| result.err())
            .map(RunError::Pipeline);
    }
    let result = wind_down(&context, &runtime, failure);
    // A restarted life shows its own subscription, not this one's.
    context.metrics.subscription_changed([], &subscribed);
    close_within((router, context, consumer), CLOSE_TIMEOUT);
    result
}

/// Drop `clients` (closing the consumer, which leaves the group, and the
/// producer) on a thread of their own, waiting up to `timeout`: the run's
/// outcome is settled by now, and a close that hangs on the broker must not
/// keep the process from exiting.
fn close_within(clients: impl Send + 'static, timeout: Duration) {
    let (closed_tx, closed) = sync_mpsc::channel();
    let closing = std::thread::Builder::new()
        .name("weir-close".into())
        .spawn(move || {
            drop(clients);
            let _ = closed_tx.send(());
        });
    if closing.is_ok() && closed.recv_timeout(timeout).is_err() {
        tracing::warn!(?timeout,
            "closing the Kafka clients did not finish in time; going on without waiting (the group notices this member is gone after its session timeout)");
    }
}

/// Where outputs and dead letters go; the dead-letter topics exist once this
/// returns (under the `dlq` policy).
fn outputs(
    config: &PipelineSettings,
    consumer: &WeirConsumer,
    producer: &WeirProducer,
    metrics: &PipelineMetrics,
    runtime: &tokio::runtime::Handle,
    topics: &BTreeSet<String>,
) -> Result<(Arc<OutputSink>, DeadLetters), RunError> {
    let output = Arc::new(OutputSink::new(
        producer.clone(),
        config.output_topic.clone(),
        topics.iter().map(|t| config.dead_letter.topic_for(t)),
        metrics.clone(),
    ));
    let dead_letters = DeadLetters::new(
        config.dead_letter.clone(),
        Arc::clone(&output),
        metrics.clone(),
    );
    if config.failure.policy == FailurePolicy::Dlq {
        let admin = kafka::create_admin(config)?;
        runtime.block_on(dead_letters.ensure_topics(
            consumer,
            &admin,
            topics.iter().map(String::as_str),
        ))?;
    }
    Ok((output, dead_letters))
}

/// How this pipeline commits: in transactions of `producer` in exactly-once
/// mode, else by storing offsets.
fn committer(
    config: &PipelineSettings,
    consumer: &Arc<WeirConsumer>,
    producer: WeirProducer,
    metrics: &PipelineMetrics,
) -> Result<Committer, KafkaSetupError> {
    if !config.exactly_once() {
        return Ok(Committer::stored_offsets(
            Arc::clone(consumer),
            metrics.clone(),
        ));
    }
    Committer::transactional(Arc::clone(consumer), producer, metrics.clone()).map_err(|source| {
        KafkaSetupError::Transactions {
            brokers: config.brokers.clone(),
            source,
        }
    })
}

/// Subscribe to the input `topics`.
fn subscribe(
    config: &PipelineSettings,
    consumer: &WeirConsumer,
    context: &PipelineContext,
    topics: &BTreeSet<String>,
) -> Result<(), KafkaSetupError> {
    topic_watch::subscribe_to(consumer, topics)?;
    context.metrics.subscription_changed(topics, []);
    tracing::info!(
        group = %config.group,
        ?topics,
        patterns = ?config.subscription.patterns().collect::<Vec<_>>(),
        output = %config.output_topic,
        plugins = ?context.stages.iter().map(|s| s.slot.name()).collect::<Vec<_>>(),
        exactly_once = config.exactly_once(),
        "consuming"
    );
    Ok(())
}

/// After the workers stopped: commit what they finished and flush the
/// producer; the run's outcome is its first `failure`, if any.
fn wind_down(
    context: &PipelineContext,
    runtime: &tokio::runtime::Handle,
    mut failure: Option<RunError>,
) -> Result<(), RunError> {
    if let Err(e) = context.committer.commit(runtime) {
        failure.get_or_insert(RunError::Commit(e));
    }
    if let Err(e) = context.output.producer().flush(FLUSH_TIMEOUT) {
        tracing::warn!(error = %e, "producer flush did not finish");
    }
    match failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("stopped cleanly; all processed offsets committed");
            Ok(())
        }
    }
}
