//! A thin OCI Distribution client: just the requests the workloads time.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LINK, LOCATION};
use reqwest::{Body, Client, Response, StatusCode};
use sha2::{Digest, Sha256};

/// Every manifest type a registry may answer a tag GET with.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A registry to talk to: its base URL and the `Authorization` header to send, if any.
#[derive(Clone)]
pub struct Target {
    pub base: String,
    auth: Option<HeaderValue>,
}

impl Target {
    pub fn new(base: &str, user: Option<&str>, password: Option<&str>) -> Result<Target> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("base URL {base:?} must start with http:// or https://");
        }
        let auth = match (user, password) {
            (Some(u), Some(p)) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                let mut v = HeaderValue::from_str(&format!("Basic {encoded}")).context("credentials are not a valid header value")?;
                v.set_sensitive(true);
                Some(v)
            }
            (None, None) => None,
            _ => bail!("give both --user and --password, or neither"),
        };
        Ok(Target { base, auth })
    }

    /// A client that keeps (at most) one idle connection: a worker that owns one client owns one connection.
    pub fn client(&self) -> Result<Client> {
        let mut headers = HeaderMap::new();
        if let Some(a) = &self.auth {
            headers.insert(AUTHORIZATION, a.clone());
        }
        Client::builder()
            .default_headers(headers)
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(300))
            .redirect(reqwest::redirect::Policy::limited(5))
            .timeout(Duration::from_secs(600))
            .build()
            .context("building the HTTP client")
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    /// Resolves a `Location` or `Link` target (absolute, or a path on the registry).
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            self.url(location)
        } else {
            format!("{}/{}", self.base, location)
        }
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fails with the status, the request and the start of the body when `resp` is not one of `expected`.
pub async fn expect(resp: Response, expected: &[StatusCode], what: &str) -> Result<Response> {
    if expected.contains(&resp.status()) {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(400).collect();
    bail!("{what}: HTTP {status}: {body}")
}

fn location(resp: &Response, t: &Target, what: &str) -> Result<String> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .ok_or_else(|| anyhow!("{what}: no Location header"))?
        .to_str()
        .with_context(|| format!("{what}: Location is not ASCII"))?;
    Ok(t.resolve(loc))
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// `POST /v2/<repo>/blobs/uploads/`; returns the absolute upload URL.
pub async fn start_upload(c: &Client, t: &Target, repo: &str) -> Result<String> {
    let what = format!("POST /v2/{repo}/blobs/uploads/");
    let resp = c.post(t.url(&format!("/v2/{repo}/blobs/uploads/"))).header(CONTENT_LENGTH, 0).send().await.context(what.clone())?;
    let resp = expect(resp, &[StatusCode::ACCEPTED], &what).await?;
    location(&resp, t, &what)
}

/// Finishes an upload with `PUT ?digest=`, sending `body` (monolithic) or nothing (after PATCHes).
pub async fn finish_upload(c: &Client, upload: &str, digest: &str, body: Option<(Body, u64)>) -> Result<()> {
    let url = with_query(upload, "digest", digest);
    let req = c.put(&url);
    let req = match body {
        Some((b, len)) => req.header(CONTENT_TYPE, "application/octet-stream").header(CONTENT_LENGTH, len).body(b),
        None => req.header(CONTENT_LENGTH, 0),
    };
    let resp = req.send().await.with_context(|| format!("PUT {url}"))?;
    let resp = expect(resp, &[StatusCode::CREATED], &format!("PUT upload ?digest={digest}")).await?;
    drop(resp.bytes().await);
    Ok(())
}

/// One `PATCH` of an upload with `Content-Range`; returns the next upload URL.
pub async fn patch_chunk(c: &Client, t: &Target, upload: &str, offset: u64, chunk: Bytes) -> Result<String> {
    let len = chunk.len() as u64;
    let what = format!("PATCH upload bytes {offset}-{}", offset + len - 1);
    let resp = c
        .patch(upload)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, len)
        .header("Content-Range", format!("{offset}-{}", offset + len - 1))
        .body(chunk)
        .send()
        .await
        .with_context(|| what.clone())?;
    let resp = expect(resp, &[StatusCode::ACCEPTED], &what).await?;
    location(&resp, t, &what)
}

/// A small blob, pushed monolithically (POST, then PUT with the body). `head` first, as clients do.
pub async fn push_small_blob(c: &Client, t: &Target, repo: &str, data: Bytes, head: bool) -> Result<String> {
    let digest = sha256_digest(&data);
    if head {
        let url = t.url(&format!("/v2/{repo}/blobs/{digest}"));
        let resp = c.head(&url).send().await.with_context(|| format!("HEAD {url}"))?;
        if resp.status() == StatusCode::OK {
            return Ok(digest);
        }
    }
    let upload = start_upload(c, t, repo).await?;
    let len = data.len() as u64;
    finish_upload(c, &upload, &digest, Some((Body::from(data), len))).await?;
    Ok(digest)
}

/// `POST ?mount=&from=`; true when the registry mounted the blob (201).
pub async fn mount(c: &Client, t: &Target, repo: &str, digest: &str, from: &str) -> Result<bool> {
    let url = t.url(&format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"));
    let resp = c.post(&url).header(CONTENT_LENGTH, 0).send().await.with_context(|| format!("POST {url}"))?;
    let resp = expect(resp, &[StatusCode::CREATED, StatusCode::ACCEPTED], &format!("mount {digest} into {repo}")).await?;
    Ok(resp.status() == StatusCode::CREATED)
}

pub async fn put_manifest(c: &Client, t: &Target, repo: &str, reference: &str, manifest: Bytes) -> Result<()> {
    let url = t.url(&format!("/v2/{repo}/manifests/{reference}"));
    let resp = c.put(&url).header(CONTENT_TYPE, OCI_MANIFEST).body(manifest).send().await.with_context(|| format!("PUT {url}"))?;
    let resp = expect(resp, &[StatusCode::CREATED], &format!("PUT manifest {repo}:{reference}")).await?;
    drop(resp.bytes().await);
    Ok(())
}

pub fn manifest_json(config: &str, config_len: usize, layer: &str, layer_len: usize) -> Bytes {
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": config_len},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": layer_len}],
    });
    Bytes::from(m.to_string())
}

/// A unique small image (config + one layer of `layer_len` random bytes), pushed as a client would.
/// Returns (config digest, layer digest, manifest bytes).
pub async fn push_small_image(c: &Client, t: &Target, repo: &str, tag: &str, layer_len: usize) -> Result<(String, String, Bytes)> {
    let mut layer = vec![0u8; layer_len];
    rand::Rng::fill(&mut rand::thread_rng(), &mut layer[..]);
    let nonce: u64 = rand::random();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"bench.nonce": nonce.to_string()}},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]},
    })
    .to_string();
    let config_len = config.len();
    let cfg = push_small_blob(c, t, repo, Bytes::from(config), true).await?;
    let lay = push_small_blob(c, t, repo, Bytes::from(layer), true).await?;
    let manifest = manifest_json(&cfg, config_len, &lay, layer_len);
    put_manifest(c, t, repo, tag, manifest.clone()).await?;
    Ok((cfg, lay, manifest))
}

/// The `rel="next"` target of a `Link` header, resolved against the registry.
pub fn next_link(t: &Target, headers: &HeaderMap) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    for part in link.split(',') {
        if part.contains("rel=\"next\"") || part.contains("rel=next") {
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            return Some(t.resolve(&part[start..end]));
        }
    }
    None
}

pub fn accept_manifests() -> (reqwest::header::HeaderName, &'static str) {
    (ACCEPT, MANIFEST_ACCEPT)
}
