//! One worker per assigned partition: batch its records, run them through the
//! plugins (`process`), hand outputs and dead letters to the producer in record
//! order, and report input offsets as committable once every record up to them
//! is done (`commit`). Partitions run in parallel, bounded by the plugins'
//! instance pools.
//!
//! - `worker`: the partition's loop and a batch's way through it;
//! - `segment`: acknowledgements awaited per segment of a batch;
//! - `dead_letter`: the one owner of dead letters;
//! - `policy`: dead-letter, skip or stop, for a record that failed.

mod dead_letter;
mod policy;
mod reorder;
mod schedule;
mod segment;
mod worker;

pub use dead_letter::{headers, DeadLetters};
pub use schedule::Concurrency;
pub use worker::PartitionWorker;

use crate::budget::InFlightBudget;
use crate::commit::Committer;
use crate::config::{BatchConfig, FailurePolicy, TopicPatterns};
use crate::kafka::{OutputSink, ProduceError};
use crate::offsets::OffsetError;
use crate::process::{RecordFailure, ResolveSettings};
use crate::schema::SchemaStage;
use crate::telemetry::PipelineMetrics;
use crate::trace::Tracing;
use crate::wasm::{PluginError, PluginSlot};
use std::sync::Arc;

/// Why a partition stopped processing.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The plugin cannot run at all any more (no new instance can be made).
    #[error("{topic}/{partition}: {source}")]
    Plugin {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// Why.
        source: PluginError,
    },
    /// A record failed under the `stop` policy. Earlier records are committed,
    /// so a restart begins at this record.
    #[error("{topic}/{partition} offset {offset}: plugin `{plugin}` failed on the record ({failure}); stopping as plugin.failure.policy = \"stop\" asks (use \"dlq\" or \"skip\" to go on past such records)")]
    RecordFailed {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// Input offset.
        offset: i64,
        /// Plugin name.
        plugin: String,
        /// What went wrong (boxed: it is large and rare).
        failure: Box<RecordFailure>,
    },
    /// An output could not be produced.
    #[error("{topic}/{partition}: {source}")]
    Produce {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// The producer's error (boxed: it is large and rare).
        source: Box<ProduceError>,
    },
    /// A plugin's state of the partition could not be opened, restored or
    /// written.
    #[error("{topic}/{partition}: {source}")]
    State {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// What failed (boxed: it is large and rare).
        source: Box<crate::state::StateError>,
    },
    /// Offsets arrived out of order (a bug, or a broker serving odd offsets).
    #[error("{topic}/{partition}: {source}")]
    Offsets {
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// The tracker's complaint.
        source: OffsetError,
    },
}

/// What every partition worker of a pipeline shares.
pub struct PipelineContext {
    /// The plugins, in chain order; each batch takes their current versions.
    pub stages: Vec<Stage>,
    /// Whether outputs get a `weir.plugin.version` header.
    pub version_header: bool,
    /// Where outputs go.
    pub output: Arc<OutputSink>,
    /// Topics the plugins' outputs may go to.
    pub output_topics: TopicPatterns,
    /// How finished offsets get committed.
    pub committer: Committer,
    /// Batch settings.
    pub batch: BatchConfig,
    /// Bytes in flight across all partitions; workers give back what they finish.
    pub budget: Arc<InFlightBudget>,
    /// What happens to records the plugins fail on.
    pub policy: FailurePolicy,
    /// Where failed records go under the `dlq` policy.
    pub dead_letters: DeadLetters,
    /// The pipeline's metrics.
    pub metrics: PipelineMetrics,
    /// How traces continue through the pipeline.
    pub tracing: Tracing,
    /// Decoding before the plugins and encoding after them, with a schema
    /// registry; `None` passes bytes through.
    pub schema: Option<Arc<SchemaStage>>,
    /// The topic outputs without one of their own go to.
    pub output_topic: Arc<str>,
    /// How each partition's records are scheduled into plugin calls.
    pub concurrency: Concurrency,
    /// Most unfinished offsets per partition before it stops taking records.
    pub max_uncommitted: usize,
}

/// One plugin of the chain.
#[derive(Clone)]
pub struct Stage {
    /// Its live version.
    pub slot: Arc<PluginSlot>,
    /// Its retries and output limits.
    pub resolve: ResolveSettings,
    /// Its state store, if the plugin has state.
    pub state: Option<Arc<crate::state::PluginStateStore>>,
}
