//! Test records of two shapes, and filling a topic with them.

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::json;
use std::time::{Duration, Instant};

/// What the records look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// 100-byte opaque values (lowercase ASCII letters, so `uppercase` has work).
    Opaque,
    /// ≈ 300-byte JSON objects; a quarter have `"country":"NL"`.
    Json,
}

const COUNTRIES: [&str; 4] = ["NL", "BE", "DE", "FR"];

/// The key of record `i`.
pub fn key(i: u64) -> String {
    format!("user-{}", i % 1000)
}

/// The value of record `i` of `shape`.
pub fn value(i: u64, shape: Shape) -> Vec<u8> {
    match shape {
        Shape::Opaque => {
            // A cheap deterministic mix, so values differ without a random source.
            let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            (0..100)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b'a' + (x % 26) as u8
                })
                .collect()
        }
        Shape::Json => {
            let user = i % 5000;
            json!({
                "id": i,
                "country": COUNTRIES[(i % 4) as usize],
                "user": {"name": format!("user-{user}"), "email": format!("user{user}@example.org")},
                "amount": (i * 37) % 10_000,
                "currency": "EUR",
                "tags": ["checkout", "web", "mobile"],
                "text": "a purchase event of the benchmark stream, padded to about three hundred bytes in all"
            })
            .to_string()
            .into_bytes()
        }
    }
}

/// A client configuration for `brokers`.
pub fn client(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// Create `topic` with `partitions` (an existing one is an error: stale data
/// would skew the figures).
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client(brokers).create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))?;
    for result in results {
        result.map_err(|(t, e)| anyhow::anyhow!("cannot create topic {t}: {e}"))?;
    }
    Ok(())
}

/// Hand `record` to `producer`, waiting while its queue is full.
pub fn send_waiting<K, V, C>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'_, K, V, C::DeliveryOpaque>,
) -> Result<(), KafkaError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    V: rdkafka::message::ToBytes + ?Sized,
    C: rdkafka::producer::ProducerContext + 'static,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Create `topic` and produce `records` records of `shape` to it, idempotently.
pub fn produce(
    brokers: &str,
    topic: &str,
    records: u64,
    shape: Shape,
    partitions: i32,
) -> anyhow::Result<serde_json::Value> {
    create_topic(brokers, topic, partitions)?;
    let producer: ThreadedProducer<DefaultProducerContext> = client(brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .context("creating the producer")?;
    let started = Instant::now();
    let mut bytes = 0;
    for i in 0..records {
        let (key, value) = (key(i), value(i, shape));
        bytes += key.len() + value.len();
        send_waiting(&producer, BaseRecord::to(topic).key(&key).payload(&value))
            .context("producing test records")?;
        if i % 200_000 == 0 && i > 0 {
            eprintln!("  produced {i} of {records} records to {topic}");
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing the test records")?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "topic": topic,
        "records": records,
        "bytes": bytes,
        "seconds": seconds,
        "records_per_second": records as f64 / seconds,
    }))
}
