//! The GC's sweep of stored bytes no digest names (`BlobStore::sweep_orphans`), on the
//! backends `common` selects. What the S3 sweep removes is tested in berth-s3 against a
//! bucket; here: the GC asks once per real run, with its grace cutoff, and reports the count.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_core::{GcOptions, RegistryConfig, RegistryRef, Repo, RepositoryName};
use berth_store::{BlobRange, BlobReader, BlobStore, ByteStream, Digest, StoreError, UploadCursor};
use futures::TryStreamExt;

mod common;
use common::FakeClock;

/// The backend's blob store, recording each sweep's cutoff and reporting `extra` more
/// removals than the store made (or failing, when `fail` is set).
struct Watched {
    inner: Arc<dyn BlobStore>,
    cutoffs: Mutex<Vec<i64>>,
    extra: u64,
    fail: AtomicBool,
}

#[async_trait]
impl BlobStore for Watched {
    async fn create_upload(&self, id: &str) -> Result<UploadCursor, StoreError> {
        self.inner.create_upload(id).await
    }
    async fn upload_len(&self, id: &str, cursor: &UploadCursor) -> Result<Option<u64>, StoreError> {
        self.inner.upload_len(id, cursor).await
    }
    async fn append_upload(&self, id: &str, cursor: &UploadCursor, data: ByteStream) -> Result<UploadCursor, StoreError> {
        self.inner.append_upload(id, cursor, data).await
    }
    async fn read_upload(&self, id: &str, cursor: &UploadCursor) -> Result<Option<ByteStream>, StoreError> {
        self.inner.read_upload(id, cursor).await
    }
    async fn commit_upload(&self, id: &str, cursor: &UploadCursor, digest: &Digest) -> Result<(), StoreError> {
        self.inner.commit_upload(id, cursor, digest).await
    }
    async fn delete_upload(&self, id: &str, cursor: Option<&UploadCursor>) -> Result<(), StoreError> {
        self.inner.delete_upload(id, cursor).await
    }
    async fn list_uploads(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list_uploads().await
    }
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        self.inner.stat(digest).await
    }
    async fn get(&self, digest: &Digest, range: Option<BlobRange>) -> Result<Option<BlobReader>, StoreError> {
        self.inner.get(digest, range).await
    }
    async fn delete(&self, digest: &Digest) -> Result<bool, StoreError> {
        self.inner.delete(digest).await
    }
    async fn list_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        self.inner.list_blobs().await
    }
    fn namespace(&self, name: &str) -> Option<Arc<dyn BlobStore>> {
        self.inner.namespace(name)
    }
    async fn download_url(&self, digest: &Digest, expires: Duration) -> Result<Option<String>, StoreError> {
        self.inner.download_url(digest, expires).await
    }
    async fn sweep_orphans(&self, before_millis: i64) -> Result<u64, StoreError> {
        self.cutoffs.lock().unwrap().push(before_millis);
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable { what: "blob storage", detail: "injected sweep failure".into() });
        }
        Ok(self.inner.sweep_orphans(before_millis).await? + self.extra)
    }
}

#[tokio::test]
async fn gc_sweeps_orphans_once_per_run_with_its_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicI64::new(1_000_000_000)));
    let (meta, inner) = common::stores(dir.path()).await;
    let blobs = Arc::new(Watched { inner, cutoffs: Mutex::new(Vec::new()), extra: 2, fail: AtomicBool::new(false) });
    let config = RegistryConfig { gc_grace_millis: 60_000, ..Default::default() };
    let r = berth_core::Registry::new(meta, blobs.clone(), clock.clone(), config).with_key_service(common::root_key());
    let repo =
        Repo::new(&RegistryRef { account: "123456789012".into(), region: "us-east-1".into() }, RepositoryName::parse("team/app").unwrap());
    let kept = common::push_blob(&r, &repo, b"kept layer").await;

    let dry = r.collect_garbage(GcOptions { dry_run: true, grace_millis: None }).await.unwrap();
    assert_eq!(dry.orphans_deleted, 0);
    assert!(blobs.cutoffs.lock().unwrap().is_empty(), "a dry run removes nothing, so it does not sweep");

    let run = r.collect_garbage(GcOptions { dry_run: false, grace_millis: None }).await.unwrap();
    assert_eq!(run.orphans_deleted, 2, "the count the store reports");
    assert_eq!(*blobs.cutoffs.lock().unwrap(), vec![1_000_000_000 - 60_000], "once, with the GC's grace cutoff");

    // A failed sweep does not fail the run: blobs and sessions were collected already.
    blobs.fail.store(true, Ordering::SeqCst);
    let run = r.collect_garbage(GcOptions { dry_run: false, grace_millis: Some(1_000) }).await.unwrap();
    assert_eq!(run.orphans_deleted, 0);
    assert_eq!(blobs.cutoffs.lock().unwrap().last(), Some(&(1_000_000_000 - 1_000)));

    // The blob a client pushed is still whole (within the grace window nothing is collected).
    let (_, _, reader) = r.read_blob(&repo, &kept, None).await.unwrap();
    let bytes: Vec<bytes::Bytes> = reader.body.try_collect().await.unwrap();
    assert_eq!(Digest::sha256_of(&bytes.concat()), kept);
}
