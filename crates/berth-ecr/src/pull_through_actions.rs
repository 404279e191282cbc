//! ECR pull-through cache rule actions: Create/Describe/Update/Delete/ValidatePullThroughCacheRule.
//! Each is authorized as its own `ecr:` action on the registry, as the registry-scoped actions are.

use berth_core::auth::Resource;
use berth_core::pull_through::{NewRule, Rule};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::actions::{max_results, registry_of, Ctx, Out};
use crate::shapes::{next_token, parse_token, ts};

/// The members every answer shares, as ECR spells them.
fn rule_members(account: &str, r: &Rule) -> Value {
    let mut v = json!({
        "ecrRepositoryPrefix": r.prefix,
        "registryId": account,
        "upstreamRegistryUrl": r.upstream_url,
        "upstreamRepositoryPrefix": r.upstream_prefix,
        "createdAt": ts(r.created_at),
        "updatedAt": ts(r.updated_at),
    });
    let optional =
        [("upstreamRegistry", &r.upstream_registry), ("credentialArn", &r.credential_arn), ("customRoleArn", &r.custom_role_arn)];
    for (member, value) in optional {
        if let Some(text) = value {
            v[member] = json!(text);
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateIn {
    ecr_repository_prefix: String,
    upstream_registry_url: String,
    registry_id: Option<String>,
    upstream_registry: Option<String>,
    credential_arn: Option<String>,
    custom_role_arn: Option<String>,
    upstream_repository_prefix: Option<String>,
}

pub(crate) async fn create_pull_through_cache_rule(ctx: &Ctx<'_>, i: CreateIn) -> Out {
    let scope = registry_of(ctx, i.registry_id.as_deref())?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let new = NewRule {
        prefix: i.ecr_repository_prefix,
        upstream_url: i.upstream_registry_url,
        upstream_registry: i.upstream_registry,
        upstream_prefix: i.upstream_repository_prefix,
        credential_arn: i.credential_arn,
        custom_role_arn: i.custom_role_arn,
    };
    let rule = ctx.registry.create_pull_through_cache_rule(&scope, new).await?;
    let mut v = rule_members(&scope.account, &rule);
    if let Some(o) = v.as_object_mut() {
        o.remove("updatedAt");
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DescribeIn {
    registry_id: Option<String>,
    #[serde(default)]
    ecr_repository_prefixes: Vec<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

pub(crate) async fn describe_pull_through_cache_rules(ctx: &Ctx<'_>, i: DescribeIn) -> Out {
    let scope = registry_of(ctx, i.registry_id.as_deref())?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let limit = max_results(i.max_results, 1000, 100)?;
    let after = i.next_token.as_deref().map(parse_token).transpose()?;
    let page = ctx.registry.describe_pull_through_cache_rules(&scope, &i.ecr_repository_prefixes, after.as_deref(), limit).await?;
    let mut v = json!({ "pullThroughCacheRules": page.rules.iter().map(|r| rule_members(&scope.account, r)).collect::<Vec<_>>() });
    if let (true, Some(last)) = (page.more, page.rules.last()) {
        v["nextToken"] = json!(next_token(&last.prefix));
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateIn {
    ecr_repository_prefix: String,
    registry_id: Option<String>,
    credential_arn: Option<String>,
    custom_role_arn: Option<String>,
}

pub(crate) async fn update_pull_through_cache_rule(ctx: &Ctx<'_>, i: UpdateIn) -> Out {
    let scope = registry_of(ctx, i.registry_id.as_deref())?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let r = ctx.registry.update_pull_through_cache_rule(&scope, &i.ecr_repository_prefix, i.credential_arn, i.custom_role_arn).await?;
    let mut v = json!({
        "ecrRepositoryPrefix": r.prefix,
        "registryId": scope.account,
        "updatedAt": ts(r.updated_at),
        "upstreamRepositoryPrefix": r.upstream_prefix,
    });
    for (member, value) in [("credentialArn", &r.credential_arn), ("customRoleArn", &r.custom_role_arn)] {
        if let Some(text) = value {
            v[member] = json!(text);
        }
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PrefixIn {
    ecr_repository_prefix: String,
    registry_id: Option<String>,
}

pub(crate) async fn delete_pull_through_cache_rule(ctx: &Ctx<'_>, i: PrefixIn) -> Out {
    let scope = registry_of(ctx, i.registry_id.as_deref())?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let rule = ctx.registry.delete_pull_through_cache_rule(&scope, &i.ecr_repository_prefix).await?;
    let mut v = rule_members(&scope.account, &rule);
    if let Some(o) = v.as_object_mut() {
        o.remove("updatedAt");
        o.remove("upstreamRegistry");
    }
    Ok(v)
}

pub(crate) async fn validate_pull_through_cache_rule(ctx: &Ctx<'_>, i: PrefixIn) -> Out {
    let scope = registry_of(ctx, i.registry_id.as_deref())?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let checked = ctx.registry.validate_pull_through_cache_rule(&scope, &i.ecr_repository_prefix).await?;
    let mut v = rule_members(&scope.account, &checked.rule);
    if let Some(o) = v.as_object_mut() {
        o.remove("updatedAt");
        o.remove("createdAt");
        o.remove("upstreamRegistry");
    }
    v["isValid"] = json!(checked.is_valid);
    if let Some(f) = checked.failure {
        v["failure"] = json!(f);
    }
    Ok(v)
}
