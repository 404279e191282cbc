//! The recorder: requests hand their record to a bounded channel; one supervised writer task
//! appends whatever has queued (up to `BATCH` records) in one transaction. A full channel
//! makes the request wait (back-pressure, never a dropped record); a flush marker sent through
//! the same channel returns once everything queued before it is written (clean shutdown).

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use berth_store::NewAuditEvent;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::record::{resource_name, AuditRecord};
use super::AuditSettings;
use crate::supervisor::{Restart, TaskResult};
use crate::Registry;

/// The most records one transaction appends.
pub const BATCH: usize = 500;

pub(crate) enum Msg {
    Record(Box<NewAuditEvent>),
    Flush(oneshot::Sender<()>),
}

struct Started {
    sender: mpsc::Sender<Msg>,
    settings: AuditSettings,
}

/// The audit trail's recorder; records nothing until `Registry::start_audit`.
#[derive(Default)]
pub struct Auditor {
    started: OnceLock<Started>,
}

impl Auditor {
    pub(crate) fn settings(&self) -> Option<&AuditSettings> {
        self.started.get().map(|s| &s.settings)
    }

    pub(crate) async fn send(&self, record: &AuditRecord, event_time: i64) {
        let Some(started) = self.started.get() else { return };
        let Some(event) = stored(record, event_time) else { return };
        // Waits while the writer is behind: the request is slowed, its record is never lost.
        if started.sender.send(Msg::Record(Box::new(event))).await.is_err() {
            tracing::error!("the audit writer is gone; a record was not written");
        }
    }

    /// Waits until every record queued so far is written; false if the writer did not
    /// answer within `timeout`.
    pub(crate) async fn flush(&self, timeout: Duration) -> bool {
        let Some(started) = self.started.get() else { return true };
        let (tx, rx) = oneshot::channel();
        if started.sender.send(Msg::Flush(tx)).await.is_err() {
            return false;
        }
        matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(())))
    }
}

/// The row the store keeps: the record's JSON text (hashed as is) and its lookup columns.
pub(crate) fn stored(record: &AuditRecord, event_time: i64) -> Option<NewAuditEvent> {
    let text = match serde_json::to_string(record) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "serializing an audit record");
            return None;
        }
    };
    let username = match record.user_identity.user_name.as_str() {
        "" => super::record::user_name(&record.user_identity.arn),
        name => name.to_string(),
    };
    Some(NewAuditEvent {
        event_id: record.event_id.clone(),
        account: record.recipient_account_id.clone(),
        event_time,
        event_name: record.event_name.clone(),
        event_source: record.event_source.clone(),
        username,
        access_key_id: record.user_identity.access_key_id.clone(),
        read_only: record.read_only,
        resources: record.resources.iter().map(|r| (resource_name(r), r.kind.clone())).collect(),
        record: text,
    })
}

impl Registry {
    /// Starts the writer and the retention task (once).
    pub fn start_audit(self: &Arc<Self>, settings: AuditSettings) {
        let (sender, receiver) = mpsc::channel(settings.queue.max(1));
        // The writer's end, shared so that a restarted writer takes it up again.
        let receiver = Arc::new(Mutex::new(receiver));
        let retention = settings.retention_days;
        if self.audit.started.set(Started { sender, settings }).is_err() {
            return;
        }
        let registry = Arc::downgrade(self);
        let r = registry.clone();
        self.supervisor.start("audit_writer", Restart::Always, move || audit_writer(r.clone(), receiver.clone()));
        let r = registry.clone();
        self.supervisor.start("audit_digests", Restart::Always, move || audit_digests(r.clone()));
        if retention > 0 {
            self.supervisor.start("audit_retention", Restart::Always, move || audit_retention(registry.clone(), retention));
        }
    }
}

async fn audit_writer(registry: Weak<Registry>, receiver: Arc<Mutex<mpsc::Receiver<Msg>>>) -> TaskResult {
    let mut receiver = receiver.lock().await;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        // Whatever has queued, at once: batches grow with the load, a lone record waits for nothing.
        if receiver.recv_many(&mut batch, BATCH).await == 0 {
            return Ok(());
        }
        let Some(registry) = registry.upgrade() else { return Ok(()) };
        let mut events = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for m in batch.drain(..) {
            match m {
                Msg::Record(e) => events.push(*e),
                Msg::Flush(done) => flushes.push(done),
            }
        }
        write(&registry, &events).await;
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Appends until it succeeds: a store outage holds the batch (and, once the channel fills,
/// the requests) rather than losing records.
async fn write(registry: &Registry, events: &[NewAuditEvent]) {
    if events.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(100);
    loop {
        match registry.meta.append_audit_events(events, &super::chain::link).await {
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, records = events.len(), "appending audit records; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Prunes records older than the retention, hourly (and once at start).
/// Signs each finished hour's digest (checked every few minutes; an hour is signed once).
async fn audit_digests(registry: Weak<Registry>) -> TaskResult {
    let mut ticker = tokio::time::interval(Duration::from_secs(300));
    loop {
        ticker.tick().await;
        let Some(registry) = registry.upgrade() else { return Ok(()) };
        match registry.sign_audit_digests().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(hours = n, "signed the audit trail's hourly digests"),
            Err(e) => tracing::warn!(error = %e, "signing the audit trail's hourly digests"),
        }
    }
}

async fn audit_retention(registry: Weak<Registry>, days: u32) -> TaskResult {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        ticker.tick().await;
        let Some(registry) = registry.upgrade() else { return Ok(()) };
        let before = registry.now() - i64::from(days) * 86_400_000;
        match registry.meta.prune_audit_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, days, "pruned audit records past their retention"),
            Err(e) => tracing::warn!(error = %e, "pruning audit records"),
        }
    }
}
