//! `weir dlq show` and `weir dlq replay` against the local broker: dead
//! letters made by the `poison` plugin, written back to their source topic,
//! interrupted and resumed, refused at `--max-replays`, and finally processed
//! by a fixed plugin exactly once.

use std::collections::BTreeMap;
use std::process::{Command, ExitStatus};
use std::time::Duration;
use weir_test_support::*;

/// Records in the test: every tenth makes the poison plugin panic, the rest
/// make it return an error.
const RECORDS: usize = 1_000;

fn mark(i: usize) -> &'static str {
    if i.is_multiple_of(10) {
        "panic"
    } else {
        "error"
    }
}

/// Run `weir dlq ARGS --brokers B` to its end: exit status, stdout, log.
fn weir_dlq(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(weir_bin())
        .arg("dlq")
        .args(args)
        .args(["--brokers", &brokers()])
        .env("NO_COLOR", "1")
        .output()
        .expect("running weir dlq");
    (
        out.status,
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run the poison pipeline over `input` until `group` has committed `ends`.
fn run_poison(group: &str, input: &str, output: &str, ends: &BTreeMap<i32, i64>) {
    let weir = Weir::start(&pipeline_args(
        group,
        input,
        output,
        &example_plugin("poison"),
        &["--retry-backoff", "10ms"],
    ));
    wait_for_committed(group, input, ends.values().sum(), &weir);
    let status = weir.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}");
}

/// Every record of `topic` from `starts` on (per partition).
fn records_after(topic: &str, starts: &BTreeMap<i32, i64>, expected: usize) -> Vec<TestRecord> {
    read_all(
        topic,
        starts.values().sum::<i64>() as usize + expected,
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .into_iter()
    .filter(|r| r.offset >= starts.get(&r.partition).copied().unwrap_or(0))
    .collect()
}

/// How many times each record index `i` (value `<mark>#i`, any case) occurs.
fn index_counts(records: &[TestRecord]) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        let value = r.value_text();
        let i = value.split('#').nth(1).unwrap().parse().unwrap();
        *counts.entry(i).or_insert(0) += 1;
    }
    counts
}

fn exactly_once(records: &[TestRecord]) {
    let counts = index_counts(records);
    let wrong: Vec<_> = counts.iter().filter(|(_, &n)| n != 1).collect();
    assert!(
        wrong.is_empty() && counts.len() == RECORDS,
        "{} distinct; not once: {:?}",
        counts.len(),
        &wrong[..wrong.len().min(10)]
    );
}

fn total(ends: &BTreeMap<i32, i64>) -> i64 {
    ends.values().sum()
}

/// Each partition's end offset, from reading all of `topic` (at least
/// `records`, then until quiet): tansu lists too low an end offset.
fn end_offsets(topic: &str, records: i64) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for r in read_all(
        topic,
        records as usize,
        Duration::from_secs(60),
        Duration::from_secs(1),
    ) {
        let end = ends.entry(r.partition).or_insert(0);
        *end = (*end).max(r.offset + 1);
    }
    ends
}

