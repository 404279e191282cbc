//! Stream adapters for blobs: an idle limit and length + digest verification.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::ready;
use futures::Stream;

use crate::error::ClientError;
use crate::hashing::BackgroundSha256;

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

/// Hashes and counts a blob as it streams. The chunk that completes the blob is passed on only
/// once the whole blob matched its length and digest; otherwise an error takes its place. So a
/// consumer that forwards chunks as they come (a pull-through cache serving its clients) never
/// hands on a complete-looking body that is wrong: it lacks at least its last chunk. Chunks are
/// hashed beside the stream (`BackgroundSha256`), so the consumer's work on one chunk overlaps
/// the hashing of the ones before it.
pub(crate) struct Verifying<S> {
    inner: S,
    expected: String,
    size: u64,
    seen: u64,
    /// Only sha256 is checked as it streams; other algorithms pass through unverified.
    hasher: Option<BackgroundSha256>,
    /// The chunk that completed the blob, held until the digest is known.
    last: Option<Bytes>,
    /// The length was reached (and checked): the inner stream must end now.
    complete: bool,
    /// An error or the end was yielded: the stream is over (an error is yielded once, so a
    /// consumer that polls on is not fed the same failure forever).
    finished: bool,
}

impl<S> Verifying<S> {
    pub(crate) fn new(inner: S, digest: &str, size: u64) -> Self {
        let hasher = digest.starts_with("sha256:").then(BackgroundSha256::new);
        Verifying { inner, expected: digest.to_string(), size, seen: 0, hasher, last: None, complete: false, finished: false }
    }

    /// The digest check, once every byte is in.
    fn check(&self, digest: [u8; 32]) -> io::Result<()> {
        let actual = format!("sha256:{}", hex::encode(digest));
        if actual == self.expected {
            return Ok(());
        }
        Err(io::Error::new(io::ErrorKind::InvalidData, ClientError::DigestMismatch { expected: self.expected.clone(), actual }))
    }
}

impl<S: Stream<Item = io::Result<Bytes>> + Unpin> Stream for Verifying<S> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        let polled = this.poll_inner(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.finished = true;
        }
        polled
    }
}

impl<S: Stream<Item = io::Result<Bytes>> + Unpin> Verifying<S> {
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            if self.complete {
                if let Some(hasher) = self.hasher.as_mut() {
                    let verdict = match ready!(hasher.poll_finish(cx)) {
                        Ok(digest) => self.check(digest),
                        Err(e) => Err(e),
                    };
                    self.hasher = None;
                    verdict?;
                    // None: an empty blob, whose stream already ended.
                    return Poll::Ready(self.last.take().map(Ok));
                }
            } else if let Some(hasher) = self.hasher.as_mut() {
                // Taking no more than the hasher can keep up with.
                ready!(hasher.poll_ready(cx))?;
            }
            match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                Some(Ok(chunk)) => {
                    self.seen += chunk.len() as u64;
                    if self.seen > self.size {
                        self.hasher = None;
                        return Poll::Ready(Some(Err(invalid(format!("blob longer than its {} bytes", self.size)))));
                    }
                    if let Some(hasher) = self.hasher.as_mut() {
                        hasher.push(chunk.clone());
                    }
                    if self.seen == self.size && !self.complete {
                        self.complete = true;
                        if self.hasher.is_some() {
                            self.last = Some(chunk);
                            continue;
                        }
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    if self.seen != self.size {
                        return Poll::Ready(Some(Err(invalid(format!("blob ended after {} of {} bytes", self.seen, self.size)))));
                    }
                    if !self.complete {
                        // An empty blob completes here.
                        self.complete = true;
                        continue;
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use sha2::{Digest, Sha256};

    fn chunks(parts: &[&'static [u8]]) -> futures::stream::Iter<std::vec::IntoIter<io::Result<Bytes>>> {
        futures::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    fn sha(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    #[tokio::test]
    async fn the_last_chunk_is_released_only_after_the_digest_matched() {
        let good: Vec<_> = Verifying::new(chunks(&[b"abc", b"def"]), &sha(b"abcdef"), 6).collect().await;
        assert_eq!(good.len(), 2);
        assert!(good.iter().all(Result::is_ok));

        // Wrong content: the first chunk passes (it cannot be judged yet), the last never does.
        let bad: Vec<_> = Verifying::new(chunks(&[b"abc", b"deX"]), &sha(b"abcdef"), 6).collect().await;
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].as_ref().map(|b| b.len()).ok(), Some(3));
        let e = bad[1].as_ref().expect_err("the mismatch replaces the last chunk");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("digest mismatch"), "{e}");

        let empty: Vec<_> = Verifying::new(chunks(&[]), &sha(b""), 0).collect().await;
        assert!(empty.is_empty());
        let short: Vec<_> = Verifying::new(chunks(&[b"abc"]), &sha(b"abcdef"), 6).collect().await;
        assert!(short[1].is_err());
        let long: Vec<_> = Verifying::new(chunks(&[b"abcdef", b"g"]), &sha(b"abcdef"), 6).collect().await;
        assert!(long[0].is_ok() && long[1].is_err());
    }
}
