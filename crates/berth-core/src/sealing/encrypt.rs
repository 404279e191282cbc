//! `berth encrypt`: seals blobs written in clear before encryption at rest, each under the
//! scope of every repository that links it, then removes the clear copies no repository
//! reads any more. Resumable by construction: what is sealed is recorded, and a second run
//! finds only what is left.

use serde::Serialize;

use super::BlobLocation;
use crate::error::Result;
use crate::Registry;

/// What a run of [`Registry::encrypt_existing`] did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct EncryptReport {
    /// Objects written (a blob linked from repositories under two keys counts twice).
    pub sealed: u64,
    pub bytes: u64,
    /// Clear blobs removed once every repository reading them had its own encrypted object.
    pub clear_removed: u64,
    /// What could not be sealed, and why (left in clear; a later run tries again).
    pub failed: Vec<String>,
}

/// How far a run is: objects done and to do (the total grows while the run finds more).
#[derive(Debug, Clone, Copy)]
pub struct EncryptProgress {
    pub done: u64,
    pub bytes: u64,
}

const PAGE: u32 = 200;

impl Registry {
    /// Counts the (scope, blob) pairs still in clear and their bytes.
    pub async fn unsealed_totals(&self) -> Result<(u64, u64)> {
        let (mut count, mut bytes) = (0u64, 0u64);
        let mut after: Option<(berth_store::Digest, String)> = None;
        loop {
            let page = self.meta.unsealed_blobs(after.as_ref().map(|(d, s)| (d, s.as_str())), PAGE).await?;
            let Some(last) = page.last() else { return Ok((count, bytes)) };
            after = Some((last.digest.clone(), last.scope.clone()));
            count += page.len() as u64;
            bytes += page.iter().map(|o| o.size).sum::<u64>();
        }
    }

    /// Seals every blob still stored in clear (see the module). Safe while berth serves: each
    /// blob is copied under the locks a commit and a collector take, verified against its
    /// digest, and recorded before its clear copy can go.
    pub async fn encrypt_existing(&self, progress: &(dyn Fn(EncryptProgress) + Send + Sync)) -> Result<EncryptReport> {
        let mut report = EncryptReport::default();
        let mut after: Option<(berth_store::Digest, String)> = None;
        loop {
            let page = self.meta.unsealed_blobs(after.as_ref().map(|(d, s)| (d, s.as_str())), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.digest.clone(), last.scope.clone()));
            for object in page {
                let _guard = self.digest_locks.lock(&object.digest).await;
                let _cluster_guard = self.meta.lock_blob(&object.digest).await?;
                match self.reseal(&BlobLocation::Plain, &object.digest, object.size, &object.scope).await {
                    Ok(true) => {
                        self.meta.record_blob_object(&object.digest, &object.scope, self.now()).await?;
                        report.sealed += 1;
                        report.bytes += object.size;
                    }
                    Ok(false) => report.failed.push(format!("{}: its clear bytes are missing from blob storage", object.digest)),
                    Err(e) => report.failed.push(format!("{} under {}: {e}", object.digest, object.scope)),
                }
                progress(EncryptProgress { done: report.sealed + report.failed.len() as u64, bytes: report.bytes });
            }
        }
        // Clear copies no repository reads any more go now, not after the GC's grace window:
        // they are exactly what the operator asked to be rid of.
        for object in self.meta.gc_object_candidates(i64::MAX).await?.into_iter().filter(|o| o.scope.is_empty()) {
            let _guard = self.digest_locks.lock(&object.digest).await;
            let _cluster_guard = self.meta.lock_blob(&object.digest).await?;
            if self.meta.gc_forget_object(&object.digest, "", i64::MAX).await? {
                self.blobs.delete(&object.digest).await?;
                report.clear_removed += 1;
            }
        }
        tracing::info!(
            sealed = report.sealed,
            bytes = report.bytes,
            clear_removed = report.clear_removed,
            failed = report.failed.len(),
            "encrypting existing blobs finished"
        );
        Ok(report)
    }
}
