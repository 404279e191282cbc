//! The store itself: connecting, migrations, and the `MetadataStore` impl, which
//! delegates each method to the file of its concern.

use std::future::Future;
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

const SCHEMA_VERSION: i64 = 5;
const SCHEMA: [(i64, &str, &str); 5] = [
    (1, include_str!("postgres_schema.sql"), "creating schema v1"),
    (2, include_str!("postgres_schema_v2.sql"), "migrating to schema v2"),
    (3, include_str!("postgres_schema_v3.sql"), "migrating to schema v3"),
    (4, include_str!("postgres_schema_v4.sql"), "migrating to schema v4"),
    (5, include_str!("postgres_schema_v5.sql"), "migrating to schema v5"),
];
/// Advisory lock key (two-int form, so it never meets a blob lock's bigint key) serializing
/// migrations of nodes that start at the same time.
const MIGRATION_LOCK: (i32, i32) = (0x6265_7274, 1); // "bert", 1

/// How long one store call may take (and, on the server, one statement) when the operator does
/// not say: a primary that stops answering turns into 503s after this long, not after TCP gives up.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(15);
/// Requests fail after this long without a connection instead of queueing forever behind an
/// unreachable database (or sooner, when the query deadline is shorter).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 16;
/// Blob locks hold a connection for a whole commit (fsync + rename + link): they get their own
/// pool so that lock holders can never starve the queries they still have to run, and a longer
/// wait, since a holder releases as soon as its commit is done.
const LOCK_CONNECTIONS: u32 = 16;
const LOCK_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Taking a blob lock waits for the holder's commit (an S3 multipart completion can take a
/// while), so it gets this many query deadlines.
const LOCK_WAIT_FACTOR: u32 = 4;
/// The call's deadline runs this much longer than the server's `statement_timeout`: a server
/// that still answers cancels the statement itself (57014) and the connection stays usable;
/// only a server that does not answer at all meets the client-side deadline.
const CLIENT_MARGIN: Duration = Duration::from_secs(1);

pub struct PostgresMetadataStore {
    pub(crate) pool: PgPool,
    locks: PgPool,
    deadline: Duration,
    lock_deadline: Duration,
}

/// What a call that met its deadline reports: the database is unavailable (503), not broken.
fn timed_out(context: &'static str, after: Duration) -> StoreError {
    StoreError::Unavailable {
        what: "the metadata database",
        detail: format!("{context}: no answer from PostgreSQL within {} ms", after.as_millis()),
    }
}

/// A pool whose connections carry the server-side deadlines and are closed, not reused, when
/// they do not answer on release: sqlx pings each connection it gets back (which drains what an
/// abandoned query left behind), but without a timeout, so against a black-holed server the
/// ping would hold the pool slot until TCP gives up.
fn pool(opts: PgConnectOptions, size: u32, acquire: Duration, statement: Duration, idle_in_transaction: Option<Duration>) -> PgPool {
    let settings = format!(
        "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}",
        statement.as_millis(),
        idle_in_transaction.map_or(0, |d| d.as_millis()),
    );
    let ping_within = statement;
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire)
        .idle_timeout(Duration::from_secs(300))
        .after_connect(move |conn, _| {
            let settings = settings.clone();
            Box::pin(async move {
                // Two statements: the simple-query protocol, which `&str` executes with.
                sqlx::Executor::execute(conn, settings.as_str()).await?;
                Ok(())
            })
        })
        .after_release(move |conn, _| {
            Box::pin(async move {
                match tokio::time::timeout(ping_within, conn.ping()).await {
                    Ok(answer) => answer.map(|()| true),
                    // An error closes the connection without another word to the server.
                    Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "PostgreSQL did not answer a released connection's ping; closing it",
                    ))),
                }
            })
        })
        .connect_lazy_with(opts)
}

