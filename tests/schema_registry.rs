//! Schema registry support against the real broker, a registry implementing
//! the documented REST subset (`tests/support/schema_registry.py`), and
//! confluent-kafka-python's own serializers and deserializers: records written
//! by `AvroSerializer` / `JSONSerializer` / `ProtobufSerializer` reach the
//! plugin as JSON, its outputs are encoded so that the matching deserializers
//! read back the expected documents; records that cannot be decoded or outputs that do not
//! fit are dead-lettered with kind `schema` and their original bytes; an
//! unreachable registry holds records back without losing or failing any.

use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use weir_test_support::*;

/// The fixture orders, one JSON document each.
fn orders() -> Vec<Value> {
    std::fs::read_to_string(schema_fixture("orders.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// One record per value, keyed `order/<index>` from `first`.
fn keyed_orders_from(values: &[Vec<u8>], first: usize) -> Vec<TestRecord> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| TestRecord::new(&format!("order/{}", first + i), v, &[]))
        .collect()
}

/// One record per value, keyed `order/<index>`.
fn keyed_orders(values: &[Vec<u8>]) -> Vec<TestRecord> {
    keyed_orders_from(values, 0)
}

/// Weir decoding `input` through `registry` for the no-op plugin.
fn noop_through(registry: &SchemaRegistry, group: &str, input: &str, output: &str) -> Weir {
    Weir::start(&pipeline_args(
        group,
        input,
        output,
        &example_plugin("noop"),
        &["--schema-registry", registry.url()],
    ))
}

/// The schema id of a framed value.
fn schema_id(value: &[u8]) -> u32 {
    u32::from_be_bytes(value[1..5].try_into().unwrap())
}

/// Sum of the samples of metric `name` (without `_total`) whose labels
/// include `label`.
fn metric(samples: &[weir_dev::status::Sample], name: &str, label: (&str, &str)) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            s.labels.get(label.0).map(String::as_str) == Some(label.1) || label.0.is_empty()
        })
        .map(|s| s.value)
        .sum()
}

/// Avro orders covering every type and logical type are decoded for the
/// json-filter plugin (kept when `paid` is true), encoded again with the
/// output subject's latest schema, and read back by `AvroDeserializer` equal
/// to the orders kept; a record without the magic byte, one with an unknown
/// schema id and a truncated one are dead-lettered with kind `schema` and
/// their original bytes.
#[tokio::test]
async fn avro_records_round_trip_through_a_plugin_with_confluents_own_serializers() {
    let _serial = serial().await;
    let registry = SchemaRegistry::start();
    let (input, output, group) = topics("schema-avro").await;
    let orders = orders();
    let schema = schema_fixture("order.avsc");
    let values = registry.serialize(&SchemaFormat::Avro, &input, &schema, &orders);
    // The output subject's schema, as the team's producer would register it.
    registry.serialize(&SchemaFormat::Avro, &output, &schema, &orders[..1]);
    let mut unknown_id = values[0].clone();
    unknown_id[1..5].copy_from_slice(&9999u32.to_be_bytes());
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("poison/plain-json", br#"{"id": 1}"#.to_vec()),
        ("poison/unknown-id", unknown_id),
        ("poison/truncated", values[0][..12].to_vec()),
    ];
    let mut records = keyed_orders(&values);
    records.extend(poison.iter().map(|(k, v)| TestRecord::new(k, v, &[])));
    let ends = produce(&input, &records).await;
    let weir = Weir::start(&pipeline_args(
        &group,
        &input,
        &output,
        &example_plugin("json-filter"),
        &[
            "--plugin-config",
            "field=paid",
            "--plugin-config",
            "equals=true",
            "--schema-registry",
            registry.url(),
            "--schema-encode",
            "value",
        ],
    ));
    let kept: BTreeMap<String, &Value> = orders
        .iter()
        .enumerate()
        .filter(|(_, o)| o["paid"] == Value::Bool(true))
        .map(|(i, o)| (format!("order/{i}"), o))
        .collect();
    let (outputs, letters) = outputs_and_letters(
        &weir,
        &group,
        (&input, &output),
        &ends,
        (kept.len(), poison.len()),
    );
    let metrics = scrape(&weir.admin_addr());
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");

    assert_eq!(outputs.len(), kept.len(), "{log}");
    let output_values: Vec<Vec<u8>> = outputs.iter().map(|r| r.value.clone().unwrap()).collect();
    let read_back = registry.deserialize(&SchemaFormat::Avro, &output, &output_values);
    for (record, document) in outputs.iter().zip(&read_back) {
        let key = record.key_text();
        assert_eq!(document, kept[&key], "{key}: read back by AvroDeserializer");
        assert!(
            record
                .headers
                .iter()
                .all(|(k, _)| !k.starts_with("weir.schema.")),
            "Weir's decoding headers do not reach outputs: {:?}",
            record.headers
        );
    }

    let letters: BTreeMap<String, &TestRecord> =
        letters.iter().map(|r| (r.key_text(), r)).collect();
    assert_eq!(letters.len(), poison.len(), "{letters:?}\n{log}");
    for ((key, original), says) in poison.iter().zip(["magic byte", "9999", "ends early"]) {
        let letter = letters[*key];
        assert_eq!(
            letter.header_text("weir.error.kind").as_deref(),
            Some("schema")
        );
        let message = letter.header_text("weir.error.message").unwrap();
        assert!(message.contains(says), "{key}: {message}");
        assert_eq!(
            letter.value.as_deref(),
            Some(&original[..]),
            "{key}: original bytes"
        );
    }
    let names = weir_host::telemetry::names::SCHEMA_FAILURES;
    assert_eq!(metric(&metrics, names, ("direction", "decode")), 3.0);
    let hits = weir_host::telemetry::names::SCHEMA_CACHE_HITS;
    assert!(
        metric(&metrics, hits, ("", "")) > 0.0,
        "schemas were cached"
    );
}

