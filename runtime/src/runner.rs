//! `weir run`: wire the plugin pool, consumer and producer together, route each
//! consumed record to its partition's worker, and shut down cleanly.
//!
//! States: start-up checks → consuming → draining (no new records; workers finish
//! what they hold and their outputs are acknowledged) → final commit → done.

use crate::config::RunConfig;
use crate::kafka::{self, KafkaSetupError, OutputSink, PartitionEvent, WeirConsumer};
use crate::pipeline::{PartitionWorker, PipelineError, Shared};
use crate::wasm::{self, InputRecord, InstanceLimits, PluginError, PluginPool, WasmEngine};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
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
    /// The final commit failed.
    #[error("final offset commit failed: {0}; records since the last commit will be processed again after restart")]
    FinalCommit(KafkaError),
}

type Senders = HashMap<String, HashMap<i32, mpsc::Sender<InputRecord>>>;

/// Run the pipeline until `shutdown` is cancelled or a partition fails.
pub async fn run(config: RunConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    let pool = Arc::new(load_plugin(&config).await?);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let consumer = Arc::new(kafka::create_consumer(&config, events_tx)?);
    let producer = kafka::create_producer(&config)?;

    let mut needed: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    needed.push(&config.output_topic);
    let checker = Arc::clone(&consumer);
    let brokers = config.brokers.clone();
    let needed_owned: Vec<String> = needed.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = needed_owned.iter().map(String::as_str).collect();
        kafka::check_topics(&checker, &brokers, &refs)
    })
    .await
    .expect("topic check does not panic")?;

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
        plugin = pool.name(),
        version = &pool.version()[..12],
        "consuming"
    );

    let shared = Arc::new(Shared {
        pool,
        output: OutputSink::new(producer, config.output_topic.clone()),
        consumer: Arc::clone(&consumer),
        batch: config.batch.clone(),
    });
    let mut senders: Senders = HashMap::new();
    let mut workers: JoinSet<(String, Result<(), PipelineError>)> = JoinSet::new();
    let mut failure: Option<RunError> = None;

    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                tracing::info!("shutdown requested; draining in-flight records");
                break;
            }
            Some(joined) = workers.join_next(), if !workers.is_empty() => {
                if let Some(e) = worker_failure(joined) {
                    failure = Some(e);
                    break;
                }
            }
            Some(event) = events.recv() => on_partition_event(&mut senders, event),
            received = consumer.recv() => match received {
                Ok(message) => {
                    let record = kafka::input_record(&message);
                    let sender = senders
                        .entry(message.topic().to_string())
                        .or_default()
                        .entry(message.partition())
                        .or_insert_with(|| {
                            spawn_worker(&mut workers, &shared, message.topic(), message.partition())
                        });
                    // Waits while the worker's buffer is full: this is the backpressure.
                    if sender.send(record).await.is_err() {
                        // The worker stopped; its result arrives through `workers`.
                        senders.entry(message.topic().to_string()).or_default().remove(&message.partition());
                    }
                }
                Err(e) => log_consumer_error(&e),
            },
        }
    }

    // Draining: closing the channels lets each worker finish what it holds.
    drop(senders);
    let drained = drain_workers(&mut workers, config.drain_timeout).await;
    failure = failure.or(drained.err());
    if let Err(e) = commit_final(&consumer).await {
        failure.get_or_insert(e);
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

/// Compile (or load from cache) the plugin and create its instances.
async fn load_plugin(config: &RunConfig) -> Result<PluginPool, RunError> {
    let engine = Arc::new(WasmEngine::new()?);
    let path = config.plugin.path.clone();
    let cache_dir = config
        .plugin
        .cache_dir
        .clone()
        .or_else(wasm::default_cache_dir);
    let name = config.plugin_name();
    let plugin_config: Vec<(String, String)> = config
        .plugin
        .config
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let limits = InstanceLimits {
        max_memory_bytes: usize::try_from(config.plugin.max_memory_mib * 1024 * 1024)
            .unwrap_or(usize::MAX),
        call_timeout: config.plugin.timeout,
    };
    let size = config.plugin.instances.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    // Compiling a large component takes seconds of CPU: keep it off the async threads.
    let pool = tokio::task::spawn_blocking(move || {
        let loaded = wasm::load_component(engine.engine(), &path, cache_dir.as_deref())?;
        tracing::info!(
            plugin = %name,
            version = &loaded.content_hash[..12],
            from_cache = loaded.from_cache,
            elapsed_ms = loaded.elapsed.as_millis() as u64,
            "plugin loaded"
        );
        PluginPool::new(engine, &loaded, &path, &name, plugin_config, limits, size)
    })
    .await
    .expect("plugin loading does not panic")?;
    Ok(pool)
}

fn spawn_worker(
    workers: &mut JoinSet<(String, Result<(), PipelineError>)>,
    shared: &Arc<Shared>,
    topic: &str,
    partition: i32,
) -> mpsc::Sender<InputRecord> {
    let (tx, rx) = mpsc::channel(shared.batch.partition_buffer);
    let worker = PartitionWorker::new(topic.to_string(), partition, rx, Arc::clone(shared));
    let label = format!("{topic}/{partition}");
    tracing::debug!(partition = %label, "starting partition worker");
    workers.spawn(async move { (label, worker.run().await) });
    tx
}

fn on_partition_event(senders: &mut Senders, event: PartitionEvent) {
    if let PartitionEvent::Revoked(partitions) = event {
        for (topic, partition) in partitions {
            // Dropping the sender lets the worker finish its buffered records and stop.
            if let Some(by_partition) = senders.get_mut(&topic) {
                by_partition.remove(&partition);
            }
        }
    }
}

fn worker_failure(
    joined: Result<(String, Result<(), PipelineError>), tokio::task::JoinError>,
) -> Option<RunError> {
    match joined {
        Ok((_, Ok(()))) => None,
        Ok((label, Err(e))) => {
            tracing::error!(partition = %label, error = %e, "partition stopped");
            Some(RunError::Pipeline(e))
        }
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn drain_workers(
    workers: &mut JoinSet<(String, Result<(), PipelineError>)>,
    timeout: Duration,
) -> Result<(), RunError> {
    let mut first_error = None;
    let all = async {
        while let Some(joined) = workers.join_next().await {
            if let Some(e) = worker_failure(joined) {
                first_error.get_or_insert(e);
            }
        }
    };
    if tokio::time::timeout(timeout, all).await.is_err() {
        let partitions = vec![format!("{} partition worker(s)", workers.len())];
        workers.abort_all();
        return Err(RunError::DrainTimeout {
            timeout,
            partitions,
        });
    }
    first_error.map_or(Ok(()), Err)
}

async fn commit_final(consumer: &Arc<WeirConsumer>) -> Result<(), RunError> {
    let consumer = Arc::clone(consumer);
    let result =
        tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync))
            .await
            .expect("commit does not panic");
    match result {
        Ok(()) => Ok(()),
        // Nothing stored since the last automatic commit.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        Err(e) => Err(RunError::FinalCommit(e)),
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
