//! Hand-over in offset order. Plugin calls of one partition may finish in
//! any order (`ordering = "key"` or `"unordered"`), but their outputs and dead
//! letters are handed to the producer in the partition's offset order: a
//! transaction then covers exactly the records before the position it
//! commits, and a dead letter's segment split stays where it was.

use crate::process::Resolution;
use crate::record::Record;
use crate::wasm::PluginPool;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

/// The plugin versions a call used, first to last of the chain.
pub type Versions = Arc<Vec<Arc<PluginPool>>>;

/// One record's resolution, waiting for its turn to be handed over.
pub struct Resolved {
    /// The record (with its original bytes).
    pub record: Record,
    /// What became of it.
    pub resolution: Resolution,
    /// The plugin versions that resolved it.
    pub versions: Versions,
    /// When its call started (for its trace span).
    pub started: SystemTime,
}

/// Resolutions waiting for every earlier record's.
#[derive(Default)]
pub struct Reorder {
    /// Offsets taken in, not yet handed over, in order.
    expected: VecDeque<i64>,
    ready: HashMap<i64, Resolved>,
}

impl Reorder {
    /// `offset` was taken in (offsets come in increasing order).
    pub fn expect(&mut self, offset: i64) {
        self.expected.push_back(offset);
    }

    /// A resolution came back.
    pub fn insert(&mut self, resolved: Resolved) {
        self.ready.insert(resolved.record.offset, resolved);
    }

    /// The resolutions now due, in offset order, all resolved by the same
    /// plugin versions (call again for the next run).
    pub fn take_run(&mut self) -> Vec<Resolved> {
        let mut run: Vec<Resolved> = Vec::new();
        while let Some(offset) = self.expected.front() {
            let same_versions = match (run.first(), self.ready.get(offset)) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(first), Some(next)) => Arc::ptr_eq(&first.versions, &next.versions),
            };
            if !same_versions {
                break;
            }
            let offset = self.expected.pop_front().expect("front exists");
            run.push(self.ready.remove(&offset).expect("checked above"));
        }
        run
    }

    /// Everything not handed over, for giving its load back at a stop.
    pub fn drain(&mut self) -> Vec<Record> {
        self.expected.clear();
        self.ready.drain().map(|(_, r)| r.record).collect()
    }
}
