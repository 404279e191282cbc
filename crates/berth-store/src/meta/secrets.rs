//! Secrets Manager secrets (`berth_core::secrets`): one row per secret, its versions and
//! settings in the service's JSON document (values sealed by the key service before they
//! reach the store), written with an optimistic revision so concurrent changes never drop one.

use async_trait::async_trait;

use super::Millis;
use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub account: String,
    pub region: String,
    /// Unique within (account, region).
    pub name: String,
    /// Unique everywhere (the name and six random characters).
    pub arn: String,
    /// The service's document (description, key, tags, sealed versions); opaque here.
    pub doc: String,
    /// When a scheduled deletion falls due; None while the secret is not being deleted.
    pub deletion_date: Option<Millis>,
    pub created_at: Millis,
    /// The last change (DescribeSecret's LastChangedDate).
    pub updated_at: Millis,
    /// Bumped by every update; an update names the revision it read.
    pub revision: i64,
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Inserts a secret (`row.revision` is ignored: it starts at 0); false when its name is
    /// taken in the account and region.
    async fn create_secret(&self, row: &SecretRow) -> Result<bool, StoreError>;

    async fn secret_by_name(&self, account: &str, region: &str, name: &str) -> Result<Option<SecretRow>, StoreError>;

    async fn secret_by_arn(&self, arn: &str) -> Result<Option<SecretRow>, StoreError>;

    /// Replaces the document, deletion date and `updated_at` of the secret `row.arn` when its
    /// revision is still `row.revision` (then it becomes `row.revision + 1`); false otherwise.
    async fn update_secret(&self, row: &SecretRow) -> Result<bool, StoreError>;

    /// Removes the secret when its revision is still `revision`; false otherwise.
    async fn delete_secret(&self, arn: &str, revision: i64) -> Result<bool, StoreError>;

    /// An account and region's secrets in name (byte) order strictly after `after`, at most `limit`.
    async fn list_secrets(&self, account: &str, region: &str, after: Option<&str>, limit: u32) -> Result<Vec<SecretRow>, StoreError>;
}
