//! `GET /_berth/status` and `berth status --endpoint URL`: what a running server is doing —
//! version, uptime, storage, backends, and each background worker's state, last run and last
//! error. The endpoint needs a registry token of a principal allowed `berth:GetStatus` (as the
//! other /_berth endpoints need theirs); the command gets one from an access key.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use berth_core::supervisor::{RunRecord, TaskState, TaskStatus};
use berth_core::Registry;
use serde::{Deserialize, Serialize};

use crate::ops::{BackupStats, OpsState};

/// Tasks that work in runs on a schedule: between runs they are idle.
pub(crate) const SCHEDULED: &[&str] = &["gc", "lifecycle", "scrub", "backup"];

#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub node: String,
    pub started_millis: i64,
    pub uptime_seconds: u64,
    pub draining: bool,
    pub storage: Storage,
    pub backends: BTreeMap<String, String>,
    pub signing_key_age_seconds: Option<i64>,
    pub signing_key_rotation_seconds: u64,
    pub workers: Vec<Worker>,
    pub backups: Option<Backups>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Storage {
    pub data_dir: String,
    /// Bytes the data directory's files take.
    pub used_bytes: u64,
    pub free_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Worker {
    pub name: String,
    /// running (working now, or a worker that is always at work), idle (a scheduled task
    /// between runs), restarting (waiting out its backoff after a failure), stopped.
    pub state: String,
    /// Tasks of this name (scan workers run several).
    pub instances: usize,
    pub restarts: u64,
    pub last_run_started_millis: Option<i64>,
    pub last_run_finished_millis: Option<i64>,
    pub last_success_millis: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Backups {
    pub dir: String,
    pub interval_seconds: u64,
    pub keep: usize,
    pub succeeded: u64,
    pub failed: u64,
    /// Periods another node of the cluster took the backup of.
    pub taken_elsewhere: u64,
    pub last_success_millis: Option<i64>,
    pub last_duration_seconds: f64,
    pub last_generation: Option<String>,
    pub last_error: Option<String>,
}

pub async fn collect(registry: &Registry, ops: &OpsState) -> Status {
    let (free, total) = match crate::ops::disk_space(&ops.data_dir) {
        Ok((f, t)) => (Some(f), Some(t)),
        Err(_) => (None, None),
    };
    let dir = ops.data_dir.clone();
    let used_bytes = tokio::task::spawn_blocking(move || crate::ops::used_bytes(&dir)).await.unwrap_or(0);
    let health = registry.probe_backends().await;
    let up = |ok: bool| if ok { "up" } else { "unavailable" }.to_string();
    let backends = BTreeMap::from([("metadata".to_string(), up(health.metadata)), ("blobs".to_string(), up(health.blobs))]);
    let key_age = match registry.signing_key_created_millis().await {
        Ok(Some(created)) => Some((crate::ops::millis(std::time::SystemTime::now()) - created).max(0) / 1000),
        _ => None,
    };
    Status {
        version: env!("CARGO_PKG_VERSION").into(),
        node: registry.node_id().to_string(),
        started_millis: crate::ops::millis(ops.started),
        uptime_seconds: ops.uptime().as_secs(),
        draining: ops.draining(),
        storage: Storage { data_dir: ops.data_dir.display().to_string(), used_bytes, free_bytes: free, total_bytes: total },
        backends,
        signing_key_age_seconds: key_age,
        signing_key_rotation_seconds: ops.signing_key_rotation().as_secs(),
        workers: workers(&registry.supervisor().status(), &registry.supervisor().runs()),
        backups: ops.args.backup_dir.as_ref().map(|d| backups(d, &ops.args, ops.backups())),
    }
}

fn backups(dir: &std::path::Path, args: &crate::ops::OpsArgs, b: BackupStats) -> Backups {
    Backups {
        dir: dir.display().to_string(),
        interval_seconds: args.backup_interval,
        keep: args.backup_keep,
        succeeded: b.succeeded,
        failed: b.failed,
        taken_elsewhere: b.elsewhere,
        last_success_millis: b.last_success_millis,
        last_duration_seconds: b.last_duration_seconds,
        last_generation: b.last_generation,
        last_error: b.last_error,
    }
}

/// One row per task name: the supervisor's view (alive, backing off, stopped) joined with
/// what its runs did.
fn workers(tasks: &[TaskStatus], runs: &BTreeMap<String, RunRecord>) -> Vec<Worker> {
    let mut by_name: BTreeMap<&str, Vec<&TaskStatus>> = BTreeMap::new();
    for t in tasks {
        by_name.entry(t.name.as_str()).or_default().push(t);
    }
    by_name
        .into_iter()
        .map(|(name, rows)| {
            let run = runs.get(name).cloned().unwrap_or_default();
            let state = if rows.iter().any(|t| t.state == TaskState::BackingOff) {
                "restarting"
            } else if rows.iter().all(|t| t.state == TaskState::Stopped) {
                "stopped"
            } else if run.in_progress == 0 && SCHEDULED.contains(&name) {
                "idle"
            } else {
                "running"
            };
            let task_error = rows.iter().find_map(|t| t.last_error.clone());
            Worker {
                name: name.to_string(),
                state: state.to_string(),
                instances: rows.len(),
                restarts: rows.iter().map(|t| t.restarts).sum(),
                last_run_started_millis: run.last_started_millis,
                last_run_finished_millis: run.last_finished_millis,
                last_success_millis: run.last_success_millis,
                last_error: run.last_error.or(task_error),
            }
        })
        .collect()
}

// ---- the command ----

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The running server, e.g. http://127.0.0.1:5000.
    #[arg(long, env = "BERTH_ENDPOINT")]
    pub endpoint: String,
    /// A registry token (the password of `aws ecr get-login-password`). Without it, one is
    /// obtained with the access key in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "BERTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The region the access key signs for.
    #[arg(long, env = "AWS_REGION", default_value = crate::config::DEFAULT_REGION)]
    pub region: String,
    /// Print the server's JSON answer as it is.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let base = args.endpoint.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let token = match &args.token {
        Some(t) => t.clone(),
        None => {
            let id = std::env::var("AWS_ACCESS_KEY_ID").context("no --token / BERTH_TOKEN and no AWS_ACCESS_KEY_ID to get one with")?;
            let secret = std::env::var("AWS_SECRET_ACCESS_KEY").context("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")?;
            crate::sigv4_client::registry_password(&http, &base, &id, &secret, &args.region).await?
        }
    };
    let resp = http
        .get(format!("{base}/_berth/status"))
        .basic_auth("AWS", Some(&token))
        .send()
        .await
        .with_context(|| format!("calling {base}/_berth/status"))?;
    let code = resp.status();
    let body = resp.text().await.context("reading the answer")?;
    if !code.is_success() {
        anyhow::bail!("{base}/_berth/status answered {code}: {}", body.trim());
    }
    if args.json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let status: Status = serde_json::from_str(&body).context("parsing the status")?;
    print!("{}", render(&status, crate::ops::millis(std::time::SystemTime::now())));
    Ok(ExitCode::SUCCESS)
}

