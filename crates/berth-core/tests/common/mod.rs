//! The backends a service test runs on, chosen by `BERTH_TEST_BACKEND`, so that one suite of
//! service tests runs unchanged against every supported combination (as distribution runs one
//! storage-driver suite against every driver):
//!
//! - `sqlite-fs` (default): SQLite + filesystem under the test's directory;
//! - `postgres-fs`: PostgreSQL (a fresh database per test directory, made through
//!   `BERTH_TEST_POSTGRES_URL`) + filesystem;
//! - `postgres-s3`: PostgreSQL + S3 (a fresh prefix per test directory in the bucket named by
//!   `BERTH_TEST_S3_*`).
//!
//! scripts/test.sh starts the servers and runs the suite once per backend. Opening the same
//! directory again reaches the same database and prefix (tests simulate restarts that way).

#![allow(dead_code)]

pub mod s3_cache;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use berth_core::{Clock, Digest, Registry, Repo};
use berth_store::{BlobStore, FsBlobStore, MetadataStore, SqliteMetadataStore};
use bytes::Bytes;
use futures::StreamExt;

/// A clock tests set and move by hand (`clock.0.fetch_add(…)`).
pub struct FakeClock(pub AtomicI64);

impl Clock for FakeClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A test's directory and clock; `registry_with` over it again simulates a restart.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub clock: Arc<FakeClock>,
}

impl Env {
    pub fn new() -> Env {
        Env { dir: tempfile::tempdir().expect("a temporary directory"), clock: Arc::new(FakeClock(AtomicI64::new(1_000_000_000))) }
    }
    pub async fn registry_with(&self, config: berth_core::RegistryConfig) -> Registry {
        self.registry_without_key_service(config).await.with_key_service(root_key())
    }
    /// For tests that install a root key of their own.
    pub async fn registry_without_key_service(&self, config: berth_core::RegistryConfig) -> Registry {
        let (meta, blobs) = stores(self.dir.path()).await;
        Registry::new(meta, blobs, self.clock.clone(), config)
    }
    pub fn advance(&self, ms: i64) {
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// Uploads `data` as one monolithic blob and returns its digest.
pub async fn push_blob(r: &Registry, repo: &Repo, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]).boxed();
    r.upload_blob(repo, &d, body).await.unwrap();
    d
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SqliteFs,
    PostgresFs,
    PostgresS3,
}

pub fn backend() -> Backend {
    match std::env::var("BERTH_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite-fs") => Backend::SqliteFs,
        Ok("postgres-fs") => Backend::PostgresFs,
        Ok("postgres-s3") => Backend::PostgresS3,
        Ok(other) => panic!("BERTH_TEST_BACKEND={other:?}: expected sqlite-fs, postgres-fs or postgres-s3"),
    }
}

/// True when blobs are files under the test directory (tests that corrupt or inspect files).
pub fn blobs_on_disk() -> bool {
    backend() != Backend::PostgresS3
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the servers with scripts/postgres-test-server.sh and scripts/s3-test-server.sh (scripts/test.sh does)")
    })
}

/// The id of this directory's database and prefix, made on first use and kept in the directory.
fn store_id(dir: &Path) -> String {
    let path = dir.join("backend-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return id;
    }
    let id = format!("t{}", uuid::Uuid::new_v4().simple());
    std::fs::write(&path, &id).expect("writing backend-id");
    id
}

async fn postgres(dir: &Path) -> Arc<dyn MetadataStore> {
    let admin_url = env("BERTH_TEST_POSTGRES_URL");
    let id = store_id(dir);
    let created = dir.join("backend-db-created");
    if !created.exists() {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.expect("connecting to the test PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {id}")).execute(&mut conn).await.expect("creating a test database");
        std::fs::write(&created, b"").expect("marking the database created");
    }
    let base = admin_url.rsplit_once('/').expect("a database URL ends in /DATABASE").0;
    Arc::new(berth_postgres::PostgresMetadataStore::connect(&format!("{base}/{id}")).await.expect("opening the test database"))
}

