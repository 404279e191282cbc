//! Lifecycle policies, their previews and runs, storage classes and pull times, written once
//! for both backends. PostgreSQL runs the write transactions under its deadlock retry.
//!
//! Expiry and archiving decide on rows they first lock (`Conn::FOR_UPDATE`: the manifest, then
//! its tags, then the comparison), so on PostgreSQL an index push holding a key share on the
//! manifest commits first or waits and finds it gone, and a push moving a tag away commits
//! first and the image is then reported changed: a push racing the run wins. On SQLite the
//! single writer gives the same order.

use std::collections::HashSet;

use sqlx::{FromRow, Pool};

use super::repos::{acquire, repo_id, repo_id_locked};
use super::{stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::{Digest, StoreError};

impl<'r, R: Columns> FromRow<'r, R> for LifecyclePreviewRow {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(LifecyclePreviewRow {
            policy: r.text("policy")?,
            status: r.text("status")?,
            result: r.opt_text("result")?,
            started_at: r.int("started_at")?,
        })
    }
}

pub async fn record_pulls<DB: Backend>(pool: &Pool<DB>, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError> {
    if pulls.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.ctx("recording pulls")?;
    for (key, digest, at) in pulls {
        let Some(repo_id) = repo_id(&mut *tx, key).await? else { continue };
        // The condition is re-checked on the newest row version: a later time never goes back.
        tx.exec(
            stmt(
                "UPDATE manifests SET last_pulled_at = $1 WHERE repository_id = $2 AND digest = $3 \
                 AND (last_pulled_at IS NULL OR last_pulled_at < $1)",
            )
            .bind(*at)
            .bind(repo_id)
            .bind(digest),
        )
        .await
        .ctx("recording pull")?;
    }
    tx.commit().await.ctx("committing pulls")
}

pub async fn set_storage_class<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    digest: &Digest,
    class: StorageClass,
    now: Millis,
) -> Result<Option<bool>, StoreError> {
    let mut tx = pool.begin().await.ctx("changing storage class")?;
    let Some(repo_id) = repo_id_locked(&mut *tx, key).await? else { return Ok(None) };
    let sql = format!(
        "SELECT storage_class FROM manifests WHERE repository_id = $1 AND digest = $2{}",
        <DB::Connection as Conn>::FOR_NO_KEY_UPDATE
    );
    let current = tx.opt(stmt(sql).bind(repo_id).bind(digest)).await.ctx("reading storage class")?;
    let Some(current) = current else { return Ok(None) };
    if current.storage_class().ctx("reading storage class")? == class {
        return Ok(Some(false));
    }
    let sql = match class {
        StorageClass::Archive => {
            "UPDATE manifests SET storage_class = 'ARCHIVE', archived_at = $1 WHERE repository_id = $2 AND digest = $3"
        }
        StorageClass::Standard => {
            "UPDATE manifests SET storage_class = 'STANDARD', last_activated_at = $1 WHERE repository_id = $2 AND digest = $3"
        }
    };
    tx.exec(stmt(sql).bind(now).bind(repo_id).bind(digest)).await.ctx("changing storage class")?;
    tx.commit().await.ctx("committing storage class")?;
    Ok(Some(true))
}

pub async fn set_lifecycle_policy<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    policy: Option<&str>,
    now: Millis,
) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let changed = conn
        .exec(
            stmt(
                "UPDATE repositories SET lifecycle_policy = $4, lifecycle_policy_updated_at = $5 \
                 WHERE account_id = $1 AND region = $2 AND name = $3",
            )
            .bind_key(key)
            .bind(policy)
            .bind(policy.map(|_| now)),
        )
        .await
        .ctx("setting lifecycle policy")?;
    Ok(changed > 0)
}

pub async fn lifecycle_policy<DB: Backend>(pool: &Pool<DB>, key: &RepoKey) -> Result<Option<LifecyclePolicyRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(
            stmt(
                "SELECT lifecycle_policy, lifecycle_policy_updated_at, lifecycle_evaluated_at FROM repositories \
                 WHERE account_id = $1 AND region = $2 AND name = $3 AND lifecycle_policy IS NOT NULL",
            )
            .bind_key(key),
        )
        .await
        .ctx("reading lifecycle policy")?;
    row.map(|r| {
        Ok(LifecyclePolicyRow {
            policy: r.text("lifecycle_policy")?,
            updated_at: r.opt_int("lifecycle_policy_updated_at")?.unwrap_or(0),
            evaluated_at: r.opt_int("lifecycle_evaluated_at")?,
        })
    })
    .transpose()
    .ctx("reading lifecycle policy")
}

pub async fn mark_lifecycle_evaluated<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, now: Millis) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    conn.exec(
        stmt("UPDATE repositories SET lifecycle_evaluated_at = $4 WHERE account_id = $1 AND region = $2 AND name = $3")
            .bind_key(key)
            .bind(now),
    )
    .await
    .ctx("recording lifecycle evaluation")?;
    Ok(())
}

