//! The sandbox and the failure policy against the real local broker, with the
//! `poison` test plugin: records that make it panic, loop, allocate without end,
//! refuse, fan out too far, fail retryably, or probe the sandbox.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use weir_test_support::*;

/// Memory cap per plugin instance in these tests, in MiB.
const MEMORY_CAP_MIB: u64 = 64;
/// Plugin instances in these tests.
const INSTANCES: u64 = 2;
/// What the host may use besides its plugins' capped memories: librdkafka's
/// buffers, wasmtime's code, the records in flight.
const HOST_MARGIN_MIB: u64 = 100;

/// `weir run` arguments for the poison plugin reading `input`, on `instances`
/// plugin instances.
fn poison_args(
    group: &str,
    input: &str,
    output: &str,
    instances: u64,
    extra: &[&str],
) -> Vec<String> {
    let (instances, cap) = (instances.to_string(), MEMORY_CAP_MIB.to_string());
    let mut all = vec![
        "--instances",
        &instances,
        "--plugin-memory-mib",
        &cap,
        "--plugin-timeout",
        "200ms",
        "--retry-backoff",
        "10ms",
        "--max-outputs-per-record",
        "5",
    ];
    all.extend_from_slice(extra);
    pipeline_args(group, input, output, &example_plugin("poison"), &all)
}

/// Record `i` of a stream where `mark(i)` names the poison (or `ok`).
fn marked(count: usize, mark: impl Fn(usize) -> &'static str) -> Vec<TestRecord> {
    (0..count)
        .map(|i| {
            let value = format!("{}#{i}", mark(i));
            TestRecord::new(&format!("k{i}"), value.as_bytes(), &[("n", &i.to_string())])
        })
        .collect()
}

/// The poison mark for record `i` of the big stream: 1% of each kind. Outputs
/// routed to a partition that does not exist are refused by the producer, at
/// hand-over or in the delivery report, depending on what metadata it has.
fn one_percent_each(i: usize) -> &'static str {
    match i % 100 {
        13 => "panic",
        37 => "loop",
        59 => "alloc",
        71 => "error",
        83 => "fanout9",
        91 => "partition99",
        _ => "ok",
    }
}

/// The `weir.error.kind` each mark must produce.
fn expected_kind(mark: &str) -> &'static str {
    match mark {
        "panic" => "trap",
        "loop" => "timeout",
        "alloc" => "oom",
        "error" => "error",
        "fanout9" => "output-limit",
        "partition99" => "produce",
        other => panic!("no failure expected for {other}"),
    }
}

/// Wait for `group`'s commits on `input` to equal `expected`, and fail if they do not.
fn assert_commits(group: &str, input: &str, expected: &BTreeMap<i32, i64>) {
    let committed = wait_for_commits(group, input, PARTITIONS, expected, Duration::from_secs(30));
    assert_eq!(&committed, expected, "committed offsets of {group}");
}

fn header<'a>(record: &'a TestRecord, name: &str) -> &'a str {
    let value = record
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("header {name} missing on {record:?}"));
    std::str::from_utf8(&value.1).unwrap()
}

fn value_text(record: &TestRecord) -> String {
    String::from_utf8(record.value.clone().unwrap()).unwrap()
}

/// The `good` outputs from `output` and the `bad` dead letters from `dlq`.
fn outputs_and_letters(
    output: &str,
    good: usize,
    dlq: &str,
    bad: usize,
) -> (Vec<TestRecord>, Vec<TestRecord>) {
    let outputs = read_all(
        output,
        good,
        Duration::from_secs(120),
        Duration::from_secs(2),
    );
    let letters = read_all(dlq, bad, Duration::from_secs(60), Duration::from_secs(2));
    (outputs, letters)
}

