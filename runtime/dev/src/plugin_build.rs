//! `weir build [DIR]`: turn a plugin project into a WebAssembly component with
//! its language's toolchain, saying what runs and, when a toolchain is missing,
//! how to install it.
//!
//! - **Rust** (a `Cargo.toml`): `cargo build --release --target wasm32-wasip2`.
//! - **Python** (one module `NAME.py` beside its tests): `componentize-py` with
//!   Weir's WIT contract and Python SDK, both built into this binary, so the
//!   project needs nothing but its own module.
//! - **JavaScript** (one ES module `NAME.js` importing `./weir_sdk.js`):
//!   `componentize-js` (StarlingMonkey), again with the WIT and SDK from this binary.
//! - **C** (`*.c` files including `plugin.h`): the bindings are generated and the
//!   core module turned into a component in-process (wit-bindgen, wit-component,
//!   the WASI preview 1 reactor adapter); only `clang` with a WASI sysroot is
//!   needed (Debian: clang, lld, wasi-libc, libclang-rt-dev-wasm32).
//! - **Go** (a `go.mod`): the standard Go compiler for `GOOS=wasip1`, then the
//!   same in-process componentization as C (see [`go`]).

use std::path::{Path, PathBuf};
use std::process::Command;

mod core_imports;
pub mod go;

/// The WIT contract, for toolchains that generate bindings from it: the
/// `plugin` world, the `plugin-http` world and the WASI 0.2.12 WIT it imports.
const WIT_FILES: &[(&str, &str)] = &[
    ("processor.wit", include_str!("../../../wit/processor.wit")),
    (
        "plugin-http.wit",
        include_str!("../../../wit/plugin-http.wit"),
    ),
    (
        "deps/cli/cli.wit",
        include_str!("../../../wit/deps/cli/cli.wit"),
    ),
    (
        "deps/clocks/clocks.wit",
        include_str!("../../../wit/deps/clocks/clocks.wit"),
    ),
    (
        "deps/filesystem/filesystem.wit",
        include_str!("../../../wit/deps/filesystem/filesystem.wit"),
    ),
    (
        "deps/http/http.wit",
        include_str!("../../../wit/deps/http/http.wit"),
    ),
    (
        "deps/io/io.wit",
        include_str!("../../../wit/deps/io/io.wit"),
    ),
    (
        "deps/random/random.wit",
        include_str!("../../../wit/deps/random/random.wit"),
    ),
    (
        "deps/sockets/sockets.wit",
        include_str!("../../../wit/deps/sockets/sockets.wit"),
    ),
];
/// The Python SDK's files, written next to a Python plugin when it is built.
const PYTHON_SDK: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../../sdk/python/weir_sdk/__init__.py"),
    ),
    (
        "_host.py",
        include_str!("../../../sdk/python/weir_sdk/_host.py"),
    ),
    (
        "entry.py",
        include_str!("../../../sdk/python/weir_sdk/entry.py"),
    ),
    (
        "http.py",
        include_str!("../../../sdk/python/weir_sdk/http.py"),
    ),
];

/// The JavaScript SDK, written next to a JavaScript plugin when it is built.
const JS_SDK: &str = include_str!("../../../sdk/js/weir_sdk.js");

/// Why a plugin could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The directory holds no project Weir knows how to build.
    #[error("{dir}: no plugin project found (expected a Cargo.toml for Rust, a go.mod for Go, one Python module NAME.py, one JavaScript module NAME.js, or C files); create one with `weir new`")]
    UnknownProject {
        /// The directory.
        dir: PathBuf,
    },
    /// A toolchain is not installed.
    #[error("`{tool}` is not installed or not on PATH; install it with: {install}")]
    MissingTool {
        /// The program.
        tool: &'static str,
        /// How to install it.
        install: &'static str,
    },
    /// The toolchain ran and failed.
    #[error("`{command}` failed ({status}); its output is above")]
    Failed {
        /// What was run.
        command: String,
        /// How it ended.
        status: std::process::ExitStatus,
    },
    /// The build finished but its component was not found.
    #[error("the build finished but produced no .wasm component: {0}")]
    NoComponent(String),
    /// Files could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A language Weir builds plugins in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Project {
    /// A Cargo package.
    Rust,
    /// A Python module.
    Python {
        /// The module's name (file stem).
        module: String,
    },
    /// A JavaScript ES module.
    JavaScript {
        /// The module's name (file stem).
        module: String,
    },
    /// C sources.
    C {
        /// The name of the component (the directory's name).
        name: String,
    },
    /// A Go main package (a `go.mod`).
    Go {
        /// The name of the component (the directory's name).
        name: String,
    },
}