impl PostgresMetadataStore {
    /// `connect_with_deadline` with the default deadline.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_deadline(url, DEFAULT_QUERY_TIMEOUT).await
    }

    /// Connects (once, to report a wrong address or password right away), brings the schema up
    /// to date, then serves from lazily filled pools. The URL's password never appears in errors
    /// or logs: a malformed URL is reported without its text.
    ///
    /// Every store call then has `deadline`: the server cancels a statement running longer
    /// (`statement_timeout`) and ends a session idle inside a transaction that long, and the
    /// call itself gives up shortly after; either is `StoreError::Unavailable`.
    pub async fn connect_with_deadline(url: &str, deadline: Duration) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url).map_err(|_| StoreError::Db {
            context: "reading the PostgreSQL URL",
            source: sqlx::Error::Configuration("expected postgres://user:password@host:port/database".into()),
        })?;
        let deadline = deadline.max(Duration::from_millis(1));
        let connect_within = ACQUIRE_TIMEOUT.max(deadline);
        let mut conn = tokio::time::timeout(connect_within, opts.connect())
            .await
            .map_err(|_| timed_out("connecting to PostgreSQL", connect_within))?
            .ctx("connecting to PostgreSQL")?;
        migrate(&mut conn).await?;
        // Best effort: the migration is committed whatever happens to this connection now.
        let _ = conn.close().await;
        tracing::info!(host = opts.get_host(), port = opts.get_port(), database = ?opts.get_database(), deadline_ms = deadline.as_millis(), "PostgreSQL metadata store ready");
        let lock_wait = deadline.saturating_mul(LOCK_WAIT_FACTOR);
        // Lock holders sit idle inside their transaction on purpose (the commit runs meanwhile),
        // so only the query pool ends idle transactions.
        let pool = pool(opts.clone(), MAX_CONNECTIONS, ACQUIRE_TIMEOUT.min(deadline), deadline, Some(deadline));
        let locks = pool_for_locks(opts, lock_wait);
        Ok(PostgresMetadataStore { pool, locks, deadline: deadline + CLIENT_MARGIN, lock_deadline: lock_wait + CLIENT_MARGIN })
    }

    /// One store call within the query deadline.
    pub(crate) async fn timed<T>(&self, context: &'static str, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        within(self.deadline, context, call).await
    }

    /// Taking a blob lock, which may wait for another node's commit.
    async fn timed_lock<T>(&self, context: &'static str, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        within(self.lock_deadline, context, call).await
    }
}

fn pool_for_locks(opts: PgConnectOptions, lock_wait: Duration) -> PgPool {
    pool(opts, LOCK_CONNECTIONS, LOCK_ACQUIRE_TIMEOUT.min(lock_wait), lock_wait, None)
}