/// The outputs are the records whose value is `passing`, each once, unchanged
/// (the poison plugins echo).
fn assert_passed_through(
    outputs: &[TestRecord],
    records: &[TestRecord],
    passing: impl Fn(&str) -> bool,
) {
    let mut got: Vec<String> = outputs.iter().map(value_text).collect();
    got.sort();
    let mut want: Vec<String> = records
        .iter()
        .map(value_text)
        .filter(|v| passing(v))
        .collect();
    want.sort();
    assert_eq!(got.len(), want.len(), "outputs");
    assert!(got == want, "the outputs differ from the passing records");
}

#[tokio::test]
async fn poison_records_land_in_the_dead_letter_topic_and_the_rest_flows_on() {
    let _serial = serial().await;
    let (input, output, group) = topics("poison").await;
    let records = marked(10_000, one_percent_each);
    let ends = produce(&input, &records).await;
    // Where each record landed, to check the source headers of dead letters.
    let consumed: HashMap<String, (i32, i64, Option<i64>)> = read_all(
        &input,
        records.len(),
        Duration::from_secs(60),
        Duration::ZERO,
    )
    .into_iter()
    .map(|r| (value_text(&r), (r.partition, r.offset, r.timestamp)))
    .collect();
    let dlq = format!("{input}.dlq");

    let mut weir = Weir::start(&poison_args(&group, &input, &output, INSTANCES, &[]));
    let poison: Vec<&TestRecord> = records
        .iter()
        .filter(|r| !value_text(r).starts_with("ok#"))
        .collect();
    let good = records.len() - poison.len();
    let (outputs, letters) = outputs_and_letters(&output, good, &dlq, poison.len());
    assert_commits(&group, &input, &all_partitions(&ends));
    assert!(weir.is_running(), "weir exited; log:\n{}", weir.log_text());
    let peak_mib = weir.peak_rss_kib().unwrap() / 1024;
    eprintln!("poison run: peak RSS {peak_mib} MiB");
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");

    // Every good record came out once, unchanged (the plugin echoes).
    assert_passed_through(&outputs, &records, |v| v.starts_with("ok#"));

    // Every poison record is in the dead-letter topic once, as consumed, with
    // headers saying why.
    assert_eq!(letters.len(), poison.len(), "dead letters");
    let by_value: HashMap<String, &TestRecord> =
        letters.iter().map(|r| (value_text(r), r)).collect();
    for original in &poison {
        let value = value_text(original);
        let letter = by_value
            .get(&value)
            .unwrap_or_else(|| panic!("{value} missing from {dlq}"));
        assert_eq!(letter.key, original.key, "{value}: key");
        assert_eq!(
            letter.headers[..original.headers.len()],
            original.headers[..],
            "{value}: original headers first"
        );
        let mark = value.split('#').next().unwrap();
        assert_eq!(
            header(letter, "weir.error.kind"),
            expected_kind(mark),
            "{value}"
        );
        assert!(!header(letter, "weir.error.message").is_empty());
        let attempts: u32 = header(letter, "weir.error.attempts").parse().unwrap();
        assert!((1..=2).contains(&attempts), "{value}: {attempts} attempts");
        assert!(
            header(letter, "weir.error.timestamp")
                .parse::<u64>()
                .unwrap()
                > 0
        );
        assert_eq!(header(letter, "weir.plugin.name"), "poison");
        assert_eq!(header(letter, "weir.plugin.version").len(), 64);
        let (partition, offset, timestamp) = consumed[&value];
        assert!(timestamp.is_some());
        assert_eq!(letter.timestamp, timestamp, "{value}: timestamp");
        assert_eq!(header(letter, "weir.source.topic"), input);
        assert_eq!(
            header(letter, "weir.source.partition"),
            partition.to_string()
        );
        assert_eq!(header(letter, "weir.source.offset"), offset.to_string());
    }

    // A plugin hitting its memory cap does not grow the host past the caps.
    let bound = INSTANCES * MEMORY_CAP_MIB + HOST_MARGIN_MIB;
    assert!(
        peak_mib <= bound,
        "peak RSS {peak_mib} MiB above {bound} MiB ({INSTANCES} instances × {MEMORY_CAP_MIB} MiB cap + {HOST_MARGIN_MIB} MiB)"
    );
    // A guest panic's message reaches the log through the captured stderr.
    assert!(
        log.contains("poison: panic on offset") && log.contains("stream=\"stderr\""),
        "guest stderr not in the log:\n{}",
        &log[..log.len().min(20_000)]
    );
}

