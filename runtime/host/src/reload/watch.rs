//! Reloading a plugin when the `.wasm` file in use changes on disk. The
//! directories a plugin may be loaded from are watched (not the file itself),
//! so both an atomic replacement (write a new file, rename it over the old one)
//! and an in-place copy are seen; events are debounced so that a copy still
//! being written is loaded once, after it settles. The file watched is the one
//! the running version came from: after a reload from another file (the control
//! endpoint's `?path=`), that file's changes count, not the first one's. Only a
//! change of the file's identity, size or modification time counts: reading
//! the file (as a reload does) also raises events.

use crate::reload::{Command, ReloadHandle, Trigger};
use crate::wasm::PluginSlot;
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long the file must stay quiet before it is reloaded.
const SETTLE: Duration = Duration::from_millis(300);

/// Watching stops when this is dropped.
pub struct PluginWatch {
    _debouncer: Debouncer<RecommendedWatcher>,
}

/// The plugin file could not be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch plugin file {path} for changes: {reason}; set plugin.watch = false (--no-watch) to reload only on SIGHUP or through the control endpoint")]
pub struct WatchError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Ask `reloads` for a reload whenever the file of `slot`'s running version
/// is written, replaced or re-created. That file is first `path`; the
/// directory of `path` and `other_dirs` (where reloads may load from) are
/// watched.
pub fn watch_plugin(
    path: &Path,
    other_dirs: &[PathBuf],
    slot: Arc<PluginSlot>,
    reloads: ReloadHandle,
) -> Result<PluginWatch, WatchError> {
    let fail = |reason: String| WatchError {
        path: path.to_owned(),
        reason,
    };
    let absolute = std::path::absolute(path).map_err(|e| fail(e.to_string()))?;
    let Some(dir) = absolute.parent() else {
        return Err(fail("it has no directory".into()));
    };
    let mut watched = WatchedFile {
        path: same_file(&absolute),
        stamp: FileStamp::of(&absolute),
    };
    let mut debouncer = new_debouncer(SETTLE, move |events: DebounceEventResult| match events {
        Ok(events) => {
            let current = same_file(&slot.current_version().path);
            if current != watched.path {
                // The running version now comes from another file (a reload
                // with a path): follow it. Its state when it was loaded is not
                // known, so its next event reloads it; a reload of the same
                // content is recognised and changes nothing.
                watched = WatchedFile {
                    stamp: None,
                    path: current,
                };
            }
            if !events.iter().any(|e| same_file(&e.path) == watched.path) {
                return;
            }
            let now = FileStamp::of(&watched.path);
            if now.is_some() && now != watched.stamp {
                watched.stamp = now;
                reloads.notify(Command::Reload {
                    trigger: Trigger::FileChanged,
                    path: Some(watched.path.clone()),
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
    for other in other_dirs {
        debouncer
            .watcher()
            .watch(other, RecursiveMode::Recursive)
            .map_err(|e| fail(format!("{}: {e}", other.display())))?;
    }
    tracing::info!(path = %absolute.display(), "watching the plugin file; changes are loaded as a new version");
    Ok(PluginWatch {
        _debouncer: debouncer,
    })
}

/// The file being watched and how it looked when last loaded.
struct WatchedFile {
    path: PathBuf,
    stamp: Option<FileStamp>,
}

/// `path` in one canonical spelling (symbolic links and `..` resolved where
/// the file exists), so that the same file compares equal however it is named.
fn same_file(path: &Path) -> PathBuf {
    path.canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_owned())
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
