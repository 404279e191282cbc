//! The Amazon ECR JSON 1.1 adapter: `POST /` with
//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Action>`.
//!
//! Each request is SigV4-authenticated, parsed into its action's input
//! shape (botocore's ECR model), authorized as that action through the
//! registry service, and answered in AWS JSON 1.1; every failure becomes an
//! AWS `__type` exception in `error.rs`.

mod actions;
mod error;
mod lifecycle_actions;
mod scan_actions;
mod shapes;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use berth_core::auth::Transport;
use berth_core::Registry;
use http::header;
use http_body_util::BodyExt;
use sha2::Digest as _;

pub use error::EcrError;

const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
/// UploadLayerPart carries base64 parts; allow generous parts plus JSON overhead.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Routes `POST /` when it carries an ECR target; anything else falls through to `fallback`.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new().route("/", axum::routing::post(dispatch)).with_state(registry)
}

async fn dispatch(State(registry): State<Arc<Registry>>, req: Request<Body>) -> Response {
    let mut resp = match handle(&registry, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(berth_oci::RouteLabel("ecr"));
    resp
}

async fn handle(registry: &Arc<Registry>, req: Request<Body>) -> Result<Response, EcrError> {
    let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let Some(action) = target.strip_prefix(TARGET_PREFIX).map(str::to_string) else {
        return Err(EcrError::new("UnknownOperationException", format!("unknown operation {target:?}")));
    };
    let mut transport = req.extensions().get::<Transport>().copied().unwrap_or_default();
    if transport.source_ip.is_none() {
        transport.source_ip = req.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    }
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_string();
    let (parts, body) = req.into_parts();
    let body = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| EcrError::new("ValidationException", format!("request body could not be read: {e}")))?
        .to_bytes();
    let payload_sha256 = hex::encode(sha2::Sha256::digest(&body));
    let request_parts = berth_iam::sigv4::RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        payload_sha256: &payload_sha256,
    };
    let principal = registry.authenticate_sigv4(&request_parts, transport).await?;
    let ctx = actions::Ctx { registry, principal: &principal, host: &host };
    let output = actions::run(&ctx, &action, &body).await?;
    let bytes = serde_json::to_vec(&output).map_err(|e| EcrError::server(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/x-amz-json-1.1")], bytes).into_response())
}
