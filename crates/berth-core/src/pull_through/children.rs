//! Index children in cache repositories. An index is stored at once with the children the
//! repository holds, its others fetched as clients ask for them; each child must then be linked
//! to the indexes listing it, since those references are what protect it: ECR refuses to delete
//! an image an index lists (`ImageReferencedByManifestList`), and lifecycle rules for untagged
//! images pass over one. Three paths link, so that no node's or restart's memory is needed:
//! - a child cached links itself to the indexes this process knows are partial (`partial`);
//! - a manifest cached also looks for stored indexes that list it and do not reference it yet
//!   (stored by another node, or before a restart);
//! - an index served the first time in a process links every child cached since.
//!
//! A child and its index cached at the same moment on two nodes can each miss the other's row;
//! the third path links that child when a process next serves the index for the first time.

use std::collections::HashSet;

use berth_store::{Digest, NewManifest, RefKind, StorageClass, TagStatus};

use super::fetch::{is_index, locked, repo_id};
use crate::error::Result;
use crate::manifest::ParsedManifest;
use crate::names::{Reference, Repo};
use crate::{Manifest, Registry};

/// Images read per page while looking for a manifest's parents.
const PARENT_SCAN_PAGE: u32 = 500;

impl Registry {
    /// The manifest's references without the children the repository does not hold, and
    /// whether none was left out.
    async fn held_references(&self, repo: &Repo, mut parsed: ParsedManifest) -> Result<(ParsedManifest, bool)> {
        let mut complete = true;
        let mut kept = Vec::with_capacity(parsed.references.len());
        for r in std::mem::take(&mut parsed.references) {
            if r.kind == RefKind::Blob || self.meta.get_manifest_by_digest(repo.key(), &r.digest).await?.is_some() {
                kept.push(r);
            } else {
                complete = false;
            }
        }
        parsed.references = kept;
        Ok((parsed, complete))
    }

    /// An index stored at once, referencing the children held now; it stays in `partial` until
    /// every child is cached.
    pub(super) async fn store_index(&self, repo: &Repo, stored_as: &Reference, parsed: ParsedManifest, manifest: &Manifest) -> Result<()> {
        let (held, complete) = self.held_references(repo, parsed).await?;
        self.store_parsed_manifest(repo, stored_as, &[], held, manifest.content.clone(), false).await?;
        if !complete {
            locked(&self.pull_through.partial).entry(repo_id(repo)).or_default().insert(manifest.digest.clone());
        }
        Ok(())
    }

    /// A stored index served from a cache repository, first time in this process: the children
    /// cached since it was stored (by another node, or before a restart, whose `partial` this
    /// process does not share) are linked to it now, and it is remembered as partial while some
    /// are still missing.
    pub(super) async fn note_partial_index(&self, repo: &Repo, m: &Manifest) {
        let id = repo_id(repo);
        {
            let mut checked = locked(&self.pull_through.checked_indexes);
            if checked.len() > 100_000 {
                checked.clear();
            }
            if !checked.insert((id.clone(), m.digest.clone())) {
                return;
            }
        }
        match self.link_index(repo, &m.digest).await {
            Ok(true) => {}
            Ok(false) => {
                locked(&self.pull_through.partial).entry(id).or_default().insert(m.digest.clone());
            }
            Err(e) => tracing::warn!(repository = %repo, index = %m.digest, error = %e, "linking cached children to an index"),
        }
    }

    /// Adds the references of children cached since to the repository's partial indexes.
    pub(super) async fn link_partial_indexes(&self, repo: &Repo) {
        let id = repo_id(repo);
        let indexes: Vec<Digest> = locked(&self.pull_through.partial).get(&id).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        for index in indexes {
            match self.link_index(repo, &index).await {
                Ok(false) => {}
                Ok(true) => {
                    if let Some(set) = locked(&self.pull_through.partial).get_mut(&id) {
                        set.remove(&index);
                    }
                }
                Err(e) => tracing::warn!(repository = %repo, %index, error = %e, "linking cached children to a partial index"),
            }
        }
    }

    /// Whether the index is complete (or gone) after recording the children held now.
    async fn link_index(&self, repo: &Repo, index: &Digest) -> Result<bool> {
        let row = match self.meta.get_manifest_by_digest(repo.key(), index).await? {
            Some(row) if row.storage_class == StorageClass::Standard => row,
            // Gone, or archived (storing it again would restore it): nothing to link.
            _ => return Ok(true),
        };
        let parsed = crate::manifest::parse(&row.content, &row.media_type)?;
        let (held, complete) = self.held_references(repo, parsed).await?;
        // The row as stored: only references are added (no tag moves, no push event).
        self.meta
            .put_manifest(NewManifest {
                repository: repo.key(),
                manifest: row,
                references: held.references,
                tags: Vec::new(),
                outbox: Vec::new(),
            })
            .await?;
        Ok(complete)
    }

    /// A manifest just cached in `repo`: linked to every stored index there that lists it but
    /// does not reference it yet. Runs once per manifest fetched upstream (a miss), so reading
    /// the repository's index rows is paid per fetch, never per pull.
    pub(super) async fn link_to_parents(&self, repo: &Repo, digest: &Digest) -> Result<()> {
        let linked: HashSet<Digest> = self.meta.manifest_parents(repo.key(), digest).await?.into_iter().collect();
        let mut after: Option<String> = None;
        loop {
            let page =
                self.meta.list_images(repo.key(), TagStatus::Any, Some(StorageClass::Standard), after.as_deref(), PARENT_SCAN_PAGE).await?;
            for image in page.iter().filter(|i| is_index(&i.media_type) && i.digest != *digest && !linked.contains(&i.digest)) {
                let Some(row) = self.meta.get_manifest_by_digest(repo.key(), &image.digest).await? else { continue };
                let lists_it = crate::manifest::parse(&row.content, &row.media_type)
                    .is_ok_and(|parsed| parsed.references.iter().any(|r| r.kind == RefKind::Manifest && r.digest == *digest));
                if lists_it {
                    self.link_index(repo, &image.digest).await?;
                }
            }
            match page.last() {
                Some(last) if page.len() == PARENT_SCAN_PAGE as usize => after = Some(last.digest.to_string()),
                _ => return Ok(()),
            }
        }
    }
}
