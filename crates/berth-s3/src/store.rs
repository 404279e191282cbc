//! [`BlobStore`] over S3 (the layout and its reasons are in the crate documentation).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_store::{BlobRange, BlobReader, BlobStore, ByteStream, Digest, StoreError, UploadCursor};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::HttpErrorKind;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::config::S3Config;
use crate::local_cache::LocalCache;

/// S3 allows 10,000 parts; appends keep one free for the tail, which `commit_upload` sends last.
const MAX_FULL_PARTS: usize = 9_999;
/// Pointers are ~100 bytes; this bounds the cache to a few MiB.
const POINTER_CACHE_ENTRIES: usize = 16_384;
/// A body that stalls this long is dead. There is no overall request timeout: a large blob
/// streamed to a slow client may legitimately take hours.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Parts one append keeps in flight, so a push to a distant bucket is not bound by one round
/// trip per part. Memory per append is at most (PARTS_IN_FLIGHT + 1) × part_size (plus one
/// received chunk): the parts being sent, and the bytes gathering into the next one.
const PARTS_IN_FLIGHT: usize = 4;
/// Pointers read at once by the orphan sweep.
const SWEEP_READS: usize = 16;

/// A blob store in one S3 bucket (under a prefix), shareable by any number of berth nodes.
pub struct S3BlobStore {
    s3: Arc<AmazonS3>,
    /// Where full parts go: `s3` itself, except in tests that watch the parts in flight.
    parts: Arc<dyn MultipartStore>,
    bucket: String,
    prefix: String,
    part_size: usize,
    presign_expiry: Option<Duration>,
    pointers: PointerCache,
    /// Copies of data objects on this node's disk (`with_local_cache`); shared by namespaces.
    local: Option<Arc<LocalCache>>,
    /// Objects are named by the digest of their bytes (not the sealed namespace's, whose names
    /// are not their ciphertext's): copies into the local cache are checked against it.
    content_addressed: bool,
}

/// `UploadCursor::state`: everything needed to continue or complete the session elsewhere.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SessionState {
    /// S3 multipart upload id; created with the first full part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multipart: Option<String>,
    /// ETags of the parts written, part number = index + 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<String>,
    /// Bytes held by `parts`; the rest of the cursor's length is in the tail object.
    #[serde(default)]
    parts_len: u64,
    /// Name of the tail object under `uploads/<id>/` (absent when the tail is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tail: Option<String>,
    /// The tail the previous cursor named. Kept until the next append: the service records
    /// this cursor only after `append_upload` returns, and if that record fails the previous
    /// cursor (and its tail) is the one the session continues from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_tail: Option<String>,
}

/// Content of `uploads/<id>/session`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Marker {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multipart: Option<String>,
}

/// Content of `blobs/<alg>/<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pointer {
    /// Key of the data object, relative to the prefix (so a bucket can be moved under another
    /// prefix without rewriting pointers).
    data: String,
    size: u64,
}

impl S3BlobStore {
    /// Builds the client; no request is made (see [`S3BlobStore::check`]).
    pub fn open(cfg: S3Config) -> Result<Self, StoreError> {
        Self::open_with_retry(cfg, None)
    }

    fn open_with_retry(cfg: S3Config, retry: Option<RetryConfig>) -> Result<Self, StoreError> {
        cfg.validate()?;
        let prefix = crate::config::normalize_prefix(&cfg.prefix);
        let s3 = bucket_client(&cfg, retry)?;
        let s3 = Arc::new(s3);
        Ok(S3BlobStore {
            parts: s3.clone(),
            s3,
            bucket: cfg.bucket,
            prefix,
            part_size: cfg.part_size,
            presign_expiry: cfg.presign_expiry,
            pointers: PointerCache::new(POINTER_CACHE_ENTRIES),
            local: None,
            content_addressed: true,
        })
    }

    /// Keeps copies of the blobs this node reads in `cache` on its own disk, and serves later
    /// reads from there (see `local_cache`). Namespaces made afterwards share it.
    pub fn with_local_cache(mut self, cache: Arc<LocalCache>) -> Self {
        self.local = Some(cache);
        self
    }

