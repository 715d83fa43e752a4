//! Loading a plugin file into a compiled component, through an on-disk cache of
//! compiled artifacts so that restarts skip compilation (seconds for large
//! Python or JavaScript components; milliseconds from the cache).
//!
//! An artifact is native code, so the cache is guarded: its directory is
//! created private (0700) and one that other users may write to is not used;
//! each artifact is written through a temporary file of its own and renamed
//! into place, beside a SHA-256 digest that is checked before the artifact is
//! loaded.

use super::PluginError;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::Engine;

/// A compiled plugin and where it came from.
pub struct LoadedComponent {
    /// The compiled component.
    pub component: Component,
    /// Hex SHA-256 of the `.wasm` file: the plugin version.
    pub content_hash: String,
    /// Whether the compiled artifact came from the cache.
    pub from_cache: bool,
    /// Time spent compiling or loading.
    pub elapsed: Duration,
}

/// Largest plugin file read (a Python component is about 18 MB): a larger
/// file, or a device or FIFO given as a plugin, is refused before reading.
pub const MAX_PLUGIN_BYTES: u64 = 256 * 1024 * 1024;

/// The binary preamble of a WebAssembly file: magic, then version and layer.
const WASM_MAGIC: &[u8; 4] = b"\0asm";
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// Read, validate and compile the plugin at `path`, using `cache_dir` (if any)
/// to reuse an artifact compiled earlier by the same wasmtime with the same settings.
#[allow(unsafe_code)] // deserializing a compiled artifact; see the SAFETY note below
pub fn load_component(
    engine: &Engine,
    path: &Path,
    cache_dir: Option<&Path>,
) -> Result<LoadedComponent, PluginError> {
    let started = Instant::now();
    let bytes = read_plugin(path)?;
    check_preamble(path, &bytes)?;
    let content_hash = hex(&Sha256::digest(&bytes));
    let cache_dir = cache_dir.filter(|dir| match usable_cache_dir(dir) {
        Ok(()) => true,
        Err(reason) => {
            tracing::warn!(cache = %dir.display(), "not using the compiled-plugin cache: {reason}");
            false
        }
    });
    let cached = cache_dir.map(|dir| dir.join(artifact_name(engine, &content_hash)));

    if let Some(artifact) = cached.as_deref().filter(|p| p.exists()) {
        let checked = read_checked(artifact).and_then(|bytes| {
            // SAFETY: the artifact was written by `Component::serialize` of this
            // same wasmtime version and engine configuration (both are part of
            // its file name) into a directory only this user may write, and its
            // bytes match the digest written with it; wasmtime additionally
            // checks the header before using it.
            unsafe { Component::deserialize(engine, &bytes) }.map_err(|e| format!("{e:#}"))
        });
        match checked {
            Ok(component) => {
                return Ok(LoadedComponent {
                    component,
                    content_hash,
                    from_cache: true,
                    elapsed: started.elapsed(),
                })
            }
            Err(e) => tracing::warn!(artifact = %artifact.display(), error = %e,
                "ignoring unusable compiled artifact; recompiling"),
        }
    }

    tracing::info!(plugin = %path.display(), size = bytes.len(), "compiling plugin (once; later starts load it from the cache)");
    let component = Component::new(engine, &bytes).map_err(|e| PluginError::NotAComponent {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    })?;
    if let Some(artifact) = cached {
        if let Err(e) = store_artifact(&component, &artifact) {
            tracing::warn!(artifact = %artifact.display(), error = %e,
                "cannot cache the compiled plugin; the next start compiles again");
        }
    }
    Ok(LoadedComponent {
        component,
        content_hash,
        from_cache: false,
        elapsed: started.elapsed(),
    })
}

/// The bytes of the plugin file at `path`: a regular file of at most
/// [`MAX_PLUGIN_BYTES`].
fn read_plugin(path: &Path) -> Result<Vec<u8>, PluginError> {
    use std::io::Read;
    let unreadable = |source| PluginError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(unreadable(std::io::Error::other("not a regular file")));
    }
    if meta.len() > MAX_PLUGIN_BYTES {
        return Err(unreadable(std::io::Error::other(format!(
            "{} bytes, more than the {MAX_PLUGIN_BYTES} a plugin may have",
            meta.len()
        ))));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or_default());
    // The file may grow after the check: read no more than the cap.
    file.take(MAX_PLUGIN_BYTES)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    Ok(bytes)
}

/// The default cache directory: `$XDG_CACHE_HOME/weir` or `$HOME/.cache/weir`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|base| base.join("weir"))
}

