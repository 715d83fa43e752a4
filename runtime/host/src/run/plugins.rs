//! Loading a pipeline's plugin chain: compile (or load from cache) each plugin,
//! create its instances, and start its reloader and file watcher.

use super::RunError;
use crate::admin::ManagedPlugin;
use crate::config::PipelineSettings;
use crate::partition::Stage;
use crate::process::{Backoff, ResolveSettings};
use crate::reload::{self, PluginWatch};
use crate::state::{changelog, PluginStateStore, StateDirLock};
use crate::telemetry::PipelineMetrics;
use crate::wasm::{PluginLoader, PluginSlot};
use std::sync::Arc;

/// The plugins of one pipeline, ready.
pub(super) struct LoadedPlugins {
    /// The chain, in order.
    pub stages: Vec<Stage>,
    /// Their file watchers (reloads stop when dropped).
    pub watching: Vec<PluginWatch>,
    /// What the admin endpoint manages of them.
    pub managed: Vec<ManagedPlugin>,
}

/// Compile (or load from cache) every plugin of a pipeline's chain, create its
/// instances, and start its reloader and file watcher (which also watches
/// `plugin_dirs`, where reloads may load from).
pub(super) async fn load(
    config: &PipelineSettings,
    metrics: &PipelineMetrics,
    plugin_dirs: &[std::path::PathBuf],
) -> Result<LoadedPlugins, RunError> {
    let failure = &config.failure;
    let mut loaded = LoadedPlugins {
        stages: Vec::new(),
        watching: Vec::new(),
        managed: Vec::new(),
    };
    // Taken when the first plugin with state is found.
    let mut state_dir: Option<Arc<StateDirLock>> = None;
    for plugin in &config.plugins {
        let loader = Arc::new(PluginLoader::new(
            plugin,
            metrics.plugin(&plugin.display_name()),
        )?);
        let path = plugin.path.clone();
        // Compiling a large component takes seconds of CPU: keep it off the async threads.
        let first = {
            let loader = Arc::clone(&loader);
            tokio::task::spawn_blocking(move || loader.load(&path))
                .await
                .expect("plugin loading does not panic")?
        };
        let state = if first.pool.uses_state() {
            if config.concurrency.ordering == crate::config::ProcessingOrder::Unordered {
                tracing::warn!(plugin = loader.name(),
                    "the plugin imports state and ordering is \"unordered\": records of one key may run side by side and overwrite each other's state; use ordering \"key\" or \"partition\" for state");
            }
            let lock = match &state_dir {
                Some(lock) => Arc::clone(lock),
                None => {
                    let lock = Arc::new(
                        StateDirLock::acquire(
                            &config.state_dir,
                            &config.group,
                            config.instance_id.as_deref(),
                        )
                        .map_err(Box::new)?,
                    );
                    state_dir = Some(Arc::clone(&lock));
                    lock
                }
            };
            let name = loader.name().to_string();
            let store = PluginStateStore::open(
                lock,
                &name,
                changelog::topic_name(&config.group, &name),
                plugin.state_limits(),
                crate::kafka::restore_client_config(config),
                !config.exactly_once(),
            )
            .map_err(Box::new)?;
            Some(Arc::new(store))
        } else {
            None
        };
        let slot = Arc::new(PluginSlot::new(
            loader.name(),
            first,
            loader.metrics().clone(),
        ));
        let reloads = reload::spawn_reloader(loader, Arc::clone(&slot));
        if plugin.watch {
            loaded.watching.push(reload::watch_plugin(
                &plugin.path,
                plugin_dirs,
                Arc::clone(&slot),
                reloads.clone(),
            )?);
        }
        loaded.stages.push(Stage {
            slot: Arc::clone(&slot),
            resolve: ResolveSettings {
                max_attempts: failure.max_attempts,
                backoff: Backoff {
                    first: failure.retry_backoff,
                    max: failure.retry_backoff_max,
                },
                max_outputs: plugin.max_outputs_per_record,
                max_output_bytes: plugin.max_output_bytes_per_record,
                max_batch: config.batch.max_records,
            },
            state,
        });
        let dir = plugin
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf();
        loaded.managed.push(ManagedPlugin { slot, reloads, dir });
    }
    Ok(loaded)
}
