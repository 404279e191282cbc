//! SQLite: Lifecycle policies, previews, storage classes and pull times.

use async_trait::async_trait;

use super::*;

pub(crate) async fn record_pulls(writer: &SqlitePool, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError> {
    if pulls.is_empty() {
        return Ok(());
    }
    let mut tx = writer.begin().await.ctx("recording pulls")?;
    for (key, digest, at) in pulls {
        let Some(repo_id) = repo_id_in(&mut tx, key).await? else { continue };
        sqlx::query(
            "UPDATE manifests SET last_pulled_at = ?1 WHERE repository_id = ?2 AND digest = ?3 \
             AND (last_pulled_at IS NULL OR last_pulled_at < ?1)",
        )
        .bind(at)
        .bind(repo_id)
        .bind(digest.to_string())
        .execute(&mut *tx)
        .await
        .ctx("recording pull")?;
    }
    tx.commit().await.ctx("committing pulls")
}

pub(crate) async fn set_storage_class(
    writer: &SqlitePool,
    key: &RepoKey,
    digest: &Digest,
    class: StorageClass,
    now: Millis,
) -> Result<Option<bool>, StoreError> {
    let mut tx = writer.begin().await.ctx("changing storage class")?;
    let Some(repo_id) = repo_id_in(&mut tx, key).await? else { return Ok(None) };
    let current: Option<String> = sqlx::query_scalar("SELECT storage_class FROM manifests WHERE repository_id = ? AND digest = ?")
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
        StorageClass::Archive => "UPDATE manifests SET storage_class = 'ARCHIVE', archived_at = ? WHERE repository_id = ? AND digest = ?",
        StorageClass::Standard => {
            "UPDATE manifests SET storage_class = 'STANDARD', last_activated_at = ? WHERE repository_id = ? AND digest = ?"
        }
    };
    sqlx::query(sql).bind(now).bind(repo_id).bind(digest.to_string()).execute(&mut *tx).await.ctx("changing storage class")?;
    tx.commit().await.ctx("committing storage class")?;
    Ok(Some(true))
}