    /// One cheap request proving the bucket answers and the credentials may list it; for
    /// start-up, so that a wrong endpoint or key fails at once rather than at the first push.
    pub async fn check(&self) -> Result<(), StoreError> {
        let base = self.key("blobs");
        match self.s3.list(Some(&base)).try_next().await {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::io(
                format!("S3 bucket {}", self.bucket),
                io::Error::new(io::ErrorKind::NotFound, "the bucket does not exist"),
            )),
            Err(e) => Err(self.err(format!("checking S3 bucket {}", self.bucket), e)),
        }
    }

    /// Removes this node's copies of data objects that left the bucket (a blob deleted, or its
    /// orphaned data swept, through another node): one listing of the store's keys, namespaces
    /// included, checked off against the copies held when it started. Returns how many copies
    /// went; nothing to do without a node-local cache.
    pub async fn sweep_local_cache(&self) -> Result<u64, StoreError> {
        let Some(local) = &self.local else { return Ok(0) };
        let mut held = local.held();
        if held.is_empty() {
            return Ok(0);
        }
        let base = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        let mut listing = self.s3.list(base.as_ref());
        while let Some(meta) = listing.try_next().await.map_err(|e| self.err("listing the bucket for the node-local blob cache", e))? {
            held.saw(meta.location.as_ref());
        }
        Ok(local.drop_absent(held))
    }

    // ---- keys ----

    fn key(&self, rel: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix))
        }
    }
    fn session_dir(&self, id: &str) -> Path {
        self.key(&format!("uploads/{id}"))
    }
    fn marker_key(&self, id: &str) -> Path {
        self.key(&format!("uploads/{id}/session"))
    }
    fn tail_key(&self, id: &str, name: &str) -> Path {
        self.key(&format!("uploads/{id}/{name}"))
    }
    fn data_rel(id: &str) -> String {
        format!("data/{id}")
    }
    fn pointer_key(&self, digest: &Digest) -> Path {
        self.key(&format!("blobs/{}/{}", digest.algorithm().name(), digest.hex()))
    }

    // ---- errors ----

    /// Wraps an object_store error with context; connection failures say so plainly. Messages
    /// carry keys and the endpoint, never credentials (object_store signs in headers).
    fn err(&self, context: impl Into<String>, e: object_store::Error) -> StoreError {
        let context = context.into();
        if is_unreachable(&e) {
            // Unavailable: the service answers 503 and clients retry.
            return StoreError::Unavailable {
                what: berth_store::error::BLOB_STORAGE,
                detail: format!("{context}: S3 bucket {} is unreachable: {e}", self.bucket),
            };
        }
        StoreError::io(context, e.into())
    }

    // ---- small objects ----

    /// Reads a whole small object (marker, tail, pointer); None when it does not exist.
    async fn get_small(&self, key: &Path, what: &str) -> Result<Option<Bytes>, StoreError> {
        let res = match self.s3.get(key).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err(format!("reading {what} {key}"), e)),
        };
        res.bytes().await.map(Some).map_err(|e| self.err(format!("reading {what} {key}"), e))
    }

    async fn exists(&self, key: &Path, what: &str) -> Result<bool, StoreError> {
        match self.s3.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(format!("checking {what} {key}"), e)),
        }
    }

    async fn put_small(&self, key: &Path, body: PutPayload, what: &str) -> Result<(), StoreError> {
        self.s3.put(key, body).await.map(|_| ()).map_err(|e| self.err(format!("writing {what} {key}"), e))
    }

    async fn delete_key(&self, key: &Path, what: &str) -> Result<(), StoreError> {
        match self.s3.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(format!("removing {what} {key}"), e)),
        }
    }

    async fn read_marker(&self, id: &str) -> Result<Option<Marker>, StoreError> {
        let key = self.marker_key(id);
        let Some(raw) = self.get_small(&key, "upload marker").await? else {
            return Ok(None);
        };
        // An unreadable marker still proves the session exists; it just names no upload.
        Ok(Some(serde_json::from_slice(&raw).unwrap_or_default()))
    }

    async fn write_marker(&self, id: &str, marker: &Marker) -> Result<(), StoreError> {
        let body = serde_json::to_vec(marker).map_err(|e| StoreError::io(format!("encoding marker of upload {id}"), e.into()))?;
        self.put_small(&self.marker_key(id), body.into(), "upload marker").await
    }

    /// The session must still exist before anything is written for it, or a swept session
    /// would grow new objects nobody tracks.
    async fn require_session(&self, id: &str) -> Result<(), StoreError> {
        if self.exists(&self.marker_key(id), "upload marker").await? {
            Ok(())
        } else {
            Err(StoreError::UploadNotFound(id.to_string()))
        }
    }

    async fn read_tail(&self, id: &str, state: &SessionState, tail_len: u64) -> Result<Option<Bytes>, StoreError> {
        if tail_len == 0 {
            return Ok(None);
        }
        let name = state.tail.as_deref().ok_or_else(|| corrupt(id, "cursor has a tail length but no tail object"))?;
        let key = self.tail_key(id, name);
        let Some(tail) = self.get_small(&key, "upload tail").await? else {
            // The marker exists (checked first), so this cursor is not the session's latest.
            return Err(StoreError::io(
                format!("upload {id}: tail object {name} is missing"),
                io::Error::new(io::ErrorKind::NotFound, "the cursor is not the session's latest (another request moved it)"),
            ));
        };
        if tail.len() as u64 != tail_len {
            return Err(corrupt(id, &format!("tail object {name} holds {} bytes, cursor expects {tail_len}", tail.len())));
        }
        Ok(Some(tail))
    }

    // ---- uploads ----

    /// The session's multipart upload, created (and recorded in the marker) on first use.
    async fn multipart_upload(&self, id: &str, state: &mut SessionState, created: &mut Option<String>) -> Result<String, StoreError> {
        if let Some(u) = &state.multipart {
            return Ok(u.clone());
        }
        let data_key = self.key(&Self::data_rel(id));
        let u = self.s3.create_multipart(&data_key).await.map_err(|e| self.err(format!("starting multipart upload for {id}"), e))?;
        *created = Some(u.clone());
        // Recorded in the marker too, so a sweep without the cursor can abort it.
        self.write_marker(id, &Marker { multipart: Some(u.clone()) }).await?;
        state.multipart = Some(u.clone());
        Ok(u)
    }

    fn part_error(&self, id: &str, idx: usize, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { .. } => StoreError::UploadNotFound(id.to_string()),
            e => self.err(format!("writing part {} of upload {id}", idx + 1), e),
        }
    }

    /// Sends one full part and records it (the commit's last part).
    async fn send_part(
        &self,
        id: &str,
        state: &mut SessionState,
        created: &mut Option<String>,
        part: PutPayload,
        len: u64,
    ) -> Result<(), StoreError> {
        let upload_id = self.multipart_upload(id, state, created).await?;
        let idx = state.parts.len();
        let data_key = self.key(&Self::data_rel(id));
        let part = self.parts.put_part(&data_key, &upload_id, idx, part).await.map_err(|e| self.part_error(id, idx, e))?;
        state.parts.push(part.content_id);
        state.parts_len += len;
        Ok(())
    }

    /// Streams `data` into full parts, up to [`PARTS_IN_FLIGHT`] at once; what does not fill
    /// one is left in `pending`. `state` gains the parts only once every one of them is
    /// acknowledged, in order; on error it is unchanged and nothing this call started is
    /// still writing when it returns (a retry from the old cursor is never overtaken).
    async fn pump(
        &self,
        id: &str,
        state: &mut SessionState,
        created: &mut Option<String>,
        pending: &mut Pending,
        data: ByteStream,
    ) -> Result<u64, StoreError> {
        let mut flight = PartsInFlight::new(state.parts.len());
        let pumped = self.pump_parts(id, state, created, pending, data, &mut flight).await;
        let appended = match pumped {
            Ok(n) => n,
            Err(e) => {
                // Waited out rather than aborted: a dropped request may still land at S3.
                while flight.tasks.join_next().await.is_some() {}
                return Err(e);
            }
        };
        let count = flight.etags.len() as u64;
        let etags: Option<Vec<String>> = flight.etags.into_iter().collect();
        let etags = etags.ok_or_else(|| corrupt(id, "a part was never acknowledged"))?;
        state.parts.extend(etags);
        state.parts_len += count * self.part_size as u64;
        Ok(appended)
    }

    async fn pump_parts(
        &self,
        id: &str,
        state: &mut SessionState,
        created: &mut Option<String>,
        pending: &mut Pending,
        mut data: ByteStream,
        flight: &mut PartsInFlight,
    ) -> Result<u64, StoreError> {
        let data_key = self.key(&Self::data_rel(id));
        let mut appended = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|e| StoreError::io(format!("receiving data for upload {id}"), e))?;
            appended += chunk.len() as u64;
            pending.push(chunk);
            // Parts that finished meanwhile free their slots, and a failed one stops the
            // append now rather than after the client sent everything.
            while let Some(done) = flight.tasks.try_join_next() {
                flight.settle(done).map_err(|(idx, e)| self.part_error(id, idx, e))?;
            }
            while pending.len >= self.part_size {
                if flight.next_index() >= MAX_FULL_PARTS {
                    return Err(StoreError::io(
                        format!("upload {id}"),
                        io::Error::new(
                            io::ErrorKind::FileTooLarge,
                            format!("blob exceeds S3's 10,000 parts of {} bytes; raise part_size", self.part_size),
                        ),
                    ));
                }
                // Waiting here (not reading on) is what bounds memory.
                if flight.tasks.len() >= PARTS_IN_FLIGHT {
                    if let Some(done) = flight.tasks.join_next().await {
                        flight.settle(done).map_err(|(idx, e)| self.part_error(id, idx, e))?;
                    }
                }
                let upload_id = self.multipart_upload(id, state, created).await?;
                flight.start(self.parts.clone(), data_key.clone(), upload_id, pending.take(self.part_size));
            }
        }
        while let Some(done) = flight.tasks.join_next().await {
            flight.settle(done).map_err(|(idx, e)| self.part_error(id, idx, e))?;
        }
        Ok(appended)
    }

    /// Removes everything under `uploads/<id>/`.
    async fn remove_session_objects(&self, id: &str) -> Result<(), StoreError> {
        let dir = self.session_dir(id);
        let keys: Vec<Path> =
            self.s3.list(Some(&dir)).map_ok(|m| m.location).try_collect().await.map_err(|e| self.err(format!("listing upload {id}"), e))?;
        // The marker goes last: while anything else is left, the session is still findable.
        let marker = self.marker_key(id);
        for key in keys.iter().filter(|k| **k != marker) {
            self.delete_key(key, "upload object").await?;
        }
        self.delete_key(&marker, "upload marker").await
    }

    async fn abort(&self, id: &str, upload_id: &str) -> Result<(), StoreError> {
        let data_key = self.key(&Self::data_rel(id));
        match self.s3.abort_multipart(&data_key, &upload_id.to_string()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(format!("aborting multipart upload of {id}"), e)),
        }
    }

    // ---- orphans ----

    /// Session ids whose `data/<id>` no pointer names: a commit that failed after completing
    /// its data, a lost race between two commits of one digest, a delete that removed the
    /// pointer but not the data. Listed in this order so no commit can slip between: data,
    /// then sessions (a commit writes its pointer before it removes its session marker), then
    /// pointers. A data object is spared while its session exists (AWS dates a completed
    /// multipart object from the upload's start, so age alone cannot tell a slow commit) or
    /// when it was written at or after `before_millis`.
    async fn find_orphans(&self, before_millis: i64) -> Result<Vec<String>, StoreError> {
        let data_base = self.key("data");
        let data: Vec<ObjectMeta> = self.s3.list(Some(&data_base)).try_collect().await.map_err(|e| self.err("listing blob data", e))?;
        let sessions: HashSet<String> = self.list_uploads().await?.into_iter().collect();
        let candidates: Vec<String> = data
            .iter()
            .filter(|m| m.last_modified.timestamp_millis() < before_millis)
            .filter_map(|m| {
                let mut rel = m.location.prefix_match(&data_base)?;
                let id = rel.next()?.as_ref().to_string();
                // Only `data/<session id>` is ours to judge; anything else is left alone.
                (rel.next().is_none() && check_id(&id).is_ok()).then_some(id)
            })
            .filter(|id| !sessions.contains(id))
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // Quarantined pointers keep their (corrupt) data for inspection: it is not orphaned.
        let mut pointers: Vec<Path> = Vec::new();
        for base in [self.key("blobs"), self.key("quarantine")] {
            let listed: Vec<Path> =
                self.s3.list(Some(&base)).map_ok(|m| m.location).try_collect().await.map_err(|e| self.err("listing blob pointers", e))?;
            pointers.extend(listed);
        }
        // Each pointer names its own data object, so with no more data than pointers nothing
        // is orphaned (unless pointers dangle, which fsck reports): skip reading every pointer.
        if data.len() <= pointers.len() {
            return Ok(Vec::new());
        }
        let named: HashSet<String> = futures::stream::iter(pointers)
            .map(|key| async move { self.pointer_at(&key).await })
            .buffer_unordered(SWEEP_READS)
            .try_filter_map(|p| async move { Ok(p.map(|p| p.data)) })
            .try_collect()
            .await?;
        Ok(candidates.into_iter().filter(|id| !named.contains(&Self::data_rel(id))).collect())
    }

    /// The pointer stored at `key`; None when it went meanwhile. An unreadable pointer is an
    /// error: what it names is unknown, so the sweep must not guess.
    async fn pointer_at(&self, key: &Path) -> Result<Option<Pointer>, StoreError> {
        let Some(raw) = self.get_small(key, "blob pointer").await? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| StoreError::io(format!("blob pointer {key} is not valid JSON"), io::Error::new(io::ErrorKind::InvalidData, e)))
    }

    // ---- pointers ----

    async fn read_pointer(&self, digest: &Digest) -> Result<Option<Pointer>, StoreError> {
        let Some(ptr) = self.pointer_at(&self.pointer_key(digest)).await? else {
            self.pointers.remove(digest);
            return Ok(None);
        };
        self.pointers.insert(digest.clone(), ptr.clone());
        Ok(Some(ptr))
    }

    async fn pointer(&self, digest: &Digest) -> Result<Option<Pointer>, StoreError> {
        match self.pointers.get(digest) {
            Some(p) => Ok(Some(p)),
            None => self.read_pointer(digest).await,
        }
    }

    /// Drops this node's copy of a pointer's data (deleted or quarantined: the copy would
    /// outlive its purpose, and a quarantined blob's copy may be the damaged bytes).
    fn forget_local(&self, ptr: &Pointer) {
        if let Some(local) = &self.local {
            local.remove(self.key(&ptr.data).as_ref());
        }
    }

    /// Opens the pointer's data; Ok(None) when the data object is gone.
    async fn open_data(&self, digest: &Digest, ptr: &Pointer, range: Option<BlobRange>) -> Result<Option<BlobReader>, StoreError> {
        let (get_range, len) = match range {
            Some(r) => {
                if r.start > r.end_inclusive || r.end_inclusive >= ptr.size {
                    return Err(StoreError::io(
                        format!("reading blob {digest}"),
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("range {}-{} outside blob of {} bytes", r.start, r.end_inclusive, ptr.size),
                        ),
                    ));
                }
                (Some(GetRange::Bounded(r.start..r.end_inclusive + 1)), r.end_inclusive - r.start + 1)
            }
            None => (None, ptr.size),
        };
        let key = self.key(&ptr.data);
        // A walk over the whole store reads the bucket itself and fills nothing (store_walk).
        let local = self.local.as_ref().filter(|_| !berth_store::in_store_walk());
        if let Some(local) = local {
            if let Some(body) = local.read(key.as_ref(), ptr.size, range).await {
                return Ok(Some(BlobReader { len, body }));
            }
        }
        let opts = GetOptions { range: get_range, ..Default::default() };
        let res = match self.s3.get_opts(&key, opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err(format!("reading blob {digest} ({key})"), e)),
        };
        if res.meta.size != ptr.size {
            return Err(StoreError::io(
                format!("reading blob {digest} ({key})"),
                io::Error::new(io::ErrorKind::InvalidData, format!("data object holds {} bytes, pointer says {}", res.meta.size, ptr.size)),
            ));
        }
        let body = crate::coalesce::coalesce(res.into_stream().map_err(io::Error::from).boxed());
        let body = match (local, range) {
            (Some(local), None) => local.fill(key.as_ref(), ptr.size, self.content_addressed.then_some(digest), body),
            _ => body,
        };
        Ok(Some(BlobReader { len, body }))
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn create_upload(&self, id: &str) -> Result<UploadCursor, StoreError> {
        check_id(id)?;
        self.write_marker(id, &Marker::default()).await?;
        Ok(UploadCursor { len: 0, state: encode_state(id, &SessionState::default())? })
    }

    async fn upload_len(&self, id: &str, cursor: &UploadCursor) -> Result<Option<u64>, StoreError> {
        check_id(id)?;
        let exists = self.exists(&self.marker_key(id), "upload marker").await?;
        Ok(exists.then_some(cursor.len))
    }

    async fn append_upload(&self, id: &str, cursor: &UploadCursor, data: ByteStream) -> Result<UploadCursor, StoreError> {
        check_id(id)?;
        let mut state = decode_state(id, cursor)?;
        self.require_session(id).await?;
        let old_tail_len = tail_len(id, cursor, &state)?;
        let mut pending = Pending::default();
        if let Some(tail) = self.read_tail(id, &state, old_tail_len).await? {
            pending.push(tail);
        }
        let old_tail = state.tail.take();
        let mut created = None;
        let outcome = async {
            let appended = self.pump(id, &mut state, &mut created, &mut pending, data).await?;
            if appended == 0 {
                return Ok(None);
            }
            let new_len = cursor.len + appended;
            if pending.len > 0 {
                // A fresh name per append: the old tail stays intact until this one exists, and
                // a concurrent append from the same cursor cannot overwrite it.
                let name = format!("tail-{new_len}-{}", uuid::Uuid::new_v4().simple());
                self.put_small(&self.tail_key(id, &name), pending.take(pending.len), "upload tail").await?;
                state.tail = Some(name);
            }
            Ok(Some(new_len))
        }
        .await;
        let new_len = match outcome {
            Ok(Some(len)) => len,
            Ok(None) => return Ok(cursor.clone()),
            Err(e) => {
                // No cursor will ever name a multipart upload started by this failed append.
                if let Some(u) = created {
                    let undone = async {
                        self.abort(id, &u).await?;
                        self.write_marker(id, &Marker::default()).await
                    };
                    if let Err(abort_err) = undone.await {
                        tracing::warn!(upload = id, error = %abort_err, "could not abort the multipart upload of a failed append");
                    }
                }
                return Err(e);
            }
        };
        // The cursor this append started from was recorded (the service passes recorded cursors
        // only), so the tail before it is superseded for good; leftovers go with the session.
        if let Some(stale) = std::mem::replace(&mut state.previous_tail, old_tail) {
            if let Err(e) = self.delete_key(&self.tail_key(id, &stale), "old upload tail").await {
                tracing::warn!(upload = id, error = %e, "could not remove a superseded upload tail");
            }
        }
        Ok(UploadCursor { len: new_len, state: encode_state(id, &state)? })
    }

    async fn read_upload(&self, id: &str, _cursor: &UploadCursor) -> Result<Option<ByteStream>, StoreError> {
        check_id(id)?;
        Ok(None)
    }

    async fn commit_upload(&self, id: &str, cursor: &UploadCursor, digest: &Digest) -> Result<(), StoreError> {
        check_id(id)?;
        let mut state = decode_state(id, cursor)?;
        self.require_session(id).await?;
        let tail_len = tail_len(id, cursor, &state)?;
        let tail = self.read_tail(id, &state, tail_len).await?;
        let data_rel = Self::data_rel(id);
        let data_key = self.key(&data_rel);
        match state.multipart.clone() {
            Some(upload_id) => {
                if let Some(tail) = tail {
                    let mut created = None;
                    self.send_part(id, &mut state, &mut created, tail.into(), tail_len).await?;
                }
                let parts = state.parts.iter().map(|e| object_store::multipart::PartId { content_id: e.clone() }).collect();
                match self.s3.complete_multipart(&data_key, &upload_id, parts).await {
                    Ok(_) => {}
                    // Completed by an earlier attempt whose answer was lost; the size check
                    // below tells whether it is this upload's data.
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.err(format!("completing multipart upload of {id}"), e)),
                }
            }
            None => {
                let body = tail.map(PutPayload::from).unwrap_or_default();
                self.put_small(&data_key, body, "blob data").await?;
            }
        }
        let size = match self.s3.head(&data_key).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Err(StoreError::UploadNotFound(id.to_string())),
            Err(e) => return Err(self.err(format!("checking data of upload {id}"), e)),
        };
        if size != cursor.len {
            return Err(corrupt(id, &format!("completed object holds {size} bytes, cursor says {}", cursor.len)));
        }

        // The same digest may already be stored (a concurrent push of the same layer): keep
        // that one and drop this copy rather than orphaning the other's data.
        let duplicate = match self.read_pointer(digest).await? {
            Some(existing) if existing.data != data_rel => self.exists(&self.key(&existing.data), "blob data").await?,
            _ => false,
        };
        if duplicate {
            self.delete_key(&data_key, "duplicate blob data").await?;
        } else {
            let ptr = Pointer { data: data_rel, size };
            let body = serde_json::to_vec(&ptr).map_err(|e| StoreError::io(format!("encoding pointer for {digest}"), e.into()))?;
            self.put_small(&self.pointer_key(digest), body.into(), "blob pointer").await?;
            self.pointers.insert(digest.clone(), ptr);
        }
        // The blob is committed; leftovers are swept later as an orphan session.
        if let Err(e) = self.remove_session_objects(id).await {
            tracing::warn!(upload = id, error = %e, "committed, but could not remove the session objects");
        }
        Ok(())
    }

    async fn delete_upload(&self, id: &str, cursor: Option<&UploadCursor>) -> Result<(), StoreError> {
        check_id(id)?;
        // The marker is removed last (by commit and by this), so without it the multipart
        // upload is already completed or aborted and must not be touched again.
        if let Some(marker) = self.read_marker(id).await? {
            let mut uploads: Vec<String> = marker.multipart.into_iter().collect();
            if let Some(c) = cursor {
                uploads.extend(decode_state(id, c)?.multipart);
            }
            uploads.dedup();
            for u in &uploads {
                self.abort(id, u).await?;
            }
        }
        self.remove_session_objects(id).await
    }

    async fn list_uploads(&self) -> Result<Vec<String>, StoreError> {
        let base = self.key("uploads");
        let listing = self.s3.list_with_delimiter(Some(&base)).await.map_err(|e| self.err("listing uploads", e))?;
        Ok(listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        // Read fresh, not from the cache: callers decide on existence (mounts), and another
        // node may have deleted the blob since this one cached it.
        Ok(self.read_pointer(digest).await?.map(|p| p.size))
    }

    async fn get(&self, digest: &Digest, range: Option<BlobRange>) -> Result<Option<BlobReader>, StoreError> {
        let Some(ptr) = self.pointer(digest).await? else {
            return Ok(None);
        };
        if let Some(reader) = self.open_data(digest, &ptr, range).await? {
            return Ok(Some(reader));
        }
        // The cached pointer may be stale (deleted, perhaps re-pushed elsewhere): ask once more.
        self.pointers.remove(digest);
        let Some(fresh) = self.read_pointer(digest).await? else {
            return Ok(None);
        };
        let reader = self.open_data(digest, &fresh, range).await?;
        if reader.is_none() {
            self.pointers.remove(digest);
            tracing::warn!(%digest, data = %fresh.data, "blob pointer refers to a missing data object");
        }
        Ok(reader)
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, StoreError> {
        let Some(ptr) = self.read_pointer(digest).await? else {
            return Ok(false);
        };
        self.delete_key(&self.pointer_key(digest), "blob pointer").await?;
        self.pointers.remove(digest);
        self.forget_local(&ptr);
        self.delete_key(&self.key(&ptr.data), "blob data").await?;
        Ok(true)
    }

    async fn list_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        let base = self.key("blobs");
        let metas: Vec<_> = self.s3.list(Some(&base)).try_collect().await.map_err(|e| self.err("listing blobs", e))?;
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            let Some(parts) = m.location.prefix_match(&base) else { continue };
            let parts: Vec<_> = parts.map(|p| p.as_ref().to_string()).collect();
            if let [alg, hex] = parts.as_slice() {
                if let Ok(d) = format!("{alg}:{hex}").parse::<Digest>() {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// The pointer moves to `quarantine/<alg>/<hex>` (the data object stays, named by it), so the
    /// blob is unreadable and a new commit of the digest writes a fresh pointer and data object.
    async fn quarantine(&self, digest: &Digest) -> Result<bool, StoreError> {
        let Some(ptr) = self.read_pointer(digest).await? else {
            return Ok(false);
        };
        let raw = serde_json::to_vec(&ptr).map_err(|e| StoreError::io("encoding a blob pointer", io::Error::other(e)))?;
        let aside = self.key(&format!("quarantine/{}/{}", digest.algorithm().name(), digest.hex()));
        self.put_small(&aside, PutPayload::from(raw), "quarantined blob pointer").await?;
        self.delete_key(&self.pointer_key(digest), "blob pointer").await?;
        self.pointers.remove(digest);
        self.forget_local(&ptr);
        Ok(true)
    }

    async fn list_quarantined(&self) -> Result<Vec<Digest>, StoreError> {
        let base = self.key("quarantine");
        let metas: Vec<_> = self.s3.list(Some(&base)).try_collect().await.map_err(|e| self.err("listing quarantine", e))?;
        Ok(metas
            .iter()
            .filter_map(|m| {
                let parts: Vec<_> = m.location.prefix_match(&base)?.map(|p| p.as_ref().to_string()).collect();
                match parts.as_slice() {
                    [alg, hex] => format!("{alg}:{hex}").parse::<Digest>().ok(),
                    _ => None,
                }
            })
            .collect())
    }

    async fn download_url(&self, digest: &Digest, expires: Duration) -> Result<Option<String>, StoreError> {
        let Some(max) = self.presign_expiry else {
            return Ok(None);
        };
        // Read fresh, not from the cache: a URL to data a collector deleted (and a re-push
        // replaced) would send clients to a missing object.
        let Some(ptr) = self.read_pointer(digest).await? else {
            return Ok(None);
        };
        let url = self
            .s3
            .signed_url(Method::GET, &self.key(&ptr.data), expires.min(max))
            .await
            .map_err(|e| self.err(format!("presigning blob {digest}"), e))?;
        Ok(Some(url.to_string()))
    }

    async fn sweep_orphans(&self, before_millis: i64) -> Result<u64, StoreError> {
        let orphans = self.find_orphans(before_millis).await?;
        let mut removed = 0;
        for id in orphans {
            self.delete_key(&self.key(&Self::data_rel(&id)), "orphaned blob data").await?;
            tracing::info!(upload = %id, "removed blob data no pointer names");
            removed += 1;
        }
        Ok(removed)
    }

    async fn forget_cached(&self, digest: &Digest) {
        if self.local.is_none() {
            return;
        }
        if let Ok(Some(ptr)) = self.pointer(digest).await {
            self.forget_local(&ptr);
        }
    }

    fn namespace(&self, name: &str) -> Option<Arc<dyn BlobStore>> {
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}/{name}", self.prefix) };
        Some(Arc::new(S3BlobStore {
            s3: self.s3.clone(),
            parts: self.parts.clone(),
            bucket: self.bucket.clone(),
            prefix,
            part_size: self.part_size,
            presign_expiry: self.presign_expiry,
            pointers: PointerCache::new(POINTER_CACHE_ENTRIES),
            local: self.local.clone(),
            // Named by `sealing::object_name`, not by their bytes.
            content_addressed: false,
        }))
    }
}

// ---- helpers ----

/// Session ids are UUIDs minted by the service; anything else never becomes a key.
fn check_id(id: &str) -> Result<(), StoreError> {
    if id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        Ok(())
    } else {
        Err(StoreError::UploadNotFound(id.to_string()))
    }
}

fn corrupt(id: &str, why: &str) -> StoreError {
    StoreError::io(format!("upload {id}: inconsistent upload state"), io::Error::new(io::ErrorKind::InvalidData, why.to_string()))
}

fn encode_state(id: &str, state: &SessionState) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(state).map_err(|e| StoreError::io(format!("encoding cursor of upload {id}"), e.into()))
}

