//! The AWS protocol layer: everything the AWS APIs berth serves on `POST /` share, written once.
//!
//! A request is matched to one [`AwsApi`] (by `X-Amz-Target` prefix for the JSON 1.1 APIs, by
//! the SigV4 scope's service for the Query APIs such as STS), its body is read within that
//! API's limit, its SigV4 signature is verified for that API's signing name, and the adapter
//! gets an authenticated [`Call`]. Every response carries `x-amzn-RequestId` and, for the
//! request log, the action and the principal ([`berth_core::observe::CallFacts`]).
//! Adapters stay thin: parse the model's input shape, call the service, build the output.

pub mod error;
pub mod json;
pub mod operation;
pub mod query;
pub mod validate;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use berth_core::auth::{Principal, Transport};
use berth_core::observe::{CallFacts, RouteLabel};
use berth_core::{Registry, RegistryError};
use bytes::Bytes;
use http::{header, HeaderValue};
use http_body_util::BodyExt;
use sha2::Digest as _;

/// How an API frames its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AWS JSON 1.1: `X-Amz-Target: <prefix><Action>`, JSON bodies, `__type` errors.
    Json { target_prefix: &'static str },
    /// AWS Query: form-encoded `Action=…&Version=…`, XML responses and errors.
    Query,
}

/// An authenticated call, handed to the API's adapter.
pub struct Call {
    pub registry: Arc<Registry>,
    pub action: String,
    pub body: Bytes,
    pub principal: Principal,
    /// The Host the client called (repository URIs are built from it when no template is set).
    pub host: String,
    pub request_id: String,
    /// What the call's authorization decided; read back into the request's [`CallFacts`].
    pub record: Arc<operation::CallRecord>,
}

impl Call {
    /// The authorization of this call for `operation` (its IAM action, this caller, this
    /// call's record).
    pub fn authorizer<H>(&self, operation: &operation::Operation<H>) -> operation::Authorizer<'_> {
        operation::Authorizer::new(&self.registry, &self.principal, operation.iam_action, self.record.clone())
    }
}

/// One AWS API on `POST /`.
#[async_trait::async_trait]
pub trait AwsApi: Send + Sync {
    /// The service name in the SigV4 credential scope (`ecr`, `sts`).
    fn signing_name(&self) -> &'static str;
    fn protocol(&self) -> Protocol;
    /// The largest request body this action may carry.
    fn max_body(&self, action: &str) -> usize;
    /// Answers an authenticated call (success or the API's own error shape).
    async fn call(&self, call: Call) -> Response;
    /// The API's answer to a call refused before it reached the adapter (authentication,
    /// an unreadable body, an unknown action).
    fn reject(&self, error: Rejection, request_id: &str) -> Response;
}

/// An AWS JSON 1.1 answer: the output shape, or the API's error (`internal` turns a failure
/// to serialize the output into the API's internal error).
pub fn json_answer<E: IntoResponse>(result: Result<serde_json::Value, E>, internal: impl FnOnce(String) -> E) -> Response {
    match result.and_then(|output| serde_json::to_vec(&output).map_err(|e| internal(e.to_string()))) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/x-amz-json-1.1")], bytes).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Why the protocol layer refused a call.
#[derive(Debug)]
pub enum Rejection {
    /// Authentication failed (the service's identity error).
    Registry(RegistryError),
    UnknownOperation(String),
    BodyTooLarge {
        limit: usize,
    },
    BodyUnreadable(String),
}

impl Rejection {
    /// The answer of an API whose envelope refusals are ValidationException and whose unknown
    /// actions are UnknownOperationException (KMS, Secrets Manager): one mapping for all of them;
    /// `api` names the service in the message, `from_registry` maps an identity refusal.
    pub fn into_validation_answer(self, api: &str, from_registry: impl FnOnce(RegistryError) -> error::AwsError) -> Response {
        let error = match self {
            Rejection::Registry(e) => from_registry(e),
            Rejection::UnknownOperation(target) => {
                error::AwsError::new("UnknownOperationException", format!("unknown operation {target:?}"))
            }
            Rejection::BodyTooLarge { limit } => {
                error::AwsError::new("ValidationException", format!("the request body is larger than {api} accepts ({limit} bytes)"))
            }
            Rejection::BodyUnreadable(e) => error::AwsError::new("ValidationException", format!("request body could not be read: {e}")),
        };
        error.into_response()
    }
}

/// Routes `POST /` to the first API that claims the request.
pub fn router(registry: Arc<Registry>, apis: Vec<Arc<dyn AwsApi>>) -> Router {
    let state = Arc::new(Apis { registry, apis });
    Router::new().route("/", axum::routing::post(dispatch)).with_state(state)
}

struct Apis {
    registry: Arc<Registry>,
    apis: Vec<Arc<dyn AwsApi>>,
}

impl Apis {
    /// The API a request is for, and the action when the headers tell it.
    fn select(&self, req: &Request<Body>) -> Option<(&Arc<dyn AwsApi>, Option<String>)> {
        let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok());
        if let Some(target) = target {
            return self.apis.iter().find_map(|api| match api.protocol() {
                Protocol::Json { target_prefix } => target.strip_prefix(target_prefix).map(|a| (api, Some(a.to_string()))),
                Protocol::Query => None,
            });
        }
        let service = berth_iam::sigv4::scope_service(req.headers(), req.uri().query());
        self.apis
            .iter()
            .find(|api| api.protocol() == Protocol::Query && service.as_deref() == Some(api.signing_name()))
            .map(|api| (api, None))
    }

    /// The API that answers requests no API claims: the first JSON API (ECR), whose
    /// UnknownOperationException is what the SDKs expect.
    fn fallback(&self) -> Option<&Arc<dyn AwsApi>> {
        self.apis.first()
    }
}

