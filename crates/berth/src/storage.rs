//! Choosing the storage backends: embedded (SQLite + a directory, the default)
//! or shared (PostgreSQL + an S3-compatible bucket, or a shared directory) so
//! that several berth nodes serve one registry.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_postgres::PostgresMetadataStore;
use berth_s3::{LocalCache, S3BlobStore, S3Config};
use berth_store::{BlobStore, FsBlobStore, MetadataStore, SqliteMetadataStore};
use serde::Deserialize;

/// Where metadata and blobs live. With a shared metadata store the data directory holds only
/// node-local state (its lock, the vulnerability database, generated credentials).
#[derive(clap::Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageArgs {
    /// Metadata store: `sqlite` (default; <data-dir>/berth.db) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (shared by every node).
    #[arg(long, env = "BERTH_METADATA", hide_env_values = true)]
    pub metadata: Option<String>,
    /// Blob storage: `fs` (default; under the data dir), `file:///PATH` (a directory every node
    /// mounts) or `s3://BUCKET/PREFIX` (an S3-compatible bucket).
    #[arg(long, env = "BERTH_BLOBS")]
    pub blobs: Option<String>,
    /// S3 endpoint for non-AWS servers (MinIO, Ceph RGW, Garage), e.g. http://127.0.0.1:9000.
    #[arg(long, env = "BERTH_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (default us-east-1).
    #[arg(long, env = "BERTH_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3 access key id (default: the AWS_* environment and instance credentials).
    #[arg(long, env = "BERTH_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    #[arg(long, env = "BERTH_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Path-style requests (http://host/bucket/key), as most non-AWS servers need.
    #[arg(long, env = "BERTH_S3_PATH_STYLE")]
    #[serde(default)]
    pub s3_path_style: bool,
    /// Serve blob downloads by redirecting to presigned URLs valid this long (0: stream through berth).
    #[arg(long, env = "BERTH_S3_PRESIGN_SECONDS")]
    pub s3_presign_seconds: Option<u64>,
    /// With PostgreSQL metadata: how long one metadata call (a query, or a whole transaction) may
    /// take before the request fails with 503: the server cancels a statement this long, berth
    /// stops waiting 1 s later (a primary that does not answer at all). Default 15.
    #[arg(long, env = "BERTH_POSTGRES_QUERY_TIMEOUT_SECONDS")]
    pub postgres_query_timeout_seconds: Option<u64>,
    /// With `--blobs s3://…`: keep a copy of each blob this node serves in this directory on its
    /// own disk (as stored: encrypted blobs stay encrypted) and serve later pulls of it from
    /// there. Bounded by --blob-cache-gib, least recently used first out. Off by default.
    #[arg(long, env = "BERTH_BLOB_CACHE_DIR")]
    pub blob_cache_dir: Option<String>,
    /// The bound of --blob-cache-dir, in GiB (default 10).
    #[arg(long, env = "BERTH_BLOB_CACHE_GIB")]
    pub blob_cache_gib: Option<u64>,
}

/// `--blob-cache-gib` when not given.
const DEFAULT_BLOB_CACHE_GIB: u64 = 10;

/// The node-local blob cache `open` set up, for /metrics (one per process).
static LOCAL_BLOB_CACHE: std::sync::OnceLock<Arc<LocalCache>> = std::sync::OnceLock::new();

pub fn local_blob_cache() -> Option<&'static Arc<LocalCache>> {
    LOCAL_BLOB_CACHE.get()
}

impl StorageArgs {
    /// Command line and environment first, then the configuration file.
    pub fn or(self, file: StorageArgs) -> StorageArgs {
        StorageArgs {
            metadata: self.metadata.or(file.metadata),
            blobs: self.blobs.or(file.blobs),
            s3_endpoint: self.s3_endpoint.or(file.s3_endpoint),
            s3_region: self.s3_region.or(file.s3_region),
            s3_access_key_id: self.s3_access_key_id.or(file.s3_access_key_id),
            s3_secret_access_key: self.s3_secret_access_key.or(file.s3_secret_access_key),
            s3_path_style: self.s3_path_style || file.s3_path_style,
            s3_presign_seconds: self.s3_presign_seconds.or(file.s3_presign_seconds),
            postgres_query_timeout_seconds: self.postgres_query_timeout_seconds.or(file.postgres_query_timeout_seconds),
            blob_cache_dir: self.blob_cache_dir.or(file.blob_cache_dir),
            blob_cache_gib: self.blob_cache_gib.or(file.blob_cache_gib),
        }
    }

