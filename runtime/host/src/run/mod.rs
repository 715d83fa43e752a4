//! `weir run`: load every pipeline's plugins, then run each pipeline (its own
//! consumer and producer on its own thread) until a signal or a failure, and
//! shut down cleanly.
//!
//! States of a pipeline: start-up checks → consuming → draining (no new records;
//! workers finish their current batch and their outputs are acknowledged) →
//! final commit → producer flush → leave the group. Kafka failures restart it
//! from the last committed offsets (`pipeline`); `plugins` loads the chains;
//! `topic_watch` follows topic patterns.

mod pipeline;
mod plugins;
mod topic_watch;

use crate::admin;
use crate::commit::CommitError;
use crate::config::{FailurePolicy, PipelineSettings, RunSettings, SchemaRegistryConfig};
use crate::kafka::KafkaSetupError;
use crate::partition::{PipelineError, Stage};
use crate::reload;
use crate::schema::{Registry, SchemaStage};
use crate::telemetry::{Metrics, PipelineHealth, PipelineMetrics, SchemaMetrics};
use crate::trace::{OtlpError, SpanExport, Tracing};
use crate::wasm::PluginError;
use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why `weir run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plugin could not be loaded or initialised.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A plugin's state store could not be opened.
    #[error(transparent)]
    State(#[from] Box<crate::state::StateError>),
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
    Watch(#[from] reload::WatchError),
    /// The admin endpoint cannot listen.
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    /// Span export cannot be set up.
    #[error(transparent)]
    Otlp(#[from] OtlpError),
    /// A signal handler could not be installed.
    #[error("cannot install the SIGHUP handler: {0}")]
    Signal(std::io::Error),
    /// The schema registry client cannot be set up.
    #[error("schema registry: {0}")]
    SchemaRegistry(String),
    /// The consumer thread could not be started or died.
    #[error("consumer thread failed: {0}")]
    ConsumerThread(String),
}

/// One pipeline, ready to run: its settings, plugins and observers. Cloned
/// for each life of the pipeline (a restart after a Kafka failure).
#[derive(Clone)]
struct Pipeline {
    config: PipelineSettings,
    metrics: PipelineMetrics,
    health: Arc<PipelineHealth>,
    tracing: Tracing,
    stages: Vec<Stage>,
    schema: Option<Arc<SchemaStage>>,
}

/// Run every pipeline of `settings` until `shutdown` is cancelled or one fails
/// (which stops the others too).
pub async fn run(settings: RunSettings, shutdown: CancellationToken) -> Result<(), RunError> {
    let export = match &settings.otlp_endpoint {
        Some(endpoint) => Some(Arc::new(SpanExport::new(endpoint)?)),
        None => None,
    };
    let tracing = export.clone().map(Tracing::exporting).unwrap_or_default();
    let result = run_pipelines(settings, tracing, shutdown).await;
    if let Some(export) = export {
        // Sends the spans still batched; blocking, so off the async threads.
        let _ = tokio::task::spawn_blocking(move || export.shutdown()).await;
    }
    result
}

/// The schema stage of a pipeline with a `[schema_registry]`.
fn schema_stage(
    config: &SchemaRegistryConfig,
    metrics: SchemaMetrics,
) -> Result<SchemaStage, RunError> {
    let failed = |e: &dyn std::fmt::Display| RunError::SchemaRegistry(e.to_string());
    let registry = Registry::new(
        config.registry_settings().map_err(|e| failed(&e))?,
        config.ca_file(),
        metrics.clone(),
    )
    .map_err(|e| failed(&e))?;
    let settings = config.stage_settings().map_err(|e| failed(&e))?;
    Ok(SchemaStage::new(Arc::new(registry), settings, metrics))
}

/// Run every pipeline, continuing traces with `tracing`.
async fn run_pipelines(
    settings: RunSettings,
    tracing: Tracing,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let hangups = reload::HangupReloads::listen().map_err(RunError::Signal)?;
    let metrics = Arc::new(Metrics::new());
    let configs: Vec<(PipelineSettings, PipelineMetrics, Arc<PipelineHealth>)> = settings
        .pipelines
        .into_iter()
        .map(|p| {
            let m = metrics.pipeline(&p.group);
            let h = Arc::new(PipelineHealth::new(&p.group));
            (p, m, h)
        })
        .collect();
    let healths = configs.iter().map(|(_, _, h)| Arc::clone(h)).collect();
    let dead_letters = configs
        .iter()
        .filter(|(p, _, _)| p.failure.policy == FailurePolicy::Dlq)
        .map(|(p, _, _)| admin::DeadLetterView {
            pipeline: p.group.clone(),
            brokers: p.brokers.clone(),
            librdkafka: crate::kafka::shared_properties(p),
            route: p.dead_letter.clone(),
        })
        .collect();
    // Served before the plugins load, so that probes see "alive, not ready" meanwhile.
    let admin = admin::serve(&settings.admin, Arc::clone(&metrics), healths, dead_letters).await?;
    let mut managed = Vec::new();
    let mut prepared = Vec::new();
    for (config, metrics, health) in configs {
        let loaded = plugins::load(&config, &metrics, &settings.admin.plugin_dirs).await?;
        health.set_plugins_loaded();
        managed.extend(loaded.managed);
        let schema = match &config.schema_registry {
            Some(registry) => Some(Arc::new(schema_stage(registry, metrics.schema())?)),
            None => None,
        };
        let pipeline = Pipeline {
            schema,
            config,
            metrics,
            health,
            tracing: tracing.clone(),
            stages: loaded.stages,
        };
        prepared.push((pipeline, loaded.watching));
    }
    let handles = managed.iter().map(|m| m.reloads.clone()).collect();
    hangups.serve(handles);
    admin.manage(managed);
    let stop = shutdown.child_token();
    let mut running: FuturesUnordered<_> = prepared
        .into_iter()
        .map(|(pipeline, watching)| {
            let stop = stop.clone();
            async move {
                // The pipeline's watchers stop with it.
                let _watching = watching;
                let result = pipeline::run(pipeline, stop.clone()).await;
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