async fn dispatch(State(apis): State<Arc<Apis>>, req: Request<Body>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (mut response, facts, route) = match apis.select(&req) {
        Some((api, action)) => {
            let (response, facts) = handle(&apis.registry, api, action, req, &request_id).await;
            (response, facts, api.signing_name())
        }
        None => {
            let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let response = match apis.fallback() {
                Some(api) => api.reject(Rejection::UnknownOperation(target), &request_id),
                None => http::StatusCode::NOT_FOUND.into_response(),
            };
            (response, CallFacts { action: "unknown".into(), ..Default::default() }, "aws_unknown")
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response.extensions_mut().insert(facts);
    response.extensions_mut().insert(RouteLabel(route));
    response
}

/// `<service>:<Action>` for the request log; a made-up action name (the client chose it) is
/// logged as `unknown`, so the log holds only short, printable names.
fn log_action(service: &str, action: &str) -> String {
    let plausible = (1..=64).contains(&action.len()) && action.bytes().all(|b| b.is_ascii_alphanumeric());
    format!("{service}:{}", if plausible { action } else { "unknown" })
}

async fn handle(
    registry: &Arc<Registry>,
    api: &Arc<dyn AwsApi>,
    action: Option<String>,
    req: Request<Body>,
    request_id: &str,
) -> (Response, CallFacts) {
    let label = action.clone().unwrap_or_default();
    let mut facts = CallFacts { action: log_action(api.signing_name(), &label), ..Default::default() };
    let transport = Transport::of(req.extensions());
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_string();
    let limit = api.max_body(action.as_deref().unwrap_or(""));
    let (parts, body) = req.into_parts();
    // Authenticated as far as the headers allow before the body is read, so that only a
    // known access key's requests are buffered (up to `limit`); the signature, which covers
    // the body's hash, is checked once it is read.
    let headers_only = berth_iam::sigv4::RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        payload_sha256: "",
    };
    let caller = match registry.sigv4_caller(&headers_only, api.signing_name()).await {
        Ok(c) => c,
        Err(e) => return (api.reject(Rejection::Registry(e), request_id), facts),
    };
    let body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return (api.reject(Rejection::BodyTooLarge { limit }, request_id), facts)
        }
        Err(e) => return (api.reject(Rejection::BodyUnreadable(e.to_string()), request_id), facts),
    };
    // Query APIs name the action in the (form) body.
    let action = match action {
        Some(a) => a,
        None => match query::action(&body) {
            Some(a) => a,
            None => return (api.reject(Rejection::UnknownOperation(String::new()), request_id), facts),
        },
    };
    facts.action = log_action(api.signing_name(), &action);
    let payload_sha256 = hex::encode(sha2::Sha256::digest(&body));
    let request_parts = berth_iam::sigv4::RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        payload_sha256: &payload_sha256,
    };
    let principal = match registry.verify_sigv4(&request_parts, caller, transport).and_then(|p| registry.take_api_call(&p).map(|()| p)) {
        Ok(p) => p,
        Err(e) => return (api.reject(Rejection::Registry(e), request_id), facts),
    };
    facts.caller(&principal);
    // The audit record's requestParameters: the request's own fields, secrets and long texts left out.
    facts.request_parameters = berth_core::audit::redacted_parameters(&body);
    let record = Arc::new(operation::CallRecord::default());
    let call =
        Call { registry: registry.clone(), action, body, principal, host, request_id: request_id.to_string(), record: record.clone() };
    let response = api.call(call).await;
    facts.resources = record.resources();
    (response, facts)
}
