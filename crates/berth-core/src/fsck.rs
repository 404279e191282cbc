//! Consistency check of a stopped registry: every stored blob hashes to its
//! name (encrypted objects are decrypted, which authenticates every segment, and their
//! plaintext re-hashed), every recorded blob is stored, every manifest reference resolves.

use berth_store::RefKind;
use futures::StreamExt;
use serde::Serialize;

use crate::error::Result;
use crate::sealing::object_name;
use crate::Registry;
use berth_store::DigestHasher;

/// Encrypted objects `fsck` reads at once.
const FSCK_READS: usize = 4;

#[derive(Debug, Default, Serialize)]
pub struct FsckReport {
    pub blobs_checked: u64,
    /// Encrypted objects decrypted and re-hashed.
    pub sealed_checked: u64,
    pub references_checked: u64,
    /// Blobs moved aside because their bytes did not match (kept for inspection; see
    /// crate::integrity). Also a problem while no push has restored a still-recorded one.
    pub quarantined: Vec<String>,
    pub problems: Vec<String>,
}

impl FsckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Registry {
    pub async fn fsck(&self) -> Result<FsckReport> {
        // The stored bytes themselves, not a node's cached copy of them.
        berth_store::store_walk(self.fsck_pass()).await
    }

    async fn fsck_pass(&self) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        for digest in self.blobs.list_blobs().await? {
            report.blobs_checked += 1;
            let Some(reader) = self.blobs.get(&digest, None).await? else {
                report.problems.push(format!("blob {digest} vanished while checking"));
                continue;
            };
            let mut hasher = DigestHasher::for_digest(&digest);
            let mut body = reader.body;
            while let Some(c) = body.next().await {
                hasher.update(&c.map_err(|e| berth_store::StoreError::io(format!("reading {digest}"), e))?);
            }
            let actual = hasher.finish();
            if actual != digest {
                report.problems.push(format!("blob {digest} holds content with digest {actual}"));
            }
        }
        self.fsck_sealed(&mut report).await?;
        let quarantined: std::collections::HashSet<_> = self.blobs.list_quarantined().await?.into_iter().collect();
        report.quarantined = quarantined.iter().map(|d| d.to_string()).collect();
        report.quarantined.sort();
        for (key, manifest, child, kind) in self.meta.all_references().await? {
            let repo = format!("{}/{}/{}", key.account, key.region, key.name);
            report.references_checked += 1;
            match kind {
                RefKind::Blob => {
                    let Some(found) = self.meta.repository_blob_object(&key, &child).await? else {
                        report.problems.push(format!("{repo}@{manifest} references blob {child}, not linked in the repository"));
                        continue;
                    };
                    if found.sealed {
                        if self.sealed_store()?.stat(&object_name(&found.scope, &child)).await?.is_none() {
                            report.problems.push(format!("{repo}@{manifest} references blob {child}, whose encrypted object is missing"));
                        }
                    } else if self.blobs.stat(&child).await?.is_none() {
                        let why = if quarantined.contains(&child) {
                            "quarantined (its stored bytes did not match its digest; push it again to restore it)"
                        } else {
                            "missing from blob storage"
                        };
                        report.problems.push(format!("{repo}@{manifest} references blob {child}, {why}"));
                    }
                }
                RefKind::Manifest => {
                    if self.meta.get_manifest_by_digest(&key, &child).await?.is_none() {
                        report.problems.push(format!("{repo}@{manifest} references manifest {child}, which is missing"));
                    }
                }
            }
        }
        Ok(report)
    }
}

impl Registry {
    /// Decrypts every encrypted object the metadata records and re-hashes its plaintext,
    /// `FSCK_READS` at a time (a bucket answers each read after a round trip, and a restore ends
    /// with this check of everything it wrote).
    async fn fsck_sealed(&self, report: &mut FsckReport) -> Result<()> {
        let mut walk = crate::sealing::ObjectWalk::default();
        loop {
            let page = self.next_objects(&mut walk).await?;
            if page.is_empty() {
                return Ok(());
            }
            let sealed: Vec<_> = page.iter().filter(|o| !o.scope.is_empty()).collect();
            report.sealed_checked += sealed.len() as u64;
            let problems: Vec<String> = futures::stream::iter(sealed)
                .map(|object| self.check_sealed(&object.scope, &object.digest, object.size))
                .buffered(FSCK_READS)
                .filter_map(|problem| async move { problem })
                .collect()
                .await;
            report.problems.extend(problems);
        }
    }

    /// One encrypted object: what is wrong with it, if anything.
    async fn check_sealed(&self, scope: &str, digest: &berth_store::Digest, size: u64) -> Option<String> {
        let what = format!("blob {digest} (encrypted under {scope})");
        let reader = match self.sealed_get(scope, digest, size, None).await {
            Ok(Some(r)) => r,
            Ok(None) => return Some(format!("{what} is recorded but its object is missing")),
            Err(e) => return Some(format!("{what} cannot be opened: {e}")),
        };
        let mut hasher = DigestHasher::for_digest(digest);
        let mut body = reader.body;
        while let Some(c) = body.next().await {
            match c {
                Ok(c) => hasher.update(&c),
                Err(e) => return Some(format!("{what} failed authentication: {e}")),
            }
        }
        let actual = hasher.finish();
        (actual != *digest).then(|| format!("{what} decrypts to content with digest {actual}"))
    }
}
