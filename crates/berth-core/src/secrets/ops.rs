//! The actions on one secret: create, new values, reads, deletion and restore, tags.

use super::*;

/// CreateSecret's input (the value optional: a secret may start without one).
#[derive(Debug, Default)]
pub struct NewSecret {
    pub name: String,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub tags: Vec<SecretTag>,
    pub value: Option<SecretValue>,
    /// The new version's id; a retry with the same token and value changes nothing.
    pub client_request_token: Option<String>,
}

/// PutSecretValue's input.
#[derive(Debug)]
pub struct NewValue {
    pub value: SecretValue,
    pub client_request_token: Option<String>,
    /// The staging labels the new version takes (default: AWSCURRENT).
    pub stages: Option<Vec<String>>,
}

/// What a retried create or put with an existing `ClientRequestToken` means: the same value
/// is the same request (no change); another value is refused.
enum Retry {
    Same(VersionInfo),
    New,
}

impl Registry {
    /// CreateSecret (`secretsmanager:CreateSecret`, and `secretsmanager:TagResource` with
    /// tags, on the new ARN). Returns the secret and its first version's id, if it has one.
    pub async fn secrets_create(&self, principal: &Principal, new: NewSecret) -> SecretsResult<(Secret, Option<String>)> {
        check_name(&new.name)?;
        check_tags(&new.tags)?;
        let scope = self.secrets_scope(principal);
        if let Some(existing) = self.find_secret(&scope, &new.name).await? {
            self.authorize(principal, "secretsmanager:CreateSecret", existing.resource()).await?;
            if existing.scheduled_for_deletion() {
                return Err(SecretsError::InvalidRequest(
                    "You can't create this secret because a secret with this name is already scheduled for deletion.".into(),
                ));
            }
            if let (Some(token), Some(value)) = (&new.client_request_token, &new.value) {
                if let Retry::Same(v) = self.retried(principal, &existing, token, value).await? {
                    return Ok((existing.public(), Some(v.version_id)));
                }
            }
            return Err(SecretsError::Exists(format!("The operation failed because the secret {} already exists.", new.name)));
        }
        let arn = secret_arn(&scope, &new.name, &arn_suffix()?);
        let resource = || Resource::Secret { arn: &arn, account: &scope.account, region: &scope.region };
        self.authorize(principal, "secretsmanager:CreateSecret", resource()).await?;
        if !new.tags.is_empty() {
            self.authorize(principal, "secretsmanager:TagResource", resource()).await?;
        }
        let mut versions = Vec::new();
        if let Some(value) = &new.value {
            let id = new.client_request_token.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let mut v = self.seal_value(Some(principal), &scope, new.kms_key_id.as_deref(), &arn, &id, value).await?;
            v.stages = vec![AWSCURRENT.to_string()];
            versions.push(v);
        }
        let first_version = versions.first().map(|v| v.id.clone());
        let doc = SecretDoc { description: new.description, kms_key_id: new.kms_key_id, tags: new.tags, versions, deleted_at: None };
        let now = self.now();
        let row = SecretRow {
            account: scope.account.clone(),
            region: scope.region.clone(),
            name: new.name.clone(),
            arn,
            doc: to_json(&doc)?,
            deletion_date: None,
            created_at: now,
            updated_at: now,
            revision: 0,
        };
        if !self.meta.create_secret(&row).await? {
            return Err(SecretsError::Exists(format!("The operation failed because the secret {} already exists.", new.name)));
        }
        Ok((Stored { row, doc }.public(), first_version))
    }

    /// PutSecretValue: a new version, which takes AWSCURRENT (the previous current becomes
    /// AWSPREVIOUS) unless other stages are named. Versions left without a label are dropped.
    pub async fn secrets_put_value(&self, principal: &Principal, secret_id: &str, new: NewValue) -> SecretsResult<(Secret, VersionInfo)> {
        let s = self.authorized_secret(principal, "secretsmanager:PutSecretValue", secret_id).await?;
        if s.scheduled_for_deletion() {
            return Err(marked_for_deletion());
        }
        let stages = new.stages.clone().unwrap_or_else(|| vec![AWSCURRENT.to_string()]);
        if stages.is_empty() || stages.len() > 20 || stages.iter().any(|l| l.is_empty() || l.len() > 256) {
            return Err(SecretsError::InvalidParameter("VersionStages must hold 1 to 20 labels of 1 to 256 characters.".into()));
        }
        if let Some(token) = &new.client_request_token {
            if let Retry::Same(v) = self.retried(principal, &s, token, &new.value).await? {
                return Ok((s.public(), v));
            }
        }
        let id = new.client_request_token.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut version = self.seal_value(Some(principal), &s.scope(), s.doc.kms_key_id.as_deref(), &s.row.arn, &id, &new.value).await?;
        version.stages = stages;
        let updated = self
            .update_secret(s, |st| {
                if st.doc.versions.iter().any(|v| v.id == version.id) {
                    return Err(token_in_use(&version.id, &st.row.arn));
                }
                attach(&mut st.doc.versions, version.clone());
                Ok(())
            })
            .await?;
        let info = VersionInfo { version_id: version.id.clone(), stages: version.stages.clone(), created: version.created };
        Ok((updated.public(), info))
    }

