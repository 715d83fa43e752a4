//! Observability against the real local broker: `/metrics` counts exactly what
//! flowed (checked against the topics themselves), lag drains to 0, `/readyz`
//! turns ready only once the group is joined, JSON logs carry each record's
//! topic/partition/offset, trace context continues through the plugin (and its
//! spans reach an OTLP receiver), and `weir status` shows it all.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_dev::status::Sample;
use weir_host::telemetry::names;
use weir_test_support::*;

/// Sum of the samples named `name` whose labels include all of `labels`.
fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .fold(0.0, |sum, v| sum + v)
}

/// `base` labels plus `extra`.
fn with<'a>(base: &[(&'a str, &'a str)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    [base, extra].concat()
}

/// Requests received: path and body.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An OTLP/HTTP receiver for the test: accepts every request on a local port
/// and keeps its path and body.
struct Collector {
    addr: String,
    requests: Received,
}

impl Collector {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests: Received = Arc::default();
        let kept = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || serve_connection(stream, &kept));
            }
        });
        Self { addr, requests }
    }

    /// Every span received, decoded.
    fn spans(&self) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        use prost::Message;
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .flat_map(|(path, body)| {
                assert_eq!(path, "/v1/traces");
                ExportTraceServiceRequest::decode(body.as_slice())
                    .expect("an OTLP trace export")
                    .resource_spans
            })
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }
}

