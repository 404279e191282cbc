//! Blob upload sessions: hashed once while written, verified, then committed.
//!
//! The sha256 state of each open session is kept in memory next to the
//! session; after a restart (or a failed write) it is rebuilt by reading the
//! session's bytes back once, so sessions survive restarts without a
//! serializable hash state.

use std::sync::{Arc, Mutex};

use berth_store::{Algorithm, ByteStream, Digest, StoreError, UploadRow};
use futures::StreamExt;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::Result;
use crate::names::Repo;
use crate::{Registry, RegistryError};

#[derive(Default)]
pub(crate) struct UploadState {
    /// Bytes hashed so far and the hash over exactly those bytes; None until (re)built.
    hashed: Option<(u64, Sha256)>,
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

impl Registry {
    pub async fn start_upload(&self, repo: &Repo) -> Result<UploadStatus> {
        self.push_target(repo).await?;
        let id = uuid::Uuid::new_v4().to_string();
        // Row first, data object second: a data object without a row is then always an
        // orphan the collector may sweep, and a row without data reads as an ended session.
        let row = UploadRow { id: id.clone(), repository: repo.key().clone(), started_at: self.now() };
        self.meta.create_upload(&row).await?;
        if let Err(e) = self.blobs.create_upload(&id).await {
            let _ = self.meta.delete_upload(&id).await;
            return Err(e.into());
        }
        Ok(UploadStatus { id, repository: repo.to_string(), offset: 0 })
    }

    fn session_state(&self, id: &str) -> Arc<tokio::sync::Mutex<UploadState>> {
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    fn forget_session_state(&self, id: &str) {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        self.set_last_part_small(id, false);
    }

    /// The session, checked to belong to `repo`, with its current size.
    async fn session(&self, repo: &Repo, id: &str) -> Result<(UploadRow, u64)> {
        let row = match self.meta.get_upload(id).await? {
            Some(r) if r.repository == *repo.key() => r,
            _ => return Err(RegistryError::BlobUploadUnknown),
        };
        match self.blobs.upload_len(id).await? {
            Some(len) => Ok((row, len)),
            None => {
                // Data gone (committed just before a crash, or swept): the session is over.
                self.meta.delete_upload(id).await?;
                Err(RegistryError::BlobUploadUnknown)
            }
        }
    }

    /// Validates the session before any in-memory state is made for it, so unknown ids cost nothing.
    async fn locked_session(&self, repo: &Repo, id: &str) -> Result<(Arc<tokio::sync::Mutex<UploadState>>, UploadRow, u64)> {
        let (row, len) = self.session(repo, id).await?;
        Ok((self.session_state(id), row, len))
    }

    pub async fn upload_status(&self, repo: &Repo, id: &str) -> Result<UploadStatus> {
        let (row, len) = self.session(repo, id).await?;
        Ok(UploadStatus { id: row.id, repository: row.repository.name, offset: len })
    }

    async fn ensure_hashed(&self, id: &str, state: &mut UploadState, len: u64) -> Result<()> {
        if matches!(state.hashed, Some((n, _)) if n == len) {
            return Ok(());
        }
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        let mut data = self.blobs.read_upload(id).await.map_err(blob_upload_unknown)?;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|e| StoreError::io(format!("re-reading upload {id}"), e))?;
            hasher.update(&chunk);
            n += chunk.len() as u64;
        }
        state.hashed = Some((n, hasher));
        Ok(())
    }

    /// Appends a chunk. `start` is the chunk's first byte offset when the client said
    /// (Content-Range); it must be where the upload currently ends.
    pub async fn append_upload(&self, repo: &Repo, id: &str, start: Option<u64>, body: ByteStream) -> Result<UploadStatus> {
        let (state_arc, row, len) = self.locked_session(repo, id).await?;
        let mut state = state_arc.lock().await;
        let (row, len) = if self.blobs.upload_len(id).await? == Some(len) { (row, len) } else { self.session(repo, id).await? };
        if let Some(start) = start {
            if start != len {
                return Err(RegistryError::UploadRangeInvalid { requested: start, current: len });
            }
        }
        let offset = self.write_hashed(id, &mut state, len, body).await?;
        Ok(UploadStatus { id: row.id, repository: row.repository.name, offset })
    }

    async fn write_hashed(&self, id: &str, state: &mut UploadState, len: u64, body: ByteStream) -> Result<u64> {
        self.ensure_hashed(id, state, len).await?;
        let (_, hasher) = state.hashed.take().expect("hash state was just built");
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
        let written = self.blobs.append_upload(id, len, hashed_body).await;
        match written {
            Ok(new_len) => {
                let hasher = Arc::try_unwrap(shared).map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()));
                // The stream (and its clone of the hasher) is dropped by now; if not, rebuild later.
                state.hashed = hasher.ok().map(|h| (new_len, h));
                Ok(new_len)
            }
            Err(e) => {
                // What reached the disk may differ from what was hashed; rebuild from disk next time.
                state.hashed = None;
                Err(match e {
                    StoreError::OffsetMismatch { requested, current } => RegistryError::UploadRangeInvalid { requested, current },
                    other => blob_upload_unknown(other),
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
        let (state_arc, _, _) = self.locked_session(repo, id).await?;
        let mut state = state_arc.lock().await;
        let (_row, mut len) = self.session(repo, id).await?;
        if let Some(start) = start {
            if start != len {
                return Err(RegistryError::UploadRangeInvalid { requested: start, current: len });
            }
        }
        if let Some(body) = body {
            len = self.write_hashed(id, &mut state, len, body).await?;
        }
        self.ensure_hashed(id, &mut state, len).await?;
        let actual = match digest.algorithm() {
            Algorithm::Sha256 => {
                let (_, h) = state.hashed.as_ref().expect("hash state was just built");
                Digest::from_parts(Algorithm::Sha256, &h.clone().finalize())
            }
            // Rare: hash the whole upload once more with sha512 rather than hash every upload twice.
            Algorithm::Sha512 => self.rehash_sha512(id).await?,
        };
        if &actual != digest {
            drop(state);
            self.discard_upload(id).await?;
            return Err(RegistryError::DigestInvalid(format!("uploaded content has digest {actual}, not {digest}")));
        }
        {
            let _guard = self.digest_locks.lock(digest).await;
            self.blobs.commit_upload(id, digest).await.map_err(blob_upload_unknown)?;
            self.meta.link_blob(repo.key(), digest, len, self.now()).await?;
        }
        self.meta.delete_upload(id).await?;
        drop(state);
        self.forget_session_state(id);
        Ok(actual)
    }

    async fn rehash_sha512(&self, id: &str) -> Result<Digest> {
        let mut hasher = Sha512::new();
        let mut data = self.blobs.read_upload(id).await.map_err(blob_upload_unknown)?;
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
        self.blobs.delete_upload(id).await?;
        self.meta.delete_upload(id).await?;
        self.forget_session_state(id);
        Ok(())
    }
}
