//! PostgreSQL: the audit trail (the statements are shared with SQLite,
//! `berth_store::sql::audit`), each call within the query deadline.

use async_trait::async_trait;
use berth_store::sql::audit as sql;
use berth_store::{AuditDigestRow, AuditEventRow, AuditQuery, AuditStore, ChainHash, Millis, NewAuditEvent, StoreError};

use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl AuditStore for PostgresMetadataStore {
    async fn append_audit_events(&self, events: &[NewAuditEvent], chain: &ChainHash) -> Result<Vec<AuditEventRow>, StoreError> {
        self.timed("append_audit_events", sql::append_audit_events(&self.pool, events, chain)).await
    }

    async fn lookup_audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEventRow>, StoreError> {
        self.timed("lookup_audit_events", sql::lookup_audit_events(&self.pool, query)).await
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEventRow>, StoreError> {
        self.timed("audit_chain", sql::audit_chain(&self.pool, after_seq, limit)).await
    }

    async fn audit_anchor(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.timed("audit_anchor", sql::audit_anchor(&self.pool)).await
    }

    async fn prune_audit_events(&self, before: Millis) -> Result<u64, StoreError> {
        self.timed("prune_audit_events", sql::prune_audit_events(&self.pool, before)).await
    }

    async fn put_audit_digest(&self, row: &AuditDigestRow) -> Result<bool, StoreError> {
        self.timed("put_audit_digest", sql::put_audit_digest(&self.pool, row)).await
    }

    async fn audit_digests(&self, since: Millis) -> Result<Vec<AuditDigestRow>, StoreError> {
        self.timed("audit_digests", sql::audit_digests(&self.pool, since)).await
    }

    async fn audit_hour_end(&self, from: Millis, before: Millis) -> Result<Option<(i64, String, i64)>, StoreError> {
        self.timed("audit_hour_end", sql::audit_hour_end(&self.pool, from, before)).await
    }
}
