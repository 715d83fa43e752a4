//! Outbound HTTP from a plugin, over `wasi:http`.
//!
//! The host sends a request only if the operator allowed its host
//! (`allowed_outbound_hosts`); anything else fails with [`HttpError::Denied`].
//! The plugin call's deadline covers the time spent waiting, so a slow service
//! cannot hold a partition past it.
//!
//! ```no_run
//! use weir_sdk::http;
//! # fn lookup(key: &str) -> Result<String, weir_sdk::ProcessError> {
//! let response = http::get(&format!("http://127.0.0.1:8080/lookup/{key}"))?;
//! Ok(response.text()?.to_string())
//! # }
//! ```
//!
//! [`send`] follows redirects itself, so the host checks every hop against the
//! allow-list. Errors convert into [`ProcessError`]: timeouts, connection
//! failures and 5xx / 429 answers are retryable, the rest are not.
//!
//! Natively (unit tests) there is no host: [`send_with`] takes any
//! [`Transport`], e.g. a fake one.

use crate::ProcessError;
use std::time::Duration;

/// Most redirects [`send`] follows before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// An HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (empty for none).
    pub body: Vec<u8>,
    /// Longest wait for the response's first byte (the host may cap it lower).
    pub timeout: Option<Duration>,
}

impl Request {
    /// A `GET` of `url`.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url, Vec::new())
    }

    /// A `POST` of `body` to `url`.
    pub fn post(url: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", url, body.into())
    }

    /// A request with any method.
    pub fn new(method: &str, url: &str, body: Vec<u8>) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
            headers: Vec::new(),
            body,
            timeout: None,
        }
    }

    /// The request with a header added.
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The request with a first-byte timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// An HTTP response, its body read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
    /// The URL that answered (after redirects).
    pub url: String,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(&self.body).map_err(|_| HttpError::Failed {
            url: self.url.clone(),
            reason: "the response body is not UTF-8".into(),
        })
    }

    /// The response if its status is 2xx, else [`HttpError::Status`].
    pub fn error_for_status(self) -> Result<Self, HttpError> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(HttpError::Status {
                url: self.url,
                status: self.status,
            })
        }
    }
}

/// Why a request did not get a response the plugin can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused it: the operator did not allow this host.
    Denied {
        /// The URL asked for.
        url: String,
    },
    /// No answer in time (connect, first byte or between bytes).
    Timeout {
        /// The URL asked for.
        url: String,
    },
    /// The service answered with a status that is not 2xx ([`get`] only).
    Status {
        /// The URL that answered.
        url: String,
        /// Its status.
        status: u16,
    },
    /// More than [`MAX_REDIRECTS`] redirects.
    TooManyRedirects {
        /// The URL asked for first.
        url: String,
    },
    /// The URL is not an absolute `http(s)://` URL.
    InvalidUrl {
        /// The URL.
        url: String,
    },
    /// The host or the service refused the request as written, so sending it
    /// again cannot help: a header the operator forbids (`forbidden_headers`,
    /// or a hop-by-hop header), a certificate that is not trusted.
    Refused {
        /// The URL asked for.
        url: String,
        /// What was refused.
        reason: String,
    },
    /// Anything else: DNS, connection refused, a broken response.
    Failed {
        /// The URL asked for.
        url: String,
        /// What happened.
        reason: String,
    },
}

