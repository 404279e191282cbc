//! The client: one `send` path (authentication, then status mapping) under one retry loop.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::Either;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use url::Url;

use crate::auth::{basic_header, parse_challenges, repo_scope, Challenge, Credentials, TokenResponse};
use crate::ecr;
use crate::error::{from_status, ClientError};
use crate::names::{check_digest, check_reference, check_repo, is_digest, verify_digest};
use crate::streams::{IdleTimeout, Verifying};

/// What the OCI referrers API answers.
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The manifest media types we accept when reading manifests.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Largest manifest we read into memory (ECR's own limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest error body we read to find an OCI error code.
const MAX_ERROR_BODY: usize = 64 * 1024;
const MAX_REDIRECTS: usize = 5;
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Where the remote registry is and how we authenticate to it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `scheme://host[:port]`, no path.
    pub base: Url,
    pub credentials: Credentials,
    /// Allows `http://` (the endpoint, token realms and redirects); off, they are refused.
    pub allow_insecure: bool,
}

#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Whole-request limit for requests without a streamed body. For streamed blobs
    /// (push and get) it is the longest time without a byte moving.
    pub request_timeout: Duration,
    /// Attempts per operation, the first included (at least 1).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    /// Cap of one backoff sleep; a `Retry-After` longer than this is not waited for: the
    /// error is returned for the caller to reschedule.
    pub backoff_max: Duration,
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_attempts: 5,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(20),
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What `HEAD` on a manifest tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestInfo {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Verified against the bytes when it was asked for by digest, or when the remote sent
    /// a sha256 `Docker-Content-Digest`.
    pub digest: String,
    pub media_type: String,
    pub bytes: Bytes,
}

/// A blob being downloaded. The stream checks length and digest as it goes: if the bytes do
/// not match, an `io::ErrorKind::InvalidData` error takes the place of the chunk that completes
/// the blob, so a consumer never keeps, nor passes on, a complete-looking corrupt blob.
pub struct BlobStream {
    pub size: u64,
    pub stream: BoxStream<'static, io::Result<Bytes>>,
}

impl fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStream").field("size", &self.size).finish_non_exhaustive()
    }
}

/// A token service's token for one set of scopes.
struct CachedToken {
    token: String,
    refresh_at: Instant,
}

/// What the remote asked for the last time it challenged us, so later requests (other
/// repositories, other scopes) authenticate up front instead of collecting a 401 each.
#[derive(Clone)]
enum Scheme {
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

#[derive(Default)]
struct AuthState {
    scheme: Option<Scheme>,
    tokens: HashMap<String, CachedToken>,
}

/// A client for one remote registry. Cheap to share (`Arc`); all methods take `&self`.
pub struct OciClient {
    http: reqwest::Client,
    endpoint: Endpoint,
    options: ClientOptions,
    auth: std::sync::Mutex<AuthState>,
    /// An async lock so that concurrent requests wait for one GetAuthorizationToken call.
    ecr_token: Mutex<Option<CachedToken>>,
}

impl fmt::Debug for OciClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OciClient").field("endpoint", &self.endpoint).field("options", &self.options).finish_non_exhaustive()
    }
}

type BodyFactory<'a> = dyn Fn() -> Pin<Box<dyn Future<Output = io::Result<reqwest::Body>> + Send + 'a>> + Send + Sync + 'a;

/// The body of one request; a factory so that a retry resends it from the start, with the
/// progress of the stream it made.
enum Body<'a> {
    Empty,
    Bytes(Bytes),
    Stream(&'a BodyFactory<'a>, Progress),
}

struct Request<'a> {
    method: Method,
    url: Url,
    headers: HeaderMap,
    /// Token scopes this request needs (empty for `/v2/`).
    scopes: Vec<String>,
    body: Body<'a>,
    /// The answer is a blob read as a stream: no whole-request time limit.
    streamed_response: bool,
}

impl<'a> Request<'a> {
    fn new(method: Method, url: Url, scopes: Vec<String>) -> Self {
        Request { method, url, headers: HeaderMap::new(), scopes, body: Body::Empty, streamed_response: false }
    }

