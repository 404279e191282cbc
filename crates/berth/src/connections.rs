//! Bounds on what a client can make berth hold open: connections, and how long a connection
//! may sit without sending a request's headers (idle keep-alive included) or without a byte of
//! a request body. A 200 MiB push over a slow link is unaffected: every limit is on silence,
//! never on the length of a transfer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(clap::Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionArgs {
    /// Most client connections open at once; more are closed as they arrive (default: 4096, or
    /// half the open-file limit when that is lower).
    #[arg(long, env = "BERTH_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a connection may take to send a request's headers, and may stay idle between requests.
    #[arg(long, env = "BERTH_HEADER_TIMEOUT_SECONDS")]
    pub header_timeout_seconds: Option<u64>,
    /// Seconds a request body may pause before the request is failed and the connection closed.
    #[arg(long, env = "BERTH_BODY_TIMEOUT_SECONDS")]
    pub body_timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl ConnectionArgs {
    /// Options and environment first, then the config file's keys.
    pub fn or(self, file: ConnectionArgs) -> ConnectionArgs {
        ConnectionArgs {
            max_connections: self.max_connections.or(file.max_connections),
            header_timeout_seconds: self.header_timeout_seconds.or(file.header_timeout_seconds),
            body_timeout_seconds: self.body_timeout_seconds.or(file.body_timeout_seconds),
        }
    }

    pub fn resolve(&self) -> anyhow::Result<ConnectionLimits> {
        let max_connections = self.max_connections.unwrap_or_else(default_max_connections);
        let header = self.header_timeout_seconds.unwrap_or(30);
        let body = self.body_timeout_seconds.unwrap_or(60);
        anyhow::ensure!(max_connections > 0, "--max-connections must be at least 1");
        anyhow::ensure!(header > 0 && body > 0, "--header-timeout-seconds and --body-timeout-seconds must be at least 1");
        Ok(ConnectionLimits { max_connections, header_timeout: Duration::from_secs(header), body_timeout: Duration::from_secs(body) })
    }
}

/// 4096, or half the soft open-file limit when that is lower: the other half stays for blob
/// files, the database and the listener, so a flood of sockets cannot starve `/health`.
fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse::<usize>().ok()
    });
    soft.map(|n| (n / 2).clamp(16, 4096)).unwrap_or(4096)
}

/// An acceptor that admits at most `limit` connections at once; one more is closed at once
/// (never queued, so a flood cannot stall the clients already served).
#[derive(Clone)]
pub struct LimitedAcceptor<A> {
    inner: A,
    permits: Arc<Semaphore>,
}

impl<A> LimitedAcceptor<A> {
    pub fn new(inner: A, limit: usize) -> Self {
        LimitedAcceptor { inner, permits: Arc::new(Semaphore::new(limit)) }
    }
}

impl<A, I, S> Accept<I, S> for LimitedAcceptor<A>
where
    A: Accept<I, S> + Clone + Send + Sync + 'static,
    A::Future: Send,
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = Counted<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let permit = self.permits.clone().try_acquire_owned();
        let inner = self.inner.clone();
        Box::pin(async move {
            let Ok(permit) = permit else {
                tracing::warn!("connection limit reached: closing a new connection");
                return Err(io::Error::other("connection limit reached"));
            };
            let (stream, service) = inner.accept(stream, service).await?;
            Ok((Counted { inner: stream, _permit: permit }, service))
        })
    }
}

/// A connection that holds its place under the limit until it is dropped.
pub struct Counted<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
