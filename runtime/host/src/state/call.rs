//! What one plugin call reads and writes through its partition's state: reads
//! see the call's own earlier writes first; each write belongs to the record
//! whose offset the plugin names, and is checked against the caps before it is
//! kept. Nothing reaches the partition's state until the call's records are
//! resolved (`CallWrites`).

use super::{PartitionState, RecordWrites, StateError, StateWrite};
use std::collections::HashMap;
use std::sync::Arc;

/// Most bytes of keys and values one call's writes may hold until the call
/// ends (a record's repeated writes to one key keep only the last), so that
/// a plugin writing in a loop cannot exhaust the host's memory.
const MAX_CALL_WRITE_BYTES: usize = 64 << 20;

/// The state side of one plugin call.
pub struct CallState {
    state: Arc<PartitionState>,
    /// Offsets of the call's records, ascending.
    offsets: Vec<i64>,
    /// Writes, in the order the plugin made them, with their record's offset.
    writes: Vec<(i64, StateWrite)>,
    /// The latest write of each key, by index into `writes`.
    latest: HashMap<Vec<u8>, usize>,
    /// The call's writes' change to the partition's byte count.
    delta: i64,
    /// Bytes of keys and values the kept writes hold.
    kept: usize,
    /// Records whose writes were refused, and why.
    refused: HashMap<i64, String>,
}

impl CallState {
    /// A call on `state` processing the records at `offsets`.
    pub fn new(state: Arc<PartitionState>, mut offsets: Vec<i64>) -> Self {
        offsets.sort_unstable();
        offsets.dedup();
        Self {
            state,
            offsets,
            writes: Vec::new(),
            latest: HashMap::new(),
            delta: 0,
            kept: 0,
            refused: HashMap::new(),
        }
    }

