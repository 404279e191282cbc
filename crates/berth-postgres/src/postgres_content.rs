//! Blobs, upload sessions, manifests, tags and their listings, and garbage
//! collection: the rows a push and a pull touch.
//!
//! A writer that decides on some rows' state locks those rows first and reads
//! their state afterwards, in a new statement (see the crate doc). The few
//! lock-order inversions this allows (an index push locking two children that
//! an expiry locks the other way round) end in a deadlock PostgreSQL breaks;
//! `db::retrying` then runs the losing transaction again.

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::{Digest, StoreError, UploadCursor};
use bytes::Bytes;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::db::{digest_col, parse_digest, repo_id, repo_id_locked, retrying, DbContext};
use crate::postgres::PostgresMetadataStore;

fn kind_code(kind: RefKind) -> i64 {
    match kind {
        RefKind::Blob => 0,
        RefKind::Manifest => 1,
    }
}

const MANIFEST_COLS: &str =
    "m.digest, m.media_type, m.artifact_type, m.subject, m.annotations, m.image_size, m.content, m.pushed_at, m.storage_class";

pub(crate) fn storage_class_col(row: &PgRow) -> Result<StorageClass, StoreError> {
    let class: String = row.try_get("storage_class").ctx("reading storage class")?;
    Ok(StorageClass::parse(&class).unwrap_or_default())
}

fn manifest_row(row: &PgRow) -> Result<ManifestRow, StoreError> {
    let c = "reading manifest";
    let subject: Option<String> = row.try_get("subject").ctx(c)?;
    let content: Vec<u8> = row.try_get("content").ctx(c)?;
    let image_size: i64 = row.try_get("image_size").ctx(c)?;
    Ok(ManifestRow {
        digest: digest_col(row, "digest")?,
        media_type: row.try_get("media_type").ctx(c)?,
        artifact_type: row.try_get("artifact_type").ctx(c)?,
        subject: subject.and_then(|s| s.parse().ok()),
        annotations: row.try_get("annotations").ctx(c)?,
        image_size: image_size as u64,
        content: Bytes::from(content),
        pushed_at: row.try_get("pushed_at").ctx(c)?,
        storage_class: storage_class_col(row)?,
    })
}

const IMAGE_COLS: &str =
    "m.digest, m.media_type, m.artifact_type, m.image_size, m.pushed_at, m.last_pulled_at, m.storage_class, m.archived_at, m.last_activated_at, m.subject";
/// An image's tags as an array (empty when untagged), for the grouped image queries.
pub(crate) const TAGS_AGG: &str = "COALESCE(array_agg(t.name) FILTER (WHERE t.name IS NOT NULL), '{}') AS tags";

/// Tags sorted as SQLite's store returns them (byte order; `expire_manifest` compares sorted lists).
pub(crate) fn tags_col(r: &PgRow, context: &'static str) -> Result<Vec<String>, StoreError> {
    let mut tags: Vec<String> = r.try_get("tags").ctx(context)?;
    tags.sort();
    Ok(tags)
}

