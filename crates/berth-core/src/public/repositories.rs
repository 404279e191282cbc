//! The public actions that differ from their private namesakes: CreateRepository with catalog
//! data, and DescribeImageTags. Everything else the ECR Public API does is the private
//! registry's service calls on the public scope.

use berth_store::{ImageRow, RepositoryRow, TagStatus};

use super::catalog::CatalogInput;
use super::is_public;
use crate::auth::Principal;
use crate::error::Result;
use crate::names::Repo;
use crate::repositories::NewRepository;
use crate::{Registry, RegistryError};

/// One entry of DescribeImageTags: a tag and the image it names. ECR Public's `createdAt` of a
/// tag is the image's push time here (berth keeps no time per tag).
#[derive(Debug, Clone)]
pub struct ImageTagDetail {
    pub tag: String,
    pub image: ImageRow,
}

impl Registry {
    /// ECR Public's CreateRepository: the catalog is checked before anything is created, the
    /// account's public registry (and so its alias) exists afterwards, and the repository is
    /// created as CreateRepository creates one (`ecr-public:CreateRepository`, and
    /// `ecr-public:TagResource` with tags). The catalog row is written right after the
    /// repository; should that write fail, the repository stays, without catalog data, and
    /// the error is returned (PutRepositoryCatalogData completes it).
    pub async fn create_public_repository_as(
        &self,
        principal: &Principal,
        repo: &Repo,
        catalog: Option<CatalogInput>,
        tags: Vec<(String, String)>,
    ) -> Result<RepositoryRow> {
        if !is_public(&repo.registry()) {
            return Err(RegistryError::invalid(format!("{repo} is not in a public registry")));
        }
        if let Some(c) = &catalog {
            c.validate()?;
        }
        self.public_registry(&repo.key().account).await?;
        let row = self.create_repository_as(principal, repo, NewRepository { tags, ..NewRepository::default() }).await?;
        if let Some(c) = catalog {
            self.put_repository_catalog(repo, c).await?;
        }
        Ok(row)
    }

    /// DescribeImageTags: the repository's tags in name order after `after`, each with its
    /// image; `more` when there are further tags.
    pub async fn describe_image_tags(&self, repo: &Repo, after: Option<&str>, limit: u32) -> Result<(Vec<ImageTagDetail>, bool)> {
        // image_ids pages (digest, tag) pairs; tags are what this listing orders by, so it
        // reads every tagged pair (a repository's tags, bounded by its images) and pages here.
        let mut pairs = self.image_ids(repo, TagStatus::Tagged, None, None, u32::MAX).await?;
        pairs.sort_by(|a, b| a.1.cmp(&b.1));
        let start = after.map_or(0, |a| pairs.partition_point(|(_, t)| t.as_str() <= a));
        let page: Vec<_> = pairs.iter().skip(start).take(limit as usize).collect();
        let more = pairs.len() > start + page.len();
        let (ids, _) = self
            .describe_image_ids(
                repo,
                &page.iter().map(|(d, _)| crate::images::ImageId { digest: Some(d.to_string()), tag: None }).collect::<Vec<_>>(),
            )
            .await?;
        let details = page
            .iter()
            .filter_map(|(d, t)| ids.iter().find(|r| r.digest == *d).map(|image| ImageTagDetail { tag: t.clone(), image: image.clone() }))
            .collect();
        Ok((details, more))
    }
}
