//! Plugins' outbound HTTP against the real local broker and a real HTTP
//! service on 127.0.0.1 (`LookupService`): the `enrich` plugin looks each
//! record's key up with `GET {base_url}/KEY`. Granted, records are enriched,
//! a 503 is retried, a redirect to a host not granted is refused; not granted,
//! nothing reaches the service and every record is dead-lettered as denied; a
//! service that never answers is cut off at the plugin's deadline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir_test_support::*;

/// `weir run` arguments for `enrich` with `base_url`, the service `allowed`
/// (or not), and `extra`.
fn enrich_args(
    group: &str,
    input: &str,
    output: &str,
    base_url: &str,
    allowed: Option<&str>,
    extra: &[&str],
) -> Vec<String> {
    let base = format!("base_url={base_url}");
    let mut all = vec![
        "--plugin-config",
        &base,
        "--retry-backoff",
        "10ms",
        "--instances",
        "1",
    ];
    if let Some(origin) = allowed {
        all.extend(["--allowed-outbound-host", origin]);
    }
    all.extend_from_slice(extra);
    pipeline_args(group, input, output, &example_plugin("enrich"), &all)
}

/// Granted: each record's key is looked up and the answer appended; a service
/// answering 503 twice is retried to success; a redirect to a host that is not
/// granted is refused at that hop (the plugin follows redirects, the host
/// checks each request).
#[tokio::test]
async fn granted_lookups_enrich_records_retry_503s_and_refuse_redirects_elsewhere() {
    let _serial = serial().await;
    let service = LookupService::start();
    let (input, output, group) = topics("http-granted").await;
    let mut records: Vec<TestRecord> = (0..20)
        .map(|i| TestRecord::new(&format!("lookup/k{i}"), format!("v{i}").as_bytes(), &[]))
        .collect();
    records.push(TestRecord::new("flaky/f1", b"vf", &[]));
    records.push(TestRecord::new("redirect/r1", b"vr", &[]));
    let ends = produce(&input, &records).await;
    let origin = service.origin();
    let weir = Weir::start(&enrich_args(
        &group,
        &input,
        &output,
        &origin,
        Some(&origin),
        &["--max-attempts", "3"],
    ));
    let (outputs, letters) = outputs_and_letters(&weir, &group, (&input, &output), &ends, (21, 1));
    let metrics = scrape(&weir.admin_addr());
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");

    let got: BTreeMap<String, String> = outputs
        .iter()
        .map(|r| (r.key_text(), r.value_text()))
        .collect();
    assert_eq!(got.len(), 21, "{got:?}\n{log}");
    for i in 0..20 {
        assert_eq!(got[&format!("lookup/k{i}")], format!("v{i}|found-k{i}"));
    }
    assert_eq!(got["flaky/f1"], "vf|found-f1", "the 503s were retried");
    assert_eq!(service.requests("/flaky/f1"), 3);

    assert_eq!(letters.len(), 1, "{log}");
    assert_eq!(letters[0].key_text(), "redirect/r1");
    assert!(
        letters[0]
            .header_text("weir.error.message")
            .unwrap()
            .contains("denied"),
        "{:?}",
        letters[0]
    );
    assert_eq!(
        service.requests("/redirect/r1"),
        1,
        "only the first hop was sent"
    );
    assert!(log.contains("outbound HTTP request denied"), "{log}");
    assert!(
        log.contains("http://127.0.0.2:9/lookup/r1"),
        "the denial names the URL"
    );

    let sent: f64 = metrics
        .iter()
        .filter(|s| s.name == weir_host::telemetry::names::PLUGIN_HTTP_REQUESTS)
        .filter(|s| s.labels.get("allowed") == Some(&origin))
        .map(|s| s.value)
        .sum();
    assert_eq!(
        sent as usize,
        service.total(),
        "requests counted by the host"
    );
    let denied: f64 = metrics
        .iter()
        .filter(|s| s.name == weir_host::telemetry::names::PLUGIN_HTTP_REQUESTS_DENIED)
        .map(|s| s.value)
        .sum();
    assert!(denied >= 1.0, "denials counted");
}