/// Dropping a call that met its deadline drops its connection mid-query; the pool's release
/// check (see `pool`) then either drains it or closes it, so it never serves another call in an
/// unknown state.
async fn within<T>(deadline: Duration, context: &'static str, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) => Err(timed_out(context, deadline)),
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
        self.timed("get_repository", repos::get_repository(&self.pool, key)).await
    }

    async fn create_repository(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        self.timed("create_repository", repos::create_repository(&self.pool, key, settings, tags, now)).await
    }

    async fn list_repositories(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryRow>, StoreError> {
        self.timed("list_repositories", repos::list_repositories(&self.pool, account, region, after, limit)).await
    }

    async fn update_repository_settings(&self, key: &RepoKey, settings: &RepositorySettings) -> Result<bool, StoreError> {
        self.timed("update_repository_settings", repos::update_repository_settings(&self.pool, key, settings)).await
    }

    async fn set_repository_policy(&self, key: &RepoKey, policy: Option<&str>) -> Result<bool, StoreError> {
        self.timed("set_repository_policy", repos::set_repository_policy(&self.pool, key, policy)).await
    }

    async fn delete_repository(&self, key: &RepoKey, force: bool) -> Result<DeleteRepositoryOutcome, StoreError> {
        self.timed("delete_repository", repos::delete_repository(&self.pool, key, force)).await
    }

    async fn put_resource_tags(&self, key: &RepoKey, tags: &[(String, String)]) -> Result<bool, StoreError> {
        self.timed("put_resource_tags", repos::put_resource_tags(&self.pool, key, tags)).await
    }

    async fn remove_resource_tags(&self, key: &RepoKey, keys: &[String]) -> Result<bool, StoreError> {
        self.timed("remove_resource_tags", repos::remove_resource_tags(&self.pool, key, keys)).await
    }

    async fn list_resource_tags(&self, key: &RepoKey) -> Result<Vec<(String, String)>, StoreError> {
        self.timed("list_resource_tags", repos::list_resource_tags(&self.pool, key)).await
    }

    async fn get_registry_policy(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        self.timed("get_registry_policy", repos::get_registry_policy(&self.pool, account, region)).await
    }

    async fn set_registry_policy(&self, account: &str, region: &str, policy: Option<&str>) -> Result<bool, StoreError> {
        self.timed("set_registry_policy", repos::set_registry_policy(&self.pool, account, region, policy)).await
    }

    async fn repository_blob(&self, key: &RepoKey, digest: &Digest) -> Result<Option<u64>, StoreError> {
        self.timed("repository_blob", content::repository_blob(&self.pool, key, digest)).await
    }

    async fn link_blob(&self, key: &RepoKey, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError> {
        self.timed("link_blob", content::link_blob(&self.pool, key, digest, size, now)).await
    }

    async fn unlink_blob(&self, key: &RepoKey, digest: &Digest) -> Result<UnlinkOutcome, StoreError> {
        self.timed("unlink_blob", content::unlink_blob(&self.pool, key, digest)).await
    }

    async fn touch_blob(&self, digest: &Digest, now: Millis, stale_before: Millis) -> Result<(), StoreError> {
        self.timed("touch_blob", content::touch_blob(&self.pool, digest, now, stale_before)).await
    }

    async fn create_upload(&self, upload: &UploadRow) -> Result<(), StoreError> {
        self.timed("create_upload", content::create_upload(&self.pool, upload)).await
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError> {
        self.timed("get_upload", content::get_upload(&self.pool, id)).await
    }

    async fn delete_upload(&self, id: &str) -> Result<bool, StoreError> {
        self.timed("delete_upload", content::delete_upload(&self.pool, id)).await
    }

    async fn record_upload_progress(
        &self,
        id: &str,
        expected_len: u64,
        cursor: &UploadCursor,
        hash_state: &[u8],
    ) -> Result<bool, StoreError> {
        self.timed("record_upload_progress", content::record_upload_progress(&self.pool, id, expected_len, cursor, hash_state)).await
    }

    async fn uploads_started_before(&self, before: Millis) -> Result<Vec<UploadRow>, StoreError> {
        self.timed("uploads_started_before", content::uploads_started_before(&self.pool, before)).await
    }

    async fn count_uploads(&self) -> Result<u64, StoreError> {
        self.timed("count_uploads", content::count_uploads(&self.pool)).await
    }

    async fn put_manifest(&self, new: NewManifest<'_>) -> Result<PutManifestOutcome, StoreError> {
        self.timed("put_manifest", content::put_manifest(&self.pool, &new)).await
    }

    async fn get_manifest_by_digest(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ManifestRow>, StoreError> {
        self.timed("get_manifest_by_digest", content::get_manifest_by_digest(&self.pool, key, digest)).await
    }

    async fn get_manifest_by_tag(&self, key: &RepoKey, tag: &str) -> Result<Option<ManifestRow>, StoreError> {
        self.timed("get_manifest_by_tag", content::get_manifest_by_tag(&self.pool, key, tag)).await
    }

    async fn delete_manifest(&self, key: &RepoKey, digest: &Digest) -> Result<DeleteManifestOutcome, StoreError> {
        self.timed("delete_manifest", content::delete_manifest(&self.pool, key, digest)).await
    }

    async fn manifest_parents(&self, key: &RepoKey, digest: &Digest) -> Result<Vec<Digest>, StoreError> {
        self.timed("manifest_parents", content::manifest_parents(&self.pool, key, digest)).await
    }

    async fn repository_size(&self, key: &RepoKey) -> Result<u64, StoreError> {
        self.timed("repository_size", content::repository_size(&self.pool, key)).await
    }

    async fn delete_tag(&self, key: &RepoKey, tag: &str) -> Result<bool, StoreError> {
        self.timed("delete_tag", content::delete_tag(&self.pool, key, tag)).await
    }

    async fn list_tags(&self, key: &RepoKey, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
        self.timed("list_tags", content::list_tags(&self.pool, key, after, limit)).await
    }

    async fn list_referrers(&self, key: &RepoKey, subject: &Digest) -> Result<Vec<ManifestSummary>, StoreError> {
        self.timed("list_referrers", content::list_referrers(&self.pool, key, subject)).await
    }

    async fn list_images(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError> {
        self.timed("list_images", content::list_images(&self.pool, key, status, storage, after, limit)).await
    }

    async fn list_images_by_push(
        &self,
        key: &RepoKey,
        filter: &ImageFilter<'_>,
        after: Option<(Millis, &str)>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError> {
        self.timed("list_images_by_push", content::list_images_by_push(&self.pool, key, filter, after, limit)).await
    }

    async fn get_image(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageRow>, StoreError> {
        self.timed("get_image", content::get_image(&self.pool, key, digest)).await
    }

    async fn list_image_ids(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(Digest, String)>, StoreError> {
        self.timed("list_image_ids", content::list_image_ids(&self.pool, key, status, storage, after, limit)).await
    }

    async fn record_pulls(&self, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError> {
        self.timed("record_pulls", lifecycle::record_pulls(&self.pool, pulls)).await
    }

    async fn set_storage_class(
        &self,
        key: &RepoKey,
        digest: &Digest,
        class: StorageClass,
        now: Millis,
    ) -> Result<Option<bool>, StoreError> {
        self.timed("set_storage_class", lifecycle::set_storage_class(&self.pool, key, digest, class, now)).await
    }

    async fn set_lifecycle_policy(&self, key: &RepoKey, policy: Option<&str>, now: Millis) -> Result<bool, StoreError> {
        self.timed("set_lifecycle_policy", lifecycle::set_lifecycle_policy(&self.pool, key, policy, now)).await
    }

    async fn lifecycle_policy(&self, key: &RepoKey) -> Result<Option<LifecyclePolicyRow>, StoreError> {
        self.timed("lifecycle_policy", lifecycle::lifecycle_policy(&self.pool, key)).await
    }

    async fn mark_lifecycle_evaluated(&self, key: &RepoKey, now: Millis) -> Result<(), StoreError> {
        self.timed("mark_lifecycle_evaluated", lifecycle::mark_lifecycle_evaluated(&self.pool, key, now)).await
    }

    async fn expire_manifest(&self, key: &RepoKey, digest: &Digest, expected_tags: &[String]) -> Result<ExpireOutcome, StoreError> {
        self.timed("expire_manifest", lifecycle::expire_manifest(&self.pool, key, digest, expected_tags)).await
    }

    async fn archive_if_unchanged(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.timed("archive_if_unchanged", lifecycle::archive_if_unchanged(&self.pool, key, digest, expected_tags, now)).await
    }

    async fn lifecycle_repositories(&self) -> Result<Vec<RepoKey>, StoreError> {
        self.timed("lifecycle_repositories", lifecycle::lifecycle_repositories(&self.pool)).await
    }

    async fn lifecycle_images(&self, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError> {
        self.timed("lifecycle_images", lifecycle::lifecycle_images(&self.pool, key)).await
    }

    async fn put_lifecycle_preview(&self, key: &RepoKey, preview: &LifecyclePreviewRow) -> Result<bool, StoreError> {
        self.timed("put_lifecycle_preview", lifecycle::put_lifecycle_preview(&self.pool, key, preview)).await
    }

    async fn lifecycle_preview(&self, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError> {
        self.timed("lifecycle_preview", lifecycle::lifecycle_preview(&self.pool, key)).await
    }

    async fn all_references(&self) -> Result<Vec<(RepoKey, Digest, Digest, RefKind)>, StoreError> {
        self.timed("all_references", content::all_references(&self.pool)).await
    }

    async fn gc_candidates(&self, before: Millis) -> Result<Vec<GcCandidate>, StoreError> {
        self.timed("gc_candidates", content::gc_candidates(&self.pool, before)).await
    }

    async fn gc_forget_blob(&self, digest: &Digest, before: Millis) -> Result<bool, StoreError> {
        self.timed("gc_forget_blob", content::gc_forget_blob(&self.pool, digest, before)).await
    }

    async fn put_image_scan(&self, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError> {
        self.timed("put_image_scan", scans::put_image_scan(&self.pool, key, digest, scan)).await
    }

    async fn image_scan(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError> {
        self.timed("image_scan", scans::image_scan(&self.pool, key, digest)).await
    }

    async fn image_scans(&self, key: &RepoKey, digests: &[Digest]) -> Result<Vec<(Digest, ImageScanRow)>, StoreError> {
        self.timed("image_scans", scans::image_scans(&self.pool, key, digests)).await
    }

    async fn scanned_images(&self, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError> {
        self.timed("scanned_images", scans::scanned_images(&self.pool, status)).await
    }

    async fn registry_scanning(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        self.timed("registry_scanning", scans::registry_scanning(&self.pool, account, region)).await
    }

    async fn set_registry_scanning(&self, account: &str, region: &str, config: &str) -> Result<(), StoreError> {
        self.timed("set_registry_scanning", scans::set_registry_scanning(&self.pool, account, region, config)).await
    }

    async fn ensure_account(&self, account: &str, now: Millis) -> Result<(), StoreError> {
        self.timed("ensure_account", cluster::ensure_account(&self.pool, account, now)).await
    }

    async fn create_user(&self, account: &str, name: &str, arn: &str, now: Millis) -> Result<bool, StoreError> {
        self.timed("create_user", cluster::create_user(&self.pool, account, name, arn, now)).await
    }

    async fn user_account(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        self.timed("user_account", cluster::user_account(&self.pool, user_arn)).await
    }

    async fn create_access_key(&self, access_key_id: &str, secret: &str, user_arn: &str, now: Millis) -> Result<(), StoreError> {
        self.timed("create_access_key", cluster::create_access_key(&self.pool, access_key_id, secret, user_arn, now)).await
    }

    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRow>, StoreError> {
        self.timed("get_access_key", cluster::get_access_key(&self.pool, access_key_id)).await
    }

    async fn put_user_policy(&self, user_arn: &str, policy_name: &str, document: &str) -> Result<(), StoreError> {
        self.timed("put_user_policy", cluster::put_user_policy(&self.pool, user_arn, policy_name, document)).await
    }

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.timed("user_policies", cluster::user_policies(&self.pool, user_arn)).await
    }

    async fn set_console_password(&self, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError> {
        self.timed("set_console_password", cluster::set_console_password(&self.pool, user_arn, hash)).await
    }

    async fn console_password(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        self.timed("console_password", cluster::console_password(&self.pool, user_arn)).await
    }

    async fn console_session_state(&self, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError> {
        self.timed("console_session_state", cluster::console_session_state(&self.pool, user_arn)).await
    }

    async fn end_console_sessions(&self, user_arn: &str) -> Result<bool, StoreError> {
        self.timed("end_console_sessions", cluster::end_console_sessions(&self.pool, user_arn)).await
    }

    async fn signing_keys(&self, fresh: &[u8], now: Millis) -> Result<Vec<Vec<u8>>, StoreError> {
        self.timed("signing_keys", cluster::signing_keys(&self.pool, fresh, now)).await
    }

    async fn rotate_signing_key(&self, fresh: &[u8], now: Millis, keep: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.timed("rotate_signing_key", cluster::rotate_signing_key(&self.pool, fresh, now, keep)).await
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn try_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        self.timed("try_lease", cluster::try_lease(&self.pool, name, holder, now, until)).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.timed("release_lease", cluster::release_lease(&self.pool, name, holder)).await
    }

    async fn lock_blob(&self, digest: &Digest) -> Result<Option<BlobLockGuard>, StoreError> {
        self.timed_lock("lock_blob", cluster::lock_blob(&self.locks, digest)).await.map(Some)
    }

    async fn lock_upload(&self, id: &str, committing: Option<&Digest>) -> Result<Option<BlobLockGuard>, StoreError> {
        self.timed_lock("lock_upload", cluster::lock_upload(&self.locks, id, committing)).await.map(Some)
    }
}
