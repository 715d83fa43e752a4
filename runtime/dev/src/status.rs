//! `weir status`: a compact live view of a running `weir run`, read from its
//! admin endpoint (`/metrics` and `/readyz`): per pipeline the record counts,
//! per partition the committed offset, lag and processing rate, and the plugin
//! versions in use; redrawn in place like `top`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use weir_host::telemetry::names;

/// `weir status` could not read the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The endpoint did not answer.
    #[error("cannot read http://{addr}{path}: {source}; is `weir run` running with its admin endpoint on {addr} (--admin-addr)?")]
    Unreachable {
        /// The admin address.
        addr: String,
        /// The path asked for.
        path: &'static str,
        /// Why.
        source: Box<ureq::Error>,
    },
    /// Writing the view failed.
    #[error("cannot write the view: {0}")]
    Output(#[from] std::io::Error),
}

pub use weir_host::telemetry::exposition::{parse_samples, Sample};

/// What one look at the endpoint saw.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every metric sample.
    pub samples: Vec<Sample>,
    /// `/readyz`'s answer.
    pub ready: bool,
    /// When it was taken.
    pub at: Instant,
}

/// Read `/metrics` and `/readyz` from the endpoint at `addr`.
pub fn snapshot(addr: &str) -> Result<Snapshot, StatusError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let get = |path: &'static str| {
        let fail = |source| StatusError::Unreachable {
            addr: addr.to_string(),
            path,
            source: Box::new(source),
        };
        let mut response = agent
            .get(format!("http://{addr}{path}"))
            .call()
            .map_err(fail)?;
        let ok = response.status().is_success();
        let body = response.body_mut().read_to_string().map_err(fail)?;
        Ok::<_, StatusError>((ok, body))
    };
    let (_, metrics) = get("/metrics")?;
    let (ready, _) = get("/readyz")?;
    Ok(Snapshot {
        samples: parse_samples(&metrics),
        ready,
        at: Instant::now(),
    })
}

/// Sum of the samples named `name` with `pipeline` as their pipeline label.
fn total(snapshot: &Snapshot, name: &str, pipeline: &str) -> f64 {
    snapshot
        .samples
        .iter()
        .filter(|s| s.name == name && s.label("pipeline") == pipeline)
        .map(|s| s.value)
        .fold(0.0, |sum, v| sum + v)
}

/// Committed offsets by pipeline, topic and partition.
type CommittedOffsets = BTreeMap<(String, String, String), f64>;

/// Render `current` as text; with `previous`, partitions get a rate (committed
/// records per second between the two).
pub fn render(addr: &str, current: &Snapshot, previous: Option<&Snapshot>) -> String {
    let mut out = String::new();
    let state = if current.ready { "ready" } else { "NOT READY" };
    let _ = writeln!(out, "weir status  {addr}  {state}");
    let pipelines: std::collections::BTreeSet<&str> = current
        .samples
        .iter()
        .filter(|s| s.name == names::ASSIGNED_PARTITIONS)
        .map(|s| s.label("pipeline"))
        .collect();
    let committed_before = previous.map(committed_offsets).unwrap_or_default();
    let elapsed = previous.map(|p| current.at.duration_since(p.at).as_secs_f64());
    for pipeline in pipelines {
        render_pipeline(&mut out, current, pipeline);
        render_partitions(&mut out, current, pipeline, &committed_before, elapsed);
    }
    out
}

/// The committed offsets in `snapshot`.
fn committed_offsets(snapshot: &Snapshot) -> CommittedOffsets {
    snapshot
        .samples
        .iter()
        .filter(|s| s.name == names::COMMITTED_OFFSET)
        .map(|s| {
            let key = (s.label("pipeline"), s.label("topic"), s.label("partition"));
            (
                (key.0.to_string(), key.1.to_string(), key.2.to_string()),
                s.value,
            )
        })
        .collect()
}

/// A pipeline's counts and plugin versions.
fn render_pipeline(out: &mut String, current: &Snapshot, pipeline: &str) {
    let count = |name| total(current, name, pipeline);
    let _ = writeln!(
        out,
        "\npipeline {pipeline}: consumed {}  outputs {}  dead-lettered {}  failed {}  in flight {}  paused {}  restarts {}",
        count(names::RECORDS_CONSUMED),
        // Acknowledged records count dead letters too.
        count(names::RECORDS_PRODUCED) - count(names::RECORDS_DEAD_LETTERED),
        count(names::RECORDS_DEAD_LETTERED),
        count(names::RECORD_FAILURES),
        count(names::IN_FLIGHT_RECORDS),
        count(names::PAUSED_PARTITIONS),
        count(names::PIPELINE_RESTARTS),
    );
    let mut topics: Vec<&str> = current
        .samples
        .iter()
        .filter(|s| s.name == names::SUBSCRIBED_TOPIC && s.label("pipeline") == pipeline)
        .map(|s| s.label("topic"))
        .collect();
    if !topics.is_empty() {
        topics.sort_unstable();
        let _ = writeln!(out, "  topics {}", topics.join(", "));
    }
    for plugin in current
        .samples
        .iter()
        .filter(|s| s.name == names::PLUGIN_INFO && s.label("pipeline") == pipeline)
    {
        let version = plugin.label("version");
        let _ = writeln!(
            out,
            "  plugin {}  version {}",
            plugin.label("plugin"),
            &version[..version.len().min(12)]
        );
    }
}