fn check_preamble(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    let not_component = |reason: &str| PluginError::NotAComponent {
        path: path.to_owned(),
        reason: reason.to_string(),
    };
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(not_component(
            "not a WebAssembly file at all; build the plugin with `cargo build --target wasm32-wasip2` (or your language's Weir SDK)",
        ));
    }
    if bytes[4..8] == CORE_MODULE_VERSION {
        return Err(not_component(
            "it is a core WebAssembly module; build for the `wasm32-wasip2` target or wrap it with `wasm-tools component new`",
        ));
    }
    Ok(())
}

/// The artifact's file name: the content hash plus wasmtime's compatibility hash
/// (its version and engine settings), so an incompatible artifact is never picked.
fn artifact_name(engine: &Engine, content_hash: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{content_hash}-{:016x}.cwasm", hasher.finish())
}

/// Why `dir` must not hold artifacts, if it must not: it is not a directory,
/// or users other than its owner may write to it. A missing one is fine (it
/// is created private).
fn usable_cache_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "other users may write to it (mode {:o}), and artifacts are loaded as native code; run `chmod go-w {}` or choose another --cache-dir",
            meta.permissions().mode() & 0o777,
            dir.display()
        ));
    }
    Ok(())
}

/// The digest file written beside `artifact`.
fn digest_path(artifact: &Path) -> PathBuf {
    artifact.with_extension("cwasm.sha256")
}

/// The artifact's bytes, if they match the digest written with them.
fn read_checked(artifact: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(artifact).map_err(|e| e.to_string())?;
    let expected = std::fs::read_to_string(digest_path(artifact))
        .map_err(|e| format!("its digest cannot be read: {e}"))?;
    if hex(&Sha256::digest(&bytes)) != expected.trim() {
        return Err("its bytes do not match its digest (corrupted or altered)".into());
    }
    Ok(bytes)
}

fn store_artifact(component: &Component, artifact: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let dir = artifact.parent().unwrap_or(Path::new("."));
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)?;
    // Each file goes through a temporary file of its own (created exclusively,
    // with a random name) and is renamed into place, so that concurrent
    // writers never collide and a reader never sees half a file. The digest
    // goes first: an artifact without its digest is never loaded.
    let persist = |path: &Path, content: &[u8]| -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new().prefix(".weir-").tempfile_in(dir)?;
        tmp.write_all(content)?;
        tmp.persist(path).map(drop).map_err(|e| e.error)
    };
    persist(
        &digest_path(artifact),
        hex(&Sha256::digest(&bytes)).as_bytes(),
    )?;
    persist(artifact, &bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch cache directory and a minimal component file.
    fn scratch(name: &str) -> (PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(format!("weir-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let plugin = root.join("p.wasm");
        std::fs::write(&plugin, wat::parse_str("(component)").unwrap()).unwrap();
        (root.join("cache"), plugin)
    }

    #[test]
    fn the_cache_is_private_checked_and_survives_a_leftover_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let engine = Engine::default();
        let (cache, plugin) = scratch("private");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
        // What an earlier writer (same PID: every container's PID 1) left behind.
        std::fs::create_dir(cache.join(format!(".{}.tmp", std::process::id()))).unwrap();
        let first = load_component(&engine, &plugin, Some(&cache)).unwrap();
        assert!(!first.from_cache);
        let again = load_component(&engine, &plugin, Some(&cache)).unwrap();
        assert!(again.from_cache, "the artifact was cached");

        // An artifact whose bytes changed is not loaded.
        let artifact = cache.join(artifact_name(&engine, &again.content_hash));
        let mut bytes = std::fs::read(&artifact).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&artifact, bytes).unwrap();
        let altered = load_component(&engine, &plugin, Some(&cache)).unwrap();
        assert!(!altered.from_cache, "an altered artifact was loaded");

        // A new cache directory is private.
        let (fresh, plugin) = scratch("fresh");
        load_component(&engine, &plugin, Some(&fresh)).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_cache_others_may_write_to_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let engine = Engine::default();
        let (cache, plugin) = scratch("shared");
        std::fs::create_dir_all(&cache).unwrap();
        load_component(&engine, &plugin, Some(&cache)).unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        let loaded = load_component(&engine, &plugin, Some(&cache)).unwrap();
        assert!(
            !loaded.from_cache,
            "an artifact from a world-writable cache was loaded"
        );
        assert!(usable_cache_dir(&cache).unwrap_err().contains("chmod go-w"));
    }

    #[test]
    fn non_wasm_and_core_modules_are_refused_with_advice() {
        let p = Path::new("x.wasm");
        let err = check_preamble(p, b"hello world").unwrap_err().to_string();
        assert!(err.contains("not a WebAssembly file"), "{err}");
        let core = [0, b'a', b's', b'm', 1, 0, 0, 0];
        let err = check_preamble(p, &core).unwrap_err().to_string();
        assert!(err.contains("core WebAssembly module"), "{err}");
        let component = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        assert!(check_preamble(p, &component).is_ok());
    }
}
