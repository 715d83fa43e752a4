//! The changelog topic of a plugin's state (`<group>.<plugin>.state`,
//! compacted): one record per write, in the input partition's number, keyed by
//! the input topic and the state key (a delete is a tombstone). Restoring a
//! partition's state reads its changelog partition from a checkpoint, or from
//! the start, up to its end.

use super::{StateBackend, StateError, StateWrite};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Suffix of changelog topic names.
pub const CHANGELOG_SUFFIX: &str = ".state";

/// Bytes of writes applied to the store together while restoring.
const RESTORE_BATCH_BYTES: usize = 4 << 20;

/// How long one metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The changelog topic of `plugin`'s state in consumer group `group`.
pub fn topic_name(group: &str, plugin: &str) -> String {
    format!("{group}.{plugin}{CHANGELOG_SUFFIX}")
}

/// A changelog record's key: the input topic, a zero byte (which topic names
/// never contain), then the state key; so that input topics sharing a
/// partition number share the changelog partition without mixing.
pub fn record_key(topic: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(topic.len() + 1 + key.len());
    out.extend_from_slice(topic.as_bytes());
    out.push(0);
    out.extend_from_slice(key);
    out
}

/// The input topic and state key of a changelog record's key.
pub fn split_key(key: &[u8]) -> Option<(&str, &[u8])> {
    let at = key.iter().position(|&b| b == 0)?;
    let topic = std::str::from_utf8(&key[..at]).ok()?;
    Some((topic, &key[at + 1..]))
}

/// Where a restore reads from, and what it found.
pub struct Restore<'a> {
    /// The client settings (brokers, security, isolation level).
    pub client: &'a ClientConfig,
    /// The changelog topic.
    pub changelog: &'a str,
    /// The input topic whose state is restored; `None` reads every input
    /// topic's, keeping each key with its topic prefix (see [`record_key`]).
    pub topic: Option<&'a str>,
    /// The input (and changelog) partition.
    pub partition: i32,
    /// The plugin, for errors.
    pub plugin: &'a str,
}

/// What a restore did.
#[derive(Debug, Clone, Copy)]
pub struct Restored {
    /// Changelog records applied.
    pub records: u64,
    /// The changelog's end when the restore finished.
    pub end: i64,
    /// How long it took.
    pub took: Duration,
}

impl Restore<'_> {
    fn error(&self, reason: impl std::fmt::Display) -> StateError {
        StateError::Restore {
            plugin: self.plugin.to_string(),
            topic: self.topic.unwrap_or("*").to_string(),
            partition: self.partition,
            changelog: self.changelog.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A consumer of the changelog (not in any group: it only reads).
    pub fn consumer(&self) -> Result<BaseConsumer, StateError> {
        let mut config = self.client.clone();
        config
            .set("group.id", format!("{}-restore", self.changelog))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // An empty or short changelog is read in one quick fetch (a broker
            // may hold a fetch with nothing new this long).
            .set("fetch.wait.max.ms", "20")
            .set("auto.offset.reset", "earliest");
        config.create().map_err(|e| self.error(e))
    }

    /// The offset the consumer reads next in the changelog partition.
    fn position(&self, consumer: &BaseConsumer) -> Result<Option<i64>, StateError> {
        let positions = consumer.position().map_err(|e| self.error(e))?;
        Ok(
            match positions
                .find_partition(self.changelog, self.partition)
                .map(|p| p.offset())
            {
                Some(Offset::Offset(offset)) => Some(offset),
                _ => None,
            },
        )
    }

    /// The changelog partition's low and high watermarks.
    pub fn watermarks(&self, consumer: &BaseConsumer) -> Result<(i64, i64), StateError> {
        consumer
            .fetch_watermarks(self.changelog, self.partition, METADATA_TIMEOUT)
            .map_err(|e| self.error(e))
    }

    /// Apply the changelog partition from `from` (its start if `None`) up to
    /// its end when the restore began to `backend`, calling `remaining` with
    /// how far behind the end it is now and then; gives up (`Ok(None)`) once
    /// `stopped` says so. Reading committed records only, the end of the
    /// partition may show before that end while another input topic's
    /// transaction is open on it (its last stable offset): the restore then
    /// waits for that transaction, so no committed write is missed.
    pub fn run(
        &self,
        consumer: &BaseConsumer,
        from: Option<i64>,
        backend: &dyn StateBackend,
        remaining: &dyn Fn(i64),
        stopped: &dyn Fn() -> bool,
    ) -> Result<Option<Restored>, StateError> {
        let started = Instant::now();
        let mut assignment = TopicPartitionList::new();
        let offset = from.map_or(Offset::Beginning, Offset::Offset);
        assignment
            .add_partition_offset(self.changelog, self.partition, offset)
            .map_err(|e| self.error(e))?;
        consumer.assign(&assignment).map_err(|e| self.error(e))?;
        let (_, high) = self.watermarks(consumer)?;
        let mut writes = Vec::new();
        let mut pending_bytes = 0;
        let mut records = 0u64;
        let mut last_report = Instant::now();
        let end = loop {
            if stopped() {
                return Ok(None);
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(_))) => match self.position(consumer)? {
                    Some(position) if position < high => remaining(high - position),
                    _ => break high,
                },
                Some(Err(e)) => return Err(self.error(e)),
                Some(Ok(message)) => {
                    records += 1;
                    let key = match self.topic {
                        None => message.key(),
                        Some(ours) => message
                            .key()
                            .and_then(split_key)
                            .filter(|(topic, _)| *topic == ours)
                            .map(|(_, key)| key),
                    };
                    if let Some(key) = key {
                        pending_bytes += key.len() + message.payload().map_or(0, <[u8]>::len);
                        writes.push(StateWrite {
                            key: key.to_vec(),
                            value: message.payload().map(<[u8]>::to_vec),
                            delta: 0,
                        });
                    }
                    if pending_bytes >= RESTORE_BATCH_BYTES {
                        backend.apply(&writes)?;
                        writes.clear();
                        pending_bytes = 0;
                    }
                    if last_report.elapsed() > Duration::from_millis(500) {
                        remaining(high - message.offset() - 1);
                        last_report = Instant::now();
                    }
                }
            }
        };
        backend.apply(&writes)?;
        remaining(0);
        Ok(Some(Restored {
            records,
            end,
            took: started.elapsed(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changelog_keys_keep_the_input_topic_apart_from_the_state_key() {
        let key = record_key("orders", b"a\0b");
        assert_eq!(split_key(&key), Some(("orders", &b"a\0b"[..])));
        assert_eq!(split_key(b"no separator"), None);
        assert_eq!(topic_name("g", "dedupe"), "g.dedupe.state");
    }
}