fn image_row(r: &PgRow) -> Result<ImageRow, StoreError> {
    let c = "reading image";
    let size: i64 = r.try_get("image_size").ctx(c)?;
    Ok(ImageRow {
        digest: digest_col(r, "digest")?,
        tags: tags_col(r, c)?,
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

fn upload_row(r: &PgRow) -> Result<UploadRow, StoreError> {
    let c = "reading upload session";
    Ok(UploadRow {
        id: r.try_get("id").ctx(c)?,
        repository: crate::db::repo_key(r, c)?,
        started_at: r.try_get("started_at").ctx(c)?,
        cursor: UploadCursor { len: r.try_get::<i64, _>("len").ctx(c)? as u64, state: r.try_get("cursor").ctx(c)? },
        hash_state: r.try_get("hash_state").ctx(c)?,
    })
}

// ---- blobs ----

pub(crate) async fn repository_blob(pool: &PgPool, key: &RepoKey, digest: &Digest) -> Result<Option<u64>, StoreError> {
    let size: Option<i64> = sqlx::query_scalar(
        "SELECT b.size FROM blobs b JOIN repository_blobs rb ON rb.digest = b.digest \
         JOIN repositories r ON r.id = rb.repository_id WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3 AND b.digest = $4",
    )
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .bind(digest.to_string())
    .fetch_optional(pool)
    .await
    .ctx("looking up repository blob")?;
    Ok(size.map(|s| s as u64))
}

/// The upsert locks the blob row first, so a concurrent `gc_forget_blob` (which locks it FOR
/// UPDATE) either finishes first (the insert then creates the row afresh) or re-reads our new
/// last-seen time and keeps the blob.
pub(crate) async fn link_blob(pool: &PgPool, key: &RepoKey, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError> {
    retrying(|| Box::pin(link_blob_once(pool, key, digest, size, now))).await
}

async fn link_blob_once(pool: &PgPool, key: &RepoKey, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.ctx("linking blob")?;
    let Some(id) = repo_id_locked(&mut tx, key).await? else {
        return Err(StoreError::Db { context: "linking blob into a repository that does not exist", source: sqlx::Error::RowNotFound });
    };
    sqlx::query(
        "INSERT INTO blobs (digest, size, created_at, last_seen_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (digest) DO UPDATE SET last_seen_at = excluded.last_seen_at",
    )
    .bind(digest.to_string())
    .bind(size as i64)
    .bind(now)
    .execute(&mut *tx)
    .await
    .ctx("recording blob")?;
    sqlx::query("INSERT INTO repository_blobs (repository_id, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(id)
        .bind(digest.to_string())
        .execute(&mut *tx)
        .await
        .ctx("linking blob into repository")?;
    tx.commit().await.ctx("committing blob link")
}

/// Locks the link before checking for references: a `put_manifest` that already holds a key
/// share on it commits first (and we then see its reference), or waits and finds it gone.
pub(crate) async fn unlink_blob(pool: &PgPool, key: &RepoKey, digest: &Digest) -> Result<UnlinkOutcome, StoreError> {
    retrying(|| Box::pin(unlink_blob_once(pool, key, digest))).await
}

async fn unlink_blob_once(pool: &PgPool, key: &RepoKey, digest: &Digest) -> Result<UnlinkOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("unlinking blob")?;
    let Some(id) = repo_id_locked(&mut tx, key).await? else { return Ok(UnlinkOutcome::NotLinked) };
    let d = digest.to_string();
    sqlx::query("SELECT 1 FROM repository_blobs WHERE repository_id = $1 AND digest = $2 FOR UPDATE")
        .bind(id)
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await
        .ctx("locking blob link")?;
    let referenced: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM manifest_references WHERE repository_id = $1 AND child_digest = $2 AND kind = 0 LIMIT 1")
            .bind(id)
            .bind(&d)
            .fetch_optional(&mut *tx)
            .await
            .ctx("checking blob references")?;
    if referenced.is_some() {
        return Ok(UnlinkOutcome::Referenced);
    }
    let r = sqlx::query("DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2")
        .bind(id)
        .bind(&d)
        .execute(&mut *tx)
        .await
        .ctx("unlinking blob")?;
    tx.commit().await.ctx("committing blob unlink")?;
    Ok(if r.rows_affected() > 0 { UnlinkOutcome::Unlinked } else { UnlinkOutcome::NotLinked })
}

pub(crate) async fn touch_blob(pool: &PgPool, digest: &Digest, now: Millis, stale_before: Millis) -> Result<(), StoreError> {
    // Read first: the common case (fresh) then costs no write.
    let seen: Option<i64> = sqlx::query_scalar("SELECT last_seen_at FROM blobs WHERE digest = $1")
        .bind(digest.to_string())
        .fetch_optional(pool)
        .await
        .ctx("reading blob")?;
    if seen.is_some_and(|s| s < stale_before) {
        sqlx::query("UPDATE blobs SET last_seen_at = $1 WHERE digest = $2 AND last_seen_at < $3")
            .bind(now)
            .bind(digest.to_string())
            .bind(stale_before)
            .execute(pool)
            .await
            .ctx("touching blob")?;
    }
    Ok(())
}

// ---- uploads ----

pub(crate) async fn create_upload(pool: &PgPool, upload: &UploadRow) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.ctx("creating upload session")?;
    let Some(id) = repo_id_locked(&mut tx, &upload.repository).await? else {
        return Err(StoreError::Db { context: "upload into a repository that does not exist", source: sqlx::Error::RowNotFound });
    };
    sqlx::query("INSERT INTO uploads (id, repository_id, started_at, len, cursor, hash_state) VALUES ($1, $2, $3, $4, $5, $6)")
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

const UPLOAD_SELECT: &str = "SELECT u.id, r.account_id, r.region, r.name, u.started_at, u.len, u.cursor, u.hash_state \
     FROM uploads u JOIN repositories r ON r.id = u.repository_id";

pub(crate) async fn get_upload(pool: &PgPool, id: &str) -> Result<Option<UploadRow>, StoreError> {
    let row = sqlx::query(&format!("{UPLOAD_SELECT} WHERE u.id = $1")).bind(id).fetch_optional(pool).await.ctx("reading upload session")?;
    row.as_ref().map(upload_row).transpose()
}

pub(crate) async fn delete_upload(pool: &PgPool, id: &str) -> Result<bool, StoreError> {
    let r = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id).execute(pool).await.ctx("deleting upload session")?;
    Ok(r.rows_affected() > 0)
}

/// One UPDATE: at READ COMMITTED a concurrent writer's new `len` is re-checked against the
/// WHERE after it commits, so this is a true compare-and-set.
pub(crate) async fn record_upload_progress(
    pool: &PgPool,
    id: &str,
    expected_len: u64,
    cursor: &UploadCursor,
    hash_state: &[u8],
) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE uploads SET len = $1, cursor = $2, hash_state = $3 WHERE id = $4 AND len = $5")
        .bind(cursor.len as i64)
        .bind(&cursor.state)
        .bind(hash_state)
        .bind(id)
        .bind(expected_len as i64)
        .execute(pool)
        .await
        .ctx("recording upload progress")?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn uploads_started_before(pool: &PgPool, before: Millis) -> Result<Vec<UploadRow>, StoreError> {
    let rows = sqlx::query(&format!("{UPLOAD_SELECT} WHERE u.started_at < $1"))
        .bind(before)
        .fetch_all(pool)
        .await
        .ctx("listing stale upload sessions")?;
    rows.iter().map(upload_row).collect()
}

pub(crate) async fn count_uploads(pool: &PgPool) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM uploads").fetch_one(pool).await.ctx("counting uploads")?;
    Ok(n as u64)
}

// ---- manifests and tags ----

/// Every row the decision rests on is locked before it is relied on:
/// - each referenced blob link / child manifest with FOR KEY SHARE, so `unlink_blob`,
///   `gc_forget_blob`, `delete_manifest` and `expire_manifest` (which lock them FOR UPDATE
///   before checking for references) either finish first, and we report the reference
///   missing, or wait for our commit and see our references;
/// - the manifest row itself (inserted, or locked when it exists), so an expiry or archive
///   cannot decide on stale tags while we tag it;
/// - the tag, by the upsert; for `CreateOnly` the upsert only overwrites a tag naming this
///   manifest, so two nodes creating the same immutable tag cannot both win.
pub(crate) async fn put_manifest(pool: &PgPool, new: &NewManifest<'_>) -> Result<PutManifestOutcome, StoreError> {
    retrying(|| Box::pin(put_manifest_once(pool, new))).await
}

async fn put_manifest_once(pool: &PgPool, new: &NewManifest<'_>) -> Result<PutManifestOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("storing manifest")?;
    let Some(repo_id) = repo_id_locked(&mut tx, new.repository).await? else { return Ok(PutManifestOutcome::RepositoryMissing) };
    for reference in &new.references {
        let stored: Option<i64> = match reference.kind {
            RefKind::Blob => sqlx::query_scalar(
                "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
                 WHERE rb.repository_id = $1 AND rb.digest = $2 FOR KEY SHARE OF rb",
            ),
            RefKind::Manifest => sqlx::query_scalar("SELECT size FROM manifests WHERE repository_id = $1 AND digest = $2 FOR KEY SHARE"),
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
        if let Some(existing) = tag_conflict(&mut tx, repo_id, tag, &digest).await? {
            return Ok(PutManifestOutcome::TagExists(existing));
        }
    }
    let (inserted, restored) = store_manifest_row(&mut tx, repo_id, m, &digest).await?;
    if inserted {
        for reference in &new.references {
            sqlx::query(
                "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, kind) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
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
    for &(tag, tag_move) in &new.tags {
        let only_same = match tag_move {
            TagMove::Move => "",
            TagMove::CreateOnly => " WHERE tags.manifest_digest = excluded.manifest_digest",
        };
        let moved = sqlx::query(&format!(
            "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at{only_same}"
        ))
        .bind(repo_id)
        .bind(tag)
        .bind(&digest)
        .bind(m.pushed_at)
        .execute(&mut *tx)
        .await
        .ctx("moving tag")?;
        if moved.rows_affected() == 0 {
            // Another node created the immutable tag since our check; dropping `tx` undoes the
            // manifest row, so nothing was written.
            if let Some(existing) = tag_conflict(&mut tx, repo_id, tag, &digest).await? {
                return Ok(PutManifestOutcome::TagExists(existing));
            }
            return Err(StoreError::Db { context: "immutable tag changed while it was being created", source: sqlx::Error::RowNotFound });
        }
    }
    tx.commit().await.ctx("committing manifest")?;
    Ok(PutManifestOutcome::Stored { inserted, restored })
}

async fn tag_conflict(tx: &mut Transaction<'_, Postgres>, repo_id: i64, tag: &str, digest: &str) -> Result<Option<Digest>, StoreError> {
    let existing: Option<String> = sqlx::query_scalar("SELECT manifest_digest FROM tags WHERE repository_id = $1 AND name = $2")
        .bind(repo_id)
        .bind(tag)
        .fetch_optional(&mut **tx)
        .await
        .ctx("reading tag")?;
    existing.filter(|e| e != digest).map(|e| parse_digest(&e)).transpose()
}

/// Inserts the manifest row, or locks the existing one (restoring it if archived). Returns
/// (inserted, restored). A row deleted between the failed insert and the lock is inserted again.
async fn store_manifest_row(
    tx: &mut Transaction<'_, Postgres>,
    repo_id: i64,
    m: &ManifestRow,
    digest: &str,
) -> Result<(bool, bool), StoreError> {
    loop {
        let inserted = sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, subject, annotations, size, image_size, content, pushed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(repo_id)
        .bind(digest)
        .bind(&m.media_type)
        .bind(&m.artifact_type)
        .bind(m.subject.as_ref().map(|s| s.to_string()))
        .bind(&m.annotations)
        .bind(m.content.len() as i64)
        .bind(m.image_size as i64)
        .bind(m.content.as_ref())
        .bind(m.pushed_at)
        .execute(&mut **tx)
        .await
        .ctx("inserting manifest")?;
        if inserted.rows_affected() > 0 {
            return Ok((true, false));
        }
        let class: Option<String> =
            sqlx::query_scalar("SELECT storage_class FROM manifests WHERE repository_id = $1 AND digest = $2 FOR NO KEY UPDATE")
                .bind(repo_id)
                .bind(digest)
                .fetch_optional(&mut **tx)
                .await
                .ctx("locking manifest")?;
        let Some(class) = class else { continue };
        if class != StorageClass::Archive.as_str() {
            return Ok((false, false));
        }
        // Pushing an archived image again restores it (as ECR does).
        sqlx::query("UPDATE manifests SET storage_class = 'STANDARD', last_activated_at = $1 WHERE repository_id = $2 AND digest = $3")
            .bind(m.pushed_at)
            .bind(repo_id)
            .bind(digest)
            .execute(&mut **tx)
            .await
            .ctx("restoring archived manifest")?;
        return Ok((false, true));
    }
}

pub(crate) async fn get_manifest_by_digest(pool: &PgPool, key: &RepoKey, digest: &Digest) -> Result<Option<ManifestRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {MANIFEST_COLS} FROM manifests m JOIN repositories r ON r.id = m.repository_id \
         WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3 AND m.digest = $4"
    ))
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .bind(digest.to_string())
    .fetch_optional(pool)
    .await
    .ctx("reading manifest")?;
    row.as_ref().map(manifest_row).transpose()
}

pub(crate) async fn get_manifest_by_tag(pool: &PgPool, key: &RepoKey, tag: &str) -> Result<Option<ManifestRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {MANIFEST_COLS} FROM tags t JOIN repositories r ON r.id = t.repository_id \
         JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest \
         WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3 AND t.name = $4"
    ))
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .bind(tag)
    .fetch_optional(pool)
    .await
    .ctx("reading manifest by tag")?;
    row.as_ref().map(manifest_row).transpose()
}

