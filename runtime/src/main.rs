//! The `weir` binary: parse the command line, set up logging, run, map the
//! outcome to an exit status.

use clap::Parser;
use std::process::ExitCode;
use weir::cli::{Cli, Command, LogFormat};

/// Exit status for configuration mistakes (clap uses the same for bad usage).
const EXIT_CONFIG: u8 = 2;
/// How long leftover background tasks get once `run` has returned.
const RUNTIME_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format);
    match cli.command {
        Command::Run(args) => {
            let config = match args.into_config() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("{e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let Some(runtime) = async_runtime() else {
                return ExitCode::FAILURE;
            };
            let result = runtime.block_on(async {
                let shutdown = weir::shutdown::on_signal();
                weir::runner::run(config, shutdown).await
            });
            // A plugin call stuck past the drain deadline must not keep the process alive.
            runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
            exit_status(result, |()| {})
        }
        Command::Test(args) => test(&args),
        Command::Status(args) => exit_status(
            weir::status::run(&args.admin_addr, args.interval, args.once),
            |()| {},
        ),
        Command::New(args) => {
            let sdk = args.sdk.unwrap_or_else(weir::scaffold::default_rust_sdk);
            let created = weir::scaffold::new_project(&args.dir, &args.name, args.lang, &sdk);
            exit_status(created, |dir| {
                println!("{}", dir.display());
                tracing::info!(dir = %dir.display(), "plugin project created; see its README.md for the next commands");
            })
        }
        Command::Build(args) => exit_status(
            weir::build::build(&args.dir, args.output.as_deref()),
            |path| println!("{}", path.display()),
        ),
    }
}

/// Success after `on_ok`, or the error logged and exit status 1.
fn exit_status<T, E: std::fmt::Display>(result: Result<T, E>, on_ok: impl FnOnce(T)) -> ExitCode {
    match result {
        Ok(value) => {
            on_ok(value);
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `weir test`: results on stdout, the summary and problems on stderr.
fn test(args: &weir::cli::TestArgs) -> ExitCode {
    let plugin = match args.plugin() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(runtime) = async_runtime() else {
        return ExitCode::FAILURE;
    };
    let mut stdout = std::io::stdout().lock();
    let result = runtime.block_on(weir::testrun::run_file(&plugin, &args.input, &mut stdout));
    match result {
        Ok(summary) => {
            tracing::info!(
                records = summary.records,
                failed = summary.failed,
                "test run finished"
            );
            if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// The async runtime, or `None` (logged) if it cannot start.
fn async_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| tracing::error!("cannot start the async runtime: {e}"))
        .ok()
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
