//! Blobs, upload sessions, manifests, tags, image listings and garbage collection, written once
//! for both backends: the rows a push and a pull touch, and the reference rules they keep.
//!
//! A writer that decides on some rows' state locks those rows first and reads their state
//! afterwards, in a new statement (`Conn::FOR_UPDATE` and friends; on PostgreSQL at READ
//! COMMITTED each statement sees everything committed before it). The few lock-order
//! inversions this allows (an index push locking two children that an expiry locks the other
//! way round) end in a deadlock PostgreSQL breaks, and it runs the losing transaction again.
//! On SQLite the locks are empty and the single writer gives the same order.

use bytes::Bytes;
use sqlx::{FromRow, Pool};

use super::repos::{acquire, repo_id, repo_id_locked};
use super::{decode_all, decode_opt, stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::{Digest, StoreError, UploadCursor};

fn kind_code(kind: RefKind) -> i64 {
    match kind {
        RefKind::Blob => 0,
        RefKind::Manifest => 1,
    }
}

/// `FOR KEY SHARE OF <table>` where the backend locks rows.
fn key_share_of<C: Conn>(table: &str) -> String {
    if C::FOR_KEY_SHARE.is_empty() {
        String::new()
    } else {
        format!("{} OF {table}", C::FOR_KEY_SHARE)
    }
}

const MANIFEST_COLS: &str =
    "m.digest, m.media_type, m.artifact_type, m.subject, m.annotations, m.image_size, m.content, m.pushed_at, m.storage_class";

const IMAGE_COLS: &str =
    "m.digest, m.media_type, m.artifact_type, m.image_size, m.pushed_at, m.last_pulled_at, m.storage_class, m.archived_at, m.last_activated_at, m.subject";

const UPLOAD_SELECT: &str = "SELECT u.id, r.account_id, r.region, r.name, u.started_at, u.len, u.cursor, u.hash_state \
     FROM uploads u JOIN repositories r ON r.id = u.repository_id";

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

impl<'r, R: Columns> FromRow<'r, R> for ManifestRow {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(ManifestRow {
            digest: r.digest("digest")?,
            media_type: r.text("media_type")?,
            artifact_type: r.opt_text("artifact_type")?,
            subject: r.subject("subject")?,
            annotations: r.opt_text("annotations")?,
            image_size: r.size("image_size")?,
            content: Bytes::from(r.bytes("content")?),
            pushed_at: r.int("pushed_at")?,
            storage_class: r.storage_class()?,
        })
    }
}

impl<'r, R: Columns> FromRow<'r, R> for ImageRow {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(ImageRow {
            digest: r.digest("digest")?,
            tags: r.tag_list()?,
            media_type: r.text("media_type")?,
            artifact_type: r.opt_text("artifact_type")?,
            image_size: r.size("image_size")?,
            pushed_at: r.int("pushed_at")?,
            last_pulled_at: r.opt_int("last_pulled_at")?,
            storage_class: r.storage_class()?,
            archived_at: r.opt_int("archived_at")?,
            last_activated_at: r.opt_int("last_activated_at")?,
            subject: r.subject("subject")?,
        })
    }
}

impl<'r, R: Columns> FromRow<'r, R> for UploadRow {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(UploadRow {
            id: r.text("id")?,
            repository: r.repo_key()?,
            started_at: r.int("started_at")?,
            cursor: UploadCursor { len: r.size("len")?, state: r.bytes("cursor")? },
            hash_state: r.opt_bytes("hash_state")?,
        })
    }
}

impl<'r, R: Columns> FromRow<'r, R> for ManifestSummary {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(ManifestSummary {
            digest: r.digest("digest")?,
            media_type: r.text("media_type")?,
            artifact_type: r.opt_text("artifact_type")?,
            annotations: r.opt_text("annotations")?,
            size: r.size("size")?,
            storage_class: r.storage_class()?,
        })
    }
}

impl<'r, R: Columns> FromRow<'r, R> for GcCandidate {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(GcCandidate { digest: r.digest("digest")?, size: r.size("size")? })
    }
}

fn digests<R: Columns>(rows: &[R], col: &str, context: &'static str) -> Result<Vec<Digest>, StoreError> {
    rows.iter().map(|r| r.digest(col)).collect::<Result<_, _>>().ctx(context)
}

// ---- blobs ----

