//! Stopping partition workers: each is told to stop, finishes its current batch
//! and waits for its outputs' acknowledgements; a drain waits for them up to a
//! deadline, in short steps so the consumer loop can commit meanwhile.

use super::router::{DrainTimedOut, Slot};
use crate::budget::PartitionShare;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Longest single wait of a drain step.
const STEP: Duration = Duration::from_millis(100);

/// Workers being stopped.
pub struct Drain {
    partitions: Vec<(String, i32)>,
    shares: Vec<Arc<PartitionShare>>,
    handles: Vec<JoinHandle<()>>,
    deadline: Instant,
}

impl Drain {
    /// Tell the workers of `slots` to stop; they have `timeout` to finish.
    pub(super) fn start(slots: Vec<((String, i32), Slot)>, timeout: Duration) -> Self {
        let mut drain = Self {
            partitions: Vec::with_capacity(slots.len()),
            shares: Vec::with_capacity(slots.len()),
            handles: Vec::with_capacity(slots.len()),
            deadline: Instant::now() + timeout,
        };
        for (key, slot) in slots {
            slot.stop.cancel();
            drain.partitions.push(key);
            drain.shares.push(slot.share);
            drain.handles.push(slot.handle);
        }
        drain
    }

    /// The partitions being drained.
    pub fn partitions(&self) -> &[(String, i32)] {
        &self.partitions
    }

    /// Wait up to one step for the workers; true once all finished or the
    /// deadline passed.
    pub(super) fn wait(&mut self, runtime: &tokio::runtime::Handle) -> bool {
        let wait = STEP.min(self.deadline.saturating_duration_since(Instant::now()));
        let handles = &mut self.handles;
        let all_done = runtime.block_on(async {
            tokio::time::timeout(wait, async {
                for handle in handles.iter_mut().filter(|h| !h.is_finished()) {
                    // A panicking worker already reported nothing; the runner sees the panic.
                    let _ = handle.await;
                }
            })
            .await
            .is_ok()
        });
        all_done || Instant::now() >= self.deadline
    }

    /// Abort workers still busy and give their bytes back; says which were.
    pub(super) fn end(self, runtime: &tokio::runtime::Handle) -> Result<(), DrainTimedOut> {
        let mut busy = Vec::new();
        let workers = self
            .partitions
            .into_iter()
            .zip(self.shares)
            .zip(self.handles);
        for (((topic, partition), share), handle) in workers {
            if !handle.is_finished() {
                busy.push(format!("{topic}/{partition}"));
                handle.abort();
                // Once the task is gone, nothing else gives its bytes back.
                let _ = runtime.block_on(handle);
                share.release_all();
            }
        }
        if busy.is_empty() {
            Ok(())
        } else {
            Err(DrainTimedOut { partitions: busy })
        }
    }
}
