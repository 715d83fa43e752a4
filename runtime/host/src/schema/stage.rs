//! Around the plugin chain: records framed by a schema registry serializer are
//! decoded to JSON before the first plugin, and the last plugin's JSON outputs
//! are encoded with their subject's schema. A record that cannot be decoded,
//! or whose output does not fit, fails with kind `schema`; while the registry
//! cannot be reached the batch waits (with backoff) instead of failing.

use super::registry::{Codec, Registered, Registry, RegistryError};
use super::wire;
use crate::process::{resolve_chain, ChainStage, FailureKind, RecordFailure, Resolution};
use crate::record::{Header, Output, Record};
use crate::telemetry::SchemaMetrics;
use crate::wasm::PluginError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
    /// subject encodes them.
    pub async fn resolve(
        &self,
        chain: &[ChainStage<'_>],
        records: Vec<Record>,
        output_topic: &str,
        stop: &CancellationToken,
    ) -> Result<Vec<(Record, Resolution)>, PluginError> {
        let first = chain.first().expect("a chain has at least one plugin");
        let mut prepared = Vec::with_capacity(records.len());
        for record in &records {
            let next = if prepared.iter().any(|p| matches!(p, Prepared::Unfinished)) {
                Prepared::Unfinished
            } else {
                self.decode(record, stop).await
            };
            prepared.push(next);
        }
        let mut inputs = Vec::new();
        let prepared: Vec<Option<Result<(), String>>> = prepared
            .into_iter()
            .map(|p| match p {
                Prepared::Input(decoded) => {
                    inputs.push(decoded);
                    Some(Ok(()))
                }
                Prepared::Failed(message) => Some(Err(message)),
                Prepared::Unfinished => None,
            })
            .collect();
        let mut resolved = if inputs.is_empty() {
            Vec::new().into_iter()
        } else {
            resolve_chain(chain, inputs, stop).await?.into_iter()
        };
        let last = chain.last().expect("a chain has at least one plugin");
        let mut out = Vec::with_capacity(records.len());
        for (original, state) in records.into_iter().zip(prepared) {
            let resolution = match state {
                Some(Ok(())) => {
                    let (_, resolution) = resolved.next().expect("one resolution per input");
                    self.encode(resolution, last, output_topic, stop).await
                }
                Some(Err(message)) => {
                    self.metrics.failures("decode").inc();
                    schema_failure(message, first)
                }
                None => Resolution::Unfinished,
            };
            out.push((original, resolution));
        }
        Ok(out)
    }

    /// `record` with its configured parts decoded to JSON.
    async fn decode(&self, record: &Record, stop: &CancellationToken) -> Prepared {
        let mut decoded = record.clone();
        for (is_key, asked) in [
            (true, self.settings.decode.key),
            (false, self.settings.decode.value),
        ] {
            let part = if is_key {
                &mut decoded.key
            } else {
                &mut decoded.value
            };
            let Some(bytes) = part.as_deref().filter(|_| asked) else {
                continue;
            };
            let what = if is_key { "key" } else { "value" };
            let (id, payload) = match wire::split(bytes) {
                Ok(split) => split,
                Err(e) => return Prepared::Failed(format!("the record's {what} {e}")),
            };
            let schema = match self.wait_for(|| self.registry.by_id(id), stop).await {
                Some(Ok(schema)) => schema,
                Some(Err(e)) => return Prepared::Failed(format!("the record's {what}: {e}")),
                None => return Prepared::Unfinished,
            };
            let max = self.settings.max_decoded_bytes;
            let json = match &schema.codec {
                Codec::Avro(avro) => avro.decode(payload, max),
                Codec::Json(json) => json.decode(payload, max),
                Codec::Protobuf(proto) => proto.decode(payload, max),
            };
            match json {
                Ok(json) => *part = Some(json),
                Err(e) => {
                    return Prepared::Failed(format!(
                        "the record's {what} does not decode with schema {id} ({}): {e}",
                        schema.format().as_str()
                    ))
                }
            }
            let prefix = if is_key {
                "weir.schema.key."
            } else {
                "weir.schema."
            };
            decoded.headers.push(Header {
                key: format!("{prefix}id"),
                value: id.to_string().into_bytes(),
            });
            if let Some(subject) = self.registry.subject_of(id).await {
                decoded.headers.push(Header {
                    key: format!("{prefix}subject"),
                    value: subject.as_bytes().to_vec(),
                });
            }
        }
        Prepared::Input(decoded)
    }

    /// `resolution` with its outputs' configured parts encoded.
    async fn encode(
        &self,
        resolution: Resolution,
        producer: &ChainStage<'_>,
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
fn schema_failure(message: String, stage: &ChainStage<'_>) -> Resolution {
    Resolution::Failed(RecordFailure {
        kind: FailureKind::Schema,
        message,
        attempts: 1,
        plugin: stage.pool.identity(),
    })
}
