//! SQLite: image scans and the registry scanning configuration (the statements are shared:
//! `crate::sql::scans`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::scans as sql;
use crate::{Digest, StoreError};

#[async_trait]
impl ScanStore for SqliteMetadataStore {
    async fn put_image_scan(&self, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError> {
        sql::put_image_scan(&self.writer, key, digest, scan).await
    }

    async fn image_scan(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError> {
        sql::image_scan(&self.reader, key, digest).await
    }

    async fn image_scans(&self, key: &RepoKey, digests: &[Digest]) -> Result<Vec<(Digest, ImageScanRow)>, StoreError> {
        sql::image_scans(&self.reader, key, digests).await
    }

    async fn scanned_images(&self, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError> {
        sql::scanned_images(&self.reader, status).await
    }

    async fn registry_scanning(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        sql::registry_scanning(&self.reader, account, region).await
    }

    async fn set_registry_scanning(&self, account: &str, region: &str, config: &str) -> Result<(), StoreError> {
        sql::set_registry_scanning(&self.writer, account, region, config).await
    }
}
