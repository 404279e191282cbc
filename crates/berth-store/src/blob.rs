use std::io;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::{Digest, StoreError};

pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// An inclusive byte range, already checked against the blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRange {
    pub start: u64,
    pub end_inclusive: u64,
}

/// A readable blob (or part of one): its bytes as a stream and their count.
pub struct BlobReader {
    pub len: u64,
    pub body: ByteStream,
}

/// Where an upload session stands in a blob store. The service records it in the metadata
/// store after every successful append, so that any node can take the session's next request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadCursor {
    /// Bytes the session holds.
    pub len: u64,
    /// The store's own state, opaque to the service: for S3 the multipart upload id, the parts
    /// written so far and where the not-yet-part-sized tail is kept. Empty for the filesystem.
    pub state: Vec<u8>,
}

/// Bytes, addressed by content digest, written once.
///
/// An upload is an append-only temporary object named by its session id.
/// `commit_upload` makes it visible under its digest atomically (and
/// durably); the caller has verified the digest before calling. Nothing is
/// readable under a digest before that.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    async fn create_upload(&self, id: &str) -> Result<UploadCursor, StoreError>;
    /// Current size of the upload, or None when the session has no data any more. `cursor` is
    /// the last recorded one; a store whose own objects know the size better (the filesystem,
    /// after a crash between a write and its record) answers from them.
    async fn upload_len(&self, id: &str, cursor: &UploadCursor) -> Result<Option<u64>, StoreError>;
    /// Appends `data` where `cursor` ends (which must be the upload's current size) and
    /// returns the new cursor. On error the filesystem may hold a prefix of `data`
    /// (`upload_len` tells how much); stores whose cursor is authoritative keep the old one.
    async fn append_upload(&self, id: &str, cursor: &UploadCursor, data: ByteStream) -> Result<UploadCursor, StoreError>;
    /// Reads back what an upload holds so far (to rebuild a lost hash state), or None when the
    /// store cannot (S3 parts are unreadable before the upload completes).
    async fn read_upload(&self, id: &str, cursor: &UploadCursor) -> Result<Option<ByteStream>, StoreError>;
    /// Makes the upload durable and visible as `digest`; removes the session's objects.
    async fn commit_upload(&self, id: &str, cursor: &UploadCursor, digest: &Digest) -> Result<(), StoreError>;
    /// Removes the session's objects. `cursor` is None for an orphan found by `list_uploads`.
    async fn delete_upload(&self, id: &str, cursor: Option<&UploadCursor>) -> Result<(), StoreError>;
    /// Session ids that have a data object (for sweeping orphans).
    async fn list_uploads(&self) -> Result<Vec<String>, StoreError>;

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError>;
    async fn get(&self, digest: &Digest, range: Option<BlobRange>) -> Result<Option<BlobReader>, StoreError>;
    async fn delete(&self, digest: &Digest) -> Result<bool, StoreError>;
    /// Every stored blob (for fsck); fine to be slow.
    async fn list_blobs(&self) -> Result<Vec<Digest>, StoreError>;
    /// Moves a blob whose bytes do not match its digest out of the readable set, keeping the
    /// bytes for inspection: afterwards `stat` and `get` answer None, `list_quarantined` names
    /// it, and a later commit of the same digest stores it afresh. False when it was not stored.
    /// Stores that cannot keep the bytes aside leave the blob where it is (reads then keep
    /// failing verification rather than serving it).
    async fn quarantine(&self, _digest: &Digest) -> Result<bool, StoreError> {
        Ok(false)
    }
    /// Digests of quarantined blobs (including ones stored again since).
    async fn list_quarantined(&self) -> Result<Vec<Digest>, StoreError> {
        Ok(Vec::new())
    }
    /// A URL a client can GET the blob from directly for `expires` (S3 presigned), when the
    /// store offers one.
    async fn download_url(&self, _digest: &Digest, _expires: std::time::Duration) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// Removes stored bytes no digest names any more and that were last written before
    /// `before_millis` (Unix ms; the GC's grace cutoff, so a commit in progress is never raced);
    /// returns how many objects went. Only stores that keep a blob's bytes apart from its
    /// digest (S3: a data object and a pointer) can leave such bytes behind.
    async fn sweep_orphans(&self, _before_millis: i64) -> Result<u64, StoreError> {
        Ok(0)
    }
    /// A store of the same kind beside this one, for bytes of another kind: encrypted objects,
    /// which are named by a digest that is not their bytes' (see berth-core's sealing), so
    /// this store's listings, scrub and fsck never take them for corrupt blobs. The
    /// filesystem's `<root>/<name>`, the bucket's `<prefix>/<name>`. None when the store has
    /// no such place.
    fn namespace(&self, _name: &str) -> Option<std::sync::Arc<dyn BlobStore>> {
        None
    }
    /// Drops this node's cached copy of the blob, if the store keeps one (the S3 store's
    /// node-local cache): a read of it failed a check the store cannot make itself (sealed
    /// objects' authentication), or a decision about the stored bytes is next (quarantine).
    async fn forget_cached(&self, _digest: &Digest) {}
}

tokio::task_local! {
    static STORE_WALK: ();
}

/// Runs `f` as a walk over the whole store (scrub, fsck, backup): stores that keep a node-local
/// cache in front of their storage read the storage itself inside it and copy nothing into the
/// cache, so a walk checks (or saves) the stored bytes and does not evict what clients pull.
pub async fn store_walk<F: std::future::Future>(f: F) -> F::Output {
    STORE_WALK.scope((), f).await
}

/// Whether the current task is inside [`store_walk`].
pub fn in_store_walk() -> bool {
    STORE_WALK.try_with(|_| ()).is_ok()
}
