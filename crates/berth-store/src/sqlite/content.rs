//! SQLite: Blobs, upload sessions, manifests, tags, image listings and garbage collection.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl ContentStore for SqliteMetadataStore {
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
}
