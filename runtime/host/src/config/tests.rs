//! Parsing, defaults and validation of configurations.

use super::*;
use std::time::Duration;

#[test]
fn defaults_are_sane_and_a_full_file_parses() {
    let d = RunConfig::default();
    assert_eq!(d.batch.max_records, 500);
    assert_eq!(d.plugin.timeout, Duration::from_secs(5));
    assert_eq!(d.auto_offset_reset, OffsetReset::Earliest);

    let c: RunConfig = toml::from_str(
        r#"
        brokers = "k:9092"
        group = "g"
        topics = ["a", "b"]
        output_topic = "out"
        auto_offset_reset = "latest"
        drain_timeout = "10s"
        commit_interval = "200ms"
        max_in_flight_mib = 16
        [plugin]
        path = "x.wasm"
        timeout = "250ms"
        config = { field = "country" }
        [plugin.failure]
        policy = "skip"
        max_attempts = 5
        retry_backoff = "10ms"
        [batch]
        linger = "1ms"
        [librdkafka]
        "security.protocol" = "SSL"
        "#,
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.plugin.timeout, Duration::from_millis(250));
    assert_eq!(c.plugin.config["field"], "country");
    assert_eq!(c.librdkafka["security.protocol"], "SSL");
    assert_eq!(c.plugin.display_name(), "x");
    assert_eq!(c.commit_interval, Duration::from_millis(200));
    assert_eq!(c.max_in_flight_bytes(), 16 << 20);
    assert_eq!(c.plugin.failure.policy, FailurePolicy::Skip);
    assert_eq!(c.plugin.failure.max_attempts, 5);
    assert_eq!(c.plugin.failure.retry_backoff, Duration::from_millis(10));
    assert_eq!(c.dead_letter_topic("a"), "a.dlq");
}

#[test]
fn a_dead_letter_topic_must_not_be_an_input_or_the_output() {
    let mut c: RunConfig = toml::from_str(
        "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\n[plugin]\npath = \"p.wasm\"\n[plugin.failure]\ndlq_topic = \"o\"",
    )
    .unwrap();
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("dlq_topic"), "{err}");
    c.plugin.failure.dlq_topic = None;
    c.topics.push("t.dlq".into());
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("`t.dlq`"), "{err}");
    c.plugin.failure.policy = FailurePolicy::Skip;
    c.validate().unwrap();
}

#[test]
fn topic_patterns_keep_the_dead_letter_rules_and_librdkafkas_refresh_values() {
    let mut c: RunConfig = toml::from_str(
        "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"^orders-.*\"]\noutput_topic = \"o\"\nallowed_output_topics = [\"orders-audit*\"]\n[plugin]\npath = \"p.wasm\"\n[plugin.failure]\ndlq_topic = \"o\"",
    )
    .unwrap();
    // Only patterns as inputs: a fixed dead-letter topic still may not be the output.
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("dlq_topic"), "{err}");
    c.plugin.failure.dlq_topic = Some("failed".into());
    c.validate().unwrap();
    // Topics the plugins may write to are never read back by a pattern.
    let topics = c
        .subscription()
        .unwrap()
        .resolve(["orders-eu", "orders-audit-eu", "failed", "o"]);
    assert_eq!(topics.into_iter().collect::<Vec<_>>(), ["orders-eu"]);
    // Nor are the changelog topics of the plugins' state.
    c.group = "orders-g".into();
    let topics = c
        .subscription()
        .unwrap()
        .resolve(["orders-g.p.state", "orders-eu"]);
    assert_eq!(topics.into_iter().collect::<Vec<_>>(), ["orders-eu"]);
    // librdkafka's -1 (no periodic refresh) is accepted: patterns then match at start-up only.
    c.librdkafka
        .insert("topic.metadata.refresh.interval.ms".into(), "-1".into());
    c.validate().unwrap();
    assert_eq!(c.topic_refresh().unwrap(), None);
    c.librdkafka
        .insert("topic.metadata.refresh.interval.ms".into(), "soon".into());
    assert!(c.validate().is_err());
    c.topics = vec!["orders-eu".into()];
    c.validate().unwrap();
}

#[test]
fn unknown_keys_and_missing_settings_are_reported() {
    assert!(toml::from_str::<RunConfig>("brokerz = 1").is_err());
    let err = RunConfig::default().validate().unwrap_err().to_string();
    assert!(
        err.contains("--brokers") && err.contains("WEIR_BROKERS"),
        "{err}"
    );
}

