//! Stream adapters for blobs: an idle limit and length + digest verification.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use sha2::{Digest, Sha256};

use crate::error::ClientError;

/// Fails a stream that yields nothing for `limit` (a stalled peer), instead of hanging.
pub(crate) struct IdleTimeout<S> {
    inner: Pin<Box<S>>,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<S> IdleTimeout<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        IdleTimeout { inner: Box::pin(inner), limit, deadline: Box::pin(tokio::time::sleep(limit)) }
    }
}

impl<S: Stream<Item = io::Result<Bytes>>> Stream for IdleTimeout<S> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(item) => {
                let next = tokio::time::Instant::now() + self.limit;
                self.deadline.as_mut().reset(next);
                Poll::Ready(item)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::TimedOut, format!("no data for {:?}", self.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Hashes and counts a blob as it streams; fails at the end if either is wrong.
pub(crate) struct Verifying<S> {
    inner: S,
    expected: String,
    size: u64,
    seen: u64,
    hasher: Option<Sha256>,
}

impl<S> Verifying<S> {
    pub(crate) fn new(inner: S, digest: &str, size: u64) -> Self {
        // Only sha256 is checked as it streams; other algorithms pass through unverified.
        let hasher = digest.starts_with("sha256:").then(Sha256::new);
        Verifying { inner, expected: digest.to_string(), size, seen: 0, hasher }
    }
}

impl<S: Stream<Item = io::Result<Bytes>> + Unpin> Stream for Verifying<S> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen += chunk.len() as u64;
                if let Some(h) = this.hasher.as_mut() {
                    h.update(&chunk);
                }
                if this.seen > this.size {
                    return Poll::Ready(Some(Err(invalid(format!("blob longer than its {} bytes", this.size)))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                if this.seen != this.size {
                    return Poll::Ready(Some(Err(invalid(format!("blob ended after {} of {} bytes", this.seen, this.size)))));
                }
                if let Some(h) = this.hasher.take() {
                    let actual = format!("sha256:{}", hex::encode(h.finalize()));
                    if actual != this.expected {
                        let e = ClientError::DigestMismatch { expected: this.expected.clone(), actual };
                        return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, e))));
                    }
                }
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