/// Locks the manifest first so a concurrent re-push (which locks it too) is either before us
/// (its tags go with the manifest) or after us (it inserts the manifest again), and so an index
/// push listing it (which holds FOR KEY SHARE on it until it commits) is either committed before
/// the reference check below reads, or waits and then finds its child gone.
pub(crate) async fn delete_manifest(pool: &PgPool, key: &RepoKey, digest: &Digest) -> Result<DeleteManifestOutcome, StoreError> {
    retrying(|| Box::pin(delete_manifest_once(pool, key, digest))).await
}

async fn delete_manifest_once(pool: &PgPool, key: &RepoKey, digest: &Digest) -> Result<DeleteManifestOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("deleting manifest")?;
    let Some(repo_id) = repo_id_locked(&mut tx, key).await? else { return Ok(DeleteManifestOutcome::NotFound) };
    let d = digest.to_string();
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2 FOR UPDATE")
        .bind(repo_id)
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await
        .ctx("locking manifest")?;
    if exists.is_none() {
        return Ok(DeleteManifestOutcome::NotFound);
    }
    let parent: Option<String> = sqlx::query_scalar(
        "SELECT manifest_digest FROM manifest_references WHERE repository_id = $1 AND child_digest = $2 AND kind = 1 \
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
        "DELETE FROM tags WHERE repository_id = $1 AND manifest_digest = $2",
        "DELETE FROM manifest_references WHERE repository_id = $1 AND manifest_digest = $2",
        "DELETE FROM manifests WHERE repository_id = $1 AND digest = $2",
    ] {
        sqlx::query(sql).bind(repo_id).bind(&d).execute(&mut *tx).await.ctx("deleting manifest")?;
    }
    tx.commit().await.ctx("committing manifest delete")?;
    Ok(DeleteManifestOutcome::Deleted)
}

