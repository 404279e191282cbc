//! `berth backup`, `berth backup verify` and `berth restore`: backups of the embedded default
//! (SQLite + filesystem) taken while berth serves.
//!
//! A backup is a data directory plus a record of it:
//! - `berth.db`: a snapshot of the metadata as of one instant (SQLite's `VACUUM INTO`, one read
//!   transaction, so pushes carry on meanwhile);
//! - the objects that snapshot records (clear blobs under `blobs/`, encrypted ones under
//!   `sealed/`, the data directory's own layout), each copied aside, hashed on the way, synced
//!   and renamed into place;
//! - `objects.tsv` (every object's path, size and the sha256 of its stored bytes) and
//!   `BACKUP.json` (counts, bytes, the snapshot time, berth's and the schema's versions).
//!
//! Blobs are immutable and content-addressed, so a second backup into the same directory copies
//! only the objects it does not hold yet, and a backup cut short resumes where it stopped. The
//! snapshot replaces the previous one only after every object it needs is in place: an
//! interrupted or failed backup leaves the previous backup whole. The root key is never written
//! into a backup unless `--include-root-key` asks for it.

pub(crate) mod objects;
mod restore;
mod s3;
pub(crate) mod schedule;
pub(crate) mod source;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::config::DEFAULT_DATA_DIR;
use objects::{Entry, Object};
pub use restore::{restore, RestoreArgs};
use source::Source;

const MANIFEST_FILE: &str = "BACKUP.json";
const SNAPSHOT_FILE: &str = "berth.db";
const INCOMING_SNAPSHOT: &str = ".incoming.db";
const ROOT_KEY_FILE: &str = "root.key";

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum BackupCommand {
    /// Check a backup without restoring it: every object the snapshot records is there with
    /// the bytes the backup recorded (clear blobs also against their digests).
    Verify(VerifyArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The data directory of the berth to back up (it may be serving).
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Back up a cluster instead (its nodes may be serving): its PostgreSQL,
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, env = "BERTH_METADATA", hide_env_values = true)]
    pub metadata: Option<String>,
    /// The cluster's blobs: s3://BUCKET/PREFIX (reached with the --s3-* flags below, which then
    /// serve both buckets when the backup also goes to one) or file:///PATH.
    #[arg(long, env = "BERTH_BLOBS")]
    pub blobs: Option<String>,
    /// The backup directory (created if missing), or `s3://BUCKET/PREFIX` in an S3-compatible
    /// bucket; a previous backup there is updated incrementally.
    #[arg(long)]
    pub to: Option<PathBuf>,
    #[command(flatten)]
    pub bucket: s3::BucketArgs,
    /// Also write the root key into the backup (anyone holding the backup can then read every
    /// encrypted blob and secret in it). Without it, a restore needs the key from elsewhere.
    #[arg(long)]
    pub include_root_key: bool,
    /// The root key to include (BERTH_ROOT_KEY, if set, wins) [default: <data-dir>/root.key]
    #[arg(long)]
    pub root_key_file: Option<PathBuf>,
    /// Objects copied at the same time.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Copy at most this many MiB per second (default: as fast as the disks go), leaving the
    /// disk to a registry that serves from it.
    #[arg(long, env = "BERTH_BACKUP_MAX_RATE_MIB")]
    pub max_rate_mib: Option<u64>,
    /// Remove the lock a killed backup left in the bucket (`--to s3://…`) before taking it.
    #[arg(long)]
    pub break_lock: bool,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The backup directory, or `s3://BUCKET/PREFIX`.
    #[arg(long)]
    pub from: PathBuf,
    #[command(flatten)]
    pub bucket: s3::BucketArgs,
}

/// `BACKUP.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub berth_version: String,
    pub schema_version: i64,
    /// Every push acknowledged before this instant (ms since the epoch) is in the backup.
    pub snapshot_millis: i64,
    pub objects: u64,
    pub bytes: u64,
    /// Objects this run copied (the rest were already in the backup).
    pub copied: u64,
    pub copied_bytes: u64,
    /// Objects hard-linked from the previous generation (scheduled backups).
    #[serde(default)]
    pub linked: u64,
    /// Recorded objects whose bytes were gone on purpose (encrypted under a deleted KMS key).
    pub absent: Vec<String>,
    pub root_key_included: bool,
    pub seconds: f64,
}

