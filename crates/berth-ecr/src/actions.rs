//! One function per ECR action: parse the input shape, authorize the action,
//! call the registry service, build the output shape.

use base64::Engine;
use berth_core::auth::{Principal, Resource};
use berth_core::images::{ImageFailure, ImageId};
use berth_core::immutability::ExclusionFilter;
use berth_core::repositories::NewRepository;
use berth_core::{Digest, Registry, RegistryError, RegistryRef, Repo, RepositoryName};
use berth_store::{StorageClass, TagStatus};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use berth_aws::operation::{Authorizer, Operation, OperationTable};
use futures::future::BoxFuture;

use crate::pull_through_actions as pull_through;
use crate::replication_actions as replication;
use crate::shapes::{self, image_id, next_token, parse_token};
use crate::template_actions as templates;
use crate::{lifecycle_actions as lifecycle, scan_actions as scan, settings_actions as settings, EcrError};

pub(crate) struct Ctx<'a> {
    pub registry: &'a std::sync::Arc<Registry>,
    pub principal: &'a Principal,
    /// The Host the client called (the repository URI host when no template is configured).
    pub host: &'a str,
    /// The call's authorization: the operation's IAM action against what the handler names.
    pub auth: Authorizer<'a>,
}

pub(crate) type Out = Result<Value, EcrError>;

/// The request checks of botocore's ECR model (scripts/gen-ecr-constraints.py writes the file).
use berth_aws::validate;

fn model() -> Option<&'static validate::Model> {
    static MODEL: std::sync::OnceLock<Option<validate::Model>> = std::sync::OnceLock::new();
    validate::Model::embedded(&MODEL, include_str!("ecr-constraints.json"), "ECR")
}

/// The request body as JSON, checked against the action's input shape before it is read into
/// its typed input (so a missing or out-of-range member gets ECR's answer, not serde's).
fn checked_input(action: &str, body: &[u8]) -> Result<Value, EcrError> {
    let input: Value = parse(body)?;
    if let Some(model) = model() {
        let violations = model.check(action, &input);
        if !violations.is_empty() {
            return Err(EcrError::from_violations(&violations));
        }
    }
    Ok(input)
}

/// An ECR handler: the checked input in, the output shape out.
pub(crate) type Handler = for<'a> fn(&'a Ctx<'a>, Value) -> BoxFuture<'a, Out>;

/// `op!(PutImage => put_image)`: the operation `PutImage`, needing `ecr:PutImage`, whose
/// handler reads the checked input into its typed shape.
macro_rules! op {
    ($name:ident => $handler:path) => {
        Operation::<Handler> {
            name: stringify!($name),
            iam_action: Some(concat!("ecr:", stringify!($name))),
            handler: |ctx, input| Box::pin(async move { $handler(ctx, typed(input)?).await }),
        }
    };
}

