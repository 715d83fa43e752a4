//! The web console in a real browser (Debian's headless Chromium, driven by
//! playwright-core through `tests/console/drive.mjs`) against a running Weir
//! and the local broker: the page loads without errors, shows the consumed
//! count, zero lag on every partition, the trapped records by kind, and its
//! reload button puts a new plugin version in use. Record producers are
//! untrusted: the trapped records carry HTML in their keys and values, which
//! the page must show as text and never turn into elements. It leaves a
//! screenshot at `target/console.png` (copied to `docs/console.png` for the
//! README).

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::process::Command;
use std::time::Duration;
use weir_test_support::*;

const RECORDS: usize = 200;
/// Records 66 and 133 make the poison plugin panic (`i % 67 == 66`).
const TRAPS: usize = 2;
/// Markup a hostile producer puts in a record: if the console ever inserted
/// it as HTML, an `img` element would appear and its handler would mark the page.
const HOSTILE: &str = "<img src=x onerror=\"document.body.dataset.pwned=1\"><b>bold</b>";

/// The value of record `i`: the poison plugin panics on records 66 and 133,
/// whose values carry [`HOSTILE`] markup.
fn value_of(i: usize) -> String {
    if i % 67 == 66 {
        format!("panic#{i}{HOSTILE}")
    } else {
        format!("ok#{i}")
    }
}

fn short_version(path: &std::path::Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..12]
        .to_string()
}

#[tokio::test]
async fn the_console_shows_the_pipeline_and_its_reload_button_swaps_the_version() {
    require_broker();
    let (input, output, group) = topics("console").await;
    let records: Vec<TestRecord> = (0..RECORDS)
        .map(|i| TestRecord::new(&format!("k{i}{HOSTILE}"), value_of(i).as_bytes(), &[]))
        .collect();
    let ends = produce(&input, &records).await;

    // A copy of the plugin that the test can replace; no file watch, so only
    // the console's button reloads it.
    let dir = workspace_root()
        .join("target")
        .join("test-scratch")
        .join(unique("console"));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = dir.join("logic.wasm");
    std::fs::copy(example_plugin("poison"), &plugin).unwrap();
    let weir = Weir::start(&pipeline_args(
        &group,
        &input,
        &output,
        &plugin,
        &["--no-watch", "--stats-interval", "1s"],
    ));
    wait_for_committed(&group, &input, ends.values().sum(), &weir);
    wait_for_zero_lag(&weir.admin_addr(), &input, &weir);
    let poison = short_version(&plugin);
    std::fs::copy(example_plugin("uppercase"), &plugin).unwrap();
    let uppercase = short_version(&plugin);

    let screenshot = workspace_root().join("target").join("console.png");
    let driven = Command::new("node")
        .current_dir(workspace_root().join("tests").join("console"))
        .args(["drive.mjs", &format!("http://{}/", weir.control_addr())])
        .arg(&screenshot)
        .output()
        .expect("running node tests/console/drive.mjs (scripts/setup installs it)");
    let log = weir.log_text();
    assert!(
        driven.status.success(),
        "{}\n{log}",
        String::from_utf8_lossy(&driven.stderr)
    );
    let shown: Value = serde_json::from_slice(&driven.stdout).unwrap();

    assert_eq!(shown["errors"], serde_json::json!([]), "console errors");
    assert_eq!(shown["ready"], "ready");
    let pipeline = &shown["pipelines"][0];
    assert_eq!(pipeline[0], group.as_str());
    assert_eq!(pipeline[1], RECORDS.to_string(), "consumed: {shown}");
    let partitions = shown["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), PARTITIONS as usize, "{shown}");
    for p in partitions {
        assert_eq!(p["topic"], input.as_str());
        assert_eq!(p["lag"], "0", "{shown}");
        assert!(p["sparkline"].as_str().unwrap().contains(' '), "{shown}");
    }
    assert_eq!(
        shown["failures"],
        serde_json::json!([[group, "trap", TRAPS.to_string()]]),
        "{shown}"
    );
    assert_eq!(
        shown["failureCharts"], 1,
        "a chart beside the failure count: {shown}"
    );
    let mut letters: Vec<(String, String, String)> = shown["letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().into(),
                l["key"].as_str().unwrap().into(),
                l["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    letters.sort();
    let mut trapped: Vec<(String, String, String)> = (0..RECORDS)
        .filter(|i| i % 67 == 66)
        .map(|i| ("trap".to_string(), format!("k{i}{HOSTILE}"), value_of(i)))
        .collect();
    trapped.sort();
    assert_eq!(
        letters, trapped,
        "the dead letters, with their values: {shown}"
    );
    assert_eq!(
        shown["injected"], 0,
        "record markup became page elements: {shown}"
    );
    assert_eq!(
        shown["pwned"],
        Value::Null,
        "a record's script ran: {shown}"
    );
    assert_eq!(shown["timeoutLetters"], serde_json::json!([]), "{shown}");
    assert!(
        shown["lettersStatus"]
            .as_str()
            .unwrap()
            .starts_with("0 newest of kind timeout"),
        "{shown}"
    );
    assert_eq!(shown["plugins"][0]["name"], "logic");
    assert_eq!(shown["plugins"][0]["version"], poison.as_str());
    assert_eq!(shown["reloaded"], uppercase.as_str(), "{shown}");
    assert!(shown["action"].as_str().unwrap().contains("200"), "{shown}");
    assert_eq!(
        shown["reloads"],
        serde_json::json!([["logic", "admin", "reloaded", uppercase, ""]]),
        "the reload history: {shown}"
    );
    assert!(screenshot.is_file());
    let status = weir.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}");
}
