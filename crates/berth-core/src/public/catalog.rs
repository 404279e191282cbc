//! Catalog data: what ECR Public's gallery shows of a repository, with the model's limits.
//! The texts and lists are one JSON document (`RepositoryCatalog`) in the repository's
//! catalog row, the logo's bytes apart; PutRepositoryCatalogData replaces the whole of it, the
//! logo included (a put without `logoImageBlob` leaves the repository without a logo).

use berth_store::RepositoryCatalogRow;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::names::Repo;
use crate::{Registry, RegistryError};

/// The model's `LogoImageBlob` maximum (bytes, decoded).
pub const MAX_LOGO_BYTES: usize = 512_000;
const MAX_DESCRIPTION: usize = 1024;
const MAX_LONG_TEXT: usize = 25_600;
const MAX_LIST: usize = 50;
const MAX_LIST_ITEM: usize = 50;
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The texts and lists of a repository's catalog data (ECR Public's `RepositoryCatalogData`
/// without the logo and `marketplaceCertified`, which berth never sets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCatalog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operating_systems: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_text: Option<String>,
}

/// What CreateRepository / PutRepositoryCatalogData carry: the catalog and the logo's bytes
/// (already base64-decoded).
#[derive(Debug, Clone, Default)]
pub struct CatalogInput {
    pub catalog: RepositoryCatalog,
    pub logo: Option<Vec<u8>>,
}

/// A repository's stored catalog data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCatalog {
    pub catalog: RepositoryCatalog,
    pub logo: Option<Vec<u8>>,
    pub updated_at: i64,
}

fn too_long(member: &str, max: usize) -> RegistryError {
    RegistryError::invalid(format!(
        "Invalid parameter at 'catalogData.{member}' failed to satisfy constraint: 'Member must have length less than or equal to {max}'"
    ))
}

fn check_text(member: &str, text: Option<&str>, max: usize) -> Result<()> {
    match text {
        Some(t) if t.chars().count() > max => Err(too_long(member, max)),
        _ => Ok(()),
    }
}

fn check_list(member: &str, items: &[String]) -> Result<()> {
    if items.len() > MAX_LIST {
        return Err(too_long(member, MAX_LIST));
    }
    match items.iter().find(|i| i.is_empty() || i.chars().count() > MAX_LIST_ITEM) {
        Some(bad) => Err(RegistryError::invalid(format!(
            "Invalid parameter at 'catalogData.{member}' failed to satisfy constraint: 'Member must have length between 1 and {MAX_LIST_ITEM}' ({:?})",
            bad.chars().take(60).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// The logo must be a PNG (ECR Public accepts no other type) of at most [`MAX_LOGO_BYTES`].
fn check_logo(logo: &[u8]) -> Result<()> {
    if logo.len() > MAX_LOGO_BYTES {
        return Err(too_long("logoImageBlob", MAX_LOGO_BYTES));
    }
    if !logo.starts_with(PNG_SIGNATURE) {
        return Err(RegistryError::invalid("Invalid parameter at 'catalogData.logoImageBlob': the repository logo must be a PNG image"));
    }
    Ok(())
}

impl CatalogInput {
    /// Every limit of ECR Public's model, before anything is written.
    pub fn validate(&self) -> Result<()> {
        let c = &self.catalog;
        check_text("description", c.description.as_deref(), MAX_DESCRIPTION)?;
        check_text("aboutText", c.about_text.as_deref(), MAX_LONG_TEXT)?;
        check_text("usageText", c.usage_text.as_deref(), MAX_LONG_TEXT)?;
        check_list("architectures", &c.architectures)?;
        check_list("operatingSystems", &c.operating_systems)?;
        self.logo.as_deref().map(check_logo).transpose()?;
        Ok(())
    }
}

impl Registry {
    /// GetRepositoryCatalogData: None when the repository never had any.
    pub async fn repository_catalog(&self, repo: &Repo) -> Result<Option<StoredCatalog>> {
        self.existing_repository(repo).await?;
        let Some(row) = self.meta.repository_catalog(repo.key()).await? else {
            return Ok(None);
        };
        // Written by this module, so it parses; a row that does not is shown as empty.
        let catalog = serde_json::from_str(&row.catalog).unwrap_or_else(|e| {
            tracing::warn!(repository = %repo.key().name, error = %e, "unreadable catalog data");
            RepositoryCatalog::default()
        });
        Ok(Some(StoredCatalog { catalog, logo: row.logo, updated_at: row.updated_at }))
    }

    /// PutRepositoryCatalogData: validated, then replaces the repository's catalog data.
    pub async fn put_repository_catalog(&self, repo: &Repo, input: CatalogInput) -> Result<StoredCatalog> {
        input.validate()?;
        let catalog = serde_json::to_string(&input.catalog).map_err(|e| RegistryError::invalid(e.to_string()))?;
        let row = RepositoryCatalogRow { catalog, logo: input.logo, updated_at: self.now() };
        if !self.meta.put_repository_catalog(repo.key(), &row).await? {
            return Err(RegistryError::NameUnknown(repo.clone()));
        }
        Ok(StoredCatalog { catalog: input.catalog, logo: row.logo, updated_at: row.updated_at })
    }
}
