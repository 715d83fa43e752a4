//! The last minutes of each pipeline, kept in the process for the console's
//! charts (no external database): every [`INTERVAL`] a sampler reads the
//! registry's own exposition back and keeps, per assigned partition, the lag
//! and committed offset, and per pipeline the records consumed and the
//! failures by kind. [`KEPT`] samples are kept (ten minutes), the oldest
//! dropped first, so memory stays bounded by the partitions assigned.

use super::exposition::{parse_samples, Sample};
use super::families::names;
use super::Metrics;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// How many samples are kept: ten minutes at [`INTERVAL`].
pub const KEPT: usize = 120;

/// One look at the metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Every assigned partition.
    pub partitions: Vec<PartitionPoint>,
    /// Every pipeline.
    pub pipelines: Vec<PipelinePoint>,
}

/// One partition at one time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionPoint {
    /// The pipeline (consumer group).
    pub pipeline: String,
    /// The input topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// High watermark minus committed offset.
    pub lag: f64,
    /// The committed offset.
    pub committed: f64,
}

/// One pipeline at one time (counters since the process started).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PipelinePoint {
    /// The pipeline (consumer group).
    pub pipeline: String,
    /// Records consumed.
    pub consumed: f64,
    /// Failed records by kind.
    pub failures: BTreeMap<String, f64>,
}

/// The kept samples.
#[derive(Default)]
pub struct History {
    points: Mutex<VecDeque<Point>>,
}

impl History {
    /// Take a sample of `metrics` now.
    pub fn sample(&self, metrics: &Metrics) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.push(point(at_ms, &parse_samples(&metrics.encode())));
    }

    fn push(&self, point: Point) {
        let mut points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        if points.len() == KEPT {
            points.pop_front();
        }
        points.push_back(point);
    }

    /// Every kept sample, oldest first.
    pub fn points(&self) -> Vec<Point> {
        let points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        points.iter().cloned().collect()
    }

    /// Sample `metrics` every [`INTERVAL`] until the process ends.
    pub fn spawn_sampler(self: &Arc<Self>, metrics: Arc<Metrics>) {
        let history = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(INTERVAL);
            loop {
                ticks.tick().await;
                history.sample(&metrics);
            }
        });
    }
}

/// The point the samples of one exposition make.
fn point(at_ms: u64, samples: &[Sample]) -> Point {
    let mut partitions: BTreeMap<(String, String, i32), PartitionPoint> = BTreeMap::new();
    let mut pipelines: BTreeMap<String, PipelinePoint> = BTreeMap::new();
    for s in samples {
        let pipeline = s.label("pipeline").to_string();
        let name = s.name.as_str();
        if name == names::CONSUMER_LAG || name == names::COMMITTED_OFFSET {
            let key = (
                pipeline.clone(),
                s.label("topic").to_string(),
                s.label("partition").parse().unwrap_or(-1),
            );
            let entry = partitions.entry(key.clone()).or_insert(PartitionPoint {
                pipeline: key.0,
                topic: key.1,
                partition: key.2,
                lag: 0.0,
                committed: 0.0,
            });
            if name == names::CONSUMER_LAG {
                entry.lag = s.value;
            } else {
                entry.committed = s.value;
            }
        } else if name == names::RECORDS_CONSUMED || name == names::RECORD_FAILURES {
            let entry = pipelines
                .entry(pipeline.clone())
                .or_insert_with(|| PipelinePoint {
                    pipeline,
                    consumed: 0.0,
                    failures: BTreeMap::new(),
                });
            if name == names::RECORDS_CONSUMED {
                entry.consumed += s.value;
            } else {
                *entry
                    .failures
                    .entry(s.label("kind").to_string())
                    .or_default() += s.value;
            }
        }
    }
    Point {
        at_ms,
        partitions: partitions.into_values().collect(),
        pipelines: pipelines.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"weir_consumer_lag{pipeline="g",topic="in",partition="1"} 7
weir_committed_offset{pipeline="g",topic="in",partition="1"} 93
weir_committed_offset{pipeline="g",topic="in",partition="0"} 50
weir_records_consumed_total{pipeline="g",topic="in"} 100
weir_records_consumed_total{pipeline="g",topic="in-b"} 20
weir_record_failures_total{pipeline="g",kind="trap"} 3
weir_high_watermark{pipeline="g",topic="in",partition="1"} 100
"#;

    #[test]
    fn a_point_has_each_partition_and_pipeline_once() {
        let p = point(5, &parse_samples(TEXT));
        assert_eq!(p.partitions.len(), 2);
        assert_eq!(
            (
                p.partitions[1].partition,
                p.partitions[1].lag,
                p.partitions[1].committed
            ),
            (1, 7.0, 93.0)
        );
        assert_eq!(p.partitions[0].lag, 0.0);
        assert_eq!(p.pipelines.len(), 1);
        assert_eq!(p.pipelines[0].consumed, 120.0);
        assert_eq!(p.pipelines[0].failures["trap"], 3.0);
    }

    #[test]
    fn only_the_latest_points_are_kept() {
        let history = History::default();
        for at_ms in 0..(KEPT as u64 + 5) {
            history.push(point(at_ms, &[]));
        }
        let points = history.points();
        assert_eq!(points.len(), KEPT);
        assert_eq!(points[0].at_ms, 5);
    }
}
