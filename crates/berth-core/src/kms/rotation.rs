//! Rotation: new material versions, on request or when a key is next used after its date;
//! earlier versions keep decrypting.

use super::*;

impl Registry {
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
    pub(super) async fn rotate_if_due(&self, key: Key) -> KmsResult<Key> {
        let due = key.doc.rotation_enabled && key.doc.state == KeyState::Enabled && key.doc.next_rotation.is_some_and(|t| t <= self.now());
        if !due {
            return Ok(key);
        }
        tracing::info!(key = %key.doc.arn, "rotating the key's material (automatic rotation is due)");
        let arn = key.doc.arn.clone();
        let rotated = self.rotate(key, "AUTOMATIC").await?;
        // KMS records an automatic rotation as CloudTrail's RotateKey service event.
        let mut parts = arn.split(':').skip(3);
        let (region, account) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
        let owner = crate::RegistryRef { account, region };
        self.record_service_event(
            "kms.amazonaws.com",
            "RotateKey",
            Some(&owner),
            serde_json::json!({ "keyId": arn, "rotationType": "AUTOMATIC" }),
        )
        .await;
        Ok(rotated)
    }
}
