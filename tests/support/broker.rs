//! The broker under test: its address (the local tansu broker from
//! `scripts/broker`, `WEIR_TEST_BROKERS`, or one a test binary chose, such as
//! noida-db for the transaction tests), fail-fast reachability, unique names,
//! topic creation, and the lock that runs timing-sensitive tests one at a time.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

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

/// A client configuration for [`brokers`], shared by the admin, producer and
/// consumer clients of these helpers.
pub(crate) fn client_config() -> ClientConfig {
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

/// Whether `topic` exists on the broker (asking does not create it).
pub fn topic_exists(topic: &str) -> bool {
    let consumer: BaseConsumer = client_config().create().unwrap();
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map(|m| {
            m.topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        })
        .unwrap_or(false)
}

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
