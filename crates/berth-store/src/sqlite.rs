//! Metadata in an embedded SQLite database (WAL, synchronous=FULL).
//!
//! Writes go through a pool of one connection, so write transactions never
//! contend with each other inside the process (no SQLITE_BUSY on lock
//! upgrade); reads use a separate pool and see the last committed state.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::error::DbContext;
use crate::meta::*;
use crate::{Digest, StoreError, UploadCursor};

const SCHEMA_VERSION: i64 = 5;
const SCHEMA_V1: &str = include_str!("sqlite_schema.sql");
const SCHEMA_V2: &str = include_str!("sqlite_schema_v2.sql");
const SCHEMA_V3: &str = include_str!("sqlite_schema_v3.sql");
const SCHEMA_V4: &str = include_str!("sqlite_schema_v4.sql");
const SCHEMA_V5: &str = include_str!("sqlite_schema_v5.sql");

pub struct SqliteMetadataStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
}

fn kind_code(kind: RefKind) -> i64 {
    match kind {
        RefKind::Blob => 0,
        RefKind::Manifest => 1,
    }
}

/// Digests in the database were validated on the way in; one that does not parse means corruption.
fn parse_digest(s: &str) -> Result<Digest, StoreError> {
    Digest::from_str(s).map_err(|e| StoreError::Db { context: "corrupt digest in database", source: sqlx::Error::Decode(Box::new(e)) })
}

pub(crate) fn digest_col(row: &SqliteRow, col: &str) -> Result<Digest, StoreError> {
    let s: String = row.try_get(col).ctx("reading digest column")?;
    parse_digest(&s)
}

const MANIFEST_COLS: &str =
    "m.digest, m.media_type, m.artifact_type, m.subject, m.annotations, m.image_size, m.content, m.pushed_at, m.storage_class";

fn storage_class_col(row: &SqliteRow) -> Result<StorageClass, StoreError> {
    let class: String = row.try_get("storage_class").ctx("reading storage class")?;
    Ok(StorageClass::parse(&class).unwrap_or_default())
}

fn manifest_row(row: &SqliteRow) -> Result<ManifestRow, StoreError> {
    let subject: Option<String> = row.try_get("subject").ctx("reading manifest")?;
    let content: Vec<u8> = row.try_get("content").ctx("reading manifest")?;
    let image_size: i64 = row.try_get("image_size").ctx("reading manifest")?;
    Ok(ManifestRow {
        digest: digest_col(row, "digest")?,
        media_type: row.try_get("media_type").ctx("reading manifest")?,
        artifact_type: row.try_get("artifact_type").ctx("reading manifest")?,
        subject: subject.and_then(|s| s.parse().ok()),
        annotations: row.try_get("annotations").ctx("reading manifest")?,
        image_size: image_size as u64,
        content: Bytes::from(content),
        pushed_at: row.try_get("pushed_at").ctx("reading manifest")?,
        storage_class: storage_class_col(row)?,
    })
}

const IMAGE_COLS: &str =
    "m.digest, m.media_type, m.artifact_type, m.image_size, m.pushed_at, m.last_pulled_at, m.storage_class, m.archived_at, m.last_activated_at, m.subject";

/// An untagged manifest shown under another image: listed by an index, or a referrer whose
/// subject is in the repository (`m` is the manifest).
const NESTED: &str = "NOT EXISTS (SELECT 1 FROM tags u WHERE u.repository_id = m.repository_id AND u.manifest_digest = m.digest) \
     AND (EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = m.repository_id AND r.child_digest = m.digest AND r.kind = 1) \
     OR EXISTS (SELECT 1 FROM manifests p WHERE p.repository_id = m.repository_id AND p.digest = m.subject))";

/// The GROUP BY filter of an image listing (tags joined as `t`) for a tag status.
fn having_tags(status: TagStatus) -> &'static str {
    match status {
        TagStatus::Any => "",
        TagStatus::Tagged => "HAVING COUNT(t.name) > 0",
        TagStatus::Untagged => "HAVING COUNT(t.name) = 0",
    }
}

const REPO_COLS: &str =
    "id, account_id, region, name, created_at, tag_mutability, tag_mutability_exclusions, scan_on_push, encryption_type, kms_key, policy";

fn repository_row(r: &SqliteRow) -> Result<RepositoryRow, StoreError> {
    let c = "reading repository";
    let scan: i64 = r.try_get("scan_on_push").ctx(c)?;
    Ok(RepositoryRow {
        id: r.try_get("id").ctx(c)?,
        key: RepoKey { account: r.try_get("account_id").ctx(c)?, region: r.try_get("region").ctx(c)?, name: r.try_get("name").ctx(c)? },
        created_at: r.try_get("created_at").ctx(c)?,
        settings: RepositorySettings {
            tag_mutability: r.try_get("tag_mutability").ctx(c)?,
            tag_mutability_exclusions: r.try_get("tag_mutability_exclusions").ctx(c)?,
            scan_on_push: scan != 0,
            encryption_type: r.try_get("encryption_type").ctx(c)?,
            kms_key: r.try_get("kms_key").ctx(c)?,
        },
        policy: r.try_get("policy").ctx(c)?,
    })
}

fn image_row(r: &SqliteRow) -> Result<ImageRow, StoreError> {
    let c = "reading image";
    let tags: Option<String> = r.try_get("tags").ctx(c)?;
    let mut tags: Vec<String> = tags.map(|t| t.split('\n').map(str::to_string).collect()).unwrap_or_default();
    tags.sort();
    let size: i64 = r.try_get("image_size").ctx(c)?;
    Ok(ImageRow {
        digest: digest_col(r, "digest")?,
        tags,
        media_type: r.try_get("media_type").ctx(c)?,
        artifact_type: r.try_get("artifact_type").ctx(c)?,
        image_size: size as u64,
        pushed_at: r.try_get("pushed_at").ctx(c)?,
        last_pulled_at: r.try_get("last_pulled_at").ctx(c)?,
        storage_class: storage_class_col(r)?,
        archived_at: r.try_get("archived_at").ctx(c)?,
        last_activated_at: r.try_get("last_activated_at").ctx(c)?,
        subject: r.try_get::<Option<String>, _>("subject").ctx(c)?.and_then(|s| s.parse().ok()),
    })
}