#[tokio::test]
async fn dead_letters_are_shown_replayed_resumed_refused_and_processed_once_fixed() {
    require_broker();
    let (input, output, group) = topics("dlq").await;
    let dlq = format!("{input}.dlq");
    let records: Vec<TestRecord> = (0..RECORDS)
        .map(|i| {
            TestRecord::new(
                &format!("k{i}"),
                format!("{}#{i}", mark(i)).as_bytes(),
                &[("trace", &i.to_string())],
            )
        })
        .collect();
    let first = produce(&input, &records).await;

    // 1. The broken plugin dead-letters every record.
    run_poison(&group, &input, &output, &first);
    let (status, shown, log) = weir_dlq(&["show", "--topic", &dlq, "--all", "--json"]);
    assert!(status.success(), "{log}");
    assert_eq!(shown.lines().count(), RECORDS, "{log}");
    let letter: serde_json::Value = serde_json::from_str(shown.lines().next().unwrap()).unwrap();
    assert_eq!(letter["source"]["topic"], input.as_str());
    let (_, traps, _) = weir_dlq(&["show", "--topic", &dlq, "--all", "--kind", "trap"]);
    assert_eq!(traps.lines().count(), RECORDS / 10, "{traps}");
    assert!(
        traps
            .lines()
            .all(|l| l.contains(" trap ") && l.contains("panic#")),
        "{traps}"
    );
    let (_, last, _) = weir_dlq(&["show", "--topic", &dlq, "--last", "2"]);
    assert_eq!(
        last.lines().count(),
        2 * PARTITIONS as usize,
        "the last 2 of each partition"
    );

    // 2. A dry run lists and writes nothing.
    let (status, listed, log) = weir_dlq(&["replay", "--topic", &dlq, "--dry-run"]);
    assert!(status.success(), "{log}");
    assert_eq!(
        listed
            .lines()
            .filter(|l| l.starts_with("replay → "))
            .count(),
        RECORDS
    );
    assert_eq!(
        end_offsets(&input, total(&first)),
        first,
        "a dry run writes nothing"
    );

    // 3. A replay stopped part-way (SIGTERM) commits what the broker
    // acknowledged; the same command resumes with no duplicates or gaps.
    let replay_args: Vec<String> = ["dlq", "replay", "--topic", &dlq, "--brokers", &brokers()]
        .map(String::from)
        .to_vec();
    let mut slow = replay_args.clone();
    slow.extend(["--rate", "250"].map(String::from));
    let mut interrupted = Weir::start(&slow);
    std::thread::sleep(Duration::from_millis(1500));
    interrupted.signal_term();
    let status = interrupted.wait(Duration::from_secs(30));
    let log = interrupted.log_text();
    assert_eq!(
        status.code(),
        Some(1),
        "an interrupted replay says so: {log}"
    );
    assert!(log.contains("run the same command to resume"), "{log}");
    let part: i64 = committed_total(&format!("weir-dlq-replay.{dlq}"), &dlq);
    assert!(
        part > 0 && part < RECORDS as i64,
        "stopped part-way: {part} committed\n{log}"
    );
    let (status, _, log) = weir_dlq(&["replay", "--topic", &dlq]);
    assert!(status.success(), "{log}");
    let replayed = records_after(&input, &first, RECORDS);
    exactly_once(&replayed);
    for r in &replayed {
        assert_eq!(r.header_text("weir.replay.count").as_deref(), Some("1"));
        assert!(
            r.header_text("weir.error.kind").is_none()
                && r.header_text("weir.source.topic").is_none()
        );
        let i = r.value_text().split('#').nth(1).unwrap().to_string();
        assert_eq!(
            r.header_text("trace"),
            Some(i.clone()),
            "the record's own headers stay"
        );
        assert_eq!(r.key_text(), format!("k{i}"));
    }
    let originals: BTreeMap<String, i32> =
        read_all(&input, 2 * RECORDS, Duration::from_secs(30), Duration::ZERO)
            .into_iter()
            .filter(|r| r.offset < first.get(&r.partition).copied().unwrap_or(0))
            .map(|r| (r.key_text(), r.partition))
            .collect();
    assert!(
        replayed
            .iter()
            .all(|r| originals[&r.key_text()] == r.partition),
        "back in their own partitions"
    );

    // 4. Still broken: the replayed records fail again, as letters with
    // weir.replay.count = 1; at --max-replays 1 they are refused.
    let second = end_offsets(&input, 2 * RECORDS as i64);
    run_poison(&group, &input, &output, &second);
    let (status, _, log) = weir_dlq(&["replay", "--topic", &dlq, "--max-replays", "1"]);
    assert!(status.success(), "{log}");
    assert!(log.contains("refused=1000"), "{log}");
    assert_eq!(
        end_offsets(&input, total(&second)),
        second,
        "refused letters are not written back"
    );

    // 5. Fixed (uppercase): a new pass over the letters, in its own group,
    // replays the first failures again (count 0 < 1) and refuses the second;
    // the fixed pipeline outputs each record exactly once.
    let (status, _, log) = weir_dlq(&[
        "replay",
        "--topic",
        &dlq,
        "--max-replays",
        "1",
        "--group",
        &format!("{group}-pass2"),
    ]);
    assert!(status.success(), "{log}");
    let third = end_offsets(&input, 3 * RECORDS as i64);
    assert_eq!(total(&third) - total(&second), RECORDS as i64, "{log}");
    let fixed = Weir::start(&pipeline_args(
        &group,
        &input,
        &output,
        &example_plugin("uppercase"),
        &[],
    ));
    wait_for_committed(&group, &input, total(&third), &fixed);
    assert!(fixed.terminate(Duration::from_secs(30)).success());
    let outputs = read_all(
        &output,
        RECORDS,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    exactly_once(&outputs);
    assert!(outputs
        .iter()
        .all(|o| o.value_text().starts_with("PANIC#") || o.value_text().starts_with("ERROR#")));
}
