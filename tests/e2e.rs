//! End to end against the real local broker: records go in, `weir` runs an
//! example plugin, and the output topic and the group's commits are checked.

use std::collections::BTreeMap;
use std::time::Duration;
use weir_test_support::*;

const PARTITIONS: i32 = 4;
const RECORDS: usize = 10_000;
const KEYS: usize = 100;

/// Start weir on `input` → `output` with `plugin` and extra args; wait for
/// `expected` outputs and for the commits to reach the input's end offsets;
/// stop it with SIGTERM. Returns the outputs and the final committed offsets.
fn run_pipeline(
    input: &str,
    output: &str,
    group: &str,
    plugin: &std::path::Path,
    extra: &[&str],
    ends: &BTreeMap<i32, i64>,
    expected: usize,
) -> (Vec<TestRecord>, BTreeMap<i32, i64>) {
    let weir = Weir::start(&pipeline_args(group, input, output, plugin, extra));

    let outputs = read_all(
        output,
        expected,
        Duration::from_secs(90),
        Duration::from_secs(2),
    );
    let committed = wait_for_commits(group, input, PARTITIONS, ends, Duration::from_secs(30));
    let log = weir.log_text();
    let status = weir.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "weir exited with {status} after SIGTERM; log:\n{log}"
    );
    (outputs, committed)
}

/// What a record carries, without where it landed: key, value, headers.
type Content = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Vec<u8>)>);

fn content(record: &TestRecord) -> Content {
    (
        record.key.clone(),
        record.value.clone(),
        record.headers.clone(),
    )
}

/// Contents in a canonical order, to compare outputs with expectations as multisets.
fn sorted(contents: impl Iterator<Item = Content>) -> Vec<Content> {
    let mut contents: Vec<Content> = contents.collect();
    contents.sort();
    contents
}

