//! Guarantees that need a broker with on-disk storage and full transactions
//! (noida-db, started by `WEIR_BROKER=noida scripts/broker start` on port 19092,
//! or `WEIR_TEST_TXN_BROKERS`): exactly-once across a stop and resume, and a
//! broker restart mid-stream.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

fn setup() {
    let addr =
        std::env::var("WEIR_TEST_TXN_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_string());
    use_brokers(&addr);
    require_broker();
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_mode_commits_outputs_and_offsets_together() {
    let _serial = serial().await;
    setup();
    let (input, output, group) = topics("eos").await;
    let count = 20_000;
    let ends = produce(&input, &numbered(count, 0)).await;
    let extra = [
        "--exactly-once",
        "--commit-interval",
        "200ms",
        "--stats-interval",
        "200ms",
    ];

    // A first run stopped mid-stream, then a second run to the end.
    let weir = Weir::start(&slow_args(&group, &input, &output, 100, &extra));
    wait_for_committed(&group, &input, 2_000, &weir);
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "log:\n{log}");
    let first_run = committed_total(&group, &input);
    assert!(
        first_run < count as i64,
        "the first run must stop mid-stream"
    );

    let weir = Weir::start(&slow_args(&group, &input, &output, 0, &extra));
    let committed = wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(120));
    // The offsets committed with the transactions count for the lag metric
    // (the consumer's own statistics never see them).
    wait_for_zero_lag(&weir.admin_addr(), &input, &weir);
    let log = weir.log_text();
    assert!(
        weir.terminate(Duration::from_secs(30)).success(),
        "log:\n{log}"
    );
    assert_eq!(committed, all_partitions(&ends), "all input committed");

    let mut reader = TopicReader::read_committed(&output);
    reader.read_until(count, Duration::from_secs(60));
    reader.read_until_quiet(Duration::from_secs(3), Duration::from_secs(30));
    let counts = output_counts(reader.records());
    let missing = (0..count).filter(|i| !counts.contains_key(i)).count();
    let repeated = counts.values().filter(|&&n| n > 1).count();
    let mut everything = TopicReader::new(&output);
    everything.read_until_quiet(Duration::from_secs(2), Duration::from_secs(30));
    eprintln!(
        "exactly-once, stopped at {first_run}: {} committed outputs for {count} inputs; {} outputs incl. aborted",
        reader.records().len(),
        everything.records().len()
    );
    assert_eq!(missing, 0, "inputs without a committed output");
    assert_eq!(repeated, 0, "inputs with more than one committed output");
}

fn broker_script(action: &str) {
    let status = Command::new(workspace_root().join("scripts").join("broker"))
        .arg(action)
        .env("WEIR_BROKER", "noida")
        .status()
        .unwrap();
    assert!(status.success(), "scripts/broker {action} failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let _serial = serial().await;
    setup();
    if std::env::var("WEIR_TEST_TXN_BROKERS").is_ok() {
        eprintln!("skipping: this test restarts the local noida-db broker only");
        return;
    }
    let (input, output, group) = topics("restart").await;
    let count = 30_000;
    let ends = produce(&input, &numbered(count, 0)).await;
    let weir = Weir::start(&slow_args(&group, &input, &output, 200, &[]));
    wait_for_committed(&group, &input, 2_000, &weir);
    broker_script("stop");
    let down_at = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    broker_script("start");
    eprintln!("broker was down for {:?}", down_at.elapsed());
    let committed = wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(180));
    let log = weir.log_text();
    assert!(
        weir.terminate(Duration::from_secs(30)).success(),
        "log:\n{log}"
    );
    assert_eq!(
        committed,
        all_partitions(&ends),
        "weir resumed after the restart; log:\n{log}"
    );
    let mut reader = TopicReader::new(&output);
    reader.read_until(count, Duration::from_secs(60));
    reader.read_until_quiet(Duration::from_secs(2), Duration::from_secs(30));
    let counts = output_counts(reader.records());
    let missing = (0..count).filter(|i| !counts.contains_key(i)).count();
    assert_eq!(missing, 0, "records lost across the broker restart");
}

/// Crash an exactly-once pipeline with SIGKILL at random moments, restarting it
/// each time: a `read_committed` reader sees exactly one output per input, so
/// the outputs and input offsets of every transaction open at a crash were
/// aborted together. The process keeps its `--instance-id`, so each restart
/// fences its predecessor's producer and takes its partitions back at once.
#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_holds_across_kill_9() {
    let _serial = serial().await;
    setup();
    let (input, output, group) = topics("eos-kill").await;
    let count = 60_000;
    let crashes = 5;
    let ends = produce(&input, &numbered(count, 0)).await;
    let extra = [
        "--exactly-once",
        "--commit-interval",
        "200ms",
        "--batch-size",
        "100",
        "--instance-id",
        "eos-kill",
    ];
    let mut rng = 0x9e37_79b9_u64;
    let mut kills = 0;
    while kills < crashes {
        let before = committed_total(&group, &input);
        let weir = Weir::start(&slow_args(&group, &input, &output, 100, &extra));
        wait_for_committed(&group, &input, before + 500, &weir);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(100 + rng % 700));
        if committed_total(&group, &input) >= count as i64 {
            break;
        }
        weir.kill9();
        kills += 1;
        eprintln!(
            "kill -9 #{kills} at {} committed",
            committed_total(&group, &input)
        );
    }
    let weir = Weir::start(&slow_args(&group, &input, &output, 0, &extra));
    let committed = wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(180));
    let log = weir.log_text();
    assert!(
        weir.terminate(Duration::from_secs(30)).success(),
        "log:\n{log}"
    );
    assert_eq!(committed, all_partitions(&ends), "all input committed");

    let mut reader = TopicReader::read_committed(&output);
    reader.read_until(count, Duration::from_secs(60));
    reader.read_until_quiet(Duration::from_secs(3), Duration::from_secs(30));
    let counts = output_counts(reader.records());
    let missing = (0..count).filter(|i| !counts.contains_key(i)).count();
    let repeated = counts.values().filter(|&&n| n > 1).count();
    let mut everything = TopicReader::new(&output);
    everything.read_until_quiet(Duration::from_secs(2), Duration::from_secs(30));
    eprintln!(
        "exactly-once, kill -9 x{kills}: {} committed outputs for {count} inputs; {} outputs incl. aborted",
        reader.records().len(),
        everything.records().len()
    );
    assert_eq!(missing, 0, "inputs without a committed output");
    assert_eq!(repeated, 0, "inputs with more than one committed output");
    assert!(
        everything.records().len() > count,
        "the crashes left no aborted outputs, so the test proved nothing"
    );
}
