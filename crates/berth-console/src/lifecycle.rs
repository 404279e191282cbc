//! The lifecycle policy page: the stored policy as readable rules, a rule builder beside the raw
//! JSON (the builder is the script's; the JSON works without it), a preview of what the policy
//! would expire or archive (StartLifecyclePolicyPreview, then its result), save and delete.

use std::time::Duration;

use berth_core::auth::Resource;
use berth_core::lifecycle::LifecyclePreview;
use berth_core::{RegistryError, Repo};
use maud::{html, Markup};
use serde_json::Value;

use crate::confirm::{self, Confirm};
use crate::repo::{crumbs, describe, header, repo_url, Tab};
use crate::view::{self, Nav, Page};
use crate::web::{see_other, Fail, PageResult, Post, Session};

/// How long a preview POST waits for the evaluation before showing "still running".
const PREVIEW_WAIT: Duration = Duration::from_secs(10);

/// What a POST brings to the page: the text the user was working on, and a preview or an error.
#[derive(Default)]
struct Draft {
    text: Option<String>,
    error: Option<String>,
    preview: Option<Result<LifecyclePreview, String>>,
}

pub async fn page(s: &Session, repo: &Repo, q: &[(String, String)]) -> PageResult {
    // After a preview POST (see `preview`): its result, with the previewed text back in the editor.
    if crate::repo::param(q, "preview") == Some("shown") && s.may("ecr:GetLifecyclePolicyPreview", Resource::Repository(repo)).await? {
        if let Ok(p) = s.registry().lifecycle_preview(repo).await {
            return render(s, repo, q, Draft { text: Some(p.policy.clone()), error: None, preview: Some(Ok(p)) }).await;
        }
    }
    render(s, repo, q, Draft::default()).await
}

/// A readable line for one rule's selection and count.
fn describe_rule(rule: &Value) -> (String, String, String) {
    let sel = &rule["selection"];
    let str_list = |k: &str| sel[k].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "));
    let status = sel["tagStatus"].as_str().unwrap_or("");
    let mut which = match status {
        "tagged" => "Tagged images".to_string(),
        "untagged" => "Untagged images".to_string(),
        "any" => "Any image".to_string(),
        other => other.to_string(),
    };
    if let Some(p) = str_list("tagPrefixList").filter(|p| !p.is_empty()) {
        which.push_str(&format!(" with a tag starting with {p}"));
    }
    if let Some(p) = str_list("tagPatternList").filter(|p| !p.is_empty()) {
        which.push_str(&format!(" with a tag matching {p}"));
    }
    if let Some(c) = sel["storageClass"].as_str() {
        which.push_str(&format!(" ({c} storage)"));
    }
    let n = sel["countNumber"].as_u64().unwrap_or(0);
    let unit = sel["countUnit"].as_str().unwrap_or("days");
    let count = match sel["countType"].as_str().unwrap_or("") {
        "imageCountMoreThan" => format!("beyond the newest {n}"),
        "sinceImagePushed" => format!("pushed more than {} ago", view::count(n, unit_one(unit), unit)),
        "sinceImagePulled" => format!("not pulled for {}", view::count(n, unit_one(unit), unit)),
        "sinceImageTransitioned" => format!("archived more than {} ago", view::count(n, unit_one(unit), unit)),
        other => other.to_string(),
    };
    let action = match rule["action"]["type"].as_str().unwrap_or("") {
        "expire" => "Expire (delete)".to_string(),
        "transition" => format!("Archive ({})", rule["action"]["targetStorageClass"].as_str().unwrap_or("archive")),
        other => other.to_string(),
    };
    (which, count, action)
}

/// The singular of a policy's `countUnit` ("days" is the only one ECR has).
fn unit_one(unit: &str) -> &str {
    unit.strip_suffix('s').unwrap_or(unit)
}

