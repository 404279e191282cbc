//! Stored blobs are checked against their digest before berth vouches for them.
//!
//! The trade-off: hashing every download would cost a core per ~2 GB/s served, so each node
//! remembers which blobs it has verified (a set of 128-bit digest prefixes, 16 bytes a blob):
//! - a blob this node committed was hashed as it arrived, so it starts verified;
//! - any other blob (after a restart, or committed by another node) is hashed while its first
//!   full download streams, and the last chunk is held back until the hash matches: a mismatch
//!   cuts the response short of its Content-Length, so no client takes the bytes as complete;
//!   a range of an unverified blob is served only after the whole blob was hashed once;
//! - a background scrub re-hashes every blob at a configured rate, catching bytes that change
//!   after they were verified (the window this set leaves open) and verifying ahead of reads.
//!
//! A blob found corrupt is quarantined: the blob store moves the bytes aside (kept for
//! inspection), reads answer BLOB_UNKNOWN saying why, and pushing the blob again restores it.
//! Verified blobs are served exactly as before (one set lookup), so zero-copy stays possible
//! for them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use berth_store::{BlobReader, BlobStore, ByteStream, DigestHasher, MetadataStore, StoreError};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use crate::error::Result;
use crate::locks::DigestLocks;
use crate::{Digest, Registry, RegistryError};

/// What a check of one stored blob found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobCheck {
    Intact,
    /// The bytes hash to `actual`; the blob is now quarantined.
    Corrupt {
        actual: Digest,
    },
    /// Not in blob storage (deleted meanwhile, or quarantined earlier).
    Missing,
}

/// Running totals for /metrics.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct IntegrityCounts {
    /// Blobs hashed while their first download streamed.
    pub verified_on_read: u64,
    /// Blobs found not to match their digest (each one quarantined).
    pub corrupt_found: u64,
    pub scrubbed_blobs: u64,
    pub scrubbed_bytes: u64,
    /// Blobs quarantined and not restored since, as this node knows them.
    pub quarantined: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ScrubReport {
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    /// Digests found corrupt (and quarantined) in this pass.
    pub corrupt: Vec<String>,
}

pub(crate) struct Integrity {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetadataStore>,
    locks: Arc<DigestLocks>,
    verified: RwLock<HashSet<u128>>,
    quarantined: RwLock<HashSet<Digest>>,
    /// `quarantined.len()`, read without the lock: almost always 0, so the hot path skips it.
    quarantined_len: AtomicUsize,
    verified_on_read: AtomicU64,
    corrupt_found: AtomicU64,
    scrubbed_blobs: AtomicU64,
    scrubbed_bytes: AtomicU64,
}

/// The set keeps 128 bits of each digest: enough that no one can craft a blob sharing the
/// prefix of another (a 2^128 search), at a fraction of a `Digest`'s memory.
fn key(d: &Digest) -> u128 {
    u128::from_str_radix(&d.hex()[..32], 16).unwrap_or_default()
}

fn read_error(digest: &Digest, e: std::io::Error) -> RegistryError {
    StoreError::io(format!("reading blob {digest} to verify it"), e).into()
}

