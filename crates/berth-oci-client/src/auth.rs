//! Credentials, `WWW-Authenticate` challenges and bearer tokens.

use std::fmt;

use base64::Engine;
use serde::Deserialize;
use url::Url;

/// How we prove who we are to the remote registry.
///
/// `Debug` never shows a password or secret key (the access key ID is an identifier, not a
/// secret, and is shown).
#[derive(Clone)]
pub enum Credentials {
    Anonymous,
    /// Sent as Basic to a registry that challenges with Basic, and to a Bearer challenge's
    /// token service when a token is needed.
    Basic {
        username: String,
        password: String,
    },
    /// An AWS access key: the password is an ECR authorization token, obtained with the ECR
    /// API's `GetAuthorizationToken` (SigV4-signed) and used as Basic `AWS:<token>` exactly
    /// like `Basic`. Works against Amazon ECR and against another berth.
    Ecr {
        access_key_id: String,
        secret_access_key: String,
        region: String,
        /// Where the ECR API answers; `None` means the registry's own base URL (berth serves
        /// both APIs on one listener; Amazon ECR's is `https://api.ecr.<region>.amazonaws.com`).
        api_endpoint: Option<Url>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &"<redacted>").finish()
            }
            Credentials::Ecr { access_key_id, region, api_endpoint, .. } => f
                .debug_struct("Ecr")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"<redacted>")
                .field("region", region)
                .field("api_endpoint", &api_endpoint.as_ref().map(Url::as_str))
                .finish(),
        }
    }
}

pub(crate) fn basic_header(username: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
}

/// One challenge of a `WWW-Authenticate` header: lowercase scheme, parameters with
/// lowercase names and unquoted values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Parses every challenge of one or more `WWW-Authenticate` values (RFC 7235:
/// `scheme param=value, param="quoted, with commas", Scheme2 ...`). A `token68` (as in
/// `Negotiate abc==`) is skipped, which no registry auth scheme uses.
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut p = Parser { s: header.as_bytes(), i: 0 };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip(|c| c == b' ' || c == b'\t' || c == b',');
        if p.done() {
            return out;
        }
        let scheme = p.token();
        if scheme.is_empty() {
            // Not a token character where a scheme must start: skip it rather than loop.
            p.i += 1;
            continue;
        }
        let mut challenge = Challenge { scheme: scheme.to_ascii_lowercase(), params: Vec::new() };
        while let Some(param) = p.param() {
            challenge.params.push(param);
        }
        out.push(challenge);
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> String {
        let start = self.i;
        self.skip(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c));
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    /// `name=value` followed by an optional comma; `None` (position unchanged) when what
    /// follows is not a parameter, i.e. the next challenge's scheme or the end.
    fn param(&mut self) -> Option<(String, String)> {
        let start = self.i;
        self.skip(|c| c == b' ' || c == b'\t' || c == b',');
        let name = self.token();
        self.skip(|c| c == b' ' || c == b'\t');
        if name.is_empty() || self.peek() != Some(b'=') {
            self.i = start;
            return None;
        }
        self.i += 1;
        self.skip(|c| c == b' ' || c == b'\t');
        let value = if self.peek() == Some(b'"') { self.quoted() } else { self.token() };
        self.skip(|c| c == b' ' || c == b'\t');
        if self.peek() == Some(b',') {
            self.i += 1;
        }
        Some((name.to_ascii_lowercase(), value))
    }

    fn quoted(&mut self) -> String {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        out.push(escaped);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A token service's answer (distribution's token spec; OAuth2 uses `access_token`).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub token: Option<String>,
    pub access_token: Option<String>,
    pub expires_in: Option<u64>,
}

/// Scope strings for a repository operation: `repository:<name>:pull` or `...:pull,push`.
pub(crate) fn repo_scope(repo: &str, push: bool) -> String {
    format!("repository:{repo}:{}", if push { "pull,push" } else { "pull" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.example.com/token"));
        assert_eq!(c[0].param("service"), Some("registry.example.com"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn several_challenges_spaces_escapes_and_tokens() {
        let c =
            parse_challenges(r#"Basic realm="say \"hi\", please" , Bearer realm=https://t/x, service = reg ,error="insufficient_scope""#);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some(r#"say "hi", please"#));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("https://t/x"));
        assert_eq!(c[1].param("service"), Some("reg"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
        assert_eq!(parse_challenges("Basic")[0], Challenge { scheme: "basic".into(), params: vec![] });
        assert!(parse_challenges("  ,  ").is_empty());
        // Garbage does not loop forever or panic.
        assert!(parse_challenges("=\"x, ,=").iter().all(|c| c.params.is_empty()));
    }

    #[test]
    fn debug_hides_secrets() {
        let basic = Credentials::Basic { username: "alice".into(), password: "hunter2-secret".into() };
        let ecr = Credentials::Ecr {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "very-secret-key".into(),
            region: "us-east-1".into(),
            api_endpoint: None,
        };
        let shown = format!("{basic:?} {ecr:?} {basic:#?}");
        assert!(shown.contains("alice") && shown.contains("AKIAEXAMPLE"));
        assert!(!shown.contains("hunter2-secret") && !shown.contains("very-secret-key"), "{shown}");
    }
}
