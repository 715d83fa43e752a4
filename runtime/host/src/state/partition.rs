//! One input partition's state for one plugin: reads, writes applied in
//! record order, the byte count held against the partition's cap, and whether
//! it still matches its changelog.

use super::{changelog, StateError, StateLimits, StateWrite};
use crate::record::Output;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Where a partition's keys and values are kept.
pub trait StateBackend: Send + Sync {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// The length of `key`'s value, without copying it.
    fn value_len(&self, key: &[u8]) -> Result<Option<usize>, StateError> {
        Ok(self.get(key)?.map(|v| v.len()))
    }
    /// Apply `writes` in order, together.
    fn apply(&self, writes: &[StateWrite]) -> Result<(), StateError>;
    /// Every key and value, in key order, to `visit`.
    fn scan(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StateError>;
}

/// State kept in memory (`weir test`, unit tests).
#[derive(Default)]
pub struct MemoryBackend {
    entries: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryBackend {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-written.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StateBackend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.entries().get(key).cloned())
    }

    fn apply(&self, writes: &[StateWrite]) -> Result<(), StateError> {
        let mut entries = self.entries();
        for write in writes {
            match &write.value {
                Some(value) => entries.insert(write.key.clone(), value.clone()),
                None => entries.remove(&write.key),
            };
        }
        Ok(())
    }

    fn scan(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StateError> {
        for (key, value) in self.entries().iter() {
            visit(key, value);
        }
        Ok(())
    }
}

/// One plugin's state of one input partition.
pub struct PartitionState {
    plugin: Arc<str>,
    topic: String,
    partition: i32,
    changelog: Arc<str>,
    backend: Box<dyn StateBackend>,
    limits: StateLimits,
    /// Bytes of keys and values held.
    bytes: AtomicI64,
    /// False once a write was applied here that will not reach the changelog
    /// (its record was not handed over): the local copy must not be trusted
    /// on the next start.
    in_sync: AtomicBool,
    /// `weir_state_bytes` of this partition, if counted.
    gauge: Option<Gauge>,
}

impl PartitionState {
    /// The state of `topic`/`partition` for `plugin`, kept in `backend`
    /// (already holding what was restored), whose writes go to the
    /// `changelog` topic.
    pub fn new(
        plugin: Arc<str>,
        (topic, partition): (&str, i32),
        changelog: Arc<str>,
        backend: Box<dyn StateBackend>,
        limits: StateLimits,
        gauge: Option<Gauge>,
    ) -> Result<Self, StateError> {
        let mut bytes = 0i64;
        backend.scan(&mut |key, value| bytes += (key.len() + value.len()) as i64)?;
        if let Some(gauge) = &gauge {
            gauge.set(bytes);
        }
        Ok(Self {
            plugin,
            topic: topic.to_string(),
            partition,
            changelog,
            backend,
            limits,
            bytes: AtomicI64::new(bytes),
            in_sync: AtomicBool::new(true),
            gauge,
        })
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The input partition, as `(topic, partition)`.
    pub fn input(&self) -> (&str, i32) {
        (&self.topic, self.partition)
    }

    /// The caps writes are held to.
    pub fn limits(&self) -> StateLimits {
        self.limits
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> i64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.backend.get(key)
    }

    /// Bytes `key` and its value take, 0 if it has none.
    pub fn entry_bytes(&self, key: &[u8]) -> Result<usize, StateError> {
        Ok(self
            .backend
            .value_len(key)?
            .map_or(0, |len| key.len() + len))
    }

    /// Apply a record's `writes`, in order.
    pub fn apply(&self, writes: &[StateWrite]) -> Result<(), StateError> {
        self.backend.apply(writes)?;
        let delta: i64 = writes.iter().map(|w| w.delta).sum();
        let bytes = self.bytes.fetch_add(delta, Ordering::Relaxed) + delta;
        if let Some(gauge) = &self.gauge {
            gauge.set(bytes);
        }
        Ok(())
    }

    /// Every key and value, in key order.
    pub fn scan(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StateError> {
        self.backend.scan(visit)
    }

    /// The changelog record of `write`: to this partition of the changelog
    /// topic, keyed by the input topic and the state key.
    pub fn changelog_record(&self, write: &StateWrite) -> Output {
        Output {
            topic: Some(self.changelog.to_string()),
            partition: Some(self.partition),
            key: Some(changelog::record_key(&self.topic, &write.key)),
            value: write.value.clone(),
            headers: Vec::new(),
        }
    }

    /// Say that a write applied here will not reach the changelog.
    pub fn mark_out_of_sync(&self) {
        if self.in_sync.swap(false, Ordering::AcqRel) {
            tracing::warn!(plugin = %self.plugin, topic = %self.topic, partition = self.partition,
                "a record's state writes were applied but the record was not finished; \
                 the local state will be restored from the changelog on the next start");
        }
    }

    /// Whether every write applied here went to the changelog.
    pub fn in_sync(&self) -> bool {
        self.in_sync.load(Ordering::Acquire)
    }
}

impl Drop for PartitionState {
    fn drop(&mut self) {
        if let Some(gauge) = &self.gauge {
            gauge.set(0);
        }
    }
}