pub async fn repository_blob<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, digest: &Digest) -> Result<Option<u64>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(
            stmt(
                "SELECT b.size FROM blobs b JOIN repository_blobs rb ON rb.digest = b.digest \
                 JOIN repositories r ON r.id = rb.repository_id WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3 AND b.digest = $4",
            )
            .bind_key(key)
            .bind(digest),
        )
        .await
        .ctx("looking up repository blob")?;
    row.map(|r| r.size("size")).transpose().ctx("looking up repository blob")
}

/// Records the blob, links it and records the object of the repository's scope (the caller
/// stored the bytes there before linking). On PostgreSQL the upsert locks the blob row first, so a
/// concurrent `gc_forget_blob` (which locks it FOR UPDATE) either finishes first (the insert
/// then creates the row afresh) or re-reads our new last-seen time and keeps the blob.
pub async fn link_blob<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    digest: &Digest,
    size: u64,
    now: Millis,
    scope: Option<&str>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.ctx("linking blob")?;
    let Some(id) = repo_id_locked(&mut *tx, key).await? else {
        return Err(StoreError::Db { context: "linking blob into a repository that does not exist", source: sqlx::Error::RowNotFound });
    };
    tx.exec(
        stmt(
            "INSERT INTO blobs (digest, size, created_at, last_seen_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (digest) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        )
        .bind(digest)
        .bind(size as i64)
        .bind(now),
    )
    .await
    .ctx("recording blob")?;
    tx.exec(stmt("INSERT INTO repository_blobs (repository_id, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING").bind(id).bind(digest))
        .await
        .ctx("linking blob into repository")?;
    super::objects::record_linked(&mut *tx, id, digest, now, scope).await?;
    tx.commit().await.ctx("committing blob link")
}

/// Locks the link before checking for references: a `put_manifest` that already holds a key
/// share on it commits first (and we then see its reference), or waits and finds it gone.
pub async fn unlink_blob<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, digest: &Digest) -> Result<UnlinkOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("unlinking blob")?;
    let Some(id) = repo_id_locked(&mut *tx, key).await? else { return Ok(UnlinkOutcome::NotLinked) };
    let lock = format!("SELECT 1 FROM repository_blobs WHERE repository_id = $1 AND digest = $2{}", <DB::Connection as Conn>::FOR_UPDATE);
    tx.opt(stmt(lock).bind(id).bind(digest)).await.ctx("locking blob link")?;
    let referenced = tx
        .opt(
            stmt("SELECT 1 FROM manifest_references WHERE repository_id = $1 AND child_digest = $2 AND kind = 0 LIMIT 1")
                .bind(id)
                .bind(digest),
        )
        .await
        .ctx("checking blob references")?;
    if referenced.is_some() {
        return Ok(UnlinkOutcome::Referenced);
    }
    let unlinked = tx
        .exec(stmt("DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2").bind(id).bind(digest))
        .await
        .ctx("unlinking blob")?;
    tx.commit().await.ctx("committing blob unlink")?;
    Ok(if unlinked > 0 { UnlinkOutcome::Unlinked } else { UnlinkOutcome::NotLinked })
}

/// Reads on `reader` first: the common case (fresh) then costs no write.
pub async fn touch_blob<DB: Backend>(
    reader: &Pool<DB>,
    writer: &Pool<DB>,
    digest: &Digest,
    now: Millis,
    stale_before: Millis,
) -> Result<(), StoreError> {
    let seen = {
        let mut conn = acquire(reader).await?;
        let row = conn.opt(stmt("SELECT last_seen_at FROM blobs WHERE digest = $1").bind(digest)).await.ctx("reading blob")?;
        row.map(|r| r.int("last_seen_at")).transpose().ctx("reading blob")?
    };
    if seen.is_some_and(|s| s < stale_before) {
        let mut conn = acquire(writer).await?;
        conn.exec(
            stmt("UPDATE blobs SET last_seen_at = $1 WHERE digest = $2 AND last_seen_at < $3").bind(now).bind(digest).bind(stale_before),
        )
        .await
        .ctx("touching blob")?;
    }
    Ok(())
}

// ---- uploads ----

