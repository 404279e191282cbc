//! Scan on push, manual scans and continuous rescans, natively and offline (`berth-scan`).
//!
//! A push never waits for a scan: the push records an IN_PROGRESS row and enqueues a `scan`
//! job in the durable outbox (berth_store::JobStore); a fixed pool of supervised workers
//! claims jobs (woken in-process at once, polling for jobs other nodes enqueued), reads the layers through the blob store on blocking
//! threads (within `berth_scan::Limits`), matches the inventory against the imported OSV
//! database, stores the findings and attaches the inventory to the image as a CycloneDX SBOM
//! referrer. The vulnerability database is reopened whenever its `current` pointer changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use berth_scan::{Inventory, Layer, Limits, VulnDb};
use berth_store::{ImageScanRow, JobRow, Millis, RepoKey, StorageClass};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{image_id_text, Result};
use crate::images::ImageId;
use crate::names::{Reference, RegistryRef, Repo};
use crate::supervisor::{Restart, TaskResult};
use crate::{media_types, Digest, Registry, RegistryError};

/// ECR's limit: one manual scan per image per 24 hours.
pub const SCAN_INTERVAL_MILLIS: i64 = 24 * 3600 * 1000;
/// The outbox job kind of a scan.
const SCAN_JOB: &str = "scan";
/// How often idle workers look for scans another node enqueued (this node's wake them at once).
const POLL: Duration = Duration::from_secs(10);
/// A claimed scan is this node's for the scan's deadline plus this margin; after that (a node
/// that died mid-scan) another node may take it.
const LEASE_MARGIN: Duration = Duration::from_secs(90);
/// Claims of a scan whose result could not be stored before it is given up on.
const MAX_ATTEMPTS: i64 = 5;
/// The artifact type of the SBOM referrer berth attaches.
pub const SBOM_ARTIFACT_TYPE: &str = "application/vnd.cyclonedx+json";
const EMPTY_CONFIG: &[u8] = b"{}";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Scanning as configured at start-up.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    /// Where `berth vulndb import` keeps the OSV database.
    pub vulndb_dir: PathBuf,
    /// Concurrent scans.
    pub workers: usize,
    /// Wall-clock bound of one scan.
    pub timeout: Duration,
}

/// One finding as stored and reported (ECR's ImageScanFinding).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredFinding {
    pub name: String,
    pub description: String,
    pub uri: String,
    pub severity: String,
    pub attributes: Vec<(String, String)>,
    /// The version that fixes it, when the advisory names one (shown by the console; ECR's
    /// basic-scan attributes have no such key, so the API does not report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_in: Option<String>,
}

/// What a completed scan stored.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScanResult {
    /// When the vulnerability database was imported (ECR's vulnerabilitySourceUpdatedAt).
    pub source_updated_at: Option<Millis>,
    pub findings: Vec<StoredFinding>,
    /// What the scanner saw but could not cover (e.g. an RPM database).
    pub notes: Vec<String>,
    pub packages: usize,
    pub sbom_digest: Option<String>,
}

impl ScanResult {
    /// findingSeverityCounts.
    pub fn severity_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for f in &self.findings {
            *counts.entry(f.severity.clone()).or_insert(0) += 1;
        }
        counts
    }
}

/// An image's scan as the API reports it.
#[derive(Debug, Clone)]
pub struct ImageScan {
    pub row: ImageScanRow,
    pub result: Option<ScanResult>,
}

