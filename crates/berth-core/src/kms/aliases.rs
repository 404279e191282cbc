//! Aliases: `alias/<name>` per account and region, pointing at a key.

use super::*;

impl Registry {
    /// CreateAlias (`update` false) and UpdateAlias (`update` true), answering the target key's
    /// ARN (the call's resource): the caller needs the
    /// action on the alias's target key (and, for UpdateAlias, on the key it leaves).
    pub async fn kms_put_alias(&self, principal: &Principal, alias: &str, target: &str, update: bool) -> KmsResult<String> {
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
        Ok(key.doc.arn)
    }

    pub async fn kms_delete_alias(&self, principal: &Principal, alias: &str) -> KmsResult<String> {
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
        Ok(key.doc.arn)
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
}
