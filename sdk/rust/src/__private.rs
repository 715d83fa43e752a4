//! Glue between the generated WIT bindings and [`crate::Processor`]. Not part of
//! the public API: only [`crate::export!`] uses it. Empty outside WebAssembly.

#[cfg(target_arch = "wasm32")]
pub use wasm::*;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use crate::{Config, Header, Level, Output, ProcessError, Processor, Record};
    use std::any::Any;
    use std::cell::RefCell;

    /// Bindings generated from `wit/` for the `plugin` world.
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "plugin",
            pub_export_macro: true,
            export_macro_name: "__export_bindings",
            default_bindings_module: "weir_sdk::__private::bindings",
        });
    }

    use bindings::exports::weir::processor::processor as exported;
    use bindings::weir::processor::{host, types as wit};

    pub use exported::Guest;
    /// The generated input record type.
    pub type WitInputRecord = wit::InputRecord;
    /// The generated per-record outcome type.
    pub type WitOutcome = wit::Outcome;

    thread_local! {
        // WebAssembly plugins are single-threaded; the instance lives here between calls.
        static PROCESSOR: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    /// Build the processor and keep it for later `process` calls.
    pub fn init<P: Processor>(config: Vec<(String, String)>) -> Result<(), String> {
        let processor = P::init(&Config::new(config))?;
        PROCESSOR.with(|slot| *slot.borrow_mut() = Some(Box::new(processor)));
        Ok(())
    }

    /// Run the processor over a batch, one outcome per record.
    pub fn process<P: Processor>(batch: Vec<WitInputRecord>) -> Vec<WitOutcome> {
        PROCESSOR.with(|slot| {
            let mut slot = slot.borrow_mut();
            let Some(processor) = slot.as_mut().and_then(|p| p.downcast_mut::<P>()) else {
                let error = wit::ProcessError {
                    message: "the host called process before init".to_string(),
                    retryable: false,
                };
                return batch.iter().map(|_| Err(error.clone())).collect();
            };
            batch
                .into_iter()
                .map(|record| {
                    crate::state::imp::begin_record(record.offset);
                    let processed = processor.process(record_from_wit(record));
                    crate::state::imp::end_record(processed.is_ok());
                    processed
                        .map(|outputs| outputs.into_iter().map(output_to_wit).collect())
                        .map_err(error_to_wit)
                })
                .collect()
        })
    }

    /// Forward a log line to the host.
    pub fn host_log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => host::Level::Trace,
            Level::Debug => host::Level::Debug,
            Level::Info => host::Level::Info,
            Level::Warn => host::Level::Warn,
            Level::Error => host::Level::Error,
        };
        host::log(level, message);
    }

    fn record_from_wit(r: wit::InputRecord) -> Record {
        Record {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|h| Header {
                    key: h.key,
                    value: h.value,
                })
                .collect(),
        }
    }

    fn output_to_wit(o: Output) -> wit::OutputRecord {
        wit::OutputRecord {
            topic: o.topic,
            partition: o.partition,
            key: o.key,
            value: o.value,
            headers: o
                .headers
                .into_iter()
                .map(|h| wit::Header {
                    key: h.key,
                    value: h.value,
                })
                .collect(),
        }
    }

    fn error_to_wit(e: ProcessError) -> wit::ProcessError {
        wit::ProcessError {
            message: e.message,
            retryable: e.retryable,
        }
    }
}
