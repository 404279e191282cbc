//! ECR repository creation template actions: Create/Describe/Update/DeleteRepositoryCreationTemplate.
//! Each is authorized as its own `ecr:` action on the registry, as the registry-scoped actions are.

use berth_core::auth::Resource;
use berth_core::immutability::ExclusionFilter;
use berth_core::templates::{Template, TemplateInput};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::actions::{max_results, registry_of, Ctx, Out};
use crate::shapes::{next_token, parse_token, ts};

/// ECR's `Tag` shape is the one spelled in PascalCase.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagIn {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EncryptionIn {
    encryption_type: String,
    kms_key: Option<String>,
}

/// The members Create and Update share.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TemplateIn {
    prefix: String,
    description: Option<String>,
    encryption_configuration: Option<EncryptionIn>,
    resource_tags: Option<Vec<TagIn>>,
    image_tag_mutability: Option<String>,
    image_tag_mutability_exclusion_filters: Option<Vec<ExclusionFilter>>,
    repository_policy: Option<String>,
    lifecycle_policy: Option<String>,
    applied_for: Option<Vec<String>>,
    custom_role_arn: Option<String>,
}

impl TemplateIn {
    fn split(self) -> (String, TemplateInput) {
        let input = TemplateInput {
            description: self.description,
            encryption: self.encryption_configuration.map(|e| (e.encryption_type, e.kms_key)),
            resource_tags: self.resource_tags.map(|tags| tags.into_iter().map(|t| (t.key, t.value)).collect()),
            tag_mutability: self.image_tag_mutability,
            exclusion_filters: self.image_tag_mutability_exclusion_filters,
            repository_policy: self.repository_policy,
            lifecycle_policy: self.lifecycle_policy,
            applied_for: self.applied_for,
            custom_role_arn: self.custom_role_arn,
        };
        (self.prefix, input)
    }
}

/// ECR's `RepositoryCreationTemplate` shape.
fn template_shape(t: &Template) -> Value {
    let mut encryption = json!({ "encryptionType": t.encryption_type.as_str() });
    if let Some(k) = &t.kms_key {
        encryption["kmsKey"] = json!(k);
    }
    let mut v = json!({
        "prefix": t.prefix,
        "encryptionConfiguration": encryption,
        "resourceTags": t.resource_tags.iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect::<Vec<_>>(),
        "imageTagMutability": t.tag_mutability.as_str(),
        "appliedFor": t.applied_for.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "createdAt": ts(t.created_at),
        "updatedAt": ts(t.updated_at),
    });
    let optional = [
        ("description", &t.description),
        ("repositoryPolicy", &t.repository_policy),
        ("lifecyclePolicy", &t.lifecycle_policy),
        ("customRoleArn", &t.custom_role_arn),
    ];
    for (member, value) in optional {
        if let Some(text) = value {
            v[member] = json!(text);
        }
    }
    if !t.exclusion_filters.is_empty() {
        v["imageTagMutabilityExclusionFilters"] = json!(t.exclusion_filters);
    }
    v
}

fn answer(account: &str, t: &Template) -> Value {
    json!({ "registryId": account, "repositoryCreationTemplate": template_shape(t) })
}

pub(crate) async fn create_repository_creation_template(ctx: &Ctx<'_>, i: TemplateIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let (prefix, input) = i.split();
    let t = ctx.registry.create_repository_creation_template(&scope, &prefix, input).await?;
    Ok(answer(&scope.account, &t))
}

pub(crate) async fn update_repository_creation_template(ctx: &Ctx<'_>, i: TemplateIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let (prefix, input) = i.split();
    let t = ctx.registry.update_repository_creation_template(&scope, &prefix, input).await?;
    Ok(answer(&scope.account, &t))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PrefixIn {
    prefix: String,
}

pub(crate) async fn delete_repository_creation_template(ctx: &Ctx<'_>, i: PrefixIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let t = ctx.registry.delete_repository_creation_template(&scope, &i.prefix).await?;
    Ok(answer(&scope.account, &t))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DescribeIn {
    #[serde(default)]
    prefixes: Vec<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

pub(crate) async fn describe_repository_creation_templates(ctx: &Ctx<'_>, i: DescribeIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    // ECR's default page is 100 templates.
    let limit = max_results(i.max_results, 1000, 100)?;
    let after = i.next_token.as_deref().map(parse_token).transpose()?;
    let page = ctx.registry.describe_repository_creation_templates(&scope, &i.prefixes, after.as_deref(), limit).await?;
    let mut v = json!({
        "registryId": scope.account,
        "repositoryCreationTemplates": page.templates.iter().map(template_shape).collect::<Vec<_>>(),
    });
    if let (true, Some(last)) = (page.more, page.templates.last()) {
        v["nextToken"] = json!(next_token(&last.prefix));
    }
    Ok(v)
}
