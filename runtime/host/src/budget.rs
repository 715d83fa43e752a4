//! The process-wide budget of records and bytes in flight: records handed to partition
//! workers whose work is not finished yet. When it is spent, the router pauses
//! the partition it could not feed instead of buffering more.

use crate::record::{Record, HEADER_OVERHEAD};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Fixed per-record overhead counted on top of the payload (struct, topic, offsets).
const RECORD_OVERHEAD: usize = 64;

/// Records, and the bytes they hold in memory, as counted against the budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// How many records.
    pub records: usize,
    /// Their payload plus a fixed overhead each.
    pub bytes: usize,
}

impl Load {
    /// The load of one record.
    pub fn of(record: &Record) -> Self {
        let headers: usize = record
            .headers
            .iter()
            .map(|h| HEADER_OVERHEAD + h.key.len() + h.value.len())
            .sum();
        let bytes = RECORD_OVERHEAD
            + record.topic.len()
            + record.key.as_ref().map_or(0, Vec::len)
            + record.value.as_ref().map_or(0, Vec::len)
            + headers;
        Self { records: 1, bytes }
    }

    /// The load of all of `records`.
    pub fn of_all<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        records
            .into_iter()
            .map(Self::of)
            .fold(Self::default(), |a, b| a + b)
    }
}

impl std::ops::Add for Load {
    type Output = Load;
    fn add(self, other: Load) -> Load {
        Load {
            records: self.records + other.records,
            bytes: self.bytes + other.bytes,
        }
    }
}

impl std::ops::AddAssign for Load {
    fn add_assign(&mut self, other: Load) {
        *self = *self + other;
    }
}

impl std::ops::Sub for Load {
    type Output = Load;
    /// Saturating: giving back more than is held never wraps around.
    fn sub(self, other: Load) -> Load {
        Load {
            records: self.records.saturating_sub(other.records),
            bytes: self.bytes.saturating_sub(other.bytes),
        }
    }
}

/// Take `n` from `counter`, stopping at zero.
fn take(counter: &AtomicUsize, n: usize) {
    // The closure always returns Some, so the update cannot fail.
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        Some(v.saturating_sub(n))
    });
}

/// Records and bytes in flight across all partitions, against a byte limit.
#[derive(Debug)]
pub struct InFlightBudget {
    used: AtomicUsize,
    records: AtomicUsize,
    max: usize,
}

impl InFlightBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            records: AtomicUsize::new(0),
            max,
        }
    }

    /// Take `load` from the budget if its bytes fit. A record larger than the
    /// whole budget is admitted when nothing else is in flight, so it cannot
    /// block forever.
    pub fn try_reserve(&self, load: Load) -> bool {
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used == 0 || used + load.bytes <= self.max).then_some(used + load.bytes)
            })
            .is_ok();
        if reserved {
            self.records.fetch_add(load.records, Ordering::AcqRel);
        }
        reserved
    }

    /// Give `load` back once its records are finished or dropped.
    pub fn release(&self, load: Load) {
        take(&self.used, load.bytes);
        take(&self.records, load.records);
    }

    /// The limit in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes currently in flight.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Records currently in flight.
    pub fn records(&self) -> usize {
        self.records.load(Ordering::Acquire)
    }
}

/// One partition's part of the budget: what its worker holds, so that all of it
/// can be given back if the worker is aborted before it releases its records.
#[derive(Debug)]
pub struct PartitionShare {
    budget: Arc<InFlightBudget>,
    held_records: AtomicUsize,
    held_bytes: AtomicUsize,
}

impl PartitionShare {
    /// An empty share of `budget`.
    pub fn new(budget: Arc<InFlightBudget>) -> Self {
        Self {
            budget,
            held_records: AtomicUsize::new(0),
            held_bytes: AtomicUsize::new(0),
        }
    }

    /// Take `load` from the budget for this partition, if it fits.
    pub fn try_reserve(&self, load: Load) -> bool {
        let reserved = self.budget.try_reserve(load);
        if reserved {
            self.held_records.fetch_add(load.records, Ordering::AcqRel);
            self.held_bytes.fetch_add(load.bytes, Ordering::AcqRel);
        }
        reserved
    }

    /// Give `load` back.
    pub fn release(&self, load: Load) {
        take(&self.held_records, load.records);
        take(&self.held_bytes, load.bytes);
        self.budget.release(load);
    }

    /// Give back everything still held (the worker is gone).
    pub fn release_all(&self) {
        self.budget.release(Load {
            records: self.held_records.swap(0, Ordering::AcqRel),
            bytes: self.held_bytes.swap(0, Ordering::AcqRel),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One record of `n` bytes.
    fn bytes(n: usize) -> Load {
        Load {
            records: 1,
            bytes: n,
        }
    }

    #[test]
    fn every_header_counts_even_an_empty_one() {
        let record = Record {
            headers: vec![crate::record::Header::default(); 10_000],
            ..Record::default()
        };
        assert!(Load::of(&record).bytes >= 10_000 * HEADER_OVERHEAD);
    }

    #[test]
    fn reserves_until_full_and_admits_one_oversized_record_when_idle() {
        let b = InFlightBudget::new(100);
        assert!(b.try_reserve(bytes(60)));
        assert!(!b.try_reserve(bytes(50)));
        assert!(b.try_reserve(bytes(40)));
        assert_eq!(b.records(), 2);
        b.release(bytes(60) + bytes(40));
        assert_eq!((b.used(), b.records()), (0, 0));
        assert!(
            b.try_reserve(bytes(500)),
            "an oversized record passes when nothing is in flight"
        );
        assert!(!b.try_reserve(bytes(1)));
        b.release(bytes(500));
    }

    #[test]
    fn a_partition_share_gives_back_what_its_worker_left_behind() {
        let budget = Arc::new(InFlightBudget::new(100));
        let share = PartitionShare::new(Arc::clone(&budget));
        assert!(share.try_reserve(bytes(30)));
        assert!(share.try_reserve(bytes(30)));
        share.release(bytes(30));
        share.release_all();
        assert_eq!((budget.used(), budget.records()), (0, 0));
    }
}
