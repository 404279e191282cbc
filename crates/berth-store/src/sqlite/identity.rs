//! SQLite: Accounts, users, access keys, policies, console passwords and signing keys.

use async_trait::async_trait;

use super::*;

pub(crate) async fn set_console_password(writer: &SqlitePool, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE users SET console_password = ?, console_session_epoch = console_session_epoch + 1 WHERE arn = ?")
        .bind(hash)
        .bind(user_arn)
        .execute(writer)
        .await
        .ctx("setting console password")?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn console_password(reader: &SqlitePool, user_arn: &str) -> Result<Option<String>, StoreError> {
    let hash: Option<Option<String>> = sqlx::query_scalar("SELECT console_password FROM users WHERE arn = ?")
        .bind(user_arn)
        .fetch_optional(reader)
        .await
        .ctx("reading console password")?;
    Ok(hash.flatten())
}

pub(crate) async fn console_session_state(reader: &SqlitePool, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError> {
    let row: Option<(i64, bool)> = sqlx::query_as("SELECT console_session_epoch, console_password IS NOT NULL FROM users WHERE arn = ?")
        .bind(user_arn)
        .fetch_optional(reader)
        .await
        .ctx("reading console session state")?;
    Ok(row.map(|(epoch, has_password)| ConsoleSessionState { epoch, has_password }))
}

pub(crate) async fn end_console_sessions(writer: &SqlitePool, user_arn: &str) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE users SET console_session_epoch = console_session_epoch + 1 WHERE arn = ?")
        .bind(user_arn)
        .execute(writer)
        .await
        .ctx("ending console sessions")?;
    Ok(r.rows_affected() > 0)
}

#[async_trait]
impl IdentityStore for SqliteMetadataStore {
    async fn ensure_account(&self, account: &str, now: Millis) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO accounts (account_id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(account)
            .bind(now)
            .execute(&self.writer)
            .await
            .ctx("creating account")?;
        Ok(())
    }

    async fn create_user(&self, account: &str, name: &str, arn: &str, now: Millis) -> Result<bool, StoreError> {
        let r = sqlx::query("INSERT INTO users (arn, account_id, name, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(arn)
            .bind(account)
            .bind(name)
            .bind(now)
            .execute(&self.writer)
            .await
            .ctx("creating user")?;
        Ok(r.rows_affected() > 0)
    }

    async fn user_account(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT account_id FROM users WHERE arn = ?")
            .bind(user_arn)
            .fetch_optional(&self.reader)
            .await
            .ctx("reading user")
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
        let row = sqlx::query(
            "SELECT k.access_key_id, k.secret, k.user_arn, u.account_id, k.active FROM access_keys k JOIN users u ON u.arn = k.user_arn WHERE k.access_key_id = ?",
        )
        .bind(access_key_id)
        .fetch_optional(&self.reader)
        .await
        .ctx("reading access key")?;
        row.map(|r| {
            let c = "reading access key";
            let active: i64 = r.try_get("active").ctx(c)?;
            Ok(AccessKeyRow {
                access_key_id: r.try_get("access_key_id").ctx(c)?,
                secret: r.try_get("secret").ctx(c)?,
                user_arn: r.try_get("user_arn").ctx(c)?,
                account: r.try_get("account_id").ctx(c)?,
                active: active != 0,
            })
        })
        .transpose()
    }

    async fn put_user_policy(&self, user_arn: &str, policy_name: &str, document: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_policies (user_arn, policy_name, document) VALUES (?, ?, ?) ON CONFLICT (user_arn, policy_name) DO UPDATE SET document = excluded.document",
        )
        .bind(user_arn)
        .bind(policy_name)
        .bind(document)
        .execute(&self.writer)
        .await
        .ctx("attaching policy")?;
        Ok(())
    }

    async fn set_console_password(&self, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError> {
        set_console_password(&self.writer, user_arn, hash).await
    }

    async fn console_password(&self, user_arn: &str) -> Result<Option<String>, StoreError> {
        console_password(&self.reader, user_arn).await
    }

    async fn console_session_state(&self, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError> {
        console_session_state(&self.reader, user_arn).await
    }

    async fn end_console_sessions(&self, user_arn: &str) -> Result<bool, StoreError> {
        end_console_sessions(&self.writer, user_arn).await
    }

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT policy_name, document FROM user_policies WHERE user_arn = ? ORDER BY policy_name")
            .bind(user_arn)
            .fetch_all(&self.reader)
            .await
            .ctx("reading user policies")?;
        rows.iter().map(|r| Ok((r.try_get(0).ctx("reading policy")?, r.try_get(1).ctx("reading policy")?))).collect()
    }

    async fn signing_keys(&self, fresh: &[u8], now: Millis) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut tx = self.writer.begin().await.ctx("reading signing keys")?;
        let existing: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT secret FROM signing_keys ORDER BY id DESC").fetch_all(&mut *tx).await.ctx("reading signing keys")?;
        if !existing.is_empty() {
            return Ok(existing);
        }
        sqlx::query("INSERT INTO signing_keys (secret, created_at) VALUES (?, ?)")
            .bind(fresh)
            .bind(now)
            .execute(&mut *tx)
            .await
            .ctx("creating signing key")?;
        tx.commit().await.ctx("committing signing key")?;
        Ok(vec![fresh.to_vec()])
    }

    async fn rotate_signing_key(&self, fresh: &[u8], now: Millis, keep: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut tx = self.writer.begin().await.ctx("rotating signing keys")?;
        sqlx::query("INSERT INTO signing_keys (secret, created_at) VALUES (?, ?)")
            .bind(fresh)
            .bind(now)
            .execute(&mut *tx)
            .await
            .ctx("adding a signing key")?;
        sqlx::query("DELETE FROM signing_keys WHERE id NOT IN (SELECT id FROM signing_keys ORDER BY id DESC LIMIT ?)")
            .bind(keep.max(1) as i64)
            .execute(&mut *tx)
            .await
            .ctx("retiring old signing keys")?;
        let kept: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT secret FROM signing_keys ORDER BY id DESC").fetch_all(&mut *tx).await.ctx("reading signing keys")?;
        tx.commit().await.ctx("committing signing keys")?;
        Ok(kept)
    }
}
