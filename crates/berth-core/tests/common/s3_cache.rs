//! A node with a node-local blob cache (`--blob-cache-dir`): a registry over SQLite metadata and
//! an S3 blob store (a fresh prefix in the test bucket) with a `LocalCache` in a temporary
//! directory, whatever `BERTH_TEST_BACKEND` says. Needs the S3 test server (`BERTH_TEST_S3_*`);
//! without it the tests fail, they never skip.

use std::path::PathBuf;
use std::sync::Arc;

use berth_core::{Digest, Registry, RegistryConfig};
use berth_s3::{LocalCache, S3BlobStore, S3Config};
use berth_store::{BlobStore, SqliteMetadataStore};
use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;

use super::Env;

fn s3_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the node-local cache tests run on the S3 test server whatever BERTH_TEST_BACKEND says. \
             Start one with `eval \"$(scripts/s3-test-server.sh start /tmp/berth-s3)\"` and run the tests in that shell."
        )
    })
}

/// Where a blob's bytes are kept in the bucket: the plain store, or the namespace of encrypted
/// objects (named by `berth_core::sealed_object_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Plain,
    Sealed,
}

/// One node: its registry's stores, its cache and the directory the cache keeps its copies in.
pub struct CachedNode {
    pub env: Env,
    pub cache: Arc<LocalCache>,
    pub cache_dir: tempfile::TempDir,
    pub blobs: Arc<dyn BlobStore>,
    cfg: S3Config,
}

impl CachedNode {
    pub async fn new() -> CachedNode {
        let mut cfg = S3Config::new(s3_env("BERTH_TEST_S3_BUCKET"));
        cfg.prefix = format!("cached/{}", uuid::Uuid::new_v4().simple());
        cfg.endpoint = Some(s3_env("BERTH_TEST_S3_ENDPOINT"));
        cfg.access_key_id = Some(s3_env("BERTH_TEST_S3_ACCESS_KEY"));
        cfg.secret_access_key = Some(s3_env("BERTH_TEST_S3_SECRET_KEY"));
        cfg.region = "us-east-1".into();
        cfg.allow_http = true;
        cfg.path_style = true;
        let cache_dir = tempfile::tempdir().expect("a temporary directory for the cache");
        let cache = LocalCache::open(cache_dir.path(), 1 << 30).expect("opening the node-local cache");
        let store = S3BlobStore::open(cfg.clone()).expect("opening the test bucket").with_local_cache(cache.clone());
        store.check().await.expect("the S3 test server answers");
        CachedNode { env: Env::new(), cache, cache_dir, blobs: Arc::new(store), cfg }
    }

    /// A registry on this node; called again, a restart (nothing verified, no quarantine
    /// remembered) over the same metadata, bucket and cache.
    pub async fn registry(&self, config: RegistryConfig) -> Registry {
        let meta = SqliteMetadataStore::open(&self.env.dir.path().join("berth.db")).await.expect("opening SQLite");
        Registry::new(Arc::new(meta), self.blobs.clone(), self.env.clock.clone(), config).with_key_service(super::root_key())
    }

    /// The copies the cache keeps, once its fills and removals are done.
    pub async fn copies(&self) -> Vec<PathBuf> {
        self.cache.idle().await;
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.cache_dir.path())
            .expect("listing the cache directory")
            .map(|e| e.expect("a cache directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "blob"))
            .collect();
        files.sort();
        files
    }

    /// Waits (up to 10 s) until the cache keeps no copy: a removal may be started by a task of
    /// its own (a sealed read's failure). Answers the copies still kept then.
    pub async fn copies_once_dropped(&self) -> Vec<PathBuf> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let copies = self.copies().await;
            if copies.is_empty() || std::time::Instant::now() > deadline {
                return copies;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    fn bucket(&self) -> object_store::aws::AmazonS3 {
        berth_s3::bucket_client(&self.cfg, None).expect("an S3 client for the test bucket")
    }

    /// The bucket key of the data object `name`'s pointer names, in `place` (`name` is the
    /// blob's digest, or its sealed object's name). The cache keeps its copy under this key.
    pub async fn data_key(&self, place: Place, name: &Digest) -> String {
        let base = match place {
            Place::Plain => self.cfg.prefix.clone(),
            Place::Sealed => format!("{}/sealed", self.cfg.prefix),
        };
        let pointer = format!("{base}/blobs/{}/{}", name.algorithm().name(), name.hex());
        let raw = self.bucket().get(&pointer.into()).await.expect("the blob's pointer").bytes().await.expect("reading the pointer");
        let pointer: serde_json::Value = serde_json::from_slice(&raw).expect("pointer JSON");
        format!("{base}/{}", pointer["data"].as_str().expect("the pointer names its data"))
    }

    /// The bucket's bytes of `name` in `place`.
    pub async fn stored_bytes(&self, place: Place, name: &Digest) -> Vec<u8> {
        let key = self.data_key(place, name).await;
        self.bucket().get(&key.into()).await.expect("the data object").bytes().await.expect("reading the data object").to_vec()
    }

    /// Replaces the bucket's bytes of `name` in `place` beneath every layer of berth, the
    /// node's cache included (bit rot, tampering).
    pub async fn overwrite_stored_bytes(&self, place: Place, name: &Digest, data: &[u8]) {
        let key = self.data_key(place, name).await;
        self.bucket().put(&key.into(), Bytes::copy_from_slice(data).into()).await.expect("overwriting the data object");
    }

    /// Makes the node's copy of `name` in `place` hold `data` (a copy that differs from the
    /// bucket's object while its CRCs match: what no check of the node's disk can catch).
    pub async fn plant_copy(&self, place: Place, name: &Digest, data: &[u8]) {
        let key = self.data_key(place, name).await;
        self.cache.remove(&key);
        self.cache.idle().await;
        let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]).boxed();
        let mut teed = self.cache.fill(&key, data.len() as u64, None, body);
        while let Some(chunk) = teed.next().await {
            chunk.expect("a planted copy's body");
        }
        assert_eq!(self.copies().await.len(), 1, "the planted copy is kept");
    }
}