impl Integrity {
    pub(crate) fn new(blobs: Arc<dyn BlobStore>, meta: Arc<dyn MetadataStore>, locks: Arc<DigestLocks>) -> Self {
        Integrity {
            blobs,
            meta,
            locks,
            verified: Default::default(),
            quarantined: Default::default(),
            quarantined_len: AtomicUsize::new(0),
            verified_on_read: AtomicU64::new(0),
            corrupt_found: AtomicU64::new(0),
            scrubbed_blobs: AtomicU64::new(0),
            scrubbed_bytes: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_verified(&self, d: &Digest) -> bool {
        self.verified.read().unwrap_or_else(|p| p.into_inner()).contains(&key(d))
    }

    /// The blob's stored bytes are known to hash to `d` (hashed as they were written or read).
    /// A blob pushed again after it was quarantined is whole again.
    pub(crate) fn mark_verified(&self, d: &Digest) {
        self.verified.write().unwrap_or_else(|p| p.into_inner()).insert(key(d));
        if self.quarantined_len.load(Ordering::Relaxed) > 0 {
            let mut q = self.quarantined.write().unwrap_or_else(|p| p.into_inner());
            q.remove(d);
            self.quarantined_len.store(q.len(), Ordering::Relaxed);
        }
    }

    pub(crate) fn is_quarantined(&self, d: &Digest) -> bool {
        self.quarantined_len.load(Ordering::Relaxed) > 0 && self.quarantined.read().unwrap_or_else(|p| p.into_inner()).contains(d)
    }

    /// An encrypted object (named `name` in the sealed namespace) failed authentication while
    /// it was read: it answers as missing (HEAD 404, BatchCheckLayerAvailability) until a push
    /// writes it afresh (`mark_verified` of its name), so clients upload it again. Its bytes
    /// stay where they are (this node's memory only: a restart forgets, and the next read
    /// finds it again); fsck reports it.
    pub(crate) fn sealed_object_failed(&self, name: &Digest) {
        self.corrupt_found.fetch_add(1, Ordering::Relaxed);
        self.note_quarantined(name);
    }

    fn note_quarantined(&self, d: &Digest) {
        self.verified.write().unwrap_or_else(|p| p.into_inner()).remove(&key(d));
        let mut q = self.quarantined.write().unwrap_or_else(|p| p.into_inner());
        q.insert(d.clone());
        self.quarantined_len.store(q.len(), Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> IntegrityCounts {
        IntegrityCounts {
            verified_on_read: self.verified_on_read.load(Ordering::Relaxed),
            corrupt_found: self.corrupt_found.load(Ordering::Relaxed),
            scrubbed_blobs: self.scrubbed_blobs.load(Ordering::Relaxed),
            scrubbed_bytes: self.scrubbed_bytes.load(Ordering::Relaxed),
            quarantined: self.quarantined_len.load(Ordering::Relaxed) as u64,
        }
    }

    /// Hashes the stored blob; None when it is not stored.
    async fn hash_stored(&self, digest: &Digest, mut throttle: Option<&mut Throttle>) -> Result<Option<(Digest, u64)>> {
        let Some(reader) = self.blobs.get(digest, None).await? else {
            return Ok(None);
        };
        let mut hasher = DigestHasher::for_digest(digest);
        let mut body = reader.body;
        let mut len = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| read_error(digest, e))?;
            hasher.update(&chunk);
            len += chunk.len() as u64;
            if let Some(t) = throttle.as_deref_mut() {
                t.consumed(chunk.len() as u64).await;
            }
        }
        Ok(Some((hasher.finish(), len)))
    }

    /// Hashes the stored blob; quarantines it when it does not match. Also answers the bytes read.
    pub(crate) async fn check(&self, digest: &Digest, throttle: Option<&mut Throttle>) -> Result<(BlobCheck, u64)> {
        match self.hash_stored(digest, throttle).await? {
            None => Ok((BlobCheck::Missing, 0)),
            Some((actual, len)) if &actual == digest => {
                self.mark_verified(digest);
                Ok((BlobCheck::Intact, len))
            }
            Some((actual, len)) => Ok((self.quarantine(digest, &actual).await?, len)),
        }
    }

    /// Quarantines a blob whose bytes were seen to hash to `seen`. Under the digest's locks (the
    /// ones a commit takes) the stored bytes are hashed once more, so a blob restored by a push
    /// meanwhile is never moved aside.
    async fn quarantine(&self, digest: &Digest, seen: &Digest) -> Result<BlobCheck> {
        let _guard = self.locks.lock(digest).await;
        let _cluster_guard = self.meta.lock_blob(digest).await?;
        // The verdict is about the stored bytes: this node's cached copy of them (if it keeps
        // one) goes, and the second hash reads the store itself.
        self.blobs.forget_cached(digest).await;
        let actual = match berth_store::store_walk(self.hash_stored(digest, None)).await? {
            None => return Ok(BlobCheck::Missing),
            Some((actual, _)) if &actual == digest => {
                self.mark_verified(digest);
                return Ok(BlobCheck::Intact);
            }
            Some((actual, _)) => actual,
        };
        self.corrupt_found.fetch_add(1, Ordering::Relaxed);
        self.note_quarantined(digest);
        tracing::error!(%digest, %actual, first_seen = %seen, "stored blob does not match its digest; quarantining it (push it again to restore it)");
        self.blobs.quarantine(digest).await?;
        Ok(BlobCheck::Corrupt { actual })
    }

    /// Wraps a full read of an unverified blob: hashes the bytes as they pass and holds the last
    /// chunk back until the digest matches, so a corrupt blob's response ends short.
    pub(crate) fn verifying(self: &Arc<Self>, digest: Digest, reader: BlobReader) -> BlobReader {
        let state = VerifyState {
            integrity: self.clone(),
            inner: reader.body,
            hasher: Some(DigestHasher::for_digest(&digest)),
            digest,
            expected: reader.len,
            seen: 0,
        };
        let body: ByteStream = futures::stream::unfold(state, |mut s| async move {
            let item = s.next_chunk().await?;
            Some((item, s))
        })
        .boxed();
        BlobReader { len: reader.len, body }
    }
}

struct VerifyState {
    integrity: Arc<Integrity>,
    inner: ByteStream,
    /// None once the verdict is in (the stream then ends).
    hasher: Option<DigestHasher>,
    digest: Digest,
    expected: u64,
    seen: u64,
}

impl VerifyState {
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        let hasher = self.hasher.as_mut()?;
        let chunk = match self.inner.next().await {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                self.hasher = None;
                return Some(Err(e));
            }
            None => {
                self.hasher = None;
                return (self.seen != self.expected)
                    .then(|| Some(Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "blob shorter than recorded"))))
                    .flatten();
            }
        };
        hasher.update(&chunk);
        self.seen += chunk.len() as u64;
        if self.seen < self.expected {
            return Some(Ok(chunk));
        }
        let actual = self.hasher.take()?.finish();
        if self.seen == self.expected && actual == self.digest {
            self.integrity.mark_verified(&self.digest);
            self.integrity.verified_on_read.fetch_add(1, Ordering::Relaxed);
            return Some(Ok(chunk));
        }
        let verdict = self.integrity.quarantine(&self.digest, &actual).await;
        if let Err(e) = &verdict {
            tracing::error!(digest = %self.digest, error = %e, "quarantining a corrupt blob");
        }
        Some(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("blob {} failed verification (its stored bytes hash to {actual}); the download was cut short", self.digest),
        )))
    }
}

