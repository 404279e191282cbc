//! The key service's refusals as KMS's exceptions: the one place their names and statuses
//! are chosen.

use berth_aws::error::AwsError;
use berth_core::kms::KmsError;
use berth_core::RegistryError;
use http::StatusCode;

pub(crate) fn from_kms(e: KmsError) -> AwsError {
    match e {
        KmsError::Registry(e) => from_registry(e),
        KmsError::Internal(m) => {
            tracing::error!(error = %m, "key service failure");
            AwsError::new("KMSInternalException", m).with_status(StatusCode::INTERNAL_SERVER_ERROR)
        }
        other => AwsError::new(code(&other), other.to_string()),
    }
}

fn code(e: &KmsError) -> &'static str {
    match e {
        KmsError::NotFound(_) => "NotFoundException",
        KmsError::InvalidArn(_) => "InvalidArnException",
        KmsError::Validation(_) => "ValidationException",
        KmsError::AlreadyExists(_) => "AlreadyExistsException",
        KmsError::Disabled(_) => "DisabledException",
        KmsError::InvalidState(_) => "KMSInvalidStateException",
        KmsError::InvalidCiphertext(_) => "InvalidCiphertextException",
        KmsError::IncorrectKey(_) => "IncorrectKeyException",
        KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
        KmsError::InvalidAliasName(_) => "InvalidAliasNameException",
        KmsError::InvalidSignature(_) => "KMSInvalidSignatureException",
        KmsError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
        KmsError::LimitExceeded(_) => "LimitExceededException",
        KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
        KmsError::Tag(_) => "TagException",
        KmsError::Internal(_) => "KMSInternalException",
        KmsError::Registry(_) => "AccessDeniedException",
    }
}

pub(crate) fn from_registry(e: RegistryError) -> AwsError {
    match e {
        RegistryError::Unauthenticated(f) => AwsError::from_auth(&f),
        RegistryError::Denied(m) => AwsError::new("AccessDeniedException", m),
        RegistryError::Throttled { message, .. } => AwsError::throttled(message),
        RegistryError::Store(e) => AwsError::from_store(&e, "DependencyTimeoutException", "KMSInternalException"),
        other => AwsError::new("ValidationException", other.to_string()),
    }
}
