//! Settings for `berth serve`: command line and environment first, then the
//! optional TOML file, then defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize;

use crate::connections::{ConnectionArgs, ConnectionLimits};
use crate::storage::StorageArgs;

#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "BERTH_LISTEN")]
    pub listen: Option<String>,
    /// Directory for blobs and the metadata database.
    #[arg(long, env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file (same keys as the long options, with underscores).
    #[arg(long, env = "BERTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, env = "BERTH_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log lines queued for the log writer thread; beyond it lines are dropped (and counted in
    /// berth_log_lines_dropped_total) rather than making requests wait.
    #[arg(long, env = "BERTH_LOG_BUFFER_LINES")]
    pub log_buffer_lines: Option<usize>,
    /// PEM certificate chain; with --tls-key, serve HTTPS.
    #[arg(long, env = "BERTH_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "BERTH_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Seconds between online garbage collections (0 disables the schedule).
    #[arg(long, env = "BERTH_GC_INTERVAL_SECONDS")]
    pub gc_interval_seconds: Option<u64>,
    /// Unreferenced blobs and idle uploads younger than this are never collected.
    #[arg(long, env = "BERTH_GC_GRACE_SECONDS")]
    pub gc_grace_seconds: Option<u64>,
    /// Seconds between runs of every repository's lifecycle policy (0 disables the schedule).
    #[arg(long, env = "BERTH_LIFECYCLE_INTERVAL_SECONDS")]
    pub lifecycle_interval_seconds: Option<u64>,
    /// Seconds between background passes that re-hash every stored blob (0 disables them).
    #[arg(long, env = "BERTH_SCRUB_INTERVAL_SECONDS")]
    pub scrub_interval_seconds: Option<u64>,
    /// How fast a scrub pass reads blobs, in MiB per second.
    #[arg(long, env = "BERTH_SCRUB_RATE_MIB")]
    pub scrub_rate_mib: Option<u64>,
    /// Concurrent image scans (scan on push, StartImageScan, continuous rescans).
    #[arg(long, env = "BERTH_SCAN_WORKERS")]
    pub scan_workers: Option<usize>,
    /// Concurrent image copies to replication destinations.
    #[arg(long, env = "BERTH_REPLICATION_WORKERS")]
    pub replication_workers: Option<usize>,
    /// Concurrent webhook deliveries (events to the accounts' webhooks).
    #[arg(long, env = "BERTH_WEBHOOK_WORKERS")]
    pub webhook_workers: Option<usize>,
    /// The first webhook retry's delay in milliseconds (default 1000; tests shorten it).
    #[arg(long, env = "BERTH_WEBHOOK_RETRY_INITIAL_MS", hide = true)]
    pub webhook_retry_initial_ms: Option<u64>,
    /// Seconds between checks for a newly imported vulnerability database (continuous rescans).
    #[arg(long, env = "BERTH_VULNDB_CHECK_SECONDS")]
    pub vulndb_check_seconds: Option<u64>,
    /// Record data events in the audit trail (image and layer reads, layer part uploads:
    /// BatchGetImage, GetDownloadUrlForLayer, BatchCheckLayerAvailability, UploadLayerPart);
    /// management events are always recorded. Off by default: with it, manifest GETs ran at
    /// 0.43x (bench/audit_ab.py), every read being a row in the metadata store.
    #[arg(long, env = "BERTH_AUDIT_DATA_EVENTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub audit_data_events: bool,
    /// Days audit records are kept (CloudTrail's event history keeps 90); 0 keeps them.
    #[arg(long, env = "BERTH_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u32,
    /// The root key file (32 bytes) every KMS key is wrapped under; created (mode 0600) on first
    /// start when absent. Default: <data-dir>/root.key. Every node of a cluster needs the same
    /// key: this file, or BERTH_ROOT_KEY (64 hex digits), which takes precedence. Back it up:
    /// without it, encrypted data cannot be read.
    #[arg(long, env = "BERTH_ROOT_KEY_FILE")]
    pub root_key_file: Option<PathBuf>,
    /// Store AES256 repositories' new blobs in clear, leaving their encryption to the storage
    /// underneath (an encrypted disk, or the bucket's SSE-S3), as AWS leaves AES256 to S3.
    /// Only with such storage. KMS and KMS_DSSE repositories are always encrypted by berth;
    /// `berth encrypt` seals what was stored in clear once this is off again.
    #[arg(long, env = "BERTH_AES256_BY_STORAGE")]
    pub aes256_by_storage: bool,
    /// The host public (ECR Public) repositories are served on, as `<host>/<alias>/<name>`
    /// (public.ecr.aws's role). Default: any host, where an alias path names an existing public
    /// repository.
    #[arg(long, env = "BERTH_PUBLIC_REGISTRY_HOST")]
    pub public_registry_host: Option<String>,
    /// Image pulls per second of public repositories without credentials, per source address
    /// (ECR Public's quota: 1; 0: unlimited), with bursts of --anonymous-pull-burst.
    #[arg(long, env = "BERTH_ANONYMOUS_PULL_RATE")]
    pub anonymous_pull_rate: Option<f64>,
    #[arg(long, env = "BERTH_ANONYMOUS_PULL_BURST")]
    pub anonymous_pull_burst: Option<f64>,
    /// Image pulls per second of public repositories with credentials, per principal (default
    /// 10; 0: unlimited), with bursts of --authenticated-pull-burst.
    #[arg(long, env = "BERTH_AUTHENTICATED_PULL_RATE")]
    pub authenticated_pull_rate: Option<f64>,
    #[arg(long, env = "BERTH_AUTHENTICATED_PULL_BURST")]
    pub authenticated_pull_burst: Option<f64>,
    /// AWS API calls (ECR, ECR Public, KMS, STS) per second per principal, answered
    /// ThrottlingException beyond it (default 0: unlimited), with bursts of --api-burst.
    #[arg(long, env = "BERTH_API_RATE_LIMIT")]
    pub api_rate_limit: Option<f64>,
    #[arg(long, env = "BERTH_API_BURST")]
    pub api_burst: Option<f64>,
    /// Pull-through cache rules may name plain-HTTP upstream registries (off: https only).
    #[arg(long, env = "BERTH_ALLOW_INSECURE_UPSTREAMS")]
    pub allow_insecure_upstreams: bool,
    /// Seconds a pulled-through tag is served before it is re-checked against its upstream
    /// (ECR's rule: 24 hours).
    #[arg(long, env = "BERTH_PULL_THROUGH_REFRESH_SECONDS")]
    pub pull_through_refresh_seconds: Option<u64>,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub ops: crate::ops::OpsArgs,
}