fn rules_table(text: &str) -> Markup {
    let Ok(v) = serde_json::from_str::<Value>(text) else { return html! { pre.json { code { (text) } } } };
    let rules = v["rules"].as_array().cloned().unwrap_or_default();
    html! {
        div.table-wrap {
            table.data #lifecycle-rules {
                caption.sr-only { "Lifecycle rules" }
                thead { tr { th scope="col" { "Priority" } th scope="col" { "Description" } th scope="col" { "Images" } th scope="col" { "When" } th scope="col" { "Action" } } }
                tbody {
                    @for r in &rules {
                        @let (which, count, action) = describe_rule(r);
                        tr {
                            td { (r["rulePriority"].as_u64().map(|p| p.to_string()).unwrap_or_default()) }
                            td { (r["description"].as_str().unwrap_or("")) }
                            td { (which) }
                            td { (count) }
                            td { (action) }
                        }
                    }
                }
            }
        }
    }
}

/// The rule form the script clones for each rule (ids get a suffix per rule).
fn rule_template() -> Markup {
    html! {
        template {
            div.rule {
                div.rule-head {
                    strong { "Rule" }
                    button.btn.btn-danger-quiet.btn-small type="button" data-remove-rule { "Remove rule" }
                }
                div.rule-grid {
                    div.field { label for="r-priority" { "Priority" } input #r-priority type="number" min="1" data-f="priority"; }
                    div.field { label for="r-description" { "Description" } input #r-description data-f="description" maxlength="256"; }
                    div.field {
                        label for="r-status" { "Tag status" }
                        select #r-status data-f="tagStatus" {
                            option value="tagged" { "Tagged" } option value="untagged" { "Untagged" } option value="any" { "Any" }
                        }
                    }
                    div.field {
                        label for="r-kind" { "Match tags by" }
                        select #r-kind data-f="patternKind" { option value="pattern" { "Pattern (* wildcards)" } option value="prefix" { "Prefix" } }
                    }
                    div.field { label for="r-patterns" { "Tags (comma-separated)" } input #r-patterns data-f="tagPatternList" placeholder="prod*, release-*"; }
                    div.field {
                        label for="r-count" { "Count type" }
                        select #r-count data-f="countType" {
                            option value="imageCountMoreThan" { "Image count more than" }
                            option value="sinceImagePushed" { "Since image pushed" }
                            option value="sinceImagePulled" { "Since image pulled" }
                            option value="sinceImageTransitioned" { "Since image archived" }
                        }
                    }
                    div.field { label for="r-number" { "Count" } input #r-number type="number" min="1" data-f="countNumber"; }
                    div.field { label for="r-unit" { "Unit" } select #r-unit data-f="countUnit" { option value="days" { "days" } } }
                    div.field {
                        label for="r-action" { "Action" }
                        select #r-action data-f="action" { option value="expire" { "Expire" } option value="transition" { "Archive" } }
                    }
                }
            }
        }
    }
}

fn preview_section(preview: &Result<LifecyclePreview, String>, fresh: bool) -> Markup {
    html! {
        section.card #lifecycle-preview aria-labelledby="preview-h" {
            h2 #preview-h { @if fresh { "Preview" } @else { "Last preview" } }
            @match preview {
                Err(why) => { p.muted { (why) } }
                Ok(p) if p.status != "COMPLETE" => {
                    p { "Preview status: " strong { (p.status) } ". "
                        @if p.status == "IN_PROGRESS" { "Reload this page in a moment to see the result." } }
                }
                Ok(p) => {
                    @let (expiring, archiving) = p.summary();
                    p #preview-summary {
                        strong { (expiring) } " " (view::plural(expiring as u64, "image", "images")) " would expire"
                        @if archiving > 0 { ", " strong { (archiving) } " would be archived" }
                        " if the policy ran now. Nothing has been changed."
                    }
                    @if !p.results.is_empty() {
                        div.table-wrap {
                            table.data #preview-results {
                                thead { tr {
                                    th scope="col" { "Rule" } th scope="col" { "Action" } th scope="col" { "Image tags" }
                                    th scope="col" { "Digest" } th scope="col" { "Pushed at" } th scope="col" { "Storage" }
                                } }
                                tbody {
                                    @for r in &p.results {
                                        tr data-digest=(r.digest) {
                                            td { (r.rule_priority) }
                                            td { @if r.action == "EXPIRE" { (view::badge("Expire", "warn")) } @else { (view::badge("Archive", "ok")) } }
                                            td.tags { @if r.tags.is_empty() { span.muted { "untagged" } } @for t in &r.tags { span.tag { (t) } " " } }
                                            td.digest { code title=(r.digest) { (view::short_digest(&r.digest)) } }
                                            td { (view::when(r.pushed_at)) }
                                            td { (r.storage_class) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    details.more { summary { "Previewed policy" } pre.json { code { (p.policy) } } }
                }
            }
        }
    }
}

async fn render(s: &Session, repo: &Repo, q: &[(String, String)], draft: Draft) -> PageResult {
    let row = describe(s, repo).await?;
    let r = || Resource::Repository(repo);
    let may_get = s.may("ecr:GetLifecyclePolicy", r()).await?;
    let may_put = s.may("ecr:PutLifecyclePolicy", r()).await?;
    let may_delete = s.may("ecr:DeleteLifecyclePolicy", r()).await?;
    let may_preview = s.may("ecr:StartLifecyclePolicyPreview", r()).await? && s.may("ecr:GetLifecyclePolicyPreview", r()).await?;
    let current = if may_get {
        match s.registry().lifecycle_policy(repo).await {
            Ok(p) => Ok(Some(p)),
            Err(RegistryError::LifecyclePolicyNotFound(_)) => Ok(None),
            Err(e @ RegistryError::Store(_)) => return Err(e.into()),
            Err(e) => Err(crate::web::message_of(&e)),
        }
    } else {
        Err("You may not read this repository's lifecycle policy (ecr:GetLifecyclePolicy).".to_string())
    };
    // The last preview (GetLifecyclePolicyPreview), unless this request made one.
    let (preview, fresh) = match draft.preview {
        Some(p) => (Some(p), true),
        None if s.may("ecr:GetLifecyclePolicyPreview", r()).await? => match s.registry().lifecycle_preview(repo).await {
            Ok(p) => (Some(Ok(p)), false),
            Err(RegistryError::LifecyclePreviewNotFound(_)) => (None, false),
            Err(e @ RegistryError::Store(_)) => return Err(e.into()),
            Err(e) => (Some(Err(crate::web::message_of(&e))), false),
        },
        None => (None, false),
    };
    let stored_text = current.as_ref().ok().and_then(|c| c.as_ref()).map(|c| c.text.clone());
    let text = draft.text.clone().or_else(|| stored_text.clone()).unwrap_or_default();
    let base = repo_url(repo);
    let body = html! {
        (header(s, repo, &row, Tab::Lifecycle))
        section aria-labelledby="lc-h" {
            h2 #lc-h { "Lifecycle policy" }
            p.help { "Rules that expire or archive images automatically: all rules are evaluated together, then applied in priority order; an image is acted on by at most one rule." }
            @match &current {
                Err(why) => { (view::alert(why)) }
                Ok(None) => {
                    (view::empty("No lifecycle policy", html! {
                        p { "Images stay until someone deletes them." @if may_put { " Write rules below, preview what they would do, then save." } }
                    }))
                }
                Ok(Some(p)) => {
                    div.card {
                        h3 { "Current rules" }
                        (rules_table(&p.text))
                        p.help { "Last evaluated: " (view::maybe_when(p.evaluated_at, "not yet")) }
                    }
                }
            }
            @if may_put || may_preview {
                form.card #lifecycle-form method="post" action={(base) "/-/lifecycle"} {
                    (view::csrf(s))
                    div.lifecycle-grid {
                        div data-lifecycle-builder data-target="lifecycle-policy" hidden {
                            h3 { "Rule builder" }
                            p.help { "Changes here rewrite the JSON." }
                            div.rules {}
                            (rule_template())
                            div.form-actions {
                                button.btn type="button" data-read-json { "Load into the rule builder" }
                                button.btn type="button" data-add-rule { "Add rule" }
                            }
                        }
                        div.field data-invalid=[draft.error.as_ref().map(|_| "true")] {
                            label for="lifecycle-policy" { "Policy JSON" }
                            textarea #lifecycle-policy.code name="policy" rows="24" spellcheck="false" autocapitalize="off" required
                                aria-describedby="lifecycle-policy-error" placeholder=r#"{"rules": [...]}"# { (text) }
                            p.error-text #lifecycle-policy-error role="alert" { @if let Some(e) = &draft.error { (e) } }
                        }
                    }
                    div.form-actions {
                        @if may_preview {
                            button.btn type="submit" formaction={(base) "/-/lifecycle/preview#lifecycle-preview"} { "Preview" }
                        }
                        @if may_put { button.btn.btn-primary type="submit" { "Save lifecycle policy" } }
                    }
                }
            }
            @if may_delete && stored_text.is_some() {
                form.inline-form method="post" action={(base) "/-/lifecycle/delete"} {
                    (view::csrf(s))
                    button.btn.btn-danger-quiet type="submit" { "Delete lifecycle policy" }
                }
            }
            @if let Some(p) = &preview { (preview_section(p, fresh)) }
        }
    };
    let page = Page {
        title: "Lifecycle policy",
        nav: Nav::Repositories,
        crumbs: crumbs(repo, Some("Lifecycle policy")),
        notice: crate::repo::notice(q),
        body,
    };
    Ok(view::render(s, page).await)
}

/// Shows a refusal next to the JSON, keeping the user's text.
async fn refused(post: &Post, repo: &Repo, text: String, e: RegistryError) -> PageResult {
    if matches!(e, RegistryError::Store(_) | RegistryError::NameUnknown(_)) {
        return Err(e.into());
    }
    let status = crate::web::status_of(&e);
    let mut resp =
        render(&post.session, repo, &[], Draft { text: Some(text), error: Some(crate::web::message_of(&e)), preview: None }).await?;
    *resp.status_mut() = status;
    Ok(resp)
}

pub async fn save(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    s.allow("ecr:PutLifecyclePolicy", Resource::Repository(repo)).await?;
    let text = post.form.get("policy").unwrap_or("").to_string();
    match s.registry().put_lifecycle_policy(repo, &text).await {
        Ok(()) => Ok(see_other(&format!("{}/-/lifecycle?done=lifecycle-saved", repo_url(repo)))),
        Err(e) => refused(post, repo, text, e).await,
    }
}

/// StartLifecyclePolicyPreview with the text in the editor, then a redirect to the page showing
/// its result (GetLifecyclePolicyPreview), so a reload reads the result instead of posting again.
pub async fn preview(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    s.allow("ecr:StartLifecyclePolicyPreview", Resource::Repository(repo)).await?;
    s.allow("ecr:GetLifecyclePolicyPreview", Resource::Repository(repo)).await?;
    let text = post.form.get("policy").unwrap_or("").to_string();
    if let Err(e) = s.app.registry.start_lifecycle_preview(repo, Some(&text)).await {
        return refused(post, repo, text, e).await;
    }
    // Wait a little for the evaluation so the page usually shows it finished.
    let deadline = tokio::time::Instant::now() + PREVIEW_WAIT;
    loop {
        match s.registry().lifecycle_preview(repo).await {
            Ok(p) if p.status == "IN_PROGRESS" && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(_) => break,
            Err(e @ RegistryError::Store(_)) => return Err(e.into()),
            Err(_) => break,
        }
    }
    Ok(see_other(&format!("{}/-/lifecycle?preview=shown#lifecycle-preview", repo_url(repo))))
}

pub async fn delete(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    s.allow("ecr:DeleteLifecyclePolicy", Resource::Repository(repo)).await?;
    if !confirm::confirmed(post) {
        // A missing policy fails here, before anything is asked.
        let stored = s.registry().lifecycle_policy(repo).await?;
        let readable = s.may("ecr:GetLifecyclePolicy", Resource::Repository(repo)).await?;
        let base = repo_url(repo);
        let c = Confirm {
            heading: "Delete the lifecycle policy?",
            lost: html! {
                p { "The lifecycle policy of " code { (repo.name) } " will be deleted: its images will no longer expire or be "
                    "archived by these rules. Images already expired stay deleted." }
                @if readable { (rules_table(&stored.text)) }
            },
            action: &format!("{base}/-/lifecycle/delete"),
            fields: Vec::new(),
            cancel: &format!("{base}/-/lifecycle"),
            button: "Delete lifecycle policy",
        };
        return confirm::repo_page(s, repo, Tab::Lifecycle, c).await;
    }
    match s.registry().delete_lifecycle_policy(repo).await {
        Ok(_) => Ok(see_other(&format!("{}/-/lifecycle?done=lifecycle-deleted", repo_url(repo)))),
        Err(e) => Err(Fail::from(e)),
    }
}
