//! Plugin state against a broker with full transactions (noida-db, started by
//! `WEIR_BROKER=noida scripts/broker start` on port 19092, or
//! `WEIR_TEST_TXN_BROKERS`): state survives `kill -9`s and rebalances, exactly
//! once with outputs in `--exactly-once` mode and never behind the committed
//! offsets in at-least-once mode; a write over the caps fails only its record;
//! and `weir test` keeps state in memory from line to line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use weir_test_support::*;

fn setup() {
    let addr =
        std::env::var("WEIR_TEST_TXN_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_string());
    use_brokers(&addr);
    require_broker();
}

/// A state directory of its own for one simulated machine of a test.
fn state_dir(name: &str) -> String {
    let dir = workspace_root()
        .join("target")
        .join("test-scratch")
        .join(unique(name));
    dir.display().to_string()
}

/// `weir run` of `plugin` with its own state directory and, unless empty, its
/// instance id (so that a restart fences its crashed predecessor), on 2
/// instances, plus `extra`.
fn stateful_args(
    group: &str,
    (input, output): (&str, &str),
    plugin: &Path,
    (instance, dir): (&str, &str),
    extra: &[&str],
) -> Vec<String> {
    let mut all = vec![
        "--instances",
        "2",
        "--commit-interval",
        "200ms",
        "--batch-size",
        "100",
        "--state-dir",
        dir,
        // noida-db answers fetches without honouring size limits.
        "-X",
        "receive.message.max.bytes=1000000000",
    ];
    if !instance.is_empty() {
        all.extend(["--instance-id", instance]);
    }
    all.extend_from_slice(extra);
    pipeline_args(group, input, output, plugin, &all)
}

/// Start, wait until `progress` more records are committed, `kill -9`;
/// `kills` times. Returns how many kills happened before the input ran out.
fn crash_repeatedly(
    group: &str,
    input: &str,
    total: usize,
    kills: usize,
    progress: i64,
    args: &[String],
) -> usize {
    let mut done = 0;
    while done < kills {
        let before = committed_total(group, input);
        if before + progress >= total as i64 {
            break;
        }
        let weir = Weir::start(args);
        wait_for_committed(group, input, before + progress, &weir);
        weir.kill9();
        done += 1;
        eprintln!(
            "kill -9 #{done} at {} committed",
            committed_total(group, input)
        );
    }
    done
}

/// Produce `records` in the background, `per_tick` every 100 ms, so that
/// the pipeline cannot run far ahead of its input and crashes and rebalances
/// land mid-stream; the end offset of each partition once all are produced.
fn produce_over_time(
    topic: &str,
    records: Vec<TestRecord>,
    per_tick: usize,
) -> tokio::task::JoinHandle<BTreeMap<i32, i64>> {
    let topic = topic.to_string();
    tokio::spawn(async move {
        produce_paced(&topic, &records, per_tick, Duration::from_millis(100)).await
    })
}

/// `count` records keyed `k0`..`k{keys-1}` in turn; the number of records of
/// each key.
fn keyed_records(count: usize, keys: usize) -> (Vec<TestRecord>, BTreeMap<String, u64>) {
    let mut per_key = BTreeMap::new();
    let records = (0..count)
        .map(|i| {
            let key = format!("k{}", i % keys);
            *per_key.entry(key.clone()).or_insert(0) += 1;
            TestRecord::new(&key, format!("{i}").as_bytes(), &[])
        })
        .collect();
    (records, per_key)
}

/// A count-by-key pipeline over `count` records of 50 keys, produced
/// while it runs.
struct CountRun {
    input: String,
    output: String,
    group: String,
    /// Inputs per key.
    per_key: BTreeMap<String, u64>,
    /// The producer, done with the end offsets.
    producing: tokio::task::JoinHandle<BTreeMap<i32, i64>>,
    /// `weir run` arguments (one instance id and state directory).
    args: Vec<String>,
}

async fn count_run(prefix: &str, plugin: &Path, count: usize, extra: &[&str]) -> CountRun {
    let (input, output, group) = topics(prefix).await;
    let (records, per_key) = keyed_records(count, 50);
    // 2,500 records/s: the crashes (a start, a group join, a kill each) land
    // before the input runs out.
    let producing = produce_over_time(&input, records, 250);
    let dir = state_dir(prefix);
    let args = stateful_args(&group, (&input, &output), plugin, (prefix, &dir), extra);
    CountRun {
        input,
        output,
        group,
        per_key,
        producing,
        args,
    }
}

/// The counts `count_by_key` produced for each key, in output order.
fn counts_by_key(outputs: &[TestRecord]) -> BTreeMap<String, Vec<u64>> {
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for output in outputs {
        let count = output.value_text().parse().expect("a count");
        counts.entry(output.key_text()).or_default().push(count);
    }
    counts
}

/// count_by_key in exactly-once mode, crashed with `kill -9` while
/// transactions are open: a `read_committed` reader sees, for every key, the
/// counts 1, 2, … up to the number of inputs with that key, each once. The
/// state is restored from its changelog (read committed) after each crash, so
/// it is never ahead of or behind the committed offsets.
#[tokio::test(flavor = "multi_thread")]
async fn counts_are_exactly_once_across_kill_9_in_exactly_once_mode() {
    counts_exactly_once("state-eos", &example_plugin("count-by-key"), 30_000, 3).await;
}

/// The same for the Go count-by-key example, through the Go SDK's state
/// functions.
#[tokio::test(flavor = "multi_thread")]
async fn a_go_plugin_counts_exactly_once_across_kill_9() {
    counts_exactly_once("state-eos-go", &go_plugin("count-by-key"), 30_000, 3).await;
}

/// Run `plugin` (a count-by-key) over `count` records in exactly-once mode,
/// `kill -9` it `kills` times, and check every key's counts as read committed.
async fn counts_exactly_once(prefix: &str, plugin: &Path, count: usize, kills: usize) {
    let _serial = serial().await;
    setup();
    let CountRun {
        input,
        output,
        group,
        per_key,
        producing,
        args,
    } = count_run(prefix, plugin, count, &["--exactly-once"]).await;
    let crashes = crash_repeatedly(&group, &input, count, kills, 1_000, &args);
    assert_eq!(
        crashes, kills,
        "the pipeline finished before {kills} crashes"
    );
    let ends = producing.await.unwrap();

    let weir = Weir::start(&args);
    let committed = wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(120));
    // The crashes may have left nothing to process: wait for the restore.
    weir.wait_for_log(
        "restored plugin state from its changelog",
        Duration::from_secs(60),
    );
    let log = weir.log_text();
    assert!(
        weir.terminate(Duration::from_secs(30)).success(),
        "log:\n{log}"
    );
    assert_eq!(committed, all_partitions(&ends), "all input committed");

    let mut reader = TopicReader::read_committed(&output);
    reader.read_until(count, Duration::from_secs(60));
    reader.read_for(Duration::from_secs(2));
    let counts = counts_by_key(reader.records());
    for (key, n) in &per_key {
        let expected: Vec<u64> = (1..=*n).collect();
        assert_eq!(
            counts.get(key),
            Some(&expected),
            "key {key} after {crashes} kill -9"
        );
    }
    let mut all = TopicReader::new(&output);
    all.read_for(Duration::from_secs(2));
    assert!(
        all.records().len() > count,
        "the crashes left no aborted outputs, so the test proved nothing"
    );
}

