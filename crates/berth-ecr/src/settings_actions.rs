//! ECR account settings and pull-time update exclusions: parse, authorize (on the registry,
//! like the other registry-scoped actions), call the service, shape the output.

use berth_core::auth::Resource;
use serde::Deserialize;
use serde_json::json;

use crate::actions::{max_results, registry_of, Ctx, Out};
use crate::shapes::{next_token, parse_token, ts};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GetAccountSettingIn {
    name: String,
}

pub(crate) async fn get_account_setting(ctx: &Ctx<'_>, i: GetAccountSettingIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let value = ctx.registry.account_setting(&scope, &i.name).await?;
    Ok(json!({ "name": i.name, "value": value }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PutAccountSettingIn {
    name: String,
    value: String,
}

pub(crate) async fn put_account_setting(ctx: &Ctx<'_>, i: PutAccountSettingIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    ctx.registry.put_account_setting(&scope, &i.name, &i.value).await?;
    Ok(json!({ "name": i.name, "value": i.value }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PrincipalIn {
    principal_arn: String,
}

pub(crate) async fn register_pull_time_update_exclusion(ctx: &Ctx<'_>, i: PrincipalIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let created_at = ctx.registry.register_pull_time_exclusion(&scope, &i.principal_arn).await?;
    Ok(json!({ "principalArn": i.principal_arn, "createdAt": ts(created_at) }))
}

pub(crate) async fn deregister_pull_time_update_exclusion(ctx: &Ctx<'_>, i: PrincipalIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    ctx.registry.deregister_pull_time_exclusion(&scope, &i.principal_arn).await?;
    Ok(json!({ "principalArn": i.principal_arn }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListPullTimeUpdateExclusionsIn {
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub(crate) async fn list_pull_time_update_exclusions(ctx: &Ctx<'_>, i: ListPullTimeUpdateExclusionsIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    // The model: 1 to 1000, 100 when not given.
    let limit = max_results(i.max_results, 1000, 100)?;
    let after = i.next_token.as_deref().map(parse_token).transpose()?;
    let page = ctx.registry.pull_time_exclusions(&scope, after.as_deref(), limit as usize).await?;
    let mut out = json!({ "pullTimeUpdateExclusions": page.principal_arns });
    if let (true, Some(last)) = (page.more, page.principal_arns.last()) {
        out["nextToken"] = json!(next_token(last));
    }
    Ok(out)
}