const FORMAT: &str = "berth-backup-v1";

pub async fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(BackupCommand::Verify(v)) => verify(v).await,
        None => create(args.create).await,
    }
}

/// What became of one recorded object in this run.
enum Outcome {
    Kept(Object, Entry),
    Copied(Object, Entry),
    /// Hard-linked from the previous generation of a scheduled backup.
    Linked(Object, Entry),
    Absent(Object),
    Failed(String),
}

impl Outcome {
    fn bytes_copied(&self) -> u64 {
        match self {
            Outcome::Copied(_, e) => e.size,
            _ => 0,
        }
    }
}

/// One backup run into `to`.
pub(crate) struct TakeOptions {
    pub source: Arc<Source>,
    pub to: PathBuf,
    /// A previous complete backup whose objects are hard-linked into `to` (a new generation)
    /// instead of copied; None: `to` itself is updated incrementally.
    pub link_from: Option<PathBuf>,
    pub jobs: usize,
    pub progress: bool,
    pub pacer: Arc<objects::Pacer>,
}

/// A run's result: the backup's record, or why objects could not be backed up (the previous
/// backup in `to` is then intact).
pub(crate) enum Taken {
    Done(Manifest),
    Failed(Vec<String>),
}

async fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let to = args.to.clone().context("--to DIR|s3://BUCKET/PREFIX: where the backup goes")?;
    let bucket = s3::Bucket::for_location(&to, &args.bucket)?;
    // A directory is locked inside `take` (flock); a bucket prefix here, for the whole run.
    let Some(bucket) = bucket else { return create_in(args, to, None).await };
    let lock = bucket.lock(args.break_lock).await?;
    let result = create_in(args, to, Some(&bucket)).await;
    let released = lock.release().await;
    let code = result?;
    released?;
    Ok(code)
}

