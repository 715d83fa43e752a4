//! The process-wide budget of bytes in flight: records handed to partition
//! workers whose work is not finished yet. When it is spent, the router pauses
//! the partition it could not feed instead of buffering more.

use crate::wasm::InputRecord;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Fixed per-record overhead counted on top of the payload (struct, topic, offsets).
const RECORD_OVERHEAD: usize = 64;

/// Bytes a record holds in memory, as counted against the budget.
pub fn record_bytes(record: &InputRecord) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.len())
        .sum();
    RECORD_OVERHEAD
        + record.topic.len()
        + record.key.as_ref().map_or(0, Vec::len)
        + record.value.as_ref().map_or(0, Vec::len)
        + headers
}

/// Bytes of records in flight across all partitions, against a limit.
#[derive(Debug)]
pub struct InFlightBudget {
    used: AtomicUsize,
    max: usize,
}

impl InFlightBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Take `bytes` from the budget if they fit. A record larger than the whole
    /// budget is admitted when nothing else is in flight, so it cannot block forever.
    pub fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used == 0 || used + bytes <= self.max).then_some(used + bytes)
            })
            .is_ok()
    }

    /// Give `bytes` back once their records are finished or dropped.
    pub fn release(&self, bytes: usize) {
        let previous = self.used.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(previous >= bytes, "released more than reserved");
    }

    /// The limit in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes currently in flight.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// One partition's part of the budget: what its worker holds, so that all of it
/// can be given back if the worker is aborted before it releases its records.
#[derive(Debug)]
pub struct PartitionShare {
    budget: Arc<InFlightBudget>,
    held: AtomicUsize,
}

impl PartitionShare {
    /// An empty share of `budget`.
    pub fn new(budget: Arc<InFlightBudget>) -> Self {
        Self {
            budget,
            held: AtomicUsize::new(0),
        }
    }

    /// Take `bytes` from the budget for this partition, if they fit.
    pub fn try_reserve(&self, bytes: usize) -> bool {
        let reserved = self.budget.try_reserve(bytes);
        if reserved {
            self.held.fetch_add(bytes, Ordering::AcqRel);
        }
        reserved
    }

    /// Give `bytes` back.
    pub fn release(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::AcqRel);
        self.budget.release(bytes);
    }

    /// Give back everything still held (the worker is gone).
    pub fn release_all(&self) {
        self.budget.release(self.held.swap(0, Ordering::AcqRel));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_until_full_and_admits_one_oversized_record_when_idle() {
        let b = InFlightBudget::new(100);
        assert!(b.try_reserve(60));
        assert!(!b.try_reserve(50));
        assert!(b.try_reserve(40));
        b.release(100);
        assert_eq!(b.used(), 0);
        assert!(
            b.try_reserve(500),
            "an oversized record passes when nothing is in flight"
        );
        assert!(!b.try_reserve(1));
        b.release(500);
    }

    #[test]
    fn a_partition_share_gives_back_what_its_worker_left_behind() {
        let budget = Arc::new(InFlightBudget::new(100));
        let share = PartitionShare::new(Arc::clone(&budget));
        assert!(share.try_reserve(30));
        assert!(share.try_reserve(30));
        share.release(30);
        share.release_all();
        assert_eq!(budget.used(), 0);
    }
}
