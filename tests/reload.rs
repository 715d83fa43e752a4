//! Hot reload against the real local broker: replacing the plugin file (atomic
//! rename and in-place copy), SIGHUP, the admin endpoint's reload and rollback,
//! and broken replacements that must leave the running version in place.
//!
//! Version 1 is `uppercase`; version 2 is the `poison` test plugin, which echoes
//! records unchanged. So an output's value says which version produced it, and
//! so does its `weir.plugin.version` header.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weir_test_support::*;

/// A plugin directory of its own with `plugin.wasm` = version 1.
fn plugin_dir() -> PathBuf {
    let dir = workspace_root()
        .join("target")
        .join("test-scratch")
        .join(unique("reload"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(example_plugin("uppercase"), dir.join("plugin.wasm")).unwrap();
    dir
}

fn hash_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replace `target` atomically: write a sibling, then rename it over.
fn replace_by_rename(target: &Path, contents: &[u8]) {
    let staging = target.with_extension("staging");
    std::fs::write(&staging, contents).unwrap();
    std::fs::rename(&staging, target).unwrap();
}

fn version_of(record: &TestRecord) -> String {
    record
        .headers
        .iter()
        .find(|(k, _)| k == "weir.plugin.version")
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        .unwrap_or_else(|| panic!("output without a version header: {record:?}"))
}

fn reload_args(group: &str, input: &str, output: &str, plugin: &Path) -> Vec<String> {
    pipeline_args(
        group,
        input,
        output,
        plugin,
        &["--instances", "2", "--version-header"],
    )
}

/// Read `reader` until an output produced by `version` arrives after `seen` outputs.
fn wait_for_version(reader: &mut TopicReader, seen: usize, version: &str, weir: &Weir) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        reader.read_for(Duration::from_millis(200));
        if reader.records()[seen.min(reader.records().len())..]
            .iter()
            .any(|r| version_of(r) == version)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no output of version {version}; log:\n{}",
            weir.log_text()
        );
    }
}

/// Check every output against the version that produced it.
fn assert_outputs_match_their_version(outputs: &[TestRecord], v1: &str, v2: &str) {
    for o in outputs {
        let value = String::from_utf8(o.value.clone().unwrap()).unwrap();
        let version = version_of(o);
        if version == v1 {
            assert!(value.starts_with('V'), "v1 output not upper-cased: {value}");
        } else {
            assert_eq!(version, v2, "unknown version");
            assert!(value.starts_with('v'), "v2 output changed: {value}");
        }
    }
}

// Multi-threaded: the producer task runs while the test thread blocks reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_a_continuous_stream_lose_nothing_and_each_output_has_one_version() {
    let _serial = serial().await;
    let (input, output, group) = topics("reload").await;
    let dir = plugin_dir();
    let plugin = dir.join("plugin.wasm");
    let (v1_bytes, v2_bytes) = (
        std::fs::read(example_plugin("uppercase")).unwrap(),
        std::fs::read(example_plugin("poison")).unwrap(),
    );
    let (v1, v2) = (
        hash_of(&example_plugin("uppercase")),
        hash_of(&example_plugin("poison")),
    );
    let weir = Weir::start(&reload_args(&group, &input, &output, &plugin));

    // 120,000 records, produced steadily over ~20 s while versions change.
    const RECORDS: usize = 120_000;
    const ROUNDS: usize = 40;
    let records = numbered(RECORDS, 16);
    let producer_input = input.clone();
    let producing = tokio::spawn(async move {
        let mut ends = std::collections::BTreeMap::new();
        for chunk in records.chunks(RECORDS / ROUNDS) {
            ends = produce(&producer_input, chunk).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ends
    });

    let mut reader = TopicReader::new(&output);
    reader.read_until(5_000, Duration::from_secs(60));
    // 1: atomic rename to v2.
    let seen = reader.records().len();
    replace_by_rename(&plugin, &v2_bytes);
    wait_for_version(&mut reader, seen, &v2, &weir);
    // 2: in-place copy of v1.
    let seen = reader.records().len();
    std::fs::write(&plugin, &v1_bytes).unwrap();
    wait_for_version(&mut reader, seen, &v1, &weir);
    // 3: atomic rename to v2.
    let seen = reader.records().len();
    replace_by_rename(&plugin, &v2_bytes);
    wait_for_version(&mut reader, seen, &v2, &weir);
    // 4: SIGHUP right after the file changes (the watcher waits for the file to
    // settle, so the signal's reload comes first and the watcher's finds nothing new).
    let seen = reader.records().len();
    replace_by_rename(&plugin, &v1_bytes);
    std::process::Command::new("kill")
        .args(["-HUP", &weir.pid().to_string()])
        .status()
        .unwrap();
    wait_for_version(&mut reader, seen, &v1, &weir);

    let ends = producing.await.unwrap();
    reader.read_until(RECORDS, Duration::from_secs(120));
    reader.read_for(Duration::from_secs(2));
    let committed = wait_for_commits(
        &group,
        &input,
        PARTITIONS,
        &all_partitions(&ends),
        Duration::from_secs(60),
    );
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert_eq!(committed, all_partitions(&ends), "commits reach the end");

    // Every input has exactly one output, wholly from one version.
    let counts = output_counts(reader.records());
    let missing: Vec<_> = (0..RECORDS).filter(|i| !counts.contains_key(i)).collect();
    let doubled: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        missing.is_empty(),
        "{} inputs without output",
        missing.len()
    );
    assert!(
        doubled.is_empty(),
        "{} inputs with several outputs",
        doubled.len()
    );
    assert_outputs_match_their_version(reader.records(), &v1, &v2);
    let reloads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("plugin reloaded"))
        .collect();
    assert_eq!(reloads.len(), 4, "{reloads:#?}");
    assert_eq!(
        reloads
            .iter()
            .filter(|l| l.contains("trigger=\"file-changed\""))
            .count(),
        3
    );
    assert!(reloads[3].contains("trigger=\"sighup\""), "{}", reloads[3]);
    for line in &reloads {
        eprintln!("{}", &line[line.find("prepare_ms").unwrap_or(0)..]);
    }
}

