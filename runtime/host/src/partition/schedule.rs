//! Which of a partition's waiting records go into the next plugin call. Under
//! `ordering = "partition"` one call at a time takes records in offset order
//! (Weir's original behaviour); under `key`, calls run side by side and a
//! record may join one only if no call in flight holds an earlier record of
//! its key, nor does an earlier waiting record of its key stay behind (so each
//! key is processed in offset order, and a slow key holds back only itself);
//! under `unordered`, any record may go at any time. Null keys are one key.

use crate::config::ProcessingOrder;
use crate::record::Record;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use tokio::time::{Duration, Instant};

/// How a partition's records are scheduled into plugin calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// The ordering guarantee.
    pub ordering: ProcessingOrder,
    /// Plugin calls in flight per partition (1 under `partition`).
    pub max_calls: usize,
    /// Most records per call.
    pub max_records: usize,
    /// How long a call waits to fill up.
    pub linger: Duration,
}

/// A record waiting for a call, with when it arrived and its key's hash.
struct Waiting {
    record: Record,
    arrived: Instant,
    key: u64,
}

/// The records of one partition waiting for a plugin call, and the keys that
/// calls in flight hold.
pub struct Scheduler {
    settings: Concurrency,
    waiting: VecDeque<Waiting>,
    /// Records in calls in flight, per key hash (`key` ordering).
    busy: HashMap<u64, usize>,
    /// The key hash of each record in a call in flight, by offset (`key`
    /// ordering).
    in_calls: HashMap<i64, u64>,
    calls: usize,
}

/// A batch for one call, with the time each record waited.
pub struct Batch {
    /// The records, in offset order.
    pub records: Vec<Record>,
    /// The longest a record of it waited for the call.
    pub waited: Duration,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(settings: Concurrency) -> Self {
        Self {
            settings,
            waiting: VecDeque::new(),
            busy: HashMap::new(),
            in_calls: HashMap::new(),
            calls: 0,
        }
    }

    /// Queue `record`, which arrived at `now` (records arrive in offset order).
    pub fn push(&mut self, record: Record, now: Instant) {
        // Only `key` ordering looks at keys.
        let key = if self.settings.ordering == ProcessingOrder::Key {
            key_hash(record.key.as_deref())
        } else {
            0
        };
        self.waiting.push_back(Waiting {
            record,
            arrived: now,
            key,
        });
    }

    /// Records waiting for a call.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Calls in flight.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Keys held by calls in flight.
    pub fn keys_in_flight(&self) -> usize {
        self.busy.len()
    }

    /// Whether another call may start.
    pub fn has_room(&self) -> bool {
        self.calls < self.settings.max_calls
    }

    /// How many records the worker should hold waiting: enough to fill every
    /// call slot.
    pub fn wants_more(&self) -> bool {
        self.waiting.len() < self.settings.max_records * self.settings.max_calls
    }

    /// When the oldest waiting record will have lingered long enough to send
    /// a call that is not full, if a call could start with something now.
    pub fn deadline(&self) -> Option<Instant> {
        if !self.has_room() || self.eligible_count() == 0 {
            return None;
        }
        self.waiting
            .front()
            .map(|w| w.arrived + self.settings.linger)
    }

