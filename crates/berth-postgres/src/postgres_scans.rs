//! Image scans and the registry scanning configuration. Every statement is shared with SQLite
//! (`berth_store::sql::scans`).

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::sql::scans as sql;
use berth_store::{Digest, StoreError};

use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl ScanStore for PostgresMetadataStore {
    async fn put_image_scan(&self, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError> {
        self.timed("put_image_scan", sql::put_image_scan(&self.pool, key, digest, scan)).await
    }

    async fn image_scan(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError> {
        self.timed("image_scan", sql::image_scan(&self.pool, key, digest)).await
    }

    async fn image_scans(&self, key: &RepoKey, digests: &[Digest]) -> Result<Vec<(Digest, ImageScanRow)>, StoreError> {
        self.timed("image_scans", sql::image_scans(&self.pool, key, digests)).await
    }

    async fn scanned_images(&self, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError> {
        self.timed("scanned_images", sql::scanned_images(&self.pool, status)).await
    }

    async fn registry_scanning(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        self.timed("registry_scanning", sql::registry_scanning(&self.pool, account, region)).await
    }

    async fn set_registry_scanning(&self, account: &str, region: &str, config: &str) -> Result<(), StoreError> {
        self.timed("set_registry_scanning", sql::set_registry_scanning(&self.pool, account, region, config)).await
    }
}
