//! Offline maintenance commands on a stopped berth's data directory.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_core::{GcOptions, RegistryConfig, RegistryRef};

use crate::config::DEFAULT_DATA_DIR;
use crate::datadir::DataDir;

#[derive(clap::Args, Debug)]
pub struct GcArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    /// Report what would be deleted without deleting anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Only collect what has been unreferenced for at least this long.
    #[arg(long, default_value_t = 24 * 3600)]
    pub grace_seconds: u64,
}

#[derive(clap::Args, Debug)]
pub struct FsckArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    /// The root key encrypted blobs are opened with (BERTH_ROOT_KEY, if set, wins) [default: <data-dir>/root.key]
    #[arg(long)]
    pub root_key_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct EncryptArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    /// The root key (BERTH_ROOT_KEY, if set, wins) [default: <data-dir>/root.key]
    #[arg(long)]
    pub root_key_file: Option<PathBuf>,
}

pub async fn gc(args: GcArgs) -> anyhow::Result<ExitCode> {
    let data = DataDir::open(&args.data_dir, &args.storage, RegistryConfig::default()).await?;
    // With the root key, GC also reclaims the objects of deleted KMS keys; without it, not.
    if let Err(e) = crate::root_key::install_existing(&data.registry, &args.data_dir, None) {
        tracing::warn!(error = %e, "no root key: objects of deleted KMS keys are left for a run that has it");
    }
    let grace_millis = Some((args.grace_seconds as i64).saturating_mul(1000));
    let report = data.registry.collect_garbage(GcOptions { dry_run: args.dry_run, grace_millis }).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

pub async fn fsck(args: FsckArgs) -> anyhow::Result<ExitCode> {
    let data = DataDir::open(&args.data_dir, &args.storage, RegistryConfig::default()).await?;
    crate::root_key::install_existing(&data.registry, &args.data_dir, args.root_key_file.as_deref())?;
    let report = data.registry.fsck().await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

pub async fn encrypt(args: EncryptArgs) -> anyhow::Result<ExitCode> {
    let data = DataDir::open(&args.data_dir, &args.storage, RegistryConfig::default()).await?;
    crate::root_key::install_existing(&data.registry, &args.data_dir, args.root_key_file.as_deref())?;
    let (count, bytes) = data.registry.unsealed_totals().await?;
    eprintln!("berth encrypt: {count} blob(s) in clear to seal ({bytes} bytes)");
    let pb = indicatif::ProgressBar::new(count);
    if let Ok(style) = indicatif::ProgressStyle::with_template("encrypting {bar:40} {pos}/{len} blobs, {msg} eta {eta}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    let progress = {
        let pb = pb.clone();
        move |p: berth_core::EncryptProgress| {
            pb.set_position(p.done);
            pb.set_message(format!("{} MiB", p.bytes >> 20));
        }
    };
    let report = data.registry.encrypt_existing(&progress).await?;
    pb.finish_and_clear();
    for why in &report.failed {
        eprintln!("  FAILED {why}");
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

#[derive(clap::Subcommand, Debug)]
pub enum LifecycleCommand {
    /// Apply every repository's lifecycle policy (or one repository's) and print what was
    /// expired or archived.
    Run(LifecycleRunArgs),
}

#[derive(clap::Args, Debug)]
pub struct LifecycleRunArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    /// Only this repository (with --account and --region, else the defaults).
    #[arg(long)]
    pub repository: Option<String>,
    #[arg(long, env = "BERTH_ACCOUNT_ID", default_value = crate::config::DEFAULT_ACCOUNT)]
    pub account: String,
    #[arg(long, env = "BERTH_REGION", default_value = crate::config::DEFAULT_REGION)]
    pub region: String,
    /// Report what would be expired or archived without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn lifecycle(cmd: LifecycleCommand) -> anyhow::Result<ExitCode> {
    let LifecycleCommand::Run(args) = cmd;
    let data = DataDir::open(&args.data_dir, &args.storage, RegistryConfig::default()).await?;
    let only = match &args.repository {
        Some(name) => {
            let name = berth_core::RepositoryName::parse(name).map_err(|e| anyhow::anyhow!("{e}"))?;
            Some(berth_core::Repo::new(&RegistryRef { account: args.account.clone(), region: args.region.clone() }, name))
        }
        None => None,
    };
    let reports = data.registry.run_lifecycle_policies(only.as_ref(), args.dry_run).await?;
    for r in &reports {
        for a in &r.actions {
            let verb = match (a.action.as_str(), args.dry_run) {
                ("EXPIRE", false) => "expired",
                ("EXPIRE", true) => "would expire",
                (_, false) => "archived",
                (_, true) => "would archive",
            };
            let tags = if a.tags.is_empty() { "<untagged>".to_string() } else { a.tags.join(",") };
            eprintln!("{}/{}: {verb} {} [{tags}] (rule {})", r.account, r.repository, a.digest, a.rule_priority);
        }
    }
    println!("{}", serde_json::to_string_pretty(&reports)?);
    Ok(ExitCode::SUCCESS)
}
