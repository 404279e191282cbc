//! Service errors as AWS JSON 1.1 exceptions (`__type`, `message`): the one
//! place the ECR exception names and HTTP statuses are chosen.

use axum::response::{IntoResponse, Response};
use berth_core::RegistryError;
use http::StatusCode;
use serde_json::json;

use berth_aws::error::AwsError;
use berth_aws::validate::Violation;

#[derive(Debug)]
pub struct EcrError {
    pub type_name: &'static str,
    pub message: String,
    pub status: StatusCode,
    /// Extra members of the exception shape (e.g. InvalidLayerPartException's lastValidByteReceived).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The storage backend that failed, for the store error metric.
    pub store: Option<&'static str>,
}

impl EcrError {
    pub fn new(type_name: &'static str, message: impl Into<String>) -> Self {
        EcrError { type_name, message: message.into(), status: StatusCode::BAD_REQUEST, extra: Default::default(), store: None }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }
    pub fn server(message: impl Into<String>) -> Self {
        EcrError { status: StatusCode::INTERNAL_SERVER_ERROR, ..Self::new("ServerException", message) }
    }
}

impl EcrError {
    /// A request the model check refused, as ECR answers each kind (constraint failures are
    /// InvalidParameterException; see `AwsError::from_violations`).
    pub(crate) fn from_violations(violations: &[Violation]) -> Self {
        AwsError::from_violations(violations, "InvalidParameterException").into()
    }
}

impl From<AwsError> for EcrError {
    fn from(e: AwsError) -> Self {
        EcrError { type_name: e.code, message: e.message, status: e.status, extra: e.extra, store: e.store }
    }
}

