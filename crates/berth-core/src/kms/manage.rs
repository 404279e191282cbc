//! Creating keys and changing their state: CreateKey, the AWS managed keys, DescribeKey,
//! ListKeys, Enable/DisableKey, Schedule/CancelKeyDeletion, UpdateKeyDescription, and the
//! key a KMS-encrypted repository uses.

use super::*;

impl Registry {
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
}
