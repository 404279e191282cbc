//! Backups in an S3-compatible bucket: `berth backup --to s3://BUCKET/PREFIX`, `berth backup
//! verify` and `berth restore --from s3://BUCKET/PREFIX`.
//!
//! Under PREFIX the bucket holds what a backup directory holds (`BACKUP.json`, `berth.db`,
//! `objects.tsv`, `blobs/…`, `sealed/…`). A run snapshots the metadata into a local temporary
//! directory, uploads only the objects the bucket's `objects.tsv` does not list yet (each read
//! once, hashed and checked on the way, as into a directory), then `objects.tsv`, the snapshot,
//! and `BACKUP.json` last; objects no longer named are deleted after. An S3 PUT is atomic, so a
//! run cut short leaves the previous backup whole (its objects are never removed before the new
//! snapshot is in). A run that is killed or fails leaves what it uploaded recorded in journal
//! objects (`.journal/…`, written every 2 s or 500 objects), so the next run uploads only the rest;
//! they are deleted once `objects.tsv` records a finished run. Verify and restore download the backup into a temporary directory and check
//! or restore it as a directory backup (every object re-hashed, then fsck).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::objects::{self, Checker, Entry, Object, Pacer, OBJECTS_FILE};
use super::source::Source;
use super::{no_longer_named, now_millis, progress_bar, source_missing, tally, Outcome, Taken, ROOT_KEY_FILE, SNAPSHOT_FILE};

const CHUNK: usize = 1 << 20;

/// How to reach the backup's bucket. The same flags and environment as `berth serve --blobs
/// s3://…` (storage.rs), declared again because this bucket is the backup's own: on a cluster it
/// is not the bucket the blobs live in.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BucketArgs {
    /// S3 endpoint of a non-AWS server (MinIO, Ceph RGW, Garage), e.g. http://127.0.0.1:9000.
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
    /// Path-style requests (https://host/bucket/key), as MinIO, Ceph and Garage usually want.
    #[arg(long, env = "BERTH_S3_PATH_STYLE")]
    pub s3_path_style: bool,
}

pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

impl Bucket {
    /// The bucket a `--to`/`--from` names, or None for a directory.
    pub fn for_location(location: &Path, args: &BucketArgs) -> anyhow::Result<Option<Bucket>> {
        let Some(url) = location.to_str().filter(|l| l.starts_with("s3://")) else { return Ok(None) };
        let mut cfg = berth_s3::S3Config::from_url(url).with_context(|| format!("{url}: expected s3://BUCKET/PREFIX"))?;
        crate::storage::apply_s3_flags(
            &mut cfg,
            &args.s3_endpoint,
            &args.s3_region,
            &args.s3_access_key_id,
            &args.s3_secret_access_key,
            args.s3_path_style,
        );
        // The blob store's own client: the same credentials, endpoint, timeouts and retries.
        let store = berth_s3::bucket_client(&cfg, None).with_context(|| format!("configuring the bucket {url}"))?;
        Ok(Some(Bucket { store: Arc::new(store), prefix: cfg.prefix, url: url.to_string() }))
    }

    fn key(&self, relative: &Path) -> Key {
        let relative = relative.to_string_lossy();
        match self.prefix.as_str() {
            "" => Key::from(relative.as_ref()),
            prefix => Key::from(format!("{prefix}/{relative}")),
        }
    }

