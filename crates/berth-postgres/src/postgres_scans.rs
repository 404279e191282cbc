//! Image scans and the registry scanning configuration.

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::{Digest, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::db::{digest_col, repo_id, repo_id_locked, DbContext};
use crate::postgres::PostgresMetadataStore;

pub(crate) async fn put_image_scan(pool: &PgPool, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("storing image scan")?;
    let Some(repo_id) = repo_id_locked(&mut tx, key).await? else { return Ok(false) };
    let d = digest.to_string();
    // Key share: a concurrent delete of the image waits for us (and then takes the scan with it)
    // or has already happened (and we report the image missing).
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2 FOR KEY SHARE")
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (repository_id, digest) DO UPDATE SET status = excluded.status, \
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

fn scan_row(r: &PgRow) -> Result<(Digest, ImageScanRow), StoreError> {
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

pub(crate) async fn image_scan(pool: &PgPool, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError> {
    Ok(image_scans(pool, key, std::slice::from_ref(digest)).await?.pop().map(|(_, row)| row))
}

pub(crate) async fn image_scans(pool: &PgPool, key: &RepoKey, digests: &[Digest]) -> Result<Vec<(Digest, ImageScanRow)>, StoreError> {
    if digests.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = pool.acquire().await.ctx("acquiring connection")?;
    let Some(repo_id) = repo_id(&mut conn, key).await? else { return Ok(Vec::new()) };
    // One query per page of images, the digests bound as one array.
    let list: Vec<String> = digests.iter().map(Digest::to_string).collect();
    let rows = sqlx::query(&format!("SELECT {SCAN_COLS} FROM image_scans s WHERE s.repository_id = $1 AND s.digest = ANY($2)"))
        .bind(repo_id)
        .bind(&list)
        .fetch_all(&mut *conn)
        .await
        .ctx("reading image scans")?;
    rows.iter().map(scan_row).collect()
}

pub(crate) async fn scanned_images(pool: &PgPool, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.account_id, r.region, r.name, s.digest FROM image_scans s JOIN repositories r ON r.id = s.repository_id \
         WHERE $1::text IS NULL OR s.status = $1 ORDER BY s.repository_id, s.digest",
    )
    .bind(status)
    .fetch_all(pool)
    .await
    .ctx("listing scanned images")?;
    rows.iter().map(|r| Ok((crate::db::repo_key(r, "reading scanned image")?, digest_col(r, "digest")?))).collect()
}

pub(crate) async fn registry_scanning(pool: &PgPool, account: &str, region: &str) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT config FROM registry_scanning WHERE account_id = $1 AND region = $2")
        .bind(account)
        .bind(region)
        .fetch_optional(pool)
        .await
        .ctx("reading registry scanning configuration")
}

pub(crate) async fn set_registry_scanning(pool: &PgPool, account: &str, region: &str, config: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO registry_scanning (account_id, region, config) VALUES ($1, $2, $3) \
         ON CONFLICT (account_id, region) DO UPDATE SET config = excluded.config",
    )
    .bind(account)
    .bind(region)
    .bind(config)
    .execute(pool)
    .await
    .ctx("storing registry scanning configuration")?;
    Ok(())
}

#[async_trait]
impl ScanStore for PostgresMetadataStore {
    async fn put_image_scan(&self, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError> {
        self.timed("put_image_scan", put_image_scan(&self.pool, key, digest, scan)).await
    }

    async fn image_scan(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError> {
        self.timed("image_scan", image_scan(&self.pool, key, digest)).await
    }

    async fn image_scans(&self, key: &RepoKey, digests: &[Digest]) -> Result<Vec<(Digest, ImageScanRow)>, StoreError> {
        self.timed("image_scans", image_scans(&self.pool, key, digests)).await
    }

    async fn scanned_images(&self, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError> {
        self.timed("scanned_images", scanned_images(&self.pool, status)).await
    }

    async fn registry_scanning(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        self.timed("registry_scanning", registry_scanning(&self.pool, account, region)).await
    }

    async fn set_registry_scanning(&self, account: &str, region: &str, config: &str) -> Result<(), StoreError> {
        self.timed("set_registry_scanning", set_registry_scanning(&self.pool, account, region, config)).await
    }
}
