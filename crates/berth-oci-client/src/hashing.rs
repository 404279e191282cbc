//! SHA-256 of a stream, computed beside the stream rather than in turn with it.
//!
//! A blob pulled through berth is received, hashed, sealed, written and forwarded to its clients.
//! Hashed inline, SHA-256 (~1.1 GB/s with SHA-NI on this machine class) set the pace of the
//! whole download on one worker thread while the other core idled. Here chunks are gathered into
//! batches and each batch is hashed on tokio's blocking pool while the stream moves on. A pool
//! thread is held only while it hashes, never while the upstream is slow, and at most one batch
//! per stream is hashing while at most `MAX_WAITING` more bytes wait for it (the stream is not
//! polled further until they can be taken: memory per download stays bounded).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

/// Bytes gathered before a batch goes to the pool: a hand-off costs microseconds, hashing
/// 1 MiB about a millisecond.
const MIN_BATCH: usize = 1024 * 1024;
/// Bytes waiting for the batch being hashed before the stream waits too.
const MAX_WAITING: usize = 8 * 1024 * 1024;

pub(crate) struct BackgroundSha256 {
    /// The hasher, when no batch holds it.
    idle: Option<Sha256>,
    running: Option<JoinHandle<Sha256>>,
    waiting: Vec<Bytes>,
    waiting_len: usize,
}

impl BackgroundSha256 {
    pub(crate) fn new() -> Self {
        BackgroundSha256 { idle: Some(Sha256::new()), running: None, waiting: Vec::new(), waiting_len: 0 }
    }

    /// Ready when one more chunk may be taken (`push`): a finished batch is collected and the
    /// waiting bytes are handed on when the hasher is free.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.collect(cx) {
            return Poll::Ready(Err(e));
        }
        if self.idle.is_some() && self.waiting_len >= MIN_BATCH {
            self.start();
        }
        if self.waiting_len >= MAX_WAITING {
            // A batch is running (the hasher is busy) and its handle holds our waker.
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn push(&mut self, chunk: Bytes) {
        self.waiting_len += chunk.len();
        self.waiting.push(chunk);
    }

    /// The digest of every byte pushed, once the last batch is hashed. A short tail is hashed
    /// here: small blobs never visit the pool.
    pub(crate) fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<[u8; 32]>> {
        loop {
            self.collect(cx)?;
            if self.idle.is_none() {
                return Poll::Pending;
            }
            if self.waiting_len >= MIN_BATCH {
                self.start();
                continue;
            }
            let mut hasher = self.idle.take().unwrap_or_default();
            for chunk in self.waiting.drain(..) {
                hasher.update(&chunk);
            }
            self.waiting_len = 0;
            return Poll::Ready(Ok(hasher.finalize().into()));
        }
    }

    fn collect(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some(running) = self.running.as_mut() {
            if let Poll::Ready(done) = Pin::new(running).poll(cx) {
                self.running = None;
                self.idle = Some(done.map_err(|e| io::Error::other(format!("hashing the blob failed: {e}")))?);
            }
        }
        Ok(())
    }

    fn start(&mut self) {
        let (Some(mut hasher), batch) = (self.idle.take(), std::mem::take(&mut self.waiting)) else { return };
        self.waiting_len = 0;
        self.running = Some(tokio::task::spawn_blocking(move || {
            for chunk in &batch {
                hasher.update(chunk);
            }
            hasher
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn digest_of(parts: Vec<Bytes>) -> [u8; 32] {
        let mut h = BackgroundSha256::new();
        let mut parts = parts.into_iter();
        futures::future::poll_fn(move |cx| loop {
            match h.poll_ready(cx) {
                Poll::Ready(r) => r.expect("hashing"),
                Poll::Pending => return Poll::Pending,
            }
            match parts.next() {
                Some(p) => h.push(p),
                None => return h.poll_finish(cx).map(|r| r.expect("hashing")),
            }
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_hashed_on_the_pool_give_the_digest_of_the_whole() {
        // Sizes around each boundary: empty, a short tail, exactly one batch, many batches
        // with the stream pushed back, uneven chunks.
        for (total, chunk) in [(0, 1), (1000, 7), (MIN_BATCH, 4096), (MAX_WAITING * 3 + 5, 65536), (MIN_BATCH * 5 + 1, 333_333)] {
            let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
            let parts = data.chunks(chunk).map(Bytes::copy_from_slice).collect();
            let expected: [u8; 32] = Sha256::digest(&data).into();
            assert_eq!(digest_of(parts).await, expected, "{total} bytes in chunks of {chunk}");
        }
    }
}