impl From<RegistryError> for EcrError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as R;
        let msg = e.to_string();
        match e {
            R::NameUnknown(repo) => EcrError::new(
                "RepositoryNotFoundException",
                format!("The repository with name '{repo}' does not exist in the registry with id '{}'", repo.key().account),
            ),
            R::NameInvalid(_) | R::TagInvalid(_) | R::InvalidParameter(_) | R::DigestInvalid(_) | R::ManifestTooLarge { .. } => {
                EcrError::invalid(msg)
            }
            R::ManifestInvalid(_) | R::Unsupported(_) => EcrError::new(
                "InvalidParameterException",
                format!("Invalid parameter at 'imageManifest' failed to satisfy constraint: '{msg}'"),
            ),
            R::ManifestBlobUnknown(d) => EcrError::new(
                "LayersNotFoundException",
                format!("The layer {d} referenced by the manifest does not exist in the repository"),
            ),
            R::ManifestChildUnknown(d) => EcrError::new(
                "ReferencedImagesNotFoundException",
                format!("The manifest list references image {d}, which does not exist in the repository"),
            ),
            R::BlobUnknown(d) => EcrError::new("LayersNotFoundException", format!("The layer {d} does not exist in the repository")),
            R::BlobQuarantined(_) => EcrError::new("LayerInaccessibleException", msg),
            R::BlobUploadUnknown => EcrError::new("UploadNotFoundException", "The upload could not be found"),
            R::BlobUploadInvalid(_) | R::UploadRangeInvalid { .. } | R::SizeInvalid(_) => EcrError::new("InvalidLayerPartException", msg),
            R::InvalidLayerPart { message, last_valid } => {
                let mut err = EcrError::new("InvalidLayerPartException", message);
                if let Some(l) = last_valid {
                    err.extra.insert("lastValidByteReceived".into(), json!(l));
                }
                err
            }
            R::RangeNotSatisfiable { .. } => EcrError::invalid(msg),
            R::ImageNotFound(m) => EcrError::new(
                "ImageNotFoundException",
                format!(
                    "The image with imageId {} does not exist within the repository with name '{}' in the registry with id '{}'",
                    m.image_id(),
                    m.repo,
                    m.repo.key().account
                ),
            ),
            // A /v2/ reference; ECR's own words for an image it cannot find.
            R::ManifestUnknown(_) => EcrError::new("ImageNotFoundException", "Requested image not found"),
            R::ImageArchived(_) => EcrError::new("ImageNotFoundException", msg),
            R::UnsupportedImageType(_) => EcrError::new("UnsupportedImageTypeException", msg),
            R::Kms { kms_error, .. } => {
                let mut e = EcrError::new("KmsException", msg);
                e.extra.insert("kmsError".into(), serde_json::json!(kms_error));
                e
            }
            R::ImageReferencedByIndex { .. } => EcrError::invalid(msg), // BatchDeleteImage reports it as a failure entry
            R::ScanNotFound(_) => EcrError::new("ScanNotFoundException", msg),
            R::LimitExceeded(_) => EcrError::new("LimitExceededException", msg),
            R::Throttled { .. } => EcrError::new("ThrottlingException", msg),
            R::TemplateAlreadyExists(_) => EcrError::new("TemplateAlreadyExistsException", msg),
            R::TemplateNotFound(_) => EcrError::new("TemplateNotFoundException", msg),
            R::Validation(_) => EcrError::new("ValidationException", msg),
            R::ExclusionExists(_) => EcrError::new("ExclusionAlreadyExistsException", msg),
            R::ExclusionNotFound(_) => EcrError::new("ExclusionNotFoundException", msg),
            R::LifecyclePolicyNotFound(_) => EcrError::new("LifecyclePolicyNotFoundException", msg),
            R::LifecyclePreviewNotFound(_) => EcrError::new("LifecyclePolicyPreviewNotFoundException", msg),
            R::LifecyclePreviewInProgress(_) => EcrError::new("LifecyclePolicyPreviewInProgressException", msg),
            R::TagImmutable { .. } => EcrError::new("ImageTagAlreadyExistsException", msg),
            R::RepositoryExists(_) => EcrError::new("RepositoryAlreadyExistsException", msg),
            R::RepositoryNotEmpty(_) => EcrError::new("RepositoryNotEmptyException", msg),
            R::PolicyNotFound(_) => EcrError::new("RepositoryPolicyNotFoundException", msg),
            R::RegistryPolicyNotFound(_) => EcrError::new("RegistryPolicyNotFoundException", msg),
            R::TooManyTags(_) => EcrError::new("TooManyTagsException", msg),
            R::InvalidTagParameter(_) => EcrError::new("InvalidTagParameterException", msg),
            R::LayerPartTooSmall(_) => EcrError::new("LayerPartTooSmallException", msg),
            R::LayerAlreadyExists(_) => EcrError::new("LayerAlreadyExistsException", msg),
            R::ImageAlreadyExists(_) => EcrError::new("ImageAlreadyExistsException", msg),
            R::EmptyUpload(_) => EcrError::new("EmptyUploadException", msg),
            R::ImageDigestMismatch(_) => EcrError::new("ImageDigestDoesNotMatchException", msg),
            R::Denied(m) => EcrError::new("AccessDeniedException", m),
            R::Unauthenticated(f) => AwsError::from_auth(&f).into(),
            R::Store(e) => AwsError::from_store(&e, "ServiceUnavailableException", "ServerException").into(),
            R::PullThrough { kind, message } => EcrError::new(
                match kind {
                    berth_core::PullThroughRefusal::RuleExists => "PullThroughCacheRuleAlreadyExistsException",
                    berth_core::PullThroughRefusal::RuleNotFound => "PullThroughCacheRuleNotFoundException",
                    berth_core::PullThroughRefusal::UnsupportedUpstream => "UnsupportedUpstreamRegistryException",
                    berth_core::PullThroughRefusal::SecretNotFound => "SecretNotFoundException",
                },
                message,
            ),
            R::Upstream(m) => EcrError::server(m),
        }
    }
}

impl IntoResponse for EcrError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("__type".into(), json!(self.type_name));
        body.insert("message".into(), json!(self.message));
        let error = berth_core::observe::CallError::new(self.type_name, self.message).with_store(self.store);
        let mut response =
            (self.status, [(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")], axum::Json(serde_json::Value::Object(body)))
                .into_response();
        response.extensions_mut().insert(error);
        response
    }
}
