//! A fixed-size pool of plugin instances shared by all partitions. Its size bounds
//! how many plugin calls run at once; an instance that traps is discarded and a
//! fresh one is made from the pre-instantiated component on next use.

use super::bindings::{InputRecord, PluginPre};
use super::compile::LoadedComponent;
use super::engine::WasmEngine;
use super::instance::{InstanceLimits, PluginInstance, PluginState};
use super::lift::OutputLimits;
use super::{PluginError, TrapKind};
use crate::outbound::Outbound;
use crate::panics::{self, Stage};
use crate::record::{Outcome, Record};
use crate::state::{CallState, CallWrites, PartitionState};
use crate::telemetry::PluginMetrics;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker};

/// A batch after a plugin call: the records, handed back, and what the plugin made
/// of them (one outcome per record), or why the call failed.
pub struct ProcessedBatch {
    /// The input records, in the order given.
    pub records: Vec<Record>,
    /// One outcome per record, or the call's failure.
    pub outcomes: Result<Vec<Outcome>, PluginError>,
    /// The call's state writes, by record (none if the call failed).
    pub writes: CallWrites,
}

/// The state interface's name, without its version.
const STATE_INTERFACE: &str = "weir:processor/state@";

/// Extra tries at making an instance before the pool gives up.
const NEW_INSTANCE_RETRIES: u32 = 2;

/// Instances of one plugin, ready to process batches.
pub struct PluginPool {
    engine: Arc<WasmEngine>,
    pre: PluginPre<PluginState>,
    name: Arc<str>,
    version: String,
    config: Vec<(String, String)>,
    limits: InstanceLimits,
    idle: Mutex<Vec<PluginInstance>>,
    permits: Semaphore,
    metrics: PluginMetrics,
    outbound: Arc<Outbound>,
    /// Whether the plugin imports the state interface.
    uses_state: bool,
    /// The runtime whose timers hold plugin calls to their deadline.
    runtime: tokio::runtime::Handle,
}

