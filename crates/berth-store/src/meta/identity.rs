//! Accounts, users, access keys, identity policies, console sessions and token signing keys.

use async_trait::async_trait;

use super::Millis;
use crate::StoreError;

/// What checking a console session needs of its user, in one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSessionState {
    /// Sessions issued in an earlier epoch have ended (sign-out, password change).
    pub epoch: i64,
    pub has_password: bool,
}

#[derive(Debug, Clone)]
pub struct AccessKeyRow {
    pub access_key_id: String,
    pub secret: String,
    pub user_arn: String,
    pub account: String,
    pub active: bool,
}

#[async_trait]
pub trait IdentityStore: Send + Sync {
    async fn ensure_account(&self, account: &str, now: Millis) -> Result<(), StoreError>;

    /// Creates a user; false if it exists.
    async fn create_user(&self, account: &str, name: &str, arn: &str, now: Millis) -> Result<bool, StoreError>;

    /// The account of a user, if the user exists.
    async fn user_account(&self, user_arn: &str) -> Result<Option<String>, StoreError>;

    async fn create_access_key(&self, access_key_id: &str, secret: &str, user_arn: &str, now: Millis) -> Result<(), StoreError>;

    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRow>, StoreError>;

    async fn put_user_policy(&self, user_arn: &str, policy_name: &str, document: &str) -> Result<(), StoreError>;

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<(String, String)>, StoreError>;

    /// Sets or clears a user's console password hash and ends the user's console sessions (moves
    /// the session epoch on) in the same write; false if the user does not exist.
    async fn set_console_password(&self, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError>;

    async fn console_password(&self, user_arn: &str) -> Result<Option<String>, StoreError>;

    /// The user's console session epoch and whether a console password is set; None: no such user.
    async fn console_session_state(&self, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError>;

    /// Ends every console session of the user (moves the epoch on); false if the user does not exist.
    async fn end_console_sessions(&self, user_arn: &str) -> Result<bool, StoreError>;

    /// All token signing keys, newest first; creates the first one from `fresh` if there are none.
    async fn signing_keys(&self, fresh: &[u8], now: Millis) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Adds `fresh` as the newest signing key and keeps only the newest `keep` keys (tokens
    /// signed with a dropped key stop verifying); returns the kept keys, newest first.
    async fn rotate_signing_key(&self, fresh: &[u8], now: Millis, keep: usize) -> Result<Vec<Vec<u8>>, StoreError>;

    /// When the newest signing key was created (its age is what a rotation policy watches);
    /// None while there is none.
    async fn current_signing_key_created(&self) -> Result<Option<Millis>, StoreError>;
}
