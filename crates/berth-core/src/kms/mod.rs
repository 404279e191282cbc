//! The key service: KMS keys per (account, region), the AWS-managed keys services create on
//! first use, and the cryptography callers ask of them (Encrypt, Decrypt, data keys).
//!
//! Key material is made here, wrapped by the root key (`berth_crypto::seal`, bound to the
//! key's ARN and version) before it reaches the key store, and unwrapped only for the one
//! operation that needs it. Every method takes the calling principal and authorizes itself
//! (`kms:<Action>` on the key, its key policy required), so no adapter decides who may use a
//! key. Rotation adds a material version and keeps the earlier ones for decryption.

mod ciphertext;
pub mod doc;
pub mod error;
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
        if self.kms.set(KeyService { root }).is_err() {
            tracing::warn!("the key service was installed twice; the first stays");
        }
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

    // ---- managing keys ----

    pub async fn kms_create_key(&self, principal: &Principal, new: NewKey) -> KmsResult<Key> {
        let scope = self.allow_kms_account(principal, "kms:CreateKey").await?;
        let signing = signing::spec_of(new.key_spec.as_deref(), new.key_usage.as_deref())?;
        if let Some(policy) = &new.policy {
            check_key_policy(policy)?;
        }
        check_tags(&new.tags)?;
        let policy = new.policy.unwrap_or_else(|| default_key_policy(&scope.account));
        self.create_key_in(&scope, new.description.unwrap_or_default(), policy, KeyManager::Customer, new.tags, signing).await
    }

    async fn create_key_in(
        &self,
        scope: &RegistryRef,
        description: String,
        policy: String,
        manager: KeyManager,
        tags: Vec<KeyTag>,
        signing: Option<berth_crypto::asymmetric::SigningSpec>,
    ) -> KmsResult<Key> {
        let svc = self.key_service()?;
        let key_id = uuid::Uuid::new_v4().to_string();
        let arn = doc::key_arn(&scope.region, &scope.account, &key_id);
        let now = self.now();
        let (material, public_key) = match signing {
            None => (wrap_material(&svc.root, &arn, 1, &berth_crypto::random_key()[..]), None),
            Some(spec) => {
                let (private, public) = signing::generate(spec).await?;
                (wrap_material(&svc.root, &arn, 1, &private), Some(base64::engine::general_purpose::STANDARD.encode(public)))
            }
        };
        let doc = KeyDoc {
            arn,
            description,
            key_usage: if signing.is_some() { "SIGN_VERIFY" } else { "ENCRYPT_DECRYPT" }.into(),
            key_spec: signing.map_or("SYMMETRIC_DEFAULT", |s| s.as_str()).into(),
            state: KeyState::Enabled,
            manager,
            created: now,
            deletion_date: None,
            pending_window_days: None,
            policy,
            // AWS managed keys rotate every year, always.
            rotation_enabled: manager == KeyManager::Aws,
            rotation_period_days: DEFAULT_ROTATION_DAYS,
            next_rotation: (manager == KeyManager::Aws).then_some(now + DEFAULT_ROTATION_DAYS as i64 * DAY_MS),
            materials: vec![doc::Material { version: 1, wrapped: material, created: now, rotation_type: None }],
            tags,
            public_key,
        };
        let row = KeyRow {
            key_id: key_id.clone(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            doc: to_json(&doc)?,
            revision: 0,
        };
        if !self.meta.create_key(&row).await? {
            return Err(KmsError::Internal("a fresh key id collided; try again".into()));
        }
        Ok(Key { key_id, account: scope.account.clone(), region: scope.region.clone(), doc, revision: 0 })
    }

    /// The AWS managed key `alias/aws/<service>` of an account and region, created on first use.
    pub async fn kms_managed_key(&self, scope: &RegistryRef, service: &str) -> KmsResult<Key> {
        self.key_service()?;
        let alias = format!("alias/aws/{service}");
        for _ in 0..UPDATE_ATTEMPTS {
            if let Some(a) = self.meta.get_alias(&scope.account, &scope.region, &alias).await? {
                let row = self.meta.get_key(&a.key_id).await?.ok_or_else(|| KmsError::Internal(format!("{alias} names a missing key")))?;
                return to_key(row);
            }
            let description = format!("Default key that protects my {} data when no other key is defined", service.to_uppercase());
            let key = self.create_key_in(scope, description, default_key_policy(&scope.account), KeyManager::Aws, Vec::new(), None).await?;
            let now = self.now();
            let row = AliasRow { alias: alias.clone(), key_id: key.key_id.clone(), created: now, updated: now };
            if self.meta.put_alias(&scope.account, &scope.region, &row, false).await? {
                return Ok(key);
            }
            // Another caller made it first; theirs is the one (ours is never used).
        }
        Err(KmsError::Internal(format!("could not create {alias}; try again")))
    }

    pub async fn kms_describe_key(&self, principal: &Principal, key_id: &str) -> KmsResult<Key> {
        // DescribeKey of an alias/aws/* name creates the managed key, as KMS does.
        if let Ok(KeyName::Alias(alias)) = KeyName::parse(key_id) {
            if let Some(service) = alias.strip_prefix("alias/aws/") {
                let scope = self.caller_region(principal);
                let key = self.kms_managed_key(&scope, service).await?;
                self.allow_kms(principal, "kms:DescribeKey", &key).await?;
                return Ok(key);
            }
        }
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:DescribeKey", &key).await?;
        Ok(key)
    }

    /// ListKeys: the caller's account and region, in key id order.
    pub async fn kms_list_keys(&self, principal: &Principal, after: Option<&str>, limit: u32) -> KmsResult<(Vec<Key>, bool)> {
        let scope = self.allow_kms_account(principal, "kms:ListKeys").await?;
        self.key_service()?;
        let rows = self.meta.list_keys(&scope.account, &scope.region, after, limit + 1).await?;
        let more = rows.len() > limit as usize;
        let mut keys = Vec::new();
        for row in rows.into_iter().take(limit as usize) {
            let key = to_key(row)?;
            if !key.doc.materials.is_empty() {
                keys.push(key);
            }
        }
        Ok((keys, more))
    }

    /// EnableKey / DisableKey.
    pub async fn kms_set_enabled(&self, principal: &Principal, key_id: &str, enabled: bool) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, if enabled { "kms:EnableKey" } else { "kms:DisableKey" }, &key).await?;
        customer_managed(&key)?;
        self.update_key(key, |doc| match doc.state {
            KeyState::PendingDeletion => Err(KmsError::InvalidState(format!("{} is pending deletion.", doc.arn))),
            _ => {
                doc.state = if enabled { KeyState::Enabled } else { KeyState::Disabled };
                Ok(())
            }
        })
        .await
    }

    /// ScheduleKeyDeletion: 7 to 30 days (30 when not given).
    pub async fn kms_schedule_deletion(&self, principal: &Principal, key_id: &str, days: Option<i64>) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:ScheduleKeyDeletion", &key).await?;
        customer_managed(&key)?;
        let days = days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30"
            )));
        }
        let due = self.now() + days * DAY_MS;
        self.update_key(key, |doc| match doc.state {
            KeyState::PendingDeletion => Err(KmsError::InvalidState(format!("{} is pending deletion.", doc.arn))),
            _ => {
                doc.state = KeyState::PendingDeletion;
                doc.deletion_date = Some(due);
                doc.pending_window_days = Some(days as u32);
                Ok(())
            }
        })
        .await
    }

    /// CancelKeyDeletion: the key comes back disabled, as in KMS.
    pub async fn kms_cancel_deletion(&self, principal: &Principal, key_id: &str) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:CancelKeyDeletion", &key).await?;
        self.update_key(key, |doc| match doc.state {
            KeyState::PendingDeletion => {
                doc.state = KeyState::Disabled;
                doc.deletion_date = None;
                doc.pending_window_days = None;
                Ok(())
            }
            _ => Err(KmsError::InvalidState(format!("{} is not pending deletion.", doc.arn))),
        })
        .await
    }

    pub async fn kms_update_description(&self, principal: &Principal, key_id: &str, description: String) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:UpdateKeyDescription", &key).await?;
        customer_managed(&key)?;
        self.update_key(key, |doc| {
            doc.description = description.clone();
            Ok(())
        })
        .await
    }

    // ---- rotation ----

    /// EnableKeyRotation (period 90 to 2560 days, 365 when not given) / DisableKeyRotation.
    pub async fn kms_set_rotation(&self, principal: &Principal, key_id: &str, enabled: bool, period_days: Option<i64>) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, if enabled { "kms:EnableKeyRotation" } else { "kms:DisableKeyRotation" }, &key).await?;
        customer_managed(&key)?;
        rotatable(&key)?;
        let period = period_days.unwrap_or(DEFAULT_ROTATION_DAYS as i64);
        if !(90..=2560).contains(&period) {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value '{period}' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value between 90 and 2560"
            )));
        }
        let now = self.now();
        self.update_key(key, |doc| {
            usable_state(doc)?;
            doc.rotation_enabled = enabled;
            if enabled {
                doc.rotation_period_days = period as u32;
                doc.next_rotation = Some(now + period * DAY_MS);
            } else {
                doc.next_rotation = None;
            }
            Ok(())
        })
        .await
    }

    pub async fn kms_rotation_status(&self, principal: &Principal, key_id: &str) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:GetKeyRotationStatus", &key).await?;
        Ok(key)
    }

    /// RotateKeyOnDemand: new material now; the earlier versions keep decrypting.
    pub async fn kms_rotate_now(&self, principal: &Principal, key_id: &str) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:RotateKeyOnDemand", &key).await?;
        customer_managed(&key)?;
        rotatable(&key)?;
        self.rotate(key, "ON_DEMAND").await
    }

    async fn rotate(&self, key: Key, rotation_type: &str) -> KmsResult<Key> {
        let svc = self.key_service()?;
        let now = self.now();
        let fresh = berth_crypto::random_key();
        self.update_key(key, |doc| {
            usable_state(doc)?;
            // A concurrent caller rotated first (the update re-reads on a lost race): once is enough.
            if rotation_type == "AUTOMATIC" && doc.next_rotation.is_none_or(|t| t > now) {
                return Ok(());
            }
            let version = doc.current()?.version + 1;
            let wrapped = wrap_material(&svc.root, &doc.arn, version, &fresh[..]);
            doc.materials.push(doc::Material { version, wrapped, created: now, rotation_type: Some(rotation_type.to_string()) });
            if doc.rotation_enabled {
                doc.next_rotation = Some(now + doc.rotation_period_days as i64 * DAY_MS);
            }
            Ok(())
        })
        .await
    }

    /// Automatic rotation, applied when a key is next used after its date (no schedule to
    /// run: a key nobody uses needs no new material until it is used).
    async fn rotate_if_due(&self, key: Key) -> KmsResult<Key> {
        let due = key.doc.rotation_enabled && key.doc.state == KeyState::Enabled && key.doc.next_rotation.is_some_and(|t| t <= self.now());
        if !due {
            return Ok(key);
        }
        tracing::info!(key = %key.doc.arn, "rotating the key's material (automatic rotation is due)");
        self.rotate(key, "AUTOMATIC").await
    }

    // ---- key policies and tags ----

    pub async fn kms_get_key_policy(&self, principal: &Principal, key_id: &str) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:GetKeyPolicy", &key).await?;
        Ok(key)
    }

    pub async fn kms_put_key_policy(&self, principal: &Principal, key_id: &str, policy: String) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:PutKeyPolicy", &key).await?;
        customer_managed(&key)?;
        check_key_policy(&policy)?;
        self.update_key(key, |doc| {
            doc.policy = policy.clone();
            Ok(())
        })
        .await
    }

    pub async fn kms_tag(&self, principal: &Principal, key_id: &str, tags: Vec<KeyTag>) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:TagResource", &key).await?;
        check_tags(&tags)?;
        self.update_key(key, |doc| {
            for tag in &tags {
                match doc.tags.iter_mut().find(|t| t.key == tag.key) {
                    Some(t) => t.value = tag.value.clone(),
                    None => doc.tags.push(tag.clone()),
                }
            }
            if doc.tags.len() > MAX_TAGS {
                return Err(KmsError::Tag(format!("A key can have at most {MAX_TAGS} tags")));
            }
            Ok(())
        })
        .await
    }

    pub async fn kms_untag(&self, principal: &Principal, key_id: &str, keys: Vec<String>) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:UntagResource", &key).await?;
        self.update_key(key, |doc| {
            doc.tags.retain(|t| !keys.contains(&t.key));
            Ok(())
        })
        .await
    }

    pub async fn kms_list_tags(&self, principal: &Principal, key_id: &str) -> KmsResult<Key> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:ListResourceTags", &key).await?;
        Ok(key)
    }

    // ---- aliases ----

    /// CreateAlias (`update` false) and UpdateAlias (`update` true): the caller needs the
    /// action on the alias's target key (and, for UpdateAlias, on the key it leaves).
    pub async fn kms_put_alias(&self, principal: &Principal, alias: &str, target: &str, update: bool) -> KmsResult<()> {
        doc::check_alias_name(alias)?;
        self.key_service()?;
        let action = if update { "kms:UpdateAlias" } else { "kms:CreateAlias" };
        let key = self.kms_key(principal, target).await?;
        self.allow_kms(principal, action, &key).await?;
        if key.doc.state == KeyState::PendingDeletion {
            return Err(KmsError::InvalidState(format!("{} is pending deletion.", key.doc.arn)));
        }
        let scope = self.caller_region(principal);
        if (key.account.as_str(), key.region.as_str()) != (scope.account.as_str(), scope.region.as_str()) {
            return Err(KmsError::Validation("An alias and its key must be in the same account and region".into()));
        }
        let now = self.now();
        let existing = self.meta.get_alias(&scope.account, &scope.region, alias).await?;
        if update {
            let Some(old) = &existing else {
                return Err(KmsError::NotFound(format!("Alias {} is not found.", doc::alias_arn(&scope.region, &scope.account, alias))));
            };
            let old_key = self.kms_key(principal, &old.key_id).await?;
            self.allow_kms(principal, action, &old_key).await?;
        }
        let created = existing.as_ref().map_or(now, |a| a.created);
        let row = AliasRow { alias: alias.to_string(), key_id: key.key_id.clone(), created, updated: now };
        if !self.meta.put_alias(&scope.account, &scope.region, &row, update).await? {
            return Err(if update {
                KmsError::NotFound(format!("Alias {} is not found.", doc::alias_arn(&scope.region, &scope.account, alias)))
            } else {
                KmsError::AlreadyExists(format!(
                    "An alias with the name {} already exists",
                    doc::alias_arn(&scope.region, &scope.account, alias)
                ))
            });
        }
        Ok(())
    }

    pub async fn kms_delete_alias(&self, principal: &Principal, alias: &str) -> KmsResult<()> {
        self.key_service()?;
        let scope = self.caller_region(principal);
        if alias.starts_with("alias/aws/") {
            return Err(KmsError::InvalidAliasName(format!("{alias} belongs to an AWS managed key and cannot be deleted")));
        }
        let Some(row) = self.meta.get_alias(&scope.account, &scope.region, alias).await? else {
            return Err(KmsError::NotFound(format!("Alias {} is not found.", doc::alias_arn(&scope.region, &scope.account, alias))));
        };
        let key = self.kms_key(principal, &row.key_id).await?;
        self.allow_kms(principal, "kms:DeleteAlias", &key).await?;
        self.meta.delete_alias(&scope.account, &scope.region, alias).await?;
        Ok(())
    }

    /// ListAliases of the caller's account and region, or only those of one key.
    pub async fn kms_list_aliases(&self, principal: &Principal, key_id: Option<&str>) -> KmsResult<(RegistryRef, Vec<AliasRow>)> {
        let scope = self.allow_kms_account(principal, "kms:ListAliases").await?;
        self.key_service()?;
        let mut aliases = self.meta.list_aliases(&scope.account, &scope.region).await?;
        if let Some(key_id) = key_id {
            let key = self.kms_key(principal, key_id).await?;
            aliases.retain(|a| a.key_id == key.key_id);
        }
        Ok((scope, aliases))
    }

    // ---- cryptography ----

    /// Encrypt: at most 4096 bytes under the key's current material.
    pub async fn kms_encrypt(
        &self,
        principal: &Principal,
        key_id: &str,
        plaintext: &[u8],
        context: &[(String, String)],
    ) -> KmsResult<(String, Vec<u8>)> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:Encrypt", &key).await?;
        if plaintext.is_empty() || plaintext.len() > 4096 {
            return Err(KmsError::Validation(
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and 4096".into(),
            ));
        }
        let blob = self.seal_under(&key, plaintext, context)?;
        Ok((key.doc.arn, blob))
    }

    /// Decrypt: the ciphertext names its key; a `KeyId` given must name the same key.
    pub async fn kms_decrypt(
        &self,
        principal: &Principal,
        blob: &[u8],
        context: &[(String, String)],
        key_id: Option<&str>,
    ) -> KmsResult<(String, Zeroizing<Vec<u8>>)> {
        let (key, plaintext) = self.open_blob(principal, "kms:Decrypt", blob, context, key_id).await?;
        Ok((key.doc.arn, plaintext))
    }

    /// ReEncrypt: decrypt under the source key and encrypt under the destination key, the
    /// plaintext never leaving berth.
    pub async fn kms_reencrypt(
        &self,
        principal: &Principal,
        blob: &[u8],
        source_context: &[(String, String)],
        source_key: Option<&str>,
        destination_key: &str,
        destination_context: &[(String, String)],
    ) -> KmsResult<(String, String, Vec<u8>)> {
        let (source, plaintext) = self.open_blob(principal, "kms:ReEncryptFrom", blob, source_context, source_key).await?;
        let destination = self.kms_key(principal, destination_key).await?;
        self.allow_kms(principal, "kms:ReEncryptTo", &destination).await?;
        let sealed = self.seal_under(&destination, &plaintext, destination_context)?;
        Ok((source.doc.arn, destination.doc.arn, sealed))
    }

    /// GenerateDataKey / GenerateDataKeyWithoutPlaintext (`with_plaintext` false: the plaintext
    /// is dropped here and never returned).
    pub async fn kms_generate_data_key(
        &self,
        principal: &Principal,
        key_id: &str,
        bytes: usize,
        context: &[(String, String)],
        with_plaintext: bool,
    ) -> KmsResult<DataKey> {
        let key = self.kms_key(principal, key_id).await?;
        let action = if with_plaintext { "kms:GenerateDataKey" } else { "kms:GenerateDataKeyWithoutPlaintext" };
        self.allow_kms(principal, action, &key).await?;
        if !(1..=1024).contains(&bytes) {
            return Err(KmsError::Validation(
                "1 validation error detected: Value at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024".into(),
            ));
        }
        let mut plaintext = Zeroizing::new(vec![0u8; bytes]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, plaintext.as_mut_slice());
        let ciphertext = self.seal_under(&key, &plaintext, context)?;
        Ok(DataKey { key_arn: key.doc.arn, plaintext: if with_plaintext { plaintext } else { Zeroizing::new(Vec::new()) }, ciphertext })
    }

    fn seal_under(&self, key: &Key, plaintext: &[u8], context: &[(String, String)]) -> KmsResult<Vec<u8>> {
        usable_for_crypto(&key.doc)?;
        let svc = self.key_service()?;
        let current = key.doc.current()?;
        let material = unwrap_material(&svc.root, &key.doc.arn, current)?;
        ciphertext::seal(&material, &key.key_id, current.version, plaintext, context)
    }

    async fn open_blob(
        &self,
        principal: &Principal,
        action: &str,
        blob: &[u8],
        context: &[(String, String)],
        key_id: Option<&str>,
    ) -> KmsResult<(Key, Zeroizing<Vec<u8>>)> {
        let header = ciphertext::Header::parse(blob)?;
        let svc = self.key_service()?;
        let row = self
            .meta
            .get_key(&header.key_id)
            .await?
            .ok_or_else(|| KmsError::InvalidCiphertext("The ciphertext refers to a key that does not exist".into()))?;
        let arn = doc::key_arn(&row.region, &row.account, &row.key_id);
        let key = self.kms_key(principal, &arn).await.map_err(|e| match e {
            KmsError::NotFound(_) => {
                KmsError::InvalidCiphertext("The ciphertext refers to a key that does not exist or was deleted".into())
            }
            other => other,
        })?;
        if let Some(named) = key_id {
            let named = self.kms_key(principal, named).await?;
            if named.key_id != key.key_id {
                return Err(KmsError::IncorrectKey(
                    "The key ID in the request does not identify a CMK that can perform this operation.".into(),
                ));
            }
        }
        self.allow_kms(principal, action, &key).await?;
        usable_for_crypto(&key.doc)?;
        let version = key
            .doc
            .version(header.version)
            .ok_or_else(|| KmsError::InvalidCiphertext("The ciphertext names a key version that does not exist".into()))?;
        let material = unwrap_material(&svc.root, &key.doc.arn, version)?;
        let plaintext = ciphertext::open(&material, &header, blob, context)?;
        Ok((key, plaintext))
    }
}

/// A key service refusal met while serving a repository: ECR's KmsException naming the KMS error.
fn for_repository(e: KmsError) -> crate::RegistryError {
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
