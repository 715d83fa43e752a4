//! Building the consumer and the producer from the run configuration.

use super::context::{PartitionEvent, WeirContext};
use super::KafkaSetupError;
use crate::config::RunConfig;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;
use tokio::sync::mpsc::UnboundedSender;

/// Weir's consumer type.
pub type WeirConsumer = StreamConsumer<WeirContext>;
/// Weir's producer type.
pub type WeirProducer = FutureProducer<WeirContext>;

fn base_config(config: &RunConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", client_id);
    c
}

fn apply_passthrough(c: &mut ClientConfig, config: &RunConfig) {
    for (key, value) in &config.librdkafka {
        c.set(key, value);
    }
}

/// A group consumer that stores offsets only when Weir says a record is done
/// (`enable.auto.offset.store=false`) and commits the stored offsets in the
/// background and on revocation and shutdown.
pub fn create_consumer(
    config: &RunConfig,
    events: UnboundedSender<PartitionEvent>,
) -> Result<WeirConsumer, KafkaSetupError> {
    let mut c = base_config(config, "weir");
    c.set("group.id", &config.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set(
            "auto.offset.reset",
            config.auto_offset_reset.as_librdkafka(),
        );
    apply_passthrough(&mut c, config);
    c.create_with_context(WeirContext::new(Some(events)))
        .map_err(KafkaSetupError::Client)
}

/// An idempotent producer (`acks=all`): retries never duplicate or reorder
/// records within a partition.
pub fn create_producer(config: &RunConfig) -> Result<WeirProducer, KafkaSetupError> {
    let mut c = base_config(config, "weir-producer");
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    apply_passthrough(&mut c, config);
    c.create_with_context(WeirContext::new(None))
        .map_err(KafkaSetupError::Client)
}