/// The registry scanning configuration (ECR's RegistryScanningConfiguration).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegistryScanning {
    pub scan_type: String,
    pub rules: Vec<ScanningRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScanningRule {
    pub scan_frequency: String,
    pub repository_filters: Vec<ScanningFilter>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScanningFilter {
    pub filter: String,
    pub filter_type: String,
}

/// How one repository is scanned (ECR's RepositoryScanningConfiguration).
#[derive(Debug, Clone)]
pub struct RepositoryScanning {
    pub scan_on_push: bool,
    /// SCAN_ON_PUSH | CONTINUOUS_SCAN | MANUAL
    pub scan_frequency: String,
    pub applied_filters: Vec<ScanningFilter>,
}

/// A scan job's payload in the outbox.
#[derive(Serialize, Deserialize)]
struct ScanJob {
    account: String,
    region: String,
    repository: String,
    digest: String,
}

impl ScanJob {
    fn new(repo: &Repo, digest: &Digest) -> ScanJob {
        let key = repo.key();
        ScanJob { account: key.account.clone(), region: key.region.clone(), repository: key.name.clone(), digest: digest.to_string() }
    }

    /// One job per image: a scan asked for while one waits or runs is that one.
    fn key(&self) -> String {
        format!("{}/{}/{}@{}", self.account, self.region, self.repository, self.digest)
    }

    fn target(&self) -> Option<(Repo, Digest)> {
        let key = RepoKey { account: self.account.clone(), region: self.region.clone(), name: self.repository.clone() };
        Some((repo_of_key(&key)?, self.digest.parse().ok()?))
    }
}

/// The scanner's state inside the registry.
#[derive(Default)]
pub(crate) struct Scanner {
    settings: std::sync::OnceLock<ScanSettings>,
    /// Wakes an idle worker when this node enqueues a scan.
    wake: Arc<tokio::sync::Notify>,
    db: Mutex<Option<(String, Arc<VulnDb>)>>,
    /// The registry the workers serve, for reading layers through the pull path.
    registry: std::sync::OnceLock<std::sync::Weak<Registry>>,
}

fn scan_failed(message: String) -> RegistryError {
    RegistryError::invalid(message)
}

/// `*` wildcards anchored on the whole repository name (ECR's WILDCARD filter).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn valid_filter(f: &str) -> bool {
    !f.is_empty() && f.len() <= 255 && f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/*".contains(&b))
}

fn row(status: &str, description: Option<String>, started_at: Millis) -> ImageScanRow {
    ImageScanRow { status: status.into(), description, started_at, completed_at: None, vulndb_version: None, findings: None }
}

fn is_index(media_type: &str) -> bool {
    media_type == media_types::OCI_INDEX || media_type == media_types::DOCKER_LIST
}

fn missing(repo: &Repo, digest: &Digest) -> RegistryError {
    RegistryError::image_not_found(repo, Some(&digest.to_string()), None)
}

fn is_image_config(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.config.v1+json" || media_type == "application/vnd.docker.container.image.v1+json"
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifestView {
    media_type: Option<String>,
    config: Option<DescriptorView>,
    #[serde(default)]
    layers: Vec<DescriptorView>,
    subject: Option<serde_json::Value>,
    artifact_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorView {
    media_type: String,
    digest: String,
}

impl Registry {
    /// Starts the scan workers (once), under the registry's supervisor. Without this, scans are
    /// never run and images report no scan status.
    pub fn start_scanner(self: &Arc<Self>, settings: ScanSettings) {
        let workers = settings.workers.max(1);
        if self.scanner.settings.set(settings).is_err() {
            return;
        }
        let _ = self.scanner.registry.set(Arc::downgrade(self));
        for _ in 0..workers {
            let registry = Arc::downgrade(self);
            // Weak: the workers end (Ok) once the registry is dropped.
            self.supervisor.start("scan_worker", Restart::OnFailure, move || scan_worker(registry.clone()));
        }
    }

    /// At start-up: scans this node's previous process had claimed are pending again, and a scan
    /// recorded IN_PROGRESS with no job (left by a berth that queued in memory) is enqueued;
    /// scans another live node holds stay its own. Returns how many were requeued or enqueued.
    pub async fn resume_interrupted_scans(&self) -> Result<usize> {
        let mut resumed = self.meta.requeue_own_jobs(&self.node_id).await? as usize;
        for (key, digest) in self.meta.scanned_images(Some("IN_PROGRESS")).await? {
            let Some(repo) = repo_of_key(&key) else { continue };
            if self.enqueue_scan(&repo, &digest).await? {
                resumed += 1;
            }
        }
        if resumed > 0 {
            self.scanner.wake.notify_waiters();
        }
        Ok(resumed)
    }

    fn scanning_enabled(&self) -> bool {
        self.scanner.settings.get().is_some()
    }

    /// True when a new job was added (false: one for the image waits or runs already).
    async fn enqueue_scan(&self, repo: &Repo, digest: &Digest) -> Result<bool> {
        let job = ScanJob::new(repo, digest);
        let payload = serde_json::to_string(&job).map_err(|e| scan_failed(e.to_string()))?;
        Ok(self.meta.enqueue_job(SCAN_JOB, &job.key(), &payload, self.now()).await?)
    }

    /// Records an IN_PROGRESS scan and enqueues its job; never waits for the scan.
    pub(crate) async fn queue_scan(&self, repo: &Repo, digest: &Digest) -> Result<ImageScanRow> {
        if !self.scanning_enabled() {
            return Err(scan_failed("image scanning is not enabled on this server".into()));
        }
        // The previous findings stay readable until the new scan replaces them.
        let previous = self.meta.image_scan(repo.key(), digest).await?;
        let pending = ImageScanRow {
            findings: previous.as_ref().and_then(|p| p.findings.clone()),
            completed_at: previous.as_ref().and_then(|p| p.completed_at),
            vulndb_version: previous.and_then(|p| p.vulndb_version),
            ..row("IN_PROGRESS", None, self.now())
        };
        // The row before the job: a worker that finished first would have its result overwritten.
        self.meta.put_image_scan(repo.key(), digest, &pending).await?;
        if let Err(e) = self.enqueue_scan(repo, digest).await {
            tracing::error!(repository = %repo, digest = %digest, error = %e, "enqueueing scan");
            // started_at 0: a scan that never ran does not count against the 24-hour quota.
            let failed = row("FAILED", Some(format!("the scan could not be queued ({e}); start the scan again later")), 0);
            self.meta.put_image_scan(repo.key(), digest, &failed).await?;
            return Ok(failed);
        }
        self.scanner.wake.notify_one();
        Ok(pending)
    }

    /// Called after a manifest is stored: queues a scan when the repository scans on push.
    /// Referrers and image indexes are not scanned (the images an index lists are, on their push).
    pub(crate) async fn scan_after_push(&self, repo: &Repo, digest: &Digest, scan_on_push_setting: bool, subject: bool, media_type: &str) {
        if !self.scanning_enabled() || subject || is_index(media_type) {
            return;
        }
        let wants = match self.repository_scanning_with(repo, scan_on_push_setting).await {
            Ok(s) => s.scan_on_push,
            Err(e) => {
                tracing::warn!(repository = %repo, error = %e, "reading scanning configuration");
                false
            }
        };
        if wants {
            if let Err(e) = self.queue_scan(repo, digest).await {
                tracing::warn!(repository = %repo, digest = %digest, error = %e, "queueing scan on push");
            }
        }
    }

    /// StartImageScan: at most once per image per 24 hours.
    pub async fn start_image_scan(&self, repo: &Repo, id: &ImageId) -> Result<(Digest, ImageScanRow)> {
        let digest = self.resolve_image(repo, id).await?;
        let image = self.meta.get_image(repo.key(), &digest).await?.ok_or_else(|| missing(repo, &digest))?;
        if image.storage_class == StorageClass::Archive {
            return Err(RegistryError::ImageArchived(digest.to_string()));
        }
        if is_index(&image.media_type) {
            return Err(RegistryError::UnsupportedImageType(format!(
                "The image with digest '{digest}' is an image index ({}), which cannot be scanned; scan the images it lists",
                image.media_type
            )));
        }
        if let Some(last) = self.meta.image_scan(repo.key(), &digest).await? {
            // Every scan that ran counts, failed or not (as ECR counts them); a job that could not
            // be queued never ran and is recorded with started_at 0.
            if self.next_manual_scan_at(last.started_at).is_some() {
                return Err(RegistryError::LimitExceeded(format!(
                    "The scan quota per image has been exceeded. Wait and try again. (image {digest} was scanned in the last 24 hours)"
                )));
            }
        }
        let row = self.queue_scan(repo, &digest).await?;
        Ok((digest, row))
    }

    /// When the next StartImageScan of an image whose last scan started at `started_at` may
    /// run (one a day, as ECR allows); None when it may run now.
    pub fn next_manual_scan_at(&self, started_at: Millis) -> Option<Millis> {
        let at = started_at.saturating_add(SCAN_INTERVAL_MILLIS);
        (self.now() < at).then_some(at)
    }

    /// DescribeImageScanFindings / the scan summary of DescribeImages.
    pub async fn image_scan(&self, repo: &Repo, digest: &Digest) -> Result<Option<ImageScan>> {
        Ok(self.image_scans(repo, std::slice::from_ref(digest)).await?.remove(digest))
    }

    /// The scans of a page of images (one query), for listings: DescribeImages, the console.
    pub async fn image_scans(&self, repo: &Repo, digests: &[Digest]) -> Result<std::collections::HashMap<Digest, ImageScan>> {
        let mut out = std::collections::HashMap::new();
        for (digest, row) in self.meta.image_scans(repo.key(), digests).await? {
            let result = match &row.findings {
                Some(json) => Some(serde_json::from_str(json).map_err(|e| scan_failed(format!("stored scan result: {e}")))?),
                None => None,
            };
            out.insert(digest, ImageScan { row, result });
        }
        Ok(out)
    }

    /// The scan of an image named by tag or digest; ScanNotFound when it was never scanned.
    pub async fn image_scan_findings(&self, repo: &Repo, id: &ImageId) -> Result<(Digest, ImageScan)> {
        let digest = self.resolve_image(repo, id).await?;
        match self.image_scan(repo, &digest).await? {
            Some(scan) => Ok((digest, scan)),
            None => Err(RegistryError::ScanNotFound(format!(
                "Image scan does not exist for the image with '{}' in the repository with name '{repo}' in the registry with id '{}'",
                image_id_text(id.digest.as_deref(), id.tag.as_deref()),
                repo.key().account
            ))),
        }
    }

    pub async fn registry_scanning(&self, scope: &RegistryRef) -> Result<RegistryScanning> {
        match self.meta.registry_scanning(&scope.account, &scope.region).await? {
            Some(json) => serde_json::from_str(&json).map_err(|e| scan_failed(format!("stored scanning configuration: {e}"))),
            None => Ok(RegistryScanning { scan_type: "BASIC".into(), rules: Vec::new() }),
        }
    }

    /// PutRegistryScanningConfiguration, validated as ECR does.
    pub async fn put_registry_scanning(&self, scope: &RegistryRef, config: RegistryScanning) -> Result<RegistryScanning> {
        if !matches!(config.scan_type.as_str(), "BASIC" | "ENHANCED") {
            return Err(RegistryError::invalid(format!(
                "Invalid parameter at 'scanType': {:?} is not BASIC or ENHANCED",
                config.scan_type
            )));
        }
        if config.rules.len() > 2 {
            return Err(RegistryError::invalid("Invalid parameter at 'rules': at most 2 rules"));
        }
        for (i, rule) in config.rules.iter().enumerate() {
            if !matches!(rule.scan_frequency.as_str(), "SCAN_ON_PUSH" | "CONTINUOUS_SCAN" | "MANUAL") {
                return Err(RegistryError::invalid(format!(
                    "Invalid parameter at 'rules.{}.scanFrequency': {:?} is not SCAN_ON_PUSH, CONTINUOUS_SCAN or MANUAL",
                    i + 1,
                    rule.scan_frequency
                )));
            }
            if rule.repository_filters.is_empty() || rule.repository_filters.len() > 100 {
                return Err(RegistryError::invalid(format!("Invalid parameter at 'rules.{}.repositoryFilters': 1 to 100 filters", i + 1)));
            }
            for f in &rule.repository_filters {
                if f.filter_type != "WILDCARD" || !valid_filter(&f.filter) {
                    return Err(RegistryError::invalid(format!(
                        "Invalid parameter at 'rules.{}.repositoryFilters': filter {:?} of type {:?} is not a WILDCARD filter of [a-z0-9._-/*]",
                        i + 1,
                        f.filter,
                        f.filter_type
                    )));
                }
            }
        }
        let json = serde_json::to_string(&config).map_err(|e| scan_failed(e.to_string()))?;
        self.meta.set_registry_scanning(&scope.account, &scope.region, &json).await?;
        Ok(config)
    }

    /// BatchGetRepositoryScanningConfiguration for one repository: a registry rule whose filter
    /// matches decides (CONTINUOUS_SCAN before SCAN_ON_PUSH before MANUAL); otherwise the
    /// repository's own scanOnPush.
    pub async fn repository_scanning(&self, repo: &Repo) -> Result<RepositoryScanning> {
        let row = self.existing_repository(repo).await?;
        self.repository_scanning_with(repo, row.settings.scan_on_push).await
    }

    async fn repository_scanning_with(&self, repo: &Repo, scan_on_push_setting: bool) -> Result<RepositoryScanning> {
        let config = self.registry_scanning(&repo.registry()).await?;
        let name = repo.name.as_str();
        for frequency in ["CONTINUOUS_SCAN", "SCAN_ON_PUSH", "MANUAL"] {
            for rule in config.rules.iter().filter(|r| r.scan_frequency == frequency) {
                let applied: Vec<ScanningFilter> =
                    rule.repository_filters.iter().filter(|f| wildcard_match(&f.filter, name)).cloned().collect();
                if !applied.is_empty() {
                    let on_push = frequency != "MANUAL" || scan_on_push_setting;
                    return Ok(RepositoryScanning { scan_on_push: on_push, scan_frequency: frequency.into(), applied_filters: applied });
                }
            }
        }
        let frequency = if scan_on_push_setting { "SCAN_ON_PUSH" } else { "MANUAL" };
        Ok(RepositoryScanning { scan_on_push: scan_on_push_setting, scan_frequency: frequency.into(), applied_filters: Vec::new() })
    }

    /// The current vulnerability database, reopened when an import swapped it.
    fn vulndb(&self) -> Result<Option<(String, Arc<VulnDb>)>> {
        let Some(settings) = self.scanner.settings.get() else { return Ok(None) };
        let current = match std::fs::read_to_string(settings.vulndb_dir.join("current")) {
            Ok(v) => v.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(scan_failed(format!("reading the vulnerability database pointer: {e}"))),
        };
        if let Some((v, db)) = self.scanner.db.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if *v == current {
                return Ok(Some((v.clone(), db.clone())));
            }
        }
        // Opened without the lock held: other scans keep the database they have meanwhile, and
        // two that open it at once both get a working copy (the last one is kept).
        let db = VulnDb::open(&settings.vulndb_dir).map_err(|e| scan_failed(format!("opening the vulnerability database: {e}")))?;
        let opened = db.map(|db| (current, Arc::new(db)));
        *self.scanner.db.lock().unwrap_or_else(|p| p.into_inner()) = opened.clone();
        Ok(opened)
    }

    /// The version of the database scans use now, if any.
    pub fn vulndb_version(&self) -> Option<String> {
        self.vulndb().ok().flatten().map(|(v, _)| v)
    }

    /// After an import: rescans every image of repositories under CONTINUOUS_SCAN that was
    /// scanned with another database version. Returns how many were queued.
    pub async fn rescan_continuous(&self) -> Result<usize> {
        let Some((version, _)) = self.vulndb()? else { return Ok(0) };
        let mut queued = 0;
        for (key, digest) in self.meta.scanned_images(None).await? {
            let Some(repo) = repo_of_key(&key) else { continue };
            if self.repository_scanning(&repo).await.map(|s| s.scan_frequency != "CONTINUOUS_SCAN").unwrap_or(true) {
                continue;
            }
            let scan = self.meta.image_scan(&key, &digest).await?;
            if scan.is_some_and(|s| s.status == "IN_PROGRESS" || s.vulndb_version.as_deref() == Some(version.as_str())) {
                continue;
            }
            if let Err(e) = self.queue_scan(&repo, &digest).await {
                tracing::error!(repository = %repo, digest = %digest, error = %e, "queueing continuous rescan");
                continue;
            }
            queued += 1;
        }
        Ok(queued)
    }

    /// One claimed job: the scan, then the job is done, or retried later when its result could
    /// not be stored (the store was unreachable).
    async fn run_scan_job(&self, job: JobRow) {
        let Some((repo, digest)) = serde_json::from_str::<ScanJob>(&job.payload).ok().and_then(|j| j.target()) else {
            let _ = self.meta.fail_job(job.id, &self.node_id, "unreadable scan job", None).await;
            return;
        };
        let finished = match self.run_scan(&repo, &digest).await {
            Ok(done) => {
                let completed = self.meta.complete_job(job.id, &self.node_id).await;
                // After the job's end, so a receiver told of the scan never finds it still running.
                self.emit_scan_result(&repo, &digest, &done).await;
                completed
            }
            Err(e) => {
                let retry_at = (job.attempts < MAX_ATTEMPTS).then(|| self.now() + 30_000 * job.attempts);
                self.meta.fail_job(job.id, &self.node_id, &e.to_string(), retry_at).await
            }
        };
        if let Err(e) = finished {
            // The lease ends on its own; the scan is then claimed again.
            tracing::error!(repository = %repo, digest = %digest, error = %e, "recording the scan job's end");
        }
    }

    /// The scan: inventory → findings → stored result + SBOM referrer (returned). Every failure
    /// ends in a FAILED row with a reason; an error only when that row could not be stored.
    async fn run_scan(&self, repo: &Repo, digest: &Digest) -> Result<ImageScanRow> {
        let started_at = self.now();
        let bound = self.scanner.settings.get().map(|s| s.timeout).unwrap_or(Duration::from_secs(300)) + Duration::from_secs(30);
        let outcome = match tokio::time::timeout(bound, self.scan_image(repo, digest, started_at)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(scan_failed(format!("the scan did not finish within {} s", bound.as_secs()))),
        };
        let done = match outcome {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(repository = %repo, digest = %digest, error = %e, "scan failed");
                ImageScanRow { completed_at: Some(self.now()), ..row("FAILED", Some(e.to_string()), started_at) }
            }
        };
        tracing::info!(repository = %repo, digest = %digest, status = %done.status, "image scanned");
        if let Err(e) = self.meta.put_image_scan(repo.key(), digest, &done).await {
            tracing::error!(repository = %repo, digest = %digest, error = %e, "storing scan result");
            return Err(e.into());
        }
        Ok(done)
    }

    async fn scan_image(&self, repo: &Repo, digest: &Digest, started_at: Millis) -> Result<ImageScanRow> {
        let manifest = self.meta.get_manifest_by_digest(repo.key(), digest).await?.ok_or_else(|| missing(repo, digest))?;
        let view: ImageManifestView =
            serde_json::from_slice(&manifest.content).map_err(|e| RegistryError::ManifestInvalid(e.to_string()))?;
        let media_type = view.media_type.clone().unwrap_or(manifest.media_type.clone());
        let config_type = view.config.as_ref().map(|c| c.media_type.as_str()).unwrap_or("");
        if view.subject.is_some() || view.artifact_type.is_some() || !is_image_config(config_type) {
            // FAILED, not UNSUPPORTED_IMAGE: the SDKs' image-scan-complete waiter knows only
            // COMPLETE and FAILED, and would poll an UNSUPPORTED_IMAGE scan until it times out.
            let why = format!("UnsupportedImageError: {media_type} with config {config_type:?} is not a container image berth can scan");
            return Ok(ImageScanRow { completed_at: Some(self.now()), ..row("FAILED", Some(why), started_at) });
        }
        let settings = self.scanner.settings.get().cloned().ok_or_else(|| scan_failed("scanning is not enabled".into()))?;
        let mut layers = Vec::new();
        for l in &view.layers {
            let d: Digest = l.digest.parse().map_err(|e| RegistryError::DigestInvalid(format!("{e}")))?;
            // Opened only when the scanner reaches it: one open blob reader per scan at a time.
            let registry = self.scanner.registry.get().cloned().unwrap_or_default();
            let reader = LazyBlob { registry, repo: repo.clone(), digest: d, handle: tokio::runtime::Handle::current(), inner: None };
            layers.push((l.media_type.clone(), reader));
        }
        let limits = Limits { deadline: Instant::now() + settings.timeout, ..Limits::default() };
        // The database version used is the one recorded, even if an import lands mid-scan.
        let db = self.vulndb()?;
        let used = db.clone();
        let subject = digest.to_string();
        let scanned = tokio::task::spawn_blocking(
            move || -> std::result::Result<(Inventory, Vec<berth_scan::Finding>, Vec<u8>), berth_scan::ScanError> {
                let layers = layers.into_iter().map(|(media_type, r)| Layer { media_type, reader: Box::new(r) }).collect();
                let inventory = berth_scan::inventory(layers, &limits)?;
                let findings = match &db {
                    Some((_, db)) => db.try_find(&inventory)?,
                    None => Vec::new(),
                };
                let sbom = berth_scan::to_cyclonedx(&inventory, &subject);
                Ok((inventory, findings, sbom))
            },
        )
        .await
        .map_err(|e| scan_failed(format!("scan worker: {e}")))?;
        let (inventory, findings, sbom) = match scanned {
            Ok(v) => v,
            Err(e) => return Ok(ImageScanRow { completed_at: Some(self.now()), ..row("FAILED", Some(e.to_string()), started_at) }),
        };
        let sbom_digest = self.attach_sbom(repo, digest, Bytes::from(sbom)).await?;
        let (version, source_updated_at) = match used {
            Some((v, db)) => {
                let imported = time::OffsetDateTime::parse(&db.status().imported_at, &time::format_description::well_known::Rfc3339)
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                    .ok();
                (Some(v), imported)
            }
            None => (None, None),
        };
        let result = ScanResult {
            source_updated_at,
            findings: findings
                .into_iter()
                .map(|f| StoredFinding {
                    name: f.name,
                    description: f.description,
                    uri: f.uri,
                    severity: f.severity.as_str().to_string(),
                    attributes: f.attributes,
                    fixed_in: f.fixed_in,
                })
                .collect(),
            notes: inventory.notes.clone(),
            packages: inventory.packages.len(),
            sbom_digest: Some(sbom_digest.to_string()),
        };
        if version.is_none() {
            // No findings can be claimed without a database: FAILED (a status the waiter knows),
            // and no empty findings list that would read as "no vulnerabilities".
            let why = "FindingsUnavailable: no vulnerability database is imported; run `berth vulndb import`, then scan again";
            return Ok(ImageScanRow { completed_at: Some(self.now()), ..row("FAILED", Some(why.into()), started_at) });
        }
        Ok(ImageScanRow {
            status: "COMPLETE".into(),
            description: Some("The scan was completed successfully.".to_string()),
            started_at,
            completed_at: Some(self.now()),
            vulndb_version: version,
            findings: Some(serde_json::to_string(&result).map_err(|e| scan_failed(e.to_string()))?),
        })
    }

    /// Pushes the SBOM as an OCI artifact whose subject is the image (a referrer).
    async fn attach_sbom(&self, repo: &Repo, subject: &Digest, sbom: Bytes) -> Result<Digest> {
        // Never re-create a repository deleted while the scan ran (uploads create on push).
        self.existing_repository(repo).await?;
        let subject_row = self.meta.get_manifest_by_digest(repo.key(), subject).await?.ok_or_else(|| missing(repo, subject))?;
        let sbom_digest = Digest::sha256_of(&sbom);
        let config_digest = Digest::sha256_of(EMPTY_CONFIG);
        for (d, bytes) in [(&sbom_digest, sbom.clone()), (&config_digest, Bytes::from_static(EMPTY_CONFIG))] {
            let len = bytes.len();
            let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes)]).boxed();
            self.upload_blob(repo, d, body).await?;
            tracing::debug!(digest = %d, len, "sbom blob stored");
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "artifactType": SBOM_ARTIFACT_TYPE,
            "config": { "mediaType": EMPTY_MEDIA_TYPE, "digest": config_digest.to_string(), "size": EMPTY_CONFIG.len() },
            "layers": [{ "mediaType": SBOM_ARTIFACT_TYPE, "digest": sbom_digest.to_string(), "size": sbom.len() }],
            "subject": { "mediaType": subject_row.media_type, "digest": subject.to_string(), "size": subject_row.content.len() },
            "annotations": { "org.opencontainers.image.created": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                "dev.berth.sbom.generator": "berth-scan" },
        });
        let body = Bytes::from(serde_json::to_vec(&manifest).map_err(|e| scan_failed(e.to_string()))?);
        let digest = Digest::sha256_of(&body);
        self.put_manifest(repo, &Reference::Digest(digest.clone()), media_types::OCI_MANIFEST, body).await?;
        Ok(digest)
    }
}

/// A layer blob read on a blocking thread, opened on first read (through the pull path, which
/// decrypts it).
struct LazyBlob {
    registry: std::sync::Weak<Registry>,
    repo: Repo,
    digest: Digest,
    handle: tokio::runtime::Handle,
    inner: Option<tokio_util::io::SyncIoBridge<tokio_util::io::StreamReader<berth_store::ByteStream, Bytes>>>,
}

impl std::io::Read for LazyBlob {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.inner.is_none() {
            let registry = self.registry.upgrade().ok_or_else(|| std::io::Error::other("the registry is shutting down"))?;
            let (repo, digest) = (self.repo.clone(), self.digest.clone());
            let (_, _, reader) =
                self.handle.block_on(async move { registry.read_blob(&repo, &digest, None).await }).map_err(|e| match e {
                    RegistryError::BlobUnknown(_) => {
                        std::io::Error::new(std::io::ErrorKind::NotFound, format!("layer {} is missing", self.digest))
                    }
                    other => std::io::Error::other(other.to_string()),
                })?;
            let stream: berth_store::ByteStream = reader.body.map_err(std::io::Error::other).boxed();
            self.inner =
                Some(tokio_util::io::SyncIoBridge::new_with_handle(tokio_util::io::StreamReader::new(stream), self.handle.clone()));
        }
        match self.inner.as_mut() {
            Some(r) => r.read(buf),
            None => Ok(0),
        }
    }
}

/// One scan worker: claims a due scan (this node's lease for the scan's deadline and a margin)
/// and runs it; when there is none, waits for this node's next enqueue or the poll interval.
/// A store error ends it, and the supervisor starts it again after a backoff.
async fn scan_worker(registry: Weak<Registry>) -> TaskResult {
    loop {
        let Some(r) = registry.upgrade() else { return Ok(()) };
        let timeout = r.scanner.settings.get().map(|s| s.timeout).unwrap_or(Duration::from_secs(300));
        let lease = i64::try_from((timeout + LEASE_MARGIN).as_millis()).unwrap_or(i64::MAX / 2);
        let now = r.now();
        let mut claimed = r.meta.claim_jobs(&[SCAN_JOB], &r.node_id, now, now.saturating_add(lease), 1).await.map_err(boxed)?;
        match claimed.pop() {
            Some(job) => r.run_scan_job(job).await,
            None => {
                let wake = r.scanner.wake.clone();
                drop(r);
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }
}

fn boxed(e: impl std::fmt::Display + Send + Sync + 'static) -> crate::supervisor::TaskError {
    Box::new(e)
}

pub(crate) fn repo_of_key(key: &RepoKey) -> Option<Repo> {
    let name = crate::RepositoryName::parse(&key.name).ok()?;
    Some(Repo::new(&RegistryRef { account: key.account.clone(), region: key.region.clone() }, name))
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn wildcard_filters_match_whole_names() {
        assert!(wildcard_match("*", "team/app"));
        assert!(wildcard_match("team/*", "team/app"));
        assert!(!wildcard_match("team/*", "other/app"));
        assert!(wildcard_match("*app", "team/app"));
        assert!(wildcard_match("t*m/*p", "team/app"));
        assert!(!wildcard_match("team", "team/app"));
        assert!(wildcard_match("team/app", "team/app"));
    }
}
