//! Hand-over in offset order. Plugin calls of one partition may finish in
//! any order (`ordering = "key"` or `"unordered"`), but their outputs and dead
//! letters are handed to the producer in the partition's offset order: a
//! transaction then covers exactly the records before the position it
//! commits, and a dead letter's segment split stays where it was.

use crate::process::Resolution;
use crate::record::Record;
use crate::wasm::PluginPool;
use std::collections::VecDeque;
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
    /// Its state writes (already applied), for the changelog.
    pub writes: Vec<crate::state::RecordWrites>,
}

/// Resolutions waiting for every earlier record's.
#[derive(Default)]
pub struct Reorder {
    /// Offsets taken in and not yet handed over, in order, each with its
    /// resolution once it came back.
    expected: VecDeque<(i64, Option<Resolved>)>,
}

impl Reorder {
    /// `offset` was taken in (offsets come in increasing order).
    pub fn expect(&mut self, offset: i64) {
        self.expected.push_back((offset, None));
    }

    /// A resolution came back (for an offset taken in and not handed over).
    pub fn insert(&mut self, resolved: Resolved) {
        let offset = resolved.record.offset;
        match self.expected.binary_search_by_key(&offset, |(o, _)| *o) {
            Ok(at) => self.expected[at].1 = Some(resolved),
            Err(_) => debug_assert!(false, "offset {offset} was not expected"),
        }
    }

    /// The resolutions now due, in offset order, all resolved by the same
    /// plugin versions (call again for the next run).
    pub fn take_run(&mut self) -> Vec<Resolved> {
        // Sized first: a run can be thousands of records, and growing it
        // step by step cost fresh pages for every batch (perf).
        let mut due = self.expected.iter().map_while(|(_, r)| r.as_ref());
        let length = match due.next() {
            Some(first) => {
                1 + due
                    .take_while(|next| Arc::ptr_eq(&first.versions, &next.versions))
                    .count()
            }
            None => 0,
        };
        self.expected
            .drain(..length)
            .map(|(_, resolved)| resolved.expect("counted as resolved"))
            .collect()
    }

    /// Everything not handed over, for giving its load back at a stop.
    pub fn drain(&mut self) -> Vec<Resolved> {
        self.expected
            .drain(..)
            .filter_map(|(_, resolved)| resolved)
            .collect()
    }
}