    /// The next call's records, if a call may start and one is due: a full
    /// batch is ready, the oldest record has lingered, or `flush` (no more
    /// records will come soon). Due records are spread over the free call
    /// slots, a key's records staying together.
    pub fn next_batch(&mut self, now: Instant, flush: bool) -> Option<Batch> {
        if !self.has_room() {
            return None;
        }
        let keyed = self.settings.ordering == ProcessingOrder::Key;
        let eligible = if keyed { self.eligible() } else { Vec::new() };
        let count = if keyed {
            eligible.len()
        } else {
            self.waiting.len()
        };
        let max = self.settings.max_records;
        let lingered = self
            .waiting
            .front()
            .is_some_and(|w| w.arrived + self.settings.linger <= now);
        if count == 0 || !(flush || lingered || count >= max) {
            return None;
        }
        let free = self.settings.max_calls - self.calls;
        let target = max.min(count.div_ceil(free));
        let picked = if keyed {
            self.pick_keys(&eligible, target)
        } else {
            (0..target).collect()
        };
        let mut records = Vec::with_capacity(picked.len());
        let mut waited = Duration::ZERO;
        // Indexes ascend; remove from the back so the earlier ones stay valid.
        let mut taken: Vec<Waiting> = picked
            .iter()
            .rev()
            .map(|&i| self.waiting.remove(i).expect("picked index"))
            .collect();
        taken.reverse();
        for w in taken {
            waited = waited.max(now.saturating_duration_since(w.arrived));
            if keyed {
                *self.busy.entry(w.key).or_default() += 1;
                self.in_calls.insert(w.record.offset, w.key);
            }
            records.push(w.record);
        }
        self.calls += 1;
        Some(Batch { records, waited })
    }

    /// The record at `offset` is resolved: under `key`, its key is free again
    /// once no other record of it is in a call.
    pub fn settled(&mut self, offset: i64) {
        let Some(key) = self.in_calls.remove(&offset) else {
            return;
        };
        if let Some(count) = self.busy.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                self.busy.remove(&key);
            }
        }
    }

    /// A call gave its slot back (its records may still be retrying).
    pub fn call_ended(&mut self) {
        self.calls -= 1;
    }

    /// Whether a call keeps its slot until its retries are done too: under
    /// `partition` the next call must not overtake a record being retried.
    pub fn retries_hold_the_slot(&self) -> bool {
        self.settings.ordering == ProcessingOrder::Partition
    }

    /// How many waiting records a call may take now.
    fn eligible_count(&self) -> usize {
        match self.settings.ordering {
            ProcessingOrder::Key => self.eligible().len(),
            _ => self.waiting.len(),
        }
    }

    /// Indexes (ascending) of the waiting records a call may take now under
    /// `key`: those whose key no call holds and that no earlier record of
    /// their key waits before.
    fn eligible(&self) -> Vec<usize> {
        let mut held_back: HashSet<u64> = HashSet::new();
        let mut eligible = Vec::new();
        for (i, w) in self.waiting.iter().enumerate() {
            if self.busy.contains_key(&w.key) || held_back.contains(&w.key) {
                // Later records of this key must wait behind this one.
                held_back.insert(w.key);
            } else {
                eligible.push(i);
            }
        }
        eligible
    }

    /// About `target` of the `eligible` records for one call under `key`:
    /// whole keys in order of their first record (a key's records stay in one
    /// call, so other calls get other keys).
    fn pick_keys(&self, eligible: &[usize], target: usize) -> Vec<usize> {
        let mut by_key: Vec<(u64, Vec<usize>)> = Vec::new();
        let mut slot: HashMap<u64, usize> = HashMap::new();
        for &i in eligible {
            let key = self.waiting[i].key;
            let at = *slot.entry(key).or_insert_with(|| {
                by_key.push((key, Vec::new()));
                by_key.len() - 1
            });
            by_key[at].1.push(i);
        }
        let mut picked = Vec::with_capacity(target);
        for (_, indexes) in by_key {
            if picked.len() >= target {
                break;
            }
            let room = self.settings.max_records - picked.len();
            picked.extend(indexes.into_iter().take(room));
        }
        picked.sort_unstable();
        picked
    }

    /// Every waiting record, for giving their load back at a stop.
    pub fn drain(&mut self) -> Vec<Record> {
        self.waiting.drain(..).map(|w| w.record).collect()
    }
}

