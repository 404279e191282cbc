//! SIGN_VERIFY keys: ECC_NIST_P256 and RSA_2048 (berth_crypto::asymmetric), Sign, Verify and
//! GetPublicKey. The private key is the key's sealed material; it is opened for one signature.

use base64::Engine;
use berth_crypto::asymmetric::{self, SigningError, SigningSpec};
use zeroize::Zeroizing;

use super::error::{KmsError, KmsResult};
use super::{unwrap_bytes, usable_now, Key};
use crate::auth::Principal;
use crate::Registry;

/// KMS limits the message of Sign and Verify to 4096 bytes.
const MAX_MESSAGE: usize = 4096;

/// CreateKey's KeySpec and KeyUsage: None for a symmetric key, else the signing spec.
pub(super) fn spec_of(key_spec: Option<&str>, key_usage: Option<&str>) -> KmsResult<Option<SigningSpec>> {
    match key_spec.unwrap_or("SYMMETRIC_DEFAULT") {
        "SYMMETRIC_DEFAULT" => match key_usage.unwrap_or("ENCRYPT_DECRYPT") {
            "ENCRYPT_DECRYPT" => Ok(None),
            usage => Err(KmsError::Validation(format!("KeyUsage {usage} is not compatible with KeySpec SYMMETRIC_DEFAULT"))),
        },
        spec => {
            let Some(signing) = SigningSpec::parse(spec) else {
                return Err(KmsError::UnsupportedOperation(format!(
                    "berth's key service makes SYMMETRIC_DEFAULT, ECC_NIST_P256 and RSA_2048 keys; {spec} is not supported yet"
                )));
            };
            match key_usage {
                Some("SIGN_VERIFY") => Ok(Some(signing)),
                Some("ENCRYPT_DECRYPT") if signing == SigningSpec::Rsa2048 => {
                    Err(KmsError::UnsupportedOperation("berth's RSA_2048 keys sign and verify; RSA encryption is not supported".into()))
                }
                usage => Err(KmsError::Validation(format!(
                    "KeyUsage {} is not compatible with KeySpec {spec}: use SIGN_VERIFY",
                    usage.unwrap_or("ENCRYPT_DECRYPT")
                ))),
            }
        }
    }
}

/// A new key pair, made off the async threads (RSA key generation takes a while).
pub(super) async fn generate(spec: SigningSpec) -> KmsResult<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    tokio::task::spawn_blocking(move || asymmetric::generate(spec))
        .await
        .map_err(|e| KmsError::Internal(format!("key generation did not finish: {e}")))?
        .map_err(signing_error)
}

fn signing_error(e: SigningError) -> KmsError {
    match e {
        SigningError::Algorithm(m) => KmsError::InvalidKeyUsage(m),
        SigningError::DigestLength => KmsError::Validation(e.to_string()),
        SigningError::Invalid => KmsError::InvalidSignature("Signature verification failed".into()),
        SigningError::Material => KmsError::Internal("the key's material cannot be read".into()),
    }
}

/// The message is RAW (hashed here) or DIGEST (the caller's SHA-256 digest).
fn is_digest(message_type: Option<&str>) -> KmsResult<bool> {
    match message_type.unwrap_or("RAW") {
        "RAW" => Ok(false),
        "DIGEST" => Ok(true),
        other => Err(KmsError::Validation(format!("MessageType {other} is not RAW or DIGEST"))),
    }
}

fn signing_key(key: &Key) -> KmsResult<SigningSpec> {
    usable_now(&key.doc)?;
    key.doc
        .signing_spec()
        .ok_or_else(|| KmsError::InvalidKeyUsage(format!("{} key usage is {}: it cannot sign or verify", key.doc.arn, key.doc.key_usage)))
}

fn check_message(message: &[u8]) -> KmsResult<()> {
    if message.is_empty() || message.len() > MAX_MESSAGE {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length between 1 and {MAX_MESSAGE}"
        )));
    }
    Ok(())
}

impl Registry {
    /// Sign: the key's private key signs the message (or its digest); returns the key ARN and
    /// the signature.
    pub async fn kms_sign(
        &self,
        principal: &Principal,
        key_id: &str,
        message: &[u8],
        message_type: Option<&str>,
        algorithm: &str,
    ) -> KmsResult<(String, Vec<u8>)> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:Sign", &key).await?;
        let spec = signing_key(&key)?;
        check_message(message)?;
        let digest = is_digest(message_type)?;
        let svc = self.key_service()?;
        let material = key.doc.current()?;
        let private = unwrap_bytes(&svc.root, &key.doc.arn, material)?;
        let signature = asymmetric::sign(spec, &private, algorithm, message, digest).map_err(signing_error)?;
        Ok((key.doc.arn, signature))
    }

    /// Verify: Ok when the signature is valid; an invalid one is KMSInvalidSignatureException.
    pub async fn kms_verify(
        &self,
        principal: &Principal,
        key_id: &str,
        message: &[u8],
        message_type: Option<&str>,
        signature: &[u8],
        algorithm: &str,
    ) -> KmsResult<String> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:Verify", &key).await?;
        let spec = signing_key(&key)?;
        check_message(message)?;
        let digest = is_digest(message_type)?;
        let public = public_key_der(&key)?;
        asymmetric::verify(spec, &public, algorithm, message, digest, signature).map_err(signing_error)?;
        Ok(key.doc.arn)
    }

    /// GetPublicKey: the SubjectPublicKeyInfo DER of a SIGN_VERIFY key.
    pub async fn kms_public_key(&self, principal: &Principal, key_id: &str) -> KmsResult<(Key, Vec<u8>)> {
        let key = self.kms_key(principal, key_id).await?;
        self.allow_kms(principal, "kms:GetPublicKey", &key).await?;
        signing_key(&key)?;
        let public = public_key_der(&key)?;
        Ok((key, public))
    }
}

fn public_key_der(key: &Key) -> KmsResult<Vec<u8>> {
    let text = key.doc.public_key.as_deref().ok_or_else(|| KmsError::Internal(format!("{} has no public key", key.doc.arn)))?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| KmsError::Internal(format!("the public key of {} is damaged", key.doc.arn)))
}