/// JSON Schema: orders written by `JSONSerializer` pass a plugin unchanged;
/// Weir registers the output schema itself (`auto_register`), validates every
/// output against it, and `JSONDeserializer` reads them back equal; an output
/// that breaks the schema is dead-lettered with kind `schema`.
#[tokio::test]
async fn json_schema_outputs_are_registered_validated_and_read_back() {
    let _serial = serial().await;
    let registry = SchemaRegistry::start();
    let (input, output, group) = topics("schema-json").await;
    let orders = orders();
    let schema = schema_fixture("order.schema.json");
    let values = registry.serialize(&SchemaFormat::Json, &input, &schema, &orders);
    // Framed with the registered schema's id, but not fitting it.
    let mut misfit = values[0][..5].to_vec();
    misfit.extend_from_slice(br#"{"id": "not a number"}"#);
    let mut records = keyed_orders(&values);
    records.push(TestRecord::new("misfit", &misfit, &[]));
    let ends = produce(&input, &records).await;
    let dir = workspace_root().join("target").join("test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join(format!("{}.toml", unique("schema-json")));
    std::fs::write(
        &config,
        format!(
            "[schema_registry]\nurl = \"{}\"\nencode = \"value\"\nauto_register = true\n\
             value_schema_file = \"{}\"\nvalidate = true\n",
            registry.url(),
            schema.display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let weir = Weir::start(&pipeline_args(
        &group,
        &input,
        &output,
        &example_plugin("noop"),
        &["--config", &config],
    ));
    let (outputs, letters) =
        outputs_and_letters(&weir, &group, (&input, &output), &ends, (orders.len(), 1));
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");

    assert_eq!(outputs.len(), orders.len(), "{log}");
    let output_values: Vec<Vec<u8>> = outputs.iter().map(|r| r.value.clone().unwrap()).collect();
    let read_back = registry.deserialize(&SchemaFormat::Json, &output, &output_values);
    for (record, document) in outputs.iter().zip(&read_back) {
        let index: usize = record.key_text()["order/".len()..].parse().unwrap();
        assert_eq!(document, &orders[index], "read back by JSONDeserializer");
    }
    assert_ne!(
        schema_id(&output_values[0]),
        0,
        "framed with the id Weir registered"
    );
    assert_eq!(letters.len(), 1, "{log}");
    assert_eq!(
        letters[0].header_text("weir.error.kind").as_deref(),
        Some("schema")
    );
    let message = letters[0].header_text("weir.error.message").unwrap();
    assert!(message.contains("does not fit its schema"), "{message}");
}

/// The registry goes away mid-stream while records of a schema Weir has not
/// seen arrive: they wait (nothing dead-lettered, nothing lost) and go
/// through once it is back. Decoded records carry the schema id and subject
/// for the plugin (the noop plugin passes headers on).
#[tokio::test]
async fn records_wait_out_a_registry_outage_and_none_is_failed() {
    let _serial = serial().await;
    let registry = SchemaRegistry::start();
    let (input, output, group) = topics("schema-outage").await;
    let orders = orders();
    let first = registry.serialize(
        &SchemaFormat::Avro,
        &input,
        &schema_fixture("order.avsc"),
        &orders[..6],
    );
    // A second version of the subject: one more field, with a default.
    let mut v2: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_fixture("order.avsc")).unwrap())
            .unwrap();
    v2["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "channel", "type": "string", "default": "web"}));
    let dir = workspace_root().join("target").join("test-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let v2_file = dir.join(format!("{}.avsc", unique("order-v2")));
    std::fs::write(&v2_file, v2.to_string()).unwrap();
    let later: Vec<Value> = orders[6..]
        .iter()
        .map(|o| {
            let mut o = o.clone();
            o["channel"] = "app".into();
            o
        })
        .collect();
    let second = registry.serialize(&SchemaFormat::Avro, &input, &v2_file, &later);
    assert_ne!(schema_id(&first[0]), schema_id(&second[0]));
    let mut ends = produce(&input, &keyed_orders(&first)).await;
    let weir = noop_through(&registry, &group, &input, &output);
    let mut reader = TopicReader::new(&output);
    reader.read_until(6, Duration::from_secs(60));
    registry.down();
    for (partition, end) in produce(&input, &keyed_orders_from(&second, 6)).await {
        ends.insert(partition, end);
    }
    reader.read_for(Duration::from_secs(3));
    assert_eq!(
        reader.records().len(),
        6,
        "records of an unknown schema wait for the registry"
    );
    let waits = metric(
        &scrape(&weir.admin_addr()),
        weir_host::telemetry::names::SCHEMA_REGISTRY_WAITS,
        ("", ""),
    );
    assert!(
        waits > 0.0,
        "Weir tried the registry again while it was down"
    );
    registry.up();
    reader.read_until(12, Duration::from_secs(60));
    wait_for_committed(&group, &input, ends.values().sum(), &weir);
    let letters = read_all(
        &format!("{input}.dlq"),
        1,
        Duration::from_secs(2),
        Duration::from_millis(500),
    );
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(
        letters.is_empty(),
        "nothing failed for the outage: {letters:?}"
    );
    assert!(log.contains("schema registry unavailable"), "{log}");

    let outputs = reader.records();
    assert_eq!(outputs.len(), 12, "{log}");
    for record in outputs {
        let index: usize = record.key_text()["order/".len()..].parse().unwrap();
        let (expected, id) = if index < 6 {
            (&orders[index], schema_id(&first[0]))
        } else {
            (&later[index - 6], schema_id(&second[0]))
        };
        let document: Value = serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
        assert_eq!(&document, expected, "order {index} decoded to JSON");
        assert_eq!(record.header_text("weir.schema.id"), Some(id.to_string()));
        assert_eq!(
            record.header_text("weir.schema.subject"),
            Some(format!("{input}-value"))
        );
    }
}

/// Protobuf orders (nested messages, an enum, a map, a oneof, an imported
/// message and a well-known type) written by `ProtobufSerializer`, which
/// registers the import as a reference, pass a plugin as JSON and are read
/// back by `ProtobufDeserializer` equal.
#[tokio::test]
async fn protobuf_records_with_nested_messages_and_an_import_round_trip() {
    let _serial = serial().await;
    let registry = SchemaRegistry::start();
    let (input, output, group) = topics("schema-proto").await;
    let orders: Vec<Value> = std::fs::read_to_string(schema_fixture("orders_proto.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let proto = schema_fixture("order.proto");
    let format = SchemaFormat::Protobuf {
        proto: proto.clone(),
        imports: vec![schema_fixture("money.proto")],
    };
    let values = registry.serialize(&format, &input, &proto, &orders);
    registry.serialize(&format, &output, &proto, &orders[..1]);
    let records = keyed_orders(&values);
    let ends = produce(&input, &records).await;
    let weir = Weir::start(&pipeline_args(
        &group,
        &input,
        &output,
        &example_plugin("noop"),
        &[
            "--schema-registry",
            registry.url(),
            "--schema-encode",
            "value",
        ],
    ));
    let outputs = read_all(
        &output,
        orders.len(),
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    wait_for_committed(&group, &input, ends.values().sum(), &weir);
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert_eq!(outputs.len(), orders.len(), "{log}");
    let output_values: Vec<Vec<u8>> = outputs.iter().map(|r| r.value.clone().unwrap()).collect();
    let read_back = registry.deserialize(&format, &output, &output_values);
    for (record, document) in outputs.iter().zip(&read_back) {
        let index: usize = record.key_text()["order/".len()..].parse().unwrap();
        assert_eq!(
            document, &orders[index],
            "order {index} read back by ProtobufDeserializer"
        );
    }
}

/// Any producer can write a record naming any schema id. Records naming ids the
/// registry does not know are dead-lettered (kind `schema`) without costing a
/// registry request each: a 404 is remembered, so 150 records of one unknown id
/// ask once, and 50 distinct unknown ids ask at most once each (at a bounded
/// rate).
#[tokio::test]
async fn records_naming_unknown_schema_ids_cannot_drive_the_registrys_load() {
    let _serial = serial().await;
    let registry = SchemaRegistry::start();
    let (input, output, group) = topics("schema-unknown").await;
    let framed = |id: u32| {
        let mut value = vec![0u8];
        value.extend_from_slice(&id.to_be_bytes());
        value.extend_from_slice(b"payload");
        value
    };
    let values: Vec<Vec<u8>> = (0..200)
        .map(|i| framed(if i < 150 { 999_999 } else { 1_000_000 + i }))
        .collect();
    let ends = produce(&input, &keyed_orders(&values)).await;
    let weir = noop_through(&registry, &group, &input, &output);
    wait_for_committed(&group, &input, ends.values().sum(), &weir);
    let letters = read_all(
        &format!("{input}.dlq"),
        200,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    let (status, log) = weir.terminate_with_log(Duration::from_secs(30));
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert_eq!(letters.len(), 200);
    for letter in &letters {
        assert_eq!(
            letter.header_text("weir.error.kind").as_deref(),
            Some("schema")
        );
    }
    // Each partition's worker may ask about the shared id before the first
    // 404 is remembered.
    let requests = registry.requests();
    assert!(
        requests <= 51 + PARTITIONS as u64,
        "{requests} registry requests for 51 unknown ids (200 records)"
    );
}
