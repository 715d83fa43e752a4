//! The `weir` binary: parse the command line, set up logging, run the command,
//! map the outcome to an exit status.

mod args;
mod commands;

use args::{Cli, LogFormat};
use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of the system allocator: the data path allocates and
/// frees per record on several threads, where glibc's malloc cost ≈ 20% of a
/// no-op pipeline's CPU (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format);
    commands::execute(cli.command)
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        // One object per line: the event's fields at the top level, the
        // innermost span's fields (e.g. a plugin call's topic/partition/offset)
        // under "span".
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
