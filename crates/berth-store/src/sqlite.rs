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
use sqlx::{Row, SqlitePool};

use crate::error::DbContext;
use crate::meta::*;
use crate::{Digest, StoreError};

const SCHEMA_VERSION: i64 = 1;
const SCHEMA_V1: &str = include_str!("sqlite_schema.sql");

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
fn digest_col(row: &SqliteRow, col: &str) -> Result<Digest, StoreError> {
    let s: String = row.try_get(col).ctx("reading digest column")?;
    Digest::from_str(&s).map_err(|e| StoreError::Db { context: "corrupt digest in database", source: sqlx::Error::Decode(Box::new(e)) })
}

fn manifest_row(row: &SqliteRow) -> Result<ManifestRow, StoreError> {
    let subject: Option<String> = row.try_get("subject").ctx("reading manifest")?;
    let content: Vec<u8> = row.try_get("content").ctx("reading manifest")?;
    Ok(ManifestRow {
        digest: digest_col(row, "digest")?,
        media_type: row.try_get("media_type").ctx("reading manifest")?,
        artifact_type: row.try_get("artifact_type").ctx("reading manifest")?,
        subject: subject.and_then(|s| s.parse().ok()),
        annotations: row.try_get("annotations").ctx("reading manifest")?,
        content: Bytes::from(content),
        pushed_at: row.try_get("pushed_at").ctx("reading manifest")?,
    })
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
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(120))
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
        sqlx::raw_sql(&format!("PRAGMA user_version = {SCHEMA_VERSION}")).execute(&mut *tx).await.ctx("recording schema version")?;
        tx.commit().await.ctx("committing migration")
    }

    async fn repo_id(&self, name: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reader)
            .await
            .ctx("looking up repository")
    }
}

const MANIFEST_COLS: &str = "m.digest, m.media_type, m.artifact_type, m.subject, m.annotations, m.content, m.pushed_at";