pub(crate) async fn manifest_parents(pool: &PgPool, key: &RepoKey, digest: &Digest) -> Result<Vec<Digest>, StoreError> {
    let parents: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT x.manifest_digest FROM manifest_references x JOIN repositories r ON r.id = x.repository_id \
         WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3 AND x.child_digest = $4 AND x.kind = 1 ORDER BY x.manifest_digest",
    )
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .bind(digest.to_string())
    .fetch_all(pool)
    .await
    .ctx("listing indexes of a manifest")?;
    parents.iter().map(|p| parse_digest(p)).collect()
}

pub(crate) async fn repository_size(pool: &PgPool, key: &RepoKey) -> Result<u64, StoreError> {
    let total: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(b.size), 0)::BIGINT FROM blobs b WHERE b.digest IN \
         (SELECT x.child_digest FROM manifest_references x JOIN repositories r ON r.id = x.repository_id \
          WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3 AND x.kind = 0)",
    )
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .fetch_one(pool)
    .await
    .ctx("summing a repository's blobs")?;
    Ok(u64::try_from(total).unwrap_or(0))
}

pub(crate) async fn delete_tag(pool: &PgPool, key: &RepoKey, tag: &str) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "DELETE FROM tags t USING repositories r WHERE r.id = t.repository_id \
         AND r.account_id = $1 AND r.region = $2 AND r.name = $3 AND t.name = $4",
    )
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .bind(tag)
    .execute(pool)
    .await
    .ctx("deleting tag")?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn list_tags(pool: &PgPool, key: &RepoKey, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
    let mut conn = pool.acquire().await.ctx("acquiring connection")?;
    let Some(repo_id) = repo_id(&mut conn, key).await? else { return Ok(Vec::new()) };
    sqlx::query_scalar("SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3")
        .bind(repo_id)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .ctx("listing tags")
}

