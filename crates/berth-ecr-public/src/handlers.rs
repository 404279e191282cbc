//! One function per ECR Public action: the input shape in, the private registry's service
//! calls on the account's public scope (plus `berth_core::public` for what only ECR Public
//! has), the output shape out. Timestamps are epoch seconds, blobs base64, as in AWS JSON 1.1.

use base64::Engine;
use berth_aws::error::AwsError;
use berth_aws::json::{Ctx, Handler, JsonApi, Output as Out};
use berth_aws::operation::OperationTable;
use berth_aws::validate;
use berth_core::auth::Resource;
use berth_core::images::{ImageFailure, ImageId};
use berth_core::public::{self, CatalogInput, RepositoryCatalog, StoredCatalog};
use berth_core::{Digest, RegistryRef, Repo, RepositoryName};
use berth_store::{ImageRow, RepositoryRow, TagStatus};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{from_registry, invalid, Exception};

/// `op!(PutImage => put_image)`: the operation `PutImage`, IAM action `ecr-public:PutImage`.
macro_rules! op {
    ($name:ident => $handler:ident) => {
        berth_aws::json_operation!("ecr-public", $name => $handler)
    };
}

/// The 23 actions of botocore's `ecr-public` model.
pub(crate) fn operations() -> &'static OperationTable<Handler> {
    static TABLE: std::sync::OnceLock<OperationTable<Handler>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        OperationTable::new([
            op!(GetAuthorizationToken => get_authorization_token),
            op!(DescribeRegistries => describe_registries),
            op!(GetRegistryCatalogData => get_registry_catalog_data),
            op!(PutRegistryCatalogData => put_registry_catalog_data),
            op!(CreateRepository => create_repository),
            op!(DescribeRepositories => describe_repositories),
            op!(DeleteRepository => delete_repository),
            op!(GetRepositoryCatalogData => get_repository_catalog_data),
            op!(PutRepositoryCatalogData => put_repository_catalog_data),
            op!(SetRepositoryPolicy => set_repository_policy),
            op!(GetRepositoryPolicy => get_repository_policy),
            op!(DeleteRepositoryPolicy => delete_repository_policy),
            op!(TagResource => tag_resource),
            op!(UntagResource => untag_resource),
            op!(ListTagsForResource => list_tags_for_resource),
            op!(DescribeImages => describe_images),
            op!(DescribeImageTags => describe_image_tags),
            op!(BatchDeleteImage => batch_delete_image),
            op!(PutImage => put_image),
            op!(BatchCheckLayerAvailability => batch_check_layer_availability),
            op!(InitiateLayerUpload => initiate_layer_upload),
            op!(UploadLayerPart => upload_layer_part),
            op!(CompleteLayerUpload => complete_layer_upload),
        ])
    })
}

fn model() -> Option<&'static validate::Model> {
    static MODEL: std::sync::OnceLock<Option<validate::Model>> = std::sync::OnceLock::new();
    validate::Model::embedded(&MODEL, include_str!("ecr-public-constraints.json"), "ECR Public")
}

/// The model check, the handler, and the fail-closed check that it authorized its caller.
/// The API on the shared JSON 1.1 steps: this table and model, these exceptions.
pub(crate) fn api() -> JsonApi {
    JsonApi {
        operations: operations(),
        model: model(),
        constraint_exception: Exception::InvalidParameter.name(),
        from_registry: crate::error::from_registry,
        unsupported: |action| Exception::UnsupportedCommand.error(format!("berth does not implement the ECR Public action {action}")),
        internal: |e| Exception::Server.error(e),
    }
}

fn ts(millis: i64) -> Value {
    json!(millis as f64 / 1000.0)
}

/// Opaque page tokens: the last key of the previous page.
fn next_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("p1:{last}"))
}

