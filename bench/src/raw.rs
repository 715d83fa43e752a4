//! The ceilings: a raw librdkafka consumer (rust-rdkafka's `BaseConsumer`) that
//! reads the topic and does nothing with the records (optionally storing each
//! offset and having librdkafka commit them, as Weir does); and a hand-written
//! Rust pipe that also produces every record to an output topic and commits a
//! batch once its outputs are delivered, with no sandbox.

use crate::data::{client, send_waiting};
use crate::process_stats::{cpu_seconds, peak_rss_mib};
use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::Message;
use serde_json::json;
use std::time::{Duration, Instant};

/// Consume `records` records of `topic` from the start with a fresh group.
pub fn consume(
    brokers: &str,
    topic: &str,
    records: u64,
    commit: bool,
    commit_interval_ms: u64,
) -> anyhow::Result<serde_json::Value> {
    let group = format!(
        "bench-raw-{}-{}",
        std::process::id(),
        crate::latency::now_ms()
    );
    let consumer: BaseConsumer = client(brokers)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", commit.to_string())
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", commit_interval_ms.to_string())
        .set("session.timeout.ms", "6000")
        .create()
        .context("creating the consumer")?;
    consumer.subscribe(&[topic])?;
    let mut seen = 0;
    let mut bytes = 0;
    let mut started = None;
    let mut cpu_at_start = 0.0;
    while seen < records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                if started.is_none() {
                    started = Some(Instant::now());
                    cpu_at_start = cpu_seconds("self");
                }
                seen += 1;
                bytes += message.payload_len() + message.key().map_or(0, <[u8]>::len);
                if commit {
                    consumer.store_offset_from_message(&message)?;
                }
            }
            Some(Err(e)) => eprintln!("  consumer error: {e}"),
            None => {}
        }
    }
    if commit {
        consumer.commit_consumer_state(CommitMode::Sync)?;
    }
    Ok(figures(seen, bytes, started, cpu_at_start))
}

/// The JSON result of a run that handled `records` records of `bytes` bytes,
/// started at `started` with `cpu_at_start` CPU seconds used.
fn figures(
    records: u64,
    bytes: usize,
    started: Option<Instant>,
    cpu_at_start: f64,
) -> serde_json::Value {
    json!({
        "records": records,
        "bytes": bytes,
        "seconds": started.map_or(0.0, |s| s.elapsed().as_secs_f64()),
        "cpu_seconds": cpu_seconds("self") - cpu_at_start,
        "peak_rss_mib": peak_rss_mib("self"),
    })
}

/// Records a pipe batch holds before producing, flushing and committing.
const PIPE_BATCH: usize = 5_000;

/// Copy `records` records of `topic` to `output`: consume a batch, produce it,
/// wait for delivery, commit; again.
pub fn pipe(
    brokers: &str,
    topic: &str,
    output: &str,
    records: u64,
) -> anyhow::Result<serde_json::Value> {
    let consumer: BaseConsumer = client(brokers)
        .set(
            "group.id",
            format!("bench-pipe-{}", crate::latency::now_ms()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .context("creating the consumer")?;
    let producer: ThreadedProducer<DefaultProducerContext> = client(brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .context("creating the producer")?;
    consumer.subscribe(&[topic])?;
    let (mut seen, mut bytes, mut started, mut cpu_at_start) = (0, 0, None, 0.0);
    while seen < records {
        let mut batch = 0;
        while batch < PIPE_BATCH && seen < records {
            let Some(polled) =
                consumer.poll(Duration::from_millis(if batch == 0 { 100 } else { 0 }))
            else {
                break;
            };
            let message = match polled {
                Ok(message) => message,
                Err(e) => {
                    eprintln!("  consumer error: {e}");
                    continue;
                }
            };
            if started.is_none() {
                started = Some(Instant::now());
                cpu_at_start = cpu_seconds("self");
            }
            bytes += message.payload_len() + message.key().map_or(0, <[u8]>::len);
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(output);
            record.key = message.key();
            record.payload = message.payload();
            record.timestamp = message.timestamp().to_millis();
            send_waiting(&producer, record).context("producing")?;
            seen += 1;
            batch += 1;
        }
        if batch > 0 {
            producer.flush(Duration::from_secs(60))?;
            consumer.commit_consumer_state(CommitMode::Sync)?;
        }
    }
    Ok(figures(seen, bytes, started, cpu_at_start))
}
