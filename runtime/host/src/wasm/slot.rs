//! The live version of a plugin, swappable while records flow. Workers take the
//! current version once per batch, so every record of a batch is processed by one
//! version; a swap only replaces the pointer (no worker waits), and batches
//! already running finish on the version they started with. The version before
//! the current one is kept for an instant rollback.

use super::pool::PluginPool;
use crate::telemetry::PluginMetrics;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One loaded version of a plugin: its instances and where they came from.
pub struct PluginVersion {
    /// The instances.
    pub pool: Arc<PluginPool>,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

/// What the admin endpoint and the logs show of a version.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VersionInfo {
    /// SHA-256 of the `.wasm` file.
    pub version: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// When it was loaded, in milliseconds since the Unix epoch.
    pub loaded_at_ms: u64,
}

/// Reload outcomes a plugin remembers for the admin endpoint, newest kept.
const HISTORY: usize = 20;

/// One reload or rollback asked of a plugin, and what came of it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReloadEvent {
    /// When it finished, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Who asked: `file-changed`, `sighup` or `admin`.
    pub trigger: &'static str,
    /// `reloaded`, `unchanged`, `rolled-back` or `failed`.
    pub outcome: &'static str,
    /// SHA-256 of the version in use afterwards.
    pub version: String,
    /// Why it failed (the running version stayed).
    pub error: Option<String>,
}

/// A plugin's state for the admin endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    /// The plugin's name.
    pub name: String,
    /// The version in use.
    pub current: VersionInfo,
    /// The version a rollback would restore.
    pub previous: Option<VersionInfo>,
    /// Reloads that put a new version in use.
    pub reloads_ok: u64,
    /// Reloads that failed (the running version stayed).
    pub reloads_failed: u64,
    /// The latest reloads and rollbacks, newest first.
    pub history: Vec<ReloadEvent>,
}

impl PluginVersion {
    /// What to show of this version.
    pub fn info(&self) -> VersionInfo {
        VersionInfo {
            version: self.pool.version().to_string(),
            path: self.path.clone(),
            loaded_at_ms: self
                .loaded_at
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_millis() as u64,
        }
    }
}

struct Versions {
    current: Arc<PluginVersion>,
    previous: Option<Arc<PluginVersion>>,
}

/// The live version of one plugin.
pub struct PluginSlot {
    name: String,
    versions: RwLock<Versions>,
    metrics: PluginMetrics,
    history: Mutex<VecDeque<ReloadEvent>>,
}

impl PluginSlot {
    /// A slot whose first version is `first`; reloads and the version in use
    /// are exported through `metrics`.
    pub fn new(name: &str, first: PluginVersion, metrics: PluginMetrics) -> Self {
        metrics.show_version(first.pool.version());
        Self {
            name: name.to_string(),
            versions: RwLock::new(Versions {
                current: Arc::new(first),
                previous: None,
            }),
            metrics,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instances of the version in use: take once per batch.
    pub fn current(&self) -> Arc<PluginPool> {
        Arc::clone(&self.read().current.pool)
    }

    /// The version in use.
    pub fn current_version(&self) -> Arc<PluginVersion> {
        Arc::clone(&self.read().current)
    }

    /// Put `next` in use; the version it replaces becomes the rollback target.
    /// Returns how long the swap held the lock.
    pub fn install(&self, next: PluginVersion) -> Duration {
        let started = Instant::now();
        self.metrics.show_version(next.pool.version());
        let mut versions = self.write();
        let replaced = std::mem::replace(&mut versions.current, Arc::new(next));
        let dropped = versions.previous.replace(replaced);
        drop(versions);
        let swap = started.elapsed();
        // Dropping a version's instances takes a while: not while holding the lock.
        drop(dropped);
        self.metrics.reloads_ok.inc();
        swap
    }

    /// Swap the current and the previous version; `None` if there is no previous one.
    pub fn rollback(&self) -> Option<Arc<PluginVersion>> {
        let mut versions = self.write();
        let previous = versions.previous.take()?;
        let replaced = std::mem::replace(&mut versions.current, Arc::clone(&previous));
        versions.previous = Some(replaced);
        self.metrics.show_version(previous.pool.version());
        Some(previous)
    }

    /// Count a reload that failed.
    pub fn count_failure(&self) {
        self.metrics.reloads_failed.inc();
    }

    /// Remember a reload's outcome (the oldest of [`HISTORY`] is forgotten).
    pub fn remember(&self, event: ReloadEvent) {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == HISTORY {
            history.pop_back();
        }
        history.push_front(event);
    }

    /// Versions, reload counts and the latest reloads.
    pub fn status(&self) -> SlotStatus {
        let versions = self.read();
        SlotStatus {
            name: self.name.clone(),
            current: versions.current.info(),
            previous: versions.previous.as_ref().map(|v| v.info()),
            reloads_ok: self.metrics.reloads_ok.get(),
            reloads_failed: self.metrics.reloads_failed.get(),
            history: self
                .history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Versions> {
        // The lock guards two pointer swaps; a panic cannot leave them half done.
        self.versions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Versions> {
        self.versions.write().unwrap_or_else(|p| p.into_inner())
    }
}
