//! The bytes of one blob download, handed from the task that downloads it (the leader) to
//! every client reading it, in memory.
//!
//! The leader publishes each chunk as it arrives and never waits for a client: the window keeps
//! the last `limit` bytes (and at least the newest chunk) and drops older ones. A client reads
//! chunks from its own offset (shared `Bytes`, no copy); one that falls out of the window (slow,
//! or joining late) switches to its fallback, which reads the stored blob from its offset. So
//! memory per download is bounded whatever the clients do, and a client that leaves only drops
//! its reader.
//!
//! The leader publishes a blob's last bytes only once they are verified (the upstream stream
//! withholds the chunk that completes a mismatching blob), so a client never receives a
//! complete-looking wrong body: a failed download ends every reader with an error before it.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use berth_store::ByteStream;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::watch;

/// What the window holds. Offsets are in the blob's bytes.
#[derive(Default)]
pub(crate) struct Window {
    /// Known once the upstream answered.
    size: Option<u64>,
    /// Recent chunks with their offsets, oldest first.
    chunks: VecDeque<(u64, Bytes)>,
    /// Bytes published so far.
    end: u64,
    buffered: u64,
    /// The download failed (the message says why); readers still inside the window get an error.
    failed: Option<String>,
    /// The blob is stored (`Ok`) or storing it failed: what a reader behind the window waits for.
    stored: Option<Result<(), String>>,
}

impl Window {
    /// Bytes held, and bytes let go from the front.
    pub(crate) fn bytes(&self) -> (u64, u64) {
        (self.buffered, self.base())
    }

    fn base(&self) -> u64 {
        self.chunks.front().map_or(self.end, |(at, _)| *at)
    }

    /// From `pos` to the end of the chunk holding it.
    fn bytes_at(&self, pos: u64) -> Option<Bytes> {
        let i = self.chunks.partition_point(|(at, c)| at + c.len() as u64 <= pos);
        let (at, chunk) = self.chunks.get(i)?;
        let from = usize::try_from(pos.checked_sub(*at)?).ok()?;
        Some(chunk.slice(from..))
    }
}

/// The leader's side.
pub(crate) struct Publisher {
    tx: watch::Sender<Window>,
    limit: u64,
}

/// Where a client that fell behind reads from: the stored blob from the given offset.
pub(crate) type Fallback = Arc<dyn Fn(u64) -> BoxFuture<'static, crate::error::Result<ByteStream>> + Send + Sync>;

pub(crate) fn window(limit: u64) -> (Publisher, watch::Receiver<Window>) {
    let (tx, rx) = watch::channel(Window::default());
    (Publisher { tx, limit }, rx)
}

impl Publisher {
    pub(crate) fn set_size(&self, size: u64) {
        self.tx.send_modify(|w| w.size = Some(size));
    }

    pub(crate) fn publish(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        let limit = self.limit;
        self.tx.send_modify(|w| {
            let len = chunk.len() as u64;
            w.chunks.push_back((w.end, chunk));
            w.end += len;
            w.buffered += len;
            while w.buffered > limit && w.chunks.len() > 1 {
                if let Some((_, old)) = w.chunks.pop_front() {
                    w.buffered -= old.len() as u64;
                }
            }
        });
    }

    pub(crate) fn fail(&self, message: String) {
        self.tx.send_modify(|w| {
            w.failed.get_or_insert(message);
        });
    }

    /// The download is over: no more bytes, and the outcome of storing the blob.
    pub(crate) fn stored(&self, outcome: Result<(), String>) {
        self.tx.send_modify(|w| {
            // Nobody reads from the window any more once the blob is stored or lost.
            w.chunks.clear();
            w.buffered = 0;
            w.stored = Some(outcome);
        });
    }

    /// Bytes held for clients now (bounded by the limit and one chunk).
    #[cfg(test)]
    fn buffered(&self) -> u64 {
        self.tx.borrow().buffered
    }
}

/// The blob's size once the upstream answered (`Err`: the download failed first).
pub(crate) async fn size(mut rx: watch::Receiver<Window>) -> Result<u64, String> {
    loop {
        {
            let w = rx.borrow_and_update();
            if let Some(s) = w.size {
                return Ok(s);
            }
            if let Some(m) = w.failed.as_ref().or(w.stored.as_ref().and_then(|s| s.as_ref().err())) {
                return Err(m.clone());
            }
        }
        if rx.changed().await.is_err() {
            return Err("the upstream fetch ended without an answer".into());
        }
    }
}

