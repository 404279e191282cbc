//! ECR Public: an account's public registry, served beside its private ones.
//!
//! Public repositories are ordinary repositories of the registry scope
//! `RegistryRef { account, region: PUBLIC_REGION }`. `"@public"` is deliberately no region
//! name (`addressing::is_region_name`), so no private request (a SigV4 scope's region, a
//! `/v2/<account>/<region>/…` path) can ever address it, while everything written for
//! repositories (images, tags, uploads, blobs, policies, resource tags, GC, encryption under
//! the "aes256" scope) works on it unchanged. The ECR Public API reuses the private
//! registry's service calls on that scope; this module adds only what ECR Public has and ECR
//! has not: the registry alias and catalog data (`alias.rs`, `catalog.rs`), CreateRepository
//! with catalog data and DescribeImageTags (`repositories.rs`), and the gallery's anonymous
//! reads across accounts (`gallery.rs`).
//!
//! IAM: actions in a public registry are `ecr-public:<Action>` ([`iam_action`]), repository
//! ARNs `arn:aws:ecr-public::<account>:repository/<name>` (`Repo::arn`), the registry's
//! `arn:aws:ecr-public::<account>:registry/<account>` ([`registry_arn`]).

mod alias;
mod catalog;
mod gallery;
mod repositories;

pub use alias::{default_alias, validate_alias};
pub use catalog::{CatalogInput, RepositoryCatalog, StoredCatalog, MAX_LOGO_BYTES};
pub use gallery::{gallery_needle, GalleryEntry, GalleryPage, GalleryRepository, LOGO_CONTENT_TYPE, MAX_GALLERY_QUERY, MAX_GALLERY_TAGS};
pub use repositories::ImageTagDetail;

use crate::names::RegistryRef;

/// The "region" of every account's public registry scope (not a valid region name).
pub const PUBLIC_REGION: &str = "@public";

/// The only region ECR Public's API answers in (berth's too; pulls work from any address).
pub const PUBLIC_API_REGION: &str = "us-east-1";

/// The account's public registry scope.
pub fn public_scope(account: &str) -> RegistryRef {
    RegistryRef { account: account.to_string(), region: PUBLIC_REGION.to_string() }
}

pub fn is_public(scope: &RegistryRef) -> bool {
    scope.region == PUBLIC_REGION
}

/// The IAM action `action` is in `scope`: `ecr-public:<action>` in a public registry, else
/// `ecr:<action>`.
pub fn iam_action(scope: &RegistryRef, action: &str) -> String {
    let service = if is_public(scope) { "ecr-public" } else { "ecr" };
    format!("{service}:{action}")
}

/// `arn:aws:ecr-public::<account>:registry/<account>`
pub fn registry_arn(account: &str) -> String {
    format!("arn:aws:ecr-public::{account}:registry/{account}")
}
