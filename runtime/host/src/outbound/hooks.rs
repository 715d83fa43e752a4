//! The host side of a plugin's outbound HTTP (`wasi:http/outgoing-handler`):
//! each request is checked against the plugin's allow-list (a request to a
//! host not listed fails with `HttpRequestDenied`, is logged and counted), its
//! timeouts are clamped to the operator's, the requests in flight per plugin
//! are bounded, and the response body is capped. Redirects are not followed
//! here: a guest that follows one sends a new request, checked like any other.

use super::sender::{Sender, SenderError};
use super::{AllowList, OutboundSettings};
use crate::telemetry::HttpMetrics;
use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use prometheus_client::metrics::gauge::Gauge;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{
    Error, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks,
    DEFAULT_FORBIDDEN_HEADERS,
};

/// A plugin's outbound HTTP policy, shared by all its instances.
pub struct Outbound {
    plugin: Arc<str>,
    allow: AllowList,
    settings: OutboundSettings,
    permits: Arc<Semaphore>,
    /// Requests denied so far, to bound how many are logged.
    denials: AtomicU64,
    sender: Arc<Sender>,
    metrics: HttpMetrics,
    /// Headers the plugin may not set: wasmtime's hop-by-hop list and the
    /// operator's.
    forbidden: ForbiddenHeaderFilter,
}

impl Outbound {
    /// The policy of plugin `plugin`: who it may reach and within which limits.
    pub fn new(
        plugin: Arc<str>,
        allow: AllowList,
        settings: OutboundSettings,
        metrics: HttpMetrics,
    ) -> Result<Arc<Self>, SenderError> {
        let sender = Sender::new(
            settings.connect_timeout,
            settings.max_concurrent_requests,
            settings.ca_file.as_deref(),
        )?;
        let operators = settings.forbidden_headers.clone();
        let forbidden: ForbiddenHeaderFilter = Arc::new(move |name| {
            DEFAULT_FORBIDDEN_HEADERS.contains(name) || operators.contains(name)
        });
        Ok(Arc::new(Self {
            forbidden,
            plugin,
            allow,
            permits: Arc::new(Semaphore::new(settings.max_concurrent_requests)),
            denials: AtomicU64::new(0),
            sender,
            settings,
            metrics,
        }))
    }

    /// Hooks for one instance's store.
    pub fn hooks(self: &Arc<Self>) -> OutboundHooks {
        OutboundHooks(Arc::clone(self))
    }

    /// The guest's timeouts, each at most the operator's.
    fn clamp(&self, asked: Option<RequestOptions>) -> RequestOptions {
        let asked = asked.unwrap_or_default();
        let at_most =
            |asked: Option<Duration>, limit: Duration| Some(asked.map_or(limit, |d| d.min(limit)));
        RequestOptions {
            connect_timeout: at_most(asked.connect_timeout, self.settings.connect_timeout),
            first_byte_timeout: at_most(asked.first_byte_timeout, self.settings.first_byte_timeout),
            between_bytes_timeout: at_most(
                asked.between_bytes_timeout,
                self.settings.between_bytes_timeout,
            ),
        }
    }
}

/// The `wasi:http` hooks of one plugin instance.
pub struct OutboundHooks(Arc<Outbound>);

/// What `send_request` returns: the response and the future that drives the
/// connection until the body is read.
type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for OutboundHooks {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::clone(&self.0.forbidden)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _guest_body_done: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let outbound = Arc::clone(&self.0);
        Box::new(async move {
            let url = without_query(request.uri());
            let Some(entry) = outbound
                .allow
                .permitting(request.uri())
                .map(ToString::to_string)
            else {
                outbound.metrics.denied.inc();
                // A plugin can ask without end: log the 1st, 2nd, 4th, 8th... denial.
                let denials = outbound.denials.fetch_add(1, Ordering::Relaxed) + 1;
                if denials.is_power_of_two() {
                    tracing::warn!(target: "weir::plugin", plugin = &*outbound.plugin, %url, denials,
                        "outbound HTTP request denied: the host is not in the plugin's allowed_outbound_hosts");
                }
                return Err(Error::HttpRequestDenied);
            };
            let permit = Arc::clone(&outbound.permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let options = outbound.clamp(options);
            let slot = Slot::take(permit, outbound.metrics.in_flight.clone());
            let started = Instant::now();
            // The connector applies the operator's connect timeout; the first
            // byte must come within the request's own, which includes connecting.
            let first_byte = options.first_byte_timeout.unwrap_or_default()
                + options.connect_timeout.unwrap_or_default();
            let between = options.between_bytes_timeout.unwrap_or_default();
            let sent = outbound.sender.send(request, first_byte, between).await;
            outbound
                .metrics
                .duration
                .observe(started.elapsed().as_secs_f64());
            let response = match sent {
                Ok(response) => response,
                Err(error) => {
                    outbound.metrics.requests(&entry, "error").inc();
                    tracing::debug!(target: "weir::plugin", plugin = &*outbound.plugin, %url, %error,
                        "outbound HTTP request failed");
                    return Err(error);
                }
            };
            outbound
                .metrics
                .requests(&entry, response.status().as_str())
                .inc();
            let max = outbound.settings.max_response_bytes;
            // The request holds its slot until its body is read or dropped:
            // the closure owns it.
            let response = response.map(|body| {
                capped(body, max)
                    .map_frame(move |frame| {
                        let _held = &slot;
                        frame
                    })
                    .boxed_unsync()
            });
            // The pooled client drives its connections itself.
            let connection = async { Ok(()) };
            Ok((
                response,
                Box::new(connection) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// One of the plugin's `max_concurrent_requests` slots, counted in flight
/// while held.
struct Slot {
    _permit: OwnedSemaphorePermit,
    in_flight: Gauge,
}

impl Slot {
    fn take(permit: OwnedSemaphorePermit, in_flight: Gauge) -> Self {
        in_flight.inc();
        Self {
            _permit: permit,
            in_flight,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

/// `body`, failing with `HttpResponseBodySize` past `max` bytes.
fn capped(body: impl Body<Data = Bytes, Error = Error> + Send + 'static, max: u64) -> WasiBody {
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    http_body_util::Limited::new(body, limit)
        .map_err(move |e| match e.downcast::<Error>() {
            Ok(inner) => *inner,
            Err(_) => Error::HttpResponseBodySize(Some(max)),
        })
        .boxed_unsync()
}

/// The URL without its query (where tokens often travel), for logs.
fn without_query(uri: &http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("?"),
        uri.authority().map_or("?", |a| a.as_str()),
        uri.path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    /// A hostile service's long body fails at the cap instead of filling memory.
    #[tokio::test]
    async fn a_body_past_the_cap_fails_with_its_size() {
        let body = Full::new(Bytes::from(vec![b'x'; 10])).map_err(|never| match never {});
        let read = capped(body, 4).collect().await;
        assert!(matches!(read, Err(Error::HttpResponseBodySize(Some(4)))));
        let body = Full::new(Bytes::from(vec![b'x'; 4])).map_err(|never| match never {});
        assert_eq!(capped(body, 4).collect().await.unwrap().to_bytes().len(), 4);
    }
}
