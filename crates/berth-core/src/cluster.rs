//! Work that must happen once across every node sharing the metadata store.
//!
//! A periodic job (gc, lifecycle) is claimed through a lease row: the node
//! that claims it runs the job and renews the claim at each tick; every other
//! node finds the lease held and skips. The lease lasts two periods, so a
//! holder whose tick comes late keeps the job; a holder that dies loses it
//! after two periods (at once if it shuts down cleanly) and the next node to
//! tick takes over. With embedded storage there is one node and the claim
//! always holds.

use std::time::Duration;

use crate::error::Result;
use crate::Registry;

impl Registry {
    /// This process's identity among the nodes (the lease holder name).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Claims (or renews) the named periodic job for this node for two `period`s. True when
    /// this node should run it now; false when another node holds it.
    pub async fn claim_periodic_job(&self, name: &str, period: Duration) -> Result<bool> {
        let now = self.now();
        let lease = i64::try_from(period.as_millis()).unwrap_or(i64::MAX / 2).saturating_mul(2);
        let until = now.saturating_add(lease);
        Ok(self.meta.try_lease(name, &self.node_id, now, until).await?)
    }

    /// Gives a claimed job up (at shutdown), so another node takes it at its next tick.
    pub async fn release_periodic_job(&self, name: &str) -> Result<()> {
        Ok(self.meta.release_lease(name, &self.node_id).await?)
    }
}