pub async fn create_upload<DB: Backend>(pool: &Pool<DB>, upload: &UploadRow) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.ctx("creating upload session")?;
    let Some(id) = repo_id_locked(&mut *tx, &upload.repository).await? else {
        return Err(StoreError::Db { context: "upload into a repository that does not exist", source: sqlx::Error::RowNotFound });
    };
    tx.exec(
        stmt("INSERT INTO uploads (id, repository_id, started_at, len, cursor, hash_state) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&upload.id)
            .bind(id)
            .bind(upload.started_at)
            .bind(upload.cursor.len as i64)
            .bind(upload.cursor.state.as_slice())
            .bind(upload.hash_state.as_deref()),
    )
    .await
    .ctx("creating upload session")?;
    tx.commit().await.ctx("committing upload session")
}

pub async fn get_upload<DB: Backend>(pool: &Pool<DB>, id: &str) -> Result<Option<UploadRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn.opt(stmt(format!("{UPLOAD_SELECT} WHERE u.id = $1")).bind(id)).await.ctx("reading upload session")?;
    decode_opt(row, "reading upload session")
}

pub async fn delete_upload<DB: Backend>(pool: &Pool<DB>, id: &str) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    Ok(conn.exec(stmt("DELETE FROM uploads WHERE id = $1").bind(id)).await.ctx("deleting upload session")? > 0)
}

/// One UPDATE: on PostgreSQL at READ COMMITTED a concurrent writer's new `len` is re-checked
/// against the WHERE after it commits, so this is a true compare-and-set.
pub async fn record_upload_progress<DB: Backend>(
    pool: &Pool<DB>,
    id: &str,
    expected_len: u64,
    cursor: &UploadCursor,
    hash_state: &[u8],
) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    record_upload_progress_on(&mut *conn, id, expected_len, cursor, hash_state).await
}

/// [`record_upload_progress`] on a connection the caller holds.
pub async fn record_upload_progress_on<C: Conn>(
    conn: &mut C,
    id: &str,
    expected_len: u64,
    cursor: &UploadCursor,
    hash_state: &[u8],
) -> Result<bool, StoreError> {
    let changed = conn
        .exec(
            stmt("UPDATE uploads SET len = $1, cursor = $2, hash_state = $3 WHERE id = $4 AND len = $5")
                .bind(cursor.len as i64)
                .bind(cursor.state.as_slice())
                .bind(hash_state)
                .bind(id)
                .bind(expected_len as i64),
        )
        .await
        .ctx("recording upload progress")?;
    Ok(changed == 1)
}

pub async fn uploads_started_before<DB: Backend>(pool: &Pool<DB>, before: Millis) -> Result<Vec<UploadRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows =
        conn.all(stmt(format!("{UPLOAD_SELECT} WHERE u.started_at < $1")).bind(before)).await.ctx("listing stale upload sessions")?;
    decode_all(&rows, "reading upload session")
}

pub async fn count_uploads<DB: Backend>(pool: &Pool<DB>) -> Result<u64, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn.opt(stmt("SELECT COUNT(*) AS n FROM uploads")).await.ctx("counting uploads")?;
    Ok(row.map(|r| r.size("n")).transpose().ctx("counting uploads")?.unwrap_or(0))
}

// ---- manifests and tags ----

