//! Pull-through cache rules (ECR's Create/Describe/Validate/DeletePullThroughCacheRule): the list,
//! a create form with the usual upstreams as presets, validation and deletion. Each is authorized
//! as its own `ecr:` action on the registry, as the API authorizes it.

use axum::extract::{Query, State};
use berth_core::auth::Resource;
use berth_core::pull_through::{NewRule, Rule, RuleValidation, ROOT};
use maud::{html, Markup};
use serde::Deserialize;

use crate::view::{self, Nav, Page};
use crate::web::{see_other, App, PageResult, Post, Session};

pub const LIST: &str = "/console/pull-through";
/// Rules a registry holds at most (the service's limit), so one page lists them all.
const LIST_LIMIT: u32 = berth_core::pull_through::MAX_RULES;

/// Upstreams teams mirror most, as (label, upstreamRegistry, URL, suggested prefix).
const PRESETS: [(&str, &str, &str, &str); 6] = [
    ("Docker Hub", "docker-hub", "registry-1.docker.io", "docker-hub"),
    ("Amazon ECR Public", "ecr-public", "public.ecr.aws", "ecr-public"),
    ("Quay", "quay", "quay.io", "quay"),
    ("Kubernetes (registry.k8s.io)", "k8s", "registry.k8s.io", "k8s"),
    ("GitHub Container Registry", "github-container-registry", "ghcr.io", "ghcr"),
    ("Another OCI registry", "", "", ""),
];

#[derive(Deserialize)]
pub struct ListQuery {
    done: Option<String>,
    validated: Option<String>,
}

pub async fn page(s: Session, Query(q): Query<ListQuery>) -> PageResult {
    s.allow("ecr:DescribePullThroughCacheRules", Resource::Registry(&s.registry)).await?;
    let rules = s.registry().describe_pull_through_cache_rules(&s.registry, &[], None, LIST_LIMIT).await?.rules;
    let validation = match (&q.validated, s.may("ecr:ValidatePullThroughCacheRule", Resource::Registry(&s.registry)).await?) {
        (Some(prefix), true) => Some(s.registry().validate_pull_through_cache_rule(&s.registry, prefix).await?),
        _ => None,
    };
    let body = body(&s, &rules, validation.as_ref()).await?;
    let notice = match q.done.as_deref() {
        Some("created") => Some("Rule created: pulls of its repositories now go through this registry.".to_string()),
        Some("deleted") => Some("Rule deleted; the repositories it cached keep their images.".to_string()),
        _ => None,
    };
    let page = Page { title: "Pull through cache", nav: Nav::Settings, crumbs: vec![("Pull through cache".into(), None)], notice, body };
    Ok(view::render(&s, page).await)
}

fn prefix_label(prefix: &str) -> String {
    if prefix == ROOT {
        ROOT.to_string()
    } else {
        format!("{prefix}/")
    }
}

