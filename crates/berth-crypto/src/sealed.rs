//! One AES-256-GCM message: `nonce (12) || ciphertext || tag (16)`, with a fresh random
//! nonce per message (safe for the message counts one key sees here: data keys are per
//! object, and key material wraps are rare).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::CryptoError;

/// AES-256 keys are 32 bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A fresh random 256-bit key from the OS.
pub fn random_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(key.as_mut());
    key
}

/// Encrypts `plaintext` under `key`, binding `aad` (which must be given again to open it).
pub fn seal(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    // Encryption fails only for messages beyond GCM's 64 GiB limit, never for these sizes.
    let ciphertext = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad }).unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// Opens what [`seal`] made under the same key and `aad`.
pub fn open(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed("shorter than a nonce and a tag"));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(key.into());
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad }).map(Zeroizing::new).map_err(|_| CryptoError::NotAuthentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_message_opens_only_with_its_key_and_context() {
        let key = random_key();
        let sealed = seal(&key, b"context", b"secret material");
        assert_eq!(open(&key, b"context", &sealed).expect("opens").as_slice(), b"secret material");
        assert_eq!(open(&key, b"other", &sealed), Err(CryptoError::NotAuthentic));
        assert_eq!(open(&random_key(), b"context", &sealed), Err(CryptoError::NotAuthentic));
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(open(&key, b"context", &flipped), Err(CryptoError::NotAuthentic));
        assert!(matches!(open(&key, b"context", &sealed[..10]), Err(CryptoError::Malformed(_))));
        assert_ne!(seal(&key, b"context", b"secret material"), sealed, "a fresh nonce per message");
    }
}
