//! Replication rows: every statement is the same on both backends.

use sqlx::Pool;

use super::repos::acquire;
use super::{stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::{Digest, StoreError};

pub async fn replication_configuration<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str) -> Result<Option<String>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(stmt("SELECT config FROM replication_configurations WHERE account_id = $1 AND region = $2").bind(account).bind(region))
        .await
        .ctx("reading replication configuration")?;
    row.map(|r| r.text("config")).transpose().ctx("reading replication configuration")
}

pub async fn put_replication_configuration<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    config: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    conn.exec(
        stmt(
            "INSERT INTO replication_configurations (account_id, region, config, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, region) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
        )
        .bind(account)
        .bind(region)
        .bind(config)
        .bind(now),
    )
    .await
    .ctx("writing replication configuration")?;
    Ok(())
}

async fn upsert_status<C: Conn>(conn: &mut C, repo: &RepoKey, digest: &Digest, row: &ReplicationStatusRow) -> Result<(), StoreError> {
    conn.exec(
        stmt(
            "INSERT INTO replication_statuses (account_id, region, name, digest, dest_region, dest_registry, status, failure_code, \
             origin, queued_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (account_id, region, name, digest, dest_region, dest_registry) DO UPDATE SET status = excluded.status, \
             failure_code = excluded.failure_code, origin = excluded.origin, queued_at = excluded.queued_at, \
             updated_at = excluded.updated_at",
        )
        .bind_key(repo)
        .bind(digest)
        .bind(&row.destination.region)
        .bind(&row.destination.registry_id)
        .bind(&row.status)
        .bind(&row.failure_code)
        .bind(&row.origin)
        .bind(row.queued_at)
        .bind(row.updated_at),
    )
    .await
    .ctx("writing replication status")?;
    Ok(())
}

pub async fn queue_replication<DB: Backend>(
    pool: &Pool<DB>,
    repo: &RepoKey,
    digest: &Digest,
    statuses: &[ReplicationStatusRow],
    jobs: &[QueuedJob],
    now: Millis,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.ctx("queueing replication")?;
    for row in statuses {
        upsert_status(&mut *tx, repo, digest, row).await?;
    }
    for job in jobs {
        tx.exec(stmt(crate::jobs::sql::ENQUEUE).bind(&job.kind).bind(&job.key).bind(&job.payload).bind(now))
            .await
            .ctx("enqueueing replication job")?;
    }
    tx.commit().await.ctx("committing replication queue")
}

pub async fn finish_replication_job<DB: Backend>(
    pool: &Pool<DB>,
    repo: &RepoKey,
    digest: &Digest,
    row: &ReplicationStatusRow,
    job_id: i64,
    holder: &str,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("finishing a replication job")?;
    upsert_status(&mut *tx, repo, digest, row).await?;
    let n = tx.exec(stmt(crate::jobs::sql::COMPLETE).bind(job_id).bind(holder)).await.ctx("completing the replication job")?;
    tx.commit().await.ctx("committing a finished replication job")?;
    Ok(n > 0)
}

pub async fn set_replication_status<DB: Backend>(
    pool: &Pool<DB>,
    repo: &RepoKey,
    digest: &Digest,
    row: &ReplicationStatusRow,
) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    upsert_status(&mut *conn, repo, digest, row).await
}

