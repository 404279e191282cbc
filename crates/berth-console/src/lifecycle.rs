//! The lifecycle policy page, in ECR's flow: the stored policy as readable rules; a rule form
//! that adds one rule to the policy text in the editor (composed here, server-side, so it needs
//! no script and never rewrites the rules already there); a test run of that text
//! (StartLifecyclePolicyPreview, then its result); save and delete.

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
    /// The rule form's outcome: the priority of the rule just added, or why it was not.
    rule: Option<Result<u64, RuleRefused>>,
}

/// A rule form the page could not add, shown again with its values.
struct RuleRefused {
    message: String,
    form: RuleForm,
}

/// The rule form's fields, as posted (`r_…`).
#[derive(Clone, Default)]
struct RuleForm {
    priority: String,
    description: String,
    tag_status: String,
    tag_match: String,
    tags: String,
    count_type: String,
    count_number: String,
}

impl RuleForm {
    fn from_post(post: &Post) -> RuleForm {
        let f = |k: &str| post.form.get(k).unwrap_or("").trim().to_string();
        RuleForm {
            priority: f("r_priority"),
            description: f("r_description"),
            tag_status: f("r_tag_status"),
            tag_match: f("r_tag_match"),
            tags: f("r_tags"),
            count_type: f("r_count_type"),
            count_number: f("r_count_number"),
        }
    }

    /// The rule as policy JSON, or what to correct in plain words. The service checks the
    /// composed policy again on test run and save.
    fn rule(&self) -> Result<(u64, Value), String> {
        let priority: u64 = self.priority.parse().ok().filter(|p| *p >= 1).ok_or("The rule priority must be a whole number from 1 up.")?;
        let number: u64 = self.count_number.parse().ok().filter(|n| *n >= 1).ok_or("The count must be a whole number from 1 up.")?;
        let mut selection = serde_json::Map::new();
        let status = match self.tag_status.as_str() {
            s @ ("tagged" | "untagged" | "any") => s,
            _ => return Err("Choose the tag status: tagged, untagged or any.".into()),
        };
        selection.insert("tagStatus".into(), status.into());
        if status == "tagged" {
            let tags: Vec<Value> = self.tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(Value::from).collect();
            if tags.is_empty() {
                return Err("A rule for tagged images needs at least one tag prefix or pattern.".into());
            }
            let key = if self.tag_match == "prefix" { "tagPrefixList" } else { "tagPatternList" };
            selection.insert(key.into(), Value::Array(tags));
        }
        match self.count_type.as_str() {
            "imageCountMoreThan" => {
                selection.insert("countType".into(), "imageCountMoreThan".into());
            }
            "sinceImagePushed" => {
                selection.insert("countType".into(), "sinceImagePushed".into());
                selection.insert("countUnit".into(), "days".into());
            }
            _ => return Err("Choose what to count: image count more than, or days since pushed.".into()),
        }
        selection.insert("countNumber".into(), number.into());
        let mut rule = serde_json::Map::new();
        rule.insert("rulePriority".into(), priority.into());
        if !self.description.is_empty() {
            rule.insert("description".into(), self.description.clone().into());
        }
        rule.insert("selection".into(), Value::Object(selection));
        rule.insert("action".into(), serde_json::json!({ "type": "expire" }));
        Ok((priority, Value::Object(rule)))
    }
}

/// `text` with `rule` appended to its rules: the rules already there keep their text as
/// written (each is carried as raw JSON), so adding never rewrites or reorders them.
fn add_rule(text: &str, rule: &Value) -> Result<String, String> {
    use serde_json::value::RawValue;
    let members: std::collections::BTreeMap<String, Box<RawValue>> = if text.trim().is_empty() {
        Default::default()
    } else {
        serde_json::from_str(text)
            .map_err(|e| format!("The policy in the editor is not a JSON object, so the rule cannot be added to it: {e}"))?
    };
    let rules: Vec<Box<RawValue>> = match members.get("rules") {
        Some(r) => serde_json::from_str(r.get()).map_err(|_| "The policy's \"rules\" is not a list, so the rule cannot be added to it.")?,
        None => Vec::new(),
    };
    let new_rule = serde_json::to_string_pretty(rule).map_err(|e| e.to_string())?.replace('\n', "\n    ");
    let mut items: Vec<String> = rules.iter().map(|r| r.get().to_string()).collect();
    items.push(new_rule);
    let mut out = String::from("{\n  \"rules\": [\n    ");
    out.push_str(&items.join(",\n    "));
    out.push_str("\n  ]");
    for (k, v) in members.iter().filter(|(k, _)| k.as_str() != "rules") {
        out.push_str(&format!(",\n  {}: {}", Value::from(k.as_str()), v.get()));
    }
    out.push_str("\n}");
    Ok(out)
}

