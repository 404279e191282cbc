//! Registry tokens: the password half of `docker login` credentials that ECR's
//! `GetAuthorizationToken` hands out (the user name is always `AWS`).
//!
//! Format (version 1): `b1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`, no padding.
//! The MAC covers a domain-separation prefix plus the version and encoded claims, so a token
//! cannot be confused with any other HMAC the server computes with the same key, and a
//! future format can change the version without old tokens being read as new ones.
//! The alphabet is `[A-Za-z0-9_.-]`: ASCII, and no `:` (which would break `AWS:<password>`
//! Basic credentials).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const VERSION: &str = "b1";
const DOMAIN: &[u8] = b"berth-registry-token\n";
/// How long ECR's authorization tokens last.
pub const DEFAULT_TTL_SECS: i64 = 12 * 60 * 60;
/// The user name `docker login` pairs with the token.
pub const USERNAME: &str = "AWS";

/// What a registry token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// 12-digit account (registry id) the token was issued for.
    pub account: String,
    pub principal_arn: String,
    /// Access key that called GetAuthorizationToken, so revoking the key can revoke tokens.
    pub access_key_id: String,
    /// Unix seconds; the token is refused from this second on.
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed registry token: {0}")]
    Malformed(String),
    #[error("registry token signature is invalid")]
    BadSignature,
    #[error("registry token expired at {expires_at} (unix seconds)")]
    Expired { expires_at: i64 },
}

/// Issues the password for `docker login -u AWS`.
pub fn issue(key: &[u8], claims: &TokenClaims) -> String {
    // Serialising a struct of strings and an integer cannot fail; an empty payload would
    // only yield a token that `verify` rejects as malformed, never a forgeable one.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json);
    let mac = URL_SAFE_NO_PAD.encode(mac(key, &payload));
    format!("{VERSION}.{payload}.{mac}")
}

/// Checks a password from `docker login` / Basic auth and returns its claims.
pub fn verify(key: &[u8], password: &str, now_unix: i64) -> Result<TokenClaims, TokenError> {
    let mut parts = password.split('.');
    let (Some(version), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed("expected three '.'-separated parts".into()));
    };
    if version != VERSION {
        return Err(TokenError::Malformed(format!("unknown token version {version:?}")));
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|e| TokenError::Malformed(format!("signature is not base64url: {e}")))?;
    // Constant-time comparison: timing must not tell a forger how much of a MAC was right.
    // The length check leaks only the (public) MAC length.
    let expected = mac(key, payload);
    if sig.len() != expected.len() || !bool::from(expected.ct_eq(&sig)) {
        return Err(TokenError::BadSignature);
    }
    // Only authenticated bytes are decoded from here on.
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|e| TokenError::Malformed(format!("payload is not base64url: {e}")))?;
    let claims: TokenClaims =
        serde_json::from_slice(&json).map_err(|e| TokenError::Malformed(format!("payload is not token claims: {e}")))?;
    if now_unix >= claims.expires_at {
        return Err(TokenError::Expired { expires_at: claims.expires_at });
    }
    Ok(claims)
}

/// The `authorizationToken` field of a GetAuthorizationToken response:
/// base64 (standard alphabet) of `AWS:<password>`, which clients split into user and password.
pub fn authorization_token(password: &str) -> String {
    STANDARD.encode(format!("{USERNAME}:{password}"))
}

fn mac(key: &[u8], payload: &str) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps it total.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(DOMAIN);
    mac.update(VERSION.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_700_000_000;

    fn claims() -> TokenClaims {
        TokenClaims {
            account: "123456789012".into(),
            principal_arn: "arn:aws:iam::123456789012:user/alice".into(),
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            expires_at: NOW + DEFAULT_TTL_SECS,
        }
    }

    #[test]
    fn roundtrip() {
        let token = issue(KEY, &claims());
        assert!(token.is_ascii() && !token.contains(':'), "{token}");
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        assert_eq!(verify(KEY, &token, NOW), Ok(claims()));
    }

    #[test]
    fn expiry() {
        let token = issue(KEY, &claims());
        let exp = claims().expires_at;
        assert!(verify(KEY, &token, exp - 1).is_ok());
        assert_eq!(verify(KEY, &token, exp), Err(TokenError::Expired { expires_at: exp }));
        assert_eq!(verify(KEY, &token, exp + 3600), Err(TokenError::Expired { expires_at: exp }));
    }

    #[test]
    fn forged_payload() {
        let token = issue(KEY, &claims());
        let mut forged_claims = claims();
        forged_claims.principal_arn = "arn:aws:iam::123456789012:root".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).expect("json"));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(verify(KEY, &forged, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn truncated() {
        let token = issue(KEY, &claims());
        // A well-formed but shortened MAC is a bad signature, not a prefix match.
        let (head, sig) = token.rsplit_once('.').expect("dot");
        let short = URL_SAFE_NO_PAD.encode(&URL_SAFE_NO_PAD.decode(sig).expect("b64")[..16]);
        assert_eq!(verify(KEY, &format!("{head}.{short}"), NOW), Err(TokenError::BadSignature));
        for cut in 1..token.len() {
            assert!(verify(KEY, &token[..cut], NOW).is_err(), "prefix of {cut} bytes accepted");
        }
        let without_sig = token.rsplit_once('.').expect("dot").0;
        assert!(matches!(verify(KEY, without_sig, NOW), Err(TokenError::Malformed(_))));
        assert!(matches!(verify(KEY, "", NOW), Err(TokenError::Malformed(_))));
        assert!(matches!(verify(KEY, &format!("{token}.x"), NOW), Err(TokenError::Malformed(_))));
        assert!(matches!(verify(KEY, &token.replacen("b1", "b2", 1), NOW), Err(TokenError::Malformed(_))));
        assert!(matches!(verify(KEY, "b1.payload.!!!", NOW), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn wrong_key() {
        let token = issue(KEY, &claims());
        assert_eq!(verify(b"another key", &token, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn authorization_token_is_docker_basic_pair() {
        let token = issue(KEY, &claims());
        let decoded = STANDARD.decode(authorization_token(&token)).expect("base64");
        let (user, pass) = std::str::from_utf8(&decoded).expect("utf8").split_once(':').expect("colon");
        assert_eq!((user, pass), (USERNAME, token.as_str()));
    }
}