pub async fn replication_statuses<DB: Backend>(
    pool: &Pool<DB>,
    repo: &RepoKey,
    digest: &Digest,
) -> Result<Vec<ReplicationStatusRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(
            stmt(
                "SELECT dest_region, dest_registry, status, failure_code, origin, queued_at, updated_at FROM replication_statuses \
                 WHERE account_id = $1 AND region = $2 AND name = $3 AND digest = $4 ORDER BY dest_region, dest_registry",
            )
            .bind_key(repo)
            .bind(digest),
        )
        .await
        .ctx("reading replication statuses")?;
    rows.iter()
        .map(|r| {
            Ok(ReplicationStatusRow {
                destination: DestinationKey { region: r.text("dest_region")?, registry_id: r.text("dest_registry")? },
                status: r.text("status")?,
                failure_code: r.opt_text("failure_code")?,
                origin: r.opt_text("origin")?,
                queued_at: r.int("queued_at")?,
                updated_at: r.int("updated_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .ctx("reading replication statuses")
}

const BACKFILL_COLS: &str = "id, status, request, cursor_repo, cursor_digest, images_queued, created_at, updated_at";

fn backfill_of<R: Columns>(r: &R) -> Result<BackfillRow, sqlx::Error> {
    let cursor = match (r.opt_text("cursor_repo")?, r.opt_text("cursor_digest")?) {
        (Some(repo), Some(digest)) => Some((repo, digest)),
        _ => None,
    };
    Ok(BackfillRow {
        id: r.text("id")?,
        status: r.text("status")?,
        request: r.text("request")?,
        cursor,
        images_queued: r.int("images_queued")?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

pub async fn create_backfill<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    row: &BackfillRow,
    job: &QueuedJob,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("starting a backfill")?;
    tx.lock_table("replication_backfills").await.ctx("locking backfills")?;
    let running = tx
        .opt(
            stmt("SELECT id FROM replication_backfills WHERE account_id = $1 AND region = $2 AND status = 'IN_PROGRESS'")
                .bind(account)
                .bind(region),
        )
        .await
        .ctx("reading backfills")?;
    if running.is_some() {
        return Ok(false);
    }
    tx.exec(
        stmt(
            "INSERT INTO replication_backfills (account_id, region, id, status, request, cursor_repo, cursor_digest, images_queued, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7, $8)",
        )
        .bind(account)
        .bind(region)
        .bind(&row.id)
        .bind(&row.status)
        .bind(&row.request)
        .bind(row.images_queued)
        .bind(row.created_at)
        .bind(row.updated_at),
    )
    .await
    .ctx("starting a backfill")?;
    tx.exec(stmt(crate::jobs::sql::ENQUEUE).bind(&job.kind).bind(&job.key).bind(&job.payload).bind(row.created_at))
        .await
        .ctx("enqueueing the backfill")?;
    tx.commit().await.ctx("committing a backfill")?;
    Ok(true)
}

pub async fn backfill<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str, id: &str) -> Result<Option<BackfillRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(
            stmt(format!("SELECT {BACKFILL_COLS} FROM replication_backfills WHERE account_id = $1 AND region = $2 AND id = $3"))
                .bind(account)
                .bind(region)
                .bind(id),
        )
        .await
        .ctx("reading backfill")?;
    row.as_ref().map(backfill_of).transpose().ctx("reading backfill")
}

pub async fn backfills<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str, limit: u32) -> Result<Vec<BackfillRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(
            stmt(format!(
                "SELECT {BACKFILL_COLS} FROM replication_backfills WHERE account_id = $1 AND region = $2 \
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            ))
            .bind(account)
            .bind(region)
            .bind(i64::from(limit)),
        )
        .await
        .ctx("listing backfills")?;
    rows.iter().map(backfill_of).collect::<Result<_, sqlx::Error>>().ctx("listing backfills")
}

pub async fn advance_backfill<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str, row: &BackfillRow) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let (repo, digest) = match &row.cursor {
        Some((r, d)) => (Some(r.as_str()), Some(d.as_str())),
        None => (None, None),
    };
    let n = conn
        .exec(
            stmt(
                "UPDATE replication_backfills SET status = $1, cursor_repo = $2, cursor_digest = $3, images_queued = $4, \
                 updated_at = $5 WHERE account_id = $6 AND region = $7 AND id = $8 AND status = 'IN_PROGRESS'",
            )
            .bind(&row.status)
            .bind(repo)
            .bind(digest)
            .bind(row.images_queued)
            .bind(row.updated_at)
            .bind(account)
            .bind(region)
            .bind(&row.id),
        )
        .await
        .ctx("advancing backfill")?;
    Ok(n > 0)
}

pub async fn backfill_status_counts<DB: Backend>(pool: &Pool<DB>, origin: &str) -> Result<Vec<(String, i64)>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(stmt("SELECT status, COUNT(*) AS n FROM replication_statuses WHERE origin = $1 GROUP BY status ORDER BY status").bind(origin))
        .await
        .ctx("counting backfill statuses")?;
    rows.iter().map(|r| Ok((r.text("status")?, r.int("n")?))).collect::<Result<_, sqlx::Error>>().ctx("counting backfill statuses")
}

pub async fn account_exists<DB: Backend>(pool: &Pool<DB>, account: &str) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn.opt(stmt("SELECT account_id FROM accounts WHERE account_id = $1").bind(account)).await.ctx("reading account")?;
    Ok(row.is_some())
}

pub async fn remote_registries<DB: Backend>(pool: &Pool<DB>) -> Result<Vec<RemoteRegistryRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(stmt(
            "SELECT registry_id, region, url, auth_kind, username, sealed_secret, insecure, created_at FROM remote_registries \
             ORDER BY registry_id, region",
        ))
        .await
        .ctx("reading remote registries")?;
    rows.iter()
        .map(|r| {
            Ok(RemoteRegistryRow {
                registry_id: r.text("registry_id")?,
                region: r.text("region")?,
                url: r.text("url")?,
                auth_kind: r.text("auth_kind")?,
                username: r.text("username")?,
                sealed_secret: r.opt_bytes("sealed_secret")?,
                insecure: r.flag("insecure")?,
                created_at: r.int("created_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .ctx("reading remote registries")
}

pub async fn put_remote_registry<DB: Backend>(pool: &Pool<DB>, row: &RemoteRegistryRow) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    conn.exec(
        stmt(
            "INSERT INTO remote_registries (registry_id, region, url, auth_kind, username, sealed_secret, insecure, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (registry_id, region) DO UPDATE SET url = excluded.url, \
             auth_kind = excluded.auth_kind, username = excluded.username, sealed_secret = excluded.sealed_secret, \
             insecure = excluded.insecure, created_at = excluded.created_at",
        )
        .bind(&row.registry_id)
        .bind(&row.region)
        .bind(&row.url)
        .bind(&row.auth_kind)
        .bind(&row.username)
        .bind(row.sealed_secret.as_deref())
        .bind(row.insecure)
        .bind(row.created_at),
    )
    .await
    .ctx("writing remote registry")?;
    Ok(())
}

pub async fn delete_remote_registry<DB: Backend>(pool: &Pool<DB>, registry_id: &str, region: &str) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let n = conn
        .exec(stmt("DELETE FROM remote_registries WHERE registry_id = $1 AND region = $2").bind(registry_id).bind(region))
        .await
        .ctx("deleting remote registry")?;
    Ok(n > 0)
}
