//! Lifecycle policies, previews, storage classes and pull times.

use std::collections::HashSet;

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::{Digest, StoreError};
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::db::{digest_col, parse_digest, repo_id, repo_id_locked, retrying, DbContext};
use crate::postgres::PostgresMetadataStore;
use crate::postgres_content::{storage_class_col, tags_col, TAGS_AGG};

pub(crate) async fn record_pulls(pool: &PgPool, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError> {
    if pulls.is_empty() {
        return Ok(());
    }
    retrying(|| Box::pin(record_pulls_once(pool, pulls))).await
}

async fn record_pulls_once(pool: &PgPool, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.ctx("recording pulls")?;
    for (key, digest, at) in pulls {
        // The condition is re-checked on the newest row version: a later time never goes back.
        sqlx::query(
            "UPDATE manifests m SET last_pulled_at = $1 FROM repositories r \
             WHERE r.id = m.repository_id AND r.account_id = $2 AND r.region = $3 AND r.name = $4 AND m.digest = $5 \
             AND (m.last_pulled_at IS NULL OR m.last_pulled_at < $1)",
        )
        .bind(at)
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .bind(digest.to_string())
        .execute(&mut *tx)
        .await
        .ctx("recording pull")?;
    }
    tx.commit().await.ctx("committing pulls")
}

pub(crate) async fn set_storage_class(
    pool: &PgPool,
    key: &RepoKey,
    digest: &Digest,
    class: StorageClass,
    now: Millis,
) -> Result<Option<bool>, StoreError> {
    let mut tx = pool.begin().await.ctx("changing storage class")?;
    let Some(repo_id) = repo_id_locked(&mut tx, key).await? else { return Ok(None) };
    let current: Option<String> =
        sqlx::query_scalar("SELECT storage_class FROM manifests WHERE repository_id = $1 AND digest = $2 FOR NO KEY UPDATE")
            .bind(repo_id)
            .bind(digest.to_string())
            .fetch_optional(&mut *tx)
            .await
            .ctx("reading storage class")?;
    let Some(current) = current else { return Ok(None) };
    if current == class.as_str() {
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
    sqlx::query(sql).bind(now).bind(repo_id).bind(digest.to_string()).execute(&mut *tx).await.ctx("changing storage class")?;
    tx.commit().await.ctx("committing storage class")?;
    Ok(Some(true))
}

pub(crate) async fn set_lifecycle_policy(pool: &PgPool, key: &RepoKey, policy: Option<&str>, now: Millis) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE repositories SET lifecycle_policy = $1, lifecycle_policy_updated_at = $2 WHERE account_id = $3 AND region = $4 AND name = $5",
    )
    .bind(policy)
    .bind(policy.map(|_| now))
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .execute(pool)
    .await
    .ctx("setting lifecycle policy")?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn lifecycle_policy(pool: &PgPool, key: &RepoKey) -> Result<Option<LifecyclePolicyRow>, StoreError> {
    let row = sqlx::query(
        "SELECT lifecycle_policy, lifecycle_policy_updated_at, lifecycle_evaluated_at FROM repositories \
         WHERE account_id = $1 AND region = $2 AND name = $3 AND lifecycle_policy IS NOT NULL",
    )
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .fetch_optional(pool)
    .await
    .ctx("reading lifecycle policy")?;
    let Some(row) = row else { return Ok(None) };
    let c = "reading lifecycle policy";
    let at: Option<i64> = row.try_get("lifecycle_policy_updated_at").ctx(c)?;
    Ok(Some(LifecyclePolicyRow {
        policy: row.try_get("lifecycle_policy").ctx(c)?,
        updated_at: at.unwrap_or(0),
        evaluated_at: row.try_get("lifecycle_evaluated_at").ctx(c)?,
    }))
}

pub(crate) async fn mark_lifecycle_evaluated(pool: &PgPool, key: &RepoKey, now: Millis) -> Result<(), StoreError> {
    sqlx::query("UPDATE repositories SET lifecycle_evaluated_at = $1 WHERE account_id = $2 AND region = $3 AND name = $4")
        .bind(now)
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .execute(pool)
        .await
        .ctx("recording lifecycle evaluation")?;
    Ok(())
}

/// Locks the manifest FOR UPDATE (an index push holding a key share on it commits first, or
/// waits and finds it gone; a re-push tagging it waits), then its tag rows (a push moving one of
/// them away commits first and the tag is no longer ours: a push racing the run wins), and only
/// then compares. Referrers are locked before their own tags and listings are re-checked.
pub(crate) async fn expire_manifest(
    pool: &PgPool,
    key: &RepoKey,
    digest: &Digest,
    expected_tags: &[String],
) -> Result<ExpireOutcome, StoreError> {
    retrying(|| Box::pin(expire_manifest_once(pool, key, digest, expected_tags))).await
}

async fn lock_manifest(tx: &mut Transaction<'_, Postgres>, repo_id: i64, digest: &str) -> Result<bool, StoreError> {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2 FOR UPDATE")
        .bind(repo_id)
        .bind(digest)
        .fetch_optional(&mut **tx)
        .await
        .ctx("locking image")?;
    Ok(exists.is_some())
}

/// The manifest's tags, sorted, with their rows locked; and whether an index lists it.
async fn locked_state(tx: &mut Transaction<'_, Postgres>, repo_id: i64, digest: &str) -> Result<(Vec<String>, bool), StoreError> {
    let mut tags: Vec<String> = sqlx::query_scalar("SELECT name FROM tags WHERE repository_id = $1 AND manifest_digest = $2 FOR UPDATE")
        .bind(repo_id)
        .bind(digest)
        .fetch_all(&mut **tx)
        .await
        .ctx("reading image tags")?;
    tags.sort();
    let listed: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM manifest_references WHERE repository_id = $1 AND child_digest = $2 AND kind = 1 LIMIT 1")
            .bind(repo_id)
            .bind(digest)
            .fetch_optional(&mut **tx)
            .await
            .ctx("checking index references")?;
    Ok((tags, listed.is_some()))
}

async fn expire_manifest_once(
    pool: &PgPool,
    key: &RepoKey,
    digest: &Digest,
    expected_tags: &[String],
) -> Result<ExpireOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("expiring image")?;
    let Some(repo_id) = repo_id_locked(&mut tx, key).await? else { return Ok(ExpireOutcome::NotFound) };
    let d = digest.to_string();
    if !lock_manifest(&mut tx, repo_id, &d).await? {
        return Ok(ExpireOutcome::NotFound);
    }
    let (tags, listed) = locked_state(&mut tx, repo_id, &d).await?;
    if tags != expected_tags || listed {
        return Ok(ExpireOutcome::Changed);
    }
    // The image, then everything that refers to it (signatures, SBOMs, their own referrers).
    let mut doomed = vec![d];
    let mut i = 0;
    while i < doomed.len() {
        let candidates: Vec<String> =
            sqlx::query_scalar("SELECT digest FROM manifests WHERE repository_id = $1 AND subject = $2 ORDER BY digest FOR UPDATE")
                .bind(repo_id)
                .bind(&doomed[i])
                .fetch_all(&mut *tx)
                .await
                .ctx("listing referrers")?;
        for r in candidates {
            if doomed.contains(&r) {
                continue;
            }
            // A referrer that is tagged or listed by an index is kept (it is then judged on its own).
            let (tags, listed) = locked_state(&mut tx, repo_id, &r).await?;
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
            sqlx::query(sql).bind(repo_id).bind(m).execute(&mut *tx).await.ctx("expiring image")?;
        }
    }
    tx.commit().await.ctx("committing expiry")?;
    doomed.iter().map(|m| parse_digest(m)).collect::<Result<Vec<_>, _>>().map(ExpireOutcome::Expired)
}

