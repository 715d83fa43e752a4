//! `weir new NAME --lang rust|python|js|c|go`: a ready-to-build plugin project with the
//! SDK wired in, an example processor, a test, a fixture for `weir test`, and a
//! README with the next commands.

use std::path::{Path, PathBuf};

/// Languages `weir new` scaffolds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Cargo crate using the `weir-sdk` crate.
    Rust,
    /// A Python module using `weir_sdk`.
    Python,
    /// A JavaScript ES module using `weir_sdk.js`.
    Js,
    /// C sources against the generated `plugin.h`.
    C,
    /// A Go main package using the Go SDK (`weir.dev/sdk`, copied in).
    Go,
}

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a crate or module name.
    #[error(
        "`{0}` does not end in a usable plugin name: use letters, digits and `_`, starting with a letter"
    )]
    BadName(String),
    /// The directory is already there.
    #[error("{0} already exists; choose another name or remove it")]
    Exists(PathBuf),
    /// The Rust SDK is not where this `weir` was built from.
    #[error("the Rust SDK is not at {0}; pass --sdk with the path of weir's sdk/rust")]
    NoRustSdk(PathBuf),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The Rust SDK next to the sources this binary was built from.
pub fn default_rust_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("sdk")
        .join("rust")
}

/// A sample input for `weir test`.
const FIXTURE: &str =
    "{\"key\": \"k1\", \"value\": \"hello\"}\n{\"key\": \"k2\", \"value\": \"world\"}\n";

/// Create the project at `dir` (as `cargo new` does: missing parent
/// directories are created, and the last component is the plugin's name);
/// returns its directory.
pub fn new_project(dir: &Path, lang: Lang, rust_sdk: &Path) -> Result<PathBuf, ScaffoldError> {
    let name = dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ScaffoldError::BadName(dir.display().to_string()));
    }
    let dir = dir.to_path_buf();
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let files = match lang {
        Lang::Rust => {
            let sdk = std::path::absolute(rust_sdk).map_err(|source| ScaffoldError::Io {
                path: rust_sdk.to_owned(),
                source,
            })?;
            if !sdk.join("Cargo.toml").is_file() {
                return Err(ScaffoldError::NoRustSdk(sdk));
            }
            rust_files(name, &sdk)
        }
        Lang::Python => python_files(name),
        Lang::Js => js_files(name),
        Lang::C => c_files(name),
        Lang::Go => go_files(name),
    };
    for (relative, text) in files {
        let path = dir.join(relative);
        let io = |source| ScaffoldError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("files are inside the project"))
            .map_err(io)?;
        std::fs::write(&path, text).map_err(io)?;
    }
    Ok(dir)
}

fn readme(name: &str, unit_tests: Option<&str>, build: &str) -> String {
    let unit_tests = unit_tests
        .map(|command| {
            format!("{command}                                  # unit tests, no WebAssembly\n")
        })
        .unwrap_or_default();
    format!(
        "# {name}\n\nA Weir plugin.\n\n```sh\n{unit_tests}weir build .                                    # the component: {build}\nweir test --plugin {build} --input records.jsonl   # run it over sample records\nweir run --brokers localhost:9092 --group {name} --topic in --output-topic out --plugin {build}\n```\n"
    )
}

fn rust_files(name: &str, sdk: &Path) -> Vec<(String, String)> {
    let wasm = format!("target/wasm32-wasip2/release/{name}.wasm");
    vec![
        (
            "Cargo.toml".into(),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\nweir-sdk = {{ path = {sdk:?} }}\n\n# A project of its own, even inside another workspace.\n[workspace]\n\n[profile.release]\nstrip = true\n"
            ),
        ),
        (
            "src/lib.rs".into(),
            format!(
                "//! {name}: a Weir plugin.\n\nuse weir_sdk::{{Config, Output, ProcessError, Processor, Record}};\n\n/// The processor: upper-cases each value. Replace with your logic.\npub struct Plugin;\n\nimpl Processor for Plugin {{\n    fn init(_config: &Config) -> Result<Self, String> {{\n        Ok(Plugin)\n    }}\n\n    fn process(&mut self, mut record: Record) -> Result<Vec<Output>, ProcessError> {{\n        if let Some(value) = record.value.as_mut() {{\n            value.make_ascii_uppercase();\n        }}\n        Ok(vec![record.into_output()])\n    }}\n}}\n\nweir_sdk::export!(Plugin);\n\n#[cfg(test)]\nmod tests {{\n    use super::*;\n\n    #[test]\n    fn uppercases() {{\n        let mut plugin = Plugin::init(&Config::default()).unwrap();\n        let record = Record {{\n            value: Some(b\"hi\".to_vec()),\n            ..Record::default()\n        }};\n        let out = plugin.process(record).unwrap();\n        assert_eq!(out[0].value.as_deref(), Some(&b\"HI\"[..]));\n    }}\n}}\n"
            ),
        ),
        ("records.jsonl".into(), FIXTURE.into()),
        ("README.md".into(), readme(name, Some("cargo test"), &wasm)),
        (".gitignore".into(), "target/\n".into()),
    ]
}