fn decode_state(id: &str, cursor: &UploadCursor) -> Result<SessionState, StoreError> {
    if cursor.state.is_empty() {
        return Ok(SessionState::default());
    }
    serde_json::from_slice(&cursor.state).map_err(|e| corrupt(id, &format!("cursor state is not an S3 session: {e}")))
}

fn tail_len(id: &str, cursor: &UploadCursor, state: &SessionState) -> Result<u64, StoreError> {
    cursor.len.checked_sub(state.parts_len).ok_or_else(|| corrupt(id, "cursor is shorter than its parts"))
}

fn is_unreachable(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<object_store::client::HttpError>() {
            if matches!(h.kind(), HttpErrorKind::Connect | HttpErrorKind::Timeout) {
                return true;
            }
        }
        source = s.source();
    }
    false
}

fn env_endpoint() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"].iter().find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// object_store expects a virtual-hosted endpoint to name the bucket already.
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> String {
    let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    if host.starts_with(&format!("{bucket}.")) {
        endpoint.to_string()
    } else {
        format!("{scheme}://{bucket}.{host}")
    }
}

/// Bytes received but not yet sent, kept as the received chunks (no copying).
#[derive(Default)]
struct Pending {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Pending {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.chunks.push_back(b);
        }
    }

    /// The first `n` bytes (n ≤ len) as one payload.
    fn take(&mut self, n: usize) -> PutPayload {
        let mut out = Vec::new();
        let mut need = n;
        while need > 0 {
            let Some(mut front) = self.chunks.pop_front() else { break };
            if front.len() > need {
                let rest = front.split_off(need);
                self.chunks.push_front(rest);
            }
            need -= front.len();
            out.push(front);
        }
        self.len -= n - need;
        PutPayload::from_iter(out)
    }
}