/// Every ECR action berth serves. ECR's IAM action is always `ecr:<operation>`.
pub(crate) fn operations() -> &'static OperationTable<Handler> {
    static TABLE: std::sync::OnceLock<OperationTable<Handler>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        OperationTable::new([
            op!(GetAuthorizationToken => get_authorization_token),
            op!(DescribeRegistry => describe_registry),
            op!(CreateRepository => create_repository),
            op!(DescribeRepositories => describe_repositories),
            op!(DeleteRepository => delete_repository),
            op!(PutImageTagMutability => put_image_tag_mutability),
            op!(PutImageScanningConfiguration => put_image_scanning_configuration),
            op!(TagResource => tag_resource),
            op!(UntagResource => untag_resource),
            op!(ListTagsForResource => list_tags_for_resource),
            op!(ListImages => list_images),
            op!(DescribeImages => describe_images),
            op!(BatchGetImage => batch_get_image),
            op!(BatchDeleteImage => batch_delete_image),
            op!(PutImage => put_image),
            op!(BatchCheckLayerAvailability => batch_check_layer_availability),
            op!(InitiateLayerUpload => initiate_layer_upload),
            op!(UploadLayerPart => upload_layer_part),
            op!(CompleteLayerUpload => complete_layer_upload),
            op!(GetDownloadUrlForLayer => get_download_url_for_layer),
            op!(SetRepositoryPolicy => set_repository_policy),
            op!(GetRepositoryPolicy => get_repository_policy),
            op!(DeleteRepositoryPolicy => delete_repository_policy),
            op!(PutRegistryPolicy => put_registry_policy),
            op!(GetRegistryPolicy => get_registry_policy),
            op!(DeleteRegistryPolicy => delete_registry_policy),
            op!(ListImageReferrers => list_image_referrers),
            op!(PutLifecyclePolicy => lifecycle::put_lifecycle_policy),
            op!(GetLifecyclePolicy => lifecycle::get_lifecycle_policy),
            op!(DeleteLifecyclePolicy => lifecycle::delete_lifecycle_policy),
            op!(StartLifecyclePolicyPreview => lifecycle::start_lifecycle_policy_preview),
            op!(GetLifecyclePolicyPreview => lifecycle::get_lifecycle_policy_preview),
            op!(UpdateImageStorageClass => lifecycle::update_image_storage_class),
            op!(StartImageScan => scan::start_image_scan),
            op!(DescribeImageScanFindings => scan::describe_image_scan_findings),
            op!(PutRegistryScanningConfiguration => scan::put_registry_scanning_configuration),
            op!(GetRegistryScanningConfiguration => scan::get_registry_scanning_configuration),
            op!(BatchGetRepositoryScanningConfiguration => scan::batch_get_repository_scanning_configuration),
            op!(CreateRepositoryCreationTemplate => templates::create_repository_creation_template),
            op!(DescribeRepositoryCreationTemplates => templates::describe_repository_creation_templates),
            op!(UpdateRepositoryCreationTemplate => templates::update_repository_creation_template),
            op!(DeleteRepositoryCreationTemplate => templates::delete_repository_creation_template),
            op!(GetAccountSetting => settings::get_account_setting),
            op!(PutAccountSetting => settings::put_account_setting),
            op!(RegisterPullTimeUpdateExclusion => settings::register_pull_time_update_exclusion),
            op!(DeregisterPullTimeUpdateExclusion => settings::deregister_pull_time_update_exclusion),
            op!(ListPullTimeUpdateExclusions => settings::list_pull_time_update_exclusions),
            op!(PutReplicationConfiguration => replication::put_replication_configuration),
            op!(DescribeImageReplicationStatus => replication::describe_image_replication_status),
            op!(StartReplicationBackfill => replication::start_replication_backfill),
            op!(StopReplicationBackfill => replication::stop_replication_backfill),
            op!(ListReplicationBackfills => replication::list_replication_backfills),
            op!(DescribeReplicationBackfillResults => replication::describe_replication_backfill_results),
            op!(CreatePullThroughCacheRule => pull_through::create_pull_through_cache_rule),
            op!(DescribePullThroughCacheRules => pull_through::describe_pull_through_cache_rules),
            op!(UpdatePullThroughCacheRule => pull_through::update_pull_through_cache_rule),
            op!(DeletePullThroughCacheRule => pull_through::delete_pull_through_cache_rule),
            op!(ValidatePullThroughCacheRule => pull_through::validate_pull_through_cache_rule),
        ])
    })
}

/// Runs one call of `op`: the model check, the handler, and the fail-closed check that the
/// handler authorized its caller.
pub(crate) async fn run(ctx: &Ctx<'_>, op: &Operation<Handler>, body: &[u8]) -> Out {
    let input = checked_input(op.name, body)?;
    let output = (op.handler)(ctx, input).await?;
    ctx.auth.ensure_decided()?;
    Ok(output)
}

pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, EcrError> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| EcrError::new("SerializationException", format!("could not read the request: {e}")))
}

/// A checked request read into an action's input shape (moves the strings, copies nothing).
fn typed<T: DeserializeOwned>(input: Value) -> Result<T, EcrError> {
    serde_json::from_value(input).map_err(|e| EcrError::new("SerializationException", format!("could not read the request: {e}")))
}

// ---- common parameters ----

pub(crate) fn registry_of(ctx: &Ctx<'_>, registry_id: Option<&str>) -> Result<RegistryRef, EcrError> {
    let account = match registry_id {
        Some(id) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => id.to_string(),
        Some(id) => {
            return Err(EcrError::invalid(format!(
                "Invalid parameter at 'registryId' failed to satisfy constraint: '{id}' is not a 12-digit registry id"
            )))
        }
        None => ctx.principal.account.clone(),
    };
    let region = ctx.principal.region.clone().unwrap_or_else(|| ctx.registry.config().default_registry.region.clone());
    Ok(RegistryRef { account, region })
}

pub(crate) fn repo_of(ctx: &Ctx<'_>, registry_id: Option<&str>, name: &str) -> Result<(RegistryRef, Repo), EcrError> {
    let scope = registry_of(ctx, registry_id)?;
    let name = RepositoryName::parse(name).map_err(|_| {
        EcrError::invalid(format!(
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*' and be 2-256 characters' ({name:?})"
        ))
    })?;
    let repo = Repo::new(&scope, name);
    Ok((scope, repo))
}

impl Ctx<'_> {
    /// May the caller perform this operation's IAM action on `resource`?
    pub(crate) async fn allow(&self, resource: Resource<'_>) -> Result<(), EcrError> {
        Ok(self.auth.allow(resource).await?)
    }
}

