//! Logging from a plugin into the host's structured log.

/// Log severity, mirroring the host's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something failed.
    Error,
}

/// Write `message` at `level` to the host log (tagged with the plugin's name).
/// Outside WebAssembly, e.g. in native unit tests, it goes to standard error.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::__private::host_log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Log at [`Level::Trace`].
pub fn trace(message: &str) {
    log(Level::Trace, message)
}

/// Log at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Log at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Log at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Log at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message)
}
