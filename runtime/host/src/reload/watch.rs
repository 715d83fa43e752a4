//! Reloading a plugin when its `.wasm` file changes on disk. The file's directory
//! is watched (not the file itself), so both an atomic replacement (write a new
//! file, rename it over the old one) and an in-place copy are seen; events are
//! debounced so that a copy still being written is loaded once, after it settles.
//! Only a change of the file's identity, size or modification time counts: reading
//! the file (as a reload does) also raises events.

use crate::reload::{Command, ReloadHandle, Trigger};
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the file must stay quiet before it is reloaded.
const SETTLE: Duration = Duration::from_millis(300);

/// Watching stops when this is dropped.
pub struct PluginWatch {
    _debouncer: Debouncer<RecommendedWatcher>,
}

/// The plugin file could not be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch plugin file {path} for changes: {reason}; set plugin.watch = false (--no-watch) to reload only on SIGHUP or through the admin endpoint")]
pub struct WatchError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Ask `reloads` for a reload whenever `path` is written, replaced or re-created.
pub fn watch_plugin(path: &Path, reloads: ReloadHandle) -> Result<PluginWatch, WatchError> {
    let fail = |reason: String| WatchError {
        path: path.to_owned(),
        reason,
    };
    let absolute = std::path::absolute(path).map_err(|e| fail(e.to_string()))?;
    let (Some(dir), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        return Err(fail("it has no directory and file name".into()));
    };
    let name = name.to_owned();
    let watched = path.to_owned();
    let mut last_seen = FileStamp::of(&absolute);
    let mut debouncer = new_debouncer(SETTLE, move |events: DebounceEventResult| match events {
        Ok(events) => {
            if !events.iter().any(|e| e.path.file_name() == Some(&name)) {
                return;
            }
            let now = FileStamp::of(&watched);
            if now.is_some() && now != last_seen {
                last_seen = now;
                reloads.notify(Command::Reload {
                    trigger: Trigger::FileChanged,
                    path: Some(watched.clone()),
                });
            }
        }
        Err(e) => tracing::warn!(error = %e, "plugin file watch error"),
    })
    .map_err(|e| fail(e.to_string()))?;
    debouncer
        .watcher()
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| fail(e.to_string()))?;
    tracing::info!(path = %absolute.display(), "watching the plugin file; changes are loaded as a new version");
    Ok(PluginWatch {
        _debouncer: debouncer,
    })
}

/// What tells one version of the file from the next without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    /// The file's stamp, `None` while it does not exist.
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            inode: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}
