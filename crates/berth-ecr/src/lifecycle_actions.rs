//! ECR lifecycle-policy actions and UpdateImageStorageClass: parse, authorize, call the
//! service, shape the output.

use berth_core::auth::Resource;
use berth_core::images::ImageId;
use berth_core::lifecycle::PlannedAction;
use berth_store::StorageClass;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::actions::{image_ids, max_results, repo_of, Ctx, ImageIdIn, Out};
use crate::shapes::{image_id, next_token, parse_token, ts};
use crate::EcrError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RepoIn {
    registry_id: Option<String>,
    repository_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PutLifecyclePolicyIn {
    registry_id: Option<String>,
    repository_name: String,
    lifecycle_policy_text: String,
}

pub(crate) async fn put_lifecycle_policy(ctx: &Ctx<'_>, i: PutLifecyclePolicyIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    ctx.registry.put_lifecycle_policy(&repo, &i.lifecycle_policy_text).await?;
    Ok(json!({
        "registryId": scope.account,
        "repositoryName": repo.name.as_str(),
        "lifecyclePolicyText": i.lifecycle_policy_text,
    }))
}

fn stored_policy(registry: &str, repo: &str, p: &berth_core::lifecycle::StoredLifecyclePolicy) -> Value {
    // ECR always answers lastEvaluatedAt; a policy that never ran reads as the epoch (0).
    json!({
        "registryId": registry,
        "repositoryName": repo,
        "lifecyclePolicyText": p.text,
        "lastEvaluatedAt": ts(p.evaluated_at.unwrap_or(0)),
    })
}

pub(crate) async fn get_lifecycle_policy(ctx: &Ctx<'_>, i: RepoIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let p = ctx.registry.lifecycle_policy(&repo).await?;
    Ok(stored_policy(&scope.account, repo.name.as_str(), &p))
}

pub(crate) async fn delete_lifecycle_policy(ctx: &Ctx<'_>, i: RepoIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let p = ctx.registry.delete_lifecycle_policy(&repo).await?;
    Ok(stored_policy(&scope.account, repo.name.as_str(), &p))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StartPreviewIn {
    registry_id: Option<String>,
    repository_name: String,
    lifecycle_policy_text: Option<String>,
}

pub(crate) async fn start_lifecycle_policy_preview(ctx: &Ctx<'_>, i: StartPreviewIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let text = ctx.registry.start_lifecycle_preview(&repo, i.lifecycle_policy_text.as_deref()).await?;
    Ok(json!({
        "registryId": scope.account,
        "repositoryName": repo.name.as_str(),
        "lifecyclePolicyText": text,
        "status": "IN_PROGRESS",
    }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PreviewFilterIn {
    tag_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GetPreviewIn {
    registry_id: Option<String>,
    repository_name: String,
    image_ids: Option<Vec<ImageIdIn>>,
    next_token: Option<String>,
    max_results: Option<i64>,
    filter: Option<PreviewFilterIn>,
}

fn preview_result(p: &PlannedAction) -> Value {
    let mut action = json!({ "type": p.action });
    if p.action == "TRANSITION" {
        action["targetStorageClass"] = json!("ARCHIVE");
    }
    let mut v = json!({
        "imageDigest": p.digest,
        "imagePushedAt": ts(p.pushed_at),
        "action": action,
        "appliedRulePriority": p.rule_priority,
        "storageClass": p.storage_class,
    });
    if !p.tags.is_empty() {
        v["imageTags"] = json!(p.tags);
    }
    v
}

pub(crate) async fn get_lifecycle_policy_preview(ctx: &Ctx<'_>, i: GetPreviewIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let preview = ctx.registry.lifecycle_preview(&repo).await?;
    let tag_status = i.filter.as_ref().and_then(|f| f.tag_status.as_deref());
    let wanted_ids = i.image_ids.as_deref().map(image_ids).transpose()?;
    if wanted_ids.is_some() && (i.next_token.is_some() || i.max_results.is_some()) {
        return Err(EcrError::invalid("maxResults and nextToken cannot be used with imageIds"));
    }
    let matches_id = |p: &PlannedAction, id: &ImageId| {
        id.digest.as_deref().is_none_or(|d| d == p.digest) && id.tag.as_deref().is_none_or(|t| p.tags.iter().any(|x| x == t))
    };
    let selected: Vec<&PlannedAction> = preview
        .results
        .iter()
        .filter(|p| match tag_status {
            Some("TAGGED") => !p.tags.is_empty(),
            Some("UNTAGGED") => p.tags.is_empty(),
            _ => true,
        })
        .filter(|p| wanted_ids.as_ref().is_none_or(|ids| ids.iter().any(|id| matches_id(p, id))))
        .collect();
    if let Some(t) = tag_status.filter(|t| !["TAGGED", "UNTAGGED", "ANY"].contains(t)) {
        return Err(EcrError::invalid(format!("Invalid parameter at 'filter.tagStatus': {t:?} is not TAGGED, UNTAGGED or ANY")));
    }
    // Results are ordered by rule, then age; pages continue after the index in the token.
    let start = match i.next_token.as_deref().map(parse_token).transpose()? {
        Some(t) => t.parse::<usize>().map_err(|_| EcrError::invalid("Invalid parameter at 'nextToken'"))?,
        None => 0,
    };
    let limit = max_results(i.max_results, 100, 100)? as usize;
    let page: Vec<Value> = selected.iter().skip(start).take(limit).map(|p| preview_result(p)).collect();
    let (expiring, transitioning) = preview.summary();
    let mut summary = json!({ "expiringImageTotalCount": expiring });
    if transitioning > 0 {
        summary["transitioningImageTotalCounts"] = json!([{ "targetStorageClass": "ARCHIVE", "imageTotalCount": transitioning }]);
    }
    let mut v = json!({
        "registryId": scope.account,
        "repositoryName": repo.name.as_str(),
        "lifecyclePolicyText": preview.policy,
        "status": preview.status,
        "previewResults": page,
        "summary": summary,
    });
    if start + limit < selected.len() {
        v["nextToken"] = json!(next_token(&(start + limit).to_string()));
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateStorageClassIn {
    registry_id: Option<String>,
    repository_name: String,
    image_id: ImageIdIn,
    target_storage_class: String,
}

pub(crate) async fn update_image_storage_class(ctx: &Ctx<'_>, i: UpdateStorageClassIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let class = StorageClass::parse(&i.target_storage_class).ok_or_else(|| {
        EcrError::invalid(format!(
            "Invalid parameter at 'targetStorageClass' failed to satisfy constraint: 'Member must satisfy enum value set: [STANDARD, ARCHIVE]' ({:?})",
            i.target_storage_class
        ))
    })?;
    let id = image_ids(std::slice::from_ref(&i.image_id))?.remove(0);
    let (id, class) = ctx.registry.set_image_storage_class(&repo, &id, class).await?;
    Ok(json!({
        "registryId": scope.account,
        "repositoryName": repo.name.as_str(),
        "imageId": image_id(id.digest.as_deref(), id.tag.as_deref()),
        "imageStatus": match class { StorageClass::Standard => "ACTIVE", StorageClass::Archive => "ARCHIVED" },
    }))
}
