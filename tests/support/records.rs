//! Records in and out of topics: producing test records, reading topics back
//! (from the start, without a consumer group), numbered streams whose outputs
//! match their inputs one to one, and the group's committed offsets.

use crate::broker::{client_config, unique, PARTITIONS};
use crate::process::Weir;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A record to produce or that was read back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TestRecord {
    /// Partition it was read from (ignored when producing).
    pub partition: i32,
    /// Offset it was read at (ignored when producing).
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers as (name, value) pairs.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Timestamp in ms, as read (`None` when producing: the client sets it).
    pub timestamp: Option<i64>,
}

impl TestRecord {
    /// Its key as text (lossy; empty if none).
    pub fn key_text(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }

    /// Its value as text (lossy; empty if none).
    pub fn value_text(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }

    /// The first header `name`, as text.
    pub fn header_text(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// A record to produce.
    pub fn new(key: &str, value: &[u8], headers: &[(&str, &str)]) -> Self {
        Self {
            partition: -1,
            offset: -1,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.to_vec()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            timestamp: None,
        }
    }
}

/// Produce `records` (idempotently, in order) and return the end offset of each
/// partition they landed in, from the delivery reports.
pub async fn produce(topic: &str, records: &[TestRecord]) -> BTreeMap<i32, i64> {
    produce_paced(topic, records, usize::MAX, Duration::ZERO).await
}

/// Like [`produce`], pausing `pause` after every `per_pause` records (one
/// producer throughout), so that a pipeline cannot run far ahead of its input.
pub async fn produce_paced(
    topic: &str,
    records: &[TestRecord],
    per_pause: usize,
    pause: Duration,
) -> BTreeMap<i32, i64> {
    let producer: FutureProducer = client_config()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut pending = std::collections::VecDeque::new();
    let mut ends = BTreeMap::new();
    let mut note = |delivery: rdkafka::producer::future_producer::OwnedDeliveryResult| {
        let delivery = delivery.map_err(|(e, _)| e).unwrap();
        let end = ends.entry(delivery.partition).or_insert(0);
        *end = (*end).max(delivery.offset + 1);
    };
    for (i, r) in records.iter().enumerate() {
        if i > 0 && i % per_pause.max(1) == 0 {
            tokio::time::sleep(pause).await;
        }
        let headers = r.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v),
            })
        });
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        record.key = r.key.as_deref();
        record.payload = r.value.as_deref();
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push_back(delivery);
                    break;
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    // The local queue is full: wait for the oldest delivery, then retry.
                    record = back;
                    let oldest = pending
                        .pop_front()
                        .expect("a full queue has deliveries pending");
                    note(oldest.await.unwrap());
                }
                Err((e, _)) => panic!("producing to {topic}: {e}"),
            }
        }
    }
    for delivery in pending {
        note(delivery.await.unwrap());
    }
    ends
}

/// Reads every partition of a topic from the start, without a consumer group,
/// accumulating what arrived so far.
pub struct TopicReader {
    consumer: BaseConsumer,
    topic: String,
    records: Vec<TestRecord>,
}

impl TopicReader {
    /// Assign all of `topic`'s partitions from their beginning.
    pub fn new(topic: &str) -> Self {
        Self::with_isolation(topic, "read_uncommitted")
    }

    /// Like [`TopicReader::new`], seeing only records of committed transactions.
    pub fn read_committed(topic: &str) -> Self {
        Self::with_isolation(topic, "read_committed")
    }

    fn with_isolation(topic: &str, isolation: &str) -> Self {
        let consumer: BaseConsumer = client_config()
            .set("group.id", unique("reader"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        Self {
            consumer,
            topic: topic.to_string(),
            records: Vec::new(),
        }
    }

    /// Read for up to `duration`; returns how many records arrived in total.
    pub fn read_for(&mut self, duration: Duration) -> usize {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.poll_once();
        }
        self.records.len()
    }

    /// Read until nothing new arrived for `quiet`, or `timeout` passed.
    pub fn read_until_quiet(&mut self, quiet: Duration, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut last_arrival = Instant::now();
        while last_arrival.elapsed() < quiet && Instant::now() < deadline {
            if self.poll_once() {
                last_arrival = Instant::now();
            }
        }
        self.records.len()
    }

    /// Read until at least `count` records arrived in total or `timeout` passed.
    pub fn read_until(&mut self, count: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        while self.records.len() < count && Instant::now() < deadline {
            self.poll_once();
        }
        self.records.len()
    }

    fn poll_once(&mut self) -> bool {
        match self.consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                self.records.push(TestRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    timestamp: m.timestamp().to_millis(),
                });
                true
            }
            Some(Err(e)) => panic!("reading {}: {e}", self.topic),
            None => false,
        }
    }

    /// Everything read so far.
    pub fn records(&self) -> &[TestRecord] {
        &self.records
    }
}

/// Read every partition of `topic` from the start until `expected` records
/// arrived and `quiet` passed without more (to catch extras), or `timeout` passed.
pub fn read_all(
    topic: &str,
    expected: usize,
    timeout: Duration,
    quiet: Duration,
) -> Vec<TestRecord> {
    let mut reader = TopicReader::new(topic);
    reader.read_until(expected, timeout);
    reader.read_for(quiet);
    reader.records
}

