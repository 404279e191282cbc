//! The key service: KMS keys per (account, region), the AWS-managed keys services create on
//! first use, and the cryptography callers ask of them (Encrypt, Decrypt, data keys).
//!
//! Key material is made here, wrapped by the root key (`berth_crypto::seal`, bound to the
//! key's ARN and version) before it reaches the key store, and unwrapped only for the one
//! operation that needs it. Every method takes the calling principal and authorizes itself
//! (`kms:<Action>` on the key, its key policy required), so no adapter decides who may use a
//! key. Rotation adds a material version and keeps the earlier ones for decryption.

mod aliases;
pub(crate) mod blob_keys;
mod ciphertext;
mod crypto_ops;
pub mod doc;
pub mod error;
mod manage;
mod policy_tags;
mod rotation;
mod secret_keys;
mod signing;

use base64::Engine;
use berth_crypto::RootKey;
use berth_store::{AliasRow, KeyRow};
use zeroize::Zeroizing;

pub use doc::{KeyDoc, KeyManager, KeyName, KeyState, KeyTag};
pub use error::{KmsError, KmsResult};

use crate::auth::{Principal, Resource};
use crate::{Registry, RegistryRef};

const DAY_MS: i64 = 86_400_000;
/// KMS's tag limit per key.
const MAX_TAGS: usize = 50;
/// KMS's default and bounds for the automatic rotation period.
const DEFAULT_ROTATION_DAYS: u32 = 365;
/// An update that loses a race re-reads and tries again this many times.
const UPDATE_ATTEMPTS: usize = 5;

/// What `Registry::install_key_service` hands the registry: the root key (the keys
/// themselves are rows of the metadata store, `KeyStore`).
pub struct KeyService {
    root: RootKey,
    /// The registry-managed key AES256 repositories' data keys are wrapped by (derived from
    /// the root key once).
    registry_managed: Zeroizing<[u8; berth_crypto::KEY_LEN]>,
    /// KMS keys recently used for blobs (see blob_keys).
    cache: blob_keys::KeyCache,
}

/// A key resolved from a `KeyId`, as stored.
#[derive(Debug, Clone)]
pub struct Key {
    pub key_id: String,
    pub account: String,
    pub region: String,
    pub doc: KeyDoc,
    revision: i64,
}

impl Key {
    pub fn arn(&self) -> &str {
        &self.doc.arn
    }

    fn resource(&self) -> Resource<'_> {
        Resource::KmsKey { arn: &self.doc.arn, account: &self.account, region: &self.region, policy: &self.doc.policy }
    }
}

/// CreateKey's choices.
#[derive(Debug, Default)]
pub struct NewKey {
    pub description: Option<String>,
    pub key_usage: Option<String>,
    pub key_spec: Option<String>,
    pub policy: Option<String>,
    pub tags: Vec<KeyTag>,
}

/// A data key: the plaintext (for the caller to use and forget) and its ciphertext.
pub struct DataKey {
    pub key_arn: String,
    pub plaintext: Zeroizing<Vec<u8>>,
    pub ciphertext: Vec<u8>,
}

/// The default key policy: the account's IAM policies decide, as KMS's default does.
pub fn default_key_policy(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Id":"key-default-1","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    )
}

impl Registry {
    /// Turns the key service on with its root key (`berth serve` does, always).
    pub fn install_key_service(&self, root: RootKey) {
        let registry_managed = root.derive(blob_keys::REGISTRY_MANAGED_PURPOSE);
        if self.kms.set(KeyService { root, registry_managed, cache: Default::default() }).is_err() {
            tracing::warn!("the key service was installed twice; the first stays");
        }
    }

    /// `install_key_service`, chained onto `Registry::new`.
    pub fn with_key_service(self, root: RootKey) -> Self {
        self.install_key_service(root);
        self
    }

    /// Seals a small secret of berth's own (a remote registry's password) under a key derived
    /// from the root key for `purpose`; `aad` binds it to what it belongs to.
    pub(crate) fn seal_own_secret(&self, purpose: &str, aad: &[u8], plaintext: &[u8]) -> KmsResult<Vec<u8>> {
        let key = self.key_service()?.root.derive(purpose);
        Ok(berth_crypto::seal(&key, aad, plaintext))
    }

