//! Verification of AWS Signature Version 4 on incoming requests.
//!
//! The aws CLI, boto3 and the AWS SDKs sign ECR calls with the scope
//! `<yyyymmdd>/<region>/ecr/aws4_request`, either in the `Authorization` header or, for
//! presigned URLs, in the query string. Verification is two steps so the caller can find
//! the secret between them:
//!
//! ```text
//! let parsed = sigv4::parse(&parts)?;                        // no secret needed
//! let secret = lookup(parsed.credential().access_key_id)?;   // caller's key store
//! sigv4::verify(&parts, &parsed, &secret, OffsetDateTime::now_utc())?;
//! ```
//!
//! `verify` authenticates the region and service of the credential scope (they are part of
//! the signing key) but does not restrict them: the caller decides which services it answers
//! to (`ecr`, `ecr-public`, ...) and may compare `credential().service`.
//!
//! We verify by hand rather than with the `aws-sigv4` crate because that crate only signs:
//! it has no API to rebuild the canonical request from a received request (raw path, raw
//! query, the client's own signed-header list) and compare. The HMAC, SHA-256, hex and
//! percent-encoding primitives all come from crates.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc2822;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// The only algorithm SigV4 (as opposed to SigV4a) defines.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Payload hash value a client sends when it chose not to sign the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Largest clock difference AWS tolerates between client and server.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(15);
/// Longest validity of a presigned URL (7 days), as in AWS.
pub const MAX_PRESIGNED_EXPIRES_SECS: i64 = 604_800;

const TERMINATOR: &str = "aws4_request";

/// RFC 3986 unreserved characters stay as they are; everything else is `%XX` (uppercase hex).
const QUERY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// Same as [`QUERY_ENCODE`] but `/` separates path segments and is kept.
const PATH_ENCODE: &AsciiSet = &QUERY_ENCODE.remove(b'/');

/// The parts of an HTTP request that SigV4 covers, borrowed from the server's request type.
///
/// `headers` must contain `host`. HTTP/2 requests carry the host in the `:authority`
/// pseudo-header instead, so an HTTP/2 caller inserts `host` from the URI authority first.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// Raw path, percent-encoded exactly as received (no decoding).
    pub path: &'a str,
    /// Raw query string without the `?`, exactly as received.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// Lowercase hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`] when the server has not
    /// hashed the body (then the value of `x-amz-content-sha256` is trusted for the
    /// signature and the caller must check the body against it itself).
    pub payload_sha256: &'a str,
}

/// The credential scope of a signature: `<access key>/<yyyymmdd>/<region>/<service>/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    /// `yyyymmdd`
    pub date: String,
    pub region: String,
    pub service: String,
}

impl Credential {
    /// `<yyyymmdd>/<region>/<service>/aws4_request`, the scope line of the string to sign.
    pub fn scope(&self) -> String {
        format!("{}/{}/{}/{TERMINATOR}", self.date, self.region, self.service)
    }
}

/// Where the client put the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureLocation {
    /// `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
    Header,
    /// Presigned URL; valid for `expires_secs` from the request time.
    Query { expires_secs: i64 },
}

/// A signature taken apart, before the secret key is known.
#[derive(Debug, Clone)]
pub struct ParsedSignature {
    credential: Credential,
    /// Lowercase header names, in the order the client listed them.
    signed_headers: Vec<String>,
    /// Lowercase hex, 64 characters.
    signature: String,
    location: SignatureLocation,
    /// Request time in the ISO 8601 basic form used in the string to sign (`20150830T123600Z`).
    amz_date: String,
    timestamp: OffsetDateTime,
    session_token: Option<String>,
}

impl ParsedSignature {
    /// The credential scope; look the secret up by `credential().access_key_id`.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }
    pub fn signed_headers(&self) -> &[String] {
        &self.signed_headers
    }
    pub fn location(&self) -> SignatureLocation {
        self.location
    }
    pub fn is_presigned(&self) -> bool {
        matches!(self.location, SignatureLocation::Query { .. })
    }
    /// When the client says it signed the request.
    pub fn timestamp(&self) -> OffsetDateTime {
        self.timestamp
    }
    /// `X-Amz-Security-Token`, if the client sent temporary credentials.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }
}

