//! A node-local copy of the bucket's blob data on the node's own disk, bounded in bytes.
//!
//! Why it is safe to cache: a data object is written once under a key named by its upload
//! session (`data/<uuid>`, see the crate documentation) and never changed; a commit of the same
//! digest again writes a new key. So a copy of a key's bytes is right for as long as any pointer
//! names that key, and a key no pointer names any more is never asked for. What reaches this
//! cache are the stored bytes as they are (ciphertext for sealed blobs), so encryption at rest
//! holds on the node's disk too.
//!
//! - Filled on a full read that misses: the bucket's stream goes to the client as before and a
//!   copy goes to a writer on the blocking pool. The client never waits for the disk: when the
//!   writer falls more than `FILL_BACKLOG` behind, or `MAX_FILLS` fills are already running,
//!   the copy is dropped (the next read tries again). A fill becomes visible only when every
//!   byte arrived, was written and synced, and was renamed to its final name.
//! - Each file is named `<sha256 of the key>.<crc32 of its bytes>`. A full read from the cache
//!   checks the CRC as it streams and holds back the last chunk until it matches: a copy the
//!   node's disk damaged is removed and the download ends short (with an error that is not
//!   `InvalidData`, so nothing above takes the bucket's object for corrupt); the next read
//!   goes to the bucket. Ranges are served unchecked (sealed objects authenticate each
//!   segment; clear blobs are served in ranges only once verified, as from the filesystem).
//! - Bounded by `max_bytes`, least recently used first out. The index lives in memory and is
//!   rebuilt at start from the directory (oldest files first out).
//!
//! Hand-written rather than a crate: no maintained crate keeps a byte-bounded set of files
//! whose fill is teed from a stream without ever slowing that stream.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use berth_store::{BlobRange, ByteStream};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use hashlink::LinkedHashMap;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Bytes a fill may have queued for its writer before it gives up rather than slow the client.
const FILL_BACKLOG: u64 = 16 << 20;
/// Fills running at once (each holds a blocking-pool thread while it writes).
const MAX_FILLS: usize = 4;

/// Running totals for /metrics.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct LocalCacheCounts {
    /// Reads served from the node's disk.
    pub hits: u64,
    /// Reads that went to the bucket.
    pub misses: u64,
    /// Copies completed.
    pub fills: u64,
    /// Copies dropped before completion (client gone, writer behind, too many fills, disk error).
    pub fills_dropped: u64,
    /// Copies removed to stay within the bound.
    pub evictions: u64,
    /// Copies found damaged or unreadable on the node's disk (and removed).
    pub damaged: u64,
    /// Bytes the cache holds now.
    pub bytes: u64,
    /// The bound.
    pub max_bytes: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    fills: AtomicU64,
    fills_dropped: AtomicU64,
    evictions: AtomicU64,
    damaged: AtomicU64,
}

#[derive(Clone, Copy)]
struct Entry {
    size: u64,
    crc: u32,
}

#[derive(Default)]
struct Index {
    /// File stem → entry; the front is the least recently used.
    entries: LinkedHashMap<String, Entry>,
    bytes: u64,
    filling: HashSet<String>,
}

pub struct LocalCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    fills: AtomicUsize,
    /// Woken whenever a fill ends (`idle`).
    fill_ended: tokio::sync::Notify,
    counters: Counters,
}