async fn upsert_resource_tags(conn: &mut SqliteConnection, repository_id: i64, tags: &[(String, String)]) -> Result<(), StoreError> {
    for (k, v) in tags {
        sqlx::query(
            "INSERT INTO resource_tags (repository_id, tag_key, tag_value) VALUES (?, ?, ?) \
             ON CONFLICT (repository_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
        )
        .bind(repository_id)
        .bind(k)
        .bind(v)
        .execute(&mut *conn)
        .await
        .ctx("tagging repository")?;
    }
    Ok(())
}

pub(crate) async fn repo_id_in(conn: &mut SqliteConnection, key: &RepoKey) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT id FROM repositories WHERE account_id = ? AND region = ? AND name = ?")
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .fetch_optional(conn)
        .await
        .ctx("looking up repository")
}

impl SqliteMetadataStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        // Whether the writer connection may serve the next write, checked whenever it is released. A COMMIT that failed (a full disk,
        // an I/O error) can leave SQLite inside the transaction, or roll it back behind sqlx's back so
        // that sqlx's own depth counter stays raised; either way the next "transaction" would be a
        // savepoint inside one that never commits, and every write after it would be acknowledged and
        // lost. Such a connection is closed (SQLite rolls back on close) and the pool opens a new one.
        // The probe is a deferred BEGIN/ROLLBACK pair, which touches no page of the database.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(120))
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection as _;
                    // Runs after any rollback that dropping a transaction queued.
                    if sqlx::Executor::execute(&mut *conn, "BEGIN").await.is_err() {
                        tracing::warn!("closing the database writer connection: SQLite is still inside a transaction");
                        return Ok(false);
                    }
                    sqlx::Executor::execute(&mut *conn, "ROLLBACK").await?;
                    if conn.is_in_transaction() {
                        tracing::warn!("closing the database writer connection: its transaction count is out of step");
                        return Ok(false);
                    }
                    Ok(true)
                })
            })
            .connect_with(opts.clone())
            .await
            .ctx("opening database for writing")?;
        Self::migrate(&writer).await?;
        let reader =
            SqlitePoolOptions::new().max_connections(8).connect_with(opts.read_only(true)).await.ctx("opening database for reading")?;
        Ok(SqliteMetadataStore { writer, reader })
    }

    async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
        let mut tx = pool.begin().await.ctx("starting migration")?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *tx).await.ctx("reading schema version")?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
        }
        if version < 1 {
            sqlx::raw_sql(SCHEMA_V1).execute(&mut *tx).await.ctx("creating schema v1")?;
        }
        if version < 2 {
            sqlx::raw_sql(SCHEMA_V2).execute(&mut *tx).await.ctx("migrating to schema v2")?;
        }
        if version < 3 {
            sqlx::raw_sql(SCHEMA_V3).execute(&mut *tx).await.ctx("migrating to schema v3")?;
        }
        if version < 4 {
            sqlx::raw_sql(SCHEMA_V4).execute(&mut *tx).await.ctx("migrating to schema v4")?;
        }
        if version < 5 {
            sqlx::raw_sql(SCHEMA_V5).execute(&mut *tx).await.ctx("migrating to schema v5")?;
        }
        sqlx::raw_sql(&format!("PRAGMA user_version = {SCHEMA_VERSION}")).execute(&mut *tx).await.ctx("recording schema version")?;
        tx.commit().await.ctx("committing migration")
    }

    async fn repo_id(&self, key: &RepoKey) -> Result<Option<i64>, StoreError> {
        let mut conn = self.reader.acquire().await.ctx("acquiring connection")?;
        repo_id_in(&mut conn, key).await
    }
}

