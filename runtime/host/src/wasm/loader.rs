//! Turning a `.wasm` file into a ready version of a plugin: compile it (or load
//! it from the artifact cache), create its instances and `init` them.

use super::{
    default_cache_dir, load_component, InstanceLimits, LoadedComponent, PluginError, PluginPool,
    PluginVersion, WasmEngine,
};
use crate::config::PluginConfig;
use crate::outbound::Outbound;
use crate::telemetry::PluginMetrics;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Everything needed to turn a `.wasm` file into a ready version of a plugin.
pub struct PluginLoader {
    engine: Arc<WasmEngine>,
    name: String,
    config: Vec<(String, String)>,
    limits: InstanceLimits,
    instances: usize,
    cache_dir: Option<PathBuf>,
    metrics: PluginMetrics,
    /// Outbound HTTP policy, shared by every version of the plugin.
    outbound: Arc<Outbound>,
}

impl PluginLoader {
    /// A loader for the plugin configured in `plugin`, whose versions count
    /// their calls in `metrics`.
    pub fn new(plugin: &PluginConfig, metrics: PluginMetrics) -> Result<Self, PluginError> {
        let allowed = plugin
            .allowed_outbound()
            .map_err(|e| PluginError::Runtime(e.to_string()))?;
        let outbound = Outbound::new(
            Arc::from(plugin.display_name()),
            allowed,
            plugin
                .http
                .settings()
                .map_err(|e| PluginError::Runtime(e.to_string()))?,
            metrics.http.clone(),
        )
        .map_err(|e| PluginError::Runtime(e.to_string()))?;
        Ok(Self {
            outbound,
            metrics,
            engine: Arc::new(WasmEngine::new(plugin.fuel.is_some())?),
            name: plugin.display_name(),
            config: plugin
                .init_config()
                .map_err(|e| PluginError::Runtime(e.to_string()))?,
            limits: InstanceLimits {
                max_memory_bytes: usize::try_from(plugin.max_memory_mib * 1024 * 1024)
                    .unwrap_or(usize::MAX),
                call_timeout: plugin.timeout,
                fuel: plugin.fuel,
            },
            instances: plugin.instances.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            }),
            cache_dir: plugin.cache_dir.clone().or_else(default_cache_dir),
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's metrics.
    pub fn metrics(&self) -> &PluginMetrics {
        &self.metrics
    }

    /// Read and compile `path` (or load it from the artifact cache). Blocking.
    pub fn compile(&self, path: &Path) -> Result<LoadedComponent, PluginError> {
        let loaded = load_component(self.engine.engine(), path, self.cache_dir.as_deref())?;
        tracing::info!(
            plugin = %self.name,
            version = &loaded.content_hash[..12],
            from_cache = loaded.from_cache,
            elapsed_ms = loaded.elapsed.as_millis() as u64,
            "plugin compiled"
        );
        Ok(loaded)
    }

    /// Create every instance of a compiled plugin, `init` each with the plugin
    /// configuration, and check one with an empty batch. Blocking.
    pub fn instantiate(
        &self,
        loaded: &LoadedComponent,
        path: &Path,
    ) -> Result<PluginVersion, PluginError> {
        let pool = PluginPool::new(
            Arc::clone(&self.engine),
            loaded,
            path,
            &self.name,
            self.config.clone(),
            self.limits,
            self.instances,
            self.metrics.clone(),
            Arc::clone(&self.outbound),
        )?;
        Ok(PluginVersion {
            pool: Arc::new(pool),
            path: path.to_owned(),
            loaded_at: SystemTime::now(),
        })
    }

    /// Compile and instantiate `path`. Blocking.
    pub fn load(&self, path: &Path) -> Result<PluginVersion, PluginError> {
        let loaded = self.compile(path)?;
        self.instantiate(&loaded, path)
    }
}