#[test]
fn the_drain_deadline_must_be_below_the_session_timeout() {
    let mut c: RunConfig = toml::from_str(
        "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\n[plugin]\npath = \"p.wasm\"",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.drain_timeout(), Duration::from_secs(30));
    c.librdkafka
        .insert("session.timeout.ms".into(), "6000".into());
    c.validate().unwrap();
    assert_eq!(
        c.drain_timeout(),
        Duration::from_secs(4),
        "unset, it follows a lowered session timeout"
    );
    c.drain_timeout = Some(Duration::from_secs(30));
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("drain_timeout") && err.contains("--drain-timeout 4s"),
        "{err}"
    );
    c.drain_timeout = Some(Duration::from_secs(5));
    c.validate().unwrap();
}

#[test]
fn exactly_once_commits_within_the_transaction_timeout() {
    let mut c: RunConfig = toml::from_str(
        "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\nexactly_once = true\ncommit_interval = \"10s\"\n[plugin]\npath = \"p.wasm\"",
    )
    .unwrap();
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("commit_interval") && err.contains("a third of transaction.timeout.ms"),
        "{err}"
    );
    c.librdkafka
        .insert("transaction.timeout.ms".into(), "30000".into());
    c.validate().unwrap();
    assert_eq!(c.transaction_timeout().unwrap(), Duration::from_secs(30));
    c.librdkafka
        .insert("message.timeout.ms".into(), "60000".into());
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("message.timeout.ms"), "{err}");
}

#[test]
fn the_instance_id_names_the_transactional_id() {
    let mut c: RunConfig = toml::from_str(
        "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\ninstance_id = \"node-1\"\n[plugin]\npath = \"p.wasm\"",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.transactional_id(), "weir-g-node-1");
    c.transactional_id = Some("mine".into());
    assert_eq!(c.transactional_id(), "mine");
    c.librdkafka
        .insert("group.instance.id".into(), "node-1".into());
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("--instance-id"), "{err}");
}

#[test]
fn a_chain_needs_distinct_names_and_valid_stages() {
    let mut c: RunConfig = toml::from_str(
        "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\n[plugin]\npath = \"a/p.wasm\"\n[[then]]\npath = \"b/q.wasm\"\ntimeout = \"1s\"",
    )
    .unwrap();
    c.validate().unwrap();
    let names: Vec<String> = c.plugins().map(PluginConfig::display_name).collect();
    assert_eq!(names, ["p", "q"]);
    assert_eq!(c.then[0].timeout, Duration::from_secs(1));
    c.then[0].path = "c/p.wasm".into();
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("named `p`"), "{err}");
    c.then[0].name = Some("second".into());
    c.then[0].instances = Some(0);
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("plugin `second`"), "{err}");
}

#[test]
fn a_chained_plugin_refuses_a_failure_table_of_its_own_and_unknown_keys() {
    let base = "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\n[plugin]\npath = \"a/p.wasm\"\n";
    let refused = |extra: &str| {
        toml::from_str::<RunConfig>(&format!("{base}{extra}"))
            .unwrap_err()
            .to_string()
    };
    let err = refused("[[then]]\npath = \"b/q.wasm\"\n[then.failure]\nmax_attempts = 5\n");
    assert!(err.contains("[plugin.failure]"), "{err}");
    let err = refused("[[pipeline]]\ntopics = [\"u\"]\noutput_topic = \"v\"\n[pipeline.plugin]\npath = \"c/r.wasm\"\n[[pipeline.then]]\npath = \"d/s.wasm\"\n[pipeline.then.failure]\npolicy = \"skip\"\n");
    assert!(err.contains("[plugin.failure]"), "{err}");
    let err = refused("[[then]]\npath = \"b/q.wasm\"\ntimeuot = \"1s\"\n");
    assert!(err.contains("timeuot"), "{err}");
}

#[test]
fn more_pipelines_share_the_settings_and_need_their_own_group_and_names() {
    let c: RunConfig = toml::from_str(
        r#"
        brokers = "b"
        group = "g"
        topics = ["a"]
        output_topic = "a-out"
        commit_interval = "2s"
        [plugin]
        path = "up.wasm"
        [[pipeline]]
        topics = ["b"]
        output_topic = "b-out"
        [pipeline.plugin]
        path = "filter.wasm"
        "#,
    )
    .unwrap();
    c.validate().unwrap();
    let all = c.pipelines();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].group, "g-filter");
    assert_eq!(all[1].topics, ["b"]);
    assert_eq!(all[1].commit_interval, Duration::from_secs(2));
    let mut same_group = c.clone();
    same_group.pipeline[0].group = Some("g".into());
    assert!(same_group
        .validate()
        .unwrap_err()
        .to_string()
        .contains("consumer group `g`"));
    let mut same_name = c.clone();
    same_name.pipeline[0].plugin.path = "other/up.wasm".into();
    assert!(same_name
        .validate()
        .unwrap_err()
        .to_string()
        .contains("named `up`"));
}

