//! `berth restore`: a backup into an empty data directory, every object re-hashed on the way,
//! ending with `berth fsck` of the result; or into an empty cluster (PostgreSQL + a bucket):
//! the backup is checked whole first, then copied in as `berth migrate` copies a data
//! directory, then the cluster is checked as a node sees it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use berth_core::RegistryConfig;
use futures::StreamExt;

use super::objects;
use super::s3::{Bucket, BucketArgs, Download};
use super::{progress_bar, read_manifest, sync_dir, ROOT_KEY_FILE, SNAPSHOT_FILE};
use crate::config::DEFAULT_DATA_DIR;

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The backup directory (`berth backup --to`).
    #[arg(long)]
    pub from: PathBuf,
    /// The data directory to restore into; it must be empty or missing.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Restore into a cluster instead: its PostgreSQL (postgres://…), whose database must hold
    /// no registry yet.
    #[arg(long, env = "BERTH_METADATA", hide_env_values = true)]
    pub metadata: Option<String>,
    /// The cluster's blobs: s3://BUCKET/PREFIX (reached with the --s3-* flags) or file:///PATH.
    #[arg(long, env = "BERTH_BLOBS")]
    pub blobs: Option<String>,
    /// The root key of the backed-up berth, when the backup does not include it (BERTH_ROOT_KEY,
    /// if set, wins).
    #[arg(long)]
    pub root_key_file: Option<PathBuf>,
    /// Objects copied at the same time.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    #[command(flatten)]
    pub bucket: BucketArgs,
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    match args.metadata.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let url = url.to_string();
            return restore_cluster(args, url).await;
        }
        None | Some("sqlite") => {}
        Some(_) => anyhow::bail!("--metadata: `sqlite` or a cluster's postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
    }
    let Some(bucket) = Bucket::for_location(&args.from, &args.bucket)? else {
        return restore_dir(args).await;
    };
    refuse_non_empty(&args.data_dir)?;
    // Downloaded beside the target (same filesystem, no second disk's worth in /tmp), then
    // restored as a directory backup is: every object re-hashed, then fsck.
    let beside = args.data_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let local = Download::into_temp(&bucket, beside).await?;
    restore_dir(RestoreArgs { from: local.dir.clone(), ..args }).await
}

fn refuse_non_empty(data_dir: &Path) -> anyhow::Result<()> {
    if let Some(entry) = std::fs::read_dir(data_dir).ok().and_then(|mut d| d.next()) {
        let entry = entry.map(|e| e.file_name().to_string_lossy().into_owned()).unwrap_or_default();
        anyhow::bail!(
            "refusing to restore into {}: it is not empty (it holds {entry:?}); restore into an empty or new directory",
            data_dir.display()
        );
    }
    Ok(())
}

async fn restore_dir(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let manifest = read_manifest(&args.from)?;
    refuse_non_empty(&args.data_dir)?;
    let list = Arc::new(objects::read_list(&args.from)?);
    let recorded = objects::recorded(&args.from.join(SNAPSHOT_FILE)).await?;
    let sealed = recorded.iter().any(|o| !o.scope.is_empty());
    let key_file = root_key_for(&args, &args.from, &manifest, sealed)?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;

    let progress = progress_bar(recorded.len() as u64, "restoring");
    let problems: Vec<String> = futures::stream::iter(recorded)
        .map(|object| {
            let (from, to, list, progress) = (args.from.clone(), args.data_dir.clone(), list.clone(), progress.clone());
            async move {
                let problem = tokio::task::spawn_blocking(move || {
                    // Objects the backup knows to be absent (their key was deleted) stay absent.
                    let entry = list.get(&object.path)?;
                    objects::copy(&from.join(&object.path), &to.join(&object.path), &object, Some(entry), &objects::Pacer::unlimited())
                        .err()
                        .map(|e| format!("{}: {e:#}", object.digest))
                })
                .await
                .unwrap_or_else(|e| Some(format!("copy task failed: {e}")));
                progress.inc(1);
                problem
            }
        })
        .buffer_unordered(args.jobs.max(1))
        .filter_map(|p| async move { p })
        .collect()
        .await;
    progress.finish_and_clear();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("berth restore: {p}");
        }
        anyhow::bail!(
            "{} object(s) of the backup are damaged or missing; {} is incomplete: do not start berth on it (remove it, and restore from another backup)",
            problems.len(),
            args.data_dir.display()
        );
    }
    // The metadata goes in last, so a data directory with a berth.db holds every object it
    // names, durably (the objects were not synced one by one).
    objects::sync_filesystem(&args.data_dir)?;
    let db = args.data_dir.join(SNAPSHOT_FILE);
    let partial = args.data_dir.join(".berth.db.partial");
    std::fs::copy(args.from.join(SNAPSHOT_FILE), &partial).context("copying the metadata snapshot")?;
    std::fs::File::open(&partial).and_then(|f| f.sync_all()).context("syncing the metadata")?;
    std::fs::rename(&partial, &db).context("renaming the metadata into place")?;
    // The restored directory holds its root key where `berth serve` looks for it, as the
    // backed-up one did (unless the key comes from BERTH_ROOT_KEY, which stays the operator's).
    install_root_key(key_file.as_deref(), &args.data_dir)?;
    sync_dir(&args.data_dir)?;

    let report = fsck(&args.data_dir, &crate::storage::StorageArgs::default(), sealed).await?;
    println!("{}", serde_json::json!({ "restored_objects": list.len(), "snapshot_millis": manifest.snapshot_millis, "fsck": report }));
    Ok(fsck_exit(&report))
}