    /// GetSecretValue: the version `version_id` names, else the one labelled `stage`
    /// (default AWSCURRENT). Refused while the secret is scheduled for deletion.
    pub async fn secrets_get_value(
        &self,
        principal: &Principal,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> SecretsResult<(Secret, VersionInfo, SecretValue)> {
        let s = self.authorized_secret(principal, "secretsmanager:GetSecretValue", secret_id).await?;
        if s.scheduled_for_deletion() {
            return Err(marked_for_deletion());
        }
        let v = pick_version(&s.doc, version_id, stage)?;
        let value = self.open_value(Some(principal), &s.row.arn, v).await?;
        let info = VersionInfo { version_id: v.id.clone(), stages: v.stages.clone(), created: v.created };
        Ok((s.public(), info, value))
    }

    /// DescribeSecret (also while a deletion is scheduled).
    pub async fn secrets_describe(&self, principal: &Principal, secret_id: &str) -> SecretsResult<Secret> {
        Ok(self.authorized_secret(principal, "secretsmanager:DescribeSecret", secret_id).await?.public())
    }

    /// DeleteSecret: scheduled after `recovery_window_days` (7–30, default 30), or at once
    /// with `force` (nothing can bring it back). Returns the secret with its deletion date.
    pub async fn secrets_delete(
        &self,
        principal: &Principal,
        secret_id: &str,
        recovery_window_days: Option<i64>,
        force: bool,
    ) -> SecretsResult<Secret> {
        if force && recovery_window_days.is_some() {
            return Err(SecretsError::InvalidParameter(
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.".into(),
            ));
        }
        let days = recovery_window_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(SecretsError::InvalidParameter("The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).".into()));
        }
        let mut s = self.authorized_secret(principal, "secretsmanager:DeleteSecret", secret_id).await?;
        if s.scheduled_for_deletion() && !force {
            return Err(marked_for_deletion());
        }
        let now = self.now();
        if force {
            for _ in 0..UPDATE_ATTEMPTS {
                if self.meta.delete_secret(&s.row.arn, s.row.revision).await? {
                    let mut gone = s.public();
                    gone.deletion_date = Some(now);
                    return Ok(gone);
                }
                let row = self.meta.secret_by_arn(&s.row.arn).await?.ok_or_else(not_found)?;
                s = Stored::from_row(row)?;
            }
            return Err(SecretsError::Internal(format!("secret {} is being changed by many callers at once; try again", s.row.arn)));
        }
        let updated = self
            .update_secret(s, |st| {
                if st.scheduled_for_deletion() {
                    return Err(marked_for_deletion());
                }
                st.row.deletion_date = Some(now + days * DAY_MS);
                st.doc.deleted_at = Some(now);
                Ok(())
            })
            .await?;
        Ok(updated.public())
    }

    /// RestoreSecret: cancels a scheduled deletion.
    pub async fn secrets_restore(&self, principal: &Principal, secret_id: &str) -> SecretsResult<Secret> {
        let s = self.authorized_secret(principal, "secretsmanager:RestoreSecret", secret_id).await?;
        let updated = self
            .update_secret(s, |st| {
                st.row.deletion_date = None;
                st.doc.deleted_at = None;
                Ok(())
            })
            .await?;
        Ok(updated.public())
    }

    /// TagResource: adds tags, replacing the values of keys the secret has.
    pub async fn secrets_tag(&self, principal: &Principal, secret_id: &str, tags: Vec<SecretTag>) -> SecretsResult<Secret> {
        check_tags(&tags)?;
        let s = self.authorized_secret(principal, "secretsmanager:TagResource", secret_id).await?;
        let updated = self
            .update_secret(s, |st| {
                for t in &tags {
                    st.doc.tags.retain(|old| old.key != t.key);
                    st.doc.tags.push(t.clone());
                }
                check_tags(&st.doc.tags)
            })
            .await?;
        Ok(updated.public())
    }