    /// Opens what [`Registry::seal_own_secret`] sealed for the same `purpose` and `aad`.
    pub(crate) fn open_own_secret(&self, purpose: &str, aad: &[u8], sealed: &[u8]) -> KmsResult<Zeroizing<Vec<u8>>> {
        let key = self.key_service()?.root.derive(purpose);
        berth_crypto::open(&key, aad, sealed)
            .map_err(|e| KmsError::Internal(format!("a sealed secret of berth's ({purpose}) does not open under this root key: {e}")))
    }

    /// A key of berth's own for `purpose`, derived from the root key (never stored).
    pub(crate) fn own_key(&self, purpose: &str) -> KmsResult<Zeroizing<Vec<u8>>> {
        Ok(Zeroizing::new(self.key_service()?.root.derive(purpose).to_vec()))
    }

    fn key_service(&self) -> KmsResult<&KeyService> {
        self.kms.get().ok_or_else(|| KmsError::Internal("the key service is not configured on this server".into()))
    }

    fn caller_region(&self, principal: &Principal) -> RegistryRef {
        RegistryRef {
            account: principal.account.clone(),
            region: principal.region.clone().unwrap_or_else(|| self.config.default_registry.region.clone()),
        }
    }

    async fn allow_kms(&self, principal: &Principal, action: &str, key: &Key) -> KmsResult<()> {
        Ok(self.authorize(principal, action, key.resource()).await?)
    }

    async fn allow_kms_account(&self, principal: &Principal, action: &str) -> KmsResult<RegistryRef> {
        let scope = self.caller_region(principal);
        self.authorize(principal, action, Resource::Registry(&scope)).await?;
        Ok(scope)
    }

    // ---- finding keys ----

    /// The key a `KeyId` names (id, ARN, alias or alias ARN), in the caller's account and
    /// region unless an ARN names another. A key whose deletion date has passed is gone.
    pub async fn kms_key(&self, principal: &Principal, key_id: &str) -> KmsResult<Key> {
        self.kms_key_in(&self.caller_region(principal), key_id).await
    }

    /// The key a `KeyId` names as seen from `scope` (an account and region).
    async fn kms_key_in(&self, scope: &RegistryRef, key_id: &str) -> KmsResult<Key> {
        self.key_service()?;
        let scope = scope.clone();
        let (id, expect) = match KeyName::parse(key_id)? {
            KeyName::Id(id) => (id, (scope.account.clone(), scope.region.clone())),
            KeyName::Arn { region, account, key_id } => (key_id, (account, region)),
            KeyName::Alias(alias) => (self.alias_target(&scope.account, &scope.region, &alias).await?, (scope.account, scope.region)),
            KeyName::AliasArn { region, account, alias } => (self.alias_target(&account, &region, &alias).await?, (account, region)),
        };
        let not_found = || KmsError::NotFound(format!("Key '{}' does not exist", doc::key_arn(&expect.1, &expect.0, &id)));
        let row = self.meta.get_key(&id).await?.ok_or_else(not_found)?;
        if (row.account.as_str(), row.region.as_str()) != (expect.0.as_str(), expect.1.as_str()) {
            return Err(not_found());
        }
        let key = to_key(row)?;
        if key.doc.materials.is_empty() {
            return Err(not_found());
        }
        let key = self.complete_due_deletion(key).await?.ok_or_else(not_found)?;
        self.rotate_if_due(key).await
    }

    async fn alias_target(&self, account: &str, region: &str, alias: &str) -> KmsResult<String> {
        match self.meta.get_alias(account, region, alias).await? {
            Some(a) => Ok(a.key_id),
            None if alias.starts_with("alias/aws/") => Err(KmsError::NotFound(format!(
                "Alias {} is not found (an AWS managed key is created when a service first uses it)",
                doc::alias_arn(region, account, alias)
            ))),
            None => Err(KmsError::NotFound(format!("Alias {} is not found.", doc::alias_arn(region, account, alias)))),
        }
    }

