//! The key service as Secrets Manager uses it (`crate::secrets`): a secret's value sealed
//! under a KMS key (the account's AWS managed `alias/aws/secretsmanager`, or the key the
//! secret names) with the secret's ARN and version as encryption context, as Secrets Manager
//! does.
//!
//! Permissions follow AWS: the AWS managed key is used by the service on the caller's behalf
//! (its key policy admits any caller of the account through Secrets Manager), so only the
//! `secretsmanager:*` decision applies; a customer managed key also needs the caller's
//! `kms:GenerateDataKey` (to write a value) or `kms:Decrypt` (to read one) on that key. With
//! no caller (berth itself, e.g. the pull-through cache) nothing is asked of the key policy.

use super::*;

/// Secrets Manager's managed key: `alias/aws/secretsmanager`.
const SERVICE: &str = "secretsmanager";

impl Registry {
    /// Seals `value` for a secret of `scope` under `key_id` (None: the account's AWS managed
    /// key, made on first use). Returns the key's ARN and the ciphertext blob.
    pub(crate) async fn seal_secret_value(
        &self,
        caller: Option<&Principal>,
        scope: &RegistryRef,
        key_id: Option<&str>,
        value: &[u8],
        context: &[(String, String)],
    ) -> KmsResult<(String, Vec<u8>)> {
        let key = match key_id {
            None => self.kms_managed_key(scope, SERVICE).await?,
            Some(id) => self.secret_key(scope, id).await?,
        };
        if let (Some(caller), KeyManager::Customer) = (caller, key.doc.manager) {
            self.allow_kms(caller, "kms:GenerateDataKey", &key).await?;
        }
        let blob = self.seal_under(&key, value, context)?;
        Ok((key.doc.arn, blob))
    }

    /// Opens what [`Registry::seal_secret_value`] sealed, with the same context.
    pub(crate) async fn open_secret_value(
        &self,
        caller: Option<&Principal>,
        blob: &[u8],
        context: &[(String, String)],
    ) -> KmsResult<Zeroizing<Vec<u8>>> {
        let header = ciphertext::Header::parse(blob)?;
        let svc = self.key_service()?;
        let row = self
            .meta
            .get_key(&header.key_id)
            .await?
            .ok_or_else(|| KmsError::NotFound("the KMS key that encrypted the secret no longer exists".into()))?;
        let scope = RegistryRef { account: row.account.clone(), region: row.region.clone() };
        let key = self.kms_key_in(&scope, &doc::key_arn(&row.region, &row.account, &row.key_id)).await?;
        if let (Some(caller), KeyManager::Customer) = (caller, key.doc.manager) {
            self.allow_kms(caller, "kms:Decrypt", &key).await?;
        }
        usable_for_crypto(&key.doc)?;
        let version = key
            .doc
            .version(header.version)
            .ok_or_else(|| KmsError::InvalidCiphertext("the secret's ciphertext names a key version that does not exist".into()))?;
        let material = unwrap_material(&svc.root, &key.doc.arn, version)?;
        ciphertext::open(&material, &header, blob, context)
    }

    /// A key a secret names: `alias/aws/secretsmanager` is the managed key (made on first use).
    async fn secret_key(&self, scope: &RegistryRef, key_id: &str) -> KmsResult<Key> {
        match KeyName::parse(key_id)? {
            KeyName::Alias(alias) if alias == format!("alias/aws/{SERVICE}") => self.kms_managed_key(scope, SERVICE).await,
            _ => self.kms_key_in(scope, key_id).await,
        }
    }
}
