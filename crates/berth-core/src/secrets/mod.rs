//! Secrets Manager's subset ECR needs (the pull-through cache's upstream credentials are a
//! secret named `ecr-pullthroughcache/…`): secrets per account and region, their versions and
//! staging labels, scheduled deletion with a recovery window, tags.
//!
//! Every value is sealed by the key service (`kms/secret_keys.rs`) under the account's AWS
//! managed `alias/aws/secretsmanager` or the secret's KMS key, bound to the secret's ARN and
//! version, before it reaches the store (`berth_store::SecretStore`: one row per secret, its
//! settings and sealed versions in a JSON document written with an optimistic revision).
//! A value is opened only to answer GetSecretValue (or the pull-through cache, acting as the
//! service) and never appears in an error, a log line or a `Debug` output ([`SecretValue`]).
//!
//! Authorization: `secretsmanager:<Action>` on the secret's ARN through `Registry::authorize`
//! (ListSecrets on `*`); a secret that does not exist is authorized on the ARN its name would
//! have, so a refused caller learns nothing about which names exist.
//!
//! Deletion: DeleteSecret schedules the purge after a 7–30 day recovery window (default 30);
//! meanwhile the secret answers InvalidRequestException to value reads and writes, and
//! RestoreSecret cancels. The purge is lazy: the first lookup or listing that meets a secret
//! past its deletion date deletes the row (a name is then free again, under a new ARN).

mod list;
mod ops;
mod pull_through;

use berth_store::{Millis, SecretRow};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::auth::{Principal, Resource};
use crate::kms::KmsError;
use crate::{Registry, RegistryError, RegistryRef};

pub use list::{ListSecrets, SecretFilter};
pub use ops::{NewSecret, NewValue};
pub use pull_through::PullThroughCredentials;

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
const DAY_MS: i64 = 86_400_000;
/// Secrets Manager's tag limit per secret.
const MAX_TAGS: usize = 50;
/// An update that loses a race re-reads and tries again this many times.
const UPDATE_ATTEMPTS: usize = 5;

/// What the service can refuse, by Secrets Manager's exception names (the adapter maps each
/// to its `__type` in one place). No message ever holds a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidNextToken(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// The key service would not seal a value (the key is disabled, missing, …).
    #[error("{0}")]
    Encryption(String),
    /// The key service would not open a value.
    #[error("{0}")]
    Decryption(String),
    #[error("{0}")]
    Internal(String),
    /// Authentication, authorization and storage failures, as everywhere else.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<berth_store::StoreError> for SecretsError {
    fn from(e: berth_store::StoreError) -> Self {
        SecretsError::Registry(RegistryError::Store(e))
    }
}

pub type SecretsResult<T> = Result<T, SecretsError>;

/// A secret's value. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    String(Zeroizing<String>),
    Binary(Zeroizing<Vec<u8>>),
}

impl SecretValue {
    fn bytes(&self) -> &[u8] {
        match self {
            SecretValue::String(s) => s.as_bytes(),
            SecretValue::Binary(b) => b,
        }
    }

