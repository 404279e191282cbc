//! Key policies and tags.

use super::*;

impl Registry {
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
}
