//! Repositories, their settings, resource tags and policies, and registry policies.

use async_trait::async_trait;

use super::{Millis, RepoKey};
use crate::StoreError;

/// Settings a repository carries (strings as ECR spells them; the service validates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySettings {
    pub tag_mutability: TagMutability,
    /// JSON array of `{filterType, filter}`.
    pub tag_mutability_exclusions: Option<String>,
    pub scan_on_push: bool,
    pub encryption_type: EncryptionType,
    pub kms_key: Option<String>,
}

/// ECR's `imageTagMutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagMutability {
    #[default]
    Mutable,
    Immutable,
    /// Immutable, except tags matching an exclusion filter.
    ImmutableWithExclusion,
    /// Mutable, except tags matching an exclusion filter.
    MutableWithExclusion,
}

impl TagMutability {
    pub const ALL: [TagMutability; 4] =
        [TagMutability::Mutable, TagMutability::Immutable, TagMutability::ImmutableWithExclusion, TagMutability::MutableWithExclusion];

    /// The API's (and the stored) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TagMutability::Mutable => "MUTABLE",
            TagMutability::Immutable => "IMMUTABLE",
            TagMutability::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            TagMutability::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether the setting takes exclusion filters.
    pub fn has_exclusions(self) -> bool {
        matches!(self, TagMutability::ImmutableWithExclusion | TagMutability::MutableWithExclusion)
    }
}

impl std::fmt::Display for TagMutability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ECR's `encryptionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncryptionType {
    #[default]
    Aes256,
    Kms,
    /// Two layers of KMS encryption (ECR's dual-layer server-side encryption).
    KmsDsse,
}

/// The encryption scope a repository's blobs are stored under (see [`crate::BlobObject`]):
/// "aes256" for the registry-managed key, "kms:<key ARN>" and "dsse:<key ARN>" for a KMS key.
/// Fixed at creation, as the encryption settings are. [`STORAGE_SCOPE_SQL`] computes the
/// same string in SQL; the two must agree (a store test checks it).
pub fn storage_scope(encryption: EncryptionType, kms_key: Option<&str>) -> String {
    match encryption {
        EncryptionType::Aes256 => "aes256".to_string(),
        EncryptionType::Kms => format!("kms:{}", kms_key.unwrap_or_default()),
        EncryptionType::KmsDsse => format!("dsse:{}", kms_key.unwrap_or_default()),
    }
}

/// [`storage_scope`] of the repository row aliased `r`, in SQL both backends accept.
pub const STORAGE_SCOPE_SQL: &str = "(CASE r.encryption_type WHEN 'KMS' THEN 'kms:' || COALESCE(r.kms_key, '') \
     WHEN 'KMS_DSSE' THEN 'dsse:' || COALESCE(r.kms_key, '') ELSE 'aes256' END)";

impl EncryptionType {
    pub const ALL: [EncryptionType; 3] = [EncryptionType::Aes256, EncryptionType::Kms, EncryptionType::KmsDsse];

    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionType::Aes256 => "AES256",
            EncryptionType::Kms => "KMS",
            EncryptionType::KmsDsse => "KMS_DSSE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Whether a KMS key protects it (and a `kmsKey` may be named).
    pub fn uses_kms(self) -> bool {
        !matches!(self, EncryptionType::Aes256)
    }
}

impl std::fmt::Display for EncryptionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RepositorySettings {
    /// ECR's CreateRepository defaults (also what a repository created by a push gets).
    pub fn ecr_defaults() -> Self {
        RepositorySettings {
            tag_mutability: TagMutability::Mutable,
            tag_mutability_exclusions: None,
            scan_on_push: false,
            encryption_type: EncryptionType::Aes256,
            kms_key: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RepositoryRow {
    pub id: i64,
    pub key: RepoKey,
    pub created_at: Millis,
    pub settings: RepositorySettings,
    pub policy: Option<String>,
}

#[derive(Debug)]
pub enum DeleteRepositoryOutcome {
    Deleted(Box<RepositoryRow>),
    NotFound,
    /// It holds images and `force` was not given.
    NotEmpty,
}

#[async_trait]
pub trait RepositoryStore: Send + Sync {
    async fn get_repository(&self, key: &RepoKey) -> Result<Option<RepositoryRow>, StoreError>;

    /// Creates the repository; None if it already exists.
    async fn create_repository(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError>;

    /// Repositories of a registry in lexical name order strictly after `after`, at most `limit`.
    async fn list_repositories(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryRow>, StoreError>;

    async fn update_repository_settings(&self, key: &RepoKey, settings: &RepositorySettings) -> Result<bool, StoreError>;

    async fn set_repository_policy(&self, key: &RepoKey, policy: Option<&str>) -> Result<bool, StoreError>;

    async fn delete_repository(&self, key: &RepoKey, force: bool) -> Result<DeleteRepositoryOutcome, StoreError>;

    async fn put_resource_tags(&self, key: &RepoKey, tags: &[(String, String)]) -> Result<bool, StoreError>;

    async fn remove_resource_tags(&self, key: &RepoKey, keys: &[String]) -> Result<bool, StoreError>;

    async fn list_resource_tags(&self, key: &RepoKey) -> Result<Vec<(String, String)>, StoreError>;

    async fn get_registry_policy(&self, account: &str, region: &str) -> Result<Option<String>, StoreError>;

    async fn set_registry_policy(&self, account: &str, region: &str, policy: Option<&str>) -> Result<bool, StoreError>;
}