async fn create_in(args: CreateArgs, to: PathBuf, bucket: Option<&s3::Bucket>) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let source = Arc::new(Source::open(&args.data_dir, args.metadata.as_deref(), args.blobs.as_deref(), &args.bucket).await?);
    let taken = match &bucket {
        Some(bucket) => s3::take(bucket, &source, args.jobs, &objects::Pacer::new(args.max_rate_mib)).await?,
        None => {
            let pacer = Arc::new(objects::Pacer::new(args.max_rate_mib));
            take(&TakeOptions { source: source.clone(), to: to.clone(), link_from: None, jobs: args.jobs, progress: true, pacer }).await?
        }
    };
    let mut manifest = match taken {
        Taken::Done(m) => m,
        Taken::Failed(failures) => {
            for f in &failures {
                eprintln!("berth backup: {f}");
            }
            eprintln!(
                "berth backup: {} object(s) could not be backed up; the previous backup in {} is intact. Run the command again (it resumes); if an object keeps failing, run `berth fsck` on the source",
                failures.len(),
                to.display()
            );
            return Ok(ExitCode::from(1));
        }
    };
    manifest.root_key_included = args.include_root_key;
    let key = if args.include_root_key { Some(root_key_bytes(&args)?) } else { None };
    match &bucket {
        Some(bucket) => bucket.put_root_key(key).await?,
        None => write_root_key(&to, key)?,
    }
    manifest.seconds = started.elapsed().as_secs_f64();
    match &bucket {
        Some(bucket) => bucket.put_file(MANIFEST_FILE, serde_json::to_vec_pretty(&manifest)?).await?,
        None => write_manifest(&to, &manifest)?,
    }
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    if !args.include_root_key {
        let whose = match &*source {
            Source::DataDir(dir) => format!(
                "the root key of {} (BERTH_ROOT_KEY, or {})",
                dir.display(),
                args.root_key_file.clone().unwrap_or_else(|| dir.join(ROOT_KEY_FILE)).display()
            ),
            Source::Cluster(_) => "the cluster nodes' root key (their BERTH_ROOT_KEY or --root-key-file)".to_string(),
        };
        eprintln!(
            "berth backup: the root key is NOT in the backup. Encrypted blobs and secrets in it open only with {whose}: keep a copy of it apart from the backup"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Snapshots the metadata, then brings every object it records into `to`; the snapshot goes in
/// last. The caller writes `BACKUP.json` (and the root key, if asked).
pub(crate) async fn take(opts: &TakeOptions) -> anyhow::Result<Taken> {
    let to = &opts.to;
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let _lock = crate::datadir::lock_dir(to, "backup.lock", &format!("{} is in use by another `berth backup`", to.display()))?;

    let incoming = to.join(INCOMING_SNAPSHOT);
    remove_database(&incoming)?;
    // Taken before the snapshot starts: whatever was acknowledged before it is in the snapshot.
    let snapshot_millis = now_millis();
    opts.source.snapshot_into(&incoming).await?;
    let recorded = objects::recorded(&incoming).await?;
    // What the directory holds: its last list, and what an unfinished run since then journaled.
    let previous = Arc::new(match &opts.link_from {
        Some(from) => objects::read_list(from)?,
        None => objects::read_list_and_journal(to)?,
    });
    let flusher = Arc::new(objects::Flusher::new(to));

    let progress = if opts.progress { progress_bar(recorded.len() as u64, "backing up") } else { indicatif::ProgressBar::hidden() };
    let outcomes: Vec<Outcome> = futures::stream::iter(recorded)
        .map(|object| {
            let (source, to, link_from, previous, flusher, progress, pacer) = (
                opts.source.clone(),
                to.clone(),
                opts.link_from.clone(),
                previous.clone(),
                flusher.clone(),
                progress.clone(),
                opts.pacer.clone(),
            );
            async move {
                let outcome = back_up_object(source, to, link_from, previous, pacer, object).await;
                let outcome = match tokio::task::spawn_blocking(move || {
                    let done = match &outcome {
                        Outcome::Copied(o, e) | Outcome::Linked(o, e) => Some((o, e)),
                        _ => None,
                    };
                    let flushed = flusher.copied(done, outcome.bytes_copied());
                    (outcome, flushed)
                })
                .await
                {
                    Ok((outcome, Ok(()))) => outcome,
                    Ok((outcome @ Outcome::Failed(_), _)) => outcome,
                    Ok((_, Err(e))) => Outcome::Failed(format!("{e:#}")),
                    Err(e) => Outcome::Failed(format!("flush task failed: {e}")),
                };
                progress.inc(1);
                outcome
            }
        })
        .buffer_unordered(opts.jobs.max(1))
        .collect()
        .await;
    progress.finish_and_clear();

    let (manifest, kept) = match tally(outcomes, snapshot_millis) {
        Ok(t) => t,
        Err(failures) => return Ok(Taken::Failed(failures)),
    };
    // Every object copied or linked, durable before the list that vouches for them.
    objects::sync_filesystem(to)?;
    objects::write_list(to, &kept)?;
    // The new snapshot goes in only now that every object it names is in place.
    std::fs::rename(&incoming, to.join(SNAPSHOT_FILE)).context("renaming the snapshot into place")?;
    sync_dir(to)?;
    objects::remove_journal(to)?;
    if opts.link_from.is_none() {
        prune(to, &previous, &kept)?;
    }
    Ok(Taken::Done(manifest))
}

/// The objects a backup holds, with what it knows of each.
type Kept = Vec<(Object, Entry)>;

/// The backup's record from each object's outcome, its objects sorted by path; or every failure.
fn tally(outcomes: Vec<Outcome>, snapshot_millis: i64) -> Result<(Manifest, Kept), Vec<String>> {
    let mut manifest = Manifest {
        format: FORMAT.into(),
        berth_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: berth_store::SQLITE_SCHEMA_VERSION,
        snapshot_millis,
        objects: 0,
        bytes: 0,
        copied: 0,
        copied_bytes: 0,
        linked: 0,
        absent: Vec::new(),
        root_key_included: false,
        seconds: 0.0,
    };
    let mut kept = Vec::new();
    let mut failures = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Kept(o, e) => kept.push((o, e)),
            Outcome::Copied(o, e) => {
                manifest.copied += 1;
                manifest.copied_bytes += e.size;
                kept.push((o, e));
            }
            Outcome::Linked(o, e) => {
                manifest.linked += 1;
                kept.push((o, e));
            }
            Outcome::Absent(o) => manifest.absent.push(o.path.display().to_string()),
            Outcome::Failed(why) => failures.push(why),
        }
    }
    if !failures.is_empty() {
        return Err(failures);
    }
    kept.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    manifest.objects = kept.len() as u64;
    manifest.bytes = kept.iter().map(|(_, e)| e.size).sum();
    Ok((manifest, kept))
}

