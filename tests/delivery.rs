//! Delivery guarantees against the real broker: graceful shutdown mid-stream,
//! crashes (kill -9) at random moments, rebalances while processes join and die
//! (eager and cooperative-sticky), and bounded memory under overload.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir_test_support::*;

/// A number from the environment (the soak script raises them), or `default`.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_stream_commits_exactly_what_was_processed_and_a_restart_resumes() {
    let _serial = serial().await;
    require_broker();
    let (input, output, group) = topics("term").await;
    let count = 30_000;
    let ends = produce(&input, &numbered(count, 50)).await;

    let weir = Weir::start(&slow_args(&group, &input, &output, 100, &[]));
    let mut reader = TopicReader::new(&output);
    let seen = reader.read_until(3_000, Duration::from_secs(60));
    assert!(
        seen >= 3_000,
        "weir produced only {seen} outputs; log:\n{}",
        weir.log_text()
    );
    let log = weir.log_text();
    let status = weir.terminate(Duration::from_secs(20));
    assert!(
        status.success(),
        "SIGTERM must exit 0, got {status}; log:\n{log}"
    );

    let committed = committed_offsets(&group, &input, PARTITIONS);
    let committed_total: i64 = committed.values().map(|o| (*o).max(0)).sum();
    reader.read_for(Duration::from_secs(2));
    let produced = reader.records().len() as i64;
    assert!(
        committed_total < count as i64,
        "the stop must come mid-stream"
    );
    assert_eq!(
        committed_total, produced,
        "committed offsets must cover exactly the records whose outputs exist (1:1 plugin)"
    );

    let weir = Weir::start(&slow_args(&group, &input, &output, 0, &[]));
    let committed = wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(90));
    reader.read_until_quiet(Duration::from_secs(2), Duration::from_secs(60));
    assert!(weir.terminate(Duration::from_secs(20)).success());
    let counts = output_counts(reader.records());
    assert_eq!(counts.len(), count, "every input has an output");
    assert!(
        counts.values().all(|&n| n == 1),
        "no input has two outputs after a graceful stop"
    );
    assert_eq!(committed, all_partitions(&ends));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_loses_nothing_and_duplicates_stay_bounded() {
    let _serial = serial().await;
    require_broker();
    let (input, output, group) = topics("kill").await;
    let count = env_or("WEIR_SOAK_RECORDS", 200_000);
    let crashes = env_or("WEIR_SOAK_KILLS", 5);
    let ends = produce(&input, &numbered(count, 20)).await;
    // What a crash can redo is bounded by what finished since the last commit
    // (commit interval × rate; 20 µs per record on 2 instances caps the rate at
    // 100,000/s) plus what was in flight (4 partitions × (buffer + batch)).
    let extra = [
        "--commit-interval",
        "100ms",
        "--batch-size",
        "100",
        "--partition-buffer",
        "500",
    ];
    let per_crash_bound = 100_000 / 10 + PARTITIONS as usize * (500 + 100);
    let mut reader = TopicReader::new(&output);
    let mut rng = 0x2545_f491_u64;
    let mut kills = 0;
    while kills < crashes {
        let weir = Weir::start(&slow_args(&group, &input, &output, 20, &extra));
        // Wait for this run to make progress, then crash it a random moment later.
        let before = reader.records().len();
        let progressed = reader.read_until(before + 1, Duration::from_secs(60));
        assert!(
            progressed > before,
            "no progress after restart; log:\n{}",
            weir.log_text()
        );
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        reader.read_for(Duration::from_millis(200 + rng % 800));
        if reader.records().len() >= count {
            break;
        }
        weir.kill9();
        kills += 1;
    }
    let weir = Weir::start(&slow_args(&group, &input, &output, 0, &extra));
    // Commits reach the end only after every output is acknowledged.
    let committed = wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(120));
    reader.read_until_quiet(Duration::from_secs(2), Duration::from_secs(60));
    assert!(weir.terminate(Duration::from_secs(20)).success());

    let counts = output_counts(reader.records());
    let missing = (0..count).filter(|i| !counts.contains_key(i)).count();
    assert_eq!(missing, 0, "records lost across {kills} crashes");
    let duplicates = reader.records().len() - count;
    let bound = kills * per_crash_bound;
    eprintln!(
        "kill -9 x{kills}: {} outputs for {count} inputs, {duplicates} duplicates (bound {bound})",
        reader.records().len()
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates exceed the bound {bound}"
    );
    assert_eq!(committed, all_partitions(&ends));
}

