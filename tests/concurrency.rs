//! Key-ordered concurrency within a partition, against the real broker: one
//! partition, a plugin that waits 2 ms per record, 8 instances. Under
//! `ordering = "key"` calls run side by side (the pipeline's calls in flight
//! are seen above 1), every key's outputs arrive in input order, and the
//! committed offset reaches the end; a kill -9 mid-stream loses nothing; a
//! record waiting for a retry holds back its own key, not the others.
//! Throughput against `ordering = "partition"` is measured by the bench
//! (BENCHMARKS.md), not asserted here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir_host::telemetry::names;
use weir_test_support::*;

/// Records of `keys` keys, round-robin, value `KEY:SEQ`.
fn keyed(count: usize, keys: usize) -> Vec<TestRecord> {
    (0..count)
        .map(|i| {
            let key = format!("key-{}", i % keys);
            let value = format!("{key}:{:05}", i / keys);
            TestRecord::new(&key, value.as_bytes(), &[])
        })
        .collect()
}

/// The `slow` plugin waiting 2 ms per record (no CPU) on 8 instances, in
/// `ordering` mode.
fn waiting_args(
    group: &str,
    input: &str,
    output: &str,
    ordering: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut all = vec![
        "--plugin-config",
        "delay_us=0",
        "--plugin-config",
        "wait_us=2000",
        "--instances",
        "8",
        "--ordering",
        ordering,
    ];
    all.extend_from_slice(extra);
    pipeline_args(group, input, output, &example_plugin("slow"), &all)
}

/// The values `inputs` become through the `slow` plugin (upper-cased).
fn upper_cased(inputs: &[TestRecord]) -> Vec<Vec<u8>> {
    inputs
        .iter()
        .map(|r| r.value.clone().unwrap().to_ascii_uppercase())
        .collect()
}

/// Assert that every key's values arrive in increasing order and that each
/// `expected` value appears at least once.
fn assert_in_key_order(outputs: &[TestRecord], expected: &[Vec<u8>]) {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for record in outputs {
        let value = String::from_utf8(record.value.clone().unwrap()).unwrap();
        let (key, _) = value.split_once(':').unwrap();
        if let Some(before) = last.get(key) {
            // A redelivery after a crash may repeat a suffix, never reorder one.
            assert!(
                before < &value || outputs.iter().filter(|r| r.value == record.value).count() > 1,
                "{key}: {value} arrived after {before}"
            );
        }
        last.insert(key.to_string(), value);
    }
    let seen: std::collections::BTreeSet<Vec<u8>> =
        outputs.iter().map(|r| r.value.clone().unwrap()).collect();
    for value in expected {
        assert!(
            seen.contains(value),
            "lost {:?}",
            String::from_utf8_lossy(value)
        );
    }
}

/// Output records of one partition are in production order; read per key.
fn read_outputs(output: &str, count: usize) -> Vec<TestRecord> {
    let mut outputs = read_all(
        output,
        count,
        Duration::from_secs(120),
        Duration::from_secs(1),
    );
    // Per output partition the order is the production order; keys never
    // span output partitions (the key hash picks the partition).
    outputs.sort_by_key(|r| (r.partition, r.offset));
    outputs
}