impl HttpError {
    /// Whether trying again later may succeed: timeouts, failed connections,
    /// and 5xx or 429 answers.
    pub fn is_retryable(&self) -> bool {
        match self {
            HttpError::Timeout { .. } | HttpError::Failed { .. } => true,
            HttpError::Status { status, .. } => *status >= 500 || *status == 429,
            HttpError::Denied { .. }
            | HttpError::Refused { .. }
            | HttpError::TooManyRedirects { .. }
            | HttpError::InvalidUrl { .. } => false,
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Denied { url } => write!(f, "HTTP request to {url} denied: the host is not in the plugin's allowed_outbound_hosts"),
            HttpError::Timeout { url } => write!(f, "HTTP request to {url} timed out"),
            HttpError::Status { url, status } => write!(f, "HTTP request to {url} answered {status}"),
            HttpError::TooManyRedirects { url } => {
                write!(f, "HTTP request to {url} redirected more than {MAX_REDIRECTS} times")
            }
            HttpError::InvalidUrl { url } => write!(f, "`{url}` is not an absolute http:// or https:// URL"),
            HttpError::Refused { url, reason } => write!(f, "HTTP request to {url} refused: {reason}"),
            HttpError::Failed { url, reason } => write!(f, "HTTP request to {url} failed: {reason}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for ProcessError {
    fn from(e: HttpError) -> Self {
        if e.is_retryable() {
            ProcessError::retryable(e.to_string())
        } else {
            ProcessError::fatal(e.to_string())
        }
    }
}

/// Sends one request and reads its whole response, following no redirect.
pub trait Transport {
    /// Send `request` once.
    fn send_once(&mut self, request: &Request) -> Result<Response, HttpError>;
}

/// Send `request` through the host, following redirects (each hop is checked
/// by the host). Any status is a response; see [`Response::error_for_status`].
pub fn send(request: Request) -> Result<Response, HttpError> {
    send_with(&mut HostTransport, request)
}

/// `GET` `url` through the host; a status that is not 2xx is an error.
pub fn get(url: &str) -> Result<Response, HttpError> {
    send(Request::get(url))?.error_for_status()
}

/// Send `request` through `transport`, following up to [`MAX_REDIRECTS`]
/// redirects (303, and 301/302 of a `POST`, continue as a `GET` without body).
pub fn send_with(
    transport: &mut impl Transport,
    mut request: Request,
) -> Result<Response, HttpError> {
    let first = request.url.clone();
    for _ in 0..=MAX_REDIRECTS {
        Url::parse(&request.url)?;
        let response = transport.send_once(&request)?;
        let location = match response.status {
            301 | 302 | 303 | 307 | 308 => response.header("location"),
            _ => None,
        };
        let Some(location) = location else {
            return Ok(response);
        };
        let location = String::from_utf8_lossy(location).into_owned();
        let next = Url::parse(&request.url)?.join(&location);
        let becomes_get = response.status == 303
            || (matches!(response.status, 301 | 302) && request.method == "POST");
        if becomes_get {
            request.method = "GET".into();
            request.body.clear();
        }
        request.url = next;
    }
    Err(HttpError::TooManyRedirects { url: first })
}

/// The parts of an absolute URL that `wasi:http` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url<'a> {
    https: bool,
    authority: &'a str,
    /// Path and query, starting with `/`.
    path_and_query: String,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Result<Self, HttpError> {
        let invalid = || HttpError::InvalidUrl {
            url: url.to_string(),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(invalid()),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(split);
        if authority.is_empty() {
            return Err(invalid());
        }
        // `http://h` and `http://h?q` have the path `/`.
        let path_and_query = if path_and_query.starts_with('/') {
            path_and_query.to_string()
        } else {
            format!("/{path_and_query}")
        };
        Ok(Self {
            https,
            authority,
            path_and_query,
        })
    }

    /// `location` (absolute, scheme-relative, absolute-path or relative)
    /// resolved against this URL.
    fn join(&self, location: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        if location.contains("://") {
            location.to_string()
        } else if let Some(rest) = location.strip_prefix("//") {
            format!("{scheme}://{rest}")
        } else if location.starts_with('/') {
            format!("{scheme}://{}{location}", self.authority)
        } else {
            let path = self.path_and_query.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{scheme}://{}{dir}{location}", self.authority)
        }
    }
}

/// Requests through the host's `wasi:http/outgoing-handler`.
struct HostTransport;

#[cfg(not(target_arch = "wasm32"))]
impl Transport for HostTransport {
    fn send_once(&mut self, request: &Request) -> Result<Response, HttpError> {
        Err(HttpError::Failed {
            url: request.url.clone(),
            reason: "no host to send it through outside WebAssembly; test with `send_with` and a fake transport".into(),
        })
    }
}

#[cfg(target_arch = "wasm32")]
impl Transport for HostTransport {
    fn send_once(&mut self, request: &Request) -> Result<Response, HttpError> {
        wasi_transport::send_once(request)
    }
}

#[cfg(target_arch = "wasm32")]
mod wasi_transport {
    //! One request through `wasi:http`, blocking until its body is read.

    use super::{HttpError, Request, Response, Url};
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        ErrorCode, Fields, HeaderError, IncomingBody, Method, OutgoingBody, OutgoingRequest,
        RequestOptions, Scheme,
    };
    use wasip2::io::streams::StreamError;

    /// Bytes written to the request body per call (the stream's limit).
    const WRITE_CHUNK: usize = 4096;
    /// Bytes asked for per read of the response body.
    const READ_CHUNK: u64 = 64 * 1024;

    pub(super) fn send_once(request: &Request) -> Result<Response, HttpError> {
        let url = request.url.clone();
        let failed = |reason: String| HttpError::Failed {
            url: url.clone(),
            reason,
        };
        let parts = Url::parse(&request.url)?;
        let headers = Fields::from_list(&request.headers).map_err(|e| HttpError::Refused {
            url: url.clone(),
            reason: refused_header(&request.headers, e),
        })?;
        let outgoing = OutgoingRequest::new(headers);
        let method = match request.method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        };
        let scheme = if parts.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let refused = |what: &str| failed(format!("the host refused the request's {what}"));
        outgoing
            .set_method(&method)
            .map_err(|()| refused("method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| refused("scheme"))?;
        outgoing
            .set_authority(Some(parts.authority))
            .map_err(|()| refused("host"))?;
        outgoing
            .set_path_with_query(Some(&parts.path_and_query))
            .map_err(|()| refused("path"))?;
        let options = RequestOptions::new();
        if let Some(timeout) = request.timeout {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            let _ = options.set_first_byte_timeout(Some(nanos));
        }
        let body = outgoing.body().map_err(|()| refused("body"))?;
        let pending = outgoing_handler::handle(outgoing, Some(options))
            .map_err(|code| from_code(&url, code))?;
        if !request.body.is_empty() {
            let stream = body.write().map_err(|()| refused("body"))?;
            for chunk in request.body.chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| failed(format!("writing the body: {e:?}")))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|code| from_code(&url, code))?;
        pending.subscribe().block();
        let incoming = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(from_code(&url, code)),
            Some(Err(())) | None => return Err(failed("no response".into())),
        };
        let status = incoming.status();
        let headers = incoming.headers().entries();
        let body = incoming.consume().map_err(|()| failed("no body".into()))?;
        let bytes = read_all(&body, &url)?;
        drop(IncomingBody::finish(body));
        Ok(Response {
            status,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect(),
            body: bytes,
            url: request.url.clone(),
        })
    }

    fn read_all(body: &IncomingBody, url: &str) -> Result<Vec<u8>, HttpError> {
        let stream = body.stream().map_err(|()| HttpError::Failed {
            url: url.to_string(),
            reason: "the body was already read".into(),
        })?;
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => return Ok(bytes),
                Err(StreamError::LastOperationFailed(e)) => {
                    let reason = wasip2::http::types::http_error_code(&e)
                        .map_or_else(|| e.to_debug_string(), |code| format!("{code:?}"));
                    return Err(HttpError::Failed {
                        url: url.to_string(),
                        reason: format!("reading the body: {reason}"),
                    });
                }
            }
        }
    }

    /// Which of `headers` the host refused, and why.
    fn refused_header(headers: &[(String, Vec<u8>)], error: HeaderError) -> String {
        let name = headers
            .iter()
            .find(|header| Fields::from_list(std::slice::from_ref(*header)).is_err())
            .map_or("a header", |(name, _)| name.as_str());
        match error {
            HeaderError::Forbidden => format!(
                "the host forbids the header `{name}` (a hop-by-hop header, or in the operator's forbidden_headers)"
            ),
            other => format!("the header `{name}` is not valid ({other:?})"),
        }
    }

    fn from_code(url: &str, code: ErrorCode) -> HttpError {
        let url = url.to_string();
        match code {
            ErrorCode::HttpRequestDenied => HttpError::Denied { url },
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout
            | ErrorCode::DnsTimeout => HttpError::Timeout { url },
            ErrorCode::TlsCertificateError => HttpError::Refused {
                url,
                reason: "the service's TLS certificate is not trusted (an internal CA goes in the operator's [plugin.http] ca_file)".into(),
            },
            other => HttpError::Failed {
                url,
                reason: format!("{other:?}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers from a script, recording the requests it was sent.
    struct Scripted {
        answers: Vec<Result<Response, HttpError>>,
        sent: Vec<Request>,
    }

    impl Transport for Scripted {
        fn send_once(&mut self, request: &Request) -> Result<Response, HttpError> {
            self.sent.push(request.clone());
            self.answers.remove(0)
        }
    }

    fn answer(status: u16, location: Option<&str>) -> Result<Response, HttpError> {
        Ok(Response {
            status,
            headers: location
                .map(|l| vec![("location".to_string(), l.as_bytes().to_vec())])
                .unwrap_or_default(),
            body: b"ok".to_vec(),
            url: String::new(),
        })
    }

    #[test]
    fn redirects_are_followed_hop_by_hop_through_the_transport() {
        let mut fake = Scripted {
            answers: vec![
                answer(302, Some("/b?x=1")),
                answer(303, Some("https://other.example/c")),
                answer(200, None),
            ],
            sent: Vec::new(),
        };
        let response =
            send_with(&mut fake, Request::post("http://api.example/a/z", "data")).unwrap();
        assert_eq!(response.status, 200);
        let hops: Vec<(&str, &str, usize)> = fake
            .sent
            .iter()
            .map(|r| (r.method.as_str(), r.url.as_str(), r.body.len()))
            .collect();
        assert_eq!(
            hops,
            [
                ("POST", "http://api.example/a/z", 4),
                ("GET", "http://api.example/b?x=1", 0),
                ("GET", "https://other.example/c", 0),
            ]
        );
    }

    #[test]
    fn a_denied_hop_ends_the_request_and_is_not_retryable() {
        let mut fake = Scripted {
            answers: vec![
                answer(307, Some("http://elsewhere.example/")),
                Err(HttpError::Denied {
                    url: "http://elsewhere.example/".into(),
                }),
            ],
            sent: Vec::new(),
        };
        let error = send_with(&mut fake, Request::get("http://api.example/")).unwrap_err();
        assert!(matches!(error, HttpError::Denied { .. }));
        assert!(!ProcessError::from(error).retryable);
    }

    #[test]
    fn endless_redirects_stop() {
        let mut fake = Scripted {
            answers: (0..=MAX_REDIRECTS)
                .map(|_| answer(301, Some("/again")))
                .collect(),
            sent: Vec::new(),
        };
        let error = send_with(&mut fake, Request::get("http://api.example/")).unwrap_err();
        assert!(matches!(error, HttpError::TooManyRedirects { .. }));
    }

    #[test]
    fn retryable_errors_are_timeouts_failures_and_5xx_or_429() {
        let status = |status| HttpError::Status {
            url: String::new(),
            status,
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(HttpError::Timeout { url: String::new() }.is_retryable());
        assert!(!HttpError::InvalidUrl { url: String::new() }.is_retryable());
        let refused = HttpError::Refused {
            url: String::new(),
            reason: String::new(),
        };
        assert!(!refused.is_retryable(), "sending it again cannot help");
    }

    #[test]
    fn urls_split_into_the_parts_wasi_http_takes() {
        let url = Url::parse("https://api.example:8443/v1/x?q=1#frag").unwrap();
        assert_eq!(
            (url.https, url.authority, url.path_and_query.as_str()),
            (true, "api.example:8443", "/v1/x?q=1")
        );
        assert_eq!(Url::parse("http://h").unwrap().path_and_query, "/");
        assert_eq!(Url::parse("http://h?q").unwrap().path_and_query, "/?q");
        assert!(Url::parse("/relative").is_err());
        assert!(Url::parse("ftp://h/").is_err());
        assert_eq!(url.join("y"), "https://api.example:8443/v1/y");
        assert_eq!(url.join("//cdn.example/z"), "https://cdn.example/z");
    }
}