    fn kind(&self) -> ValueKind {
        match self {
            SecretValue::String(_) => ValueKind::String,
            SecretValue::Binary(_) => ValueKind::Binary,
        }
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretValue::String(_) => f.write_str("SecretString(<redacted>)"),
            SecretValue::Binary(_) => f.write_str("SecretBinary(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ValueKind {
    String,
    Binary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretTag {
    pub key: String,
    pub value: String,
}

/// One version as the service keeps it: its value sealed by the key service.
#[derive(Clone, Serialize, Deserialize)]
struct StoredVersion {
    id: String,
    created: Millis,
    stages: Vec<String>,
    kind: ValueKind,
    /// The key service's ciphertext blob, base64.
    sealed: String,
}

/// The document of a secret's row.
#[derive(Clone, Default, Serialize, Deserialize)]
struct SecretDoc {
    description: Option<String>,
    /// The key as CreateSecret named it; None: the account's `alias/aws/secretsmanager`.
    kms_key_id: Option<String>,
    tags: Vec<SecretTag>,
    versions: Vec<StoredVersion>,
    /// When DeleteSecret was called (DescribeSecret's DeletedDate).
    deleted_at: Option<Millis>,
}

/// A version as callers see it (no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version_id: String,
    pub stages: Vec<String>,
    pub created: Millis,
}

/// A secret as callers see it (DescribeSecret, ListSecrets, the console): never its value.
#[derive(Debug, Clone)]
pub struct Secret {
    pub arn: String,
    pub name: String,
    pub account: String,
    pub region: String,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub tags: Vec<SecretTag>,
    pub created: Millis,
    pub last_changed: Millis,
    /// When DeleteSecret was called, while a deletion is scheduled.
    pub deleted: Option<Millis>,
    /// When the scheduled deletion falls due.
    pub deletion_date: Option<Millis>,
    pub versions: Vec<VersionInfo>,
}

/// A secret's row and document, as read (the revision its update names).
#[derive(Clone)]
struct Stored {
    row: SecretRow,
    doc: SecretDoc,
}

impl Stored {
    fn from_row(row: SecretRow) -> SecretsResult<Stored> {
        let doc = serde_json::from_str(&row.doc).map_err(|e| SecretsError::Internal(format!("secret {} cannot be read: {e}", row.arn)))?;
        Ok(Stored { row, doc })
    }

    fn public(&self) -> Secret {
        Secret {
            arn: self.row.arn.clone(),
            name: self.row.name.clone(),
            account: self.row.account.clone(),
            region: self.row.region.clone(),
            description: self.doc.description.clone(),
            kms_key_id: self.doc.kms_key_id.clone(),
            tags: self.doc.tags.clone(),
            created: self.row.created_at,
            last_changed: self.row.updated_at,
            deleted: self.doc.deleted_at,
            deletion_date: self.row.deletion_date,
            versions: self
                .doc
                .versions
                .iter()
                .map(|v| VersionInfo { version_id: v.id.clone(), stages: v.stages.clone(), created: v.created })
                .collect(),
        }
    }

    fn resource(&self) -> Resource<'_> {
        Resource::Secret { arn: &self.row.arn, account: &self.row.account, region: &self.row.region }
    }

    fn scope(&self) -> RegistryRef {
        RegistryRef { account: self.row.account.clone(), region: self.row.region.clone() }
    }

    fn scheduled_for_deletion(&self) -> bool {
        self.row.deletion_date.is_some()
    }
}

/// The encryption context a version's value is sealed with (Secrets Manager's own).
fn value_context(arn: &str, version_id: &str) -> [(String, String); 2] {
    [("SecretARN".to_string(), arn.to_string()), ("SecretVersionId".to_string(), version_id.to_string())]
}

fn to_json(doc: &SecretDoc) -> SecretsResult<String> {
    serde_json::to_string(doc).map_err(|e| SecretsError::Internal(format!("a secret's document cannot be written: {e}")))
}

/// Secret names: 1–512 of ASCII letters, digits and `/_+=.@-`.
pub fn check_name(name: &str) -> SecretsResult<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c);
    if name.is_empty() || name.len() > 512 || !name.chars().all(allowed) {
        return Err(SecretsError::InvalidParameter(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!".into(),
        ));
    }
    Ok(())
}

fn check_tags(tags: &[SecretTag]) -> SecretsResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(SecretsError::InvalidParameter(format!("A secret can have at most {MAX_TAGS} tags.")));
    }
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > 128 || t.value.chars().count() > 256 {
            return Err(SecretsError::InvalidParameter(format!("Tag key {:?} or its value has an invalid length.", t.key)));
        }
        if t.key.starts_with("aws:") {
            return Err(SecretsError::InvalidParameter(format!("Tag key {:?} uses the reserved prefix aws:.", t.key)));
        }
    }
    Ok(())
}

