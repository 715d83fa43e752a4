//! Building the consumer and the producer from the run configuration.

use super::context::WeirContext;
use super::KafkaSetupError;
use crate::config::{PipelineSettings, DEFAULT_TRANSACTION_TIMEOUT};
use rdkafka::admin::AdminClient;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{FutureProducer, Producer};

/// Weir's consumer type.
pub type WeirConsumer = BaseConsumer<WeirContext>;
/// Weir's producer type.
pub type WeirProducer = FutureProducer<WeirContext>;
/// Weir's admin client type.
pub type WeirAdmin = AdminClient<WeirContext>;

fn base_config(config: &PipelineSettings, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", client_id);
    c
}

/// Which client a librdkafka property is meant for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Consumer,
    Producer,
    /// The admin client: only the properties both sides share (TLS, SASL...).
    Admin,
}

/// Property names (or prefixes ending in `.`) that only one side understands,
/// from librdkafka's CONFIGURATION.md. Passing them to the other client only
/// makes librdkafka warn, so the shared passthrough table skips them there.
const CONSUMER_ONLY: &[&str] = &[
    "group.",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
    "max.poll.interval.ms",
    "auto.offset.reset",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "fetch.",
    "queued.",
    "isolation.level",
    "check.crcs",
    "enable.partition.eof",
    "allow.auto.create.topics",
    "coordinator.query.interval.ms",
];
const PRODUCER_ONLY: &[&str] = &[
    "acks",
    "request.required.acks",
    "linger.ms",
    "queue.buffering.",
    "batch.",
    "compression.",
    "enable.idempotence",
    "transactional.id",
    "transaction.timeout.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "message.send.max.retries",
    "retries",
    "partitioner",
    "sticky.partitioning.linger.ms",
    "enable.gapless.guarantee",
];

fn applies_to(key: &str, role: Role) -> bool {
    let matches = |names: &[&str]| {
        names
            .iter()
            .any(|name| key == *name || (name.ends_with('.') && key.starts_with(name)))
    };
    match role {
        Role::Consumer => !matches(PRODUCER_ONLY),
        Role::Producer => !matches(CONSUMER_ONLY),
        Role::Admin => !matches(PRODUCER_ONLY) && !matches(CONSUMER_ONLY),
    }
}

fn apply_passthrough(c: &mut ClientConfig, config: &PipelineSettings, role: Role) {
    for (key, value) in &config.librdkafka {
        if applies_to(key, role) {
            c.set(key, value);
        }
    }
}

/// The librdkafka properties every client of `config` shares (TLS, SASL...),
/// for readers of its topics with clients of their own (the console's
/// dead-letter view).
pub fn shared_properties(config: &PipelineSettings) -> Vec<(String, String)> {
    config
        .librdkafka
        .iter()
        .filter(|(key, _)| applies_to(key, Role::Admin))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// A group consumer that stores offsets only when Weir says a record is done
/// (`enable.auto.offset.store=false`) and commits the stored offsets every
/// `commit_interval`, before a revocation completes, and at shutdown. Polled on
/// Weir's consumer thread (a `BaseConsumer`, so rebalance callbacks run there).
pub fn create_consumer(config: &PipelineSettings) -> Result<WeirConsumer, KafkaSetupError> {
    let mut c = base_config(config, "weir");
    c.set("group.id", &config.group)
        .set("enable.auto.commit", (!config.exactly_once()).to_string())
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.commit.interval.ms",
            config.commit_interval.as_millis().to_string(),
        )
        .set(
            "auto.offset.reset",
            config.auto_offset_reset.as_librdkafka(),
        );
    if config.exactly_once() {
        // Offsets commit inside the producer's transactions; read only committed inputs.
        c.set("isolation.level", "read_committed");
    }
    if let Some(instance) = &config.instance_id {
        c.set("group.instance.id", instance);
    }
    // A partition resumed after backpressure waits for the fetch in flight,
    // which a broker may hold up to this long when it has nothing new
    // (librdkafka's default is 500 ms).
    c.set("fetch.wait.max.ms", "100");
    // Weir's own buffers (per-partition channels, the byte budget) absorb
    // bursts, and the poll thread drains librdkafka's queue quickly, so when
    // that queue is over its threshold it empties within milliseconds: the
    // default pause before fetching again (1 s for a full queue, 500 ms after
    // an error) left the pipeline idle for most of that second (measured in
    // BENCHMARKS.md). Passthrough properties still override these.
    c.set("fetch.queue.backoff.ms", "10");
    c.set("fetch.error.backoff.ms", "10");
    // Statistics feed the lag metrics and broker readiness (see `WeirContext::stats`).
    c.set(
        "statistics.interval.ms",
        config.stats_interval.as_millis().to_string(),
    );
    apply_passthrough(&mut c, config, Role::Consumer);
    c.create_with_context(WeirContext::new())
        .map_err(KafkaSetupError::Client)
}

/// An idempotent producer (`acks=all`): retries never duplicate or reorder
/// records within a partition. In exactly-once mode it is transactional and
/// initialised here, so a broker without transactions fails at start-up.
pub fn create_producer(config: &PipelineSettings) -> Result<WeirProducer, KafkaSetupError> {
    let mut c = base_config(config, "weir-producer");
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    if let Some(id) = &config.transactional_id {
        c.set("transactional.id", id).set(
            "transaction.timeout.ms",
            DEFAULT_TRANSACTION_TIMEOUT.as_millis().to_string(),
        );
    }
    apply_passthrough(&mut c, config, Role::Producer);
    let producer: WeirProducer = c
        .create_with_context(WeirContext::new())
        .map_err(KafkaSetupError::Client)?;
    if config.exactly_once() {
        producer
            .init_transactions(TRANSACTION_INIT_TIMEOUT)
            .map_err(|source| KafkaSetupError::Transactions {
                brokers: config.brokers.clone(),
                source,
            })?;
    }
    Ok(producer)
}

/// The settings of the consumers that restore plugin state from changelog
/// topics (no group; in exactly-once mode they read only committed records).
pub fn restore_client_config(config: &PipelineSettings) -> ClientConfig {
    let mut c = base_config(config, "weir-state-restore");
    if config.exactly_once() {
        c.set("isolation.level", "read_committed");
    }
    apply_passthrough(&mut c, config, Role::Admin);
    c
}

/// An admin client (creating dead-letter topics), with the shared properties.
pub fn create_admin(config: &PipelineSettings) -> Result<WeirAdmin, KafkaSetupError> {
    let mut c = base_config(config, "weir-admin");
    apply_passthrough(&mut c, config, Role::Admin);
    c.create_with_context(WeirContext::new())
        .map_err(KafkaSetupError::Client)
}

/// How long the transactional producer may take to register with the broker.
const TRANSACTION_INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_properties_reach_both_clients_and_one_sided_ones_only_their_side() {
        assert!(applies_to("security.protocol", Role::Consumer));
        assert!(applies_to("security.protocol", Role::Producer));
        assert!(applies_to("session.timeout.ms", Role::Consumer));
        assert!(!applies_to("session.timeout.ms", Role::Producer));
        assert!(!applies_to("group.instance.id", Role::Producer));
        assert!(!applies_to("linger.ms", Role::Consumer));
        assert!(applies_to("linger.ms", Role::Producer));
        assert!(applies_to("security.protocol", Role::Admin));
        assert!(!applies_to("linger.ms", Role::Admin));
        assert!(!applies_to("group.id", Role::Admin));
    }
}
