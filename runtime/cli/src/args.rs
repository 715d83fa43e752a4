//! The command line: global flags and the subcommands, whose flags live with
//! each command in `commands/`. Every flag can also come from a `WEIR_*` variable.

use crate::commands::{BuildArgs, DlqArgs, NewArgs, RunArgs, StateArgs, StatusArgs, TestArgs};
use clap::{Parser, Subcommand};

/// Weir: consume Kafka, process records with a sandboxed WebAssembly plugin,
/// produce the results, commit only what is done.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    /// Log filter, e.g. `info` or `weir=debug,librdkafka=warn`.
    #[arg(long, global = true, env = "WEIR_LOG", default_value = "info")]
    pub log: String,
    /// Log line format: `text` for people, `json` (one object per line, with
    /// every field and the enclosing spans' fields) for log pipelines.
    #[arg(long, global = true, env = "WEIR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Weir's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume topics, run the plugin on every record, produce its outputs.
    Run(Box<RunArgs>),
    /// Create a plugin project, ready to build and test.
    New(NewArgs),
    /// Build a plugin project (Rust, Python, JavaScript, C or Go) into a `.wasm` component.
    Build(BuildArgs),
    /// Run a plugin over records from a JSON-lines file, without Kafka; print each
    /// record's outputs or error as a JSON line; exit 1 if any record failed.
    Test(TestArgs),
    /// Show a running `weir run`'s partitions (lag, rate), plugin versions and
    /// dead-letter counts from its admin endpoint, refreshing in place.
    Status(StatusArgs),
    /// Look at a plugin's state, as kept in its changelog topic.
    State(StateArgs),
    /// Look at a dead-letter topic, and write its letters back once the plugin is fixed.
    Dlq(DlqArgs),
}
