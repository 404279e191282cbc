//! Figures operators alert on, read at each scrape: the build, the start time, the data
//! directory's disk, whether each backend answers, the token signing key's age against its
//! rotation period, the runs of scheduled tasks (GC, lifecycle, scrub, backup) and the scheduled
//! backups. Labels are closed sets: task names berth starts, backend names, results.

use std::sync::{Arc, OnceLock};

use berth_core::Registry;
use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry as PromRegistry};

use crate::ops::OpsState;

pub(crate) struct OpsMetrics {
    state: OnceLock<Arc<OpsState>>,
    build_info: IntGaugeVec,
    start_time: Gauge,
    draining: IntGauge,
    disk_free: IntGauge,
    disk_size: IntGauge,
    backend_up: IntGaugeVec,
    key_age: IntGauge,
    scan_queue: IntGauge,
    key_rotation: IntGauge,
    task_runs: IntCounterVec,
    task_in_progress: IntGaugeVec,
    task_last_success: GaugeVec,
    backup_runs: IntCounterVec,
    backup_last_success: Gauge,
    backup_duration: Gauge,
    backup_copied: IntCounter,
    backup_interval: IntGauge,
    /// Two scrapes at once would both add the same difference.
    updating: tokio::sync::Mutex<()>,
}

impl OpsMetrics {
    pub(crate) fn new(registry: &PromRegistry) -> prometheus::Result<Self> {
        let m = OpsMetrics {
            state: OnceLock::new(),
            build_info: IntGaugeVec::new(Opts::new("berth_build_info", "Always 1; the version label is berth's"), &["version"])?,
            start_time: Gauge::new("berth_start_time_seconds", "Unix time the server started")?,
            draining: IntGauge::new("berth_draining", "1 while shutting down (health answers 503)")?,
            disk_free: IntGauge::new(
                "berth_data_dir_free_bytes",
                "Free bytes on the data directory's filesystem (for an unprivileged writer)",
            )?,
            disk_size: IntGauge::new("berth_data_dir_size_bytes", "Size in bytes of the data directory's filesystem")?,
            backend_up: IntGaugeVec::new(
                Opts::new("berth_backend_up", "1 when the backend answered a probe at this scrape: metadata (database) or blobs"),
                &["backend"],
            )?,
            key_age: IntGauge::new("berth_signing_key_age_seconds", "Age of the key new registry tokens are signed with")?,
            scan_queue: IntGauge::new("berth_scan_queue_depth", "Image scans waiting or running (the scan jobs in the outbox)")?,
            key_rotation: IntGauge::new(
                "berth_signing_key_rotation_period_seconds",
                "The signing key's rotation period (--signing-key-rotation-days)",
            )?,
            task_runs: IntCounterVec::new(
                Opts::new("berth_task_runs_total", "Runs of scheduled background tasks (gc, lifecycle, scrub, backup) by result"),
                &["task", "result"],
            )?,
            task_in_progress: IntGaugeVec::new(Opts::new("berth_task_runs_in_progress", "Runs of the task under way now"), &["task"])?,
            task_last_success: GaugeVec::new(
                Opts::new("berth_task_last_success_timestamp_seconds", "Unix time the task's latest successful run ended"),
                &["task"],
            )?,
            backup_runs: IntCounterVec::new(
                Opts::new("berth_backup_runs_total", "Scheduled backups by result (elsewhere: another node of the cluster took it)"),
                &["result"],
            )?,
            backup_last_success: Gauge::new(
                "berth_backup_last_success_timestamp_seconds",
                "Unix time the latest successful scheduled backup ended (0: none yet)",
            )?,
            backup_duration: Gauge::new("berth_backup_last_duration_seconds", "How long the latest scheduled backup took")?,
            backup_copied: IntCounter::new("berth_backup_copied_bytes_total", "Bytes scheduled backups copied (not hard-linked)")?,
            backup_interval: IntGauge::new("berth_backup_interval_seconds", "Seconds between scheduled backups (0: not scheduled)")?,
            updating: tokio::sync::Mutex::new(()),
        };
        registry.register(Box::new(m.build_info.clone()))?;
        for g in [&m.start_time, &m.backup_last_success, &m.backup_duration] {
            registry.register(Box::new(g.clone()))?;
        }
        for g in [&m.draining, &m.disk_free, &m.disk_size, &m.key_age, &m.scan_queue, &m.key_rotation, &m.backup_interval] {
            registry.register(Box::new(g.clone()))?;
        }
        registry.register(Box::new(m.backend_up.clone()))?;
        registry.register(Box::new(m.task_runs.clone()))?;
        registry.register(Box::new(m.task_in_progress.clone()))?;
        registry.register(Box::new(m.task_last_success.clone()))?;
        registry.register(Box::new(m.backup_runs.clone()))?;
        registry.register(Box::new(m.backup_copied.clone()))?;
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m.backup_runs.with_label_values(&["elsewhere"]);
        for result in ["success", "failure"] {
            m.backup_runs.with_label_values(&[result]);
            // Zero series from the start, so a rate over them is defined before the first run.
            for task in crate::status::SCHEDULED {
                m.task_runs.with_label_values(&[task, result]);
            }
        }
        Ok(m)
    }

