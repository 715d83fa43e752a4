//! `weir test`: run a plugin over records from a JSON-lines file, without Kafka,
//! through the same sandbox, limits, isolation and retries as `weir run`; print
//! what became of each record as a JSON line. Usable in a plugin's own CI: the
//! exit status is non-zero if any record failed.
//!
//! Input, one JSON object per line (every field optional):
//! `{"key": "k", "value": "text", "headers": [["name", "value"]], "topic": "t",
//! "partition": 0, "offset": 7, "timestamp": 1700000000000}`. A bytes field
//! (key, value, header value) is a string (UTF-8) or `{"base64": "..."}`;
//! `null` is a null key or value. The offset defaults to the line number
//! (from 0), the topic to `test`.
//!
//! Output, one line per input record, in input order:
//! `{"line": 1, "offset": 0, "outputs": [{"key": .., "value": .., "headers": [[..]],
//! "topic": null, "partition": null}]}` or `{"line": 1, "offset": 0, "error":
//! {"kind": "error", "message": "..", "attempts": 1}}`. Bytes are written as
//! strings when they are UTF-8, else as `{"base64": ".."}`.
//!
//! A plugin with state keeps it in memory, one store per topic and partition,
//! carried from line to line (a record's writes take effect only if it is
//! processed, as in `weir run`); a seed file sets it first, one JSON object
//! per line: `{"key": "k", "value": "v", "topic": "test", "partition": 0}`.

use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use weir_host::config::{ConfigError, PluginConfig, SchemaRegistryConfig};
use weir_host::process::{resolve_chain, Backoff, Chain, ChainStage, Resolution, ResolveSettings};
use weir_host::record::bytes_json;
use weir_host::record::{Header, Output, Record};
use weir_host::schema::{Registry, SchemaStage};
use weir_host::state::{MemoryBackend, PartitionState, StateWrite};
use weir_host::telemetry::PipelineMetrics;
use weir_host::telemetry::PluginMetrics;
use weir_host::wasm::PluginError;
use weir_host::wasm::PluginLoader;

/// Records per plugin call, as `weir run` batches them.
const BATCH: usize = 100;

/// Why a test run could not be done (failed records are not errors: they are
/// reported and counted).
#[derive(Debug, thiserror::Error)]
pub enum TestRunError {
    /// The input file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the input is not a record.
    #[error("{path} line {line}: {reason}; each line must be a JSON object such as {{\"key\": \"k\", \"value\": \"v\"}}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The plugin could not be loaded or run.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The schema registry settings are not usable.
    #[error("schema registry: {0}")]
    Schema(String),
    /// The plugin's state could not be read or written.
    #[error("plugin state: {0}")]
    State(String),
    /// Writing the results failed.
    #[error("cannot write results: {0}")]
    Write(std::io::Error),
}

impl From<ConfigError> for TestRunError {
    fn from(e: ConfigError) -> Self {
        TestRunError::Schema(e.to_string())
    }
}

/// How a test run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestSummary {
    /// Records read.
    pub records: usize,
    /// Records the plugin failed on.
    pub failed: usize,
}

