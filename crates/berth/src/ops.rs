//! What `berth serve` knows about itself for operators: its own flags for scheduled backups,
//! draining and key rotation, and the state `/metrics` and `/_berth/status` read (start time,
//! the data directory's disk, the latest scheduled backup, whether it is draining).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// `berth serve` flags of operations (flattened into `ServeArgs`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OpsArgs {
    /// Take scheduled backups into this directory: each run a complete backup in a generation
    /// DIR/<UTC time>/, objects unchanged since the previous generation hard-linked from it.
    /// In a cluster one node takes each backup (a lease); give every node a directory they all
    /// mount.
    #[arg(long, env = "BERTH_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Seconds between scheduled backups (the first starts at once).
    #[arg(long, env = "BERTH_BACKUP_INTERVAL", default_value_t = 86_400)]
    pub backup_interval: u64,
    /// Generations kept (older ones are removed after a successful backup).
    #[arg(long, env = "BERTH_BACKUP_KEEP", default_value_t = 7)]
    pub backup_keep: usize,
    /// Scheduled backups copy at most this many MiB per second (default: unlimited), leaving
    /// the disk to the pushes and pulls this berth serves meanwhile.
    #[arg(long, env = "BERTH_BACKUP_MAX_RATE_MIB")]
    pub backup_max_rate_mib: Option<u64>,
    /// On SIGTERM, answer /health with 503 (draining) for this many seconds while still
    /// serving, so a load balancer stops sending before the listener closes.
    #[arg(long, env = "BERTH_SHUTDOWN_DRAIN_DELAY_SECONDS", default_value_t = 0)]
    pub shutdown_drain_delay_seconds: u64,
    /// Then wait at most this long for requests in flight (pulls, pushes) to finish.
    #[arg(long, env = "BERTH_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
    /// The token signing key's rotation period: /metrics shows it beside the key's age
    /// (`berth admin rotate-signing-key` rotates), for the alert on an overdue rotation.
    #[arg(long, env = "BERTH_SIGNING_KEY_ROTATION_DAYS", default_value_t = 90)]
    pub signing_key_rotation_days: u64,
}

/// The result of the latest scheduled backups.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackupStats {
    pub succeeded: u64,
    pub failed: u64,
    /// Periods whose backup another node of the cluster took (it held the lease).
    pub elsewhere: u64,
    pub last_success_millis: Option<i64>,
    pub last_duration_seconds: f64,
    pub copied_bytes_total: u64,
    pub linked_total: u64,
    pub last_generation: Option<String>,
    pub last_error: Option<String>,
}

pub struct OpsState {
    pub started: SystemTime,
    pub data_dir: PathBuf,
    pub args: OpsArgs,
    pub backups: Mutex<BackupStats>,
    pub drain: Arc<crate::drain::Drain>,
}

impl OpsState {
    pub fn new(data_dir: &Path, args: OpsArgs) -> OpsState {
        OpsState {
            started: SystemTime::now(),
            data_dir: data_dir.to_path_buf(),
            args,
            backups: Mutex::new(BackupStats::default()),
            drain: Default::default(),
        }
    }

    pub fn start_draining(&self) {
        self.drain.start_draining();
    }

    pub fn draining(&self) -> bool {
        self.drain.draining()
    }

    pub fn backups(&self) -> BackupStats {
        self.backups.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed().unwrap_or_default()
    }

    pub fn signing_key_rotation(&self) -> Duration {
        Duration::from_secs(self.args.signing_key_rotation_days.saturating_mul(86_400))
    }
}

/// The filesystem under a directory: (free bytes for an unprivileged writer, total bytes).
pub fn disk_space(dir: &Path) -> std::io::Result<(u64, u64)> {
    let s = rustix::fs::statvfs(dir)?;
    Ok((s.f_bavail.saturating_mul(s.f_frsize), s.f_blocks.saturating_mul(s.f_frsize)))
}

/// Bytes the data directory's files take (blobs, sealed objects, the database), walking it.
pub fn used_bytes(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

pub fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
