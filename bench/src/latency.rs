//! End-to-end latency at a fixed offered load: records are produced at a steady
//! rate (each stamped with its send time) while the output topic is read; an
//! output keeps its input's timestamp, so its latency is arrival time minus
//! timestamp. The first second is warm-up and not counted. With the same
//! topic as input and output, it measures the broker alone.

use crate::data::{client, key, send_waiting, value, Shape};
use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::Message;
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What to offer, and where.
pub struct Load<'a> {
    /// Bootstrap brokers.
    pub brokers: &'a str,
    /// Topic the pipeline under test reads.
    pub input: &'a str,
    /// Topic it writes.
    pub output: &'a str,
    /// Records per second offered.
    pub rate: u64,
    /// How long to offer them.
    pub seconds: u64,
    /// Record shape.
    pub shape: Shape,
    /// Outputs expected per input.
    pub outputs_per_input: f64,
    /// The load producer's `linger.ms`.
    pub linger_ms: u64,
}

/// Warm-up during which outputs are not counted.
const WARM_UP_MS: i64 = 1_000;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Offer the load and measure the latency of its outputs.
pub fn measure(load: &Load<'_>) -> anyhow::Result<serde_json::Value> {
    let reader: BaseConsumer = client(load.brokers)
        .set("group.id", format!("bench-latency-{}", now_ms()))
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("session.timeout.ms", "6000")
        .create()
        .context("creating the output reader")?;
    reader.subscribe(&[load.output])?;
    // Join the group before offering anything, so no output is missed.
    let joined = Instant::now();
    while reader.assignment()?.count() == 0 {
        reader.poll(Duration::from_millis(100));
        anyhow::ensure!(
            joined.elapsed() < Duration::from_secs(60),
            "the output reader never joined"
        );
    }
    let producer: ThreadedProducer<DefaultProducerContext> = client(load.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", load.linger_ms.to_string())
        .create()
        .context("creating the load producer")?;
    let started_ms = now_ms();
    let sender = {
        let (input, rate, seconds, shape) =
            (load.input.to_string(), load.rate, load.seconds, load.shape);
        std::thread::spawn(move || offer(&producer, &input, rate, seconds, shape))
    };
    let mut latencies = Vec::new();
    let counted_from = started_ms + WARM_UP_MS;
    let expected = ((load.rate * load.seconds) as f64 * load.outputs_per_input) as usize;
    let deadline = Instant::now() + Duration::from_secs(load.seconds + 60);
    let mut received = 0;
    while received < expected && Instant::now() < deadline {
        if let Some(Ok(message)) = reader.poll(Duration::from_millis(50)) {
            received += 1;
            if let Some(sent) = message.timestamp().to_millis() {
                if sent >= counted_from {
                    latencies.push(now_ms() - sent);
                }
            }
        }
    }
    let offered = sender.join().expect("the load thread does not panic")?;
    anyhow::ensure!(
        !latencies.is_empty(),
        "no output arrived within a minute of the load"
    );
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Ok(json!({
        "rate": load.rate,
        "offered": offered,
        "outputs": received,
        "expected_outputs": expected,
        "counted": latencies.len(),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "max_ms": latencies[latencies.len() - 1],
    }))
}

/// Produce `rate` records/s for `seconds`, in 1 ms steps; returns how many.
fn offer(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    rate: u64,
    seconds: u64,
    shape: Shape,
) -> anyhow::Result<u64> {
    let total = rate * seconds;
    let started = Instant::now();
    let mut sent = 0;
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            let (k, v) = (key(sent), value(sent, shape));
            let record = BaseRecord::to(topic)
                .key(&k)
                .payload(&v)
                .timestamp(now_ms());
            send_waiting(producer, record).context("offering records")?;
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(sent)
}