/// A key service refusal met while sealing (`encrypting`) or opening a value: Secrets
/// Manager's EncryptionFailure / DecryptionFailure, a denial as such, a fault as a fault.
fn from_kms(e: KmsError, encrypting: bool) -> SecretsError {
    match e {
        KmsError::Registry(inner) => SecretsError::Registry(inner),
        KmsError::Internal(m) => SecretsError::Internal(m),
        other if encrypting => SecretsError::Encryption(format!("Secrets Manager can't encrypt the secret value: KMS: {other}")),
        other => SecretsError::Decryption(format!("Secrets Manager can't decrypt the secret value: KMS: {other}")),
    }
}

fn not_found() -> SecretsError {
    SecretsError::NotFound("Secrets Manager can't find the specified secret.".into())
}

fn marked_for_deletion() -> SecretsError {
    SecretsError::InvalidRequest("You can't perform this operation on the secret because it was marked for deletion.".into())
}

/// Six random ASCII letters and digits (the ARN's suffix).
fn arn_suffix() -> SecretsResult<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let bytes: [u8; 6] = crate::auth::random_bytes()?;
    Ok(bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect())
}

fn secret_arn(scope: &RegistryRef, name: &str, suffix: &str) -> String {
    format!("arn:aws:secretsmanager:{}:{}:secret:{name}-{suffix}", scope.region, scope.account)
}

/// A `SecretId` split: a name in the caller's scope, or an ARN (complete or partial).
enum SecretId {
    Name(String),
    Arn { scope: RegistryRef, full: String, name_part: String },
}

fn parse_secret_id(id: &str) -> SecretId {
    let Some(rest) = id.strip_prefix("arn:") else { return SecretId::Name(id.to_string()) };
    let parts: Vec<&str> = rest.splitn(6, ':').collect();
    match parts.as_slice() {
        [_partition, "secretsmanager", region, account, "secret", name] => SecretId::Arn {
            scope: RegistryRef { account: account.to_string(), region: region.to_string() },
            full: id.to_string(),
            name_part: name.to_string(),
        },
        // Not a secret's ARN: looked up as a name, which finds nothing (names hold no ':').
        _ => SecretId::Name(id.to_string()),
    }
}

impl Registry {
    /// The account and region a caller's secrets live in.
    fn secrets_scope(&self, principal: &Principal) -> RegistryRef {
        RegistryRef {
            account: principal.account.clone(),
            region: principal.region.clone().unwrap_or_else(|| self.config.default_registry.region.clone()),
        }
    }

    /// The secret a `SecretId` names (name, complete ARN, or an ARN without the random
    /// suffix), purging it first when its deletion is due.
    async fn find_secret(&self, scope: &RegistryRef, id: &str) -> SecretsResult<Option<Stored>> {
        let row = match parse_secret_id(id) {
            SecretId::Name(name) => self.meta.secret_by_name(&scope.account, &scope.region, &name).await?,
            SecretId::Arn { scope, full, name_part } => match self.meta.secret_by_arn(&full).await? {
                Some(row) => Some(row),
                None => self.meta.secret_by_name(&scope.account, &scope.region, &name_part).await?,
            },
        };
        match row {
            Some(row) => self.unless_purged(Stored::from_row(row)?).await,
            None => Ok(None),
        }
    }

    /// Deletes a secret whose recovery window is over (the lazy purge); None then.
    async fn unless_purged(&self, s: Stored) -> SecretsResult<Option<Stored>> {
        match s.row.deletion_date {
            Some(due) if self.now() >= due => {
                if self.meta.delete_secret(&s.row.arn, s.row.revision).await? {
                    tracing::info!(secret = %s.row.arn, "secret deleted at the end of its recovery window");
                }
                Ok(None)
            }
            _ => Ok(Some(s)),
        }
    }

