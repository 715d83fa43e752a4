//! From records to resolutions: call the plugins, isolate the record that made a
//! call fail, retry what the plugin calls retryable, hold outputs to their
//! limits, and say what failed and why.

pub mod failure;
mod resolve;

pub use failure::{Backoff, FailureKind, PluginIdentity, RecordFailure};
pub use resolve::{
    resolve_chain, Chain, ChainStage, Later, Progress, Resolution, ResolveSettings, Settled,
};