/// The readable form: a header, then one line per worker.
fn render(s: &Status, now: i64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "berth {} on node {}, up {}{}",
        s.version,
        s.node,
        ago(s.uptime_seconds as i64 * 1000),
        if s.draining { " (DRAINING)" } else { "" }
    );
    let _ = writeln!(
        out,
        "storage  {}: {} used, {} free of {}",
        s.storage.data_dir,
        human(s.storage.used_bytes),
        s.storage.free_bytes.map_or("?".into(), human),
        s.storage.total_bytes.map_or("?".into(), human)
    );
    let backends: Vec<String> = s.backends.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(out, "backends {}", backends.join(", "));
    if let Some(age) = s.signing_key_age_seconds {
        let overdue = if age as u64 > s.signing_key_rotation_seconds { " (OVERDUE for rotation)" } else { "" };
        let _ = writeln!(out, "signing key age {}{overdue}", ago(age * 1000));
    }
    if let Some(b) = &s.backups {
        let last = b.last_success_millis.map_or("never".to_string(), |t| format!("{} ago", ago(now - t)));
        let _ = writeln!(
            out,
            "backups  {} every {}s keep {}: last success {last}, {} ok, {} failed",
            b.dir, b.interval_seconds, b.keep, b.succeeded, b.failed
        );
        if let Some(e) = &b.last_error {
            let _ = writeln!(out, "         last error: {e}");
        }
    }
    let _ = writeln!(out, "\n{:<22} {:<11} {:>4} {:>8}  {:<14} LAST ERROR", "WORKER", "STATE", "N", "RESTARTS", "LAST RUN");
    for w in &s.workers {
        let last = w.last_run_finished_millis.or(w.last_run_started_millis).map_or("-".to_string(), |t| format!("{} ago", ago(now - t)));
        let error: String = w.last_error.as_deref().unwrap_or("-").chars().take(80).collect();
        let _ = writeln!(out, "{:<22} {:<11} {:>4} {:>8}  {:<14} {error}", w.name, w.state, w.instances, w.restarts, last);
    }
    out
}

/// 320.0 KiB, 1.5 GiB.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut unit) = (n as f64, 0);
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// 3d4h, 5h2m, 4m10s, 12s.
fn ago(millis: i64) -> String {
    let s = millis.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, state: TaskState, restarts: u64, err: Option<&str>) -> TaskStatus {
        TaskStatus { name: name.into(), state, restarts, last_error: err.map(str::to_string) }
    }

    #[test]
    fn workers_join_task_states_and_runs() {
        let tasks = [
            task("gc", TaskState::Running, 0, None),
            task("scan_worker", TaskState::Running, 0, None),
            task("scan_worker", TaskState::Running, 1, Some("panicked: x")),
            task("flush_pulls", TaskState::BackingOff, 2, Some("db down")),
            task("backup", TaskState::Running, 0, None),
        ];
        let mut runs = BTreeMap::new();
        runs.insert(
            "gc".to_string(),
            RunRecord { last_finished_millis: Some(5), last_error: Some("lease lost".into()), failed: 1, ..Default::default() },
        );
        runs.insert("backup".to_string(), RunRecord { in_progress: 1, last_started_millis: Some(9), ..Default::default() });
        let w = workers(&tasks, &runs);
        let rows: Vec<_> =
            w.iter().map(|w| (w.name.as_str(), w.state.as_str(), w.instances, w.restarts, w.last_error.as_deref())).collect();
        assert_eq!(
            rows,
            [
                ("backup", "running", 1, 0, None),
                ("flush_pulls", "restarting", 1, 2, Some("db down")),
                ("gc", "idle", 1, 0, Some("lease lost")),
                ("scan_worker", "running", 2, 1, Some("panicked: x")),
            ]
        );
    }

    #[test]
    fn sizes_read_easily() {
        assert_eq!((human(512), human(327_680), human(3 << 30)), ("512 B".into(), "320.0 KiB".into(), "3.0 GiB".into()));
    }

    #[test]
    fn durations_read_easily() {
        assert_eq!(
            (ago(12_000), ago(250_000), ago(7_500_000), ago(100_000_000)),
            ("12s".into(), "4m10s".into(), "2h5m".into(), "1d3h".into())
        );
    }
}
