//! A key as the service keeps it: the JSON document in the key store, and the identifiers
//! AWS gives keys and aliases.

use serde::{Deserialize, Serialize};

use super::error::{KmsError, KmsResult};
use berth_store::Millis;

/// The states berth's keys take (KMS's `KeyState` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

/// Who manages a key: the account (`CUSTOMER`) or the service that made it on first use
/// (`AWS`, e.g. `alias/aws/ecr`), whose state and policy callers cannot change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyManager {
    #[serde(rename = "CUSTOMER")]
    Customer,
    #[serde(rename = "AWS")]
    Aws,
}

impl KeyManager {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyManager::Customer => "CUSTOMER",
            KeyManager::Aws => "AWS",
        }
    }
}

/// One version of a key's material, wrapped by the root key (rotation adds versions and
/// keeps every earlier one for decryption).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Material {
    pub version: u32,
    /// base64 of `berth_crypto::seal(root, aad = "<key arn>#<version>", material)`.
    pub wrapped: String,
    pub created: Millis,
    /// "AUTOMATIC" or "ON_DEMAND" for versions made by rotation; None for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyTag {
    pub key: String,
    pub value: String,
}

/// The stored document of one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyDoc {
    pub arn: String,
    pub description: String,
    /// `ENCRYPT_DECRYPT` (the only usage berth's SYMMETRIC_DEFAULT keys have).
    pub key_usage: String,
    /// `SYMMETRIC_DEFAULT`.
    pub key_spec: String,
    pub state: KeyState,
    pub manager: KeyManager,
    pub created: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_window_days: Option<u32>,
    pub policy: String,
    pub rotation_enabled: bool,
    pub rotation_period_days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<Millis>,
    pub materials: Vec<Material>,
    #[serde(default)]
    pub tags: Vec<KeyTag>,
    /// SIGN_VERIFY keys: base64 of the public key (SubjectPublicKeyInfo DER); the private key is
    /// the (sealed) material.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

impl KeyDoc {
    /// The signing spec of a SIGN_VERIFY key; None for symmetric keys.
    pub fn signing_spec(&self) -> Option<berth_crypto::asymmetric::SigningSpec> {
        berth_crypto::asymmetric::SigningSpec::parse(&self.key_spec)
    }
}

impl KeyDoc {
    pub fn current(&self) -> KmsResult<&Material> {
        self.materials.iter().max_by_key(|m| m.version).ok_or_else(|| KmsError::Internal(format!("key {} has no key material", self.arn)))
    }

    pub fn version(&self, version: u32) -> Option<&Material> {
        self.materials.iter().find(|m| m.version == version)
    }
}

/// `arn:aws:kms:<region>:<account>:key/<id>`.
pub fn key_arn(region: &str, account: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{key_id}")
}

/// `arn:aws:kms:<region>:<account>:<alias/name>`.
pub fn alias_arn(region: &str, account: &str, alias: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:{alias}")
}

/// What a `KeyId` parameter names: a key id, a key ARN, an alias name or an alias ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyName {
    Id(String),
    Arn { region: String, account: String, key_id: String },
    Alias(String),
    AliasArn { region: String, account: String, alias: String },
}

impl KeyName {
    pub fn parse(key_id: &str) -> KmsResult<KeyName> {
        if let Some(rest) = key_id.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            let [partition, service, region, account, resource] = parts[..] else {
                return Err(KmsError::InvalidArn(format!("Invalid arn {key_id}")));
            };
            if !partition.starts_with("aws") || service != "kms" || region.is_empty() || account.len() != 12 {
                return Err(KmsError::InvalidArn(format!("Invalid arn {key_id}")));
            }
            let (region, account) = (region.to_string(), account.to_string());
            return match resource.split_once('/') {
                Some(("key", id)) if is_key_id(id) => Ok(KeyName::Arn { region, account, key_id: id.to_string() }),
                Some(("alias", _)) => Ok(KeyName::AliasArn { region, account, alias: resource.to_string() }),
                _ => Err(KmsError::InvalidArn(format!("Invalid arn {key_id}"))),
            };
        }
        if key_id.starts_with("alias/") {
            return Ok(KeyName::Alias(key_id.to_string()));
        }
        if is_key_id(key_id) {
            return Ok(KeyName::Id(key_id.to_string()));
        }
        Err(KmsError::NotFound(format!("Invalid keyId '{key_id}'")))
    }
}

/// A key id is a UUID (`1234abcd-12ab-34cd-56ef-1234567890ab`).
pub fn is_key_id(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

/// AliasName: `alias/` then 1-250 of `[a-zA-Z0-9/_-]`; `alias/aws/` is reserved for keys the
/// services manage.
pub fn check_alias_name(alias: &str) -> KmsResult<()> {
    let Some(name) = alias.strip_prefix("alias/") else {
        return Err(KmsError::Validation(format!("Alias must start with the prefix \"alias/\". Please see {alias}")));
    };
    if name.is_empty() || name.len() > 250 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b)) {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{alias}' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
        )));
    }
    if name.starts_with("aws/") {
        return Err(KmsError::InvalidAliasName(format!(
            "{alias} must not begin with alias/aws/: that prefix is reserved for keys services manage"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_arns_and_aliases_are_told_apart() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(KeyName::parse(id).unwrap(), KeyName::Id(id.into()));
        assert_eq!(
            KeyName::parse(&format!("arn:aws:kms:us-east-1:123456789012:key/{id}")).unwrap(),
            KeyName::Arn { region: "us-east-1".into(), account: "123456789012".into(), key_id: id.into() }
        );
        assert_eq!(KeyName::parse("alias/app").unwrap(), KeyName::Alias("alias/app".into()));
        assert!(matches!(KeyName::parse("arn:aws:kms:us-east-1:123456789012:alias/app").unwrap(), KeyName::AliasArn { .. }));
        assert!(matches!(KeyName::parse("arn:aws:s3:::bucket"), Err(KmsError::InvalidArn(_))));
        assert!(matches!(KeyName::parse("arn:aws:kms:us-east-1:123456789012:key/nope"), Err(KmsError::InvalidArn(_))));
        assert!(matches!(KeyName::parse("nope"), Err(KmsError::NotFound(_))));
    }

    #[test]
    fn alias_names_follow_kms_rules() {
        assert!(check_alias_name("alias/team/app-1").is_ok());
        assert!(matches!(check_alias_name("team"), Err(KmsError::Validation(_))));
        assert!(matches!(check_alias_name("alias/"), Err(KmsError::Validation(_))));
        assert!(matches!(check_alias_name("alias/a b"), Err(KmsError::Validation(_))));
        assert!(matches!(check_alias_name("alias/aws/ecr"), Err(KmsError::InvalidAliasName(_))));
    }
}