/// Stores a manifest and moves its tags, or changes nothing. Every row the decision rests on
/// is locked before it is relied on (PostgreSQL; SQLite's single writer orders the same way):
/// - each referenced blob link / child manifest with FOR KEY SHARE, so `unlink_blob`,
///   `gc_forget_blob`, `delete_manifest` and `expire_manifest` (which lock them FOR UPDATE
///   before checking for references) either finish first, and we report the reference
///   missing, or wait for our commit and see our references;
/// - the manifest row itself (inserted, or locked when it exists), so an expiry or archive
///   cannot decide on stale tags while we tag it;
/// - the tag, by the upsert; for `CreateOnly` the upsert only overwrites a tag naming this
///   manifest, so two nodes creating the same immutable tag cannot both win.
pub async fn put_manifest<DB: Backend>(pool: &Pool<DB>, new: &NewManifest<'_>) -> Result<PutManifestOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("storing manifest")?;
    let Some(repo_id) = repo_id_locked(&mut *tx, new.repository).await? else { return Ok(PutManifestOutcome::RepositoryMissing) };
    if let Some(refused) = check_references(&mut *tx, repo_id, &new.references).await? {
        return Ok(refused);
    }
    let m = &new.manifest;
    let digest = m.digest.to_string();
    for (tag, _) in new.tags.iter().filter(|(_, rule)| *rule == TagMove::CreateOnly) {
        if let Some(existing) = tag_conflict(&mut *tx, repo_id, tag, &digest).await? {
            return Ok(PutManifestOutcome::TagExists(existing));
        }
    }
    let (inserted, restored) = store_manifest_row(&mut *tx, repo_id, m, &digest).await?;
    // Also for a manifest already stored: a pull-through index stored with the children it had
    // then gains the references of the children cached since.
    for reference in &new.references {
        tx.exec(
            stmt(
                "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, kind) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(repo_id)
            .bind(digest.as_str())
            .bind(&reference.digest)
            .bind(kind_code(reference.kind)),
        )
        .await
        .ctx("recording manifest reference")?;
    }
    for &(tag, tag_move) in &new.tags {
        let only_same = match tag_move {
            TagMove::Move => "",
            TagMove::CreateOnly => " WHERE tags.manifest_digest = excluded.manifest_digest",
        };
        let sql = format!(
            "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at{only_same}"
        );
        let moved = tx.exec(stmt(sql).bind(repo_id).bind(tag).bind(digest.as_str()).bind(m.pushed_at)).await.ctx("moving tag")?;
        if moved == 0 {
            // Another node created the immutable tag since our check; dropping `tx` undoes the
            // manifest row, so nothing was written.
            if let Some(existing) = tag_conflict(&mut *tx, repo_id, tag, &digest).await? {
                return Ok(PutManifestOutcome::TagExists(existing));
            }
            return Err(StoreError::Db { context: "immutable tag changed while it was being created", source: sqlx::Error::RowNotFound });
        }
    }
    super::webhooks::enqueue_in(&mut *tx, &new.outbox, m.pushed_at).await?;
    tx.commit().await.ctx("committing manifest")?;
    Ok(PutManifestOutcome::Stored { inserted, restored })
}

/// Every reference must be in the repository with the size its descriptor declares; the
/// outcome that refuses the push otherwise. Each found row stays key-share locked.
async fn check_references<C: Conn>(
    conn: &mut C,
    repo_id: i64,
    references: &[ManifestReference],
) -> Result<Option<PutManifestOutcome>, StoreError> {
    for reference in references {
        let sql = match reference.kind {
            RefKind::Blob => format!(
                "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = $1 AND rb.digest = $2{}",
                key_share_of::<C>("rb")
            ),
            RefKind::Manifest => format!("SELECT size FROM manifests WHERE repository_id = $1 AND digest = $2{}", C::FOR_KEY_SHARE),
        };
        let row = conn.opt(stmt(sql).bind(repo_id).bind(&reference.digest)).await.ctx("checking manifest reference")?;
        match row.map(|r| r.size("size")).transpose().ctx("checking manifest reference")? {
            None => return Ok(Some(PutManifestOutcome::MissingReference(reference.digest.clone(), reference.kind))),
            Some(stored) if stored != reference.size => {
                return Ok(Some(PutManifestOutcome::SizeMismatch { reference: reference.clone(), stored }))
            }
            Some(_) => {}
        }
    }
    Ok(None)
}

/// The manifest another tag names, if it is not this one.
async fn tag_conflict<C: Conn>(conn: &mut C, repo_id: i64, tag: &str, digest: &str) -> Result<Option<Digest>, StoreError> {
    let row = conn
        .opt(stmt("SELECT manifest_digest FROM tags WHERE repository_id = $1 AND name = $2").bind(repo_id).bind(tag))
        .await
        .ctx("reading tag")?;
    let existing = row.map(|r| r.text("manifest_digest")).transpose().ctx("reading tag")?;
    existing
        .filter(|e| e != digest)
        .map(|e| e.parse::<Digest>().map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
        .ctx("corrupt digest in database")
}

/// Inserts the manifest row, or locks the existing one (restoring it if archived: pushing an
/// archived image again restores it, as ECR does). Returns (inserted, restored). A row deleted
/// between the failed insert and the lock is inserted again.
async fn store_manifest_row<C: Conn>(conn: &mut C, repo_id: i64, m: &ManifestRow, digest: &str) -> Result<(bool, bool), StoreError> {
    loop {
        let inserted = conn
            .exec(
                stmt(
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
                .bind(m.pushed_at),
            )
            .await
            .ctx("inserting manifest")?;
        if inserted > 0 {
            return Ok((true, false));
        }
        let sql = format!("SELECT storage_class FROM manifests WHERE repository_id = $1 AND digest = $2{}", C::FOR_NO_KEY_UPDATE);
        let row = conn.opt(stmt(sql).bind(repo_id).bind(digest)).await.ctx("locking manifest")?;
        let Some(row) = row else { continue };
        if row.storage_class().ctx("locking manifest")? != StorageClass::Archive {
            return Ok((false, false));
        }
        conn.exec(
            stmt("UPDATE manifests SET storage_class = 'STANDARD', last_activated_at = $1 WHERE repository_id = $2 AND digest = $3")
                .bind(m.pushed_at)
                .bind(repo_id)
                .bind(digest),
        )
        .await
        .ctx("restoring archived manifest")?;
        return Ok((false, true));
    }
}

pub async fn get_manifest_by_digest<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    digest: &Digest,
) -> Result<Option<ManifestRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!(
        "SELECT {MANIFEST_COLS} FROM manifests m JOIN repositories r ON r.id = m.repository_id \
         WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3 AND m.digest = $4"
    );
    let row = conn.opt(stmt(sql).bind_key(key).bind(digest)).await.ctx("reading manifest")?;
    decode_opt(row, "reading manifest")
}

pub async fn get_manifest_by_tag<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, tag: &str) -> Result<Option<ManifestRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!(
        "SELECT {MANIFEST_COLS} FROM tags t JOIN repositories r ON r.id = t.repository_id \
         JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest \
         WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3 AND t.name = $4"
    );
    let row = conn.opt(stmt(sql).bind_key(key).bind(tag)).await.ctx("reading manifest by tag")?;
    decode_opt(row, "reading manifest")
}