/// One recorded object into the backup directory: kept or linked when the backup already holds
/// it, else copied (a data directory's file on a blocking thread, a store's object streamed).
async fn back_up_object(
    source: Arc<Source>,
    to: PathBuf,
    link_from: Option<PathBuf>,
    previous: Arc<HashMap<PathBuf, Entry>>,
    pacer: Arc<objects::Pacer>,
    object: Object,
) -> Outcome {
    let from_files = {
        let (source, to, pacer) = (source.clone(), to.clone(), pacer.clone());
        tokio::task::spawn_blocking(move || {
            if let Some(done) = reuse(&to, link_from.as_deref(), &previous, &object) {
                return Ok(done);
            }
            match &*source {
                Source::DataDir(data_dir) => Ok(copy_file(data_dir, &to, object, &pacer)),
                Source::Cluster(_) => Err(object),
            }
        })
        .await
    };
    let object = match from_files {
        Ok(Ok(outcome)) => return outcome,
        Ok(Err(object)) => object,
        Err(e) => return Outcome::Failed(format!("copy task failed: {e}")),
    };
    match source.read(&object).await {
        Ok(None) => source_missing(&source.describe(), object),
        Err(e) => Outcome::Failed(format!("{e:#}")),
        Ok(Some((len, body))) => match objects::copy_stream(body, len, &to.join(&object.path), &object, &pacer).await {
            Ok(entry) => Outcome::Copied(object, entry),
            Err(e) => Outcome::Failed(format!("{e:#}")),
        },
    }
}

/// The backup's own copy of an object it already holds (or the previous generation's, linked).
fn reuse(to: &Path, link_from: Option<&Path>, previous: &HashMap<PathBuf, Entry>, object: &Object) -> Option<Outcome> {
    let target = to.join(&object.path);
    if let Some(entry) = previous.get(&object.path) {
        // Content-addressed and written once: an object a backup holds at its recorded size
        // is the same object (`backup verify` re-reads them).
        match link_from {
            None if std::fs::metadata(&target).is_ok_and(|m| m.len() == entry.size) => {
                return Some(Outcome::Kept(object.clone(), entry.clone()))
            }
            None => {}
            Some(prev) => {
                let source = prev.join(&object.path);
                if std::fs::metadata(&source).is_ok_and(|m| m.len() == entry.size) && objects::link(&source, &target).is_ok() {
                    return Some(Outcome::Linked(object.clone(), entry.clone()));
                }
            }
        }
    }
    None
}

fn copy_file(data_dir: &Path, to: &Path, object: Object, pacer: &objects::Pacer) -> Outcome {
    let target = to.join(&object.path);
    let source = data_dir.join(&object.path);
    if !source.exists() {
        return source_missing(&source.display(), object);
    }
    match objects::copy(&source, &target, &object, None, pacer) {
        Ok(entry) => Outcome::Copied(object, entry),
        Err(e) => Outcome::Failed(format!("{:#}", e)),
    }
}

/// A recorded object whose file is gone: absent on purpose (a shredded KMS key's), or a failure.
fn source_missing(source: &dyn std::fmt::Display, object: Object) -> Outcome {
    if object.may_be_shredded() {
        return Outcome::Absent(object);
    }
    Outcome::Failed(format!(
        "{} ({}) is recorded but its file is missing (a GC removed it after the snapshot, or the source is damaged)",
        object.digest, source
    ))
}

/// The objects of the previous backup that the new snapshot no longer names (deleted images the
/// GC collected): removed after the snapshot is in, so the backup mirrors it.
fn no_longer_named<'a>(previous: &'a HashMap<PathBuf, Entry>, kept: &[(Object, Entry)]) -> Vec<&'a PathBuf> {
    let now: std::collections::HashSet<&PathBuf> = kept.iter().map(|(o, _)| &o.path).collect();
    previous.keys().filter(|p| !now.contains(p)).collect()
}

