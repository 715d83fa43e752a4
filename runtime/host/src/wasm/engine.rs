//! The shared wasmtime engine and the clock that enforces plugin deadlines.

use super::PluginError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Config, Engine};

/// How often the epoch advances; plugin deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A wasmtime engine configured for Weir plugins, with a background thread that
/// advances the epoch so that long-running calls can be interrupted.
pub struct WasmEngine {
    engine: Engine,
    ticker_stop: Arc<AtomicBool>,
}

impl WasmEngine {
    /// Build the engine and start its epoch ticker. `meter_fuel` turns on fuel
    /// accounting (a few percent slower), needed when plugins get a fuel limit.
    pub fn new(meter_fuel: bool) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.consume_fuel(meter_fuel);
        let engine = Engine::new(&config).map_err(|e| PluginError::Runtime(e.to_string()))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (ticking_engine, stop) = (engine.clone(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking_engine.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Runtime(format!("cannot start epoch thread: {e}")))?;
        Ok(Self {
            engine,
            ticker_stop,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Epoch ticks that make up `timeout` (at least one).
    pub fn ticks_for(timeout: Duration) -> u64 {
        (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }
}

impl Drop for WasmEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
