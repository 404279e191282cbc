//! The secrets service's refusals as Secrets Manager's exceptions: the one place their names
//! and statuses are chosen. Messages come from the service, which never puts a value in one.

use berth_aws::error::AwsError;
use berth_core::secrets::SecretsError;
use berth_core::RegistryError;
use http::StatusCode;

pub(crate) fn from_secrets(e: SecretsError) -> AwsError {
    match e {
        SecretsError::Registry(e) => from_registry(e),
        SecretsError::Internal(m) => {
            tracing::error!(error = %m, "secrets service failure");
            AwsError::new("InternalServiceError", m).with_status(StatusCode::INTERNAL_SERVER_ERROR)
        }
        other => AwsError::new(code(&other), other.to_string()),
    }
}

fn code(e: &SecretsError) -> &'static str {
    match e {
        SecretsError::NotFound(_) => "ResourceNotFoundException",
        SecretsError::Exists(_) => "ResourceExistsException",
        SecretsError::InvalidParameter(_) => "InvalidParameterException",
        SecretsError::InvalidRequest(_) => "InvalidRequestException",
        SecretsError::InvalidNextToken(_) => "InvalidNextTokenException",
        SecretsError::LimitExceeded(_) => "LimitExceededException",
        SecretsError::Encryption(_) => "EncryptionFailure",
        SecretsError::Decryption(_) => "DecryptionFailure",
        SecretsError::Internal(_) => "InternalServiceError",
        SecretsError::Registry(_) => "AccessDeniedException",
    }
}

pub(crate) fn from_registry(e: RegistryError) -> AwsError {
    match e {
        RegistryError::Unauthenticated(f) => AwsError::from_auth(&f),
        RegistryError::Denied(m) => AwsError::new("AccessDeniedException", m),
        RegistryError::Throttled { message, .. } => AwsError::throttled(message),
        RegistryError::Store(e) => AwsError::from_store(&e, "InternalServiceError", "InternalServiceError"),
        other => AwsError::new("InvalidParameterException", other.to_string()),
    }
}
