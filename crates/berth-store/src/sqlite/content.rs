//! SQLite: blobs, upload sessions, manifests, tags, image listings and garbage collection (the
//! statements and the reference rules are shared: `crate::sql::content`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::error::DbContext as _;
use crate::meta::*;
use crate::sql::content as sql;
use crate::sql::objects;
use crate::{Digest, StoreError, UploadCursor};

#[async_trait]
impl ContentStore for SqliteMetadataStore {
    async fn repository_blob(&self, key: &RepoKey, digest: &Digest) -> Result<Option<u64>, StoreError> {
        sql::repository_blob(&self.reader, key, digest).await
    }

    async fn link_blob(&self, key: &RepoKey, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError> {
        sql::link_blob(&self.writer, key, digest, size, now, None).await
    }

    async fn link_blob_in(&self, key: &RepoKey, digest: &Digest, size: u64, now: Millis, scope: &str) -> Result<(), StoreError> {
        sql::link_blob(&self.writer, key, digest, size, now, Some(scope)).await
    }

    async fn unlink_blob(&self, key: &RepoKey, digest: &Digest) -> Result<UnlinkOutcome, StoreError> {
        sql::unlink_blob(&self.writer, key, digest).await
    }

    async fn touch_blob(&self, digest: &Digest, now: Millis, stale_before: Millis) -> Result<(), StoreError> {
        sql::touch_blob(&self.reader, &self.writer, digest, now, stale_before).await
    }

    async fn create_upload(&self, upload: &UploadRow) -> Result<(), StoreError> {
        sql::create_upload(&self.writer, upload).await
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError> {
        sql::get_upload(&self.reader, id).await
    }

    async fn delete_upload(&self, id: &str) -> Result<bool, StoreError> {
        sql::delete_upload(&self.writer, id).await
    }

    async fn record_upload_progress(
        &self,
        id: &str,
        expected_len: u64,
        cursor: &UploadCursor,
        hash_state: &[u8],
    ) -> Result<bool, StoreError> {
        // Recorded without waiting for the disk (synchronous=NORMAL for this one statement): the
        // row survives a crash of berth (it is in the WAL, in the page cache), which is what an
        // acknowledged PATCH promises, and the upload file's own bytes are not fsynced before a
        // commit either, so after a power loss the session resumes from what the file holds
        // (`Registry::ensure_hashed` rebuilds a hash that does not match it). The next FULL
        // commit syncs the WAL, this row with it. One fsync per PATCH was 2–3 ms of a 10 MiB
        // PATCH's time on a virtio disk while the upload's data was being written back.
        let mut conn = crate::sql::repos::acquire(&self.writer).await?;
        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await.ctx("recording upload progress")?;
        let recorded = sql::record_upload_progress_on(&mut *conn, id, expected_len, cursor, hash_state).await;
        if let Err(e) = sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await {
            // Never let a connection that skips fsync serve the writes that need it.
            tracing::warn!(error = %e, "closing the database writer connection: synchronous=FULL could not be restored");
            conn.close_on_drop();
        }
        recorded
    }

    async fn uploads_started_before(&self, before: Millis) -> Result<Vec<UploadRow>, StoreError> {
        sql::uploads_started_before(&self.reader, before).await
    }

    async fn count_uploads(&self) -> Result<u64, StoreError> {
        sql::count_uploads(&self.reader).await
    }

    async fn put_manifest(&self, new: NewManifest<'_>) -> Result<PutManifestOutcome, StoreError> {
        sql::put_manifest(&self.writer, &new).await
    }

    async fn get_manifest_by_digest(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ManifestRow>, StoreError> {
        sql::get_manifest_by_digest(&self.reader, key, digest).await
    }

    async fn get_manifest_by_tag(&self, key: &RepoKey, tag: &str) -> Result<Option<ManifestRow>, StoreError> {
        sql::get_manifest_by_tag(&self.reader, key, tag).await
    }

    async fn delete_manifest(&self, key: &RepoKey, digest: &Digest) -> Result<DeleteManifestOutcome, StoreError> {
        sql::delete_manifest(&self.writer, key, digest).await
    }

    async fn delete_manifest_queueing(
        &self,
        key: &RepoKey,
        digest: &Digest,
        now: Millis,
        outbox: &(dyn for<'t> Fn(&'t [String]) -> Vec<QueuedJob> + Send + Sync),
    ) -> Result<DeleteManifestOutcome, StoreError> {
        sql::delete_manifest_queueing(&self.writer, key, digest, now, outbox).await
    }

    async fn delete_tag_queueing(
        &self,
        key: &RepoKey,
        tag: &str,
        now: Millis,
        outbox: &(dyn for<'t> Fn(&'t Digest) -> Vec<QueuedJob> + Send + Sync),
    ) -> Result<bool, StoreError> {
        sql::delete_tag_queueing(&self.writer, key, tag, now, outbox).await
    }

    async fn manifest_parents(&self, key: &RepoKey, digest: &Digest) -> Result<Vec<Digest>, StoreError> {
        sql::manifest_parents(&self.reader, key, digest).await
    }

    async fn repository_size(&self, key: &RepoKey) -> Result<u64, StoreError> {
        sql::repository_size(&self.reader, key).await
    }

    async fn delete_tag(&self, key: &RepoKey, tag: &str) -> Result<bool, StoreError> {
        sql::delete_tag(&self.writer, key, tag).await
    }

    async fn list_tags(&self, key: &RepoKey, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
        sql::list_tags(&self.reader, key, after, limit).await
    }

    async fn list_referrers(&self, key: &RepoKey, subject: &Digest) -> Result<Vec<ManifestSummary>, StoreError> {
        sql::list_referrers(&self.reader, key, subject).await
    }

    async fn list_images(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError> {
        sql::list_images(&self.reader, key, status, storage, after, limit).await
    }

    async fn list_images_by_push(
        &self,
        key: &RepoKey,
        filter: &ImageFilter<'_>,
        after: Option<(Millis, &str)>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError> {
        sql::list_images_by_push(&self.reader, key, filter, after, limit).await
    }

    async fn get_image(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageRow>, StoreError> {
        sql::get_image(&self.reader, key, digest).await
    }

    async fn list_image_ids(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(Digest, String)>, StoreError> {
        sql::list_image_ids(&self.reader, key, status, storage, after, limit).await
    }

    async fn all_references(&self) -> Result<Vec<(RepoKey, Digest, Digest, RefKind)>, StoreError> {
        sql::all_references(&self.reader).await
    }

    async fn gc_candidates(&self, before: Millis) -> Result<Vec<GcCandidate>, StoreError> {
        sql::gc_candidates(&self.reader, before).await
    }

    async fn gc_forget_blob(&self, digest: &Digest, before: Millis) -> Result<bool, StoreError> {
        sql::gc_forget_blob(&self.writer, digest, before).await
    }

    async fn repository_blob_object(&self, key: &RepoKey, digest: &Digest) -> Result<Option<RepositoryBlobObject>, StoreError> {
        objects::repository_blob_object(&self.reader, key, digest).await
    }

    async fn record_blob_object(&self, digest: &Digest, scope: &str, now: Millis) -> Result<(), StoreError> {
        objects::record_blob_object(&self.writer, digest, scope, now).await
    }

    async fn blob_objects(&self, digest: &Digest) -> Result<Vec<BlobObject>, StoreError> {
        objects::blob_objects(&self.reader, digest).await
    }

    async fn list_blob_objects(&self, after: Option<(&Digest, &str)>, limit: u32) -> Result<Vec<BlobObject>, StoreError> {
        objects::list_blob_objects(&self.reader, after, limit).await
    }

    async fn gc_object_candidates(&self, before: Millis) -> Result<Vec<BlobObject>, StoreError> {
        objects::gc_object_candidates(&self.reader, before).await
    }

    async fn gc_forget_object(&self, digest: &Digest, scope: &str, before: Millis) -> Result<bool, StoreError> {
        objects::gc_forget_object(&self.writer, digest, scope, before).await
    }

    async fn unsealed_blobs(&self, after: Option<(&Digest, &str)>, limit: u32) -> Result<Vec<BlobObject>, StoreError> {
        objects::unsealed_blobs(&self.reader, after, limit).await
    }
}
