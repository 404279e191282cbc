//! A node-local copy of the bucket's blob data on the node's own disk, bounded in bytes.
//!
//! Why it is safe to cache: a data object is written once under a key named by its upload
//! session (`data/<uuid>`, see the crate documentation) and never changed; a commit of the same
//! digest again writes a new key. So a copy of a key's bytes is right for as long as any pointer
//! names that key, and a key no pointer names any more is never asked for. What reaches this
//! cache are the stored bytes as they are (ciphertext for sealed blobs), so encryption at rest
//! holds on the node's disk too.
//!
//! - **Filled** on a full read that misses: the bucket's stream goes to the client as before and
//!   a copy goes to a writer on the blocking pool. The client never waits for the disk: when
//!   the writer falls more than `FILL_BACKLOG` behind, or `MAX_FILLS` fills are already running,
//!   the copy is dropped (the next read tries again). A fill reserves its size against the bound
//!   when it starts (evicting what must go), and becomes visible only when every byte arrived,
//!   matched the blob's digest (content-addressed stores: `fill`'s `verify`), was written and
//!   synced, and was renamed to its final name.
//! - **Checked on every read**: each file ends with a CRC-32 of every `CHUNK` of its bytes. Reads
//!   (whole or ranges) pread whole chunks into buffers of their own and pass a chunk on only once
//!   its CRC matched, so a copy the node's disk damaged never reaches the client, the decryption
//!   of sealed objects or the integrity checks above: the copy is removed and the read ends with
//!   an error that is not `InvalidData` (nothing above takes the bucket's object for corrupt);
//!   the next read goes to the bucket. Owned buffers also mean no page can change under a frame
//!   after it was checked, as a mapped page could.
//! - **Bounded** by `max_bytes`, least recently used first out. The index lives in memory and is
//!   rebuilt at start from the directory (oldest files first out). The directory is locked
//!   (`.lock`), 0700, its files 0600.
//!
//! File: `<sha256 of the key, hex>.blob` = the object's bytes, then one little-endian CRC-32 per
//! chunk, then the object's size (u64 LE) and `MAGIC`.
//!
//! Hand-written rather than a crate: no maintained crate keeps a byte-bounded set of files
//! whose fill is teed from a stream without ever slowing that stream.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use berth_store::{BlobRange, ByteStream, Digest, DigestHasher};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use hashlink::LinkedHashMap;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Bytes a fill may have queued for its writer before it gives up rather than slow the client.
const FILL_BACKLOG: u64 = 16 << 20;
/// Fills running at once (each holds a blocking-pool thread while it writes).
const MAX_FILLS: usize = 4;
/// Bytes per CRC, and per read from a copy.
const CHUNK: u64 = 1 << 20;
/// Chunks read ahead of the one being sent.
const READ_AHEAD: usize = 2;
const MAGIC: &[u8; 4] = b"BBC1";
/// Size (u64) and magic after the CRCs.
const TRAILER_END: u64 = 12;
const SUFFIX: &str = ".blob";

/// Running totals for /metrics.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct LocalCacheCounts {
    /// Reads served from the node's disk.
    pub hits: u64,
    /// Reads that went to the bucket.
    pub misses: u64,
    /// Copies completed.
    pub fills: u64,
    /// Copies dropped before completion (client gone, writer behind, too many fills, bytes that
    /// did not match the digest, a disk error).
    pub fills_dropped: u64,
    /// Copies removed to stay within the bound.
    pub evictions: u64,
    /// Copies found damaged or unreadable on the node's disk (and removed).
    pub damaged: u64,
    /// Copies removed because their object left the bucket (deleted through another node).
    pub swept: u64,
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
    swept: AtomicU64,
}

#[derive(Default)]
struct Index {
    /// File stem → the object's size; the front is the least recently used.
    entries: LinkedHashMap<String, u64>,
    /// Bytes of the entries.
    bytes: u64,
    /// Bytes reserved by fills in progress.
    reserved: u64,
    filling: HashSet<String>,
    /// Fills in progress whose key was removed meanwhile (`remove`): they must not land.
    revoked: HashSet<String>,
}

pub struct LocalCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    fills: AtomicUsize,
    /// Files being removed on the blocking pool.
    removing: AtomicUsize,
    /// Woken whenever a fill or a removal ends (`idle`).
    fill_ended: tokio::sync::Notify,
    counters: Counters,
    _lock: File,
}