/// Deletes a manifest with its tags, unless an index of the repository lists it. Locks the
/// manifest first so a concurrent re-push (which locks it too) is either before us (its tags go
/// with the manifest) or after us (it inserts the manifest again), and so an index push listing
/// it (which holds FOR KEY SHARE on it until it commits) is either committed before the
/// reference check below reads, or waits and then finds its child gone. On SQLite the one
/// writer puts an index push wholly before the check or after the delete.
pub async fn delete_manifest<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, digest: &Digest) -> Result<DeleteManifestOutcome, StoreError> {
    delete_manifest_queueing(pool, key, digest, 0, &|_| Vec::new()).await
}

/// `delete_manifest`, adding `outbox(the tags it removed, by name)` to the jobs outbox in the
/// same transaction when it deletes (the tags are read under the manifest's lock, so they are
/// exactly the ones that went).
pub async fn delete_manifest_queueing<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    digest: &Digest,
    now: Millis,
    outbox: &(dyn for<'t> Fn(&'t [String]) -> Vec<QueuedJob> + Send + Sync),
) -> Result<DeleteManifestOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("deleting manifest")?;
    let Some(repo_id) = repo_id_locked(&mut *tx, key).await? else { return Ok(DeleteManifestOutcome::NotFound) };
    let lock = format!("SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2{}", <DB::Connection as Conn>::FOR_UPDATE);
    if tx.opt(stmt(lock).bind(repo_id).bind(digest)).await.ctx("locking manifest")?.is_none() {
        return Ok(DeleteManifestOutcome::NotFound);
    }
    let parent = tx
        .opt(
            stmt(
                "SELECT manifest_digest FROM manifest_references WHERE repository_id = $1 AND child_digest = $2 AND kind = 1 \
                 ORDER BY manifest_digest LIMIT 1",
            )
            .bind(repo_id)
            .bind(digest),
        )
        .await
        .ctx("checking index references")?;
    if let Some(parent) = parent {
        return Ok(DeleteManifestOutcome::ListedBy(parent.digest("manifest_digest").ctx("checking index references")?));
    }
    let tags = tx
        .all(stmt("SELECT name FROM tags WHERE repository_id = $1 AND manifest_digest = $2 ORDER BY name").bind(repo_id).bind(digest))
        .await
        .ctx("listing the tags of a deleted manifest")?
        .iter()
        .map(|r| r.text("name"))
        .collect::<Result<Vec<_>, _>>()
        .ctx("listing the tags of a deleted manifest")?;
    for sql in [
        "DELETE FROM tags WHERE repository_id = $1 AND manifest_digest = $2",
        "DELETE FROM manifest_references WHERE repository_id = $1 AND manifest_digest = $2",
        "DELETE FROM manifests WHERE repository_id = $1 AND digest = $2",
    ] {
        tx.exec(stmt(sql).bind(repo_id).bind(digest)).await.ctx("deleting manifest")?;
    }
    super::webhooks::enqueue_in(&mut *tx, &outbox(&tags), now).await?;
    tx.commit().await.ctx("committing manifest delete")?;
    Ok(DeleteManifestOutcome::Deleted)
}