/// Why a request's signature was not accepted. Each variant maps to one AWS error code
/// (`MissingAuthenticationToken`, `IncompleteSignature`, `InvalidSignatureException`
/// "Signature expired", `SignatureDoesNotMatch`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigError {
    #[error("request is not signed: no Authorization header and no X-Amz-Signature query parameter")]
    Missing,
    #[error("malformed signature: {0}")]
    Malformed(String),
    #[error("signature expired: {0}")]
    Expired(String),
    #[error("x-amz-content-sha256 {claimed} does not match the SHA-256 of the body {actual}")]
    PayloadHashMismatch { claimed: String, actual: String },
    #[error("the request signature we calculated does not match the signature provided")]
    SignatureMismatch,
}

fn malformed(msg: impl Into<String>) -> SigError {
    SigError::Malformed(msg.into())
}

/// The service a request is signed for (the credential scope's fourth field), read without
/// verifying anything: routes Query-protocol calls, which carry no `X-Amz-Target`, to their API.
pub fn scope_service(headers: &http::HeaderMap, query: Option<&str>) -> Option<String> {
    let from_header = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let cred = v.split("Credential=").nth(1)?;
        Some(cred.split([',', ' ']).next()?.to_string())
    });
    let credential =
        from_header.or_else(|| parse_query(query.unwrap_or("")).into_iter().find(|(k, _)| k == "X-Amz-Credential").map(|(_, v)| v))?;
    credential.split('/').nth(3).map(str::to_string)
}

/// Finds and parses the signature of a request, from the `Authorization` header or from the
/// presigned-URL query parameters. Checks syntax only; [`verify`] checks time and signature.
pub fn parse(req: &RequestParts) -> Result<ParsedSignature, SigError> {
    let auth_header = req.headers.get(http::header::AUTHORIZATION);
    let query = parse_query(req.query.unwrap_or(""));
    let in_query = query.iter().any(|(k, _)| k == "X-Amz-Signature" || k == "X-Amz-Algorithm");
    match (auth_header, in_query) {
        (Some(_), true) => {
            Err(malformed("only one authentication method is allowed: Authorization header or X-Amz-Signature query, not both"))
        }
        (None, false) => Err(SigError::Missing),
        (Some(value), false) => {
            let value = value.to_str().map_err(|_| malformed("Authorization header is not visible ASCII"))?;
            parse_header_auth(req, value)
        }
        (None, true) => parse_query_auth(&query),
    }
}

fn parse_header_auth(req: &RequestParts, value: &str) -> Result<ParsedSignature, SigError> {
    let value = value.trim();
    let (algorithm, rest) = value.split_once(|c: char| c.is_ascii_whitespace()).unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(malformed(format!("unsupported authorization algorithm {algorithm:?}, expected {ALGORITHM}")));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for component in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let (key, val) =
            component.split_once('=').ok_or_else(|| malformed(format!("authorization component {component:?} is not key=value")))?;
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => return Err(malformed(format!("unknown authorization component {other:?}"))),
        };
        if slot.replace(val.trim()).is_some() {
            return Err(malformed(format!("authorization component {key} appears twice")));
        }
    }
    let credential = parse_credential(credential.ok_or_else(|| malformed("Authorization header has no Credential"))?)?;
    let signed_headers = parse_signed_headers(signed_headers.ok_or_else(|| malformed("Authorization header has no SignedHeaders"))?)?;
    let signature = parse_signature_hex(signature.ok_or_else(|| malformed("Authorization header has no Signature"))?)?;

    // X-Amz-Date wins over Date, as in AWS; either must be covered by the signature, or a
    // replayed request could carry a fresh date.
    let (date_header, amz_date, timestamp) = if let Some(v) = req.headers.get("x-amz-date") {
        let v = v.to_str().map_err(|_| malformed("X-Amz-Date is not visible ASCII"))?;
        let ts = parse_amz_date(v.trim())?;
        ("x-amz-date", v.trim().to_string(), ts)
    } else if let Some(v) = req.headers.get(http::header::DATE) {
        let v = v.to_str().map_err(|_| malformed("Date is not visible ASCII"))?;
        let ts = parse_http_date(v.trim())?;
        ("date", format_amz_date(ts)?, ts)
    } else {
        return Err(malformed("request has neither an X-Amz-Date nor a Date header"));
    };
    if !signed_headers.iter().any(|h| h == date_header) {
        return Err(malformed(format!("{date_header} must be among the signed headers")));
    }
    let session_token = match req.headers.get("x-amz-security-token") {
        Some(v) => Some(v.to_str().map_err(|_| malformed("X-Amz-Security-Token is not visible ASCII"))?.to_string()),
        None => None,
    };
    finish(credential, signed_headers, signature, SignatureLocation::Header, amz_date, timestamp, session_token)
}

