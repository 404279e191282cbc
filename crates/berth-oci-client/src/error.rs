//! What can go wrong talking to a remote registry, in variants a caller can act on.
//!
//! No variant ever holds a password, secret key or token: messages are built from status
//! codes, OCI error codes and the remote's own error messages only.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The remote refused our credentials (401 after authenticating, or the token service
    /// refused them).
    #[error("unauthorized by the remote registry: {message}")]
    Unauthorized { message: String },
    /// Authenticated, but not allowed (403).
    #[error("denied by the remote registry: {message}")]
    Denied { message: String },
    /// 404, with the OCI error code when the remote sent one (`BLOB_UNKNOWN`,
    /// `MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, ...).
    #[error("not found on the remote registry ({})", code.as_deref().unwrap_or("no error code"))]
    NotFound { code: Option<String> },
    /// 429: the remote asks us to slow down, possibly saying for how long.
    #[error("the remote registry is rate limiting (retry after {retry_after:?})")]
    TooManyRequests { retry_after: Option<Duration> },
    /// Any other unexpected answer, with the first OCI error of its body when there was one.
    #[error("remote registry answered {status}{}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Remote { status: u16, code: Option<String>, message: Option<String> },
    /// Bytes received did not hash to the digest they were asked for.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    /// A request or a stalled stream ran out of time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Connecting, sending or receiving failed below HTTP (reset, refused, DNS, TLS).
    #[error("transport error: {0}")]
    Transport(String),
    /// A plain-HTTP URL (the endpoint or a redirect) while `allow_insecure` is off.
    #[error("refusing plain HTTP to {0} (allow_insecure is off)")]
    Insecure(String),
    /// The endpoint or options cannot work (bad URL, bad user agent, ...).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The remote answered something this client cannot understand (bad challenge,
    /// token response without a token, missing Location, ...).
    #[error("unexpected answer from the remote registry: {0}")]
    Protocol(String),
}

impl ClientError {
    /// Whether doing the same thing again later may succeed: server errors, rate limiting,
    /// timeouts and connection failures. The client's own retry loop uses this too.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Remote { status, .. } => *status >= 500,
            ClientError::TooManyRequests { .. } | ClientError::Timeout(_) | ClientError::Transport(_) => true,
            _ => false,
        }
    }

    /// The OCI error code the remote sent, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::NotFound { code } | ClientError::Remote { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        // reqwest's Display includes the URL; our URLs never carry credentials (they go in
        // headers), so that is safe to keep. Its source chain says *why* (reset, refused).
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        if e.is_timeout() {
            ClientError::Timeout(message)
        } else {
            ClientError::Transport(message)
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    code: Option<String>,
    message: Option<String>,
}

/// The first `{code, message}` of an OCI error body (`{"errors":[...]}`), if it is one.
pub(crate) fn parse_oci_error(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => b.errors.into_iter().next().map(|e| (e.code, e.message)).unwrap_or((None, None)),
        Err(_) => (None, None),
    }
}

/// Maps a non-success answer to an error. `retry_after` is the parsed header for 429.
pub(crate) fn from_status(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> ClientError {
    let (code, message) = parse_oci_error(body);
    let text = || message.clone().or_else(|| code.clone()).unwrap_or_else(|| status.to_string());
    match status {
        StatusCode::UNAUTHORIZED => ClientError::Unauthorized { message: text() },
        StatusCode::FORBIDDEN => ClientError::Denied { message: text() },
        StatusCode::NOT_FOUND => ClientError::NotFound { code },
        StatusCode::TOO_MANY_REQUESTS => ClientError::TooManyRequests { retry_after },
        _ => ClientError::Remote { status: status.as_u16(), code, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_error_body_is_parsed() {
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:ab"}]}"#;
        let e = from_status(StatusCode::NOT_FOUND, body, None);
        assert!(matches!(&e, ClientError::NotFound { code: Some(c) } if c == "BLOB_UNKNOWN"), "{e:?}");
        let e = from_status(StatusCode::BAD_REQUEST, br#"{"errors":[{"code":"DIGEST_INVALID","message":"bad"}]}"#, None);
        assert_eq!(e.to_string(), "remote registry answered 400 DIGEST_INVALID: bad");
        assert!(!e.is_retryable());
        let e = from_status(StatusCode::BAD_GATEWAY, b"<html>", None);
        assert!(matches!(e, ClientError::Remote { status: 502, code: None, message: None }));
        assert!(e.is_retryable());
        assert!(from_status(StatusCode::TOO_MANY_REQUESTS, b"", None).is_retryable());
        assert!(!from_status(StatusCode::FORBIDDEN, b"", None).is_retryable());
    }
}