#[test]
fn key_values_need_an_equals_sign() {
    assert_eq!(
        parse_key_value("-X", "a.b=c=d").unwrap(),
        ("a.b".to_string(), "c=d".to_string())
    );
    assert!(parse_key_value("-X", "novalue").is_err());
}

fn minimal() -> RunConfig {
    toml::from_str(
        "brokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\noutput_topic = \"o\"\n[plugin]\npath = \"p.wasm\"",
    )
    .unwrap()
}

#[test]
fn passthrough_properties_that_break_the_guarantees_are_refused() {
    for (key, value) in [
        ("enable.auto.offset.store", "true"),
        ("enable.auto.commit", "false"),
        ("auto.commit.interval.ms", "10"),
        ("enable.idempotence", "false"),
        ("acks", "1"),
        ("request.required.acks", "0"),
        ("transactional.id", "x"),
        ("group.id", "other"),
        ("bootstrap.servers", "elsewhere:9092"),
    ] {
        let mut c = minimal();
        c.librdkafka.insert(key.into(), value.into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(key) && err.contains("refused"), "{key}: {err}");
    }
    let mut c = minimal();
    c.exactly_once = true;
    c.librdkafka
        .insert("isolation.level".into(), "read_uncommitted".into());
    assert!(
        c.validate().is_err(),
        "exactly-once must read committed only"
    );
    for (key, value) in [
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("isolation.level", "read_committed"),
        ("security.protocol", "SSL"),
    ] {
        let mut c = minimal();
        c.librdkafka.insert(key.into(), value.into());
        c.validate().unwrap();
    }
}

#[test]
fn sizes_and_durations_beyond_any_sane_value_are_refused() {
    type Breaks = fn(&mut RunConfig);
    let cases: [(&str, Breaks); 9] = [
        ("batch.max_records", |c| {
            c.batch.max_records = usize::MAX;
            c.batch.partition_buffer = usize::MAX;
        }),
        ("batch.partition_buffer", |c| {
            c.batch.partition_buffer = usize::MAX
        }),
        ("plugin.timeout", |c| {
            c.plugin.timeout = Duration::from_secs(u64::MAX)
        }),
        ("plugin.max_memory_mib", |c| {
            c.plugin.max_memory_mib = u64::MAX
        }),
        ("plugin.instances", |c| {
            c.plugin.instances = Some(usize::MAX)
        }),
        ("max_in_flight_mib", |c| c.max_in_flight_mib = u64::MAX),
        ("commit_interval", |c| {
            c.commit_interval = Duration::from_secs(u64::MAX)
        }),
        ("plugin.failure.retry_backoff_max", |c| {
            c.plugin.failure.retry_backoff_max = Duration::from_secs(u64::MAX)
        }),
        ("plugin.max_output_bytes_per_record", |c| {
            c.plugin.max_output_bytes_per_record = usize::MAX
        }),
    ];
    for (key, break_it) in cases {
        let mut c = minimal();
        break_it(&mut c);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[test]
fn registry_credentials_in_the_url_become_basic_auth_and_leave_the_url() {
    let settings = SchemaRegistryConfig::at("http://us%40er:p%3Ass@registry:8081/")
        .registry_settings()
        .unwrap();
    assert_eq!(settings.url, "http://registry:8081");
    assert_eq!(
        settings.authorization.as_deref(),
        Some("Basic dXNAZXI6cDpzcw==")
    );
    let mut both = SchemaRegistryConfig::at("http://u:p@registry:8081");
    both.basic_auth = Some("v:q".into());
    assert!(both.registry_settings().is_err());
    assert!(SchemaRegistryConfig::at("registry:8081")
        .registry_settings()
        .is_err());
}

#[test]
fn schema_registry_settings_are_checked_at_start_up() {
    let mut config: RunConfig = toml::from_str(
        "[schema_registry]\nurl = \"http://registry:8081\"\nencode = \"value\"\nauto_register = true\n",
    )
    .unwrap();
    let error = config
        .schema_registry
        .as_ref()
        .unwrap()
        .stage_settings()
        .unwrap_err();
    assert!(error.to_string().contains("value_schema_file"), "{error}");
    let registry = config.schema_registry.as_mut().unwrap();
    registry.auto_register = false;
    registry.subject_name_strategy = SubjectNameStrategy::Record;
    let error = registry.stage_settings().unwrap_err();
    assert!(error.to_string().contains("record_name"), "{error}");
    registry.record_name = Some("com.acme.Order".into());
    assert!(registry.stage_settings().is_ok());
}