fn parse_query_auth(query: &[(String, String)]) -> Result<ParsedSignature, SigError> {
    let get = |name: &str| -> Result<Option<&str>, SigError> {
        let mut values = query.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(malformed(format!("query parameter {name} appears more than once")));
        }
        Ok(first)
    };
    let require = |name: &str| get(name)?.ok_or_else(|| malformed(format!("presigned request has no {name} query parameter")));
    let algorithm = require("X-Amz-Algorithm")?;
    if algorithm != ALGORITHM {
        return Err(malformed(format!("unsupported X-Amz-Algorithm {algorithm:?}, expected {ALGORITHM}")));
    }
    let credential = parse_credential(require("X-Amz-Credential")?)?;
    let amz_date = require("X-Amz-Date")?.to_string();
    let timestamp = parse_amz_date(&amz_date)?;
    let expires = require("X-Amz-Expires")?;
    let expires_secs: i64 = expires.parse().ok().filter(|s| (1..=MAX_PRESIGNED_EXPIRES_SECS).contains(s)).ok_or_else(|| {
        malformed(format!("X-Amz-Expires {expires:?} must be a number of seconds from 1 to {MAX_PRESIGNED_EXPIRES_SECS}"))
    })?;
    let signed_headers = parse_signed_headers(require("X-Amz-SignedHeaders")?)?;
    let signature = parse_signature_hex(require("X-Amz-Signature")?)?;
    let session_token = get("X-Amz-Security-Token")?.map(str::to_string);
    finish(credential, signed_headers, signature, SignatureLocation::Query { expires_secs }, amz_date, timestamp, session_token)
}

fn finish(
    credential: Credential,
    signed_headers: Vec<String>,
    signature: String,
    location: SignatureLocation,
    amz_date: String,
    timestamp: OffsetDateTime,
    session_token: Option<String>,
) -> Result<ParsedSignature, SigError> {
    // AWS rejects a scope whose date is not the request's date: otherwise a signing key
    // derived for one day could be used with any timestamp.
    if !amz_date.starts_with(&credential.date) {
        return Err(malformed(format!("credential scope date {} does not match request date {amz_date}", credential.date)));
    }
    Ok(ParsedSignature { credential, signed_headers, signature, location, amz_date, timestamp, session_token })
}

fn parse_credential(value: &str) -> Result<Credential, SigError> {
    let parts: Vec<&str> = value.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts.as_slice() else {
        return Err(malformed(format!("Credential {value:?} must be <access key>/<yyyymmdd>/<region>/<service>/aws4_request")));
    };
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(malformed(format!("Credential {value:?} has an empty access key, region or service")));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(format!("Credential date {date:?} must be yyyymmdd")));
    }
    if *terminator != TERMINATOR {
        return Err(malformed(format!("Credential must end with {TERMINATOR}, not {terminator:?}")));
    }
    Ok(Credential {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
    })
}

fn parse_signed_headers(value: &str) -> Result<Vec<String>, SigError> {
    let headers: Vec<String> = value.split(';').map(str::to_string).collect();
    if let Some(bad) = headers.iter().find(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase() || b.is_ascii_whitespace())) {
        return Err(malformed(format!("SignedHeaders {value:?} must be lowercase names separated by ';' (bad entry {bad:?})")));
    }
    // The canonical request lists headers sorted; a client that sent them unsorted signed
    // something else, so refuse instead of silently re-sorting.
    if headers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(malformed(format!("SignedHeaders {value:?} must be sorted and without duplicates")));
    }
    if !headers.iter().any(|h| h == "host") {
        return Err(malformed("host must be among the signed headers"));
    }
    Ok(headers)
}

