//! Plugin state: a key-value store of byte strings per (pipeline, plugin,
//! input partition), which plugins reach through the WIT `state` interface.
//!
//! - `partition`: one partition's state (`PartitionState`): reads, writes
//!   applied in record order, its byte count and caps; kept on local disk
//!   (`disk`, fjall) or in memory (`weir test`);
//! - `call`: what one plugin call reads and writes: its own writes first,
//!   each tagged with the record it belongs to, checked against the caps;
//! - `changelog`: the compacted topic every write also goes to, and restoring
//!   a partition's state from it on assignment;
//! - `disk`: the on-disk stores under `state_dir`, their lock and checkpoints.
//!
//! A record's writes take effect when it is processed (not when it fails or
//! its call traps); they go to the changelog with the record's outputs, so the
//! record's offset is stored (or sent in its transaction) only after the broker
//! has them.

mod call;
pub mod changelog;
mod disk;
mod partition;

pub use call::{CallState, CallWrites};
pub use disk::{PluginStateStore, StateDirLock};
pub use partition::{MemoryBackend, PartitionState, StateBackend};

/// The caps on one plugin's state, from `[plugin.state]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Longest value, in bytes.
    pub max_value_bytes: usize,
    /// Most bytes (keys plus values) one partition's state may hold.
    pub max_partition_bytes: u64,
}

/// One write: set `key` to `value`, or delete it (`value` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    /// The key.
    pub key: Vec<u8>,
    /// The new value; `None` deletes the key.
    pub value: Option<Vec<u8>>,
    /// How the partition's byte count changes when it is applied.
    pub delta: i64,
}

/// The writes one record made through one plugin's state.
#[derive(Clone)]
pub struct RecordWrites {
    /// The partition state they go to.
    pub state: std::sync::Arc<PartitionState>,
    /// The writes, in the order the plugin made them.
    pub writes: Vec<StateWrite>,
}

impl std::fmt::Debug for RecordWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordWrites")
            .field("plugin", &self.state.plugin())
            .field("writes", &self.writes.len())
            .finish()
    }
}

/// Why state could not be read, written, opened or restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The embedded store failed.
    #[error("plugin state store at {path}: {reason}")]
    Store {
        /// The store's directory.
        path: String,
        /// What failed.
        reason: String,
    },
    /// Another process holds the state directory.
    #[error("the state directory {path} is in use by another weir process; give each process of a group its own --instance-id (or --state-dir)")]
    Locked {
        /// The directory.
        path: String,
    },
    /// The changelog topic could not be read.
    #[error("restoring plugin `{plugin}` state of {topic}/{partition} from {changelog}: {reason}")]
    Restore {
        /// Plugin.
        plugin: String,
        /// Input topic.
        topic: String,
        /// Input partition.
        partition: i32,
        /// Changelog topic.
        changelog: String,
        /// What failed.
        reason: String,
    },
}