fn keyed_records(value: impl Fn(usize) -> String) -> Vec<TestRecord> {
    (0..RECORDS)
        .map(|i| {
            let key = format!("key-{}", i % KEYS);
            let seq = (i / KEYS).to_string();
            TestRecord::new(
                &key,
                value(i).as_bytes(),
                &[("seq", &seq), ("origin", "e2e")],
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn uppercase_transforms_every_record_exactly_once_and_commits_to_the_end() {
    require_broker();
    let (input, output, group) = (unique("upper-in"), unique("upper-out"), unique("upper-g"));
    create_topic(&input, PARTITIONS).await;
    create_topic(&output, PARTITIONS).await;
    let sent = keyed_records(|i| format!("record {i} of key-{} ünïcode", i % KEYS));
    let ends = produce(&input, &sent).await;
    assert_eq!(ends.values().sum::<i64>(), RECORDS as i64);

    let (outputs, committed) = run_pipeline(
        &input,
        &output,
        &group,
        &example_plugin("uppercase"),
        &[],
        &ends,
        RECORDS,
    );

    // Exactly the expected records: value upper-cased (ASCII), key and headers kept.
    let want = sorted(sent.iter().map(|r| {
        let mut value = r.value.clone().unwrap();
        value.make_ascii_uppercase();
        (r.key.clone(), Some(value), r.headers.clone())
    }));
    let got = sorted(outputs.iter().map(content));
    assert_eq!(got.len(), RECORDS, "output count");
    assert!(
        got == want,
        "outputs differ from the expected transformation"
    );

    // Per-key order: all records of a key are in one partition, in input order.
    let mut by_key: BTreeMap<Vec<u8>, Vec<(i32, i64, u64)>> = BTreeMap::new();
    for r in &outputs {
        let seq: u64 = String::from_utf8(r.headers[0].1.clone())
            .unwrap()
            .parse()
            .unwrap();
        by_key
            .entry(r.key.clone().unwrap())
            .or_default()
            .push((r.partition, r.offset, seq));
    }
    for (key, mut records) in by_key {
        records.sort();
        assert!(
            records.iter().all(|r| r.0 == records[0].0),
            "key {key:?} spread over partitions"
        );
        let seqs: Vec<u64> = records.iter().map(|r| r.2).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {key:?} out of order: {seqs:?}"
        );
    }

    let want_commits: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, ends[&p])).collect();
    assert_eq!(
        committed, want_commits,
        "committed offsets must equal the end offsets"
    );
    assert_eq!(
        committed_offsets(&group, &input, PARTITIONS),
        want_commits,
        "after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_filter_keeps_matching_records_and_commits_the_dropped_ones_too() {
    require_broker();
    let (input, output, group) = (unique("json-in"), unique("json-out"), unique("json-g"));
    create_topic(&input, PARTITIONS).await;
    create_topic(&output, PARTITIONS).await;
    let countries = ["NL", "BE", "DE", "FR", "NL"];
    let sent = keyed_records(|i| {
        format!(
            r#"{{"id":{i},"user":{{"country":"{}"}},"n":{}}}"#,
            countries[i % 5],
            i % 7
        )
    });
    let kept: Vec<&TestRecord> = sent
        .iter()
        .enumerate()
        .filter(|(i, _)| countries[i % 5] == "NL")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(kept.len(), 4_000);
    let ends = produce(&input, &sent).await;

    let (outputs, committed) = run_pipeline(
        &input,
        &output,
        &group,
        &example_plugin("json-filter"),
        &[
            "--plugin-config",
            "field=/user/country",
            "--plugin-config",
            "equals=NL",
        ],
        &ends,
        kept.len(),
    );

    assert_eq!(
        outputs.len(),
        kept.len(),
        "6,000 records must be dropped, 4,000 kept"
    );
    let want = sorted(kept.iter().map(|r| {
        let mut headers = r.headers.clone();
        headers.push(("weir-filter".into(), b"/user/country=NL".to_vec()));
        (r.key.clone(), r.value.clone(), headers)
    }));
    let got = sorted(outputs.iter().map(content));
    assert!(got == want, "kept records differ from the expected ones");
    let want_commits: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, ends[&p])).collect();
    assert_eq!(
        committed, want_commits,
        "dropped records must be committed too"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_resumes_from_the_committed_offsets_without_reprocessing() {
    require_broker();
    let (input, output, group) = (
        unique("resume-in"),
        unique("resume-out"),
        unique("resume-g"),
    );
    create_topic(&input, PARTITIONS).await;
    create_topic(&output, PARTITIONS).await;
    let first: Vec<TestRecord> = (0..1_000)
        .map(|i| TestRecord::new(&format!("k{i}"), format!("a{i}").as_bytes(), &[]))
        .collect();
    let ends = produce(&input, &first).await;
    let (outputs, _) = run_pipeline(
        &input,
        &output,
        &group,
        &example_plugin("uppercase"),
        &[],
        &ends,
        1_000,
    );
    assert_eq!(outputs.len(), 1_000);

    let second: Vec<TestRecord> = (0..500)
        .map(|i| TestRecord::new(&format!("k{i}"), format!("b{i}").as_bytes(), &[]))
        .collect();
    let more = produce(&input, &second).await;
    let ends: BTreeMap<i32, i64> = (0..PARTITIONS)
        .map(|p| (p, more.get(&p).or(ends.get(&p)).copied().unwrap_or(0)))
        .collect();
    let (outputs, committed) = run_pipeline(
        &input,
        &output,
        &group,
        &example_plugin("uppercase"),
        &[],
        &ends,
        1_500,
    );
    assert_eq!(
        outputs.len(),
        1_500,
        "the second run must process only the new records"
    );
    assert_eq!(
        outputs
            .iter()
            .filter(|r| r.value.as_deref().unwrap().starts_with(b"B"))
            .count(),
        500
    );
    assert_eq!(committed, ends);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_javascript_c_and_go_uppercase_plugins_match_the_rust_one_record_for_record() {
    require_broker();
    let input = unique("py-in");
    create_topic(&input, PARTITIONS).await;
    let sent = keyed_records(|i| format!("record {i} of key-{} ünïcode", i % KEYS));
    let ends = produce(&input, &sent).await;
    let rust_out = unique("py-rust-out");
    create_topic(&rust_out, PARTITIONS).await;
    let (from_rust, _) = run_pipeline(
        &input,
        &rust_out,
        &unique("py-rust-g"),
        &example_plugin("uppercase"),
        &[],
        &ends,
        RECORDS,
    );
    let want = sorted(from_rust.iter().map(content));
    for (language, plugin) in [
        ("Python", python_plugin("uppercase")),
        ("JavaScript", js_plugin("uppercase")),
        ("C", c_plugin("uppercase")),
        ("Go", go_plugin("uppercase")),
    ] {
        let output = unique("py-lang-out");
        create_topic(&output, PARTITIONS).await;
        let (outputs, committed) = run_pipeline(
            &input,
            &output,
            &unique("py-lang-g"),
            &plugin,
            &[],
            &ends,
            RECORDS,
        );
        assert_eq!(outputs.len(), RECORDS, "{language}");
        assert!(
            sorted(outputs.iter().map(content)) == want,
            "the {language} plugin's outputs differ from the Rust plugin's"
        );
        assert_eq!(committed, ends, "{language}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_json_enrich_plugin_keeps_and_enriches_with_the_standard_library() {
    require_broker();
    let (input, output, group) = (unique("pyj-in"), unique("pyj-out"), unique("pyj-g"));
    create_topic(&input, PARTITIONS).await;
    create_topic(&output, PARTITIONS).await;
    let countries = ["NL", "BE", "DE"];
    let sent = keyed_records(|i| {
        format!(
            r#"{{"id":{i},"country":"{}","email":"u{i}@Mail{}.example"}}"#,
            countries[i % 3],
            i % 4
        )
    });
    let ends = produce(&input, &sent).await;
    let kept = (0..RECORDS).filter(|i| i % 3 == 0).count();
    let (outputs, committed) = run_pipeline(
        &input,
        &output,
        &group,
        &python_plugin("json_enrich"),
        &[
            "--plugin-config",
            "field=country",
            "--plugin-config",
            "equals=NL",
        ],
        &ends,
        kept,
    );
    assert_eq!(outputs.len(), kept);
    for o in &outputs {
        let doc: serde_json::Value = serde_json::from_slice(o.value.as_deref().unwrap()).unwrap();
        assert_eq!(doc["country"], "NL");
        let id = doc["id"].as_u64().unwrap();
        assert_eq!(doc["email_domain"], format!("mail{}.example", id % 4));
    }
    assert_eq!(committed, ends);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_and_javascript_json_filters_match_the_rust_one_record_for_record() {
    require_broker();
    let input = unique("jf-in");
    let outputs = [
        unique("jf-rust-out"),
        unique("jf-py-out"),
        unique("jf-js-out"),
    ];
    create_topic(&input, PARTITIONS).await;
    for topic in &outputs {
        create_topic(topic, PARTITIONS).await;
    }
    // Strings, numbers, booleans and missing fields; a quarter match.
    let sent = keyed_records(|i| match i % 8 {
        0 | 4 => format!(r#"{{"id":{i},"country":"NL","n":{}}}"#, i % 3),
        1 => format!(r#"{{"id":{i},"country":"BE"}}"#),
        2 => format!(r#"{{"id":{i},"country":42}}"#),
        3 => format!(r#"{{"id":{i}}}"#),
        5 => format!(r#"{{"id":{i},"country":true}}"#),
        6 => format!(r#"[{i}]"#),
        _ => format!(r#"{{"id":{i},"country":"nl"}}"#),
    });
    let ends = produce(&input, &sent).await;
    let config = [
        "--plugin-config",
        "field=country",
        "--plugin-config",
        "equals=NL",
    ];
    let plugins = [
        example_plugin("json-filter"),
        python_plugin("json_filter"),
        js_plugin("json_filter"),
    ];
    let mut results = Vec::new();
    for (plugin, output) in plugins.iter().zip(&outputs) {
        let (got, committed) = run_pipeline(
            &input,
            output,
            &unique("jf-g"),
            plugin,
            &config,
            &ends,
            RECORDS / 4,
        );
        assert_eq!(got.len(), RECORDS / 4, "{}", plugin.display());
        assert_eq!(committed, ends);
        results.push(sorted(got.iter().map(content)));
    }
    assert!(
        results[1] == results[0],
        "the Python json_filter differs from the Rust one"
    );
    assert!(
        results[2] == results[0],
        "the JavaScript json_filter differs from the Rust one"
    );
}
