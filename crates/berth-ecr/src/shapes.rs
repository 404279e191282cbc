//! Output shapes of botocore's ECR model, built from service rows.

use base64::Engine;
use berth_core::{RegistryRef, Repo};
use berth_store::{ImageRow, RepositoryRow, StorageClass};
use serde_json::{json, Value};

use crate::EcrError;

/// AWS JSON timestamps are epoch seconds.
pub fn ts(millis: i64) -> Value {
    json!(millis as f64 / 1000.0)
}

/// `uri` is the repository's `repositoryUri` (`Registry::repository_uri`).
pub fn repository(row: &RepositoryRow, uri: &str) -> Value {
    let k = &row.key;
    let mut v = json!({
        "repositoryArn": format!("arn:aws:ecr:{}:{}:repository/{}", k.region, k.account, k.name),
        "registryId": k.account,
        "repositoryName": k.name,
        "repositoryUri": uri,
        "createdAt": ts(row.created_at),
        "imageTagMutability": row.settings.tag_mutability.as_str(),
        "imageScanningConfiguration": { "scanOnPush": row.settings.scan_on_push },
        "encryptionConfiguration": { "encryptionType": row.settings.encryption_type.as_str() },
    });
    if let Some(k) = &row.settings.kms_key {
        v["encryptionConfiguration"]["kmsKey"] = json!(k);
    }
    let filters = row.settings.tag_mutability_exclusions.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok());
    if let Some(f) = filters {
        v["imageTagMutabilityExclusionFilters"] = f;
    }
    v
}

pub fn image_detail(row: &ImageRow, registry: &RegistryRef, repo: &Repo) -> Value {
    let mut v = json!({
        "registryId": registry.account,
        "repositoryName": repo.name.as_str(),
        "imageDigest": row.digest.to_string(),
        "imageSizeInBytes": row.image_size,
        "imagePushedAt": ts(row.pushed_at),
        "imageManifestMediaType": row.media_type,
    });
    if !row.tags.is_empty() {
        v["imageTags"] = json!(row.tags);
    }
    if let Some(a) = &row.artifact_type {
        v["artifactMediaType"] = json!(a);
    }
    if let Some(s) = &row.subject {
        v["subjectManifestDigest"] = json!(s.to_string());
    }
    if let Some(p) = row.last_pulled_at {
        v["lastRecordedPullTime"] = ts(p);
    }
    v["imageStatus"] = json!(match row.storage_class {
        StorageClass::Standard => "ACTIVE",
        StorageClass::Archive => "ARCHIVED",
    });
    if let Some(a) = row.archived_at {
        v["lastArchivedAt"] = ts(a);
    }
    if let Some(a) = row.last_activated_at {
        v["lastActivatedAt"] = ts(a);
    }
    v
}

pub fn image_id(digest: Option<&str>, tag: Option<&str>) -> Value {
    let mut v = json!({});
    if let Some(d) = digest {
        v["imageDigest"] = json!(d);
    }
    if let Some(t) = tag {
        v["imageTag"] = json!(t);
    }
    v
}

/// Opaque pagination tokens: the last key of the previous page.
pub fn next_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{last}"))
}

pub fn parse_token(token: &str) -> Result<String, EcrError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| EcrError::invalid("Invalid parameter at 'nextToken': the token is not one this registry issued"))?;
    let s = String::from_utf8(bytes).map_err(|_| EcrError::invalid("Invalid parameter at 'nextToken'"))?;
    s.strip_prefix("v1:")
        .map(str::to_string)
        .ok_or_else(|| EcrError::invalid("Invalid parameter at 'nextToken': the token is not one this registry issued"))
}
