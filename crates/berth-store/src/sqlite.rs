//! Metadata in an embedded SQLite database (WAL, synchronous=FULL).
//!
//! Writes go through a pool of one connection, so write transactions never
//! contend with each other inside the process (no SQLITE_BUSY on lock
//! upgrade); reads use a separate pool and see the last committed state.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::error::DbContext;
use crate::meta::*;
use crate::{Digest, StoreError, UploadCursor};

mod cluster;
mod content;
mod identity;
mod lifecycle;
mod repos;
mod scans;

const SCHEMA_VERSION: i64 = 4;
const SCHEMA_V1: &str = include_str!("sqlite_schema.sql");
const SCHEMA_V2: &str = include_str!("sqlite_schema_v2.sql");
const SCHEMA_V3: &str = include_str!("sqlite_schema_v3.sql");
const SCHEMA_V4: &str = include_str!("sqlite_schema_v4.sql");

pub struct SqliteMetadataStore {
    writer: SqlitePool,
    reader: SqlitePool,
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
        sqlx::raw_sql(&format!("PRAGMA user_version = {SCHEMA_VERSION}")).execute(&mut *tx).await.ctx("recording schema version")?;
        tx.commit().await.ctx("committing migration")
    }

    async fn repo_id(&self, key: &RepoKey) -> Result<Option<i64>, StoreError> {
        let mut conn = self.reader.acquire().await.ctx("acquiring connection")?;
        repo_id_in(&mut conn, key).await
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
