//! The audit trail: a CloudTrail-shaped record of every call berth serves.
//!
//! The request middleware (the `berth` binary's `observe::track`) builds one [`CallEvent`] per
//! request from the [`CallFacts`](crate::observe::CallFacts) the adapter attached and hands it
//! to [`Registry::record_call`]: the record ([`AuditRecord`], eventVersion 1.08) is made on the
//! request's task and queued on a bounded channel; one supervised writer appends what has
//! queued in one transaction (`writer.rs`). A full channel makes requests wait; a clean
//! shutdown flushes the channel before the writer stops (`Registry::flush_audit`); a crash
//! loses what was queued and not yet written (at most one batch in flight plus the channel).
//! Records are hash-chained (`chain.rs`, verified by `berth audit verify`), each finished hour's
//! chain position is signed with a key derived from the root key (`digests.rs`), looked up by
//! LookupEvents (`lookup.rs`) and pruned after the retention (90 days by default).

mod chain;
mod digests;
mod lookup;
mod record;
mod writer;

use std::time::Duration;

pub use chain::{link, Finding, VerifyReport, GENESIS};
pub use digests::DIGEST_KEY;
pub use lookup::{lookup_attribute, LookupPage, LookupRequest, PageToken, ATTRIBUTE_KEYS, MAX_RESULTS};
pub use record::{is_read_only, redacted_parameters, AuditRecord, AuditResource, CallEvent, UserIdentity, DATA_EVENTS, HIDDEN_USER};
pub use writer::{Auditor, BATCH};

use crate::Registry;

#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Record the data events (`DATA_EVENTS`: image and layer reads, layer part uploads).
    pub data_events: bool,
    /// Records older than this many days are pruned; 0 keeps them.
    pub retention_days: u32,
    /// Records the channel holds before requests wait for the writer.
    pub queue: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings { data_events: false, retention_days: 90, queue: 8192 }
    }
}

impl Registry {
    /// Records one finished call (nothing before `start_audit`, nothing for what is not an
    /// API action); waits while the writer is behind.
    pub async fn record_call(&self, event: CallEvent) {
        let Some(settings) = self.audit.settings() else { return };
        // Not even built when it would be dropped: most requests under load are data events.
        if !settings.data_events && record::is_data_action(&event.facts.action) {
            return;
        }
        let now = self.now();
        let default = &self.config.default_registry;
        let Some(record) = AuditRecord::of_call(&event, now, &default.account, &default.region) else { return };
        self.audit.send(&record, now).await;
    }

    /// Records an event the service itself made (a GC run, a lifecycle action, an automatic key
    /// rotation): `source` as CloudTrail names it, in `registry`'s account (default: the default
    /// registry's).
    pub async fn record_service_event(&self, source: &str, name: &str, registry: Option<&crate::RegistryRef>, details: serde_json::Value) {
        let registry = registry.unwrap_or(&self.config.default_registry);
        let now = self.now();
        let record = AuditRecord::service_event(source, name, &registry.account, &registry.region, now, details);
        self.audit.send(&record, now).await;
    }

    /// Waits until every record queued so far is written (clean shutdown).
    pub async fn flush_audit(&self, timeout: Duration) -> bool {
        self.audit.flush(timeout).await
    }
}