    /// Destroys the material of a key whose waiting period is over (crypto-shredding): what
    /// it encrypted can never be decrypted again. None when that happened now or before.
    async fn complete_due_deletion(&self, key: Key) -> KmsResult<Option<Key>> {
        match (key.doc.state, key.doc.deletion_date) {
            (KeyState::PendingDeletion, Some(due)) if self.now() >= due => {
                let mut gone = key.clone();
                gone.doc.materials.clear();
                let row = KeyRow {
                    key_id: gone.key_id.clone(),
                    account: gone.account.clone(),
                    region: gone.region.clone(),
                    doc: to_json(&gone.doc)?,
                    revision: gone.revision,
                };
                if self.meta.update_key(&row).await? {
                    self.key_service()?.cache.forget(&gone.doc.arn);
                    tracing::info!(key = %gone.doc.arn, "key deleted at the end of its waiting period; its material is destroyed");
                }
                Ok(None)
            }
            _ => Ok(Some(key)),
        }
    }

    /// Applies `change` to the key and stores it, retrying on a concurrent change.
    async fn update_key(&self, key: Key, change: impl Fn(&mut KeyDoc) -> KmsResult<()>) -> KmsResult<Key> {
        self.key_service()?;
        let mut current = key;
        for _ in 0..UPDATE_ATTEMPTS {
            let mut doc = current.doc.clone();
            change(&mut doc)?;
            let row = KeyRow {
                key_id: current.key_id.clone(),
                account: current.account.clone(),
                region: current.region.clone(),
                doc: to_json(&doc)?,
                revision: current.revision,
            };
            if self.meta.update_key(&row).await? {
                self.key_service()?.cache.forget(&doc.arn);
                return Ok(Key { doc, revision: current.revision + 1, ..current });
            }
            let row = self
                .meta
                .get_key(&current.key_id)
                .await?
                .ok_or_else(|| KmsError::NotFound(format!("Key '{}' does not exist", current.doc.arn)))?;
            current = to_key(row)?;
        }
        Err(KmsError::Internal(format!("key {} is being changed by many callers at once; try again", current.doc.arn)))
    }

    /// The key a KMS-encrypted repository uses: the one `given` names (it must exist — in the
    /// repository's account and region, or anywhere by ARN — and be enabled), else the
    /// account's AWS managed `alias/aws/ecr`, made on first use. Its ARN is what
    /// DescribeRepositories shows, as ECR does.
    pub async fn repository_kms_key(&self, scope: &RegistryRef, given: Option<&str>) -> Result<String, crate::RegistryError> {
        let key = match given {
            None => self.kms_managed_key(scope, "ecr").await,
            Some(k) => self.kms_key_in(scope, k).await,
        }
        .map_err(for_repository)?;
        usable_for_crypto(&key.doc).map_err(for_repository)?;
        Ok(key.doc.arn)
    }
}

/// A key service refusal met while serving a repository: ECR's KmsException naming the KMS error.
pub(crate) fn for_repository(e: KmsError) -> crate::RegistryError {
    let kms_error = match &e {
        KmsError::NotFound(_) | KmsError::InvalidArn(_) => "NotFoundException",
        KmsError::Disabled(_) => "DisabledException",
        KmsError::InvalidState(_) => "KMSInvalidStateException",
        KmsError::Internal(_) => "KMSInternalException",
        _ => "ValidationException",
    };
    match e {
        KmsError::Registry(inner) => inner,
        other => crate::RegistryError::Kms { message: format!("KMS refused the repository's key: {other}"), kms_error },
    }
}

fn to_key(row: KeyRow) -> KmsResult<Key> {
    let doc: KeyDoc = serde_json::from_str(&row.doc).map_err(|e| KmsError::Internal(format!("key {} cannot be read: {e}", row.key_id)))?;
    Ok(Key { key_id: row.key_id, account: row.account, region: row.region, doc, revision: row.revision })
}

fn to_json(doc: &KeyDoc) -> KmsResult<String> {
    serde_json::to_string(doc).map_err(|e| KmsError::Internal(format!("key {} cannot be written: {e}", doc.arn)))
}

