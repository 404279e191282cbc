//! The AWS JSON 1.1 error every JSON API answers with (`__type`, `message`, HTTP status),
//! and the mappings every API shares: authentication failures, storage outages and the
//! request model's violations. Each API maps its own service errors onto it.

use axum::response::{IntoResponse, Response};
use berth_core::auth::AuthFailure;
use berth_store::StoreError;
use http::StatusCode;
use serde_json::json;

use crate::validate::{Rule, Violation};

#[derive(Debug)]
pub struct AwsError {
    pub code: &'static str,
    pub message: String,
    pub status: StatusCode,
    /// Extra members of the exception shape.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The storage backend that failed (`from_store`), for the store error metric.
    pub store: Option<&'static str>,
}

impl AwsError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        AwsError { code, message: message.into(), status: StatusCode::BAD_REQUEST, extra: Default::default(), store: None }
    }

    /// AWS's front end's answer to a caller over its request rate (every JSON API alike; SDKs
    /// retry it with backoff).
    pub fn throttled(message: impl Into<String>) -> Self {
        AwsError::new("ThrottlingException", message)
    }

    pub fn with_status(self, status: StatusCode) -> Self {
        AwsError { status, ..self }
    }

    /// The answers AWS's front end gives every JSON API when authentication fails.
    pub fn from_auth(failure: &AuthFailure) -> Self {
        let (code, message) = match failure {
            AuthFailure::Missing => ("MissingAuthenticationTokenException", "Missing Authentication Token".to_string()),
            AuthFailure::UnknownAccessKey => {
                ("UnrecognizedClientException", "The security token included in the request is invalid.".to_string())
            }
            AuthFailure::SignatureExpired(m) => ("InvalidSignatureException", format!("Signature expired: {m}")),
            AuthFailure::BadSignature(m) | AuthFailure::Malformed(m) => ("InvalidSignatureException", m.clone()),
            AuthFailure::TokenInvalid
            | AuthFailure::TokenExpired
            | AuthFailure::BadCredentials
            | AuthFailure::SessionInvalid
            | AuthFailure::DownloadUrl(_) => ("ExpiredTokenException", failure.to_string()),
        };
        AwsError::new(code, message).with_status(StatusCode::FORBIDDEN)
    }

    /// A storage failure: an outage is the API's `unavailable` code with 503 (retryable by the
    /// SDKs), anything else its `internal` code with 500. The cause goes to the server log only.
    pub fn from_store(e: &StoreError, unavailable: &'static str, internal: &'static str) -> Self {
        let answer = match e {
            StoreError::Unavailable { what, .. } => {
                tracing::error!(error = %e, "storage unavailable");
                AwsError::new(unavailable, format!("{what} is unavailable; retry later")).with_status(StatusCode::SERVICE_UNAVAILABLE)
            }
            _ => {
                tracing::error!(error = %e, "storage failure");
                AwsError::new(internal, "internal storage error; see the server log").with_status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        AwsError { store: Some(e.backend()), ..answer }
    }

    /// A request the model check refused, as AWS's JSON front end answers: a member of the
    /// wrong JSON type is a SerializationException, missing members one ValidationException
    /// naming them all, and otherwise the first broken constraint is `constraint_code` (ECR
    /// says InvalidParameterException, most services ValidationException).
    pub fn from_violations(violations: &[Violation], constraint_code: &'static str) -> Self {
        if let Some(Violation::WrongType { path, expected, found }) = violations.iter().find(|v| matches!(v, Violation::WrongType { .. })) {
            return AwsError::new("SerializationException", type_mismatch(path, expected, found));
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
            return AwsError::new("ValidationException", format!("{} detected: {}", count(missing.len()), missing.join("; ")));
        }
        match violations.iter().find_map(|v| match v {
            Violation::Constraint { path, rule, .. } => Some((path, rule)),
            _ => None,
        }) {
            Some((path, rule)) if constraint_code == "ValidationException" => AwsError::new(
                constraint_code,
                format!("1 validation error detected: Value at '{path}' failed to satisfy constraint: {rule}"),
            ),
            Some((path, Rule::Pattern(p))) if path.ends_with("repositoryName") => AwsError::new(
                constraint_code,
                format!(
                    "Invalid parameter at '{path}' failed to satisfy constraint: 'must satisfy regular expression '{}''",
                    p.replace("\\/", "/")
                ),
            ),
            Some((path, rule)) => {
                AwsError::new(constraint_code, format!("Invalid parameter at '{path}' failed to satisfy constraint: '{rule}'"))
            }
            None => AwsError::new(constraint_code, "Invalid request"),
        }
    }
}

fn count(n: usize) -> String {
    match n {
        1 => "1 validation error".to_string(),
        n => format!("{n} validation errors"),
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

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("__type".into(), json!(self.code));
        body.insert("message".into(), json!(self.message));
        let error = berth_core::observe::CallError::new(self.code, self.message).with_store(self.store);
        let mut response =
            (self.status, [(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")], axum::Json(serde_json::Value::Object(body)))
                .into_response();
        response.extensions_mut().insert(error);
        response
    }
}