pub(crate) async fn list_referrers(pool: &PgPool, key: &RepoKey, subject: &Digest) -> Result<Vec<ManifestSummary>, StoreError> {
    let mut conn = pool.acquire().await.ctx("acquiring connection")?;
    let Some(repo_id) = repo_id(&mut conn, key).await? else { return Ok(Vec::new()) };
    let rows = sqlx::query(
        "SELECT digest, media_type, artifact_type, annotations, size, storage_class FROM manifests WHERE repository_id = $1 AND subject = $2 \
         ORDER BY pushed_at, digest",
    )
    .bind(repo_id)
    .bind(subject.to_string())
    .fetch_all(&mut *conn)
    .await
    .ctx("listing referrers")?;
    rows.iter()
        .map(|r| {
            let c = "reading referrer";
            let size: i64 = r.try_get("size").ctx(c)?;
            Ok(ManifestSummary {
                digest: digest_col(r, "digest")?,
                media_type: r.try_get("media_type").ctx(c)?,
                artifact_type: r.try_get("artifact_type").ctx(c)?,
                annotations: r.try_get("annotations").ctx(c)?,
                size: size as u64,
                storage_class: storage_class_col(r)?,
            })
        })
        .collect()
}

/// The GROUP BY filter of an image listing (tags joined as `t`) for a tag status.
fn having_tags(status: TagStatus) -> &'static str {
    match status {
        TagStatus::Any => "",
        TagStatus::Tagged => "HAVING COUNT(t.name) > 0",
        TagStatus::Untagged => "HAVING COUNT(t.name) = 0",
    }
}