pub async fn manifest_parents<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, digest: &Digest) -> Result<Vec<Digest>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(
            stmt(
                "SELECT DISTINCT x.manifest_digest FROM manifest_references x JOIN repositories r ON r.id = x.repository_id \
                 WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3 AND x.child_digest = $4 AND x.kind = 1 ORDER BY x.manifest_digest",
            )
            .bind_key(key)
            .bind(digest),
        )
        .await
        .ctx("listing indexes of a manifest")?;
    digests(&rows, "manifest_digest", "listing indexes of a manifest")
}

pub async fn repository_size<DB: Backend>(pool: &Pool<DB>, key: &RepoKey) -> Result<u64, StoreError> {
    let mut conn = acquire(pool).await?;
    let Some(repo_id) = repo_id(&mut *conn, key).await? else { return Ok(0) };
    let row = conn
        .opt(
            stmt(
                "SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) AS total FROM blobs b WHERE b.digest IN \
                 (SELECT child_digest FROM manifest_references WHERE repository_id = $1 AND kind = 0)",
            )
            .bind(repo_id),
        )
        .await
        .ctx("summing a repository's blobs")?;
    let total = row.map(|r| r.int("total")).transpose().ctx("summing a repository's blobs")?.unwrap_or(0);
    Ok(u64::try_from(total).unwrap_or(0))
}

pub async fn delete_tag<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, tag: &str) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let deleted = conn
        .exec(
            stmt(
                "DELETE FROM tags WHERE name = $4 AND repository_id = \
                 (SELECT id FROM repositories WHERE account_id = $1 AND region = $2 AND name = $3)",
            )
            .bind_key(key)
            .bind(tag),
        )
        .await
        .ctx("deleting tag")?;
    Ok(deleted > 0)
}

/// `delete_tag`, adding `outbox(the manifest the tag named)` to the jobs outbox in the same
/// transaction when it deletes (the tag row is locked before it is read).
pub async fn delete_tag_queueing<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    tag: &str,
    now: Millis,
    outbox: &(dyn for<'t> Fn(&'t Digest) -> Vec<QueuedJob> + Send + Sync),
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("deleting tag")?;
    let Some(repo_id) = repo_id_locked(&mut *tx, key).await? else { return Ok(false) };
    let sql = format!("SELECT manifest_digest FROM tags WHERE repository_id = $1 AND name = $2{}", <DB::Connection as Conn>::FOR_UPDATE);
    let Some(row) = tx.opt(stmt(sql).bind(repo_id).bind(tag)).await.ctx("locking tag")? else { return Ok(false) };
    let digest = row.digest("manifest_digest").ctx("locking tag")?;
    tx.exec(stmt("DELETE FROM tags WHERE repository_id = $1 AND name = $2").bind(repo_id).bind(tag)).await.ctx("deleting tag")?;
    super::webhooks::enqueue_in(&mut *tx, &outbox(&digest), now).await?;
    tx.commit().await.ctx("committing tag delete")?;
    Ok(true)
}

pub async fn list_tags<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
    let mut conn = acquire(pool).await?;
    let Some(repo_id) = repo_id(&mut *conn, key).await? else { return Ok(Vec::new()) };
    let rows = conn
        .all(
            stmt("SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3")
                .bind(repo_id)
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit)),
        )
        .await
        .ctx("listing tags")?;
    rows.iter().map(|r| r.text("name")).collect::<Result<_, _>>().ctx("listing tags")
}

pub async fn list_referrers<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, subject: &Digest) -> Result<Vec<ManifestSummary>, StoreError> {
    let mut conn = acquire(pool).await?;
    let Some(repo_id) = repo_id(&mut *conn, key).await? else { return Ok(Vec::new()) };
    let rows = conn
        .all(
            stmt(
                "SELECT digest, media_type, artifact_type, annotations, size, storage_class FROM manifests \
                 WHERE repository_id = $1 AND subject = $2 ORDER BY pushed_at, digest",
            )
            .bind(repo_id)
            .bind(subject),
        )
        .await
        .ctx("listing referrers")?;
    decode_all(&rows, "reading referrer")
}