/// The Rust, Python and JavaScript `enrich` plugins, each through its SDK's
/// HTTP helper (`weir_sdk::http`, `weir_sdk.http`, `fetch` with `fetchOk`),
/// enrich the same records identically.
#[tokio::test]
async fn the_rust_python_and_javascript_enrich_plugins_match_record_for_record() {
    let _serial = serial().await;
    let service = LookupService::start();
    let origin = service.origin();
    let input = unique("http-langs-in");
    create_topic(&input, PARTITIONS).await;
    let records: Vec<TestRecord> = (0..40)
        .map(|i| TestRecord::new(&format!("lookup/k{i}"), format!("v{i}").as_bytes(), &[]))
        .collect();
    let ends = produce(&input, &records).await;
    let mut results = Vec::new();
    for plugin in [
        example_plugin("enrich"),
        python_plugin("enrich"),
        js_plugin("enrich"),
    ] {
        let (output, group) = (unique("http-langs-out"), unique("http-langs-g"));
        create_topic(&output, PARTITIONS).await;
        let base = format!("base_url={origin}");
        let args = pipeline_args(
            &group,
            &input,
            &output,
            &plugin,
            &["--plugin-config", &base, "--allowed-outbound-host", &origin],
        );
        let weir = Weir::start(&args);
        let outputs = read_all(
            &output,
            records.len(),
            Duration::from_secs(90),
            Duration::from_secs(1),
        );
        wait_for_committed(&group, &input, ends.values().sum(), &weir);
        let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
        assert!(
            status.success(),
            "{}: exit {status}; log:\n{log}",
            plugin.display()
        );
        let got: BTreeMap<String, String> = outputs
            .iter()
            .map(|r| (r.key_text(), r.value_text()))
            .collect();
        assert_eq!(got.len(), records.len(), "{}: {got:?}", plugin.display());
        results.push(got);
    }
    for i in 0..40 {
        assert_eq!(
            results[0][&format!("lookup/k{i}")],
            format!("v{i}|found-k{i}")
        );
    }
    assert!(results[1] == results[0], "Python differs from Rust");
    assert!(results[2] == results[0], "JavaScript differs from Rust");
    assert_eq!(
        service.total(),
        3 * records.len(),
        "one request per record and plugin"
    );
}

/// Not granted: nothing reaches the service, and every record is
/// dead-lettered with the denial as its error.
#[tokio::test]
async fn without_a_grant_no_request_is_sent_and_every_record_is_dead_lettered() {
    let _serial = serial().await;
    let service = LookupService::start();
    let (input, output, group) = topics("http-denied").await;
    let records: Vec<TestRecord> = (0..10)
        .map(|i| TestRecord::new(&format!("lookup/k{i}"), b"v", &[]))
        .collect();
    let ends = produce(&input, &records).await;
    let weir = Weir::start(&enrich_args(
        &group,
        &input,
        &output,
        &service.origin(),
        None,
        &[],
    ));
    wait_for_committed(&group, &input, ends.values().sum(), &weir);
    let letters = read_all(
        &format!("{input}.dlq"),
        records.len(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert_eq!(letters.len(), records.len(), "{log}");
    for letter in &letters {
        assert_eq!(letter.header_text("weir.error.kind").unwrap(), "error");
        assert!(letter
            .header_text("weir.error.message")
            .unwrap()
            .contains("allowed_outbound_hosts"));
    }
    assert_eq!(service.total(), 0, "nothing was sent");
}

/// A service that never answers: the call is cut off at the plugin's deadline
/// (the guest waits in the host, where epoch interruption cannot reach it),
/// the record is dead-lettered as a timeout, and shutdown is prompt.
#[tokio::test]
async fn a_service_that_never_answers_is_cut_off_at_the_plugin_deadline() {
    let _serial = serial().await;
    let service = LookupService::start();
    let (input, output, group) = topics("http-hang").await;
    let records = [
        TestRecord::new("hang/h1", b"vh", &[]),
        TestRecord::new("lookup/k1", b"v1", &[]),
    ];
    let ends = produce(&input, &records).await;
    let origin = service.origin();
    let weir = Weir::start(&enrich_args(
        &group,
        &input,
        &output,
        &origin,
        Some(&origin),
        &["--plugin-timeout", "500ms"],
    ));
    let (outputs, letters) = outputs_and_letters(&weir, &group, (&input, &output), &ends, (1, 1));
    let stopping = Instant::now();
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    assert_eq!(outputs.len(), 1, "{log}");
    assert_eq!(outputs[0].value_text(), "v1|found-k1");
    assert_eq!(letters.len(), 1, "{log}");
    assert_eq!(letters[0].key_text(), "hang/h1");
    assert_eq!(
        letters[0].header_text("weir.error.kind").unwrap(),
        "timeout"
    );
    assert!(service.requests("/hang/h1") >= 1);
}
