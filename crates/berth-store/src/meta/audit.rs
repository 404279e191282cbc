//! The audit trail: CloudTrail-shaped records, appended in batches to one hash chain and
//! looked up by account, time and one attribute (LookupEvents).

use async_trait::async_trait;

use super::Millis;
use crate::StoreError;

/// A record to append: what the lookups index, and the record's JSON text (the chain hashes
/// exactly these bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub event_id: String,
    /// The account the record belongs to (CloudTrail's recipientAccountId).
    pub account: String,
    pub event_time: Millis,
    pub event_name: String,
    pub event_source: String,
    pub username: String,
    pub access_key_id: String,
    pub read_only: bool,
    /// (name, type) of each resource the call named.
    pub resources: Vec<(String, String)>,
    pub record: String,
}

/// A stored record: its place in the chain and the chain's hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEventRow {
    pub seq: i64,
    pub event: NewAuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// The one attribute a lookup may filter on (CloudTrail allows one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditAttribute {
    EventName(String),
    Username(String),
    ResourceName(String),
    ResourceType(String),
    EventSource(String),
    EventId(String),
    ReadOnly(bool),
    AccessKeyId(String),
}

/// A page of an account's records, newest first (event time, then chain order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub account: String,
    pub attribute: Option<AuditAttribute>,
    /// Inclusive bounds on the event time.
    pub start: Option<Millis>,
    pub end: Option<Millis>,
    /// The last (event time, seq) of the previous page: this page is older.
    pub before: Option<(Millis, i64)>,
    pub limit: u32,
}

/// An hour's signed digest: the chain's hash at the hour's last record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDigestRow {
    pub hour_start: Millis,
    pub last_seq: i64,
    pub last_hash: String,
    pub records: i64,
    pub key_arn: String,
    pub signature: String,
    pub created_at: Millis,
}

/// How a record's hash follows from the previous hash and its text (the service's rule).
pub type ChainHash = dyn Fn(&str, &str) -> String + Send + Sync;

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends the records after the trail's last one, in one transaction that no other
    /// node's append interleaves: each gets the next seq, the previous record's hash and its
    /// own `chain(prev_hash, record)`. The rows as written.
    async fn append_audit_events(&self, events: &[NewAuditEvent], chain: &ChainHash) -> Result<Vec<AuditEventRow>, StoreError>;

    async fn lookup_audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEventRow>, StoreError>;

    /// Up to `limit` records in chain order after `after_seq` (every account's).
    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEventRow>, StoreError>;

    /// Where the trail starts: the last pruned record's (seq, hash); None while nothing was pruned.
    async fn audit_anchor(&self) -> Result<Option<(i64, String)>, StoreError>;

    /// Removes the records older than `before` from the start of the chain (stopping at the
    /// first newer one, so the trail stays contiguous) and moves the anchor past them; how many.
    async fn prune_audit_events(&self, before: Millis) -> Result<u64, StoreError>;

    /// Records the digest unless the hour has one; false when it had.
    async fn put_audit_digest(&self, row: &AuditDigestRow) -> Result<bool, StoreError>;

    async fn audit_digests(&self, since: Millis) -> Result<Vec<AuditDigestRow>, StoreError>;

    /// The records whose event time is in `[from, before)` (an hour): the last one in chain
    /// order (its seq and hash) and how many there are, for the hour's digest.
    async fn audit_hour_end(&self, from: Millis, before: Millis) -> Result<Option<(i64, String, i64)>, StoreError>;
}