/// The default registry and its admin.
#[derive(clap::Args, Debug, Default)]
pub struct IdentityArgs {
    /// The default account (12-digit registry id).
    #[arg(long, env = "BERTH_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// The default region.
    #[arg(long, env = "BERTH_REGION")]
    pub region: Option<String>,
    /// Admin access key id to ensure at start (with --admin-secret-access-key); otherwise one is generated on first start.
    #[arg(long, env = "BERTH_ADMIN_ACCESS_KEY_ID", hide_env_values = true)]
    pub admin_access_key_id: Option<String>,
    #[arg(long, env = "BERTH_ADMIN_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub admin_secret_access_key: Option<String>,
    /// Registry host names, e.g. `{account}.dkr.ecr.{region}.example.com:5000` (default: the listen address).
    #[arg(long, env = "BERTH_REGISTRY_HOST")]
    pub registry_host: Option<String>,
    /// Refuse pushes to repositories that were not created first (ECR's behaviour).
    #[arg(long, env = "BERTH_NO_CREATE_ON_PUSH")]
    pub no_create_on_push: bool,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    root_key_file: Option<PathBuf>,
    aes256_by_storage: Option<bool>,
    public_registry_host: Option<String>,
    anonymous_pull_rate: Option<f64>,
    anonymous_pull_burst: Option<f64>,
    authenticated_pull_rate: Option<f64>,
    authenticated_pull_burst: Option<f64>,
    api_rate_limit: Option<f64>,
    api_burst: Option<f64>,
    account_id: Option<String>,
    region: Option<String>,
    admin_access_key_id: Option<String>,
    admin_secret_access_key: Option<String>,
    registry_host: Option<String>,
    create_repository_on_push: Option<bool>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    log_format: Option<String>,
    log_buffer_lines: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    gc_interval_seconds: Option<u64>,
    gc_grace_seconds: Option<u64>,
    lifecycle_interval_seconds: Option<u64>,
    scrub_interval_seconds: Option<u64>,
    scrub_rate_mib: Option<u64>,
    scan_workers: Option<usize>,
    replication_workers: Option<usize>,
    webhook_workers: Option<usize>,
    vulndb_check_seconds: Option<u64>,
    #[serde(flatten)]
    storage: StorageArgs,
    #[serde(flatten)]
    connections: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub log_buffer_lines: usize,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub gc_interval_seconds: u64,
    pub gc_grace_seconds: u64,
    pub lifecycle_interval_seconds: u64,
    pub scrub_interval_seconds: u64,
    pub scrub_rate_mib: u64,
    pub scan_workers: usize,
    pub replication_workers: usize,
    pub webhook_workers: usize,
    pub webhook_retry_initial: std::time::Duration,
    pub vulndb_check_seconds: u64,
    pub audit: berth_core::audit::AuditSettings,
    pub root_key_file: PathBuf,
    pub aes256_by_storage: bool,
    pub public_registry_host: Option<String>,
    pub anonymous_pulls: Option<berth_core::rate_limit::Rate>,
    pub authenticated_pulls: Option<berth_core::rate_limit::Rate>,
    pub api_calls: Option<berth_core::rate_limit::Rate>,
    pub allow_insecure_upstreams: bool,
    pub pull_through_refresh_seconds: u64,
    pub account_id: String,
    pub region: String,
    pub admin_key: Option<(String, String)>,
    pub registry_host: Option<String>,
    pub create_repository_on_push: bool,
    pub storage: StorageArgs,
    pub connections: ConnectionLimits,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
pub const DEFAULT_DATA_DIR: &str = "./berth-data";
pub const DEFAULT_ACCOUNT: &str = "000000000000";
pub const DEFAULT_REGION: &str = "us-east-1";

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file: FileConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let listen = self.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen.parse().with_context(|| format!("listen address {listen:?} is not HOST:PORT"))?;
        let log_format = match self.log_format.or(file.log_format).as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => anyhow::bail!("log format {other:?} is not text or json"),
        };
        let tls = match (self.tls_cert.or(file.tls_cert), self.tls_key.or(file.tls_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => anyhow::bail!("TLS needs both --tls-cert and --tls-key"),
        };
        let account_id = self.identity.account_id.or(file.account_id).unwrap_or_else(|| DEFAULT_ACCOUNT.to_string());
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            anyhow::bail!("account id {account_id:?} is not a 12-digit number");
        }
        let admin_key = match (
            self.identity.admin_access_key_id.or(file.admin_access_key_id),
            self.identity.admin_secret_access_key.or(file.admin_secret_access_key),
        ) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => anyhow::bail!("the admin access key needs both an id and a secret"),
        };
        Ok(Settings {
            account_id,
            region: self.identity.region.or(file.region).unwrap_or_else(|| DEFAULT_REGION.to_string()),
            admin_key,
            registry_host: self.identity.registry_host.or(file.registry_host),
            create_repository_on_push: !self.identity.no_create_on_push && file.create_repository_on_push.unwrap_or(true),
            listen,
            aes256_by_storage: self.aes256_by_storage || file.aes256_by_storage.unwrap_or(false),
            public_registry_host: self.public_registry_host.or(file.public_registry_host),
            anonymous_pulls: berth_core::rate_limit::Rate::new(
                self.anonymous_pull_rate.or(file.anonymous_pull_rate).unwrap_or(1.0),
                self.anonymous_pull_burst.or(file.anonymous_pull_burst).unwrap_or(20.0),
            ),
            authenticated_pulls: berth_core::rate_limit::Rate::new(
                self.authenticated_pull_rate.or(file.authenticated_pull_rate).unwrap_or(10.0),
                self.authenticated_pull_burst.or(file.authenticated_pull_burst).unwrap_or(100.0),
            ),
            api_calls: berth_core::rate_limit::Rate::new(
                self.api_rate_limit.or(file.api_rate_limit).unwrap_or(0.0),
                self.api_burst.or(file.api_burst).unwrap_or(50.0),
            ),
            allow_insecure_upstreams: self.allow_insecure_upstreams,
            pull_through_refresh_seconds: self.pull_through_refresh_seconds.unwrap_or(24 * 3600),
            root_key_file: match self.root_key_file.or(file.root_key_file) {
                Some(path) => path,
                None => self.data_dir.clone().or(file.data_dir.clone()).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)).join("root.key"),
            },
            data_dir: self.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            log_format,
            log_buffer_lines: match self.log_buffer_lines.or(file.log_buffer_lines).unwrap_or(crate::observe::DEFAULT_LOG_BUFFER_LINES) {
                0 => anyhow::bail!("--log-buffer-lines must be at least 1"),
                n => n,
            },
            tls,
            gc_interval_seconds: self.gc_interval_seconds.or(file.gc_interval_seconds).unwrap_or(3600),
            gc_grace_seconds: self.gc_grace_seconds.or(file.gc_grace_seconds).unwrap_or(24 * 3600),
            lifecycle_interval_seconds: self.lifecycle_interval_seconds.or(file.lifecycle_interval_seconds).unwrap_or(3600),
            scrub_interval_seconds: self.scrub_interval_seconds.or(file.scrub_interval_seconds).unwrap_or(24 * 3600),
            scrub_rate_mib: match self.scrub_rate_mib.or(file.scrub_rate_mib).unwrap_or(16) {
                0 => anyhow::bail!("the scrub rate must be at least 1 MiB/s (disable scrubbing with --scrub-interval-seconds 0)"),
                n => n,
            },
            scan_workers: self.scan_workers.or(file.scan_workers).unwrap_or(2),
            replication_workers: self.replication_workers.or(file.replication_workers).unwrap_or(4),
            webhook_workers: self.webhook_workers.or(file.webhook_workers).unwrap_or(2),
            webhook_retry_initial: std::time::Duration::from_millis(self.webhook_retry_initial_ms.unwrap_or(1000).max(1)),
            vulndb_check_seconds: self.vulndb_check_seconds.or(file.vulndb_check_seconds).unwrap_or(30),
            audit: berth_core::audit::AuditSettings {
                data_events: self.audit_data_events,
                retention_days: self.audit_retention_days,
                ..Default::default()
            },
            storage: self.storage.or(file.storage),
            connections: self.connections.or(file.connections).resolve()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_beats_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:6000\"\ndata_dir = \"/tmp/x\"\ngc_grace_seconds = 60\n").unwrap();
        let s = ServeArgs { config: Some(path.clone()), data_dir: Some("/tmp/y".into()), ..Default::default() }.resolve().unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:6000");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/y"));
        assert_eq!(s.gc_grace_seconds, 60);
        assert_eq!(s.gc_interval_seconds, 3600);
        std::fs::write(&path, "bogus = 1\n").unwrap();
        assert!(ServeArgs { config: Some(path), ..Default::default() }.resolve().is_err());
        let d = ServeArgs::default().resolve().unwrap();
        assert_eq!(d.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(d.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }
}
