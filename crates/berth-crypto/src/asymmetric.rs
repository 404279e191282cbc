//! Asymmetric signing keys for the key service's SIGN_VERIFY keys, on RustCrypto's p256 and
//! rsa crates: ECC_NIST_P256 with ECDSA_SHA_256 (DER signatures, as KMS returns them) and
//! RSA_2048 with RSASSA_PKCS1_V1_5_SHA_256 / RSASSA_PSS_SHA_256. Private keys travel as PKCS#8
//! DER (to be sealed by the caller), public keys as SubjectPublicKeyInfo DER (GetPublicKey's
//! shape).

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand_core::OsRng;
use rsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use rsa::signature::SignatureEncoding;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A SIGN_VERIFY key spec berth makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningSpec {
    EccNistP256,
    Rsa2048,
}

impl SigningSpec {
    pub fn parse(spec: &str) -> Option<Self> {
        match spec {
            "ECC_NIST_P256" => Some(SigningSpec::EccNistP256),
            "RSA_2048" => Some(SigningSpec::Rsa2048),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SigningSpec::EccNistP256 => "ECC_NIST_P256",
            SigningSpec::Rsa2048 => "RSA_2048",
        }
    }

    /// The signing algorithms KMS lists for the spec (the subset berth implements).
    pub fn algorithms(self) -> &'static [&'static str] {
        match self {
            SigningSpec::EccNistP256 => &["ECDSA_SHA_256"],
            SigningSpec::Rsa2048 => &["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PSS_SHA_256"],
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("{0}")]
    Algorithm(String),
    #[error("the key material cannot be read")]
    Material,
    #[error("a DIGEST message must be the 32 bytes of a SHA-256 digest")]
    DigestLength,
    #[error("the signature is not valid")]
    Invalid,
}

/// A new key pair: (PKCS#8 private key, SubjectPublicKeyInfo public key).
pub fn generate(spec: SigningSpec) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), SigningError> {
    match spec {
        SigningSpec::EccNistP256 => {
            let key = p256::ecdsa::SigningKey::random(&mut OsRng);
            let private = key.to_pkcs8_der().map_err(|_| SigningError::Material)?;
            let public = key.verifying_key().to_public_key_der().map_err(|_| SigningError::Material)?;
            Ok((Zeroizing::new(private.as_bytes().to_vec()), public.as_bytes().to_vec()))
        }
        SigningSpec::Rsa2048 => {
            let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(|_| SigningError::Material)?;
            let private = rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(&key).map_err(|_| SigningError::Material)?;
            let public = rsa::pkcs8::EncodePublicKey::to_public_key_der(&key.to_public_key()).map_err(|_| SigningError::Material)?;
            Ok((Zeroizing::new(private.as_bytes().to_vec()), public.as_bytes().to_vec()))
        }
    }
}

/// The SHA-256 digest a signature covers: of the message (RAW), or the message itself (DIGEST).
fn digest_of(message: &[u8], is_digest: bool) -> Result<[u8; 32], SigningError> {
    if is_digest {
        message.try_into().map_err(|_| SigningError::DigestLength)
    } else {
        Ok(Sha256::digest(message).into())
    }
}

fn check_algorithm(spec: SigningSpec, algorithm: &str) -> Result<(), SigningError> {
    if spec.algorithms().contains(&algorithm) {
        Ok(())
    } else {
        Err(SigningError::Algorithm(format!(
            "{algorithm} is not a signing algorithm of a {} key (use one of {})",
            spec.as_str(),
            spec.algorithms().join(", ")
        )))
    }
}

pub fn sign(spec: SigningSpec, private_pkcs8: &[u8], algorithm: &str, message: &[u8], is_digest: bool) -> Result<Vec<u8>, SigningError> {
    check_algorithm(spec, algorithm)?;
    let digest = digest_of(message, is_digest)?;
    match spec {
        SigningSpec::EccNistP256 => {
            let key = p256::ecdsa::SigningKey::from_pkcs8_der(private_pkcs8).map_err(|_| SigningError::Material)?;
            let sig: p256::ecdsa::Signature = key.sign_prehash(&digest).map_err(|_| SigningError::Material)?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        SigningSpec::Rsa2048 => {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(private_pkcs8).map_err(|_| SigningError::Material)?;
            if algorithm == "RSASSA_PSS_SHA_256" {
                let signer = rsa::pss::SigningKey::<Sha256>::new(key);
                let sig = rsa_pss_sign_prehash(&signer, &digest)?;
                Ok(sig)
            } else {
                let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key);
                let sig = signer.sign_prehash(&digest).map_err(|_| SigningError::Material)?;
                Ok(sig.to_vec())
            }
        }
    }
}