/// The priority to offer for a new rule: one above the highest in `text`.
fn next_priority(text: &str) -> u64 {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["rules"].as_array().map(|r| r.iter().filter_map(|r| r["rulePriority"].as_u64()).max().unwrap_or(0)))
        .unwrap_or(0)
        + 1
}

pub async fn page(s: &Session, repo: &Repo, q: &[(String, String)]) -> PageResult {
    // After a preview POST (see `preview`): its result, with the previewed text back in the editor.
    if crate::repo::param(q, "preview") == Some("shown") && s.may("ecr:GetLifecyclePolicyPreview", Resource::Repository(repo)).await? {
        if let Ok(p) = s.registry().lifecycle_preview(repo).await {
            return render(s, repo, q, Draft { text: Some(p.policy.clone()), preview: Some(Ok(p)), ..Draft::default() }).await;
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

/// ECR's rule form: one rule, added to the policy text beside it by `…/lifecycle/rule`.
fn rule_form(base: &str, f: &RuleForm, error: Option<&str>) -> Markup {
    let status = if f.tag_status.is_empty() { "untagged" } else { f.tag_status.as_str() };
    let count_type = if f.count_type.is_empty() { "sinceImagePushed" } else { f.count_type.as_str() };
    html! {
        div #rule-form data-invalid=[error.map(|_| "true")] {
            h3 { "Add a rule" }
            p.help { "Adds one rule to the policy text beside it; nothing is saved until you save the policy." }
            div.rule-grid {
                div.field { label for="r_priority" { "Rule priority" } input #r_priority name="r_priority" type="number" min="1" value=(f.priority); }
                div.field { label for="r_description" { "Description " span.muted { "(optional)" } } input #r_description name="r_description" maxlength="256" value=(f.description); }
            }
            fieldset.field {
                legend { "Image status" }
                div.choice-row {
                    @for (value, label) in [("tagged", "Tagged"), ("untagged", "Untagged"), ("any", "Any")] {
                        span.choice-inline {
                            input type="radio" name="r_tag_status" id={"r_status_" (value)} value=(value) checked[status == value];
                            label for={"r_status_" (value)} { (label) }
                        }
                    }
                }
            }
            div.rule-grid data-show-for="tagged" data-show-from="r_tag_status" {
                div.field {
                    label for="r_tag_match" { "Match tags by" }
                    select #r_tag_match name="r_tag_match" {
                        option value="pattern" selected[f.tag_match != "prefix"] { "Wildcard pattern (*)" }
                        option value="prefix" selected[f.tag_match == "prefix"] { "Prefix" }
                    }
                }
                div.field { label for="r_tags" { "Tags (comma-separated)" } input #r_tags name="r_tags" placeholder="prod*, release-*" value=(f.tags); }
            }
            div.rule-grid {
                div.field {
                    label for="r_count_type" { "Match criteria" }
                    select #r_count_type name="r_count_type" {
                        option value="sinceImagePushed" selected[count_type == "sinceImagePushed"] { "Days since image pushed" }
                        option value="imageCountMoreThan" selected[count_type == "imageCountMoreThan"] { "Image count more than" }
                    }
                }
                div.field { label for="r_count_number" { "Count (days or images)" } input #r_count_number name="r_count_number" type="number" min="1" value=(f.count_number); }
            }
            p.help { "Action: expire (delete) the images the rule selects." }
            p.error-text #rule-error role="alert" { @if let Some(e) = error { (e) } }
            div.form-actions {
                button.btn type="submit" formaction={(base) "/-/lifecycle/rule#lifecycle-policy"} formnovalidate { "Add rule to the policy" }
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
    let (rule_values, rule_error) = match &draft.rule {
        Some(Err(r)) => (r.form.clone(), Some(r.message.as_str())),
        _ => (RuleForm { priority: next_priority(&text).to_string(), ..RuleForm::default() }, None),
    };
    let body = html! {
        (header(s, repo, &row, Tab::Lifecycle).await)
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
                        (rule_form(&base, &rule_values, rule_error))
                        div.field data-invalid=[draft.error.as_ref().map(|_| "true")] {
                            label for="lifecycle-policy" { "Policy JSON" }
                            @if let Some(Ok(p)) = &draft.rule {
                                p.notice.ok #rule-added role="status" { "Rule " (p) " was added below. Run a test to see what the policy would expire, then save it." }
                            }
                            textarea #lifecycle-policy.code name="policy" rows="24" spellcheck="false" autocapitalize="off"
                                aria-describedby="lifecycle-policy-error" placeholder=r#"{"rules": [...]}"# { (text) }
                            p.error-text #lifecycle-policy-error role="alert" { @if let Some(e) = &draft.error { (e) } }
                        }
                    }
                    div.form-actions {
                        @if may_preview {
                            button.btn type="submit" formaction={(base) "/-/lifecycle/preview#lifecycle-preview"} formnovalidate { "Test run (preview)" }
                        }
                        @if may_put { button.btn.btn-primary type="submit" formnovalidate { "Save lifecycle policy" } }
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
        render(&post.session, repo, &[], Draft { text: Some(text), error: Some(crate::web::message_of(&e)), ..Draft::default() }).await?;
    *resp.status_mut() = status;
    Ok(crate::web::refused_page(resp, e))
}

pub async fn save(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    let text = post.form.get("policy").unwrap_or("").to_string();
    let params = serde_json::json!({ "repositoryName": repo.name.as_str(), "lifecyclePolicyText": text });
    s.audit_allow("ecr:PutLifecyclePolicy", Resource::Repository(repo), params).await?;
    match s.registry().put_lifecycle_policy(repo, &text).await {
        Ok(()) => Ok(see_other(&format!("{}/-/lifecycle?done=lifecycle-saved", repo_url(repo)))),
        Err(e) => refused(post, repo, text, e).await,
    }
}

/// The rule form: its rule added to the editor's text, shown again unsaved (or the form again
/// with what to correct). Offered to whom may save or test-run a policy.
pub async fn add(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    let r = || Resource::Repository(repo);
    if !s.may("ecr:PutLifecyclePolicy", r()).await? {
        s.allow("ecr:StartLifecyclePolicyPreview", r()).await?;
    }
    let text = post.form.get("policy").unwrap_or("").to_string();
    let form = RuleForm::from_post(post);
    let outcome = form.rule().and_then(|(priority, rule)| Ok((priority, add_rule(&text, &rule)?)));
    let draft = match outcome {
        Ok((priority, composed)) => Draft { text: Some(composed), rule: Some(Ok(priority)), ..Draft::default() },
        Err(message) => Draft { text: Some(text), rule: Some(Err(RuleRefused { message, form })), ..Draft::default() },
    };
    render(s, repo, &[], draft).await
}

/// StartLifecyclePolicyPreview with the text in the editor, then a redirect to the page showing
/// its result (GetLifecyclePolicyPreview), so a reload reads the result instead of posting again.
pub async fn preview(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    let text = post.form.get("policy").unwrap_or("").to_string();
    let params = serde_json::json!({ "repositoryName": repo.name.as_str(), "lifecyclePolicyText": text });
    s.audit_allow("ecr:StartLifecyclePolicyPreview", Resource::Repository(repo), params).await?;
    s.allow("ecr:GetLifecyclePolicyPreview", Resource::Repository(repo)).await?;
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
    s.audit("ecr:DeleteLifecyclePolicy", &Resource::Repository(repo), serde_json::json!({ "repositoryName": repo.name.as_str() }));
    match s.registry().delete_lifecycle_policy(repo).await {
        Ok(_) => Ok(see_other(&format!("{}/-/lifecycle?done=lifecycle-deleted", repo_url(repo)))),
        Err(e) => Err(Fail::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_is_added_after_the_rules_as_written() {
        let text = "{\"rules\": [ {\"rulePriority\": 1, \"selection\": {\"tagStatus\": \"any\", \"countType\": \"imageCountMoreThan\", \"countNumber\": 5}, \"action\": {\"type\": \"expire\"}} ]}";
        let form = RuleForm {
            priority: "2".into(),
            tag_status: "tagged".into(),
            tag_match: "prefix".into(),
            tags: "prod, release".into(),
            count_type: "sinceImagePushed".into(),
            count_number: "14".into(),
            ..RuleForm::default()
        };
        let (p, rule) = form.rule().expect("rule");
        assert_eq!(p, 2);
        let out = add_rule(text, &rule).expect("added");
        assert!(out.contains("{\"rulePriority\": 1, \"selection\": {\"tagStatus\": \"any\""), "the first rule keeps its text: {out}");
        let v: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            v["rules"][1]["selection"],
            serde_json::json!({"tagStatus": "tagged", "tagPrefixList": ["prod", "release"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14})
        );
        assert_eq!(next_priority(&out), 3);
        assert_eq!(
            serde_json::from_str::<Value>(&add_rule("", &rule).expect("empty")).expect("json")["rules"].as_array().map(Vec::len),
            Some(1)
        );
        assert!(add_rule("[1]", &rule).is_err() && add_rule("{\"rules\": 3}", &rule).is_err());
        assert!(RuleForm { tag_status: "tagged".into(), ..form.clone() }.rule().is_ok());
        assert!(RuleForm { tags: " ".into(), ..form.clone() }.rule().unwrap_err().contains("at least one tag"));
        assert!(RuleForm { count_number: "0".into(), ..form }.rule().is_err());
    }
}