/// Run `plugin` over the records in `input`, writing one result line per record
/// to `out`.
/// With `schema` (a schema registry and the default output topic), records
/// are decoded before the plugin and outputs encoded after it, as `weir run`
/// does.
/// With `state_seed`, a plugin with state starts from the keys and values in
/// that file.
pub async fn run_file(
    plugin: &PluginConfig,
    input: &Path,
    schema: Option<(&SchemaRegistryConfig, &str)>,
    state_seed: Option<&Path>,
    out: &mut impl Write,
) -> Result<TestSummary, TestRunError> {
    let records = read_records(input)?;
    let schema = schema
        .map(|(config, topic)| {
            let metrics = PipelineMetrics::detached().schema();
            let registry = Registry::new(
                config.registry_settings()?,
                config.ca_file(),
                metrics.clone(),
            )
            .map_err(|e| TestRunError::Schema(e.to_string()))?;
            let mut settings = config.stage_settings()?;
            // A test run reports an unreachable registry instead of waiting.
            settings.wait_for_registry = false;
            let stage = SchemaStage::new(Arc::new(registry), settings, metrics);
            Ok::<_, TestRunError>((Arc::new(stage), topic))
        })
        .transpose()?;
    let loader = PluginLoader::new(plugin, PluginMetrics::detached())?;
    let path = plugin.path.clone();
    let version = tokio::task::spawn_blocking(move || loader.load(&path))
        .await
        .expect("plugin loading does not panic")?;
    let settings = ResolveSettings {
        max_attempts: plugin.failure.max_attempts,
        backoff: Backoff {
            first: plugin.failure.retry_backoff,
            max: plugin.failure.retry_backoff_max,
        },
        max_outputs: plugin.max_outputs_per_record,
        max_output_bytes: plugin.max_output_bytes_per_record,
        // One plugin, called with the whole file at once: nothing is chained.
        max_batch: usize::MAX,
    };
    let stop = CancellationToken::new();
    let mut summary = TestSummary {
        records: records.len(),
        failed: 0,
    };
    let mut states = MemoryStates::new(plugin, version.pool.uses_state());
    if let Some(seed) = state_seed {
        states.seed(seed)?;
    }
    let (lines, mut pending): (Vec<usize>, Vec<Record>) = records.into_iter().unzip();
    let mut lines = lines.into_iter();
    while !pending.is_empty() {
        // A call holds records of one partition, as in `weir run`.
        let first = (&pending[0].topic, pending[0].partition);
        let same = pending
            .iter()
            .take(BATCH)
            .take_while(|r| (&r.topic, r.partition) == first)
            .count();
        let rest = pending.split_off(same);
        let batch = std::mem::replace(&mut pending, rest);
        let chain: Chain = Arc::new([ChainStage {
            pool: Arc::clone(&version.pool),
            settings,
            state: states.of(&batch[0].topic, batch[0].partition)?,
        }]);
        let progress = match &schema {
            Some((stage, topic)) => {
                let topic: Arc<str> = Arc::from(*topic);
                Arc::clone(stage)
                    .resolve(chain, batch, topic, stop.clone())
                    .await?
            }
            None => resolve_chain(chain, batch, stop.clone()).await?,
        };
        let resolved = progress.finish().await?;
        for settled in resolved {
            let (record, resolution) = (settled.record, settled.resolution);
            let line = lines.next().expect("one line per record");
            let mut result = json!({ "line": line, "offset": record.offset });
            match resolution {
                Resolution::Outputs(outputs) => {
                    for writes in &settled.writes {
                        writes
                            .state
                            .apply(&writes.writes)
                            .map_err(|e| TestRunError::State(e.to_string()))?;
                    }
                    result["outputs"] = Value::Array(outputs.iter().map(output_json).collect());
                }
                Resolution::Failed(failure) => {
                    summary.failed += 1;
                    result["error"] = json!({
                        "kind": failure.kind.as_str(),
                        "message": failure.message,
                        "attempts": failure.attempts,
                    });
                }
                Resolution::Unfinished => unreachable!("nothing stops a test run"),
            }
            writeln!(out, "{result}").map_err(TestRunError::Write)?;
        }
    }
    Ok(summary)
}

/// In-memory state of each topic and partition, for a plugin with state.
struct MemoryStates {
    plugin: Option<(Arc<str>, weir_host::state::StateLimits)>,
    partitions: HashMap<(String, i32), Arc<PartitionState>>,
}

impl MemoryStates {
    /// States for `plugin`, if it `uses_state`.
    fn new(plugin: &PluginConfig, uses_state: bool) -> Self {
        Self {
            plugin: uses_state.then(|| (Arc::from(plugin.display_name()), plugin.state_limits())),
            partitions: HashMap::new(),
        }
    }

