//! What Weir tells its operators: Prometheus metrics and per-pipeline health.

pub mod exposition;
mod families;
mod health;
pub mod history;
pub mod metrics;

pub use families::names;

pub use health::{PipelineHealth, Readiness};
pub use metrics::{
    ConcurrencyGauges, HttpMetrics, Metrics, PartitionOffsets, PipelineMetrics, PluginMetrics,
    SchemaMetrics, StateGauges,
};