fn python_files(name: &str) -> Vec<(String, String)> {
    vec![
        (
            format!("{name}.py"),
            format!(
                "\"\"\"{name}: a Weir plugin.\"\"\"\n\nfrom weir_sdk import Output, ProcessError, Record\n\n\ndef init(config: dict[str, str]) -> None:\n    \"\"\"Read the plugin configuration; raise ValueError to refuse it.\"\"\"\n\n\ndef process(record: Record) -> Output | list[Output] | None:\n    \"\"\"Upper-case each value. Replace with your logic; return None to drop the record.\"\"\"\n    if record.value is None:\n        raise ProcessError(\"tombstones are not expected here\")\n    return record.to_output(value=record.value.upper())\n"
            ),
        ),
        (
            format!("test_{name}.py"),
            format!(
                "from {name} import process\nfrom weir_sdk import Record\n\n\ndef test_uppercases():\n    assert process(Record(value=b\"hi\")).value == b\"HI\"\n"
            ),
        ),
        (
            "weir_sdk/__init__.py".into(),
            include_str!("../../../sdk/python/weir_sdk/__init__.py").into(),
        ),
        (
            "weir_sdk/_host.py".into(),
            include_str!("../../../sdk/python/weir_sdk/_host.py").into(),
        ),
        ("records.jsonl".into(), FIXTURE.into()),
        (
            "README.md".into(),
            readme(name, Some("python3 -m pytest"), &format!("{name}.wasm")),
        ),
        (".gitignore".into(), "*.wasm\n__pycache__/\n".into()),
    ]
}

fn js_files(name: &str) -> Vec<(String, String)> {
    vec![
        (
            format!("{name}.js"),
            format!(
                "// {name}: a Weir plugin.\nimport {{ definePlugin, ProcessError }} from \"./weir_sdk.js\";\n\nexport const processor = definePlugin({{\n  init(config) {{\n    // Read the plugin configuration; throw to refuse it.\n  }},\n  // Upper-case each value. Replace with your logic; return null to drop the record.\n  process(record) {{\n    if (record.value === undefined) throw new ProcessError(\"tombstones are not expected here\");\n    return record.toOutput({{ value: record.text().toUpperCase() }});\n  }},\n}});\n"
            ),
        ),
        (
            format!("{name}.test.js"),
            format!(
                "import {{ test }} from \"node:test\";\nimport assert from \"node:assert/strict\";\nimport {{ processor }} from \"./{name}.js\";\n\nconst bytes = (s) => new TextEncoder().encode(s);\n\ntest(\"uppercases\", () => {{\n  const [out] = processor.process([{{ topic: \"t\", partition: 0, offset: 0n, key: undefined, value: bytes(\"hi\"), headers: [] }}]);\n  assert.deepEqual(out.val[0].value, bytes(\"HI\"));\n}});\n"
            ),
        ),
        (
            "weir_sdk.js".into(),
            include_str!("../../../sdk/js/weir_sdk.js").into(),
        ),
        (
            "weir_sdk.d.ts".into(),
            include_str!("../../../sdk/js/weir_sdk.d.ts").into(),
        ),
        ("package.json".into(), format!("{{ \"name\": \"{name}\", \"type\": \"module\", \"private\": true }}\n")),
        ("records.jsonl".into(), FIXTURE.into()),
        (
            "README.md".into(),
            readme(name, Some("node --test"), &format!("{name}.wasm")),
        ),
        (".gitignore".into(), "*.wasm\n".into()),
    ]
}

