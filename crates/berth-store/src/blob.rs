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

/// Bytes, addressed by content digest, written once.
///
/// An upload is an append-only temporary object named by its session id.
/// `commit_upload` makes it visible under its digest atomically (and
/// durably); the caller has verified the digest before calling. Nothing is
/// readable under a digest before that.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    async fn create_upload(&self, id: &str) -> Result<(), StoreError>;
    /// Current size of the upload, or None when the session has no data object.
    async fn upload_len(&self, id: &str) -> Result<Option<u64>, StoreError>;
    /// Appends `data` at `offset`, which must be the current size. Returns the new size.
    /// On error the object may hold a prefix of `data`; `upload_len` tells how much.
    async fn append_upload(&self, id: &str, offset: u64, data: ByteStream) -> Result<u64, StoreError>;
    /// Reads back what an upload holds so far (to rebuild hash state after a restart).
    async fn read_upload(&self, id: &str) -> Result<ByteStream, StoreError>;
    /// Makes the upload durable and visible as `digest`; removes the session object.
    async fn commit_upload(&self, id: &str, digest: &Digest) -> Result<(), StoreError>;
    async fn delete_upload(&self, id: &str) -> Result<(), StoreError>;
    /// Session ids that have a data object (for sweeping orphans).
    async fn list_uploads(&self) -> Result<Vec<String>, StoreError>;

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError>;
    async fn get(&self, digest: &Digest, range: Option<BlobRange>) -> Result<Option<BlobReader>, StoreError>;
    async fn delete(&self, digest: &Digest) -> Result<bool, StoreError>;
    /// Every stored blob (for fsck); fine to be slow.
    async fn list_blobs(&self) -> Result<Vec<Digest>, StoreError>;
}
