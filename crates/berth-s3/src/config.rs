//! Where the bucket is and how to talk to it.

use std::fmt;
use std::io;
use std::time::Duration;

use berth_store::StoreError;

/// S3 refuses multipart parts below this size (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// S3 refuses parts above this size.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// Connection settings for an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage).
///
/// Credentials left as `None` fall back to the usual AWS environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web identity, ECS/EC2
/// metadata), so secrets need not appear in berth's own configuration.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix every object lives under, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// Endpoint of a non-AWS service, e.g. `http://127.0.0.1:9000`. With `path_style` off the
    /// bucket is put in front of the host name (`https://bucket.host`).
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// `https://host/bucket/key` rather than `https://bucket.host/key` (MinIO, Ceph and Garage
    /// usually want this).
    pub path_style: bool,
    /// Permit a plain-HTTP endpoint (test servers, a sidecar on loopback).
    pub allow_http: bool,
    /// Size of every multipart part but the last. Each append holds about one part in memory;
    /// S3's 10,000-part limit makes `part_size × 9,999` the largest blob (≈ 78 GiB at 8 MiB).
    pub part_size: usize,
    /// When set, `download_url` hands out presigned GET URLs valid for at most this long.
    pub presign_expiry: Option<Duration>,
}

impl S3Config {
    /// A configuration for `bucket` with everything else at its default.
    pub fn new(bucket: impl Into<String>) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            prefix: String::new(),
            endpoint: None,
            region: default_region(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            path_style: false,
            allow_http: false,
            part_size: DEFAULT_PART_SIZE,
            presign_expiry: None,
        }
    }

    /// Parses `s3://bucket` or `s3://bucket/some/prefix`.
    pub fn from_url(url: &str) -> Result<S3Config, StoreError> {
        let invalid = |why: &str| StoreError::io(format!("S3 URL {url:?}"), io::Error::new(io::ErrorKind::InvalidInput, why.to_string()));
        let rest = url.strip_prefix("s3://").ok_or_else(|| invalid("expected s3://bucket[/prefix]"))?;
        if rest.contains(['?', '#']) {
            return Err(invalid("query strings and fragments are not supported; set the other fields directly"));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("missing bucket name"));
        }
        let mut cfg = S3Config::new(bucket);
        cfg.prefix = normalize_prefix(prefix);
        Ok(cfg)
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let invalid = |why: String| StoreError::io("S3 configuration", io::Error::new(io::ErrorKind::InvalidInput, why));
        if self.bucket.is_empty() {
            return Err(invalid("bucket name is empty".into()));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(invalid(format!("part_size {} is outside S3's limits ({MIN_PART_SIZE}..={MAX_PART_SIZE} bytes)", self.part_size)));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(invalid("access_key_id and secret_access_key must be given together".into()));
        }
        Ok(())
    }
}

pub(crate) fn normalize_prefix(prefix: &str) -> String {
    prefix.split('/').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("/")
}

fn default_region() -> String {
    std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "us-east-1".to_string())
}

// Written by hand so that no log line or panic message can carry a secret.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .field("part_size", &self.part_size)
            .field("presign_expiry", &self.presign_expiry)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let c = S3Config::from_url("s3://bkt/some//prefix/").unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("bkt", "some/prefix"));
        assert_eq!(c.part_size, DEFAULT_PART_SIZE);
        let c = S3Config::from_url("s3://bkt").unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("bkt", ""));
        assert!(S3Config::from_url("s3:///x").is_err());
        assert!(S3Config::from_url("http://bkt/x").is_err());
        assert!(S3Config::from_url("s3://bkt/x?region=y").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let mut c = S3Config::new("b");
        c.secret_access_key = Some("very-secret".into());
        c.session_token = Some("token-secret".into());
        let s = format!("{c:?}");
        assert!(!s.contains("very-secret") && !s.contains("token-secret"), "{s}");
    }

    #[test]
    fn rejects_small_parts() {
        let mut c = S3Config::new("b");
        c.part_size = 1024;
        assert!(c.validate().is_err());
    }
}
