//! Reading dead letters back: a dead-letter topic's partitions from chosen
//! offsets up to the letters that existed when reading began, each letter
//! with the failure its `weir.*` headers record. `weir dlq show|replay` and
//! the console's dead-letter view read through here.

mod letter;

pub use letter::{Filter, Letter, Refusal};

use crate::kafka::{WeirConsumer, WeirContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long one metadata or offset request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one poll waits for a letter before looking again.
const POLL: Duration = Duration::from_millis(200);

/// Why letters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LetterError {
    /// The broker could not be asked or read.
    #[error("{what} failed for {topic}: {source}; check the brokers and the topic name")]
    Kafka {
        /// What was being done.
        what: &'static str,
        /// The dead-letter topic.
        topic: String,
        /// The client's error.
        source: KafkaError,
    },
    /// The topic does not exist.
    #[error("topic {0} does not exist; dead-letter topics are named <input topic>.dlq unless dlq_topic says otherwise")]
    NoTopic(String),
}

/// Where the dead letters are.
pub struct Source<'a> {
    /// Kafka bootstrap servers.
    pub brokers: &'a str,
    /// Extra librdkafka properties (security settings).
    pub librdkafka: &'a [(String, String)],
    /// The dead-letter topic.
    pub topic: &'a str,
}

impl Source<'_> {
    /// Client settings for this cluster, named `client_id`.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.brokers)
            .set("client.id", client_id);
        for (key, value) in self.librdkafka {
            config.set(key, value);
        }
        config
    }

    /// A Kafka error while doing `what` with this topic.
    pub fn kafka_error(&self, what: &'static str) -> impl FnOnce(KafkaError) -> LetterError + '_ {
        move |source| LetterError::Kafka {
            what,
            topic: self.topic.to_string(),
            source,
        }
    }

    /// Each partition's first and end offsets now (some brokers list too
    /// low an end).
    pub fn watermarks(
        &self,
        consumer: &WeirConsumer,
    ) -> Result<BTreeMap<i32, (i64, i64)>, LetterError> {
        let metadata = consumer
            .fetch_metadata(Some(self.topic), REQUEST_TIMEOUT)
            .map_err(self.kafka_error("reading the topic's metadata"))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(LetterError::NoTopic(self.topic.to_string()));
        }
        partitions
            .into_iter()
            .map(|p| {
                consumer
                    .fetch_watermarks(self.topic, p, REQUEST_TIMEOUT)
                    .map(|marks| (p, marks))
                    .map_err(self.kafka_error("reading the partitions' offsets"))
            })
            .collect()
    }
}

/// Reads letters from chosen start offsets up to the end of each partition
/// as it was when reading began: a partition is done when the consumer has
/// caught up with it, or at its first letter written after reading began
/// (by the letters' failure times, so no broker-listed end offset is needed:
/// some brokers list too low a one).
pub struct LetterReader<'a> {
    consumer: &'a WeirConsumer,
    topic: String,
    /// The partitions not yet done.
    unfinished: BTreeSet<i32>,
    /// When reading began, in ms since the epoch.
    began_ms: i64,
}

impl<'a> LetterReader<'a> {
    /// Assign `consumer` every partition of `starts` at its start offset.
    pub fn open(
        source: &Source<'_>,
        consumer: &'a WeirConsumer,
        starts: &BTreeMap<i32, i64>,
    ) -> Result<Self, LetterError> {
        let mut assignment = TopicPartitionList::new();
        for (&partition, &start) in starts {
            assignment
                .add_partition_offset(source.topic, partition, Offset::Offset(start))
                .map_err(source.kafka_error("choosing where to start"))?;
        }
        consumer
            .assign(&assignment)
            .map_err(source.kafka_error("assigning the partitions"))?;
        let began = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Self {
            consumer,
            topic: source.topic.to_string(),
            unfinished: starts.keys().copied().collect(),
            began_ms: i64::try_from(began.as_millis()).unwrap_or(i64::MAX),
        })
    }

    /// The next letter, or `None` once every partition is done.
    pub fn next_letter(&mut self) -> Result<Option<Letter>, LetterError> {
        while !self.unfinished.is_empty() {
            match self.consumer.poll(POLL) {
                Some(Ok(message)) => {
                    let letter = Letter {
                        record: crate::kafka::input_record(&message),
                    };
                    let partition = letter.record.partition;
                    if !self.unfinished.contains(&partition) {
                        continue;
                    }
                    if letter.failed_at_ms().is_some_and(|at| at > self.began_ms) {
                        self.unfinished.remove(&partition);
                        continue;
                    }
                    return Ok(Some(letter));
                }
                // Caught up (also where the last records are transaction
                // markers, so no letter sits at the end offset).
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    self.unfinished.remove(&partition);
                }
                Some(Err(source)) => {
                    return Err(LetterError::Kafka {
                        what: "reading letters",
                        topic: self.topic.clone(),
                        source,
                    })
                }
                None => {}
            }
        }
        Ok(None)
    }
}

/// A consumer for reading letters by assignment, told when it has caught up
/// with a partition, in `group` (librdkafka assigns only with a group; it
/// commits only when its user does).
pub fn reader_consumer(
    source: &Source<'_>,
    client_id: &str,
    group: &str,
) -> Result<WeirConsumer, LetterError> {
    source
        .client_config(client_id)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create_with_context(WeirContext::new())
        .map_err(source.kafka_error("creating the consumer"))
}

/// The letters among the last `last` of each partition of `source` (every
/// letter if `None`) that `filter` selects, oldest first within a partition.
/// Some brokers list too low an end offset, so more may be read: each
/// partition keeps its latest `last`.
pub fn latest(
    source: &Source<'_>,
    consumer: &WeirConsumer,
    last: Option<i64>,
    filter: &Filter,
) -> Result<Vec<Letter>, LetterError> {
    let starts = source
        .watermarks(consumer)?
        .into_iter()
        .map(|(partition, (low, high))| {
            (partition, last.map_or(low, |last| (high - last).max(low)))
        })
        .collect();
    let mut reader = LetterReader::open(source, consumer, &starts)?;
    let keep = last.map_or(usize::MAX, |last| usize::try_from(last).unwrap_or(0));
    let mut latest: BTreeMap<i32, VecDeque<Letter>> = BTreeMap::new();
    while let Some(letter) = reader.next_letter()? {
        let kept = latest.entry(letter.record.partition).or_default();
        if kept.len() == keep {
            kept.pop_front();
        }
        if keep > 0 {
            kept.push_back(letter);
        }
    }
    Ok(latest
        .into_values()
        .flatten()
        .filter(|letter| letter.selected_by(filter))
        .collect())
}
