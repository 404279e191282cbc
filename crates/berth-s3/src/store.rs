//! [`BlobStore`] over S3 (the layout and its reasons are in the crate documentation).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_store::{BlobRange, BlobReader, BlobStore, ByteStream, Digest, StoreError, UploadCursor};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::HttpErrorKind;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use serde::{Deserialize, Serialize};

use crate::config::S3Config;

/// S3 allows 10,000 parts; appends keep one free for the tail, which `commit_upload` sends last.
const MAX_FULL_PARTS: usize = 9_999;
/// Pointers are ~100 bytes; this bounds the cache to a few MiB.
const POINTER_CACHE_ENTRIES: usize = 16_384;
/// A body that stalls this long is dead. There is no overall request timeout: a large blob
/// streamed to a slow client may legitimately take hours.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A blob store in one S3 bucket (under a prefix), shareable by any number of berth nodes.
pub struct S3BlobStore {
    s3: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    part_size: usize,
    presign_expiry: Option<Duration>,
    pointers: PointerCache,
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
        // `from_env` picks up the usual AWS variables (credentials, web identity, container
        // credentials); anything set explicitly below overrides them.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_allow_http(cfg.allow_http)
            .with_virtual_hosted_style_request(!cfg.path_style)
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
        builder = builder.with_retry(retry.unwrap_or(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
            ..Default::default()
        }));
        if let (Some(key), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
            builder = builder.with_access_key_id(key).with_secret_access_key(secret);
            if let Some(token) = &cfg.session_token {
                builder = builder.with_token(token);
            }
        }
        let s3 = builder.build().map_err(|e| {
            // Builder errors name the offending setting, never a credential value.
            StoreError::io(format!("configuring S3 bucket {}", cfg.bucket), io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
        })?;
        Ok(S3BlobStore {
            s3: Arc::new(s3),
            bucket: cfg.bucket,
            prefix,
            part_size: cfg.part_size,
            presign_expiry: cfg.presign_expiry,
            pointers: PointerCache::new(POINTER_CACHE_ENTRIES),
        })
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
                what: "blob storage",
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

    /// Sends one full part, creating the multipart upload on the first one.
    async fn send_part(
        &self,
        id: &str,
        state: &mut SessionState,
        created: &mut Option<String>,
        part: PutPayload,
        len: u64,
    ) -> Result<(), StoreError> {
        let data_key = self.key(&Self::data_rel(id));
        let upload_id = match &state.multipart {
            Some(u) => u.clone(),
            None => {
                let u =
                    self.s3.create_multipart(&data_key).await.map_err(|e| self.err(format!("starting multipart upload for {id}"), e))?;
                *created = Some(u.clone());
                // Recorded in the marker too, so a sweep without the cursor can abort it.
                self.write_marker(id, &Marker { multipart: Some(u.clone()) }).await?;
                state.multipart = Some(u.clone());
                u
            }
        };
        let idx = state.parts.len();
        let part = match self.s3.put_part(&data_key, &upload_id, idx, part).await {
            Ok(p) => p,
            Err(object_store::Error::NotFound { .. }) => return Err(StoreError::UploadNotFound(id.to_string())),
            Err(e) => return Err(self.err(format!("writing part {} of upload {id}", idx + 1), e)),
        };
        state.parts.push(part.content_id);
        state.parts_len += len;
        Ok(())
    }

    /// Streams `data` into full parts; what does not fill one is left in `pending`.
    async fn pump(
        &self,
        id: &str,
        state: &mut SessionState,
        created: &mut Option<String>,
        pending: &mut Pending,
        mut data: ByteStream,
    ) -> Result<u64, StoreError> {
        let mut appended = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|e| StoreError::io(format!("receiving data for upload {id}"), e))?;
            appended += chunk.len() as u64;
            pending.push(chunk);
            while pending.len >= self.part_size {
                if state.parts.len() >= MAX_FULL_PARTS {
                    return Err(StoreError::io(
                        format!("upload {id}"),
                        io::Error::new(
                            io::ErrorKind::FileTooLarge,
                            format!("blob exceeds S3's 10,000 parts of {} bytes; raise part_size", self.part_size),
                        ),
                    ));
                }
                let part = pending.take(self.part_size);
                self.send_part(id, state, created, part, self.part_size as u64).await?;
            }
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

    // ---- pointers ----

    async fn read_pointer(&self, digest: &Digest) -> Result<Option<Pointer>, StoreError> {
        let key = self.pointer_key(digest);
        let Some(raw) = self.get_small(&key, "blob pointer").await? else {
            self.pointers.remove(digest);
            return Ok(None);
        };
        let ptr: Pointer = serde_json::from_slice(&raw)
            .map_err(|e| StoreError::io(format!("blob pointer {key} is not valid JSON"), io::Error::new(io::ErrorKind::InvalidData, e)))?;
        self.pointers.insert(digest.clone(), ptr.clone());
        Ok(Some(ptr))
    }

    async fn pointer(&self, digest: &Digest) -> Result<Option<Pointer>, StoreError> {
        match self.pointers.get(digest) {
            Some(p) => Ok(Some(p)),
            None => self.read_pointer(digest).await,
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
        let body = res.into_stream().map_err(io::Error::from).boxed();
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn virtual_hosted_endpoints_name_the_bucket() {
        assert_eq!(virtual_hosted_endpoint("https://minio.local:9000", "b"), "https://b.minio.local:9000");
        assert_eq!(virtual_hosted_endpoint("https://b.minio.local", "b"), "https://b.minio.local");
    }
}
