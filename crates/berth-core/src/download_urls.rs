//! Download URLs (GetDownloadUrlForLayer): a capability to read one blob of one repository for a
//! few minutes, and nothing else.
//!
//! The URL carries `berth_download=d1.<base64url(claims)>.<base64url(HMAC-SHA256)>`. The claims
//! name (account, region, repository, digest, expiry) and the principal it was issued to (for the
//! request log only; it grants nothing). The MAC key is derived from the token signing key with a
//! purpose label, so a capability is never a registry password or a console session, and neither
//! of those is a capability. It was authorized as `ecr:GetDownloadUrlForLayer` when issued; a
//! request carrying it is authorized by it alone, and only as a GET or HEAD of that blob there.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::{constant_time_eq, AuthFailure};
use crate::error::Result;
use crate::names::Repo;
use crate::{Digest, Registry, RegistryError};

/// How long a download URL works. ECR documents no lifetime for its presigned layer URLs; ten
/// minutes is ample for the one GET a URL is for, and short if it leaks (logs, proxies, shells).
pub const DOWNLOAD_URL_TTL_SECS: i64 = 10 * 60;
/// The query parameter a download URL carries its capability in.
pub const DOWNLOAD_URL_PARAM: &str = "berth_download";
const VERSION: &str = "d1";
const KEY_LABEL: &[u8] = b"berth-download-url-key\n";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    account: String,
    region: String,
    repository: String,
    digest: String,
    /// Unix seconds; refused from this second on.
    expires_at: i64,
    /// Who asked for the URL: for the request log, never for authorization.
    issued_to: String,
}

fn capability_key(signing_key: &[u8]) -> Option<Hmac<Sha256>> {
    // A one-way, purpose-bound derivation: HMAC(signing key, label).
    let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(signing_key).ok()?;
    derive.update(KEY_LABEL);
    <Hmac<Sha256> as Mac>::new_from_slice(&derive.finalize().into_bytes()).ok()
}

fn mac(signing_key: &[u8], payload: &str) -> Vec<u8> {
    let Some(mut mac) = capability_key(signing_key) else { return Vec::new() };
    mac.update(VERSION.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn refused(why: &str) -> RegistryError {
    RegistryError::Unauthenticated(AuthFailure::DownloadUrl(why.to_string()))
}

impl Registry {
    /// The capability a download URL carries: a GET of `digest` in `repo` until the returned
    /// expiry (unix seconds). The caller has been authorized for `ecr:GetDownloadUrlForLayer`.
    pub fn issue_download_capability(&self, repo: &Repo, digest: &Digest, issued_to: &str) -> Result<(String, i64)> {
        let expires_at = self.now() / 1000 + DOWNLOAD_URL_TTL_SECS;
        let key = repo.key();
        let claims = Claims {
            account: key.account.clone(),
            region: key.region.clone(),
            repository: key.name.clone(),
            digest: digest.to_string(),
            expires_at,
            issued_to: issued_to.to_string(),
        };
        let json = serde_json::to_vec(&claims).map_err(|e| RegistryError::invalid(format!("download URL claims: {e}")))?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        let sig = URL_SAFE_NO_PAD.encode(mac(&self.current_signing_key()?, &payload));
        Ok((format!("{VERSION}.{payload}.{sig}"), expires_at))
    }

    /// Checks a download capability for a read of `digest` in `repo` (the repository the request
    /// addresses). Returns the principal it was issued to, for the request log.
    pub async fn verify_download_capability(&self, value: &str, repo: &Repo, digest: &Digest) -> Result<String> {
        let mut parts = value.split('.');
        let (Some(VERSION), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(refused("the download URL is malformed"));
        };
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| refused("the download URL is malformed"))?;
        let verified = |keys: Vec<Vec<u8>>| keys.iter().any(|k| constant_time_eq(&mac(k, payload), &sig));
        let mut ok = verified(self.all_signing_keys());
        if !ok && self.may_reload_signing_keys() {
            // Another node may have rotated the keys since this one loaded them.
            self.reload_signing_keys().await?;
            ok = verified(self.all_signing_keys());
        }
        if !ok {
            return Err(refused("the download URL's signature is invalid"));
        }
        // Only authenticated bytes are decoded from here on.
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| refused("the download URL is malformed"))?;
        if self.now() / 1000 >= claims.expires_at {
            return Err(refused("the download URL has expired; call GetDownloadUrlForLayer again"));
        }
        let key = repo.key();
        let same_blob = claims.account == key.account
            && claims.region == key.region
            && claims.repository == key.name
            && claims.digest == digest.to_string();
        if !same_blob {
            return Err(refused("the download URL is for another blob or repository"));
        }
        Ok(claims.issued_to)
    }
}