fn parse_token(token: &str) -> Result<String, AwsError> {
    let bad = || invalid("Invalid parameter at 'nextToken': the token is not one this registry issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    String::from_utf8(bytes).ok().and_then(|s| s.strip_prefix("p1:").map(str::to_string)).ok_or_else(bad)
}

/// ECR Public pages 100 results unless asked for up to 1000 (the model bounds maxResults).
fn page_size(max_results: Option<u32>) -> u32 {
    max_results.unwrap_or(100).clamp(1, 1000)
}

/// What ECR Public's handlers ask of the shared call context: its public scope and host.
trait PublicCtx {
    async fn allow(&self, resource: Resource<'_>) -> Result<(), AwsError>;
    fn scheme(&self) -> &'static str;
    fn public_host(&self) -> &str;
    async fn scope(&self, registry_id: Option<&str>) -> Result<RegistryRef, AwsError>;
    async fn repo(&self, registry_id: Option<&str>, name: &str) -> Result<Repo, AwsError>;
    async fn repository_shape(&self, row: &RepositoryRow) -> Result<Value, AwsError>;
    async fn catalog_shape(&self, repo: &Repo, stored: &StoredCatalog) -> Result<Value, AwsError>;
}

impl PublicCtx for Ctx<'_> {
    async fn allow(&self, resource: Resource<'_>) -> Result<(), AwsError> {
        self.auth.allow(resource).await.map_err(from_registry)
    }

    fn scheme(&self) -> &'static str {
        if self.principal.secure_transport {
            "https"
        } else {
            "http"
        }
    }

    /// The public registry's host (`public.ecr.aws`'s role): `--public-registry-host`, else
    /// the address the client used.
    fn public_host(&self) -> &str {
        self.registry.config().public_registry_host.as_deref().unwrap_or(self.host)
    }

    /// The public scope `registry_id` names: an account id, or (where the model says
    /// RegistryIdOrAlias) a registry alias; the caller's own account when absent.
    async fn scope(&self, registry_id: Option<&str>) -> Result<RegistryRef, AwsError> {
        let account = match registry_id {
            None => self.principal.account.clone(),
            Some(id) if berth_core::addressing::is_account_id(id) => id.to_string(),
            Some(alias) => self
                .registry
                .public_account_by_alias(alias)
                .await
                .map_err(from_registry)?
                .ok_or_else(|| Exception::RegistryNotFound.error(format!("The registry with id or alias '{alias}' does not exist")))?,
        };
        Ok(public::public_scope(&account))
    }

    async fn repo(&self, registry_id: Option<&str>, name: &str) -> Result<Repo, AwsError> {
        let scope = self.scope(registry_id).await?;
        let name = RepositoryName::parse(name).map_err(|_| {
            invalid(format!(
                "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression \
                 '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*'' ({name:?})"
            ))
        })?;
        Ok(Repo::new(&scope, name))
    }

    /// `<public host>/<alias>/<name>`
    async fn repository_shape(&self, row: &RepositoryRow) -> Result<Value, AwsError> {
        let alias = self.registry.public_alias(&row.key.account).await.map_err(from_registry)?;
        Ok(json!({
            "repositoryArn": public::public_scope(&row.key.account).repository_arn(&row.key.name),
            "registryId": row.key.account,
            "repositoryName": row.key.name,
            "repositoryUri": format!("{}/{alias}/{}", self.public_host(), row.key.name),
            "createdAt": ts(row.created_at),
        }))
    }

    /// Where the gallery serves the repository's logo.
    async fn catalog_shape(&self, repo: &Repo, stored: &StoredCatalog) -> Result<Value, AwsError> {
        let mut v = serde_json::to_value(&stored.catalog).map_err(|e| Exception::Server.error(e.to_string()))?;
        if stored.logo.is_some() {
            let alias = self.registry.public_alias(&repo.key().account).await.map_err(from_registry)?;
            v["logoUrl"] = json!(format!("{}://{}/gallery/logo/{alias}/{}", self.scheme(), self.public_host(), repo.name));
        }
        v["marketplaceCertified"] = json!(false);
        Ok(v)
    }
}

// ---- registry ----