/// The Go test plugin's marks for record `i`: 5% of each misbehaviour.
fn go_marks(i: usize) -> &'static str {
    match i % 20 {
        3 => "panic",
        7 => "loop",
        11 => "alloc",
        15 => "error",
        17 => "print",
        _ => "ok",
    }
}

#[tokio::test]
async fn a_go_plugin_that_panics_loops_or_allocates_without_end_is_contained() {
    let _serial = serial().await;
    let (input, output, group) = topics("go-poison").await;
    let records = marked(200, go_marks);
    let ends = produce(&input, &records).await;
    let cap = MEMORY_CAP_MIB.to_string();
    let mut weir = Weir::start(&pipeline_args(
        &group,
        &input,
        &output,
        &go_plugin("poison"),
        &[
            "--instances",
            "2",
            "--plugin-memory-mib",
            &cap,
            "--plugin-timeout",
            "500ms",
            "--retry-backoff",
            "10ms",
        ],
    ));
    let passing = |v: &str| v.starts_with("ok#") || v.starts_with("print#");
    let good = records.iter().filter(|r| passing(&value_text(r))).count();
    let (outputs, letters) =
        outputs_and_letters(&output, good, &format!("{input}.dlq"), records.len() - good);
    assert_commits(&group, &input, &all_partitions(&ends));
    assert!(weir.is_running(), "weir exited; log:\n{}", weir.log_text());
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");

    assert_passed_through(&outputs, &records, passing);
    let mut kinds: Vec<(String, String)> = letters
        .iter()
        .map(|l| {
            let mark = value_text(l).split('#').next().unwrap().to_string();
            (mark, header(l, "weir.error.kind").to_string())
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            ("alloc".to_string(), "oom".to_string()),
            ("error".into(), "error".into()),
            ("loop".into(), "timeout".into()),
            ("panic".into(), "error".into()),
        ],
        "each misbehaviour's kind"
    );
    assert_eq!(letters.len(), records.len() - good, "one dead letter each");
    // The SDK recovers a panic and says so; stdout reaches the host's log.
    let panicked = letters
        .iter()
        .find(|l| value_text(l).starts_with("panic#"))
        .unwrap();
    assert!(
        header(panicked, "weir.error.message").contains("panic"),
        "{panicked:?}"
    );
    assert!(
        log.contains("poison plugin printed print#17"),
        "the plugin's stdout is not in the log:\n{}",
        &log[..log.len().min(20_000)]
    );
}

