//! Guarantees that need a broker with on-disk storage and full transactions
//! (noida-db, started by `WEIR_BROKER=noida scripts/broker start` on port 19092,
//! or `WEIR_TEST_TXN_BROKERS`): exactly-once across a stop and resume, and a
//! broker restart mid-stream.

use std::process::Command;
use std::time::{Duration, Instant};
use weir_test_support::*;

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

    assert_exactly_one_output_each(&output, count, &format!("stopped at {first_run}"));
}

/// Check that a `read_committed` reader of `output` sees exactly one output for
/// each of `count` inputs; returns how many outputs the topic holds in all,
/// those of aborted transactions included.
fn assert_exactly_one_output_each(output: &str, count: usize, run: &str) -> usize {
    let mut reader = TopicReader::read_committed(output);
    reader.read_until(count, Duration::from_secs(60));
    reader.read_until_quiet(Duration::from_secs(3), Duration::from_secs(30));
    let counts = output_counts(reader.records());
    let missing = (0..count).filter(|i| !counts.contains_key(i)).count();
    let repeated = counts.values().filter(|&&n| n > 1).count();
    let mut everything = TopicReader::new(output);
    everything.read_until_quiet(Duration::from_secs(2), Duration::from_secs(30));
    eprintln!(
        "exactly-once, {run}: {} committed outputs for {count} inputs; {} outputs incl. aborted",
        reader.records().len(),
        everything.records().len()
    );
    assert_eq!(missing, 0, "inputs without a committed output");
    assert_eq!(repeated, 0, "inputs with more than one committed output");
    everything.records().len()
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
/// It runs under `ordering = "key"` with 4 calls in flight per partition:
/// calls finish out of order, hand-over stays in offset order, so each
/// transaction still covers exactly the records before its position.
#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_holds_across_kill_9() {
    let _serial = serial().await;
    setup();
    let (input, output, group) = topics("eos-kill").await;
    let count = env_or("WEIR_SOAK_RECORDS", 60_000);
    let crashes = env_or("WEIR_SOAK_KILLS", 5);
    let ends = produce(&input, &numbered(count, 0)).await;
    let extra = [
        "--exactly-once",
        "--commit-interval",
        "200ms",
        "--batch-size",
        "100",
        "--instance-id",
        "eos-kill",
        "--ordering",
        "key",
        "--max-concurrency",
        "4",
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

    let written = assert_exactly_one_output_each(&output, count, &format!("kill -9 x{kills}"));
    assert!(
        written > count,
        "the crashes left no aborted outputs, so the test proved nothing"
    );
}

/// In exactly-once mode, a dead letter the producer refuses (too large) holds
/// its partition exactly at its record, like at-least-once mode, while the other
/// partitions commit: the records before it in its batch commit in one
/// transaction, and the letter is retried in later ones. After a restart
/// without the limit, every input has exactly one committed output or dead letter.
#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_dead_letter_holds_only_its_partition() {
    let _serial = serial().await;
    setup();
    let (input, output, group) = topics("eos-dlq").await;
    let count = 400;
    let mut records: Vec<TestRecord> = (0..count)
        .map(|i| TestRecord::new(&format!("k{i}"), format!("v{i}-ok").as_bytes(), &[]))
        .collect();
    // Refused by the plugin with a 3,000-byte message: too large for the
    // producer below to write its dead letter, even without the record's value.
    let big = b"error3000#300".to_vec();
    records[300] = TestRecord::new("k300", &big, &[]);
    let ends = produce(&input, &records).await;
    let stuck = read_all(&input, count, Duration::from_secs(30), Duration::ZERO)
        .into_iter()
        .find(|r| r.value.as_deref() == Some(&big[..]))
        .map(|r| (r.partition, r.offset))
        .unwrap();
    assert!(
        stuck.1 > 0,
        "the refused record must not open its partition"
    );
    let plugin = example_plugin("poison");
    let extra = [
        "--exactly-once",
        "--commit-interval",
        "200ms",
        "--instance-id",
        "eos-dlq",
        "--retry-backoff",
        "50ms",
    ];
    let mut limited = extra.to_vec();
    limited.extend(["-X", "message.max.bytes=2000"]);

    let weir = Weir::start(&pipeline_args(&group, &input, &output, &plugin, &limited));
    let mut expected = all_partitions(&ends);
    expected.insert(stuck.0, stuck.1);
    wait_for_commits(
        &group,
        &input,
        PARTITIONS,
        &expected,
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        committed_offsets(&group, &input, PARTITIONS),
        expected,
        "the commit stops exactly at the record whose dead letter is not written"
    );
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(
        log.contains("cannot write a record to its dead-letter topic")
            && !log.contains("restarting it"),
        "{log}"
    );
    assert!(status.success(), "the stop gives up the retry; log:\n{log}");

    let weir = Weir::start(&pipeline_args(&group, &input, &output, &plugin, &extra));
    let committed = wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(60));
    assert!(weir.terminate(Duration::from_secs(30)).success());
    assert_eq!(committed, all_partitions(&ends));

    let mut reader = TopicReader::read_committed(&output);
    reader.read_until(count - 1, Duration::from_secs(30));
    reader.read_until_quiet(Duration::from_secs(2), Duration::from_secs(30));
    let counts = output_counts(reader.records());
    let missing = (0..count)
        .filter(|&i| i != 300 && !counts.contains_key(&i))
        .count();
    assert_eq!(missing, 0, "inputs without a committed output");
    assert!(
        counts.values().all(|&n| n == 1),
        "an input with two outputs"
    );
    let mut letters = TopicReader::read_committed(&format!("{input}.dlq"));
    letters.read_until_quiet(Duration::from_secs(2), Duration::from_secs(30));
    assert_eq!(letters.records().len(), 1, "one dead letter, written once");
    assert_eq!(letters.records()[0].value.as_deref(), Some(&big[..]));
}

