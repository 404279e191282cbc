//! `berth audit`: verify the audit trail's hash chain, export records as JSON Lines.
//! Both open the data directory as the other offline commands do, so on the embedded backend
//! berth must be stopped (the directory lock); on a cluster's PostgreSQL they run beside the nodes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_core::RegistryConfig;

use crate::config::DEFAULT_DATA_DIR;
use crate::datadir::DataDir;

#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the hash chain; report every record removed, altered or moved, with its eventID
    /// (exit status 2 on any finding).
    Verify(VerifyArgs),
    /// Print the records whose event time is in [--since, --until) as JSON Lines (one
    /// CloudTrail record per line), in the order they were written.
    Export(ExportArgs),
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    /// RFC 3339 time, e.g. 2026-12-01T00:00:00Z.
    #[arg(long)]
    pub since: String,
    /// RFC 3339 time (exclusive); default: now.
    #[arg(long)]
    pub until: Option<String>,
}

fn millis(text: &str) -> anyhow::Result<i64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Export(args) => export(args).await,
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let data = DataDir::open(&args.data_dir, &args.storage, RegistryConfig::default()).await?;
    // With the root key the signed hourly digests are checked too (a rewritten chain); without
    // it the report says they were not.
    let _ = crate::root_key::install_existing(&data.registry, &args.data_dir, None);
    let report = data.registry.verify_audit_trail().await?;
    match &report.digests_unchecked {
        None => eprintln!("hourly digests: {} checked", report.digests_checked),
        Some(why) => eprintln!("hourly digests NOT checked: {why}"),
    }
    let range = match (report.first_seq, report.last_seq) {
        (Some(a), Some(b)) => format!(" (records {a} to {b})"),
        _ => String::new(),
    };
    if report.findings.is_empty() {
        println!("audit trail intact: {} record(s){range}", report.records);
        return Ok(ExitCode::SUCCESS);
    }
    println!("audit trail NOT intact: {} finding(s) in {} record(s){range}", report.findings.len(), report.records);
    for f in &report.findings {
        println!("  {f}");
    }
    Ok(ExitCode::from(2))
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let since = millis(&args.since)?;
    let until = args.until.as_deref().map(millis).transpose()?;
    let data = DataDir::open(&args.data_dir, &args.storage, RegistryConfig::default()).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut after, mut n) = (0, 0u64);
    loop {
        let (records, next) = data.registry.export_audit_page(after, since, until).await?;
        for r in &records {
            writeln!(out, "{r}")?;
        }
        n += records.len() as u64;
        match next {
            Some(seq) => after = seq,
            None => break,
        }
    }
    out.flush()?;
    eprintln!("berth audit export: {n} record(s)");
    Ok(ExitCode::SUCCESS)
}
