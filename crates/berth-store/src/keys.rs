//! The key service's rows: KMS keys (one JSON document each, written whole) and aliases.
//!
//! The service owns the document's shape (berth-core's `kms` module); the store keeps it
//! opaque, so a new key attribute is a service change, not a schema migration. Key material
//! inside the document is wrapped by the root key before it reaches the store.

use async_trait::async_trait;

use crate::{Millis, StoreError};

/// One key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The key id (a UUID), unique across accounts and regions.
    pub key_id: String,
    pub account: String,
    pub region: String,
    /// The service's JSON document.
    pub doc: String,
    /// Bumped by every update; an update names the revision it read (optimistic concurrency,
    /// so two concurrent changes of one key never silently drop one).
    pub revision: i64,
}

/// One alias (`alias/<name>`) of an account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRow {
    pub alias: String,
    pub key_id: String,
    pub created: Millis,
    pub updated: Millis,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key. False when the id exists.
    async fn create_key(&self, row: &KeyRow) -> Result<bool, StoreError>;
    async fn get_key(&self, key_id: &str) -> Result<Option<KeyRow>, StoreError>;
    /// Replaces the document if the stored revision is still `row.revision`; the stored
    /// revision becomes `row.revision + 1`. False when another change came first.
    async fn update_key(&self, row: &KeyRow) -> Result<bool, StoreError>;
    /// The keys of an account and region in key id order, after `after`.
    async fn list_keys(&self, account: &str, region: &str, after: Option<&str>, limit: u32) -> Result<Vec<KeyRow>, StoreError>;
    /// Creates (`replace` false: only if absent) or repoints (`replace` true: only if present)
    /// an alias. False when that condition does not hold.
    async fn put_alias(&self, account: &str, region: &str, alias: &AliasRow, replace: bool) -> Result<bool, StoreError>;
    async fn delete_alias(&self, account: &str, region: &str, alias: &str) -> Result<bool, StoreError>;
    async fn get_alias(&self, account: &str, region: &str, alias: &str) -> Result<Option<AliasRow>, StoreError>;
    /// Every alias of an account and region, by name.
    async fn list_aliases(&self, account: &str, region: &str) -> Result<Vec<AliasRow>, StoreError>;
}
