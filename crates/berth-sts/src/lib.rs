//! STS on `POST /` (AWS Query protocol, signing name `sts`): GetCallerIdentity, which
//! Terraform's AWS provider calls at start (and `data.aws_caller_identity` reads), as does
//! `aws sts get-caller-identity`. Everything else answers STS's InvalidAction.

use axum::response::Response;
use berth_aws::{query, AwsApi, Call, Protocol, Rejection};
use berth_core::auth::AuthFailure;
use berth_core::RegistryError;
use http::StatusCode;

const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// Query calls of this subset are a few form fields.
const MAX_BODY: usize = 64 * 1024;

pub struct StsApi;

#[async_trait::async_trait]
impl AwsApi for StsApi {
    fn signing_name(&self) -> &'static str {
        "sts"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Query
    }

    fn max_body(&self, _action: &str) -> usize {
        MAX_BODY
    }

    async fn call(&self, call: Call) -> Response {
        match call.action.as_str() {
            "GetCallerIdentity" => {
                let id = call.registry.caller_identity(&call.principal);
                let fields = [("Arn", id.arn.as_str()), ("UserId", id.user_id.as_str()), ("Account", id.account.as_str())];
                query::response(NAMESPACE, "GetCallerIdentity", &fields, &call.request_id)
            }
            other => query::error(
                NAMESPACE,
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                &format!("Could not find operation {other} for version 2011-06-15 (berth serves GetCallerIdentity)"),
                &call.request_id,
            ),
        }
    }

    fn reject(&self, error: Rejection, request_id: &str) -> Response {
        let store = match &error {
            Rejection::Registry(RegistryError::Store(e)) => Some(e.backend()),
            _ => None,
        };
        let (status, code, message) = match error {
            Rejection::Registry(RegistryError::Unauthenticated(f)) => match f {
                AuthFailure::Missing => {
                    (StatusCode::FORBIDDEN, "MissingAuthenticationToken", "Request is missing Authentication Token".into())
                }
                AuthFailure::UnknownAccessKey => {
                    (StatusCode::FORBIDDEN, "InvalidClientTokenId", "The security token included in the request is invalid.".into())
                }
                AuthFailure::SignatureExpired(m) => (StatusCode::FORBIDDEN, "SignatureDoesNotMatch", format!("Signature expired: {m}")),
                other => (StatusCode::FORBIDDEN, "SignatureDoesNotMatch", other.to_string()),
            },
            // The cause goes to the server log (by the service), not to the caller.
            Rejection::Registry(RegistryError::Store(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "the registry's storage is unavailable; retry later".into())
            }
            Rejection::Registry(e @ RegistryError::Throttled { .. }) => (StatusCode::BAD_REQUEST, "Throttling", e.to_string()),
            Rejection::Registry(e) => (StatusCode::BAD_REQUEST, "InvalidParameterValue", e.to_string()),
            Rejection::UnknownOperation(_) => (StatusCode::BAD_REQUEST, "MissingAction", "Action is required".into()),
            Rejection::BodyTooLarge { limit } => {
                (StatusCode::BAD_REQUEST, "InvalidParameterValue", format!("the request is larger than {limit} bytes"))
            }
            Rejection::BodyUnreadable(m) => (StatusCode::BAD_REQUEST, "MalformedInput", m),
        };
        let mut response = query::error(NAMESPACE, status, code, &message, request_id);
        response.extensions_mut().insert(berth_core::observe::CallError::new(code, message).with_store(store));
        response
    }
}
