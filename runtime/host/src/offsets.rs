//! Per-partition offset tracking: which input offset is safe to commit.
//!
//! Records are dispatched in offset order and may complete in any order (their
//! outputs are acknowledged by the broker independently). The committable offset is
//! the lowest offset still unfinished, or one past the last dispatched offset when
//! nothing is pending, so a commit never covers a record whose work is not done.
//! Pure logic: no Kafka types, property-tested below.

use std::collections::VecDeque;

/// Tracks in-flight records of one partition and the offset that is safe to commit.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// Dispatched offsets in increasing order, with whether each is finished.
    /// Finished entries at the front are popped eagerly.
    pending: VecDeque<(i64, bool)>,
    /// One past the highest offset dispatched so far.
    next_after_dispatched: Option<i64>,
}

/// The tracker was given an offset that breaks its ordering contract.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OffsetError {
    /// Offsets must be dispatched in strictly increasing order.
    #[error(
        "offset {offset} dispatched after {previous}: offsets must increase within a partition"
    )]
    NotIncreasing {
        /// The offending offset.
        offset: i64,
        /// The highest offset dispatched before it.
        previous: i64,
    },
    /// Only dispatched, unfinished offsets can complete.
    #[error("offset {0} completed but it is not in flight")]
    NotInFlight(i64),
}

impl OffsetTracker {
    /// An empty tracker: nothing dispatched, nothing to commit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that `offset` was handed to processing.
    pub fn dispatch(&mut self, offset: i64) -> Result<(), OffsetError> {
        if let Some(next) = self.next_after_dispatched {
            if offset < next {
                return Err(OffsetError::NotIncreasing {
                    offset,
                    previous: next - 1,
                });
            }
        }
        self.pending.push_back((offset, false));
        self.next_after_dispatched = Some(offset + 1);
        Ok(())
    }

    /// Record that all work for `offset` is finished (processed and every output
    /// acknowledged).
    pub fn complete(&mut self, offset: i64) -> Result<(), OffsetError> {
        let index = self
            .pending
            .binary_search_by_key(&offset, |(o, _)| *o)
            .map_err(|_| OffsetError::NotInFlight(offset))?;
        let entry = &mut self.pending[index];
        if entry.1 {
            return Err(OffsetError::NotInFlight(offset));
        }
        entry.1 = true;
        while matches!(self.pending.front(), Some((_, true))) {
            self.pending.pop_front();
        }
        Ok(())
    }

    /// The offset to commit (the next record to read after a restart), or `None`
    /// if nothing was dispatched yet.
    pub fn committable(&self) -> Option<i64> {
        match self.pending.front() {
            Some((offset, _)) => Some(*offset),
            None => self.next_after_dispatched,
        }
    }

    /// Number of dispatched records not yet finished.
    pub fn in_flight(&self) -> usize {
        self.pending.iter().filter(|(_, done)| !done).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_up_to_the_lowest_unfinished_offset() {
        let mut t = OffsetTracker::new();
        assert_eq!(t.committable(), None);
        for o in [10, 11, 15] {
            t.dispatch(o).unwrap();
        }
        assert_eq!(t.committable(), Some(10));
        t.complete(11).unwrap();
        assert_eq!(t.committable(), Some(10));
        t.complete(10).unwrap();
        assert_eq!(t.committable(), Some(15));
        t.complete(15).unwrap();
        assert_eq!(t.committable(), Some(16));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn rejects_out_of_order_dispatch_and_unknown_completion() {
        let mut t = OffsetTracker::new();
        t.dispatch(5).unwrap();
        assert_eq!(
            t.dispatch(5),
            Err(OffsetError::NotIncreasing {
                offset: 5,
                previous: 5
            })
        );
        assert_eq!(t.complete(4), Err(OffsetError::NotInFlight(4)));
        t.complete(5).unwrap();
        assert_eq!(t.complete(5), Err(OffsetError::NotInFlight(5)));
    }

    proptest! {
        /// Whatever order records complete in, the committable offset never passes an
        /// unfinished record, never goes backwards, and reaches the end when all finish.
        #[test]
        fn never_commits_past_an_unfinished_record(
            gaps in prop::collection::vec(1i64..4, 1..200),
            order_seed in prop::collection::vec(any::<prop::sample::Index>(), 200),
        ) {
            let mut offsets = Vec::new();
            let mut next = 0i64;
            for gap in gaps {
                offsets.push(next);
                next += gap;
            }
            let mut t = OffsetTracker::new();
            for &o in &offsets {
                t.dispatch(o).unwrap();
            }
            let mut remaining = offsets.clone();
            let mut last_committable = t.committable().unwrap();
            for index in order_seed.iter().take(offsets.len()) {
                let o = remaining.swap_remove(index.index(remaining.len()));
                t.complete(o).unwrap();
                let c = t.committable().unwrap();
                prop_assert!(c >= last_committable);
                if let Some(lowest_unfinished) = remaining.iter().min() {
                    prop_assert!(c <= *lowest_unfinished);
                }
                last_committable = c;
            }
            prop_assert!(remaining.is_empty());
            prop_assert_eq!(t.committable(), Some(offsets.last().unwrap() + 1));
        }
    }
}
