//! AWS Signature Version 4 signing, for the one AWS call this client makes
//! (ECR `GetAuthorizationToken`).
//!
//! Written here rather than taken from `aws-sigv4`: that crate drags the aws-smithy runtime
//! types (and a second hmac/sha2 generation) into every binary using this client, for one
//! POST with a fixed header set. The HMAC and SHA-256 primitives come from the `hmac` and
//! `sha2` crates the workspace already uses; only the canonical request assembly is ours,
//! and it is checked against the AWS test suite and against berth's own verifier.

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::OffsetDateTime;
use url::Url;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

pub(crate) struct SigningKey<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// The `x-amz-date` value for `now` (`20150830T123600Z`).
pub(crate) fn amz_date(now: OffsetDateTime) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    now.to_offset(time::UtcOffset::UTC).format(&fmt).unwrap_or_default()
}

/// The `Authorization` header value for a request. `headers` are the headers to sign
/// (lowercase names; must include `host` and `x-amz-date`, whose value is the signing time).
pub(crate) fn authorization(key: &SigningKey, method: &str, url: &Url, headers: &[(&str, &str)], body: &[u8]) -> String {
    let mut headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), collapse_spaces(v))).collect();
    headers.sort();
    let amz_date = headers.iter().find(|(n, _)| n == "x-amz-date").map(|(_, v)| v.clone()).unwrap_or_default();
    let date = amz_date.get(..8).unwrap_or_default();
    let signed_headers = headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        canonical_path(url),
        canonical_query(url),
        hex::encode(Sha256::digest(body))
    );
    let scope = format!("{date}/{}/{}/aws4_request", key.region, key.service);
    let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
    let k_date = hmac(format!("AWS4{}", key.secret_access_key).as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, key.region.as_bytes());
    let k_service = hmac(&k_region, key.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    format!("{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}", key.access_key_id)
}

/// Services other than S3 sign the already-encoded path encoded once more.
fn canonical_path(url: &Url) -> String {
    utf8_percent_encode(url.path(), PATH).to_string()
}

fn canonical_query(url: &Url) -> String {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (utf8_percent_encode(&k, UNRESERVED).to_string(), utf8_percent_encode(&v, UNRESERVED).to_string()))
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

fn collapse_spaces(v: &str) -> String {
    v.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail; no unwrap on the request path.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// `get-vanilla` from the AWS Signature Version 4 test suite.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let key = SigningKey { access_key_id: AKID, secret_access_key: SECRET, region: "us-east-1", service: "service" };
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        let date = amz_date(datetime!(2015-08-30 12:36:00 UTC));
        assert_eq!(date, "20150830T123600Z");
        let auth = authorization(&key, "GET", &url, &[("Host", "example.amazonaws.com"), ("X-Amz-Date", &date)], b"");
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// What GetAuthorizationToken sends, checked by the verifier berth itself runs on its ECR API.
    #[test]
    fn berths_verifier_accepts_an_ecr_call() {
        let key = SigningKey { access_key_id: AKID, secret_access_key: SECRET, region: "eu-west-3", service: "ecr" };
        let url = Url::parse("http://127.0.0.1:5123/").unwrap();
        let now = OffsetDateTime::now_utc();
        let date = amz_date(now);
        let target = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
        let body = b"{}";
        let signed = [
            ("host", "127.0.0.1:5123"),
            ("x-amz-date", date.as_str()),
            ("x-amz-target", target),
            ("content-type", "application/x-amz-json-1.1"),
        ];
        let auth = authorization(&key, "POST", &url, &signed, body);
        let mut headers = http::HeaderMap::new();
        for (n, v) in signed {
            headers.insert(http::HeaderName::from_static(n), http::HeaderValue::from_str(v).unwrap());
        }
        headers.insert(http::header::AUTHORIZATION, http::HeaderValue::from_str(&auth).unwrap());
        let payload = hex::encode(Sha256::digest(body));
        let parts = berth_iam::sigv4::RequestParts { method: "POST", path: "/", query: None, headers: &headers, payload_sha256: &payload };
        let parsed = berth_iam::sigv4::parse(&parts).unwrap();
        assert_eq!(parsed.credential().service, "ecr");
        berth_iam::sigv4::verify(&parts, &parsed, SECRET, now).unwrap();
        assert!(berth_iam::sigv4::verify(&parts, &parsed, "another secret", now).is_err());
    }
}