fn parse_signature_hex(value: &str) -> Result<String, SigError> {
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("Signature must be 64 hex characters"));
    }
    Ok(value.to_ascii_lowercase())
}

/// `20150830T123600Z`
fn parse_amz_date(value: &str) -> Result<OffsetDateTime, SigError> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(value, format)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|e| malformed(format!("X-Amz-Date {value:?} is not yyyymmddThhmmssZ: {e}")))
}

/// `Sun, 30 Aug 2015 12:36:00 GMT` (IMF-fixdate; RFC 2822 parsing accepts the `GMT` zone).
fn parse_http_date(value: &str) -> Result<OffsetDateTime, SigError> {
    OffsetDateTime::parse(value, &Rfc2822).map_err(|e| malformed(format!("Date header {value:?} is not an HTTP date: {e}")))
}

fn format_amz_date(ts: OffsetDateTime) -> Result<String, SigError> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    ts.to_offset(time::UtcOffset::UTC).format(format).map_err(|e| malformed(format!("cannot format request date: {e}")))
}

/// Splits a raw query into decoded pairs. `+` decodes to a space as in HTML forms, which is
/// what the AWS SDKs assume when they canonicalise (they never send a literal `+` themselves).
fn parse_query(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// Checks the time window and the signature. `secret_access_key` is the secret of
/// `parsed.credential().access_key_id`.
pub fn verify(req: &RequestParts, parsed: &ParsedSignature, secret_access_key: &str, now: OffsetDateTime) -> Result<(), SigError> {
    check_time(parsed, now)?;
    let string_to_sign = string_to_sign(req, parsed)?;
    let key = signing_key(secret_access_key, &parsed.credential);
    let expected = hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    // Constant time, so response timing does not reveal how many leading characters of a
    // forged signature were right.
    if bool::from(expected.as_bytes().ct_eq(parsed.signature.as_bytes())) {
        Ok(())
    } else {
        Err(SigError::SignatureMismatch)
    }
}

fn check_time(parsed: &ParsedSignature, now: OffsetDateTime) -> Result<(), SigError> {
    let ts = parsed.timestamp;
    if ts - MAX_CLOCK_SKEW > now {
        return Err(SigError::Expired(format!("request date {} is more than 15 minutes after the server time {now}", parsed.amz_date)));
    }
    match parsed.location {
        SignatureLocation::Header => {
            if ts + MAX_CLOCK_SKEW < now {
                return Err(SigError::Expired(format!(
                    "request date {} is more than 15 minutes before the server time {now}",
                    parsed.amz_date
                )));
            }
        }
        SignatureLocation::Query { expires_secs } => {
            if ts + Duration::seconds(expires_secs) < now {
                return Err(SigError::Expired(format!(
                    "presigned request from {} expired after {expires_secs} seconds (server time {now})",
                    parsed.amz_date
                )));
            }
        }
    }
    Ok(())
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`
fn signing_key(secret: &str, credential: &Credential) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), credential.date.as_bytes());
    let k_region = hmac_sha256(&k_date, credential.region.as_bytes());
    let k_service = hmac_sha256(&k_region, credential.service.as_bytes());
    hmac_sha256(&k_service, TERMINATOR.as_bytes())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC is defined for keys of any length, so `new_from_slice` cannot fail here; the
    // fallback keeps the function total without an unwrap.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The string to sign:
/// `AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of canonical request>`.
pub fn string_to_sign(req: &RequestParts, parsed: &ParsedSignature) -> Result<String, SigError> {
    let canonical = canonical_request(req, parsed)?;
    Ok(format!("{ALGORITHM}\n{}\n{}\n{}", parsed.amz_date, parsed.credential.scope(), hex::encode(Sha256::digest(canonical.as_bytes()))))
}

/// The canonical request the client must have signed, per the AWS SigV4 documentation for
/// services other than S3. Exposed so an error response or a log can show it, as AWS does.
pub fn canonical_request(req: &RequestParts, parsed: &ParsedSignature) -> Result<String, SigError> {
    let method = req.method.to_ascii_uppercase();
    let path = canonical_path(req.path);
    let query = canonical_query(req.query.unwrap_or(""), parsed.is_presigned());
    let mut headers = String::new();
    for name in &parsed.signed_headers {
        let mut values = req.headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            return Err(malformed(format!("signed header {name} is not present in the request")));
        }
        let mut joined = Vec::new();
        for value in values {
            let value = value.to_str().map_err(|_| malformed(format!("signed header {name} is not visible ASCII")))?;
            joined.push(trim_all(value));
        }
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&joined.join(","));
        headers.push('\n');
    }
    let payload = payload_hash(req, parsed)?;
    Ok(format!("{method}\n{path}\n{query}\n{headers}\n{}\n{payload}", parsed.signed_headers.join(";")))
}

/// The payload line of the canonical request: the client's `x-amz-content-sha256` if sent
/// (it signs that value), else the server's hash of the body.
fn payload_hash<'a>(req: &'a RequestParts, parsed: &ParsedSignature) -> Result<Cow<'a, str>, SigError> {
    let claimed = match req.headers.get("x-amz-content-sha256") {
        Some(v) if !parsed.is_presigned() || parsed.signed_headers.iter().any(|h| h == "x-amz-content-sha256") => {
            Some(v.to_str().map_err(|_| malformed("x-amz-content-sha256 is not visible ASCII"))?.trim())
        }
        _ => None,
    };
    let Some(claimed) = claimed else {
        return Ok(Cow::Borrowed(req.payload_sha256));
    };
    if claimed.starts_with("STREAMING-") {
        // Chunked (aws-chunked) uploads are an S3 feature; no ECR client uses them.
        return Err(malformed(format!("x-amz-content-sha256 {claimed} (chunked signing) is not supported")));
    }
    let server_hashed = req.payload_sha256 != UNSIGNED_PAYLOAD;
    if claimed != UNSIGNED_PAYLOAD && server_hashed && !claimed.eq_ignore_ascii_case(req.payload_sha256) {
        return Err(SigError::PayloadHashMismatch { claimed: claimed.to_string(), actual: req.payload_sha256.to_string() });
    }
    Ok(Cow::Owned(claimed.to_string()))
}

/// Non-S3 services normalise the path (RFC 3986 dot-segment removal, empty segments
/// dropped) and then URI-encode the already-encoded path once more, so `%20` becomes
/// `%2520`. This matches botocore and aws-sigv4.
fn canonical_path(raw: &str) -> String {
    let raw = if raw.is_empty() { "/" } else { raw };
    let mut segments: Vec<&str> = Vec::new();
    for segment in raw.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = format!("/{}", segments.join("/"));
    let ends_with_slash = ["/", "/.", "/.."].iter().any(|s| raw.ends_with(s));
    if ends_with_slash && !normalized.ends_with('/') {
        normalized.push('/');
    }
    utf8_percent_encode(&normalized, PATH_ENCODE).to_string()
}

/// Parameters decoded, re-encoded with RFC 3986 rules, sorted by name then value, joined
/// with `&`. A presigned request's own `X-Amz-Signature` is not part of what was signed.
fn canonical_query(raw: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = parse_query(raw)
        .into_iter()
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| (utf8_percent_encode(&k, QUERY_ENCODE).to_string(), utf8_percent_encode(&v, QUERY_ENCODE).to_string()))
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Trims leading and trailing spaces and collapses runs of spaces into one (the SigV4
/// "Trimall" rule; only spaces, as in the AWS SDKs).
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut last_space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' {
            if !last_space {
                out.push(c);
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    use http::HeaderValue;
    use std::time::{Duration as StdDuration, SystemTime};
    use time::macros::datetime;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// A request as the server sees it after the client signed it.
    struct Received {
        method: String,
        path: String,
        query: Option<String>,
        headers: HeaderMap,
        payload: String,
    }

    impl Received {
        fn parts(&self) -> RequestParts<'_> {
            RequestParts {
                method: &self.method,
                path: &self.path,
                query: self.query.as_deref(),
                headers: &self.headers,
                payload_sha256: &self.payload,
            }
        }
    }

    fn sha256_hex(body: &[u8]) -> String {
        hex::encode(Sha256::digest(body))
    }

    /// Signs with the official aws-sigv4 crate and returns what the server would receive.
    fn sign_with_sdk(method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8], at: OffsetDateTime, presign: Option<u64>) -> Received {
        let identity = Credentials::new(AKID, SECRET, None, None, "test").into();
        let mut settings = SigningSettings::default();
        if let Some(secs) = presign {
            settings.signature_location = aws_sigv4::http_request::SignatureLocation::QueryParams;
            settings.expires_in = Some(StdDuration::from_secs(secs));
        }
        let time = SystemTime::UNIX_EPOCH + StdDuration::from_secs(u64::try_from(at.unix_timestamp()).expect("positive"));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("ecr")
            .time(time)
            .settings(settings)
            .build()
            .expect("params")
            .into();
        let signable = SignableRequest::new(method, uri, headers.iter().copied(), SignableBody::Bytes(body)).expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut request = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut request = request.body(()).expect("request");
        instructions.apply_to_request_http1x(&mut request);
        let uri = request.uri().clone();
        let mut headers = request.headers().clone();
        headers.insert("host", HeaderValue::from_str(uri.authority().expect("authority").as_str()).expect("host"));
        Received {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers,
            payload: sha256_hex(body),
        }
    }

    fn check(r: &Received, secret: &str, now: OffsetDateTime) -> Result<(), SigError> {
        let parsed = parse(&r.parts())?;
        assert_eq!(parsed.credential().access_key_id, AKID);
        verify(&r.parts(), &parsed, secret, now)
    }

    const T0: OffsetDateTime = datetime!(2024-03-05 10:20:30 UTC);

    fn ecr_call() -> Received {
        sign_with_sdk(
            "POST",
            "https://api.ecr.us-east-1.amazonaws.com/",
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"),
            ],
            br#"{"maxResults":10}"#,
            T0,
            None,
        )
    }

    #[test]
    fn sdk_signed_ecr_call_verifies() {
        let r = ecr_call();
        check(&r, SECRET, T0).expect("valid");
        let parsed = parse(&r.parts()).expect("parse");
        assert_eq!(
            parsed.credential(),
            &Credential { access_key_id: AKID.into(), date: "20240305".into(), region: "us-east-1".into(), service: "ecr".into() }
        );
        assert!(!parsed.is_presigned());
    }

    #[test]
    fn odd_paths_and_queries_verify() {
        let uris = [
            "https://example.com:8443/v2/team/app/blobs/uploads/?digest=sha256%3Aabc&n=1&n=0&empty=&flag",
            "https://example.com/a%20b/%E2%9C%93/c~d_e.f-g?q=hello%20world&z=%2F%2B%3D&a=%C3%A9",
            "https://example.com/foo/./bar/../baz//qux/?Action=ListUsers&Version=2010-05-08",
            "https://example.com/path%2Fwith%2Fencoded%2Fslashes?x=(paren)*star!bang'quote",
        ];
        for uri in uris {
            let r = sign_with_sdk("GET", uri, &[("x-amz-meta-odd", "  spaced   value  ")], b"", T0, None);
            check(&r, SECRET, T0).unwrap_or_else(|e| panic!("{uri}: {e}"));
        }
    }

    #[test]
    fn presigned_urls_verify() {
        for uri in ["https://example.com/", "https://example.com/v2/a%20b/manifests/latest?foo=bar&baz=%24qux"] {
            let r = sign_with_sdk("GET", uri, &[], b"", T0, Some(3600));
            let parsed = parse(&r.parts()).expect("parse");
            assert_eq!(parsed.location(), SignatureLocation::Query { expires_secs: 3600 });
            assert!(r.headers.get("authorization").is_none());
            check(&r, SECRET, T0).unwrap_or_else(|e| panic!("{uri}: {e}"));
            // Valid until X-Amz-Date + X-Amz-Expires, not just 15 minutes.
            check(&r, SECRET, T0 + Duration::minutes(59)).expect("within expiry");
            assert!(matches!(check(&r, SECRET, T0 + Duration::minutes(61)), Err(SigError::Expired(_))));
            assert!(matches!(check(&r, SECRET, T0 - Duration::minutes(16)), Err(SigError::Expired(_))));
        }
    }

    #[test]
    fn presigned_tampered_query_fails() {
        let mut r = sign_with_sdk("GET", "https://example.com/x?foo=bar", &[], b"", T0, Some(600));
        r.query = r.query.map(|q| q.replace("foo=bar", "foo=baz"));
        assert_eq!(check(&r, SECRET, T0), Err(SigError::SignatureMismatch));
    }

    #[test]
    fn wrong_secret_fails() {
        assert_eq!(check(&ecr_call(), "not-the-secret", T0), Err(SigError::SignatureMismatch));
    }

    #[test]
    fn tampered_header_fails() {
        let mut r = ecr_call();
        r.headers.insert("x-amz-target", HeaderValue::from_static("AmazonEC2ContainerRegistry_V20150921.DeleteRepository"));
        assert_eq!(check(&r, SECRET, T0), Err(SigError::SignatureMismatch));
    }

    #[test]
    fn tampered_body_fails() {
        let mut r = ecr_call();
        r.payload = sha256_hex(br#"{"maxResults":11}"#);
        assert_eq!(check(&r, SECRET, T0), Err(SigError::SignatureMismatch));
    }

    #[test]
    fn unsigned_extra_header_is_ignored() {
        let mut r = ecr_call();
        r.headers.insert("user-agent", HeaderValue::from_static("changed by a proxy"));
        check(&r, SECRET, T0).expect("unsigned headers are not covered");
    }

    #[test]
    fn clock_skew_window() {
        let r = ecr_call();
        check(&r, SECRET, T0 + Duration::minutes(14)).expect("14 minutes late");
        check(&r, SECRET, T0 - Duration::minutes(14)).expect("14 minutes early");
        check(&r, SECRET, T0 + Duration::minutes(15)).expect("exactly 15 minutes");
        assert!(matches!(check(&r, SECRET, T0 + Duration::minutes(16)), Err(SigError::Expired(_))));
        assert!(matches!(check(&r, SECRET, T0 - Duration::minutes(16)), Err(SigError::Expired(_))));
    }

    #[test]
    fn content_sha256_header_must_match_body() {
        let mut r = sign_with_sdk("PUT", "https://example.com/blob", &[("x-amz-content-sha256", &sha256_hex(b"data"))], b"data", T0, None);
        check(&r, SECRET, T0).expect("matching hash");
        r.payload = sha256_hex(b"other");
        assert!(matches!(check(&r, SECRET, T0), Err(SigError::PayloadHashMismatch { .. })));
        // A server that streams the body and hashes later passes UNSIGNED-PAYLOAD; the claimed
        // hash is then trusted for the signature.
        r.payload = UNSIGNED_PAYLOAD.into();
        check(&r, SECRET, T0).expect("server did not hash");
    }

    #[test]
    fn unsigned_payload_header_accepted() {
        let identity = Credentials::new(AKID, SECRET, None, None, "test").into();
        let time = SystemTime::UNIX_EPOCH + StdDuration::from_secs(u64::try_from(T0.unix_timestamp()).expect("positive"));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("ecr")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let headers = [("x-amz-content-sha256", UNSIGNED_PAYLOAD)];
        let signable = SignableRequest::new("PUT", "https://example.com/up", headers.iter().copied(), SignableBody::UnsignedPayload)
            .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut request =
            http::Request::builder().method("PUT").uri("https://example.com/up").header(headers[0].0, headers[0].1).body(()).expect("req");
        instructions.apply_to_request_http1x(&mut request);
        let mut hm = request.headers().clone();
        hm.insert("host", HeaderValue::from_static("example.com"));
        let r = Received { method: "PUT".into(), path: "/up".into(), query: None, headers: hm, payload: sha256_hex(b"anything") };
        check(&r, SECRET, T0).expect("UNSIGNED-PAYLOAD");
    }

    #[test]
    fn missing_and_malformed() {
        let empty = HeaderMap::new();
        let parts = RequestParts { method: "GET", path: "/", query: None, headers: &empty, payload_sha256: UNSIGNED_PAYLOAD };
        assert_eq!(parse(&parts).err(), Some(SigError::Missing));

        let mut r = ecr_call();
        let auth = r.headers.get("authorization").expect("auth").to_str().expect("ascii").to_string();
        let cases = [
            auth.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
            auth.replace("SignedHeaders=", "SignedHeaderz="),
            auth.replace("/ecr/aws4_request", "/ecr/aws5_request"),
            auth.replace("host;", ""),
            auth.replace("Credential=AKIDEXAMPLE/20240305", "Credential=AKIDEXAMPLE/20240306"),
            auth.split(", Signature=").next().expect("prefix").to_string(),
            format!("{auth}0"),
        ];
        for bad in cases {
            r.headers.insert("authorization", HeaderValue::from_str(&bad).expect("value"));
            assert!(matches!(parse(&r.parts()), Err(SigError::Malformed(_))), "{bad}");
        }

        let mut r = ecr_call();
        r.headers.remove("x-amz-date");
        assert!(matches!(parse(&r.parts()), Err(SigError::Malformed(m)) if m.contains("X-Amz-Date")));

        let mut r = ecr_call();
        r.query = Some("X-Amz-Signature=abc".into());
        assert!(matches!(parse(&r.parts()), Err(SigError::Malformed(m)) if m.contains("only one")));
    }

    /// `get-vanilla` from the AWS SigV4 test suite, computed here step by step.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
        );
        let empty_hash = sha256_hex(b"");
        let parts = RequestParts { method: "GET", path: "/", query: None, headers: &headers, payload_sha256: &empty_hash };
        let parsed = parse(&parts).expect("parse");
        assert_eq!(
            canonical_request(&parts, &parsed).expect("creq"),
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            string_to_sign(&parts, &parsed).expect("sts"),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        verify(&parts, &parsed, SECRET, datetime!(2015-08-30 12:40:00 UTC)).expect("get-vanilla");
        assert_eq!(verify(&parts, &parsed, "wrong", datetime!(2015-08-30 12:40:00 UTC)), Err(SigError::SignatureMismatch));
    }

    #[test]
    fn date_header_instead_of_x_amz_date() {
        // Same as get-vanilla but dated with `Date:`; the string to sign uses the ISO form.
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("date", HeaderValue::from_static("Sun, 30 Aug 2015 12:36:00 GMT"));
        let empty_hash = sha256_hex(b"");
        let unsigned =
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=date;host, Signature=";
        headers.insert("authorization", HeaderValue::from_str(&format!("{unsigned}{}", "0".repeat(64))).expect("v"));
        let parts = RequestParts { method: "GET", path: "/", query: None, headers: &headers, payload_sha256: &empty_hash };
        let parsed = parse(&parts).expect("parse");
        let sts = string_to_sign(&parts, &parsed).expect("sts");
        assert!(sts.starts_with("AWS4-HMAC-SHA256\n20150830T123600Z\n"));
        let sig = hex::encode(hmac_sha256(&signing_key(SECRET, parsed.credential()), sts.as_bytes()));
        let mut headers = headers.clone();
        headers.insert("authorization", HeaderValue::from_str(&format!("{unsigned}{sig}")).expect("v"));
        let parts = RequestParts { method: "GET", path: "/", query: None, headers: &headers, payload_sha256: &empty_hash };
        let parsed = parse(&parts).expect("parse");
        verify(&parts, &parsed, SECRET, datetime!(2015-08-30 12:36:00 UTC)).expect("date header");
    }

    #[test]
    fn canonical_helpers() {
        assert_eq!(canonical_path(""), "/");
        assert_eq!(canonical_path("/a%20b/./c/../d/"), "/a%2520b/d/");
        assert_eq!(canonical_path("/.."), "/");
        assert_eq!(canonical_query("b=2&a=1&a=0&c", false), "a=0&a=1&b=2&c=");
        assert_eq!(canonical_query("k=a+b%2Bc~", false), "k=a%20b%2Bc~");
        assert_eq!(canonical_query("X-Amz-Signature=x&a=1", true), "a=1");
        assert_eq!(trim_all("  a   b  c "), "a b c");
    }
}
