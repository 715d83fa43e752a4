//! Optional span export over OTLP/HTTP (protobuf), on only when an endpoint is
//! configured. Each input record that arrives with a `traceparent` gets one
//! span, "process <topic>", child of that traceparent, from the moment its
//! outputs are handed over until the broker acknowledged them all; its outputs
//! carry it as their parent. Spans are batched and sent from the SDK's own
//! thread, through `ureq`.

use crate::record::Record;
use bytes::Bytes;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// A record's processing span; it ends when dropped.
pub type RecordSpan = opentelemetry_sdk::trace::Span;

/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most finished spans waiting for export.
const MAX_QUEUED_SPANS: usize = 16_384;
/// Longest a finished span waits before its batch is sent.
const EXPORT_DELAY: Duration = Duration::from_secs(1);

/// The span exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up OTLP span export to `{endpoint}`: {reason}; give --otlp-endpoint a full URL such as http://localhost:4318/v1/traces")]
pub struct OtlpError {
    /// The configured endpoint.
    pub endpoint: String,
    /// Why.
    pub reason: String,
}

/// Exports record spans to an OTLP/HTTP endpoint.
pub struct SpanExport {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// The parts of a parent `traceparent` a span continues.
pub struct Parent<'a> {
    /// 32 lowercase hex digits.
    pub trace_id: &'a str,
    /// 16 lowercase hex digits.
    pub span_id: &'a str,
    /// 2 hex digits.
    pub flags: &'a str,
    /// The record's `tracestate`, if any.
    pub state: Option<&'a [u8]>,
}

impl SpanExport {
    /// Export spans to `endpoint` (e.g. `http://localhost:4318/v1/traces`) as
    /// service `weir`.
    pub fn new(endpoint: &str) -> Result<Self, OtlpError> {
        let fail = |reason: String| OtlpError {
            endpoint: endpoint.to_string(),
            reason,
        };
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| fail(format!("not a URL: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(fail("only http:// endpoints are supported".into()));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(EXPORT_TIMEOUT))
            .build()
            .into();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(UreqClient(agent))
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("weir")
            .build();
        // Spans wait in a bounded queue; beyond it they are dropped, never the records.
        let batching = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .with_scheduled_delay(EXPORT_DELAY)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batching)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("weir");
        tracing::info!(endpoint, "exporting record spans over OTLP");
        Ok(Self { provider, tracer })
    }

    /// Start the processing span of `record` (processing began at `started`),
    /// child of `parent`. Returns it with the traceparent its outputs carry
    /// (`None` if `parent` does not parse).
    pub fn start(
        &self,
        record: &Record,
        parent: &Parent<'_>,
        started: SystemTime,
    ) -> Option<(RecordSpan, String)> {
        let state = parent
            .state
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| TraceState::from_str(s).ok())
            .unwrap_or_default();
        let remote = SpanContext::new(
            TraceId::from_hex(parent.trace_id).ok()?,
            SpanId::from_hex(parent.span_id).ok()?,
            TraceFlags::new(u8::from_str_radix(parent.flags, 16).ok()?),
            true,
            state,
        );
        let span = self
            .tracer
            .span_builder(format!("process {}", record.topic))
            .with_kind(SpanKind::Consumer)
            .with_start_time(started)
            .with_attributes([
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.destination.name", record.topic.clone()),
                KeyValue::new(
                    "messaging.destination.partition.id",
                    record.partition.to_string(),
                ),
                KeyValue::new("messaging.kafka.offset", record.offset),
            ])
            .start_with_context(
                &self.tracer,
                &Context::new().with_remote_span_context(remote),
            );
        let own = opentelemetry::trace::Span::span_context(&span);
        let traceparent = format!(
            "00-{}-{}-{:02x}",
            own.trace_id(),
            own.span_id(),
            own.trace_flags().to_u8()
        );
        Some((span, traceparent))
    }

    /// Send the spans still batched and stop the exporter.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "the last OTLP span export failed");
        }
    }
}

/// `opentelemetry-http`'s client interface over `ureq`. The batch span processor
/// calls it from its own thread, so blocking here stalls no async runtime.
#[derive(Debug)]
struct UreqClient(ureq::Agent);

#[async_trait::async_trait]
impl HttpClient for UreqClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut response = self
            .0
            .run(http::Request::from_parts(parts, body.to_vec()))?;
        let status = response.status();
        let body = response.body_mut().read_to_vec()?;
        Ok(http::Response::builder()
            .status(status)
            .body(Bytes::from(body))?)
    }
}
