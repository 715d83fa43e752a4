//! The Weir host library: consume Kafka, run each record through sandboxed
//! WebAssembly plugins, produce their outputs and commit. The modules follow a
//! record's path (see `docs/ARCHITECTURE.md`):
//!
//! `consume` (poll, route, pause) → `partition` (per-partition worker, delivery
//! segments, dead letters) → `process` (retries, isolation, output limits) →
//! `wasm` (sandboxed instances) → `kafka` (produce) → `commit` (stored offsets
//! or transactions).
//!
//! Every stage uses the host's own record types (`record`); the WIT bindings
//! are converted in `wasm` only.
//!
//! Around the path: `run` (start-up, restart, shutdown), `config`, `budget`
//! (bytes in flight), `offsets` (what is committable), `reload` (hot swap),
//! `telemetry` (metrics, health), `trace` (trace context, OTLP), `admin` (the
//! HTTP endpoints), `shutdown` (signals), `panics` (host panics caught per
//! record) and `outbound` (plugins' HTTP requests, behind an allow-list).

pub mod admin;
pub mod budget;
pub mod commit;
pub mod config;
pub mod consume;
pub mod kafka;
pub mod letters;
pub mod offsets;
pub mod outbound;
pub mod panics;
pub mod partition;
pub mod process;
pub mod record;
pub mod reload;
pub mod run;
pub mod schema;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod trace;
pub mod wasm;
