//! In-process microbenchmarks of the plugin host, without a broker: plugin call
//! cost per record by batch size, against the same plugin crates compiled
//! natively, compiling and loading a component, and the hot-reload swap pause.

use crate::data::{key, value, Shape};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_host::config::PluginConfig;
use weir_host::record::Record;
use weir_host::telemetry::PluginMetrics;
use weir_host::wasm::PluginLoader;
use weir_host::wasm::{OutputLimits, PluginPool, PluginSlot};
use weir_sdk::{Config, Processor};

/// Batch sizes measured.
const BATCH_SIZES: [usize; 4] = [1, 10, 100, 1000];
/// Repetitions of each measurement; the median is reported.
const REPETITIONS: usize = 3;
/// Swaps timed for the reload pause.
const SWAPS: usize = 30;
/// Instance counts of the scaling measurement (the machine's cores bound it).
const SCALING_INSTANCES: [usize; 2] = [1, 2];
/// Batch size of the scaling measurement.
const SCALING_BATCH: usize = 100;

/// Run every microbenchmark.
pub fn run(
    uppercase: &Path,
    json_filter: &Path,
    seconds: f64,
) -> anyhow::Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Plugin instances run their calls on this runtime's timers.
    let _in_runtime = runtime.enter();
    let cache = std::env::temp_dir().join(format!("weir-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let mut report = serde_json::Map::new();

    let filter_config = BTreeMap::from([
        ("field".to_string(), "country".to_string()),
        ("equals".to_string(), "NL".to_string()),
    ]);
    for (name, path, config, shape, make_native) in [
        (
            "uppercase",
            uppercase,
            BTreeMap::new(),
            Shape::Opaque,
            native::<uppercase::Uppercase> as fn(&BTreeMap<String, String>) -> Native,
        ),
        (
            "json-filter",
            json_filter,
            filter_config,
            Shape::Json,
            native::<json_filter::JsonFilter>,
        ),
    ] {
        let mut native = make_native(&config);
        eprintln!("  micro: {name}");
        let plugin = PluginConfig {
            path: path.to_owned(),
            config,
            instances: Some(1),
            cache_dir: Some(cache.clone()),
            ..PluginConfig::default()
        };
        let loader = PluginLoader::new(&plugin, PluginMetrics::detached())?;
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
            let native = median(|| native_ns_per_record(&mut native, size, shape, seconds));
            per_batch.insert(
                size.to_string(),
                json!({"wasm_ns_per_record": wasm, "native_ns_per_record": native}),
            );
        }
        let scaling = scaling(&runtime, &plugin, shape, seconds)?;
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
                "scaling_records_per_second": scaling,
                "swap_pause_us_median": pauses[SWAPS / 2].as_secs_f64() * 1e6,
                "swap_pause_us_max": pauses[SWAPS - 1].as_secs_f64() * 1e6,
            }),
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
    Ok(serde_json::Value::Object(report))
}

/// Records per second through a pool of N instances kept busy by N callers,
/// for each N of `SCALING_INSTANCES`: how the plugin scales with cores in one
/// process, without a broker competing for them.
fn scaling(
    runtime: &tokio::runtime::Runtime,
    plugin: &PluginConfig,
    shape: Shape,
    seconds: f64,
) -> anyhow::Result<serde_json::Value> {
    let mut figures = serde_json::Map::new();
    for instances in SCALING_INSTANCES {
        eprintln!("  micro: {instances} instance(s) busy");
        let loader = PluginLoader::new(
            &PluginConfig {
                instances: Some(instances),
                ..plugin.clone()
            },
            PluginMetrics::detached(),
        )?;
        let compiled = loader.compile(&plugin.path)?;
        let pool = loader.instantiate(&compiled, &plugin.path)?.pool;
        let rate = median(|| {
            runtime.block_on(async {
                let callers: Vec<_> = (0..instances)
                    .map(|_| {
                        let pool = Arc::clone(&pool);
                        tokio::spawn(async move {
                            wasm_ns_per_record(&pool, SCALING_BATCH, shape, seconds).await
                        })
                    })
                    .collect();
                let mut rate = 0.0;
                for caller in callers {
                    rate += 1e9 / caller.await.expect("a scaling caller panicked");
                }
                rate
            })
        });
        figures.insert(instances.to_string(), json!(rate));
    }
    Ok(serde_json::Value::Object(figures))
}

/// The median of `REPETITIONS` runs of `measure`.
fn median(mut measure: impl FnMut() -> f64) -> f64 {
    let mut runs: Vec<f64> = (0..REPETITIONS).map(|_| measure()).collect();
    runs.sort_by(f64::total_cmp);
    runs[REPETITIONS / 2]
}

fn records(size: usize, shape: Shape) -> Vec<Record> {
    (0..size as u64)
        .map(|i| Record {
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
    let defaults = PluginConfig::default();
    let limits = OutputLimits {
        max_outputs: defaults.max_outputs_per_record,
        max_bytes: defaults.max_output_bytes_per_record,
    };
    let started = Instant::now();
    let mut done = 0;
    while started.elapsed().as_secs_f64() < seconds {
        let processed = pool.process(batch, limits, None).await;
        assert!(
            processed.outcomes.is_ok(),
            "the plugin failed a benchmark batch"
        );
        batch = processed.records;
        done += size;
    }
    started.elapsed().as_nanos() as f64 / done as f64
}

/// A plugin's own code, compiled natively: one record in, its outputs out.
type Native = Box<dyn FnMut(weir_sdk::Record) -> Vec<weir_sdk::Output>>;

/// The plugin crate `P`, natively, initialised with `config`.
fn native<P: Processor>(config: &BTreeMap<String, String>) -> Native {
    let config: Config = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut plugin = P::init(&config).expect("the benchmark configuration is valid");
    Box::new(move |record| plugin.process(record).expect("benchmark records are valid"))
}

/// A host record as the SDK's record (the copy the component boundary makes too).
fn sdk_record(record: &Record) -> weir_sdk::Record {
    weir_sdk::Record {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp,
        key: record.key.clone(),
        value: record.value.clone(),
        headers: Vec::new(),
    }
}

/// Nanoseconds per record of the native function over batches of `size`.
fn native_ns_per_record(native: &mut Native, size: usize, shape: Shape, seconds: f64) -> f64 {
    let batch = records(size, shape);
    let started = Instant::now();
    let mut done = 0;
    while started.elapsed().as_secs_f64() < seconds {
        for record in &batch {
            std::hint::black_box(native(sdk_record(std::hint::black_box(record))));
        }
        done += size;
    }
    started.elapsed().as_nanos() as f64 / done as f64
}
