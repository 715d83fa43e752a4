//! `weir run`: load the plugin, set up Kafka, run the consumer loop on its own
//! thread, and shut down cleanly.
//!
//! States: start-up checks → consuming → draining (no new records; workers finish
//! their current batch and their outputs are acknowledged) → final commit →
//! producer flush → leave the group.

use crate::commit::{CommitError, Committer, Transactions};
use crate::config::{FailurePolicy, OffsetReset, RunConfig};
use crate::failure::Backoff;
use crate::flow::InFlightBudget;
use crate::kafka::{self, KafkaSetupError, LagBounds, OutputSink};
use crate::metrics::{Metrics, PipelineMetrics};
use crate::otlp::{OtlpError, SpanExport};
use crate::pipeline::{FailureHandling, PipelineError, Shared, Stage};
use crate::reload::{self, PluginLoader};
use crate::resolve::ResolveSettings;
use crate::router::{self, Router, RouterRebalance, StopCause};
use crate::trace_context::Tracing;
use crate::wasm::{PluginError, PluginSlot};
use crate::{admin, watch};
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;
use std::sync::{mpsc as sync_mpsc, Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the final producer flush may take after workers drained.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `weir run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plugin could not be loaded or initialised.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Kafka could not be set up.
    #[error(transparent)]
    Kafka(#[from] KafkaSetupError),
    /// A partition stopped on a record it could not process.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Shutdown could not finish in-flight work in time.
    #[error("shutdown gave up after {timeout:?} with partitions {partitions:?} still busy; their unfinished records will be processed again after restart (raise --drain-timeout to wait longer)")]
    DrainTimeout {
        /// The configured drain deadline.
        timeout: Duration,
        /// Partitions whose workers had not finished.
        partitions: Vec<String>,
    },
    /// A commit failed.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// The plugin file cannot be watched for changes.
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    /// The admin endpoint cannot listen.
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    /// Span export cannot be set up.
    #[error(transparent)]
    Otlp(#[from] OtlpError),
    /// A signal handler could not be installed.
    #[error("cannot install the SIGHUP handler: {0}")]
    Signal(std::io::Error),
    /// The consumer thread could not be started or died.
    #[error("consumer thread failed: {0}")]
    ConsumerThread(String),
}

/// Run every pipeline of `config` until `shutdown` is cancelled or one fails
/// (which stops the others too).
pub async fn run(config: RunConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    let export = match &config.otlp_endpoint {
        Some(endpoint) => Some(Arc::new(SpanExport::new(endpoint)?)),
        None => None,
    };
    let tracing = export.clone().map(Tracing::exporting).unwrap_or_default();
    let result = run_pipelines(config, tracing, shutdown).await;
    if let Some(export) = export {
        // Sends the spans still batched; blocking, so off the async threads.
        let _ = tokio::task::spawn_blocking(move || export.shutdown()).await;
    }
    result
}

/// Run every pipeline, continuing traces with `tracing`.
async fn run_pipelines(
    config: RunConfig,
    tracing: Tracing,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    let admin_addr = config
        .admin_socket()
        .expect("the configuration was validated");
    let pipelines: Vec<(RunConfig, PipelineMetrics)> = config
        .pipelines()
        .into_iter()
        .map(|p| {
            let m = metrics.pipeline(&p.group);
            (p, m)
        })
        .collect();
    let healths = pipelines
        .iter()
        .map(|(_, m)| Arc::clone(&m.health))
        .collect();
    // Served before the plugins load, so that probes see "alive, not ready" meanwhile.
    let plugins = match admin_addr {
        Some(addr) => Some(admin::serve(addr, Arc::clone(&metrics), healths).await?),
        None => None,
    };
    let mut managed = Vec::new();
    let mut prepared = Vec::new();
    for (pipeline, pipeline_metrics) in pipelines {
        let (stages, watching, loaded) = load_plugins(&pipeline, &pipeline_metrics).await?;
        pipeline_metrics.health.set_plugins_loaded();
        managed.extend(loaded);
        prepared.push((pipeline, pipeline_metrics, stages, watching));
    }
    let handles = managed.iter().map(|m| m.reloads.clone()).collect();
    reload::reload_on_sighup(handles).map_err(RunError::Signal)?;
    if let Some(plugins) = plugins {
        plugins.manage(managed);
    }
    let stop = shutdown.child_token();
    let mut running: FuturesUnordered<_> = prepared
        .into_iter()
        .map(|(pipeline, pipeline_metrics, stages, watching)| {
            let stop = stop.clone();
            let tracing = tracing.clone();
            async move {
                // The pipeline's watchers stop with it.
                let _watching = watching;
                let result =
                    run_pipeline(pipeline, pipeline_metrics, tracing, stages, stop.clone()).await;
                if result.is_err() {
                    stop.cancel();
                }
                result
            }
        })
        .collect();
    let mut first_error = None;
    while let Some(result) = running.next().await {
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Run one pipeline until `shutdown` is cancelled or it fails for good;
/// restart it after Kafka failures.
async fn run_pipeline(
    config: RunConfig,
    metrics: PipelineMetrics,
    tracing: Tracing,
    stages: Vec<Stage>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let mut backoff = RESTART_BACKOFF_MIN;
    loop {
        let started = std::time::Instant::now();
        let result = run_once(
            config.clone(),
            metrics.clone(),
            tracing.clone(),
            stages.clone(),
            shutdown.clone(),
        )
        .await;
        metrics.health.set_joined(false);
        match result {
            Err(e) if is_transient(&e) && !shutdown.is_cancelled() => {
                metrics.restarts.inc();
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
    matches!(
        error,
        RunError::Pipeline(PipelineError::Produce { .. })
            | RunError::Commit(
                CommitError::Transaction(_) | CommitError::NoGroupMetadata | CommitError::HalfBatch
            )
    )
}

/// One life of the pipeline: its own consumer and producer, on its own thread.
async fn run_once(
    config: RunConfig,
    metrics: PipelineMetrics,
    tracing: Tracing,
    stages: Vec<Stage>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let runtime = tokio::runtime::Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("weir-consumer".into())
        .spawn(move || {
            let _ = done_tx.send(consume(config, metrics, tracing, stages, runtime, shutdown));
        })
        .map_err(|e| RunError::ConsumerThread(e.to_string()))?;
    done_rx
        .await
        .map_err(|_| RunError::ConsumerThread("it panicked; see the log above".into()))?
}

/// The consumer thread: set up Kafka, route records until told to stop, drain,
/// commit, flush.
fn consume(
    config: RunConfig,
    metrics: PipelineMetrics,
    tracing: Tracing,
    stages: Vec<Stage>,
    runtime: tokio::runtime::Handle,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let consumer = Arc::new(kafka::create_consumer(&config)?);
    consumer.context().set_metrics(
        metrics.clone(),
        LagBounds {
            read_committed: config.exactly_once,
            starts_at_end: config.auto_offset_reset == OffsetReset::Latest,
        },
    );
    let producer = kafka::create_producer(&config)?;
    let mut needed: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    needed.push(&config.output_topic);
    kafka::check_topics(&consumer, &config.brokers, &needed)?;
    let failure = failure_handling(&config);
    if failure.policy == FailurePolicy::Dlq {
        let admin = kafka::create_admin(&config)?;
        let pairs: Vec<(String, String)> = failure
            .dead_letter_topics
            .iter()
            .map(|(source, dlq)| (source.clone(), dlq.clone()))
            .collect();
        runtime.block_on(kafka::ensure_dead_letter_topics(&consumer, &admin, &pairs))?;
    }

    let committer = if config.exactly_once {
        let transactions =
            Transactions::begin(producer.clone(), metrics.clone()).map_err(|source| {
                KafkaSetupError::Transactions {
                    brokers: config.brokers.clone(),
                    source,
                }
            })?;
        Committer::Transactional(Box::new(transactions))
    } else {
        Committer::StoredOffsets
    };
    let shared = Arc::new(Shared {
        committer,
        output: OutputSink::new(
            producer,
            config.output_topic.clone(),
            failure.dead_letter_topics.values().cloned(),
            metrics.clone(),
        ),
        consumer: Arc::clone(&consumer),
        batch: config.batch.clone(),
        budget: Arc::new(InFlightBudget::new(config.max_in_flight_bytes())),
        stages,
        version_header: config.plugin.version_header,
        failure,
        metrics,
        tracing,
    });
    let (results_tx, results) = sync_mpsc::channel();
    let router = Arc::new(Mutex::new(Router::new(
        Arc::clone(&shared),
        runtime.clone(),
        results_tx,
        config.drain_timeout,
        config.commit_interval,
    )));
    consumer
        .context()
        .set_listener(Arc::new(RouterRebalance::new(Arc::downgrade(&router))));

    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| KafkaSetupError::Subscribe {
            topics: config.topics.clone(),
            source,
        })?;
    tracing::info!(
        group = %config.group,
        topics = ?config.topics,
        output = %config.output_topic,
        plugins = ?shared.stages.iter().map(|s| s.slot.name()).collect::<Vec<_>>(),
        exactly_once = config.exactly_once,
        "consuming"
    );

    let stop = router::consume_loop(
        &consumer,
        &router,
        &results,
        &shutdown,
        config.commit_interval,
    );
    // Not ready while draining: no new records are taken from here on.
    shared.metrics.health.set_joined(false);
    let mut failure = stop.map(|cause| match cause {
        StopCause::Partition(e) => RunError::Pipeline(e),
        StopCause::Commit(e) => RunError::Commit(e),
    });
    if failure.is_none() {
        tracing::info!("shutdown requested; finishing in-flight batches");
    }
    if let Err(e) = router::lock(&router).stop_all(&consumer) {
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
    if let Err(e) = shared.commit(&consumer, &runtime) {
        failure.get_or_insert(RunError::Commit(e));
    }
    if let Err(e) = shared.output.producer().flush(FLUSH_TIMEOUT) {
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

/// The failure policy and dead-letter topics from the configuration.
fn failure_handling(config: &RunConfig) -> FailureHandling {
    FailureHandling {
        policy: config.plugin.failure.policy,
        dead_letter_topics: config
            .topics
            .iter()
            .map(|topic| (topic.clone(), config.dead_letter_topic(topic)))
            .collect(),
    }
}

/// The plugins of one pipeline, ready: their stages, their file watchers and
/// what the admin endpoint manages of them.
type LoadedPlugins = (
    Vec<Stage>,
    Vec<watch::PluginWatch>,
    Vec<admin::ManagedPlugin>,
);

/// Compile (or load from cache) every plugin of a pipeline's chain, create its
/// instances, and start its reloader and file watcher.
async fn load_plugins(
    config: &RunConfig,
    metrics: &PipelineMetrics,
) -> Result<LoadedPlugins, RunError> {
    let failure = &config.plugin.failure;
    let mut stages = Vec::new();
    let mut watching = Vec::new();
    let mut managed = Vec::new();
    for plugin in config.plugins() {
        let loader = Arc::new(PluginLoader::new(
            plugin,
            metrics.plugin(&plugin.display_name()),
        )?);
        let path = plugin.path.clone();
        // Compiling a large component takes seconds of CPU: keep it off the async threads.
        let first = {
            let loader = Arc::clone(&loader);
            tokio::task::spawn_blocking(move || loader.load(&path))
                .await
                .expect("plugin loading does not panic")?
        };
        let slot = Arc::new(PluginSlot::new(
            loader.name(),
            first,
            loader.metrics().clone(),
        ));
        let reloads = reload::spawn_reloader(loader, Arc::clone(&slot));
        if plugin.watch {
            watching.push(watch::watch_plugin(&plugin.path, reloads.clone())?);
        }
        stages.push(Stage {
            slot: Arc::clone(&slot),
            resolve: ResolveSettings {
                max_attempts: failure.max_attempts,
                backoff: Backoff {
                    first: failure.retry_backoff,
                    max: failure.retry_backoff_max,
                },
                max_outputs: plugin.max_outputs_per_record,
                max_output_bytes: plugin.max_output_bytes_per_record,
            },
        });
        managed.push(admin::ManagedPlugin { slot, reloads });
    }
    Ok((stages, watching, managed))
}