    /// Takes the prefix for this run: two backups writing one prefix at once would remove each
    /// other's objects. `break_lock` first removes a lock a killed run left.
    pub async fn lock(&self, break_lock: bool) -> anyhow::Result<BucketLock<'_>> {
        let key = self.key(Path::new(LOCK_FILE));
        if break_lock {
            BucketLock { bucket: self }.release().await?;
        }
        let holder = serde_json::json!({
            "pid": std::process::id(),
            "host": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim(),
            "started_millis": now_millis(),
        });
        let opts = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
        match self.store.put_opts(&key, PutPayload::from(holder.to_string().into_bytes()), opts).await {
            Ok(_) => Ok(BucketLock { bucket: self }),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let held = match self.store.get(&key).await {
                    Ok(got) => got.bytes().await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default(),
                    Err(_) => String::new(),
                };
                anyhow::bail!(
                    "{} is in use by another `berth backup` (lock {LOCK_FILE}: {held}); if none is running (a killed run left it), run again with --break-lock",
                    self.url
                )
            }
            Err(e) => Err(e).with_context(|| format!("locking {} for this backup", self.url)),
        }
    }

    pub async fn put_file(&self, name: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.store
            .put(&self.key(Path::new(name)), PutPayload::from(bytes))
            .await
            .with_context(|| format!("writing {name} to {}", self.url))?;
        Ok(())
    }

    /// The root key into the backup when asked for, else removed from it.
    pub async fn put_root_key(&self, key: Option<Vec<u8>>) -> anyhow::Result<()> {
        match key {
            Some(bytes) => self.put_file(ROOT_KEY_FILE, bytes).await,
            None => match self.store.delete(&self.key(Path::new(ROOT_KEY_FILE))).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e).with_context(|| format!("removing {ROOT_KEY_FILE} from {}", self.url)),
            },
        }
    }

    /// Streams a local file into the bucket (multipart when large).
    async fn upload(&self, from: &Path, name: &Path) -> anyhow::Result<()> {
        let mut file = tokio::fs::File::open(from).await.with_context(|| format!("opening {}", from.display()))?;
        let mut out = BufWriter::new(self.store.clone(), self.key(name));
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf).await.with_context(|| format!("reading {}", from.display()))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).await.with_context(|| format!("writing {} to {}", name.display(), self.url))?;
        }
        out.shutdown().await.with_context(|| format!("writing {} to {}", name.display(), self.url))
    }

    /// One recorded object into the bucket, checked as a directory copy is (size, sha256, and a
    /// clear blob's own digest); a failed check leaves nothing under its key.
    async fn back_up_object(&self, source: &Source, object: Object, pacer: &Pacer) -> Outcome {
        let mut body = match source.read(&object).await {
            Ok(Some((_, body))) => body,
            Ok(None) => return source_missing(&source.describe(), object),
            Err(e) => return Outcome::Failed(format!("{e:#}")),
        };
        let mut out = BufWriter::new(self.store.clone(), self.key(&object.path));
        let mut check = Checker::new(&object);
        let streamed: anyhow::Result<()> = async {
            while let Some(chunk) = body.try_next().await.with_context(|| format!("reading {}", object.path.display()))? {
                check.update(&chunk);
                out.write_all(&chunk).await.with_context(|| format!("writing {} to {}", object.path.display(), self.url))?;
                pacer.pace(chunk.len() as u64).await;
            }
            Ok(())
        }
        .await;
        let checked = streamed.and_then(|()| check.finish(&object, None).map_err(|p| anyhow::anyhow!("{}: {p}", object.path.display())));
        match checked {
            Ok(entry) => match out.shutdown().await {
                Ok(()) => Outcome::Copied(object, entry),
                Err(e) => Outcome::Failed(format!("writing {} to {}: {e}", object.path.display(), self.url)),
            },
            Err(e) => {
                let _ = out.abort().await;
                Outcome::Failed(format!("{e:#}"))
            }
        }
    }

    /// Every key under the prefix, relative to it.
    async fn list(&self) -> anyhow::Result<Vec<PathBuf>> {
        self.list_in(None).await
    }

    /// Every key under the prefix (or under `dir` in it), relative to the prefix.
    async fn list_in(&self, dir: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
        let base = match dir {
            Some(d) => Some(self.key(d)),
            None => (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str())),
        };
        let strip = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let metas: Vec<_> = self.store.list(base.as_ref()).try_collect().await.with_context(|| format!("listing {}", self.url))?;
        Ok(metas.into_iter().filter_map(|m| m.location.as_ref().strip_prefix(strip.as_str()).map(PathBuf::from)).collect())
    }

    /// A key into a local file; false when the bucket has no such key.
    async fn download(&self, name: &Path, to: &Path) -> anyhow::Result<bool> {
        let got = match self.store.get(&self.key(name)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("reading {} from {}", name.display(), self.url)),
        };
        if let Some(dir) = to.parent() {
            tokio::fs::create_dir_all(dir).await.with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = tokio::fs::File::create(to).await.with_context(|| format!("creating {}", to.display()))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("reading {} from {}", name.display(), self.url))?;
            file.write_all(&chunk).await.with_context(|| format!("writing {}", to.display()))?;
        }
        file.sync_all().await.with_context(|| format!("syncing {}", to.display()))?;
        Ok(true)
    }
}