fn c_files(name: &str) -> Vec<(String, String)> {
    vec![
        (
            format!("{name}.c"),
            include_str!("../../../plugins/c/uppercase/uppercase.c").replace(
                "// Example plugin in C: upper-cases",
                &format!("// {name}: a Weir plugin. Replace with your logic. Upper-cases"),
            ),
        ),
        ("records.jsonl".into(), FIXTURE.into()),
        (
            "README.md".into(),
            readme(name, None, &format!("{name}.wasm")),
        ),
        (".gitignore".into(), "*.wasm\n".into()),
    ]
}

fn go_files(name: &str) -> Vec<(String, String)> {
    use crate::plugin_build::go::{GO_SDK, SDK_MODULE};
    let mut files = vec![
        (
            "go.mod".into(),
            format!(
                "module {name}\n\ngo 1.24\n\nrequire {SDK_MODULE} v0.0.0\n\n// The SDK copy next to the plugin, for go test; weir build uses the one\n// that matches the weir doing the build.\nreplace {SDK_MODULE} => ./weir_sdk\n"
            ),
        ),
        (
            format!("{name}.go"),
            format!(
                "// Command {name} is a Weir plugin: build it with weir build.\npackage main\n\nimport (\n\t\"bytes\"\n\n\tweir \"{SDK_MODULE}\"\n)\n\nfunc init() {{\n\tweir.Register(setup, process)\n}}\n\n// setup reads the plugin configuration; an error refuses it.\nfunc setup(config weir.Config) error {{\n\treturn nil\n}}\n\n// process upper-cases each value. Replace with your logic; return no outputs\n// to drop the record, an error to fail it.\nfunc process(record weir.Record) ([]weir.Output, error) {{\n\tif record.Value == nil {{\n\t\treturn nil, weir.Fail(\"tombstones are not expected here\")\n\t}}\n\treturn []weir.Output{{record.ToOutput().WithValue(bytes.ToUpper(record.Value))}}, nil\n}}\n\n// main is not called: the plugin is a library the host calls into.\nfunc main() {{}}\n"
            ),
        ),
        (
            format!("{name}_test.go"),
            format!(
                "package main\n\nimport (\n\t\"testing\"\n\n\tweir \"{SDK_MODULE}\"\n)\n\nfunc TestUppercases(t *testing.T) {{\n\tout, err := process(weir.Record{{Value: []byte(\"hi\")}})\n\tif err != nil || len(out) != 1 || string(out[0].Value) != \"HI\" {{\n\t\tt.Fatalf(\"got %v, %v\", out, err)\n\t}}\n}}\n"
            ),
        ),
        ("records.jsonl".into(), FIXTURE.into()),
        (
            "README.md".into(),
            readme(name, Some("go test ./..."), &format!("{name}.wasm")),
        ),
        (".gitignore".into(), "*.wasm\n".into()),
    ];
    files.extend(
        GO_SDK
            .iter()
            .map(|(file, text)| (format!("weir_sdk/{file}"), text.to_string())),
    );
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_identifiers_and_projects_new() {
        let parent = std::env::temp_dir().join(format!("weir-new-{}", std::process::id()));
        std::fs::create_dir_all(&parent).unwrap();
        for bad in ["my-plugin", "nested/9lives", "..", ""] {
            assert!(
                matches!(
                    new_project(&parent.join(bad), Lang::Python, Path::new(".")),
                    Err(ScaffoldError::BadName(_))
                ),
                "{bad:?}"
            );
        }
        let dir = new_project(&parent.join("shout"), Lang::Python, Path::new(".")).unwrap();
        assert!(dir.join("shout.py").is_file() && dir.join("weir_sdk/__init__.py").is_file());
        assert!(matches!(
            new_project(&parent.join("shout"), Lang::Python, Path::new(".")),
            Err(ScaffoldError::Exists(_))
        ));
        let nested = new_project(&parent.join("a/b/deep"), Lang::Js, Path::new(".")).unwrap();
        assert!(nested.join("deep.js").is_file(), "parents are created");
        assert!(matches!(
            new_project(&parent.join("rusty"), Lang::Rust, &parent),
            Err(ScaffoldError::NoRustSdk(_))
        ));
        std::fs::remove_dir_all(parent).unwrap();
    }
}
