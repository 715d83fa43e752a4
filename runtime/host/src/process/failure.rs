//! What went wrong with one record, which plugin gave up on it, and the
//! backoff between retries.

pub use crate::wasm::PluginIdentity;
use crate::wasm::TrapKind;
use std::time::Duration;

/// Why a record could not be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The plugin returned an error for it (not retryable, or retries ran out).
    Error,
    /// A plugin call with only this record trapped or hit a limit.
    Trap(TrapKind),
    /// Its outputs exceeded the per-record output limits.
    OutputLimit,
    /// The producer refused one of its outputs for good (e.g. larger than
    /// `message.max.bytes`, or a partition that does not exist).
    Produce,
    /// It could not be decoded with its schema from the registry, or an
    /// output did not fit its subject's schema.
    Schema,
    /// A state write it made was refused: a key or value over the plugin's
    /// caps, or the partition's state over its cap.
    State,
}

impl FailureKind {
    /// The short name used in logs and in the `weir.error.kind` header.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Error => "error",
            FailureKind::Trap(kind) => kind.as_str(),
            FailureKind::OutputLimit => "output-limit",
            FailureKind::Produce => "produce",
            FailureKind::Schema => "schema",
            FailureKind::State => "state",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// What happened, for the operator.
    pub message: String,
    /// How many plugin calls included the record.
    pub attempts: u32,
    /// The plugin that gave up on it.
    pub plugin: PluginIdentity,
}

impl std::fmt::Display for RecordFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} after {} attempt(s): {}",
            self.kind, self.attempts, self.message
        )
    }
}

/// Exponential backoff between retries of one record: `first`, doubling, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Wait before the first retry.
    pub first: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first retry).
    pub fn delay(self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.first.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        let delays: Vec<u128> = (1..=4).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        assert_eq!(b.delay(200), Duration::from_millis(350));
    }
}
