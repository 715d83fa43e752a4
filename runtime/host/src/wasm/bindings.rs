//! Host-side bindings generated from `wit/` (the `plugin` world). Generated
//! code carries no doc comments.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
});

pub use self::weir::processor::types::{Header, InputRecord, OutputRecord, ProcessError};

/// What the plugin returned for one input record.
pub type Outcome = Result<Vec<OutputRecord>, ProcessError>;
