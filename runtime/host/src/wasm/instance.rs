//! One sandboxed plugin instance: its store (memory cap, deadline, optional fuel,
//! WASI with nothing granted and stdio captured into the log), the host functions
//! it may call, and typed calls into it that say which limit a failed call hit.
//!
//! Calls are async so that the deadline holds while the guest waits in the host
//! (a WASI sleep or poll): epoch interruption stops a guest that computes, the
//! timer around the call's future stops one that waits.

use super::bindings::{weir::processor, InputRecord, Plugin, PluginPre};
use super::engine::{WasmEngine, EPOCH_TICK};
use super::guest_output::{CallBudget, GuestOutput, GuestStream};
use super::lift::{LimitedCall, Outcomes, OutputLimits, WrongOutcomeCount};
use super::limits::ResourceCap;
use super::{PluginError, TrapKind};
use crate::outbound::{Outbound, OutboundHooks};
use crate::record::{cut_at_char, Outcome};
use crate::state::{CallState, CallWrites};
use crate::telemetry::PluginMetrics;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{ComponentExportIndex, Instance, ResourceTable};
use wasmtime::{Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

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
    http: WasiHttpCtx,
    /// Outbound HTTP: the allow-list and limits of the plugin.
    http_hooks: OutboundHooks,
    table: ResourceTable,
    /// The state of the partition whose batch is being processed, if any.
    call_state: Option<CallState>,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
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

impl processor::state::Host for PluginState {
    fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        match &self.call_state {
            Some(call) => Ok(call.get(&key)?),
            None => Ok(None),
        }
    }

    fn set(
        &mut self,
        offset: i64,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        self.write(offset, key, Some(value))
    }

    fn delete(&mut self, offset: i64, key: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.write(offset, key, None)
    }
}

impl PluginState {
    /// A state write of the current call; a storage failure traps the call.
    fn write(
        &mut self,
        offset: i64,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) -> wasmtime::Result<Result<(), String>> {
        match &mut self.call_state {
            Some(call) => Ok(call.write(offset, key, value)?),
            None => Ok(Err(format!(
                "plugin `{}` has no state here: state is written while processing records (not in init), and only by a plugin that imported the state interface when its pipeline started",
                self.plugin_name
            ))),
        }
    }
}

/// The interface a plugin exports, and its batch function.
const PROCESSOR_INTERFACE: &str = "weir:processor/processor@0.1.1";
const PROCESS_FUNCTION: &str = "process";

/// Smallest amount of data a call may copy out of the guest, whatever the
/// output limits (wasmtime's own default).
const MIN_HOSTCALL_FUEL: usize = 128 << 20;

/// A live plugin instance, initialised and ready for `process` calls.
pub struct PluginInstance {
    store: Store<PluginState>,
    instance: Instance,
    process: ComponentExportIndex,
    call_ticks: u64,
    limits: InstanceLimits,
    /// The guest's stdout and stderr, whose line budget restarts with each call.
    outputs: [GuestOutput; 2],
}

impl PluginInstance {
    /// Instantiate the plugin and run its `init` with `config`.
    pub async fn new(
        engine: &wasmtime::Engine,
        pre: &PluginPre<PluginState>,
        plugin_name: Arc<str>,
        config: &[(String, String)],
        limits: InstanceLimits,
        metrics: &PluginMetrics,
        outbound: &Arc<Outbound>,
    ) -> Result<Self, PluginError> {
        let stream = |stream: GuestStream| {
            let dropped = metrics.log_lines_dropped(stream.name());
            GuestOutput::new(plugin_name.clone(), stream, dropped)
        };
        let outputs = [stream(GuestStream::Stdout), stream(GuestStream::Stderr)];
        let mut wasi = WasiCtx::builder();
        // Nothing granted: no preopened directories, no sockets, no env, no args,
        // stdin empty; HTTP only to the hosts the operator allows (`outbound`).
        // stdout/stderr go to the host log, tagged with the plugin.
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
            http: WasiHttpCtx::new(),
            http_hooks: outbound.hooks(),
            table: ResourceTable::new(),
            call_state: None,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        let call_ticks = WasmEngine::ticks_for(limits.call_timeout);
        arm(&mut store, call_ticks, limits.fuel);
        let instance = within_deadline(
            &plugin_name,
            limits,
            pre.instance_pre().instantiate_async(&mut store),
        )
        .await
        .and_then(|r| r.map_err(|e| failure(&store, limits, &e)))?;
        let process = process_export(&mut store, &instance)
            .map_err(|reason| PluginError::Runtime(format!("plugin `{plugin_name}`: {reason}")))?;
        let bindings =
            Plugin::new(&mut store, &instance).map_err(|e| failure(&store, limits, &e))?;
        let mut instance = Self {
            store,
            instance,
            process,
            call_ticks,
            limits,
            outputs,
        };
        instance.arm_call();
        let init = bindings
            .weir_processor_processor()
            .call_init(&mut instance.store, config);
        within_deadline(&plugin_name, limits, init)
            .await
            .and_then(|r| r.map_err(|e| failure(&instance.store, limits, &e)))?
            .map_err(|message| PluginError::InitRefused {
                plugin: plugin_name.to_string(),
                message,
            })?;
        Ok(instance)
    }