fn uri_host(ctx: &Ctx<'_>, scope: &RegistryRef) -> String {
    ctx.registry.registry_host(scope, ctx.host)
}

fn repository_shape(ctx: &Ctx<'_>, row: &berth_store::RepositoryRow) -> Value {
    shapes::repository(row, &ctx.registry.repository_uri(&row.key, ctx.host))
}

/// `<host>/v2/<repository path>`: where the repository's blobs are served.
fn blob_base(ctx: &Ctx<'_>, repo: &Repo) -> String {
    let uri = ctx.registry.repository_uri(repo.key(), ctx.host);
    match uri.split_once('/') {
        Some((host, path)) => format!("{host}/v2/{path}"),
        None => uri,
    }
}

fn scheme(ctx: &Ctx<'_>) -> &'static str {
    if ctx.principal.secure_transport {
        "https"
    } else {
        "http"
    }
}

pub(crate) fn max_results(v: Option<i64>, max: i64, default: i64) -> Result<u32, EcrError> {
    match v {
        None => Ok(default as u32),
        Some(n) if (1..=max).contains(&n) => Ok(n as u32),
        // The model check answers first; this guards callers the model does not cover.
        Some(n) if n < 1 => Err(EcrError::invalid(
            "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value greater than or equal to 1'",
        )),
        Some(_) => Err(EcrError::invalid(format!(
            "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value less than or equal to {max}'"
        ))),
    }
}

#[derive(Deserialize, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageIdIn {
    image_digest: Option<String>,
    image_tag: Option<String>,
}

pub(crate) fn image_ids(ids: &[ImageIdIn]) -> Result<Vec<ImageId>, EcrError> {
    if ids.is_empty() || ids.len() > 100 {
        return Err(EcrError::invalid(format!(
            "Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length between 1 and 100' ({})",
            ids.len()
        )));
    }
    Ok(ids.iter().map(|i| ImageId { digest: i.image_digest.clone(), tag: i.image_tag.clone() }).collect())
}