pub(crate) async fn list_images(
    pool: &PgPool,
    key: &RepoKey,
    status: TagStatus,
    storage: Option<StorageClass>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<ImageRow>, StoreError> {
    let mut conn = pool.acquire().await.ctx("acquiring connection")?;
    let Some(repo_id) = repo_id(&mut conn, key).await? else { return Ok(Vec::new()) };
    let having = having_tags(status);
    let rows = sqlx::query(&format!(
        "SELECT {IMAGE_COLS}, {TAGS_AGG} \
         FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
         WHERE m.repository_id = $1 AND m.digest > $2 AND ($3::text IS NULL OR m.storage_class = $3) \
         GROUP BY m.repository_id, m.digest {having} ORDER BY m.digest LIMIT $4"
    ))
    .bind(repo_id)
    .bind(after.unwrap_or(""))
    .bind(storage.map(StorageClass::as_str))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .ctx("listing images")?;
    rows.iter().map(image_row).collect()
}

/// An untagged manifest shown under another image: listed by an index, or a referrer whose
/// subject is in the repository (`m` is the manifest).
const NESTED: &str = "NOT EXISTS (SELECT 1 FROM tags u WHERE u.repository_id = m.repository_id AND u.manifest_digest = m.digest) \
     AND (EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = m.repository_id AND r.child_digest = m.digest AND r.kind = 1) \
     OR EXISTS (SELECT 1 FROM manifests p WHERE p.repository_id = m.repository_id AND p.digest = m.subject))";

pub(crate) async fn list_images_by_push(
    pool: &PgPool,
    key: &RepoKey,
    filter: &ImageFilter<'_>,
    after: Option<(Millis, &str)>,
    limit: u32,
) -> Result<Vec<ImageRow>, StoreError> {
    let mut conn = pool.acquire().await.ctx("acquiring connection")?;
    let Some(repo_id) = repo_id(&mut conn, key).await? else { return Ok(Vec::new()) };
    let having = having_tags(filter.status);
    let rows = sqlx::query(&format!(
        "SELECT {IMAGE_COLS}, {TAGS_AGG} \
         FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
         WHERE m.repository_id = $1 AND ($2::bigint IS NULL OR m.pushed_at < $2 OR (m.pushed_at = $2 AND m.digest > $3)) \
         AND ($4::text IS NULL OR m.storage_class = $4) \
         AND ($5::text IS NULL OR strpos(lower(m.digest), $5) > 0 OR EXISTS (SELECT 1 FROM tags s \
              WHERE s.repository_id = m.repository_id AND s.manifest_digest = m.digest AND strpos(lower(s.name), $5) > 0)) \
         AND (NOT $6 OR NOT ({NESTED})) \
         GROUP BY m.repository_id, m.digest {having} ORDER BY m.pushed_at DESC, m.digest LIMIT $7"
    ))
    .bind(repo_id)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, d)| d).unwrap_or(""))
    .bind(filter.storage.map(StorageClass::as_str))
    .bind(filter.search)
    .bind(filter.top_level)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .ctx("listing images by push time")?;
    rows.iter().map(image_row).collect()
}

pub(crate) async fn get_image(pool: &PgPool, key: &RepoKey, digest: &Digest) -> Result<Option<ImageRow>, StoreError> {
    let mut conn = pool.acquire().await.ctx("acquiring connection")?;
    let Some(repo_id) = repo_id(&mut conn, key).await? else { return Ok(None) };
    let row = sqlx::query(&format!(
        "SELECT {IMAGE_COLS}, {TAGS_AGG} \
         FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
         WHERE m.repository_id = $1 AND m.digest = $2 GROUP BY m.repository_id, m.digest"
    ))
    .bind(repo_id)
    .bind(digest.to_string())
    .fetch_optional(&mut *conn)
    .await
    .ctx("reading image")?;
    row.as_ref().map(image_row).transpose()
}

