//! `berth vulndb import|status`: the offline OSV database scans match against. Import works
//! while berth serves (it only swaps `<data-dir>/vulndb/current`); the server picks the new
//! version up for the next scan and rescans CONTINUOUS_SCAN repositories.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_scan::VulnDb;

use crate::config::DEFAULT_DATA_DIR;

#[derive(clap::Subcommand, Debug)]
pub enum VulnDbCommand {
    /// Import an OSV export (a directory of OSV JSON files, or an osv.dev zip such as
    /// all.zip or Debian.zip) as the new current database.
    Import(ImportArgs),
    /// Show the current database: version, import time, advisories per ecosystem.
    Status(StatusArgs),
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Directory or .zip of OSV JSON advisories.
    pub path: PathBuf,
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

pub fn db_root(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("vulndb")
}

pub async fn run(cmd: VulnDbCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VulnDbCommand::Import(args) => {
            let root = db_root(&args.data_dir);
            let started = std::time::Instant::now();
            let summary = tokio::task::spawn_blocking(move || VulnDb::import(&args.path, &root)).await??;
            eprintln!("imported {} advisories in {:.1}s", summary.advisories, started.elapsed().as_secs_f64());
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(ExitCode::SUCCESS)
        }
        VulnDbCommand::Status(args) => match VulnDb::open(&db_root(&args.data_dir))? {
            Some(db) => {
                println!("{}", serde_json::to_string_pretty(&db.status())?);
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("no vulnerability database imported; run `berth vulndb import PATH`");
                Ok(ExitCode::from(3))
            }
        },
    }
}
