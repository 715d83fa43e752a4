//! Sending a plugin's allowed HTTP requests: one client per plugin that keeps
//! connections alive and reuses them (wasmtime-wasi-http's default sender
//! opens one per request: a TCP connect, and for `https` a TLS handshake, per
//! record), TLS through rustls with the Mozilla roots plus the operator's CA
//! file if any, and the timeouts each request was given.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::{Error, WasiBody};

/// How long an idle kept-alive connection is kept.
const IDLE_CONNECTION: Duration = Duration::from_secs(30);

/// Why a plugin's HTTP client cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// The CA file cannot be read or holds no usable certificate.
    #[error("CA file {path}: {reason}; give a PEM file of CA certificates")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// A plugin's HTTP client (shared by its instances and versions).
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector>, WasiBody>,
}

impl Sender {
    /// A client that connects within `connect_timeout`, keeps up to
    /// `max_idle` idle connections per host, and trusts the Mozilla roots
    /// plus the certificates in `ca_file`.
    pub fn new(
        connect_timeout: Duration,
        max_idle: usize,
        ca_file: Option<&Path>,
    ) -> Result<Arc<Self>, SenderError> {
        let connector = https_connector(connect_timeout, ca_file)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_CONNECTION)
            .pool_max_idle_per_host(max_idle)
            .build(connector);
        Ok(Arc::new(Self { client }))
    }

    /// Send `request` and wait for its response's headers within
    /// `first_byte`; the body fails if it stalls longer than `between_bytes`.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        first_byte: Duration,
        between_bytes: Duration,
    ) -> Result<http::Response<WasiBody>, Error> {
        let response = tokio::time::timeout(first_byte, self.client.request(request))
            .await
            .map_err(|_| Error::HttpResponseTimeout)?
            .map_err(|e| from_client_error(&e))?;
        Ok(response
            .map(|body| Stalling::new(body.map_err(Error::Hyper), between_bytes).boxed_unsync()))
    }
}

/// A connector for `http` and `https` (HTTP/1.1) that connects within
/// `connect_timeout` and trusts the Mozilla roots plus the certificates in
/// `ca_file`.
pub fn https_connector(
    connect_timeout: Duration,
    ca_file: Option<&Path>,
) -> Result<HttpsConnector<HttpConnector>, SenderError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let refused = |reason: String| SenderError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| refused(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| refused(e.to_string()))?;
        if certificates.is_empty() {
            return Err(refused("it holds no certificate".into()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| refused(e.to_string()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp))
}

/// The `wasi:http` error code for a failed request.
fn from_client_error(error: &hyper_util::client::legacy::Error) -> Error {
    tracing::debug!(target: "weir::plugin", ?error, "outbound HTTP request failed in the client");
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<rustls::Error>() {
            return Error::TlsCertificateError;
        }
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => match io.kind() {
                std::io::ErrorKind::TimedOut => return Error::ConnectionTimeout,
                std::io::ErrorKind::ConnectionRefused => return Error::ConnectionRefused,
                // An I/O error's `source` skips the error it wraps.
                _ => io
                    .get_ref()
                    .map(|inner| inner as &(dyn std::error::Error + 'static)),
            },
            None => current.source(),
        };
    }
    if error.is_connect() {
        Error::DestinationUnavailable
    } else {
        Error::HttpProtocolError
    }
}

/// A response body that fails with `ConnectionReadTimeout` when no frame
/// arrives within `between` of the last.
struct Stalling<B> {
    body: B,
    between: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> Stalling<B> {
    fn new(body: B, between: Duration) -> Self {
        Self {
            body,
            between,
            deadline: None,
        }
    }
}

impl<B: Body<Data = Bytes, Error = Error> + Unpin> Body for Stalling<B> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let between = this.between;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(between)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service that sends headers and then nothing holds no request past
    /// the between-bytes timeout.
    #[tokio::test]
    async fn a_body_that_stalls_fails_after_the_between_bytes_timeout() {
        let silent = http_body_util::StreamBody::new(futures::stream::pending::<
            Result<Frame<Bytes>, Error>,
        >());
        let read = Stalling::new(silent, Duration::from_millis(20))
            .collect()
            .await;
        assert!(matches!(read, Err(Error::ConnectionReadTimeout)));
    }
}