/// Paces a background read to a byte rate.
pub(crate) struct Throttle {
    bytes_per_second: u64,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    pub(crate) fn new(bytes_per_second: u64) -> Self {
        Throttle { bytes_per_second: bytes_per_second.max(1), started: Instant::now(), bytes: 0 }
    }

    async fn consumed(&mut self, n: u64) {
        self.bytes += n;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_second as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// How a scrub pass runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScrubOptions {
    /// Read at most this many bytes per second; None reads as fast as storage allows.
    pub bytes_per_second: Option<u64>,
}

impl Registry {
    /// Re-hashes every stored blob (see the module documentation); corrupt ones are quarantined.
    pub async fn scrub(&self, opts: ScrubOptions) -> Result<ScrubReport> {
        // The stored bytes themselves, not a node's cached copy of them.
        berth_store::store_walk(self.scrub_pass(opts)).await
    }

    async fn scrub_pass(&self, opts: ScrubOptions) -> Result<ScrubReport> {
        let mut report = ScrubReport::default();
        let mut throttle = opts.bytes_per_second.map(Throttle::new);
        for digest in self.blobs.list_blobs().await? {
            self.lease_checkpoint()?;
            let (verdict, size) = self.integrity.check(&digest, throttle.as_mut()).await?;
            match verdict {
                BlobCheck::Missing => continue,
                BlobCheck::Intact => {}
                BlobCheck::Corrupt { .. } => report.corrupt.push(digest.to_string()),
            }
            report.blobs_checked += 1;
            report.bytes_checked += size;
            self.integrity.scrubbed_blobs.fetch_add(1, Ordering::Relaxed);
            self.integrity.scrubbed_bytes.fetch_add(size, Ordering::Relaxed);
        }
        self.scrub_sealed(&mut report, throttle.as_mut()).await?;
        Ok(report)
    }

    /// Reads every encrypted object through, which authenticates each segment; one that fails
    /// is noted as missing (see `Integrity::sealed_object_failed`). Objects under a key that
    /// cannot be used now (disabled, deleted) are skipped.
    async fn scrub_sealed(&self, report: &mut ScrubReport, mut throttle: Option<&mut Throttle>) -> Result<()> {
        let mut walk = crate::sealing::ObjectWalk::default();
        loop {
            let page = self.next_objects(&mut walk).await?;
            if page.is_empty() {
                return Ok(());
            }
            for object in page.iter().filter(|o| !o.scope.is_empty()) {
                self.lease_checkpoint()?;
                let reader = match self.sealed_get(&object.scope, &object.digest, object.size, None).await {
                    Ok(Some(r)) => r,
                    Ok(None) | Err(RegistryError::Kms { .. }) => continue,
                    Err(e) => return Err(e),
                };
                let mut body = reader.body;
                let mut corrupt = false;
                while let Some(chunk) = body.next().await {
                    match chunk {
                        Ok(c) => {
                            if let Some(t) = throttle.as_deref_mut() {
                                t.consumed(c.len() as u64).await;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                            corrupt = true;
                            break;
                        }
                        Err(e) => return Err(read_error(&object.digest, e)),
                    }
                }
                if corrupt {
                    report.corrupt.push(object.digest.to_string());
                }
                report.blobs_checked += 1;
                report.bytes_checked += object.size;
                self.integrity.scrubbed_blobs.fetch_add(1, Ordering::Relaxed);
                self.integrity.scrubbed_bytes.fetch_add(object.size, Ordering::Relaxed);
            }
        }
    }

    /// Hashes one stored blob now (quarantining it when corrupt).
    pub async fn verify_blob(&self, digest: &Digest) -> Result<BlobCheck> {
        Ok(self.integrity.check(digest, None).await?.0)
    }

    /// Learns which blobs earlier runs (or other nodes) quarantined and no push has restored,
    /// so that HEAD answers for them as GET does. Called at start-up.
    pub async fn load_quarantine(&self) -> Result<usize> {
        let mut n = 0;
        for digest in self.blobs.list_quarantined().await? {
            if self.blobs.stat(&digest).await?.is_none() {
                self.integrity.note_quarantined(&digest);
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn integrity_counts(&self) -> IntegrityCounts {
        self.integrity.counts()
    }
}
