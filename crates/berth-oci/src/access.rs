//! Who is calling `/v2/`, and which ECR action each request is. The decision
//! itself is the registry service's (`Registry::authorize`).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::Request;
use base64::Engine;
use berth_core::auth::{AuthFailure, Principal, Resource, Transport};
use berth_core::{Registry, RegistryError, RegistryRef, Repo};
use http::{header, Method};

use crate::{Endpoint, OciError};

/// The caller's Basic credentials and transport, read before any await (a request body is not `Sync`).
/// Credentials come from the Authorization header only: a registry token is never read from a URL.
pub(crate) fn credentials(req: &Request<Body>) -> (Option<(String, String)>, Transport) {
    (basic_credentials(req), transport(req))
}

/// The download capability a GetDownloadUrlForLayer URL carries, if any (verified by the service
/// for the blob the request addresses; it is no credential for anything else).
pub(crate) fn download_capability(query: &HashMap<String, String>) -> Option<&str> {
    query.get(berth_core::download_urls::DOWNLOAD_URL_PARAM).map(String::as_str)
}

/// Verifies a download capability for the blob read `name`/`digest` the request addresses;
/// returns whom it was issued to, for the request log.
pub(crate) async fn verify_download(registry: &Registry, capability: &str, name: &Repo, digest: &str) -> Result<String, OciError> {
    let digest: berth_core::Digest =
        digest.parse().map_err(|e: berth_core::DigestError| OciError::Registry(RegistryError::DigestInvalid(e.to_string())))?;
    Ok(registry.verify_download_capability(capability, name, &digest).await?)
}

/// The caller of a public read: the principal its credentials name (wrong ones are refused,
/// not taken for anonymous), else the anonymous caller.
pub(crate) async fn authenticate_if_any(registry: &Registry, creds: (Option<(String, String)>, Transport)) -> Result<Principal, OciError> {
    match creds {
        (None, transport) => Ok(berth_core::public_access::anonymous(transport)),
        creds => authenticate(registry, creds).await,
    }
}

/// For a read of a public repository: Some(whether it is an image pull, i.e. a manifest GET).
/// None for everything else (private repositories, and writes to public ones).
pub(crate) fn public_read(ep: &Endpoint<Repo>, method: &Method) -> Option<bool> {
    let repo = repository(ep)?;
    if !berth_core::public_access::is_public(repo) || !matches!(*method, Method::GET | Method::HEAD) {
        return None;
    }
    match ep {
        Endpoint::Manifest { .. } => Some(method == Method::GET),
        Endpoint::Tags { .. } | Endpoint::Blob { .. } | Endpoint::Referrers { .. } => Some(false),
        _ => None,
    }
}

pub(crate) async fn authenticate(registry: &Registry, creds: (Option<(String, String)>, Transport)) -> Result<Principal, OciError> {
    let (basic, transport) = creds;
    let (user, password) = basic.ok_or(OciError::Registry(RegistryError::Unauthenticated(AuthFailure::Missing)))?;
    Ok(registry.authenticate_token(&user, &password, transport).await?)
}

pub(crate) fn transport(req: &Request<Body>) -> Transport {
    Transport::of(req.extensions())
}

/// Whether the request carries the realm's anonymous bearer token (which names no one: such a
/// request is treated exactly as one without credentials, except that `GET /v2/` answers 200 to
/// it, as a token client expects after its token exchange).
pub(crate) fn anonymous_bearer(req: &Request<Body>) -> bool {
    let Some((scheme, token)) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.split_once(' '))
    else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && token.trim() == berth_core::public_access::ANONYMOUS_BEARER_TOKEN
}

/// Basic `base64(AWS:<token>)`, or `Bearer` with the same value, as a token client sends what
/// the realm's exchange gave it (ECR's `authorizationToken` form). A bare registry token is
/// never a bearer token.
fn basic_credentials(req: &Request<Body>) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") && !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    // `Basic Og==` (empty user and password) is what containers/image sends when it has no
    // login for the host: no credentials.
    if user.is_empty() && password.is_empty() {
        return None;
    }
    Some((user.to_string(), password.to_string()))
}

