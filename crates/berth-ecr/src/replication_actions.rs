//! Replication: PutReplicationConfiguration, DescribeImageReplicationStatus (and the
//! configuration DescribeRegistry shows). Parse, authorize, call the service, shape the output.

use berth_core::auth::Resource;
use berth_core::replication::{ReplicationConfiguration, ReplicationDestination, ReplicationRule, RepositoryFilter};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::actions::{image_ids, registry_of, repo_of, Ctx, ImageIdIn, Out};
use crate::shapes::image_id;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PutReplicationConfigurationIn {
    replication_configuration: ConfigurationIn,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigurationIn {
    rules: Vec<RuleIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleIn {
    destinations: Vec<DestinationIn>,
    #[serde(default)]
    repository_filters: Vec<FilterIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DestinationIn {
    region: String,
    registry_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterIn {
    filter: String,
    filter_type: String,
}

impl From<ConfigurationIn> for ReplicationConfiguration {
    fn from(c: ConfigurationIn) -> Self {
        ReplicationConfiguration {
            rules: c
                .rules
                .into_iter()
                .map(|r| ReplicationRule {
                    destinations: r
                        .destinations
                        .into_iter()
                        .map(|d| ReplicationDestination { region: d.region, registry_id: d.registry_id })
                        .collect(),
                    repository_filters: r
                        .repository_filters
                        .into_iter()
                        .map(|f| RepositoryFilter { filter: f.filter, filter_type: f.filter_type })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// ECR's ReplicationConfiguration shape (a rule's repositoryFilters only when it has some).
pub(crate) fn configuration_json(c: &ReplicationConfiguration) -> Value {
    let rules: Vec<Value> = c
        .rules
        .iter()
        .map(|r| {
            let mut rule = json!({
                "destinations": r.destinations.iter().map(|d| json!({ "region": d.region, "registryId": d.registry_id })).collect::<Vec<_>>(),
            });
            if !r.repository_filters.is_empty() {
                rule["repositoryFilters"] = r
                    .repository_filters
                    .iter()
                    .map(|f| json!({ "filter": f.filter, "filterType": f.filter_type }))
                    .collect::<Vec<_>>()
                    .into();
            }
            rule
        })
        .collect();
    json!({ "rules": rules })
}

pub(crate) async fn put_replication_configuration(ctx: &Ctx<'_>, i: PutReplicationConfigurationIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let stored = ctx.registry.put_replication_configuration(&scope, i.replication_configuration.into()).await?;
    Ok(json!({ "replicationConfiguration": configuration_json(&stored) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DescribeImageReplicationStatusIn {
    registry_id: Option<String>,
    repository_name: String,
    image_id: ImageIdIn,
}

pub(crate) async fn describe_image_replication_status(ctx: &Ctx<'_>, i: DescribeImageReplicationStatusIn) -> Out {
    let (_scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let id = image_ids(std::slice::from_ref(&i.image_id))?.remove(0);
    let (digest, statuses) = ctx.registry.describe_image_replication_status(&repo, &id).await?;
    let statuses: Vec<Value> = statuses
        .iter()
        .map(|s| {
            let mut v = json!({ "region": s.region, "registryId": s.registry_id, "status": s.status });
            if let Some(code) = &s.failure_code {
                v["failureCode"] = json!(code);
            }
            v
        })
        .collect();
    Ok(json!({
        "repositoryName": repo.name.as_str(),
        "imageId": image_id(Some(&digest.to_string()), id.tag.as_deref()),
        "replicationStatuses": statuses,
    }))
}