/// A batch whose task is aborted after it handed an output to the open
/// transaction (what a drain deadline does to a batch in flight) poisons the
/// transaction: the next commit aborts it, with the outputs of every batch in
/// it, and reports `HalfBatch`, instead of publishing an output without its
/// input offset. Drives Weir's own transaction code against the broker.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_aborted_halfway_poisons_its_transaction() {
    use rdkafka::consumer::Consumer;
    use rdkafka::producer::FutureRecord;
    use std::sync::Arc;
    use weir_host::commit::{BatchScope, CommitError, Committer};
    use weir_host::kafka::WeirProducer;

    /// Enter the open transaction and hand it `value` as a batch's output.
    async fn hand_over<'t>(
        committer: &'t Committer,
        producer: &WeirProducer,
        output: &str,
        value: &str,
    ) -> BatchScope<'t> {
        let entered = committer.begin_batch().await;
        producer
            .send(
                FutureRecord::<str, str>::to(output).payload(value),
                Duration::from_secs(10),
            )
            .await
            .expect("the broker takes the output");
        entered
    }
    /// Commit on a blocking thread, as Weir's consumer thread does.
    async fn commit(committer: &Arc<Committer>) -> Result<bool, CommitError> {
        let committer = Arc::clone(committer);
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || committer.commit(&handle))
            .await
            .unwrap()
    }

    let _serial = serial().await;
    setup();
    let (input, output, group) = topics("eos-poison").await;
    let mut config = weir_host::config::PipelineSettings {
        brokers: brokers(),
        group: group.clone(),
        subscription: weir_host::config::Subscription::new(&[input.as_str()], Default::default())
            .unwrap(),
        output_topic: output.clone(),
        transactional_id: Some(format!("weir-{group}-eos-poison")),
        instance_id: Some("eos-poison".into()),
        ..Default::default()
    };
    config
        .librdkafka
        .insert("session.timeout.ms".into(), "6000".into());
    // The transaction is fenced by the group's generation: join it first.
    let consumer = weir_host::kafka::create_consumer(&config).unwrap();
    consumer.subscribe(&[input.as_str()]).unwrap();
    let consumer = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while consumer.assignment().unwrap().count() == 0 {
            assert!(Instant::now() < deadline, "the consumer never joined");
            consumer.poll(Duration::from_millis(100));
        }
        Arc::new(consumer)
    })
    .await
    .unwrap();
    let producer = weir_host::kafka::create_producer(&config).unwrap();
    let metrics = weir_host::telemetry::Metrics::new().pipeline(&group);
    let committer = Arc::new(
        Committer::transactional(Arc::clone(&consumer), producer.clone(), metrics).unwrap(),
    );

    hand_over(&committer, &producer, &output, "a")
        .await
        .close(&input, 0, 1);
    assert!(commit(&committer).await.unwrap());

    // A batch hands over "b" and is aborted before it records its offsets.
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let task = {
        let (committer, producer, output) =
            (Arc::clone(&committer), producer.clone(), output.clone());
        tokio::spawn(async move {
            let _entered = hand_over(&committer, &producer, &output, "b").await;
            sent_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    };
    sent_rx.await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // A later batch completes normally in the same transaction.
    hand_over(&committer, &producer, &output, "c")
        .await
        .close(&input, 0, 3);
    let result = commit(&committer).await;
    assert!(matches!(result, Err(CommitError::HalfBatch)), "{result:?}");

    assert_eq!(
        committed_offsets(&group, &input, PARTITIONS)[&0],
        1,
        "the aborted transaction's offsets are not committed"
    );
    let values = |reader: &TopicReader| {
        let mut v: Vec<String> = reader
            .records()
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
            .collect();
        v.sort();
        v
    };
    let mut committed = TopicReader::read_committed(&output);
    committed.read_until_quiet(Duration::from_secs(2), Duration::from_secs(20));
    assert_eq!(
        values(&committed),
        ["a"],
        "only the first transaction is visible"
    );
    let mut everything = TopicReader::new(&output);
    everything.read_until(3, Duration::from_secs(20));
    assert_eq!(
        values(&everything),
        ["a", "b", "c"],
        "b and c were written, then aborted"
    );
}

/// A drain in exactly-once mode keeps committing every `commit_interval`, so a
/// long drain never holds one transaction open past the broker's transaction
/// timeout (which would abort it and fail the final commit): here four
/// partitions finish their last 0.7-second batches one after another on a
/// single plugin instance, and offsets are committed well before the process
/// exits.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_drain_keeps_committing_its_transactions() {
    let _serial = serial().await;
    setup();
    let (input, output, group) = topics("eos-drain").await;
    let count = 4_000;
    produce(&input, &numbered(count, 0)).await;
    let plugin = example_plugin("slow");
    let args = pipeline_args(
        &group,
        &input,
        &output,
        &plugin,
        &[
            "--exactly-once",
            "--commit-interval",
            "200ms",
            "--instances",
            "1",
            "--batch-size",
            "100",
            "--plugin-config",
            "delay_us=7000",
            "--plugin-timeout",
            "5s",
        ],
    );
    let mut weir = Weir::start(&args);
    wait_for_committed(&group, &input, 100, &weir);
    weir.signal_term();
    let stopping = Instant::now();
    // Timer commits end with the consumer loop, before the drain starts.
    weir.wait_for_log(
        "shutdown requested; finishing in-flight batches",
        Duration::from_secs(5),
    );
    let before = committed_total(&group, &input);
    let mut first_commit = None;
    while weir.is_running() {
        if first_commit.is_none() && committed_total(&group, &input) > before {
            first_commit = Some(stopping.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let exited = stopping.elapsed();
    let status = weir.wait(Duration::from_secs(1));
    let log = weir.log_text();
    assert!(status.success(), "log:\n{log}");
    let first_commit = first_commit.expect("the drain committed while the process ran");
    eprintln!("drain: first commit after {first_commit:?}, exit after {exited:?}");
    assert!(
        exited - first_commit >= Duration::from_secs(1),
        "the only commit was the final one (first {first_commit:?}, exit {exited:?})"
    );
    let committed = committed_total(&group, &input) as usize;
    let mut reader = TopicReader::read_committed(&output);
    reader.read_until(committed, Duration::from_secs(30));
    reader.read_until_quiet(Duration::from_secs(2), Duration::from_secs(30));
    assert_eq!(
        reader.records().len(),
        committed,
        "one committed output per committed input"
    );
}

/// Exactly-once through rebalances: a second process joins the group
/// mid-stream, then the first stops; commits fenced by an older generation
/// are aborted, and a `read_committed` reader sees one output per input.
#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_holds_across_rebalances() {
    let _serial = serial().await;
    setup();
    let (input, output, group) = topics("eos-rebalance").await;
    let count = 40_000;
    let ends = produce(&input, &numbered(count, 0)).await;
    let extra = ["--exactly-once", "--commit-interval", "200ms"];
    let first = Weir::start(&slow_args(&group, &input, &output, 400, &extra));
    wait_for_committed(&group, &input, 4_000, &first);
    let second = Weir::start(&slow_args(&group, &input, &output, 400, &extra));
    // Both share the partitions for a while before the first leaves.
    second.wait_for_log("partitions assigned", Duration::from_secs(30));
    let shared_from = committed_total(&group, &input);
    wait_for_committed(&group, &input, shared_from + 4_000, &second);
    let (status, log) = first.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "log:\n{log}");
    let committed = wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(120));
    let log = second.log_text();
    assert!(
        second.terminate(Duration::from_secs(30)).success(),
        "log:\n{log}"
    );
    assert_eq!(committed, all_partitions(&ends), "all input committed");
    assert_exactly_one_output_each(&output, count, "two processes, join and leave");
}