#[tokio::test]
async fn key_ordering_runs_keys_side_by_side_and_keeps_each_key_in_order() {
    let _serial = serial().await;
    let (input, output, group) = (unique("conc-in"), unique("conc-out"), unique("conc-g"));
    create_topic(&input, 1).await;
    create_topic(&output, PARTITIONS).await;
    let inputs = keyed(1_600, 64);
    let ends = produce(&input, &inputs).await;
    let weir = Weir::start(&waiting_args(&group, &input, &output, "key", &[]));
    let mut peak_calls = 0.0f64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed_total(&group, &input) < ends.values().sum::<i64>() {
        assert!(Instant::now() < deadline, "not done in 2 minutes");
        let calls: f64 = scrape(&weir.admin_addr())
            .iter()
            .filter(|s| s.name == names::PLUGIN_CALLS_IN_FLIGHT)
            .map(|s| s.value)
            .sum();
        peak_calls = peak_calls.max(calls);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(
        peak_calls >= 4.0,
        "calls of one partition ran side by side (peak {peak_calls})"
    );
    let outputs = read_outputs(&output, inputs.len());
    assert_eq!(outputs.len(), inputs.len(), "exactly once without a crash");
    assert_in_key_order(&outputs, &upper_cased(&inputs));
}

#[tokio::test]
async fn a_kill_in_key_mode_loses_nothing_and_keeps_key_order() {
    let _serial = serial().await;
    let (input, output, group) = (
        unique("conc-kill-in"),
        unique("conc-kill-out"),
        unique("conc-kill-g"),
    );
    create_topic(&input, 1).await;
    create_topic(&output, PARTITIONS).await;
    let inputs = keyed(2_400, 32);
    let ends = produce(&input, &inputs).await;
    let total: i64 = ends.values().sum();
    let args = waiting_args(
        &group,
        &input,
        &output,
        "key",
        &["--commit-interval", "100ms"],
    );
    let weir = Weir::start(&args);
    // Kill once about a third is committed.
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed_total(&group, &input) < total / 3 {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    weir.kill9();
    let weir = Weir::start(&args);
    wait_for_committed(&group, &input, total, &weir);
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    let outputs = read_outputs(&output, inputs.len());
    assert!(outputs.len() >= inputs.len());
    // What a crash redelivers: the unfinished window (max_uncommitted = 100)
    // plus what finished since the last commit (100 ms at ≈ 2,000 records/s).
    let redelivered = outputs.len() - inputs.len();
    assert!(
        redelivered <= 500,
        "{redelivered} redelivered; the window is 100 unfinished records"
    );
    assert_in_key_order(&outputs, &upper_cased(&inputs));
}

#[tokio::test]
async fn a_record_waiting_for_a_retry_holds_back_only_its_own_key() {
    let _serial = serial().await;
    let (input, output, group) = (
        unique("conc-retry-in"),
        unique("conc-retry-out"),
        unique("conc-retry-g"),
    );
    create_topic(&input, 1).await;
    create_topic(&output, PARTITIONS).await;
    // The first record always asks for a retry (10 s apart, 3 attempts in
    // all, then a dead letter); the others are 300 records of 30 keys, some
    // sharing its first call. The plugin echoes them.
    let mut inputs = vec![TestRecord::new("stuck", b"retry99#stuck", &[])];
    inputs.extend(keyed(300, 30));
    let ends = produce(&input, &inputs).await;
    let args = pipeline_args(
        &group,
        &input,
        &output,
        &example_plugin("poison"),
        &[
            "--ordering",
            "key",
            "--instances",
            "2",
            "--max-attempts",
            "3",
            "--retry-backoff",
            "10s",
        ],
    );
    let weir = Weir::start(&args);
    // Every other key is processed while the stuck record waits for its
    // retries, and the partition's gauge shows its key alone held.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no progress in 2 minutes");
        let samples = scrape(&weir.admin_addr());
        let of = |name: &'static str| samples.iter().filter(move |s| s.name == name);
        let processed: f64 = of(names::RECORDS_PROCESSED).map(|s| s.value).sum();
        let held: Vec<(&str, f64)> = of(names::KEYS_IN_FLIGHT)
            .map(|s| (s.labels["partition"].as_str(), s.value))
            .collect();
        let letters: f64 = of(names::RECORDS_DEAD_LETTERED).map(|s| s.value).sum();
        assert_eq!(
            letters, 0.0,
            "the other keys waited for the stuck record's retries ({processed} processed, keys held {held:?})"
        );
        if processed == 300.0 && held == [("0", 1.0)] {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Then it runs out of attempts, and everything is committed.
    wait_for_committed(&group, &input, ends.values().sum(), &weir);
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    let letters = read_all(
        &format!("{input}.dlq"),
        1,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    assert_eq!(letters[0].value_text(), "retry99#stuck");
    let outputs = read_outputs(&output, 300);
    assert_eq!(outputs.len(), 300);
    let echoed: Vec<Vec<u8>> = inputs[1..]
        .iter()
        .map(|r| r.value.clone().unwrap())
        .collect();
    assert_in_key_order(&outputs, &echoed);
}
