//! Replication to a registry of this berth (another region or another account): the blobs are
//! linked into the destination repository and the manifests stored there, with the image's
//! tags. Bytes move only when the destination repository encrypts under another key than the
//! source (a second object sealed under that key, checked against the digest on the way).

use berth_iam::policy::{self, AuthzRequest, Decision, Policy};
use berth_store::{RefKind, RepositoryRow};
use std::collections::HashMap;
use std::sync::LazyLock;

use super::worker::Failure;
use crate::manifest;
use crate::names::{Reference, RegistryRef, Repo, Tag};
use crate::templates::AppliedFor;
use crate::{Digest, Registry, RegistryError};

/// What ECR's replication service-linked role may do (AWSServiceRoleForECRReplication): the
/// identity side of a cross-account copy. The destination's registry policy is the other side.
static REPLICATION_ROLE: LazyLock<Option<Policy>> = LazyLock::new(|| {
    Policy::parse_identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:ReplicateImage","ecr:CreateRepository"],"Resource":"*"}]}"#,
    )
    .ok()
});

impl Registry {
    /// Copies `digest` of `source`, with the tags it has now, into the repository of the same
    /// name in `dest`, creating it (from a REPLICATION template) on first use.
    pub(crate) async fn replicate_local(&self, source: &Repo, digest: &Digest, dest: &RegistryRef) -> Result<(), Failure> {
        let image = self.meta.get_image(source.key(), digest).await.map_err(Failure::retry)?.ok_or_else(|| {
            Failure::permanent(format!("ImageNotFound: the image {digest} was deleted from {source} before it was replicated"))
        })?;
        let target = Repo::new(dest, source.name.clone());
        let existing = self.meta.get_repository(target.key()).await.map_err(Failure::retry)?;
        if dest.account != source.key().account {
            self.replication_permitted(source, &target, "ecr:ReplicateImage").await?;
            if existing.is_none() {
                self.replication_permitted(source, &target, "ecr:CreateRepository").await?;
            }
        }
        let row = match existing {
            Some(r) => r,
            None => self.create_replication_target(&target).await?,
        };
        let tags = image.tags.iter().filter_map(|t| Tag::parse(t).ok()).collect::<Vec<_>>();
        self.copy_manifest_tree(source, &target, &row, digest, &tags).await
    }

    async fn create_replication_target(&self, target: &Repo) -> Result<RepositoryRow, Failure> {
        let template = self.template_for(&target.registry(), target.name.as_str(), AppliedFor::Replication).await.map_err(Failure::from)?;
        match self.create_repository_from_template(target, template.as_ref()).await {
            Ok(r) => Ok(r),
            Err(RegistryError::RepositoryExists(_)) => self.existing_repository(target).await.map_err(Failure::from),
            Err(e) => Err(Failure::from(e)),
        }
    }

    /// The destination registry's policy must let the source account do `action` on the
    /// destination repository, as ECR requires for a cross-account destination.
    async fn replication_permitted(&self, source: &Repo, target: &Repo, action: &str) -> Result<(), Failure> {
        let policy_text = self.meta.get_registry_policy(&target.key().account, &target.key().region).await.map_err(Failure::retry)?;
        let parsed = policy_text.as_deref().and_then(|t| Policy::parse_resource(t).ok());
        let source_account = &source.key().account;
        let principal = policy::Principal { arn: format!("arn:aws:iam::{source_account}:root"), account: source_account.clone() };
        let arn = target.arn();
        let context = HashMap::new();
        let req =
            AuthzRequest { principal: &principal, action, resource: &arn, resource_account: &target.key().account, context: &context };
        let identity: Vec<&Policy> = REPLICATION_ROLE.iter().collect();
        let resource: Vec<&Policy> = parsed.iter().collect();
        match policy::authorize(&req, &identity, &resource) {
            Decision::Allow => Ok(()),
            decision => Err(Failure::permanent(format!(
                "AccessDenied: the registry policy of {} in {} does not allow account {source_account} {action} on {arn} ({decision})",
                target.key().account,
                target.key().region
            ))),
        }
    }

    /// Stores `digest` (and, for an index, every manifest it lists, first) in `target`, each
    /// blob linked from `source`; `tags` point at the top manifest.
    async fn copy_manifest_tree(
        &self,
        source: &Repo,
        target: &Repo,
        row: &RepositoryRow,
        digest: &Digest,
        tags: &[Tag],
    ) -> Result<(), Failure> {
        let m = self.meta.get_manifest_by_digest(source.key(), digest).await.map_err(Failure::retry)?.ok_or_else(|| {
            Failure::permanent(format!("ImageNotFound: manifest {digest} was deleted from {source} before it was replicated"))
        })?;
        let parsed = manifest::parse(&m.content, &m.media_type).map_err(Failure::from)?;
        let scope = self.write_scope(&row.settings);
        for r in &parsed.references {
            match r.kind {
                RefKind::Blob => {
                    if !self.link_blob_from(source, target, &scope, &r.digest).await.map_err(Failure::from)? {
                        return Err(Failure::permanent(format!("LayerNotFound: blob {} of {digest} is not stored in {source}", r.digest)));
                    }
                }
                RefKind::Manifest => {
                    let present = self.meta.get_manifest_by_digest(target.key(), &r.digest).await.map_err(Failure::retry)?.is_some();
                    if !present {
                        Box::pin(self.copy_manifest_tree(source, target, row, &r.digest, &[])).await?;
                    }
                }
            }
        }
        self.store_manifest(target, &Reference::Digest(digest.clone()), tags, &m.media_type, m.content, true)
            .await
            .map(drop)
            .map_err(Failure::from)
    }
}
