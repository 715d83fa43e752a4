//! `weir test` and `weir build` without Kafka: a plugin over a JSON-lines file of
//! records, in Rust and Python, and how failures and bad input are reported.

use base64::Engine as _;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use weir_test_support::*;

/// Run `weir test` on `plugin` with `input`; returns the exit code and the result lines.
fn weir_test(plugin: &Path, input: &str, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["test", "--plugin"])
        .arg(plugin)
        .arg("--input")
        .arg(workspace_root().join("tests").join("fixtures").join(input))
        .args(extra)
        .env(
            "WEIR_CACHE_DIR",
            workspace_root().join("target").join("test-cache"),
        )
        .env("NO_COLOR", "1")
        .output()
        .expect("running weir test");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (
        out.status.code().unwrap(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn uppercase_in_every_language_gives_the_same_results_for_a_fixture_file() {
    let (code, rust, log) = weir_test(&example_plugin("uppercase"), "records.jsonl", &[]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(rust.len(), 4);
    let first = &rust[0]["outputs"][0];
    assert_eq!(first["value"], "HELLO, WöRLD");
    assert_eq!(first["key"], "k1");
    assert_eq!(first["headers"][0], serde_json::json!(["trace", "abc"]));
    // Non-UTF-8 bytes come back as base64, upper-cased where ASCII.
    assert_eq!(
        rust[2]["outputs"][0]["value"],
        serde_json::json!({"base64": "/wBBQg=="})
    );
    assert_eq!(rust[3]["offset"], 99);
    assert!(
        rust[3]["outputs"][0]["value"].is_null(),
        "a tombstone stays one"
    );

    for (language, plugin) in [
        ("Python", python_plugin("uppercase")),
        ("JavaScript", js_plugin("uppercase")),
        ("C", c_plugin("uppercase")),
        ("Go", go_plugin("uppercase")),
    ] {
        let (code, results, log) = weir_test(&plugin, "records.jsonl", &[]);
        assert_eq!(code, 0, "{language}: {log}");
        assert_eq!(
            results, rust,
            "the {language} plugin differs from the Rust one"
        );
    }
}

#[test]
fn failed_records_are_reported_and_the_exit_status_says_so() {
    let (code, lines, log) = weir_test(&example_plugin("poison"), "poison.jsonl", &[]);
    assert_eq!(code, 1, "{log}");
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["error"]["kind"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(kinds, ["ok", "error", "trap", "ok"]);
    assert!(lines[2]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
    assert!(
        log.contains("poison: panic on offset 2"),
        "guest stderr in the log: {log}"
    );
}

/// `weir test` runs an HTTP plugin against a local service with the same
/// allow-list flag as `weir run`; without it every request is denied.
#[test]
fn an_http_plugin_runs_locally_with_the_allow_list_flag() {
    let dir = workspace_root().join("target").join("test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.jsonl", unique("lookups")));
    std::fs::write(
        &file,
        "{\"key\": \"lookup/a\", \"value\": \"x\"}\n{\"key\": \"lookup/b\", \"value\": \"y\"}\n",
    )
    .unwrap();
    let service = LookupService::start();
    let base = format!("base_url={}", service.origin());
    let plugin = example_plugin("enrich");
    let input = file.to_str().unwrap();
    let origin = service.origin();
    let (code, lines, log) = weir_test(
        &plugin,
        input,
        &["--plugin-config", &base, "--allowed-outbound-host", &origin],
    );
    assert_eq!(code, 0, "{log}");
    let values: Vec<&str> = lines
        .iter()
        .map(|l| l["outputs"][0]["value"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(values, ["x|found-a", "y|found-b"], "{lines:?}");
    let (code, lines, log) = weir_test(&plugin, input, &["--plugin-config", &base]);
    assert_eq!(code, 1, "{log}");
    assert!(lines.iter().all(|l| l["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("denied")));
    assert_eq!(
        service.total(),
        2,
        "only the granted run reached the service"
    );
}

/// An internal `https` service, its certificate from the operator's own CA:
/// reached with `--http-ca-file`, refused (certificate not trusted) without.
#[test]
fn an_internal_https_service_needs_the_operator_ca_file() {
    let dir = workspace_root().join("target").join("test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.jsonl", unique("tls-lookups")));
    std::fs::write(&file, "{\"key\": \"lookup/a\", \"value\": \"x\"}\n").unwrap();
    let ca = dir.join(format!("{}.pem", unique("ca")));
    let service = LookupService::start_tls(&ca);
    let origin = service.tls_origin();
    let base = format!("base_url={origin}");
    let plugin = example_plugin("enrich");
    let input = file.to_str().unwrap();
    let ca_file = ca.to_str().unwrap();
    let granted = ["--plugin-config", &base, "--allowed-outbound-host", &origin];
    let (code, lines, log) = weir_test(
        &plugin,
        input,
        &[&granted[..], &["--http-ca-file", ca_file]].concat(),
    );
    assert_eq!(code, 0, "{log}");
    assert_eq!(lines[0]["outputs"][0]["value"], "x|found-a", "{lines:?}");
    let (code, lines, log) = weir_test(&plugin, input, &granted);
    assert_eq!(code, 1, "{log}");
    let message = lines[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("certificate is not trusted"), "{message}");
    assert_eq!(lines[0]["error"]["attempts"], 1, "not retried: {lines:?}");
}

/// A token kept out of the config (`${file:..}`) reaches the service in the
/// plugin's `authorization` header and never the log; with the header in the
/// operator's forbidden list, the request is refused in the plugin, never
/// sent, and the record fails without retries.
#[test]
fn a_secret_token_reaches_the_service_unless_its_header_is_forbidden() {
    let dir = workspace_root().join("target").join("test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.jsonl", unique("whoami")));
    std::fs::write(&file, "{\"key\": \"whoami/a\", \"value\": \"x\"}\n").unwrap();
    let token_file = dir.join(format!("{}.token", unique("token")));
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let service = LookupService::start();
    let origin = service.origin();
    let base = format!("base_url={origin}");
    let token = format!("token=${{file:{}}}", token_file.display());
    let plugin = example_plugin("enrich");
    let input = file.to_str().unwrap();
    let granted = [
        "--plugin-config",
        &base,
        "--plugin-config",
        &token,
        "--allowed-outbound-host",
        &origin,
    ];
    let (code, lines, log) = weir_test(&plugin, input, &granted);
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        lines[0]["outputs"][0]["value"], "x|Bearer s3cret-token",
        "{lines:?}"
    );
    assert!(!log.contains("s3cret"), "the token was logged:\n{log}");
    let forbidden = [&granted[..], &["--http-forbidden-header", "Authorization"]].concat();
    let (code, lines, log) = weir_test(&plugin, input, &forbidden);
    assert_eq!(code, 1, "{log}");
    let message = lines[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("forbids the header `authorization`"),
        "{message}"
    );
    assert_eq!(lines[0]["error"]["attempts"], 1, "not retried: {lines:?}");
    assert_eq!(service.total(), 1, "the refused request was never sent");
    let (code, _, log) = weir_test(&plugin, input, &["--http-forbidden-header", "bad header"]);
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("not an HTTP header name"), "{log}");
}

/// `weir test --schema-registry`: Avro records written by confluent-kafka-
/// python's `AvroSerializer` reach the plugin as JSON, through a registry that
/// requires basic auth (credentials in the URL); without them, each record
/// fails with the registry's refusal instead of the run hanging.
#[test]
fn weir_test_decodes_records_through_an_authenticated_schema_registry() {
    let registry = SchemaRegistry::start_with_user("weir:s3cret");
    let orders: Vec<Value> = std::fs::read_to_string(schema_fixture("orders.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let values = registry.serialize(
        &SchemaFormat::Avro,
        "orders",
        &schema_fixture("order.avsc"),
        &orders,
    );
    let dir = workspace_root().join("target").join("test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.jsonl", unique("avro-orders")));
    let lines: String = values
        .iter()
        .map(|v| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(v);
            format!("{{\"value\": {{\"base64\": \"{encoded}\"}}}}\n")
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let input = file.to_str().unwrap();
    let plugin = example_plugin("noop");
    let with_user = registry.url().replace("http://", "http://weir:s3cret@");
    let (code, lines, log) = weir_test(&plugin, input, &["--schema-registry", &with_user]);
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("s3cret"), "credentials logged:\n{log}");
    for (line, order) in lines.iter().zip(&orders) {
        let value = line["outputs"][0]["value"].as_str().unwrap();
        assert_eq!(&serde_json::from_str::<Value>(value).unwrap(), order);
    }
    let (code, lines, log) = weir_test(&plugin, input, &["--schema-registry", registry.url()]);
    assert_eq!(code, 1, "{log}");
    let message = lines[0]["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(lines[0]["error"]["kind"], "schema", "{lines:?}");
    assert!(message.contains("401"), "{message}");
}

#[test]
fn a_bad_input_line_is_named() {
    let dir = workspace_root().join("target").join("test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.jsonl", unique("bad")));
    std::fs::write(&file, "{\"value\": \"fine\"}\n{\"value\": 42}\n").unwrap();
    let (code, _, log) = weir_test(&example_plugin("uppercase"), file.to_str().unwrap(), &[]);
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("line 2"), "{log}");
}

/// Run `weir` with `args` in `dir`; returns stdout, failing on a non-zero exit.
fn weir_ok(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(dir)
        .args(args)
        .env(
            "WEIR_CACHE_DIR",
            workspace_root().join("target").join("test-cache"),
        )
        .env("NO_COLOR", "1")
        .output()
        .expect("running weir");
    assert!(
        out.status.success(),
        "weir {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn new_projects_build_and_pass_weir_test_in_each_language() {
    let parent = workspace_root()
        .join("target")
        .join("test-scratch")
        .join(unique("new"));
    std::fs::create_dir_all(&parent).unwrap();
    // A Go workspace above the projects (as in a monorepo) that does not list
    // them: `weir build` builds a Go project on its own all the same.
    std::fs::write(parent.join("go.work"), "go 1.24\n").unwrap();
    for (name, lang) in [
        ("shout_py", "python"),
        ("shout_js", "js"),
        ("shout_rs", "rust"),
        ("shout_go", "go"),
    ] {
        // A path, as `cargo new` takes: the missing `plugins/` is created.
        let path = format!("plugins/{name}");
        weir_ok(&parent, &["new", &path, "--lang", lang]);
        let project = parent.join(&path);
        assert!(project.join("README.md").is_file());
        let built = weir_ok(&project, &["build", "."]);
        let component = built.lines().last().unwrap().trim().to_string();
        let results = weir_ok(
            &project,
            &["test", "--plugin", &component, "--input", "records.jsonl"],
        );
        let values: Vec<String> = results
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["outputs"][0]["value"].to_string())
            .collect();
        assert_eq!(values, ["\"HELLO\"", "\"WORLD\""], "{lang}");
    }
}

#[test]
fn the_python_json_enrich_plugin_keeps_enriches_and_refuses_on_a_fixture_file() {
    let (code, lines, log) = weir_test(
        &python_plugin("json_enrich"),
        "json_enrich.jsonl",
        &[
            "--plugin-config",
            "field=country",
            "--plugin-config",
            "equals=NL",
        ],
    );
    assert_eq!(code, 1, "the non-JSON record fails: {log}");
    let kept: Value =
        serde_json::from_str(lines[0]["outputs"][0]["value"].as_str().unwrap()).unwrap();
    assert_eq!(kept["email_domain"], "example.org");
    assert_eq!(lines[1]["outputs"], serde_json::json!([]), "BE is dropped");
    assert!(lines[2]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not JSON"));
}
