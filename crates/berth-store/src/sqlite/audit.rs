//! SQLite: the audit trail (the statements are shared: `crate::sql::audit`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::audit as sql;
use crate::StoreError;

#[async_trait]
impl AuditStore for SqliteMetadataStore {
    async fn append_audit_events(&self, events: &[NewAuditEvent], chain: &ChainHash) -> Result<Vec<AuditEventRow>, StoreError> {
        sql::append_audit_events(&self.writer, events, chain).await
    }

    async fn lookup_audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEventRow>, StoreError> {
        sql::lookup_audit_events(&self.reader, query).await
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEventRow>, StoreError> {
        sql::audit_chain(&self.reader, after_seq, limit).await
    }

    async fn audit_anchor(&self) -> Result<Option<(i64, String)>, StoreError> {
        sql::audit_anchor(&self.reader).await
    }

    async fn prune_audit_events(&self, before: Millis) -> Result<u64, StoreError> {
        sql::prune_audit_events(&self.writer, before).await
    }

    async fn put_audit_digest(&self, row: &AuditDigestRow) -> Result<bool, StoreError> {
        sql::put_audit_digest(&self.writer, row).await
    }

    async fn audit_digests(&self, since: Millis) -> Result<Vec<AuditDigestRow>, StoreError> {
        sql::audit_digests(&self.reader, since).await
    }

    async fn audit_hour_end(&self, from: Millis, before: Millis) -> Result<Option<(i64, String, i64)>, StoreError> {
        sql::audit_hour_end(&self.reader, from, before).await
    }
}