    /// The value of `key`, as the call's own writes left it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.latest.get(key) {
            Some(&at) => Ok(self.writes[at].1.value.clone()),
            None => self.state.get(key),
        }
    }

    /// Set (`value` is `Some`) or delete `key` for the record at `offset`.
    /// `Ok(Err(reason))` is a refused write, which also fails that record.
    pub fn write(
        &mut self,
        offset: i64,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) -> Result<Result<(), String>, StateError> {
        if self.offsets.binary_search(&offset).is_err() {
            return Ok(Err(format!(
                "offset {offset} is not a record of this call; state writes belong to a record of the batch being processed"
            )));
        }
        let limits = self.state.limits();
        let refusal = if key.len() > limits.max_key_bytes {
            Some(format!(
                "a state key of {} bytes is over the cap of {} (plugin.state.max_key_bytes)",
                key.len(),
                limits.max_key_bytes
            ))
        } else if value
            .as_ref()
            .is_some_and(|v| v.len() > limits.max_value_bytes)
        {
            Some(format!(
                "a state value of {} bytes is over the cap of {} (plugin.state.max_value_bytes)",
                value.as_ref().map_or(0, Vec::len),
                limits.max_value_bytes
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Ok(Err(self.refuse(offset, reason)));
        }
        let before = match self.latest.get(&key) {
            Some(&at) => self.writes[at]
                .1
                .value
                .as_ref()
                .map_or(0, |v| key.len() + v.len()),
            None => self.state.entry_bytes(&key)?,
        };
        let after = value.as_ref().map_or(0, |v| key.len() + v.len());
        let delta = after as i64 - before as i64;
        let projected = self.state.bytes() + self.delta + delta;
        if delta > 0 && projected > limits.max_partition_bytes as i64 {
            let reason = format!(
                "the partition's state would hold {projected} bytes, over the cap of {} (plugin.state.max_mib_per_partition)",
                limits.max_partition_bytes
            );
            return Ok(Err(self.refuse(offset, reason)));
        }
        // The same record writing the same key again replaces its write.
        let replaces = self
            .latest
            .get(&key)
            .copied()
            .filter(|&at| self.writes[at].0 == offset);
        let replaced = replaces.map_or(0, |at| entry_bytes(&self.writes[at].1));
        let kept = self.kept - replaced + key.len() + value.as_ref().map_or(0, Vec::len);
        if kept > MAX_CALL_WRITE_BYTES {
            let reason = format!(
                "the call's state writes would hold {kept} bytes, over the {MAX_CALL_WRITE_BYTES} one call may make"
            );
            return Ok(Err(self.refuse(offset, reason)));
        }
        self.kept = kept;
        self.delta += delta;
        match replaces {
            Some(at) => {
                let write = &mut self.writes[at].1;
                write.value = value;
                write.delta += delta;
            }
            None => {
                self.latest.insert(key.clone(), self.writes.len());
                self.writes.push((offset, StateWrite { key, value, delta }));
            }
        }
        Ok(Ok(()))
    }

    fn refuse(&mut self, offset: i64, reason: String) -> String {
        self.refused.entry(offset).or_insert_with(|| reason.clone());
        reason
    }

    /// The call is over: its writes by record.
    pub fn finish(self) -> CallWrites {
        let mut by_offset: HashMap<i64, Vec<StateWrite>> = HashMap::new();
        for (offset, write) in self.writes {
            by_offset.entry(offset).or_default().push(write);
        }
        CallWrites {
            state: Some(self.state),
            by_offset,
            refused: self.refused,
        }
    }
}

/// Bytes a write's key and value take.
fn entry_bytes(write: &StateWrite) -> usize {
    write.key.len() + write.value.as_ref().map_or(0, Vec::len)
}

/// A finished call's writes, to be claimed record by record.
#[derive(Default)]
pub struct CallWrites {
    state: Option<Arc<PartitionState>>,
    by_offset: HashMap<i64, Vec<StateWrite>>,
    refused: HashMap<i64, String>,
}

impl CallWrites {
    /// The writes of the record at `offset`, or why one was refused. Several
    /// records of one call may share an offset (a chained plugin's inputs from
    /// one record's outputs): the first to claim gets them all.
    pub fn claim(&mut self, offset: i64) -> Result<Option<RecordWrites>, String> {
        if let Some(reason) = self.refused.remove(&offset) {
            self.by_offset.remove(&offset);
            return Err(reason);
        }
        let writes = self.by_offset.remove(&offset);
        Ok(match (&self.state, writes) {
            (Some(state), Some(writes)) => Some(RecordWrites {
                state: Arc::clone(state),
                writes,
            }),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{MemoryBackend, StateLimits};

    fn state(max_partition_bytes: u64) -> Arc<PartitionState> {
        let limits = StateLimits {
            max_key_bytes: 8,
            max_value_bytes: 16,
            max_partition_bytes,
        };
        let state = PartitionState::new(
            "p".into(),
            ("t", 0),
            "g.p.state".into(),
            Box::new(MemoryBackend::default()),
            limits,
            None,
        );
        Arc::new(state.unwrap())
    }

    #[test]
    fn reads_see_the_calls_own_writes_and_writes_go_to_their_record() {
        let state = state(1000);
        let mut call = CallState::new(Arc::clone(&state), vec![5, 6]);
        assert_eq!(call.get(b"k").unwrap(), None);
        call.write(5, b"k".to_vec(), Some(b"one".to_vec()))
            .unwrap()
            .unwrap();
        assert_eq!(call.get(b"k").unwrap(), Some(b"one".to_vec()));
        call.write(6, b"k".to_vec(), None).unwrap().unwrap();
        assert_eq!(call.get(b"k").unwrap(), None);
        assert!(call.write(7, b"k".to_vec(), None).unwrap().is_err());
        // Nothing reaches the partition before the records are resolved.
        assert_eq!(state.get(b"k").unwrap(), None);
        let mut writes = call.finish();
        let first = writes.claim(5).unwrap().unwrap();
        assert_eq!(first.writes[0].delta, 4);
        state.apply(&first.writes).unwrap();
        assert_eq!(state.get(b"k").unwrap(), Some(b"one".to_vec()));
        assert_eq!(state.bytes(), 4);
        let second = writes.claim(6).unwrap().unwrap();
        assert_eq!(second.writes[0].delta, -4);
        assert!(writes.claim(7).unwrap().is_none());
    }

    #[test]
    fn a_records_repeated_writes_to_a_key_keep_only_the_last() {
        let state = state(1000);
        let mut call = CallState::new(Arc::clone(&state), vec![1]);
        for round in 0..10_000u32 {
            let value = round.to_be_bytes().to_vec();
            call.write(1, b"k".to_vec(), Some(value)).unwrap().unwrap();
        }
        assert_eq!(call.writes.len(), 1);
        let writes = call.finish().claim(1).unwrap().unwrap();
        assert_eq!(writes.writes[0].delta, 5);
        assert_eq!(
            writes.writes[0].value,
            Some(9_999u32.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn writes_over_a_cap_are_refused_and_fail_their_record_only() {
        let state = state(20);
        let mut call = CallState::new(Arc::clone(&state), vec![1, 2, 3, 4]);
        let key_too_long = call.write(1, vec![0; 9], Some(vec![])).unwrap();
        assert!(key_too_long.unwrap_err().contains("max_key_bytes"));
        let value_too_long = call.write(2, b"k".to_vec(), Some(vec![0; 17])).unwrap();
        assert!(value_too_long.unwrap_err().contains("max_value_bytes"));
        call.write(3, b"a".to_vec(), Some(vec![0; 15]))
            .unwrap()
            .unwrap();
        let full = call.write(4, b"b".to_vec(), Some(vec![0; 15])).unwrap();
        assert!(full.unwrap_err().contains("max_mib_per_partition"));
        let mut writes = call.finish();
        assert!(writes.claim(1).is_err());
        assert!(writes.claim(2).is_err());
        assert!(writes.claim(3).unwrap().is_some());
        assert!(writes.claim(4).is_err());
    }
}