/// dedupe over 100,000 records, 10% of them repeating an earlier id, in
/// exactly-once mode: 5 `kill -9`s, then a second process joins and takes
/// over half of the partitions (restoring their state from the changelog);
/// a `read_committed` reader sees every distinct id exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn dedupe_passes_each_id_once_across_kill_9_and_a_rebalance() {
    let _serial = serial().await;
    setup();
    let (input, output, group) = topics("state-dedupe").await;
    let count = env_or("WEIR_STATE_RECORDS", 100_000);
    let distinct = count * 9 / 10;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let records: Vec<TestRecord> = (0..count)
        .map(|i| {
            let id = if i < distinct {
                i
            } else {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng % distinct as u64) as usize
            };
            // Keyed by id, so that a repeat lands in its original's partition.
            let value = format!(r#"{{"id": "order-{id}", "n": {i}}}"#);
            TestRecord::new(&format!("order-{id}"), value.as_bytes(), &[])
        })
        .collect();
    // Over 40 s: the second process joins while records still arrive.
    let producing = produce_over_time(&input, records, count / 400);
    let (first_dir, second_dir) = (state_dir("dedupe-a"), state_dir("dedupe-b"));
    let first = stateful_args(
        &group,
        (&input, &output),
        &example_plugin("dedupe"),
        ("dedupe-a", &first_dir),
        &["--exactly-once"],
    );
    let kills = crash_repeatedly(&group, &input, count, 5, count as i64 / 40, &first);
    assert_eq!(kills, 5, "the pipeline finished before 5 crashes");

    let a = Weir::start(&first);
    wait_for_committed(&group, &input, committed_total(&group, &input) + 1_000, &a);
    let second = stateful_args(
        &group,
        (&input, &output),
        &example_plugin("dedupe"),
        // noida-db does not hand partitions to a second static member.
        ("", &second_dir),
        &["--exactly-once"],
    );
    let b = Weir::start(&second);
    b.wait_for_log(
        "restored plugin state from its changelog",
        Duration::from_secs(60),
    );
    let ends = producing.await.unwrap();
    let committed = wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(240));
    let (a_log, b_log) = (a.log_text(), b.log_text());
    assert!(
        a.terminate(Duration::from_secs(30)).success(),
        "log:\n{a_log}"
    );
    assert!(
        b.terminate(Duration::from_secs(30)).success(),
        "log:\n{b_log}"
    );
    assert_eq!(committed, all_partitions(&ends), "all input committed");

    let mut reader = TopicReader::read_committed(&output);
    reader.read_until(distinct, Duration::from_secs(120));
    reader.read_for(Duration::from_secs(3));
    let mut seen = BTreeSet::new();
    let mut repeated = Vec::new();
    for output in reader.records() {
        if !seen.insert(output.key_text()) {
            repeated.push(output.key_text());
        }
    }
    assert!(
        repeated.is_empty(),
        "ids passed twice: {:?}",
        &repeated[..repeated.len().min(10)]
    );
    assert_eq!(seen.len(), distinct, "every distinct id passed once");
}