/// Locks the manifest row; false if there is none.
async fn lock_manifest<C: Conn>(conn: &mut C, repo_id: i64, digest: &str) -> Result<bool, StoreError> {
    let sql = format!("SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2{}", C::FOR_UPDATE);
    Ok(conn.opt(stmt(sql).bind(repo_id).bind(digest)).await.ctx("locking image")?.is_some())
}

/// The manifest's tags, sorted, with their rows locked; and whether an index lists it.
async fn locked_state<C: Conn>(conn: &mut C, repo_id: i64, digest: &str) -> Result<(Vec<String>, bool), StoreError> {
    let sql = format!("SELECT name FROM tags WHERE repository_id = $1 AND manifest_digest = $2{}", C::FOR_UPDATE);
    let rows = conn.all(stmt(sql).bind(repo_id).bind(digest)).await.ctx("reading image tags")?;
    let mut tags = rows.iter().map(|r| r.text("name")).collect::<Result<Vec<_>, _>>().ctx("reading image tags")?;
    tags.sort();
    let listed = conn
        .opt(
            stmt("SELECT 1 FROM manifest_references WHERE repository_id = $1 AND child_digest = $2 AND kind = 1 LIMIT 1")
                .bind(repo_id)
                .bind(digest),
        )
        .await
        .ctx("checking index references")?;
    Ok((tags, listed.is_some()))
}

/// Deletes an image a lifecycle rule expired, and then the referrers that go with it, in one
/// transaction, only if it is unchanged since it was evaluated (see the module doc).
pub async fn expire_manifest<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    digest: &Digest,
    expected_tags: &[String],
) -> Result<ExpireOutcome, StoreError> {
    expire_manifest_queueing(pool, key, digest, expected_tags, &[], 0).await
}

/// `expire_manifest`, adding `outbox` to the jobs outbox in the same transaction when it expires.
pub async fn expire_manifest_queueing<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    digest: &Digest,
    expected_tags: &[String],
    outbox: &[QueuedJob],
    now: Millis,
) -> Result<ExpireOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("expiring image")?;
    let Some(repo_id) = repo_id_locked(&mut *tx, key).await? else { return Ok(ExpireOutcome::NotFound) };
    let d = digest.to_string();
    if !lock_manifest(&mut *tx, repo_id, &d).await? {
        return Ok(ExpireOutcome::NotFound);
    }
    let (tags, listed) = locked_state(&mut *tx, repo_id, &d).await?;
    if tags != expected_tags || listed {
        return Ok(ExpireOutcome::Changed);
    }
    // The image, then everything that refers to it (signatures, SBOMs, their own referrers).
    let mut doomed = vec![d];
    let mut i = 0;
    while i < doomed.len() {
        let sql = format!(
            "SELECT digest FROM manifests WHERE repository_id = $1 AND subject = $2 ORDER BY digest{}",
            <DB::Connection as Conn>::FOR_UPDATE
        );
        let rows = tx.all(stmt(sql).bind(repo_id).bind(doomed[i].as_str())).await.ctx("listing referrers")?;
        for r in rows {
            let r = r.text("digest").ctx("listing referrers")?;
            if doomed.contains(&r) {
                continue;
            }
            // A referrer that is tagged or listed by an index is kept (it is then judged on its own).
            let (tags, listed) = locked_state(&mut *tx, repo_id, &r).await?;
            if tags.is_empty() && !listed {
                doomed.push(r);
            }
        }
        i += 1;
    }
    for m in &doomed {
        for sql in [
            "DELETE FROM tags WHERE repository_id = $1 AND manifest_digest = $2",
            "DELETE FROM manifest_references WHERE repository_id = $1 AND manifest_digest = $2",
            "DELETE FROM manifests WHERE repository_id = $1 AND digest = $2",
        ] {
            tx.exec(stmt(sql).bind(repo_id).bind(m.as_str())).await.ctx("expiring image")?;
        }
    }
    super::webhooks::enqueue_in(&mut *tx, outbox, now).await?;
    tx.commit().await.ctx("committing expiry")?;
    doomed
        .iter()
        .map(|m| m.parse::<Digest>().map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .collect::<Result<Vec<_>, _>>()
        .ctx("corrupt digest in database")
        .map(ExpireOutcome::Expired)
}

/// Archives an image a lifecycle rule selected, only if it is still standard with the same
/// tags and no index lists it; locks as `expire_manifest` does.
pub async fn archive_if_unchanged<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    digest: &Digest,
    expected_tags: &[String],
    now: Millis,
) -> Result<bool, StoreError> {
    archive_if_unchanged_queueing(pool, key, digest, expected_tags, now, &[]).await
}

