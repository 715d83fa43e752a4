//! Bad input gives one clear error line and a non-zero exit, never a panic or a
//! hang: missing or invalid plugins, a plugin for another contract, a plugin that
//! refuses its config, missing settings, an unreachable broker, a missing topic,
//! an invalid topic name or pattern;
//! and records no producer should write, which are processed, not fatal.

use std::path::PathBuf;
use std::time::Duration;
use weir_test_support::*;

fn args_with(group: &str, brokers: &str, topic: &str, plugin: &str, extra: &[&str]) -> Vec<String> {
    let mut args = weir_base_args(group);
    let i = args.iter().position(|a| a == "--brokers").unwrap();
    args[i + 1] = brokers.to_string();
    args.extend(
        [
            "--topic",
            topic,
            "--output-topic",
            topic,
            "--plugin",
            plugin,
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Run weir, expect it to fail with `code` and exactly one error line containing `needle`.
fn expect_failure(args: &[String], code: i32, needle: &str) {
    let (status, log) = run_to_exit(args, Duration::from_secs(60));
    assert_eq!(status.code(), Some(code), "exit status; log:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "want one error line; log:\n{log}");
    assert!(
        errors[0].contains(needle),
        "error line should mention `{needle}`: {}",
        errors[0]
    );
    assert!(!log.contains("panicked"), "weir panicked:\n{log}");
}

fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = workspace_root().join("target").join("test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{name}", unique("f")));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn missing_plugin_file() {
    let args = args_with("g", &brokers(), "t", "/nonexistent/plugin.wasm", &[]);
    expect_failure(&args, 1, "cannot read plugin /nonexistent/plugin.wasm");
}

#[test]
fn a_file_that_is_not_webassembly() {
    let path = scratch_file("text.wasm", b"this is not wasm");
    let args = args_with("g", &brokers(), "t", path.to_str().unwrap(), &[]);
    expect_failure(&args, 1, "not a WebAssembly file");
}

#[test]
fn a_core_module_instead_of_a_component() {
    let path = scratch_file("core.wasm", &wat::parse_str("(module)").unwrap());
    let args = args_with("g", &brokers(), "t", path.to_str().unwrap(), &[]);
    expect_failure(&args, 1, "core WebAssembly module");
}

#[test]
fn a_component_for_another_world() {
    let component = wat::parse_str(r#"(component (core module (func (export "f"))))"#).unwrap();
    let path = scratch_file("other-world.wasm", &component);
    let args = args_with("g", &brokers(), "t", path.to_str().unwrap(), &[]);
    expect_failure(&args, 1, "does not fit Weir's plugin contract");
}

#[test]
fn a_plugin_that_refuses_its_configuration() {
    let plugin = example_plugin("json-filter");
    let args = args_with("g", &brokers(), "t", plugin.to_str().unwrap(), &[]);
    expect_failure(&args, 1, "missing plugin config `field`");
}

#[test]
fn a_missing_setting() {
    let args: Vec<String> = [
        "run",
        "--brokers",
        "b:1",
        "--topic",
        "t",
        "--output-topic",
        "o",
        "--plugin",
        "p.wasm",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expect_failure(&args, 2, "missing consumer group: pass --group");
}

#[test]
fn an_unreachable_broker() {
    let plugin = example_plugin("uppercase");
    let args = args_with("g", "127.0.0.1:1", "t", plugin.to_str().unwrap(), &[]);
    expect_failure(&args, 1, "cannot reach Kafka at 127.0.0.1:1");
}

#[test]
fn a_missing_topic() {
    require_broker();
    let plugin = example_plugin("uppercase");
    let topic = unique("no-such-topic");
    let args = args_with("g", &brokers(), &topic, plugin.to_str().unwrap(), &[]);
    expect_failure(&args, 1, &format!("topic `{topic}` does not exist"));
}

#[test]
fn an_invalid_topic_pattern() {
    let plugin = example_plugin("uppercase");
    let args = args_with(
        "g",
        &brokers(),
        "^orders-(eu",
        plugin.to_str().unwrap(),
        &[],
    );
    expect_failure(&args, 2, "`^orders-(eu` is not a valid topic pattern");
}

#[test]
fn an_invalid_topic_name() {
    let plugin = example_plugin("uppercase");
    let args = args_with("g", &brokers(), "orders eu", plugin.to_str().unwrap(), &[]);
    expect_failure(&args, 2, "`orders eu` is not a valid Kafka topic name");
}

#[test]
fn a_pattern_against_an_unreachable_broker_says_the_broker_is_unreachable() {
    let plugin = example_plugin("uppercase");
    let mut args = args_with("g", "127.0.0.1:1", "t", plugin.to_str().unwrap(), &[]);
    let topic = args.iter().position(|a| a == "--topic").unwrap();
    args[topic + 1] = "^pat-.*".into();
    expect_failure(&args, 1, "cannot reach Kafka at 127.0.0.1:1");
}

/// Kafka header keys are bytes; one that is not UTF-8 once panicked the
/// consumer thread (rdkafka unwraps it), so one hostile producer could put a
/// whole consumer group in a crash loop.
#[tokio::test]
async fn a_header_key_that_is_not_utf8_is_read_lossily_not_fatal() {
    let _serial = serial().await;
    let (input, output, group) = topics("raw-header").await;
    produce(&input, &[TestRecord::new("k", b"before", &[])]).await;
    produce_with_raw_header_key(&input, b"bad\xff\xfekey", b"hostile");
    produce(&input, &[TestRecord::new("k", b"after", &[])]).await;
    let args = pipeline_args(&group, &input, &output, &example_plugin("uppercase"), &[]);
    let weir = Weir::start(&args);
    let mut reader = TopicReader::new(&output);
    reader.read_until(3, Duration::from_secs(60));
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    let hostile = reader
        .records()
        .iter()
        .find(|r| r.value.as_deref() == Some(&b"HOSTILE"[..]))
        .unwrap_or_else(|| {
            panic!("the record with the raw header key was not processed; log:\n{log}")
        });
    assert_eq!(hostile.headers.len(), 1);
    assert_eq!(hostile.headers[0].0, "bad\u{fffd}\u{fffd}key");
    assert_eq!(reader.records().len(), 3);
}
