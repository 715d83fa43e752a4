//! Write Weir stream processors in Rust.
//!
//! A plugin is a type implementing [`Processor`] plus one [`export!`] line. The
//! host hands the plugin batches of [`Record`]s consumed from Kafka; for each
//! record the plugin returns the [`Output`]s to produce (none filters the record
//! out) or a [`ProcessError`]. Everything Kafka-related (offsets, retries,
//! delivery) is the host's job.
//!
//! The types here are plain Rust: plugin logic compiles and unit-tests natively
//! with `cargo test`; only the glue that [`export!`] expands to is WebAssembly
//! specific (build with `cargo build --target wasm32-wasip2`).
//!
//! ```
//! use weir_sdk::{Config, Output, ProcessError, Processor, Record};
//!
//! struct Shout;
//!
//! impl Processor for Shout {
//!     fn init(_config: &Config) -> Result<Self, String> {
//!         Ok(Shout)
//!     }
//!
//!     fn process(&mut self, record: Record) -> Result<Vec<Output>, ProcessError> {
//!         let value = record.value.as_deref().unwrap_or_default().to_ascii_uppercase();
//!         Ok(vec![record.into_output().with_value(value)])
//!     }
//! }
//!
//! weir_sdk::export!(Shout);
//! ```

mod config;
pub mod http;
mod log;
mod record;
pub mod state;

#[doc(hidden)]
pub mod __private;

pub use config::Config;
pub use log::{debug, error, info, log, trace, warn, Level};
pub use record::{Header, Output, ProcessError, Record};

/// The logic of a Weir plugin.
///
/// The host creates one or more instances of the plugin (one per worker) and calls
/// [`Processor::init`] once in each before any record arrives.
pub trait Processor: Sized + 'static {
    /// Build the processor from the key/value configuration given to the host
    /// (`--plugin-config key=value` or the `[plugin.config]` table). An error
    /// stops the pipeline before it consumes anything and is shown to the operator.
    fn init(config: &Config) -> Result<Self, String>;

    /// Process one record. Return the records to produce (an empty vector filters
    /// the record out) or an error. Records of one partition arrive in offset order.
    fn process(&mut self, record: Record) -> Result<Vec<Output>, ProcessError>;
}

/// Export a [`Processor`] implementation as the plugin's entry point.
///
/// Use it exactly once per plugin crate, at the top level. On targets other than
/// WebAssembly it expands to nothing, so the crate still builds and tests natively.
#[macro_export]
macro_rules! export {
    ($processor:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct WeirGuest;

            impl $crate::__private::Guest for WeirGuest {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::init::<$processor>(config)
                }

                fn process(
                    batch: ::std::vec::Vec<$crate::__private::WitInputRecord>,
                ) -> ::std::vec::Vec<$crate::__private::WitOutcome> {
                    $crate::__private::process::<$processor>(batch)
                }
            }

            $crate::__private::bindings::__export_bindings!(
                WeirGuest with_types_in $crate::__private::bindings
            );
        };
    };
}