pub(crate) async fn list_image_ids(
    pool: &PgPool,
    key: &RepoKey,
    status: TagStatus,
    storage: Option<StorageClass>,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<(Digest, String)>, StoreError> {
    let mut conn = pool.acquire().await.ctx("acquiring connection")?;
    let Some(repo_id) = repo_id(&mut conn, key).await? else { return Ok(Vec::new()) };
    let tagged = "SELECT t.manifest_digest AS digest, t.name AS tag FROM tags t JOIN manifests m \
         ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest \
         WHERE t.repository_id = $1 AND ($5::text IS NULL OR m.storage_class = $5)";
    let untagged = "SELECT m.digest AS digest, ''::text COLLATE \"C\" AS tag FROM manifests m WHERE m.repository_id = $1 \
         AND ($5::text IS NULL OR m.storage_class = $5) \
         AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)";
    let source = match status {
        TagStatus::Tagged => tagged.to_string(),
        TagStatus::Untagged => untagged.to_string(),
        TagStatus::Any => format!("{tagged} UNION ALL {untagged}"),
    };
    let (after_digest, after_tag) = after.unwrap_or(("", ""));
    let rows = sqlx::query(&format!(
        "SELECT digest, tag FROM ({source}) AS ids WHERE digest > $2 OR (digest = $2 AND tag > $3) ORDER BY digest, tag LIMIT $4"
    ))
    .bind(repo_id)
    .bind(after_digest)
    .bind(after_tag)
    .bind(i64::from(limit))
    .bind(storage.map(StorageClass::as_str))
    .fetch_all(&mut *conn)
    .await
    .ctx("listing image ids")?;
    rows.iter().map(|r| Ok((digest_col(r, "digest")?, r.try_get("tag").ctx("reading image id")?))).collect()
}

pub(crate) async fn all_references(pool: &PgPool) -> Result<Vec<(RepoKey, Digest, Digest, RefKind)>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.account_id, r.region, r.name, mr.manifest_digest, mr.child_digest, mr.kind \
         FROM manifest_references mr JOIN repositories r ON r.id = mr.repository_id",
    )
    .fetch_all(pool)
    .await
    .ctx("listing references")?;
    rows.iter()
        .map(|r| {
            let c = "reading reference";
            let kind: i64 = r.try_get("kind").ctx(c)?;
            Ok((
                crate::db::repo_key(r, c)?,
                digest_col(r, "manifest_digest")?,
                digest_col(r, "child_digest")?,
                if kind == 0 { RefKind::Blob } else { RefKind::Manifest },
            ))
        })
        .collect()
}

// ---- garbage collection ----

pub(crate) async fn gc_candidates(pool: &PgPool, before: Millis) -> Result<Vec<GcCandidate>, StoreError> {
    let rows = sqlx::query(
        "SELECT b.digest, b.size FROM blobs b WHERE b.last_seen_at < $1 AND NOT EXISTS \
         (SELECT 1 FROM manifest_references mr WHERE mr.child_digest = b.digest AND mr.kind = 0)",
    )
    .bind(before)
    .fetch_all(pool)
    .await
    .ctx("finding unreferenced blobs")?;
    rows.iter()
        .map(|r| {
            let size: i64 = r.try_get("size").ctx("reading blob")?;
            Ok(GcCandidate { digest: digest_col(r, "digest")?, size: size as u64 })
        })
        .collect()
}

/// Locks the blob row (so `link_blob` and `touch_blob` wait, or have already refreshed it:
/// the locked row is re-read with its newest last-seen time), then every link of it (so a
/// `put_manifest` holding one commits its references first, or waits and finds the link gone),
/// and only then re-checks that nothing references it.
pub(crate) async fn gc_forget_blob(pool: &PgPool, digest: &Digest, before: Millis) -> Result<bool, StoreError> {
    retrying(|| Box::pin(gc_forget_blob_once(pool, digest, before))).await
}

async fn gc_forget_blob_once(pool: &PgPool, digest: &Digest, before: Millis) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("collecting blob")?;
    let d = digest.to_string();
    let stale: Option<i32> = sqlx::query_scalar("SELECT 1 FROM blobs WHERE digest = $1 AND last_seen_at < $2 FOR UPDATE")
        .bind(&d)
        .bind(before)
        .fetch_optional(&mut *tx)
        .await
        .ctx("locking blob")?;
    if stale.is_none() {
        return Ok(false);
    }
    sqlx::query("SELECT 1 FROM repository_blobs WHERE digest = $1 FOR UPDATE")
        .bind(&d)
        .fetch_all(&mut *tx)
        .await
        .ctx("locking blob links")?;
    let referenced: Option<i32> = sqlx::query_scalar("SELECT 1 FROM manifest_references WHERE child_digest = $1 AND kind = 0 LIMIT 1")
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await
        .ctx("re-checking blob")?;
    if referenced.is_some() {
        return Ok(false);
    }
    sqlx::query("DELETE FROM repository_blobs WHERE digest = $1").bind(&d).execute(&mut *tx).await.ctx("unlinking blob")?;
    sqlx::query("DELETE FROM blobs WHERE digest = $1").bind(&d).execute(&mut *tx).await.ctx("forgetting blob")?;
    tx.commit().await.ctx("committing blob collection")?;
    Ok(true)
}

#[async_trait]
impl ContentStore for PostgresMetadataStore {
    async fn repository_blob(&self, key: &RepoKey, digest: &Digest) -> Result<Option<u64>, StoreError> {
        self.timed("repository_blob", repository_blob(&self.pool, key, digest)).await
    }