/// Answer HTTP/1.1 requests on `stream` with 200 until the client closes it.
fn serve_connection(stream: TcpStream, kept: &Mutex<Vec<(String, Vec<u8>)>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        kept.lock().unwrap().push((path, body));
        writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(path: &std::path::Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The poison plugin's mark for record `i`: 1% traps, 1% errors, 1% fan out
/// past the output limit, one sandbox probe (which prints from the guest).
fn mark(i: usize) -> &'static str {
    match i % 100 {
        _ if i == 500 => "probe",
        13 => "panic",
        71 => "error",
        83 => "fanout9",
        _ => "ok",
    }
}

#[tokio::test]
async fn metrics_count_exactly_what_flowed_and_json_logs_locate_every_record() {
    let _serial = serial().await;
    let (input, output, group) = topics("obs").await;
    let dlq = format!("{input}.dlq");
    let records: Vec<TestRecord> = (0..4_000)
        .map(|i| {
            let value = format!("{}#{i}", mark(i));
            TestRecord::new(&format!("k{i}"), value.as_bytes(), &[])
        })
        .collect();
    let ends = produce(&input, &records).await;
    let plugin = example_plugin("poison");
    let args = pipeline_args(
        &group,
        &input,
        &output,
        &plugin,
        &[
            "--log-format",
            "json",
            "--stats-interval",
            "200ms",
            "--instances",
            "2",
            "--max-outputs-per-record",
            "5",
        ],
    );
    let weir = Weir::start(&args);
    let admin = weir.admin_addr();
    let poison = |m: &str| (0..records.len()).filter(|i| mark(*i) == m).count();
    let failed = poison("panic") + poison("error") + poison("fanout9");
    let good = records.len() - failed;
    let outputs = read_all(
        &output,
        good,
        Duration::from_secs(120),
        Duration::from_secs(1),
    );
    let letters = read_all(
        &dlq,
        failed,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let committed = wait_for_commits(
        &group,
        &input,
        PARTITIONS,
        &all_partitions(&ends),
        Duration::from_secs(30),
    );
    assert_eq!(committed, all_partitions(&ends));
    let (m, _) = wait_for_zero_lag(&admin, &input, &weir);
    assert_eq!((outputs.len(), letters.len()), (good, failed));

    let p = [("pipeline", group.as_str())];
    let total = records.len() as f64;
    assert_eq!(
        metric(&m, names::RECORDS_CONSUMED, &with(&p, &[("topic", &input)])),
        total
    );
    assert_eq!(
        metric(&m, &format!("{}_sum", names::BATCH_RECORDS), &p),
        total,
        "every record was in one batch"
    );
    assert_eq!(
        metric(
            &m,
            names::RECORDS_PROCESSED,
            &with(&p, &[("plugin", "poison")])
        ),
        good as f64
    );
    assert_eq!(
        metric(
            &m,
            names::RECORDS_PRODUCED,
            &with(&p, &[("topic", &output)])
        ),
        outputs.len() as f64,
        "produced = records in the output topic"
    );
    assert_eq!(
        metric(
            &m,
            names::RECORDS_DEAD_LETTERED,
            &with(&p, &[("topic", &dlq)])
        ),
        letters.len() as f64,
        "dead-lettered = records in the dead-letter topic"
    );
    assert_eq!(
        metric(&m, names::RECORDS_PRODUCED, &with(&p, &[("topic", &dlq)])),
        letters.len() as f64
    );
    for (kind, mark) in [
        ("trap", "panic"),
        ("error", "error"),
        ("output-limit", "fanout9"),
    ] {
        let counted = metric(
            &m,
            names::RECORD_FAILURES,
            &with(&p, &[("plugin", "poison"), ("kind", kind)]),
        );
        assert_eq!(counted, poison(mark) as f64, "failures of kind {kind}");
    }
    assert_eq!(
        metric(
            &m,
            &format!("{}_count", names::END_TO_END_LATENCY_SECONDS),
            &p
        ),
        good as f64
    );
    assert_eq!(
        metric(&m, names::ASSIGNED_PARTITIONS, &p),
        f64::from(PARTITIONS)
    );
    assert_eq!(
        metric(&m, names::PARTITIONS_ASSIGNED, &p),
        f64::from(PARTITIONS)
    );
    assert!(metric(&m, names::COMMITS, &with(&p, &[("result", "ok")])) >= 1.0);
    assert!(metric(&m, &format!("{}_count", names::PLUGIN_CALL_SECONDS), &p) > 0.0);
    for partition in 0..PARTITIONS {
        let at = partition.to_string();
        let key = with(&p, &[("topic", &input), ("partition", &at)]);
        assert_eq!(
            metric(&m, names::COMMITTED_OFFSET, &key),
            ends[&partition] as f64
        );
        assert_eq!(
            metric(&m, names::HIGH_WATERMARK, &key),
            ends[&partition] as f64
        );
    }
    let version = sha256_hex(&plugin);
    assert_eq!(
        metric(
            &m,
            names::PLUGIN_INFO,
            &with(&p, &[("plugin", "poison"), ("version", &version)])
        ),
        1.0
    );
    // The gauges are sampled every 500 ms.
    std::thread::sleep(Duration::from_millis(700));
    let m = scrape(&admin);
    assert_eq!(metric(&m, names::IN_FLIGHT_RECORDS, &p), 0.0);
    assert_eq!(metric(&m, names::IN_FLIGHT_BYTES, &p), 0.0);
    assert_eq!(metric(&m, names::PAUSED_PARTITIONS, &p), 0.0);

    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let located = |v: &serde_json::Value| {
        ["topic", "partition", "offset"]
            .iter()
            .all(|k| !v[k].is_null() || !v["span"][k].is_null())
    };
    let failures: Vec<_> = lines
        .iter()
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("record failed"))
        })
        .collect();
    assert_eq!(failures.len(), failed, "one line per failed record");
    let guest: Vec<_> = lines
        .iter()
        .filter(|v| v["target"] == "weir::plugin")
        .collect();
    assert!(
        guest
            .iter()
            .any(|v| v["message"].as_str().unwrap().contains("sandbox probe")),
        "guest lines are logged"
    );
    for line in failures.iter().chain(&guest) {
        assert!(
            located(line),
            "a record's line without topic/partition/offset: {line}"
        );
    }
    for line in &guest {
        assert_eq!(line["span"]["plugin"], "poison", "{line}");
        assert_eq!(line["span"]["version"], &version[..12], "{line}");
    }
}

