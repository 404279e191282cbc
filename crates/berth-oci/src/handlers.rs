//! One function per endpoint × method; each parses what it needs, calls the
//! registry service, and shapes the response. No registry rule lives here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use berth_core::auth::Principal;
use berth_core::observe::CallFacts;
use berth_core::{
    media_types, BlobDeletion, Digest, MountOutcome, Reference, Registry, RegistryError, RegistryRef, Repo, RepositoryName, UploadStatus,
    MAX_MANIFEST_BYTES,
};
use futures::{StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;

use crate::headers::{parse_content_range, parse_range, upload_range};
use crate::{Endpoint, OciError};

type HandlerResult = Result<Response, OciError>;

/// Handles one `/v2/` request; `facts` tells the request log which action it was and who asked.
pub(crate) async fn handle(registry: &Arc<Registry>, ep: Endpoint, req: Request<Body>, facts: &mut CallFacts) -> HandlerResult {
    let method = req.method().clone();
    let query = query_params(&req);
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    let (registry_ref, ep) = ep.address(registry, host).await?;
    if let Some(action) = crate::access::action(&ep, &method) {
        facts.action = action.to_string();
    }
    audit_facts(facts, &registry_ref, &ep, &query);
    let creds = crate::access::credentials(&req);
    // A token client pings `/v2/` with the token the realm gave it; the anonymous one is good
    // for that (it is good for nothing a caller without credentials could not do).
    if let (Endpoint::Base, None) = (&ep, &creds.0) {
        if crate::access::anonymous_bearer(&req) {
            facts.principal = Some(berth_core::public_access::ANONYMOUS.to_string());
            return Ok(json_response(StatusCode::OK, json!({})));
        }
    }
    // A download URL (GetDownloadUrlForLayer) reads its one blob on its capability alone; on any
    // other request the capability is no credential, so a request without one is refused.
    if let (None, Some(capability), Endpoint::Blob { name, digest }, &Method::GET | &Method::HEAD) =
        (&creds.0, crate::access::download_capability(&query), &ep, &method)
    {
        facts.principal = Some(crate::access::verify_download(registry, capability, name, digest).await?);
        return get_blob(registry, None, name, digest, req.headers(), method == Method::HEAD).await;
    }
    let principal = match crate::access::public_read(&ep, &method) {
        // Anyone may read a public repository: no credentials needed, no policy consulted;
        // image pulls count against the caller's quota.
        Some(pull) => {
            let principal = crate::access::authenticate_if_any(registry, creds).await?;
            if pull {
                registry.take_public_pull(&principal)?;
            }
            principal
        }
        None => {
            let principal = crate::access::authenticate(registry, creds).await?;
            // Known before the decision, so a denied call's record names its caller.
            facts.caller(&principal);
            crate::access::authorize(registry, &principal, &registry_ref, &ep, &method, &query).await?;
            principal
        }
    };
    facts.caller(&principal);
    let result = match (ep, method) {
        (Endpoint::Base, Method::GET | Method::HEAD) => Ok(json_response(StatusCode::OK, json!({}))),
        (Endpoint::Catalog, Method::GET) => catalog(registry, &registry_ref, &query).await,
        (Endpoint::Tags { name }, Method::GET) => tags(registry, &name, &query).await,
        (Endpoint::Manifest { name, reference }, m @ (Method::GET | Method::HEAD)) => {
            get_manifest(registry, &principal, &name, &reference, m == Method::HEAD).await
        }
        (Endpoint::Manifest { name, reference }, Method::PUT) => put_manifest(registry, &name, &reference, req).await,
        (Endpoint::Manifest { name, reference }, Method::DELETE) => delete_manifest(registry, &name, &reference).await,
        (Endpoint::Blob { name, digest }, m @ (Method::GET | Method::HEAD)) => {
            get_blob(registry, Some(&principal), &name, &digest, req.headers(), m == Method::HEAD).await
        }
        (Endpoint::Blob { name, digest }, Method::DELETE) => delete_blob(registry, &name, &digest).await,
        (Endpoint::UploadStart { name }, Method::POST) => start_upload(registry, &principal, &name, &query, req).await,
        (Endpoint::Upload { name, id }, Method::GET) => {
            let status = registry.upload_status(&name, &id).await?;
            Ok(upload_response(registry, StatusCode::NO_CONTENT, &name, &status))
        }
        (Endpoint::Upload { name, id }, Method::PATCH) => patch_upload(registry, &name, &id, req).await,
        (Endpoint::Upload { name, id }, Method::PUT) => put_upload(registry, &name, &id, &query, req).await,
        (Endpoint::Upload { name, id }, Method::DELETE) => {
            registry.cancel_upload(&name, &id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Endpoint::Referrers { name, digest }, Method::GET) => referrers(registry, &principal, &name, &digest, &query).await,
        _ => Err(OciError::MethodNotAllowed),
    };
    // A pushed manifest's digest is known once stored (PutImage by tag names only the tag).
    if let (Ok(r), "ecr:PutImage") = (&result, facts.action.as_str()) {
        if let Some(digest) = r.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()) {
            facts.param("imageDigest", digest);
        }
    }
    result
}

/// What the audit record says of a `/v2/` call, as ECR's API would name it: the repository,
/// and the image, layer or upload.
fn audit_facts(facts: &mut CallFacts, registry_ref: &RegistryRef, ep: &Endpoint<Repo>, query: &HashMap<String, String>) {
    facts.region = Some(registry_ref.region.clone());
    let (name, detail) = match ep {
        Endpoint::Base | Endpoint::Catalog => return,
        Endpoint::Tags { name } | Endpoint::UploadStart { name } => (name, None),
        Endpoint::Manifest { name, reference } if reference.contains(':') => (name, Some(("imageDigest", reference.clone()))),
        Endpoint::Manifest { name, reference } => (name, Some(("imageTag", reference.clone()))),
        Endpoint::Blob { name, digest } => (name, Some(("layerDigest", digest.clone()))),
        Endpoint::Referrers { name, digest } => (name, Some(("imageDigest", digest.clone()))),
        Endpoint::Upload { name, id } => {
            facts.param("uploadId", id.as_str());
            (name, query.get("digest").map(|d| ("layerDigest", d.clone())))
        }
    };
    facts.resources = vec![name.arn()];
    facts.param("registryId", name.key().account.as_str());
    facts.param("repositoryName", name.to_string());
    if let Some((key, value)) = detail {
        facts.param(key, value);
    }
}

fn query_params(req: &Request<Body>) -> HashMap<String, String> {
    req.uri().query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

fn parse_digest(s: &str) -> Result<Digest, OciError> {
    s.parse().map_err(|e: berth_core::DigestError| OciError::Registry(RegistryError::DigestInvalid(e.to_string())))
}

fn hv(s: &str) -> HeaderValue {
    // Every value we format is ASCII (digests, numbers, validated names).
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn body_stream(req: Request<Body>) -> berth_core::BlobStream {
    TryStreamExt::map_err(req.into_body().into_data_stream(), std::io::Error::other).boxed()
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default()
}

// ---- listings ----

fn page_params(query: &HashMap<String, String>) -> Result<(Option<u32>, Option<&str>), OciError> {
    let n = match query.get("n") {
        None => None,
        Some(v) => Some(v.parse::<u32>().map_err(|_| OciError::PaginationInvalid(format!("n={v:?} is not a non-negative integer")))?),
    };
    Ok((n, query.get("last").map(String::as_str).filter(|s| !s.is_empty())))
}

fn next_link(path: &str, n: Option<u32>, page: &berth_core::Page) -> Option<HeaderValue> {
    let last = page.items.last()?;
    if !page.more {
        return None;
    }
    let n = n.unwrap_or(berth_core::MAX_PAGE).min(berth_core::MAX_PAGE);
    let last: String = form_urlencoded::byte_serialize(last.as_bytes()).collect();
    Some(hv(&format!("<{path}?n={n}&last={last}>; rel=\"next\"")))
}

async fn catalog(registry: &Registry, registry_ref: &RegistryRef, query: &HashMap<String, String>) -> HandlerResult {
    let (n, last) = page_params(query)?;
    let page = registry.list_repositories(registry_ref, last, n).await?;
    let mut resp = json_response(StatusCode::OK, json!({ "repositories": page.items }));
    if let Some(link) = next_link("/v2/_catalog", n, &page) {
        resp.headers_mut().insert(header::LINK, link);
    }
    Ok(resp)
}

async fn tags(registry: &Registry, name: &Repo, query: &HashMap<String, String>) -> HandlerResult {
    let (n, last) = page_params(query)?;
    let page = registry.list_tags(name, last, n).await?;
    let path = registry.repository_path(name.key());
    let mut resp = json_response(StatusCode::OK, json!({ "name": path, "tags": page.items }));
    if let Some(link) = next_link(&format!("/v2/{path}/tags/list"), n, &page) {
        resp.headers_mut().insert(header::LINK, link);
    }
    Ok(resp)
}

async fn referrers(
    registry: &Arc<Registry>,
    principal: &Principal,
    name: &Repo,
    digest: &str,
    query: &HashMap<String, String>,
) -> HandlerResult {
    let subject = parse_digest(digest)?;
    let filter = query.get("artifactType").map(String::as_str).filter(|s| !s.is_empty());
    let found = registry.serve_referrers(principal, name, &subject, filter).await?;
    let manifests: Vec<serde_json::Value> = found
        .into_iter()
        .map(|m| {
            let mut d = json!({ "mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.size });
            if let Some(t) = m.artifact_type {
                d["artifactType"] = json!(t);
            }
            if let Some(a) = m.annotations.and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok()) {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let body = json!({ "schemaVersion": 2, "mediaType": media_types::OCI_INDEX, "manifests": manifests });
    let mut resp = json_response(StatusCode::OK, body);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media_types::OCI_INDEX));
    if filter.is_some() {
        resp.headers_mut().insert("oci-filters-applied", HeaderValue::from_static("artifactType"));
    }
    Ok(resp)
}

// ---- manifests ----

async fn get_manifest(registry: &Arc<Registry>, principal: &Principal, name: &Repo, reference: &str, head: bool) -> HandlerResult {
    // No manifest can have a name that is neither a tag nor a digest: the spec's answer is
    // MANIFEST_UNKNOWN (a PUT of one stays a 400).
    let reference = Reference::parse(reference).map_err(|_| RegistryError::ManifestUnknown(reference.to_string()))?;
    // A cache repository's miss goes to its upstream (berth_core::pull_through).
    let m = registry.serve_manifest(principal, name, &reference, head).await?;
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, hv(&m.media_type))
        .header(header::CONTENT_LENGTH, m.content.len())
        .header("docker-content-digest", hv(&m.digest.to_string()))
        .header(header::ETAG, hv(&format!("\"{}\"", m.digest)));
    if head {
        return builder.body(Body::empty()).map_err(|e| OciError::BadRequest(e.to_string()));
    }
    builder.body(Body::from(m.content)).map_err(|e| OciError::BadRequest(e.to_string()))
}

/// The `tag` query parameters of a manifest PUT (repeatable, so not from the query map).
fn tag_params(req: &Request<Body>) -> Result<Vec<berth_core::Tag>, OciError> {
    let Some(query) = req.uri().query() else { return Ok(Vec::new()) };
    form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == "tag").map(|(_, v)| Ok(Registry::tag(&v)?)).collect()
}

async fn put_manifest(registry: &Registry, name: &Repo, reference: &str, req: Request<Body>) -> HandlerResult {
    let reference = Reference::parse(reference)?;
    let extra_tags = tag_params(&req)?;
    let ct = content_type(req.headers());
    if content_length(req.headers()).is_some_and(|n| n > MAX_MANIFEST_BYTES as u64) {
        return Err(RegistryError::ManifestTooLarge { limit: MAX_MANIFEST_BYTES }.into());
    }
    // Stop reading one byte past the limit: a too-large manifest never sits in memory whole.
    let limited = http_body_util::Limited::new(req.into_body(), MAX_MANIFEST_BYTES);
    let body = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(RegistryError::ManifestTooLarge { limit: MAX_MANIFEST_BYTES }.into())
        }
        Err(e) => return Err(OciError::BadRequest(format!("reading manifest body: {e}"))),
    };
    let stored = registry.put_manifest_tagged(name, &reference, &extra_tags, &ct, body).await?;
    let digest = stored.digest.to_string();
    let mut builder = Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, hv(&format!("/v2/{}/manifests/{digest}", registry.repository_path(name.key()))))
        .header("docker-content-digest", hv(&digest));
    // One OCI-Tag per tag applied by `?tag=` tells the client it need not push each tag again.
    if !extra_tags.is_empty() {
        for t in &stored.tags {
            builder = builder.header("oci-tag", hv(t));
        }
    }
    if let Some(subject) = stored.subject {
        builder = builder.header("oci-subject", hv(&subject.to_string()));
    }
    builder.body(Body::empty()).map_err(|e| OciError::BadRequest(e.to_string()))
}

