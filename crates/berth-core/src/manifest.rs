//! Parsing a pushed manifest into what the registry must know about it:
//! its media type, what it references, its subject and artifact type.
//!
//! We parse with our own tolerant serde shapes rather than `oci-spec`'s
//! strict types because one parser must accept OCI and Docker media types
//! alike, keep unknown fields, and report the first problem precisely; the
//! bytes stored and served are always the client's own.

use std::collections::BTreeMap;

use berth_store::{Digest, ManifestReference, RefKind};
use serde::Deserialize;

use crate::RegistryError;

/// ECR's manifest size limit.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

pub mod media_types {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_ARTIFACT: &str = "application/vnd.oci.artifact.manifest.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
    pub const DOCKER_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
}
use media_types::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    blobs: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone)]
pub struct ParsedManifest {
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    pub annotations: Option<String>,
    /// Each descriptor the registry must hold, with its declared size (duplicates that
    /// declare different sizes are all kept, so each is checked).
    pub references: Vec<ManifestReference>,
    /// Sum of the sizes of the referenced descriptors (ECR's imageSizeInBytes).
    pub total_size: u64,
}

fn is_json_family(ct: &str) -> bool {
    ct.is_empty() || ct == "application/json" || ct == "application/octet-stream" || ct == "*/*"
}

fn descriptor(d: &RawDescriptor, what: &str) -> Result<Digest, RegistryError> {
    if d.size < 0 {
        return Err(RegistryError::ManifestInvalid(format!("{what} has a negative size")));
    }
    if d.media_type.as_deref().is_some_and(str::is_empty) {
        return Err(RegistryError::ManifestInvalid(format!("{what} has an empty mediaType")));
    }
    d.digest.parse().map_err(|e| RegistryError::ManifestInvalid(format!("{what}: {e}")))
}

fn reference(d: &RawDescriptor, what: &str, kind: RefKind) -> Result<ManifestReference, RegistryError> {
    // `descriptor` refused negative sizes.
    Ok(ManifestReference { digest: descriptor(d, what)?, kind, size: d.size.unsigned_abs() })
}

/// Whether `media_type` is an image manifest (one with a config descriptor).
pub fn is_image_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// The config descriptor's media type of a stored image manifest.
pub fn config_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Config {
        media_type: Option<String>,
    }
    #[derive(Deserialize)]
    struct WithConfig {
        config: Option<Config>,
    }
    serde_json::from_slice::<WithConfig>(bytes).ok()?.config?.media_type
}