/// The next `n` numbered records after the `produced` ones.
fn next_batch(produced: &mut usize, n: usize) -> Vec<TestRecord> {
    let batch = numbered(*produced + n, 16).split_off(*produced);
    *produced += n;
    batch
}

#[tokio::test]
async fn broken_replacements_keep_the_running_version_and_rollback_restores_the_previous() {
    let _serial = serial().await;
    let (input, output, group) = topics("reload-bad").await;
    let dir = plugin_dir();
    let plugin = dir.join("plugin.wasm");
    let v1_bytes = std::fs::read(&plugin).unwrap();
    let (v1, v2) = (
        hash_of(&example_plugin("uppercase")),
        hash_of(&example_plugin("poison")),
    );
    let weir = Weir::start(&reload_args(&group, &input, &output, &plugin));
    let admin = weir.admin_addr();
    let mut reader = TopicReader::new(&output);
    let mut produced = 0;
    produce(&input, &next_batch(&mut produced, 1_000)).await;
    reader.read_until(1_000, Duration::from_secs(60));

    // A truncated file, a component for another contract, and a plugin whose
    // init refuses the configuration (json-filter needs `field`).
    let other_world = wat::parse_str(r#"(component (core module (func (export "f"))))"#).unwrap();
    let broken: [(&str, Vec<u8>); 3] = [
        ("truncated", v1_bytes[..v1_bytes.len() / 2].to_vec()),
        ("other world", other_world),
        (
            "init refuses",
            std::fs::read(example_plugin("json-filter")).unwrap(),
        ),
    ];
    for (n, (what, bytes)) in broken.iter().enumerate() {
        replace_by_rename(&plugin, bytes);
        let deadline = Instant::now() + Duration::from_secs(30);
        while weir.log_text().matches("plugin reload failed").count() <= n {
            assert!(Instant::now() < deadline, "{what}: no failure reported");
            std::thread::sleep(Duration::from_millis(100));
        }
        produce(&input, &next_batch(&mut produced, 1_000)).await;
    }
    reader.read_until(produced, Duration::from_secs(60));
    let (status, body) = admin_request(&admin, "GET", "/plugins/plugin");
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["current"]["version"], v1.as_str(), "{body}");
    assert_eq!(state["reloads_failed"], 3, "{body}");
    assert_eq!(state["reloads_ok"], 0, "{body}");

    // Through the control endpoint: a path outside the plugin's directory is
    // refused without being opened, a file there that is not a plugin fails to
    // load; v2 from another file of the directory; rollback restores v1. The
    // read-only endpoint cannot reload at all.
    let control = weir.control_addr();
    let (status, _) = admin_request(&admin, "POST", "/plugins/plugin/rollback");
    assert!(
        matches!(status, 404 | 405),
        "the read-only endpoint answered {status}"
    );
    // Dead letters carry record contents: not for the read-only endpoint.
    let (status, _) = admin_request(&admin, "GET", "/dead-letters");
    assert!(
        matches!(status, 404 | 405),
        "the read-only endpoint served dead letters: {status}"
    );
    for outside in ["/nonexistent.wasm", "/etc/passwd", "/dev/zero"] {
        let path = format!("/plugins/plugin/reload?path={outside}");
        let (status, body) = admin_request(&control, "POST", &path);
        assert_eq!(status, 403, "{outside}: {body}");
        assert!(!body.contains("No such file"), "{body}");
    }
    std::fs::write(dir.join("notes.txt"), b"not a plugin").unwrap();
    let path = format!(
        "/plugins/plugin/reload?path={}",
        dir.join("notes.txt").display()
    );
    assert_eq!(admin_request(&control, "POST", &path).0, 422);
    let v2_path = dir.join("v2.wasm");
    std::fs::copy(example_plugin("poison"), &v2_path).unwrap();
    let (status, body) = admin_request(
        &control,
        "POST",
        &format!("/plugins/plugin/reload?path={}", v2_path.display()),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&v2), "{body}");
    let seen = reader.records().len();
    produce(&input, &next_batch(&mut produced, 1_000)).await;
    wait_for_version(&mut reader, seen, &v2, &weir);
    let (status, body) = admin_request(&control, "POST", "/plugins/plugin/rollback");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&v1), "{body}");
    let seen = reader.records().len();
    produce(&input, &next_batch(&mut produced, 1_000)).await;
    wait_for_version(&mut reader, seen, &v1, &weir);
    assert_eq!(admin_request(&admin, "GET", "/plugins/nope").0, 404);

    reader.read_until(produced, Duration::from_secs(60));
    reader.read_for(Duration::from_secs(1));
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    let counts = output_counts(reader.records());
    assert_eq!(counts.len(), produced, "every input has an output");
    assert!(counts.values().all(|&n| n == 1), "no input has two outputs");
    assert_outputs_match_their_version(reader.records(), &v1, &v2);
    // The broken versions never ran: all outputs before the admin reload are v1.
    assert!(log.contains("does not fit Weir's plugin contract"), "{log}");
    assert!(log.contains("missing plugin config `field`"), "{log}");
}

