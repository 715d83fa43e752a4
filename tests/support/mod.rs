//! Shared helpers for the integration tests: the local broker, topics, producing
//! and reading records, the group's committed offsets, building the example
//! plugins, and running the `weir` binary as a user would.

#![allow(dead_code)] // Each test file uses a different subset.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static BROKERS_OVERRIDE: OnceLock<String> = OnceLock::new();

/// The broker under test: the one a test binary chose with [`use_brokers`], else
/// `WEIR_TEST_BROKERS`, else the local one from `scripts/broker`.
pub fn brokers() -> String {
    if let Some(addr) = BROKERS_OVERRIDE.get() {
        return addr.clone();
    }
    std::env::var("WEIR_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
}

/// Make every helper in this test binary talk to `addr` (first call wins).
pub fn use_brokers(addr: &str) {
    let _ = BROKERS_OVERRIDE.set(addr.to_string());
}

/// Fail fast, with instructions, when no broker is listening.
pub fn require_broker() {
    let addr = brokers();
    let first = addr.split(',').next().unwrap_or_default().to_string();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&first.as_str())
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "no Kafka broker at {addr}: start the local one with `scripts/broker start` (or run scripts/test)"
    );
}

/// A name no other test run has used (topics live as long as the broker).
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!(
        "{prefix}-{}-{millis}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers())
        // noida-db answers fetches without honouring size limits.
        .set("receive.message.max.bytes", "1000000000");
    c
}

