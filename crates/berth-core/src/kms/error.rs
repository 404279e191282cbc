//! What the key service can refuse, by KMS's own exception names (the adapter maps each to
//! its `__type` in one place).

use crate::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArn(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Disabled(String),
    /// The key's state does not allow the call (pending deletion, or a change it is not in).
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    InvalidCiphertext(String),
    /// Decrypt named a key other than the one that encrypted the ciphertext.
    #[error("{0}")]
    IncorrectKey(String),
    #[error("{0}")]
    InvalidKeyUsage(String),
    #[error("{0}")]
    InvalidAliasName(String),
    /// Verify of a signature that does not match.
    #[error("{0}")]
    InvalidSignature(String),
    #[error("{0}")]
    MalformedPolicyDocument(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("{0}")]
    Tag(String),
    /// A key service fault the caller cannot fix (no root key, undecipherable material).
    #[error("{0}")]
    Internal(String),
    /// Authentication, authorization and storage failures, as everywhere else.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<berth_store::StoreError> for KmsError {
    fn from(e: berth_store::StoreError) -> Self {
        KmsError::Registry(RegistryError::Store(e))
    }
}

pub type KmsResult<T> = Result<T, KmsError>;