/// PSS signs with a random salt; the prehash form of the rsa crate's PSS signer is randomized.
fn rsa_pss_sign_prehash(signer: &rsa::pss::SigningKey<Sha256>, digest: &[u8; 32]) -> Result<Vec<u8>, SigningError> {
    use rsa::signature::hazmat::RandomizedPrehashSigner;
    let sig = signer.sign_prehash_with_rng(&mut OsRng, digest).map_err(|_| SigningError::Material)?;
    Ok(sig.to_vec())
}

pub fn verify(
    spec: SigningSpec,
    public_spki: &[u8],
    algorithm: &str,
    message: &[u8],
    is_digest: bool,
    signature: &[u8],
) -> Result<(), SigningError> {
    check_algorithm(spec, algorithm)?;
    let digest = digest_of(message, is_digest)?;
    match spec {
        SigningSpec::EccNistP256 => {
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(public_spki).map_err(|_| SigningError::Material)?;
            let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| SigningError::Invalid)?;
            key.verify_prehash(&digest, &sig).map_err(|_| SigningError::Invalid)
        }
        SigningSpec::Rsa2048 => {
            let key = rsa::RsaPublicKey::from_public_key_der(public_spki).map_err(|_| SigningError::Material)?;
            if algorithm == "RSASSA_PSS_SHA_256" {
                let sig = rsa::pss::Signature::try_from(signature).map_err(|_| SigningError::Invalid)?;
                rsa::pss::VerifyingKey::<Sha256>::new(key).verify_prehash(&digest, &sig).map_err(|_| SigningError::Invalid)
            } else {
                let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| SigningError::Invalid)?;
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key).verify_prehash(&digest, &sig).map_err(|_| SigningError::Invalid)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p256_signatures_verify_and_refuse_changes() {
        let (private, public) = generate(SigningSpec::EccNistP256).expect("key");
        let sig = sign(SigningSpec::EccNistP256, &private, "ECDSA_SHA_256", b"release v1", false).expect("sign");
        assert_eq!(verify(SigningSpec::EccNistP256, &public, "ECDSA_SHA_256", b"release v1", false, &sig), Ok(()));
        assert_eq!(verify(SigningSpec::EccNistP256, &public, "ECDSA_SHA_256", b"release v2", false, &sig), Err(SigningError::Invalid));
        let digest: [u8; 32] = Sha256::digest(b"release v1").into();
        assert_eq!(verify(SigningSpec::EccNistP256, &public, "ECDSA_SHA_256", &digest, true, &sig), Ok(()), "RAW and DIGEST agree");
        assert_eq!(sign(SigningSpec::EccNistP256, &private, "ECDSA_SHA_256", b"short", true), Err(SigningError::DigestLength));
        assert!(matches!(sign(SigningSpec::EccNistP256, &private, "RSASSA_PSS_SHA_256", b"m", false), Err(SigningError::Algorithm(_))));
    }

    #[test]
    fn rsa_signatures_verify_with_both_paddings() {
        let (private, public) = generate(SigningSpec::Rsa2048).expect("key");
        for alg in ["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PSS_SHA_256"] {
            let sig = sign(SigningSpec::Rsa2048, &private, alg, b"payload", false).expect("sign");
            assert_eq!(sig.len(), 256);
            assert_eq!(verify(SigningSpec::Rsa2048, &public, alg, b"payload", false, &sig), Ok(()), "{alg}");
            assert_eq!(verify(SigningSpec::Rsa2048, &public, alg, b"payloaD", false, &sig), Err(SigningError::Invalid), "{alg}");
        }
    }
}