/// Images in digest order strictly after `after`, at most `limit`.
pub async fn list_images<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    status: TagStatus,
    storage: Option<StorageClass>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<ImageRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let Some(repo_id) = repo_id(&mut *conn, key).await? else { return Ok(Vec::new()) };
    let sql = format!(
        "SELECT {IMAGE_COLS}, {} \
         FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
         WHERE m.repository_id = $1 AND m.digest > $2 AND (CAST($3 AS TEXT) IS NULL OR m.storage_class = $3) \
         GROUP BY m.repository_id, m.digest {} ORDER BY m.digest LIMIT $4",
        <DB::Connection as Conn>::TAGS_AGG,
        having_tags(status)
    );
    let rows = conn
        .all(stmt(sql).bind(repo_id).bind(after.unwrap_or("")).bind(storage.map(StorageClass::as_str)).bind(i64::from(limit)))
        .await
        .ctx("listing images")?;
    decode_all(&rows, "reading image")
}

/// Images newest first (push time descending, then digest), strictly after `after`.
pub async fn list_images_by_push<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    filter: &ImageFilter<'_>,
    after: Option<(Millis, &str)>,
    limit: u32,
) -> Result<Vec<ImageRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let Some(repo_id) = repo_id(&mut *conn, key).await? else { return Ok(Vec::new()) };
    let instr = <DB::Connection as Conn>::INSTR;
    let sql = format!(
        "SELECT {IMAGE_COLS}, {} \
         FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
         WHERE m.repository_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR m.pushed_at < $2 OR (m.pushed_at = $2 AND m.digest > $3)) \
         AND (CAST($4 AS TEXT) IS NULL OR m.storage_class = $4) \
         AND (CAST($5 AS TEXT) IS NULL OR {instr}(lower(m.digest), $5) > 0 OR EXISTS (SELECT 1 FROM tags s \
              WHERE s.repository_id = m.repository_id AND s.manifest_digest = m.digest AND {instr}(lower(s.name), $5) > 0)) \
         AND (NOT $6 OR NOT ({NESTED})) \
         GROUP BY m.repository_id, m.digest {} ORDER BY m.pushed_at DESC, m.digest LIMIT $7",
        <DB::Connection as Conn>::TAGS_AGG,
        having_tags(filter.status)
    );
    let rows = conn
        .all(
            stmt(sql)
                .bind(repo_id)
                .bind(after.map(|(at, _)| at))
                .bind(after.map(|(_, d)| d).unwrap_or(""))
                .bind(filter.storage.map(StorageClass::as_str))
                .bind(filter.search)
                .bind(filter.top_level)
                .bind(i64::from(limit)),
        )
        .await
        .ctx("listing images by push time")?;
    decode_all(&rows, "reading image")
}

pub async fn get_image<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, digest: &Digest) -> Result<Option<ImageRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let Some(repo_id) = repo_id(&mut *conn, key).await? else { return Ok(None) };
    let sql = format!(
        "SELECT {IMAGE_COLS}, {} \
         FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
         WHERE m.repository_id = $1 AND m.digest = $2 GROUP BY m.repository_id, m.digest",
        <DB::Connection as Conn>::TAGS_AGG
    );
    let row = conn.opt(stmt(sql).bind(repo_id).bind(digest)).await.ctx("reading image")?;
    decode_opt(row, "reading image")
}

/// Image identifiers (digest, tag; "" for an untagged image) in (digest, tag) order strictly
/// after `after`: one row per tag, as ECR's ListImages pages them.
pub async fn list_image_ids<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    status: TagStatus,
    storage: Option<StorageClass>,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<(Digest, String)>, StoreError> {
    let mut conn = acquire(pool).await?;
    let Some(repo_id) = repo_id(&mut *conn, key).await? else { return Ok(Vec::new()) };
    let tagged = match storage {
        None => "SELECT manifest_digest AS digest, name AS tag FROM tags WHERE repository_id = $1",
        Some(_) => {
            "SELECT t.manifest_digest AS digest, t.name AS tag FROM tags t JOIN manifests m \
             ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest WHERE t.repository_id = $1 AND m.storage_class = $5"
        }
    };
    let untagged = format!(
        "SELECT m.digest AS digest, {} AS tag FROM manifests m WHERE m.repository_id = $1 \
         AND (CAST($5 AS TEXT) IS NULL OR m.storage_class = $5) \
         AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)",
        <DB::Connection as Conn>::EMPTY_NAME
    );
    let source = match status {
        TagStatus::Tagged => tagged.to_string(),
        TagStatus::Untagged => untagged,
        TagStatus::Any => format!("{tagged} UNION ALL {untagged}"),
    };
    let (after_digest, after_tag) = after.unwrap_or(("", ""));
    let sql =
        format!("SELECT digest, tag FROM ({source}) AS ids WHERE digest > $2 OR (digest = $2 AND tag > $3) ORDER BY digest, tag LIMIT $4");
    let rows = conn
        .all(stmt(sql).bind(repo_id).bind(after_digest).bind(after_tag).bind(i64::from(limit)).bind(storage.map(StorageClass::as_str)))
        .await
        .ctx("listing image ids")?;
    rows.iter().map(|r| Ok((r.digest("digest")?, r.text("tag")?))).collect::<Result<_, sqlx::Error>>().ctx("reading image id")
}

