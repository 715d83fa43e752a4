//! Plugin state: a key-value store of byte strings that the host keeps for
//! the partition being processed, across batches, crashes and rebalances.
//!
//! Reads see this plugin's earlier writes in the same partition, including
//! those of earlier records of the same batch. A write belongs to the record
//! being processed: it takes effect only if that record is processed (an
//! error or a trap drops it, and a retry writes again), and it reaches the
//! host's changelog before the record's offset is committed. A write over the
//! operator's caps (`[plugin.state]`) is refused and fails the record.
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

/// A write the host refused (a key or value over the caps, the partition's
/// state full). The record it was made for fails whatever the plugin returns.
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
mod imp {
    use super::StateError;
    use crate::__private::bindings::weir::processor::state as host;

    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        host::get(key)
    }

    pub fn set(key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        let offset = crate::__private::current_offset();
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
