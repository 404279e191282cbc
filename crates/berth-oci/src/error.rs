//! Service errors as the distribution-spec's error JSON: the one place where
//! a code and an HTTP status are chosen.

use axum::response::{IntoResponse, Response};
use berth_core::RegistryError;
use http::{HeaderValue, StatusCode};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    Registry(RegistryError),
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// An operation this registry does not offer for this target (405, as the spec allows).
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    PaginationInvalid(String),
    /// A chunk's Content-Range does not fit the upload; tells where it stands.
    #[error("{0}")]
    RangeInvalid(String),
}

impl OciError {
    fn parts(&self) -> (StatusCode, &'static str) {
        use RegistryError as R;
        match self {
            OciError::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            OciError::MethodNotAllowed | OciError::Unsupported(_) => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            OciError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            OciError::PaginationInvalid(_) => (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID"),
            OciError::RangeInvalid(_) => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
            OciError::Registry(e) => match e {
                R::NameInvalid(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
                R::NameUnknown(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
                R::TagInvalid(_) => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
                // As ECR answers a docker push of an immutable tag.
                R::TagImmutable { .. } => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
                R::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
                R::DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
                R::BlobUnknown(_) | R::BlobQuarantined(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
                R::BlobUploadUnknown => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
                R::BlobUploadInvalid(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
                R::UploadRangeInvalid { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
                R::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID"),
                R::ManifestUnknown(_) | R::ImageNotFound(_) | R::ImageArchived(_) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
                R::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
                R::ImageReferencedByIndex { .. } => (StatusCode::BAD_REQUEST, "UNSUPPORTED"), // see ARCHITECTURE.md, "Deleting images"
                R::ManifestBlobUnknown(_) | R::ManifestChildUnknown(_) => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
                R::ManifestTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
                R::SizeInvalid(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID"),
                R::Unsupported(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
                R::Denied(_) => (StatusCode::FORBIDDEN, "DENIED"),
                R::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
                // distribution's code for a backend that is down; clients retry on 503.
                R::Store(berth_store::StoreError::Unavailable { .. }) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
                R::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
                // ECR-API-only refusals; /v2/ never produces them, but map them plainly.
                R::RepositoryExists(_) | R::RepositoryNotEmpty(_) | R::ImageAlreadyExists(_) | R::LayerAlreadyExists(_) => {
                    (StatusCode::CONFLICT, "UNSUPPORTED")
                }
                R::PolicyNotFound(_)
                | R::RegistryPolicyNotFound(_)
                | R::LifecyclePolicyNotFound(_)
                | R::LifecyclePreviewNotFound(_)
                | R::TemplateNotFound(_)
                | R::ExclusionNotFound(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
                R::LifecyclePreviewInProgress(_) | R::TemplateAlreadyExists(_) | R::ExclusionExists(_) => {
                    (StatusCode::CONFLICT, "UNSUPPORTED")
                }
                R::Validation(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
                R::ScanNotFound(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
                R::UnsupportedImageType(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
                R::Kms { .. } => (StatusCode::FORBIDDEN, "DENIED"),
                R::LimitExceeded(_) | R::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
                R::TooManyTags(_)
                | R::InvalidTagParameter(_)
                | R::EmptyUpload(_)
                | R::LayerPartTooSmall(_)
                | R::InvalidLayerPart { .. } => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
                R::ImageDigestMismatch(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
                R::PullThrough { .. } => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
                // The cache's upstream failed: a gateway's answer, naming the upstream and its status.
                R::Upstream(_) => (StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
            },
        }
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = match &self {
            OciError::Registry(RegistryError::Store(e @ berth_store::StoreError::Unavailable { what, .. })) => {
                tracing::error!(error = %e, "storage unavailable");
                format!("{what} is unavailable; retry later")
            }
            OciError::Registry(RegistryError::Store(e)) => {
                tracing::error!(error = %e, "storage failure");
                "internal storage error; see the server log".to_string()
            }
            other => other.to_string(),
        };
        let detail = match &self {
            OciError::Registry(RegistryError::ManifestBlobUnknown(d))
            | OciError::Registry(RegistryError::ManifestChildUnknown(d))
            | OciError::Registry(RegistryError::BlobUnknown(d))
            | OciError::Registry(RegistryError::BlobQuarantined(d)) => {
                json!({ "digest": d.to_string() })
            }
            _ => json!(null),
        };
        let store = match &self {
            OciError::Registry(RegistryError::Store(e)) => Some(e.backend()),
            _ => None,
        };
        let error = berth_core::observe::CallError::new(audit_code(code), message.clone()).with_store(store);
        let body = json!({ "errors": [{ "code": code, "message": message, "detail": detail }] });
        let mut resp = (status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(error);
        match &self {
            OciError::Registry(RegistryError::RangeNotSatisfiable { size }) => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(http::header::CONTENT_RANGE, v);
                }
            }
            OciError::Registry(RegistryError::Unauthenticated(_)) => {
                // ECR's challenge; docker/podman/skopeo answer it with the stored login.
                resp.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"berth\",service=\"ecr.amazonaws.com\""),
                );
            }
            OciError::Registry(RegistryError::Throttled { retry_after_secs, .. }) => {
                resp.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            OciError::Registry(RegistryError::UploadRangeInvalid { current, .. }) => {
                resp.headers_mut().insert(http::header::RANGE, crate::headers::upload_range(*current));
            }
            _ => {}
        }
        resp
    }
}

/// The audit record's errorCode for a /v2/ refusal: ECR's exception name where the ECR API
/// has one for it, else the distribution code.
fn audit_code(code: &str) -> &str {
    match code {
        "DENIED" | "UNAUTHORIZED" => "AccessDenied",
        "NAME_UNKNOWN" => "RepositoryNotFoundException",
        "MANIFEST_UNKNOWN" => "ImageNotFoundException",
        "BLOB_UNKNOWN" => "LayersNotFoundException",
        "TOOMANYREQUESTS" => "ThrottlingException",
        other => other,
    }
}
