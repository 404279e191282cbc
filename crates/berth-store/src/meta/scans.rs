//! Image scans and the registry scanning configuration.

use async_trait::async_trait;

use super::{Millis, RepoKey};
use crate::{Digest, StoreError};

/// The latest scan of an image.
#[derive(Debug, Clone)]
pub struct ImageScanRow {
    /// ECR's ScanStatus: IN_PROGRESS | COMPLETE | FAILED | UNSUPPORTED_IMAGE | FINDINGS_UNAVAILABLE …
    pub status: String,
    pub description: Option<String>,
    pub started_at: Millis,
    pub completed_at: Option<Millis>,
    pub vulndb_version: Option<String>,
    /// JSON written by the service, once complete.
    pub findings: Option<String>,
}

#[async_trait]
pub trait ScanStore: Send + Sync {
    /// Records the image's latest scan; false if the image does not exist.
    async fn put_image_scan(&self, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError>;

    async fn image_scan(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError>;

    /// The scans of many images of one repository in one query (listings).
    async fn image_scans(&self, key: &RepoKey, digests: &[Digest]) -> Result<Vec<(Digest, ImageScanRow)>, StoreError>;

    /// Every image that has a scan (of that status, if given).
    async fn scanned_images(&self, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError>;

    /// The registry scanning configuration (JSON), if one was put.
    async fn registry_scanning(&self, account: &str, region: &str) -> Result<Option<String>, StoreError>;

    async fn set_registry_scanning(&self, account: &str, region: &str, config: &str) -> Result<(), StoreError>;
}