#[tokio::test]
async fn a_retryable_error_is_retried_and_succeeds_or_is_dead_lettered_when_retries_run_out() {
    let _serial = serial().await;
    let (input, output, group) = topics("retry").await;
    // Every 10th record fails twice then succeeds (3rd attempt, within the default
    // 3); every 25th fails 9 times, more than the attempts allow.
    let records = marked(500, |i| match (i % 10, i % 25) {
        (_, 0) => "retry9",
        (0, _) => "retry2",
        _ => "ok",
    });
    let ends = produce(&input, &records).await;
    // One instance, so the plugin's per-record attempt counter sees every attempt.
    let weir = Weir::start(&poison_args(&group, &input, &output, 1, &[]));
    let exhausted = records
        .iter()
        .filter(|r| value_text(r).starts_with("retry9"))
        .count();
    let outputs = read_all(
        &output,
        records.len() - exhausted,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    let letters = read_all(
        &format!("{input}.dlq"),
        exhausted,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    assert_commits(&group, &input, &all_partitions(&ends));
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for o in &outputs {
        *counts.entry(value_text(o)).or_default() += 1;
    }
    for r in &records {
        let value = value_text(r);
        let expected = usize::from(!value.starts_with("retry9"));
        assert_eq!(
            counts.get(&value).copied().unwrap_or(0),
            expected,
            "{value} outputs"
        );
    }
    assert_eq!(letters.len(), exhausted);
    for letter in &letters {
        assert!(value_text(letter).starts_with("retry9"));
        assert_eq!(header(letter, "weir.error.kind"), "error");
        assert_eq!(header(letter, "weir.error.attempts"), "3");
        assert!(header(letter, "weir.error.message").contains("gave up after 3 attempts"));
    }
}

#[tokio::test]
async fn the_sandbox_denies_files_environment_and_sockets() {
    let _serial = serial().await;
    let (input, output, group) = topics("probe").await;
    let records = marked(20, |i| if i % 5 == 0 { "probe" } else { "ok" });
    let ends = produce(&input, &records).await;
    let weir = Weir::start(&poison_args(&group, &input, &output, INSTANCES, &[]));
    let outputs = read_all(
        &output,
        records.len(),
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_commits(&group, &input, &all_partitions(&ends));
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");

    let reports: Vec<String> = outputs
        .iter()
        .map(value_text)
        .filter(|v| v.starts_with("file="))
        .collect();
    assert_eq!(reports.len(), 4, "{reports:?}");
    for report in &reports {
        for probe in ["file=denied", "env=denied", "socket=denied"] {
            assert!(report.contains(probe), "{probe} not in {report}");
        }
    }
    // The plugin says so in the host's log, through its log import and its stdout.
    assert!(log.contains("sandbox probe: file=denied"), "{log}");
    assert!(log.contains("sandbox probe via stdout"), "{log}");
    assert!(log.contains("plugin=\"poison\""), "{log}");
}

#[tokio::test]
async fn skip_goes_on_without_a_dead_letter_topic_and_stop_halts_at_the_record() {
    let _serial = serial().await;
    let (input, output, group) = topics("policy").await;
    let records = marked(200, |i| if i == 100 { "error" } else { "ok" });
    let ends = produce(&input, &records).await;

    // skip: everything but the poison comes out; all offsets are committed.
    let weir = Weir::start(&poison_args(
        &group,
        &input,
        &output,
        INSTANCES,
        &["--on-failure", "skip"],
    ));
    let outputs = read_all(
        &output,
        records.len() - 1,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_commits(&group, &input, &all_partitions(&ends));
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert_eq!(outputs.len(), records.len() - 1);
    assert!(log.contains("skipping it"), "{log}");
    assert!(!log.contains("created dead-letter topic"), "{log}");

    // stop: a new group halts at the poison record with a clear error; that
    // partition's commit stops right before it.
    let stop_group = format!("{group}-stop");
    let (status, log) = run_to_exit(
        &poison_args(
            &stop_group,
            &input,
            &output,
            INSTANCES,
            &["--on-failure", "stop"],
        ),
        Duration::from_secs(60),
    );
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        log.contains("failed on the record") && log.contains("policy = \"stop\""),
        "{log}"
    );
    let poison_at = read_all(
        &input,
        records.len(),
        Duration::from_secs(30),
        Duration::ZERO,
    )
    .into_iter()
    .find(|r| value_text(r) == "error#100")
    .map(|r| (r.partition, r.offset))
    .unwrap();
    let committed = committed_offsets(&stop_group, &input, PARTITIONS);
    assert_eq!(
        committed[&poison_at.0], poison_at.1,
        "commit stops at the poison record"
    );

    // stop, on an output the broker refuses for good (at hand-over or in its
    // delivery report): the same clear stop, not a restart loop.
    let (refused_input, refused_output, refused_group) = topics("policy-refused").await;
    produce(
        &refused_input,
        &marked(200, |i| if i == 100 { "partition99" } else { "ok" }),
    )
    .await;
    let (status, log) = run_to_exit(
        &poison_args(
            &refused_group,
            &refused_input,
            &refused_output,
            INSTANCES,
            &["--on-failure", "stop"],
        ),
        Duration::from_secs(60),
    );
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        log.contains("failed on the record (produce") && !log.contains("restarting it"),
        "{log}"
    );
}

#[tokio::test]
async fn refused_outputs_are_dead_lettered_and_a_dead_letter_too_large_is_written_without_its_value(
) {
    let _serial = serial().await;
    let (input, output, group) = topics("refused").await;
    // Records marked grow3000 produce an output larger than the producer allows
    // below; record 100 is itself too large for its dead letter to be written whole.
    let mut records = marked(200, |i| if i % 50 == 7 { "grow3000" } else { "ok" });
    let mut big = b"error#100#".to_vec();
    big.resize(3000, b'x');
    records[100] = TestRecord::new("k100", &big, &[]);
    let ends = produce(&input, &records).await;
    let limit = ["-X", "message.max.bytes=2000"];

    // The grown outputs are refused by the producer: their inputs go to the
    // dead-letter topic. Record 100's letter is refused whole and written again
    // without the record's value; nothing holds any partition.
    let weir = Weir::start(&poison_args(&group, &input, &output, INSTANCES, &limit));
    assert_commits(&group, &input, &all_partitions(&ends));
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(log.contains("refuses this dead letter for good"), "{log}");
    let outputs: std::collections::HashSet<String> = read_all(
        &output,
        records.len(),
        Duration::from_secs(10),
        Duration::from_secs(1),
    )
    .iter()
    .map(value_text)
    .collect();
    for r in records.iter().filter(|r| value_text(r).starts_with("ok#")) {
        assert!(
            outputs.contains(&value_text(r)),
            "{} has no output",
            value_text(r)
        );
    }
    let letters = read_all(
        &format!("{input}.dlq"),
        5,
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    assert_eq!(letters.len(), 5, "{letters:?}");
    for l in &letters {
        match &l.value {
            Some(value) => {
                assert!(value.starts_with(b"grow"), "{l:?}");
                assert_eq!(header(l, "weir.error.kind"), "produce");
            }
            None => {
                assert_eq!(header(l, "weir.error.kind"), "error");
                assert!(
                    header(l, "weir.letter.truncated").contains("too large"),
                    "{l:?}"
                );
                assert!(l.headers.iter().all(|(k, _)| k.starts_with("weir.")));
            }
        }
    }
    assert_eq!(letters.iter().filter(|l| l.value.is_none()).count(), 1);
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_written_at_all_holds_its_partition() {
    let _serial = serial().await;
    let (input, output, group) = topics("unwritable").await;
    // Record 25 fails with a 3,000-byte error message: under this limit not
    // even its letter without the value (the failure headers alone) can be written.
    let mut records = marked(100, |_| "ok");
    let big = b"error3000#25".to_vec();
    records[25] = TestRecord::new("k25", &big, &[]);
    let ends = produce(&input, &records).await;
    let stuck = read_all(
        &input,
        records.len(),
        Duration::from_secs(30),
        Duration::ZERO,
    )
    .into_iter()
    .find(|r| r.value.as_deref() == Some(&big[..]))
    .map(|r| (r.partition, r.offset))
    .unwrap();
    let limit = ["-X", "message.max.bytes=2000"];

    // The partition waits at the record (commit exactly there, no new batches)
    // while the others flow.
    let mut weir = Weir::start(&poison_args(&group, &input, &output, INSTANCES, &limit));
    let mut expected = all_partitions(&ends);
    expected.insert(stuck.0, stuck.1);
    assert_commits(&group, &input, &expected);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        committed_offsets(&group, &input, PARTITIONS)[&stuck.0],
        stuck.1,
        "the commit never passes a record whose dead letter is not written"
    );
    assert!(weir.is_running(), "weir exited; log:\n{}", weir.log_text());
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(
        log.contains("cannot write a record to its dead-letter topic"),
        "{log}"
    );
    assert!(status.success(), "the stop gives up the retry; log:\n{log}");
    assert_eq!(
        committed_offsets(&group, &input, PARTITIONS)[&stuck.0],
        stuck.1,
        "giving up at the stop leaves the record uncommitted"
    );

    // Without the size limit, a restart writes the held record's whole dead
    // letter and reaches the end.
    let weir = Weir::start(&poison_args(&group, &input, &output, INSTANCES, &[]));
    assert_commits(&group, &input, &all_partitions(&ends));
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    let letters = read_all(
        &format!("{input}.dlq"),
        1,
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].value.as_deref(), Some(&big[..]));
}

/// A plugin may write only to the output topic and the topics the operator
/// allows: it cannot forge dead letters or feed topics it was not given.
#[tokio::test]
async fn outputs_to_topics_not_allowed_fail_their_record_as_a_contract_breach() {
    let _serial = serial().await;
    let (input, output, group) = topics("allowed").await;
    let audit = unique("allowed-audit");
    create_topic(&audit, 1).await;
    let dlq = format!("{input}.dlq");
    let values = [
        "ok#0".to_string(),
        format!("to:{dlq}#1"),
        format!("to:{audit}#2"),
        format!("to:{}#3", unique("allowed-elsewhere")),
    ];
    let records: Vec<TestRecord> = values
        .iter()
        .map(|v| TestRecord::new("k", v.as_bytes(), &[]))
        .collect();
    let ends = produce(&input, &records).await;
    let pattern = format!("{}*", &audit[..audit.len() - 2]);
    let weir = Weir::start(&poison_args(
        &group,
        &input,
        &output,
        1,
        &["--allowed-output-topic", &pattern],
    ));
    // Read the dead-letter topic last: Weir creates it at start-up.
    let outputs = read_all(&output, 1, Duration::from_secs(60), Duration::from_secs(1));
    let audited = read_all(&audit, 1, Duration::from_secs(10), Duration::from_secs(1));
    let letters = read_all(&dlq, 2, Duration::from_secs(30), Duration::from_secs(1));
    // One key: every record is in one partition, the others are empty.
    wait_for_committed(&group, &input, ends.values().sum(), &weir);
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");

    assert_eq!(outputs.iter().map(value_text).collect::<Vec<_>>(), ["ok#0"]);
    assert_eq!(
        audited.iter().map(value_text).collect::<Vec<_>>(),
        [values[2].clone()]
    );
    let mut lettered: Vec<String> = letters.iter().map(value_text).collect();
    lettered.sort();
    let mut expected = [values[1].clone(), values[3].clone()];
    expected.sort();
    assert_eq!(lettered, expected, "{log}");
    for letter in &letters {
        assert_eq!(header(letter, "weir.error.kind"), "contract");
        assert!(header(letter, "weir.error.message").contains("allowed_output_topics"));
    }
}

/// A plugin that points many outputs at one buffer of its memory (as C can)
/// claims gigabytes of outputs while using 32 MiB: the host checks the limits
/// while lifting, so those records fail as `output-limit` and nothing of them
/// is copied into the host.
#[tokio::test]
async fn outputs_aliasing_one_buffer_fail_their_record_without_being_copied() {
    let _serial = serial().await;
    let (input, output, group) = topics("alias").await;
    let records: Vec<TestRecord> = (0..8)
        .map(|i| TestRecord::new(&format!("k{i}"), format!("r#{i}").as_bytes(), &[]))
        .collect();
    let ends = produce(&input, &records).await;
    let cap = MEMORY_CAP_MIB.to_string();
    let args = pipeline_args(
        &group,
        &input,
        &output,
        &c_plugin("alias_outputs"),
        &["--instances", "1", "--plugin-memory-mib", &cap],
    );
    let weir = Weir::start(&args);
    assert_commits(&group, &input, &all_partitions(&ends));
    // Read the dead-letter topic once Weir has created it (at start-up).
    let dlq = format!("{input}.dlq");
    let letters = read_all(
        &dlq,
        records.len(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    let peak_mib = weir.peak_rss_kib().unwrap() / 1024;
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert_eq!(letters.len(), records.len(), "dead letters; log:\n{log}");
    for letter in &letters {
        assert_eq!(header(letter, "weir.error.kind"), "output-limit", "{log}");
        assert!(header(letter, "weir.error.message").contains("plugin.max_output_bytes_per_record"));
    }
    // Each record claims 64 outputs of 32 MiB: 2 GiB. The host holds one
    // instance's capped memory and its own margin, nothing of that.
    let bound = MEMORY_CAP_MIB + HOST_MARGIN_MIB;
    assert!(
        peak_mib < bound,
        "peak RSS {peak_mib} MiB, bound {bound} MiB"
    );
}

/// A guest that sleeps in a WASI call is not running wasm, so epoch
/// interruption cannot stop it; the call deadline stops it all the same.
#[tokio::test]
async fn a_plugin_asleep_in_the_host_is_stopped_at_its_deadline() {
    let _serial = serial().await;
    let (input, output, group) = topics("asleep").await;
    let records = [
        TestRecord::new("k", b"sleep#0", &[]),
        TestRecord::new("k", b"ok#1", &[]),
    ];
    let ends = produce(&input, &records).await;
    let weir = Weir::start(&poison_args(&group, &input, &output, 1, &[]));
    let outputs = read_all(&output, 1, Duration::from_secs(30), Duration::from_secs(1));
    let letters = read_all(
        &format!("{input}.dlq"),
        1,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    wait_for_committed(&group, &input, ends.values().sum(), &weir);
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert_eq!(outputs.iter().map(value_text).collect::<Vec<_>>(), ["ok#1"]);
    assert_eq!(letters.len(), 1, "{log}");
    assert_eq!(header(&letters[0], "weir.error.kind"), "timeout");
    assert!(header(&letters[0], "weir.error.message").contains("waiting in the host"));
}

/// A host panic while handling one record (here deliberate: the test build's
/// fault injection) fails that record through the policy, or, on the poll
/// thread, passes it on without the headers being read; Weir keeps running.
#[tokio::test]
async fn a_host_panic_fails_its_record_instead_of_ending_weir() {
    let _serial = serial().await;
    let (input, output, group) = topics("panics").await;
    let records = [
        TestRecord::new("k", b"weir-fault:panic-in-call#0", &[]),
        TestRecord::new("k", b"weir-fault:panic-in-hand-over#1", &[]),
        TestRecord::new("k", b"weir-fault:panic-in-poll#2", &[("h", "v")]),
        TestRecord::new("k", b"ok#3", &[("h", "v")]),
    ];
    let ends = produce(&input, &records).await;
    let mut weir = Weir::start(&poison_args(&group, &input, &output, 1, &[]));
    let outputs = read_all(&output, 2, Duration::from_secs(30), Duration::from_secs(1));
    wait_for_committed(&group, &input, ends.values().sum(), &weir);
    let letters = read_all(
        &format!("{input}.dlq"),
        2,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    assert!(weir.is_running(), "weir exited; log:\n{}", weir.log_text());
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    let produced: Vec<(String, usize)> = outputs
        .iter()
        .map(|r| (value_text(r), r.headers.len()))
        .collect();
    assert_eq!(
        produced,
        [
            ("weir-fault:panic-in-poll#2".to_string(), 0),
            ("ok#3".to_string(), 1)
        ],
        "{log}"
    );
    let mut lettered: Vec<String> = letters.iter().map(value_text).collect();
    lettered.sort();
    assert_eq!(
        lettered,
        [
            "weir-fault:panic-in-call#0",
            "weir-fault:panic-in-hand-over#1"
        ],
        "{log}"
    );
    for letter in &letters {
        assert_eq!(header(letter, "weir.error.kind"), "panic");
        assert!(header(letter, "weir.error.message").contains("deliberate fault"));
    }
    assert!(log.contains("passing it on without headers"), "{log}");
}

/// A plugin call may log a bounded number of lines through the `log` import
/// and through stdout; the rest are dropped and counted, not written.
#[tokio::test]
async fn a_call_that_floods_the_log_is_cut_at_its_budget_and_the_rest_counted() {
    let _serial = serial().await;
    let (input, output, group) = topics("log-flood").await;
    produce(&input, &[TestRecord::new("k", b"log1500#0", &[])]).await;
    let weir = Weir::start(&poison_args(&group, &input, &output, 1, &[]));
    let outputs = read_all(&output, 1, Duration::from_secs(60), Duration::from_secs(1));
    assert_eq!(
        outputs.len(),
        1,
        "no output in 60 s; log:\n{}",
        weir.log_text()
    );
    let dropped = |stream: &str| -> f64 {
        scrape(&weir.admin_addr())
            .iter()
            .filter(|s| s.name == weir_host::telemetry::names::PLUGIN_LOG_LINES_DROPPED)
            .filter(|s| s.labels.get("stream").map(String::as_str) == Some(stream))
            .map(|s| s.value)
            .sum()
    };
    assert_eq!(dropped("log"), 500.0, "lines over the log import's budget");
    assert_eq!(dropped("stdout"), 500.0, "lines over stdout's budget");
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(
        log.contains("poison: log line 999"),
        "the budget's lines are logged"
    );
    assert!(
        !log.contains("poison: log line 1000"),
        "lines past the budget are not"
    );
}

/// A chained plugin is called with at most `batch.max_records` records at a
/// time, however many outputs the plugin before it made; and the outputs a
/// record ends up with after the whole chain are held to the per-record limits.
#[tokio::test]
async fn a_chain_keeps_batches_bounded_and_checks_each_records_combined_outputs() {
    let _serial = serial().await;
    let (input, output, group) = topics("chain-limits").await;
    let dir = workspace_root()
        .join("target")
        .join("test-scratch")
        .join(unique("chain-limits"));
    std::fs::create_dir_all(&dir).unwrap();
    let second = dir.join("second.wasm");
    std::fs::copy(example_plugin("poison"), &second).unwrap();
    // One key, so one partition and batches of 10: each `fanout5` record makes
    // 5 outputs in the first plugin, and each of those 5 more in the second.
    let mut records = marked(10, |_| "fanout5");
    records.extend(marked(10, |_| "ok"));
    for r in &mut records {
        r.key = Some(b"k".to_vec());
    }
    produce(&input, &records).await;
    let second = second.display().to_string();
    let weir = Weir::start(&poison_args(
        &group,
        &input,
        &output,
        1,
        &["--batch-size", "10", "--then", &second],
    ));
    let outputs = read_all(&output, 10, Duration::from_secs(60), Duration::from_secs(2));
    let letters = read_all(
        &format!("{input}.dlq"),
        10,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    let calls = |plugin: &str| -> f64 {
        let name = format!("{}_count", weir_host::telemetry::names::PLUGIN_CALL_SECONDS);
        scrape(&weir.admin_addr())
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| s.labels.get("plugin").map(String::as_str) == Some(plugin))
            .map(|s| s.value)
            .sum()
    };
    let (first_calls, second_calls) = (calls("poison"), calls("second"));
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");

    assert_eq!(outputs.len(), 10, "only the ok records have outputs");
    assert!(outputs.iter().all(|o| value_text(o).starts_with("ok#")));
    assert_eq!(letters.len(), 10);
    for letter in &letters {
        assert_eq!(header(letter, "weir.error.kind"), "output-limit");
    }
    // 60 records reach the second plugin (50 + 10), at most 10 per call.
    assert!(
        second_calls >= 6.0,
        "the second plugin was called {second_calls} times (the first {first_calls})"
    );
}
