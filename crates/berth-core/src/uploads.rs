//! Blob upload sessions: hashed once while written, verified, then committed.
//!
//! After every append the session's row records the blob store's cursor and
//! the serialized sha256 state over exactly the bytes written, so the next
//! request can be served by any node (or by this one after a restart) without
//! reading the bytes back. The in-memory state is only a shortcut for the node
//! that wrote last; the filesystem store can still rebuild a lost state by
//! reading its bytes once.

use std::sync::{Arc, Mutex};

use berth_store::{Algorithm, ByteStream, Digest, StoreError, UploadCursor, UploadRow};
use futures::StreamExt;
use sha2::{Digest as _, Sha512};

use crate::error::Result;
use crate::hash_state::ResumableSha256;
use crate::names::Repo;
use crate::{Registry, RegistryError};

#[derive(Default)]
pub(crate) struct UploadState {
    /// The hash over exactly the bytes the recorded cursor covers; None until (re)built.
    hashed: Option<ResumableSha256>,
}

/// ECR layer-part sessions whose last part was below the minimum part size.
#[derive(Default)]
pub(crate) struct SmallParts(std::sync::Mutex<std::collections::HashSet<String>>);

/// Where an upload session stands.
#[derive(Debug, Clone)]
pub struct UploadStatus {
    pub id: String,
    pub repository: String,
    /// Bytes received so far.
    pub offset: u64,
}

fn blob_upload_unknown(e: StoreError) -> RegistryError {
    match e {
        StoreError::UploadNotFound(_) => RegistryError::BlobUploadUnknown,
        other => RegistryError::Store(other),
    }
}

/// A session as read for one request: its row and the cursor to write at (the row's
/// cursor, with the length the blob store reports).
struct Session {
    row: UploadRow,
    cursor: UploadCursor,
}

impl Registry {
    pub async fn start_upload(&self, repo: &Repo) -> Result<UploadStatus> {
        let target = self.push_target(repo).await?;
        let scope = self.write_scope(&target.settings);
        // A disabled key refuses the push before a session exists.
        self.check_scope_key(&scope).await?;
        let id = uuid::Uuid::new_v4().to_string();
        // Data object first, row second would leave an unfindable multipart upload on a
        // crash; row first leaves a row without data, which reads as an ended session.
        let mut row = UploadRow {
            id: id.clone(),
            repository: repo.key().clone(),
            started_at: self.now(),
            cursor: UploadCursor::default(),
            hash_state: None,
        };
        self.meta.create_upload(&row).await?;
        match self.sealed_create_upload(&id, &scope).await {
            Ok(cursor) => {
                row.cursor = cursor;
                let hash = ResumableSha256::new();
                self.meta.record_upload_progress(&id, 0, &row.cursor, &hash.to_bytes()).await?;
            }
            Err(e) => {
                let _ = self.meta.delete_upload(&id).await;
                return Err(e);
            }
        }
        Ok(UploadStatus { id, repository: repo.to_string(), offset: 0 })
    }

