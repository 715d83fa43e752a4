//! A plugin's stdout and stderr: WASI output streams that turn what the guest
//! prints into host log lines tagged with the plugin name, one per line. Each line
//! is cut at a bound and each call may log a bounded number of lines (the rest
//! are counted in a metric and reported once), so a misbehaving plugin can flood
//! neither the log nor the host's memory. The same per-call budget bounds the
//! host `log` import.

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line (in bytes) passed on to the host log; the rest of the line is cut.
pub const MAX_LINE_BYTES: usize = 4096;
/// Most lines per stream one plugin call may log; the rest are counted.
pub const MAX_LINES_PER_CALL: usize = 1000;

/// How many lines one plugin call may still log to one stream.
pub struct CallBudget {
    plugin: Arc<str>,
    stream: &'static str,
    lines: usize,
    suppressed: usize,
    dropped: Counter,
}

impl CallBudget {
    /// A budget for `stream` of `plugin`; dropped lines count in `dropped`.
    pub fn new(plugin: Arc<str>, stream: &'static str, dropped: Counter) -> Self {
        Self {
            plugin,
            stream,
            lines: 0,
            suppressed: 0,
            dropped,
        }
    }

    /// Whether one more line may be logged in this call; counts it if not.
    pub fn take(&mut self) -> bool {
        if self.lines >= MAX_LINES_PER_CALL {
            self.suppressed += 1;
            self.dropped.inc();
            return false;
        }
        self.lines += 1;
        true
    }

    /// A new plugin call starts: report what the last one had suppressed and
    /// reset the budget.
    pub fn start_call(&mut self) {
        if self.suppressed > 0 {
            tracing::warn!(target: "weir::plugin", plugin = &*self.plugin,
                stream = self.stream, suppressed = self.suppressed,
                "the plugin's last call logged more than {MAX_LINES_PER_CALL} lines; the rest were dropped");
        }
        self.lines = 0;
        self.suppressed = 0;
    }
}

/// Which of the guest's output streams this is; decides the log level.
#[derive(Debug, Clone, Copy)]
pub enum GuestStream {
    /// stdout, logged at INFO.
    Stdout,
    /// stderr (where Rust panics print), logged at WARN.
    Stderr,
}

/// One guest output stream, shared by every handle the guest opens to it.
#[derive(Clone)]
pub struct GuestOutput {
    line: Arc<Mutex<LineBuffer>>,
}

struct LineBuffer {
    plugin: Arc<str>,
    stream: GuestStream,
    pending: Vec<u8>,
    /// Bytes of the current line dropped because it exceeded the bound.
    cut: usize,
    /// Lines the current call may still log.
    budget: CallBudget,
}

impl GuestOutput {
    /// Capture `stream` of `plugin`; lines dropped over the per-call budget
    /// count in `dropped`.
    pub fn new(plugin: Arc<str>, stream: GuestStream, dropped: Counter) -> Self {
        Self {
            line: Arc::new(Mutex::new(LineBuffer {
                budget: CallBudget::new(plugin.clone(), stream.name(), dropped),
                plugin,
                stream,
                pending: Vec::new(),
                cut: 0,
            })),
        }
    }

    /// A new plugin call starts: report what the last one had suppressed and
    /// reset the line budget.
    pub fn start_call(&self) {
        self.buffer().budget.start_call();
    }

    fn write_bytes(&self, bytes: &[u8]) {
        self.buffer().push(bytes);
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, LineBuffer> {
        // Logging cannot leave the buffer inconsistent if it panicked.
        self.line.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.emit();
        }
    }
}

impl LineBuffer {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            self.append(&bytes[..newline]);
            self.emit();
            bytes = &bytes[newline + 1..];
        }
        self.append(bytes);
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES - self.pending.len();
        let taken = bytes.len().min(room);
        self.pending.extend_from_slice(&bytes[..taken]);
        self.cut += bytes.len() - taken;
    }

    fn emit(&mut self) {
        if self.pending.is_empty() && self.cut == 0 {
            return;
        }
        if !self.budget.take() {
            self.pending.clear();
            self.cut = 0;
            return;
        }
        let text = String::from_utf8_lossy(&self.pending);
        let line = text.trim_end_matches('\r');
        let plugin = &*self.plugin;
        let cut = self.cut;
        match self.stream {
            GuestStream::Stdout => {
                tracing::info!(target: "weir::plugin", plugin, stream = "stdout", cut, "{line}")
            }
            GuestStream::Stderr => {
                tracing::warn!(target: "weir::plugin", plugin, stream = "stderr", cut, "{line}")
            }
        }
        self.pending.clear();
        self.cut = 0;
    }
}

impl GuestStream {
    /// The stream's name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            GuestStream::Stdout => "stdout",
            GuestStream::Stderr => "stderr",
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer() -> LineBuffer {
        LineBuffer {
            plugin: Arc::from("p"),
            stream: GuestStream::Stdout,
            pending: Vec::new(),
            cut: 0,
            budget: CallBudget::new(Arc::from("p"), "stdout", Counter::default()),
        }
    }

    #[test]
    fn lines_are_split_and_bounded() {
        let mut line = buffer();
        line.push(b"first\nsec");
        assert!(line.pending == b"sec");
        line.push(&vec![b'x'; MAX_LINE_BYTES * 2]);
        assert_eq!(line.pending.len(), MAX_LINE_BYTES);
        assert_eq!(line.cut, MAX_LINE_BYTES + 3);
        line.push(b"\n");
        assert!(line.pending.is_empty());
        assert_eq!(line.cut, 0);
    }

    #[test]
    fn a_call_logs_a_bounded_number_of_lines() {
        let mut line = buffer();
        line.push("x\n".repeat(MAX_LINES_PER_CALL + 5).as_bytes());
        assert_eq!(line.budget.lines, MAX_LINES_PER_CALL);
        assert_eq!(line.budget.suppressed, 5);
        assert_eq!(line.budget.dropped.get(), 5);
    }
}