#[async_trait]
impl MetadataStore for SqliteMetadataStore {
    async fn get_repository(&self, key: &RepoKey) -> Result<Option<RepositoryRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {REPO_COLS} FROM repositories WHERE account_id = ? AND region = ? AND name = ?"))
            .bind(&key.account)
            .bind(&key.region)
            .bind(&key.name)
            .fetch_optional(&self.reader)
            .await
            .ctx("reading repository")?;
        row.as_ref().map(repository_row).transpose()
    }

    async fn create_repository(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        let mut tx = self.writer.begin().await.ctx("creating repository")?;
        let inserted = sqlx::query(
            "INSERT INTO repositories (account_id, region, name, created_at, tag_mutability, tag_mutability_exclusions, scan_on_push, encryption_type, kms_key) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .bind(now)
        .bind(&settings.tag_mutability)
        .bind(&settings.tag_mutability_exclusions)
        .bind(settings.scan_on_push as i64)
        .bind(&settings.encryption_type)
        .bind(&settings.kms_key)
        .execute(&mut *tx)
        .await
        .ctx("inserting repository")?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        let id = inserted.last_insert_rowid();
        upsert_resource_tags(&mut tx, id, tags).await?;
        let row = sqlx::query(&format!("SELECT {REPO_COLS} FROM repositories WHERE id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .ctx("reading created repository")?;
        tx.commit().await.ctx("committing repository")?;
        repository_row(&row).map(Some)
    }

    async fn list_repositories(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REPO_COLS} FROM repositories WHERE account_id = ? AND region = ? AND name > ? ORDER BY name LIMIT ?"
        ))
        .bind(account)
        .bind(region)
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .ctx("listing repositories")?;
        rows.iter().map(repository_row).collect()
    }

    async fn update_repository_settings(&self, key: &RepoKey, s: &RepositorySettings) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE repositories SET tag_mutability = ?, tag_mutability_exclusions = ?, scan_on_push = ?, encryption_type = ?, kms_key = ? \
             WHERE account_id = ? AND region = ? AND name = ?",
        )
        .bind(&s.tag_mutability)
        .bind(&s.tag_mutability_exclusions)
        .bind(s.scan_on_push as i64)
        .bind(&s.encryption_type)
        .bind(&s.kms_key)
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .execute(&self.writer)
        .await
        .ctx("updating repository")?;
        Ok(r.rows_affected() > 0)
    }

    async fn set_repository_policy(&self, key: &RepoKey, policy: Option<&str>) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE repositories SET policy = ? WHERE account_id = ? AND region = ? AND name = ?")
            .bind(policy)
            .bind(&key.account)
            .bind(&key.region)
            .bind(&key.name)
            .execute(&self.writer)
            .await
            .ctx("setting repository policy")?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_repository(&self, key: &RepoKey, force: bool) -> Result<DeleteRepositoryOutcome, StoreError> {
        let mut tx = self.writer.begin().await.ctx("deleting repository")?;
        let row = sqlx::query(&format!("SELECT {REPO_COLS} FROM repositories WHERE account_id = ? AND region = ? AND name = ?"))
            .bind(&key.account)
            .bind(&key.region)
            .bind(&key.name)
            .fetch_optional(&mut *tx)
            .await
            .ctx("reading repository")?;
        let Some(row) = row.as_ref().map(repository_row).transpose()? else { return Ok(DeleteRepositoryOutcome::NotFound) };
        if !force {
            let images: Option<i64> = sqlx::query_scalar("SELECT 1 FROM manifests WHERE repository_id = ? LIMIT 1")
                .bind(row.id)
                .fetch_optional(&mut *tx)
                .await
                .ctx("counting images")?;
            if images.is_some() {
                return Ok(DeleteRepositoryOutcome::NotEmpty);
            }
        }
        // Children first: tags and references name manifests, manifests name the repository.
        for sql in [
            "DELETE FROM tags WHERE repository_id = ?",
            "DELETE FROM manifest_references WHERE repository_id = ?",
            "DELETE FROM manifests WHERE repository_id = ?",
            "DELETE FROM repository_blobs WHERE repository_id = ?",
            "DELETE FROM uploads WHERE repository_id = ?",
            "DELETE FROM resource_tags WHERE repository_id = ?",
            "DELETE FROM repositories WHERE id = ?",
        ] {
            sqlx::query(sql).bind(row.id).execute(&mut *tx).await.ctx("deleting repository contents")?;
        }
        tx.commit().await.ctx("committing repository delete")?;
        Ok(DeleteRepositoryOutcome::Deleted(Box::new(row)))
    }

    async fn put_resource_tags(&self, key: &RepoKey, tags: &[(String, String)]) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.ctx("tagging repository")?;
        let Some(id) = repo_id_in(&mut tx, key).await? else { return Ok(false) };
        upsert_resource_tags(&mut tx, id, tags).await?;
        tx.commit().await.ctx("committing tags")?;
        Ok(true)
    }

    async fn remove_resource_tags(&self, key: &RepoKey, keys: &[String]) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.ctx("untagging repository")?;
        let Some(id) = repo_id_in(&mut tx, key).await? else { return Ok(false) };
        for k in keys {
            sqlx::query("DELETE FROM resource_tags WHERE repository_id = ? AND tag_key = ?")
                .bind(id)
                .bind(k)
                .execute(&mut *tx)
                .await
                .ctx("untagging repository")?;
        }
        tx.commit().await.ctx("committing untag")?;
        Ok(true)
    }

    async fn list_resource_tags(&self, key: &RepoKey) -> Result<Vec<(String, String)>, StoreError> {
        let Some(id) = self.repo_id(key).await? else { return Ok(Vec::new()) };
        let rows = sqlx::query("SELECT tag_key, tag_value FROM resource_tags WHERE repository_id = ? ORDER BY tag_key")
            .bind(id)
            .fetch_all(&self.reader)
            .await
            .ctx("listing resource tags")?;
        rows.iter().map(|r| Ok((r.try_get(0).ctx("reading tag")?, r.try_get(1).ctx("reading tag")?))).collect()
    }

    async fn get_registry_policy(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT document FROM registry_policies WHERE account_id = ? AND region = ?")
            .bind(account)
            .bind(region)
            .fetch_optional(&self.reader)
            .await
            .ctx("reading registry policy")
    }

    async fn set_registry_policy(&self, account: &str, region: &str, policy: Option<&str>) -> Result<bool, StoreError> {
        let r = match policy {
            Some(p) => sqlx::query(
                "INSERT INTO registry_policies (account_id, region, document) VALUES (?, ?, ?) ON CONFLICT (account_id, region) DO UPDATE SET document = excluded.document",
            )
            .bind(account)
            .bind(region)
            .bind(p),
            None => sqlx::query("DELETE FROM registry_policies WHERE account_id = ? AND region = ?").bind(account).bind(region),
        }
        .execute(&self.writer)
        .await
        .ctx("writing registry policy")?;
        Ok(r.rows_affected() > 0)
    }

    async fn repository_blob(&self, key: &RepoKey, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM blobs b JOIN repository_blobs rb ON rb.digest = b.digest \
             JOIN repositories r ON r.id = rb.repository_id WHERE r.account_id = ? AND r.region = ? AND r.name = ? AND b.digest = ?",
        )
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .bind(digest.to_string())
        .fetch_optional(&self.reader)
        .await
        .ctx("looking up repository blob")?;
        Ok(size.map(|s| s as u64))
    }

    async fn link_blob(&self, key: &RepoKey, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.ctx("linking blob")?;
        let Some(id) = repo_id_in(&mut tx, key).await? else {
            return Err(StoreError::Db { context: "linking blob into a repository that does not exist", source: sqlx::Error::RowNotFound });
        };
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, last_seen_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (digest) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        )
        .bind(digest.to_string())
        .bind(size as i64)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .ctx("recording blob")?;
        sqlx::query("INSERT INTO repository_blobs (repository_id, digest) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await
            .ctx("linking blob into repository")?;
        tx.commit().await.ctx("committing blob link")
    }

    async fn unlink_blob(&self, key: &RepoKey, digest: &Digest) -> Result<UnlinkOutcome, StoreError> {
        let mut tx = self.writer.begin().await.ctx("unlinking blob")?;
        let Some(id) = repo_id_in(&mut tx, key).await? else { return Ok(UnlinkOutcome::NotLinked) };
        let d = digest.to_string();
        let referenced: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM manifest_references WHERE repository_id = ? AND child_digest = ? AND kind = 0 LIMIT 1")
                .bind(id)
                .bind(&d)
                .fetch_optional(&mut *tx)
                .await
                .ctx("checking blob references")?;
        if referenced.is_some() {
            return Ok(UnlinkOutcome::Referenced);
        }
        let r = sqlx::query("DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ?")
            .bind(id)
            .bind(&d)
            .execute(&mut *tx)
            .await
            .ctx("unlinking blob")?;
        tx.commit().await.ctx("committing blob unlink")?;
        Ok(if r.rows_affected() > 0 { UnlinkOutcome::Unlinked } else { UnlinkOutcome::NotLinked })
    }

    async fn touch_blob(&self, digest: &Digest, now: Millis, stale_before: Millis) -> Result<(), StoreError> {
        // Read first: the common case (fresh) then costs no write transaction.
        let seen: Option<i64> = sqlx::query_scalar("SELECT last_seen_at FROM blobs WHERE digest = ?")
            .bind(digest.to_string())
            .fetch_optional(&self.reader)
            .await
            .ctx("reading blob")?;
        if seen.is_some_and(|s| s < stale_before) {
            sqlx::query("UPDATE blobs SET last_seen_at = ? WHERE digest = ? AND last_seen_at < ?")
                .bind(now)
                .bind(digest.to_string())
                .bind(stale_before)
                .execute(&self.writer)
                .await
                .ctx("touching blob")?;
        }
        Ok(())
    }

    async fn create_upload(&self, upload: &UploadRow) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.ctx("creating upload session")?;
        let Some(id) = repo_id_in(&mut tx, &upload.repository).await? else {
            return Err(StoreError::Db { context: "upload into a repository that does not exist", source: sqlx::Error::RowNotFound });
        };
        sqlx::query("INSERT INTO uploads (id, repository_id, started_at, len, cursor, hash_state) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&upload.id)
            .bind(id)
            .bind(upload.started_at)
            .bind(upload.cursor.len as i64)
            .bind(&upload.cursor.state)
            .bind(&upload.hash_state)
            .execute(&mut *tx)
            .await
            .ctx("creating upload session")?;
        tx.commit().await.ctx("committing upload session")
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, r.account_id, r.region, r.name, u.started_at, u.len, u.cursor, u.hash_state FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.id = ?",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .ctx("reading upload session")?;
        row.as_ref().map(upload_row).transpose()
    }

    async fn delete_upload(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM uploads WHERE id = ?").bind(id).execute(&self.writer).await.ctx("deleting upload session")?;
        Ok(r.rows_affected() > 0)
    }

    async fn record_upload_progress(
        &self,
        id: &str,
        expected_len: u64,
        cursor: &UploadCursor,
        hash_state: &[u8],
    ) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE uploads SET len = ?, cursor = ?, hash_state = ? WHERE id = ? AND len = ?")
            .bind(cursor.len as i64)
            .bind(&cursor.state)
            .bind(hash_state)
            .bind(id)
            .bind(expected_len as i64)
            .execute(&self.writer)
            .await
            .ctx("recording upload progress")?;
        Ok(r.rows_affected() == 1)
    }

    async fn uploads_started_before(&self, before: Millis) -> Result<Vec<UploadRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, r.account_id, r.region, r.name, u.started_at, u.len, u.cursor, u.hash_state FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.started_at < ?",
        )
        .bind(before)
        .fetch_all(&self.reader)
        .await
        .ctx("listing stale upload sessions")?;
        rows.iter().map(upload_row).collect()
    }

    async fn count_uploads(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM uploads").fetch_one(&self.reader).await.ctx("counting uploads")?;
        Ok(n as u64)
    }

    async fn put_manifest(&self, new: NewManifest<'_>) -> Result<PutManifestOutcome, StoreError> {
        let mut tx = self.writer.begin().await.ctx("storing manifest")?;
        let Some(repo_id) = repo_id_in(&mut tx, new.repository).await? else { return Ok(PutManifestOutcome::RepositoryMissing) };
        for reference in &new.references {
            let stored: Option<i64> = match reference.kind {
                RefKind::Blob => sqlx::query_scalar(
                    "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = ? AND rb.digest = ?",
                ),
                RefKind::Manifest => sqlx::query_scalar("SELECT size FROM manifests WHERE repository_id = ? AND digest = ?"),
            }
            .bind(repo_id)
            .bind(reference.digest.to_string())
            .fetch_optional(&mut *tx)
            .await
            .ctx("checking manifest reference")?;
            match stored {
                None => return Ok(PutManifestOutcome::MissingReference(reference.digest.clone(), reference.kind)),
                Some(stored) if stored as u64 != reference.size => {
                    return Ok(PutManifestOutcome::SizeMismatch { reference: reference.clone(), stored: stored as u64 })
                }
                Some(_) => {}
            }
        }
        let m = &new.manifest;
        let digest = m.digest.to_string();
        for (tag, _) in new.tags.iter().filter(|(_, rule)| *rule == TagMove::CreateOnly) {
            let existing: Option<String> = sqlx::query_scalar("SELECT manifest_digest FROM tags WHERE repository_id = ? AND name = ?")
                .bind(repo_id)
                .bind(tag)
                .fetch_optional(&mut *tx)
                .await
                .ctx("reading tag")?;
            if let Some(existing) = existing.filter(|e| *e != digest) {
                return Ok(PutManifestOutcome::TagExists(parse_digest(&existing)?));
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject, annotations, size, image_size, content, pushed_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(repo_id)
        .bind(&digest)
        .bind(&m.media_type)
        .bind(&m.artifact_type)
        .bind(m.subject.as_ref().map(|s| s.to_string()))
        .bind(&m.annotations)
        .bind(m.content.len() as i64)
        .bind(m.image_size as i64)
        .bind(m.content.as_ref())
        .bind(m.pushed_at)
        .execute(&mut *tx)
        .await
        .ctx("inserting manifest")?;
        let mut restored = false;
        if inserted.rows_affected() == 0 {
            // Pushing an archived image again restores it (as ECR does).
            restored = sqlx::query(
                "UPDATE manifests SET storage_class = 'STANDARD', last_activated_at = ? \
                 WHERE repository_id = ? AND digest = ? AND storage_class = 'ARCHIVE'",
            )
            .bind(m.pushed_at)
            .bind(repo_id)
            .bind(&digest)
            .execute(&mut *tx)
            .await
            .ctx("restoring archived manifest")?
            .rows_affected()
                > 0;
        }
        if inserted.rows_affected() > 0 {
            for reference in &new.references {
                sqlx::query(
                    "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, kind) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(repo_id)
                .bind(&digest)
                .bind(reference.digest.to_string())
                .bind(kind_code(reference.kind))
                .execute(&mut *tx)
                .await
                .ctx("recording manifest reference")?;
            }
        }
        for (tag, _) in &new.tags {
            sqlx::query(
                "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
            )
            .bind(repo_id)
            .bind(tag)
            .bind(&digest)
            .bind(m.pushed_at)
            .execute(&mut *tx)
            .await
            .ctx("moving tag")?;
        }
        tx.commit().await.ctx("committing manifest")?;
        Ok(PutManifestOutcome::Stored { inserted: inserted.rows_affected() > 0, restored })
    }

    async fn get_manifest_by_digest(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ManifestRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MANIFEST_COLS} FROM manifests m JOIN repositories r ON r.id = m.repository_id \
             WHERE r.account_id = ? AND r.region = ? AND r.name = ? AND m.digest = ?"
        ))
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .bind(digest.to_string())
        .fetch_optional(&self.reader)
        .await
        .ctx("reading manifest")?;
        row.as_ref().map(manifest_row).transpose()
    }

    async fn get_manifest_by_tag(&self, key: &RepoKey, tag: &str) -> Result<Option<ManifestRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MANIFEST_COLS} FROM tags t JOIN repositories r ON r.id = t.repository_id \
             JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest \
             WHERE r.account_id = ? AND r.region = ? AND r.name = ? AND t.name = ?"
        ))
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .bind(tag)
        .fetch_optional(&self.reader)
        .await
        .ctx("reading manifest by tag")?;
        row.as_ref().map(manifest_row).transpose()
    }

    /// One transaction on the single writer connection: an index push (also a writer
    /// transaction) is either wholly before the check, and its reference is seen, or after the
    /// delete, and finds its child missing.
    async fn delete_manifest(&self, key: &RepoKey, digest: &Digest) -> Result<DeleteManifestOutcome, StoreError> {
        let mut tx = self.writer.begin().await.ctx("deleting manifest")?;
        let Some(repo_id) = repo_id_in(&mut tx, key).await? else { return Ok(DeleteManifestOutcome::NotFound) };
        let d = digest.to_string();
        let parent: Option<String> = sqlx::query_scalar(
            "SELECT manifest_digest FROM manifest_references WHERE repository_id = ? AND child_digest = ? AND kind = 1 \
             ORDER BY manifest_digest LIMIT 1",
        )
        .bind(repo_id)
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await
        .ctx("checking index references")?;
        if let Some(parent) = parent {
            return Ok(DeleteManifestOutcome::ListedBy(parse_digest(&parent)?));
        }
        for sql in [
            "DELETE FROM tags WHERE repository_id = ? AND manifest_digest = ?",
            "DELETE FROM manifest_references WHERE repository_id = ? AND manifest_digest = ?",
        ] {
            sqlx::query(sql).bind(repo_id).bind(&d).execute(&mut *tx).await.ctx("deleting manifest tags and references")?;
        }
        let r = sqlx::query("DELETE FROM manifests WHERE repository_id = ? AND digest = ?")
            .bind(repo_id)
            .bind(&d)
            .execute(&mut *tx)
            .await
            .ctx("deleting manifest")?;
        tx.commit().await.ctx("committing manifest delete")?;
        Ok(if r.rows_affected() > 0 { DeleteManifestOutcome::Deleted } else { DeleteManifestOutcome::NotFound })
    }

    async fn manifest_parents(&self, key: &RepoKey, digest: &Digest) -> Result<Vec<Digest>, StoreError> {
        let Some(repo_id) = self.repo_id(key).await? else { return Ok(Vec::new()) };
        let parents: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT manifest_digest FROM manifest_references WHERE repository_id = ? AND child_digest = ? AND kind = 1 \
             ORDER BY manifest_digest",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .fetch_all(&self.reader)
        .await
        .ctx("listing indexes of a manifest")?;
        parents.iter().map(|p| parse_digest(p)).collect()
    }

    async fn repository_size(&self, key: &RepoKey) -> Result<u64, StoreError> {
        let Some(repo_id) = self.repo_id(key).await? else { return Ok(0) };
        let total: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(b.size), 0) FROM blobs b WHERE b.digest IN \
             (SELECT child_digest FROM manifest_references WHERE repository_id = ? AND kind = 0)",
        )
        .bind(repo_id)
        .fetch_one(&self.reader)
        .await
        .ctx("summing a repository's blobs")?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    async fn delete_tag(&self, key: &RepoKey, tag: &str) -> Result<bool, StoreError> {
        let Some(repo_id) = self.repo_id(key).await? else { return Ok(false) };
        let r = sqlx::query("DELETE FROM tags WHERE repository_id = ? AND name = ?")
            .bind(repo_id)
            .bind(tag)
            .execute(&self.writer)
            .await
            .ctx("deleting tag")?;
        Ok(r.rows_affected() > 0)
    }

    async fn list_tags(&self, key: &RepoKey, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
        let Some(repo_id) = self.repo_id(key).await? else { return Ok(Vec::new()) };
        sqlx::query_scalar("SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name LIMIT ?")
            .bind(repo_id)
            .bind(after.unwrap_or(""))
            .bind(limit as i64)
            .fetch_all(&self.reader)
            .await
            .ctx("listing tags")
    }

    async fn list_referrers(&self, key: &RepoKey, subject: &Digest) -> Result<Vec<ManifestSummary>, StoreError> {
        let Some(repo_id) = self.repo_id(key).await? else { return Ok(Vec::new()) };
        let rows = sqlx::query(
            "SELECT digest, media_type, artifact_type, annotations, size, storage_class FROM manifests WHERE repository_id = ? AND subject = ? ORDER BY pushed_at, digest",
        )
        .bind(repo_id)
        .bind(subject.to_string())
        .fetch_all(&self.reader)
        .await
        .ctx("listing referrers")?;
        rows.iter()
            .map(|r| {
                let size: i64 = r.try_get("size").ctx("reading referrer")?;
                Ok(ManifestSummary {
                    digest: digest_col(r, "digest")?,
                    media_type: r.try_get("media_type").ctx("reading referrer")?,
                    artifact_type: r.try_get("artifact_type").ctx("reading referrer")?,
                    annotations: r.try_get("annotations").ctx("reading referrer")?,
                    size: size as u64,
                    storage_class: storage_class_col(r)?,
                })
            })
            .collect()
    }

    async fn list_images(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError> {
        let Some(repo_id) = self.repo_id(key).await? else { return Ok(Vec::new()) };
        let having = having_tags(status);
        let rows = sqlx::query(&format!(
            "SELECT {IMAGE_COLS}, group_concat(t.name, char(10)) AS tags \
             FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
             WHERE m.repository_id = ? AND m.digest > ? AND (? IS NULL OR m.storage_class = ?) GROUP BY m.digest {having} ORDER BY m.digest LIMIT ?"
        ))
        .bind(repo_id)
        .bind(after.unwrap_or(""))
        .bind(storage.map(StorageClass::as_str))
        .bind(storage.map(StorageClass::as_str))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .ctx("listing images")?;
        rows.iter().map(image_row).collect()
    }

    async fn list_images_by_push(
        &self,
        key: &RepoKey,
        filter: &ImageFilter<'_>,
        after: Option<(Millis, &str)>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError> {
        let Some(repo_id) = self.repo_id(key).await? else { return Ok(Vec::new()) };
        let having = having_tags(filter.status);
        let rows = sqlx::query(&format!(
            "SELECT {IMAGE_COLS}, group_concat(t.name, char(10)) AS tags \
             FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
             WHERE m.repository_id = ?1 AND (?2 IS NULL OR m.pushed_at < ?2 OR (m.pushed_at = ?2 AND m.digest > ?3)) \
             AND (?4 IS NULL OR m.storage_class = ?4) \
             AND (?5 IS NULL OR instr(lower(m.digest), ?5) > 0 OR EXISTS (SELECT 1 FROM tags s \
                  WHERE s.repository_id = m.repository_id AND s.manifest_digest = m.digest AND instr(lower(s.name), ?5) > 0)) \
             AND (?6 = 0 OR NOT ({NESTED})) \
             GROUP BY m.digest {having} ORDER BY m.pushed_at DESC, m.digest LIMIT ?7"
        ))
        .bind(repo_id)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, d)| d).unwrap_or(""))
        .bind(filter.storage.map(StorageClass::as_str))
        .bind(filter.search)
        .bind(filter.top_level)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .ctx("listing images by push time")?;
        rows.iter().map(image_row).collect()
    }

    async fn get_image(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageRow>, StoreError> {
        let Some(repo_id) = self.repo_id(key).await? else { return Ok(None) };
        let row = sqlx::query(&format!(
            "SELECT {IMAGE_COLS}, group_concat(t.name, char(10)) AS tags \
             FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
             WHERE m.repository_id = ? AND m.digest = ? GROUP BY m.digest"
        ))
        .bind(repo_id)
        .bind(digest.to_string())
        .fetch_optional(&self.reader)
        .await
        .ctx("reading image")?;
        row.as_ref().map(image_row).transpose()
    }

    async fn list_image_ids(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(Digest, String)>, StoreError> {
        let Some(repo_id) = self.repo_id(key).await? else { return Ok(Vec::new()) };
        let tagged = match storage {
            None => "SELECT manifest_digest AS digest, name AS tag FROM tags WHERE repository_id = ?1",
            Some(_) => {
                "SELECT t.manifest_digest AS digest, t.name AS tag FROM tags t JOIN manifests m \
                 ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest WHERE t.repository_id = ?1 AND m.storage_class = ?5"
            }
        };
        let untagged = "SELECT m.digest AS digest, '' AS tag FROM manifests m WHERE m.repository_id = ?1 \
             AND (?5 IS NULL OR m.storage_class = ?5) AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)";
        let source = match status {
            TagStatus::Tagged => tagged.to_string(),
            TagStatus::Untagged => untagged.to_string(),
            TagStatus::Any => format!("{tagged} UNION ALL {untagged}"),
        };
        let (after_digest, after_tag) = after.unwrap_or(("", ""));
        let rows = sqlx::query(&format!(
            "SELECT digest, tag FROM ({source}) WHERE digest > ?2 OR (digest = ?2 AND tag > ?3) ORDER BY digest, tag LIMIT ?4"
        ))
        .bind(repo_id)
        .bind(after_digest)
        .bind(after_tag)
        .bind(limit as i64)
        .bind(storage.map(StorageClass::as_str))
        .fetch_all(&self.reader)
        .await
        .ctx("listing image ids")?;
        rows.iter().map(|r| Ok((digest_col(r, "digest")?, r.try_get("tag").ctx("reading image id")?))).collect()
    }

    async fn record_pulls(&self, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError> {
        crate::sqlite_lifecycle::record_pulls(&self.writer, pulls).await
    }

    async fn set_storage_class(
        &self,
        key: &RepoKey,
        digest: &Digest,
        class: StorageClass,
        now: Millis,
    ) -> Result<Option<bool>, StoreError> {
        crate::sqlite_lifecycle::set_storage_class(&self.writer, key, digest, class, now).await
    }

    async fn set_lifecycle_policy(&self, key: &RepoKey, policy: Option<&str>, now: Millis) -> Result<bool, StoreError> {
        crate::sqlite_lifecycle::set_lifecycle_policy(&self.writer, key, policy, now).await
    }

    async fn lifecycle_policy(&self, key: &RepoKey) -> Result<Option<LifecyclePolicyRow>, StoreError> {
        crate::sqlite_lifecycle::lifecycle_policy(&self.reader, key).await
    }

    async fn mark_lifecycle_evaluated(&self, key: &RepoKey, now: Millis) -> Result<(), StoreError> {
        crate::sqlite_lifecycle::mark_lifecycle_evaluated(&self.writer, key, now).await
    }

    async fn expire_manifest(&self, key: &RepoKey, digest: &Digest, expected_tags: &[String]) -> Result<ExpireOutcome, StoreError> {
        crate::sqlite_lifecycle::expire_manifest(&self.writer, key, digest, expected_tags).await
    }

    async fn archive_if_unchanged(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        now: Millis,
    ) -> Result<bool, StoreError> {
        crate::sqlite_lifecycle::archive_if_unchanged(&self.writer, key, digest, expected_tags, now).await
    }

    async fn lifecycle_repositories(&self) -> Result<Vec<RepoKey>, StoreError> {
        crate::sqlite_lifecycle::lifecycle_repositories(&self.reader).await
    }

    async fn lifecycle_images(&self, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError> {
        crate::sqlite_lifecycle::lifecycle_images(&self.reader, key).await
    }

    async fn put_lifecycle_preview(&self, key: &RepoKey, preview: &LifecyclePreviewRow) -> Result<bool, StoreError> {
        crate::sqlite_lifecycle::put_lifecycle_preview(&self.writer, key, preview).await
    }

    async fn lifecycle_preview(&self, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError> {
        crate::sqlite_lifecycle::lifecycle_preview(&self.reader, key).await
    }

    async fn all_references(&self) -> Result<Vec<(RepoKey, Digest, Digest, RefKind)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.account_id, r.region, r.name, mr.manifest_digest, mr.child_digest, mr.kind FROM manifest_references mr JOIN repositories r ON r.id = mr.repository_id",
        )
        .fetch_all(&self.reader)
        .await
        .ctx("listing references")?;
        rows.iter()
            .map(|r| {
                let c = "reading reference";
                let kind: i64 = r.try_get("kind").ctx(c)?;
                Ok((
                    RepoKey {
                        account: r.try_get("account_id").ctx(c)?,
                        region: r.try_get("region").ctx(c)?,
                        name: r.try_get("name").ctx(c)?,
                    },
                    digest_col(r, "manifest_digest")?,
                    digest_col(r, "child_digest")?,
                    if kind == 0 { RefKind::Blob } else { RefKind::Manifest },
                ))
            })
            .collect()
    }

    async fn gc_candidates(&self, before: Millis) -> Result<Vec<GcCandidate>, StoreError> {
        let rows = sqlx::query(
            "SELECT b.digest, b.size FROM blobs b WHERE b.last_seen_at < ? AND NOT EXISTS \
             (SELECT 1 FROM manifest_references mr WHERE mr.child_digest = b.digest AND mr.kind = 0)",
        )
        .bind(before)
        .fetch_all(&self.reader)
        .await
        .ctx("finding unreferenced blobs")?;
        rows.iter()
            .map(|r| {
                let size: i64 = r.try_get("size").ctx("reading blob")?;
                Ok(GcCandidate { digest: digest_col(r, "digest")?, size: size as u64 })
            })
            .collect()
    }

    async fn gc_forget_blob(&self, digest: &Digest, before: Millis) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.ctx("collecting blob")?;
        let d = digest.to_string();
        let still_garbage: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM blobs b WHERE b.digest = ? AND b.last_seen_at < ? AND NOT EXISTS \
             (SELECT 1 FROM manifest_references mr WHERE mr.child_digest = b.digest AND mr.kind = 0)",
        )
        .bind(&d)
        .bind(before)
        .fetch_optional(&mut *tx)
        .await
        .ctx("re-checking blob")?;
        if still_garbage.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM repository_blobs WHERE digest = ?").bind(&d).execute(&mut *tx).await.ctx("unlinking blob")?;
        sqlx::query("DELETE FROM blobs WHERE digest = ?").bind(&d).execute(&mut *tx).await.ctx("forgetting blob")?;
        tx.commit().await.ctx("committing blob collection")?;
        Ok(true)
    }

    async fn ensure_account(&self, account: &str, now: Millis) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO accounts (account_id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(account)
            .bind(now)
            .execute(&self.writer)
            .await
            .ctx("creating account")?;
        Ok(())
    }

    async fn create_user(&self, account: &str, name: &str, arn: &str, now: Millis) -> Result<bool, StoreError> {
        let r = sqlx::query("INSERT INTO users (arn, account_id, name, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(arn)
            .bind(account)
            .bind(name)
            .bind(now)
            .execute(&self.writer)
            .await
            .ctx("creating user")?;
        Ok(r.rows_affected() > 0)
    }

    async fn user_account(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT account_id FROM users WHERE arn = ?")
            .bind(user_arn)
            .fetch_optional(&self.reader)
            .await
            .ctx("reading user")
    }

    async fn create_access_key(&self, access_key_id: &str, secret: &str, user_arn: &str, now: Millis) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO access_keys (access_key_id, secret, user_arn, active, created_at) VALUES (?, ?, ?, 1, ?)")
            .bind(access_key_id)
            .bind(secret)
            .bind(user_arn)
            .bind(now)
            .execute(&self.writer)
            .await
            .ctx("creating access key")?;
        Ok(())
    }

    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRow>, StoreError> {
        let row = sqlx::query(
            "SELECT k.access_key_id, k.secret, k.user_arn, u.account_id, k.active FROM access_keys k JOIN users u ON u.arn = k.user_arn WHERE k.access_key_id = ?",
        )
        .bind(access_key_id)
        .fetch_optional(&self.reader)
        .await
        .ctx("reading access key")?;
        row.map(|r| {
            let c = "reading access key";
            let active: i64 = r.try_get("active").ctx(c)?;
            Ok(AccessKeyRow {
                access_key_id: r.try_get("access_key_id").ctx(c)?,
                secret: r.try_get("secret").ctx(c)?,
                user_arn: r.try_get("user_arn").ctx(c)?,
                account: r.try_get("account_id").ctx(c)?,
                active: active != 0,
            })
        })
        .transpose()
    }

    async fn put_user_policy(&self, user_arn: &str, policy_name: &str, document: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_policies (user_arn, policy_name, document) VALUES (?, ?, ?) ON CONFLICT (user_arn, policy_name) DO UPDATE SET document = excluded.document",
        )
        .bind(user_arn)
        .bind(policy_name)
        .bind(document)
        .execute(&self.writer)
        .await
        .ctx("attaching policy")?;
        Ok(())
    }

    async fn put_image_scan(&self, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError> {
        crate::sqlite_scans::put_image_scan(&self.writer, key, digest, scan).await
    }

    async fn image_scan(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError> {
        crate::sqlite_scans::image_scan(&self.reader, key, digest).await
    }

    async fn image_scans(&self, key: &RepoKey, digests: &[Digest]) -> Result<Vec<(Digest, ImageScanRow)>, StoreError> {
        crate::sqlite_scans::image_scans(&self.reader, key, digests).await
    }

    async fn scanned_images(&self, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError> {
        crate::sqlite_scans::scanned_images(&self.reader, status).await
    }

    async fn registry_scanning(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        crate::sqlite_scans::registry_scanning(&self.reader, account, region).await
    }

    async fn set_registry_scanning(&self, account: &str, region: &str, config: &str) -> Result<(), StoreError> {
        crate::sqlite_scans::set_registry_scanning(&self.writer, account, region, config).await
    }

    async fn set_console_password(&self, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError> {
        crate::sqlite_lifecycle::set_console_password(&self.writer, user_arn, hash).await
    }

    async fn console_password(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        crate::sqlite_lifecycle::console_password(&self.reader, user_arn).await
    }

    async fn console_session_state(&self, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError> {
        crate::sqlite_lifecycle::console_session_state(&self.reader, user_arn).await
    }

    async fn end_console_sessions(&self, user_arn: &str) -> Result<bool, StoreError> {
        crate::sqlite_lifecycle::end_console_sessions(&self.writer, user_arn).await
    }

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT policy_name, document FROM user_policies WHERE user_arn = ? ORDER BY policy_name")
            .bind(user_arn)
            .fetch_all(&self.reader)
            .await
            .ctx("reading user policies")?;
        rows.iter().map(|r| Ok((r.try_get(0).ctx("reading policy")?, r.try_get(1).ctx("reading policy")?))).collect()
    }

    async fn signing_keys(&self, fresh: &[u8], now: Millis) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut tx = self.writer.begin().await.ctx("reading signing keys")?;
        let existing: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT secret FROM signing_keys ORDER BY id DESC").fetch_all(&mut *tx).await.ctx("reading signing keys")?;
        if !existing.is_empty() {
            return Ok(existing);
        }
        sqlx::query("INSERT INTO signing_keys (secret, created_at) VALUES (?, ?)")
            .bind(fresh)
            .bind(now)
            .execute(&mut *tx)
            .await
            .ctx("creating signing key")?;
        tx.commit().await.ctx("committing signing key")?;
        Ok(vec![fresh.to_vec()])
    }

    async fn rotate_signing_key(&self, fresh: &[u8], now: Millis, keep: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut tx = self.writer.begin().await.ctx("rotating signing keys")?;
        sqlx::query("INSERT INTO signing_keys (secret, created_at) VALUES (?, ?)")
            .bind(fresh)
            .bind(now)
            .execute(&mut *tx)
            .await
            .ctx("adding a signing key")?;
        sqlx::query("DELETE FROM signing_keys WHERE id NOT IN (SELECT id FROM signing_keys ORDER BY id DESC LIMIT ?)")
            .bind(keep.max(1) as i64)
            .execute(&mut *tx)
            .await
            .ctx("retiring old signing keys")?;
        let kept: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT secret FROM signing_keys ORDER BY id DESC").fetch_all(&mut *tx).await.ctx("reading signing keys")?;
        tx.commit().await.ctx("committing signing keys")?;
        Ok(kept)
    }

    async fn try_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        // One statement: insert, or take over only an expired lease or our own.
        let r = sqlx::query(
            "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?4) \
             ON CONFLICT (name) DO UPDATE SET holder = ?2, until = ?4 WHERE leases.holder = ?2 OR leases.until < ?3",
        )
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(until)
        .execute(&self.writer)
        .await
        .ctx("taking a lease")?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&self.writer)
            .await
            .ctx("releasing a lease")?;
        Ok(())
    }
}

fn upload_row(r: &SqliteRow) -> Result<UploadRow, StoreError> {
    let c = "reading upload session";
    Ok(UploadRow {
        id: r.try_get("id").ctx(c)?,
        repository: RepoKey {
            account: r.try_get("account_id").ctx(c)?,
            region: r.try_get("region").ctx(c)?,
            name: r.try_get("name").ctx(c)?,
        },
        started_at: r.try_get("started_at").ctx(c)?,
        cursor: UploadCursor { len: r.try_get::<i64, _>("len").ctx(c)? as u64, state: r.try_get("cursor").ctx(c)? },
        hash_state: r.try_get("hash_state").ctx(c)?,
    })
}
