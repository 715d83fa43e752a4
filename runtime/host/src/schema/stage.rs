//! Around the plugin chain: records framed by a schema registry serializer are
//! decoded to JSON before the first plugin, and the last plugin's JSON outputs
//! are encoded with their subject's schema. A record that cannot be decoded,
//! or whose output does not fit, fails with kind `schema`; while the registry
//! cannot be reached the batch waits (with backoff) instead of failing.

use super::registry::{Codec, Registered, Registry, RegistryError};
use super::wire;
use crate::process::{
    resolve_chain, Chain, ChainStage, FailureKind, Later, Progress, RecordFailure, Resolution,
    Settled,
};
use crate::record::{Header, Output, Record};
use crate::telemetry::SchemaMetrics;
use crate::wasm::PluginError;
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Headers Weir adds for plugins about a decoded value; removed from outputs
/// whose value is encoded (they would name the input's schema).
const VALUE_HEADERS: [&str; 2] = ["weir.schema.id", "weir.schema.subject"];
/// The same about a decoded key.
const KEY_HEADERS: [&str; 2] = ["weir.schema.key.id", "weir.schema.key.subject"];
/// Longest wait between two tries of an unavailable registry.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Which parts of a record a direction applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Parts {
    /// The key.
    pub key: bool,
    /// The value.
    pub value: bool,
}

/// How an output's subject is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectStrategy {
    /// `<topic>-key` / `<topic>-value` (TopicNameStrategy).
    Topic,
    /// The record's full name (RecordNameStrategy).
    Record(String),
    /// `<topic>-<record name>` (TopicRecordNameStrategy).
    TopicRecord(String),
}

/// What the operator asked of the schema registry for one pipeline.
#[derive(Debug, Clone)]
pub struct SchemaSettings {
    /// Parts decoded to JSON before the plugins.
    pub decode: Parts,
    /// Parts of outputs encoded from JSON.
    pub encode: Parts,
    /// How outputs' subjects are named.
    pub strategy: SubjectStrategy,
    /// The subject version outputs are encoded with (`None`: the latest).
    pub version: Option<u32>,
    /// Schemas (text and format) registered for outputs' keys and values
    /// when `auto_register` is on.
    pub register: Option<Registration>,
    /// Validate JSON Schema outputs.
    pub validate: bool,
    /// Most JSON bytes one decoded key or value may take.
    pub max_decoded_bytes: usize,
    /// Wait for an unreachable registry (`weir run`: records are never failed
    /// for it) rather than fail the record (`weir test`: the author sees why).
    pub wait_for_registry: bool,
}

/// Schemas Weir registers for outputs (`auto_register`).
#[derive(Debug, Clone)]
pub struct Registration {
    /// The value schema's text and format.
    pub value: Option<(String, super::Format)>,
    /// The key schema's text and format.
    pub key: Option<(String, super::Format)>,
}

/// The schema stage of one pipeline.
pub struct SchemaStage {
    registry: Arc<Registry>,
    settings: SchemaSettings,
    metrics: SchemaMetrics,
    /// Waits on an unavailable registry so far, to bound the log.
    waits: AtomicU64,
}

/// The records whose decoded copies went into the chain, by the copy's place
/// in the chain's input.
#[derive(Default)]
struct Originals {
    /// The original records (taken once their copy is resolved).
    records: Vec<Option<Record>>,
    /// Each one's place in the records the call was given.
    indexes: Vec<usize>,
}

impl Originals {
    /// The original of the chain's input `at`, with its place in the call.
    fn take(&mut self, at: usize) -> (usize, Record) {
        let record = self.records[at]
            .take()
            .expect("each input is resolved once");
        (self.indexes[at], record)
    }
}

/// What became of one record before the plugins.
enum Prepared {
    /// Decoded: the next input of the chain.
    Input(Record),
    /// Not decodable: fails with kind `schema`.
    Failed(String),
    /// Stopped while the registry was unavailable.
    Unfinished,
}

impl SchemaStage {
    /// The stage for `settings`, asking `registry`.
    pub fn new(registry: Arc<Registry>, settings: SchemaSettings, metrics: SchemaMetrics) -> Self {
        Self {
            registry,
            settings,
            metrics,
            waits: AtomicU64::new(0),
        }
    }

