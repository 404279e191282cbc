//! A fake upstream registry served by axum (manifests, blobs and the OCI referrers API, with
//! request counts and faults a test switches on), and a registry whose cache repositories
//! (`up/...`) pull through from it. Included by the pull-through tests with
//! `#[path = "common/upstream.rs"] mod upstream;` beside `mod common;`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use berth_core::auth::Principal;
use berth_core::pull_through::NewRule;
use berth_core::{Digest, Reference, Registry, RegistryConfig, RegistryRef, Repo, RepositoryName};
use bytes::Bytes;
use futures::StreamExt;

use crate::common::Env;

pub const ACCOUNT: &str = "123456789012";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// The refresh interval of `cache`'s registry.
pub const REFRESH_MILLIS: i64 = 60_000;

pub fn scope() -> RegistryRef {
    RegistryRef { account: ACCOUNT.into(), region: "us-east-1".into() }
}

pub fn repo(s: &str) -> Repo {
    Repo::new(&scope(), RepositoryName::parse(s).unwrap())
}

pub fn tag(t: &str) -> Reference {
    Reference::parse(t).unwrap()
}

/// A user of `ACCOUNT` with one identity policy allowing `actions` on everything.
pub async fn user(r: &Registry, name: &str, actions: &[&str]) -> Principal {
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]});
    let (arn, access_key_id, _) = r.create_user(ACCOUNT, name, &[("policy".into(), policy.to_string())]).await.expect("user");
    Principal { arn, account: ACCOUNT.into(), access_key_id, region: None, source_ip: None, secure_transport: false }
}

pub async fn admin(r: &Registry) -> Principal {
    user(r, "keeper", &["*"]).await
}

pub fn rule(prefix: &str, url: &str) -> NewRule {
    NewRule { prefix: prefix.into(), upstream_url: url.into(), ..Default::default() }
}

/// The configuration `cache` starts from: plain-HTTP upstreams allowed, `REFRESH_MILLIS`.
pub fn cache_config() -> RegistryConfig {
    RegistryConfig { allow_insecure_upstreams: true, pull_through_refresh_millis: REFRESH_MILLIS, ..Default::default() }
}

/// A registry whose `up/` repositories pull through from `url`, and an admin of it.
pub async fn cache(env: &Env, url: &str) -> (Arc<Registry>, Principal) {
    cache_with(env, url, cache_config()).await
}

pub async fn cache_with(env: &Env, url: &str, config: RegistryConfig) -> (Arc<Registry>, Principal) {
    let r = Arc::new(env.registry_with(config).await);
    r.create_pull_through_cache_rule(&scope(), rule("up", url)).await.expect("rule");
    let p = admin(&r).await;
    (r, p)
}

/// Polls until the image is stored in the repository (the pull-through task is asynchronous).
pub async fn stored_image(r: &Registry, repo: &Repo, reference: &Reference) -> berth_core::Manifest {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(m) = r.get_manifest(repo, reference, false).await {
            return m;
        }
        assert!(Instant::now() < deadline, "the image was not cached in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Default)]
pub struct Upstream {
    pub manifests: Mutex<HashMap<String, (String, Bytes)>>,
    pub blobs: Mutex<HashMap<String, Bytes>>,
    pub blob_gets: Mutex<HashMap<String, usize>>,
    pub manifest_gets: AtomicUsize,
    pub manifest_heads: AtomicUsize,
    pub down: AtomicBool,
    /// Blob bodies stop after their first half until this is notified.
    pub gate: Mutex<Option<Arc<tokio::sync::Notify>>>,
    /// Blobs whose bytes are served with their last byte changed.
    pub corrupt: Mutex<Vec<String>>,
    /// Manifests answered with a Docker-Content-Digest that is not theirs.
    pub lying: AtomicBool,
    /// The referrers API: descriptors of the manifests whose subject is "<repo>:<digest>".
    pub referrers: Mutex<HashMap<String, Vec<serde_json::Value>>>,
    /// Referrers listings asked, by subject digest.
    pub referrers_gets: Mutex<HashMap<String, usize>>,
    /// While set, referrers listings are held (unanswered) until the semaphore is closed.
    pub referrers_hold: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
}

impl Upstream {
    pub fn put_blob(&self, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        self.blobs.lock().unwrap().insert(d.to_string(), Bytes::copy_from_slice(data));
        d
    }

    fn put_manifest(&self, repo: &str, tag: Option<&str>, manifest: String) -> Digest {
        self.put_typed(repo, tag, OCI_MANIFEST, manifest)
    }

    fn put_typed(&self, repo: &str, tag: Option<&str>, media_type: &str, manifest: String) -> Digest {
        let d = Digest::sha256_of(manifest.as_bytes());
        let entry = (media_type.to_string(), Bytes::from(manifest));
        let mut m = self.manifests.lock().unwrap();
        if let Some(tag) = tag {
            m.insert(format!("{repo}:{tag}"), entry.clone());
        }
        m.insert(format!("{repo}:{d}"), entry);
        d
    }

    /// An image of a config and one layer of `layer_size` bytes, tagged `repo:tag`.
    pub fn put_image(&self, repo: &str, tag: &str, seed: u8, layer_size: usize) -> (Digest, Vec<Digest>) {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
        let layer: Vec<u8> = (0..layer_size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let c = self.put_blob(config.as_bytes());
        let l = self.put_blob(&layer);
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{l}","size":{}}}]}}"#,
            config.len(),
            layer.len()
        );
        (self.put_manifest(repo, Some(tag), manifest), vec![c, l])
    }

    /// An OCI index of `children` (manifests already put in `repo`), tagged `repo:tag`.
    pub fn put_index(&self, repo: &str, tag: &str, children: &[Digest]) -> Digest {
        let manifests: Vec<serde_json::Value> = children
            .iter()
            .enumerate()
            .map(|(i, child)| {
                let size = self.manifests.lock().unwrap().get(&format!("{repo}:{child}")).expect("the child upstream").1.len();
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": child.to_string(), "size": size,
                                   "platform": {"architecture": format!("arch{i}"), "os": "linux"}})
            })
            .collect();
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).to_string();
        self.put_typed(repo, Some(tag), OCI_INDEX, index)
    }

    /// An artifact of `artifact_type` (one layer, `payload`) whose subject is the manifest
    /// `repo@subject`, listed by the referrers API from now on; its digest.
    pub fn put_referrer(&self, repo: &str, subject: &Digest, artifact_type: &str, payload: &[u8]) -> Digest {
        let subject_size = self.manifests.lock().unwrap().get(&format!("{repo}:{subject}")).expect("the subject upstream").1.len();
        let empty = self.put_blob(b"{}");
        let layer = self.put_blob(payload);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY_CONFIG, "digest": empty.to_string(), "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer.to_string(), "size": payload.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": subject_size},
        })
        .to_string();
        let size = manifest.len();
        let d = self.put_manifest(repo, None, manifest);
        let descriptor =
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": size, "artifactType": artifact_type});
        self.referrers.lock().unwrap().entry(format!("{repo}:{subject}")).or_default().push(descriptor);
        d
    }

    pub fn gets_of(&self, d: &Digest) -> usize {
        self.blob_gets.lock().unwrap().get(&d.to_string()).copied().unwrap_or(0)
    }

    /// How many times the referrers of `subject` were listed.
    pub fn referrers_gets_of(&self, subject: &Digest) -> usize {
        self.referrers_gets.lock().unwrap().get(&subject.to_string()).copied().unwrap_or(0)
    }

    /// Referrers listings are held from now on; closing the semaphore answers them.
    pub fn hold_referrers(&self) -> Arc<tokio::sync::Semaphore> {
        let hold = Arc::new(tokio::sync::Semaphore::new(0));
        *self.referrers_hold.lock().unwrap() = Some(hold.clone());
        hold
    }
}

