//! Identity rows: accounts, users, access keys, policies, console passwords and signing keys.
//! The statements are shared with SQLite (`berth_store::sql::identity`) but for creating an
//! access key.

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::sql::identity as sql;
use berth_store::StoreError;
use sqlx::PgPool;

use crate::db::DbContext;
use crate::postgres::PostgresMetadataStore;

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

#[async_trait]
impl IdentityStore for PostgresMetadataStore {
    async fn ensure_account(&self, account: &str, now: Millis) -> Result<(), StoreError> {
        self.timed("ensure_account", sql::ensure_account(&self.pool, account, now)).await
    }

    async fn create_user(&self, account: &str, name: &str, arn: &str, now: Millis) -> Result<bool, StoreError> {
        self.timed("create_user", sql::create_user(&self.pool, account, name, arn, now)).await
    }

    async fn user_account(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        self.timed("user_account", sql::user_account(&self.pool, user_arn)).await
    }

    async fn create_access_key(&self, access_key_id: &str, secret: &str, user_arn: &str, now: Millis) -> Result<(), StoreError> {
        self.timed("create_access_key", create_access_key(&self.pool, access_key_id, secret, user_arn, now)).await
    }

    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRow>, StoreError> {
        self.timed("get_access_key", sql::get_access_key(&self.pool, access_key_id)).await
    }

    async fn put_user_policy(&self, user_arn: &str, policy_name: &str, document: &str) -> Result<(), StoreError> {
        self.timed("put_user_policy", sql::put_user_policy(&self.pool, user_arn, policy_name, document)).await
    }

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.timed("user_policies", sql::user_policies(&self.pool, user_arn)).await
    }

    async fn set_console_password(&self, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError> {
        self.timed("set_console_password", sql::set_console_password(&self.pool, user_arn, hash)).await
    }

    async fn console_password(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        self.timed("console_password", sql::console_password(&self.pool, user_arn)).await
    }

    async fn console_session_state(&self, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError> {
        self.timed("console_session_state", sql::console_session_state(&self.pool, user_arn)).await
    }

    async fn end_console_sessions(&self, user_arn: &str) -> Result<bool, StoreError> {
        self.timed("end_console_sessions", sql::end_console_sessions(&self.pool, user_arn)).await
    }

    async fn signing_keys(&self, fresh: &[u8], now: Millis) -> Result<Vec<Vec<u8>>, StoreError> {
        self.timed("signing_keys", sql::signing_keys(&self.pool, fresh, now)).await
    }

    async fn rotate_signing_key(&self, fresh: &[u8], now: Millis, keep: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.timed("rotate_signing_key", sql::rotate_signing_key(&self.pool, fresh, now, keep)).await
    }

    async fn current_signing_key_created(&self) -> Result<Option<Millis>, StoreError> {
        self.timed("current_signing_key_created", sql::current_signing_key_created(&self.pool)).await
    }
}