    /// UntagResource: removes the tags with these keys (absent keys are no error).
    pub async fn secrets_untag(&self, principal: &Principal, secret_id: &str, keys: Vec<String>) -> SecretsResult<Secret> {
        let s = self.authorized_secret(principal, "secretsmanager:UntagResource", secret_id).await?;
        let updated = self
            .update_secret(s, |st| {
                st.doc.tags.retain(|t| !keys.contains(&t.key));
                Ok(())
            })
            .await?;
        Ok(updated.public())
    }

    /// Whether a `ClientRequestToken` already names a version: with the same value, the
    /// request was made before; with another value, it is refused.
    async fn retried(&self, principal: &Principal, s: &Stored, token: &str, value: &SecretValue) -> SecretsResult<Retry> {
        let Some(v) = s.doc.versions.iter().find(|v| v.id == token) else { return Ok(Retry::New) };
        let stored = self.open_value(Some(principal), &s.row.arn, v).await?;
        if stored == *value {
            Ok(Retry::Same(VersionInfo { version_id: v.id.clone(), stages: v.stages.clone(), created: v.created }))
        } else {
            Err(token_in_use(token, &s.row.arn))
        }
    }
}

fn token_in_use(token: &str, arn: &str) -> SecretsError {
    SecretsError::Exists(format!(
        "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {arn}."
    ))
}

/// The version a read names.
pub(super) fn pick_version<'a>(doc: &'a SecretDoc, version_id: Option<&str>, stage: Option<&str>) -> SecretsResult<&'a StoredVersion> {
    match (version_id, stage) {
        (Some(id), stage) => {
            let v = doc.versions.iter().find(|v| v.id == id).ok_or_else(|| {
                SecretsError::NotFound(format!("Secrets Manager can't find the specified secret value for VersionId: {id}"))
            })?;
            match stage {
                Some(stage) if !v.stages.iter().any(|l| l == stage) => Err(SecretsError::InvalidRequest(
                    "You provided a VersionStage that is not associated to the provided VersionId.".into(),
                )),
                _ => Ok(v),
            }
        }
        (None, stage) => {
            let stage = stage.unwrap_or(AWSCURRENT);
            doc.versions.iter().find(|v| v.stages.iter().any(|l| l == stage)).ok_or_else(|| {
                SecretsError::NotFound(format!("Secrets Manager can't find the specified secret value for staging label: {stage}"))
            })
        }
    }
}

/// Adds `new` with its labels, taking each from the version that had it; the version that
/// loses AWSCURRENT becomes AWSPREVIOUS. Versions left without a label are dropped.
fn attach(versions: &mut Vec<StoredVersion>, new: StoredVersion) {
    let mut old_current = None;
    for label in &new.stages {
        for v in versions.iter_mut() {
            if v.stages.contains(label) {
                v.stages.retain(|l| l != label);
                if label == AWSCURRENT {
                    old_current = Some(v.id.clone());
                }
            }
        }
    }
    if let Some(previous) = old_current {
        for v in versions.iter_mut() {
            v.stages.retain(|l| l != AWSPREVIOUS);
            if v.id == previous {
                v.stages.push(AWSPREVIOUS.to_string());
            }
        }
    }
    versions.push(new);
    versions.retain(|v| !v.stages.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: &str, stages: &[&str]) -> StoredVersion {
        StoredVersion {
            id: id.into(),
            created: 0,
            stages: stages.iter().map(|s| s.to_string()).collect(),
            kind: ValueKind::String,
            sealed: String::new(),
        }
    }

    fn labels(versions: &[StoredVersion]) -> Vec<(String, Vec<String>)> {
        versions.iter().map(|v| (v.id.clone(), v.stages.clone())).collect()
    }

    #[test]
    fn current_moves_and_previous_follows() {
        let mut vs = vec![version("1", &[AWSCURRENT])];
        attach(&mut vs, version("2", &[AWSCURRENT]));
        attach(&mut vs, version("3", &[AWSCURRENT]));
        let want = vec![("2".to_string(), vec![AWSPREVIOUS.to_string()]), ("3".to_string(), vec![AWSCURRENT.to_string()])];
        assert_eq!(labels(&vs), want, "version 1 lost its last label and is gone");
        attach(&mut vs, version("4", &["AWSPENDING"]));
        assert_eq!(vs.len(), 3, "a custom label leaves the current version alone");
        assert_eq!(pick_version(&SecretDoc { versions: vs, ..Default::default() }, None, None).unwrap().id, "3");
    }
}