/// What kind of plugin project `dir` is.
pub fn detect(dir: &Path) -> Result<Project, BuildError> {
    if dir.join("Cargo.toml").is_file() {
        return Ok(Project::Rust);
    }
    if dir.join("go.mod").is_file() {
        return Ok(Project::Go {
            name: dir_name(dir),
        });
    }
    let io = |source| BuildError::Io {
        path: dir.to_owned(),
        source,
    };
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let modules = |suffix: &str, helper: &dyn Fn(&str) -> bool| -> Vec<String> {
        let mut found: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_suffix(suffix))
            .filter(|m| !helper(m))
            .map(str::to_string)
            .collect();
        found.sort();
        found
    };
    let python = modules(".py", &|m| {
        m.starts_with("test_") || m == "conftest" || m == "setup"
    });
    let js = modules(".js", &|m| m.ends_with(".test") || m == "weir_sdk");
    let c = modules(".c", &|m| m == "plugin");
    match (python.as_slice(), js.as_slice(), c.is_empty()) {
        ([module], [], true) => Ok(Project::Python {
            module: module.clone(),
        }),
        ([], [module], true) => Ok(Project::JavaScript {
            module: module.clone(),
        }),
        ([], [], false) => Ok(Project::C {
            name: dir_name(dir),
        }),
        _ => Err(BuildError::UnknownProject {
            dir: dir.to_owned(),
        }),
    }
}

/// The name of the directory `dir` (which may be `.`), for its component.
fn dir_name(dir: &Path) -> String {
    std::path::absolute(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "plugin".into())
}

/// Build the plugin project in `dir`; the component goes to `output` (default:
/// `DIR/NAME.wasm` for Python, cargo's target directory for Rust). Returns its path.
pub fn build(dir: &Path, output: Option<&Path>) -> Result<PathBuf, BuildError> {
    match detect(dir)? {
        Project::Rust => build_rust(dir, output),
        Project::Python { module } => build_python(dir, &module, output),
        Project::JavaScript { module } => build_js(dir, &module, output),
        Project::C { name } => build_c(dir, &name, output),
        Project::Go { name } => go::build_go(dir, &name, output),
    }
}

fn build_rust(dir: &Path, output: Option<&Path>) -> Result<PathBuf, BuildError> {
    let mut cargo = Command::new("cargo");
    cargo
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .stderr(std::process::Stdio::inherit());
    tracing::info!(dir = %dir.display(), "building a Rust plugin: cargo build --release --target wasm32-wasip2");
    let out = run(
        &mut cargo,
        "cargo",
        "https://rustup.rs, then `rustup target add wasm32-wasip2`",
        true,
    )?;
    // The last artifact with a .wasm file is the plugin (dependencies come first).
    let built = String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| {
            BuildError::NoComponent("is the crate a `cdylib` (crate-type = [\"cdylib\"])?".into())
        })?;
    match output {
        Some(target) => {
            std::fs::copy(&built, target).map_err(|source| BuildError::Io {
                path: target.to_owned(),
                source,
            })?;
            Ok(target.to_owned())
        }
        None => Ok(built),
    }
}

fn build_python(dir: &Path, module: &str, output: Option<&Path>) -> Result<PathBuf, BuildError> {
    let output = component_path(dir, module, output);
    // Weir's WIT and Python SDK, plus a note of which module is the plugin.
    let support = support_dir()?;
    for (name, text) in PYTHON_SDK {
        write(support.join("weir_sdk").join(name), text)?;
    }
    write(
        support.join("weir_plugin_module.py"),
        &format!("NAME = {module:?}\n"),
    )?;
    let mut componentize = Command::new("componentize-py");
    componentize
        .arg("-d")
        .arg(support.join("wit"))
        // With outbound HTTP, so that `weir_sdk.http` has its bindings.
        .args(["-w", "plugin-http", "componentize", "weir_sdk.entry"])
        // The SDK that matches this weir first, before any copy in the project.
        .arg("-p")
        .arg(&support)
        .arg("-p")
        .arg(dir)
        .arg("-o")
        .arg(&output);
    tracing::info!(module, dir = %dir.display(), output = %output.display(),
        "building a Python plugin with componentize-py (about 10-20 s)");
    let result = run(
        &mut componentize,
        "componentize-py",
        "pip install componentize-py==0.25.1",
        false,
    );
    let _ = std::fs::remove_dir_all(&support);
    result?;
    Ok(output)
}

