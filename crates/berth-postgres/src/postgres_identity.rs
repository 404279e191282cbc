//! Identity rows: accounts, users, access keys, policies, console passwords and signing keys.

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::StoreError;
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::db::DbContext;
use crate::postgres::PostgresMetadataStore;

pub(crate) async fn ensure_account(pool: &PgPool, account: &str, now: Millis) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO accounts (account_id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(account)
        .bind(now)
        .execute(pool)
        .await
        .ctx("creating account")?;
    Ok(())
}

pub(crate) async fn create_user(pool: &PgPool, account: &str, name: &str, arn: &str, now: Millis) -> Result<bool, StoreError> {
    let r = sqlx::query("INSERT INTO users (arn, account_id, name, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
        .bind(arn)
        .bind(account)
        .bind(name)
        .bind(now)
        .execute(pool)
        .await
        .ctx("creating user")?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn user_account(pool: &PgPool, user_arn: &str) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT account_id FROM users WHERE arn = $1").bind(user_arn).fetch_optional(pool).await.ctx("reading user")
}

pub(crate) async fn create_access_key(
    pool: &PgPool,
    access_key_id: &str,
    secret: &str,
    user_arn: &str,
    now: Millis,
) -> Result<(), StoreError> {
    // Nodes starting together on a fresh database all ensure the same admin key: the same key
    // inserted twice is one key; a different key under a taken id is still refused.
    let r = sqlx::query(
        "INSERT INTO access_keys (access_key_id, secret, user_arn, active, created_at) VALUES ($1, $2, $3, TRUE, $4) \
         ON CONFLICT (access_key_id) DO NOTHING",
    )
    .bind(access_key_id)
    .bind(secret)
    .bind(user_arn)
    .bind(now)
    .execute(pool)
    .await
    .ctx("creating access key")?;
    if r.rows_affected() == 0 {
        let same: Option<bool> = sqlx::query_scalar("SELECT secret = $2 AND user_arn = $3 FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .bind(secret)
            .bind(user_arn)
            .fetch_optional(pool)
            .await
            .ctx("creating access key")?;
        if same != Some(true) {
            return Err(StoreError::Db { context: "creating access key: the id is taken", source: sqlx::Error::RowNotFound });
        }
    }
    Ok(())
}

pub(crate) async fn get_access_key(pool: &PgPool, access_key_id: &str) -> Result<Option<AccessKeyRow>, StoreError> {
    let row = sqlx::query(
        "SELECT k.access_key_id, k.secret, k.user_arn, u.account_id, k.active FROM access_keys k JOIN users u ON u.arn = k.user_arn \
         WHERE k.access_key_id = $1",
    )
    .bind(access_key_id)
    .fetch_optional(pool)
    .await
    .ctx("reading access key")?;
    row.map(|r| {
        let c = "reading access key";
        Ok(AccessKeyRow {
            access_key_id: r.try_get("access_key_id").ctx(c)?,
            secret: r.try_get("secret").ctx(c)?,
            user_arn: r.try_get("user_arn").ctx(c)?,
            account: r.try_get("account_id").ctx(c)?,
            active: r.try_get("active").ctx(c)?,
        })
    })
    .transpose()
}

pub(crate) async fn put_user_policy(pool: &PgPool, user_arn: &str, policy_name: &str, document: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO user_policies (user_arn, policy_name, document) VALUES ($1, $2, $3) \
         ON CONFLICT (user_arn, policy_name) DO UPDATE SET document = excluded.document",
    )
    .bind(user_arn)
    .bind(policy_name)
    .bind(document)
    .execute(pool)
    .await
    .ctx("attaching policy")?;
    Ok(())
}

pub(crate) async fn user_policies(pool: &PgPool, user_arn: &str) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query("SELECT policy_name, document FROM user_policies WHERE user_arn = $1 ORDER BY policy_name")
        .bind(user_arn)
        .fetch_all(pool)
        .await
        .ctx("reading user policies")?;
    rows.iter().map(|r| Ok((r.try_get(0).ctx("reading policy")?, r.try_get(1).ctx("reading policy")?))).collect()
}

