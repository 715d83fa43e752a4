//! Host panics: a panic while handling one record (a bug, or a library that
//! panics on input it did not expect) is caught where records are handled and
//! fails that record through the failure policy instead of ending the process,
//! which would restart, read the same record and panic again.
//!
//! With the `fault-injection` feature (on in test builds only) a record whose
//! value starts with a [`Stage`]'s mark makes the host panic there, so tests
//! can prove each catch. Without the feature the checks compile to nothing.

use std::any::Any;

/// The text of a caught panic's payload.
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Where a test may ask the host to panic.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    /// Calling the plugin (lifting and lowering records, host imports).
    PluginCall,
    /// Handing a record's outputs to the producer.
    HandOver,
    /// Copying a consumed message into a record, on the poll thread.
    Poll,
}

impl Stage {
    /// The value prefix that asks for a panic at this stage.
    pub fn mark(self) -> &'static [u8] {
        match self {
            Stage::PluginCall => b"weir-fault:panic-in-call",
            Stage::HandOver => b"weir-fault:panic-in-hand-over",
            Stage::Poll => b"weir-fault:panic-in-poll",
        }
    }
}

/// Panic if fault injection is built in and `value` asks for a panic at `stage`.
#[cfg(feature = "fault-injection")]
pub fn inject(stage: Stage, value: Option<&[u8]>) {
    if value.is_some_and(|v| v.starts_with(stage.mark())) {
        panic!("deliberate fault: {stage:?} (fault-injection build)");
    }
}

/// Panic if fault injection is built in (it is not in this build).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn inject(_stage: Stage, _value: Option<&[u8]>) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_message_is_read_from_either_payload_type() {
        let caught = std::panic::catch_unwind(|| panic!("static text")).unwrap_err();
        assert_eq!(message(&*caught), "static text");
        let caught = std::panic::catch_unwind(|| panic!("formatted {}", 7)).unwrap_err();
        assert_eq!(message(&*caught), "formatted 7");
    }
}