/// Waits until the blob is stored (or the download failed).
pub(crate) async fn stored(mut rx: watch::Receiver<Window>) -> Result<(), String> {
    loop {
        if let Some(outcome) = rx.borrow_and_update().stored.clone() {
            return outcome;
        }
        if rx.changed().await.is_err() {
            return Err("the upstream fetch ended".into());
        }
    }
}

enum Step {
    Bytes(Bytes),
    Done,
    Fail(String),
    Behind,
    Wait,
}

struct Reader {
    rx: watch::Receiver<Window>,
    size: u64,
    pos: u64,
    fallback: Fallback,
    /// Reading the stored blob, after falling behind.
    stored: Option<ByteStream>,
    finished: bool,
    /// Keeps what the reader needs alive (the flight) until it is dropped.
    _hold: Box<dyn Send + Sync>,
}

/// A client's bytes of the blob (`size` bytes), from the window or, once behind it, from the
/// stored blob.
pub(crate) fn read(rx: watch::Receiver<Window>, size: u64, fallback: Fallback, hold: Box<dyn Send + Sync>) -> ByteStream {
    let reader = Reader { rx, size, pos: 0, fallback, stored: None, finished: false, _hold: hold };
    futures::stream::unfold(reader, Reader::next).boxed()
}

impl Reader {
    fn step(&mut self) -> Step {
        let w = self.rx.borrow_and_update();
        if self.pos >= self.size && w.end >= self.size {
            return Step::Done;
        }
        if self.pos < w.base() {
            return Step::Behind;
        }
        if self.pos < w.end {
            return w.bytes_at(self.pos).map_or(Step::Behind, Step::Bytes);
        }
        if let Some(m) = &w.failed {
            return Step::Fail(m.clone());
        }
        match &w.stored {
            // Stored, yet this reader is past the published bytes: it is behind the (cleared) window.
            Some(Ok(())) => Step::Behind,
            Some(Err(m)) => Step::Fail(m.clone()),
            None => Step::Wait,
        }
    }

    async fn next(mut self) -> Option<(io::Result<Bytes>, Self)> {
        if self.finished {
            return None;
        }
        loop {
            if let Some(stored) = self.stored.as_mut() {
                let item = stored.next().await?;
                if item.is_err() {
                    self.finished = true;
                }
                return Some((item, self));
            }
            match self.step() {
                Step::Bytes(b) => {
                    self.pos += b.len() as u64;
                    return Some((Ok(b), self));
                }
                Step::Done => return None,
                Step::Fail(m) => return self.failed(m),
                Step::Behind => match stored(self.rx.clone()).await {
                    Ok(()) => match (self.fallback)(self.pos).await {
                        Ok(body) => self.stored = Some(body),
                        Err(e) => return self.failed(format!("reading the stored blob: {e}")),
                    },
                    Err(m) => return self.failed(m),
                },
                Step::Wait => {
                    if self.rx.changed().await.is_err() {
                        // The leader is gone without a word: one last look, then fail.
                        if let Step::Wait = self.step() {
                            return self.failed("the upstream fetch ended early".into());
                        }
                    }
                }
            }
        }
    }

