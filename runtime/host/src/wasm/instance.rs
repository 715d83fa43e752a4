//! One sandboxed plugin instance: its store (memory cap, deadline, optional fuel,
//! WASI with nothing granted and stdio captured into the log), the host functions
//! it may call, and typed calls into it that say which limit a failed call hit.

use super::bindings::{weir::processor, InputRecord, Outcome, Plugin, PluginPre};
use super::engine::WasmEngine;
use super::guest_output::{CallBudget, GuestOutput, GuestStream};
use super::limits::ResourceCap;
use super::{PluginError, TrapKind};
use crate::record::cut_at_char;
use crate::telemetry::PluginMetrics;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Longest guest log message passed on to the host log; the rest is cut so a
/// misbehaving plugin cannot flood the log with one call.
const MAX_GUEST_LOG_BYTES: usize = 4096;

/// Resource limits applied to every plugin instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    /// Linear memory cap in bytes, over all of an instance's memories.
    pub max_memory_bytes: usize,
    /// Wall-clock limit for one call.
    pub call_timeout: Duration,
    /// Fuel (roughly, wasm instructions) one call may use; `None` for no limit.
    /// Needs an engine built with fuel metering.
    pub fuel: Option<u64>,
}

/// Per-instance host state kept in the wasmtime store.
pub struct PluginState {
    plugin_name: Arc<str>,
    /// Lines the current call may still send through the `log` import.
    log_budget: CallBudget,
    limits: ResourceCap,
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
        if !self.log_budget.take() {
            return;
        }
        let message = cut_at_char(&message, MAX_GUEST_LOG_BYTES);
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
    limits: InstanceLimits,
    /// The guest's stdout and stderr, whose line budget restarts with each call.
    outputs: [GuestOutput; 2],
}

impl PluginInstance {
    /// Instantiate the plugin and run its `init` with `config`.
    pub fn new(
        engine: &wasmtime::Engine,
        pre: &PluginPre<PluginState>,
        plugin_name: Arc<str>,
        config: &[(String, String)],
        limits: InstanceLimits,
        metrics: &PluginMetrics,
    ) -> Result<Self, PluginError> {
        let stream = |stream: GuestStream| {
            let dropped = metrics.log_lines_dropped(stream.name());
            GuestOutput::new(plugin_name.clone(), stream, dropped)
        };
        let outputs = [stream(GuestStream::Stdout), stream(GuestStream::Stderr)];
        let mut wasi = WasiCtx::builder();
        // Nothing granted: no preopened directories, no network, no env, no args,
        // stdin empty. stdout/stderr go to the host log, tagged with the plugin.
        wasi.stdout(outputs[0].clone()).stderr(outputs[1].clone());
        let state = PluginState {
            log_budget: CallBudget::new(
                plugin_name.clone(),
                "log",
                metrics.log_lines_dropped("log"),
            ),
            plugin_name: plugin_name.clone(),
            limits: ResourceCap::new(limits.max_memory_bytes),
            wasi: wasi.build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        let call_ticks = WasmEngine::ticks_for(limits.call_timeout);
        arm(&mut store, call_ticks, limits.fuel);
        let bindings = pre
            .instantiate(&mut store)
            .map_err(|e| failure(&store, limits, &e))?;
        let mut instance = Self {
            store,
            bindings,
            call_ticks,
            limits,
            outputs,
        };
        instance.arm_call();
        instance
            .bindings
            .weir_processor_processor()
            .call_init(&mut instance.store, config)
            .map_err(|e| failure(&instance.store, limits, &e))?
            .map_err(|message| PluginError::InitRefused {
                plugin: plugin_name.to_string(),
                message,
            })?;
        Ok(instance)
    }

    /// Process one batch. On `Err` the instance is unusable (it trapped) and must
    /// be discarded.
    pub fn process(&mut self, batch: &[InputRecord]) -> Result<Vec<Outcome>, PluginError> {
        self.arm_call();
        let outcomes = self
            .bindings
            .weir_processor_processor()
            .call_process(&mut self.store, batch)
            .map_err(|e| failure(&self.store, self.limits, &e))?;
        if outcomes.len() != batch.len() {
            return Err(PluginError::Trap {
                plugin: self.store.data().plugin_name.to_string(),
                kind: TrapKind::Contract,
                reason: format!(
                    "returned {} outcomes for a batch of {} records (the contract is one per record)",
                    outcomes.len(),
                    batch.len()
                ),
            });
        }
        Ok(outcomes)
    }

    /// Give the next call its full deadline and fuel.
    fn arm_call(&mut self) {
        arm(&mut self.store, self.call_ticks, self.limits.fuel);
        for output in &self.outputs {
            output.start_call();
        }
        self.store.data_mut().log_budget.start_call();
    }
}

/// Set the deadline and fuel for the next call into `store`.
fn arm(store: &mut Store<PluginState>, call_ticks: u64, fuel: Option<u64>) {
    store.set_epoch_deadline(call_ticks);
    if let Some(fuel) = fuel {
        // Only fails when the engine does not meter fuel; `WasmEngine` enables
        // metering whenever a fuel limit is configured.
        let _ = store.set_fuel(fuel);
    }
}

/// What a failed call hit: the memory cap, the deadline, the fuel, or a trap;
/// said in one line (wasmtime's message carries a multi-line wasm backtrace,
/// which goes to the debug log instead).
fn failure(
    store: &Store<PluginState>,
    limits: InstanceLimits,
    error: &wasmtime::Error,
) -> PluginError {
    let data = store.data();
    let (kind, reason) = if data.limits.hit {
        (
            TrapKind::OutOfMemory,
            format!(
                "memory grew past the cap of {} MiB (plugin.max_memory_mib)",
                limits.max_memory_bytes >> 20
            ),
        )
    } else {
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => (
                TrapKind::Timeout,
                format!(
                    "the call ran past its deadline of {:?} (plugin.timeout)",
                    limits.call_timeout
                ),
            ),
            Some(Trap::OutOfFuel) => (
                TrapKind::OutOfFuel,
                format!(
                    "the call used up its fuel of {} (plugin.fuel)",
                    limits.fuel.unwrap_or_default()
                ),
            ),
            _ => (TrapKind::Trap, error.root_cause().to_string()),
        }
    };
    tracing::debug!(target: "weir::plugin", plugin = &*data.plugin_name, %kind, "plugin call failed: {error:?}");
    PluginError::Trap {
        plugin: data.plugin_name.to_string(),
        kind,
        reason,
    }
}
