//! ECR image scanning actions: StartImageScan, DescribeImageScanFindings, the registry
//! scanning configuration, and the scan summary DescribeImages carries.

use berth_core::auth::Resource;
use berth_core::scanning::{ImageScan, RegistryScanning, ScanningFilter, ScanningRule};
use berth_core::RegistryError;
use berth_core::{Digest, Repo, RepositoryName};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::actions::{image_ids, max_results, registry_of, repo_of, Ctx, ImageIdIn, Out};
use crate::shapes::{image_id, next_token, parse_token, ts};
use crate::EcrError;

fn scan_status(scan: &ImageScan) -> Value {
    let mut v = json!({ "status": scan.row.status });
    if let Some(d) = &scan.row.description {
        v["description"] = json!(d);
    }
    v
}

/// imageScanStatus and imageScanFindingsSummary of each ImageDetail, from one lookup.
pub(crate) async fn add_scan_summaries(ctx: &Ctx<'_>, repo: &Repo, details: &mut [(Digest, &mut Value)]) -> Result<(), EcrError> {
    let digests: Vec<Digest> = details.iter().map(|(d, _)| d.clone()).collect();
    let scans = ctx.registry.image_scans(repo, &digests).await?;
    for (digest, detail) in details.iter_mut() {
        if let Some(scan) = scans.get(digest) {
            add_scan_summary(scan, detail);
        }
    }
    Ok(())
}