async fn body(s: &Session, rules: &[Rule], validation: Option<&RuleValidation>) -> Result<Markup, crate::web::Fail> {
    let reg = || Resource::Registry(&s.registry);
    let may_create = s.may("ecr:CreatePullThroughCacheRule", reg()).await?;
    let may_validate = s.may("ecr:ValidatePullThroughCacheRule", reg()).await?;
    let may_delete = s.may("ecr:DeletePullThroughCacheRule", reg()).await?;
    Ok(html! {
        div.page-head { div {
            h1 { "Pull through cache" }
            p.sub { "Repositories under a rule's prefix are caches of its upstream registry: a pull of "
                code { "<prefix>/<upstream repository>:<tag>" } " that misses fetches the image from the upstream, "
                "stores it and serves it; cached images keep being served while the upstream is down." }
        } }
        @if let Some(v) = validation {
            section.card #validation {
                h2 { "Validation of " code { (prefix_label(&v.rule.prefix)) } }
                @if v.is_valid { p { (view::badge("Valid", "ok")) " The upstream " code { (v.rule.upstream_url) } " answers with the rule's credentials." } }
                @else { p { (view::badge("Invalid", "bad")) " " (v.failure.as_deref().unwrap_or("")) } }
            }
        }
        @if rules.is_empty() {
            (view::empty("No pull through cache rules", html! { p { "Create one below, or with " code { "aws ecr create-pull-through-cache-rule" } "." } }))
        } @else {
            div.table-wrap { table.data #rule-list {
                thead { tr {
                    th scope="col" { "Prefix" } th scope="col" { "Upstream" } th scope="col" class="secondary" { "Upstream prefix" }
                    th scope="col" class="secondary" { "Credentials" } th scope="col" class="secondary" { "Created" }
                    th scope="col" { span.sr-only { "Actions" } }
                } }
                tbody { @for r in rules {
                    tr data-prefix=(r.prefix) {
                        th scope="row" { code { (prefix_label(&r.prefix)) } }
                        td { code { (r.upstream_url) } @if let Some(u) = &r.upstream_registry { br; span.muted { (u) } } }
                        td.secondary { code { (r.upstream_prefix) } }
                        td.secondary { @match &r.credential_arn { Some(a) => { code.wrap { (a) } } None => { span.muted { "anonymous" } } } }
                        td.secondary { (view::when(r.created_at)) }
                        td.actions {
                            @if may_validate {
                                a.btn.btn-small href=(crate::web::with_query(LIST, &[("validated", &r.prefix)])) {
                                    "Validate" span.sr-only { " rule " (r.prefix) }
                                }
                                " "
                            }
                            @if may_delete {
                                (view::remove_button(s, &format!("{LIST}/delete"), ("prefix", &r.prefix), "Delete", &format!("rule {}", r.prefix)))
                            }
                        }
                    }
                } }
            } }
        }
        @if may_create {
            section.card aria-labelledby="new-rule-h" #new-rule {
                h2 #new-rule-h { "Create a rule" }
                form method="post" action=(LIST) {
                    (view::csrf(s))
                    fieldset.field {
                        legend { "Upstream" }
                        @for (i, (label, kind, url, prefix)) in PRESETS.iter().enumerate() {
                            label { input type="radio" name="preset" value=(i) checked[i == 0] data-url=(url) data-prefix=(prefix) data-kind=(kind); " " (label)
                                @if !url.is_empty() { " " span.muted { code { (url) } } } }
                            br;
                        }
                    }
                    div.field {
                        label for="url" { "Upstream registry URL " span.muted { "(for another registry; http:// needs --allow-insecure-upstreams)" } }
                        input #url type="text" name="url" placeholder="registry.example.com or http://127.0.0.1:5000";
                    }
                    div.field {
                        label for="prefix" { "Repository prefix in this registry " span.muted { "(2–30 characters, or ROOT; empty: the preset's)" } }
                        input #prefix type="text" name="prefix";
                    }
                    div.field {
                        label for="upstream_prefix" { "Upstream repository prefix " span.muted { "(optional; default ROOT)" } }
                        input #upstream_prefix type="text" name="upstream_prefix";
                    }
                    div.field {
                        label for="credential_arn" { "Credentials: Secrets Manager secret ARN " span.muted { "(optional; ecr-pullthroughcache/…)" } }
                        input #credential_arn type="text" name="credential_arn";
                    }
                    div.form-actions { button.btn.btn-primary type="submit" { "Create rule" } }
                }
            }
        }
    })
}

fn optional(text: String) -> Option<String> {
    let t = text.trim().to_string();
    (!t.is_empty()).then_some(t)
}

/// The rule the form asks for: a preset's URL, upstream and prefix unless the fields say otherwise.
fn new_rule(post: &Post) -> NewRule {
    let preset = post.form.text("preset").parse::<usize>().ok().and_then(|i| PRESETS.get(i)).copied();
    let (_, kind, url, prefix) = preset.unwrap_or(PRESETS[PRESETS.len() - 1]);
    NewRule {
        prefix: optional(post.form.text("prefix")).unwrap_or_else(|| prefix.to_string()),
        upstream_url: optional(post.form.text("url")).unwrap_or_else(|| url.to_string()),
        upstream_registry: (!kind.is_empty()).then(|| kind.to_string()),
        upstream_prefix: optional(post.form.text("upstream_prefix")),
        credential_arn: optional(post.form.text("credential_arn")),
        custom_role_arn: None,
    }
}

pub async fn create(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    s.allow("ecr:CreatePullThroughCacheRule", Resource::Registry(&s.registry)).await?;
    s.registry().create_pull_through_cache_rule(&s.registry, new_rule(&post)).await?;
    Ok(see_other(&format!("{LIST}?done=created")))
}

pub async fn delete(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    s.allow("ecr:DeletePullThroughCacheRule", Resource::Registry(&s.registry)).await?;
    s.registry().delete_pull_through_cache_rule(&s.registry, &post.form.text("prefix")).await?;
    Ok(see_other(&format!("{LIST}?done=deleted")))
}
