//! `berth`: a self-hosted container registry. Subcommands: `serve`, `gc`, `fsck`, `encrypt`, `lifecycle`, `vulndb`, `admin`,
//! `audit`, `migrate`, `backup`, `restore`, `status`.

mod admin;
mod admin_public;
mod admin_remotes;
mod admin_webhooks;
mod audit;
mod backup;
mod blob_cache_metrics;
mod config;
mod connections;
mod datadir;
mod drain;
mod log_writer;
mod maintenance;
mod migrate;
mod observe;
mod ops;
mod ops_metrics;
mod replication_metrics;
mod root_key;
mod serve;
mod sigv4_client;
mod status;
mod storage;
mod vulndb;
mod webhook_metrics;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth", version, about = "A container registry that is Amazon ECR on your own machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (OCI Distribution API on /v2/).
    Serve(Box<config::ServeArgs>),
    /// Delete blobs no manifest references and abandoned uploads (berth must be stopped;
    /// a running berth collects online on its own schedule and at POST /_berth/gc).
    Gc(maintenance::GcArgs),
    /// Check that every blob hashes to its name (encrypted ones are decrypted first) and
    /// every manifest reference resolves.
    Fsck(maintenance::FsckArgs),
    /// Encrypt blobs stored in clear before encryption at rest, under each repository's key
    /// (resumable; with berth stopped on the embedded backend, or beside running nodes of a
    /// cluster).
    Encrypt(maintenance::EncryptArgs),
    /// Apply lifecycle policies now (berth must be stopped; a running berth applies them on
    /// its own schedule and at POST /_berth/lifecycle).
    #[command(subcommand)]
    Lifecycle(maintenance::LifecycleCommand),
    /// Manage the offline vulnerability database (OSV) that image scans match against.
    #[command(subcommand)]
    Vulndb(vulndb::VulnDbCommand),
    /// Manage accounts, users, access keys and policies.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Verify the audit trail's hash chain, or export its records as JSON Lines.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Copy an embedded install (SQLite + a data directory) into PostgreSQL + S3 (or another
    /// directory), resumably, re-checking every digest; then point the nodes at the copy.
    Migrate(migrate::MigrateArgs),
    /// Back up an embedded berth (SQLite + filesystem) while it serves: a point-in-time snapshot
    /// of the metadata and the blobs it names, incremental into the same directory; `backup
    /// verify --from DIR` checks one.
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty data directory, re-hashing every blob, then fsck it.
    Restore(backup::RestoreArgs),
    /// Ask a running server what it is doing: version, uptime, storage, backends and each
    /// background worker's state, last run and last error (needs `berth:GetStatus`).
    Status(status::StatusArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Gc(args) => maintenance::gc(args).await,
            Command::Fsck(args) => maintenance::fsck(args).await,
            Command::Encrypt(args) => maintenance::encrypt(args).await,
            Command::Lifecycle(cmd) => maintenance::lifecycle(cmd).await,
            Command::Vulndb(cmd) => vulndb::run(cmd).await,
            Command::Admin(cmd) => admin::run(cmd).await,
            Command::Audit(cmd) => audit::run(cmd).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Backup(args) => backup::run(args).await,
            Command::Restore(args) => backup::restore(args).await,
            Command::Status(args) => status::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
