//! Test plugin: upper-cases values like `uppercase`, but first works a
//! configurable time per record, to simulate an expensive processing step.
//!
//! Config: `init_ms` (default 0) milliseconds of busy work in `init`, for a
//! plugin that is slow to start; `delay_us` (default 100) microseconds of busy work per record. It
//! spins on the clock rather than sleeping: a WASI sleep rounds short delays up
//! to about a millisecond, and spinning is what a CPU-heavy plugin does anyway.
//! `wait_us` (default 0) microseconds of *waiting* per record (a WASI sleep,
//! using no CPU), as a plugin waiting on a service does.

use std::time::{Duration, Instant};
use weir_sdk::{Config, Output, ProcessError, Processor, Record};

/// Uppercase with a delay.
pub struct Slow {
    delay: Duration,
    wait: Duration,
}

impl Processor for Slow {
    fn init(config: &Config) -> Result<Self, String> {
        let delay_us = number(config, "delay_us", 100, "microseconds")?;
        let init_ms = number(config, "init_ms", 0, "milliseconds")?;
        let wait_us = number(config, "wait_us", 0, "microseconds")?;
        spin(Duration::from_millis(init_ms));
        Ok(Slow {
            delay: Duration::from_micros(delay_us),
            wait: Duration::from_micros(wait_us),
        })
    }

    fn process(&mut self, mut record: Record) -> Result<Vec<Output>, ProcessError> {
        spin(self.delay);
        if !self.wait.is_zero() {
            std::thread::sleep(self.wait);
        }
        if let Some(value) = record.value.as_mut() {
            value.make_ascii_uppercase();
        }
        Ok(vec![record.into_output()])
    }
}

/// The number `name` of `config` (in `unit`), or `default`.
fn number(config: &Config, name: &str, default: u64, unit: &str) -> Result<u64, String> {
    match config.get(name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("{name} must be a number of {unit}, got `{text}`")),
    }
}

/// Work (spin) for `duration`.
fn spin(duration: Duration) {
    let started = Instant::now();
    while started.elapsed() < duration {
        std::hint::spin_loop();
    }
}

weir_sdk::export!(Slow);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_then_uppercases() {
        let config: Config = [("delay_us", "2000")].into_iter().collect();
        let mut plugin = Slow::init(&config).unwrap();
        let started = std::time::Instant::now();
        let out = plugin
            .process(Record {
                value: Some(b"abc".to_vec()),
                ..Record::default()
            })
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(2));
        assert_eq!(out[0].value.as_deref(), Some(&b"ABC"[..]));
        assert!(Slow::init(&[("delay_us", "x")].into_iter().collect()).is_err());
    }
}