fn build_js(dir: &Path, module: &str, output: Option<&Path>) -> Result<PathBuf, BuildError> {
    let output = component_path(dir, module, output);
    // The project's modules next to the SDK that matches this weir.
    let support = support_dir()?;
    let entries = std::fs::read_dir(dir).map_err(|source| BuildError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "js") {
            std::fs::copy(&path, support.join(entry.file_name()))
                .map_err(|source| BuildError::Io { path, source })?;
        }
    }
    // The SDK imports the host's `state` interface only inside a component
    // (under plain node the import cannot load): it carries the import
    // commented out, and the build enables it.
    write(support.join("weir_sdk.js"), &component_js_sdk())?;
    let output_abs = std::path::absolute(&output).map_err(|source| BuildError::Io {
        path: output.clone(),
        source,
    })?;
    let mut componentize = Command::new("componentize-js");
    componentize
        .arg("--wit")
        .arg(support.join("wit"))
        // With the `http` feature: `fetch` over wasi:http (the host allows only
        // the hosts the operator lists); no fetch-event (incoming) handler.
        .args(["--world-name", "plugin", "-d", "fetch-event", "-o"])
        .arg(&output_abs)
        .arg(support.join(format!("{module}.js")));
    tracing::info!(module, dir = %dir.display(), output = %output.display(),
        "building a JavaScript plugin with componentize-js (about 10-20 s)");
    let result = run(
        &mut componentize,
        "componentize-js",
        "npm install -g @bytecodealliance/componentize-js@0.23",
        false,
    );
    let _ = std::fs::remove_dir_all(&support);
    result?;
    Ok(output)
}

fn build_c(dir: &Path, name: &str, output: Option<&Path>) -> Result<PathBuf, BuildError> {
    let output = component_path(dir, name, output);
    let support = support_dir()?;
    // 1. C bindings for the plugin world: plugin.h, plugin.c, plugin_component_type.o.
    let bindings = support.join("bindings");
    c_bindings(&support.join("wit"), &bindings)?;
    // 2. The core module: the project's sources plus the bindings, as a WASI reactor.
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| BuildError::Io {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    let core = support.join("core.wasm");
    let mut clang = Command::new(clang_program());
    clang
        .args([
            "--target=wasm32-wasi",
            "-mexec-model=reactor",
            "-O2",
            "-Wall",
        ])
        .arg("-I")
        .arg(&bindings)
        .args(&sources)
        .arg(bindings.join("plugin.c"))
        .arg(bindings.join("plugin_component_type.o"))
        .arg("-o")
        .arg(&core);
    tracing::info!(name, dir = %dir.display(), output = %output.display(), "building a C plugin with clang");
    let compiled = run(
        &mut clang,
        "clang",
        "apt-get install clang lld wasi-libc libclang-rt-19-dev-wasm32 (Debian 12: clang-19 lld-19)",
        false,
    );
    if let Err(e) = compiled {
        let _ = std::fs::remove_dir_all(&support);
        return Err(e);
    }
    // 3. The component: the core module with the WASI preview 1 adapter.
    let module = std::fs::read(&core).map_err(|source| BuildError::Io {
        path: core.clone(),
        source,
    })?;
    let _ = std::fs::remove_dir_all(&support);
    let component = componentize_reactor(&module)?;
    std::fs::write(&output, component).map_err(|source| BuildError::Io {
        path: output.clone(),
        source,
    })?;
    Ok(output)
}

/// A failure of the in-process toolchain during `what`.
fn toolchain_failed(what: &str, e: anyhow::Error) -> BuildError {
    BuildError::NoComponent(format!("{what}: {e:#}"))
}

/// The contract in the WIT directory `wit`, and its `plugin` world.
fn plugin_world(
    wit: &Path,
) -> Result<
    (
        wit_bindgen_core::wit_parser::Resolve,
        wit_bindgen_core::wit_parser::WorldId,
    ),
    BuildError,
> {
    let mut resolve = wit_bindgen_core::wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(wit)
        .map_err(|e| toolchain_failed("reading the WIT contract", e))?;
    let world = resolve
        .select_world(&[package], Some("plugin"))
        .map_err(|e| toolchain_failed("selecting the plugin world", e))?;
    Ok((resolve, world))
}

/// Generate the C bindings of the plugin world in `wit` into `bindings`.
fn c_bindings(wit: &Path, bindings: &Path) -> Result<(), BuildError> {
    let (mut resolve, world) = plugin_world(wit)?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .map_err(|e| toolchain_failed("generating C bindings", e))?;
    for (file, contents) in files.iter() {
        let path = bindings.join(file);
        std::fs::create_dir_all(bindings).map_err(|source| BuildError::Io {
            path: bindings.to_owned(),
            source,
        })?;
        std::fs::write(&path, contents).map_err(|source| BuildError::Io { path, source })?;
    }
    Ok(())
}

/// A core WASI reactor module as a component, with the preview 1 adapter.
fn componentize_reactor(module: &[u8]) -> Result<Vec<u8>, BuildError> {
    use wasi_preview1_component_adapter_provider as adapter;
    wit_component::ComponentEncoder::default()
        .module(module)
        .and_then(|encoder| {
            encoder.validate(true).adapter(
                adapter::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                adapter::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .and_then(|encoder| encoder.encode())
        .map_err(|e| toolchain_failed("making the component", e))
}

/// `clang`, or Debian's versioned `clang-19` when no plain `clang` is installed.
fn clang_program() -> &'static str {
    let found = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(name).is_file()))
    };
    if found("clang") || !found("clang-19") {
        "clang"
    } else {
        "clang-19"
    }
}

