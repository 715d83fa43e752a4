//! One sandboxed plugin instance: its store (memory cap, deadline, WASI with
//! nothing granted), the host functions it may call, and typed calls into it.

use super::bindings::{weir::processor, InputRecord, Outcome, Plugin, PluginPre};
use super::engine::WasmEngine;
use super::PluginError;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Longest guest log message passed on to the host log; the rest is cut so a
/// misbehaving plugin cannot flood the log with one call.
const MAX_GUEST_LOG_BYTES: usize = 4096;

/// Resource limits applied to every plugin instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    /// Linear memory cap in bytes (per memory).
    pub max_memory_bytes: usize,
    /// Wall-clock limit for one call.
    pub call_timeout: Duration,
}

/// Per-instance host state kept in the wasmtime store.
pub struct PluginState {
    plugin_name: Arc<str>,
    limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl processor::types::Host for PluginState {}

impl processor::host::Host for PluginState {
    fn log(&mut self, level: processor::host::Level, message: String) {
        use processor::host::Level;
        let message = truncate_utf8(&message, MAX_GUEST_LOG_BYTES);
        let plugin = &*self.plugin_name;
        match level {
            Level::Trace => tracing::trace!(target: "weir::plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "weir::plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "weir::plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "weir::plugin", plugin, "{message}"),
            Level::Error => tracing::error!(target: "weir::plugin", plugin, "{message}"),
        }
    }
}

/// A live plugin instance, initialised and ready for `process` calls.
pub struct PluginInstance {
    store: Store<PluginState>,
    bindings: Plugin,
    call_ticks: u64,
}

impl PluginInstance {
    /// Instantiate the plugin and run its `init` with `config`.
    pub fn new(
        engine: &wasmtime::Engine,
        pre: &PluginPre<PluginState>,
        plugin_name: Arc<str>,
        config: &[(String, String)],
        limits: InstanceLimits,
    ) -> Result<Self, PluginError> {
        let state = PluginState {
            plugin_name: plugin_name.clone(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            // Nothing granted: no preopened directories, no network, no env, no args;
            // stdin is empty and stdout/stderr are discarded.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        let call_ticks = WasmEngine::ticks_for(limits.call_timeout);
        store.set_epoch_deadline(call_ticks);
        store.epoch_deadline_trap();
        let trap = |e: wasmtime::Error| PluginError::Trap {
            plugin: plugin_name.to_string(),
            reason: format!("{e:#}"),
        };
        let bindings = pre.instantiate(&mut store).map_err(trap)?;
        store.set_epoch_deadline(call_ticks);
        bindings
            .weir_processor_processor()
            .call_init(&mut store, config)
            .map_err(trap)?
            .map_err(|message| PluginError::InitRefused {
                plugin: plugin_name.to_string(),
                message,
            })?;
        Ok(Self {
            store,
            bindings,
            call_ticks,
        })
    }

    /// Process one batch. On `Err` the instance is unusable (it trapped) and must
    /// be discarded.
    pub fn process(&mut self, batch: &[InputRecord]) -> Result<Vec<Outcome>, PluginError> {
        self.store.set_epoch_deadline(self.call_ticks);
        let outcomes = self
            .bindings
            .weir_processor_processor()
            .call_process(&mut self.store, batch)
            .map_err(|e| self.trap(format!("{e:#}")))?;
        if outcomes.len() != batch.len() {
            return Err(self.trap(format!(
                "returned {} outcomes for a batch of {} records (the contract is one per record)",
                outcomes.len(),
                batch.len()
            )));
        }
        Ok(outcomes)
    }

    fn trap(&self, reason: String) -> PluginError {
        PluginError::Trap {
            plugin: self.store.data().plugin_name.to_string(),
            reason,
        }
    }
}

fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate_utf8;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("hi", 10), "hi");
    }
}
