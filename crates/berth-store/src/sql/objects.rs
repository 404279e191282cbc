//! Blob objects per encryption scope (`BlobObject`): which scopes hold a blob's bytes, the blobs
//! a repository links that its scope does not hold yet, and the collection of objects no
//! repository reads any more. Every statement is the same on both backends; `link_blob` and
//! `gc_forget_blob` (`super::content`) record and forget objects in their own transactions.

use sqlx::{FromRow, Pool};

use super::content::lock_stale_blob;
use super::repos::acquire;
use super::{decode_all, stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::{Digest, StoreError};

impl<'r, R: Columns> FromRow<'r, R> for BlobObject {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(BlobObject { digest: r.digest("digest")?, scope: r.text("scope")?, size: r.size("size")? })
    }
}

/// Whether repository `r` reads its bytes of blob `digest` from the object of scope `scope`
/// (both SQL expressions): its own scope's object, or the clear one while its scope holds none.
fn reads_object(digest: &str, scope: &str) -> String {
    format!(
        "(({scope} <> '' AND {STORAGE_SCOPE_SQL} = {scope}) OR ({scope} = '' AND NOT EXISTS \
         (SELECT 1 FROM blob_objects o2 WHERE o2.digest = {digest} AND o2.scope = {STORAGE_SCOPE_SQL})))"
    )
}

/// Object `o` is collectable: its blob is still referenced (else the whole blob goes, by
/// `gc_forget_blob`), but by no manifest of a repository that reads this object.
fn collectable() -> String {
    format!(
        "EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.child_digest = o.digest AND mr.kind = 0) \
         AND NOT EXISTS (SELECT 1 FROM manifest_references mr JOIN repositories r ON r.id = mr.repository_id \
         WHERE mr.child_digest = o.digest AND mr.kind = 0 AND {})",
        reads_object("o.digest", "o.scope")
    )
}

/// Records the object a `link_blob` implies, inside its transaction: `scope` holds the bytes,
/// or (None) the linked repository's own scope.
pub(crate) async fn record_linked<C: Conn>(
    conn: &mut C,
    repository_id: i64,
    digest: &Digest,
    now: Millis,
    scope: Option<&str>,
) -> Result<(), StoreError> {
    let statement = match scope {
        None => stmt(format!(
            "INSERT INTO blob_objects (digest, scope, stored_at) SELECT $1, {STORAGE_SCOPE_SQL}, $3 FROM repositories r WHERE r.id = $2 \
             ON CONFLICT DO NOTHING"
        ))
        .bind(digest)
        .bind(repository_id)
        .bind(now),
        Some(scope) => stmt("INSERT INTO blob_objects (digest, scope, stored_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(digest)
            .bind(scope)
            .bind(now),
    };
    conn.exec(statement).await.ctx("recording blob object")?;
    Ok(())
}

pub async fn repository_blob_object<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    digest: &Digest,
) -> Result<Option<RepositoryBlobObject>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!(
        "SELECT b.size, EXISTS (SELECT 1 FROM blob_objects o WHERE o.digest = b.digest AND o.scope = {STORAGE_SCOPE_SQL}) AS sealed, \
         {STORAGE_SCOPE_SQL} AS scope FROM blobs b JOIN repository_blobs rb ON rb.digest = b.digest JOIN repositories r ON r.id = rb.repository_id \
         WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3 AND b.digest = $4"
    );
    let row = conn.opt(stmt(sql).bind_key(key).bind(digest)).await.ctx("looking up repository blob object")?;
    row.map(|r| Ok(RepositoryBlobObject { size: r.size("size")?, sealed: r.flag("sealed")?, scope: r.text("scope")? }))
        .transpose()
        .ctx("looking up repository blob object")
}

pub async fn record_blob_object<DB: Backend>(pool: &Pool<DB>, digest: &Digest, scope: &str, now: Millis) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    conn.exec(
        stmt("INSERT INTO blob_objects (digest, scope, stored_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(digest)
            .bind(scope)
            .bind(now),
    )
    .await
    .ctx("recording blob object")?;
    Ok(())
}

pub async fn blob_objects<DB: Backend>(pool: &Pool<DB>, digest: &Digest) -> Result<Vec<BlobObject>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(
            stmt(
                "SELECT o.digest, o.scope, b.size FROM blob_objects o JOIN blobs b ON b.digest = o.digest \
                 WHERE o.digest = $1 ORDER BY o.scope",
            )
            .bind(digest),
        )
        .await
        .ctx("listing blob objects")?;
    decode_all(&rows, "reading blob object")
}

