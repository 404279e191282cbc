//! `/v2/…` paths parsed into endpoints. Repository names may contain `/`,
//! so the fixed suffixes (`/manifests/<ref>`, `/blobs/uploads/<id>`, …)
//! are matched from the right.

use berth_core::{RegistryError, RepositoryName};

use crate::OciError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Base,
    Catalog,
    Tags { name: RepositoryName },
    Manifest { name: RepositoryName, reference: String },
    Blob { name: RepositoryName, digest: String },
    UploadStart { name: RepositoryName },
    Upload { name: RepositoryName, id: String },
    Referrers { name: RepositoryName, digest: String },
}

impl Endpoint {
    pub fn parse(path: &str) -> Result<Endpoint, OciError> {
        let rest = path.strip_prefix("/v2").ok_or_else(not_found)?;
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Ok(Endpoint::Base);
        }
        if rest == "_catalog" {
            return Ok(Endpoint::Catalog);
        }
        let name = |n: &str| RepositoryName::parse(n).map_err(OciError::from);
        if let Some(n) = rest.strip_suffix("/tags/list") {
            return Ok(Endpoint::Tags { name: name(n)? });
        }
        if let Some(n) = rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads")) {
            return Ok(Endpoint::UploadStart { name: name(n)? });
        }
        if let Some((n, id)) = rest.rsplit_once("/blobs/uploads/") {
            if id.is_empty() || id.contains('/') {
                return Err(not_found());
            }
            return Ok(Endpoint::Upload { name: name(n)?, id: id.to_string() });
        }
        if let Some((n, r)) = rest.rsplit_once("/manifests/") {
            return Ok(Endpoint::Manifest { name: name(n)?, reference: r.to_string() });
        }
        if let Some((n, d)) = rest.rsplit_once("/blobs/") {
            return Ok(Endpoint::Blob { name: name(n)?, digest: d.to_string() });
        }
        if let Some((n, d)) = rest.rsplit_once("/referrers/") {
            return Ok(Endpoint::Referrers { name: name(n)?, digest: d.to_string() });
        }
        Err(not_found())
    }

    pub fn label(&self) -> &'static str {
        match self {
            Endpoint::Base => "v2_base",
            Endpoint::Catalog => "v2_catalog",
            Endpoint::Tags { .. } => "v2_tags",
            Endpoint::Manifest { .. } => "v2_manifest",
            Endpoint::Blob { .. } => "v2_blob",
            Endpoint::UploadStart { .. } => "v2_upload_start",
            Endpoint::Upload { .. } => "v2_upload",
            Endpoint::Referrers { .. } => "v2_referrers",
        }
    }

    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Endpoint::Base | Endpoint::Catalog => None,
            Endpoint::Tags { name }
            | Endpoint::Manifest { name, .. }
            | Endpoint::Blob { name, .. }
            | Endpoint::UploadStart { name }
            | Endpoint::Upload { name, .. }
            | Endpoint::Referrers { name, .. } => Some(name),
        }
    }
}

fn not_found() -> OciError {
    OciError::NotFound
}

impl From<RegistryError> for OciError {
    fn from(e: RegistryError) -> Self {
        OciError::Registry(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    #[test]
    fn routes() {
        assert_eq!(Endpoint::parse("/v2/").unwrap(), Endpoint::Base);
        assert_eq!(Endpoint::parse("/v2/_catalog").unwrap(), Endpoint::Catalog);
        assert_eq!(Endpoint::parse("/v2/team/app/api/tags/list").unwrap(), Endpoint::Tags { name: n("team/app/api") });
        assert_eq!(
            Endpoint::parse("/v2/a/manifests/b/manifests/latest").unwrap(),
            Endpoint::Manifest { name: n("a/manifests/b"), reference: "latest".into() }
        );
        assert_eq!(Endpoint::parse("/v2/team/app/blobs/uploads/").unwrap(), Endpoint::UploadStart { name: n("team/app") });
        assert_eq!(Endpoint::parse("/v2/team/app/blobs/uploads/abc").unwrap(), Endpoint::Upload { name: n("team/app"), id: "abc".into() });
        assert_eq!(
            Endpoint::parse("/v2/team/app/blobs/sha256:x").unwrap(),
            Endpoint::Blob { name: n("team/app"), digest: "sha256:x".into() }
        );
        assert!(matches!(Endpoint::parse("/v2/../etc/blobs/sha256:x"), Err(OciError::Registry(RegistryError::NameInvalid(_)))));
        assert!(matches!(Endpoint::parse("/v2/team/app/nothing"), Err(OciError::NotFound)));
    }
}