fn add_scan_summary(scan: &ImageScan, detail: &mut Value) {
    detail["imageScanStatus"] = scan_status(scan);
    if let (Some(result), Some(done)) = (&scan.result, scan.row.completed_at) {
        let mut summary = json!({ "imageScanCompletedAt": ts(done), "findingSeverityCounts": result.severity_counts() });
        if let Some(at) = result.source_updated_at {
            summary["vulnerabilitySourceUpdatedAt"] = ts(at);
        }
        detail["imageScanFindingsSummary"] = summary;
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StartImageScanIn {
    registry_id: Option<String>,
    repository_name: String,
    image_id: ImageIdIn,
}

pub(crate) async fn start_image_scan(ctx: &Ctx<'_>, i: StartImageScanIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let id = image_ids(std::slice::from_ref(&i.image_id))?.remove(0);
    let (digest, row) = match ctx.registry.start_image_scan(&repo, &id).await {
        Ok(v) => v,
        Err(RegistryError::ImageArchived(d)) => {
            return Err(EcrError::new("ImageArchivedException", format!("The image {d} is archived and cannot be scanned")))
        }
        Err(e) => return Err(e.into()),
    };
    let scan = ImageScan { row, result: None };
    Ok(json!({
        "registryId": scope.account,
        "repositoryName": repo.name.as_str(),
        "imageId": image_id(Some(&digest.to_string()), id.tag.as_deref()),
        "imageScanStatus": scan_status(&scan),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DescribeFindingsIn {
    registry_id: Option<String>,
    repository_name: String,
    image_id: ImageIdIn,
    next_token: Option<String>,
    max_results: Option<i64>,
}

pub(crate) async fn describe_image_scan_findings(ctx: &Ctx<'_>, i: DescribeFindingsIn) -> Out {
    let (scope, repo) = repo_of(ctx, i.registry_id.as_deref(), &i.repository_name)?;
    ctx.allow(Resource::Repository(&repo)).await?;
    let id = image_ids(std::slice::from_ref(&i.image_id))?.remove(0);
    let (digest, scan) = ctx.registry.image_scan_findings(&repo, &id).await?;
    let limit = max_results(i.max_results, 1000, 100)? as usize;
    let start = match i.next_token.as_deref().map(parse_token).transpose()? {
        Some(t) => t.parse::<usize>().map_err(|_| EcrError::invalid("Invalid parameter at 'nextToken'"))?,
        None => 0,
    };
    let mut v = json!({
        "registryId": scope.account,
        "repositoryName": repo.name.as_str(),
        "imageId": image_id(Some(&digest.to_string()), id.tag.as_deref()),
        "imageScanStatus": scan_status(&scan),
    });
    if let (Some(result), Some(done)) = (&scan.result, scan.row.completed_at) {
        let findings: Vec<Value> = result
            .findings
            .iter()
            .skip(start)
            .take(limit)
            .map(|f| {
                json!({
                    "name": f.name,
                    "description": f.description,
                    "uri": f.uri,
                    "severity": f.severity,
                    "attributes": f.attributes.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut out = json!({
            "imageScanCompletedAt": ts(done),
            "findingSeverityCounts": result.severity_counts(),
            "findings": findings,
        });
        if let Some(at) = result.source_updated_at {
            out["vulnerabilitySourceUpdatedAt"] = ts(at);
        }
        v["imageScanFindings"] = out;
        if start + limit < result.findings.len() {
            v["nextToken"] = json!(next_token(&(start + limit).to_string()));
        }
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FilterIn {
    filter: String,
    filter_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RuleIn {
    scan_frequency: String,
    repository_filters: Vec<FilterIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PutRegistryScanningIn {
    scan_type: Option<String>,
    #[serde(default)]
    rules: Vec<RuleIn>,
}

fn registry_scanning_out(c: &RegistryScanning) -> Value {
    json!({
        "scanType": c.scan_type,
        "rules": c.rules.iter().map(|r| json!({
            "scanFrequency": r.scan_frequency,
            "repositoryFilters": r.repository_filters.iter().map(|f| json!({ "filter": f.filter, "filterType": f.filter_type })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) async fn put_registry_scanning_configuration(ctx: &Ctx<'_>, i: PutRegistryScanningIn) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let config = RegistryScanning {
        scan_type: i.scan_type.unwrap_or_else(|| "BASIC".into()),
        rules: i
            .rules
            .into_iter()
            .map(|r| ScanningRule {
                scan_frequency: r.scan_frequency,
                repository_filters: r
                    .repository_filters
                    .into_iter()
                    .map(|f| ScanningFilter { filter: f.filter, filter_type: f.filter_type })
                    .collect(),
            })
            .collect(),
    };
    let stored = ctx.registry.put_registry_scanning(&scope, config).await?;
    Ok(json!({ "registryScanningConfiguration": registry_scanning_out(&stored) }))
}

pub(crate) async fn get_registry_scanning_configuration(ctx: &Ctx<'_>, _i: Value) -> Out {
    let scope = registry_of(ctx, None)?;
    ctx.allow(Resource::Registry(&scope)).await?;
    let c = ctx.registry.registry_scanning(&scope).await?;
    Ok(json!({ "registryId": scope.account, "scanningConfiguration": registry_scanning_out(&c) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchGetRepositoryScanningIn {
    repository_names: Vec<String>,
}

pub(crate) async fn batch_get_repository_scanning_configuration(ctx: &Ctx<'_>, i: BatchGetRepositoryScanningIn) -> Out {
    if i.repository_names.is_empty() || i.repository_names.len() > 25 {
        return Err(EcrError::invalid(
            "Invalid parameter at 'repositoryNames' failed to satisfy constraint: 'Member must have length between 1 and 25'",
        ));
    }
    let scope = registry_of(ctx, None)?;
    let (mut configs, mut failures) = (Vec::new(), Vec::new());
    for name in &i.repository_names {
        let repo = match RepositoryName::parse(name) {
            Ok(n) => Repo::new(&scope, n),
            Err(_) => return Err(EcrError::invalid(format!("Invalid parameter at 'repositoryNames': {name:?} is not a repository name"))),
        };
        ctx.allow(Resource::Repository(&repo)).await?;
        match ctx.registry.repository_scanning(&repo).await {
            Ok(s) => configs.push(json!({
                "repositoryArn": repo.arn(),
                "repositoryName": name,
                "scanOnPush": s.scan_on_push,
                "scanFrequency": s.scan_frequency,
                "appliedScanFilters": s.applied_filters.iter().map(|f| json!({ "filter": f.filter, "filterType": f.filter_type })).collect::<Vec<_>>(),
            })),
            Err(RegistryError::NameUnknown(_)) => failures.push(json!({
                "repositoryName": name,
                "failureCode": "REPOSITORY_NOT_FOUND",
                "failureReason": "REPOSITORY_NOT_FOUND",
            })),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json!({ "scanningConfigurations": configs, "failures": failures }))
}