/// The offsets `group` has committed for `topic`'s partitions (-1 where none).
pub fn committed_offsets(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = client_config().set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
        .collect()
}

/// Wait until `group`'s committed offsets equal `ends` for every partition
/// (partitions missing from `ends` must stay uncommitted or at 0).
pub fn wait_for_commits(
    group: &str,
    topic: &str,
    partitions: i32,
    ends: &BTreeMap<i32, i64>,
    timeout: Duration,
) -> BTreeMap<i32, i64> {
    let want: BTreeMap<i32, i64> = (0..partitions)
        .map(|p| (p, ends.get(&p).copied().unwrap_or(-1)))
        .collect();
    let deadline = Instant::now() + timeout;
    loop {
        let got: BTreeMap<i32, i64> = committed_offsets(group, topic, partitions)
            .into_iter()
            .map(|(p, o)| {
                (
                    p,
                    if o <= 0 && !ends.contains_key(&p) {
                        -1
                    } else {
                        o
                    },
                )
            })
            .collect();
        if got == want || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Inputs with unique values `v<i>-` padded to `value_len` bytes, so that outputs
/// can be matched to inputs one to one.
pub fn numbered(count: usize, value_len: usize) -> Vec<TestRecord> {
    (0..count)
        .map(|i| {
            let mut value = format!("v{i}-").into_bytes();
            value.resize(value_len.max(value.len()), b'x');
            TestRecord::new(&format!("k{}", i % 97), &value, &[])
        })
        .collect()
}

/// How many outputs (`V<i>-...` or `v<i>-...`) each input index has.
pub fn output_counts(outputs: &[TestRecord]) -> std::collections::HashMap<usize, usize> {
    let mut counts = std::collections::HashMap::new();
    for o in outputs {
        let value = o.value.as_deref().unwrap();
        let digits: String = value[1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| b as char)
            .collect();
        *counts.entry(digits.parse().unwrap()).or_insert(0) += 1;
    }
    counts
}

/// A count from the environment (the soak script's larger runs), else `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `ends` for every partition.
pub fn all_partitions(ends: &BTreeMap<i32, i64>) -> BTreeMap<i32, i64> {
    (0..PARTITIONS).map(|p| (p, ends[&p])).collect()
}

/// Records committed by `group` on `input`, summed over partitions.
pub fn committed_total(group: &str, input: &str) -> i64 {
    committed_offsets(group, input, PARTITIONS)
        .values()
        .map(|o| (*o).max(0))
        .sum()
}

/// The outputs and dead letters of `weir`'s run over `input` (`topics` is the
/// input and output topic), at least `counts` of each, once it has committed
/// up to `ends`.
pub fn outputs_and_letters(
    weir: &Weir,
    group: &str,
    (input, output): (&str, &str),
    ends: &BTreeMap<i32, i64>,
    counts: (usize, usize),
) -> (Vec<TestRecord>, Vec<TestRecord>) {
    let outputs = read_all(
        output,
        counts.0,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    wait_for_committed(group, input, ends.values().sum(), weir);
    // Read the dead-letter topic once Weir has created it (at start-up).
    let letters = read_all(
        &format!("{input}.dlq"),
        counts.1,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    (outputs, letters)
}

/// Wait until `group` committed at least `records` of `input` while `weir` runs.
pub fn wait_for_committed(group: &str, input: &str, records: i64, weir: &Weir) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed_total(group, input) < records {
        assert!(
            Instant::now() < deadline,
            "no progress; log:\n{}",
            weir.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Produce one record to partition 0 of `topic` whose header key is the raw
/// bytes `header_key` (which need not be UTF-8, as on the wire, and which the
/// Rust client cannot express): through librdkafka's C API.
#[allow(unsafe_code)]
pub fn produce_with_raw_header_key(topic: &str, header_key: &[u8], value: &[u8]) {
    use rdkafka::bindings::{rd_kafka_producev, rd_kafka_resp_err_t, rd_kafka_vtype_t as V};
    use rdkafka::producer::{BaseProducer, Producer};
    use std::ffi::{c_int, c_void, CString};
    let producer: BaseProducer = client_config().create().unwrap();
    let topic = CString::new(topic).unwrap();
    let name = CString::new(header_key).unwrap();
    let header_value = b"v";
    const COPY: c_int = 2; // RD_KAFKA_MSG_F_COPY
                           // SAFETY: every pointer is valid for the call (librdkafka copies the
                           // payload, the header and the topic name), and the argument list follows
                           // rd_kafka_producev's documented (type, value...) pairs ending in END.
    let err = unsafe {
        rd_kafka_producev(
            producer.client().native_ptr(),
            V::RD_KAFKA_VTYPE_TOPIC as c_int,
            topic.as_ptr(),
            V::RD_KAFKA_VTYPE_PARTITION as c_int,
            0 as c_int,
            V::RD_KAFKA_VTYPE_MSGFLAGS as c_int,
            COPY,
            V::RD_KAFKA_VTYPE_VALUE as c_int,
            value.as_ptr() as *mut c_void,
            value.len(),
            V::RD_KAFKA_VTYPE_HEADER as c_int,
            name.as_ptr(),
            header_value.as_ptr() as *const c_void,
            header_value.len() as isize,
            V::RD_KAFKA_VTYPE_END as c_int,
        )
    };
    assert_eq!(err, rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
    producer.flush(Duration::from_secs(10)).unwrap();
}
