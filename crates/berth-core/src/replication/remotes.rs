//! Remote registries: what `berth admin add-remote-registry` records so that a replication
//! destination's registry id (and optionally region) means another registry's URL, with the
//! credentials to push there. Passwords and secret keys are sealed under a key derived from
//! the root key and opened only to push.

use std::fmt;

use berth_store::RemoteRegistryRow;
use zeroize::Zeroizing;

use crate::error::Result;
use crate::{Registry, RegistryError};

/// The root key derivation of remote registry credentials.
const CREDENTIALS_PURPOSE: &str = "berth remote registry credentials v1";

/// How berth authenticates to a remote registry.
#[derive(Clone, PartialEq, Eq)]
pub enum RemoteAuth {
    Anonymous,
    /// Basic credentials (also sent to a token realm).
    Basic {
        username: String,
        password: Zeroizing<String>,
    },
    /// An access key of another berth or of Amazon ECR: registry tokens come from its
    /// GetAuthorizationToken.
    Ecr {
        access_key_id: String,
        secret_access_key: Zeroizing<String>,
    },
}

impl fmt::Debug for RemoteAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteAuth::Anonymous => f.write_str("Anonymous"),
            RemoteAuth::Basic { username, .. } => write!(f, "Basic {{ username: {username:?}, password: <redacted> }}"),
            RemoteAuth::Ecr { access_key_id, .. } => write!(f, "Ecr {{ access_key_id: {access_key_id:?}, secret: <redacted> }}"),
        }
    }
}

impl RemoteAuth {
    fn kind(&self) -> &'static str {
        match self {
            RemoteAuth::Anonymous => "anonymous",
            RemoteAuth::Basic { .. } => "basic",
            RemoteAuth::Ecr { .. } => "ecr",
        }
    }
}

/// A remote registry as the service uses it.
#[derive(Debug, Clone)]
pub struct RemoteRegistry {
    pub registry_id: String,
    /// None: every region of that registry id.
    pub region: Option<String>,
    /// `https://host[:port]`, or `http://…` when `insecure`.
    pub url: String,
    pub auth: RemoteAuth,
    pub insecure: bool,
}

/// A stored remote without its secret (listings).
#[derive(Debug, Clone)]
pub(crate) struct RemoteEntry {
    row: RemoteRegistryRow,
}

impl RemoteEntry {
    /// Whether a destination `{registry_id, region}` goes to this remote.
    pub(crate) fn serves(&self, registry_id: &str, region: &str) -> bool {
        self.row.registry_id == registry_id && (self.row.region.is_empty() || self.row.region == region)
    }
}

fn aad(registry_id: &str, region: &str) -> Vec<u8> {
    format!("{registry_id}\n{region}").into_bytes()
}

impl Registry {
    pub(crate) async fn remote_registries(&self) -> Result<Vec<RemoteEntry>> {
        Ok(self.meta.remote_registries().await?.into_iter().map(|row| RemoteEntry { row }).collect())
    }

    /// `berth admin add-remote-registry`: adds or replaces the remote of that registry id and
    /// region. The URL is checked here (scheme, host); whether it answers is `berth admin
    /// add-remote-registry`'s own check.
    pub async fn put_remote_registry(&self, remote: &RemoteRegistry) -> Result<()> {
        if !super::is_registry_id(&remote.registry_id) {
            return Err(RegistryError::invalid(format!("registry id {:?} is not 12 digits", remote.registry_id)));
        }
        if let Some(region) = &remote.region {
            if !super::is_region(region) {
                return Err(RegistryError::invalid(format!("{region:?} is not a region name")));
            }
        }
        let url = remote.url.trim_end_matches('/');
        let scheme_ok = url.starts_with("https://") || (remote.insecure && url.starts_with("http://"));
        if !scheme_ok || url.split("://").nth(1).is_none_or(|rest| rest.is_empty() || rest.contains(['?', '#', ' '])) {
            return Err(RegistryError::invalid(format!("{url:?} is not an https:// registry URL (http:// needs --insecure)")));
        }
        let region = remote.region.clone().unwrap_or_default();
        let (username, secret): (String, Option<&str>) = match &remote.auth {
            RemoteAuth::Anonymous => (String::new(), None),
            RemoteAuth::Basic { username, password } => (username.clone(), Some(password.as_str())),
            RemoteAuth::Ecr { access_key_id, secret_access_key } => (access_key_id.clone(), Some(secret_access_key.as_str())),
        };
        let sealed_secret = match secret {
            Some(s) => Some(
                self.seal_own_secret(CREDENTIALS_PURPOSE, &aad(&remote.registry_id, &region), s.as_bytes())
                    .map_err(crate::kms::for_repository)?,
            ),
            None => None,
        };
        let row = RemoteRegistryRow {
            registry_id: remote.registry_id.clone(),
            region,
            url: url.to_string(),
            auth_kind: remote.auth.kind().into(),
            username,
            sealed_secret,
            insecure: remote.insecure,
            created_at: self.now(),
        };
        Ok(self.meta.put_remote_registry(&row).await?)
    }

    /// `berth admin remove-remote-registry`; false when there was none.
    pub async fn delete_remote_registry(&self, registry_id: &str, region: Option<&str>) -> Result<bool> {
        Ok(self.meta.delete_remote_registry(registry_id, region.unwrap_or("")).await?)
    }

    /// Every remote, without secrets: (registry id, region, URL, auth kind, username).
    pub async fn list_remote_registries(&self) -> Result<Vec<(String, Option<String>, String, String, String)>> {
        Ok(self
            .remote_registries()
            .await?
            .into_iter()
            .map(|e| {
                let r = e.row;
                (r.registry_id, (!r.region.is_empty()).then_some(r.region), r.url, r.auth_kind, r.username)
            })
            .collect())
    }

    /// The remote a destination goes to, with its secret opened: a remote for that very
    /// region wins over one for every region. None: the destination is local.
    pub(crate) async fn remote_for(&self, registry_id: &str, region: &str) -> Result<Option<RemoteRegistry>> {
        let entries = self.remote_registries().await?;
        let best = entries.into_iter().filter(|e| e.serves(registry_id, region)).max_by_key(|e| !e.row.region.is_empty());
        let Some(RemoteEntry { row }) = best else { return Ok(None) };
        let secret = match &row.sealed_secret {
            Some(sealed) => Some(
                self.open_own_secret(CREDENTIALS_PURPOSE, &aad(&row.registry_id, &row.region), sealed)
                    .map_err(crate::kms::for_repository)?,
            ),
            None => None,
        };
        let secret = || -> Zeroizing<String> {
            Zeroizing::new(secret.as_ref().map(|s| String::from_utf8_lossy(s).into_owned()).unwrap_or_default())
        };
        let auth = match row.auth_kind.as_str() {
            "basic" => RemoteAuth::Basic { username: row.username.clone(), password: secret() },
            "ecr" => RemoteAuth::Ecr { access_key_id: row.username.clone(), secret_access_key: secret() },
            _ => RemoteAuth::Anonymous,
        };
        Ok(Some(RemoteRegistry {
            registry_id: row.registry_id,
            region: (!row.region.is_empty()).then_some(row.region),
            url: row.url,
            auth,
            insecure: row.insecure,
        }))
    }
}
