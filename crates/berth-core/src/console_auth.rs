//! Sign-in for the web console: an access key pair or a console password, and the
//! session the console keeps in a cookie afterwards.
//!
//! A session value is a registry-token-shaped MAC'd claim set, but signed with a key
//! derived from the token signing key for this purpose only, so a console cookie is never
//! a valid `docker login` password and a registry token is never a console session.
//!
//! Sessions end server-side too: each user row holds a console session epoch, a session is
//! `e<epoch>.<token>` with the token MAC'd under a key bound to that epoch (so the epoch cannot
//! be edited), and it is valid only while the user's epoch is still the one it names. Sign-out
//! and a console password change move the epoch on, ending every session of the user.

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

/// The key a session of `epoch` is MAC'd with.
fn epoch_session_key(signing_key: &[u8], epoch: i64) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&session_key(signing_key)).unwrap_or_else(|_| unreachable_hmac());
    mac.update(b"epoch\n");
    mac.update(epoch.to_string().as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Splits `e<epoch>.<token>`.
fn split_session(value: &str) -> Option<(i64, &str)> {
    let (epoch, token) = value.strip_prefix('e')?.split_once('.')?;
    if epoch.is_empty() || epoch.len() > 19 || !epoch.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((epoch.parse().ok()?, token))
}

fn session_invalid() -> RegistryError {
    RegistryError::Unauthenticated(AuthFailure::SessionInvalid)
}

/// What a console sign-in form submitted.
pub enum ConsoleCredentials<'a> {
    AccessKey { access_key_id: &'a str, secret: &'a str },
    Password { account: &'a str, user: &'a str, password: &'a str },
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
                    return Err(RegistryError::invalid(format!("console password must be at least {MIN_PASSWORD_LEN} characters")));
                }
                let salt =
                    SaltString::encode_b64(&random_bytes::<16>()?).map_err(|e| RegistryError::invalid(format!("password salt: {e}")))?;
                let hash = Argon2::default()
                    .hash_password(p.as_bytes(), &salt)
                    .map_err(|e| RegistryError::invalid(format!("hashing password: {e}")))?;
                Some(hash.to_string())
            }
            None => None,
        };
        if !self.meta.set_console_password(&arn, hash.as_deref()).await? {
            return Err(RegistryError::invalid(format!("no user {arn}")));
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

    /// Signs in: checks the credentials and issues a console session value for the cookie, and
    /// its expiry (unix seconds).
    pub async fn console_sign_in(&self, credentials: ConsoleCredentials<'_>, transport: Transport) -> Result<(String, i64)> {
        let (principal, epoch) = match credentials {
            ConsoleCredentials::AccessKey { access_key_id, secret } => {
                let principal = self.authenticate_access_key_secret(access_key_id, secret, transport).await?;
                let epoch = self.meta.console_session_state(&principal.arn).await?.map(|s| s.epoch);
                (principal, epoch)
            }
            ConsoleCredentials::Password { account, user, password } => {
                // The epoch is read before the (slow) password check: a password change landing
                // during the check then ends this session as well.
                let epoch = self.meta.console_session_state(&user_arn(account, user)).await?.map(|s| s.epoch);
                (self.authenticate_console_password(account, user, password, transport).await?, epoch)
            }
        };
        let Some(epoch) = epoch else { return Err(unauthenticated()) };
        self.issue_console_session(&principal, epoch)
    }

    fn issue_console_session(&self, principal: &Principal, epoch: i64) -> Result<(String, i64)> {
        let expires_at = self.now() / 1000 + CONSOLE_SESSION_SECS;
        let key = self.current_signing_key()?;
        let claims = token::TokenClaims {
            account: principal.account.clone(),
            principal_arn: principal.arn.clone(),
            access_key_id: principal.access_key_id.clone(),
            expires_at,
        };
        Ok((format!("e{epoch}.{}", token::issue(&epoch_session_key(&key, epoch), &claims)), expires_at))
    }

    /// The principal of a console session cookie. The session dies with its access key (for
    /// key sign-ins) or its user's console password (for password sign-ins), and when the
    /// user's session epoch moves on (sign-out, password change).
    pub async fn authenticate_console_session(&self, value: &str, transport: Transport) -> Result<Principal> {
        let now = self.now() / 1000;
        let (epoch, token) = split_session(value).ok_or_else(session_invalid)?;
        let claims = self
            .all_signing_keys()
            .iter()
            .find_map(|k| token::verify(&epoch_session_key(k, epoch), token, now).ok())
            .ok_or_else(session_invalid)?;
        let state = self.meta.console_session_state(&claims.principal_arn).await?.ok_or_else(session_invalid)?;
        if state.epoch != epoch {
            return Err(session_invalid());
        }
        if claims.access_key_id.is_empty() {
            if !state.has_password {
                return Err(session_invalid());
            }
        } else {
            match self.access_key(&claims.access_key_id).await? {
                Some(k) if k.active && k.user_arn == claims.principal_arn => {}
                _ => return Err(session_invalid()),
            }
        }
        Ok(Principal::from_claims(claims, transport))
    }

    /// Signs out: ends every console session of the principal's user (the epoch moves on), so a
    /// copied cookie stops working too.
    pub async fn end_console_sessions(&self, principal: &Principal) -> Result<()> {
        self.meta.end_console_sessions(&principal.arn).await?;
        Ok(())
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