    /// Resolve `records` through `chain` with decoding before it and encoding
    /// after it. Each record keeps its original bytes (for dead letters).
    /// Outputs without a topic of their own go to `output_topic`, whose
    /// subject encodes them. Records the plugins retry come later in the
    /// progress, encoded as they come.
    pub async fn resolve(
        self: Arc<Self>,
        chain: Chain,
        records: Vec<Record>,
        output_topic: Arc<str>,
        stop: CancellationToken,
    ) -> Result<Progress, PluginError> {
        let first = &chain[0];
        let mut inputs = Vec::new();
        let mut originals = Originals::default();
        let mut settled = Vec::new();
        let mut stopped = false;
        for (index, record) in records.into_iter().enumerate() {
            // Once stopped, every later record stays unfinished too.
            let prepared = if stopped {
                Prepared::Unfinished
            } else {
                self.decode(&record, &stop).await
            };
            stopped = matches!(prepared, Prepared::Unfinished);
            let resolution = match prepared {
                Prepared::Input(decoded) => {
                    inputs.push(decoded);
                    originals.records.push(Some(record));
                    originals.indexes.push(index);
                    continue;
                }
                Prepared::Failed(message) => {
                    self.metrics.failures("decode").inc();
                    schema_failure(message, first)
                }
                Prepared::Unfinished => Resolution::Unfinished,
            };
            settled.push(Settled {
                index,
                record,
                resolution,
                writes: Vec::new(),
            });
        }
        if inputs.is_empty() {
            return Ok(Progress {
                settled,
                later: Vec::new(),
            });
        }
        let progress = resolve_chain(Arc::clone(&chain), inputs, stop.clone()).await?;
        let originals = Arc::new(Mutex::new(originals));
        let mut encoded = self
            .encode_progress(progress, chain, originals, output_topic, stop)
            .await;
        encoded.settled.extend(settled);
        Ok(encoded)
    }

