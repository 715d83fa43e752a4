//! Everything WebAssembly: the engine, loading and caching compiled plugins, the
//! sandboxed plugin instance, and the pool of instances the pipeline draws from.

mod bindings;
mod compile;
mod engine;
mod instance;
mod pool;

pub use bindings::{Header, InputRecord, Outcome, OutputRecord};
pub use compile::{default_cache_dir, load_component, LoadedComponent};
pub use engine::WasmEngine;
pub use instance::{InstanceLimits, PluginInstance};
pub use pool::{PluginPool, ProcessedBatch};

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
    #[error("{path} does not fit Weir's plugin contract (weir:processor/plugin@0.1.0): {reason}; rebuild it against this version's wit/ with the Weir SDK")]
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
    #[error("plugin `{plugin}` failed: {reason}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// What happened.
        reason: String,
    },
    /// Wasmtime itself failed (engine setup, instantiation).
    #[error("wasm runtime error: {0}")]
    Runtime(String),
}
