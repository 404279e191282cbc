//! SQLite: Image scans and the registry scanning configuration.

use async_trait::async_trait;

use super::*;

pub(crate) async fn put_image_scan(writer: &SqlitePool, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError> {
    let mut tx = writer.begin().await.ctx("storing image scan")?;
    let Some(repo_id) = repo_id_in(&mut tx, key).await? else { return Ok(false) };
    let d = digest.to_string();
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?")
        .bind(repo_id)
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await
        .ctx("reading image")?;
    if exists.is_none() {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO image_scans (repository_id, digest, status, description, started_at, completed_at, vulndb_version, findings) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repository_id, digest) DO UPDATE SET status = excluded.status, \
         description = excluded.description, started_at = excluded.started_at, completed_at = excluded.completed_at, \
         vulndb_version = excluded.vulndb_version, findings = excluded.findings",
    )
    .bind(repo_id)
    .bind(&d)
    .bind(&scan.status)
    .bind(&scan.description)
    .bind(scan.started_at)
    .bind(scan.completed_at)
    .bind(&scan.vulndb_version)
    .bind(&scan.findings)
    .execute(&mut *tx)
    .await
    .ctx("storing image scan")?;
    tx.commit().await.ctx("committing image scan")?;
    Ok(true)
}

const SCAN_COLS: &str = "s.digest, s.status, s.description, s.started_at, s.completed_at, s.vulndb_version, s.findings";

fn scan_row(r: &sqlx::sqlite::SqliteRow) -> Result<(Digest, ImageScanRow), StoreError> {
    let c = "reading image scan";
    Ok((
        digest_col(r, "digest")?,
        ImageScanRow {
            status: r.try_get("status").ctx(c)?,
            description: r.try_get("description").ctx(c)?,
            started_at: r.try_get("started_at").ctx(c)?,
            completed_at: r.try_get("completed_at").ctx(c)?,
            vulndb_version: r.try_get("vulndb_version").ctx(c)?,
            findings: r.try_get("findings").ctx(c)?,
        },
    ))
}

pub(crate) async fn image_scan(reader: &SqlitePool, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError> {
    Ok(image_scans(reader, key, std::slice::from_ref(digest)).await?.pop().map(|(_, row)| row))
}

pub(crate) async fn image_scans(reader: &SqlitePool, key: &RepoKey, digests: &[Digest]) -> Result<Vec<(Digest, ImageScanRow)>, StoreError> {
    if digests.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = reader.acquire().await.ctx("acquiring connection")?;
    let Some(repo_id) = repo_id_in(&mut conn, key).await? else { return Ok(Vec::new()) };
    // One query per page of images; the digest list is bound as JSON, not spliced into SQL.
    // Digests are validated `alg:hex`: no character needs JSON escaping.
    let list = format!("[{}]", digests.iter().map(|d| format!("\"{d}\"")).collect::<Vec<_>>().join(","));
    let rows = sqlx::query(&format!(
        "SELECT {SCAN_COLS} FROM image_scans s WHERE s.repository_id = ? AND s.digest IN (SELECT value FROM json_each(?))"
    ))
    .bind(repo_id)
    .bind(list)
    .fetch_all(&mut *conn)
    .await
    .ctx("reading image scans")?;
    rows.iter().map(scan_row).collect()
}

pub(crate) async fn scanned_images(reader: &SqlitePool, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.account_id, r.region, r.name, s.digest FROM image_scans s JOIN repositories r ON r.id = s.repository_id \
         WHERE ?1 IS NULL OR s.status = ?1 ORDER BY s.repository_id, s.digest",
    )
    .bind(status)
    .fetch_all(reader)
    .await
    .ctx("listing scanned images")?;
    rows.iter()
        .map(|r| {
            let c = "reading scanned image";
            Ok((
                RepoKey { account: r.try_get("account_id").ctx(c)?, region: r.try_get("region").ctx(c)?, name: r.try_get("name").ctx(c)? },
                digest_col(r, "digest")?,
            ))
        })
        .collect()
}

pub(crate) async fn registry_scanning(reader: &SqlitePool, account: &str, region: &str) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT config FROM registry_scanning WHERE account_id = ? AND region = ?")
        .bind(account)
        .bind(region)
        .fetch_optional(reader)
        .await
        .ctx("reading registry scanning configuration")
}

pub(crate) async fn set_registry_scanning(writer: &SqlitePool, account: &str, region: &str, config: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO registry_scanning (account_id, region, config) VALUES (?, ?, ?) \
         ON CONFLICT (account_id, region) DO UPDATE SET config = excluded.config",
    )
    .bind(account)
    .bind(region)
    .bind(config)
    .execute(writer)
    .await
    .ctx("storing registry scanning configuration")?;
    Ok(())
}

#[async_trait]
impl ScanStore for SqliteMetadataStore {
    async fn put_image_scan(&self, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError> {
        put_image_scan(&self.writer, key, digest, scan).await
    }

    async fn image_scan(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError> {
        image_scan(&self.reader, key, digest).await
    }

    async fn image_scans(&self, key: &RepoKey, digests: &[Digest]) -> Result<Vec<(Digest, ImageScanRow)>, StoreError> {
        image_scans(&self.reader, key, digests).await
    }

    async fn scanned_images(&self, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError> {
        scanned_images(&self.reader, status).await
    }

    async fn registry_scanning(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        registry_scanning(&self.reader, account, region).await
    }

    async fn set_registry_scanning(&self, account: &str, region: &str, config: &str) -> Result<(), StoreError> {
        set_registry_scanning(&self.writer, account, region, config).await
    }
}
