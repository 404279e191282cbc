//! SQLite: leases (shared: `crate::sql::cluster`). The cluster locks are the trait's defaults:
//! one process uses an SQLite store, and the service's in-process locks cover it.

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::cluster as sql;
use crate::StoreError;

#[async_trait]
impl ClusterStore for SqliteMetadataStore {
    async fn try_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        sql::try_lease(&self.writer, name, holder, now, until).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sql::release_lease(&self.writer, name, holder).await
    }
}