type PartOutcome = (usize, object_store::Result<PartId>);

/// The full parts of one append on their way to S3. Each request is a task, so it progresses
/// while the next part's bytes are still arriving; dropping this aborts them.
struct PartsInFlight {
    tasks: JoinSet<PartOutcome>,
    /// Part index of this append's first part.
    first: usize,
    /// ETags by part index − `first`; None until that part is acknowledged.
    etags: Vec<Option<String>>,
}

impl PartsInFlight {
    fn new(first: usize) -> Self {
        PartsInFlight { tasks: JoinSet::new(), first, etags: Vec::new() }
    }

    fn next_index(&self) -> usize {
        self.first + self.etags.len()
    }

    fn start(&mut self, sink: Arc<dyn MultipartStore>, key: Path, upload_id: String, part: PutPayload) {
        let idx = self.next_index();
        self.etags.push(None);
        self.tasks.spawn(async move {
            let res = sink.put_part(&key, &upload_id, idx, part).await;
            (idx, res)
        });
    }

    /// Records a finished part; a failure comes back with the part's index.
    fn settle(&mut self, done: Result<PartOutcome, tokio::task::JoinError>) -> Result<(), (usize, object_store::Error)> {
        let (idx, res) = done.map_err(|source| (self.first, object_store::Error::JoinError { source }))?;
        let part = res.map_err(|e| (idx, e))?;
        if let Some(slot) = self.etags.get_mut(idx - self.first) {
            *slot = Some(part.content_id);
        }
        Ok(())
    }
}

