//! Encrypt, Decrypt, ReEncrypt and data keys: the key's current material seals, the version
//! a ciphertext names opens.

use super::*;

impl Registry {
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

    pub(super) fn seal_under(&self, key: &Key, plaintext: &[u8], context: &[(String, String)]) -> KmsResult<Vec<u8>> {
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
