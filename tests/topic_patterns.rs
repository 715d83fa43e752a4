//! Subscribing by topic pattern against the real broker: the topics a pattern
//! matches at start-up are consumed, a topic created while Weir runs is
//! consumed after the next refresh, and a failing record goes to its own
//! topic's dead-letter topic, which the pattern never consumes; a pattern that
//! matches nothing at start-up is ready and consumes its first topic. Mistakes
//! about topics at start-up are in `bad_input.rs`.

use std::time::Duration;
use weir_test_support::*;

/// How often Weir matches the pattern again in this test, in milliseconds.
const REFRESH_MS: u64 = 1000;

#[tokio::test]
async fn a_pattern_consumes_its_topics_and_later_ones_but_never_their_dead_letters() {
    require_broker();
    let prefix = unique("pat");
    let [first, second, later] = ["a", "b", "c"].map(|t| format!("{prefix}-{t}"));
    let output = unique("pat-out");
    for topic in [&first, &second, &output] {
        create_topic(topic, 2).await;
    }
    // A topic of another family: the pattern must leave it alone.
    let other = unique("other");
    create_topic(&other, 1).await;
    produce(&other, &[TestRecord::new("k", b"not-mine#0", &[])]).await;
    produce(
        &first,
        &[
            TestRecord::new("k1", b"first#1", &[]),
            TestRecord::new("k2", b"error#dead", &[]),
        ],
    )
    .await;
    produce(&second, &[TestRecord::new("k3", b"second#1", &[])]).await;

    let refresh = format!("topic.metadata.refresh.interval.ms={REFRESH_MS}");
    let args = pipeline_args(
        &unique("pat-g"),
        &format!("^{prefix}-.*"),
        &output,
        &example_plugin("poison"),
        &["-X", &refresh, "--retry-backoff", "10ms"],
    );
    let weir = Weir::start(&args);
    let mut reader = TopicReader::new(&output);
    reader.read_until(2, Duration::from_secs(60));
    let mut values: Vec<String> = reader.records().iter().map(|r| r.value_text()).collect();
    values.sort();
    assert_eq!(values, ["first#1", "second#1"], "log:\n{}", weir.log_text());

    // A topic created while Weir runs joins after a refresh, with its
    // dead-letter topic created first.
    create_topic(&later, 2).await;
    produce(&later, &[TestRecord::new("k4", b"later#1", &[])]).await;
    reader.read_until(3, Duration::from_secs(60));
    assert_eq!(
        reader.records().last().map(|r| r.value_text()).as_deref(),
        Some("later#1"),
        "log:\n{}",
        weir.log_text()
    );
    assert!(
        topic_exists(&format!("{later}.dlq")),
        "the new topic's dead-letter topic exists"
    );

    // The failing record is in its own topic's dead-letter topic ...
    let dlq = format!("{first}.dlq");
    let letters = read_all(&dlq, 1, Duration::from_secs(30), Duration::from_millis(500));
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].value_text(), "error#dead");
    assert_eq!(
        letters[0].header_text("weir.source.topic").as_deref(),
        Some(first.as_str())
    );
    // ... which the pattern matches by name but never consumes: consumed, the
    // letter would fail again and land in `<dlq>.dlq`. Several refreshes pass.
    std::thread::sleep(Duration::from_millis(4 * REFRESH_MS));
    assert!(
        !topic_exists(&format!("{dlq}.dlq")),
        "a dead-letter topic was consumed; log:\n{}",
        weir.log_text()
    );
    assert_eq!(
        reader.read_for(Duration::from_millis(500)),
        3,
        "nothing else came through"
    );

    // Metrics show each subscribed topic, and only those.
    let mut subscribed: Vec<String> = scrape(&weir.admin_addr())
        .into_iter()
        .filter(|s| s.name == "weir_subscribed_topic" && s.value == 1.0)
        .map(|s| s.labels["topic"].clone())
        .collect();
    subscribed.sort();
    assert_eq!(subscribed, [first, second, later]);
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(log.contains("subscription changed"), "log:\n{log}");
}

#[tokio::test]
async fn a_pattern_that_matches_nothing_yet_is_ready_and_consumes_its_first_topic() {
    require_broker();
    let prefix = unique("later");
    let output = unique("later-out");
    create_topic(&output, 1).await;
    let refresh = format!("topic.metadata.refresh.interval.ms={REFRESH_MS}");
    let args = pipeline_args(
        &unique("later-g"),
        &format!("^{prefix}-.*"),
        &output,
        &example_plugin("uppercase"),
        &["-X", &refresh],
    );
    let weir = Weir::start(&args);
    // Nothing to consume yet is not a failure: the process is ready.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while admin_request(&weir.admin_addr(), "GET", "/readyz").0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "never ready; log:\n{}",
            weir.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let topic = format!("{prefix}-first");
    create_topic(&topic, 1).await;
    produce(&topic, &[TestRecord::new("k", b"hello", &[])]).await;
    let outputs = read_all(
        &output,
        1,
        Duration::from_secs(60),
        Duration::from_millis(500),
    );
    assert_eq!(
        outputs.iter().map(|r| r.value_text()).collect::<Vec<_>>(),
        ["HELLO"],
        "log:\n{}",
        weir.log_text()
    );
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(
        log.contains("topic pattern matches no topic yet"),
        "log:\n{log}"
    );
}