fn material_aad(arn: &str, version: u32) -> Vec<u8> {
    format!("{arn}#{version}").into_bytes()
}

fn wrap_material(root: &RootKey, arn: &str, version: u32, material: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(berth_crypto::seal(root.bytes(), &material_aad(arn, version), material))
}

fn unwrap_material(root: &RootKey, arn: &str, material: &doc::Material) -> KmsResult<Zeroizing<[u8; berth_crypto::KEY_LEN]>> {
    let opened = unwrap_bytes(root, arn, material)?;
    let mut key = Zeroizing::new([0u8; berth_crypto::KEY_LEN]);
    if opened.len() != key.len() {
        return Err(KmsError::Internal(format!("the material of {arn} has the wrong length")));
    }
    key.copy_from_slice(&opened);
    Ok(key)
}

/// A version's material as sealed (32 bytes of a symmetric key, or a PKCS#8 private key).
pub(super) fn unwrap_bytes(root: &RootKey, arn: &str, material: &doc::Material) -> KmsResult<Zeroizing<Vec<u8>>> {
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&material.wrapped)
        .map_err(|_| KmsError::Internal(format!("the material of {arn} is damaged")))?;
    let opened = berth_crypto::open(root.bytes(), &material_aad(arn, material.version), &sealed).map_err(|_| {
        KmsError::Internal(format!(
            "the material of {arn} does not open under this server's root key (is --root-key-file the one it was made with?)"
        ))
    })?;
    Ok(opened)
}

fn customer_managed(key: &Key) -> KmsResult<()> {
    match key.doc.manager {
        KeyManager::Customer => Ok(()),
        KeyManager::Aws => {
            Err(KmsError::UnsupportedOperation(format!("{} is an AWS managed key; its settings cannot be changed", key.doc.arn)))
        }
    }
}

/// Only symmetric keys rotate (KMS does not rotate asymmetric keys either).
fn rotatable(key: &Key) -> KmsResult<()> {
    match key.doc.signing_spec() {
        None => Ok(()),
        Some(spec) => {
            Err(KmsError::UnsupportedOperation(format!("{} is a {} key; only symmetric keys rotate", key.doc.arn, spec.as_str())))
        }
    }
}

fn usable_state(doc: &KeyDoc) -> KmsResult<()> {
    match doc.state {
        KeyState::PendingDeletion => Err(KmsError::InvalidState(format!("{} is pending deletion.", doc.arn))),
        _ => Ok(()),
    }
}

/// The key may encrypt and decrypt: enabled, and a symmetric ENCRYPT_DECRYPT key.
fn usable_for_crypto(doc: &KeyDoc) -> KmsResult<()> {
    usable_now(doc)?;
    if doc.key_usage != "ENCRYPT_DECRYPT" {
        return Err(KmsError::InvalidKeyUsage(format!("{} key usage is {}: it cannot encrypt or decrypt", doc.arn, doc.key_usage)));
    }
    Ok(())
}

/// The key is enabled (not disabled, not pending deletion).
pub(super) fn usable_now(doc: &KeyDoc) -> KmsResult<()> {
    match doc.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::Disabled(format!("{} is disabled.", doc.arn))),
        KeyState::PendingDeletion => Err(KmsError::InvalidState(format!("{} is pending deletion.", doc.arn))),
    }
}

fn check_key_policy(policy: &str) -> KmsResult<()> {
    berth_iam::policy::Policy::parse_resource(policy).map(|_| ()).map_err(|e| {
        KmsError::MalformedPolicyDocument(format!(
            "The new key policy will not allow you to update the key policy in the future, or it is malformed: {e}"
        ))
    })
}

fn check_tags(tags: &[KeyTag]) -> KmsResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(KmsError::Tag(format!("A key can have at most {MAX_TAGS} tags")));
    }
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > 128 || t.value.chars().count() > 256 || t.key.starts_with("aws:") {
            return Err(KmsError::Tag(format!(
                "Tag key {:?} or its value is not valid (keys 1-128 characters, not aws:, values up to 256)",
                t.key
            )));
        }
    }
    Ok(())
}