/// In at-least-once mode a crash may count a record twice (its state write
/// reached the changelog, its offset was not committed), never less: after
/// `kill -9`s the last count of each key is at least its number of inputs. A
/// clean stop keeps a checkpoint, from which the next start restores only
/// what the changelog gained since.
#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_counts_are_never_lower_and_a_clean_stop_keeps_a_checkpoint() {
    let _serial = serial().await;
    setup();
    let count = 30_000;
    let CountRun {
        input,
        output,
        group,
        per_key,
        producing,
        args,
    } = count_run("state-alos", &example_plugin("count-by-key"), count, &[]).await;
    // A clean stop mid-stream, then a start that restores from its checkpoint.
    let weir = Weir::start(&args);
    wait_for_committed(&group, &input, 2_000, &weir);
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "log:\n{log}");
    let weir = Weir::start(&args);
    weir.wait_for_log("from=Some(", Duration::from_secs(60));
    weir.kill9();

    let kills = crash_repeatedly(&group, &input, count, 3, 1_000, &args);
    assert_eq!(kills, 3, "the pipeline finished before 3 crashes");
    let ends = producing.await.unwrap();
    let weir = Weir::start(&args);
    let committed = wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(120));
    let log = weir.log_text();
    assert!(
        weir.terminate(Duration::from_secs(30)).success(),
        "log:\n{log}"
    );
    assert_eq!(committed, all_partitions(&ends), "all input committed");

    let outputs = read_all(
        &output,
        count,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    let counts = counts_by_key(&outputs);
    for (key, n) in &per_key {
        let last = counts[key].iter().max().copied().unwrap_or_default();
        assert!(
            last >= *n,
            "key {key}: last count {last} below its {n} inputs after {kills} kill -9"
        );
    }
}