    /// The secret `id` names, once `principal` may perform `action` on it. A secret that does
    /// not exist is authorized on the ARN its name would have before it is reported missing.
    async fn authorized_secret(&self, principal: &Principal, action: &str, id: &str) -> SecretsResult<Stored> {
        let scope = self.secrets_scope(principal);
        match self.find_secret(&scope, id).await? {
            Some(s) => {
                self.authorize(principal, action, s.resource()).await?;
                Ok(s)
            }
            None => {
                let arn = match parse_secret_id(id) {
                    SecretId::Arn { full, .. } => full,
                    SecretId::Name(name) => format!("arn:aws:secretsmanager:{}:{}:secret:{name}", scope.region, scope.account),
                };
                self.authorize(principal, action, Resource::Secret { arn: &arn, account: &scope.account, region: &scope.region }).await?;
                Err(not_found())
            }
        }
    }

    /// Applies `change` to the secret and stores it, re-reading and retrying on a concurrent
    /// change; `change` sees the current state each time.
    async fn update_secret(&self, mut current: Stored, change: impl Fn(&mut Stored) -> SecretsResult<()>) -> SecretsResult<Stored> {
        for _ in 0..UPDATE_ATTEMPTS {
            let mut next = current.clone();
            change(&mut next)?;
            next.row.doc = to_json(&next.doc)?;
            next.row.updated_at = self.now();
            if self.meta.update_secret(&next.row).await? {
                next.row.revision += 1;
                return Ok(next);
            }
            let row = self.meta.secret_by_arn(&current.row.arn).await?.ok_or_else(not_found)?;
            current = Stored::from_row(row)?;
        }
        Err(SecretsError::Internal(format!("secret {} is being changed by many callers at once; try again", current.row.arn)))
    }

    /// Seals a value for `version_id` of the secret (its key, its ARN and version as context).
    async fn seal_value(
        &self,
        caller: Option<&Principal>,
        scope: &RegistryRef,
        key_id: Option<&str>,
        arn: &str,
        version_id: &str,
        value: &SecretValue,
    ) -> SecretsResult<StoredVersion> {
        let context = value_context(arn, version_id);
        let (_, blob) = self.seal_secret_value(caller, scope, key_id, value.bytes(), &context).await.map_err(|e| from_kms(e, true))?;
        Ok(StoredVersion {
            id: version_id.to_string(),
            created: self.now(),
            stages: Vec::new(),
            kind: value.kind(),
            sealed: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, blob),
        })
    }

    async fn open_value(&self, caller: Option<&Principal>, arn: &str, v: &StoredVersion) -> SecretsResult<SecretValue> {
        let blob = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &v.sealed)
            .map_err(|_| SecretsError::Internal(format!("a version of {arn} is damaged")))?;
        let opened = self.open_secret_value(caller, &blob, &value_context(arn, &v.id)).await.map_err(|e| from_kms(e, false))?;
        Ok(match v.kind {
            ValueKind::Binary => SecretValue::Binary(Zeroizing::new(opened.to_vec())),
            ValueKind::String => SecretValue::String(Zeroizing::new(
                String::from_utf8(opened.to_vec()).map_err(|_| SecretsError::Internal(format!("a version of {arn} is not text")))?,
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_secret_ids() {
        assert!(check_name("ecr-pullthroughcache/docker-hub").is_ok());
        assert!(check_name("a+b=c.d@e_f").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name(&"x".repeat(513)).is_err());
        assert!(matches!(parse_secret_id("hub"), SecretId::Name(n) if n == "hub"));
        match parse_secret_id("arn:aws:secretsmanager:eu-west-1:210987654321:secret:ecr-pullthroughcache/hub-AbCdEf") {
            SecretId::Arn { scope, name_part, .. } => {
                assert_eq!((scope.account.as_str(), scope.region.as_str()), ("210987654321", "eu-west-1"));
                assert_eq!(name_part, "ecr-pullthroughcache/hub-AbCdEf");
            }
            SecretId::Name(_) => panic!("an ARN"),
        }
        let suffix = arn_suffix().unwrap();
        assert_eq!(suffix.len(), 6);
        assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn values_never_show_in_debug() {
        let v = SecretValue::String(Zeroizing::new("hunter2".into()));
        assert!(!format!("{v:?}").contains("hunter2"));
    }
}
