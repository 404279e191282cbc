//! The store itself: connecting, migrations, and the `MetadataStore` impl, which
//! delegates each method to the file of its concern.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::{Digest, StoreError, UploadCursor};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::db::DbContext;
use crate::{postgres_cluster as cluster, postgres_content as content, postgres_lifecycle as lifecycle};
use crate::{postgres_repos as repos, postgres_scans as scans};

const SCHEMA_VERSION: i64 = 4;
const SCHEMA: [(i64, &str, &str); 4] = [
    (1, include_str!("postgres_schema.sql"), "creating schema v1"),
    (2, include_str!("postgres_schema_v2.sql"), "migrating to schema v2"),
    (3, include_str!("postgres_schema_v3.sql"), "migrating to schema v3"),
    (4, include_str!("postgres_schema_v4.sql"), "migrating to schema v4"),
];
/// Advisory lock key (two-int form, so it never meets a blob lock's bigint key) serializing
/// migrations of nodes that start at the same time.
const MIGRATION_LOCK: (i32, i32) = (0x6265_7274, 1); // "bert", 1

/// Requests fail after this long without a connection instead of queueing forever behind an
/// unreachable database.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 16;
/// Blob locks hold a connection for a whole commit (fsync + rename + link): they get their own
/// pool so that lock holders can never starve the queries they still have to run, and a longer
/// wait, since a holder releases as soon as its commit is done.
const LOCK_CONNECTIONS: u32 = 16;
const LOCK_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct PostgresMetadataStore {
    pool: PgPool,
    locks: PgPool,
}

fn timed_out(context: &'static str) -> StoreError {
    StoreError::Db {
        context,
        source: sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer from PostgreSQL within 5 s")),
    }
}

impl PostgresMetadataStore {
    /// Connects (once, to report a wrong address or password right away), brings the schema up
    /// to date, then serves from lazily filled pools. The URL's password never appears in errors
    /// or logs: a malformed URL is reported without its text.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url).map_err(|_| StoreError::Db {
            context: "reading the PostgreSQL URL",
            source: sqlx::Error::Configuration("expected postgres://user:password@host:port/database".into()),
        })?;
        let mut conn = tokio::time::timeout(ACQUIRE_TIMEOUT, opts.connect())
            .await
            .map_err(|_| timed_out("connecting to PostgreSQL"))?
            .ctx("connecting to PostgreSQL")?;
        migrate(&mut conn).await?;
        // Best effort: the migration is committed whatever happens to this connection now.
        let _ = conn.close().await;
        tracing::info!(host = opts.get_host(), port = opts.get_port(), database = ?opts.get_database(), "PostgreSQL metadata store ready");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(opts.clone());
        let locks = PgPoolOptions::new()
            .max_connections(LOCK_CONNECTIONS)
            .acquire_timeout(LOCK_ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(opts);
        Ok(PostgresMetadataStore { pool, locks })
    }
}

async fn migrate(conn: &mut PgConnection) -> Result<(), StoreError> {
    let mut tx = conn.begin().await.ctx("starting migration")?;
    // Held until commit: a second node starting now waits here, then finds the schema current.
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(MIGRATION_LOCK.0)
        .bind(MIGRATION_LOCK.1)
        .execute(&mut *tx)
        .await
        .ctx("locking for migration")?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS berth_schema_version (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), version BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .ctx("creating schema version table")?;
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM berth_schema_version").fetch_optional(&mut *tx).await.ctx("reading schema version")?;
    let version = version.unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    for (v, sql, context) in SCHEMA {
        if version < v {
            sqlx::raw_sql(sql).execute(&mut *tx).await.ctx(context)?;
        }
    }
    sqlx::query(
        "INSERT INTO berth_schema_version (one, version) VALUES (TRUE, $1) ON CONFLICT (one) DO UPDATE SET version = excluded.version",
    )
    .bind(SCHEMA_VERSION)
    .execute(&mut *tx)
    .await
    .ctx("recording schema version")?;
    tx.commit().await.ctx("committing migration")
}

#[async_trait]
impl MetadataStore for PostgresMetadataStore {
    async fn get_repository(&self, key: &RepoKey) -> Result<Option<RepositoryRow>, StoreError> {
        repos::get_repository(&self.pool, key).await
    }

    async fn create_repository(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        repos::create_repository(&self.pool, key, settings, tags, now).await
    }

