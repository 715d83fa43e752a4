//! In-process microbenchmarks of the plugin host, without a broker: plugin call
//! cost per record by batch size, the same logic as native Rust, compiling and
//! loading a component, and the hot-reload swap pause.

use crate::data::{key, value, Shape};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::config::PluginConfig;
use weir::metrics::PluginMetrics;
use weir::reload::PluginLoader;
use weir::wasm::{Header, InputRecord, OutputRecord, PluginPool, PluginSlot};

/// Batch sizes measured.
const BATCH_SIZES: [usize; 4] = [1, 10, 100, 1000];
/// Repetitions of each measurement; the median is reported.
const REPETITIONS: usize = 3;
/// Swaps timed for the reload pause.
const SWAPS: usize = 30;

/// Run every microbenchmark.
pub fn run(
    uppercase: &Path,
    json_filter: &Path,
    seconds: f64,
) -> anyhow::Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cache = std::env::temp_dir().join(format!("weir-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let mut report = serde_json::Map::new();

    let filter_config = BTreeMap::from([
        ("field".to_string(), "country".to_string()),
        ("equals".to_string(), "NL".to_string()),
    ]);
    for (name, path, config, shape, native) in [
        (
            "uppercase",
            uppercase,
            BTreeMap::new(),
            Shape::Opaque,
            native_uppercase as Native,
        ),
        (
            "json-filter",
            json_filter,
            filter_config,
            Shape::Json,
            native_json_filter as Native,
        ),
    ] {
        eprintln!("  micro: {name}");
        let loader = PluginLoader::new(
            &PluginConfig {
                path: path.to_owned(),
                config,
                instances: Some(1),
                cache_dir: Some(cache.clone()),
                ..PluginConfig::default()
            },
            PluginMetrics::detached(),
        )?;
        let cold = loader.compile(path)?;
        let cached = loader.compile(path)?;
        anyhow::ensure!(
            cached.from_cache,
            "the second load did not come from the cache"
        );
        let started = Instant::now();
        let version = loader.instantiate(&cached, path)?;
        let instantiate = started.elapsed();
        let pool = Arc::clone(&version.pool);
        let mut per_batch = serde_json::Map::new();
        for size in BATCH_SIZES {
            let wasm = median(|| runtime.block_on(wasm_ns_per_record(&pool, size, shape, seconds)));
            let native = median(|| native_ns_per_record(native, size, shape, seconds));
            per_batch.insert(
                size.to_string(),
                json!({"wasm_ns_per_record": wasm, "native_ns_per_record": native}),
            );
        }
        let slot = PluginSlot::new(name, version, PluginMetrics::detached());
        let mut pauses: Vec<Duration> = (0..SWAPS)
            .map(|_| Ok(slot.install(loader.instantiate(&cached, path)?)))
            .collect::<anyhow::Result<_>>()?;
        pauses.sort_unstable();
        report.insert(
            name.to_string(),
            json!({
                "compile_ms": cold.elapsed.as_secs_f64() * 1e3,
                "load_from_cache_ms": cached.elapsed.as_secs_f64() * 1e3,
                "instantiate_ms": instantiate.as_secs_f64() * 1e3,
                "batches": per_batch,
                "swap_pause_us_median": pauses[SWAPS / 2].as_secs_f64() * 1e6,
                "swap_pause_us_max": pauses[SWAPS - 1].as_secs_f64() * 1e6,
            }),
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
    Ok(serde_json::Value::Object(report))
}

/// The median of `REPETITIONS` runs of `measure`.
fn median(mut measure: impl FnMut() -> f64) -> f64 {
    let mut runs: Vec<f64> = (0..REPETITIONS).map(|_| measure()).collect();
    runs.sort_by(f64::total_cmp);
    runs[REPETITIONS / 2]
}

fn records(size: usize, shape: Shape) -> Vec<InputRecord> {
    (0..size as u64)
        .map(|i| InputRecord {
            topic: "bench".into(),
            partition: 0,
            offset: i as i64,
            timestamp: Some(0),
            key: Some(key(i).into_bytes()),
            value: Some(value(i, shape)),
            headers: Vec::new(),
        })
        .collect()
}

/// Nanoseconds per record of calling the plugin with batches of `size`.
async fn wasm_ns_per_record(
    pool: &Arc<PluginPool>,
    size: usize,
    shape: Shape,
    seconds: f64,
) -> f64 {
    let mut batch = records(size, shape);
    let started = Instant::now();
    let mut done = 0;
    while started.elapsed().as_secs_f64() < seconds {
        let processed = pool.process(batch).await;
        assert!(
            processed.outcomes.is_ok(),
            "the plugin failed a benchmark batch"
        );
        batch = processed.records;
        done += size;
    }
    started.elapsed().as_nanos() as f64 / done as f64
}

/// The same logic as a plugin, as a native Rust function.
type Native = fn(&InputRecord) -> Vec<OutputRecord>;

fn native_uppercase(record: &InputRecord) -> Vec<OutputRecord> {
    let mut value = record.value.clone();
    if let Some(v) = value.as_mut() {
        v.make_ascii_uppercase();
    }
    vec![OutputRecord {
        topic: None,
        partition: None,
        key: record.key.clone(),
        value,
        headers: record.headers.clone(),
    }]
}

fn native_json_filter(record: &InputRecord) -> Vec<OutputRecord> {
    let document: serde_json::Value =
        serde_json::from_slice(record.value.as_deref().unwrap_or_default()).unwrap_or_default();
    if document.pointer("/country").and_then(|v| v.as_str()) != Some("NL") {
        return Vec::new();
    }
    let mut headers = record.headers.clone();
    headers.push(Header {
        key: "weir-filter".into(),
        value: b"country=NL".to_vec(),
    });
    vec![OutputRecord {
        topic: None,
        partition: None,
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
    }]
}

/// Nanoseconds per record of the native function over batches of `size`.
fn native_ns_per_record(native: Native, size: usize, shape: Shape, seconds: f64) -> f64 {
    let batch = records(size, shape);
    let started = Instant::now();
    let mut done = 0;
    while started.elapsed().as_secs_f64() < seconds {
        for record in &batch {
            std::hint::black_box(native(std::hint::black_box(record)));
        }
        done += size;
    }
    started.elapsed().as_nanos() as f64 / done as f64
}
