//! Distributed tracing through the plugin: W3C trace context on outputs, and
//! optional span export over OTLP.

mod context;
mod otlp;

pub use context::{Tracing, TRACEPARENT, TRACESTATE};
pub use otlp::{OtlpError, RecordSpan, SpanExport};