    /// The backends, for the start-up log line (no secrets).
    pub fn describe(&self) -> String {
        let metadata = match self.metadata.as_deref() {
            None | Some("sqlite") => "sqlite".to_string(),
            Some(url) => redact_url(url),
        };
        format!("metadata={metadata} blobs={}", self.blobs.as_deref().unwrap_or("fs"))
    }
}

/// The URL without its password (in the user part or a `password=` parameter), for logs.
fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme && base[scheme + 3..at].contains(':') => {
            let user = base[scheme + 3..at].split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &base[..scheme + 3], &base[at..])
        }
        _ => base.to_string(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out = format!("{out}?{}", params.join("&"));
    }
    out
}

pub async fn open(data_dir: &Path, args: &StorageArgs) -> anyhow::Result<(Arc<dyn MetadataStore>, Arc<dyn BlobStore>)> {
    let meta: Arc<dyn MetadataStore> = match args.metadata.as_deref() {
        None | Some("sqlite") => {
            Arc::new(SqliteMetadataStore::open(&data_dir.join("berth.db")).await.context("opening the metadata database")?)
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let deadline = match args.postgres_query_timeout_seconds {
                Some(0) => anyhow::bail!("--postgres-query-timeout-seconds must be at least 1"),
                Some(s) => Duration::from_secs(s),
                None => berth_postgres::DEFAULT_QUERY_TIMEOUT,
            };
            let store = PostgresMetadataStore::connect_with_deadline(url, deadline)
                .await
                .with_context(|| format!("connecting to PostgreSQL at {}", redact_url(url)))?;
            Arc::new(store)
        }
        Some(other) => anyhow::bail!("--metadata {:?} is neither `sqlite` nor a postgres:// URL", redact_url(other)),
    };
    let blobs = open_blobs_cached(data_dir, args, local_cache(args)?).await?;
    if meta.is_shared() && matches!(args.blobs.as_deref(), None | Some("fs")) {
        tracing::warn!(
            "shared metadata with blobs under this node's data directory: other nodes cannot read these blobs; \
             use --blobs s3://… or a file:/// directory every node mounts unless this is the only node"
        );
    }
    Ok((meta, blobs))
}

/// The blob store alone (`berth backup` of a cluster reads blobs without opening the metadata
/// store, whose connection would migrate the schema).
pub async fn open_blobs(data_dir: &Path, args: &StorageArgs) -> anyhow::Result<Arc<dyn BlobStore>> {
    open_blobs_cached(data_dir, args, None).await
}

/// The node-local blob cache `--blob-cache-dir` asks for (opened once per process: a scheduled
/// backup opens the blob store again, without it).
fn local_cache(args: &StorageArgs) -> anyhow::Result<Option<Arc<LocalCache>>> {
    let Some(dir) = args.blob_cache_dir.as_deref() else {
        anyhow::ensure!(args.blob_cache_gib.is_none(), "--blob-cache-gib needs --blob-cache-dir");
        return Ok(None);
    };
    anyhow::ensure!(
        args.blobs.as_deref().is_some_and(|b| b.starts_with("s3://")),
        "--blob-cache-dir keeps copies of a bucket's blobs; with --blobs {} they are on a filesystem already",
        args.blobs.as_deref().unwrap_or("fs")
    );
    let gib = args.blob_cache_gib.unwrap_or(DEFAULT_BLOB_CACHE_GIB);
    anyhow::ensure!(gib > 0, "--blob-cache-gib must be at least 1");
    if let Some(cache) = LOCAL_BLOB_CACHE.get() {
        return Ok(Some(cache.clone()));
    }
    let cache = LocalCache::open(dir, gib.saturating_mul(1 << 30)).with_context(|| format!("opening the blob cache in {dir}"))?;
    tracing::info!(dir, gib, held_bytes = cache.counts().bytes, "node-local blob cache");
    Ok(Some(LOCAL_BLOB_CACHE.get_or_init(|| cache).clone()))
}