    /// `progress` of the decoded records with their outputs encoded and their
    /// original records back; what comes later is encoded when it comes.
    fn encode_progress(
        self: Arc<Self>,
        progress: Progress,
        chain: Chain,
        originals: Arc<Mutex<Originals>>,
        output_topic: Arc<str>,
        stop: CancellationToken,
    ) -> BoxFuture<'static, Progress> {
        Box::pin(async move {
            let last = chain.last().expect("a chain has at least one plugin");
            let mut settled = Vec::with_capacity(progress.settled.len());
            for decoded in progress.settled {
                let resolution = self
                    .encode(decoded.resolution, last, &output_topic, &stop)
                    .await;
                let (index, record) = originals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take(decoded.index);
                settled.push(Settled {
                    index,
                    record,
                    resolution,
                    writes: decoded.writes,
                });
            }
            let later = progress
                .later
                .into_iter()
                .map(|work| {
                    let this = Arc::clone(&self);
                    let (chain, originals) = (Arc::clone(&chain), Arc::clone(&originals));
                    let (topic, stop) = (Arc::clone(&output_topic), stop.clone());
                    Box::pin(async move {
                        let progress = work.await?;
                        Ok(this
                            .encode_progress(progress, chain, originals, topic, stop)
                            .await)
                    }) as Later
                })
                .collect();
            Progress { settled, later }
        })
    }

    /// `record` with its configured parts decoded to JSON (the parts left as
    /// they are are copied; the decoded ones are not copied first).
    async fn decode(&self, record: &Record, stop: &CancellationToken) -> Prepared {
        let mut headers = record.headers.clone();
        let parts = [
            (self.settings.decode.key, &record.key, true),
            (self.settings.decode.value, &record.value, false),
        ];
        let mut decoded = [None, None];
        for ((asked, part, is_key), slot) in parts.into_iter().zip(&mut decoded) {
            *slot = match part.as_deref().filter(|_| asked) {
                Some(bytes) => match self.decode_part(bytes, is_key, &mut headers, stop).await {
                    Ok(json) => Some(json),
                    Err(unfinished_or_failed) => return unfinished_or_failed,
                },
                None => part.clone(),
            };
        }
        let [key, value] = decoded;
        Prepared::Input(Record {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            key,
            value,
            headers,
        })
    }

    /// The JSON of one framed key or value, with its schema id and subject
    /// added to `headers`.
    async fn decode_part(
        &self,
        bytes: &[u8],
        is_key: bool,
        headers: &mut Vec<Header>,
        stop: &CancellationToken,
    ) -> Result<Vec<u8>, Prepared> {
        let (what, [id_header, subject_header]) = if is_key {
            ("key", KEY_HEADERS)
        } else {
            ("value", VALUE_HEADERS)
        };
        let (id, payload) =
            wire::split(bytes).map_err(|e| Prepared::Failed(format!("the record's {what} {e}")))?;
        let schema = match self.wait_for(|| self.registry.by_id(id), stop).await {
            Some(Ok(schema)) => schema,
            Some(Err(e)) => return Err(Prepared::Failed(format!("the record's {what}: {e}"))),
            None => return Err(Prepared::Unfinished),
        };
        let max = self.settings.max_decoded_bytes;
        let json = match &schema.codec {
            Codec::Avro(avro) => avro.decode(payload, max),
            Codec::Json(json) => json.decode(payload, max),
            Codec::Protobuf(proto) => proto.decode(payload, max),
        }
        .map_err(|e| {
            Prepared::Failed(format!(
                "the record's {what} does not decode with schema {id} ({}): {e}",
                schema.format().as_str()
            ))
        })?;
        headers.push(Header {
            key: id_header.to_string(),
            value: id.to_string().into_bytes(),
        });
        if let Some(subject) = self.registry.subject_of(id).await {
            headers.push(Header {
                key: subject_header.to_string(),
                value: subject.as_bytes().to_vec(),
            });
        }
        Ok(json)
    }

    /// `resolution` with its outputs' configured parts encoded.
    async fn encode(
        &self,
        resolution: Resolution,
        producer: &ChainStage,
        output_topic: &str,
        stop: &CancellationToken,
    ) -> Resolution {
        let Resolution::Outputs(mut outputs) = resolution else {
            return resolution;
        };
        for output in &mut outputs {
            let encode = self.settings.encode;
            output.headers.retain(|h| {
                !(encode.value && VALUE_HEADERS.contains(&h.key.as_str())
                    || encode.key && KEY_HEADERS.contains(&h.key.as_str()))
            });
            match self.encode_output(output, output_topic, stop).await {
                Ok(true) => {}
                Ok(false) => return Resolution::Unfinished,
                Err(message) => {
                    self.metrics.failures("encode").inc();
                    return schema_failure(message, producer);
                }
            }
        }
        Resolution::Outputs(outputs)
    }

    /// Encode `output`'s configured parts; false if stopped while waiting.
    async fn encode_output(
        &self,
        output: &mut Output,
        output_topic: &str,
        stop: &CancellationToken,
    ) -> Result<bool, String> {
        let topic = output
            .topic
            .clone()
            .unwrap_or_else(|| output_topic.to_string());
        for (is_key, asked) in [
            (true, self.settings.encode.key),
            (false, self.settings.encode.value),
        ] {
            let part = if is_key {
                &mut output.key
            } else {
                &mut output.value
            };
            let Some(json) = part.as_deref().filter(|_| asked) else {
                continue;
            };
            let subject = self.subject(&topic, is_key);
            let schema = match self
                .wait_for(|| self.output_schema(&subject, is_key), stop)
                .await
            {
                Some(Ok(schema)) => schema,
                Some(Err(e)) => return Err(format!("no schema for subject `{subject}`: {e}")),
                None => return Ok(false),
            };
            let payload = match &schema.codec {
                Codec::Avro(avro) => avro.encode(json),
                Codec::Json(schema) => schema.encode(json, self.settings.validate),
                Codec::Protobuf(proto) => proto.encode(json),
            }
            .map_err(|e| format!("subject `{subject}` (schema {}): {e}", schema.id))?;
            *part = Some(wire::frame(schema.id, &payload));
        }
        Ok(true)
    }

    /// The schema outputs of `subject` are encoded with.
    async fn output_schema(
        &self,
        subject: &str,
        is_key: bool,
    ) -> Result<Arc<Registered>, RegistryError> {
        let registered = self.settings.register.as_ref().and_then(|r| {
            if is_key {
                r.key.as_ref()
            } else {
                r.value.as_ref()
            }
        });
        match registered {
            Some((text, format)) => self.registry.register(subject, text, *format).await,
            None => self.registry.version(subject, self.settings.version).await,
        }
    }

    /// The subject of an output's key or value on `topic`.
    fn subject(&self, topic: &str, is_key: bool) -> String {
        let part = if is_key { "key" } else { "value" };
        match &self.settings.strategy {
            SubjectStrategy::Topic => format!("{topic}-{part}"),
            SubjectStrategy::Record(name) => name.clone(),
            SubjectStrategy::TopicRecord(name) => format!("{topic}-{name}"),
        }
    }

    /// Ask the registry through `ask` until it answers or `stop`; `None` if stopped.
    async fn wait_for<F, Fut>(
        &self,
        ask: F,
        stop: &CancellationToken,
    ) -> Option<Result<Arc<Registered>, RegistryError>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Arc<Registered>, RegistryError>>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match ask().await {
                Err(RegistryError::Unavailable(reason)) if self.settings.wait_for_registry => {
                    let waits = self.waits.fetch_add(1, Ordering::Relaxed) + 1;
                    if waits.is_power_of_two() {
                        tracing::warn!(%reason, waits, retry_in = ?backoff,
                            "schema registry unavailable; records wait for it (none is failed for this)");
                    }
                    self.metrics.waits.inc();
                    tokio::select! {
                        _ = stop.cancelled() => return None,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                other => return Some(other),
            }
        }
    }
}

/// A record failed by the schema stage, charged to `stage`'s plugin.
fn schema_failure(message: String, stage: &ChainStage) -> Resolution {
    Resolution::Failed(RecordFailure {
        kind: FailureKind::Schema,
        message,
        attempts: 1,
        plugin: stage.pool.identity(),
    })
}
