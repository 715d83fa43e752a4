//! State on local disk: one fjall keyspace per plugin of a pipeline under
//! `<state_dir>/<group>/<instance>/<plugin>/`, one fjall partition per input
//! partition, held by one process at a time (a lock file). The disk copy is a
//! cache of the changelog: on assignment it is trusted only from a checkpoint
//! (the changelog offset it matched, written when a partition was closed
//! cleanly in at-least-once mode) and brought up to the changelog's end from
//! there; without one it is cleared and restored from the changelog's start.

use super::changelog::{Restore, Restored};
use super::{PartitionState, StateBackend, StateError, StateLimits, StateWrite};
use fjall::{Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::config::ClientConfig;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Block cache of one plugin's keyspace: reads of hot keys stay in memory,
/// the rest of the state stays on disk.
const CACHE_BYTES: u64 = 32 << 20;
/// Memtables of one plugin's keyspace, over all its partitions, before they
/// are flushed to disk.
const WRITE_BUFFER_BYTES: u64 = 64 << 20;

/// The exclusive hold of one process on its state directory.
pub struct StateDirLock {
    dir: PathBuf,
    _file: File,
}

impl StateDirLock {
    /// Lock `<state_dir>/<group>/<instance>` (`default` without an instance id).
    pub fn acquire(
        state_dir: &Path,
        group: &str,
        instance: Option<&str>,
    ) -> Result<Self, StateError> {
        let dir = state_dir
            .join(sanitize(group))
            .join(sanitize(instance.unwrap_or("default")));
        let store_error = |e: std::io::Error| StateError::Store {
            path: dir.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(&dir).map_err(store_error)?;
        let file = File::create(dir.join("LOCK")).map_err(store_error)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { dir, _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Locked {
                path: dir.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(store_error(e)),
        }
    }
}

/// A name safe as one path component.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// One plugin's state on disk, and how to restore it.
pub struct PluginStateStore {
    /// Held as long as the store is open.
    _lock: Arc<StateDirLock>,
    plugin: Arc<str>,
    dir: PathBuf,
    keyspace: Keyspace,
    changelog: Arc<str>,
    limits: StateLimits,
    client: ClientConfig,
    reuse_checkpoints: bool,
}

impl PluginStateStore {
    /// Open (or create) `plugin`'s store in the locked directory. Its writes go
    /// to `changelog`, read with `client`'s settings; `reuse_checkpoints` is
    /// false in exactly-once mode, where a partition's disk copy is always
    /// restored afresh (a transaction may abort after the partition closed).
    pub fn open(
        lock: Arc<StateDirLock>,
        plugin: &str,
        changelog: String,
        limits: StateLimits,
        client: ClientConfig,
        reuse_checkpoints: bool,
    ) -> Result<Self, StateError> {
        let dir = lock.dir.join(sanitize(plugin));
        let keyspace = fjall::Config::new(&dir)
            .cache_size(CACHE_BYTES)
            .max_write_buffer_size(WRITE_BUFFER_BYTES)
            .flush_workers(1)
            .compaction_workers(1)
            .open()
            .map_err(|e| fjall_error(&dir, e))?;
        Ok(Self {
            _lock: lock,
            plugin: Arc::from(plugin),
            dir,
            keyspace,
            changelog: Arc::from(changelog),
            limits,
            client,
            reuse_checkpoints,
        })
    }

    /// The changelog topic.
    pub fn changelog(&self) -> &str {
        &self.changelog
    }

    /// Open the state of `topic`/`partition`, brought up to the changelog's
    /// end; `None` if `stopped` said to give up first. Blocking: call it on a
    /// blocking thread.
    pub fn open_partition(
        &self,
        (topic, partition): (&str, i32),
        gauge: Option<Gauge>,
        remaining: &dyn Fn(i64),
        stopped: &dyn Fn() -> bool,
    ) -> Result<Option<(Arc<PartitionState>, Restored)>, StateError> {
        let name = partition_name(topic, partition);
        let checkpoint = self.checkpoint_path(&name);
        // Taken: until this partition closes cleanly again, the disk copy may
        // run ahead of the changelog.
        let from = read_checkpoint(&checkpoint).filter(|_| self.reuse_checkpoints);
        let _ = std::fs::remove_file(&checkpoint);
        let restore = self.restore_of(topic, partition);
        let consumer = restore.consumer()?;
        let (low, high) = restore.watermarks(&consumer)?;
        let from = from.filter(|&offset| low <= offset && offset <= high);
        let mut handle = self.partition_handle(&name)?;
        if from.is_none() {
            // Nothing to trust on disk: start from an empty store.
            self.keyspace
                .delete_partition(handle)
                .map_err(|e| fjall_error(&self.dir, e))?;
            handle = self.partition_handle(&name)?;
        }
        tracing::info!(plugin = %self.plugin, topic, partition, changelog = %self.changelog,
            from = ?from, end = high, "restoring plugin state from its changelog");
        let backend = FjallBackend {
            keyspace: self.keyspace.clone(),
            partition: handle,
            dir: self.dir.clone(),
        };
        let Some(restored) = restore.run(&consumer, from, &backend, remaining, stopped)? else {
            return Ok(None);
        };
        tracing::info!(plugin = %self.plugin, topic, partition, records = restored.records,
            from = ?from, took = ?restored.took, "restored plugin state from its changelog");
        let state = PartitionState::new(
            Arc::clone(&self.plugin),
            (topic, partition),
            Arc::clone(&self.changelog),
            Box::new(backend),
            self.limits,
            gauge,
        )?;
        Ok(Some((Arc::new(state), restored)))
    }

    /// Close a partition's state whose writes were all acknowledged: in
    /// at-least-once mode, if it matches its changelog, persist it and note
    /// the changelog's end as its checkpoint. Blocking.
    pub fn close_partition(&self, state: Arc<PartitionState>) -> Result<(), StateError> {
        if !self.reuse_checkpoints || !state.in_sync() {
            return Ok(());
        }
        let (topic, partition) = state.input();
        let restore = self.restore_of(topic, partition);
        let (_, end) = restore.watermarks(&restore.consumer()?)?;
        self.keyspace
            .persist(PersistMode::SyncAll)
            .map_err(|e| fjall_error(&self.dir, e))?;
        let checkpoint = self.checkpoint_path(&partition_name(topic, partition));
        std::fs::write(&checkpoint, end.to_string()).map_err(|e| StateError::Store {
            path: checkpoint.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Reading `topic`/`partition`'s changelog.
    fn restore_of<'a>(&'a self, topic: &'a str, partition: i32) -> Restore<'a> {
        Restore {
            client: &self.client,
            changelog: &self.changelog,
            topic: Some(topic),
            partition,
            plugin: &self.plugin,
        }
    }

    /// Where the checkpoint of the fjall partition `name` is kept.
    fn checkpoint_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.checkpoint"))
    }

    fn partition_handle(&self, name: &str) -> Result<PartitionHandle, StateError> {
        self.keyspace
            .open_partition(name, PartitionCreateOptions::default())
            .map_err(|e| fjall_error(&self.dir, e))
    }
}

/// The fjall partition name of an input partition (at most 255 characters
/// of fjall's alphabet, which topic names use too).
fn partition_name(topic: &str, partition: i32) -> String {
    let name = format!("{topic}#{partition}");
    if name.len() <= 255 {
        return name;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(topic.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}#{partition}")
}

fn read_checkpoint(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn fjall_error(dir: &Path, e: impl std::fmt::Display) -> StateError {
    StateError::Store {
        path: dir.display().to_string(),
        reason: e.to_string(),
    }
}

/// A partition's state in a fjall partition.
struct FjallBackend {
    keyspace: Keyspace,
    partition: PartitionHandle,
    dir: PathBuf,
}

impl StateBackend for FjallBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.partition
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| fjall_error(&self.dir, e))
    }

    fn value_len(&self, key: &[u8]) -> Result<Option<usize>, StateError> {
        self.partition
            .size_of(key)
            .map(|v| v.map(|len| len as usize))
            .map_err(|e| fjall_error(&self.dir, e))
    }

    fn apply(&self, writes: &[StateWrite]) -> Result<(), StateError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut batch = self.keyspace.batch();
        for write in writes {
            match &write.value {
                Some(value) => {
                    batch.insert(&self.partition, write.key.as_slice(), value.as_slice())
                }
                None => batch.remove(&self.partition, write.key.as_slice()),
            }
        }
        batch.commit().map_err(|e| fjall_error(&self.dir, e))
    }

    fn scan(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StateError> {
        for entry in self.partition.iter() {
            let (key, value) = entry.map_err(|e| fjall_error(&self.dir, e))?;
            visit(&key, &value);
        }
        Ok(())
    }
}