/// Same locking as `expire_manifest`: the manifest, then its tags, then the comparison.
pub(crate) async fn archive_if_unchanged(
    pool: &PgPool,
    key: &RepoKey,
    digest: &Digest,
    expected_tags: &[String],
    now: Millis,
) -> Result<bool, StoreError> {
    retrying(|| Box::pin(archive_if_unchanged_once(pool, key, digest, expected_tags, now))).await
}

async fn archive_if_unchanged_once(
    pool: &PgPool,
    key: &RepoKey,
    digest: &Digest,
    expected_tags: &[String],
    now: Millis,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("archiving image")?;
    let Some(repo_id) = repo_id_locked(&mut tx, key).await? else { return Ok(false) };
    let d = digest.to_string();
    // A missing image has no tags: it matches only an empty expectation, and then the UPDATE
    // below finds nothing, as in the SQLite store.
    lock_manifest(&mut tx, repo_id, &d).await?;
    let (tags, listed) = locked_state(&mut tx, repo_id, &d).await?;
    if tags != expected_tags || listed {
        return Ok(false);
    }
    let r = sqlx::query(
        "UPDATE manifests SET storage_class = 'ARCHIVE', archived_at = $1 WHERE repository_id = $2 AND digest = $3 \
         AND storage_class = 'STANDARD'",
    )
    .bind(now)
    .bind(repo_id)
    .bind(&d)
    .execute(&mut *tx)
    .await
    .ctx("archiving image")?;
    tx.commit().await.ctx("committing archive")?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn lifecycle_repositories(pool: &PgPool) -> Result<Vec<RepoKey>, StoreError> {
    let rows = sqlx::query("SELECT account_id, region, name FROM repositories WHERE lifecycle_policy IS NOT NULL ORDER BY id")
        .fetch_all(pool)
        .await
        .ctx("listing repositories with lifecycle policies")?;
    rows.iter().map(|r| crate::db::repo_key(r, "reading repository")).collect()
}

pub(crate) async fn lifecycle_images(pool: &PgPool, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError> {
    // One snapshot for both reads, so the listing and the index children agree.
    let mut tx = pool.begin().await.ctx("reading images for lifecycle")?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .ctx("reading images for lifecycle")?;
    let Some(repo_id) = repo_id(&mut tx, key).await? else { return Ok(Vec::new()) };
    let rows = sqlx::query(&format!(
        "SELECT m.digest, m.pushed_at, m.last_pulled_at, m.storage_class, m.archived_at, m.last_activated_at, m.subject, {TAGS_AGG} \
         FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
         WHERE m.repository_id = $1 GROUP BY m.repository_id, m.digest"
    ))
    .bind(repo_id)
    .fetch_all(&mut *tx)
    .await
    .ctx("listing images for lifecycle")?;
    let listed: HashSet<String> =
        sqlx::query_scalar("SELECT DISTINCT child_digest FROM manifest_references WHERE repository_id = $1 AND kind = 1")
            .bind(repo_id)
            .fetch_all(&mut *tx)
            .await
            .ctx("listing index children")?
            .into_iter()
            .collect();
    tx.commit().await.ctx("reading images for lifecycle")?;
    rows.iter()
        .map(|r| {
            let c = "reading image for lifecycle";
            let subject: Option<String> = r.try_get("subject").ctx(c)?;
            let digest = digest_col(r, "digest")?;
            let referenced = listed.contains(&digest.to_string());
            Ok(LifecycleImageRow {
                digest,
                tags: tags_col(r, c)?,
                pushed_at: r.try_get("pushed_at").ctx(c)?,
                last_pulled_at: r.try_get("last_pulled_at").ctx(c)?,
                storage_class: storage_class_col(r)?,
                archived_at: r.try_get("archived_at").ctx(c)?,
                last_activated_at: r.try_get("last_activated_at").ctx(c)?,
                subject: subject.and_then(|s| s.parse().ok()),
                referenced_by_manifest: referenced,
            })
        })
        .collect()
}

pub(crate) async fn put_lifecycle_preview(pool: &PgPool, key: &RepoKey, p: &LifecyclePreviewRow) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("storing lifecycle preview")?;
    let Some(repo_id) = repo_id_locked(&mut tx, key).await? else { return Ok(false) };
    sqlx::query(
        "INSERT INTO lifecycle_previews (repository_id, policy, status, result, started_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (repository_id) DO UPDATE SET policy = excluded.policy, status = excluded.status, result = excluded.result, \
         started_at = excluded.started_at",
    )
    .bind(repo_id)
    .bind(&p.policy)
    .bind(&p.status)
    .bind(&p.result)
    .bind(p.started_at)
    .execute(&mut *tx)
    .await
    .ctx("storing lifecycle preview")?;
    tx.commit().await.ctx("committing lifecycle preview")?;
    Ok(true)
}

pub(crate) async fn lifecycle_preview(pool: &PgPool, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError> {
    let row = sqlx::query(
        "SELECT p.policy, p.status, p.result, p.started_at FROM lifecycle_previews p JOIN repositories r ON r.id = p.repository_id \
         WHERE r.account_id = $1 AND r.region = $2 AND r.name = $3",
    )
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .fetch_optional(pool)
    .await
    .ctx("reading lifecycle preview")?;
    let Some(r) = row else { return Ok(None) };
    let c = "reading lifecycle preview";
    Ok(Some(LifecyclePreviewRow {
        policy: r.try_get("policy").ctx(c)?,
        status: r.try_get("status").ctx(c)?,
        result: r.try_get("result").ctx(c)?,
        started_at: r.try_get("started_at").ctx(c)?,
    }))
}

#[async_trait]
impl LifecycleStore for PostgresMetadataStore {
    async fn record_pulls(&self, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError> {
        self.timed("record_pulls", record_pulls(&self.pool, pulls)).await
    }

    async fn set_storage_class(
        &self,
        key: &RepoKey,
        digest: &Digest,
        class: StorageClass,
        now: Millis,
    ) -> Result<Option<bool>, StoreError> {
        self.timed("set_storage_class", set_storage_class(&self.pool, key, digest, class, now)).await
    }

    async fn set_lifecycle_policy(&self, key: &RepoKey, policy: Option<&str>, now: Millis) -> Result<bool, StoreError> {
        self.timed("set_lifecycle_policy", set_lifecycle_policy(&self.pool, key, policy, now)).await
    }

    async fn lifecycle_policy(&self, key: &RepoKey) -> Result<Option<LifecyclePolicyRow>, StoreError> {
        self.timed("lifecycle_policy", lifecycle_policy(&self.pool, key)).await
    }

    async fn mark_lifecycle_evaluated(&self, key: &RepoKey, now: Millis) -> Result<(), StoreError> {
        self.timed("mark_lifecycle_evaluated", mark_lifecycle_evaluated(&self.pool, key, now)).await
    }

    async fn expire_manifest(&self, key: &RepoKey, digest: &Digest, expected_tags: &[String]) -> Result<ExpireOutcome, StoreError> {
        self.timed("expire_manifest", expire_manifest(&self.pool, key, digest, expected_tags)).await
    }

    async fn archive_if_unchanged(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.timed("archive_if_unchanged", archive_if_unchanged(&self.pool, key, digest, expected_tags, now)).await
    }

    async fn lifecycle_repositories(&self) -> Result<Vec<RepoKey>, StoreError> {
        self.timed("lifecycle_repositories", lifecycle_repositories(&self.pool)).await
    }

    async fn lifecycle_images(&self, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError> {
        self.timed("lifecycle_images", lifecycle_images(&self.pool, key)).await
    }

    async fn put_lifecycle_preview(&self, key: &RepoKey, preview: &LifecyclePreviewRow) -> Result<bool, StoreError> {
        self.timed("put_lifecycle_preview", put_lifecycle_preview(&self.pool, key, preview)).await
    }

    async fn lifecycle_preview(&self, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError> {
        self.timed("lifecycle_preview", lifecycle_preview(&self.pool, key)).await
    }
}
