//! The gallery: what anyone may see of every account's public repositories, without
//! credentials. Every call here reads only the public scope (`PUBLIC_REGION`) of the account an
//! alias names, so no private repository can appear in or be reached through the gallery.
//! The search is one store query bounded by its page size (name, alias or description, ASCII
//! case-insensitive), never a scan here.

use super::catalog::RepositoryCatalog;
use super::repositories::ImageTagDetail;
use super::{public_scope, PUBLIC_REGION};
use berth_store::RepositoryRow;

use crate::error::Result;
use crate::names::{Repo, RepositoryName};
use crate::Registry;

/// Longest search text used (longer input is cut, not refused: it is a search box).
pub const MAX_GALLERY_QUERY: usize = 128;
/// Most tags a repository's gallery page lists (newest first).
pub const MAX_GALLERY_TAGS: usize = 100;

/// A public repository as the gallery lists it.
#[derive(Debug, Clone)]
pub struct GalleryEntry {
    pub alias: String,
    pub repo: Repo,
    pub created_at: i64,
    pub catalog: RepositoryCatalog,
    pub has_logo: bool,
}

/// One page of a gallery search; `next` is the (alias, name) to continue after.
#[derive(Debug, Clone, Default)]
pub struct GalleryPage {
    pub entries: Vec<GalleryEntry>,
    pub next: Option<(String, String)>,
}

/// A repository's gallery page: its catalog and its tags, newest push first.
#[derive(Debug, Clone)]
pub struct GalleryRepository {
    pub entry: GalleryEntry,
    /// At most [`MAX_GALLERY_TAGS`], newest first.
    pub tags: Vec<ImageTagDetail>,
    /// How many tags the repository has in all.
    pub tag_count: usize,
}

/// The search text as the store compares it: trimmed, cut, ASCII lower-cased (the store folds
/// ASCII letters only, on every backend).
pub fn gallery_needle(query: &str) -> String {
    query.trim().chars().take(MAX_GALLERY_QUERY).collect::<String>().to_ascii_lowercase()
}

fn parse_catalog(json: Option<&str>, name: &str) -> RepositoryCatalog {
    // Written by the catalog module, so it parses; a row that does not shows as empty.
    json.map(|j| {
        serde_json::from_str(j).unwrap_or_else(|e| {
            tracing::warn!(repository = %name, error = %e, "unreadable catalog data");
            RepositoryCatalog::default()
        })
    })
    .unwrap_or_default()
}

impl Registry {
    /// Public repositories of every account matching `query`, `limit` per page, after the
    /// (alias, name) a previous page ended with.
    pub async fn gallery_search(&self, query: &str, after: Option<(&str, &str)>, limit: u32) -> Result<GalleryPage> {
        let limit = limit.clamp(1, 100);
        let mut hits = self.meta.search_public_repositories(PUBLIC_REGION, &gallery_needle(query), after, limit + 1).await?;
        let more = hits.len() > limit as usize;
        hits.truncate(limit as usize);
        let mut entries = Vec::with_capacity(hits.len());
        for h in hits {
            // The store holds only valid names; one that does not parse is skipped, not shown.
            let Ok(name) = RepositoryName::parse(&h.key.name) else { continue };
            let catalog = parse_catalog(h.catalog.as_deref(), &h.key.name);
            entries.push(GalleryEntry {
                alias: h.alias,
                repo: Repo::new(&public_scope(&h.key.account), name),
                created_at: h.created_at,
                catalog,
                has_logo: h.has_logo,
            });
        }
        let next = if more { entries.last().map(|e| (e.alias.clone(), e.repo.name.to_string())) } else { None };
        Ok(GalleryPage { entries, next })
    }

    /// The public repository `<alias>/<name>`: None when the alias or the repository is
    /// unknown (or the name is no repository name).
    async fn gallery_repo(&self, alias: &str, name: &str) -> Result<Option<(Repo, RepositoryRow)>> {
        let Ok(name) = RepositoryName::parse(name) else { return Ok(None) };
        let Some(account) = self.public_account_by_alias(alias).await? else { return Ok(None) };
        let repo = Repo::new(&public_scope(&account), name);
        Ok(self.meta.get_repository(repo.key()).await?.map(|row| (repo, row)))
    }

    /// A repository's gallery page, or None when `<alias>/<name>` is no public repository.
    pub async fn gallery_repository(&self, alias: &str, name: &str) -> Result<Option<GalleryRepository>> {
        let Some((repo, row)) = self.gallery_repo(alias, name).await? else { return Ok(None) };
        let stored = self.meta.repository_catalog(repo.key()).await?;
        let catalog = parse_catalog(stored.as_ref().map(|s| s.catalog.as_str()), &repo.key().name);
        let has_logo = stored.as_ref().is_some_and(|s| s.logo.is_some());
        let (mut tags, _) = self.describe_image_tags(&repo, None, u32::MAX).await?;
        tags.sort_by(|a, b| b.image.pushed_at.cmp(&a.image.pushed_at).then_with(|| a.tag.cmp(&b.tag)));
        let tag_count = tags.len();
        tags.truncate(MAX_GALLERY_TAGS);
        let entry = GalleryEntry { alias: alias.to_string(), repo, created_at: row.created_at, catalog, has_logo };
        Ok(Some(GalleryRepository { entry, tags, tag_count }))
    }

    /// The repository's logo (a PNG: the catalog accepts no other type), if it has one.
    pub async fn gallery_logo(&self, alias: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let Some((repo, _)) = self.gallery_repo(alias, name).await? else { return Ok(None) };
        Ok(self.meta.repository_catalog(repo.key()).await?.and_then(|c| c.logo))
    }
}

/// The logo's content type: the catalog stores PNGs only (`catalog::check_logo`).
pub const LOGO_CONTENT_TYPE: &str = "image/png";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_needle_is_trimmed_cut_and_ascii_lower_cased() {
        assert_eq!(gallery_needle("  NGinx "), "nginx");
        assert_eq!(gallery_needle("É"), "É");
        assert_eq!(gallery_needle(&"x".repeat(500)).len(), MAX_GALLERY_QUERY);
    }
}
