//! The change feed that lets a node of a cluster cache manifests by tag (see cache.rs): the
//! metadata store reports every committed tag change from any node, and this node drops its
//! cached tags on each. While the feed is down (not yet listening, connection lost, silent
//! past the store's heartbeat) tags are read from the database on every request; when it
//! listens again everything cached before is dropped first, since what changed meanwhile was
//! never reported.

use std::sync::{Arc, Weak};
use std::time::Duration;

use berth_store::ChangeSink;

use crate::cache::Caches;
use crate::supervisor::{Restart, TaskResult};
use crate::Registry;

/// Pause before listening again after the feed was lost (reads go to the database meanwhile).
const RELISTEN_AFTER: Duration = Duration::from_millis(500);

impl ChangeSink for Caches {
    fn listening(&self) {
        self.feed_listening();
    }

    fn tags_changed(&self) {
        self.invalidate_repository_tags();
    }
}

impl Registry {
    /// On a shared metadata store, starts the task that keeps the tag cache in step with the
    /// other nodes; without one (embedded storage) this process's own invalidations suffice.
    pub fn start_cluster_cache(self: &Arc<Self>) {
        if !self.caches.shared_metadata {
            return;
        }
        let registry = Arc::downgrade(self);
        self.supervisor.start("cluster_cache", Restart::OnFailure, move || watch(registry.clone()));
    }
}

/// Listens until the registry is dropped; a lost feed is listened to again after a pause.
async fn watch(registry: Weak<Registry>) -> TaskResult {
    loop {
        let Some(r) = registry.upgrade() else { return Ok(()) };
        let outcome = r.meta.watch_changes(&r.caches).await;
        let was_live = r.caches.tags_cacheable();
        r.caches.feed_lost();
        match outcome {
            // The store cannot report changes: tags stay uncached.
            Ok(false) => return Ok(()),
            Ok(true) => {}
            // Said once per loss, not at every failed attempt while the database is away.
            Err(e) if was_live => {
                tracing::warn!(error = %e, "cluster cache feed lost; manifests by tag are read from the database until it listens again")
            }
            Err(e) => tracing::debug!(error = %e, "cluster cache feed still down"),
        }
        drop(r);
        tokio::time::sleep(RELISTEN_AFTER).await;
    }
}