/// A pipeline's partitions: offsets, lag and, with a previous look, the rate.
fn render_partitions(
    out: &mut String,
    current: &Snapshot,
    pipeline: &str,
    committed_before: &CommittedOffsets,
    elapsed: Option<f64>,
) {
    let _ = writeln!(
        out,
        "  {:<32} {:>12} {:>12} {:>10} {:>10}",
        "topic/partition", "committed", "high", "lag", "rate/s"
    );
    let mut partitions: Vec<&Sample> = current
        .samples
        .iter()
        .filter(|s| s.name == names::CONSUMER_LAG && s.label("pipeline") == pipeline)
        .collect();
    partitions.sort_by_key(|s| {
        (
            s.label("topic").to_string(),
            s.label("partition").parse::<i32>().unwrap_or(-1),
        )
    });
    for lag in partitions {
        let key = (
            pipeline.to_string(),
            lag.label("topic").to_string(),
            lag.label("partition").to_string(),
        );
        let of = |name: &str| {
            current
                .samples
                .iter()
                .find(|s| {
                    s.name == name
                        && s.label("pipeline") == pipeline
                        && s.label("topic") == key.1
                        && s.label("partition") == key.2
                })
                .map_or(f64::NAN, |s| s.value)
        };
        let committed = of(names::COMMITTED_OFFSET);
        let rate = match (committed_before.get(&key), elapsed) {
            (Some(before), Some(secs)) if secs > 0.0 && *before >= 0.0 && committed >= 0.0 => {
                format!("{:.1}", (committed - before).max(0.0) / secs)
            }
            _ => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<32} {:>12} {:>12} {:>10} {:>10}",
            format!("{}/{}", key.1, key.2),
            committed,
            of(names::HIGH_WATERMARK),
            lag.value,
            rate
        );
    }
}

/// Run `weir status` until interrupted (or once), writing to stdout.
pub fn run(addr: &str, interval: Duration, once: bool) -> Result<(), StatusError> {
    let mut stdout = std::io::stdout().lock();
    let redraw = stdout.is_terminal() && !once;
    let mut previous = snapshot(addr)?;
    loop {
        std::thread::sleep(interval);
        let current = snapshot(addr)?;
        if redraw {
            // Home the cursor and clear the screen.
            write!(stdout, "\x1b[H\x1b[2J")?;
        }
        write!(stdout, "{}", render(addr, &current, Some(&previous)))?;
        stdout.flush()?;
        if once {
            return Ok(());
        }
        previous = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `render` reads of one pipeline with one partition and two topics.
    const TEXT: &str = r#"weir_assigned_partitions{pipeline="g"} 1
weir_subscribed_topic{pipeline="g",topic="in"} 1
weir_subscribed_topic{pipeline="g",topic="in-b"} 1
weir_plugin_info{pipeline="g",plugin="up",version="0123456789abcdef"} 1
weir_records_consumed_total{pipeline="g",topic="in"} 100
weir_high_watermark{pipeline="g",topic="in",partition="0"} 100
weir_committed_offset{pipeline="g",topic="in",partition="0"} 60
weir_consumer_lag{pipeline="g",topic="in",partition="0"} 40
"#;

    #[test]
    fn renders_lag_and_rate_per_partition() {
        let earlier = Snapshot {
            samples: parse_samples(&TEXT.replace("} 60", "} 40")),
            ready: true,
            at: Instant::now(),
        };
        let now = Snapshot {
            samples: parse_samples(TEXT),
            ready: true,
            at: earlier.at + Duration::from_secs(2),
        };
        let view = render("addr", &now, Some(&earlier));
        assert!(
            view.contains("pipeline g: consumed 100  outputs 0"),
            "{view}"
        );
        assert!(view.contains("plugin up  version 0123456789ab"), "{view}");
        assert!(view.contains("  topics in, in-b\n"), "{view}");
        let row = view.lines().find(|l| l.contains("in/0")).expect(&view);
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, ["in/0", "60", "100", "40", "10.0"], "{view}");
    }
}