impl LocalCache {
    /// Opens (or creates) the cache in `dir`, bounded to `max_bytes`. Blocking: for start-up.
    /// Unfinished fills of an earlier run are removed; what is over the bound goes, oldest first.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> io::Result<Arc<LocalCache>> {
        let dir = dir.into();
        // Only berth reads the copies (blobs left in clear by --aes256-by-storage among them).
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let mut found = Vec::new();
        for item in fs::read_dir(&dir)? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            let Some((stem, crc)) = parse_name(&name) else {
                // A fill cut short by a crash, or something that is not ours to serve.
                if name.ends_with(".tmp") {
                    let _ = fs::remove_file(item.path());
                }
                continue;
            };
            let meta = item.metadata()?;
            found.push((meta.modified().ok(), stem, Entry { size: meta.len(), crc }));
        }
        found.sort_by_key(|(modified, _, _)| *modified);
        let cache = LocalCache {
            dir,
            max_bytes,
            index: Mutex::new(Index::default()),
            fills: AtomicUsize::new(0),
            fill_ended: tokio::sync::Notify::new(),
            counters: Counters::default(),
        };
        let mut gone = Vec::new();
        {
            let mut index = cache.lock();
            for (_, stem, entry) in found {
                index.bytes += entry.size;
                index.entries.insert(stem, entry);
            }
            cache.evict_over(&mut index, 0, &mut gone);
        }
        cache.remove_files(&gone);
        Ok(Arc::new(cache))
    }

    pub fn counts(&self) -> LocalCacheCounts {
        let c = &self.counters;
        LocalCacheCounts {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            fills: c.fills.load(Ordering::Relaxed),
            fills_dropped: c.fills_dropped.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            damaged: c.damaged.load(Ordering::Relaxed),
            bytes: self.lock().bytes,
            max_bytes: self.max_bytes,
        }
    }

    /// The cached copy of `key` (an object of `size` bytes), whole or a range; None on a miss.
    /// `owned`: chunks in buffers of their own (see `berth_store::stream_file`).
    pub async fn read(self: &Arc<Self>, key: &str, size: u64, range: Option<BlobRange>, owned: bool) -> Option<ByteStream> {
        let stem = stem(key);
        let entry = {
            let mut index = self.lock();
            match index.entries.to_back(&stem).copied() {
                Some(e) if e.size == size => Some(e),
                Some(_) => {
                    // Not the object the pointer describes: never serve it.
                    self.forget(&mut index, &stem);
                    None
                }
                None => None,
            }
        };
        let Some(entry) = entry else {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let path = self.path(&stem, entry.crc);
        let opened = tokio::task::spawn_blocking(move || -> io::Result<(File, u64)> {
            let file = File::open(&path)?;
            let len = file.metadata()?.len();
            berth_store::advise_sequential(&file);
            Ok((file, len))
        })
        .await;
        let (file, len) = match opened {
            Ok(Ok((file, len))) if len == size => (file, len),
            other => {
                if let Ok(Err(e)) = &other {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(error = %e, "node-local blob cache: a copy could not be opened; reading from the bucket");
                    }
                }
                let mut index = self.lock();
                self.forget(&mut index, &stem);
                drop(index);
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        match range {
            Some(r) => Some(berth_store::stream_file(file, len, r.start, r.end_inclusive - r.start + 1, owned)),
            None => {
                let body = berth_store::stream_file(file, len, 0, len, owned);
                Some(Checked { body, crc: crc32fast::Hasher::new(), seen: 0, size, expected: entry.crc, cache: self.clone(), stem }.boxed())
            }
        }
    }

    /// `body` (the whole of `key`, `size` bytes, as the bucket sends it) unchanged, with a copy
    /// going into the cache when the cache can take it without slowing the reader.
    pub fn fill(self: &Arc<Self>, key: &str, size: u64, body: ByteStream) -> ByteStream {
        let stem = stem(key);
        if size == 0 || size > self.max_bytes {
            return body;
        }
        {
            let mut index = self.lock();
            if index.entries.contains_key(&stem) || !index.filling.insert(stem.clone()) {
                return body;
            }
        }
        if self.fills.fetch_add(1, Ordering::AcqRel) >= MAX_FILLS {
            self.fills.fetch_sub(1, Ordering::AcqRel);
            self.lock().filling.remove(&stem);
            self.counters.fills_dropped.fetch_add(1, Ordering::Relaxed);
            return body;
        }
        let (tx, rx) = mpsc::channel();
        let backlog = Arc::new(AtomicU64::new(0));
        let cache = self.clone();
        let writer_backlog = backlog.clone();
        tokio::task::spawn_blocking(move || {
            let outcome = cache.write_fill(&stem, size, rx, &writer_backlog);
            match outcome {
                Ok(true) => {
                    cache.counters.fills.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {
                    cache.counters.fills_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    cache.counters.fills_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "node-local blob cache: a copy could not be written");
                }
            }
            cache.lock().filling.remove(&stem);
            cache.fills.fetch_sub(1, Ordering::AcqRel);
            cache.fill_ended.notify_waiters();
        });
        Teed { body, tx: Some(tx), backlog, seen: 0, size }.boxed()
    }

    /// Returns once no fill is running (tests, and a clean shutdown of tools that read).
    pub async fn idle(&self) {
        loop {
            let ended = self.fill_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.fills.load(Ordering::Acquire) == 0 {
                return;
            }
            ended.await;
        }
    }

    /// Removes the cached copy of `key`, if any (the blob was deleted or quarantined here).
    pub fn remove(&self, key: &str) {
        let stem = stem(key);
        let mut index = self.lock();
        if let Some(entry) = index.entries.remove(&stem) {
            index.bytes -= entry.size;
            drop(index);
            self.remove_files(&[(stem, entry.crc)]);
        }
    }

    /// The writer's side of a fill: Ok(true) when the copy is in place.
    fn write_fill(&self, stem: &str, size: u64, rx: mpsc::Receiver<Bytes>, backlog: &AtomicU64) -> io::Result<bool> {
        let tmp = self.dir.join(format!("{stem}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let written = (|| -> io::Result<Option<u32>> {
            let mut file = File::create(&tmp)?;
            let mut crc = crc32fast::Hasher::new();
            let mut len = 0u64;
            // The sender hangs up when the body ends, or when it gives the copy up.
            while let Ok(chunk) = rx.recv() {
                backlog.fetch_sub(chunk.len() as u64, Ordering::AcqRel);
                file.write_all(&chunk)?;
                crc.update(&chunk);
                len += chunk.len() as u64;
            }
            if len != size {
                return Ok(None);
            }
            file.sync_data()?;
            Ok(Some(crc.finalize()))
        })();
        let crc = match written {
            Ok(Some(crc)) => crc,
            Ok(None) => {
                let _ = fs::remove_file(&tmp);
                return Ok(false);
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let mut gone = Vec::new();
        {
            let mut index = self.lock();
            self.evict_over(&mut index, size, &mut gone);
            if let Err(e) = fs::rename(&tmp, self.path(stem, crc)) {
                drop(index);
                let _ = fs::remove_file(&tmp);
                self.remove_files(&gone);
                return Err(e);
            }
            index.bytes += size;
            index.entries.insert(stem.to_string(), Entry { size, crc });
        }
        self.remove_files(&gone);
        Ok(true)
    }

    /// Takes least recently used entries out of the index until `incoming` more bytes fit;
    /// their files go into `gone` (removed by the caller, outside the lock).
    fn evict_over(&self, index: &mut Index, incoming: u64, gone: &mut Vec<(String, u32)>) {
        while index.bytes + incoming > self.max_bytes {
            let Some((stem, entry)) = index.entries.pop_front() else { break };
            index.bytes -= entry.size;
            self.counters.evictions.fetch_add(1, Ordering::Relaxed);
            gone.push((stem, entry.crc));
        }
    }

    fn forget(&self, index: &mut Index, stem: &str) {
        if let Some(entry) = index.entries.remove(stem) {
            index.bytes -= entry.size;
            let _ = fs::remove_file(self.path(stem, entry.crc));
        }
    }

    fn remove_files(&self, gone: &[(String, u32)]) {
        for (stem, crc) in gone {
            if let Err(e) = fs::remove_file(self.path(stem, *crc)) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(error = %e, "node-local blob cache: a copy could not be removed");
                }
            }
        }
    }

    /// A full read found the copy damaged: out of the index and off the disk.
    fn damaged(&self, stem: &str) {
        self.counters.damaged.fetch_add(1, Ordering::Relaxed);
        let mut index = self.lock();
        self.forget(&mut index, stem);
    }

    fn path(&self, stem: &str, crc: u32) -> PathBuf {
        self.dir.join(format!("{stem}.{crc:08x}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn stem(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<64 hex>.<8 hex>` → (stem, crc).
fn parse_name(name: &str) -> Option<(String, u32)> {
    let (stem, crc) = name.split_once('.')?;
    if stem.len() != 64 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) || crc.len() != 8 {
        return None;
    }
    Some((stem.to_string(), u32::from_str_radix(crc, 16).ok()?))
}

/// The bucket's stream, with a copy of each chunk handed to the fill's writer.
struct Teed {
    body: ByteStream,
    tx: Option<mpsc::Sender<Bytes>>,
    backlog: Arc<AtomicU64>,
    seen: u64,
    size: u64,
}

impl Stream for Teed {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = futures::ready!(self.body.poll_next_unpin(cx));
        match &item {
            Some(Ok(chunk)) => {
                self.seen += chunk.len() as u64;
                let behind = self.backlog.load(Ordering::Acquire) + chunk.len() as u64 > FILL_BACKLOG;
                if let Some(tx) = self.tx.take() {
                    if !behind && self.seen <= self.size {
                        self.backlog.fetch_add(chunk.len() as u64, Ordering::AcqRel);
                        if tx.send(chunk.clone()).is_ok() && self.seen < self.size {
                            self.tx = Some(tx);
                        }
                    }
                }
            }
            // An error or the end: the writer sees the hang-up and keeps the copy only if
            // every byte arrived.
            _ => self.tx = None,
        }
        Poll::Ready(item)
    }
}

/// A full read from the cache, checked against the CRC its copy was written with: the last
/// chunk is passed on only once the whole copy has matched.
struct Checked {
    body: ByteStream,
    crc: crc32fast::Hasher,
    seen: u64,
    size: u64,
    expected: u32,
    cache: Arc<LocalCache>,
    stem: String,
}

impl Stream for Checked {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match futures::ready!(self.body.poll_next_unpin(cx)) {
            Some(Ok(chunk)) => {
                self.crc.update(&chunk);
                self.seen += chunk.len() as u64;
                if self.seen < self.size {
                    return Poll::Ready(Some(Ok(chunk)));
                }
                let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
                if crc != self.expected || self.seen != self.size {
                    self.cache.damaged(&self.stem);
                    tracing::warn!(file = %self.stem, "node-local blob cache: a copy was damaged on this node's disk; removed, the next read goes to the bucket");
                    return Poll::Ready(Some(Err(io::Error::other("this node's cached copy of the blob was damaged (removed); retry"))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Some(Err(e)) => {
                // Unreadable (a disk error, a file cut short): the next read goes to the bucket.
                self.cache.damaged(&self.stem);
                tracing::warn!(file = %self.stem, error = %e, "node-local blob cache: a copy could not be read; removed");
                Poll::Ready(Some(Err(io::Error::other(format!(
                    "this node's cached copy of the blob could not be read (removed; retry): {e}"
                )))))
            }
            None => Poll::Ready(None),
        }
    }
}

#[cfg(test)]
mod tests;