/// A state write over the plugin's caps fails its record (kind `state`, to
/// the dead-letter topic); the partition goes on, and the refused write has
/// no effect.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_over_the_state_caps_fails_only_its_record() {
    let _serial = serial().await;
    setup();
    let (input, output, group) = topics("state-cap").await;
    let records: Vec<TestRecord> = ["a", "much-too-long-key", "a", "b", "a"]
        .iter()
        .map(|key| TestRecord::new(key, b"x", &[]))
        .collect();
    let ends = produce(&input, &records).await;
    let config = workspace_root()
        .join("target")
        .join("test-scratch")
        .join(format!("{}.toml", unique("state-cap")));
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "[plugin.state]\nmax_key_bytes = 8\n").unwrap();
    let dir = state_dir("state-cap");
    let config = config.display().to_string();
    let args = stateful_args(
        &group,
        (&input, &output),
        &example_plugin("count-by-key"),
        ("state-cap", &dir),
        &["--config", &config],
    );
    let weir = Weir::start(&args);
    wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(60));
    let log = weir.log_text();
    assert!(
        weir.terminate(Duration::from_secs(30)).success(),
        "log:\n{log}"
    );

    let outputs = read_all(&output, 4, Duration::from_secs(30), Duration::from_secs(1));
    let counts = counts_by_key(&outputs);
    assert_eq!(counts.get("a"), Some(&vec![1, 2, 3]), "{outputs:?}");
    assert_eq!(counts.get("b"), Some(&vec![1]));
    assert!(!counts.contains_key("much-too-long-key"));
    let letters = read_all(
        &format!("{input}.dlq"),
        1,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].key_text(), "much-too-long-key");
    assert_eq!(
        letters[0].header_text("weir.error.kind").as_deref(),
        Some("state")
    );
    assert!(letters[0]
        .header_text("weir.error.message")
        .unwrap_or_default()
        .contains("max_key_bytes"));

    // `weir state dump` reads the same state back from the changelog.
    let mut dumped = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let output = std::process::Command::new(weir_bin())
            .args(["state", "dump", "--brokers", &brokers(), "--group", &group])
            .args([
                "--plugin",
                "count_by_key",
                "--partition",
                &partition.to_string(),
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        for line in String::from_utf8(output.stdout).unwrap().lines() {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(entry["topic"], input.as_str());
            let value = entry["value"].as_str().unwrap().as_bytes().to_vec();
            let count = u64::from_be_bytes(value.try_into().unwrap());
            dumped.insert(entry["key"].as_str().unwrap().to_string(), count);
        }
    }
    assert_eq!(dumped, BTreeMap::from([("a".into(), 3), ("b".into(), 1)]));
}

