//! `weir new`: create a plugin project, ready to build and test.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `weir new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The project's directory, as for `cargo new`: `NAME` or `path/to/NAME`.
    /// Its last component (letters, digits, `_`) names the crate or module.
    pub path: PathBuf,
    /// Its language.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: weir_dev::scaffold::Lang,
    /// The directory a relative PATH is taken from.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The Rust SDK (`sdk/rust` of Weir's sources) a Rust project depends on.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

/// Create the project and print its directory.
pub fn execute(args: NewArgs) -> ExitCode {
    let sdk = args
        .sdk
        .unwrap_or_else(weir_dev::scaffold::default_rust_sdk);
    let created = weir_dev::scaffold::new_project(&args.dir.join(&args.path), args.lang, &sdk);
    super::exit_status(created, |dir| {
        println!("{}", dir.display());
        tracing::info!(dir = %dir.display(), "plugin project created; see its README.md for the next commands");
    })
}
