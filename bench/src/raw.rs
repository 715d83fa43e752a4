//! The ceilings: a raw librdkafka consumer (rust-rdkafka's `BaseConsumer`) that
//! reads the topic and does nothing with the records (optionally storing each
//! offset and having librdkafka commit them, as Weir does); and the cheapest
//! correct Rust pipe that also produces every record to an output topic,
//! storing each input offset once its output is acknowledged, with no sandbox.

use crate::data::{client, send_waiting};
use crate::process_stats::{cpu_seconds, peak_rss_mib};
use anyhow::Context;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
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

/// Where the pipe's delivery reports go: the input (partition, offset) each
/// acknowledged output came from, or the error of one that failed.
struct Acknowledgements(mpsc::Sender<Result<(i32, i64), String>>);

impl ClientContext for Acknowledgements {}

impl ProducerContext for Acknowledgements {
    type DeliveryOpaque = Box<(i32, i64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, input: Self::DeliveryOpaque) {
        let report = match result {
            Ok(_) => Ok(*input),
            Err((e, _)) => Err(e.to_string()),
        };
        // The receiver lives until every report is in.
        let _ = self.0.send(report);
    }
}

/// One input partition's offsets whose outputs are not all acknowledged yet,
/// in order, each with whether its output is.
#[derive(Default)]
struct InFlight(VecDeque<(i64, bool)>);

impl InFlight {
    /// The output of `offset` is acknowledged: the offset after the longest
    /// acknowledged prefix, if it grew.
    fn acknowledged(&mut self, offset: i64) -> Option<i64> {
        let at = self
            .0
            .binary_search_by_key(&offset, |(o, _)| *o)
            .expect("an offset in flight");
        self.0[at].1 = true;
        let mut next = None;
        while let Some(&(o, true)) = self.0.front() {
            next = Some(o + 1);
            self.0.pop_front();
        }
        next
    }
}

/// Copy `records` records of `topic` to `output` the cheapest correct way:
/// produce each record without waiting (idempotent, `acks=all`), store an
/// input offset once its output and every earlier one of its partition are
/// acknowledged (from the delivery reports), and let librdkafka commit the
/// stored offsets every 100 ms, as Weir is run here. Timed from the first
/// record consumed to the commit after the last acknowledgement.
pub fn pipe(
    brokers: &str,
    topic: &str,
    output: &str,
    records: u64,
    fetch_wait_ms: Option<u64>,
) -> anyhow::Result<serde_json::Value> {
    let mut config = client(brokers);
    if let Some(wait) = fetch_wait_ms {
        config.set("fetch.wait.max.ms", wait.to_string());
    }
    let consumer: BaseConsumer = config
        .set(
            "group.id",
            format!("bench-pipe-{}", crate::latency::now_ms()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "100")
        .set("session.timeout.ms", "6000")
        .create()
        .context("creating the consumer")?;
    let (reports, acknowledgements) = mpsc::channel();
    let producer: ThreadedProducer<Acknowledgements> = client(brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create_with_context(Acknowledgements(reports))
        .context("creating the producer")?;
    consumer.subscribe(&[topic])?;
    let mut in_flight: HashMap<i32, InFlight> = HashMap::new();
    let (mut seen, mut acknowledged, mut bytes) = (0, 0, 0);
    let (mut started, mut cpu_at_start) = (None, 0.0);
    while acknowledged < records {
        for report in acknowledgements.try_iter() {
            let (partition, offset) = report.map_err(|e| anyhow::anyhow!("delivery: {e}"))?;
            acknowledged += 1;
            let flight = in_flight
                .get_mut(&partition)
                .expect("a partition in flight");
            if let Some(next) = flight.acknowledged(offset) {
                let mut list = TopicPartitionList::with_capacity(1);
                list.add_partition_offset(topic, partition, Offset::Offset(next))?;
                consumer.store_offsets(&list)?;
            }
        }
        if seen == records {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let Some(polled) = consumer.poll(Duration::from_millis(10)) else {
            continue;
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
        let (partition, offset) = (message.partition(), message.offset());
        in_flight
            .entry(partition)
            .or_default()
            .0
            .push_back((offset, false));
        let mut record = BaseRecord::with_opaque_to(output, Box::new((partition, offset)));
        record.key = message.key();
        record.payload = message.payload();
        record.timestamp = message.timestamp().to_millis();
        send_waiting(&producer, record).context("producing")?;
        seen += 1;
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        // The auto-commit already committed every stored offset.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) | Ok(()) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(figures(seen, bytes, started, cpu_at_start))
}
