//! Consistency check of a stopped registry: every stored blob hashes to its
//! name, every recorded blob is stored, every manifest reference resolves.

use berth_store::{Algorithm, RefKind};
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::Result;
use crate::Registry;

#[derive(Debug, Default, Serialize)]
pub struct FsckReport {
    pub blobs_checked: u64,
    pub references_checked: u64,
    pub problems: Vec<String>,
}

impl FsckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Registry {
    pub async fn fsck(&self) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        for digest in self.blobs.list_blobs().await? {
            report.blobs_checked += 1;
            let Some(reader) = self.blobs.get(&digest, None).await? else {
                report.problems.push(format!("blob {digest} vanished while checking"));
                continue;
            };
            let mut body = reader.body;
            let actual = match digest.algorithm() {
                Algorithm::Sha256 => {
                    let mut h = Sha256::new();
                    while let Some(c) = body.next().await {
                        h.update(&c.map_err(|e| berth_store::StoreError::io(format!("reading {digest}"), e))?);
                    }
                    berth_store::Digest::from_parts(Algorithm::Sha256, &h.finalize())
                }
                Algorithm::Sha512 => {
                    let mut h = Sha512::new();
                    while let Some(c) = body.next().await {
                        h.update(&c.map_err(|e| berth_store::StoreError::io(format!("reading {digest}"), e))?);
                    }
                    berth_store::Digest::from_parts(Algorithm::Sha512, &h.finalize())
                }
            };
            if actual != digest {
                report.problems.push(format!("blob {digest} holds content with digest {actual}"));
            }
        }
        for (key, manifest, child, kind) in self.meta.all_references().await? {
            let repo = format!("{}/{}/{}", key.account, key.region, key.name);
            report.references_checked += 1;
            match kind {
                RefKind::Blob => {
                    if self.meta.repository_blob(&key, &child).await?.is_none() {
                        report.problems.push(format!("{repo}@{manifest} references blob {child}, not linked in the repository"));
                    } else if self.blobs.stat(&child).await?.is_none() {
                        report.problems.push(format!("{repo}@{manifest} references blob {child}, missing from blob storage"));
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