#[async_trait]
impl MetadataStore for SqliteMetadataStore {
    async fn get_repository(&self, name: &str) -> Result<Option<RepositoryRow>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM repositories WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reader)
            .await
            .ctx("reading repository")?;
        row.map(|r| {
            Ok(RepositoryRow {
                id: r.try_get("id").ctx("reading repository")?,
                name: r.try_get("name").ctx("reading repository")?,
                created_at: r.try_get("created_at").ctx("reading repository")?,
            })
        })
        .transpose()
    }

    async fn ensure_repository(&self, name: &str, now: Millis) -> Result<RepositoryRow, StoreError> {
        if let Some(r) = self.get_repository(name).await? {
            return Ok(r);
        }
        sqlx::query("INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(now)
            .execute(&self.writer)
            .await
            .ctx("creating repository")?;
        let row = sqlx::query("SELECT id, name, created_at FROM repositories WHERE name = ?")
            .bind(name)
            .fetch_one(&self.writer)
            .await
            .ctx("reading created repository")?;
        Ok(RepositoryRow {
            id: row.try_get("id").ctx("reading repository")?,
            name: row.try_get("name").ctx("reading repository")?,
            created_at: row.try_get("created_at").ctx("reading repository")?,
        })
    }

    async fn list_repositories(&self, last: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?")
            .bind(last.unwrap_or(""))
            .bind(limit as i64)
            .fetch_all(&self.reader)
            .await
            .ctx("listing repositories")
    }

    async fn repository_blob(&self, repository: &str, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM blobs b JOIN repository_blobs rb ON rb.digest = b.digest \
             JOIN repositories r ON r.id = rb.repository_id WHERE r.name = ? AND b.digest = ?",
        )
        .bind(repository)
        .bind(digest.to_string())
        .fetch_optional(&self.reader)
        .await
        .ctx("looking up repository blob")?;
        Ok(size.map(|s| s as u64))
    }

    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = ?")
            .bind(digest.to_string())
            .fetch_optional(&self.reader)
            .await
            .ctx("looking up blob")?;
        Ok(size.map(|s| s as u64))
    }

    async fn link_blob(&self, repository: &str, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.ctx("linking blob")?;
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
        sqlx::query(
            "INSERT INTO repository_blobs (repository_id, digest) SELECT id, ? FROM repositories WHERE name = ? \
             ON CONFLICT DO NOTHING",
        )
        .bind(digest.to_string())
        .bind(repository)
        .execute(&mut *tx)
        .await
        .ctx("linking blob into repository")?;
        tx.commit().await.ctx("committing blob link")
    }

    async fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<UnlinkOutcome, StoreError> {
        let mut tx = self.writer.begin().await.ctx("unlinking blob")?;
        let d = digest.to_string();
        let referenced: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM manifest_references mr JOIN repositories r ON r.id = mr.repository_id \
             WHERE r.name = ? AND mr.child_digest = ? AND mr.kind = 0 LIMIT 1",
        )
        .bind(repository)
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await
        .ctx("checking blob references")?;
        if referenced.is_some() {
            return Ok(UnlinkOutcome::Referenced);
        }
        let r =
            sqlx::query("DELETE FROM repository_blobs WHERE digest = ? AND repository_id = (SELECT id FROM repositories WHERE name = ?)")
                .bind(&d)
                .bind(repository)
                .execute(&mut *tx)
                .await
                .ctx("unlinking blob")?;
        tx.commit().await.ctx("committing blob unlink")?;
        Ok(if r.rows_affected() > 0 { UnlinkOutcome::Unlinked } else { UnlinkOutcome::NotLinked })
    }

    async fn touch_blob(&self, digest: &Digest, now: Millis, stale_before: Millis) -> Result<(), StoreError> {
        sqlx::query("UPDATE blobs SET last_seen_at = ? WHERE digest = ? AND last_seen_at < ?")
            .bind(now)
            .bind(digest.to_string())
            .bind(stale_before)
            .execute(&self.writer)
            .await
            .ctx("touching blob")?;
        Ok(())
    }

    async fn create_upload(&self, upload: &UploadRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO uploads (id, repository_id, started_at) SELECT ?, id, ? FROM repositories WHERE name = ?")
            .bind(&upload.id)
            .bind(upload.started_at)
            .bind(&upload.repository)
            .execute(&self.writer)
            .await
            .ctx("creating upload session")?;
        Ok(())
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError> {
        let row =
            sqlx::query("SELECT u.id, r.name, u.started_at FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.id = ?")
                .bind(id)
                .fetch_optional(&self.reader)
                .await
                .ctx("reading upload session")?;
        row.map(|r| {
            Ok(UploadRow {
                id: r.try_get(0).ctx("reading upload session")?,
                repository: r.try_get(1).ctx("reading upload session")?,
                started_at: r.try_get(2).ctx("reading upload session")?,
            })
        })
        .transpose()
    }

    async fn delete_upload(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM uploads WHERE id = ?").bind(id).execute(&self.writer).await.ctx("deleting upload session")?;
        Ok(r.rows_affected() > 0)
    }

    async fn uploads_started_before(&self, before: Millis) -> Result<Vec<UploadRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, r.name, u.started_at FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.started_at < ?",
        )
        .bind(before)
        .fetch_all(&self.reader)
        .await
        .ctx("listing stale upload sessions")?;
        rows.iter()
            .map(|r| {
                Ok(UploadRow {
                    id: r.try_get(0).ctx("reading upload session")?,
                    repository: r.try_get(1).ctx("reading upload session")?,
                    started_at: r.try_get(2).ctx("reading upload session")?,
                })
            })
            .collect()
    }

    async fn count_uploads(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM uploads").fetch_one(&self.reader).await.ctx("counting uploads")?;
        Ok(n as u64)
    }

    async fn put_manifest(&self, new: NewManifest<'_>) -> Result<PutManifestOutcome, StoreError> {
        let mut tx = self.writer.begin().await.ctx("storing manifest")?;
        let repo_id: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
            .bind(new.repository)
            .fetch_optional(&mut *tx)
            .await
            .ctx("looking up repository")?;
        let Some(repo_id) = repo_id else {
            // The service creates the repository first; without it every reference is missing.
            if let Some((d, k)) = new.references.first() {
                return Ok(PutManifestOutcome::MissingReference(d.clone(), *k));
            }
            return Err(StoreError::Db { context: "storing manifest", source: sqlx::Error::RowNotFound });
        };
        for (digest, kind) in &new.references {
            let present: Option<i64> = match kind {
                RefKind::Blob => sqlx::query_scalar("SELECT 1 FROM repository_blobs WHERE repository_id = ? AND digest = ?"),
                RefKind::Manifest => sqlx::query_scalar("SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?"),
            }
            .bind(repo_id)
            .bind(digest.to_string())
            .fetch_optional(&mut *tx)
            .await
            .ctx("checking manifest reference")?;
            if present.is_none() {
                return Ok(PutManifestOutcome::MissingReference(digest.clone(), *kind));
            }
        }
        let m = &new.manifest;
        let digest = m.digest.to_string();
        let inserted = sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject, annotations, size, content, pushed_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(repo_id)
        .bind(&digest)
        .bind(&m.media_type)
        .bind(&m.artifact_type)
        .bind(m.subject.as_ref().map(|s| s.to_string()))
        .bind(&m.annotations)
        .bind(m.content.len() as i64)
        .bind(m.content.as_ref())
        .bind(m.pushed_at)
        .execute(&mut *tx)
        .await
        .ctx("inserting manifest")?;
        if inserted.rows_affected() > 0 {
            for (child, kind) in &new.references {
                sqlx::query(
                    "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, kind) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(repo_id)
                .bind(&digest)
                .bind(child.to_string())
                .bind(kind_code(*kind))
                .execute(&mut *tx)
                .await
                .ctx("recording manifest reference")?;
            }
        }
        if let Some(tag) = new.tag {
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
        Ok(PutManifestOutcome::Stored)
    }

    async fn get_manifest_by_digest(&self, repository: &str, digest: &Digest) -> Result<Option<ManifestRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MANIFEST_COLS} FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = ? AND m.digest = ?"
        ))
        .bind(repository)
        .bind(digest.to_string())
        .fetch_optional(&self.reader)
        .await
        .ctx("reading manifest")?;
        row.as_ref().map(manifest_row).transpose()
    }

    async fn get_manifest_by_tag(&self, repository: &str, tag: &str) -> Result<Option<ManifestRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MANIFEST_COLS} FROM tags t JOIN repositories r ON r.id = t.repository_id \
             JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest WHERE r.name = ? AND t.name = ?"
        ))
        .bind(repository)
        .bind(tag)
        .fetch_optional(&self.reader)
        .await
        .ctx("reading manifest by tag")?;
        row.as_ref().map(manifest_row).transpose()
    }

    async fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError> {
        let Some(repo_id) = self.repo_id(repository).await? else { return Ok(false) };
        let mut tx = self.writer.begin().await.ctx("deleting manifest")?;
        let d = digest.to_string();
        sqlx::query("DELETE FROM tags WHERE repository_id = ? AND manifest_digest = ?")
            .bind(repo_id)
            .bind(&d)
            .execute(&mut *tx)
            .await
            .ctx("deleting tags of manifest")?;
        let r = sqlx::query("DELETE FROM manifests WHERE repository_id = ? AND digest = ?")
            .bind(repo_id)
            .bind(&d)
            .execute(&mut *tx)
            .await
            .ctx("deleting manifest")?;
        tx.commit().await.ctx("committing manifest delete")?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM tags WHERE name = ? AND repository_id = (SELECT id FROM repositories WHERE name = ?)")
            .bind(tag)
            .bind(repository)
            .execute(&self.writer)
            .await
            .ctx("deleting tag")?;
        Ok(r.rows_affected() > 0)
    }

    async fn list_tags(&self, repository: &str, last: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = ? AND t.name > ? ORDER BY t.name LIMIT ?",
        )
        .bind(repository)
        .bind(last.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .ctx("listing tags")
    }

    async fn list_referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<ManifestSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, m.artifact_type, m.annotations, m.size FROM manifests m \
             JOIN repositories r ON r.id = m.repository_id WHERE r.name = ? AND m.subject = ? ORDER BY m.pushed_at, m.digest",
        )
        .bind(repository)
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
                })
            })
            .collect()
    }

    async fn all_references(&self) -> Result<Vec<(String, Digest, Digest, RefKind)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.name, mr.manifest_digest, mr.child_digest, mr.kind FROM manifest_references mr JOIN repositories r ON r.id = mr.repository_id",
        )
        .fetch_all(&self.reader)
        .await
        .ctx("listing references")?;
        rows.iter()
            .map(|r| {
                let kind: i64 = r.try_get("kind").ctx("reading reference")?;
                Ok((
                    r.try_get("name").ctx("reading reference")?,
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
}
