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
             queued_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (account_id, region, name, digest, dest_region, dest_registry) DO UPDATE SET status = excluded.status, \
             failure_code = excluded.failure_code, queued_at = excluded.queued_at, updated_at = excluded.updated_at",
        )
        .bind_key(repo)
        .bind(digest)
        .bind(&row.destination.region)
        .bind(&row.destination.registry_id)
        .bind(&row.status)
        .bind(&row.failure_code)
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
                "SELECT dest_region, dest_registry, status, failure_code, queued_at, updated_at FROM replication_statuses \
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
                queued_at: r.int("queued_at")?,
                updated_at: r.int("updated_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .ctx("reading replication statuses")
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
