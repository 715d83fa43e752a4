//! The example plugins' components: the Rust ones built for `wasm32-wasip2` with
//! cargo, the Python, JavaScript and C ones with `weir build`, each on first use,
//! under the workspace root's `target/test-plugins`.

use crate::process::weir_bin;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (this crate lives at `tests/support`, two levels below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Path of an example plugin's component, building all example plugins for
/// `wasm32-wasip2` on first use (in their own target dir, so this does not wait
/// on the lock of the cargo that runs the tests).
pub fn example_plugin(crate_name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target_dir = workspace_root().join("target").join("test-plugins");
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2"])
            .args(["-p", "uppercase", "-p", "json-filter", "-p", "slow", "-p", "poison"])
            .args(["-p", "enrich", "-p", "noop", "-p", "dedupe", "-p", "count-by-key"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .status()
            .expect("running cargo to build the example plugins");
        assert!(status.success(), "building the example plugins failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`)");
        target_dir.join("wasm32-wasip2").join("plugin")
    });
    dir.join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// Path of a Python example plugin's component (`plugins/python/NAME`), built
/// with `weir build` on first use.
pub fn python_plugin(name: &str) -> PathBuf {
    source_plugin("python", name)
}

/// Path of a JavaScript example plugin's component (`plugins/js/NAME`), built
/// with `weir build` on first use.
pub fn js_plugin(name: &str) -> PathBuf {
    source_plugin("js", name)
}

/// Path of a C example plugin's component (`plugins/c/NAME`), built with `weir
/// build` on first use.
pub fn c_plugin(name: &str) -> PathBuf {
    source_plugin("c", name)
}

/// Path of a Go example plugin's component (`plugins/go/NAME`), built with
/// `weir build` on first use.
pub fn go_plugin(name: &str) -> PathBuf {
    source_plugin("go", name)
}

fn source_plugin(language: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let out_dir = workspace_root()
        .join("target")
        .join("test-plugins")
        .join(language);
    let out = out_dir.join(format!("{name}.wasm"));
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.contains(&out) {
        std::fs::create_dir_all(&out_dir).unwrap();
        let status = Command::new(weir_bin())
            .arg("build")
            .arg(workspace_root().join("plugins").join(language).join(name))
            .arg("-o")
            .arg(&out)
            .status()
            .expect("running weir build");
        assert!(status.success(), "building the {language} plugin {name} failed (is its toolchain installed? scripts/setup installs it)");
        built.push(out.clone());
    }
    out
}