    async fn list_repositories(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryRow>, StoreError> {
        repos::list_repositories(&self.pool, account, region, after, limit).await
    }

    async fn update_repository_settings(&self, key: &RepoKey, settings: &RepositorySettings) -> Result<bool, StoreError> {
        repos::update_repository_settings(&self.pool, key, settings).await
    }

    async fn set_repository_policy(&self, key: &RepoKey, policy: Option<&str>) -> Result<bool, StoreError> {
        repos::set_repository_policy(&self.pool, key, policy).await
    }

    async fn delete_repository(&self, key: &RepoKey, force: bool) -> Result<DeleteRepositoryOutcome, StoreError> {
        repos::delete_repository(&self.pool, key, force).await
    }

    async fn put_resource_tags(&self, key: &RepoKey, tags: &[(String, String)]) -> Result<bool, StoreError> {
        repos::put_resource_tags(&self.pool, key, tags).await
    }

    async fn remove_resource_tags(&self, key: &RepoKey, keys: &[String]) -> Result<bool, StoreError> {
        repos::remove_resource_tags(&self.pool, key, keys).await
    }

    async fn list_resource_tags(&self, key: &RepoKey) -> Result<Vec<(String, String)>, StoreError> {
        repos::list_resource_tags(&self.pool, key).await
    }

    async fn get_registry_policy(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        repos::get_registry_policy(&self.pool, account, region).await
    }

    async fn set_registry_policy(&self, account: &str, region: &str, policy: Option<&str>) -> Result<bool, StoreError> {
        repos::set_registry_policy(&self.pool, account, region, policy).await
    }

    async fn repository_blob(&self, key: &RepoKey, digest: &Digest) -> Result<Option<u64>, StoreError> {
        content::repository_blob(&self.pool, key, digest).await
    }

    async fn link_blob(&self, key: &RepoKey, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError> {
        content::link_blob(&self.pool, key, digest, size, now).await
    }

    async fn unlink_blob(&self, key: &RepoKey, digest: &Digest) -> Result<UnlinkOutcome, StoreError> {
        content::unlink_blob(&self.pool, key, digest).await
    }

    async fn touch_blob(&self, digest: &Digest, now: Millis, stale_before: Millis) -> Result<(), StoreError> {
        content::touch_blob(&self.pool, digest, now, stale_before).await
    }

    async fn create_upload(&self, upload: &UploadRow) -> Result<(), StoreError> {
        content::create_upload(&self.pool, upload).await
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError> {
        content::get_upload(&self.pool, id).await
    }

    async fn delete_upload(&self, id: &str) -> Result<bool, StoreError> {
        content::delete_upload(&self.pool, id).await
    }

    async fn record_upload_progress(
        &self,
        id: &str,
        expected_len: u64,
        cursor: &UploadCursor,
        hash_state: &[u8],
    ) -> Result<bool, StoreError> {
        content::record_upload_progress(&self.pool, id, expected_len, cursor, hash_state).await
    }

    async fn uploads_started_before(&self, before: Millis) -> Result<Vec<UploadRow>, StoreError> {
        content::uploads_started_before(&self.pool, before).await
    }

    async fn count_uploads(&self) -> Result<u64, StoreError> {
        content::count_uploads(&self.pool).await
    }

    async fn put_manifest(&self, new: NewManifest<'_>) -> Result<PutManifestOutcome, StoreError> {
        content::put_manifest(&self.pool, &new).await
    }

    async fn get_manifest_by_digest(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ManifestRow>, StoreError> {
        content::get_manifest_by_digest(&self.pool, key, digest).await
    }

    async fn get_manifest_by_tag(&self, key: &RepoKey, tag: &str) -> Result<Option<ManifestRow>, StoreError> {
        content::get_manifest_by_tag(&self.pool, key, tag).await
    }

    async fn delete_manifest(&self, key: &RepoKey, digest: &Digest) -> Result<DeleteManifestOutcome, StoreError> {
        content::delete_manifest(&self.pool, key, digest).await
    }

    async fn manifest_parents(&self, key: &RepoKey, digest: &Digest) -> Result<Vec<Digest>, StoreError> {
        content::manifest_parents(&self.pool, key, digest).await
    }

    async fn delete_tag(&self, key: &RepoKey, tag: &str) -> Result<bool, StoreError> {
        content::delete_tag(&self.pool, key, tag).await
    }

    async fn list_tags(&self, key: &RepoKey, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
        content::list_tags(&self.pool, key, after, limit).await
    }

    async fn list_referrers(&self, key: &RepoKey, subject: &Digest) -> Result<Vec<ManifestSummary>, StoreError> {
        content::list_referrers(&self.pool, key, subject).await
    }

    async fn list_images(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError> {
        content::list_images(&self.pool, key, status, storage, after, limit).await
    }

    async fn get_image(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageRow>, StoreError> {
        content::get_image(&self.pool, key, digest).await
    }

    async fn list_image_ids(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(Digest, String)>, StoreError> {
        content::list_image_ids(&self.pool, key, status, storage, after, limit).await
    }

    async fn record_pulls(&self, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError> {
        lifecycle::record_pulls(&self.pool, pulls).await
    }

    async fn set_storage_class(
        &self,
        key: &RepoKey,
        digest: &Digest,
        class: StorageClass,
        now: Millis,
    ) -> Result<Option<bool>, StoreError> {
        lifecycle::set_storage_class(&self.pool, key, digest, class, now).await
    }

    async fn set_lifecycle_policy(&self, key: &RepoKey, policy: Option<&str>, now: Millis) -> Result<bool, StoreError> {
        lifecycle::set_lifecycle_policy(&self.pool, key, policy, now).await
    }

    async fn lifecycle_policy(&self, key: &RepoKey) -> Result<Option<LifecyclePolicyRow>, StoreError> {
        lifecycle::lifecycle_policy(&self.pool, key).await
    }

    async fn mark_lifecycle_evaluated(&self, key: &RepoKey, now: Millis) -> Result<(), StoreError> {
        lifecycle::mark_lifecycle_evaluated(&self.pool, key, now).await
    }

    async fn expire_manifest(&self, key: &RepoKey, digest: &Digest, expected_tags: &[String]) -> Result<ExpireOutcome, StoreError> {
        lifecycle::expire_manifest(&self.pool, key, digest, expected_tags).await
    }

    async fn archive_if_unchanged(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        now: Millis,
    ) -> Result<bool, StoreError> {
        lifecycle::archive_if_unchanged(&self.pool, key, digest, expected_tags, now).await
    }

    async fn lifecycle_repositories(&self) -> Result<Vec<RepoKey>, StoreError> {
        lifecycle::lifecycle_repositories(&self.pool).await
    }

    async fn lifecycle_images(&self, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError> {
        lifecycle::lifecycle_images(&self.pool, key).await
    }

    async fn put_lifecycle_preview(&self, key: &RepoKey, preview: &LifecyclePreviewRow) -> Result<bool, StoreError> {
        lifecycle::put_lifecycle_preview(&self.pool, key, preview).await
    }

    async fn lifecycle_preview(&self, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError> {
        lifecycle::lifecycle_preview(&self.pool, key).await
    }

    async fn all_references(&self) -> Result<Vec<(RepoKey, Digest, Digest, RefKind)>, StoreError> {
        content::all_references(&self.pool).await
    }

    async fn gc_candidates(&self, before: Millis) -> Result<Vec<GcCandidate>, StoreError> {
        content::gc_candidates(&self.pool, before).await
    }

    async fn gc_forget_blob(&self, digest: &Digest, before: Millis) -> Result<bool, StoreError> {
        content::gc_forget_blob(&self.pool, digest, before).await
    }

    async fn put_image_scan(&self, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError> {
        scans::put_image_scan(&self.pool, key, digest, scan).await
    }

    async fn image_scan(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError> {
        scans::image_scan(&self.pool, key, digest).await
    }

    async fn image_scans(&self, key: &RepoKey, digests: &[Digest]) -> Result<Vec<(Digest, ImageScanRow)>, StoreError> {
        scans::image_scans(&self.pool, key, digests).await
    }

    async fn scanned_images(&self, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError> {
        scans::scanned_images(&self.pool, status).await
    }

    async fn registry_scanning(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        scans::registry_scanning(&self.pool, account, region).await
    }

    async fn set_registry_scanning(&self, account: &str, region: &str, config: &str) -> Result<(), StoreError> {
        scans::set_registry_scanning(&self.pool, account, region, config).await
    }

    async fn ensure_account(&self, account: &str, now: Millis) -> Result<(), StoreError> {
        cluster::ensure_account(&self.pool, account, now).await
    }

    async fn create_user(&self, account: &str, name: &str, arn: &str, now: Millis) -> Result<bool, StoreError> {
        cluster::create_user(&self.pool, account, name, arn, now).await
    }

    async fn user_account(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        cluster::user_account(&self.pool, user_arn).await
    }

    async fn create_access_key(&self, access_key_id: &str, secret: &str, user_arn: &str, now: Millis) -> Result<(), StoreError> {
        cluster::create_access_key(&self.pool, access_key_id, secret, user_arn, now).await
    }

    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRow>, StoreError> {
        cluster::get_access_key(&self.pool, access_key_id).await
    }

    async fn put_user_policy(&self, user_arn: &str, policy_name: &str, document: &str) -> Result<(), StoreError> {
        cluster::put_user_policy(&self.pool, user_arn, policy_name, document).await
    }

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        cluster::user_policies(&self.pool, user_arn).await
    }

    async fn set_console_password(&self, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError> {
        cluster::set_console_password(&self.pool, user_arn, hash).await
    }

    async fn console_password(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        cluster::console_password(&self.pool, user_arn).await
    }

    async fn console_session_state(&self, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError> {
        cluster::console_session_state(&self.pool, user_arn).await
    }

    async fn end_console_sessions(&self, user_arn: &str) -> Result<bool, StoreError> {
        cluster::end_console_sessions(&self.pool, user_arn).await
    }

    async fn signing_keys(&self, fresh: &[u8], now: Millis) -> Result<Vec<Vec<u8>>, StoreError> {
        cluster::signing_keys(&self.pool, fresh, now).await
    }

    async fn rotate_signing_key(&self, fresh: &[u8], now: Millis, keep: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        cluster::rotate_signing_key(&self.pool, fresh, now, keep).await
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn try_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        cluster::try_lease(&self.pool, name, holder, now, until).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        cluster::release_lease(&self.pool, name, holder).await
    }

    async fn lock_blob(&self, digest: &Digest) -> Result<Option<BlobLockGuard>, StoreError> {
        cluster::lock_blob(&self.locks, digest).await.map(Some)
    }

    async fn lock_upload(&self, id: &str, committing: Option<&Digest>) -> Result<Option<BlobLockGuard>, StoreError> {
        cluster::lock_upload(&self.locks, id, committing).await.map(Some)
    }
}