    /// The server's own state, given once `serve` has it.
    pub(crate) fn attach(&self, state: Arc<OpsState>) {
        let _ = self.state.set(state);
    }

    pub(crate) async fn update(&self, registry: &Registry) {
        let _one_at_a_time = self.updating.lock().await;
        let health = registry.probe_backends().await;
        self.backend_up.with_label_values(&["metadata"]).set(i64::from(health.metadata));
        self.backend_up.with_label_values(&["blobs"]).set(i64::from(health.blobs));
        // A store outage leaves the last depth in place rather than failing the scrape.
        if let Ok(counts) = registry.job_counts().await {
            let queued: u64 = counts
                .iter()
                .filter(|(kind, status, _)| {
                    kind == "scan" && matches!(status, berth_store::JobStatus::Pending | berth_store::JobStatus::Running)
                })
                .map(|(_, _, n)| n)
                .sum();
            self.scan_queue.set(i64::try_from(queued).unwrap_or(i64::MAX));
        }
        for (task, r) in registry.supervisor().runs() {
            for (result, total) in [("success", r.succeeded), ("failure", r.failed)] {
                let c = self.task_runs.with_label_values(&[&task, result]);
                c.inc_by(total.saturating_sub(c.get()));
            }
            self.task_in_progress.with_label_values(&[&task]).set(i64::from(r.in_progress));
            if let Some(at) = r.last_success_millis {
                self.task_last_success.with_label_values(&[&task]).set(at as f64 / 1000.0);
            }
        }
        let Some(state) = self.state.get() else { return };
        self.start_time.set(crate::ops::millis(state.started) as f64 / 1000.0);
        self.draining.set(i64::from(state.draining()));
        if let Ok((free, size)) = crate::ops::disk_space(&state.data_dir) {
            self.disk_free.set(i64::try_from(free).unwrap_or(i64::MAX));
            self.disk_size.set(i64::try_from(size).unwrap_or(i64::MAX));
        }
        self.key_rotation.set(i64::try_from(state.signing_key_rotation().as_secs()).unwrap_or(i64::MAX));
        // A store outage leaves the last age in place rather than failing the scrape.
        if let Ok(Some(created)) = registry.signing_key_created_millis().await {
            let age = (crate::ops::millis(std::time::SystemTime::now()) - created).max(0) / 1000;
            self.key_age.set(age);
        }
        let scheduled = state.args.backup_dir.is_some();
        self.backup_interval.set(if scheduled { i64::try_from(state.args.backup_interval).unwrap_or(i64::MAX) } else { 0 });
        let b = state.backups();
        for (result, total) in [("success", b.succeeded), ("failure", b.failed), ("elsewhere", b.elsewhere)] {
            let c = self.backup_runs.with_label_values(&[result]);
            c.inc_by(total.saturating_sub(c.get()));
        }
        self.backup_last_success.set(b.last_success_millis.map_or(0.0, |m| m as f64 / 1000.0));
        self.backup_duration.set(b.last_duration_seconds);
        self.backup_copied.inc_by(b.copied_bytes_total.saturating_sub(self.backup_copied.get()));
    }
}