    fn failed(mut self, message: String) -> Option<(io::Result<Bytes>, Self)> {
        self.finished = true;
        Some((Err(io::Error::other(message)), self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A fallback that serves `blob` from the offset asked, and records the offset.
    fn fallback(blob: Bytes, asked: Arc<AtomicU64>) -> Fallback {
        Arc::new(move |from| {
            asked.store(from, Ordering::SeqCst);
            let rest = blob.slice(from as usize..);
            async move { Ok(futures::stream::once(async move { Ok(rest) }).boxed()) }.boxed()
        })
    }

    fn blob(len: usize) -> Bytes {
        Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>())
    }

    async fn drain(mut body: ByteStream) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        while let Some(item) = body.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    fn reader(rx: &watch::Receiver<Window>, data: &Bytes, asked: &Arc<AtomicU64>) -> ByteStream {
        read(rx.clone(), data.len() as u64, fallback(data.clone(), asked.clone()), Box::new(()))
    }

    #[tokio::test]
    async fn readers_get_every_byte_from_memory_while_they_keep_up() {
        let data = blob(10_000);
        let (tx, rx) = window(1 << 20);
        tx.set_size(data.len() as u64);
        let asked = Arc::new(AtomicU64::new(u64::MAX));
        let early = reader(&rx, &data, &asked);
        let publisher = tokio::spawn(async move {
            for c in data.chunks(1000) {
                tx.publish(Bytes::copy_from_slice(c));
                tokio::task::yield_now().await;
            }
            tx.stored(Ok(()));
        });
        let (bytes, error) = drain(early).await;
        publisher.await.unwrap();
        assert!(error.is_none());
        assert_eq!(bytes, blob(10_000));
        assert_eq!(asked.load(Ordering::SeqCst), u64::MAX, "all from memory");
    }

    #[tokio::test]
    async fn a_late_joiner_reads_the_stored_blob_from_where_the_window_was_lost() {
        let data = blob(10_000);
        let (tx, rx) = window(2500);
        tx.set_size(data.len() as u64);
        for c in data[..6000].chunks(1000) {
            tx.publish(Bytes::copy_from_slice(c));
        }
        assert!(tx.buffered() <= 3000, "only the window is kept: {}", tx.buffered());
        let asked = Arc::new(AtomicU64::new(u64::MAX));
        let late = tokio::spawn(drain(reader(&rx, &data, &asked)));
        // It waits for the stored blob: byte 0 is gone from memory.
        tokio::task::yield_now().await;
        for c in data[6000..].chunks(1000) {
            tx.publish(Bytes::copy_from_slice(c));
        }
        tx.stored(Ok(()));
        let (bytes, error) = late.await.unwrap();
        assert!(error.is_none());
        assert_eq!(bytes, data.to_vec());
        assert_eq!(asked.load(Ordering::SeqCst), 0, "read from the start of the stored blob");
    }

    #[tokio::test]
    async fn a_slow_reader_does_not_grow_memory_and_continues_from_the_stored_blob() {
        let data = blob(1 << 20);
        let (tx, rx) = window(64 * 1024);
        tx.set_size(data.len() as u64);
        let asked = Arc::new(AtomicU64::new(u64::MAX));
        let mut slow = reader(&rx, &data, &asked);
        tx.publish(data.slice(..4096));
        let first = slow.next().await.unwrap().unwrap();
        assert_eq!(first.len(), 4096);
        // The reader stalls while the rest arrives: the window stays bounded.
        let mut peak = 0;
        for at in (4096..data.len()).step_by(4096) {
            tx.publish(data.slice(at..at + 4096));
            peak = peak.max(tx.buffered());
        }
        assert!(peak <= 64 * 1024 + 4096, "memory bounded by the window: {peak}");
        // A client that left (dropped) never held anything up either.
        drop(reader(&rx, &data, &asked));
        tx.stored(Ok(()));
        let (rest, error) = drain(slow).await;
        assert!(error.is_none());
        assert_eq!(asked.load(Ordering::SeqCst), 4096, "continued where it was");
        assert_eq!([&first[..], &rest[..]].concat(), data.to_vec());
    }

    #[tokio::test]
    async fn a_failed_download_cuts_every_reader_short_with_an_error() {
        let data = blob(10_000);
        let (tx, rx) = window(1 << 20);
        tx.set_size(data.len() as u64);
        let asked = Arc::new(AtomicU64::new(u64::MAX));
        let r = reader(&rx, &data, &asked);
        // The source withheld the last chunk: it did not match.
        tx.publish(data.slice(..9000));
        tx.fail("digest mismatch".into());
        let (bytes, error) = drain(r).await;
        assert_eq!(bytes.len(), 9000, "never the whole size");
        assert!(error.expect("an error ends the body").to_string().contains("digest mismatch"));
        tx.stored(Err("digest mismatch".into()));
        assert_eq!(asked.load(Ordering::SeqCst), u64::MAX, "nothing read from a store that has nothing");
        // Joining after the failure: an error at once.
        let (bytes, error) = drain(reader(&rx, &data, &asked)).await;
        assert!(bytes.len() < data.len() && error.is_some());
        assert_eq!(size(rx.clone()).await, Ok(10_000));
    }

    #[tokio::test]
    async fn a_leader_that_vanishes_ends_its_readers() {
        let data = blob(100);
        let (tx, rx) = window(1 << 20);
        tx.set_size(100);
        tx.publish(data.slice(..50));
        let asked = Arc::new(AtomicU64::new(u64::MAX));
        let r = reader(&rx, &data, &asked);
        drop(tx);
        let (bytes, error) = drain(r).await;
        assert_eq!(bytes.len(), 50);
        assert!(error.is_some());
    }
}