    fn header(mut self, name: HeaderName, value: &str) -> Result<Self, ClientError> {
        let value = HeaderValue::from_str(value).map_err(|_| ClientError::Config(format!("invalid {name} header value")))?;
        self.headers.insert(name, value);
        Ok(self)
    }
}

/// When a streamed upload last moved a chunk: the body stream records it, the watchdog in
/// `send_once` reads it (a stalled network stops polling the body, so the body alone could
/// not notice).
#[derive(Clone)]
struct Progress {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Progress {
    fn new() -> Self {
        Progress { start: Instant::now(), last_ms: Arc::new(AtomicU64::new(0)) }
    }

    fn touch(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        self.start.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

impl OciClient {
    pub fn new(endpoint: Endpoint, options: ClientOptions) -> Result<Self, ClientError> {
        let base = &endpoint.base;
        match base.scheme() {
            "https" => {}
            "http" if endpoint.allow_insecure => {}
            "http" => return Err(ClientError::Insecure(base.to_string())),
            other => return Err(ClientError::Config(format!("unsupported URL scheme {other}"))),
        }
        if base.host_str().is_none() || !matches!(base.path(), "" | "/") || base.query().is_some() {
            return Err(ClientError::Config(format!("registry base URL must be scheme://host[:port], not {base}")));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(ClientError::Config("put credentials in Endpoint::credentials, not in the URL".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .user_agent(options.user_agent.clone())
            // Redirects are followed by hand so our Authorization never leaves the registry's
            // origin (blob GETs redirect to object storage) and plain HTTP can be refused.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Config(format!("building the HTTP client: {e}")))?;
        let options = ClientOptions { max_attempts: options.max_attempts.max(1), ..options };
        Ok(OciClient { http, endpoint, options, auth: Default::default(), ecr_token: Mutex::new(None) })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `GET /v2/`, authenticated: checks that the remote is an OCI registry and takes our
    /// credentials.
    pub async fn ping(&self) -> Result<(), ClientError> {
        let url = self.url("v2/")?;
        self.retrying(|| async {
            self.send(&Request::new(Method::GET, url.clone(), vec![])).await?;
            Ok(())
        })
        .await
    }

    /// The blob's size, or `None` when the repository does not have it.
    pub async fn head_blob(&self, repo: &str, digest: &str) -> Result<Option<u64>, ClientError> {
        check_repo(repo)?;
        check_digest(digest)?;
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        self.retrying(|| async {
            let req = Request::new(Method::HEAD, url.clone(), vec![repo_scope(repo, false)]);
            match self.send_following(req).await {
                Ok(resp) => Ok(Some(content_length(&resp)?)),
                Err(ClientError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Cross-repository mount: `true` when the remote linked the blob into `repo` (201).
    /// A remote that opens an upload session instead (202) gets that session cancelled and
    /// `false` back: the caller then pushes the blob.
    pub async fn mount_blob(&self, repo: &str, from: &str, digest: &str) -> Result<bool, ClientError> {
        check_repo(repo)?;
        check_repo(from)?;
        check_digest(digest)?;
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/"))?;
        url.query_pairs_mut().append_pair("mount", digest).append_pair("from", from);
        let scopes = vec![repo_scope(repo, true), repo_scope(from, false)];
        self.retrying(|| async {
            let resp = self.send(&Request::new(Method::POST, url.clone(), scopes.clone())).await?;
            if resp.status() == StatusCode::CREATED {
                return Ok(true);
            }
            if let Ok(session) = self.location(&resp, &url) {
                let cancel = Request::new(Method::DELETE, session, vec![repo_scope(repo, true)]);
                if let Err(e) = self.send(&cancel).await {
                    tracing::debug!(repo, error = %e, "cancelling the upload session a mount opened failed");
                }
            }
            Ok(false)
        })
        .await
    }

    /// Uploads a blob: `POST` to open a session, then one `PUT ?digest=` streaming `body()`
    /// with `Content-Length: size`. `body` is called again for each attempt, so a retry
    /// sends the blob from its start; the blob is never held in memory.
    pub async fn push_blob<F, Fut, S>(&self, repo: &str, digest: &str, size: u64, body: F) -> Result<(), ClientError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = io::Result<S>> + Send,
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        check_repo(repo)?;
        check_digest(digest)?;
        let start = self.url(&format!("v2/{repo}/blobs/uploads/"))?;
        let scopes = vec![repo_scope(repo, true)];
        let progress = Progress::new();
        let factory = || -> Pin<Box<dyn Future<Output = io::Result<reqwest::Body>> + Send + '_>> {
            let opened = body();
            let progress = progress.clone();
            Box::pin(async move {
                let stream = opened.await?;
                progress.touch();
                Ok(reqwest::Body::wrap_stream(stream.inspect_ok(move |_| progress.touch())))
            })
        };
        // Both steps under one retry: a failed PUT leaves its session unusable, so an attempt
        // opens a fresh one.
        self.retrying(|| async {
            let resp = self.send(&Request::new(Method::POST, start.clone(), scopes.clone())).await?;
            let mut put_url = self.location(&resp, &start)?;
            put_url.query_pairs_mut().append_pair("digest", digest);
            let mut put = Request::new(Method::PUT, put_url, scopes.clone())
                .header(CONTENT_LENGTH, &size.to_string())?
                .header(CONTENT_TYPE, "application/octet-stream")?;
            put.body = Body::Stream(&factory, progress.clone());
            self.send(&put).await?;
            Ok(())
        })
        .await
    }

    /// The manifest's digest, media type and size, or `None` when it does not exist.
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Result<Option<ManifestInfo>, ClientError> {
        check_repo(repo)?;
        check_reference(reference)?;
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .retrying(|| async {
                let req = Request::new(Method::HEAD, url.clone(), vec![repo_scope(repo, false)]).header(ACCEPT, MANIFEST_ACCEPT)?;
                match self.send_following(req).await {
                    Ok(resp) => Ok(Some((header(&resp, "docker-content-digest"), header(&resp, "content-type"), content_length(&resp)?))),
                    Err(ClientError::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        let Some((digest, media_type, size)) = resp else { return Ok(None) };
        let digest = match digest.or_else(|| is_digest(reference).then(|| reference.to_string())) {
            Some(d) => d,
            // A remote that does not name the digest on HEAD: the bytes tell.
            None => return Ok(Some(self.get_manifest(repo, reference).await?.info())),
        };
        Ok(Some(ManifestInfo { digest, media_type: media_type.unwrap_or_default(), size }))
    }

    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<Manifest, ClientError> {
        check_repo(repo)?;
        check_reference(reference)?;
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let (header_digest, media_type, bytes) = self
            .retrying(|| async {
                let req = Request::new(Method::GET, url.clone(), vec![repo_scope(repo, false)]).header(ACCEPT, MANIFEST_ACCEPT)?;
                let resp = self.send_following(req).await?;
                let digest = header(&resp, "docker-content-digest");
                let media_type = header(&resp, "content-type").unwrap_or_default();
                let bytes = read_limited(resp, MAX_MANIFEST_BYTES).await?;
                Ok((digest, media_type, bytes))
            })
            .await?;
        let computed = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let digest = if is_digest(reference) {
            verify_digest(reference, &bytes)?;
            reference.to_string()
        } else {
            match header_digest {
                Some(d) if d.starts_with("sha256:") && d != computed => {
                    return Err(ClientError::DigestMismatch { expected: d, actual: computed })
                }
                Some(d) => d,
                None => computed,
            }
        };
        Ok(Manifest { digest, media_type, bytes })
    }

    /// The referrers index of `digest` (the OCI referrers API: an image index of the manifests
    /// whose `subject` is `digest`), or `None` when the remote has no such API (a 404, as from
    /// registries before distribution-spec 1.1).
    pub async fn referrers(&self, repo: &str, digest: &str) -> Result<Option<Bytes>, ClientError> {
        check_repo(repo)?;
        check_digest(digest)?;
        let url = self.url(&format!("v2/{repo}/referrers/{digest}"))?;
        self.retrying(|| async {
            let req = Request::new(Method::GET, url.clone(), vec![repo_scope(repo, false)]).header(ACCEPT, OCI_INDEX)?;
            match self.send_following(req).await {
                Ok(resp) => Ok(Some(read_limited(resp, MAX_MANIFEST_BYTES).await?)),
                Err(ClientError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Stores a manifest under `reference` (a tag or its digest); returns its digest.
    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: Bytes) -> Result<String, ClientError> {
        check_repo(repo)?;
        check_reference(reference)?;
        if is_digest(reference) {
            verify_digest(reference, &bytes)?;
        }
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let computed = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let remote_digest = self
            .retrying(|| async {
                let mut req = Request::new(Method::PUT, url.clone(), vec![repo_scope(repo, true)]).header(CONTENT_TYPE, media_type)?;
                req.body = Body::Bytes(bytes.clone());
                let resp = self.send(&req).await?;
                Ok(header(&resp, "docker-content-digest"))
            })
            .await?;
        match remote_digest {
            Some(d) if d.starts_with("sha256:") && d != computed => Err(ClientError::DigestMismatch { expected: computed, actual: d }),
            _ => Ok(computed),
        }
    }

    /// Opens a blob for reading. Redirects (to object storage, say) are followed without
    /// our credentials when they leave the registry's origin. Only opening is retried; a
    /// stream broken later surfaces as an `io::Error` and the caller starts again.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Result<BlobStream, ClientError> {
        check_repo(repo)?;
        check_digest(digest)?;
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        let resp = self
            .retrying(|| {
                let mut req = Request::new(Method::GET, url.clone(), vec![repo_scope(repo, false)]);
                req.streamed_response = true;
                self.send_following(req)
            })
            .await?;
        let size = content_length(&resp)?;
        let body = resp.bytes_stream().map_err(|e| io::Error::other(ClientError::from_reqwest(e)));
        let stream = IdleTimeout::new(body, self.options.request_timeout);
        Ok(BlobStream { size, stream: Box::pin(Verifying::new(stream, digest, size)) })
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.endpoint.base.join(path).map_err(|e| ClientError::Config(format!("building a URL for {path}: {e}")))
    }

    /// The session URL in `Location`, which may be relative to the request's.
    fn location(&self, resp: &Response, request_url: &Url) -> Result<Url, ClientError> {
        let raw =
            header(resp, LOCATION.as_str()).ok_or_else(|| ClientError::Protocol(format!("{} without a Location header", resp.status())))?;
        let url = request_url.join(&raw).map_err(|e| ClientError::Protocol(format!("bad Location header: {e}")))?;
        self.check_scheme(&url)?;
        Ok(url)
    }

    fn check_scheme(&self, url: &Url) -> Result<(), ClientError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.endpoint.allow_insecure => Ok(()),
            _ => Err(ClientError::Insecure(format!("{}://{}", url.scheme(), url.host_str().unwrap_or("")))),
        }
    }

    /// Runs `attempt` up to `max_attempts` times while it fails with a retryable error,
    /// sleeping an exponential backoff with jitter, or the remote's `Retry-After`, between.
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut n = 1;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && n < self.options.max_attempts => {
                    let Some(delay) = self.backoff(n, &e) else { return Err(e) };
                    tracing::debug!(attempt = n, delay_ms = delay.as_millis() as u64, error = %e, "retrying a request to the remote registry");
                    tokio::time::sleep(delay).await;
                    n += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `None` when the remote asks for a longer pause than we are willing to sleep.
    fn backoff(&self, attempt: u32, error: &ClientError) -> Option<Duration> {
        if let ClientError::TooManyRequests { retry_after: Some(after) } = error {
            return (*after <= self.options.backoff_max).then_some(*after);
        }
        let exp = self.options.backoff_base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = exp.min(self.options.backoff_max);
        // Half fixed, half random ("equal jitter"): clients retrying together spread out.
        let jitter = std::collections::hash_map::RandomState::new().build_hasher().finish() % 1000;
        Some(capped / 2 + capped / 2 * jitter as u32 / 1000)
    }

    /// `send`, then follows redirects (GET and HEAD only). Same-origin hops are sent like
    /// the original; other origins get no Authorization.
    async fn send_following(&self, req: Request<'_>) -> Result<Response, ClientError> {
        let mut resp = self.send(&req).await?;
        for _ in 0..MAX_REDIRECTS {
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let next = self.location(&resp, resp.url())?;
            if same_origin(&next, &self.endpoint.base) {
                let hop = Request {
                    method: req.method.clone(),
                    url: next,
                    headers: req.headers.clone(),
                    scopes: req.scopes.clone(),
                    body: Body::Empty,
                    streamed_response: req.streamed_response,
                };
                resp = self.send(&hop).await?;
            } else {
                let rb = self.http.request(req.method.clone(), next).headers(req.headers.clone());
                resp = check_status(self.dispatch(rb, req.streamed_response).await?).await?;
            }
        }
        if resp.status().is_redirection() {
            return Err(ClientError::Protocol(format!("more than {MAX_REDIRECTS} redirects")));
        }
        Ok(resp)
    }

    /// One request with authentication: credentials we already know the remote wants are
    /// sent up front; a 401 is answered once (a token for the challenge, or Basic) and the
    /// request sent again. Non-success statuses become errors; redirects are returned.
    async fn send(&self, req: &Request<'_>) -> Result<Response, ClientError> {
        let known = self.known_authorization(&req.scopes).await?;
        let resp = self.send_once(req, known.as_deref()).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return check_status(resp).await;
        }
        let challenges: Vec<Challenge> =
            resp.headers().get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).flat_map(parse_challenges).collect();
        let retry_auth = self.answer_challenge(&challenges, &req.scopes, known.is_some()).await?;
        let Some(retry_auth) = retry_auth else {
            return check_status(resp).await;
        };
        let resp = self.send_once(req, Some(&retry_auth)).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            // Whatever we hold is stale or wrong: start from scratch next time.
            self.forget_credentials(&req.scopes).await;
        }
        check_status(resp).await
    }

    async fn send_once(&self, req: &Request<'_>, authorization: Option<&str>) -> Result<Response, ClientError> {
        let mut rb = self.http.request(req.method.clone(), req.url.clone()).headers(req.headers.clone());
        if let Some(auth) = authorization {
            let mut value =
                HeaderValue::from_str(auth).map_err(|_| ClientError::Config("credentials are not a valid header value".into()))?;
            value.set_sensitive(true);
            rb = rb.header(AUTHORIZATION, value);
        }
        rb = match &req.body {
            Body::Empty => rb,
            Body::Bytes(b) => rb.body(b.clone()),
            Body::Stream(factory, _) => {
                rb.body(factory().await.map_err(|e| ClientError::Transport(format!("opening the blob to send: {e}")))?)
            }
        };
        match &req.body {
            Body::Stream(_, progress) => self.watch_upload(rb.send(), progress).await,
            _ => self.dispatch(rb, req.streamed_response).await,
        }
    }

    /// Sends within `request_timeout`. A blob read as a stream has no whole-request limit,
    /// its length being the blob's: only its answer is bounded, its body by `IdleTimeout`.
    async fn dispatch(&self, rb: reqwest::RequestBuilder, streamed_response: bool) -> Result<Response, ClientError> {
        let limit = self.options.request_timeout;
        if !streamed_response {
            return rb.timeout(limit).send().await.map_err(ClientError::from_reqwest);
        }
        match tokio::time::timeout(limit, rb.send()).await {
            Ok(resp) => resp.map_err(ClientError::from_reqwest),
            Err(_) => Err(ClientError::Timeout(format!("no answer within {limit:?}"))),
        }
    }

    /// Waits for a streamed upload's answer while its body keeps moving: fails after
    /// `request_timeout` without a chunk sent, or without an answer after the last one.
    async fn watch_upload(
        &self,
        send: impl Future<Output = reqwest::Result<Response>>,
        progress: &Progress,
    ) -> Result<Response, ClientError> {
        let limit = self.options.request_timeout;
        let mut send = std::pin::pin!(send);
        loop {
            let wait = limit.saturating_sub(progress.idle());
            if wait.is_zero() {
                return Err(ClientError::Timeout(format!("upload made no progress for {limit:?}")));
            }
            match futures::future::select(send.as_mut(), std::pin::pin!(tokio::time::sleep(wait))).await {
                Either::Left((resp, _)) => return resp.map_err(ClientError::from_reqwest),
                Either::Right(_) => continue,
            }
        }
    }

    /// The Authorization value to send before any challenge, from what earlier challenges
    /// taught us. Fetches a token when the remote uses tokens and we have none for these scopes.
    async fn known_authorization(&self, scopes: &[String]) -> Result<Option<String>, ClientError> {
        let scheme = self.lock_auth().scheme.clone();
        match scheme {
            None => Ok(None),
            Some(Scheme::Basic) => self.basic_authorization().await,
            Some(Scheme::Bearer { realm, service }) => self.bearer(&realm, service.as_deref(), scopes).await.map(Some),
        }
    }

    /// Learns the remote's scheme from a 401 and returns what to send again, or `None` when
    /// there is nothing better to try (the 401 then becomes `Unauthorized`).
    async fn answer_challenge(
        &self,
        challenges: &[Challenge],
        scopes: &[String],
        sent_credentials: bool,
    ) -> Result<Option<String>, ClientError> {
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer.param("realm").ok_or_else(|| ClientError::Protocol("Bearer challenge without a realm".into()))?;
            let realm = Url::parse(realm).map_err(|e| ClientError::Protocol(format!("Bearer realm is not a URL: {e}")))?;
            self.check_scheme(&realm)?;
            let service = bearer.param("service").map(str::to_string);
            // The token we sent (if any) was refused: do not send it again.
            self.lock_auth().tokens.remove(&scopes.join(" "));
            let mut scopes = scopes.to_vec();
            // A scope the remote names itself (for this very request) is what it will check.
            if let Some(extra) = bearer.param("scope") {
                for s in extra.split(' ').filter(|s| !s.is_empty()) {
                    if !scopes.iter().any(|have| have == s) {
                        scopes.push(s.to_string());
                    }
                }
            }
            {
                let mut state = self.lock_auth();
                state.tokens.remove(&scopes.join(" "));
                state.scheme = Some(Scheme::Bearer { realm: realm.clone(), service: service.clone() });
            }
            return self.bearer(&realm, service.as_deref(), &scopes).await.map(Some);
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let already_basic = matches!(self.lock_auth().scheme, Some(Scheme::Basic));
            self.lock_auth().scheme = Some(Scheme::Basic);
            if already_basic && sent_credentials {
                // Our Basic credentials were refused; an ECR token may have been revoked.
                self.forget_credentials(scopes).await;
            }
            return self.basic_authorization().await;
        }
        Ok(None)
    }

    async fn basic_authorization(&self) -> Result<Option<String>, ClientError> {
        Ok(self.basic_credentials().await?.map(|(u, p)| basic_header(&u, &p)))
    }

    /// Username and password for Basic, to the registry or to its token service.
    async fn basic_credentials(&self) -> Result<Option<(String, String)>, ClientError> {
        match &self.endpoint.credentials {
            Credentials::Anonymous => Ok(None),
            Credentials::Basic { username, password } => Ok(Some((username.clone(), password.clone()))),
            Credentials::Ecr { .. } => Ok(Some(("AWS".to_string(), self.ecr_password().await?))),
        }
    }

    async fn ecr_password(&self) -> Result<String, ClientError> {
        let mut cached = self.ecr_token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(t.token.clone());
        }
        let Credentials::Ecr { access_key_id, secret_access_key, region, api_endpoint } = &self.endpoint.credentials else {
            return Err(ClientError::Config("no ECR credentials".into()));
        };
        let api = api_endpoint.clone().unwrap_or_else(|| self.endpoint.base.clone());
        self.check_scheme(&api)?;
        let key = crate::sigv4::SigningKey { access_key_id, secret_access_key, region, service: "ecr" };
        let token = ecr::get_authorization_token(&self.http, &api, &key, self.options.request_timeout).await?;
        let password = token.password.clone();
        *cached = Some(CachedToken { token: token.password, refresh_at: token.refresh_at });
        Ok(password)
    }

    /// A bearer token for `scopes`, cached until shortly before it expires.
    async fn bearer(&self, realm: &Url, service: Option<&str>, scopes: &[String]) -> Result<String, ClientError> {
        let key = scopes.join(" ");
        if let Some(t) = self.lock_auth().tokens.get(&key).filter(|t| Instant::now() < t.refresh_at) {
            return Ok(format!("Bearer {}", t.token));
        }
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = service {
                q.append_pair("service", service);
            }
            for scope in scopes {
                q.append_pair("scope", scope);
            }
        }
        let mut rb = self.http.get(url).timeout(self.options.request_timeout);
        if let Some((user, password)) = self.basic_credentials().await? {
            let mut value = HeaderValue::from_str(&basic_header(&user, &password))
                .map_err(|_| ClientError::Config("credentials are not a valid header value".into()))?;
            value.set_sensitive(true);
            rb = rb.header(AUTHORIZATION, value);
        }
        let resp = check_status(rb.send().await.map_err(ClientError::from_reqwest)?).await?;
        let body = read_limited(resp, MAX_ERROR_BODY).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("token service answered something else than a token: {e}")))?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ClientError::Protocol("token service answered without a token".into()))?;
        let lifetime = parsed.expires_in.map(Duration::from_secs).unwrap_or(DEFAULT_TOKEN_LIFETIME);
        // Renew a little early so a token does not expire between our check and its use.
        let refresh_at = Instant::now() + lifetime.saturating_sub((lifetime / 10).min(Duration::from_secs(30)));
        self.lock_auth().tokens.insert(key, CachedToken { token: token.clone(), refresh_at });
        Ok(format!("Bearer {token}"))
    }

    async fn forget_credentials(&self, scopes: &[String]) {
        self.lock_auth().tokens.remove(&scopes.join(" "));
        *self.ecr_token.lock().await = None;
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        // A panic while holding this lock leaves only a cache behind; keep using it.
        self.auth.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Manifest {
    fn info(&self) -> ManifestInfo {
        ManifestInfo { digest: self.digest.clone(), media_type: self.media_type.clone(), size: self.bytes.len() as u64 }
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// Success and redirects pass; anything else becomes an error built from its body.
async fn check_status(resp: Response) -> Result<Response, ClientError> {
    let status = resp.status();
    if status.is_success() || status.is_redirection() {
        return Ok(resp);
    }
    let retry_after = resp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    let body = read_limited(resp, MAX_ERROR_BODY).await.unwrap_or_default();
    Err(from_status(status, &body, retry_after))
}

/// `Retry-After` as seconds or as an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (at - time::OffsetDateTime::now_utc()).whole_seconds().max(0);
    Some(Duration::from_secs(secs as u64))
}

/// The body, refusing more than `limit` bytes.
async fn read_limited(resp: Response, limit: usize) -> Result<Bytes, ClientError> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ClientError::from_reqwest)?;
        if out.len() + chunk.len() > limit {
            return Err(ClientError::Protocol(format!("response body larger than {limit} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn content_length(resp: &Response) -> Result<u64, ClientError> {
    header(resp, CONTENT_LENGTH.as_str())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ClientError::Protocol(format!("{} without a Content-Length", resp.url().path())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let client = OciClient::new(
            Endpoint { base: Url::parse("https://r.example").unwrap(), credentials: Credentials::Anonymous, allow_insecure: false },
            ClientOptions { backoff_base: Duration::from_millis(100), backoff_max: Duration::from_secs(1), ..Default::default() },
        )
        .unwrap();
        let e = ClientError::Remote { status: 503, code: None, message: None };
        let d1 = client.backoff(1, &e).unwrap();
        assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
        let d10 = client.backoff(10, &e).unwrap();
        assert!(d10 >= Duration::from_millis(500) && d10 <= Duration::from_secs(1), "{d10:?}");
        let limited = ClientError::TooManyRequests { retry_after: Some(Duration::from_millis(300)) };
        assert_eq!(client.backoff(1, &limited), Some(Duration::from_millis(300)));
        let too_long = ClientError::TooManyRequests { retry_after: Some(Duration::from_secs(3600)) };
        assert_eq!(client.backoff(1, &too_long), None);
    }

    #[test]
    fn plain_http_needs_allow_insecure() {
        let endpoint = |insecure| Endpoint {
            base: Url::parse("http://127.0.0.1:5000").unwrap(),
            credentials: Credentials::Anonymous,
            allow_insecure: insecure,
        };
        assert!(matches!(OciClient::new(endpoint(false), ClientOptions::default()), Err(ClientError::Insecure(_))));
        assert!(OciClient::new(endpoint(true), ClientOptions::default()).is_ok());
        let with_path =
            Endpoint { base: Url::parse("https://r.example/v2/").unwrap(), credentials: Credentials::Anonymous, allow_insecure: false };
        assert!(matches!(OciClient::new(with_path, ClientOptions::default()), Err(ClientError::Config(_))));
    }
}