async fn get_authorization_token(ctx: &Ctx<'_>, _in: Value) -> Out {
    let scope = public::public_scope(&ctx.principal.account);
    // AWS also requires sts:GetServiceBearerToken; berth has no such service, so
    // ecr-public:GetAuthorizationToken alone decides.
    ctx.allow(Resource::Registry(&scope)).await?;
    let (password, expires_at) = ctx.registry.issue_token(ctx.principal).map_err(from_registry)?;
    Ok(json!({ "authorizationData": {
        "authorizationToken": berth_iam::token::authorization_token(&password),
        "expiresAt": expires_at,
    }}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRegistriesIn {
    next_token: Option<String>,
}

async fn describe_registries(ctx: &Ctx<'_>, i: DescribeRegistriesIn) -> Out {
    let scope = public::public_scope(&ctx.principal.account);
    ctx.allow(Resource::Registry(&scope)).await?;
    // One registry per account: a token can only follow it.
    if let Some(t) = &i.next_token {
        parse_token(t)?;
        return Ok(json!({ "registries": [] }));
    }
    let row = ctx.registry.public_registry(&scope.account).await.map_err(from_registry)?;
    let is_default = (10..=42).step_by(4).any(|n| public::default_alias(&scope.account, n) == row.alias);
    Ok(json!({ "registries": [{
        "registryId": scope.account,
        "registryArn": public::registry_arn(&scope.account),
        "registryUri": format!("{}/{}", ctx.public_host(), row.alias),
        "verified": false,
        "aliases": [{ "name": row.alias, "status": "ACTIVE", "primaryRegistryAlias": true, "defaultRegistryAlias": is_default }],
    }]}))
}

async fn get_registry_catalog_data(ctx: &Ctx<'_>, _in: Value) -> Out {
    let scope = public::public_scope(&ctx.principal.account);
    ctx.allow(Resource::Registry(&scope)).await?;
    let row = ctx.registry.public_registry(&scope.account).await.map_err(from_registry)?;
    Ok(json!({ "registryCatalogData": { "displayName": row.display_name } }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRegistryCatalogDataIn {
    display_name: Option<String>,
}

async fn put_registry_catalog_data(ctx: &Ctx<'_>, i: PutRegistryCatalogDataIn) -> Out {
    let scope = public::public_scope(&ctx.principal.account);
    ctx.allow(Resource::Registry(&scope)).await?;
    let row = match i.display_name {
        Some(name) => ctx.registry.set_public_display_name(&scope.account, &name).await,
        None => ctx.registry.public_registry(&scope.account).await,
    }
    .map_err(from_registry)?;
    Ok(json!({ "registryCatalogData": { "displayName": row.display_name } }))
}

// ---- repositories ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagIn {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CatalogIn {
    description: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    operating_systems: Vec<String>,
    logo_image_blob: Option<String>,
    about_text: Option<String>,
    usage_text: Option<String>,
}

impl CatalogIn {
    fn into_input(self) -> Result<CatalogInput, AwsError> {
        let logo = self
            .logo_image_blob
            .map(|b| base64::engine::general_purpose::STANDARD.decode(b.as_bytes()))
            .transpose()
            .map_err(|e| invalid(format!("Invalid parameter at 'catalogData.logoImageBlob': not base64 ({e})")))?;
        let catalog = RepositoryCatalog {
            description: self.description,
            architectures: self.architectures,
            operating_systems: self.operating_systems,
            about_text: self.about_text,
            usage_text: self.usage_text,
        };
        Ok(CatalogInput { catalog, logo })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRepositoryIn {
    repository_name: String,
    catalog_data: Option<CatalogIn>,
    #[serde(default)]
    tags: Vec<TagIn>,
}

async fn create_repository(ctx: &Ctx<'_>, i: CreateRepositoryIn) -> Out {
    let repo = ctx.repo(None, &i.repository_name).await?;
    // The service authorizes the name (and the tags when there are any).
    ctx.auth.decided_by_service(Resource::Repository(&repo));
    let catalog = i.catalog_data.map(CatalogIn::into_input).transpose()?;
    let tags = i.tags.into_iter().map(|t| (t.key, t.value)).collect();
    let row = ctx.registry.create_public_repository_as(ctx.principal, &repo, catalog, tags).await.map_err(from_registry)?;
    let mut out = json!({ "repository": ctx.repository_shape(&row).await? });
    if let Some(stored) = ctx.registry.repository_catalog(&repo).await.map_err(from_registry)? {
        out["catalogData"] = ctx.catalog_shape(&repo, &stored).await?;
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRepositoriesIn {
    registry_id: Option<String>,
    repository_names: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<u32>,
}

async fn describe_repositories(ctx: &Ctx<'_>, i: DescribeRepositoriesIn) -> Out {
    if let Some(names) = i.repository_names {
        if i.next_token.is_some() || i.max_results.is_some() {
            return Err(invalid("maxResults and nextToken cannot be used with repositoryNames"));
        }
        let mut out = Vec::with_capacity(names.len());
        for n in &names {
            let repo = ctx.repo(i.registry_id.as_deref(), n).await?;
            ctx.allow(Resource::Repository(&repo)).await?;
            let row = ctx.registry.repository(&repo).await.map_err(from_registry)?;
            out.push(ctx.repository_shape(&row).await?);
        }
        return Ok(json!({ "repositories": out }));
    }
    let scope = ctx.scope(i.registry_id.as_deref()).await?;
    let after = i.next_token.as_deref().map(parse_token).transpose()?;
    // The service shows only the repositories the caller may describe.
    ctx.auth.decided_by_service(Resource::AllRepositories(&scope));
    let page = ctx
        .registry
        .describable_repositories(ctx.principal, &scope, after.as_deref(), page_size(i.max_results))
        .await
        .map_err(from_registry)?;
    let mut out = Vec::with_capacity(page.rows.len());
    for row in &page.rows {
        out.push(ctx.repository_shape(row).await?);
    }
    let mut v = json!({ "repositories": out });
    if let (true, Some(l)) = (page.more, page.last_scanned) {
        v["nextToken"] = json!(next_token(&l));
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteRepositoryIn {
    registry_id: Option<String>,
    repository_name: String,
    #[serde(default)]
    force: bool,
}

async fn delete_repository(ctx: &Ctx<'_>, i: DeleteRepositoryIn) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    // Its catalog row goes in the same transaction (ON DELETE CASCADE).
    let row = ctx.registry.delete_repository(&repo, i.force).await.map_err(from_registry)?;
    Ok(json!({ "repository": ctx.repository_shape(&row).await? }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepoOnly {
    registry_id: Option<String>,
    repository_name: String,
}

async fn get_repository_catalog_data(ctx: &Ctx<'_>, i: RepoOnly) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let stored = ctx
        .registry
        .repository_catalog(&repo)
        .await
        .map_err(from_registry)?
        .ok_or_else(|| Exception::RepositoryCatalogDataNotFound.error(format!("The repository '{repo}' has no catalog data")))?;
    Ok(json!({ "catalogData": ctx.catalog_shape(&repo, &stored).await? }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRepositoryCatalogDataIn {
    registry_id: Option<String>,
    repository_name: String,
    catalog_data: CatalogIn,
}

async fn put_repository_catalog_data(ctx: &Ctx<'_>, i: PutRepositoryCatalogDataIn) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let stored = ctx.registry.put_repository_catalog(&repo, i.catalog_data.into_input()?).await.map_err(from_registry)?;
    Ok(json!({ "catalogData": ctx.catalog_shape(&repo, &stored).await? }))
}

// ---- policies and tags ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetRepositoryPolicyIn {
    registry_id: Option<String>,
    repository_name: String,
    policy_text: String,
}

async fn set_repository_policy(ctx: &Ctx<'_>, i: SetRepositoryPolicyIn) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    ctx.registry.set_repository_policy(&repo, &i.policy_text).await.map_err(from_registry)?;
    Ok(json!({ "registryId": repo.key().account, "repositoryName": repo.name.as_str(), "policyText": i.policy_text }))
}

async fn get_repository_policy(ctx: &Ctx<'_>, i: RepoOnly) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let policy = ctx.registry.repository_policy(&repo).await.map_err(from_registry)?;
    Ok(json!({ "registryId": repo.key().account, "repositoryName": repo.name.as_str(), "policyText": policy }))
}

async fn delete_repository_policy(ctx: &Ctx<'_>, i: RepoOnly) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let policy = ctx.registry.delete_repository_policy(&repo).await.map_err(from_registry)?;
    Ok(json!({ "registryId": repo.key().account, "repositoryName": repo.name.as_str(), "policyText": policy }))
}

/// `arn:aws:ecr-public::<account>:repository/<name>` → the repository.
async fn repo_from_arn(ctx: &Ctx<'_>, arn: &str) -> Result<Repo, AwsError> {
    let bad = || invalid(format!("Invalid parameter at 'resourceArn': {arn:?} is not an ECR Public repository ARN"));
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, service, region, account, resource] = parts[..] else {
        return Err(bad());
    };
    if !arn.starts_with("arn:") || service != "ecr-public" || !region.is_empty() || !berth_core::addressing::is_account_id(account) {
        return Err(bad());
    }
    let name = resource.strip_prefix("repository/").ok_or_else(bad)?;
    ctx.repo(Some(account), name).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagResourceIn {
    resource_arn: String,
    tags: Vec<TagIn>,
}

async fn tag_resource(ctx: &Ctx<'_>, i: TagResourceIn) -> Out {
    let repo = repo_from_arn(ctx, &i.resource_arn).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let tags: Vec<(String, String)> = i.tags.into_iter().map(|t| (t.key, t.value)).collect();
    ctx.registry.tag_repository(&repo, &tags).await.map_err(from_registry)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UntagResourceIn {
    resource_arn: String,
    tag_keys: Vec<String>,
}

async fn untag_resource(ctx: &Ctx<'_>, i: UntagResourceIn) -> Out {
    let repo = repo_from_arn(ctx, &i.resource_arn).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    ctx.registry.untag_repository(&repo, &i.tag_keys).await.map_err(from_registry)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListTagsIn {
    resource_arn: String,
}

async fn list_tags_for_resource(ctx: &Ctx<'_>, i: ListTagsIn) -> Out {
    let repo = repo_from_arn(ctx, &i.resource_arn).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let tags = ctx.registry.repository_tags(&repo).await.map_err(from_registry)?;
    Ok(json!({ "tags": tags.into_iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect::<Vec<_>>() }))
}

// ---- images ----

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct ImageIdIn {
    image_digest: Option<String>,
    image_tag: Option<String>,
}

fn image_ids(ids: &[ImageIdIn]) -> Vec<ImageId> {
    ids.iter().map(|i| ImageId { digest: i.image_digest.clone(), tag: i.image_tag.clone() }).collect()
}

fn image_id(digest: Option<&str>, tag: Option<&str>) -> Value {
    let mut v = json!({});
    if let Some(d) = digest {
        v["imageDigest"] = json!(d);
    }
    if let Some(t) = tag {
        v["imageTag"] = json!(t);
    }
    v
}

/// ECR Public's `ReferencedImageDetail`; `ImageDetail` adds the registry, name and tags.
fn referenced_image(row: &ImageRow) -> Value {
    let mut v = json!({
        "imageDigest": row.digest.to_string(),
        "imageSizeInBytes": row.image_size,
        "imagePushedAt": ts(row.pushed_at),
        "imageManifestMediaType": row.media_type,
    });
    if let Some(a) = &row.artifact_type {
        v["artifactMediaType"] = json!(a);
    }
    v
}

fn image_detail(row: &ImageRow, repo: &Repo) -> Value {
    let mut v = referenced_image(row);
    v["registryId"] = json!(repo.key().account);
    v["repositoryName"] = json!(repo.name.as_str());
    if !row.tags.is_empty() {
        v["imageTags"] = json!(row.tags);
    }
    v
}

fn failure(f: &ImageFailure) -> Value {
    json!({ "imageId": image_id(f.id.digest.as_deref(), f.id.tag.as_deref()), "failureCode": f.code, "failureReason": f.reason })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeImagesIn {
    registry_id: Option<String>,
    repository_name: String,
    image_ids: Option<Vec<ImageIdIn>>,
    next_token: Option<String>,
    max_results: Option<u32>,
}

async fn describe_images(ctx: &Ctx<'_>, i: DescribeImagesIn) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    if let Some(ids) = &i.image_ids {
        if i.next_token.is_some() || i.max_results.is_some() {
            return Err(invalid("maxResults and nextToken cannot be used with imageIds"));
        }
        let (found, failures) = ctx.registry.describe_image_ids(&repo, &image_ids(ids)).await.map_err(from_registry)?;
        if let Some(f) = failures.first() {
            let e = if f.code == "ImageNotFound" { Exception::ImageNotFound } else { Exception::InvalidParameter };
            return Err(e.error(format!("{} ({})", f.reason, image_id(f.id.digest.as_deref(), f.id.tag.as_deref()))));
        }
        return Ok(json!({ "imageDetails": found.iter().map(|r| image_detail(r, &repo)).collect::<Vec<_>>() }));
    }
    let limit = page_size(i.max_results);
    let after = i.next_token.as_deref().map(parse_token).transpose()?;
    let mut rows =
        ctx.registry.images(&repo, TagStatus::Any, None, after.as_deref(), limit.saturating_add(1)).await.map_err(from_registry)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut v = json!({ "imageDetails": rows.iter().map(|r| image_detail(r, &repo)).collect::<Vec<_>>() });
    if let (true, Some(last)) = (more, rows.last()) {
        v["nextToken"] = json!(next_token(&last.digest.to_string()));
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeImageTagsIn {
    registry_id: Option<String>,
    repository_name: String,
    next_token: Option<String>,
    max_results: Option<u32>,
}

async fn describe_image_tags(ctx: &Ctx<'_>, i: DescribeImageTagsIn) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let after = i.next_token.as_deref().map(parse_token).transpose()?;
    let (details, more) =
        ctx.registry.describe_image_tags(&repo, after.as_deref(), page_size(i.max_results)).await.map_err(from_registry)?;
    let out: Vec<Value> = details
        .iter()
        .map(|d| json!({ "imageTag": d.tag, "createdAt": ts(d.image.pushed_at), "imageDetail": referenced_image(&d.image) }))
        .collect();
    let mut v = json!({ "imageTagDetails": out });
    if let (true, Some(last)) = (more, details.last()) {
        v["nextToken"] = json!(next_token(&last.tag));
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchDeleteImageIn {
    registry_id: Option<String>,
    repository_name: String,
    image_ids: Vec<ImageIdIn>,
}

async fn batch_delete_image(ctx: &Ctx<'_>, i: BatchDeleteImageIn) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let (deleted, failures) = ctx.registry.batch_delete_images(&repo, &image_ids(&i.image_ids)).await.map_err(from_registry)?;
    Ok(json!({
        "imageIds": deleted.iter().map(|d| image_id(d.digest.as_deref(), d.tag.as_deref())).collect::<Vec<_>>(),
        "failures": failures.iter().map(failure).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutImageIn {
    registry_id: Option<String>,
    repository_name: String,
    image_manifest: String,
    image_manifest_media_type: Option<String>,
    image_tag: Option<String>,
    image_digest: Option<String>,
}

async fn put_image(ctx: &Ctx<'_>, i: PutImageIn) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let (digest, media) = ctx
        .registry
        .put_image(
            &repo,
            Bytes::from(i.image_manifest.clone()),
            i.image_manifest_media_type.as_deref(),
            i.image_tag.as_deref(),
            i.image_digest.as_deref(),
        )
        .await
        .map_err(from_registry)?;
    Ok(json!({ "image": {
        "registryId": repo.key().account,
        "repositoryName": repo.name.as_str(),
        "imageId": image_id(Some(&digest.to_string()), i.image_tag.as_deref()),
        "imageManifest": i.image_manifest,
        "imageManifestMediaType": media,
    }}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerAvailabilityIn {
    registry_id: Option<String>,
    repository_name: String,
    layer_digests: Vec<String>,
}

async fn batch_check_layer_availability(ctx: &Ctx<'_>, i: LayerAvailabilityIn) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    ctx.registry.repository(&repo).await.map_err(from_registry)?;
    let (mut layers, mut failures) = (Vec::new(), Vec::new());
    for d in &i.layer_digests {
        let Ok(digest) = d.parse::<Digest>() else {
            failures.push(json!({ "layerDigest": d, "failureCode": "InvalidLayerDigest", "failureReason": "Invalid layer digest" }));
            continue;
        };
        match ctx.registry.layer_size(&repo, &digest).await.map_err(from_registry)? {
            Some(size) => layers.push(json!({ "layerDigest": d, "layerAvailability": "AVAILABLE", "layerSize": size })),
            None => failures
                .push(json!({ "layerDigest": d, "failureCode": "MissingLayerDigest", "failureReason": "Requested layer not found" })),
        }
    }
    Ok(json!({ "layers": layers, "failures": failures }))
}

async fn initiate_layer_upload(ctx: &Ctx<'_>, i: RepoOnly) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let status = ctx.registry.initiate_layer_upload(&repo).await.map_err(from_registry)?;
    Ok(json!({ "uploadId": status.id, "partSize": berth_core::images::MIN_LAYER_PART }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadLayerPartIn {
    registry_id: Option<String>,
    repository_name: String,
    upload_id: String,
    part_first_byte: u64,
    part_last_byte: u64,
    layer_part_blob: String,
}

async fn upload_layer_part(ctx: &Ctx<'_>, i: UploadLayerPartIn) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let part = base64::engine::general_purpose::STANDARD
        .decode(i.layer_part_blob.as_bytes())
        .map_err(|e| invalid(format!("Invalid parameter at 'layerPartBlob': not base64 ({e})")))?;
    let last = ctx
        .registry
        .upload_layer_part(&repo, &i.upload_id, i.part_first_byte, i.part_last_byte, Bytes::from(part))
        .await
        .map_err(from_registry)?;
    Ok(json!({ "registryId": repo.key().account, "repositoryName": repo.name.as_str(), "uploadId": i.upload_id, "lastByteReceived": last }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompleteLayerUploadIn {
    registry_id: Option<String>,
    repository_name: String,
    upload_id: String,
    layer_digests: Vec<String>,
}

async fn complete_layer_upload(ctx: &Ctx<'_>, i: CompleteLayerUploadIn) -> Out {
    let repo = ctx.repo(i.registry_id.as_deref(), &i.repository_name).await?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let [d] = i.layer_digests.as_slice() else {
        return Err(invalid("Invalid parameter at 'layerDigests': exactly one digest is supported"));
    };
    let digest: Digest = d.parse().map_err(|e: berth_core::DigestError| Exception::InvalidLayer.error(e.to_string()))?;
    let stored = ctx.registry.complete_layer_upload(&repo, &i.upload_id, &digest).await.map_err(|e| match e {
        berth_core::RegistryError::DigestInvalid(m) => Exception::InvalidLayer.error(m),
        other => from_registry(other),
    })?;
    Ok(json!({
        "registryId": repo.key().account,
        "repositoryName": repo.name.as_str(),
        "uploadId": i.upload_id,
        "layerDigest": stored.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_model_loads_and_lists_every_action() {
        let model = super::model().expect("every pattern of botocore's ecr-public model compiles");
        assert_eq!(model.check("CreateRepository", &json!({"repositoryName": "demorepo"})), vec![]);
        assert!(!model.check("PutRegistryCatalogData", &json!({"displayName": "x".repeat(101)})).is_empty());
        assert_eq!(super::operations().names().len(), 23);
    }
}