/// Every (repository, manifest digest, reference) triple, for fsck.
pub async fn all_references<DB: Backend>(pool: &Pool<DB>) -> Result<Vec<(RepoKey, Digest, Digest, RefKind)>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(stmt(
            "SELECT r.account_id, r.region, r.name, mr.manifest_digest, mr.child_digest, mr.kind \
             FROM manifest_references mr JOIN repositories r ON r.id = mr.repository_id",
        ))
        .await
        .ctx("listing references")?;
    rows.iter()
        .map(|r| {
            let kind = if r.int("kind")? == 0 { RefKind::Blob } else { RefKind::Manifest };
            Ok((r.repo_key()?, r.digest("manifest_digest")?, r.digest("child_digest")?, kind))
        })
        .collect::<Result<_, sqlx::Error>>()
        .ctx("reading reference")
}

// ---- garbage collection ----

pub async fn gc_candidates<DB: Backend>(pool: &Pool<DB>, before: Millis) -> Result<Vec<GcCandidate>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(
            stmt(
                "SELECT b.digest, b.size FROM blobs b WHERE b.last_seen_at < $1 AND NOT EXISTS \
                 (SELECT 1 FROM manifest_references mr WHERE mr.child_digest = b.digest AND mr.kind = 0)",
            )
            .bind(before),
        )
        .await
        .ctx("finding unreferenced blobs")?;
    decode_all(&rows, "reading blob")
}

/// Locks a blob for collection, in the order every collector takes: the blob row (so
/// `link_blob` and `touch_blob` wait, or have already refreshed it: the locked row is re-read
/// with its newest last-seen time), then every link of it (so a `put_manifest` holding one
/// commits its references first, or waits and finds the link gone). False when the blob was
/// seen at or after `before` (or is gone): nothing to collect.
pub(crate) async fn lock_stale_blob<C: Conn>(conn: &mut C, digest: &Digest, before: Millis) -> Result<bool, StoreError> {
    let stale = conn
        .opt(stmt(format!("SELECT 1 FROM blobs WHERE digest = $1 AND last_seen_at < $2{}", C::FOR_UPDATE)).bind(digest).bind(before))
        .await
        .ctx("locking blob")?;
    if stale.is_none() {
        return Ok(false);
    }
    conn.all(stmt(format!("SELECT 1 FROM repository_blobs WHERE digest = $1{}", C::FOR_UPDATE)).bind(digest))
        .await
        .ctx("locking blob links")?;
    Ok(true)
}

/// Locks the blob (`lock_stale_blob`), and only then re-checks that nothing references it.
pub async fn gc_forget_blob<DB: Backend>(pool: &Pool<DB>, digest: &Digest, before: Millis) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("collecting blob")?;
    if !lock_stale_blob(&mut *tx, digest, before).await? {
        return Ok(false);
    }
    let referenced = tx
        .opt(stmt("SELECT 1 FROM manifest_references WHERE child_digest = $1 AND kind = 0 LIMIT 1").bind(digest))
        .await
        .ctx("re-checking blob")?;
    if referenced.is_some() {
        return Ok(false);
    }
    tx.exec(stmt("DELETE FROM repository_blobs WHERE digest = $1").bind(digest)).await.ctx("unlinking blob")?;
    tx.exec(stmt("DELETE FROM blob_objects WHERE digest = $1").bind(digest)).await.ctx("forgetting blob objects")?;
    tx.exec(stmt("DELETE FROM blobs WHERE digest = $1").bind(digest)).await.ctx("forgetting blob")?;
    tx.commit().await.ctx("committing blob collection")?;
    Ok(true)
}
