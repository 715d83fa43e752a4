//! `weir state dump`: a plugin's state of one partition as JSON lines, read
//! from its changelog topic (so it works from any machine, while the pipeline
//! runs or not): one line per key, in key order,
//! `{"topic": "orders", "key": "k", "value": "v"}` (bytes as text when UTF-8,
//! else `{"base64": ".."}`). Only committed changelog records count
//! (`read_committed`), as a restore after a crash would see them.

use rdkafka::config::ClientConfig;
use serde_json::json;
use std::io::Write;
use weir_host::record::bytes_json;
use weir_host::state::changelog::{self, Restore};
use weir_host::state::{MemoryBackend, StateBackend};

/// Why the state could not be dumped.
#[derive(Debug, thiserror::Error)]
pub enum StateDumpError {
    /// The changelog could not be read.
    #[error("{0}; check --brokers, --group and --plugin (the changelog topic is <group>.<plugin>.state)")]
    Read(String),
    /// Writing the lines failed.
    #[error("cannot write the state: {0}")]
    Write(std::io::Error),
}

/// Which state to dump.
pub struct DumpRequest<'a> {
    /// Kafka bootstrap servers.
    pub brokers: &'a str,
    /// Extra librdkafka properties (security settings).
    pub librdkafka: &'a [(String, String)],
    /// The pipeline's consumer group.
    pub group: &'a str,
    /// The plugin's name.
    pub plugin: &'a str,
    /// The input partition.
    pub partition: i32,
    /// Only this input topic's state; every topic's if `None`.
    pub topic: Option<&'a str>,
}

/// Write the state `request` names to `out`; how many keys it has.
pub fn dump(request: &DumpRequest<'_>, out: &mut impl Write) -> Result<usize, StateDumpError> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", request.brokers)
        .set("client.id", "weir-state-dump")
        .set("isolation.level", "read_committed");
    for (key, value) in request.librdkafka {
        client.set(key, value);
    }
    let topic_name = changelog::topic_name(request.group, request.plugin);
    let restore = Restore {
        client: &client,
        changelog: &topic_name,
        topic: request.topic,
        partition: request.partition,
        plugin: request.plugin,
    };
    let read = |e: weir_host::state::StateError| StateDumpError::Read(e.to_string());
    let consumer = restore.consumer().map_err(read)?;
    let state = MemoryBackend::default();
    restore
        .run(&consumer, None, &state, &|_| {}, &|| false)
        .map_err(read)?;
    let mut keys = 0;
    let mut written = Ok(());
    state
        .scan(&mut |key, value| {
            let (topic, key) = match request.topic {
                Some(topic) => (Some(topic), key),
                None => match changelog::split_key(key) {
                    Some((topic, key)) => (Some(topic), key),
                    None => (None, key),
                },
            };
            let line =
                json!({ "topic": topic, "key": bytes_json(key), "value": bytes_json(value) });
            if written.is_ok() {
                written = writeln!(out, "{line}");
            }
            keys += 1;
        })
        .map_err(read)?;
    written.map_err(StateDumpError::Write)?;
    Ok(keys)
}
