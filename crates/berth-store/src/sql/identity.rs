//! Accounts, users, access keys, identity policies, console sessions and token signing keys.
//! Only creating an access key differs between the backends (see each backend).

use sqlx::{FromRow, Pool};

use super::repos::acquire;
use super::{decode_opt, stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::StoreError;

impl<'r, R: Columns> FromRow<'r, R> for AccessKeyRow {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(AccessKeyRow {
            access_key_id: r.text("access_key_id")?,
            secret: r.text("secret")?,
            user_arn: r.text("user_arn")?,
            account: r.text("account_id")?,
            active: r.flag("active")?,
        })
    }
}

pub async fn ensure_account<DB: Backend>(pool: &Pool<DB>, account: &str, now: Millis) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    conn.exec(stmt("INSERT INTO accounts (account_id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING").bind(account).bind(now))
        .await
        .ctx("creating account")?;
    Ok(())
}

pub async fn create_user<DB: Backend>(pool: &Pool<DB>, account: &str, name: &str, arn: &str, now: Millis) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let created = conn
        .exec(
            stmt("INSERT INTO users (arn, account_id, name, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                .bind(arn)
                .bind(account)
                .bind(name)
                .bind(now),
        )
        .await
        .ctx("creating user")?;
    Ok(created > 0)
}

pub async fn user_account<DB: Backend>(pool: &Pool<DB>, user_arn: &str) -> Result<Option<String>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn.opt(stmt("SELECT account_id FROM users WHERE arn = $1").bind(user_arn)).await.ctx("reading user")?;
    row.map(|r| r.text("account_id")).transpose().ctx("reading user")
}

pub async fn get_access_key<DB: Backend>(pool: &Pool<DB>, access_key_id: &str) -> Result<Option<AccessKeyRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(
            stmt(
                "SELECT k.access_key_id, k.secret, k.user_arn, u.account_id, k.active FROM access_keys k JOIN users u ON u.arn = k.user_arn \
                 WHERE k.access_key_id = $1",
            )
            .bind(access_key_id),
        )
        .await
        .ctx("reading access key")?;
    decode_opt(row, "reading access key")
}

pub async fn put_user_policy<DB: Backend>(pool: &Pool<DB>, user_arn: &str, policy_name: &str, document: &str) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    conn.exec(
        stmt(
            "INSERT INTO user_policies (user_arn, policy_name, document) VALUES ($1, $2, $3) \
             ON CONFLICT (user_arn, policy_name) DO UPDATE SET document = excluded.document",
        )
        .bind(user_arn)
        .bind(policy_name)
        .bind(document),
    )
    .await
    .ctx("attaching policy")?;
    Ok(())
}

pub async fn user_policies<DB: Backend>(pool: &Pool<DB>, user_arn: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(stmt("SELECT policy_name, document FROM user_policies WHERE user_arn = $1 ORDER BY policy_name").bind(user_arn))
        .await
        .ctx("reading user policies")?;
    rows.iter().map(|r| Ok((r.text("policy_name")?, r.text("document")?))).collect::<Result<_, sqlx::Error>>().ctx("reading policy")
}

pub async fn set_console_password<DB: Backend>(pool: &Pool<DB>, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let changed = conn
        .exec(
            stmt("UPDATE users SET console_password = $1, console_session_epoch = console_session_epoch + 1 WHERE arn = $2")
                .bind(hash)
                .bind(user_arn),
        )
        .await
        .ctx("setting console password")?;
    Ok(changed > 0)
}

pub async fn console_password<DB: Backend>(pool: &Pool<DB>, user_arn: &str) -> Result<Option<String>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn.opt(stmt("SELECT console_password FROM users WHERE arn = $1").bind(user_arn)).await.ctx("reading console password")?;
    Ok(row.map(|r| r.opt_text("console_password")).transpose().ctx("reading console password")?.flatten())
}

pub async fn console_session_state<DB: Backend>(pool: &Pool<DB>, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(stmt("SELECT console_session_epoch, console_password IS NOT NULL AS has_password FROM users WHERE arn = $1").bind(user_arn))
        .await
        .ctx("reading console session state")?;
    row.map(|r| Ok(ConsoleSessionState { epoch: r.int("console_session_epoch")?, has_password: r.flag("has_password")? }))
        .transpose()
        .ctx("reading console session state")
}

pub async fn end_console_sessions<DB: Backend>(pool: &Pool<DB>, user_arn: &str) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let changed = conn
        .exec(stmt("UPDATE users SET console_session_epoch = console_session_epoch + 1 WHERE arn = $1").bind(user_arn))
        .await
        .ctx("ending console sessions")?;
    Ok(changed > 0)
}

async fn read_signing_keys<C: Conn>(conn: &mut C) -> Result<Vec<Vec<u8>>, StoreError> {
    let rows = conn.all(stmt("SELECT secret FROM signing_keys ORDER BY id DESC")).await.ctx("reading signing keys")?;
    rows.iter().map(|r| r.bytes("secret")).collect::<Result<_, _>>().ctx("reading signing keys")
}

async fn add_signing_key<C: Conn>(conn: &mut C, fresh: &[u8], now: Millis, context: &'static str) -> Result<(), StoreError> {
    conn.exec(stmt("INSERT INTO signing_keys (secret, created_at) VALUES ($1, $2)").bind(fresh).bind(now)).await.ctx(context)?;
    Ok(())
}

/// When the newest signing key (the one new tokens are signed with) was created; None before
/// the first start.
pub async fn current_signing_key_created<DB: Backend>(pool: &Pool<DB>) -> Result<Option<Millis>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn.opt(stmt("SELECT created_at FROM signing_keys ORDER BY id DESC LIMIT 1")).await.ctx("reading signing keys")?;
    row.map(|r| r.int("created_at")).transpose().ctx("reading signing keys")
}

/// Two nodes starting on an empty table must agree on one first key: the table lock (taken only
/// when it looked empty) makes the second wait and then find the first's key.
pub async fn signing_keys<DB: Backend>(pool: &Pool<DB>, fresh: &[u8], now: Millis) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut tx = pool.begin().await.ctx("reading signing keys")?;
    let existing = read_signing_keys(&mut *tx).await?;
    if !existing.is_empty() {
        return Ok(existing);
    }
    tx.lock_table("signing_keys").await.ctx("locking signing keys")?;
    let existing = read_signing_keys(&mut *tx).await?;
    if !existing.is_empty() {
        return Ok(existing);
    }
    add_signing_key(&mut *tx, fresh, now, "creating signing key").await?;
    tx.commit().await.ctx("committing signing key")?;
    Ok(vec![fresh.to_vec()])
}

/// The new key and the retirement of old ones commit together, so every node reloading sees
/// either the old set or the new one.
pub async fn rotate_signing_key<DB: Backend>(pool: &Pool<DB>, fresh: &[u8], now: Millis, keep: usize) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut tx = pool.begin().await.ctx("rotating signing keys")?;
    tx.lock_table("signing_keys").await.ctx("locking signing keys")?;
    add_signing_key(&mut *tx, fresh, now, "adding a signing key").await?;
    tx.exec(
        stmt("DELETE FROM signing_keys WHERE id NOT IN (SELECT id FROM signing_keys ORDER BY id DESC LIMIT $1)").bind(keep.max(1) as i64),
    )
    .await
    .ctx("retiring old signing keys")?;
    let kept = read_signing_keys(&mut *tx).await?;
    tx.commit().await.ctx("committing signing keys")?;
    Ok(kept)
}