async fn delete_manifest(registry: &Registry, name: &Repo, reference: &str) -> HandlerResult {
    let reference = Reference::parse(reference)?;
    registry.delete_manifest(name, &reference).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

// ---- blobs ----

/// 202 once the repository's link is gone; a blob a manifest still references is not
/// deletable on its own (405 UNSUPPORTED, the spec's answer when deletion is not offered).
async fn delete_blob(registry: &Registry, name: &Repo, digest: &str) -> HandlerResult {
    let digest = parse_digest(digest)?;
    match registry.delete_blob(name, &digest).await? {
        BlobDeletion::Unlinked => Ok(StatusCode::ACCEPTED.into_response()),
        BlobDeletion::Referenced => Err(OciError::Unsupported(format!(
            "blob {digest} is referenced by a manifest in {name}; delete the manifest, and the blob goes with garbage collection"
        ))),
    }
}

/// A blob read; one the repository lacks is pulled through when the repository is a cache
/// (never for a download capability, which names a stored blob).
async fn get_blob(
    registry: &Arc<Registry>,
    principal: Option<&Principal>,
    name: &Repo,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> HandlerResult {
    match (local_blob(registry, name, digest, headers, head).await, principal) {
        (Err(OciError::Registry(e @ (RegistryError::BlobUnknown(_) | RegistryError::NameUnknown(_)))), Some(p)) => {
            match registry.pull_through_blob(p, name, &parse_digest(digest)?).await? {
                Some((size, body)) => {
                    let builder = Response::builder()
                        .status(StatusCode::OK)
                        .header(header::CONTENT_LENGTH, size)
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .header("docker-content-digest", hv(digest))
                        .header(header::ETAG, hv(&format!("\"{digest}\"")));
                    let body = if head { Body::empty() } else { Body::from_stream(body) };
                    builder.body(body).map_err(|e| OciError::BadRequest(e.to_string()))
                }
                None => Err(e.into()),
            }
        }
        (result, _) => result,
    }
}

async fn local_blob(registry: &Registry, name: &Repo, digest: &str, headers: &HeaderMap, head: bool) -> HandlerResult {
    let digest = parse_digest(digest)?;
    let digest_s = digest.to_string();
    if head {
        let size = registry.stat_blob(name, &digest).await?;
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, size)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::ACCEPT_RANGES, "bytes")
            .header("docker-content-digest", hv(&digest_s))
            .header(header::ETAG, hv(&format!("\"{digest_s}\"")))
            .body(Body::empty())
            .map_err(|e| OciError::BadRequest(e.to_string()));
    }
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(parse_range) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(())) => {
            let size = registry.stat_blob(name, &digest).await?;
            return Err(RegistryError::RangeNotSatisfiable { size }.into());
        }
    };
    if range.is_none() {
        // Large downloads go straight to the bucket when presigned URLs are configured.
        if let Some(url) = registry.blob_download_url(name, &digest).await? {
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(header::LOCATION, hv(&url))
                .header("docker-content-digest", hv(&digest_s))
                .body(Body::empty())
                .map_err(|e| OciError::BadRequest(e.to_string()));
        }
    }
    let (size, range, reader) = registry.read_blob(name, &digest, range).await?;
    let mut builder = Response::builder()
        .header(header::CONTENT_LENGTH, reader.len)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header("docker-content-digest", hv(&digest_s))
        .header(header::ETAG, hv(&format!("\"{digest_s}\"")));
    builder = match range {
        Some(r) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, hv(&format!("bytes {}-{}/{size}", r.start, r.end_inclusive))),
        None => builder.status(StatusCode::OK),
    };
    builder.body(Body::from_stream(reader.body)).map_err(|e| OciError::BadRequest(e.to_string()))
}

