//! Service errors as AWS JSON 1.1 exceptions (`__type`, `message`): the one
//! place the ECR exception names and HTTP statuses are chosen.

use axum::response::{IntoResponse, Response};
use berth_core::auth::AuthFailure;
use berth_core::RegistryError;
use http::StatusCode;
use serde_json::json;

use berth_aws::validate::{Rule, Violation};

#[derive(Debug)]
pub struct EcrError {
    pub type_name: &'static str,
    pub message: String,
    pub status: StatusCode,
    /// Extra members of the exception shape (e.g. InvalidLayerPartException's lastValidByteReceived).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl EcrError {
    pub fn new(type_name: &'static str, message: impl Into<String>) -> Self {
        EcrError { type_name, message: message.into(), status: StatusCode::BAD_REQUEST, extra: Default::default() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }
    pub fn server(message: impl Into<String>) -> Self {
        EcrError { status: StatusCode::INTERNAL_SERVER_ERROR, ..Self::new("ServerException", message) }
    }
}

impl EcrError {
    /// A request the model check refused, answered as ECR answers each kind: a member of the
    /// wrong JSON type is a SerializationException, missing required members are one
    /// ValidationException naming them all, otherwise the first broken constraint is an
    /// InvalidParameterException.
    pub(crate) fn from_violations(violations: &[Violation]) -> Self {
        if let Some(Violation::WrongType { path, expected, found }) = violations.iter().find(|v| matches!(v, Violation::WrongType { .. })) {
            return EcrError::new("SerializationException", type_mismatch(path, expected, found));
        }
        let missing: Vec<String> = violations
            .iter()
            .filter_map(|v| match v {
                Violation::Missing { path } => {
                    Some(format!("Value null at '{path}' failed to satisfy constraint: Member must not be null"))
                }
                _ => None,
            })
            .collect();
        if !missing.is_empty() {
            let count = match missing.len() {
                1 => "1 validation error".to_string(),
                n => format!("{n} validation errors"),
            };
            return EcrError::new("ValidationException", format!("{count} detected: {}", missing.join("; ")));
        }
        match violations.iter().find_map(|v| match v {
            Violation::Constraint { path, rule, .. } => Some((path, rule)),
            _ => None,
        }) {
            // ECR states the repository name's pattern in words of its own.
            Some((path, Rule::Pattern(p))) if path.ends_with("repositoryName") => EcrError::invalid(format!(
                "Invalid parameter at '{path}' failed to satisfy constraint: 'must satisfy regular expression '{}''",
                p.replace("\\/", "/")
            )),
            Some((path, rule)) => EcrError::invalid(format!("Invalid parameter at '{path}' failed to satisfy constraint: '{rule}'")),
            None => EcrError::invalid("Invalid request"),
        }
    }
}

/// AWS's JSON front end names the token it read and the type it wanted.
fn type_mismatch(path: &str, expected: &str, found: &str) -> String {
    let token = match found {
        "string" => "STRING_VALUE",
        "number" => "NUMBER_VALUE",
        "boolean" => "BOOLEAN_VALUE",
        "list" => "START_ARRAY",
        _ => "START_OBJECT",
    };
    let wanted = match expected {
        "integer" => "an Integer",
        "string" => "a String",
        "boolean" => "a Boolean",
        "number" => "a Double",
        "blob" => "a ByteBuffer",
        "timestamp" => "a Date",
        "list" => "a List",
        "map" => "a Map",
        _ => "a Structure",
    };
    format!("{token} can not be converted to {wanted} (at '{path}')")
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
            R::ImageReferencedByIndex { .. } => EcrError::invalid(msg), // BatchDeleteImage reports it as a failure entry
            R::ScanNotFound(_) => EcrError::new("ScanNotFoundException", msg),
            R::LimitExceeded(_) => EcrError::new("LimitExceededException", msg),
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
            R::Unauthenticated(f) => match f {
                AuthFailure::Missing => EcrError {
                    status: StatusCode::FORBIDDEN,
                    ..EcrError::new("MissingAuthenticationTokenException", "Missing Authentication Token")
                },
                AuthFailure::UnknownAccessKey => EcrError {
                    status: StatusCode::FORBIDDEN,
                    ..EcrError::new("UnrecognizedClientException", "The security token included in the request is invalid.")
                },
                AuthFailure::SignatureExpired(m) => EcrError {
                    status: StatusCode::FORBIDDEN,
                    ..EcrError::new("InvalidSignatureException", format!("Signature expired: {m}"))
                },
                AuthFailure::BadSignature(m) | AuthFailure::Malformed(m) => {
                    EcrError { status: StatusCode::FORBIDDEN, ..EcrError::new("InvalidSignatureException", m) }
                }
                AuthFailure::TokenInvalid
                | AuthFailure::TokenExpired
                | AuthFailure::BadCredentials
                | AuthFailure::SessionInvalid
                | AuthFailure::DownloadUrl(_) => {
                    EcrError { status: StatusCode::FORBIDDEN, ..EcrError::new("ExpiredTokenException", f.to_string()) }
                }
            },
            R::Store(e @ berth_store::StoreError::Unavailable { what, .. }) => {
                tracing::error!(error = %e, "storage unavailable");
                EcrError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    ..EcrError::new("ServiceUnavailableException", format!("{what} is unavailable; retry later"))
                }
            }
            R::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                EcrError::server("internal storage error; see the server log")
            }
        }
    }
}

impl IntoResponse for EcrError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("__type".into(), json!(self.type_name));
        body.insert("message".into(), json!(self.message));
        (self.status, [(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")], axum::Json(serde_json::Value::Object(body)))
            .into_response()
    }
}