    fn session_state(&self, id: &str) -> Arc<tokio::sync::Mutex<UploadState>> {
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    /// Drops the session's in-memory state once no request on this node holds it: the next
    /// request (on any node) starts from the recorded state, and a node never accumulates
    /// sessions that other nodes finished.
    fn release_session_state(&self, id: &str, state: Arc<tokio::sync::Mutex<UploadState>>) {
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: the map's and ours; anyone else would be waiting on the mutex.
        if Arc::strong_count(&state) == 2 && map.get(id).is_some_and(|s| Arc::ptr_eq(s, &state)) {
            map.remove(id);
        }
    }

    fn forget_session_state(&self, id: &str) {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        self.set_last_part_small(id, false);
    }

    /// The session, checked to belong to `repo`, with the cursor to continue at.
    async fn session(&self, repo: &Repo, id: &str) -> Result<Session> {
        let row = match self.meta.get_upload(id).await? {
            Some(r) if r.repository == *repo.key() => r,
            _ => return Err(RegistryError::BlobUploadUnknown),
        };
        match self.sealed_upload_len(id, &row.cursor).await? {
            Some(len) => {
                let cursor = UploadCursor { len, state: row.cursor.state.clone() };
                Ok(Session { row, cursor })
            }
            None => {
                // Data gone (committed just before a crash, or swept): the session is over.
                self.meta.delete_upload(id).await?;
                Err(RegistryError::BlobUploadUnknown)
            }
        }
    }

    /// Checks the session's row before any in-memory state is made for it, so unknown ids cost
    /// nothing. The blob store is asked once, under the locks (`session`), not here too.
    async fn locked_session(&self, repo: &Repo, id: &str) -> Result<Arc<tokio::sync::Mutex<UploadState>>> {
        match self.meta.get_upload(id).await? {
            Some(r) if r.repository == *repo.key() => Ok(self.session_state(id)),
            _ => Err(RegistryError::BlobUploadUnknown),
        }
    }

    pub async fn upload_status(&self, repo: &Repo, id: &str) -> Result<UploadStatus> {
        let s = self.session(repo, id).await?;
        Ok(UploadStatus { id: s.row.id, repository: s.row.repository.name, offset: s.cursor.len })
    }

    /// Makes `state.hashed` cover exactly the session's `cursor.len` bytes: from memory, from
    /// the recorded state, or (filesystem only) by reading the bytes back once.
    /// The hash over the session's bytes so far: this node's, the recorded one, or rebuilt by
    /// reading the bytes back. Left in `state` for the next request as well.
    async fn ensure_hashed(&self, id: &str, state: &mut UploadState, session: &Session) -> Result<ResumableSha256> {
        let len = session.cursor.len;
        if let Some(h) = state.hashed.as_ref().filter(|h| h.len() == len) {
            return Ok(h.clone());
        }
        if let Some(recorded) = session.row.hash_state.as_deref().and_then(ResumableSha256::from_bytes) {
            if recorded.len() == len {
                state.hashed = Some(recorded.clone());
                return Ok(recorded);
            }
        }
        if len == 0 {
            state.hashed = Some(ResumableSha256::new());
            return Ok(ResumableSha256::new());
        }
        let Some(mut data) = self.sealed_read_upload(id, &session.cursor).await? else {
            // The store cannot read back and no state covers its bytes: the session cannot go on.
            tracing::warn!(upload = id, len, "upload hash state lost; the client must start the upload again");
            return Err(RegistryError::BlobUploadUnknown);
        };
        let mut hasher = ResumableSha256::new();
        while let Some(chunk) = data.next().await {
            hasher.update(&chunk.map_err(|e| StoreError::io(format!("re-reading upload {id}"), e))?);
        }
        state.hashed = Some(hasher.clone());
        Ok(hasher)
    }

    /// Appends a chunk. `start` is the chunk's first byte offset when the client said
    /// (Content-Range); it must be where the upload currently ends.
    pub async fn append_upload(&self, repo: &Repo, id: &str, start: Option<u64>, body: ByteStream) -> Result<UploadStatus> {
        let state_arc = self.locked_session(repo, id).await?;
        let result = self.append_locked(repo, id, start, body, &state_arc).await;
        self.release_session_state(id, state_arc);
        if let Err(RegistryError::Store(e)) = &result {
            if e.is_disk_full() {
                // The session filled the disk: drop it whole so the space returns at once and
                // every other write recovers without an operator (the client restarts its upload).
                tracing::warn!(upload = id, "the disk is full: discarding the upload that filled it");
                if let Err(e) = self.discard_upload(id).await {
                    tracing::error!(upload = id, error = %e, "discarding the upload that filled the disk");
                }
            }
        }
        result
    }

    async fn append_locked(
        &self,
        repo: &Repo,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
        state_arc: &tokio::sync::Mutex<UploadState>,
    ) -> Result<UploadStatus> {
        let mut state = state_arc.lock().await;
        let _cluster_guard = self.meta.lock_upload(id, None).await?;
        // Read again under the locks: another request (on any node) may have appended meanwhile.
        let session = self.session(repo, id).await?;
        if let Some(start) = start {
            if start != session.cursor.len {
                return Err(RegistryError::UploadRangeInvalid { requested: start, current: session.cursor.len });
            }
        }
        let (cursor, _) = self.write_hashed(id, &mut state, &session, body, true).await?;
        Ok(UploadStatus { id: session.row.id, repository: session.row.repository.name, offset: cursor.len })
    }

    /// Writes `body` at the session's end, hashing it on the way, and (with `record`) records
    /// the new cursor and hash state. Returns the new cursor and the hash over all its bytes.
    async fn write_hashed(
        &self,
        id: &str,
        state: &mut UploadState,
        session: &Session,
        body: ByteStream,
        record: bool,
    ) -> Result<(UploadCursor, ResumableSha256)> {
        let hasher = self.ensure_hashed(id, state, session).await?;
        // Taken: the hash moves on with the bytes written below and is put back with the new cursor.
        state.hashed = None;
        // Hash each chunk as it streams to storage: one pass over the bytes.
        let shared = Arc::new(Mutex::new(hasher));
        let tap = shared.clone();
        let hashed_body = body
            .map(move |chunk| {
                if let Ok(c) = &chunk {
                    tap.lock().unwrap_or_else(|p| p.into_inner()).update(c);
                }
                chunk
            })
            .boxed();
        match self.sealed_append(id, &session.cursor, hashed_body).await {
            Ok(cursor) => {
                // The stream (and its clone of the hasher) is dropped by now.
                let hasher = Arc::try_unwrap(shared).map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner())).ok();
                let Some(hasher) = hasher.filter(|h| h.len() == cursor.len) else {
                    return Err(RegistryError::Store(StoreError::io(
                        format!("upload {id}: hashed bytes differ from stored bytes"),
                        std::io::Error::other("hash state out of step"),
                    )));
                };
                let recorded = !record || self.meta.record_upload_progress(id, session.row.cursor.len, &cursor, &hasher.to_bytes()).await?;
                if !recorded {
                    // Another request moved the session while this one wrote: its record wins.
                    let current = self.meta.get_upload(id).await?.map(|r| r.cursor.len).unwrap_or_default();
                    return Err(RegistryError::UploadRangeInvalid { requested: session.cursor.len, current });
                }
                // An unrecorded hash covers bytes another node may overwrite if this commit
                // fails; only a recorded one may be reused.
                state.hashed = record.then(|| hasher.clone());
                Ok((cursor, hasher))
            }
            Err(e) => {
                // What reached storage may differ from what was hashed; rebuild next time.
                state.hashed = None;
                Err(match e {
                    RegistryError::Store(StoreError::OffsetMismatch { requested, current }) => {
                        RegistryError::UploadRangeInvalid { requested, current }
                    }
                    RegistryError::Store(other) => blob_upload_unknown(other),
                    other => other,
                })
            }
        }
    }

    /// Finishes an upload with an optional final chunk; the blob appears only if it hashes to `digest`.
    pub async fn complete_upload(
        &self,
        repo: &Repo,
        id: &str,
        digest: &Digest,
        start: Option<u64>,
        body: Option<ByteStream>,
    ) -> Result<Digest> {
        let state_arc = self.locked_session(repo, id).await?;
        let mut state = state_arc.lock().await;
        // Lock order, everywhere: session mutex, in-process digest lock, then the cluster's
        // session and blob locks (one connection). A collector on any node deleting these
        // bytes, a mount of them, and this commit never interleave; neither do two requests
        // on this session on different nodes.
        let _digest_guard = self.digest_locks.lock(digest).await;
        let _cluster_guard = self.meta.lock_upload(id, Some(digest)).await?;
        let mut session = self.session(repo, id).await?;
        if let Some(start) = start {
            if start != session.cursor.len {
                return Err(RegistryError::UploadRangeInvalid { requested: start, current: session.cursor.len });
            }
        }
        let hasher = match body {
            // Not recorded: the session ends here. Should the commit fail, the recorded cursor
            // is the one before this body, which is where the client resumes (the filesystem
            // re-reads its longer file; S3 rewrites the parts past the recorded cursor).
            Some(body) => {
                let (cursor, hasher) = self.write_hashed(id, &mut state, &session, body, false).await?;
                session.row.cursor = cursor.clone();
                session.cursor = cursor;
                hasher
            }
            None => self.ensure_hashed(id, &mut state, &session).await?,
        };
        let actual = match digest.algorithm() {
            Algorithm::Sha256 => Digest::from_parts(Algorithm::Sha256, &hasher.finalize()),
            // Rare: hash the whole upload once more with sha512 rather than hash every upload twice.
            Algorithm::Sha512 => self.rehash_sha512(id, &session.cursor).await?,
        };
        if &actual != digest {
            drop(state);
            self.discard_upload(id).await?;
            return Err(RegistryError::DigestInvalid(format!("uploaded content has digest {actual}, not {digest}")));
        }
        self.publish_upload(repo, id, &session.cursor, digest).await?;
        drop(state);
        self.forget_session_state(id);
        Ok(actual)
    }

    async fn rehash_sha512(&self, id: &str, cursor: &UploadCursor) -> Result<Digest> {
        let mut hasher = Sha512::new();
        let Some(mut data) = self.sealed_read_upload(id, cursor).await? else {
            return Err(RegistryError::DigestInvalid("sha512 digests need blob storage that can read an upload back; use sha256".into()));
        };
        while let Some(chunk) = data.next().await {
            hasher.update(&chunk.map_err(|e| StoreError::io(format!("re-reading upload {id}"), e))?);
        }
        Ok(Digest::from_parts(Algorithm::Sha512, &hasher.finalize()))
    }

    /// Monolithic upload (`POST ?digest=` with the body): a session opened and completed at once.
    pub async fn upload_blob(&self, repo: &Repo, digest: &Digest, body: ByteStream) -> Result<Digest> {
        let status = self.start_upload(repo).await?;
        match self.complete_upload(repo, &status.id, digest, None, Some(body)).await {
            Ok(d) => Ok(d),
            Err(e) => {
                // A failed monolithic upload leaves nothing behind (DIGEST_INVALID already discarded it).
                let _ = self.discard_upload(&status.id).await;
                Err(e)
            }
        }
    }

    /// Stores a blob whose bytes their source checked against `digest` as they streamed (a
    /// sha256 digest checked by `berth_oci_client`'s blob stream, which withholds the chunk
    /// completing a blob that does not match): written once, without hashing them again. A
    /// body that fails, or does not hold exactly `size` bytes, commits nothing.
    pub(crate) async fn upload_verified_blob(&self, repo: &Repo, digest: &Digest, size: u64, body: ByteStream) -> Result<()> {
        let status = self.start_upload(repo).await?;
        let result = self.commit_verified(repo, &status.id, digest, size, body).await;
        if result.is_err() {
            let _ = self.discard_upload(&status.id).await;
        }
        result
    }

    async fn commit_verified(&self, repo: &Repo, id: &str, digest: &Digest, size: u64, body: ByteStream) -> Result<()> {
        let Some(row) = self.meta.get_upload(id).await? else { return Err(RegistryError::BlobUploadUnknown) };
        // A sealed append keeps what arrived before a broken stream (an upload resumes from
        // there); this one must know the stream broke.
        let broke = Arc::new(Mutex::new(None::<std::io::Error>));
        let tap = broke.clone();
        let body = body
            .map(move |chunk| {
                if let Err(e) = &chunk {
                    *tap.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::io::Error::new(e.kind(), e.to_string()));
                }
                chunk
            })
            .boxed();
        let cursor = self.sealed_append(id, &row.cursor, body).await?;
        if let Some(e) = broke.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(RegistryError::Store(StoreError::io(format!("receiving blob {digest}"), e)));
        }
        if cursor.len != size {
            return Err(RegistryError::DigestInvalid(format!("received {} of the {size} bytes of {digest}", cursor.len)));
        }
        let _digest_guard = self.digest_locks.lock(digest).await;
        let _cluster_guard = self.meta.lock_upload(id, Some(digest)).await?;
        self.publish_upload(repo, id, &cursor, digest).await
    }

    /// The last step of every upload whose bytes were verified against `digest` (the caller
    /// holds the digest and session locks): the object made visible under its digest, linked
    /// into the repository, the session gone.
    async fn publish_upload(&self, repo: &Repo, id: &str, cursor: &UploadCursor, digest: &Digest) -> Result<()> {
        let scope = self.sealed_commit(id, cursor, digest).await.map_err(|e| match e {
            RegistryError::Store(e) => blob_upload_unknown(e),
            other => other,
        })?;
        // Verified as it arrived; this also lifts the quarantine of a clear blob of this digest.
        self.integrity.mark_verified(digest);
        self.meta.link_blob_in(repo.key(), digest, cursor.len, self.now(), &scope).await?;
        self.meta.delete_upload(id).await?;
        Ok(())
    }

    pub async fn cancel_upload(&self, repo: &Repo, id: &str) -> Result<()> {
        self.session(repo, id).await?;
        self.discard_upload(id).await
    }

    pub(crate) fn last_part_small(&self, id: &str) -> bool {
        self.small_parts.0.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    pub(crate) fn set_last_part_small(&self, id: &str, small: bool) {
        let mut set = self.small_parts.0.lock().unwrap_or_else(|p| p.into_inner());
        if small {
            set.insert(id.to_string());
        } else {
            set.remove(id);
        }
    }

    pub(crate) async fn discard_upload(&self, id: &str) -> Result<()> {
        let cursor = self.meta.get_upload(id).await?.map(|r| r.cursor);
        self.delete_upload_data(id, cursor.as_ref()).await?;
        self.meta.delete_upload(id).await?;
        self.forget_session_state(id);
        Ok(())
    }
}