/// `archive_if_unchanged`, adding `outbox` to the jobs outbox in the same transaction when it
/// archives.
pub async fn archive_if_unchanged_queueing<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    digest: &Digest,
    expected_tags: &[String],
    now: Millis,
    outbox: &[QueuedJob],
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("archiving image")?;
    let Some(repo_id) = repo_id_locked(&mut *tx, key).await? else { return Ok(false) };
    let d = digest.to_string();
    // A missing image has no tags: it matches only an empty expectation, and then the UPDATE
    // below finds nothing.
    lock_manifest(&mut *tx, repo_id, &d).await?;
    let (tags, listed) = locked_state(&mut *tx, repo_id, &d).await?;
    if tags != expected_tags || listed {
        return Ok(false);
    }
    let changed = tx
        .exec(
            stmt(
                "UPDATE manifests SET storage_class = 'ARCHIVE', archived_at = $1 WHERE repository_id = $2 AND digest = $3 \
                 AND storage_class = 'STANDARD'",
            )
            .bind(now)
            .bind(repo_id)
            .bind(d.as_str()),
        )
        .await
        .ctx("archiving image")?;
    if changed > 0 {
        super::webhooks::enqueue_in(&mut *tx, outbox, now).await?;
    }
    tx.commit().await.ctx("committing archive")?;
    Ok(changed > 0)
}

pub async fn lifecycle_repositories<DB: Backend>(pool: &Pool<DB>) -> Result<Vec<RepoKey>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(stmt("SELECT account_id, region, name FROM repositories WHERE lifecycle_policy IS NOT NULL ORDER BY id"))
        .await
        .ctx("listing repositories with lifecycle policies")?;
    rows.iter().map(|r| r.repo_key()).collect::<Result<_, _>>().ctx("reading repository")
}

pub async fn lifecycle_images<DB: Backend>(pool: &Pool<DB>, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError> {
    // One snapshot for both reads, so the listing and the index children agree.
    let mut tx = pool.begin().await.ctx("reading images for lifecycle")?;
    tx.read_snapshot().await.ctx("reading images for lifecycle")?;
    let Some(repo_id) = repo_id(&mut *tx, key).await? else { return Ok(Vec::new()) };
    // One grouped scan of manifests ⋈ tags, and the set of manifests an index lists: no
    // per-row subqueries (this is read whole for every evaluation pass).
    let sql = format!(
        "SELECT m.digest, m.pushed_at, m.last_pulled_at, m.storage_class, m.archived_at, m.last_activated_at, m.subject, {} \
         FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
         WHERE m.repository_id = $1 GROUP BY m.repository_id, m.digest",
        <DB::Connection as Conn>::TAGS_AGG
    );
    let rows = tx.all(stmt(sql).bind(repo_id)).await.ctx("listing images for lifecycle")?;
    let children = tx
        .all(stmt("SELECT DISTINCT child_digest FROM manifest_references WHERE repository_id = $1 AND kind = 1").bind(repo_id))
        .await
        .ctx("listing index children")?;
    tx.commit().await.ctx("reading images for lifecycle")?;
    let listed: HashSet<String> =
        children.iter().map(|r| r.text("child_digest")).collect::<Result<_, _>>().ctx("listing index children")?;
    rows.iter()
        .map(|r| {
            let digest = r.digest("digest")?;
            let referenced = listed.contains(&digest.to_string());
            Ok(LifecycleImageRow {
                digest,
                tags: r.tag_list()?,
                pushed_at: r.int("pushed_at")?,
                last_pulled_at: r.opt_int("last_pulled_at")?,
                storage_class: r.storage_class()?,
                archived_at: r.opt_int("archived_at")?,
                last_activated_at: r.opt_int("last_activated_at")?,
                subject: r.subject("subject")?,
                referenced_by_manifest: referenced,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .ctx("reading image for lifecycle")
}

pub async fn put_lifecycle_preview<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, p: &LifecyclePreviewRow) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("storing lifecycle preview")?;
    let Some(repo_id) = repo_id_locked(&mut *tx, key).await? else { return Ok(false) };
    tx.exec(
        stmt(
            "INSERT INTO lifecycle_previews (repository_id, policy, status, result, started_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (repository_id) DO UPDATE SET policy = excluded.policy, status = excluded.status, result = excluded.result, \
             started_at = excluded.started_at",
        )
        .bind(repo_id)
        .bind(&p.policy)
        .bind(&p.status)
        .bind(&p.result)
        .bind(p.started_at),
    )
    .await
    .ctx("storing lifecycle preview")?;
    tx.commit().await.ctx("committing lifecycle preview")?;
    Ok(true)
}

pub async fn lifecycle_preview<DB: Backend>(pool: &Pool<DB>, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(
            stmt(
                "SELECT p.policy, p.status, p.result, p.started_at FROM lifecycle_previews p JOIN repositories r ON r.id = p.repository_id \
                 WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3",
            )
            .bind_key(key),
        )
        .await
        .ctx("reading lifecycle preview")?;
    super::decode_opt(row, "reading lifecycle preview")
}
