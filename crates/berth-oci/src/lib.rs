//! The OCI Distribution API adapter (`/v2/`).
//!
//! A request is first parsed into an [`Endpoint`] (routing is data, see
//! `endpoint.rs`), then handled by calling the registry service; every
//! service error becomes the spec's error JSON in one place (`error.rs`).

mod access;
mod endpoint;
mod error;
mod handlers;
mod headers;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use berth_core::Registry;

pub use endpoint::Endpoint;

/// The credentials a request carries, read synchronously (a request body is not `Sync`).
pub struct Caller(Option<(String, String)>, berth_core::auth::Transport);

pub fn caller(req: &Request<Body>) -> Caller {
    let (c, t) = access::credentials(req);
    Caller(c, t)
}

/// Authenticates a non-`/v2/` request the way `/v2/` does (Basic `AWS:<registry token>`), for
/// operator endpoints that must not be open.
pub async fn authenticate_basic(registry: &Registry, caller: Caller) -> Result<berth_core::auth::Principal, OciError> {
    access::authenticate(registry, (caller.0, caller.1)).await
}
pub use error::OciError;

pub use berth_core::observe::RouteLabel;

/// `/v2/` and everything under it.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/v2", axum::routing::any(dispatch))
        .route("/v2/", axum::routing::any(dispatch))
        .route("/v2/{*rest}", axum::routing::any(dispatch))
        .route("/", axum::routing::get(token))
        .route("/token", axum::routing::get(token))
        .with_state(registry)
}

/// Where a request came in: host, scheme, and whether the host is the public registry's.
struct Origin {
    host: String,
    scheme: &'static str,
    public_host: bool,
}

/// The challenge's realm must send token clients back to this listener (http on a plain one),
/// never to a guessed https URL.
fn origin(registry: &Registry, req: &Request<Body>) -> Origin {
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_string();
    let scheme = if access::transport(req).secure { "https" } else { "http" };
    let public_host = registry.is_public_host(Some(&host));
    Origin { host, scheme, public_host }
}

/// ECR's challenge on the private registry: Basic, with its realm at this listener's root;
/// docker/podman/skopeo answer it with the stored login, token clients (oras-py's default) fetch
/// a token from the realm first. On the public registry's host, ECR Public's: the Bearer token
/// flow, which docker, containerd and podman follow without a login to pull anonymously.
fn challenge(response: &mut Response, origin: &Origin) {
    let Origin { host, scheme, public_host } = origin;
    let value = match public_host {
        true => format!("Bearer realm=\"{scheme}://{host}/token\",service=\"{host}\""),
        false => format!("Basic realm=\"{scheme}://{host}/\",service=\"ecr.amazonaws.com\""),
    };
    if let Ok(v) = http::HeaderValue::from_str(&value) {
        response.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
}

/// The challenge's realm. Basic `AWS:<registry token>` is exchanged for `base64(AWS:<registry
/// token>)` (ECR's `authorizationToken`), which `/v2/` then accepts as `Bearer`; nothing new is
/// granted: the credentials are the caller's own, checked before they are handed back. A caller
/// without credentials gets the anonymous token, which is worth what no credentials are worth:
/// reads of public repositories (given on the public registry's host only).
async fn token(State(registry): State<Arc<Registry>>, req: Request<Body>) -> Response {
    use base64::Engine;
    let origin = origin(&registry, &req);
    let (creds, transport) = access::credentials(&req);
    let mut response = match creds {
        // Only where the public registry's challenge sent the caller: elsewhere the realm is the
        // private registry's, and a caller without credentials is told to bring some.
        None if origin.public_host => bearer_token(berth_core::public_access::ANONYMOUS_BEARER_TOKEN),
        None => OciError::Registry(berth_core::RegistryError::Unauthenticated(berth_core::auth::AuthFailure::Missing)).into_response(),
        Some((user, password)) => {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            match access::authenticate(&registry, (Some((user, password)), transport)).await {
                Ok(_) => bearer_token(&token),
                Err(e) => e.into_response(),
            }
        }
    };
    if response.status() == http::StatusCode::UNAUTHORIZED {
        challenge(&mut response, &origin);
    }
    response.extensions_mut().insert(RouteLabel("v2_token"));
    response
}

fn bearer_token(token: &str) -> Response {
    axum::Json(serde_json::json!({ "token": token, "access_token": token })).into_response()
}

async fn dispatch(State(registry): State<Arc<Registry>>, req: Request<Body>) -> Response {
    let endpoint = Endpoint::parse(req.uri().path());
    let origin = origin(&registry, &req);
    // An error may be answered before the request body is read. The connection then cannot be
    // reused (the unread body is still on the wire), so say so rather than let the client's
    // next request on it fail (RFC 9112 §9.3).
    let carries_body = req.headers().get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(http::header::TRANSFER_ENCODING);
    let label = endpoint.as_ref().map(Endpoint::label).unwrap_or("v2_unknown");
    let mut facts = berth_core::observe::CallFacts { action: label.to_string(), ..Default::default() };
    let mut response = match endpoint {
        Ok(ep) => match handlers::handle(&registry, ep, req, &mut facts).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert("docker-distribution-api-version", http::HeaderValue::from_static("registry/2.0"));
    if response.status() == http::StatusCode::UNAUTHORIZED {
        challenge(&mut response, &origin);
    }
    if carries_body && (response.status().is_client_error() || response.status().is_server_error()) {
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    response.extensions_mut().insert(RouteLabel(label));
    response.extensions_mut().insert(facts);
    response
}