/// The hash a key is scheduled by (null keys are one key).
fn key_hash(key: Option<&[u8]>) -> u64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, key: &str) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp: None,
            key: Some(key.as_bytes().to_vec()),
            value: None,
            headers: Vec::new(),
        }
    }

    fn scheduler(ordering: ProcessingOrder, max_calls: usize, max_records: usize) -> Scheduler {
        Scheduler::new(Concurrency {
            ordering,
            max_calls,
            max_records,
            linger: Duration::from_millis(5),
        })
    }

    fn offsets(batch: &Batch) -> Vec<i64> {
        batch.records.iter().map(|r| r.offset).collect()
    }

    /// Every record of `batch` resolved, and its call over.
    fn finish(s: &mut Scheduler, batch: &Batch) {
        for offset in offsets(batch) {
            s.settled(offset);
        }
        s.call_ended();
    }

    #[tokio::test]
    async fn a_retrying_record_holds_only_its_own_key() {
        let mut s = scheduler(ProcessingOrder::Key, 1, 10);
        for (offset, key) in [(0, "a"), (1, "b"), (2, "c")] {
            s.push(record(offset, key), Instant::now());
        }
        let now = Instant::now();
        let first = s.next_batch(now, true).unwrap();
        assert_eq!(offsets(&first), [0, 1, 2]);
        // b and c are resolved; a waits for a retry, its call's slot is free.
        s.settled(1);
        s.settled(2);
        s.call_ended();
        for (offset, key) in [(3, "a"), (4, "b"), (5, "c")] {
            s.push(record(offset, key), Instant::now());
        }
        let second = s.next_batch(now, true).unwrap();
        assert_eq!(offsets(&second), [4, 5], "a's next record waits for a");
        s.settled(0);
        finish(&mut s, &second);
        assert_eq!(offsets(&s.next_batch(now, true).unwrap()), [3]);
    }

    #[tokio::test]
    async fn a_key_never_runs_in_two_calls_and_waits_behind_its_own_earlier_records() {
        let mut s = scheduler(ProcessingOrder::Key, 2, 10);
        for (offset, key) in [(0, "a"), (1, "b"), (2, "a"), (3, "c"), (4, "b"), (5, "d")] {
            s.push(record(offset, key), Instant::now());
        }
        let now = Instant::now();
        let first = s.next_batch(now, true).unwrap();
        assert_eq!(
            offsets(&first),
            [0, 1, 2, 4],
            "whole keys a and b: 3 of 6 per free slot"
        );
        let second = s.next_batch(now, true).unwrap();
        assert_eq!(offsets(&second), [3, 5], "the other keys go side by side");
        assert!(s.next_batch(now, true).is_none(), "no free call slot");
        s.push(record(6, "a"), now);
        s.push(record(7, "e"), now);
        finish(&mut s, &second);
        let third = s.next_batch(now, true).unwrap();
        assert_eq!(
            offsets(&third),
            [7],
            "a is still in a call: its record 6 waits"
        );
        finish(&mut s, &first);
        finish(&mut s, &third);
        assert_eq!(offsets(&s.next_batch(now, true).unwrap()), [6]);
    }

    #[tokio::test]
    async fn partition_ordering_runs_one_call_at_a_time_in_offset_order() {
        let mut s = scheduler(ProcessingOrder::Partition, 1, 2);
        for offset in 0..3 {
            s.push(record(offset, "k"), Instant::now());
        }
        let now = Instant::now();
        let first = s.next_batch(now, false).unwrap();
        assert_eq!(offsets(&first), [0, 1], "a full batch goes at once");
        assert!(s.next_batch(now, true).is_none(), "one call at a time");
        finish(&mut s, &first);
        assert!(
            s.next_batch(now, false).is_none(),
            "a partial batch lingers"
        );
        let later = now + Duration::from_millis(10);
        assert_eq!(offsets(&s.next_batch(later, false).unwrap()), [2]);
    }

    #[tokio::test]
    async fn unordered_takes_any_record() {
        let mut s = scheduler(ProcessingOrder::Unordered, 2, 2);
        for offset in 0..4 {
            s.push(record(offset, "same"), Instant::now());
        }
        let now = Instant::now();
        assert_eq!(offsets(&s.next_batch(now, true).unwrap()), [0, 1]);
        assert_eq!(offsets(&s.next_batch(now, true).unwrap()), [2, 3]);
    }
}