/// The ECR action a `/v2/` request is, as ECR documents for its Docker registry API.
pub(crate) fn action(ep: &Endpoint<Repo>, method: &Method) -> Option<&'static str> {
    Some(match (ep, method) {
        (Endpoint::Base, _) => return None,
        (Endpoint::Catalog, _) => "ecr:DescribeRepositories",
        (Endpoint::Tags { .. }, _) => "ecr:ListImages",
        (Endpoint::Manifest { .. }, &Method::PUT) => "ecr:PutImage",
        (Endpoint::Manifest { .. }, &Method::DELETE) | (Endpoint::Blob { .. }, &Method::DELETE) => "ecr:BatchDeleteImage",
        (Endpoint::Manifest { .. }, _) | (Endpoint::Referrers { .. }, _) => "ecr:BatchGetImage",
        (Endpoint::Blob { .. }, &Method::HEAD) => "ecr:BatchCheckLayerAvailability",
        (Endpoint::Blob { .. }, _) => "ecr:GetDownloadUrlForLayer",
        (Endpoint::UploadStart { .. }, _) => "ecr:InitiateLayerUpload",
        (Endpoint::Upload { .. }, &Method::PUT) => "ecr:CompleteLayerUpload",
        (Endpoint::Upload { .. }, _) => "ecr:UploadLayerPart",
    })
}

fn repository(ep: &Endpoint<Repo>) -> Option<&Repo> {
    match ep {
        Endpoint::Base | Endpoint::Catalog => None,
        Endpoint::Tags { name }
        | Endpoint::Manifest { name, .. }
        | Endpoint::Blob { name, .. }
        | Endpoint::UploadStart { name }
        | Endpoint::Upload { name, .. }
        | Endpoint::Referrers { name, .. } => Some(name),
    }
}

pub(crate) async fn authorize(
    registry: &Registry,
    principal: &Principal,
    registry_ref: &RegistryRef,
    ep: &Endpoint<Repo>,
    method: &Method,
    _query: &HashMap<String, String>,
) -> Result<(), OciError> {
    let Some(action) = action(ep, method) else { return Ok(()) };
    // The service names the action in the repository's registry (`ecr-public:` in a public one).
    let scoped;
    let action = match repository(ep) {
        Some(repo) => {
            scoped = berth_core::public::iam_action(&repo.registry(), action.trim_start_matches("ecr:"));
            scoped.as_str()
        }
        None => action,
    };
    match repository(ep) {
        None => registry.authorize(principal, action, Resource::Registry(registry_ref)).await?,
        Some(repo) => {
            let pushes = matches!((ep, method), (Endpoint::UploadStart { .. }, &Method::POST) | (Endpoint::Manifest { .. }, &Method::PUT));
            if pushes {
                registry.authorize_push(principal, action, repo).await?;
            } else {
                registry.authorize(principal, action, Resource::Repository(repo)).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> Request<Body> {
        Request::builder().uri("/v2/").header(header::AUTHORIZATION, value).body(Body::empty()).unwrap()
    }

    #[test]
    fn bearer_carries_what_basic_carries() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("AWS:b1.x.y");
        for scheme in ["Basic", "Bearer"] {
            assert_eq!(basic_credentials(&with_auth(&format!("{scheme} {encoded}"))), Some(("AWS".into(), "b1.x.y".into())));
        }
        assert_eq!(basic_credentials(&with_auth("Bearer b1.x.y")), None);
        assert_eq!(basic_credentials(&with_auth(&format!("Digest {encoded}"))), None);
    }

    #[test]
    fn the_anonymous_bearer_token_is_no_credential() {
        let req = with_auth("Bearer berth-anonymous");
        assert!(anonymous_bearer(&req));
        assert_eq!(basic_credentials(&req), None);
        assert!(!anonymous_bearer(&with_auth("Basic berth-anonymous")));
    }
}
