//! Offline maintenance commands on a stopped berth's data directory.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_core::{GcOptions, RegistryConfig};

use crate::config::DEFAULT_DATA_DIR;
use crate::datadir::DataDir;

#[derive(clap::Args, Debug)]
pub struct GcArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
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
}

pub async fn gc(args: GcArgs) -> anyhow::Result<ExitCode> {
    let data = DataDir::open(&args.data_dir, RegistryConfig::default()).await?;
    let grace_millis = Some((args.grace_seconds as i64).saturating_mul(1000));
    let report = data.registry.collect_garbage(GcOptions { dry_run: args.dry_run, grace_millis }).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

pub async fn fsck(args: FsckArgs) -> anyhow::Result<ExitCode> {
    let data = DataDir::open(&args.data_dir, RegistryConfig::default()).await?;
    let report = data.registry.fsck().await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
