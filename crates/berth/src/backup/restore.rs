//! `berth restore`: a backup into an empty data directory, every object re-hashed on the way,
//! ending with `berth fsck` of the result.

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
    /// The data directory to restore into; it must be empty or missing. (For a cluster,
    /// restore into a directory, then `berth migrate` it into PostgreSQL + S3.)
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
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
    let key_in_backup = args.from.join(ROOT_KEY_FILE);
    let key_in_backup = (manifest.root_key_included && key_in_backup.is_file()).then_some(key_in_backup);
    let key_file = args.root_key_file.clone().or(key_in_backup);
    // Checked before anything is written: encrypted blobs restored without their key are lost.
    if sealed && std::env::var_os("BERTH_ROOT_KEY").is_none() && !key_file.as_ref().is_some_and(|k| k.is_file()) {
        anyhow::bail!(
            "the backup holds encrypted blobs and not the root key they open with: pass --root-key-file (or set BERTH_ROOT_KEY) with the backed-up berth's root key"
        );
    }
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;

    let progress = progress_bar(recorded.len() as u64, "restoring");
    let problems: Vec<String> = futures::stream::iter(recorded)
        .map(|object| {
            let (from, to, list, progress) = (args.from.clone(), args.data_dir.clone(), list.clone(), progress.clone());
            async move {
                let problem = tokio::task::spawn_blocking(move || {
                    // Objects the backup knows to be absent (their key was deleted) stay absent.
                    let entry = list.get(&object.path)?;
                    objects::copy(&from.join(&object.path), &to.join(&object.path), &object, Some(entry))
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
    if let (Some(key), None) = (&key_file, std::env::var_os("BERTH_ROOT_KEY")) {
        use std::os::unix::fs::PermissionsExt;
        let target = args.data_dir.join(ROOT_KEY_FILE);
        std::fs::copy(key, &target).with_context(|| format!("copying the root key {}", key.display()))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).context("protecting the root key")?;
    }
    sync_dir(&args.data_dir)?;

    let data = crate::datadir::DataDir::open(&args.data_dir, &crate::storage::StorageArgs::default(), RegistryConfig::default()).await?;
    if let Err(e) = crate::root_key::install_existing(&data.registry, &args.data_dir, None) {
        if sealed {
            return Err(e);
        }
        eprintln!("berth restore: no root key ({e:#}); the backup holds no encrypted blob, so none is needed to check it");
    }
    let report = data.registry.fsck().await?;
    println!("{}", serde_json::json!({ "restored_objects": list.len(), "snapshot_millis": manifest.snapshot_millis, "fsck": report }));
    if !report.ok() {
        eprintln!("berth restore: fsck found problems in the restored data (listed above)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
