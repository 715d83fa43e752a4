//! What can be wrong with a configuration, said so that the user can fix it.

use std::path::PathBuf;

/// A configuration problem the user has to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for Weir.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, with line and column.
        message: String,
    },
    /// A required setting is absent.
    #[error("missing {what}: pass {flag} (or set {env}, or `{key}` in the config file)")]
    Missing {
        /// What is missing.
        what: &'static str,
        /// The flag that sets it.
        flag: &'static str,
        /// The environment variable that sets it.
        env: &'static str,
        /// The config file key that sets it.
        key: &'static str,
    },
    /// A setting has a value outside its range.
    #[error("invalid {key}: {reason}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// Why the value is refused.
        reason: String,
    },
    /// A `key=value` argument lacks the `=`.
    #[error("invalid {flag} argument `{arg}`: expected KEY=VALUE")]
    KeyValue {
        /// The flag.
        flag: &'static str,
        /// What was given.
        arg: String,
    },
}
