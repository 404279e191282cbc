//! `/v2/…` paths parsed into endpoints. Repository names may contain `/`,
//! so the fixed suffixes (`/manifests/<ref>`, `/blobs/uploads/<id>`, …)
//! are matched from the right.

use berth_core::{Registry, RegistryError, RegistryRef, Repo, RepositoryName};

use crate::OciError;

/// An endpoint naming repositories by `N`: a bare name when parsed, a [`Repo`] once the
/// registry the request addresses is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint<N = RepositoryName> {
    Base,
    Catalog,
    Tags { name: N },
    Manifest { name: N, reference: String },
    Blob { name: N, digest: String },
    UploadStart { name: N },
    Upload { name: N, id: String },
    Referrers { name: N, digest: String },
}

impl<N> Endpoint<N> {
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
}

/// A public repository when the path names one (ECR Public's `<alias>/<name>`), else the
/// private repository the path and host address.
async fn place(registry: &Registry, host: Option<&str>, name: RepositoryName) -> Result<Repo, OciError> {
    match registry.public_repository(host, &name).await? {
        Some(public) => Ok(public),
        None => Ok(registry.addressed_repository(host, name)?),
    }
}

impl Endpoint<RepositoryName> {
    /// Places the named repository in the registry the request addresses: by the path's
    /// `<account>/<region>/` prefix, else by the host (see `berth_core::addressing`).
    pub async fn address(self, registry: &Registry, host: Option<&str>) -> Result<(RegistryRef, Endpoint<Repo>), OciError> {
        let ep = match self {
            Endpoint::Base => return Ok((registry.registry_for_host(host), Endpoint::Base)),
            Endpoint::Catalog => return Ok((registry.registry_for_host(host), Endpoint::Catalog)),
            Endpoint::Tags { name } => Endpoint::Tags { name: place(registry, host, name).await? },
            Endpoint::Manifest { name, reference } => Endpoint::Manifest { name: place(registry, host, name).await?, reference },
            Endpoint::Blob { name, digest } => Endpoint::Blob { name: place(registry, host, name).await?, digest },
            Endpoint::UploadStart { name } => Endpoint::UploadStart { name: place(registry, host, name).await? },
            Endpoint::Upload { name, id } => Endpoint::Upload { name: place(registry, host, name).await?, id },
            Endpoint::Referrers { name, digest } => Endpoint::Referrers { name: place(registry, host, name).await?, digest },
        };
        let registry_ref = match &ep {
            Endpoint::Tags { name }
            | Endpoint::Manifest { name, .. }
            | Endpoint::Blob { name, .. }
            | Endpoint::UploadStart { name }
            | Endpoint::Upload { name, .. }
            | Endpoint::Referrers { name, .. } => name.registry(),
            Endpoint::Base | Endpoint::Catalog => registry.registry_for_host(host),
        };
        Ok((registry_ref, ep))
    }

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