/// A backup downloaded from a bucket into a temporary directory, removed when dropped.
pub struct Download {
    pub dir: PathBuf,
}

impl Download {
    pub async fn into_temp(bucket: &Bucket, beside: &Path) -> anyhow::Result<Download> {
        let dir = beside.join(format!(".berth-backup-download-{}-{}", std::process::id(), now_millis()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let download = Download { dir };
        let keys = bucket.list().await?;
        anyhow::ensure!(!keys.is_empty(), "{} holds no backup", bucket.url);
        let progress = progress_bar(keys.len() as u64, "downloading");
        let dir = download.dir.clone();
        futures::stream::iter(keys)
            .map(|key| {
                let (dir, progress) = (dir.clone(), progress.clone());
                async move {
                    bucket.download(&key, &dir.join(&key)).await?;
                    progress.inc(1);
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        progress.finish_and_clear();
        Ok(download)
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Under the prefix: held while a run writes there (created only if absent, S3's If-None-Match).
const LOCK_FILE: &str = ".lock";

/// A bucket prefix locked for one run (`Bucket::lock`); `release` removes the lock object.
pub struct BucketLock<'a> {
    bucket: &'a Bucket,
}

impl BucketLock<'_> {
    pub async fn release(self) -> anyhow::Result<()> {
        match self.bucket.store.delete(&self.bucket.key(Path::new(LOCK_FILE))).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing the lock {LOCK_FILE} from {}", self.bucket.url)),
        }
    }
}

/// Under the prefix: what unfinished runs uploaded, one object per batch, each in the list's format.
const JOURNAL_PREFIX: &str = ".journal";
const JOURNAL_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
const JOURNAL_BATCH: usize = 500;

/// Records uploaded objects in journal objects as the run goes.
struct Journal<'a> {
    bucket: &'a Bucket,
    run: i64,
    state: tokio::sync::Mutex<JournalState>,
}

struct JournalState {
    pending: Vec<(Object, Entry)>,
    last: std::time::Instant,
    written: Vec<PathBuf>,
}

impl<'a> Journal<'a> {
    fn new(bucket: &'a Bucket) -> Journal<'a> {
        let state = JournalState { pending: Vec::new(), last: std::time::Instant::now(), written: Vec::new() };
        Journal { bucket, run: now_millis(), state: tokio::sync::Mutex::new(state) }
    }

    /// An object is in the bucket (its PUT completed): journaled with the next batch.
    async fn uploaded(&self, object: &Object, entry: &Entry) -> anyhow::Result<()> {
        let mut state = self.state.lock().await;
        state.pending.push((object.clone(), entry.clone()));
        if state.pending.len() < JOURNAL_BATCH && state.last.elapsed() < JOURNAL_EVERY {
            return Ok(());
        }
        state.last = std::time::Instant::now();
        let batch = std::mem::take(&mut state.pending);
        let name = PathBuf::from(JOURNAL_PREFIX).join(format!("{}-{:06}.tsv", self.run, state.written.len()));
        self.bucket.put_file(&name.to_string_lossy(), objects::list_text(&batch).into_bytes()).await?;
        state.written.push(name);
        Ok(())
    }

    /// Every journal object under the prefix (this run's and unfinished runs'), once the list
    /// records the run.
    async fn remove_all(&self, found: &[PathBuf]) -> anyhow::Result<()> {
        let state = self.state.lock().await;
        for name in found.iter().chain(state.written.iter()) {
            match self.bucket.store.delete(&self.bucket.key(name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("removing {} from {}", name.display(), self.bucket.url)),
            }
        }
        Ok(())
    }
}

/// The journal objects unfinished runs left, and the entries they record.
async fn read_journals(bucket: &Bucket, staging: &Path) -> anyhow::Result<(Vec<PathBuf>, HashMap<PathBuf, Entry>)> {
    let names = bucket.list_in(Some(Path::new(JOURNAL_PREFIX))).await?;
    let mut entries = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let local = staging.join(format!("journal-{i}"));
        if bucket.download(name, &local.join(OBJECTS_FILE)).await? {
            entries.extend(objects::read_list(&local)?);
        }
    }
    Ok((names, entries))
}

/// One backup run into the bucket: the snapshot, the objects its `objects.tsv` lacks, the
/// list and the snapshot; the caller writes `BACKUP.json` (and the root key, if asked).
pub async fn take(bucket: &Bucket, source: &Source, jobs: usize, pacer: &Pacer) -> anyhow::Result<Taken> {
    // The snapshot and the object lists are staged locally, then uploaded.
    let staging = Download { dir: std::env::temp_dir().join(format!(".berth-backup-staging-{}-{}", std::process::id(), now_millis())) };
    std::fs::create_dir_all(&staging.dir).with_context(|| format!("creating {}", staging.dir.display()))?;
    let snapshot = staging.dir.join(SNAPSHOT_FILE);
    let snapshot_millis = now_millis();
    source.snapshot_into(&snapshot).await?;
    let recorded = objects::recorded(&snapshot).await?;
    let mut previous: HashMap<PathBuf, Entry> =
        match bucket.download(Path::new(OBJECTS_FILE), &staging.dir.join("previous").join(OBJECTS_FILE)).await? {
            true => objects::read_list(&staging.dir.join("previous"))?,
            false => HashMap::new(),
        };
    // What unfinished runs since then uploaded is in the bucket too.
    let (journals, journaled) = read_journals(bucket, &staging.dir).await?;
    previous.extend(journaled);
    let journal = Journal::new(bucket);

    let progress = progress_bar(recorded.len() as u64, "backing up");
    let outcomes: Vec<Outcome> = futures::stream::iter(recorded)
        .map(|object| {
            let (previous, progress, journal) = (&previous, progress.clone(), &journal);
            async move {
                // Content-addressed and written once: an object the bucket's list names is there.
                let outcome = match previous.get(&object.path) {
                    Some(entry) => Outcome::Kept(object, entry.clone()),
                    None => match bucket.back_up_object(source, object, pacer).await {
                        Outcome::Copied(object, entry) => match journal.uploaded(&object, &entry).await {
                            Ok(()) => Outcome::Copied(object, entry),
                            Err(e) => Outcome::Failed(format!("{e:#}")),
                        },
                        other => other,
                    },
                };
                progress.inc(1);
                outcome
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    progress.finish_and_clear();
    let (manifest, kept) = match tally(outcomes, snapshot_millis) {
        Ok(t) => t,
        Err(failures) => return Ok(Taken::Failed(failures)),
    };
    objects::write_list(&staging.dir, &kept)?;
    bucket.upload(&staging.dir.join(OBJECTS_FILE), Path::new(OBJECTS_FILE)).await?;
    // The new snapshot goes in only now that every object it names is in place.
    bucket.upload(&snapshot, Path::new(SNAPSHOT_FILE)).await?;
    journal.remove_all(&journals).await?;
    for gone in no_longer_named(&previous, &kept) {
        match bucket.store.delete(&bucket.key(gone)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("removing {} from {}", gone.display(), bucket.url)),
        }
    }
    Ok(Taken::Done(manifest))
}
