//! Blobs, upload sessions, manifests, tags and their listings, and garbage collection: the rows
//! a push and a pull touch. Every statement, and the order in which writers lock the rows they
//! decide on, is shared with SQLite (`berth_store::sql::content`); the transactions that lock
//! several rows run under the deadlock retry (see the crate doc).

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::sql::content as sql;
use berth_store::sql::objects;
use berth_store::{Digest, StoreError, UploadCursor};

use crate::db::retrying;
use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl ContentStore for PostgresMetadataStore {
    async fn repository_blob(&self, key: &RepoKey, digest: &Digest) -> Result<Option<u64>, StoreError> {
        self.timed("repository_blob", sql::repository_blob(&self.pool, key, digest)).await
    }

    async fn link_blob(&self, key: &RepoKey, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError> {
        self.timed("link_blob", retrying(|| Box::pin(sql::link_blob(&self.pool, key, digest, size, now, None)))).await
    }

    async fn link_blob_in(&self, key: &RepoKey, digest: &Digest, size: u64, now: Millis, scope: &str) -> Result<(), StoreError> {
        self.timed("link_blob", retrying(|| Box::pin(sql::link_blob(&self.pool, key, digest, size, now, Some(scope))))).await
    }

    async fn unlink_blob(&self, key: &RepoKey, digest: &Digest) -> Result<UnlinkOutcome, StoreError> {
        self.timed("unlink_blob", retrying(|| Box::pin(sql::unlink_blob(&self.pool, key, digest)))).await
    }

    async fn touch_blob(&self, digest: &Digest, now: Millis, stale_before: Millis) -> Result<(), StoreError> {
        self.timed("touch_blob", sql::touch_blob(&self.pool, &self.pool, digest, now, stale_before)).await
    }

    async fn create_upload(&self, upload: &UploadRow) -> Result<(), StoreError> {
        self.timed("create_upload", sql::create_upload(&self.pool, upload)).await
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError> {
        self.timed("get_upload", sql::get_upload(&self.pool, id)).await
    }

    async fn delete_upload(&self, id: &str) -> Result<bool, StoreError> {
        self.timed("delete_upload", sql::delete_upload(&self.pool, id)).await
    }

    async fn record_upload_progress(
        &self,
        id: &str,
        expected_len: u64,
        cursor: &UploadCursor,
        hash_state: &[u8],
    ) -> Result<bool, StoreError> {
        self.timed("record_upload_progress", sql::record_upload_progress(&self.pool, id, expected_len, cursor, hash_state)).await
    }

    async fn uploads_started_before(&self, before: Millis) -> Result<Vec<UploadRow>, StoreError> {
        self.timed("uploads_started_before", sql::uploads_started_before(&self.pool, before)).await
    }

    async fn count_uploads(&self) -> Result<u64, StoreError> {
        self.timed("count_uploads", sql::count_uploads(&self.pool)).await
    }

    async fn put_manifest(&self, new: NewManifest<'_>) -> Result<PutManifestOutcome, StoreError> {
        self.timed("put_manifest", retrying(|| Box::pin(sql::put_manifest(&self.pool, &new)))).await
    }

    async fn get_manifest_by_digest(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ManifestRow>, StoreError> {
        self.timed("get_manifest_by_digest", sql::get_manifest_by_digest(&self.pool, key, digest)).await
    }

    async fn get_manifest_by_tag(&self, key: &RepoKey, tag: &str) -> Result<Option<ManifestRow>, StoreError> {
        self.timed("get_manifest_by_tag", sql::get_manifest_by_tag(&self.pool, key, tag)).await
    }

    async fn delete_manifest(&self, key: &RepoKey, digest: &Digest) -> Result<DeleteManifestOutcome, StoreError> {
        self.timed("delete_manifest", retrying(|| Box::pin(sql::delete_manifest(&self.pool, key, digest)))).await
    }

    async fn delete_manifest_queueing(
        &self,
        key: &RepoKey,
        digest: &Digest,
        now: Millis,
        outbox: &(dyn for<'t> Fn(&'t [String]) -> Vec<QueuedJob> + Send + Sync),
    ) -> Result<DeleteManifestOutcome, StoreError> {
        self.timed("delete_manifest", retrying(|| Box::pin(sql::delete_manifest_queueing(&self.pool, key, digest, now, outbox)))).await
    }

    async fn delete_tag_queueing(
        &self,
        key: &RepoKey,
        tag: &str,
        now: Millis,
        outbox: &(dyn for<'t> Fn(&'t Digest) -> Vec<QueuedJob> + Send + Sync),
    ) -> Result<bool, StoreError> {
        self.timed("delete_tag", retrying(|| Box::pin(sql::delete_tag_queueing(&self.pool, key, tag, now, outbox)))).await
    }

    async fn manifest_parents(&self, key: &RepoKey, digest: &Digest) -> Result<Vec<Digest>, StoreError> {
        self.timed("manifest_parents", sql::manifest_parents(&self.pool, key, digest)).await
    }

    async fn repository_size(&self, key: &RepoKey) -> Result<u64, StoreError> {
        self.timed("repository_size", sql::repository_size(&self.pool, key)).await
    }

    async fn delete_tag(&self, key: &RepoKey, tag: &str) -> Result<bool, StoreError> {
        self.timed("delete_tag", sql::delete_tag(&self.pool, key, tag)).await
    }

    async fn list_tags(&self, key: &RepoKey, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
        self.timed("list_tags", sql::list_tags(&self.pool, key, after, limit)).await
    }

    async fn list_referrers(&self, key: &RepoKey, subject: &Digest) -> Result<Vec<ManifestSummary>, StoreError> {
        self.timed("list_referrers", sql::list_referrers(&self.pool, key, subject)).await
    }

    async fn list_images(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError> {
        self.timed("list_images", sql::list_images(&self.pool, key, status, storage, after, limit)).await
    }

    async fn list_images_by_push(
        &self,
        key: &RepoKey,
        filter: &ImageFilter<'_>,
        after: Option<(Millis, &str)>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError> {
        self.timed("list_images_by_push", sql::list_images_by_push(&self.pool, key, filter, after, limit)).await
    }

    async fn get_image(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageRow>, StoreError> {
        self.timed("get_image", sql::get_image(&self.pool, key, digest)).await
    }

    async fn list_image_ids(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(Digest, String)>, StoreError> {
        self.timed("list_image_ids", sql::list_image_ids(&self.pool, key, status, storage, after, limit)).await
    }

    async fn all_references(&self) -> Result<Vec<(RepoKey, Digest, Digest, RefKind)>, StoreError> {
        self.timed("all_references", sql::all_references(&self.pool)).await
    }

    async fn gc_candidates(&self, before: Millis) -> Result<Vec<GcCandidate>, StoreError> {
        self.timed("gc_candidates", sql::gc_candidates(&self.pool, before)).await
    }

    async fn gc_forget_blob(&self, digest: &Digest, before: Millis) -> Result<bool, StoreError> {
        self.timed("gc_forget_blob", retrying(|| Box::pin(sql::gc_forget_blob(&self.pool, digest, before)))).await
    }

    async fn repository_blob_object(&self, key: &RepoKey, digest: &Digest) -> Result<Option<RepositoryBlobObject>, StoreError> {
        self.timed("repository_blob_object", objects::repository_blob_object(&self.pool, key, digest)).await
    }

    async fn record_blob_object(&self, digest: &Digest, scope: &str, now: Millis) -> Result<(), StoreError> {
        self.timed("record_blob_object", objects::record_blob_object(&self.pool, digest, scope, now)).await
    }

    async fn blob_objects(&self, digest: &Digest) -> Result<Vec<BlobObject>, StoreError> {
        self.timed("blob_objects", objects::blob_objects(&self.pool, digest)).await
    }

    async fn list_blob_objects(&self, after: Option<(&Digest, &str)>, limit: u32) -> Result<Vec<BlobObject>, StoreError> {
        self.timed("list_blob_objects", objects::list_blob_objects(&self.pool, after, limit)).await
    }

    async fn gc_object_candidates(&self, before: Millis) -> Result<Vec<BlobObject>, StoreError> {
        self.timed("gc_object_candidates", objects::gc_object_candidates(&self.pool, before)).await
    }

    async fn gc_forget_object(&self, digest: &Digest, scope: &str, before: Millis) -> Result<bool, StoreError> {
        self.timed("gc_forget_object", retrying(|| Box::pin(objects::gc_forget_object(&self.pool, digest, scope, before)))).await
    }

    async fn unsealed_blobs(&self, after: Option<(&Digest, &str)>, limit: u32) -> Result<Vec<BlobObject>, StoreError> {
        self.timed("unsealed_blobs", objects::unsealed_blobs(&self.pool, after, limit)).await
    }
}