pub(crate) async fn set_console_password(pool: &PgPool, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE users SET console_password = $1, console_session_epoch = console_session_epoch + 1 WHERE arn = $2")
        .bind(hash)
        .bind(user_arn)
        .execute(pool)
        .await
        .ctx("setting console password")?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn console_password(pool: &PgPool, user_arn: &str) -> Result<Option<String>, StoreError> {
    let hash: Option<Option<String>> = sqlx::query_scalar("SELECT console_password FROM users WHERE arn = $1")
        .bind(user_arn)
        .fetch_optional(pool)
        .await
        .ctx("reading console password")?;
    Ok(hash.flatten())
}

pub(crate) async fn console_session_state(pool: &PgPool, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError> {
    let row: Option<(i64, bool)> = sqlx::query_as("SELECT console_session_epoch, console_password IS NOT NULL FROM users WHERE arn = $1")
        .bind(user_arn)
        .fetch_optional(pool)
        .await
        .ctx("reading console session state")?;
    Ok(row.map(|(epoch, has_password)| ConsoleSessionState { epoch, has_password }))
}

pub(crate) async fn end_console_sessions(pool: &PgPool, user_arn: &str) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE users SET console_session_epoch = console_session_epoch + 1 WHERE arn = $1")
        .bind(user_arn)
        .execute(pool)
        .await
        .ctx("ending console sessions")?;
    Ok(r.rows_affected() > 0)
}

/// Two nodes starting on an empty table must agree on one first key: the table lock (taken only
/// when it looked empty) makes the second wait and then find the first's key.
pub(crate) async fn signing_keys(pool: &PgPool, fresh: &[u8], now: Millis) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut tx = pool.begin().await.ctx("reading signing keys")?;
    let existing = read_signing_keys(&mut tx).await?;
    if !existing.is_empty() {
        return Ok(existing);
    }
    sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await.ctx("locking signing keys")?;
    let existing = read_signing_keys(&mut tx).await?;
    if !existing.is_empty() {
        return Ok(existing);
    }
    sqlx::query("INSERT INTO signing_keys (secret, created_at) VALUES ($1, $2)")
        .bind(fresh)
        .bind(now)
        .execute(&mut *tx)
        .await
        .ctx("creating signing key")?;
    tx.commit().await.ctx("committing signing key")?;
    Ok(vec![fresh.to_vec()])
}

/// The new key and the retirement of old ones commit together, so every node reloading sees
/// either the old set or the new one.
pub(crate) async fn rotate_signing_key(pool: &PgPool, fresh: &[u8], now: Millis, keep: usize) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut tx = pool.begin().await.ctx("rotating signing keys")?;
    sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await.ctx("locking signing keys")?;
    sqlx::query("INSERT INTO signing_keys (secret, created_at) VALUES ($1, $2)")
        .bind(fresh)
        .bind(now)
        .execute(&mut *tx)
        .await
        .ctx("adding a signing key")?;
    sqlx::query("DELETE FROM signing_keys WHERE id NOT IN (SELECT id FROM signing_keys ORDER BY id DESC LIMIT $1)")
        .bind(keep.max(1) as i64)
        .execute(&mut *tx)
        .await
        .ctx("retiring old signing keys")?;
    let kept = read_signing_keys(&mut tx).await?;
    tx.commit().await.ctx("committing signing keys")?;
    Ok(kept)
}

async fn read_signing_keys(tx: &mut Transaction<'_, Postgres>) -> Result<Vec<Vec<u8>>, StoreError> {
    sqlx::query_scalar("SELECT secret FROM signing_keys ORDER BY id DESC").fetch_all(&mut **tx).await.ctx("reading signing keys")
}

#[async_trait]
impl IdentityStore for PostgresMetadataStore {
    async fn ensure_account(&self, account: &str, now: Millis) -> Result<(), StoreError> {
        self.timed("ensure_account", ensure_account(&self.pool, account, now)).await
    }

    async fn create_user(&self, account: &str, name: &str, arn: &str, now: Millis) -> Result<bool, StoreError> {
        self.timed("create_user", create_user(&self.pool, account, name, arn, now)).await
    }

    async fn user_account(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        self.timed("user_account", user_account(&self.pool, user_arn)).await
    }

    async fn create_access_key(&self, access_key_id: &str, secret: &str, user_arn: &str, now: Millis) -> Result<(), StoreError> {
        self.timed("create_access_key", create_access_key(&self.pool, access_key_id, secret, user_arn, now)).await
    }

    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRow>, StoreError> {
        self.timed("get_access_key", get_access_key(&self.pool, access_key_id)).await
    }

    async fn put_user_policy(&self, user_arn: &str, policy_name: &str, document: &str) -> Result<(), StoreError> {
        self.timed("put_user_policy", put_user_policy(&self.pool, user_arn, policy_name, document)).await
    }

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.timed("user_policies", user_policies(&self.pool, user_arn)).await
    }

    async fn set_console_password(&self, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError> {
        self.timed("set_console_password", set_console_password(&self.pool, user_arn, hash)).await
    }

    async fn console_password(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        self.timed("console_password", console_password(&self.pool, user_arn)).await
    }

    async fn console_session_state(&self, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError> {
        self.timed("console_session_state", console_session_state(&self.pool, user_arn)).await
    }

    async fn end_console_sessions(&self, user_arn: &str) -> Result<bool, StoreError> {
        self.timed("end_console_sessions", end_console_sessions(&self.pool, user_arn)).await
    }

    async fn signing_keys(&self, fresh: &[u8], now: Millis) -> Result<Vec<Vec<u8>>, StoreError> {
        self.timed("signing_keys", signing_keys(&self.pool, fresh, now)).await
    }

    async fn rotate_signing_key(&self, fresh: &[u8], now: Millis, keep: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.timed("rotate_signing_key", rotate_signing_key(&self.pool, fresh, now, keep)).await
    }
}