async fn open_blobs_cached(data_dir: &Path, args: &StorageArgs, cache: Option<Arc<LocalCache>>) -> anyhow::Result<Arc<dyn BlobStore>> {
    let blobs: Arc<dyn BlobStore> = match args.blobs.as_deref() {
        None | Some("fs") => Arc::new(FsBlobStore::open(data_dir).await.context("opening blob storage")?),
        Some(url) if url.starts_with("file://") => {
            let path = &url["file://".len()..];
            Arc::new(FsBlobStore::open(path).await.with_context(|| format!("opening blob storage at {path}"))?)
        }
        Some(url) if url.starts_with("s3://") => {
            let mut cfg = S3Config::from_url(url).with_context(|| format!("--blobs {url}"))?;
            apply_s3_flags(
                &mut cfg,
                &args.s3_endpoint,
                &args.s3_region,
                &args.s3_access_key_id,
                &args.s3_secret_access_key,
                args.s3_path_style,
            );
            cfg.presign_expiry = args.s3_presign_seconds.filter(|s| *s > 0).map(Duration::from_secs);
            let store = S3BlobStore::open(cfg).with_context(|| format!("opening the bucket {url}"))?;
            // A wrong bucket, endpoint or key is a start-up error, not a 500 on the first push.
            store.check().await.with_context(|| format!("checking the bucket {url}"))?;
            match cache {
                Some(cache) => {
                    let store = Arc::new(store.with_local_cache(cache));
                    tokio::spawn(sweep_blob_cache(store.clone()));
                    store
                }
                None => Arc::new(store),
            }
        }
        Some(other) => anyhow::bail!("--blobs {other:?} is not `fs`, file:///PATH or s3://BUCKET/PREFIX"),
    };
    Ok(blobs)
}

/// How often a node checks its blob cache's copies against the bucket.
const BLOB_CACHE_SWEEP: Duration = Duration::from_secs(600);

/// Copies of blobs deleted through another node are never served (reads go through the shared
/// metadata first), but they would stay on this node's disk until evicted: a blob deleted to
/// remove what it held should leave every node. At start-up (copies kept across a restart) and
/// every `BLOB_CACHE_SWEEP`, copies whose object the bucket no longer lists are removed.
async fn sweep_blob_cache(store: Arc<S3BlobStore>) {
    let mut every = tokio::time::interval(BLOB_CACHE_SWEEP);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        match store.sweep_local_cache().await {
            Ok(0) => {}
            Ok(copies) => tracing::info!(copies, "node-local blob cache: removed copies of blobs deleted from the bucket"),
            Err(e) => tracing::warn!(error = %e, "node-local blob cache: checking copies against the bucket failed; trying again later"),
        }
    }
}

/// The `--s3-*` flags onto a bucket's configuration: `--blobs s3://…` and `berth backup --to
/// s3://…` take the same flags (declared twice, since a backup's bucket is its own) and read
/// them here, once.
pub fn apply_s3_flags(
    cfg: &mut S3Config,
    endpoint: &Option<String>,
    region: &Option<String>,
    access_key_id: &Option<String>,
    secret_access_key: &Option<String>,
    path_style: bool,
) {
    cfg.endpoint = endpoint.clone();
    cfg.allow_http = endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
    if let Some(region) = region {
        cfg.region = region.clone();
    }
    cfg.access_key_id = access_key_id.clone();
    cfg.secret_access_key = secret_access_key.clone();
    cfg.path_style = path_style;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(redact_url("postgres://berth:s3cret@db:5432/berth"), "postgres://berth:***@db:5432/berth");
        assert_eq!(redact_url("postgres://db/berth"), "postgres://db/berth");
        assert_eq!(
            redact_url("postgres://berth@db/berth?sslmode=require&password=pw"),
            "postgres://berth@db/berth?sslmode=require&password=***"
        );
        let a = StorageArgs { metadata: Some("postgres://u:pw@h/d".into()), ..Default::default() };
        assert!(!a.describe().contains("pw"));
    }
}
