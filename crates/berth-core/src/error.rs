use berth_store::{Digest, StoreError};
use thiserror::Error;

/// An invalid parameter: the message every protocol returns as it is (ECR's own wording, which
/// clients and tests compare byte for byte), and which parameter it is about when the service
/// knows, so an adapter that words it differently (the console) need not read the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub param: Option<Param>,
    pub message: String,
}

/// The parameters whose refusals an adapter tells apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// `imageTagMutability` is not one of ECR's settings.
    ImageTagMutability,
    /// A `*_WITH_EXCLUSION` setting without 1 to 5 exclusion filters.
    ExclusionFilterCount,
    /// Exclusion filters given with a setting that takes none.
    ExclusionFiltersUnexpected,
    /// An exclusion filter's `filterType` is not WILDCARD.
    ExclusionFilterType,
    /// This exclusion filter (its text) is malformed.
    ExclusionFilter(String),
    EncryptionType,
    KmsKey,
}

impl RegistryError {
    /// An invalid parameter the service names no [`Param`] for (most: the message says it).
    pub fn invalid(message: impl Into<String>) -> RegistryError {
        RegistryError::InvalidParameter(Invalid { param: None, message: message.into() })
    }
}

impl Invalid {
    /// A refusal about `param`.
    pub fn of(param: Param, message: impl Into<String>) -> Invalid {
        Invalid { param: Some(param), message: message.into() }
    }
}

impl From<String> for Invalid {
    fn from(message: String) -> Invalid {
        Invalid { param: None, message }
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Invalid {
        Invalid { param: None, message: message.to_string() }
    }
}

impl From<Invalid> for String {
    fn from(i: Invalid) -> String {
        i.message
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::ops::Deref for Invalid {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

/// Everything the registry service can refuse. Each adapter maps these to
/// its protocol's codes in one place.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("invalid repository name {0:?}: must be 2-256 characters of lowercase letters, digits and separators (. _ __ -), path components separated by /")]
    NameInvalid(String),
    #[error("The repository with name '{0}' does not exist in the registry with id '{account}'", account = .0.key().account)]
    NameUnknown(crate::Repo),
    #[error("invalid tag {0:?}: must match [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}")]
    TagInvalid(String),
    #[error(
        "the image tag '{tag}' already exists in the '{repository}' repository and cannot be overwritten because the tag is immutable"
    )]
    TagImmutable { tag: String, repository: String },
    #[error("{0}")]
    InvalidParameter(Invalid),
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
    /// The stored bytes stopped matching the digest; they were moved aside (crate::integrity).
    #[error("blob {0} failed verification (its stored bytes do not match its digest) and is quarantined; push it again to restore it")]
    BlobQuarantined(Digest),
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
    /// An image identifier of an ECR action that names no image.
    #[error("{0}")]
    ImageNotFound(Box<MissingImage>),
    /// ECR's failureReason for ImageReferencedByManifestList, naming the index.
    #[error("Requested image referenced by manifest list: image {image} is listed by the index {index} in this repository; delete the index first")]
    ImageReferencedByIndex { image: Digest, index: Digest },
    #[error("image {0} is archived: restore it with UpdateImageStorageClass (targetStorageClass STANDARD) or push it again")]
    ImageArchived(String),
    #[error("{0}")]
    ScanNotFound(String),
    /// StartImageScan of something that is not a scannable image (an image index).
    #[error("{0}")]
    UnsupportedImageType(String),
    /// The repository's KMS key cannot be used (missing, disabled, pending deletion): ECR's
    /// KmsException, with the key service's own error.
    #[error("{message}")]
    Kms { message: String, kms_error: &'static str },
    #[error("{0}")]
    LimitExceeded(String),
    /// A rate limit (pulls per source address or principal) is spent for now.
    #[error("{message}")]
    Throttled { message: String, retry_after_secs: u64 },
    /// A repository creation template with this prefix exists already.
    #[error("{0}")]
    TemplateAlreadyExists(String),
    #[error("{0}")]
    TemplateNotFound(String),
    /// A request outside the API's declared shape that the model check alone cannot see
    /// (ECR's ValidationException), such as an account setting name ECR does not have.
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    ExclusionExists(String),
    #[error("{0}")]
    ExclusionNotFound(String),
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
    /// A pull-through cache rule refusal (ECR's exception is the kind's).
    #[error("{message}")]
    PullThrough { kind: PullThroughRefusal, message: String },
    /// The upstream registry of a pull-through cache could not give what a pull needed; the
    /// message names the upstream and its answer.
    #[error("{0}")]
    Upstream(String),
}

/// Why a pull-through cache rule action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullThroughRefusal {
    RuleExists,
    RuleNotFound,
    UnsupportedUpstream,
    SecretNotFound,
}

/// An image identifier that names no image of a repository, as ECR reports it.
#[derive(Debug, Clone)]
pub struct MissingImage {
    pub repo: crate::Repo,
    pub digest: Option<String>,
    pub tag: Option<String>,
}

impl RegistryError {
    /// ECR's image-not-found, for an identifier the caller gave.
    pub fn image_not_found(repo: &crate::Repo, digest: Option<&str>, tag: Option<&str>) -> Self {
        RegistryError::ImageNotFound(Box::new(MissingImage::new(repo, digest, tag)))
    }
}

impl MissingImage {
    pub fn new(repo: &crate::Repo, digest: Option<&str>, tag: Option<&str>) -> Self {
        MissingImage { repo: repo.clone(), digest: digest.map(str::to_string), tag: tag.map(str::to_string) }
    }

    /// ECR's rendering of an imageId in messages: absent members read 'null'.
    pub fn image_id(&self) -> String {
        image_id_text(self.digest.as_deref(), self.tag.as_deref())
    }
}

/// `{imageDigest:'…', imageTag:'…'}`, as ECR names an image in its messages.
pub fn image_id_text(digest: Option<&str>, tag: Option<&str>) -> String {
    format!("{{imageDigest:'{}', imageTag:'{}'}}", digest.unwrap_or("null"), tag.unwrap_or("null"))
}

impl std::fmt::Display for MissingImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "The image with imageId {} does not exist within the repository with name '{}' in the registry with id '{}'",
            self.image_id(),
            self.repo,
            self.repo.key().account
        )
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
