//! SQLite: accounts, users, access keys, policies, console passwords and signing keys (the
//! statements are shared: `crate::sql::identity`, all but creating an access key).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::error::DbContext;
use crate::meta::*;
use crate::sql::identity as sql;
use crate::StoreError;

#[async_trait]
impl IdentityStore for SqliteMetadataStore {
    async fn ensure_account(&self, account: &str, now: Millis) -> Result<(), StoreError> {
        sql::ensure_account(&self.writer, account, now).await
    }

    async fn create_user(&self, account: &str, name: &str, arn: &str, now: Millis) -> Result<bool, StoreError> {
        sql::create_user(&self.writer, account, name, arn, now).await
    }

    async fn user_account(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        sql::user_account(&self.reader, user_arn).await
    }

    async fn create_access_key(&self, access_key_id: &str, secret: &str, user_arn: &str, now: Millis) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO access_keys (access_key_id, secret, user_arn, active, created_at) VALUES (?, ?, ?, 1, ?)")
            .bind(access_key_id)
            .bind(secret)
            .bind(user_arn)
            .bind(now)
            .execute(&self.writer)
            .await
            .ctx("creating access key")?;
        Ok(())
    }

    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRow>, StoreError> {
        sql::get_access_key(&self.reader, access_key_id).await
    }

    async fn put_user_policy(&self, user_arn: &str, policy_name: &str, document: &str) -> Result<(), StoreError> {
        sql::put_user_policy(&self.writer, user_arn, policy_name, document).await
    }

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        sql::user_policies(&self.reader, user_arn).await
    }

    async fn set_console_password(&self, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError> {
        sql::set_console_password(&self.writer, user_arn, hash).await
    }

    async fn console_password(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        sql::console_password(&self.reader, user_arn).await
    }

    async fn console_session_state(&self, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError> {
        sql::console_session_state(&self.reader, user_arn).await
    }

    async fn end_console_sessions(&self, user_arn: &str) -> Result<bool, StoreError> {
        sql::end_console_sessions(&self.writer, user_arn).await
    }

    async fn signing_keys(&self, fresh: &[u8], now: Millis) -> Result<Vec<Vec<u8>>, StoreError> {
        sql::signing_keys(&self.writer, fresh, now).await
    }

    async fn rotate_signing_key(&self, fresh: &[u8], now: Millis, keep: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        sql::rotate_signing_key(&self.writer, fresh, now, keep).await
    }

    async fn current_signing_key_created(&self) -> Result<Option<Millis>, StoreError> {
        sql::current_signing_key_created(&self.reader).await
    }
}
