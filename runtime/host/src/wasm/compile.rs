//! Loading a plugin file into a compiled component, through an on-disk cache of
//! compiled artifacts so that restarts skip compilation (seconds for large
//! Python or JavaScript components; milliseconds from the cache).

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
    let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
        path: path.to_owned(),
        source,
    })?;
    check_preamble(path, &bytes)?;
    let content_hash = hex(&Sha256::digest(&bytes));
    let cached = cache_dir.map(|dir| dir.join(artifact_name(engine, &content_hash)));

    if let Some(artifact) = cached.as_deref().filter(|p| p.exists()) {
        // SAFETY: the artifact was written by `Component::serialize` of this same
        // wasmtime version and engine configuration (both are part of its file
        // name); wasmtime additionally checks the header before using it.
        match unsafe { Component::deserialize_file(engine, artifact) } {
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

fn store_artifact(component: &Component, artifact: &Path) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let dir = artifact.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, artifact)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