    /// The state of `topic`/`partition`, empty at first; `None` for a
    /// plugin without state.
    fn of(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Arc<PartitionState>>, TestRunError> {
        let Some((plugin, limits)) = &self.plugin else {
            return Ok(None);
        };
        if let Some(state) = self.partitions.get(&(topic.to_string(), partition)) {
            return Ok(Some(Arc::clone(state)));
        }
        let state = PartitionState::new(
            Arc::clone(plugin),
            (topic, partition),
            Arc::from("test.state"),
            Box::new(MemoryBackend::default()),
            *limits,
            None,
        )
        .map_err(|e| TestRunError::State(e.to_string()))?;
        let state = Arc::new(state);
        self.partitions
            .insert((topic.to_string(), partition), Arc::clone(&state));
        Ok(Some(state))
    }

    /// Set the keys and values of a seed file.
    fn seed(&mut self, path: &Path) -> Result<(), TestRunError> {
        for (line, record) in read_records(path)? {
            let bad = |reason: &str| TestRunError::BadLine {
                path: path.to_owned(),
                line,
                reason: reason.to_string(),
            };
            let Some(key) = record.key else {
                return Err(bad("a state seed line needs a key"));
            };
            let Some(state) = self.of(&record.topic, record.partition)? else {
                return Err(bad("the plugin does not use state; drop --state-seed"));
            };
            let delta = (key.len() + record.value.as_ref().map_or(0, Vec::len)) as i64
                - state
                    .entry_bytes(&key)
                    .map_err(|e| TestRunError::State(e.to_string()))? as i64;
            let write = StateWrite {
                key,
                value: record.value,
                delta,
            };
            state
                .apply(&[write])
                .map_err(|e| TestRunError::State(e.to_string()))?;
        }
        Ok(())
    }
}

/// The records of a JSON-lines file, with their line numbers (from 1).
fn read_records(path: &Path) -> Result<Vec<(usize, Record)>, TestRunError> {
    let file = std::fs::File::open(path).map_err(|source| TestRunError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut records = Vec::new();
    for (index, text) in std::io::BufReader::new(file).lines().enumerate() {
        let text = text.map_err(|source| TestRunError::Read {
            path: path.to_owned(),
            source,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| TestRunError::BadLine {
            path: path.to_owned(),
            line: index + 1,
            reason,
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let offset = records.len() as i64;
        records.push((index + 1, input_record(&value, offset).map_err(bad)?));
    }
    Ok(records)
}

fn input_record(line: &Value, default_offset: i64) -> Result<Record, String> {
    let object = line.as_object().ok_or("not a JSON object")?;
    let field = |name: &str| object.get(name).filter(|v| !v.is_null());
    let headers = match field("headers") {
        None => Vec::new(),
        Some(Value::Array(pairs)) => pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(key), value]) => Ok(Header {
                    key: key.clone(),
                    value: bytes_of(value)?.unwrap_or_default(),
                }),
                _ => Err("each header must be [\"name\", value]".to_string()),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| {
                Ok(Header {
                    key: key.clone(),
                    value: bytes_of(value)?.unwrap_or_default(),
                })
            })
            .collect::<Result<_, String>>()?,
        Some(_) => return Err("headers must be a list of [name, value] or an object".into()),
    };
    let number = |name: &str| -> Result<Option<i64>, String> {
        field(name)
            .map(|v| v.as_i64().ok_or(format!("`{name}` must be an integer")))
            .transpose()
    };
    Ok(Record {
        topic: field("topic")
            .and_then(Value::as_str)
            .unwrap_or("test")
            .to_string(),
        partition: number("partition")?.unwrap_or(0) as i32,
        offset: number("offset")?.unwrap_or(default_offset),
        timestamp: number("timestamp")?,
        key: object.get("key").map(bytes_of).transpose()?.flatten(),
        value: object.get("value").map(bytes_of).transpose()?.flatten(),
        headers,
    })
}

/// A bytes field: a string, `{"base64": ".."}`, or null.
fn bytes_of(value: &Value) -> Result<Option<Vec<u8>>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.as_bytes().to_vec())),
        Value::Object(map) => match map.get("base64").and_then(Value::as_str) {
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(Some)
                .map_err(|e| format!("bad base64: {e}")),
            None => Err("a bytes object must be {\"base64\": \"...\"}".into()),
        },
        other => Err(format!(
            "expected a string, {{\"base64\": ..}} or null, got {other}"
        )),
    }
}

fn output_json(output: &Output) -> Value {
    json!({
        "key": output.key.as_deref().map(bytes_json),
        "value": output.value.as_deref().map(bytes_json),
        "headers": output.headers.iter().map(|h| json!([h.key, bytes_json(&h.value)])).collect::<Vec<_>>(),
        "topic": output.topic,
        "partition": output.partition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_records_with_defaults_and_base64() {
        let line: Value = serde_json::from_str(
            r#"{"key": null, "value": {"base64": "/wA="}, "headers": [["h", "v"]], "partition": 2}"#,
        )
        .unwrap();
        let r = input_record(&line, 7).unwrap();
        assert_eq!((r.topic.as_str(), r.partition, r.offset), ("test", 2, 7));
        assert_eq!((r.key, r.value), (None, Some(vec![0xff, 0])));
        assert_eq!(r.headers[0].value, b"v");
        assert!(input_record(&json!([1]), 0).is_err());
        assert!(input_record(&json!({"offset": "x"}), 0).is_err());
    }
}
