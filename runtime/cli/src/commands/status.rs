//! `weir status`: a running `weir run`'s partitions, plugins and dead letters,
//! from its admin endpoint, refreshing in place.

use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `weir status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The admin endpoint of the `weir run` to watch.
    #[arg(long, env = "WEIR_ADMIN_ADDR", default_value = "127.0.0.1:9898")]
    pub admin_addr: String,
    /// Time between refreshes, e.g. `2s`.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Print one view and exit (rates need two samples: the view is taken
    /// `--interval` apart).
    #[arg(long)]
    pub once: bool,
}

/// Watch the admin endpoint until interrupted (or once).
pub fn execute(args: &StatusArgs) -> ExitCode {
    super::exit_status(
        weir_dev::status::run(&args.admin_addr, args.interval, args.once),
        |()| {},
    )
}
