//! Writing a blob's bytes into another scope: a mount into a repository under another key,
//! and `berth encrypt` sealing blobs written in clear before encryption at rest.

use std::sync::{Arc, Mutex};

use berth_store::{Digest, RepositoryBlobObject};
use futures::StreamExt;

use super::{object_name, BlobLocation};
use crate::error::Result;
use crate::kms::blob_keys::sealing_failure;
use crate::Registry;
use berth_store::DigestHasher;

impl Registry {
    /// Makes sure `scope` holds an object of `digest`, copying it from where `source` says a
    /// repository has it. False when the source bytes are gone (the caller falls back to an
    /// upload). The caller holds the digest's locks.
    pub(crate) async fn provide_object(&self, source: &RepositoryBlobObject, digest: &Digest, scope: &str) -> Result<bool> {
        let held = self.meta.blob_objects(digest).await?.iter().any(|o| o.scope == scope);
        let stored = match scope {
            "" => self.blobs.stat(digest).await?,
            _ => self.sealed_store()?.stat(&object_name(scope, digest)).await?,
        };
        if held && stored.is_some() {
            return Ok(true);
        }
        let from = if source.sealed { BlobLocation::Sealed { scope: source.scope.clone() } } else { BlobLocation::Plain };
        self.reseal(&from, digest, source.size, scope).await
    }

    /// Copies `digest` (`size` bytes) from `from` into a new object in `to_scope`, checking
    /// every byte against the digest on the way. False when the source is not stored.
    pub(crate) async fn reseal(&self, from: &BlobLocation, digest: &Digest, size: u64, to_scope: &str) -> Result<bool> {
        let reader = match from {
            BlobLocation::Sealed { scope } => self.sealed_get(scope, digest, size, None).await?,
            BlobLocation::Plain => self.blobs.get(digest, None).await?,
        };
        let Some(reader) = reader else { return Ok(false) };
        let id = uuid::Uuid::new_v4().to_string();
        // Marked busy, so a collector's sweep of sessions without a row leaves this one be.
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), Default::default());
        let result = self.reseal_into(&id, reader.body, digest, size, to_scope).await;
        if result.is_err() {
            if let Err(e) = self.sealed_store()?.delete_upload(&id, None).await {
                tracing::warn!(upload = %id, error = %e, "removing an unfinished copy");
            }
        }
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        result.map(|()| true)
    }

    async fn reseal_into(&self, id: &str, body: berth_store::ByteStream, digest: &Digest, size: u64, to_scope: &str) -> Result<()> {
        let cursor = self.sealed_create_upload(id, to_scope).await?;
        let hasher = Arc::new(Mutex::new(DigestHasher::for_digest(digest)));
        let tap = hasher.clone();
        let tapped = body
            .map(move |chunk| {
                if let Ok(c) = &chunk {
                    tap.lock().unwrap_or_else(|p| p.into_inner()).update(c);
                }
                chunk
            })
            .boxed();
        let cursor = self.sealed_append(id, &cursor, tapped).await?;
        let actual = Arc::try_unwrap(hasher)
            .map_err(|_| sealing_failure(format!("copying {digest}: the hash is still in use")))?
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .finish();
        if cursor.len != size || &actual != digest {
            return Err(sealing_failure(format!("copying {digest}: the stored bytes ({} bytes) hash to {actual}", cursor.len)));
        }
        self.sealed_commit(id, &cursor, digest).await?;
        Ok(())
    }
}
