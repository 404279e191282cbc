//! Sign-in for the web console: an access key pair or a console password, and the
//! session the console keeps in a cookie afterwards.
//!
//! A session value is a registry-token-shaped MAC'd claim set, but signed with a key
//! derived from the token signing key for this purpose only, so a console cookie is never
//! a valid `docker login` password and a registry token is never a console session.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use berth_iam::token;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::{constant_time_eq, random_bytes, user_arn, AuthFailure, Principal, Transport};
use crate::error::Result;
use crate::{Registry, RegistryError};

/// How long a console session lasts.
pub const CONSOLE_SESSION_SECS: i64 = 8 * 3600;
const SESSION_KEY_LABEL: &[u8] = b"berth-console-session-key\n";
static ARGON2_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Shortest console password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

fn unauthenticated() -> RegistryError {
    RegistryError::Unauthenticated(AuthFailure::BadCredentials)
}

fn session_key(signing_key: &[u8]) -> Vec<u8> {
    // HMAC with a fixed label: a one-way, purpose-bound derivation of the signing key.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(signing_key).unwrap_or_else(|_| unreachable_hmac());
    mac.update(SESSION_KEY_LABEL);
    mac.finalize().into_bytes().to_vec()
}

#[cold]
fn unreachable_hmac() -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot happen.
    <Hmac<Sha256> as Mac>::new_from_slice(b"k").expect("HMAC accepts any key length")
}

impl Registry {
    /// Console sign-in with an access key id and its secret (compared in constant time).
    pub async fn authenticate_access_key_secret(&self, access_key_id: &str, secret: &str, transport: Transport) -> Result<Principal> {
        let key = self.access_key(access_key_id).await?;
        let Some(key) = key.filter(|k| k.active) else { return Err(unauthenticated()) };
        if !constant_time_eq(key.secret.as_bytes(), secret.as_bytes()) {
            return Err(unauthenticated());
        }
        Ok(Principal {
            arn: key.user_arn.clone(),
            account: key.account.clone(),
            access_key_id: key.access_key_id.clone(),
            region: None,
            source_ip: transport.source_ip,
            secure_transport: transport.secure,
        })
    }

    /// Sets (or with None removes) a user's console password.
    pub async fn set_console_password(&self, account: &str, user: &str, password: Option<&str>) -> Result<()> {
        let arn = user_arn(account, user);
        let hash = match password {
            Some(p) => {
                if p.chars().count() < MIN_PASSWORD_LEN {
                    return Err(RegistryError::InvalidParameter(format!(
                        "console password must be at least {MIN_PASSWORD_LEN} characters"
                    )));
                }
                let salt = SaltString::encode_b64(&random_bytes::<16>()?)
                    .map_err(|e| RegistryError::InvalidParameter(format!("password salt: {e}")))?;
                let hash = Argon2::default()
                    .hash_password(p.as_bytes(), &salt)
                    .map_err(|e| RegistryError::InvalidParameter(format!("hashing password: {e}")))?;
                Some(hash.to_string())
            }
            None => None,
        };
        if !self.meta.set_console_password(&arn, hash.as_deref()).await? {
            return Err(RegistryError::InvalidParameter(format!("no user {arn}")));
        }
        Ok(())
    }

    /// Console sign-in with account, user name and console password. Argon2 runs on a
    /// blocking thread: it is deliberately slow.
    pub async fn authenticate_console_password(
        &self,
        account: &str,
        user: &str,
        password: &str,
        transport: Transport,
    ) -> Result<Principal> {
        let arn = user_arn(account, user);
        let stored = self.meta.console_password(&arn).await?;
        let password = password.to_string();
        // argon2 is deliberately costly (~19 MiB, tens of ms): bound how many run at once so a
        // flood of sign-ins cannot exhaust memory or the blocking pool.
        let _permit = ARGON2_SLOTS.acquire().await.map_err(|_| unauthenticated())?;
        let ok = tokio::task::spawn_blocking(move || match stored {
            Some(stored) => PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok()),
            None => {
                // Same work for an unknown user as for a wrong password: no user enumeration by timing.
                let salt = SaltString::encode_b64(b"berth-no-such-user").ok();
                if let Some(salt) = salt {
                    let _ = Argon2::default().hash_password(password.as_bytes(), &salt);
                }
                false
            }
        })
        .await
        .unwrap_or(false);
        if !ok {
            return Err(unauthenticated());
        }
        Ok(Principal {
            arn,
            account: account.to_string(),
            access_key_id: String::new(),
            region: None,
            source_ip: transport.source_ip,
            secure_transport: transport.secure,
        })
    }

    /// A console session value for the cookie, and its expiry (unix seconds).
    pub fn issue_console_session(&self, principal: &Principal) -> Result<(String, i64)> {
        let expires_at = self.now() / 1000 + CONSOLE_SESSION_SECS;
        let key = self.current_signing_key()?;
        let claims = token::TokenClaims {
            account: principal.account.clone(),
            principal_arn: principal.arn.clone(),
            access_key_id: principal.access_key_id.clone(),
            expires_at,
        };
        Ok((token::issue(&session_key(&key), &claims), expires_at))
    }

    /// The principal of a console session cookie. The session dies with its access key (for
    /// key sign-ins) or its user (for password sign-ins).
    pub async fn authenticate_console_session(&self, value: &str, transport: Transport) -> Result<Principal> {
        let now = self.now() / 1000;
        let claims = self
            .all_signing_keys()
            .iter()
            .find_map(|k| token::verify(&session_key(k), value, now).ok())
            .ok_or(RegistryError::Unauthenticated(AuthFailure::SessionInvalid))?;
        if claims.access_key_id.is_empty() {
            if self.meta.console_password(&claims.principal_arn).await?.is_none() {
                return Err(RegistryError::Unauthenticated(AuthFailure::SessionInvalid));
            }
        } else {
            match self.access_key(&claims.access_key_id).await? {
                Some(k) if k.active && k.user_arn == claims.principal_arn => {}
                _ => return Err(RegistryError::Unauthenticated(AuthFailure::SessionInvalid)),
            }
        }
        Ok(Principal::from_claims(claims, transport))
    }

    /// A per-session CSRF token: an HMAC of the session value, so forms can carry it and the
    /// server can check it without storing anything.
    pub fn console_csrf_token(&self, session: &str) -> Result<String> {
        let key = session_key(&self.current_signing_key()?);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"csrf\n");
        mac.update(session.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// Checks a submitted CSRF token against the session (constant time).
    pub fn check_console_csrf(&self, session: &str, submitted: &str) -> Result<()> {
        let expected = self.console_csrf_token(session)?;
        if constant_time_eq(expected.as_bytes(), submitted.as_bytes()) {
            Ok(())
        } else {
            Err(RegistryError::Denied("the form's CSRF token is missing or wrong; reload the page and try again".into()))
        }
    }
}