fn prune(to: &Path, previous: &HashMap<PathBuf, Entry>, kept: &[(Object, Entry)]) -> anyhow::Result<()> {
    for path in no_longer_named(previous, kept) {
        match std::fs::remove_file(to.join(path)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    Ok(())
}

fn root_key_bytes(args: &CreateArgs) -> anyhow::Result<Vec<u8>> {
    match std::env::var("BERTH_ROOT_KEY") {
        Ok(hex) => Ok(hex.into_bytes()),
        Err(_) => {
            let path = args.root_key_file.clone().unwrap_or_else(|| args.data_dir.join(ROOT_KEY_FILE));
            std::fs::read(&path).with_context(|| format!("reading the root key {}", path.display()))
        }
    }
}

/// Writes the root key into the backup directory (mode 0600), or removes it when not asked for.
fn write_root_key(to: &Path, key: Option<Vec<u8>>) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = to.join(ROOT_KEY_FILE);
    let Some(bytes) = key else {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    };
    let mut f = File::options().create(true).truncate(true).write(true).mode(0o600).open(&path).context("writing root.key")?;
    f.write_all(&bytes).context("writing root.key")?;
    f.sync_all().context("syncing root.key")?;
    Ok(())
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    match s3::Bucket::for_location(&args.from, &args.bucket)? {
        Some(bucket) => {
            let local = s3::Download::into_temp(&bucket, &std::env::temp_dir()).await?;
            verify_dir(&local.dir).await
        }
        None => verify_dir(&args.from).await,
    }
}

async fn verify_dir(from: &Path) -> anyhow::Result<ExitCode> {
    let checked = check_backup(from).await?;
    let report = serde_json::json!({
        "snapshot_millis": checked.manifest.snapshot_millis,
        "objects_checked": checked.objects,
        "problems": checked.problems,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if checked.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// What re-reading a backup found.
pub(crate) struct Checked {
    pub manifest: Manifest,
    /// Objects the backup lists.
    pub objects: usize,
    pub problems: Vec<String>,
}

/// Re-reads every object the snapshot of the backup directory `from` records, against the bytes
/// the backup recorded (and a clear blob against its digest).
pub(crate) async fn check_backup(from: &Path) -> anyhow::Result<Checked> {
    let manifest = read_manifest(from)?;
    let list = Arc::new(objects::read_list(from)?);
    let recorded = objects::recorded(&from.join(SNAPSHOT_FILE)).await?;
    let absent: std::collections::HashSet<String> = manifest.absent.iter().cloned().collect();
    let progress = progress_bar(recorded.len() as u64, "verifying");
    let problems: Vec<String> = futures::stream::iter(recorded)
        .map(|object| {
            let (from, list, absent, progress) = (from.to_path_buf(), list.clone(), absent.clone(), progress.clone());
            async move {
                let problem = tokio::task::spawn_blocking(move || {
                    let Some(entry) = list.get(&object.path) else {
                        if absent.contains(&object.path.display().to_string()) {
                            return None;
                        }
                        return Some(format!(
                            "{} ({}) is recorded by the snapshot but not in the backup",
                            object.digest,
                            object.path.display()
                        ));
                    };
                    objects::check(&from.join(&object.path), &object, entry).err().map(|e| format!("{} : {e:#}", object.digest))
                })
                .await
                .unwrap_or_else(|e| Some(format!("check task failed: {e}")));
                progress.inc(1);
                problem
            }
        })
        .buffer_unordered(4)
        .filter_map(|p| async move { p })
        .collect()
        .await;
    progress.finish_and_clear();
    Ok(Checked { manifest, objects: list.len(), problems })
}

fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {} (is {} a berth backup?)", path.display(), dir.display()))?;
    let manifest: Manifest = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if manifest.format != FORMAT {
        anyhow::bail!("{}: format {:?}, this berth reads {FORMAT:?}", path.display(), manifest.format);
    }
    if manifest.schema_version > berth_store::SQLITE_SCHEMA_VERSION {
        anyhow::bail!(
            "{}: the backup's schema version {} is newer than this berth's ({}); use berth {} or later",
            path.display(),
            manifest.schema_version,
            berth_store::SQLITE_SCHEMA_VERSION,
            manifest.berth_version
        );
    }
    Ok(manifest)
}

pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let partial = dir.join(format!(".{MANIFEST_FILE}.partial"));
    std::fs::write(&partial, serde_json::to_vec_pretty(manifest)?).context("writing BACKUP.json")?;
    File::open(&partial).and_then(|f| f.sync_all()).context("syncing BACKUP.json")?;
    std::fs::rename(&partial, dir.join(MANIFEST_FILE)).context("renaming BACKUP.json into place")?;
    sync_dir(dir)
}

fn remove_database(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}} objects, eta {{eta}}")) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}
