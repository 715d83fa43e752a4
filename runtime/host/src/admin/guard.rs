//! What keeps an admin listener's peers from tying it up: a cap on open
//! connections (further ones wait in the kernel's backlog), a lifetime for each
//! connection (a slow or idle peer is cut off, whatever it sends), and a
//! deadline for each request.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Most connections a listener keeps open at once.
pub const MAX_CONNECTIONS: usize = 64;

/// A TCP listener that keeps at most [`MAX_CONNECTIONS`] open and closes each
/// after `lifetime`.
pub struct GuardedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    lifetime: Duration,
}

impl GuardedListener {
    /// Guard `inner`; each connection lives at most `lifetime`.
    pub fn new(inner: TcpListener, lifetime: Duration) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            lifetime,
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let stream = GuardedStream::new(stream, permit, self.lifetime);
                    return (stream, addr);
                }
                Err(e) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    tracing::debug!(error = %e, "admin endpoint cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that fails every read and write once its lifetime is over,
/// and gives its slot back when dropped.
pub struct GuardedStream {
    inner: TcpStream,
    _slot: OwnedSemaphorePermit,
    expires: Pin<Box<Sleep>>,
}

impl GuardedStream {
    fn new(inner: TcpStream, slot: OwnedSemaphorePermit, lifetime: Duration) -> Self {
        Self {
            inner,
            _slot: slot,
            expires: Box::pin(tokio::time::sleep(lifetime)),
        }
    }

    fn check(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        match self.expires.as_mut().poll(cx) {
            Poll::Ready(()) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "admin connection lifetime is over",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Answer 503 to a request not answered within `limit`.
pub async fn deadline(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "error": "the request took too long" })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_its_lifetime() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut listener = GuardedListener::new(inner, Duration::from_millis(200));
        let addr = listener.local_addr().unwrap();
        let _peer = TcpStream::connect(addr).await.unwrap();
        let (mut served, _) = listener.accept().await;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), served.read(&mut byte)).await;
        let error = read.expect("the read ended").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_slot() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut listener = GuardedListener::new(inner, Duration::from_secs(60));
        let addr = listener.local_addr().unwrap();
        let mut peers = Vec::new();
        let mut served = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            peers.push(TcpStream::connect(addr).await.unwrap());
            served.push(listener.accept().await.0);
        }
        peers.push(TcpStream::connect(addr).await.unwrap());
        let over = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(over.is_err(), "a connection beyond the cap was accepted");
        served.pop();
        let freed = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        assert!(freed.is_ok(), "a freed slot was not reused");
    }
}