/// Create a topic with `partitions` partitions.
pub async fn create_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client_config().create().unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics request");
    for r in results {
        r.unwrap_or_else(|(topic, e)| panic!("creating topic {topic}: {e}"));
    }
}

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
    for r in records {
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

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of an example plugin's component, building all example plugins for
/// `wasm32-wasip2` on first use (in their own target dir, so this does not wait
/// on the lock of the cargo that runs the tests).
pub fn example_plugin(crate_name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target_dir = workspace_root().join("target").join("test-plugins");
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace_root())
            .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2"])
            .args(["-p", "uppercase", "-p", "json-filter", "-p", "slow", "-p", "poison"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .status()
            .expect("running cargo to build the example plugins");
        assert!(status.success(), "building the example plugins failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`)");
        target_dir.join("wasm32-wasip2").join("plugin")
    });
    dir.join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// Path of a Python example plugin's component (`plugins/python/NAME`), built
/// with `weir build` on first use.
pub fn python_plugin(name: &str) -> PathBuf {
    source_plugin("python", name)
}

/// Path of a JavaScript example plugin's component (`plugins/js/NAME`), built
/// with `weir build` on first use.
pub fn js_plugin(name: &str) -> PathBuf {
    source_plugin("js", name)
}

/// Path of a C example plugin's component (`plugins/c/NAME`), built with `weir
/// build` on first use.
pub fn c_plugin(name: &str) -> PathBuf {
    source_plugin("c", name)
}

fn source_plugin(language: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let out_dir = workspace_root()
        .join("target")
        .join("test-plugins")
        .join(language);
    let out = out_dir.join(format!("{name}.wasm"));
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.contains(&out) {
        std::fs::create_dir_all(&out_dir).unwrap();
        let status = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("build")
            .arg(workspace_root().join("plugins").join(language).join(name))
            .arg("-o")
            .arg(&out)
            .status()
            .expect("running weir build");
        assert!(status.success(), "building the {language} plugin {name} failed (is its toolchain installed? scripts/setup installs it)");
        built.push(out.clone());
    }
    out
}

/// A running `weir` process; killed if dropped while still running.
pub struct Weir {
    child: Child,
    log: PathBuf,
}

/// Arguments every test run passes: the broker, a short session timeout (the
/// local broker takes session.timeout/2 to complete a join) and a test cache dir.
pub fn weir_base_args(group: &str) -> Vec<String> {
    vec![
        "run".into(),
        "--brokers".into(),
        brokers(),
        "--group".into(),
        group.into(),
        "-X".into(),
        "session.timeout.ms=6000".into(),
        "--drain-timeout".into(),
        "5s".into(),
        // Tests run several processes at once: any free port.
        "--admin-addr".into(),
        "127.0.0.1:0".into(),
        "--cache-dir".into(),
        workspace_root()
            .join("target")
            .join("test-cache")
            .display()
            .to_string(),
    ]
}

impl Weir {
    /// Start `weir` with `args`, logging to a file under target/.
    pub fn start(args: &[String]) -> Self {
        let log_dir = workspace_root().join("target").join("test-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log = log_dir.join(format!("{}.log", unique("weir")));
        let child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .env(
                "WEIR_LOG",
                std::env::var("WEIR_TEST_LOG").unwrap_or_else(|_| "info,weir=debug".into()),
            )
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting weir");
        Self { child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill the process with SIGKILL, as a crash would, and reap it.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Resident memory of the process in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        self.proc_status_kib("VmRSS:")
    }

    /// Peak resident memory of the process so far in KiB (the kernel's high-water mark).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.proc_status_kib("VmHWM:")
    }

    fn proc_status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The admin endpoint's address, from the log line that announces it (text
    /// or JSON logs).
    pub fn admin_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log_text();
            let found = log
                .lines()
                .filter(|l| l.contains("admin endpoint listening"))
                .find_map(|l| {
                    let (_, rest) = l
                        .split_once("addr=")
                        .or_else(|| l.split_once("\"addr\":\""))?;
                    rest.split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .map(str::to_string)
                });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "no admin endpoint in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait (up to `timeout`) until the log contains `text`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "`{text}` not logged within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Send SIGTERM and wait (up to `timeout`) for the exit status.
    pub fn terminate(self, timeout: Duration) -> ExitStatus {
        self.terminate_with_log(timeout).0
    }

    /// Send SIGTERM, as a shutdown would, without waiting.
    pub fn signal_term(&self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// Send SIGTERM, wait for the exit status, and return it with the whole log.
    pub fn terminate_with_log(mut self, timeout: Duration) -> (ExitStatus, String) {
        self.signal_term();
        let status = self.wait(timeout);
        (status, self.log_text())
    }

    /// Wait (up to `timeout`) for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "weir did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `weir` with `args` to completion (it must exit by itself within
/// `timeout`) and return its exit status and log.
pub fn run_to_exit(args: &[String], timeout: Duration) -> (ExitStatus, String) {
    let mut weir = Weir::start(args);
    let status = weir.wait(timeout);
    (status, weir.log_text())
}

// ---- Numbered streams through the `slow` plugin (delivery and transaction tests) ----

/// Partitions of the topics made by [`topics`].
pub const PARTITIONS: i32 = 4;

/// Run timing-sensitive tests of one binary one at a time (2-core machines).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// An input topic, an output topic (both with [`PARTITIONS`]) and a group name.
pub async fn topics(prefix: &str) -> (String, String, String) {
    let names = (
        unique(&format!("{prefix}-in")),
        unique(&format!("{prefix}-out")),
        unique(&format!("{prefix}-g")),
    );
    create_topic(&names.0, PARTITIONS).await;
    create_topic(&names.1, PARTITIONS).await;
    names
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

/// `weir run` arguments: the base ones, `input` → `output` through `plugin`, then `extra`.
pub fn pipeline_args(
    group: &str,
    input: &str,
    output: &str,
    plugin: &Path,
    extra: &[&str],
) -> Vec<String> {
    let mut args = weir_base_args(group);
    args.extend(["--topic", input, "--output-topic", output].map(String::from));
    args.extend(["--plugin".to_string(), plugin.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// `weir run` arguments for the `slow` plugin with `delay_us` per record on 2 instances.
pub fn slow_args(
    group: &str,
    input: &str,
    output: &str,
    delay_us: u32,
    extra: &[&str],
) -> Vec<String> {
    let delay = format!("delay_us={delay_us}");
    let mut all = vec![
        "--instances",
        "2",
        // noida-db answers fetches without honouring size limits.
        "-X",
        "receive.message.max.bytes=1000000000",
        "--plugin-config",
        &delay,
    ];
    all.extend_from_slice(extra);
    pipeline_args(group, input, output, &example_plugin("slow"), &all)
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

// ---- The admin endpoint ----

/// Send `method path` to the admin endpoint at `addr`; returns the status code
/// and the body.
pub fn admin_request(addr: &str, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting to the admin endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

// ---- Metrics ----

/// The samples of the admin endpoint's `/metrics`.
pub fn scrape(admin: &str) -> Vec<weir::status::Sample> {
    let (status, body) = admin_request(admin, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    weir::status::parse_samples(&body)
}

/// Per-partition lag of `topic` as last scraped.
pub fn lags(samples: &[weir::status::Sample], topic: &str) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|s| s.name == "weir_consumer_lag" && s.labels["topic"] == topic)
        .map(|s| (s.labels["partition"].clone(), s.value))
        .collect()
}

/// Scrape until every partition of `topic` reports lag 0 (and all are
/// reported); returns the samples of that scrape. Also returns the largest
/// total lag seen on the way.
pub fn wait_for_zero_lag(
    admin: &str,
    topic: &str,
    weir: &Weir,
) -> (Vec<weir::status::Sample>, f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peak: f64 = 0.0;
    loop {
        let samples = scrape(admin);
        let lag = lags(&samples, topic);
        peak = peak.max(lag.values().sum());
        if lag.len() == PARTITIONS as usize && lag.values().all(|l| *l == 0.0) {
            return (samples, peak);
        }
        assert!(
            Instant::now() < deadline,
            "lag of {topic} never reached 0: {lag:?}; log:\n{}",
            weir.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