/// `weir test` keeps a plugin's state in memory from line to line, per
/// partition, starting from a seed file; the Rust, Python and Go
/// count-by-key plugins count alike.
#[test]
fn weir_test_carries_state_from_line_to_line() {
    let scratch = workspace_root().join("target").join("test-scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let input = scratch.join(format!("{}.jsonl", unique("state-input")));
    let seed = scratch.join(format!("{}.jsonl", unique("state-seed")));
    std::fs::write(
        &input,
        "{\"key\": \"a\"}\n{\"key\": \"b\"}\n{\"key\": \"a\"}\n{\"key\": \"a\", \"partition\": 1}\n",
    )
    .unwrap();
    // 41 as a big-endian u64.
    std::fs::write(
        &seed,
        "{\"key\": \"b\", \"value\": {\"base64\": \"AAAAAAAAACk=\"}}\n",
    )
    .unwrap();
    for plugin in [
        example_plugin("count-by-key"),
        python_plugin("count_by_key"),
        go_plugin("count-by-key"),
    ] {
        let output = std::process::Command::new(weir_bin())
            .args(["test", "--plugin"])
            .arg(&plugin)
            .arg("--input")
            .arg(&input)
            .arg("--state-seed")
            .arg(&seed)
            .output()
            .unwrap();
        assert!(output.status.success(), "{plugin:?}: {output:?}");
        let values: Vec<String> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                let result: serde_json::Value = serde_json::from_str(line).unwrap();
                result["outputs"][0]["value"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(values, ["1", "42", "2", "1"], "{plugin:?}");
    }
}

/// The Python dedupe plugin, in `weir test`: an id passes once within its
/// window, and again after it.
#[test]
fn python_dedupe_drops_ids_seen_within_the_window() {
    let scratch = workspace_root().join("target").join("test-scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let input = scratch.join(format!("{}.jsonl", unique("dedupe-input")));
    let lines = [(1, 1_000), (1, 2_000), (2, 3_000), (1, 61_001)]
        .map(|(id, ts)| format!("{{\"value\": \"{{\\\"id\\\": {id}}}\", \"timestamp\": {ts}}}\n"));
    std::fs::write(&input, lines.concat()).unwrap();
    let output = std::process::Command::new(weir_bin())
        .args(["test", "--plugin"])
        .arg(python_plugin("dedupe"))
        .args(["--plugin-config", "window=1m", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let passed: Vec<usize> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let result: serde_json::Value = serde_json::from_str(line).unwrap();
            result["outputs"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(passed, [1, 0, 1, 1]);
}

/// A plugin built against contract 0.1.0 (before `state`) still loads and
/// runs: the host matches 0.1.x imports and exports.
#[test]
fn a_plugin_built_against_contract_0_1_0_still_runs() {
    let fixtures = workspace_root().join("tests").join("fixtures");
    let output = std::process::Command::new(weir_bin())
        .args(["test", "--plugin"])
        .arg(
            fixtures
                .join("plugins")
                .join("uppercase-contract-0.1.0.wasm"),
        )
        .arg("--input")
        .arg(fixtures.join("records.jsonl"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let value = first["outputs"][0]["value"].as_str().unwrap_or_default();
    assert_eq!(value, value.to_ascii_uppercase());
    assert!(!value.is_empty());
}

/// Restoring a partition whose changelog holds many keys (100,000 here,
/// `WEIR_STATE_RESTORE_KEYS` for more; docs/RELIABILITY.md has the time for
/// 1,000,000): the first record after the restore sees its key's restored
/// value. Prints how long the restore took.
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_with_many_keys_is_restored_before_its_first_record() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let _serial = serial().await;
    setup();
    let keys = env_or("WEIR_STATE_RESTORE_KEYS", 100_000);
    let (input, output, group) = topics("state-restore").await;
    let changelog = format!("{group}.count_by_key.state");
    create_topic(&changelog, PARTITIONS).await;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let started = std::time::Instant::now();
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..keys {
        // What Weir writes: the input topic, a zero byte, the state key.
        let key = [input.as_bytes(), b"\0", format!("key{i}").as_bytes()].concat();
        let value = 41u64.to_be_bytes();
        let record = FutureRecord::to(&changelog)
            .partition(0)
            .key(&key)
            .payload(&value);
        pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        if pending.len() == 10_000 {
            for delivery in pending.drain(..) {
                delivery.await.unwrap().unwrap();
            }
        }
    }
    for delivery in pending.drain(..) {
        delivery.await.unwrap().unwrap();
    }
    eprintln!(
        "{keys} changelog records produced in {:?}",
        started.elapsed()
    );
    let record = FutureRecord::to(&input)
        .partition(0)
        .key("key7")
        .payload("x");
    producer
        .send(record, Duration::from_secs(10))
        .await
        .unwrap();

    let dir = state_dir("state-restore");
    let args = stateful_args(
        &group,
        (&input, &output),
        &example_plugin("count-by-key"),
        ("", &dir),
        &[],
    );
    let weir = Weir::start(&args);
    let outputs = read_all(&output, 1, Duration::from_secs(120), Duration::ZERO);
    let log = weir.log_text();
    assert!(
        weir.terminate(Duration::from_secs(30)).success(),
        "log:\n{log}"
    );
    assert_eq!(outputs.len(), 1, "log:\n{log}");
    assert_eq!(outputs[0].value_text(), "42", "the restored count goes on");
    let restored = log
        .lines()
        .find(|l| l.contains("restored plugin state") && l.contains("partition=0"))
        .expect("a restore of partition 0");
    assert!(restored.contains(&format!("records={keys}")), "{restored}");
    eprintln!("{restored}");
}

/// A topic a pattern matches later, with more partitions than the changelog
/// topic has so far: the changelog gets as many, and the new topic's
/// partitions restore and count (without it their restores fail, again and
/// again).
#[tokio::test(flavor = "multi_thread")]
async fn a_topic_matched_later_grows_the_changelog() {
    let _serial = serial().await;
    setup();
    let prefix = unique("state-grow");
    let (first, output, group) = (
        format!("{prefix}-a"),
        unique("state-grow-out"),
        unique("state-grow-g"),
    );
    create_topic(&first, 1).await;
    create_topic(&output, 1).await;
    produce(&first, &[TestRecord::new("k", b"x", &[])]).await;
    let dir = state_dir("state-grow");
    let pattern = format!("^{prefix}-.*");
    let args = stateful_args(
        &group,
        (&pattern, &output),
        &example_plugin("count-by-key"),
        ("", &dir),
        &["-X", "topic.metadata.refresh.interval.ms=1000"],
    );
    let weir = Weir::start(&args);
    let mut reader = TopicReader::new(&output);
    assert_eq!(reader.read_until(1, Duration::from_secs(60)), 1);

    let later = format!("{prefix}-b");
    create_topic(&later, PARTITIONS).await;
    let records: Vec<TestRecord> = (0..40)
        .map(|i| TestRecord::new(&format!("key{i}"), b"x", &[]))
        .collect();
    let ends = produce(&later, &records).await;
    assert_eq!(
        ends.len(),
        PARTITIONS as usize,
        "every partition has records"
    );
    let read = reader.read_until(41, Duration::from_secs(90));
    let log = weir.log_text();
    assert!(
        weir.terminate(Duration::from_secs(30)).success(),
        "log:\n{log}"
    );
    assert_eq!(read, 41, "log:\n{log}");
    assert!(
        log.contains("added partitions to the state changelog topic"),
        "log:\n{log}"
    );
}

/// A Rust plugin that never calls the state functions does not import them,
/// so Weir keeps no state for it: no changelog topic appears.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_without_state_gets_no_changelog() {
    let _serial = serial().await;
    setup();
    let (input, output, group) = topics("stateless").await;
    produce(&input, &[TestRecord::new("k", b"x", &[])]).await;
    let args = stateful_args(
        &group,
        (&input, &output),
        &example_plugin("uppercase"),
        ("", &state_dir("stateless")),
        &[],
    );
    let weir = Weir::start(&args);
    let outputs = read_all(&output, 1, Duration::from_secs(60), Duration::ZERO);
    let log = weir.log_text();
    assert!(
        weir.terminate(Duration::from_secs(30)).success(),
        "log:\n{log}"
    );
    assert_eq!(outputs.len(), 1, "log:\n{log}");
    assert!(
        !topic_exists(&format!("{group}.uppercase.state")),
        "log:\n{log}"
    );
    assert!(!log.contains("restoring plugin state"), "log:\n{log}");
}
