//! One module per subcommand: its flags and what it does.

mod build;
mod dlq;
mod new;
mod run;
mod schema_flags;
mod state;
mod status;
mod test;

pub use build::BuildArgs;
pub use dlq::DlqArgs;
pub use new::NewArgs;
pub use run::RunArgs;
pub use state::StateArgs;
pub use status::StatusArgs;
pub use test::TestArgs;

use std::process::ExitCode;

/// Exit status for configuration mistakes (clap uses the same for bad usage).
const EXIT_CONFIG: u8 = 2;

/// Run the command.
pub fn execute(command: crate::args::Command) -> ExitCode {
    use crate::args::Command;
    match command {
        Command::Run(args) => run::execute(*args),
        Command::Test(args) => test::execute(&args),
        Command::Status(args) => status::execute(&args),
        Command::New(args) => new::execute(args),
        Command::Build(args) => build::execute(&args),
        Command::State(args) => state::execute(&args),
        Command::Dlq(args) => dlq::execute(&args),
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

/// The async runtime, or `None` (logged) if it cannot start.
fn async_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| tracing::error!("cannot start the async runtime: {e}"))
        .ok()
}