    /// Process one batch, lifting the results under `output_limits`, with
    /// `state` (the partition's state, if the plugin has state) for its
    /// reads and writes. On `Err` the instance is unusable (it trapped or was
    /// stopped) and must be discarded, and the call's writes with it.
    pub async fn process(
        &mut self,
        batch: &[InputRecord],
        output_limits: OutputLimits,
        state: Option<CallState>,
    ) -> Result<(Vec<Outcome>, CallWrites), PluginError> {
        self.arm_call();
        self.store.data_mut().call_state = state;
        self.store
            .set_hostcall_fuel(hostcall_fuel(output_limits, batch.len()));
        let process = self
            .instance
            .get_typed_func::<(&[InputRecord],), (Outcomes,)>(&mut self.store, &self.process)
            .map_err(|e| PluginError::Runtime(format!("{e:#}")))?;
        let plugin = self.store.data().plugin_name.clone();
        let _limited = LimitedCall::new(output_limits, batch.len());
        let called = within_deadline(
            &plugin,
            self.limits,
            process.call_async(&mut self.store, (batch,)),
        )
        .await
        .and_then(|r| r.map_err(|e| failure(&self.store, self.limits, &e)));
        let writes = self.store.data_mut().call_state.take();
        let (Outcomes(outcomes),) = called?;
        Ok((outcomes, writes.map(CallState::finish).unwrap_or_default()))
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

/// Find the plugin's `process` export.
fn process_export(
    store: &mut Store<PluginState>,
    instance: &Instance,
) -> Result<ComponentExportIndex, String> {
    let interface = instance
        .get_export_index(&mut *store, None, PROCESSOR_INTERFACE)
        .ok_or_else(|| format!("exports no `{PROCESSOR_INTERFACE}`"))?;
    instance
        .get_export_index(&mut *store, Some(&interface), PROCESS_FUNCTION)
        .ok_or_else(|| format!("`{PROCESSOR_INTERFACE}` has no `{PROCESS_FUNCTION}`"))
}

/// Bytes a call with `records` input records may copy out of the guest: what
/// the output limits allow (UTF-16 text may grow by half again when transcoded,
/// each output and error message has a fixed cost), and never less than
/// wasmtime's default.
fn hostcall_fuel(limits: OutputLimits, records: usize) -> usize {
    let per_record = limits
        .max_bytes
        .saturating_mul(3)
        .saturating_add(limits.max_outputs.saturating_mul(256))
        .saturating_add(2 * crate::record::MAX_REFUSAL_BYTES);
    records.saturating_mul(per_record).max(MIN_HOSTCALL_FUEL)
}

/// Run `call` (a call into the guest) under the call deadline, also while the
/// guest waits in the host, where epoch interruption cannot reach it.
/// Dropping the call's future on expiry leaves the instance unusable; it is
/// discarded like a trapped one.
async fn within_deadline<T>(
    plugin: &str,
    limits: InstanceLimits,
    call: impl Future<Output = T>,
) -> Result<T, PluginError> {
    // The epoch deadline fires first for a guest that computes; this timer is
    // for one that waits, a couple of epoch ticks later.
    let deadline = limits.call_timeout + 2 * EPOCH_TICK;
    tokio::time::timeout(deadline, call)
        .await
        .map_err(|_| PluginError::Trap {
            plugin: plugin.to_string(),
            kind: TrapKind::Timeout,
            reason: format!(
                "the call ran past its deadline of {:?} (plugin.timeout) while waiting in the host",
                limits.call_timeout
            ),
        })
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
    let (kind, reason) = if let Some(wrong) = error.downcast_ref::<WrongOutcomeCount>() {
        (TrapKind::Contract, wrong.to_string())
    } else if data.limits.hit {
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