pub async fn serve_upstream(State(up): State<Arc<Upstream>>, req: Request) -> Response {
    let status = |code: u16| Response::builder().status(code).body(Body::empty()).unwrap();
    if up.down.load(Ordering::SeqCst) {
        return status(503);
    }
    let path = req.uri().path().to_string();
    if path == "/v2/" {
        return status(200);
    }
    let Some(rest) = path.strip_prefix("/v2/") else { return status(404) };
    if let Some((name, subject)) = rest.rsplit_once("/referrers/") {
        *up.referrers_gets.lock().unwrap().entry(subject.to_string()).or_default() += 1;
        let hold = up.referrers_hold.lock().unwrap().clone();
        if let Some(hold) = hold {
            // Err once closed: the listing is answered.
            let _ = hold.acquire().await;
        }
        let manifests = up.referrers.lock().unwrap().get(&format!("{name}:{subject}")).cloned().unwrap_or_default();
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        return Response::builder().status(200).header("content-type", OCI_INDEX).body(Body::from(index.to_string())).unwrap();
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        let head = req.method() == http::Method::HEAD;
        if head {
            up.manifest_heads.fetch_add(1, Ordering::SeqCst);
        } else {
            up.manifest_gets.fetch_add(1, Ordering::SeqCst);
        }
        let Some((media_type, bytes)) = up.manifests.lock().unwrap().get(&format!("{name}:{reference}")).cloned() else {
            return Response::builder().status(404).body(Body::from(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}"#)).unwrap();
        };
        let digest = if up.lying.load(Ordering::SeqCst) { Digest::sha256_of(b"something else") } else { Digest::sha256_of(&bytes) };
        let b = Response::builder()
            .status(200)
            .header("content-type", media_type)
            .header("content-length", bytes.len())
            .header("docker-content-digest", digest.to_string());
        return b.body(if head { Body::empty() } else { Body::from(bytes) }).unwrap();
    }
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        *up.blob_gets.lock().unwrap().entry(digest.to_string()).or_default() += 1;
        let Some(mut bytes) = up.blobs.lock().unwrap().get(digest).cloned() else { return status(404) };
        if up.corrupt.lock().unwrap().iter().any(|c| c == digest) {
            let mut v = bytes.to_vec();
            if let Some(last) = v.last_mut() {
                *last ^= 0xff;
            }
            bytes = Bytes::from(v);
        }
        let len = bytes.len();
        let gate = up.gate.lock().unwrap().clone();
        let (first, second) = (bytes.slice(..len / 2), bytes.slice(len / 2..));
        let body = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(futures::stream::once(async move {
            if let Some(g) = gate {
                g.notified().await;
            }
            Ok::<_, std::io::Error>(second)
        }));
        return Response::builder().status(200).header("content-length", len).body(Body::from_stream(body)).unwrap();
    }
    status(404)
}

pub async fn start_upstream() -> (Arc<Upstream>, String) {
    let up = Arc::new(Upstream::default());
    let app = axum::Router::new().fallback(serve_upstream).with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (up, url)
}
