//! Loading plugin versions, and hot reload: a new version is compiled,
//! instantiated, `init`-ed and checked off the hot path, then swapped in between
//! batches (see `wasm::PluginSlot`). If any step fails, the running version
//! stays and the failure is logged and counted. Reloads are asked for by the file
//! watcher (`watch`), SIGHUP, or the admin endpoint (`admin`), and run one at a
//! time.

use crate::wasm::{PluginError, PluginLoader, PluginSlot, ReloadEvent, VersionInfo};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

mod watch;

pub use watch::{watch_plugin, PluginWatch, WatchError};

/// What asked for a reload, for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The plugin file changed on disk.
    FileChanged,
    /// The process received SIGHUP.
    Signal,
    /// A call to the admin endpoint.
    Admin,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::FileChanged => "file-changed",
            Trigger::Signal => "sighup",
            Trigger::Admin => "admin",
        }
    }
}

/// A change of plugin version to make.
#[derive(Debug)]
pub enum Command {
    /// Load the plugin from `path` (default: the current version's file) and
    /// put it in use.
    Reload {
        /// Who asked.
        trigger: Trigger,
        /// Another file to load, if any.
        path: Option<PathBuf>,
    },
    /// Put the previous version back in use.
    Rollback,
}

/// Why a reload or rollback did not change the running version.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new version could not be loaded; the running one stays.
    #[error("{0}; the running version stays in use")]
    Load(#[from] PluginError),
    /// There is no previous version.
    #[error("no previous version to roll back to")]
    NoPrevious,
    /// The reloader has stopped (the process is shutting down).
    #[error("the process is shutting down")]
    Closed,
}

type Request = (
    Command,
    Option<oneshot::Sender<Result<VersionInfo, ReloadError>>>,
);

/// Asks the reloader of one plugin for changes.
#[derive(Clone)]
pub struct ReloadHandle {
    requests: mpsc::Sender<Request>,
}

impl ReloadHandle {
    /// Ask for `command` and wait for the outcome.
    pub async fn request(&self, command: Command) -> Result<VersionInfo, ReloadError> {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send((command, Some(reply)))
            .await
            .map_err(|_| ReloadError::Closed)?;
        outcome.await.map_err(|_| ReloadError::Closed)?
    }

    /// Ask for `command` without waiting (from the watcher's or signal's
    /// thread); the outcome goes to the log. Dropped if many are queued.
    pub fn notify(&self, command: Command) {
        if let Err(e) = self.requests.try_send((command, None)) {
            tracing::warn!(error = %e, "reload request dropped: too many pending");
        }
    }
}

/// Start the task that carries out reloads of `slot`, one at a time.
pub fn spawn_reloader(loader: Arc<PluginLoader>, slot: Arc<PluginSlot>) -> ReloadHandle {
    let (requests, mut queue) = mpsc::channel::<Request>(16);
    tokio::spawn(async move {
        while let Some((command, reply)) = queue.recv().await {
            let before = slot.current_version().pool.version().to_string();
            let (trigger, changed, outcome) = match command {
                Command::Reload { trigger, path } => (
                    trigger,
                    "reloaded",
                    reload(&loader, &slot, trigger, path).await,
                ),
                Command::Rollback => (Trigger::Admin, "rolled-back", rollback(&slot)),
            };
            slot.remember(event(trigger, changed, &before, &outcome));
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
        }
    });
    ReloadHandle { requests }
}

/// Reloads every plugin on SIGHUP. It listens from before the plugins load,
/// so that a SIGHUP during start-up does not end the process (the signal's
/// default action); until the plugins are handed over it is logged and ignored.
pub struct HangupReloads {
    handles: Arc<std::sync::OnceLock<Vec<ReloadHandle>>>,
}

impl HangupReloads {
    /// Start listening for SIGHUP.
    pub fn listen() -> std::io::Result<Self> {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let handles: Arc<std::sync::OnceLock<Vec<ReloadHandle>>> = Arc::default();
        let listening = Arc::clone(&handles);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(handles) = listening.get() else {
                    tracing::warn!("SIGHUP during start-up ignored: the plugins are still loading; send it again once Weir is ready");
                    continue;
                };
                for handle in handles {
                    handle.notify(Command::Reload {
                        trigger: Trigger::Signal,
                        path: None,
                    });
                }
            }
        });
        Ok(Self { handles })
    }

    /// From now on, reload the plugins of `handles` on each SIGHUP (once; later
    /// calls are ignored).
    pub fn serve(&self, handles: Vec<ReloadHandle>) {
        let _ = self.handles.set(handles);
    }
}

async fn reload(
    loader: &Arc<PluginLoader>,
    slot: &Arc<PluginSlot>,
    trigger: Trigger,
    path: Option<PathBuf>,
) -> Result<VersionInfo, ReloadError> {
    let running = slot.current_version();
    let path = path.unwrap_or_else(|| running.path.clone());
    let started = Instant::now();
    let prepare = {
        let (loader, path) = (Arc::clone(loader), path.clone());
        let running_version = running.pool.version().to_string();
        let running_path = running.path.clone();
        tokio::task::spawn_blocking(move || {
            let loaded = loader.compile(&path)?;
            if loaded.content_hash == running_version && path == running_path {
                return Ok(None);
            }
            loader.instantiate(&loaded, &path).map(Some)
        })
    };
    let prepared = prepare
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let plugin = slot.name();
    match prepared {
        Err(e) => {
            slot.count_failure();
            tracing::error!(plugin, trigger = trigger.as_str(), path = %path.display(), error = %e,
                "plugin reload failed; the running version stays in use");
            Err(ReloadError::Load(e))
        }
        Ok(None) => {
            tracing::info!(
                plugin,
                trigger = trigger.as_str(),
                version = short(running.pool.version()),
                "plugin file unchanged; nothing to reload"
            );
            Ok(running.info())
        }
        Ok(Some(next)) => {
            let prepare_ms = started.elapsed().as_millis() as u64;
            let info = next.info();
            let swap = slot.install(next);
            tracing::info!(plugin, trigger = trigger.as_str(), version = short(&info.version),
                previous = short(running.pool.version()), path = %path.display(), prepare_ms,
                swap_us = swap.as_micros() as u64, "plugin reloaded; new batches use the new version");
            Ok(info)
        }
    }
}

fn rollback(slot: &PluginSlot) -> Result<VersionInfo, ReloadError> {
    let restored = slot.rollback().ok_or(ReloadError::NoPrevious)?;
    let info = restored.info();
    tracing::info!(plugin = slot.name(), version = short(&info.version), path = %info.path.display(),
        "plugin rolled back; new batches use the previous version");
    Ok(info)
}

/// What the history keeps of a reload or rollback that started on version
/// `before`; `changed` names its outcome when the version changed.
fn event(
    trigger: Trigger,
    changed: &'static str,
    before: &str,
    outcome: &Result<VersionInfo, ReloadError>,
) -> ReloadEvent {
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (outcome, version, error) = match outcome {
        Ok(info) if info.version == before => ("unchanged", info.version.clone(), None),
        Ok(info) => (changed, info.version.clone(), None),
        Err(e) => ("failed", before.to_string(), Some(e.to_string())),
    };
    ReloadEvent {
        at_ms,
        trigger: trigger.as_str(),
        outcome,
        version,
        error,
    }
}

fn short(version: &str) -> &str {
    &version[..version.len().min(12)]
}
