//! What a backup copies from: an embedded berth's data directory (SQLite + files), or a cluster
//! (PostgreSQL + its bucket or shared directory). Both give a backup of one format: the
//! metadata as an SQLite snapshot, and the objects it records under the data directory's
//! layout (`blobs/…`, `sealed/…`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use berth_store::{BlobStore, ByteStream, SqliteMetadataStore};

use super::objects::Object;
use super::s3::BucketArgs;
use crate::storage::StorageArgs;

pub(crate) enum Source {
    /// An embedded berth's data directory (it may be serving).
    DataDir(PathBuf),
    Cluster(Cluster),
}

pub(crate) struct Cluster {
    pg_url: String,
    blobs: Arc<dyn BlobStore>,
    sealed: Arc<dyn BlobStore>,
    described: String,
}

impl Source {
    /// The cluster `--metadata postgres://…` and `--blobs` name (its bucket reached with the
    /// `--s3-*` flags), else the data directory.
    pub async fn open(data_dir: &Path, metadata: Option<&str>, blobs: Option<&str>, bucket: &BucketArgs) -> anyhow::Result<Source> {
        let pg_url = match metadata {
            None | Some("sqlite") => {
                anyhow::ensure!(
                    blobs.is_none_or(|b| b == "fs"),
                    "--blobs names a cluster's blob store: give its PostgreSQL with --metadata postgres://… too"
                );
                // Checked before anything is written at the target.
                anyhow::ensure!(data_dir.join(super::SNAPSHOT_FILE).is_file(), "{}", no_database(data_dir));
                return Ok(Source::DataDir(data_dir.to_path_buf()));
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url.to_string(),
            Some(_) => anyhow::bail!("--metadata: `sqlite` or a cluster's postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
        };
        let args = StorageArgs {
            metadata: Some(pg_url),
            blobs: blobs.map(str::to_string),
            s3_endpoint: bucket.s3_endpoint.clone(),
            s3_region: bucket.s3_region.clone(),
            s3_access_key_id: bucket.s3_access_key_id.clone(),
            s3_secret_access_key: bucket.s3_secret_access_key.clone(),
            s3_path_style: bucket.s3_path_style,
            ..Default::default()
        };
        Source::cluster(data_dir, &args).await
    }

    /// What a serving node's scheduled backups copy: its data directory when it runs on the
    /// embedded default, else the cluster its storage flags name (PostgreSQL and its blobs).
    pub async fn of_node(data_dir: &Path, storage: &StorageArgs) -> anyhow::Result<Source> {
        let metadata = storage.metadata.as_deref().unwrap_or("sqlite");
        if metadata == "sqlite" {
            anyhow::ensure!(
                storage.blobs.as_deref().is_none_or(|b| b == "fs"),
                "--backup-dir: this node keeps its metadata in SQLite but its blobs in {}; scheduled backups cover the embedded default (SQLite + blobs under the data directory) or a cluster on PostgreSQL",
                storage.describe()
            );
            return Ok(Source::DataDir(data_dir.to_path_buf()));
        }
        Source::cluster(data_dir, storage).await
    }

    async fn cluster(data_dir: &Path, storage: &StorageArgs) -> anyhow::Result<Source> {
        let pg_url = storage.metadata.clone().context("a cluster's PostgreSQL (--metadata postgres://…)")?;
        let store = crate::storage::open_blobs(data_dir, storage).await?;
        let sealed = store.namespace("sealed").context("the cluster's blob store has no place for encrypted objects")?;
        Ok(Source::Cluster(Cluster { pg_url, blobs: store, sealed, described: storage.describe() }))
    }

    pub fn describe(&self) -> String {
        match self {
            Source::DataDir(dir) => dir.display().to_string(),
            Source::Cluster(c) => c.described.clone(),
        }
    }

    /// The metadata as of now into a new SQLite database at `path`.
    pub async fn snapshot_into(&self, path: &Path) -> anyhow::Result<()> {
        match self {
            Source::DataDir(data_dir) => {
                let live_db = data_dir.join(super::SNAPSHOT_FILE);
                anyhow::ensure!(live_db.is_file(), "{}", no_database(data_dir));
                let live = SqliteMetadataStore::open_live_read_only(&live_db).await.context("opening the metadata database")?;
                let taken = live.snapshot_into(path).await;
                live.close().await;
                Ok(taken?)
            }
            Source::Cluster(c) => {
                berth_postgres::export::export_to_sqlite(&c.pg_url, path, |_, _| {})
                    .await
                    .context("copying the cluster's metadata out of PostgreSQL")?;
                Ok(())
            }
        }
    }

    /// A recorded object's stored bytes (ciphertext for an encrypted one), or None when the
    /// source does not hold it.
    pub async fn read(&self, object: &Object) -> anyhow::Result<Option<(u64, ByteStream)>> {
        let (store, name) = match self {
            Source::DataDir(data_dir) => {
                let path = data_dir.join(&object.path);
                let file = match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
                };
                let len = file.metadata().await.with_context(|| format!("reading {}", path.display()))?.len();
                let body = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
                return Ok(Some((len, Box::pin(body))));
            }
            Source::Cluster(c) if object.scope.is_empty() => (&c.blobs, object.digest.clone()),
            Source::Cluster(c) => (&c.sealed, berth_core::sealed_object_name(&object.scope, &object.digest)),
        };
        let reader = berth_store::store_walk(store.get(&name, None))
            .await
            .with_context(|| format!("reading {} from {}", object.path.display(), self.describe()))?;
        Ok(reader.map(|r| (r.len, r.body)))
    }
}

fn no_database(data_dir: &Path) -> String {
    format!(
        "{} holds no berth.db: not an embedded berth's data directory (for a cluster, give --metadata postgres://… and --blobs)",
        data_dir.display()
    )
}
