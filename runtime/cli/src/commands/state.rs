//! `weir state dump`: a plugin's state of one partition, read from its
//! changelog topic, as JSON lines on stdout.

use clap::{Args, Subcommand};
use std::process::ExitCode;
use weir_host::config::parse_key_value;

/// Flags of `weir state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// What to do with the state.
    #[command(subcommand)]
    pub command: StateCommand,
}

/// `weir state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print a plugin's state of one input partition (from its changelog
    /// topic `<group>.<plugin>.state`) as JSON lines, one per key.
    Dump(DumpArgs),
}

/// Flags of `weir state dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "WEIR_BROKERS")]
    pub brokers: String,
    /// The pipeline's consumer group.
    #[arg(long, env = "WEIR_GROUP")]
    pub group: String,
    /// The plugin's name (its file name without `.wasm`, or its configured name).
    #[arg(long)]
    pub plugin: String,
    /// The input partition.
    #[arg(long)]
    pub partition: i32,
    /// Only the state of this input topic (all input topics by default).
    #[arg(long)]
    pub topic: Option<String>,
    /// A librdkafka property `KEY=VALUE` (security settings); repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub librdkafka: Vec<String>,
}

/// Run `weir state ...`: exit 0 after printing, 2 for bad flags, 1 if the
/// changelog cannot be read.
pub fn execute(args: &StateArgs) -> ExitCode {
    let StateCommand::Dump(dump) = &args.command;
    let librdkafka = match dump
        .librdkafka
        .iter()
        .map(|kv| parse_key_value("-X", kv))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(pairs) => pairs,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let request = weir_dev::state_dump::DumpRequest {
        brokers: &dump.brokers,
        librdkafka: &librdkafka,
        group: &dump.group,
        plugin: &dump.plugin,
        partition: dump.partition,
        topic: dump.topic.as_deref(),
    };
    let mut stdout = std::io::stdout().lock();
    super::exit_status(weir_dev::state_dump::dump(&request, &mut stdout), |keys| {
        tracing::info!(keys, "state dumped")
    })
}