// ---- uploads ----

// Locations name the repository by its address (`Registry::repository_path`), so a client that
// used the `<account>/<region>/` form stays in that registry.
fn upload_response(registry: &Registry, status: StatusCode, name: &Repo, upload: &UploadStatus) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, hv(&format!("/v2/{}/blobs/uploads/{}", registry.repository_path(name.key()), upload.id)));
    h.insert(header::RANGE, upload_range(upload.offset));
    h.insert("docker-upload-uuid", hv(&upload.id));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

fn blob_created(registry: &Registry, name: &Repo, digest: &Digest) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, hv(&format!("/v2/{}/blobs/{digest}", registry.repository_path(name.key()))));
    h.insert("docker-content-digest", hv(&digest.to_string()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

async fn start_upload(
    registry: &Registry,
    principal: &Principal,
    name: &Repo,
    query: &HashMap<String, String>,
    req: Request<Body>,
) -> HandlerResult {
    if let Some(mount) = query.get("mount") {
        let digest = parse_digest(mount)?;
        // An invalid `from` is treated as "cannot mount": the client falls back to uploading.
        // `from` is addressed like the target: `<account>/<region>/<name>` or a name in the host's registry.
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let from = query.get("from").and_then(|f| RepositoryName::parse(f).ok()).and_then(|n| registry.addressed_repository(host, n).ok());
        // Mounting reads the source: the service falls back to an upload without permission to read it.
        return match registry.mount_blob(principal, name, &digest, from.as_ref()).await? {
            MountOutcome::Mounted(d) => Ok(blob_created(registry, name, &d)),
            MountOutcome::Upload(status) => Ok(upload_response(registry, StatusCode::ACCEPTED, name, &status)),
        };
    }
    if let Some(digest) = query.get("digest") {
        let digest = parse_digest(digest)?;
        let stored = registry.upload_blob(name, &digest, body_stream(req)).await?;
        return Ok(blob_created(registry, name, &stored));
    }
    let status = registry.start_upload(name).await?;
    Ok(upload_response(registry, StatusCode::ACCEPTED, name, &status))
}

/// The chunk's start offset from `Content-Range`, checked against `Content-Length`.
fn chunk_start(headers: &HeaderMap) -> Result<Option<u64>, OciError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else { return Ok(None) };
    let v = v.to_str().map_err(|_| OciError::BadRequest("Content-Range is not ASCII".into()))?;
    let (start, end) = parse_content_range(v).ok_or_else(|| OciError::BadRequest(format!("Content-Range {v:?} is not <start>-<end>")))?;
    if let Some(len) = content_length(headers) {
        if len != end - start + 1 {
            return Err(OciError::RangeInvalid(format!(
                "Content-Range {v:?} covers {} bytes but Content-Length is {len}",
                end - start + 1
            )));
        }
    }
    Ok(Some(start))
}

async fn patch_upload(registry: &Registry, name: &Repo, id: &str, req: Request<Body>) -> HandlerResult {
    let start = chunk_start(req.headers())?;
    let status = registry.append_upload(name, id, start, body_stream(req)).await?;
    Ok(upload_response(registry, StatusCode::ACCEPTED, name, &status))
}

async fn put_upload(registry: &Registry, name: &Repo, id: &str, query: &HashMap<String, String>, req: Request<Body>) -> HandlerResult {
    let digest = query.get("digest").ok_or_else(|| OciError::Registry(RegistryError::DigestInvalid("PUT must carry ?digest=".into())))?;
    let digest = parse_digest(digest)?;
    let start = chunk_start(req.headers())?;
    let has_body = content_length(req.headers()).map(|n| n > 0).unwrap_or_else(|| req.headers().contains_key(header::TRANSFER_ENCODING));
    let body = has_body.then(|| body_stream(req));
    let stored = registry.complete_upload(name, id, &digest, start, body).await?;
    Ok(blob_created(registry, name, &stored))
}