/// Start one process, add a second mid-stream, kill the first mid-stream: every
/// record has an output and every partition is committed to its end, in
/// `ordering` mode (revocations drain several calls per partition under `key`).
async fn scale_out_and_fail_over(strategy: &str, ordering: &str) {
    let _serial = serial().await;
    require_broker();
    let (input, output, group) = topics(&format!("rebal-{}", strategy.replace('-', ""))).await;
    // 500 µs per record keeps the stream going for tens of seconds, longer than
    // the local broker takes to rebalance.
    let count = env_or("WEIR_SOAK_RECORDS", 80_000);
    let ends = produce(&input, &numbered(count, 20)).await;
    let strategy_arg = format!("partition.assignment.strategy={strategy}");
    let extra = ["-X", strategy_arg.as_str(), "--ordering", ordering];
    let mut reader = TopicReader::new(&output);

    let first = Weir::start(&slow_args(&group, &input, &output, 500, &extra));
    reader.read_until(count / 20, Duration::from_secs(60));
    let second = Weir::start(&slow_args(&group, &input, &output, 500, &extra));
    let deadline = Instant::now() + Duration::from_secs(90);
    while !second.log_text().contains("partitions assigned") && Instant::now() < deadline {
        reader.read_for(Duration::from_millis(250));
    }
    reader.read_for(Duration::from_secs(2));
    let first_log = first.log_text();
    first.kill9();
    assert!(
        reader.records().len() < count,
        "{strategy}: the stream ended before the fail-over; raise the record count"
    );
    assert!(
        first_log.contains("partitions revoked"),
        "{strategy}: the first process should have given up partitions to the second; log:\n{first_log}"
    );
    let committed = wait_for_commits(&group, &input, PARTITIONS, &ends, Duration::from_secs(180));
    let seen = reader.read_until_quiet(Duration::from_secs(2), Duration::from_secs(60));
    let log = second.log_text();
    assert!(
        second.terminate(Duration::from_secs(20)).success(),
        "log:\n{log}"
    );

    let counts = output_counts(reader.records());
    let missing = (0..count).filter(|i| !counts.contains_key(i)).count();
    assert_eq!(missing, 0, "{strategy}: records lost ({seen} outputs seen)");
    assert_eq!(
        committed,
        all_partitions(&ends),
        "{strategy}: every partition consumed to its end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rebalance_eager_range_loses_nothing() {
    scale_out_and_fail_over("range", "partition").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rebalance_cooperative_sticky_in_key_mode_loses_nothing() {
    scale_out_and_fail_over("cooperative-sticky", "key").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_plugin_with_a_large_backlog_keeps_memory_bounded() {
    let _serial = serial().await;
    require_broker();
    let (input, output, group) = topics("overload").await;
    // 300 MiB of backlog in 1 KiB records; weir may hold 16 MiB in flight and
    // librdkafka prefetches at most 8 MiB.
    let count = 300_000;
    let ends = produce(&input, &numbered(count, 1024)).await;
    let extra = [
        "--max-in-flight-mib",
        "16",
        "-X",
        "queued.max.messages.kbytes=8192",
    ];
    let weir = Weir::start(&slow_args(&group, &input, &output, 20, &extra));
    let want = all_partitions(&ends);
    let mut peak_kib = 0;
    let started = Instant::now();
    let mut committed = BTreeMap::new();
    let admin = weir.admin_addr();
    let mut paused_seen = std::collections::BTreeSet::new();
    while committed != want && started.elapsed() < Duration::from_secs(240) {
        std::thread::sleep(Duration::from_millis(250));
        peak_kib = peak_kib.max(weir.rss_kib().unwrap_or(0));
        committed = committed_offsets(&group, &input, PARTITIONS);
        paused_seen.extend(
            scrape(&admin)
                .into_iter()
                .filter(|s| s.name == "weir_partition_paused" && s.value == 1.0)
                .map(|s| s.labels["partition"].clone()),
        );
    }
    assert!(
        !paused_seen.is_empty(),
        "weir_partition_paused shows the paused partitions"
    );
    let log = weir.log_text();
    assert!(
        weir.terminate(Duration::from_secs(20)).success(),
        "log:\n{log}"
    );
    assert_eq!(committed, want, "the backlog drained completely");
    eprintln!(
        "overload: peak RSS {} MiB while draining {} MiB of backlog",
        peak_kib / 1024,
        count / 1024
    );
    // Bound: wasmtime + librdkafka baseline (~60 MiB) + 16 MiB in flight + 8 MiB
    // prefetch + producer queue; an unbounded buffer would hold the 300 MiB backlog.
    assert!(
        peak_kib < 160 * 1024,
        "peak RSS {} MiB exceeds 160 MiB",
        peak_kib / 1024
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_that_cannot_drain_in_time_exits_non_zero_and_says_what_is_left() {
    let _serial = serial().await;
    require_broker();
    let (input, output, group) = topics("stuck").await;
    produce(&input, &numbered(20, 10)).await;
    // One record takes 3 s, the drain deadline is 1 s.
    let mut args = slow_args(&group, &input, &output, 3_000_000, &["--batch-size", "1"]);
    let i = args.iter().position(|a| a == "--drain-timeout").unwrap();
    args[i + 1] = "1s".into();
    let weir = Weir::start(&args);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !weir.log_text().contains("partitions assigned") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let stopping = Instant::now();
    let (status, log) = weir.terminate_with_log(Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "exit must not wait for the stuck call"
    );
    let last_error = log
        .lines()
        .rfind(|l| l.contains("ERROR"))
        .unwrap_or_default();
    assert!(
        last_error.contains("shutdown gave up after 1s")
            && last_error.contains(&format!("{input}/")),
        "the error names the undrained partition: {last_error}"
    );
}
