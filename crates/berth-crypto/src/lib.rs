//! Encryption at rest for berth, on RustCrypto's AES-256-GCM: no cipher is written here.
//!
//! - [`RootKey`]: the 32 bytes every other key is wrapped under (`--root-key-file`, or
//!   `BERTH_ROOT_KEY`); losing it loses the data.
//! - [`seal`] / [`open`]: one AEAD message (random nonce), for wrapping key material and for
//!   small payloads such as KMS `Encrypt`.
//! - [`segmented`]: large objects (blobs) as a header plus fixed-size AEAD segments in the
//!   STREAM construction, so a range decrypts only the segments it touches, and a truncated,
//!   reordered or altered object fails authentication instead of yielding wrong bytes.

pub mod asymmetric;
mod root;
mod sealed;
pub mod segmented;

pub use root::{RootKey, RootKeyError};
pub use sealed::{open, random_key, seal, KEY_LEN};

/// Why ciphertext was refused. Deliberately vague: which check failed is not the caller's
/// business (it would help an attacker more than a user).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the ciphertext is not authentic (altered, truncated, or under another key)")]
    NotAuthentic,
    #[error("the ciphertext is malformed: {0}")]
    Malformed(&'static str),
}
