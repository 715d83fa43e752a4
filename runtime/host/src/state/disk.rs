//! State on local disk: one fjall keyspace per plugin of a pipeline under
//! `<state_dir>/<group>/<instance>/<plugin>/`, one fjall partition per input
//! partition, held by one process at a time (a lock file). The disk copy is a
//! cache of the changelog: on assignment it is trusted only from a checkpoint
//! (the changelog offset it matched, written when a partition was closed
//! cleanly in at-least-once mode, younger than the changelog's tombstones) and
//! brought up to the changelog's end from there; without one it is restored
//! from the changelog's start into a new, empty fjall partition (a
//! *generation*: fjall removes a deleted partition only once no handle holds
//! it, so a name is never reused), and the older generations are deleted.

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

/// How old a checkpoint may be: a replay from an older one could miss
/// deletes whose tombstones compaction has dropped from the changelog
/// (`delete.retention.ms`, one day by default).
const CHECKPOINT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(20 * 3600);

/// The exclusive hold of one process on its state directory.
pub struct StateDirLock {
    dir: PathBuf,
    _file: File,
}

impl StateDirLock {
    /// Lock `<state_dir>/<group>/<instance>`. Without an instance id the
    /// directory is this process's own (`pid-<pid>`): several processes of a
    /// group may share a machine, and nothing ties a restarted process to
    /// its predecessor's checkpoints; directories of processes gone are
    /// removed.
    pub fn acquire(
        state_dir: &Path,
        group: &str,
        instance: Option<&str>,
    ) -> Result<Self, StateError> {
        let group_dir = state_dir.join(sanitize(group));
        let own = match instance {
            Some(instance) => sanitize(instance),
            None => {
                remove_abandoned(&group_dir);
                format!("pid-{}", std::process::id())
            }
        };
        Self::lock(group_dir.join(own))
    }

    fn lock(dir: PathBuf) -> Result<Self, StateError> {
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

/// Remove the per-process state directories (`pid-*`) under `group_dir`
/// whose process is gone (their lock is free).
fn remove_abandoned(group_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(group_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("pid-") {
            continue;
        }
        if let Ok(held) = StateDirLock::lock(entry.path()) {
            drop(held);
            let _ = std::fs::remove_dir_all(entry.path());
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
    /// The fjall partition (generation) each open input partition uses.
    generations: std::sync::Mutex<std::collections::HashMap<(String, i32), String>>,
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
            generations: Default::default(),
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
        let base = partition_name(topic, partition);
        let checkpoint_path = self.checkpoint_path(&base);
        // Taken: until this partition closes cleanly again, the disk copy may
        // run ahead of the changelog.
        let checkpoint = read_checkpoint(&checkpoint_path).filter(|_| self.reuse_checkpoints);
        let _ = std::fs::remove_file(&checkpoint_path);
        let restore = self.restore_of(topic, partition);
        let consumer = restore.consumer()?;
        let (low, high) = restore.watermarks(&consumer)?;
        let checkpoint = checkpoint.filter(|(offset, generation)| {
            low <= *offset && *offset <= high && self.keyspace.partition_exists(generation)
        });
        let from = checkpoint.as_ref().map(|(offset, _)| *offset);
        let generation = match checkpoint {
            Some((_, generation)) => generation,
            // Nothing to trust on disk: a new, empty generation.
            None => format!("{base}#{}", unique_suffix()),
        };
        self.drop_generations(&base, &generation);
        let handle = self.partition_handle(&generation)?;
        self.generations()
            .insert((topic.to_string(), partition), generation);
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
        let Some(generation) = self.generations().remove(&(topic.to_string(), partition)) else {
            return Ok(());
        };
        let restore = self.restore_of(topic, partition);
        let (_, end) = restore.watermarks(&restore.consumer()?)?;
        self.keyspace
            .persist(PersistMode::SyncAll)
            .map_err(|e| fjall_error(&self.dir, e))?;
        let checkpoint = self.checkpoint_path(&partition_name(topic, partition));
        std::fs::write(&checkpoint, format!("{end} {generation}")).map_err(|e| StateError::Store {
            path: checkpoint.display().to_string(),
            reason: e.to_string(),
        })
    }

    fn generations(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, i32), String>> {
        // A panic while holding the lock cannot leave the map half-written.
        self.generations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delete every generation of the input partition `base` but `keep`
    /// (fjall removes their files once no handle holds them).
    fn drop_generations(&self, base: &str, keep: &str) {
        let prefix = format!("{base}#");
        for name in self.keyspace.list_partitions() {
            if name.starts_with(&prefix) && &*name != keep {
                if let Ok(old) = self.partition_handle(&name) {
                    if let Err(error) = self.keyspace.delete_partition(old) {
                        tracing::warn!(partition = &*name, %error, "could not delete an old state generation");
                    }
                }
            }
        }
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

/// The base of the fjall partition names of an input partition (at most 200
/// characters of fjall's alphabet, which topic names use too, leaving room
/// for a generation suffix within fjall's 255).
fn partition_name(topic: &str, partition: i32) -> String {
    let name = format!("{topic}#{partition}");
    if name.len() <= 200 {
        return name;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(topic.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}#{partition}")
}

/// A generation suffix no earlier open of this store used.
fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A checkpoint: the changelog offset the disk copy matched and the fjall
/// partition holding it; none if missing, unreadable or too old.
fn read_checkpoint(path: &Path) -> Option<(i64, String)> {
    let age = std::fs::metadata(path)
        .ok()?
        .modified()
        .ok()?
        .elapsed()
        .ok()?;
    if age > CHECKPOINT_MAX_AGE {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let (offset, generation) = text.trim().split_once(' ')?;
    Some((offset.parse().ok()?, generation.to_string()))
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
