//! Plugin state: a key-value store of byte strings that the host keeps for
//! the partition being processed, across batches, crashes and rebalances.
//!
//! Reads see this plugin's earlier writes in the same partition, including
//! those of earlier records of the same batch. A write belongs to the record
//! being processed: the SDK keeps it until [`crate::Processor::process`]
//! returns `Ok` and only then hands it to the host, so a record that fails
//! leaves no trace (not even for the records after it in its batch); a retry
//! writes again. The host sends it to its changelog before the record's offset
//! is committed. A write over the operator's caps (`[plugin.state]`) fails the
//! record (kind `state`) when the host gets it.
//!
//! Outside WebAssembly (native `cargo test`), the same functions use an
//! in-memory map of the current thread, so plugin logic that keeps state
//! unit-tests without the host; [`clear`] empties it between tests.
//!
//! ```
//! use weir_sdk::state;
//!
//! let seen = state::get(b"order-1").is_some();
//! if !seen {
//!     state::set(b"order-1", b"").unwrap();
//! }
//! assert!(state::get(b"order-1").is_some());
//! # state::clear();
//! ```

/// A write the host refused: made outside `process` (in `init`), where there
/// is no partition. (Inside `process`, writes go to the host after the record
/// is processed; a refusal then fails the record.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

/// The value of `key`, if it has one.
pub fn get(key: &[u8]) -> Option<Vec<u8>> {
    imp::get(key)
}

/// Set `key` to `value`, for the record being processed.
pub fn set(key: &[u8], value: &[u8]) -> Result<(), StateError> {
    imp::set(key, Some(value))
}

/// Remove `key`, for the record being processed.
pub fn delete(key: &[u8]) -> Result<(), StateError> {
    imp::set(key, None)
}

/// Empty the in-memory state of native tests (does nothing in WebAssembly,
/// where the host owns the state).
pub fn clear() {
    #[cfg(not(target_arch = "wasm32"))]
    imp::MEMORY.with(|m| m.borrow_mut().clear());
}

#[cfg(target_arch = "wasm32")]
pub(crate) mod imp {
    use super::StateError;
    use crate::__private::bindings::weir::processor::state as host;
    use std::cell::{Cell, RefCell};

    /// A write kept until its record is processed: the key and its new value
    /// (`None` deletes it).
    type Write = (Vec<u8>, Option<Vec<u8>>);

    /// Hands one write to the host.
    type Send = fn(&[u8], Option<&[u8]>) -> Result<(), StateError>;

    thread_local! {
        // The offset of the record being processed, which its writes name.
        static OFFSET: Cell<i64> = const { Cell::new(-1) };
        // The record's writes, one per key, while a record is processed.
        static BUFFER: RefCell<Option<Vec<Write>>> = const { RefCell::new(None) };
        // How buffered writes reach the host: set by the first write, so
        // that a plugin that never writes does not import the host's
        // state functions (and Weir keeps no state for it).
        static SEND: Cell<Option<Send>> = const { Cell::new(None) };
    }

    /// A record at `offset` is about to be processed.
    pub fn begin_record(offset: i64) {
        OFFSET.with(|o| o.set(offset));
        BUFFER.with(|b| *b.borrow_mut() = Some(Vec::new()));
    }

    /// The record was processed (`processed`) or failed: hand its writes to
    /// the host, or drop them. A refusal fails the record in the host.
    pub fn end_record(processed: bool) {
        let writes = BUFFER.with(|b| b.borrow_mut().take()).unwrap_or_default();
        if let (true, Some(send)) = (processed, SEND.with(Cell::get)) {
            for (key, value) in writes {
                let _ = send(&key, value.as_deref());
            }
        }
    }

    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        let kept = BUFFER.with(|b| {
            let buffer = b.borrow();
            let write = buffer.as_ref()?.iter().find(|(k, _)| k == key)?;
            Some(write.1.clone())
        });
        match kept {
            Some(value) => value,
            None => host::get(key),
        }
    }

    pub fn set(key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        SEND.with(|s| s.set(Some(send)));
        let kept = BUFFER.with(|b| {
            let mut buffer = b.borrow_mut();
            let buffer = buffer.as_mut()?;
            let value = value.map(<[u8]>::to_vec);
            match buffer.iter_mut().find(|(k, _)| k == key) {
                Some(write) => write.1 = value,
                None => buffer.push((key.to_vec(), value)),
            }
            Some(())
        });
        match kept {
            Some(()) => Ok(()),
            None => send(key, value),
        }
    }

    fn send(key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        let offset = OFFSET.with(|o| o.get());
        match value {
            Some(value) => host::set(offset, key, value),
            None => host::delete(offset, key),
        }
        .map_err(StateError)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::StateError;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    thread_local! {
        pub static MEMORY: RefCell<BTreeMap<Vec<u8>, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        MEMORY.with(|m| m.borrow().get(key).cloned())
    }

    pub fn set(key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        MEMORY.with(|m| {
            let mut m = m.borrow_mut();
            match value {
                Some(value) => m.insert(key.to_vec(), value.to_vec()),
                None => m.remove(key),
            };
        });
        Ok(())
    }
}
