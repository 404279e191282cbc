use berth_store::{Digest, StoreError};
use thiserror::Error;

/// Everything the registry service can refuse. Each adapter maps these to
/// its protocol's codes in one place.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("invalid repository name {0:?}: must be 2-256 characters of lowercase letters, digits and separators (. _ __ -), path components separated by /")]
    NameInvalid(String),
    #[error("repository {0:?} not found")]
    NameUnknown(String),
    #[error("invalid tag {0:?}: must match [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}")]
    TagInvalid(String),
    #[error(
        "the image tag '{tag}' already exists in the '{repository}' repository and cannot be overwritten because the tag is immutable"
    )]
    TagImmutable { tag: String, repository: String },
    #[error("{0}")]
    InvalidParameter(String),
    #[error("The repository with name '{0}' already exists in the registry with id '{account}'", account = .0.key().account)]
    RepositoryExists(crate::Repo),
    #[error("The repository with name '{0}' in registry with id '{account}' cannot be deleted because it still contains images", account = .0.key().account)]
    RepositoryNotEmpty(crate::Repo),
    #[error("{0}")]
    PolicyNotFound(String),
    #[error("{0}")]
    RegistryPolicyNotFound(String),
    #[error("{0}")]
    TooManyTags(String),
    #[error("{0}")]
    InvalidTagParameter(String),
    #[error("{0}")]
    LayerPartTooSmall(String),
    #[error("{0}")]
    LayerAlreadyExists(String),
    #[error("{0}")]
    ImageAlreadyExists(String),
    #[error("{0}")]
    EmptyUpload(String),
    #[error("{0}")]
    ImageDigestMismatch(String),
    #[error("{message}")]
    InvalidLayerPart { message: String, last_valid: Option<u64> },
    #[error("invalid digest: {0}")]
    DigestInvalid(String),
    #[error("blob {0} not found in this repository")]
    BlobUnknown(Digest),
    #[error("upload session not found")]
    BlobUploadUnknown,
    #[error("upload invalid: {0}")]
    BlobUploadInvalid(String),
    /// A chunk did not start where the upload ends; the client should resume from `current`.
    #[error("chunk starts at {requested} but the upload holds {current} bytes")]
    UploadRangeInvalid { requested: u64, current: u64 },
    #[error("requested range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("manifest {0} not found")]
    ManifestUnknown(String),
    /// ECR's failureReason for ImageReferencedByManifestList, naming the index.
    #[error("Requested image referenced by manifest list: image {image} is listed by the index {index} in this repository; delete the index first")]
    ImageReferencedByIndex { image: Digest, index: Digest },
    #[error("image {0} is archived: restore it with UpdateImageStorageClass (targetStorageClass STANDARD) or push it again")]
    ImageArchived(String),
    #[error("{0}")]
    ScanNotFound(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    LifecyclePolicyNotFound(String),
    #[error("{0}")]
    LifecyclePreviewNotFound(String),
    #[error("{0}")]
    LifecyclePreviewInProgress(String),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest references blob {0}, which is not in this repository")]
    ManifestBlobUnknown(Digest),
    #[error("manifest references manifest {0}, which is not in this repository")]
    ManifestChildUnknown(Digest),
    #[error("manifest is larger than the {limit}-byte limit")]
    ManifestTooLarge { limit: usize },
    #[error("size invalid: {0}")]
    SizeInvalid(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("denied: {0}")]
    Denied(String),
    #[error("{0}")]
    Unauthenticated(crate::auth::AuthFailure),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