impl PluginPool {
    /// Link the component against Weir's host functions and WASI (nothing granted),
    /// then create `size` instances, each `init`-ed with `config`, and call one
    /// with an empty batch. Fails if the component does not fit the plugin world,
    /// refuses its configuration or fails that first call. Calls are timed
    /// and records counted in `metrics`. Must run on a blocking thread of a
    /// tokio runtime (e.g. in `spawn_blocking`), whose timers calls then use.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Arc<WasmEngine>,
        loaded: &LoadedComponent,
        path: &Path,
        name: &str,
        config: Vec<(String, String)>,
        limits: InstanceLimits,
        size: usize,
        metrics: PluginMetrics,
        outbound: Arc<Outbound>,
    ) -> Result<Self, PluginError> {
        let wrong_world = |e: wasmtime::Error| PluginError::WrongWorld {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            PluginError::Runtime("plugins must be loaded within a tokio runtime".into())
        })?;
        let mut linker = Linker::<PluginState>::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| PluginError::Runtime(format!("{e:#}")))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| PluginError::Runtime(format!("{e:#}")))?;
        super::bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Runtime(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&loaded.component)
            .map_err(wrong_world)?;
        let pre = PluginPre::new(pre).map_err(wrong_world)?;
        let uses_state = loaded
            .component
            .component_type()
            .imports(engine.engine())
            .any(|(name, _)| name.starts_with(STATE_INTERFACE));
        let pool = Self {
            engine,
            pre,
            name: Arc::from(name),
            version: loaded.content_hash.clone(),
            config,
            limits,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
            metrics,
            outbound,
            uses_state,
            runtime,
        };
        for _ in 0..size {
            let mut instance = pool.runtime.block_on(pool.new_instance())?;
            if pool.idle_instances().is_empty() {
                // A first call, with nothing to process, before any record depends on it.
                let limits = OutputLimits {
                    max_outputs: 0,
                    max_bytes: 0,
                };
                pool.runtime.block_on(instance.process(&[], limits, None))?;
            }
            pool.idle_instances().push(instance);
        }
        Ok(pool)
    }

    /// The plugin's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's version: SHA-256 of its `.wasm` file.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether the plugin imports the state interface (a plugin built
    /// against contract 0.1.0 never does).
    pub fn uses_state(&self) -> bool {
        self.uses_state
    }

    /// The plugin's metrics.
    pub fn metrics(&self) -> &PluginMetrics {
        &self.metrics
    }

    /// Name and version, to say which plugin gave up on a record.
    pub fn identity(&self) -> super::PluginIdentity {
        super::PluginIdentity {
            name: self.name.to_string(),
            version: self.version.clone(),
        }
    }

    /// Run one batch through a free instance, waiting for one if all are busy,
    /// and lift its results under `limits`; the plugin reads and writes
    /// `state` (its state of the batch's partition), if it has state. The
    /// call runs on a blocking thread so it never stalls the async runtime.
    pub async fn process(
        self: &Arc<Self>,
        records: Vec<Record>,
        limits: OutputLimits,
        state: Option<&Arc<PartitionState>>,
    ) -> ProcessedBatch {
        let state = state
            .map(|s| CallState::new(Arc::clone(s), records.iter().map(|r| r.offset).collect()));
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the pool never closes its semaphore");
        let pool = Arc::clone(self);
        // Log lines of the call (the guest's own, traps) say which plugin version
        // ran on which records: the partition and the batch's first offset.
        let span = match records.first() {
            Some(first) => tracing::info_span!("plugin_call", plugin = %self.name,
                version = &self.version[..12.min(self.version.len())],
                topic = %first.topic, partition = first.partition, offset = first.offset,
                records = records.len()),
            None => tracing::Span::none(),
        };
        let joined = tokio::task::spawn_blocking(move || {
            let _in_call = span.enter();
            let taken = pool.idle_instances().pop();
            let instance = match taken {
                Some(instance) => Ok(instance),
                None => pool.runtime.block_on(pool.new_instance()),
            };
            let mut instance = match instance {
                Ok(instance) => instance,
                Err(e) => {
                    return ProcessedBatch {
                        records,
                        outcomes: Err(PluginError::Unavailable {
                            plugin: pool.name.to_string(),
                            source: Box::new(e),
                        }),
                        writes: CallWrites::default(),
                    }
                }
            };
            let batch: Vec<InputRecord> = records.into_iter().map(InputRecord::from).collect();
            let started = std::time::Instant::now();
            let called = std::panic::catch_unwind(AssertUnwindSafe(|| {
                for record in &batch {
                    panics::inject(Stage::PluginCall, record.value.as_deref());
                }
                pool.runtime
                    .block_on(instance.process(&batch, limits, state))
            }));
            // The instance is dropped, not reused, after a panic: the call may
            // have stopped halfway.
            let (outcomes, writes) = match called.unwrap_or_else(|payload| {
                Err(PluginError::Trap {
                    plugin: pool.name.to_string(),
                    kind: TrapKind::HostPanic,
                    reason: format!(
                        "the host panicked during the call: {}",
                        panics::message(&*payload)
                    ),
                })
            }) {
                Ok((outcomes, writes)) => (Ok(outcomes), writes),
                Err(e) => (Err(e), CallWrites::default()),
            };
            pool.metrics
                .call_duration
                .observe(started.elapsed().as_secs_f64());
            if outcomes.is_ok() {
                pool.idle_instances().push(instance);
            }
            ProcessedBatch {
                records: batch.into_iter().map(Record::from).collect(),
                outcomes,
                writes,
            }
        })
        .await;
        joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// A fresh instance, initialised. Making one can fail for a moment for
    /// reasons outside the plugin (the kernel refusing to seal the memory
    /// image's memfd with EBUSY was seen once in CI), so a failure is tried
    /// again twice, 50 and 100 ms later, before the pool gives up.
    async fn new_instance(&self) -> Result<PluginInstance, PluginError> {
        let mut attempt = 0;
        loop {
            let made = PluginInstance::new(
                self.engine.engine(),
                &self.pre,
                self.name.clone(),
                &self.config,
                self.limits,
                &self.metrics,
                &self.outbound,
            )
            .await;
            match made {
                Err(error) if attempt < NEW_INSTANCE_RETRIES => {
                    attempt += 1;
                    tracing::warn!(plugin = %self.name, %error, attempt,
                        "making a plugin instance failed; trying again");
                    tokio::time::sleep(Duration::from_millis(50 << (attempt - 1))).await;
                }
                made => return made,
            }
        }
    }

    fn idle_instances(&self) -> std::sync::MutexGuard<'_, Vec<PluginInstance>> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}
