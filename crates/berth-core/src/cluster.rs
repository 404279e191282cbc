//! Work that must happen once across every node sharing the metadata store.
//!
//! A periodic job (gc, lifecycle) is claimed through a lease row: the node
//! that claims it runs the job and renews the claim at each tick; every other
//! node finds the lease held and skips. The lease lasts two periods, so a
//! holder whose tick comes late keeps the job; a holder that dies loses it
//! after two periods (at once if it shuts down cleanly) and the next node to
//! tick takes over. With embedded storage there is one node and the claim
//! always holds.
//!
//! A run may last longer than two periods (a GC of millions of blobs), so
//! `run_leased` renews the lease every third of a period while the job runs.
//! When a renewal fails, or finds the lease expired or taken, the lease is lost:
//! the job's next safe point (`Registry::lease_checkpoint`, between two blobs or
//! two images) ends the run with an error rather than letting it go on
//! unguarded beside another node's.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_store::StoreError;
use tokio::sync::watch;

use crate::error::{RegistryError, Result};
use crate::{Clock, Registry};

/// What a run that lost its lease fails with ("… is unavailable: <why>").
pub const LEASE_LOST: &str = "this node's lease on the job";

tokio::task_local! {
    /// The lease the job running in this task holds (none outside `run_leased`).
    static CURRENT: Arc<LeaseState>;
}

struct LeaseState {
    name: String,
    clock: Arc<dyn Clock>,
    /// Until when the lease is known to be ours (clock millis).
    until: AtomicI64,
    /// Why it was lost, once it is.
    lost: Mutex<Option<String>>,
    /// How many times it was extended.
    renewals: watch::Sender<u64>,
}

impl LeaseState {
    fn lose(&self, why: String) {
        tracing::warn!(job = %self.name, reason = %why, "lost the job's lease; the run stops at its next safe point");
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(why);
    }

    fn check(&self) -> Result<()> {
        if let Some(why) = self.lost.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Err(lease_lost(&self.name, why));
        }
        // Even before a renewal notices: a lease past its end may already be another node's.
        if self.clock.now_millis() >= self.until.load(Ordering::SeqCst) {
            return Err(lease_lost(&self.name, "it expired"));
        }
        Ok(())
    }
}

fn lease_lost(name: &str, why: &str) -> RegistryError {
    RegistryError::Store(StoreError::Unavailable { what: LEASE_LOST, detail: format!("{name}: {why}") })
}

/// The lease a job runs under, as the job sees it.
pub struct JobLease(Arc<LeaseState>);

impl JobLease {
    /// Ok while the lease is still this node's; the error ends the run.
    pub fn check(&self) -> Result<()> {
        self.0.check()
    }

    /// Counts the lease's renewals (changes each time it is extended).
    pub fn renewals(&self) -> watch::Receiver<u64> {
        self.0.renewals.subscribe()
    }
}

/// Two periods, in clock millis.
fn lease_length(period: Duration) -> i64 {
    i64::try_from(period.as_millis()).unwrap_or(i64::MAX / 2).saturating_mul(2)
}

impl Registry {
    /// This process's identity among the nodes (the lease holder name).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Claims (or renews) the named periodic job for this node for two `period`s. True when
    /// this node should run it now; false when another node holds it.
    pub async fn claim_periodic_job(&self, name: &str, period: Duration) -> Result<bool> {
        Ok(self.claim_until(name, period).await?.is_some())
    }

    /// Claims or extends the lease; the end it now has when it is ours.
    async fn claim_until(&self, name: &str, period: Duration) -> Result<Option<i64>> {
        let now = self.now();
        let until = now.saturating_add(lease_length(period));
        Ok(self.meta.try_lease(name, &self.node_id, now, until).await?.then_some(until))
    }

    /// Claims the periodic job `name` (as `claim_periodic_job`) and, when this node holds it,
    /// runs `job` while renewing the lease every third of `period`. `None`: another node holds
    /// it. A job that finds the lease lost at a safe point (`lease_checkpoint`, or
    /// `JobLease::check`) fails with `LEASE_LOST`.
    pub async fn run_leased<T, F, Fut>(&self, name: &str, period: Duration, job: F) -> Result<Option<T>>
    where
        F: FnOnce(JobLease) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let Some(until) = self.claim_until(name, period).await? else {
            tracing::debug!(job = name, "another node runs this period's job");
            return Ok(None);
        };
        tracing::info!(job = name, node = %self.node_id, "running the periodic job on this node");
        let state = Arc::new(LeaseState {
            name: name.to_string(),
            clock: self.clock.clone(),
            until: AtomicI64::new(until),
            lost: Mutex::new(None),
            renewals: watch::channel(0).0,
        });
        let run = CURRENT.scope(state.clone(), job(JobLease(state.clone())));
        let renewing = self.keep_renewing(&state, period);
        tokio::pin!(run, renewing);
        tokio::select! {
            out = &mut run => out.map(Some),
            // The lease is lost: the job ends at its next safe point.
            () = &mut renewing => run.await.map(Some),
        }
    }

    /// Extends the lease every third of a period; returns once it is lost.
    async fn keep_renewing(&self, lease: &LeaseState, period: Duration) {
        let every = (period / 3).max(Duration::from_millis(1));
        loop {
            tokio::time::sleep(every).await;
            if lease.check().is_err() {
                // Expired before we could renew: another node may have run meanwhile.
                lease.lose("it expired before it was renewed".into());
                return;
            }
            match self.claim_until(&lease.name, period).await {
                Ok(Some(until)) => {
                    lease.until.store(until, Ordering::SeqCst);
                    lease.renewals.send_modify(|n| *n += 1);
                }
                Ok(None) => return lease.lose("another node holds it".into()),
                Err(e) => return lease.lose(format!("renewing it failed: {e}")),
            }
        }
    }

    /// A safe point of a leased job: an error when the job runs under a lease that is lost, so
    /// the run stops here instead of going on beside another node's. Outside `run_leased`
    /// (`POST /_berth/gc`, `berth gc`) there is no lease and nothing to check.
    pub(crate) fn lease_checkpoint(&self) -> Result<()> {
        CURRENT.try_with(|lease| lease.check()).unwrap_or(Ok(()))
    }

    /// Gives a claimed job up (at shutdown), so another node takes it at its next tick.
    pub async fn release_periodic_job(&self, name: &str) -> Result<()> {
        Ok(self.meta.release_lease(name, &self.node_id).await?)
    }
}
