//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`), closed unless the
//! operator opens it: the allow-list of hosts (`allow_list`), the hooks that
//! enforce it and the limits on every request (`hooks`), and the pooled
//! client that sends what is allowed (`sender`).

mod allow_list;
mod hooks;
mod sender;

pub use allow_list::{AllowList, AllowedHost, AllowedHostError};
pub use hooks::{Outbound, OutboundHooks};
pub use sender::{https_connector, SenderError};

use std::path::PathBuf;
use std::time::Duration;

/// The operator's limits on a plugin's outbound HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSettings {
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the first byte of a response.
    pub first_byte_timeout: Duration,
    /// Longest wait between two bytes of a response.
    pub between_bytes_timeout: Duration,
    /// Most requests of the plugin (all its instances) in flight at once.
    pub max_concurrent_requests: usize,
    /// Most bytes of one response body.
    pub max_response_bytes: u64,
    /// CA certificates (PEM) trusted besides the Mozilla roots, for internal
    /// services.
    pub ca_file: Option<PathBuf>,
    /// Request headers refused besides wasmtime's hop-by-hop list.
    pub forbidden_headers: Vec<http::HeaderName>,
}
