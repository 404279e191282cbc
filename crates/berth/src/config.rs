//! Settings for `berth serve`: command line and environment first, then the
//! optional TOML file, then defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize;

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
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    log_format: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    gc_interval_seconds: Option<u64>,
    gc_grace_seconds: Option<u64>,
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
    pub tls: Option<(PathBuf, PathBuf)>,
    pub gc_interval_seconds: u64,
    pub gc_grace_seconds: u64,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
pub const DEFAULT_DATA_DIR: &str = "./berth-data";

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
        Ok(Settings {
            listen,
            data_dir: self.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            log_format,
            tls,
            gc_interval_seconds: self.gc_interval_seconds.or(file.gc_interval_seconds).unwrap_or(3600),
            gc_grace_seconds: self.gc_grace_seconds.or(file.gc_grace_seconds).unwrap_or(24 * 3600),
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
