//! Online garbage collection: blobs no manifest references, upload sessions
//! abandoned for longer than the grace window, and stored bytes no digest names.
//!
//! Safe while pushes continue: a candidate is re-checked inside the
//! transaction that forgets it (a manifest committed meanwhile keeps it), a
//! blob uploaded, mounted or checked (HEAD) within the grace window is never
//! a candidate, and the bytes are removed under the same per-digest locks
//! (in-process, and cluster-wide when nodes share the metadata store) that a
//! commit of that digest takes.

use serde::Serialize;

use crate::error::Result;
use crate::Registry;

#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    pub dry_run: bool,
    /// Overrides the configured grace window.
    pub grace_millis: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub blobs_deleted: u64,
    pub bytes_reclaimed: u64,
    pub uploads_deleted: u64,
    /// Stored bytes no digest named (S3 data objects a failed or raced commit left behind).
    pub orphans_deleted: u64,
    /// Encrypted objects of blobs still in use elsewhere, in a scope (a key) that no longer
    /// uses them.
    pub objects_deleted: u64,
    /// Encrypted objects under a KMS key whose deletion completed: unreadable for good, so
    /// their bytes go (their records stay, so a pull says the key is gone, not "unknown").
    pub shredded_deleted: u64,
    /// The digests removed (or that would be, in a dry run).
    pub blobs: Vec<String>,
}

impl Registry {
    pub async fn collect_garbage(&self, opts: GcOptions) -> Result<GcReport> {
        let grace = opts.grace_millis.unwrap_or(self.config.gc_grace_millis).max(0);
        let before = self.now() - grace;
        let mut report = GcReport { dry_run: opts.dry_run, ..Default::default() };

        for candidate in self.meta.gc_candidates(before).await? {
            self.lease_checkpoint()?;
            if opts.dry_run {
                report.blobs_deleted += 1;
                report.bytes_reclaimed += candidate.size;
                report.blobs.push(candidate.digest.to_string());
                continue;
            }
            let _guard = self.digest_locks.lock(&candidate.digest).await;
            let _cluster_guard = self.meta.lock_blob(&candidate.digest).await?;
            // Listed under the locks: no commit of this digest can add an object meanwhile.
            let objects = self.meta.blob_objects(&candidate.digest).await?;
            if self.meta.gc_forget_blob(&candidate.digest, before).await? {
                for object in &objects {
                    self.delete_object(&object.scope, &candidate.digest).await?;
                }
                tracing::info!(size = candidate.size, "collected blob {}", candidate.digest);
                report.blobs_deleted += 1;
                report.bytes_reclaimed += candidate.size;
                report.blobs.push(candidate.digest.to_string());
            }
        }

        // Objects a scope no longer needs while other scopes still do (a repository under
        // another key, or a clear copy every repository has sealed by now).
        for object in self.meta.gc_object_candidates(before).await? {
            self.lease_checkpoint()?;
            if opts.dry_run {
                report.objects_deleted += 1;
                report.bytes_reclaimed += object.size;
                continue;
            }
            let _guard = self.digest_locks.lock(&object.digest).await;
            let _cluster_guard = self.meta.lock_blob(&object.digest).await?;
            if self.meta.gc_forget_object(&object.digest, &object.scope, before).await? {
                self.delete_object(&object.scope, &object.digest).await?;
                tracing::info!(size = object.size, scope = %object.scope, "collected the object of {} in a scope that no longer uses it", object.digest);
                report.objects_deleted += 1;
                report.bytes_reclaimed += object.size;
            }
        }

        if !opts.dry_run {
            report.shredded_deleted = self.collect_shredded().await?;
        }

        for upload in self.meta.uploads_started_before(before).await? {
            self.lease_checkpoint()?;
            // A session still being written to is busy; leave it for the next run.
            let state = self.uploads.lock().unwrap_or_else(|p| p.into_inner()).get(&upload.id).cloned();
            let _busy_guard = match &state {
                Some(s) => match s.try_lock() {
                    Ok(g) => Some(g),
                    Err(_) => continue,
                },
                None => None,
            };
            report.uploads_deleted += 1;
            if !opts.dry_run {
                self.delete_upload_data(&upload.id, Some(&upload.cursor)).await?;
                self.meta.delete_upload(&upload.id).await?;
            }
        }
        if !opts.dry_run {
            // Data objects without a session row (a crash between the two writes).
            for id in self.list_upload_data().await? {
                if self.meta.get_upload(&id).await?.is_none() && !self.uploads.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&id) {
                    self.delete_upload_data(&id, None).await?;
                }
            }
            // The blobs and sessions are collected by now; a failed sweep is retried next run.
            for store in std::iter::once(&self.blobs).chain(self.sealed.as_ref()) {
                match store.sweep_orphans(before).await {
                    Ok(n) => report.orphans_deleted += n,
                    Err(e) => tracing::warn!(error = %e, "sweeping orphaned blob data failed"),
                }
            }
        }
        tracing::info!(
            dry_run = report.dry_run,
            blobs_deleted = report.blobs_deleted,
            bytes_reclaimed = report.bytes_reclaimed,
            uploads_deleted = report.uploads_deleted,
            orphans_deleted = report.orphans_deleted,
            objects_deleted = report.objects_deleted,
            shredded_deleted = report.shredded_deleted,
            "garbage collection finished"
        );
        if !opts.dry_run {
            let details = serde_json::json!({
                "blobsDeleted": report.blobs_deleted,
                "bytesReclaimed": report.bytes_reclaimed,
                "uploadsDeleted": report.uploads_deleted,
                "objectsDeleted": report.objects_deleted + report.shredded_deleted + report.orphans_deleted,
            });
            self.record_service_event("berth.amazonaws.com", "GarbageCollection", None, details).await;
        }
        Ok(report)
    }
}

impl Registry {
    /// Removes the bytes of objects whose KMS key was deleted (each key looked up once a run).
    async fn collect_shredded(&self) -> Result<u64> {
        let mut destroyed: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        let mut walk = crate::sealing::ObjectWalk::default();
        let mut deleted = 0;
        loop {
            let page = self.next_objects(&mut walk).await?;
            if page.is_empty() {
                return Ok(deleted);
            }
            for object in page.iter().filter(|o| o.scope.starts_with("kms:") || o.scope.starts_with("dsse:")) {
                let gone = match destroyed.get(&object.scope) {
                    Some(gone) => *gone,
                    None => {
                        // A key that cannot be looked up now (no key service in an offline
                        // run, a store hiccup) is taken as alive: nothing is lost by waiting.
                        let gone = self.scope_key_destroyed(&object.scope).await.unwrap_or_else(|e| {
                            tracing::warn!(scope = %object.scope, error = %e, "could not tell whether this key was deleted; its objects stay");
                            false
                        });
                        destroyed.insert(object.scope.clone(), gone);
                        gone
                    }
                };
                if gone {
                    self.lease_checkpoint()?;
                    if self.sealed_store()?.delete(&crate::sealing::object_name(&object.scope, &object.digest)).await? {
                        tracing::info!(scope = %object.scope, "removed the object of {}: its key was deleted", object.digest);
                        deleted += 1;
                    }
                }
            }
        }
    }

    /// Removes the bytes of one object: scope "" is the clear blob of the plain store.
    async fn delete_object(&self, scope: &str, digest: &berth_store::Digest) -> Result<()> {
        if scope.is_empty() {
            self.blobs.delete(digest).await?;
        } else {
            self.sealed_store()?.delete(&crate::sealing::object_name(scope, digest)).await?;
        }
        Ok(())
    }
}
