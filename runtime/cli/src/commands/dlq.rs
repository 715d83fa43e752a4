//! `weir dlq show` and `weir dlq replay`: look at a dead-letter topic, and
//! write its letters back once the plugin is fixed.

use clap::{Args, Subcommand};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weir_dev::dlq::{self, Filter, Source};
use weir_host::config::parse_key_value;

/// Flags of `weir dlq`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// What to do with the dead letters.
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// `weir dlq` subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Print the latest letters of a dead-letter topic: place, failure kind,
    /// source record, key and value previews, message.
    Show(ShowArgs),
    /// Write letters back to the topics they came from (their
    /// `weir.source.topic` and partition, or `--to`), without the `weir.error.*`
    /// headers and with `weir.replay.count` one higher, as a committed
    /// consumer group: run the same command again to resume.
    Replay(ReplayArgs),
}

/// The dead-letter topic and which of its letters.
#[derive(Debug, Args)]
pub struct LetterArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "WEIR_BROKERS")]
    pub brokers: String,
    /// The dead-letter topic, e.g. `orders.dlq`.
    #[arg(long)]
    pub topic: String,
    /// Only letters of this failure kind (`error`, `trap`, `timeout`, `oom`,
    /// `fuel`, `contract`, `output-limit`, `produce`, `schema`, `state`); repeatable.
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Only letters that failed since then: a duration back from now (`2h`,
    /// `30m`) or an RFC 3339 time (`2026-12-03T09:00:00Z`).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<i64>,
    /// Only letters at or after this offset of their dead-letter partition.
    #[arg(long)]
    pub from_offset: Option<i64>,
    /// Only letters at or before this offset of their dead-letter partition.
    #[arg(long)]
    pub until_offset: Option<i64>,
    /// A librdkafka property `KEY=VALUE` (security settings); repeatable.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub librdkafka: Vec<String>,
}

/// Flags of `weir dlq show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    letters: LetterArgs,
    /// Look at the last this many letters of each partition.
    #[arg(long, default_value_t = 20, conflicts_with = "all")]
    pub last: i64,
    /// Look at every letter.
    #[arg(long)]
    pub all: bool,
    /// One JSON object per letter, with every header.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `weir dlq replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    letters: LetterArgs,
    /// Write every letter to this topic instead of the one it came from.
    #[arg(long)]
    pub to: Option<String>,
    /// The consumer group that remembers what was replayed (default
    /// `weir-dlq-replay.<topic>`). Letters a filter passes over count as
    /// dealt with for the group: give another group for another pass.
    #[arg(long)]
    pub group: Option<String>,
    /// Refuse (log and pass over) letters already replayed this many times,
    /// so a record that keeps failing does not loop.
    #[arg(long, default_value_t = 3)]
    pub max_replays: u32,
    /// Write back at most this many letters per second.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// List what would be written back; write and commit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--since`: a duration back from now, or an RFC 3339 time; in ms since the epoch.
fn parse_since(text: &str) -> Result<i64, String> {
    let at = match humantime::parse_duration(text) {
        Ok(back) => SystemTime::now()
            .checked_sub(back)
            .ok_or("that is before 1970")?,
        Err(_) => humantime::parse_rfc3339_weak(text)
            .map_err(|_| format!("`{text}` is neither a duration (2h) nor an RFC 3339 time"))?,
    };
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    i64::try_from(ms).map_err(|_| "too far in the future".to_string())
}

impl LetterArgs {
    fn filter(&self) -> Filter {
        Filter {
            kinds: self.kinds.clone(),
            since_ms: self.since,
            from_offset: self.from_offset,
            until_offset: self.until_offset,
        }
    }

    fn librdkafka(&self) -> Result<Vec<(String, String)>, ExitCode> {
        self.librdkafka
            .iter()
            .map(|kv| parse_key_value("-X", kv))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                tracing::error!("{e}");
                ExitCode::from(super::EXIT_CONFIG)
            })
    }
}

/// Run `weir dlq ...`: exit 0 when done, 1 if Kafka failed or a replay was
/// interrupted, 2 for bad flags.
pub fn execute(args: &DlqArgs) -> ExitCode {
    match &args.command {
        DlqCommand::Show(show) => execute_show(show),
        DlqCommand::Replay(replay) => execute_replay(replay),
    }
}

fn execute_show(args: &ShowArgs) -> ExitCode {
    let letters = &args.letters;
    let librdkafka = match letters.librdkafka() {
        Ok(pairs) => pairs,
        Err(code) => return code,
    };
    let filter = letters.filter();
    let request = dlq::ShowRequest {
        source: Source {
            brokers: &letters.brokers,
            librdkafka: &librdkafka,
            topic: &letters.topic,
        },
        last: (!args.all).then_some(args.last),
        filter: &filter,
        json: args.json,
    };
    let mut stdout = std::io::stdout().lock();
    super::exit_status(dlq::show(&request, &mut stdout), |shown| {
        tracing::info!(shown, "letters shown")
    })
}

fn execute_replay(args: &ReplayArgs) -> ExitCode {
    let letters = &args.letters;
    let librdkafka = match letters.librdkafka() {
        Ok(pairs) => pairs,
        Err(code) => return code,
    };
    let Some(runtime) = super::async_runtime() else {
        return ExitCode::FAILURE;
    };
    let filter = letters.filter();
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("weir-dlq-replay.{}", letters.topic));
    let mut stdout = std::io::stdout().lock();
    let result = runtime.block_on(async {
        let stop = weir_host::shutdown::on_signal();
        let request = dlq::ReplayRequest {
            source: Source {
                brokers: &letters.brokers,
                librdkafka: &librdkafka,
                topic: &letters.topic,
            },
            group: &group,
            filter: &filter,
            to: args.to.as_deref(),
            max_replays: args.max_replays,
            rate: args.rate,
            dry_run: args.dry_run,
            stop: &stop,
        };
        dlq::replay(&request, &mut stdout).await
    });
    match result {
        Ok(summary) if summary.interrupted => {
            tracing::warn!(replayed = summary.replayed, passed_over = summary.passed_over,
                refused = summary.refused, group = %group,
                "replay interrupted; what was written back is committed: run the same command to resume");
            ExitCode::FAILURE
        }
        Ok(summary) => {
            tracing::info!(replayed = summary.replayed, passed_over = summary.passed_over,
                refused = summary.refused, dry_run = args.dry_run, group = %group, "replay done");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
