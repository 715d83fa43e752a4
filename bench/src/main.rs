//! `weir-bench`: the measuring tools behind `scripts/bench`. Each subcommand
//! prints one JSON object on stdout (progress goes to stderr):
//!
//! - `produce`: fill a topic with test records of one shape;
//! - `consume`: the ceiling, a raw librdkafka consumer that does nothing with
//!   the records (optionally committing like Weir does);
//! - `pipe`: the cheapest correct Rust consume-produce-store pipe, no sandbox;
//! - `latency`: offer records at a fixed rate and time each output's arrival;
//! - `micro`: in-process plugin-call costs, WASM against native Rust, load times
//!   and the hot-reload swap pause.

mod data;
mod latency;
mod micro;
mod process_stats;
mod raw;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Benchmark tools for Weir (driven by `scripts/bench`).
#[derive(Debug, Parser)]
struct Cli {
    /// Bootstrap brokers.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    brokers: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create `topic` and produce `records` records of `shape` to it.
    Produce {
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        #[arg(long, value_enum)]
        shape: data::Shape,
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
    /// Consume `records` records of `topic` from the start, doing nothing with them.
    Consume {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        records: u64,
        /// Store each offset and let librdkafka commit every `commit_interval_ms`
        /// (and once at the end), as Weir does.
        #[arg(long)]
        commit: bool,
        #[arg(long, default_value_t = 100)]
        commit_interval_ms: u64,
    },
    /// Copy `records` records of `topic` to `output` with the cheapest correct
    /// Rust pipe (no sandbox): the fair ceiling of a pipeline.
    Pipe {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        output: String,
        #[arg(long)]
        records: u64,
        /// The consumer's `fetch.wait.max.ms` (librdkafka's default if unset),
        /// as Weir is given for latency runs.
        #[arg(long)]
        fetch_wait_ms: Option<u64>,
    },
    /// Produce to `input` at `rate` records/s for `seconds`, read `output`, and
    /// report the latency from each record's timestamp to its output's arrival.
    Latency {
        #[arg(long)]
        input: String,
        #[arg(long)]
        output: String,
        #[arg(long)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, value_enum)]
        shape: data::Shape,
        /// Outputs expected per input (e.g. 0.25 for a filter keeping a quarter).
        #[arg(long, default_value_t = 1.0)]
        outputs_per_input: f64,
        /// The load producer's `linger.ms` (5, as clients commonly run; 0
        /// floods the local broker with one request per record).
        #[arg(long, default_value_t = 5)]
        linger_ms: u64,
    },
    /// In-process microbenchmarks of the plugin host (no broker).
    Micro {
        /// The uppercase plugin's component.
        #[arg(long)]
        uppercase: PathBuf,
        /// The json-filter plugin's component.
        #[arg(long)]
        json_filter: PathBuf,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Produce {
            topic,
            records,
            shape,
            partitions,
        } => data::produce(&cli.brokers, &topic, records, shape, partitions)?,
        Command::Consume {
            topic,
            records,
            commit,
            commit_interval_ms,
        } => raw::consume(&cli.brokers, &topic, records, commit, commit_interval_ms)?,
        Command::Pipe {
            topic,
            output,
            records,
            fetch_wait_ms,
        } => raw::pipe(&cli.brokers, &topic, &output, records, fetch_wait_ms)?,
        Command::Latency {
            input,
            output,
            rate,
            seconds,
            shape,
            outputs_per_input,
            linger_ms,
        } => latency::measure(&latency::Load {
            brokers: &cli.brokers,
            input: &input,
            output: &output,
            rate,
            seconds,
            shape,
            outputs_per_input,
            linger_ms,
        })?,
        Command::Micro {
            uppercase,
            json_filter,
            seconds,
        } => micro::run(&uppercase, &json_filter, seconds)?,
    };
    println!("{result}");
    Ok(())
}