/// Bounded map of immutable pointers; evicts the oldest insertion when full.
struct PointerCache {
    inner: Mutex<(HashMap<Digest, Pointer>, VecDeque<Digest>)>,
    cap: usize,
}

impl PointerCache {
    fn new(cap: usize) -> Self {
        PointerCache { inner: Mutex::new((HashMap::new(), VecDeque::new())), cap }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<Digest, Pointer>, VecDeque<Digest>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn get(&self, d: &Digest) -> Option<Pointer> {
        self.lock().0.get(d).cloned()
    }
    fn insert(&self, d: Digest, p: Pointer) {
        let mut g = self.lock();
        let (map, order) = &mut *g;
        if map.insert(d.clone(), p).is_none() {
            order.push_back(d);
        }
        while map.len() > self.cap {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
    }
    fn remove(&self, d: &Digest) {
        let mut g = self.lock();
        let (map, order) = &mut *g;
        // Removals are rare (deletes, stale entries), so the scan keeps `order` exact cheaply.
        if map.remove(d).is_some() {
            order.retain(|x| x != d);
        }
    }
}

/// The object_store client of a bucket configuration: credentials from the configuration or the
/// usual AWS environment, the endpoint (virtual-hosted unless path style), bounded timeouts and a
/// few quick retries (`retry` overrides them). Every berth use of a bucket — the blob store, and
/// `berth backup --to s3://…` — goes through it, so they reach a bucket the same way.
pub fn bucket_client(cfg: &S3Config, retry: Option<RetryConfig>) -> Result<AmazonS3, StoreError> {
    // `from_env` picks up the usual AWS variables (credentials, web identity, container
    // credentials); anything set explicitly below overrides them.
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&cfg.bucket)
        .with_region(&cfg.region)
        .with_allow_http(cfg.allow_http)
        .with_virtual_hosted_style_request(!cfg.path_style)
        // No SHA-256 of every part for the signature: it costs a pass over every byte sent
        // here and another at the server, which checks it. The bytes are guarded anyway: by
        // TLS on https, and by berth itself, which hashes every blob as it arrives, verifies
        // it again on its first read back (berth-core's integrity) and re-hashes a backup on
        // restore.
        .with_unsigned_payload(true)
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(cfg.allow_http)
                .with_timeout_disabled()
                .with_read_timeout(READ_TIMEOUT)
                .with_connect_timeout(CONNECT_TIMEOUT),
        );
    let endpoint = cfg.endpoint.clone().or_else(env_endpoint);
    if let Some(endpoint) = endpoint {
        let endpoint = if cfg.path_style { endpoint } else { virtual_hosted_endpoint(&endpoint, &cfg.bucket) };
        builder = builder.with_endpoint(endpoint);
    }
    // A few quick retries, not object_store's default of minutes: a request waiting on a
    // bucket that is down should soon become a 503 the client can retry.
    builder =
        builder.with_retry(retry.unwrap_or(RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(10), ..Default::default() }));
    if let (Some(key), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
        builder = builder.with_access_key_id(key).with_secret_access_key(secret);
        if let Some(token) = &cfg.session_token {
            builder = builder.with_token(token);
        }
    }
    builder.build().map_err(|e| {
        // Builder errors name the offending setting, never a credential value.
        StoreError::io(format!("configuring S3 bucket {}", cfg.bucket), io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MIN_PART_SIZE;

    #[test]
    fn pending_splits_without_losing_bytes() {
        let mut p = Pending::default();
        p.push(Bytes::from_static(b"abc"));
        p.push(Bytes::from_static(b"defgh"));
        let first: Vec<u8> = p.take(4).iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(first, b"abcd");
        assert_eq!(p.len, 4);
        let rest: Vec<u8> = p.take(4).iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(rest, b"efgh");
        assert_eq!(p.len, 0);
    }

    #[test]
    fn cache_is_bounded() {
        let c = PointerCache::new(2);
        for i in 0..5u8 {
            c.insert(Digest::sha256_of(&[i]), Pointer { data: format!("data/{i}"), size: 1 });
        }
        assert_eq!(c.lock().0.len(), 2);
        assert!(c.get(&Digest::sha256_of(&[4])).is_some());
        assert!(c.get(&Digest::sha256_of(&[0])).is_none());
    }

    #[tokio::test]
    async fn unreachable_bucket_is_named_without_secrets() {
        let mut cfg = S3Config::new("some-bucket");
        // Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
        cfg.endpoint = Some("http://127.0.0.1:9".into());
        cfg.path_style = true;
        cfg.allow_http = true;
        cfg.access_key_id = Some("AKIDEXAMPLE".into());
        cfg.secret_access_key = Some("wJalrXUtnFEMI-very-secret".into());
        let retry = RetryConfig { max_retries: 0, retry_timeout: Duration::from_secs(1), ..Default::default() };
        let store = S3BlobStore::open_with_retry(cfg, Some(retry)).unwrap();
        let err = store.upload_len("00000000-0000-0000-0000-000000000000", &UploadCursor::default()).await.unwrap_err();
        let text = format!("{err} / {err:?}");
        assert!(text.contains("S3 bucket some-bucket is unreachable"), "{text}");
        assert!(!text.contains("very-secret"), "{text}");
        let err = store.check().await.unwrap_err().to_string();
        assert!(err.contains("unreachable"), "{err}");
    }

    // ---- against the test bucket (scripts/s3-test-server.sh; see tests/blob_suite.rs) ----

    fn bucket_store(part_size: usize) -> S3BlobStore {
        let var = |n: &str| std::env::var(n).unwrap_or_else(|_| panic!("{n} is not set: start scripts/s3-test-server.sh"));
        let mut cfg = S3Config::new(var("BERTH_TEST_S3_BUCKET"));
        cfg.prefix = format!("unit/{}", uuid::Uuid::new_v4().simple());
        cfg.endpoint = Some(var("BERTH_TEST_S3_ENDPOINT"));
        cfg.access_key_id = Some(var("BERTH_TEST_S3_ACCESS_KEY"));
        cfg.secret_access_key = Some(var("BERTH_TEST_S3_SECRET_KEY"));
        cfg.region = "us-east-1".into();
        cfg.path_style = true;
        cfg.allow_http = true;
        cfg.part_size = part_size;
        S3BlobStore::open(cfg).expect("open the test bucket")
    }

    /// Bytes that differ everywhere, so a part out of place changes the digest.
    fn pattern(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn chunked(data: &[u8]) -> ByteStream {
        let chunks: Vec<io::Result<Bytes>> = data.chunks(256 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures::stream::iter(chunks).boxed()
    }

    async fn read_back(store: &S3BlobStore, digest: &Digest) -> Vec<u8> {
        let reader = store.get(digest, None).await.unwrap().expect("committed blob");
        let chunks: Vec<Bytes> = reader.body.try_collect().await.unwrap();
        chunks.concat()
    }

    /// Wraps the part requests: counts those in flight (and the most at once), holds each
    /// until `hold_until` are in flight together (overlap shown by counting, not by timing),
    /// and fails the part with index `fail` once.
    struct Watched {
        inner: Arc<AmazonS3>,
        in_flight: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
        hold_until: usize,
        open: tokio::sync::watch::Sender<bool>,
        fail: Mutex<Option<usize>>,
    }

    fn watched(mut store: S3BlobStore, hold_until: usize, fail: Option<usize>) -> (S3BlobStore, Arc<Watched>) {
        let w = Arc::new(Watched {
            inner: store.s3.clone(),
            in_flight: Default::default(),
            most: Default::default(),
            hold_until,
            open: tokio::sync::watch::channel(false).0,
            fail: Mutex::new(fail),
        });
        store.parts = w.clone();
        (store, w)
    }

    #[async_trait]
    impl MultipartStore for Watched {
        async fn create_multipart(&self, path: &Path) -> object_store::Result<object_store::MultipartId> {
            self.inner.create_multipart(path).await
        }
        async fn put_part(
            &self,
            path: &Path,
            id: &object_store::MultipartId,
            idx: usize,
            data: PutPayload,
        ) -> object_store::Result<PartId> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            if now >= self.hold_until {
                self.open.send_replace(true);
            }
            // Only a safety net: a store that never overlaps parts fails the count, not hangs.
            let mut open = self.open.subscribe();
            let _ = tokio::time::timeout(Duration::from_secs(10), open.wait_for(|o| *o)).await;
            let fail = {
                let mut f = self.fail.lock().unwrap();
                (*f == Some(idx)).then(|| f.take())
            };
            let res = match fail {
                Some(_) => Err(object_store::Error::Generic { store: "test", source: "injected part failure".into() }),
                None => self.inner.put_part(path, id, idx, data).await,
            };
            self.in_flight.fetch_sub(1, SeqCst);
            res
        }
        async fn complete_multipart(
            &self,
            path: &Path,
            id: &object_store::MultipartId,
            parts: Vec<PartId>,
        ) -> object_store::Result<object_store::PutResult> {
            self.inner.complete_multipart(path, id, parts).await
        }
        async fn abort_multipart(&self, path: &Path, id: &object_store::MultipartId) -> object_store::Result<()> {
            self.inner.abort_multipart(path, id).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parts_overlap_up_to_the_bound() {
        use std::sync::atomic::Ordering::SeqCst;
        // The bound is 4 (a literal here, so changing the constant shows in this test).
        let (store, watch) = watched(bucket_store(MIN_PART_SIZE), 4, None);
        let data = pattern(6 * MIN_PART_SIZE + 12_345);
        let id = uuid::Uuid::new_v4().to_string();
        let c0 = store.create_upload(&id).await.unwrap();
        let c1 = store.append_upload(&id, &c0, chunked(&data)).await.unwrap();
        assert_eq!(c1.len, data.len() as u64);
        assert_eq!(decode_state(&id, &c1).unwrap().parts.len(), 6, "six full parts, acknowledged and recorded");
        assert_eq!(watch.most.load(SeqCst), 4, "parts overlapped, never more than the bound");
        assert_eq!(watch.in_flight.load(SeqCst), 0);
        let digest = Digest::sha256_of(&data);
        store.commit_upload(&id, &c1, &digest).await.unwrap();
        let back = read_back(&store, &digest).await;
        assert_eq!(back.len(), data.len());
        assert_eq!(Digest::sha256_of(&back), digest, "the parts landed in order");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_part_keeps_the_previous_cursor() {
        use std::sync::atomic::Ordering::SeqCst;
        // Part 3 fails while parts 1, 2 and 4 of the same append are in flight.
        let (store, watch) = watched(bucket_store(MIN_PART_SIZE), 1, Some(3));
        let data = pattern(5 * MIN_PART_SIZE + 777);
        let split = MIN_PART_SIZE + 100;
        let id = uuid::Uuid::new_v4().to_string();
        let c0 = store.create_upload(&id).await.unwrap();
        let c1 = store.append_upload(&id, &c0, chunked(&data[..split])).await.unwrap();
        let err = store.append_upload(&id, &c1, chunked(&data[split..])).await;
        assert!(err.is_err(), "a failed part fails the append");
        assert_eq!(watch.in_flight.load(SeqCst), 0, "nothing the failed append started is still writing");
        assert_eq!(store.upload_len(&id, &c1).await.unwrap(), Some(c1.len));
        // The session continues from the last recorded cursor.
        let c2 = store.append_upload(&id, &c1, chunked(&data[split..])).await.unwrap();
        assert_eq!(decode_state(&id, &c2).unwrap().parts.len(), 5);
        let digest = Digest::sha256_of(&data);
        store.commit_upload(&id, &c2, &digest).await.unwrap();
        assert_eq!(Digest::sha256_of(&read_back(&store, &digest).await), digest);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweep_removes_old_data_no_pointer_names() {
        let store = bucket_store(MIN_PART_SIZE);
        let data = pattern(MIN_PART_SIZE + 10);
        let digest = Digest::sha256_of(&data);
        let id = uuid::Uuid::new_v4().to_string();
        let c0 = store.create_upload(&id).await.unwrap();
        let c1 = store.append_upload(&id, &c0, chunked(&data)).await.unwrap();
        store.commit_upload(&id, &c1, &digest).await.unwrap();
        let small = Digest::sha256_of(b"small");
        let sid = uuid::Uuid::new_v4().to_string();
        let s0 = store.create_upload(&sid).await.unwrap();
        let s1 = store.append_upload(&sid, &s0, chunked(b"small")).await.unwrap();
        store.commit_upload(&sid, &s1, &small).await.unwrap();
        // A quarantined blob's data is kept for inspection, named by its moved pointer.
        assert!(store.quarantine(&small).await.unwrap());
        assert!(store.get(&small, None).await.unwrap().is_none());
        assert_eq!(store.list_quarantined().await.unwrap(), vec![small.clone()]);

        let data_key = |id: &str| store.key(&S3BlobStore::data_rel(id));
        // What a commit that failed after completing its data leaves behind.
        let orphan = uuid::Uuid::new_v4().to_string();
        store.s3.put(&data_key(&orphan), PutPayload::from_static(b"lost")).await.unwrap();
        // A commit in progress: its data is complete, its pointer not yet written.
        let busy = uuid::Uuid::new_v4().to_string();
        store.create_upload(&busy).await.unwrap();
        store.s3.put(&data_key(&busy), PutPayload::from_static(b"busy")).await.unwrap();
        // Not a session's data: never ours to judge.
        let foreign = store.key("data/notes.txt");
        store.s3.put(&foreign, PutPayload::from_static(b"keep")).await.unwrap();

        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let hour = 3_600_000;
        assert_eq!(store.sweep_orphans(now - hour).await.unwrap(), 0, "within the grace window nothing goes");
        assert!(store.exists(&data_key(&orphan), "data").await.unwrap());
        // An injected cutoff an hour ahead makes everything old, without waiting.
        assert_eq!(store.sweep_orphans(now + hour).await.unwrap(), 1);
        assert!(!store.exists(&data_key(&orphan), "data").await.unwrap(), "the orphan is gone");
        assert!(store.exists(&data_key(&busy), "data").await.unwrap(), "a session's data is spared");
        assert!(store.exists(&foreign, "data").await.unwrap(), "unknown keys are left alone");
        assert!(store.exists(&data_key(&id), "data").await.unwrap());
        assert_eq!(Digest::sha256_of(&read_back(&store, &digest).await), digest, "committed blobs are untouched");
        assert!(store.exists(&data_key(&sid), "data").await.unwrap(), "quarantined data is kept");
        assert_eq!(store.sweep_orphans(now + hour).await.unwrap(), 0, "a second sweep finds nothing");
    }

    #[test]
    fn virtual_hosted_endpoints_name_the_bucket() {
        assert_eq!(virtual_hosted_endpoint("https://minio.local:9000", "b"), "https://b.minio.local:9000");
        assert_eq!(virtual_hosted_endpoint("https://b.minio.local", "b"), "https://b.minio.local");
    }
}