/// Where a component goes: `output` if given, else `DIR/NAME.wasm`.
fn component_path(dir: &Path, name: &str, output: Option<&Path>) -> PathBuf {
    output
        .map(Path::to_owned)
        .unwrap_or_else(|| dir.join(format!("{name}.wasm")))
}

/// A fresh build directory holding Weir's WIT contract.
fn support_dir() -> Result<PathBuf, BuildError> {
    let support = std::env::temp_dir().join(format!("weir-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&support);
    for (path, text) in WIT_FILES {
        write(support.join("wit").join(path), text)?;
    }
    Ok(support)
}

/// Write `text` to `path`, creating its directory.
fn write(path: PathBuf, text: &str) -> Result<(), BuildError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| BuildError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    std::fs::write(&path, text).map_err(|source| BuildError::Io { path, source })
}

/// Run `command`; its stderr goes to ours. Returns stdout if `capture`.
fn run(
    command: &mut Command,
    tool: &'static str,
    install: &'static str,
    capture: bool,
) -> Result<Vec<u8>, BuildError> {
    if !capture {
        command.stdout(std::process::Stdio::inherit());
    }
    let shown = format!("{command:?}");
    let out = command.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => BuildError::MissingTool { tool, install },
        _ => BuildError::Io {
            path: PathBuf::from(tool),
            source: e,
        },
    })?;
    if !out.status.success() {
        return Err(BuildError::Failed {
            command: shown,
            status: out.status,
        });
    }
    Ok(out.stdout)
}

/// The JavaScript SDK as a component runs it: with its host imports enabled.
fn component_js_sdk() -> String {
    JS_SDK.replace("//weir-build: ", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_js_sdk_imports_the_state_interface_inside_a_component() {
        let import = "import * as stateHost from \"weir:processor/state@0.1.1\";";
        assert!(JS_SDK.contains(&format!("//weir-build: {import}")));
        assert!(component_js_sdk().lines().any(|line| line.trim() == import));
    }

    #[test]
    fn projects_are_recognised_by_their_files() {
        let dir = std::env::temp_dir().join(format!("weir-detect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            detect(&dir),
            Err(BuildError::UnknownProject { .. })
        ));
        std::fs::write(dir.join("enrich.py"), "").unwrap();
        std::fs::write(dir.join("test_enrich.py"), "").unwrap();
        assert_eq!(
            detect(&dir).unwrap(),
            Project::Python {
                module: "enrich".into()
            }
        );
        std::fs::write(dir.join("shout.js"), "").unwrap();
        assert!(
            matches!(detect(&dir), Err(BuildError::UnknownProject { .. })),
            "two languages at once"
        );
        std::fs::remove_file(dir.join("enrich.py")).unwrap();
        std::fs::remove_file(dir.join("test_enrich.py")).unwrap();
        std::fs::write(dir.join("weir_sdk.js"), "").unwrap();
        assert_eq!(
            detect(&dir).unwrap(),
            Project::JavaScript {
                module: "shout".into()
            }
        );
        std::fs::write(dir.join("Cargo.toml"), "").unwrap();
        assert_eq!(detect(&dir).unwrap(), Project::Rust);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_toolchain_says_how_to_install_it() {
        let err = run(
            &mut Command::new("weir-no-such-tool"),
            "weir-no-such-tool",
            "pip install it",
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("pip install it"), "{err}");
    }
}
