//! Weir: a Kafka consumer host that runs record processing as sandboxed
//! WebAssembly components. See `docs/ARCHITECTURE.md` for the data path.

pub mod admin;
pub mod build;
pub mod cli;
pub mod commit;
pub mod config;
pub mod failure;
pub mod flow;
pub mod health;
pub mod kafka;
pub mod metrics;
pub mod offsets;
pub mod otlp;
pub mod pipeline;
pub mod reload;
pub mod resolve;
pub mod router;
pub mod runner;
pub mod scaffold;
pub mod shutdown;
pub mod status;
pub mod testrun;
pub mod trace_context;
pub mod wasm;
pub mod watch;