fn versions_of(record: &TestRecord) -> Vec<String> {
    record
        .headers
        .iter()
        .filter(|(k, _)| k == "weir.plugin.version")
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_chain_feeds_outputs_to_the_next_plugin_and_each_plugin_reloads_on_its_own() {
    let _serial = serial().await;
    let (input, output, group) = topics("chain").await;
    // First plugin: the poison test plugin (echo; fans out or refuses marked
    // records); second: a copy of uppercase, reloadable on its own.
    let dir = plugin_dir();
    let second = dir.join("second.wasm");
    std::fs::rename(dir.join("plugin.wasm"), &second).unwrap();
    let (poison, uppercase) = (
        hash_of(&example_plugin("poison")),
        hash_of(&example_plugin("uppercase")),
    );
    let mut args = weir_base_args(&group);
    args.extend(
        [
            "--topic",
            &input,
            "--output-topic",
            &output,
            "--instances",
            "2",
            "--version-header",
            "--plugin",
            example_plugin("poison").to_str().unwrap(),
            "--then",
            second.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let weir = Weir::start(&args);
    let admin = weir.admin_addr();
    let value = |i: usize| match (i % 50, i % 30) {
        (0, _) => format!("error#{i}"),
        (_, 0) => format!("fanout2#{i}"),
        _ => format!("ok#{i}"),
    };
    let records: Vec<TestRecord> = (0..300)
        .map(|i| TestRecord::new(&format!("k{i}"), value(i).as_bytes(), &[]))
        .collect();
    produce(&input, &records).await;
    let refused: Vec<usize> = (0..300).filter(|i| i % 50 == 0).collect();
    let fanned = (0..300).filter(|i| i % 50 != 0 && i % 30 == 0).count();
    let expected = 300 - refused.len() + fanned;
    let mut reader = TopicReader::new(&output);
    reader.read_until(expected, Duration::from_secs(60));
    reader.read_for(Duration::from_secs(1));

    let mut got: Vec<String> = reader
        .records()
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..300)
        .filter(|i| i % 50 != 0)
        .flat_map(|i| {
            let copies = if i % 30 == 0 { 2 } else { 1 };
            vec![value(i).to_uppercase(); copies]
        })
        .collect();
    want.sort();
    assert_eq!(got, want, "outputs of the chain");
    for r in reader.records() {
        assert_eq!(versions_of(r), [poison.clone(), uppercase.clone()]);
    }
    let letters = read_all(
        &format!("{input}.dlq"),
        refused.len(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    assert_eq!(letters.len(), refused.len());
    for l in &letters {
        let name = l
            .headers
            .iter()
            .find(|(k, _)| k == "weir.plugin.name")
            .unwrap();
        assert_eq!(name.1, b"poison", "the first plugin refused it");
    }

    // Reload only the second plugin (to the echoing one): outputs stay as the
    // first plugin made them; the first plugin is untouched.
    let echo = dir.join("echo.wasm");
    std::fs::copy(example_plugin("poison"), &echo).unwrap();
    let (status, body) = admin_request(
        &weir.control_addr(),
        "POST",
        &format!("/plugins/second/reload?path={}", echo.display()),
    );
    assert_eq!(status, 200, "{body}");
    let more: Vec<TestRecord> = (300..400)
        .map(|i| TestRecord::new(&format!("k{i}"), format!("ok#{i}").as_bytes(), &[]))
        .collect();
    produce(&input, &more).await;
    reader.read_until(expected + more.len(), Duration::from_secs(60));
    let later = &reader.records()[expected..];
    assert_eq!(later.len(), more.len());
    for r in later {
        assert!(r.value.as_deref().unwrap().starts_with(b"ok#"), "{r:?}");
        assert_eq!(versions_of(r), [poison.clone(), poison.clone()]);
    }
    let (_, body) = admin_request(&admin, "GET", "/plugins");
    let plugins: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(plugins[0]["name"], "poison", "{body}");
    assert_eq!(plugins[0]["reloads_ok"], 0, "{body}");
    assert_eq!(plugins[1]["name"], "second", "{body}");
    assert_eq!(plugins[1]["reloads_ok"], 1, "{body}");
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
}

#[tokio::test]
async fn two_pipelines_run_side_by_side_in_one_process() {
    let _serial = serial().await;
    let (input_a, output_a, group) = topics("pipe-a").await;
    let (input_b, output_b, _) = topics("pipe-b").await;
    let dir = plugin_dir();
    let config = dir.join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"
topics = ["{input_a}"]
output_topic = "{output_a}"
[plugin]
path = "{upper}"

[[pipeline]]
topics = ["{input_b}"]
output_topic = "{output_b}"
[pipeline.plugin]
path = "{echo}"
"#,
            upper = example_plugin("uppercase").display(),
            echo = example_plugin("poison").display(),
        ),
    )
    .unwrap();
    let mut args = weir_base_args(&group);
    args.extend(["--config".to_string(), config.display().to_string()]);
    let weir = Weir::start(&args);
    let admin = weir.admin_addr();
    let ends_a = produce(&input_a, &numbered(1_000, 16)).await;
    let ends_b = produce(&input_b, &numbered(1_000, 16)).await;
    let outputs_a = read_all(
        &output_a,
        1_000,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let outputs_b = read_all(
        &output_b,
        1_000,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let group_b = format!("{group}-poison");
    let committed_a = wait_for_commits(
        &group,
        &input_a,
        PARTITIONS,
        &all_partitions(&ends_a),
        Duration::from_secs(30),
    );
    let committed_b = wait_for_commits(
        &group_b,
        &input_b,
        PARTITIONS,
        &all_partitions(&ends_b),
        Duration::from_secs(30),
    );
    let (_, body) = admin_request(&admin, "GET", "/plugins");
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");

    assert_eq!(outputs_a.len(), 1_000);
    assert!(outputs_a
        .iter()
        .all(|r| r.value.as_deref().unwrap().starts_with(b"V")));
    assert_eq!(outputs_b.len(), 1_000);
    assert!(outputs_b
        .iter()
        .all(|r| r.value.as_deref().unwrap().starts_with(b"v")));
    assert_eq!(committed_a, all_partitions(&ends_a));
    assert_eq!(
        committed_b,
        all_partitions(&ends_b),
        "the second pipeline commits as {group_b}"
    );
    let plugins: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(plugins[0]["name"], "uppercase", "{body}");
    assert_eq!(plugins[1]["name"], "poison", "{body}");
}

/// SIGHUP's default action ends a process: Weir listens for it from the
/// start, so one sent while the plugins are still loading is ignored, not fatal.
#[tokio::test]
async fn a_sighup_while_the_plugins_load_does_not_end_the_process() {
    let _serial = serial().await;
    let (input, output, group) = topics("hup-start").await;
    let ends = produce(&input, &numbered(20, 10)).await;
    // Each instance's `init` works 3 s: the plugins load for a while after the
    // admin endpoint is up.
    let mut weir = Weir::start(&slow_args(
        &group,
        &input,
        &output,
        10,
        &["--plugin-config", "init_ms=3000", "--plugin-timeout", "10s"],
    ));
    weir.wait_for_log("admin endpoint listening", Duration::from_secs(30));
    weir.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        weir.is_running(),
        "SIGHUP ended Weir during start-up:\n{}",
        weir.log_text()
    );
    wait_for_committed(&group, &input, ends.values().sum(), &weir);
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(log.contains("SIGHUP during start-up ignored"), "{log}");
}

/// With an admin token set, the control endpoint refuses requests that do not
/// carry it; off loopback it refuses to start without one.
#[tokio::test]
async fn the_control_endpoint_needs_the_admin_token() {
    let _serial = serial().await;
    let (input, output, group) = topics("token").await;
    let dir = plugin_dir();
    let token = "an-admin-token-of-32-characters!";
    let mut args = reload_args(&group, &input, &output, &dir.join("plugin.wasm"));
    args.extend(["--admin-token".to_string(), token.to_string()]);
    let weir = Weir::start(&args);
    let control = weir.control_addr();
    let rollback = "/plugins/plugin/rollback";
    for header in [
        "",
        "Authorization: Bearer wrong\r\n",
        "Authorization: an-admin-token-of-32-characters!\r\n",
    ] {
        let (status, body) = admin_request_with(&control, "POST", rollback, header);
        assert_eq!(status, 401, "{header:?}: {body}");
        let (status, body) = admin_request_with(&control, "GET", "/dead-letters", header);
        assert_eq!(status, 401, "dead letters, {header:?}: {body}");
    }
    let good = format!("Authorization: Bearer {token}\r\n");
    let (status, body) = admin_request_with(&control, "POST", rollback, &good);
    assert_eq!(
        status, 409,
        "authorised, and there is no previous version: {body}"
    );
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(!log.contains(token), "the token was logged");

    let mut open = reload_args(&group, &input, &output, &dir.join("plugin.wasm"));
    let at = open.iter().position(|a| a == "--control-addr").unwrap();
    open[at + 1] = "0.0.0.0:0".to_string();
    let (status, log) = run_to_exit(&open, Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("admin_token"), "{log}");
}

/// After a reload from another file, the watcher follows that file: changing
/// it loads it again.
#[tokio::test]
async fn after_a_reload_from_another_file_the_watcher_follows_that_file() {
    let _serial = serial().await;
    let (input, output, group) = topics("follow").await;
    let dir = plugin_dir();
    let v2 = dir.join("v2.wasm");
    std::fs::copy(example_plugin("poison"), &v2).unwrap();
    let weir = Weir::start(&reload_args(
        &group,
        &input,
        &output,
        &dir.join("plugin.wasm"),
    ));
    let control = weir.control_addr();
    let path = format!("/plugins/plugin/reload?path={}", v2.display());
    let (status, body) = admin_request(&control, "POST", &path);
    assert_eq!(status, 200, "{body}");

    // A new version written to v2.wasm is loaded from there.
    let v3 = hash_of(&example_plugin("slow"));
    replace_by_rename(&v2, &std::fs::read(example_plugin("slow")).unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = admin_request(&weir.admin_addr(), "GET", "/plugins/plugin");
        let state: serde_json::Value = serde_json::from_str(&body).unwrap();
        if state["current"]["version"] == v3.as_str() {
            assert!(
                state["current"]["path"]
                    .as_str()
                    .unwrap()
                    .ends_with("v2.wasm"),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change to v2.wasm was not loaded: {body}\n{}",
            weir.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
}