/// One page of `source` (a query of `digest`, `scope`, `size`), ordered by digest then scope,
/// strictly after `after`.
async fn page_of_objects<DB: Backend>(
    pool: &Pool<DB>,
    source: &str,
    after: Option<(&Digest, &str)>,
    limit: u32,
    context: &'static str,
) -> Result<Vec<BlobObject>, StoreError> {
    let mut conn = acquire(pool).await?;
    let (after_digest, after_scope) = after.map_or((String::new(), ""), |(d, s)| (d.to_string(), s));
    let sql = format!(
        "SELECT digest, scope, size FROM ({source}) u WHERE digest > $1 OR (digest = $1 AND scope > $2) ORDER BY digest, scope LIMIT $3"
    );
    let rows = conn.all(stmt(sql).bind(after_digest).bind(after_scope).bind(i64::from(limit))).await.ctx(context)?;
    decode_all(&rows, context)
}

pub async fn list_blob_objects<DB: Backend>(
    pool: &Pool<DB>,
    after: Option<(&Digest, &str)>,
    limit: u32,
) -> Result<Vec<BlobObject>, StoreError> {
    let source = "SELECT o.digest, o.scope, b.size FROM blob_objects o JOIN blobs b ON b.digest = o.digest";
    page_of_objects(pool, source, after, limit, "listing blob objects").await
}

pub async fn gc_object_candidates<DB: Backend>(pool: &Pool<DB>, before: Millis) -> Result<Vec<BlobObject>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!(
        "SELECT o.digest, o.scope, b.size FROM blob_objects o JOIN blobs b ON b.digest = o.digest \
         WHERE b.last_seen_at < $1 AND o.stored_at < $1 AND {} ORDER BY o.digest, o.scope",
        collectable()
    );
    let rows = conn.all(stmt(sql).bind(before)).await.ctx("finding unneeded blob objects")?;
    decode_all(&rows, "reading blob object")
}

/// Locks as `gc_forget_blob` does (`lock_stale_blob`), then re-checks the object. The links removed are those of the repositories that read
/// this object, which no manifest of theirs references: without the object they would name
/// bytes their scope does not hold. A clear ("") object's readers are the repositories whose
/// scope holds no object of the blob.
pub async fn gc_forget_object<DB: Backend>(pool: &Pool<DB>, digest: &Digest, scope: &str, before: Millis) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("collecting blob object")?;
    if !lock_stale_blob(&mut *tx, digest, before).await? {
        return Ok(false);
    }
    let recheck = format!("SELECT 1 FROM blob_objects o WHERE o.digest = $1 AND o.scope = $2 AND o.stored_at < $3 AND {}", collectable());
    if tx.opt(stmt(recheck).bind(digest).bind(scope).bind(before)).await.ctx("re-checking blob object")?.is_none() {
        return Ok(false);
    }
    let unlink = format!(
        "DELETE FROM repository_blobs WHERE digest = $1 AND repository_id IN (SELECT r.id FROM repositories r WHERE {})",
        reads_object("$1", "$2")
    );
    tx.exec(stmt(unlink).bind(digest).bind(scope)).await.ctx("unlinking blob object")?;
    tx.exec(stmt("DELETE FROM blob_objects WHERE digest = $1 AND scope = $2").bind(digest).bind(scope))
        .await
        .ctx("forgetting blob object")?;
    tx.commit().await.ctx("committing blob object collection")?;
    Ok(true)
}

/// The scope is computed, so it is given the byte order the stored scopes have.
pub async fn unsealed_blobs<DB: Backend>(
    pool: &Pool<DB>,
    after: Option<(&Digest, &str)>,
    limit: u32,
) -> Result<Vec<BlobObject>, StoreError> {
    let source = format!(
        "SELECT DISTINCT rb.digest, {STORAGE_SCOPE_SQL}{} AS scope, b.size \
         FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id JOIN blobs b ON b.digest = rb.digest \
         WHERE NOT EXISTS (SELECT 1 FROM blob_objects o WHERE o.digest = rb.digest AND o.scope = {STORAGE_SCOPE_SQL})",
        <DB::Connection as Conn>::BYTE_ORDER
    );
    page_of_objects(pool, &source, after, limit, "listing unsealed blobs").await
}