async fn s3(dir: &Path) -> Arc<dyn BlobStore> {
    let mut cfg = berth_s3::S3Config::new(env("BERTH_TEST_S3_BUCKET"));
    cfg.prefix = store_id(dir);
    cfg.endpoint = Some(env("BERTH_TEST_S3_ENDPOINT"));
    cfg.allow_http = true;
    cfg.path_style = true;
    cfg.access_key_id = Some(env("BERTH_TEST_S3_ACCESS_KEY"));
    cfg.secret_access_key = Some(env("BERTH_TEST_S3_SECRET_KEY"));
    Arc::new(berth_s3::S3BlobStore::open(cfg).expect("opening the test bucket"))
}

/// The stores for a test directory; calling again simulates a restart on the same data.
pub async fn stores(dir: &Path) -> (Arc<dyn MetadataStore>, Arc<dyn BlobStore>) {
    let meta: Arc<dyn MetadataStore> = match backend() {
        Backend::SqliteFs => Arc::new(SqliteMetadataStore::open(&dir.join("berth.db")).await.expect("opening SQLite")),
        Backend::PostgresFs | Backend::PostgresS3 => postgres(dir).await,
    };
    (meta, blob_store(dir).await)
}

/// The blob store alone (to look beneath the service).
pub async fn blob_store(dir: &Path) -> Arc<dyn BlobStore> {
    match backend() {
        Backend::SqliteFs | Backend::PostgresFs => Arc::new(FsBlobStore::open(dir).await.expect("opening the blob directory")),
        Backend::PostgresS3 => s3(dir).await,
    }
}

/// Replaces the stored bytes of a committed blob beneath every layer of berth (bit rot,
/// tampering): the file itself, or the S3 data object its pointer names.
pub async fn overwrite_stored_bytes(dir: &Path, digest: &Digest, data: &[u8]) {
    let hex = digest.hex();
    let alg = digest.algorithm().name();
    if blobs_on_disk() {
        std::fs::write(dir.join("blobs").join(alg).join(&hex[..2]).join(hex), data).expect("overwriting a blob file");
        return;
    }
    use object_store::ObjectStoreExt;
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(env("BERTH_TEST_S3_BUCKET"))
        .with_endpoint(env("BERTH_TEST_S3_ENDPOINT"))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(env("BERTH_TEST_S3_ACCESS_KEY"))
        .with_secret_access_key(env("BERTH_TEST_S3_SECRET_KEY"))
        .build()
        .expect("an S3 client for the test bucket");
    let prefix = store_id(dir);
    let pointer = s3.get(&format!("{prefix}/blobs/{alg}/{hex}").into()).await.expect("the blob's pointer");
    let pointer: serde_json::Value = serde_json::from_slice(&pointer.bytes().await.expect("reading the pointer")).expect("pointer JSON");
    let data_key = pointer["data"].as_str().expect("the pointer names its data");
    s3.put(&format!("{prefix}/{data_key}").into(), Bytes::copy_from_slice(data).into()).await.expect("overwriting the data object");
}

/// The root key every test registry's key service uses (nodes of one test share it).
pub fn root_key() -> berth_crypto::RootKey {
    berth_crypto::RootKey::from_hex(&"ab".repeat(32)).expect("root key")
}

/// The stored size of a blob pushed to an AES256 repository, wherever it is kept: sealed under
/// the registry-managed key, or (written in clear) in the plain store. None when neither holds it.
pub async fn stored_size(blobs: &Arc<dyn BlobStore>, digest: &Digest) -> Option<u64> {
    if let Some(size) = blobs.stat(digest).await.expect("stat") {
        return Some(size);
    }
    let sealed = blobs.namespace("sealed").expect("a sealed namespace");
    sealed.stat(&berth_core::sealed_object_name("aes256", digest)).await.expect("stat")
}