#[tokio::test]
async fn readiness_lag_traces_and_weir_status_follow_a_slow_stream() {
    let _serial = serial().await;
    let (input, output, group) = topics("lag").await;
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let records: Vec<TestRecord> = numbered(4_000, 32)
        .into_iter()
        .map(|mut r| {
            r.headers
                .push(("traceparent".into(), PARENT.as_bytes().to_vec()));
            r
        })
        .collect();
    let ends = produce(&input, &records).await;
    let collector = Collector::start();
    let otlp = format!("http://{}/v1/traces", collector.addr);
    // 2 ms per record on 2 instances: ≈ 4 s of work, so lag is seen draining.
    let weir = Weir::start(&slow_args(
        &group,
        &input,
        &output,
        2_000,
        &["--stats-interval", "200ms", "--otlp-endpoint", &otlp],
    ));
    let admin = weir.admin_addr();
    // The local broker completes a join only after session.timeout/2 (3 s here).
    let (status, body) = admin_request(&admin, "GET", "/readyz");
    assert_eq!(status, 503, "ready before joining the group: {body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["pipelines"][0]["joined"], false, "{body}");
    assert_eq!(admin_request(&admin, "GET", "/healthz").0, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = admin_request(&admin, "GET", "/readyz");
        if status == 200 {
            let state: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(state["pipelines"][0]["joined"], true, "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready: {body}; log:\n{}",
            weir.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (m, peak) = wait_for_zero_lag(&admin, &input, &weir);
    assert!(
        peak > 0.0,
        "lag was never seen above 0 while the backlog drained"
    );
    let p = [("pipeline", group.as_str())];
    assert_eq!(
        metric(&m, names::RECORDS_CONSUMED, &p),
        records.len() as f64
    );
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "status",
            "--once",
            "--interval",
            "300ms",
            "--admin-addr",
            &admin,
        ])
        .output()
        .unwrap();
    let view = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{view}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        view.contains(&format!(
            "pipeline {group}: consumed 4000  outputs 4000  dead-lettered 0"
        )),
        "{view}"
    );
    assert!(view.contains("plugin slow  version"), "{view}");
    for partition in 0..PARTITIONS {
        let row = view
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{input}/{partition} ")))
            .unwrap_or_else(|| panic!("no row for partition {partition}: {view}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        let end = ends[&partition].to_string();
        assert_eq!(cells[1..4], [end.as_str(), end.as_str(), "0"], "{row}");
    }

    let outputs = read_all(
        &output,
        records.len(),
        Duration::from_secs(30),
        Duration::ZERO,
    );
    // Shutting down sends the spans still batched.
    assert!(weir.terminate(Duration::from_secs(30)).success());
    let spans = collector.spans();
    assert_eq!(spans.len(), records.len(), "one span per traced record");
    let mut located = HashSet::new();
    for span in &spans {
        assert_eq!(hex(&span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&span.parent_span_id), "00f067aa0ba902b7");
        assert_eq!(span.name, format!("process {input}"));
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        let attribute = |key: &str| {
            span.attributes
                .iter()
                .find(|a| a.key == key)
                .and_then(|a| a.value.clone())
                .unwrap_or_else(|| panic!("no {key} on {span:?}"))
        };
        located.insert(format!(
            "{:?}/{:?}",
            attribute("messaging.destination.partition.id"),
            attribute("messaging.kafka.offset")
        ));
    }
    assert_eq!(
        located.len(),
        records.len(),
        "each record's span is its own"
    );
    let exported: HashSet<String> = spans.iter().map(|s| hex(&s.span_id)).collect();
    for o in &outputs {
        let child = o
            .headers
            .iter()
            .find(|(k, _)| k == "traceparent")
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
            .unwrap_or_else(|| panic!("output without traceparent: {o:?}"));
        let parts: Vec<&str> = child.split('-').collect();
        assert_eq!(parts.len(), 4, "{child}");
        assert_eq!(
            (parts[0], parts[1], parts[3]),
            ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
        );
        assert!(
            exported.contains(parts[2]),
            "the output's parent is an exported span: {child}"
        );
    }
}
