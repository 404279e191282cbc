//! Webhooks and their delivery history: every statement is the same on both backends.

use sqlx::Pool;

use super::repos::acquire;
use super::{stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::StoreError;

const WEBHOOK_COLS: &str = "id, account_id, url, detail_types, sealed_secret, created_at, last_error, last_error_at, last_success_at";
const DELIVERY_COLS: &str = "webhook_id, event_id, detail_type, attempt, at, status_code, error, outcome";

/// Detail-types are stored one a line ("" for every one): they never hold a line break (the
/// service accepts only ECR's names).
fn join_types(types: &[String]) -> String {
    types.join("\n")
}

fn split_types(s: &str) -> Vec<String> {
    s.split('\n').filter(|t| !t.is_empty()).map(str::to_string).collect()
}

fn webhook_from<R: Columns>(r: &R) -> Result<WebhookRow, sqlx::Error> {
    Ok(WebhookRow {
        id: r.text("id")?,
        account: r.text("account_id")?,
        url: r.text("url")?,
        detail_types: split_types(&r.text("detail_types")?),
        sealed_secret: r.bytes("sealed_secret")?,
        created_at: r.int("created_at")?,
        last_error: r.opt_text("last_error")?,
        last_error_at: r.opt_int("last_error_at")?,
        last_success_at: r.opt_int("last_success_at")?,
    })
}

fn delivery_from<R: Columns>(r: &R) -> Result<DeliveryRow, sqlx::Error> {
    Ok(DeliveryRow {
        webhook_id: r.text("webhook_id")?,
        event_id: r.text("event_id")?,
        detail_type: r.text("detail_type")?,
        attempt: r.int("attempt")?,
        at: r.int("at")?,
        status_code: r.opt_int("status_code")?,
        error: r.opt_text("error")?,
        outcome: r.text("outcome")?,
    })
}

pub async fn put_webhook<DB: Backend>(pool: &Pool<DB>, row: &WebhookRow) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    conn.exec(
        stmt(format!("INSERT INTO webhooks ({WEBHOOK_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(&row.id)
            .bind(&row.account)
            .bind(&row.url)
            .bind(join_types(&row.detail_types))
            .bind(row.sealed_secret.as_slice())
            .bind(row.created_at)
            .bind(&row.last_error)
            .bind(row.last_error_at)
            .bind(row.last_success_at),
    )
    .await
    .ctx("adding a webhook")?;
    Ok(())
}

pub async fn webhook<DB: Backend>(pool: &Pool<DB>, id: &str) -> Result<Option<WebhookRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn.opt(stmt(format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE id = $1")).bind(id)).await.ctx("reading a webhook")?;
    row.as_ref().map(webhook_from).transpose().ctx("reading a webhook")
}

pub async fn webhooks<DB: Backend>(pool: &Pool<DB>, account: &str) -> Result<Vec<WebhookRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(stmt(format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE account_id = $1 ORDER BY created_at, id")).bind(account))
        .await
        .ctx("listing webhooks")?;
    rows.iter().map(webhook_from).collect::<Result<_, _>>().ctx("listing webhooks")
}

pub async fn delete_webhook<DB: Backend>(pool: &Pool<DB>, account: &str, id: &str) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("deleting a webhook")?;
    tx.exec(stmt("DELETE FROM webhook_deliveries WHERE webhook_id = $1").bind(id)).await.ctx("deleting a webhook's history")?;
    let n =
        tx.exec(stmt("DELETE FROM webhooks WHERE account_id = $1 AND id = $2").bind(account).bind(id)).await.ctx("deleting a webhook")?;
    tx.commit().await.ctx("committing a webhook's deletion")?;
    Ok(n > 0)
}

pub async fn queue_deliveries<DB: Backend>(pool: &Pool<DB>, jobs: &[QueuedJob], now: Millis) -> Result<(), StoreError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.ctx("queueing webhook deliveries")?;
    enqueue_in(&mut *tx, jobs, now).await?;
    tx.commit().await.ctx("committing webhook deliveries")
}

/// Adds outbox jobs inside the caller's transaction (as `JobStore::enqueue_job`, due at `now`):
/// the change that announces them and the jobs commit together or not at all.
pub(crate) async fn enqueue_in<C: Conn>(conn: &mut C, jobs: &[QueuedJob], now: Millis) -> Result<(), StoreError> {
    for job in jobs {
        conn.exec(stmt(crate::jobs::sql::ENQUEUE).bind(&job.kind).bind(&job.key).bind(&job.payload).bind(now))
            .await
            .ctx("enqueueing an outbox job")?;
    }
    Ok(())
}

pub async fn record_delivery<DB: Backend>(pool: &Pool<DB>, row: &DeliveryRow, keep: u32) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("recording a webhook delivery")?;
    let last = match &row.error {
        None => stmt("UPDATE webhooks SET last_success_at = $1 WHERE id = $2").bind(row.at).bind(&row.webhook_id),
        Some(e) => stmt("UPDATE webhooks SET last_error = $1, last_error_at = $2 WHERE id = $3")
            .bind(e.as_str())
            .bind(row.at)
            .bind(&row.webhook_id),
    };
    if tx.exec(last).await.ctx("recording a webhook's last delivery")? == 0 {
        return Ok(false);
    }
    tx.exec(
        stmt(format!("INSERT INTO webhook_deliveries ({DELIVERY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(&row.webhook_id)
            .bind(&row.event_id)
            .bind(&row.detail_type)
            .bind(row.attempt)
            .bind(row.at)
            .bind(row.status_code)
            .bind(&row.error)
            .bind(&row.outcome),
    )
    .await
    .ctx("recording a webhook delivery")?;
    // The history is bounded: only the newest `keep` attempts of the webhook stay.
    tx.exec(
        stmt(
            "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND id NOT IN \
             (SELECT id FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(&row.webhook_id)
        .bind(i64::from(keep)),
    )
    .await
    .ctx("trimming a webhook's history")?;
    tx.commit().await.ctx("committing a webhook delivery")?;
    Ok(true)
}

pub async fn deliveries<DB: Backend>(pool: &Pool<DB>, webhook_id: &str, limit: u32) -> Result<Vec<DeliveryRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(
            stmt(format!("SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2"))
                .bind(webhook_id)
                .bind(i64::from(limit)),
        )
        .await
        .ctx("listing webhook deliveries")?;
    rows.iter().map(delivery_from).collect::<Result<_, _>>().ctx("listing webhook deliveries")
}