pub(crate) fn failure(f: &ImageFailure) -> Value {
    json!({ "imageId": image_id(f.id.digest.as_deref(), f.id.tag.as_deref()), "failureCode": f.code, "failureReason": f.reason })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RegistryOnly {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepoOnly {
    registry_id: Option<String>,
    repository_name: String,
}

// ---- registry ----

async fn get_authorization_token(ctx: &Ctx<'_>, _in: Value) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let (password, expires_at) = ctx.registry.issue_token(ctx.principal)?;
    Ok(json!({ "authorizationData": [{
        "authorizationToken": berth_iam::token::authorization_token(&password),
        "expiresAt": expires_at,
        "proxyEndpoint": format!("{}://{}", scheme(ctx), uri_host(ctx, &scope)),
    }]}))
}

async fn describe_registry(ctx: &Ctx<'_>, _in: Value) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let config = ctx.registry.replication_configuration(&scope).await?;
    Ok(json!({ "registryId": scope.account, "replicationConfiguration": replication::configuration_json(&config) }))
}

// ---- repositories ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRepositoryIn {
    registry_id: Option<String>,
    repository_name: String,
    #[serde(default)]
    tags: Vec<TagIn>,
    image_tag_mutability: Option<String>,
    #[serde(default)]
    image_tag_mutability_exclusion_filters: Vec<ExclusionFilter>,
    image_scanning_configuration: Option<ScanningIn>,
    encryption_configuration: Option<EncryptionIn>,
}

/// ECR's `Tag` shape is the one spelled in PascalCase.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagIn {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScanningIn {
    #[serde(default)]
    scan_on_push: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EncryptionIn {
    encryption_type: String,
    kms_key: Option<String>,
}

async fn create_repository(ctx: &Ctx<'_>, i: CreateRepositoryIn) -> Out {
    let (_, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    // The service authorizes the name, and the tags when there are any.
    ctx.auth.decided_by_service(Resource::Repository(&repo));
    let req = NewRepository {
        tag_mutability: i.image_tag_mutability,
        exclusion_filters: i.image_tag_mutability_exclusion_filters,
        scan_on_push: i.image_scanning_configuration.is_some_and(|s| s.scan_on_push),
        encryption_type: i.encryption_configuration.as_ref().map(|e| e.encryption_type.clone()),
        kms_key: i.encryption_configuration.and_then(|e| e.kms_key),
        tags: i.tags.into_iter().map(|t| (t.key, t.value)).collect(),
    };
    let row = ctx.registry.create_repository_as(ctx.principal, &repo, req).await?;
    Ok(json!({ "repository": repository_shape(ctx, &row) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRepositoriesIn {
    registry_id: Option<String>,
    repository_names: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

async fn describe_repositories(ctx: &Ctx<'_>, i: DescribeRepositoriesIn) -> Out {
    let scope = registry_of(ctx, i.registry_id.as_deref())?;
    if let Some(names) = i.repository_names {
        if names.is_empty() || names.len() > 100 {
            return Err(EcrError::invalid(
                "Invalid parameter at 'repositoryNames' failed to satisfy constraint: 'Member must have length between 1 and 100'",
            ));
        }
        if i.next_token.is_some() || i.max_results.is_some() {
            return Err(EcrError::invalid("maxResults and nextToken cannot be used with repositoryNames"));
        }
        let mut out = Vec::new();
        for n in &names {
            let (_, repo) = repo_of(ctx, i.registry_id.as_deref(), n)?;
            ctx.allow(Resource::Repository(&repo)).await?;
            out.push(repository_shape(ctx, &ctx.registry.repository(&repo).await?));
        }
        return Ok(json!({ "repositories": out }));
    }
    let limit = max_results(i.max_results, 1000, 1000)?;
    let after = i.next_token.as_deref().map(parse_token).transpose()?;
    // The service shows only the repositories the caller may describe.
    ctx.auth.decided_by_service(Resource::AllRepositories(&scope));
    let page = ctx.registry.describable_repositories(ctx.principal, &scope, after.as_deref(), limit).await?;
    let out: Vec<Value> = page.rows.iter().map(|row| repository_shape(ctx, row)).collect();
    let (more, last) = (page.more, page.last_scanned);
    let mut v = json!({ "repositories": out });
    if let (true, Some(l)) = (more, last) {
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
    let (_, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let row = ctx.registry.delete_repository(&repo, i.force).await?;
    Ok(json!({ "repository": repository_shape(ctx, &row) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagMutabilityIn {
    registry_id: Option<String>,
    repository_name: String,
    image_tag_mutability: String,
    #[serde(default)]
    image_tag_mutability_exclusion_filters: Vec<ExclusionFilter>,
}

async fn put_image_tag_mutability(ctx: &Ctx<'_>, i: TagMutabilityIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let row = ctx.registry.set_tag_mutability(&repo, &i.image_tag_mutability, &i.image_tag_mutability_exclusion_filters).await?;
    let mut v = json!({ "registryId": scope.account, "repositoryName": repo.name.as_str(), "imageTagMutability": row.settings.tag_mutability.as_str() });
    if !i.image_tag_mutability_exclusion_filters.is_empty() {
        v["imageTagMutabilityExclusionFilters"] = json!(i.image_tag_mutability_exclusion_filters);
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScanningConfigIn {
    registry_id: Option<String>,
    repository_name: String,
    image_scanning_configuration: ScanningIn,
}

async fn put_image_scanning_configuration(ctx: &Ctx<'_>, i: ScanningConfigIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let row = ctx.registry.set_scan_on_push(&repo, i.image_scanning_configuration.scan_on_push).await?;
    Ok(json!({ "registryId": scope.account, "repositoryName": repo.name.as_str(),
               "imageScanningConfiguration": { "scanOnPush": row.settings.scan_on_push } }))
}

/// `arn:aws:ecr:<region>:<account>:repository/<name>` → the repository.
fn repo_from_arn(ctx: &Ctx<'_>, arn: &str) -> Result<Repo, EcrError> {
    let bad = || EcrError::invalid(format!("Invalid parameter at 'resourceArn': {arn:?} is not an ECR repository ARN"));
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "ecr" {
        return Err(bad());
    }
    let name = parts[5].strip_prefix("repository/").ok_or_else(bad)?;
    let (mut registry, repo) = repo_of(ctx, Some(parts[4]), name)?;
    registry.region = parts[3].to_string();
    Ok(Repo::new(&registry, repo.name))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagResourceIn {
    resource_arn: String,
    tags: Vec<TagIn>,
}

async fn tag_resource(ctx: &Ctx<'_>, i: TagResourceIn) -> Out {
    let repo = repo_from_arn(ctx, &i.resource_arn)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let tags: Vec<(String, String)> = i.tags.into_iter().map(|t| (t.key, t.value)).collect();
    ctx.registry.tag_repository(&repo, &tags).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UntagResourceIn {
    resource_arn: String,
    tag_keys: Vec<String>,
}

async fn untag_resource(ctx: &Ctx<'_>, i: UntagResourceIn) -> Out {
    let repo = repo_from_arn(ctx, &i.resource_arn)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    ctx.registry.untag_repository(&repo, &i.tag_keys).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListTagsIn {
    resource_arn: String,
}

async fn list_tags_for_resource(ctx: &Ctx<'_>, i: ListTagsIn) -> Out {
    let repo = repo_from_arn(ctx, &i.resource_arn)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let tags: Vec<Value> = ctx.registry.repository_tags(&repo).await?.into_iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect();
    Ok(json!({ "tags": tags }))
}

// ---- images ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FilterIn {
    tag_status: Option<String>,
    image_status: Option<String>,
}

fn tag_status(f: Option<&FilterIn>) -> Result<TagStatus, EcrError> {
    match f.and_then(|f| f.tag_status.as_deref()) {
        None | Some("ANY") => Ok(TagStatus::Any),
        Some("TAGGED") => Ok(TagStatus::Tagged),
        Some("UNTAGGED") => Ok(TagStatus::Untagged),
        Some(o) => Err(EcrError::invalid(format!("Invalid parameter at 'filter.tagStatus': {o:?} is not TAGGED, UNTAGGED or ANY"))),
    }
}

/// ECR's imageStatus filter: ACTIVE when absent. berth restores at once, so no image is ever
/// ACTIVATING; that filter is answered like ACTIVE.
/// ECR's image status filter word (`imageStatus`, `artifactStatus`) as a storage class filter:
/// `Some(None)` is any class, `None` matches nothing (ACTIVATING: berth restores from the
/// archive at once, so no image is ever activating).
fn status_filter(word: Option<&str>, member: &str) -> Result<Option<Option<StorageClass>>, EcrError> {
    match word {
        None | Some("ACTIVE") => Ok(Some(Some(StorageClass::Standard))),
        Some("ARCHIVED") => Ok(Some(Some(StorageClass::Archive))),
        Some("ANY") => Ok(Some(None)),
        Some("ACTIVATING") => Ok(None),
        Some(o) => Err(EcrError::invalid(format!("Invalid parameter at '{member}': {o:?} is not ACTIVE, ARCHIVED, ACTIVATING or ANY"))),
    }
}

fn image_status(f: Option<&FilterIn>) -> Result<Option<Option<StorageClass>>, EcrError> {
    status_filter(f.and_then(|f| f.image_status.as_deref()), "filter.imageStatus")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListImagesIn {
    registry_id: Option<String>,
    repository_name: String,
    next_token: Option<String>,
    max_results: Option<i64>,
    filter: Option<FilterIn>,
}

async fn list_images(ctx: &Ctx<'_>, i: ListImagesIn) -> Out {
    let (_, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let limit = max_results(i.max_results, 1000, 1000)?;
    let after = i.next_token.as_deref().map(parse_token).transpose()?;
    let after = after.as_deref().map(|t| t.split_once('\n').unwrap_or((t, "")));
    let Some(storage) = image_status(i.filter.as_ref())? else {
        ctx.registry.repository(&repo).await?;
        return Ok(json!({ "imageIds": [] }));
    };
    let rows = ctx.registry.image_ids(&repo, tag_status(i.filter.as_ref())?, storage, after, limit + 1).await?;
    let more = rows.len() > limit as usize;
    let page = &rows[..rows.len().min(limit as usize)];
    let ids: Vec<Value> = page.iter().map(|(d, t)| image_id(Some(&d.to_string()), Some(t.as_str()).filter(|t| !t.is_empty()))).collect();
    let mut v = json!({ "imageIds": ids });
    if let (true, Some((d, t))) = (more, page.last()) {
        v["nextToken"] = json!(next_token(&format!("{d}\n{t}")));
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeImagesIn {
    registry_id: Option<String>,
    repository_name: String,
    image_ids: Option<Vec<ImageIdIn>>,
    next_token: Option<String>,
    max_results: Option<i64>,
    filter: Option<FilterIn>,
}

async fn describe_images(ctx: &Ctx<'_>, i: DescribeImagesIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    if let Some(ids) = &i.image_ids {
        if i.next_token.is_some() || i.max_results.is_some() {
            return Err(EcrError::invalid("maxResults and nextToken cannot be used with imageIds"));
        }
        let (found, failures) = ctx.registry.describe_image_ids(&repo, &image_ids(ids)?).await?;
        if let Some(f) = failures.first() {
            // ECR reports a missing image of DescribeImages as an exception, not a failure entry.
            if f.code == "ImageNotFound" {
                return Err(RegistryError::image_not_found(&repo, f.id.digest.as_deref(), f.id.tag.as_deref()).into());
            }
            return Err(EcrError::invalid(f.reason.clone()));
        }
        let mut details: Vec<Value> = found.iter().map(|r| shapes::image_detail(r, &scope, &repo)).collect();
        let mut with_digests: Vec<_> = found.iter().map(|r| r.digest.clone()).zip(details.iter_mut()).collect();
        scan::add_scan_summaries(ctx, &repo, &mut with_digests).await?;
        return Ok(json!({ "imageDetails": details }));
    }
    let limit = max_results(i.max_results, 1000, 100)?;
    let after = i.next_token.as_deref().map(parse_token).transpose()?;
    let Some(storage) = image_status(i.filter.as_ref())? else {
        ctx.registry.repository(&repo).await?;
        return Ok(json!({ "imageDetails": [] }));
    };
    let rows = ctx.registry.images(&repo, tag_status(i.filter.as_ref())?, storage, after.as_deref(), limit + 1).await?;
    let more = rows.len() > limit as usize;
    let page = &rows[..rows.len().min(limit as usize)];
    let mut details: Vec<Value> = page.iter().map(|r| shapes::image_detail(r, &scope, &repo)).collect();
    let mut with_digests: Vec<_> = page.iter().map(|r| r.digest.clone()).zip(details.iter_mut()).collect();
    scan::add_scan_summaries(ctx, &repo, &mut with_digests).await?;
    let mut v = json!({ "imageDetails": details });
    if let (true, Some(last)) = (more, page.last()) {
        v["nextToken"] = json!(next_token(&last.digest.to_string()));
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchGetImageIn {
    registry_id: Option<String>,
    repository_name: String,
    image_ids: Vec<ImageIdIn>,
    #[serde(default)]
    accepted_media_types: Vec<String>,
}

async fn batch_get_image(ctx: &Ctx<'_>, i: BatchGetImageIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    if i.accepted_media_types.len() > 100 {
        return Err(EcrError::invalid("Invalid parameter at 'acceptedMediaTypes': at most 100"));
    }
    let (found, failures) =
        ctx.registry.batch_get_images(&repo, &image_ids(&i.image_ids)?, &i.accepted_media_types, &ctx.principal.arn).await?;
    let images: Vec<Value> = found
        .iter()
        .map(|f| {
            json!({
                "registryId": scope.account,
                "repositoryName": repo.name.as_str(),
                "imageId": image_id(f.id.digest.as_deref(), f.id.tag.as_deref()),
                "imageManifest": String::from_utf8_lossy(&f.manifest.content),
                "imageManifestMediaType": f.manifest.media_type,
            })
        })
        .collect();
    Ok(json!({ "images": images, "failures": failures.iter().map(failure).collect::<Vec<_>>() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchDeleteImageIn {
    registry_id: Option<String>,
    repository_name: String,
    image_ids: Vec<ImageIdIn>,
}

async fn batch_delete_image(ctx: &Ctx<'_>, i: BatchDeleteImageIn) -> Out {
    let (_, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let (deleted, failures) = ctx.registry.batch_delete_images(&repo, &image_ids(&i.image_ids)?).await?;
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
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
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
        .await?;
    let d = digest.to_string();
    Ok(json!({ "image": {
        "registryId": scope.account,
        "repositoryName": repo.name.as_str(),
        "imageId": image_id(Some(&d), i.image_tag.as_deref()),
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
    let (_, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    if i.layer_digests.is_empty() || i.layer_digests.len() > 100 {
        return Err(EcrError::invalid(
            "Invalid parameter at 'layerDigests' failed to satisfy constraint: 'Member must have length between 1 and 100'",
        ));
    }
    ctx.registry.repository(&repo).await?;
    let (mut layers, mut failures) = (Vec::new(), Vec::new());
    for d in &i.layer_digests {
        let Ok(digest) = d.parse::<Digest>() else {
            failures.push(json!({ "layerDigest": d, "failureCode": "InvalidLayerDigest", "failureReason": "Invalid layer digest" }));
            continue;
        };
        match ctx.registry.layer_size(&repo, &digest).await? {
            Some(size) => layers.push(json!({ "layerDigest": d, "layerAvailability": "AVAILABLE", "layerSize": size })),
            None => failures
                .push(json!({ "layerDigest": d, "failureCode": "MissingLayerDigest", "failureReason": "Requested layer not found" })),
        }
    }
    Ok(json!({ "layers": layers, "failures": failures }))
}

async fn initiate_layer_upload(ctx: &Ctx<'_>, i: RepoOnly) -> Out {
    let (_, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let status = ctx.registry.initiate_layer_upload(&repo).await?;
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
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let part = base64::engine::general_purpose::STANDARD
        .decode(i.layer_part_blob.as_bytes())
        .map_err(|e| EcrError::invalid(format!("Invalid parameter at 'layerPartBlob': not base64 ({e})")))?;
    let last = ctx.registry.upload_layer_part(&repo, &i.upload_id, i.part_first_byte, i.part_last_byte, Bytes::from(part)).await?;
    Ok(json!({ "registryId": scope.account, "repositoryName": repo.name.as_str(), "uploadId": i.upload_id, "lastByteReceived": last }))
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
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let [d] = i.layer_digests.as_slice() else {
        return Err(EcrError::invalid("Invalid parameter at 'layerDigests': exactly one digest is supported"));
    };
    let digest: Digest = d.parse().map_err(|e: berth_core::DigestError| EcrError::new("InvalidLayerException", e.to_string()))?;
    let stored = ctx.registry.complete_layer_upload(&repo, &i.upload_id, &digest).await.map_err(|e| match e {
        berth_core::RegistryError::DigestInvalid(m) => EcrError::new("InvalidLayerException", m),
        other => other.into(),
    })?;
    Ok(
        json!({ "registryId": scope.account, "repositoryName": repo.name.as_str(), "uploadId": i.upload_id, "layerDigest": stored.to_string() }),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DownloadUrlIn {
    registry_id: Option<String>,
    repository_name: String,
    layer_digest: String,
}

async fn get_download_url_for_layer(ctx: &Ctx<'_>, i: DownloadUrlIn) -> Out {
    let (_, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let digest: Digest = i.layer_digest.parse().map_err(|e: berth_core::DigestError| EcrError::invalid(e.to_string()))?;
    if ctx.registry.layer_size(&repo, &digest).await?.is_none() {
        ctx.registry.repository(&repo).await?;
        return Err(EcrError::new(
            "LayersNotFoundException",
            format!("The layer {digest} does not exist in the repository with name '{repo}'"),
        ));
    }
    if let Some(url) = ctx.registry.blob_download_url(&repo, &digest).await? {
        // A presigned bucket URL, as ECR hands out S3 URLs.
        return Ok(json!({ "downloadUrl": url, "layerDigest": digest.to_string() }));
    }
    // A URL that works without headers, like ECR's presigned ones: a short-lived capability to
    // read this one blob here, never the caller's registry token.
    let (capability, _) = ctx.registry.issue_download_capability(&repo, &digest, &ctx.principal.arn)?;
    let param = berth_core::download_urls::DOWNLOAD_URL_PARAM;
    let url = format!("{}://{}/blobs/{digest}?{param}={capability}", scheme(ctx), blob_base(ctx, &repo));
    Ok(json!({ "downloadUrl": url, "layerDigest": digest.to_string() }))
}

// ---- policies ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetRepositoryPolicyIn {
    registry_id: Option<String>,
    repository_name: String,
    policy_text: String,
}

async fn set_repository_policy(ctx: &Ctx<'_>, i: SetRepositoryPolicyIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    ctx.registry.set_repository_policy(&repo, &i.policy_text).await?;
    Ok(json!({ "registryId": scope.account, "repositoryName": repo.name.as_str(), "policyText": i.policy_text }))
}

async fn get_repository_policy(ctx: &Ctx<'_>, i: RepoOnly) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let policy = ctx.registry.repository_policy(&repo).await?;
    Ok(json!({ "registryId": scope.account, "repositoryName": repo.name.as_str(), "policyText": policy }))
}

async fn delete_repository_policy(ctx: &Ctx<'_>, i: RepoOnly) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let policy = ctx.registry.delete_repository_policy(&repo).await?;
    Ok(json!({ "registryId": scope.account, "repositoryName": repo.name.as_str(), "policyText": policy }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRegistryPolicyIn {
    policy_text: String,
}

async fn put_registry_policy(ctx: &Ctx<'_>, i: PutRegistryPolicyIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    ctx.registry.set_registry_policy(&scope, &i.policy_text).await?;
    Ok(json!({ "registryId": scope.account, "policyText": i.policy_text }))
}

async fn get_registry_policy(ctx: &Ctx<'_>, _i: RegistryOnly) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let policy = ctx.registry.registry_policy(&scope).await?;
    Ok(json!({ "registryId": scope.account, "policyText": policy }))
}

async fn delete_registry_policy(ctx: &Ctx<'_>, _i: RegistryOnly) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let policy = ctx.registry.delete_registry_policy(&scope).await?;
    Ok(json!({ "registryId": scope.account, "policyText": policy }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListImageReferrersIn {
    registry_id: Option<String>,
    repository_name: String,
    subject_id: ImageIdIn,
    filter: Option<ReferrerFilterIn>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ReferrerFilterIn {
    #[serde(default)]
    artifact_types: Vec<String>,
    artifact_status: Option<String>,
}

/// ECR's artifactStatus filter: ACTIVE when absent, None = any. berth restores archived images
/// at once, so nothing is ever ACTIVATING and that filter matches nothing.
async fn list_image_referrers(ctx: &Ctx<'_>, i: ListImageReferrersIn) -> Out {
    let (_, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let subject: Digest = i
        .subject_id
        .image_digest
        .as_deref()
        .ok_or_else(|| EcrError::invalid("subjectId.imageDigest is required"))?
        .parse()
        .map_err(|e: berth_core::DigestError| EcrError::invalid(e.to_string()))?;
    // ECR pages referrers 20 at a time unless asked for up to 50.
    let limit = max_results(i.max_results, 50, 20)? as usize;
    let after = i.next_token.as_deref().map(parse_token).transpose()?;
    let filter = i.filter.unwrap_or_default();
    let Some(storage) = status_filter(filter.artifact_status.as_deref(), "filter.artifactStatus")? else {
        ctx.registry.repository(&repo).await?;
        return Ok(json!({ "referrers": [] }));
    };
    let (found, more) = ctx.registry.referrers_page(&repo, &subject, &filter.artifact_types, storage, after.as_deref(), limit).await?;
    let token = found.last().filter(|_| more).map(|m| next_token(&m.digest.to_string()));
    let referrers: Vec<Value> = found
        .into_iter()
        .map(|m| {
            let mut v = json!({ "mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.size });
            if let Some(t) = m.artifact_type {
                v["artifactType"] = json!(t);
            }
            if let Some(a) = m.annotations.and_then(|a| serde_json::from_str::<Value>(&a).ok()) {
                v["annotations"] = a;
            }
            v["artifactStatus"] = json!(match m.storage_class {
                StorageClass::Standard => "ACTIVE",
                StorageClass::Archive => "ARCHIVED",
            });
            v
        })
        .collect();
    let mut out = json!({ "referrers": referrers });
    if let Some(t) = token {
        out["nextToken"] = json!(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use berth_aws::validate::{Rule, Violation};

    #[test]
    fn the_ecr_model_loads_and_checks_real_requests() {
        let model = super::model().expect("every pattern of botocore's ECR model compiles");
        let ok = json!({"repositoryName": "team/app-1", "registryId": "123456789012", "imageTagMutability": "MUTABLE"});
        assert_eq!(model.check("CreateRepository", &ok), vec![]);
        let digest = json!({"repositoryName": "team/app", "layerDigests": ["sha256:0123abcd"]});
        assert_eq!(model.check("BatchCheckLayerAvailability", &digest), vec![]);
        let upload = json!({"repositoryName": "ab", "uploadId": "0b5f3a8e-6c1d-4f7e-9a2b-3c4d5e6f7a8b", "layerDigests": ["sha256:00"]});
        assert_eq!(model.check("CompleteLayerUpload", &upload), vec![]);
        assert_eq!(model.check("DescribeRepositories", &json!({})), vec![]);
        assert_eq!(model.check("CreateRepository", &json!({})), vec![Violation::Missing { path: "repositoryName".into() }]);
        let long = "a".repeat(257);
        assert_eq!(
            model.check("CreateRepository", &json!({"repositoryName": long})),
            vec![Violation::Constraint { path: "repositoryName".into(), value: json!(long), rule: Rule::MaxLength(256) }]
        );
        let bad_id = model.check("DescribeRepositories", &json!({"registryId": "12"}));
        assert!(matches!(&bad_id[..], [Violation::Constraint { rule: Rule::Pattern(p), .. }] if p == "[0-9]{12}"), "{bad_id:?}");
    }

    #[test]
    fn violations_become_ecr_exceptions() {
        let err = crate::EcrError::from_violations(&[
            Violation::Missing { path: "repositoryName".into() },
            Violation::Missing { path: "imageId".into() },
        ]);
        assert_eq!(err.type_name, "ValidationException");
        assert_eq!(
            err.message,
            "2 validation errors detected: Value null at 'repositoryName' failed to satisfy constraint: Member must not be null; \
             Value null at 'imageId' failed to satisfy constraint: Member must not be null"
        );
        let pattern = "[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*";
        let err = crate::EcrError::from_violations(&[Violation::Constraint {
            path: "repositoryName".into(),
            value: json!("Bad"),
            rule: Rule::Pattern(pattern.into()),
        }]);
        assert_eq!(err.type_name, "InvalidParameterException");
        assert_eq!(
            err.message,
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression \
             '[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*''"
        );
        let err = crate::EcrError::from_violations(&[Violation::Constraint {
            path: "maxResults".into(),
            value: json!(1001),
            rule: Rule::MaxValue(1000.0),
        }]);
        assert_eq!(
            err.message,
            "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value less than or equal to 1000'"
        );
        let err =
            crate::EcrError::from_violations(&[Violation::WrongType { path: "maxResults".into(), expected: "integer", found: "string" }]);
        assert_eq!(err.type_name, "SerializationException");
        assert_eq!(err.message, "STRING_VALUE can not be converted to an Integer (at 'maxResults')");
    }
}
