//! Readiness of a pipeline, for `/readyz`: its plugins are loaded, its consumer
//! has joined the group (and got its assignment, possibly empty), and a broker
//! is reachable. The consumer's callbacks flip the flags as things change.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};

/// What `/readyz` checks of one pipeline.
#[derive(Debug)]
pub struct PipelineHealth {
    group: String,
    plugins_loaded: AtomicBool,
    joined: AtomicBool,
    broker_reachable: AtomicBool,
}

/// A pipeline's readiness, as `/readyz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    /// The pipeline's consumer group.
    pub group: String,
    /// Every plugin of its chain is loaded.
    pub plugins_loaded: bool,
    /// The consumer has joined the group and received its assignment.
    pub joined: bool,
    /// librdkafka reports a broker connection up.
    pub broker_reachable: bool,
    /// All of the above.
    pub ready: bool,
}

impl PipelineHealth {
    /// A pipeline that is not ready yet.
    pub fn new(group: &str) -> Self {
        Self {
            group: group.to_string(),
            plugins_loaded: AtomicBool::new(false),
            joined: AtomicBool::new(false),
            broker_reachable: AtomicBool::new(false),
        }
    }

    /// Its plugins are loaded.
    pub fn set_plugins_loaded(&self) {
        self.plugins_loaded.store(true, Ordering::Release);
    }

    /// Its consumer has joined the group (or left it, when stopping).
    pub fn set_joined(&self, joined: bool) {
        self.joined.store(joined, Ordering::Release);
        if joined {
            // An assignment came from the group coordinator: a broker answered.
            self.broker_reachable.store(true, Ordering::Release);
        }
    }

    /// Whether some broker connection is up.
    pub fn set_broker_reachable(&self, reachable: bool) {
        self.broker_reachable.store(reachable, Ordering::Release);
    }

    /// The current readiness.
    pub fn readiness(&self) -> Readiness {
        let plugins_loaded = self.plugins_loaded.load(Ordering::Acquire);
        let joined = self.joined.load(Ordering::Acquire);
        let broker_reachable = self.broker_reachable.load(Ordering::Acquire);
        Readiness {
            group: self.group.clone(),
            plugins_loaded,
            joined,
            broker_reachable,
            ready: plugins_loaded && joined && broker_reachable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_loaded_joined_and_connected() {
        let health = PipelineHealth::new("g");
        assert!(!health.readiness().ready);
        health.set_plugins_loaded();
        assert!(!health.readiness().ready);
        health.set_joined(true);
        assert!(health.readiness().ready);
        health.set_broker_reachable(false);
        assert!(!health.readiness().ready);
        health.set_broker_reachable(true);
        health.set_joined(false);
        assert!(!health.readiness().ready);
    }
}