    async fn link_blob(&self, key: &RepoKey, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError> {
        self.timed("link_blob", link_blob(&self.pool, key, digest, size, now)).await
    }

    async fn unlink_blob(&self, key: &RepoKey, digest: &Digest) -> Result<UnlinkOutcome, StoreError> {
        self.timed("unlink_blob", unlink_blob(&self.pool, key, digest)).await
    }

    async fn touch_blob(&self, digest: &Digest, now: Millis, stale_before: Millis) -> Result<(), StoreError> {
        self.timed("touch_blob", touch_blob(&self.pool, digest, now, stale_before)).await
    }

    async fn create_upload(&self, upload: &UploadRow) -> Result<(), StoreError> {
        self.timed("create_upload", create_upload(&self.pool, upload)).await
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError> {
        self.timed("get_upload", get_upload(&self.pool, id)).await
    }

    async fn delete_upload(&self, id: &str) -> Result<bool, StoreError> {
        self.timed("delete_upload", delete_upload(&self.pool, id)).await
    }

    async fn record_upload_progress(
        &self,
        id: &str,
        expected_len: u64,
        cursor: &UploadCursor,
        hash_state: &[u8],
    ) -> Result<bool, StoreError> {
        self.timed("record_upload_progress", record_upload_progress(&self.pool, id, expected_len, cursor, hash_state)).await
    }

    async fn uploads_started_before(&self, before: Millis) -> Result<Vec<UploadRow>, StoreError> {
        self.timed("uploads_started_before", uploads_started_before(&self.pool, before)).await
    }

    async fn count_uploads(&self) -> Result<u64, StoreError> {
        self.timed("count_uploads", count_uploads(&self.pool)).await
    }

    async fn put_manifest(&self, new: NewManifest<'_>) -> Result<PutManifestOutcome, StoreError> {
        self.timed("put_manifest", put_manifest(&self.pool, &new)).await
    }

    async fn get_manifest_by_digest(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ManifestRow>, StoreError> {
        self.timed("get_manifest_by_digest", get_manifest_by_digest(&self.pool, key, digest)).await
    }

    async fn get_manifest_by_tag(&self, key: &RepoKey, tag: &str) -> Result<Option<ManifestRow>, StoreError> {
        self.timed("get_manifest_by_tag", get_manifest_by_tag(&self.pool, key, tag)).await
    }

    async fn delete_manifest(&self, key: &RepoKey, digest: &Digest) -> Result<DeleteManifestOutcome, StoreError> {
        self.timed("delete_manifest", delete_manifest(&self.pool, key, digest)).await
    }

    async fn manifest_parents(&self, key: &RepoKey, digest: &Digest) -> Result<Vec<Digest>, StoreError> {
        self.timed("manifest_parents", manifest_parents(&self.pool, key, digest)).await
    }

    async fn repository_size(&self, key: &RepoKey) -> Result<u64, StoreError> {
        self.timed("repository_size", repository_size(&self.pool, key)).await
    }

    async fn delete_tag(&self, key: &RepoKey, tag: &str) -> Result<bool, StoreError> {
        self.timed("delete_tag", delete_tag(&self.pool, key, tag)).await
    }

    async fn list_tags(&self, key: &RepoKey, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
        self.timed("list_tags", list_tags(&self.pool, key, after, limit)).await
    }

    async fn list_referrers(&self, key: &RepoKey, subject: &Digest) -> Result<Vec<ManifestSummary>, StoreError> {
        self.timed("list_referrers", list_referrers(&self.pool, key, subject)).await
    }

    async fn list_images(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError> {
        self.timed("list_images", list_images(&self.pool, key, status, storage, after, limit)).await
    }

    async fn list_images_by_push(
        &self,
        key: &RepoKey,
        filter: &ImageFilter<'_>,
        after: Option<(Millis, &str)>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError> {
        self.timed("list_images_by_push", list_images_by_push(&self.pool, key, filter, after, limit)).await
    }

    async fn get_image(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageRow>, StoreError> {
        self.timed("get_image", get_image(&self.pool, key, digest)).await
    }

    async fn list_image_ids(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(Digest, String)>, StoreError> {
        self.timed("list_image_ids", list_image_ids(&self.pool, key, status, storage, after, limit)).await
    }

    async fn all_references(&self) -> Result<Vec<(RepoKey, Digest, Digest, RefKind)>, StoreError> {
        self.timed("all_references", all_references(&self.pool)).await
    }

    async fn gc_candidates(&self, before: Millis) -> Result<Vec<GcCandidate>, StoreError> {
        self.timed("gc_candidates", gc_candidates(&self.pool, before)).await
    }

    async fn gc_forget_blob(&self, digest: &Digest, before: Millis) -> Result<bool, StoreError> {
        self.timed("gc_forget_blob", gc_forget_blob(&self.pool, digest, before)).await
    }
}
