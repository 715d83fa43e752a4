//! A real HTTP service on 127.0.0.1 for the outbound-HTTP tests, on a thread
//! of its own. `GET /lookup/K` answers `found-K`; `/flaky/K` answers 503 twice
//! for each K, then `found-K`; `/hang/K` never answers; `/redirect/K`
//! redirects to `/lookup/K` on 127.0.0.2, a host no test allows; `/whoami/K`
//! answers the request's `authorization` header (or `anonymous`). It counts the
//! requests it gets, per path. [`LookupService::start_tls`] serves the same over
//! `https` with a certificate from a CA made for the test.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Requests seen, by path.
type Seen = Arc<Mutex<HashMap<String, usize>>>;

/// The running service.
pub struct LookupService {
    addr: SocketAddr,
    seen: Seen,
}

impl LookupService {
    /// Start the service on a free port of 127.0.0.1.
    pub fn start() -> Self {
        Self::serve(None)
    }

    /// Start the service over `https` with a certificate for `localhost`
    /// signed by a new CA, whose certificate (PEM) is written to `ca_file`.
    pub fn start_tls(ca_file: &std::path::Path) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "weir test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        std::fs::write(ca_file, ca.pem()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        Self::serve(Some(Arc::new(tls)))
    }

    fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let seen: Seen = Arc::default();
        let (ready, addr) = std::sync::mpsc::channel();
        let state = Arc::clone(&seen);
        std::thread::Builder::new()
            .name("lookup-service".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    ready.send(listener.local_addr().unwrap()).unwrap();
                    let app = Router::new()
                        .route("/lookup/{key}", get(lookup))
                        .route("/flaky/{key}", get(flaky))
                        .route("/hang/{key}", get(hang))
                        .route("/redirect/{key}", get(redirect))
                        .route("/whoami/{key}", get(whoami))
                        .with_state(state);
                    match tls {
                        None => axum::serve(listener, app).await.unwrap(),
                        Some(tls) => serve_tls(listener, app, tls).await,
                    }
                });
            })
            .unwrap();
        Self {
            addr: addr.recv().unwrap(),
            seen,
        }
    }

    /// `https://localhost:PORT`: the entry that allows this service over TLS.
    pub fn tls_origin(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// `http://127.0.0.1:PORT`: the entry that allows this service.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen for `path` (e.g. `/flaky/k1`).
    pub fn requests(&self, path: &str) -> usize {
        self.seen().get(path).copied().unwrap_or(0)
    }

    /// Requests seen in all.
    pub fn total(&self) -> usize {
        self.seen().values().sum()
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Accept TLS connections on `listener` and serve `app` on each.
async fn serve_tls(listener: tokio::net::TcpListener, app: Router, tls: Arc<rustls::ServerConfig>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
}

/// Count a request for `path`; returns how many it has seen, this one included.
fn count(seen: &Seen, path: String) -> usize {
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let n = seen.entry(path).or_default();
    *n += 1;
    *n
}

async fn lookup(State(seen): State<Seen>, Path(key): Path<String>) -> String {
    count(&seen, format!("/lookup/{key}"));
    format!("found-{key}")
}

/// The `authorization` header the request came with, or `anonymous`.
async fn whoami(
    State(seen): State<Seen>,
    Path(key): Path<String>,
    headers: axum::http::HeaderMap,
) -> String {
    count(&seen, format!("/whoami/{key}"));
    headers
        .get(header::AUTHORIZATION)
        .map_or("anonymous".into(), |v| {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        })
}

async fn flaky(State(seen): State<Seen>, Path(key): Path<String>) -> Response {
    if count(&seen, format!("/flaky/{key}")) <= 2 {
        return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
    }
    format!("found-{key}").into_response()
}

async fn hang(State(seen): State<Seen>, Path(key): Path<String>) -> String {
    count(&seen, format!("/hang/{key}"));
    std::future::pending::<()>().await;
    unreachable!("a pending future never completes")
}

async fn redirect(State(seen): State<Seen>, Path(key): Path<String>) -> Response {
    count(&seen, format!("/redirect/{key}"));
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("http://127.0.0.2:9/lookup/{key}"))],
    )
        .into_response()
}