/// The root key the restored objects open with: `--root-key-file`, else the backup's own copy,
/// else BERTH_ROOT_KEY. Checked before anything is written: encrypted blobs restored without
/// their key are lost.
fn root_key_for(args: &RestoreArgs, from: &Path, manifest: &super::Manifest, sealed: bool) -> anyhow::Result<Option<PathBuf>> {
    let key_in_backup = from.join(ROOT_KEY_FILE);
    let key_in_backup = (manifest.root_key_included && key_in_backup.is_file()).then_some(key_in_backup);
    let key_file = args.root_key_file.clone().or(key_in_backup);
    if sealed && std::env::var_os("BERTH_ROOT_KEY").is_none() && !key_file.as_ref().is_some_and(|k| k.is_file()) {
        anyhow::bail!(
            "the backup holds encrypted blobs and not the root key they open with: pass --root-key-file (or set BERTH_ROOT_KEY) with the backed-up berth's root key"
        );
    }
    Ok(key_file)
}

/// The key where `berth serve` looks for it in `dir` (unless it comes from BERTH_ROOT_KEY, which
/// stays the operator's).
fn install_root_key(key_file: Option<&Path>, dir: &Path) -> anyhow::Result<()> {
    if let (Some(key), None) = (key_file, std::env::var_os("BERTH_ROOT_KEY")) {
        use std::os::unix::fs::PermissionsExt;
        let target = dir.join(ROOT_KEY_FILE);
        std::fs::copy(key, &target).with_context(|| format!("copying the root key {}", key.display()))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).context("protecting the root key")?;
    }
    Ok(())
}

/// `berth fsck` of the restored registry, opened as a node opens it with `node_dir` as its data
/// directory.
async fn fsck(node_dir: &Path, storage: &crate::storage::StorageArgs, sealed: bool) -> anyhow::Result<berth_core::fsck::FsckReport> {
    let data = crate::datadir::DataDir::open(node_dir, storage, RegistryConfig::default()).await?;
    if let Err(e) = crate::root_key::install_existing(&data.registry, node_dir, None) {
        if sealed {
            return Err(e);
        }
        eprintln!("berth restore: no root key ({e:#}); the backup holds no encrypted blob, so none is needed to check it");
    }
    Ok(data.registry.fsck().await?)
}

fn fsck_exit(report: &berth_core::fsck::FsckReport) -> ExitCode {
    if report.ok() {
        return ExitCode::SUCCESS;
    }
    eprintln!("berth restore: fsck found problems in the restored data (listed above)");
    ExitCode::from(2)
}

/// A backup into a cluster whose database holds no registry yet.
async fn restore_cluster(args: RestoreArgs, pg_url: String) -> anyhow::Result<ExitCode> {
    let download;
    let from = match Bucket::for_location(&args.from, &args.bucket)? {
        Some(bucket) => {
            download = Download::into_temp(&bucket, &std::env::temp_dir()).await?;
            download.dir.clone()
        }
        None => args.from.clone(),
    };
    let to = crate::storage::StorageArgs {
        metadata: Some(pg_url.clone()),
        blobs: args.blobs.clone(),
        s3_endpoint: args.bucket.s3_endpoint.clone(),
        s3_region: args.bucket.s3_region.clone(),
        s3_access_key_id: args.bucket.s3_access_key_id.clone(),
        s3_secret_access_key: args.bucket.s3_secret_access_key.clone(),
        s3_path_style: args.bucket.s3_path_style,
        ..Default::default()
    };
    crate::migrate::check_destination(&from, &to)?;
    if berth_postgres::import::holds_registry(&pg_url).await.context("looking into the destination database")? {
        anyhow::bail!(
            "refusing to restore into {}: its database holds a registry already (repositories or blobs); restore into a new, empty database",
            to.describe()
        );
    }
    // The whole backup is re-read first: a damaged backup writes nothing into the cluster.
    let checked = super::check_backup(&from).await?;
    if !checked.problems.is_empty() {
        for p in &checked.problems {
            eprintln!("berth restore: {p}");
        }
        anyhow::bail!(
            "{} object(s) of the backup are damaged or missing; nothing was written to {}",
            checked.problems.len(),
            to.describe()
        );
    }
    let sealed = objects::recorded(&from.join(SNAPSHOT_FILE)).await?.iter().any(|o| !o.scope.is_empty());
    let key_file = root_key_for(&args, &from, &checked.manifest, sealed)?;

    let transfer = crate::migrate::Transfer { verify: false, dry_run: false, jobs: args.jobs.max(1) };
    let (copied, summary) = crate::migrate::transfer(&from, &to, &pg_url, &transfer).await?;
    if !copied {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        anyhow::bail!(
            "the copy into {} did not complete (see above); drop the database and bucket prefix and restore again",
            to.describe()
        );
    }
    // Checked as a node sees it, from a scratch node directory that holds only the key.
    let node_dir = std::env::temp_dir().join(format!(".berth-restore-node-{}-{}", std::process::id(), super::now_millis()));
    std::fs::create_dir_all(&node_dir).with_context(|| format!("creating {}", node_dir.display()))?;
    let report = async {
        install_root_key(key_file.as_deref(), &node_dir)?;
        fsck(&node_dir, &to, sealed).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&node_dir);
    let report = report?;
    println!(
        "{}",
        serde_json::json!({
            "restored_objects": checked.objects,
            "snapshot_millis": checked.manifest.snapshot_millis,
            "copy": summary,
            "fsck": report,
        })
    );
    Ok(fsck_exit(&report))
}