pub(crate) async fn set_lifecycle_policy(
    writer: &SqlitePool,
    key: &RepoKey,
    policy: Option<&str>,
    now: Millis,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE repositories SET lifecycle_policy = ?, lifecycle_policy_updated_at = ? WHERE account_id = ? AND region = ? AND name = ?",
    )
    .bind(policy)
    .bind(policy.map(|_| now))
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .execute(writer)
    .await
    .ctx("setting lifecycle policy")?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn lifecycle_policy(reader: &SqlitePool, key: &RepoKey) -> Result<Option<LifecyclePolicyRow>, StoreError> {
    let row = sqlx::query(
        "SELECT lifecycle_policy, lifecycle_policy_updated_at, lifecycle_evaluated_at FROM repositories \
         WHERE account_id = ? AND region = ? AND name = ? AND lifecycle_policy IS NOT NULL",
    )
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .fetch_optional(reader)
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

pub(crate) async fn mark_lifecycle_evaluated(writer: &SqlitePool, key: &RepoKey, now: Millis) -> Result<(), StoreError> {
    sqlx::query("UPDATE repositories SET lifecycle_evaluated_at = ? WHERE account_id = ? AND region = ? AND name = ?")
        .bind(now)
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .execute(writer)
        .await
        .ctx("recording lifecycle evaluation")?;
    Ok(())
}

pub(crate) async fn expire_manifest(
    writer: &SqlitePool,
    key: &RepoKey,
    digest: &Digest,
    expected_tags: &[String],
) -> Result<ExpireOutcome, StoreError> {
    let mut tx = writer.begin().await.ctx("expiring image")?;
    let Some(repo_id) = repo_id_in(&mut tx, key).await? else { return Ok(ExpireOutcome::NotFound) };
    let d = digest.to_string();
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?")
        .bind(repo_id)
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await
        .ctx("reading image")?;
    if exists.is_none() {
        return Ok(ExpireOutcome::NotFound);
    }
    let mut tags: Vec<String> = sqlx::query_scalar("SELECT name FROM tags WHERE repository_id = ? AND manifest_digest = ?")
        .bind(repo_id)
        .bind(&d)
        .fetch_all(&mut *tx)
        .await
        .ctx("reading image tags")?;
    tags.sort();
    let listed: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM manifest_references WHERE repository_id = ? AND child_digest = ? AND kind = 1 LIMIT 1")
            .bind(repo_id)
            .bind(&d)
            .fetch_optional(&mut *tx)
            .await
            .ctx("checking index references")?;
    if tags != expected_tags || listed.is_some() {
        return Ok(ExpireOutcome::Changed);
    }
    // The image, then everything that refers to it (signatures, SBOMs, their own referrers).
    let mut doomed = vec![d];
    let mut i = 0;
    while i < doomed.len() {
        // A referrer that is tagged or listed by an index is kept (it is then judged on its own).
        let referrers: Vec<String> = sqlx::query_scalar(
            "SELECT m.digest FROM manifests m WHERE m.repository_id = ?1 AND m.subject = ?2 \
             AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = ?1 AND t.manifest_digest = m.digest) \
             AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = ?1 AND r.child_digest = m.digest AND r.kind = 1)",
        )
        .bind(repo_id)
        .bind(&doomed[i])
        .fetch_all(&mut *tx)
        .await
        .ctx("listing referrers")?;
        for r in referrers {
            if !doomed.contains(&r) {
                doomed.push(r);
            }
        }
        i += 1;
    }
    for m in &doomed {
        for sql in [
            "DELETE FROM tags WHERE repository_id = ? AND manifest_digest = ?",
            "DELETE FROM manifest_references WHERE repository_id = ? AND manifest_digest = ?",
            "DELETE FROM manifests WHERE repository_id = ? AND digest = ?",
        ] {
            sqlx::query(sql).bind(repo_id).bind(m).execute(&mut *tx).await.ctx("expiring image")?;
        }
    }
    tx.commit().await.ctx("committing expiry")?;
    doomed
        .iter()
        .map(|m| {
            m.parse::<Digest>()
                .map_err(|e| StoreError::Db { context: "corrupt digest in database", source: sqlx::Error::Decode(Box::new(e)) })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(ExpireOutcome::Expired)
}

pub(crate) async fn lifecycle_repositories(reader: &SqlitePool) -> Result<Vec<RepoKey>, StoreError> {
    let rows = sqlx::query("SELECT account_id, region, name FROM repositories WHERE lifecycle_policy IS NOT NULL ORDER BY id")
        .fetch_all(reader)
        .await
        .ctx("listing repositories with lifecycle policies")?;
    rows.iter()
        .map(|r| {
            let c = "reading repository";
            Ok(RepoKey { account: r.try_get("account_id").ctx(c)?, region: r.try_get("region").ctx(c)?, name: r.try_get("name").ctx(c)? })
        })
        .collect()
}

pub(crate) async fn lifecycle_images(reader: &SqlitePool, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError> {
    let mut conn = reader.acquire().await.ctx("acquiring connection")?;
    let Some(repo_id) = repo_id_in(&mut conn, key).await? else { return Ok(Vec::new()) };
    // One grouped scan of manifests ⋈ tags, and the set of manifests an index lists: no
    // per-row subqueries (this is read whole for every evaluation pass).
    let rows = sqlx::query(
        "SELECT m.digest, m.pushed_at, m.last_pulled_at, m.storage_class, m.archived_at, m.last_activated_at, m.subject, \
           group_concat(t.name, char(10)) AS tags \
         FROM manifests m LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.manifest_digest = m.digest \
         WHERE m.repository_id = ? GROUP BY m.digest",
    )
    .bind(repo_id)
    .fetch_all(&mut *conn)
    .await
    .ctx("listing images for lifecycle")?;
    let listed: std::collections::HashSet<String> =
        sqlx::query_scalar("SELECT DISTINCT child_digest FROM manifest_references WHERE repository_id = ? AND kind = 1")
            .bind(repo_id)
            .fetch_all(&mut *conn)
            .await
            .ctx("listing index children")?
            .into_iter()
            .collect();
    rows.iter()
        .map(|r| {
            let c = "reading image for lifecycle";
            let tags: Option<String> = r.try_get("tags").ctx(c)?;
            let mut tags: Vec<String> = tags.map(|t| t.split('\n').map(str::to_string).collect()).unwrap_or_default();
            // expire_manifest compares against the sorted tag list.
            tags.sort();
            let class: String = r.try_get("storage_class").ctx(c)?;
            let subject: Option<String> = r.try_get("subject").ctx(c)?;
            let digest = digest_col(r, "digest")?;
            let referenced = listed.contains(&digest.to_string());
            Ok(LifecycleImageRow {
                digest,
                tags,
                pushed_at: r.try_get("pushed_at").ctx(c)?,
                last_pulled_at: r.try_get("last_pulled_at").ctx(c)?,
                storage_class: StorageClass::parse(&class).unwrap_or_default(),
                archived_at: r.try_get("archived_at").ctx(c)?,
                last_activated_at: r.try_get("last_activated_at").ctx(c)?,
                subject: subject.and_then(|s| s.parse().ok()),
                referenced_by_manifest: referenced,
            })
        })
        .collect()
}

pub(crate) async fn put_lifecycle_preview(writer: &SqlitePool, key: &RepoKey, p: &LifecyclePreviewRow) -> Result<bool, StoreError> {
    let mut tx = writer.begin().await.ctx("storing lifecycle preview")?;
    let Some(repo_id) = repo_id_in(&mut tx, key).await? else { return Ok(false) };
    sqlx::query(
        "INSERT INTO lifecycle_previews (repository_id, policy, status, result, started_at) VALUES (?, ?, ?, ?, ?) \
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

pub(crate) async fn lifecycle_preview(reader: &SqlitePool, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError> {
    let row = sqlx::query(
        "SELECT p.policy, p.status, p.result, p.started_at FROM lifecycle_previews p JOIN repositories r ON r.id = p.repository_id \
         WHERE r.account_id = ? AND r.region = ? AND r.name = ?",
    )
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .fetch_optional(reader)
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

pub(crate) async fn archive_if_unchanged(
    writer: &SqlitePool,
    key: &RepoKey,
    digest: &Digest,
    expected_tags: &[String],
    now: Millis,
) -> Result<bool, StoreError> {
    let mut tx = writer.begin().await.ctx("archiving image")?;
    let Some(repo_id) = repo_id_in(&mut tx, key).await? else { return Ok(false) };
    let d = digest.to_string();
    let mut tags: Vec<String> = sqlx::query_scalar("SELECT name FROM tags WHERE repository_id = ? AND manifest_digest = ?")
        .bind(repo_id)
        .bind(&d)
        .fetch_all(&mut *tx)
        .await
        .ctx("reading image tags")?;
    tags.sort();
    if tags != expected_tags {
        return Ok(false);
    }
    let r = sqlx::query(
        "UPDATE manifests SET storage_class = 'ARCHIVE', archived_at = ?1 WHERE repository_id = ?2 AND digest = ?3 \
         AND storage_class = 'STANDARD' \
         AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = ?2 AND r.child_digest = ?3 AND r.kind = 1)",
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

#[async_trait]
impl LifecycleStore for SqliteMetadataStore {
    async fn record_pulls(&self, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError> {
        record_pulls(&self.writer, pulls).await
    }

    async fn set_storage_class(
        &self,
        key: &RepoKey,
        digest: &Digest,
        class: StorageClass,
        now: Millis,
    ) -> Result<Option<bool>, StoreError> {
        set_storage_class(&self.writer, key, digest, class, now).await
    }

    async fn set_lifecycle_policy(&self, key: &RepoKey, policy: Option<&str>, now: Millis) -> Result<bool, StoreError> {
        set_lifecycle_policy(&self.writer, key, policy, now).await
    }

    async fn lifecycle_policy(&self, key: &RepoKey) -> Result<Option<LifecyclePolicyRow>, StoreError> {
        lifecycle_policy(&self.reader, key).await
    }

    async fn mark_lifecycle_evaluated(&self, key: &RepoKey, now: Millis) -> Result<(), StoreError> {
        mark_lifecycle_evaluated(&self.writer, key, now).await
    }

    async fn expire_manifest(&self, key: &RepoKey, digest: &Digest, expected_tags: &[String]) -> Result<ExpireOutcome, StoreError> {
        expire_manifest(&self.writer, key, digest, expected_tags).await
    }

    async fn archive_if_unchanged(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        now: Millis,
    ) -> Result<bool, StoreError> {
        archive_if_unchanged(&self.writer, key, digest, expected_tags, now).await
    }

    async fn lifecycle_repositories(&self) -> Result<Vec<RepoKey>, StoreError> {
        lifecycle_repositories(&self.reader).await
    }

    async fn lifecycle_images(&self, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError> {
        lifecycle_images(&self.reader, key).await
    }

    async fn put_lifecycle_preview(&self, key: &RepoKey, preview: &LifecyclePreviewRow) -> Result<bool, StoreError> {
        put_lifecycle_preview(&self.writer, key, preview).await
    }

    async fn lifecycle_preview(&self, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError> {
        lifecycle_preview(&self.reader, key).await
    }
}