impl LocalCache {
    /// Opens (or creates) the cache in `dir`, bounded to `max_bytes`. Blocking: for start-up.
    /// Fails when another process has the directory open. Unfinished fills of an earlier run
    /// and files that are not whole copies are removed; what is over the bound goes, oldest first.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> io::Result<Arc<LocalCache>> {
        let dir = dir.into();
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        // Only berth reads the copies (blobs left in clear by --aes256-by-storage among them),
        // also when the directory was made by someone else.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let lock = OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(dir.join(".lock"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(io::ErrorKind::ResourceBusy, format!("{} is in use by another berth process", dir.display())))
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        let mut found = Vec::new();
        for item in fs::read_dir(&dir)? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name == ".lock" {
                continue;
            }
            match parse_name(&name).map(|stem| (stem, whole_copy(&item.path()))) {
                Some((stem, Ok(Some(size)))) => found.push((item.metadata()?.modified().ok(), stem, size)),
                // A fill cut short by a crash, a copy cut short, an older format.
                _ => fs::remove_file(item.path())?,
            }
        }
        found.sort_by_key(|(modified, _, _)| *modified);
        let cache = LocalCache {
            dir,
            max_bytes,
            index: Mutex::new(Index::default()),
            fills: AtomicUsize::new(0),
            removing: AtomicUsize::new(0),
            fill_ended: tokio::sync::Notify::new(),
            counters: Counters::default(),
            _lock: lock,
        };
        let gone = {
            let mut index = cache.lock();
            for (_, stem, size) in found {
                index.bytes += size;
                index.entries.insert(stem, size);
            }
            cache.evict_for(&mut index, 0)
        };
        for stem in gone {
            let _ = fs::remove_file(cache.path(&stem));
        }
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
            swept: c.swept.load(Ordering::Relaxed),
            bytes: self.lock().bytes,
            max_bytes: self.max_bytes,
        }
    }

    /// The cached copy of `key` (an object of `size` bytes), whole or a range, in buffers of
    /// its own; None on a miss.
    pub async fn read(self: &Arc<Self>, key: &str, size: u64, range: Option<BlobRange>) -> Option<ByteStream> {
        let stem = stem(key);
        let known = {
            let mut index = self.lock();
            match index.entries.to_back(&stem).copied() {
                Some(s) if s == size => true,
                Some(_) => {
                    // Not the object the pointer describes: never serve it.
                    self.take_out(&mut index, &stem);
                    drop(index);
                    self.discard(&stem);
                    false
                }
                None => false,
            }
        };
        if !known {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let path = self.path(&stem);
        let opened = tokio::task::spawn_blocking(move || open_copy(&path, size)).await;
        let copy = match opened {
            Ok(Ok(copy)) => copy,
            other => {
                if !matches!(&other, Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound) {
                    tracing::warn!(file = %stem, "node-local blob cache: a copy could not be opened; removed, reading from the bucket");
                    self.counters.damaged.fetch_add(1, Ordering::Relaxed);
                }
                self.forget(&stem);
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        let (start, end) = match range {
            Some(r) => (r.start, r.end_inclusive + 1),
            None => (0, size),
        };
        Some(checked_chunks(self.clone(), stem, Arc::new(copy), start, end))
    }

    /// `body` (the whole of `key`, `size` bytes, as the bucket sends it) unchanged, with a copy
    /// going into the cache when the cache can take it without slowing the reader. With
    /// `verify`, the copy is kept only if the bytes hash to that digest (the store's objects are
    /// named by their content).
    pub fn fill(self: &Arc<Self>, key: &str, size: u64, verify: Option<&Digest>, body: ByteStream) -> ByteStream {
        let stem = stem(key);
        if size == 0 || size > self.max_bytes {
            return body;
        }
        if self.fills.fetch_add(1, Ordering::AcqRel) >= MAX_FILLS {
            self.fills.fetch_sub(1, Ordering::AcqRel);
            self.counters.fills_dropped.fetch_add(1, Ordering::Relaxed);
            return body;
        }
        let gone = {
            let mut index = self.lock();
            if index.entries.contains_key(&stem) || !index.filling.insert(stem.clone()) {
                drop(index);
                self.fills.fetch_sub(1, Ordering::AcqRel);
                return body;
            }
            let gone = self.evict_for(&mut index, size);
            index.reserved += size;
            gone
        };
        for stem in gone {
            self.discard(&stem);
        }
        let slot = FillSlot { cache: self.clone(), stem, size, committed: false };
        let (tx, rx) = mpsc::channel();
        let backlog = Arc::new(AtomicU64::new(0));
        let writer_backlog = backlog.clone();
        let hasher = verify.map(DigestHasher::for_digest);
        let expected = verify.cloned();
        tokio::task::spawn_blocking(move || {
            let mut slot = slot;
            let cache = slot.cache.clone();
            match cache.write_fill(&mut slot, rx, &writer_backlog, hasher.zip(expected)) {
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
        });
        Teed { body, tx: Some(tx), backlog, seen: 0, size }.boxed()
    }

    /// Returns once no fill or removal is running (tests, and tools that want their copies in
    /// place).
    pub async fn idle(&self) {
        loop {
            let ended = self.fill_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.fills.load(Ordering::Acquire) == 0 && self.removing.load(Ordering::Acquire) == 0 {
                return;
            }
            ended.await;
        }
    }

    /// Removes the cached copy of `key`, if any (deleted, quarantined, or found wrong above),
    /// and keeps a fill of it in progress from landing: the read that found the bytes wrong may
    /// be the one whose copy is still being written.
    pub fn remove(self: &Arc<Self>, key: &str) {
        let stem = stem(key);
        {
            let mut index = self.lock();
            if index.filling.contains(&stem) {
                index.revoked.insert(stem.clone());
            }
        }
        self.forget(&stem);
    }

    /// The copies held now, to be checked off against a listing of the bucket that starts after
    /// this call (`HeldCopies::saw`, then `drop_absent`). A copy is only ever made of an object
    /// that exists, and listings are consistent, so a copy held before the listing whose object
    /// the listing does not show is a copy of a deleted object. Copies made during the listing
    /// are not in the set and are never judged by it.
    pub fn held(&self) -> HeldCopies {
        HeldCopies(self.lock().entries.keys().cloned().collect())
    }

    /// Removes the copies `held` still names (their objects were not listed); returns how many.
    pub fn drop_absent(self: &Arc<Self>, held: HeldCopies) -> u64 {
        let mut dropped = 0;
        for stem in held.0 {
            if self.take_out(&mut self.lock(), &stem) {
                self.discard(&stem);
                dropped += 1;
            }
        }
        self.counters.swept.fetch_add(dropped, Ordering::Relaxed);
        dropped
    }

    /// The writer's side of a fill: Ok(true) when the copy is in place.
    fn write_fill(
        &self,
        slot: &mut FillSlot,
        rx: mpsc::Receiver<Bytes>,
        backlog: &AtomicU64,
        verify: Option<(DigestHasher, Digest)>,
    ) -> io::Result<bool> {
        let tmp = self.dir.join(format!("{}.{}.tmp", slot.stem, uuid::Uuid::new_v4().simple()));
        let written = (|| -> io::Result<bool> {
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            let mut crcs = ChunkCrcs::default();
            let mut verify = verify;
            let mut len = 0u64;
            // The sender hangs up when the body ends, or when it gives the copy up.
            while let Ok(chunk) = rx.recv() {
                backlog.fetch_sub(chunk.len() as u64, Ordering::AcqRel);
                file.write_all(&chunk)?;
                crcs.update(&chunk);
                if let Some((hasher, _)) = verify.as_mut() {
                    hasher.update(&chunk);
                }
                len += chunk.len() as u64;
            }
            if len != slot.size {
                return Ok(false);
            }
            if let Some((hasher, expected)) = verify {
                if hasher.finish() != expected {
                    tracing::warn!(digest = %expected, "node-local blob cache: the bucket's bytes did not match their digest; not copied");
                    return Ok(false);
                }
            }
            file.write_all(&crcs.finish(len))?;
            file.sync_data()?;
            Ok(true)
        })();
        if !matches!(written, Ok(true)) {
            let _ = fs::remove_file(&tmp);
            return written;
        }
        let mut index = self.lock();
        if index.revoked.contains(&slot.stem) {
            drop(index);
            let _ = fs::remove_file(&tmp);
            return Ok(false);
        }
        if let Err(e) = fs::rename(&tmp, self.path(&slot.stem)) {
            drop(index);
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        index.reserved -= slot.size;
        index.bytes += slot.size;
        index.entries.insert(slot.stem.clone(), slot.size);
        slot.committed = true;
        Ok(true)
    }

    /// Takes least recently used entries out of the index until `incoming` more bytes fit
    /// beside those held and reserved; returns their stems (files removed by the caller,
    /// outside the lock).
    fn evict_for(&self, index: &mut Index, incoming: u64) -> Vec<String> {
        let mut gone = Vec::new();
        while index.bytes + index.reserved + incoming > self.max_bytes {
            let Some((stem, size)) = index.entries.pop_front() else { break };
            index.bytes -= size;
            self.counters.evictions.fetch_add(1, Ordering::Relaxed);
            gone.push(stem);
        }
        gone
    }

    fn take_out(&self, index: &mut Index, stem: &str) -> bool {
        match index.entries.remove(stem) {
            Some(size) => {
                index.bytes -= size;
                true
            }
            None => false,
        }
    }

    /// Out of the index at once, off the disk on the blocking pool (removing a large file can
    /// take a while; a reader that has it open keeps reading it).
    fn forget(self: &Arc<Self>, stem: &str) {
        if self.take_out(&mut self.lock(), stem) {
            self.discard(stem);
        }
    }

    /// Moves a copy out of its name at once (a rename, so a new copy of the same key can take
    /// the name while the old one is still being removed) and unlinks it on the blocking pool.
    fn discard(self: &Arc<Self>, stem: &str) {
        let gone = self.dir.join(format!("{stem}.{}.gone", uuid::Uuid::new_v4().simple()));
        if let Err(e) = fs::rename(self.path(stem), &gone) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(error = %e, "node-local blob cache: a copy could not be removed");
            }
            return;
        }
        let cache = self.clone();
        self.removing.fetch_add(1, Ordering::AcqRel);
        let unlink = move || {
            if let Err(e) = fs::remove_file(&gone) {
                tracing::warn!(error = %e, "node-local blob cache: a removed copy could not be unlinked");
            }
            cache.removing.fetch_sub(1, Ordering::AcqRel);
            cache.fill_ended.notify_waiters();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(unlink)),
            Err(_) => unlink(),
        }
    }

    /// A read found the copy damaged or unreadable: out of the index and off the disk.
    fn damaged(self: &Arc<Self>, stem: &str, why: &str) {
        self.counters.damaged.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(file = %stem, why, "node-local blob cache: a copy on this node's disk is damaged; removed, the next read goes to the bucket");
        self.forget(stem);
    }

    fn path(&self, stem: &str) -> PathBuf {
        self.dir.join(format!("{stem}{SUFFIX}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Copies a sweep has not yet seen the object of (`LocalCache::held`).
pub struct HeldCopies(HashSet<String>);

impl HeldCopies {
    /// `key` exists in the bucket: its copy, if held, stays.
    pub fn saw(&mut self, key: &str) {
        if !self.0.is_empty() {
            self.0.remove(&stem(key));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A fill's hold on its slot and reservation, given back however the writer ends (a panic too).
struct FillSlot {
    cache: Arc<LocalCache>,
    stem: String,
    size: u64,
    committed: bool,
}

impl Drop for FillSlot {
    fn drop(&mut self) {
        {
            let mut index = self.cache.lock();
            if !self.committed {
                index.reserved -= self.size;
            }
            index.filling.remove(&self.stem);
            index.revoked.remove(&self.stem);
        }
        self.cache.fills.fetch_sub(1, Ordering::AcqRel);
        self.cache.fill_ended.notify_waiters();
    }
}

fn stem(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `<64 hex>.blob` → the stem.
fn parse_name(name: &str) -> Option<String> {
    let stem = name.strip_suffix(SUFFIX)?;
    (stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit())).then(|| stem.to_string())
}

fn chunks_of(size: u64) -> u64 {
    size.div_ceil(CHUNK)
}

/// The object's size when the file is a whole copy (its trailer agrees with its length).
fn whole_copy(path: &Path) -> io::Result<Option<u64>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len < TRAILER_END {
        return Ok(None);
    }
    let mut end = [0u8; TRAILER_END as usize];
    file.read_exact_at(&mut end, len - TRAILER_END)?;
    let size = u64::from_le_bytes(end[..8].try_into().unwrap_or_default());
    let whole = &end[8..] == MAGIC && size.checked_add(4 * chunks_of(size) + TRAILER_END) == Some(len);
    Ok(whole.then_some(size))
}

/// An open copy and the CRC of each of its chunks.
struct Copy {
    file: File,
    crcs: Vec<u32>,
    size: u64,
}

fn open_copy(path: &Path, size: u64) -> io::Result<Copy> {
    let file = File::open(path)?;
    let n = chunks_of(size);
    let len = file.metadata()?.len();
    if len != size + 4 * n + TRAILER_END {
        return Err(io::Error::other("the copy's length does not match its object"));
    }
    let mut trailer = vec![0u8; (4 * n + TRAILER_END) as usize];
    file.read_exact_at(&mut trailer, size)?;
    let (crcs, end) = trailer.split_at(4 * n as usize);
    if &end[8..] != MAGIC || u64::from_le_bytes(end[..8].try_into().unwrap_or_default()) != size {
        return Err(io::Error::other("the copy's trailer does not match its object"));
    }
    let crcs = crcs.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(Copy { file, crcs, size })
}

/// `[start, end)` of a copy, read chunk by chunk on the blocking pool (`READ_AHEAD` ahead),
/// each chunk passed on only once its CRC matched.
fn checked_chunks(cache: Arc<LocalCache>, stem: String, copy: Arc<Copy>, start: u64, end: u64) -> ByteStream {
    if start >= end {
        return futures::stream::empty().boxed();
    }
    let first = start / CHUNK;
    let last = (end - 1) / CHUNK;
    let reads = futures::stream::iter(first..=last).map(move |i| {
        let copy = copy.clone();
        async move {
            tokio::task::spawn_blocking(move || read_chunk(&copy, i))
                .await
                .unwrap_or_else(|e| Err(io::Error::other(format!("reading a cached chunk: {e}"))))
        }
    });
    let mut failed = false;
    reads
        .buffered(READ_AHEAD)
        .map(move |read| {
            let (i, mut chunk) = match read {
                Ok(read) => read,
                Err(e) => {
                    if !failed {
                        failed = true;
                        cache.damaged(&stem, &e.to_string());
                    }
                    return Err(io::Error::other(format!("this node's cached copy of the blob is damaged (removed; retry): {e}")));
                }
            };
            let base = i * CHUNK;
            let to = (end.min(base + chunk.len() as u64) - base) as usize;
            chunk.truncate(to);
            let from = (start.max(base) - base) as usize;
            Ok(chunk.split_off(from).freeze())
        })
        .scan(false, |ended, item| {
            // Nothing after the first error.
            if *ended {
                return futures::future::ready(None);
            }
            *ended = item.is_err();
            futures::future::ready(Some(item))
        })
        .boxed()
}

/// Chunk `i` of the copy, checked against its CRC.
fn read_chunk(copy: &Copy, i: u64) -> io::Result<(u64, BytesMut)> {
    let at = i * CHUNK;
    let len = CHUNK.min(copy.size - at) as usize;
    let mut buf = BytesMut::zeroed(len);
    copy.file.read_exact_at(&mut buf, at)?;
    if crc32fast::hash(&buf) != copy.crcs[i as usize] {
        return Err(io::Error::other(format!("chunk {i} does not match its CRC")));
    }
    Ok((i, buf))
}

/// The CRC of each `CHUNK` of a stream of pieces of any size, and the trailer they make.
#[derive(Default)]
struct ChunkCrcs {
    done: Vec<u8>,
    current: crc32fast::Hasher,
    in_current: u64,
}

impl ChunkCrcs {
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = ((CHUNK - self.in_current) as usize).min(data.len());
            self.current.update(&data[..take]);
            self.in_current += take as u64;
            data = &data[take..];
            if self.in_current == CHUNK {
                let full = std::mem::take(&mut self.current);
                self.done.extend_from_slice(&full.finalize().to_le_bytes());
                self.in_current = 0;
            }
        }
    }

    fn finish(mut self, size: u64) -> Vec<u8> {
        if self.in_current > 0 {
            self.done.extend_from_slice(&self.current.finalize().to_le_bytes());
        }
        self.done.extend_from_slice(&size.to_le_bytes());
        self.done.extend_from_slice(MAGIC);
        self.done
    }
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

#[cfg(test)]
mod tests;
