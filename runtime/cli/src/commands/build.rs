//! `weir build`: a plugin project into a `.wasm` component.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `weir build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin project's directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Where to write the component (default: `DIR/NAME.wasm` for Python, cargo's
    /// target directory for Rust).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Build the project and print the component's path.
pub fn execute(args: &BuildArgs) -> ExitCode {
    super::exit_status(
        weir_dev::plugin_build::build(&args.dir, args.output.as_deref()),
        |path| println!("{}", path.display()),
    )
}