/// Parses `bytes` pushed with `content_type` (the request's Content-Type, parameters stripped).
pub fn parse(bytes: &[u8], content_type: &str) -> Result<ParsedManifest, RegistryError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(RegistryError::ManifestTooLarge { limit: MAX_MANIFEST_BYTES });
    }
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| RegistryError::ManifestInvalid(format!("not a valid manifest JSON document: {e}")))?;
    let ct = content_type.trim();
    if ct == DOCKER_V1_SIGNED || ct == DOCKER_V1 || raw.schema_version == Some(1) {
        return Err(RegistryError::Unsupported("Docker image manifest schema 1 is deprecated; push schema 2 or OCI".into()));
    }
    if raw.schema_version != Some(2) {
        return Err(RegistryError::ManifestInvalid("schemaVersion must be 2".into()));
    }
    let media_type = match (&raw.media_type, ct) {
        (Some(body), ct) if is_json_family(ct) || body == ct => body.clone(),
        (Some(body), ct) => return Err(RegistryError::ManifestInvalid(format!("mediaType {body:?} does not match Content-Type {ct:?}"))),
        (None, ct) if !is_json_family(ct) => ct.to_string(),
        // No type anywhere: the image-spec allows omitting it; infer from the shape.
        (None, _) if raw.manifests.is_some() => OCI_INDEX.to_string(),
        (None, _) if raw.config.is_some() => OCI_MANIFEST.to_string(),
        (None, _) => {
            return Err(RegistryError::ManifestInvalid("cannot tell the manifest's media type: no mediaType and no Content-Type".into()))
        }
    };

    let mut references = Vec::new();
    let mut total_size: u64 = 0;
    let mut add = |d: &RawDescriptor| total_size = total_size.saturating_add(d.size.max(0) as u64);
    let mut artifact_type = raw.artifact_type.clone();
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = raw.config.as_ref().ok_or_else(|| RegistryError::ManifestInvalid("image manifest has no config".into()))?;
            let layers = raw.layers.as_ref().ok_or_else(|| RegistryError::ManifestInvalid("image manifest has no layers array".into()))?;
            if raw.manifests.is_some() {
                return Err(RegistryError::ManifestInvalid("image manifest must not have a manifests array".into()));
            }
            references.push(reference(config, "config", RefKind::Blob)?);
            add(config);
            for (i, layer) in layers.iter().enumerate() {
                let r = reference(layer, &format!("layers[{i}]"), RefKind::Blob)?;
                add(layer);
                // Non-distributable layers live elsewhere (their urls); the registry need not hold them.
                if layer.urls.is_empty() {
                    references.push(r);
                }
            }
            if artifact_type.is_none() && media_type == OCI_MANIFEST {
                artifact_type = config.media_type.clone().filter(|t| t != "application/vnd.oci.image.config.v1+json");
            }
        }
        OCI_INDEX | DOCKER_LIST => {
            let manifests =
                raw.manifests.as_ref().ok_or_else(|| RegistryError::ManifestInvalid("image index has no manifests array".into()))?;
            if raw.config.is_some() || raw.layers.is_some() {
                return Err(RegistryError::ManifestInvalid("image index must not have config or layers".into()));
            }
            for (i, m) in manifests.iter().enumerate() {
                references.push(reference(m, &format!("manifests[{i}]"), RefKind::Manifest)?);
                add(m);
            }
        }
        OCI_ARTIFACT => {
            for (i, b) in raw.blobs.iter().flatten().enumerate() {
                references.push(reference(b, &format!("blobs[{i}]"), RefKind::Blob)?);
                add(b);
            }
        }
        other => return Err(RegistryError::ManifestInvalid(format!("unknown manifest media type {other:?}"))),
    }
    let subject = raw.subject.as_ref().map(|s| descriptor(s, "subject")).transpose()?;
    let annotations = match &raw.annotations {
        Some(a) if !a.is_empty() => Some(serde_json::to_string(a).map_err(|e| RegistryError::ManifestInvalid(e.to_string()))?),
        _ => None,
    };
    references.sort_by(|a, b| a.digest.cmp(&b.digest).then(a.size.cmp(&b.size)));
    references.dedup();
    Ok(ParsedManifest { media_type, artifact_type, subject, annotations, references, total_size })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn manifest_without_media_type_takes_content_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D}","size":2}},"layers":[]}}"#
        );
        let p = parse(body.as_bytes(), OCI_MANIFEST).unwrap();
        assert_eq!(p.media_type, OCI_MANIFEST);
        assert_eq!(p.references.len(), 1);
        assert_eq!(p.artifact_type, None);
    }

    #[test]
    fn artifact_type_from_config_and_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.example+json","digest":"{D}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":2}},"annotations":{{"a":"b"}}}}"#
        );
        let p = parse(body.as_bytes(), "").unwrap();
        assert_eq!(p.artifact_type.as_deref(), Some("application/vnd.example+json"));
        assert!(p.subject.is_some());
        assert_eq!(p.annotations.as_deref(), Some(r#"{"a":"b"}"#));
    }

    #[test]
    fn rejects_bad_documents() {
        assert!(matches!(parse(b"{", OCI_MANIFEST), Err(RegistryError::ManifestInvalid(_))));
        assert!(matches!(parse(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#, ""), Err(RegistryError::ManifestInvalid(_))));
        assert!(matches!(parse(br#"{"schemaVersion":1}"#, ""), Err(RegistryError::Unsupported(_))));
        let mismatch = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert!(matches!(parse(mismatch.as_bytes(), OCI_MANIFEST), Err(RegistryError::ManifestInvalid(_))));
        let bad_digest = r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:zz","size":1}]}"#;
        assert!(matches!(parse(bad_digest.as_bytes(), OCI_INDEX), Err(RegistryError::ManifestInvalid(_))));
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(parse(&big, OCI_MANIFEST), Err(RegistryError::ManifestTooLarge { .. })));
    }
}
