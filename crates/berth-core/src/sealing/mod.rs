//! Encryption at rest: every blob berth stores is sealed (berth_crypto::segmented) under its
//! repository's encryption scope before it reaches the blob store, and opened on the way out.
//!
//! - A scope is fixed by the repository's encryption settings at creation
//!   (`berth_store::storage_scope`): "aes256" (the registry-managed key), "kms:<arn>",
//!   "dsse:<arn>" (two layers). Each object has its own data keys (crate::kms::blob_keys),
//!   wrapped into the object's header by the scope's key.
//! - Objects live in the blob store's `sealed` namespace (`BlobStore::namespace`), named
//!   [`object_name`]`(scope, digest)`: one object per scope that holds a digest, so
//!   deduplication holds within a key and never across keys. The metadata store records which
//!   scopes hold which digest (`blob_objects`), which is what GC and fsck go by.
//! - Uploads are encrypted as they stream: each request seals the full segments it completes
//!   and keeps the last (at most 64 KiB) back, sealed under the object's data key in the
//!   session's cursor, which the metadata store records after every request; so any node can
//!   continue the session, and nothing of the plaintext is ever written in clear.
//! - The blob store never sees plaintext and the service above never sees ciphertext. Blobs
//!   written before this existed stay in the plain store (scope "") until `berth encrypt`.

mod cursor;
mod encrypt;
mod read;
mod reseal;
mod upload;

pub(crate) use cursor::SealedCursor;
pub use encrypt::{EncryptProgress, EncryptReport};

use std::sync::Arc;

use berth_store::{Algorithm, BlobStore, Digest};
use sha2::{Digest as _, Sha256};

use crate::error::Result;
use crate::kms::blob_keys::sealing_failure;
use crate::Registry;

/// The name an object of `digest` in `scope` has in the sealed namespace.
pub fn object_name(scope: &str, digest: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update(b"berth sealed object v1\n");
    h.update(scope.as_bytes());
    h.update(b"\n");
    h.update(digest.to_string().as_bytes());
    Digest::from_parts(Algorithm::Sha256, &h.finalize())
}

/// Where a repository's blob is stored: sealed in the repository's scope, or (written before
/// encryption at rest) in clear in the plain store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    Sealed { scope: String },
    Plain,
}

/// Where a walk over every recorded object (fsck, scrub, GC of deleted keys, the start-up
/// root key check) has got to: keyset paging by (digest, scope).
#[derive(Default)]
pub(crate) struct ObjectWalk {
    after: Option<(Digest, String)>,
}

impl Registry {
    /// The next page of recorded objects (clear ones included); empty at the end.
    pub(crate) async fn next_objects(&self, walk: &mut ObjectWalk) -> Result<Vec<berth_store::BlobObject>> {
        let page = self.meta.list_blob_objects(walk.after.as_ref().map(|(d, s)| (d, s.as_str())), 500).await?;
        if let Some(last) = page.last() {
            walk.after = Some((last.digest.clone(), last.scope.clone()));
        }
        Ok(page)
    }

    /// The scope a repository's new blobs are written in: its own, or "" (in clear) for an
    /// AES256 repository when the operator leaves AES256 to the storage.
    pub(crate) fn write_scope(&self, settings: &berth_store::RepositorySettings) -> String {
        if settings.encryption_type == berth_store::EncryptionType::Aes256 && self.config.aes256_by_storage {
            return String::new();
        }
        berth_store::storage_scope(settings.encryption_type, settings.kms_key.as_deref())
    }

    /// The blob store's namespace for encrypted objects.
    pub(crate) fn sealed_store(&self) -> Result<&Arc<dyn BlobStore>> {
        self.sealed.as_ref().ok_or_else(|| sealing_failure("this blob store has no place for encrypted objects".into()))
    }
}
