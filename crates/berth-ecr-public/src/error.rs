//! ECR Public's exceptions: the one place their names and statuses are chosen. Every refusal
//! of the registry service becomes one of the model's exception names (`Exception`).

use berth_aws::error::AwsError;
use berth_core::RegistryError;
use http::StatusCode;

/// The exceptions of botocore's `ecr-public` model that berth answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exception {
    InvalidParameter,
    InvalidTagParameter,
    TooManyTags,
    RepositoryAlreadyExists,
    RepositoryNotFound,
    RepositoryNotEmpty,
    RepositoryPolicyNotFound,
    RepositoryCatalogDataNotFound,
    RegistryNotFound,
    ImageNotFound,
    ImageAlreadyExists,
    ImageTagAlreadyExists,
    ImageDigestDoesNotMatch,
    LayersNotFound,
    ReferencedImagesNotFound,
    InvalidLayer,
    InvalidLayerPart,
    LayerPartTooSmall,
    LayerAlreadyExists,
    EmptyUpload,
    UploadNotFound,
    LimitExceeded,
    UnsupportedCommand,
    Server,
}

impl Exception {
    pub fn name(self) -> &'static str {
        use Exception as E;
        match self {
            E::InvalidParameter => "InvalidParameterException",
            E::InvalidTagParameter => "InvalidTagParameterException",
            E::TooManyTags => "TooManyTagsException",
            E::RepositoryAlreadyExists => "RepositoryAlreadyExistsException",
            E::RepositoryNotFound => "RepositoryNotFoundException",
            E::RepositoryNotEmpty => "RepositoryNotEmptyException",
            E::RepositoryPolicyNotFound => "RepositoryPolicyNotFoundException",
            E::RepositoryCatalogDataNotFound => "RepositoryCatalogDataNotFoundException",
            E::RegistryNotFound => "RegistryNotFoundException",
            E::ImageNotFound => "ImageNotFoundException",
            E::ImageAlreadyExists => "ImageAlreadyExistsException",
            E::ImageTagAlreadyExists => "ImageTagAlreadyExistsException",
            E::ImageDigestDoesNotMatch => "ImageDigestDoesNotMatchException",
            E::LayersNotFound => "LayersNotFoundException",
            E::ReferencedImagesNotFound => "ReferencedImagesNotFoundException",
            E::InvalidLayer => "InvalidLayerException",
            E::InvalidLayerPart => "InvalidLayerPartException",
            E::LayerPartTooSmall => "LayerPartTooSmallException",
            E::LayerAlreadyExists => "LayerAlreadyExistsException",
            E::EmptyUpload => "EmptyUploadException",
            E::UploadNotFound => "UploadNotFoundException",
            E::LimitExceeded => "LimitExceededException",
            E::UnsupportedCommand => "UnsupportedCommandException",
            E::Server => "ServerException",
        }
    }

    pub fn error(self, message: impl Into<String>) -> AwsError {
        let e = AwsError::new(self.name(), message);
        match self {
            Exception::Server => e.with_status(StatusCode::INTERNAL_SERVER_ERROR),
            _ => e,
        }
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> AwsError {
    Exception::InvalidParameter.error(message)
}

/// The service's refusal as ECR Public's exception.
pub(crate) fn from_registry(e: RegistryError) -> AwsError {
    use Exception as E;
    use RegistryError as R;
    let msg = e.to_string();
    let exception = match e {
        R::NameUnknown(repo) => {
            return E::RepositoryNotFound
                .error(format!("The repository with name '{repo}' does not exist in the registry with id '{}'", repo.key().account))
        }
        R::ImageNotFound(_) | R::ManifestUnknown(_) | R::ImageArchived(_) => E::ImageNotFound,
        R::RepositoryExists(_) => E::RepositoryAlreadyExists,
        R::RepositoryNotEmpty(_) => E::RepositoryNotEmpty,
        R::PolicyNotFound(_) => E::RepositoryPolicyNotFound,
        R::TooManyTags(_) => E::TooManyTags,
        R::InvalidTagParameter(_) => E::InvalidTagParameter,
        R::ManifestBlobUnknown(_) | R::BlobUnknown(_) | R::BlobQuarantined(_) => E::LayersNotFound,
        R::ManifestChildUnknown(_) => E::ReferencedImagesNotFound,
        R::BlobUploadUnknown => E::UploadNotFound,
        R::BlobUploadInvalid(_) | R::UploadRangeInvalid { .. } | R::SizeInvalid(_) | R::InvalidLayerPart { .. } => E::InvalidLayerPart,
        R::LayerPartTooSmall(_) => E::LayerPartTooSmall,
        R::LayerAlreadyExists(_) => E::LayerAlreadyExists,
        R::EmptyUpload(_) => E::EmptyUpload,
        R::TagImmutable { .. } => E::ImageTagAlreadyExists,
        R::ImageAlreadyExists(_) => E::ImageAlreadyExists,
        R::ImageDigestMismatch(_) => E::ImageDigestDoesNotMatch,
        R::LimitExceeded(_) => E::LimitExceeded,
        R::Denied(m) => return AwsError::new("AccessDeniedException", m),
        R::Throttled { message, .. } => return AwsError::throttled(message),
        R::Unauthenticated(f) => return AwsError::from_auth(&f),
        R::Store(e) => return AwsError::from_store(&e, E::Server.name(), E::Server.name()),
        R::Kms { .. } => E::Server,
        _ => E::InvalidParameter,
    };
    exception.error(msg)
}
