//! Image scans and the registry scanning configuration: every statement is the same on both
//! backends.

use sqlx::{FromRow, Pool};

use super::repos::{acquire, repo_id, repo_id_locked};
use super::{stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::{Digest, StoreError};

const SCAN_COLS: &str = "s.digest, s.status, s.description, s.started_at, s.completed_at, s.vulndb_version, s.findings";

impl<'r, R: Columns> FromRow<'r, R> for ImageScanRow {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(ImageScanRow {
            status: r.text("status")?,
            description: r.opt_text("description")?,
            started_at: r.int("started_at")?,
            completed_at: r.opt_int("completed_at")?,
            vulndb_version: r.opt_text("vulndb_version")?,
            findings: r.opt_text("findings")?,
        })
    }
}

/// `$from, $from+1, …` for a list of `n` values bound one by one.
pub fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

pub async fn put_image_scan<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("storing image scan")?;
    let Some(repo_id) = repo_id_locked(&mut *tx, key).await? else { return Ok(false) };
    // Key share (PostgreSQL): a concurrent delete of the image waits for us (and then takes the
    // scan with it) or has already happened (and we report the image missing).
    let sql = format!("SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2{}", <DB::Connection as Conn>::FOR_KEY_SHARE);
    let exists = tx.opt(stmt(sql).bind(repo_id).bind(digest)).await.ctx("reading image")?;
    if exists.is_none() {
        return Ok(false);
    }
    tx.exec(
        stmt(
            "INSERT INTO image_scans (repository_id, digest, status, description, started_at, completed_at, vulndb_version, findings) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (repository_id, digest) DO UPDATE SET status = excluded.status, \
             description = excluded.description, started_at = excluded.started_at, completed_at = excluded.completed_at, \
             vulndb_version = excluded.vulndb_version, findings = excluded.findings",
        )
        .bind(repo_id)
        .bind(digest)
        .bind(&scan.status)
        .bind(&scan.description)
        .bind(scan.started_at)
        .bind(scan.completed_at)
        .bind(&scan.vulndb_version)
        .bind(&scan.findings),
    )
    .await
    .ctx("storing image scan")?;
    tx.commit().await.ctx("committing image scan")?;
    Ok(true)
}

pub async fn image_scan<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError> {
    Ok(image_scans(pool, key, std::slice::from_ref(digest)).await?.pop().map(|(_, row)| row))
}

/// One query per page of images, the digests bound one by one (never spliced into SQL).
pub async fn image_scans<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    digests: &[Digest],
) -> Result<Vec<(Digest, ImageScanRow)>, StoreError> {
    if digests.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = acquire(pool).await?;
    let Some(repo_id) = repo_id(&mut *conn, key).await? else { return Ok(Vec::new()) };
    let sql =
        format!("SELECT {SCAN_COLS} FROM image_scans s WHERE s.repository_id = $1 AND s.digest IN ({})", placeholders(2, digests.len()));
    let s = digests.iter().fold(stmt(sql).bind(repo_id), |s, d| s.bind(d));
    let rows = conn.all(s).await.ctx("reading image scans")?;
    rows.iter().map(|r| Ok((r.digest("digest")?, ImageScanRow::from_row(r)?))).collect::<Result<_, sqlx::Error>>().ctx("reading image scan")
}

pub async fn scanned_images<DB: Backend>(pool: &Pool<DB>, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(
            stmt(
                "SELECT r.account_id, r.region, r.name, s.digest FROM image_scans s JOIN repositories r ON r.id = s.repository_id \
                 WHERE CAST($1 AS TEXT) IS NULL OR s.status = $1 ORDER BY s.repository_id, s.digest",
            )
            .bind(status),
        )
        .await
        .ctx("listing scanned images")?;
    rows.iter().map(|r| Ok((r.repo_key()?, r.digest("digest")?))).collect::<Result<_, sqlx::Error>>().ctx("reading scanned image")
}

pub async fn registry_scanning<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str) -> Result<Option<String>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(stmt("SELECT config FROM registry_scanning WHERE account_id = $1 AND region = $2").bind(account).bind(region))
        .await
        .ctx("reading registry scanning configuration")?;
    row.map(|r| r.text("config")).transpose().ctx("reading registry scanning configuration")
}

pub async fn set_registry_scanning<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str, config: &str) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    conn.exec(
        stmt(
            "INSERT INTO registry_scanning (account_id, region, config) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, region) DO UPDATE SET config = excluded.config",
        )
        .bind(account)
        .bind(region)
        .bind(config),
    )
    .await
    .ctx("storing registry scanning configuration")?;
    Ok(())
}
