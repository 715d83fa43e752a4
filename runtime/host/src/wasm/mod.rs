//! Everything WebAssembly: the engine, loading and caching compiled plugins, the
//! sandboxed plugin instance, and the pool of instances the pipeline draws from.

mod bindings;
mod compile;
mod engine;
mod guest_output;
mod instance;
mod lift;
mod limits;
mod loader;
mod pool;
mod slot;

pub use compile::{default_cache_dir, load_component, LoadedComponent, MAX_PLUGIN_BYTES};
pub use engine::WasmEngine;
pub use instance::{InstanceLimits, PluginInstance};
pub use lift::OutputLimits;
pub use loader::PluginLoader;
pub use pool::{PluginPool, ProcessedBatch};
pub use slot::{PluginSlot, PluginVersion, ReloadEvent, SlotStatus, VersionInfo};

/// Which plugin (name and version) did something, e.g. gave up on a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginIdentity {
    /// Its name.
    pub name: String,
    /// Its content hash.
    pub version: String,
}

/// Why a plugin could not be loaded or called.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin file could not be read.
    #[error("cannot read plugin {path}: {source}; check --plugin")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a WebAssembly component.
    #[error("{path} is not a WebAssembly component: {reason}")]
    NotAComponent {
        /// The file.
        path: std::path::PathBuf,
        /// What it is instead and what to do.
        reason: String,
    },
    /// The component does not implement Weir's plugin world.
    #[error("{path} does not fit Weir's plugin contract (weir:processor/plugin@0.1.x): {reason}; rebuild it against this version's wit/ with the Weir SDK")]
    WrongWorld {
        /// The file.
        path: std::path::PathBuf,
        /// The linker's explanation.
        reason: String,
    },
    /// The plugin's `init` refused its configuration.
    #[error("plugin `{plugin}` refused its configuration: {message}; check --plugin-config")]
    InitRefused {
        /// Plugin name.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// The plugin trapped, ran out of time or memory, or misbehaved.
    #[error("plugin `{plugin}` failed ({kind}): {reason}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// Which limit or fault stopped it.
        kind: TrapKind,
        /// What happened.
        reason: String,
    },
    /// No instance could be made to replace one that failed: the plugin's
    /// `init` now refuses, or the host cannot provide its memory. Not the fault
    /// of any record, so no record policy applies.
    #[error("plugin `{plugin}` cannot start a new instance: {source}")]
    Unavailable {
        /// Plugin name.
        plugin: String,
        /// Why.
        source: Box<PluginError>,
    },
    /// Wasmtime itself failed (engine setup, instantiation).
    #[error("wasm runtime error: {0}")]
    Runtime(String),
}

/// Why a plugin call was cut short. The instance is discarded in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// The guest trapped: a panic, `unreachable`, a bad memory access.
    Trap,
    /// The call ran past the plugin's deadline.
    Timeout,
    /// The guest tried to grow its memory past the cap.
    OutOfMemory,
    /// The call used up its fuel budget.
    OutOfFuel,
    /// The guest broke the contract (e.g. not one outcome per record).
    Contract,
    /// The host panicked during the call (a bug, caught; see `panics`).
    HostPanic,
}

impl TrapKind {
    /// The short name used in logs and dead-letter headers.
    pub fn as_str(self) -> &'static str {
        match self {
            TrapKind::Trap => "trap",
            TrapKind::Timeout => "timeout",
            TrapKind::OutOfMemory => "oom",
            TrapKind::OutOfFuel => "fuel",
            TrapKind::Contract => "contract",
            TrapKind::HostPanic => "panic",
        }
    }
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
