//! Repository settings: tag immutability (with exclusion filters), scanning, resource tags, and
//! deleting the repository.

use berth_core::auth::Resource;
use berth_core::immutability;
use berth_core::{RegistryError, Repo};
use maud::html;

use crate::confirm::{self, Confirm};
use crate::repo::{crumbs, describe, header, repo_url, Tab};
use crate::view::{self, Nav, Page};
use crate::web::{see_other, PageResult, Post, Session};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Mutability,
    Scanning,
    Tags,
    Delete,
}

/// A change the service refused: which section, its message, and the values to show again.
struct Rejected {
    section: Section,
    message: String,
    mutability: Option<(String, Vec<String>)>,
    tag: Option<(String, String)>,
}

pub async fn page(s: &Session, repo: &Repo, q: &[(String, String)]) -> PageResult {
    render(s, repo, q, None).await
}

/// Regex-escapes a repository name for an HTML `pattern` (names hold only `[a-z0-9._/-]`).
pub fn pattern_literal(name: &str) -> String {
    name.replace('.', "\\.")
}

async fn render(s: &Session, repo: &Repo, q: &[(String, String)], rejected: Option<Rejected>) -> PageResult {
    let row = describe(s, repo).await?;
    let r = || Resource::Repository(repo);
    let may_mutability = s.may("ecr:PutImageTagMutability", r()).await?;
    let may_scanning = s.may("ecr:PutImageScanningConfiguration", r()).await?;
    let may_list_tags = s.may("ecr:ListTagsForResource", r()).await?;
    let may_tag = s.may("ecr:TagResource", r()).await?;
    let may_untag = s.may("ecr:UntagResource", r()).await?;
    let may_delete = s.may("ecr:DeleteRepository", r()).await?;
    let tags = if may_list_tags { Some(s.registry().repository_tags(repo).await?) } else { None };
    let err = |sec: Section| rejected.as_ref().filter(|r| r.section == sec).map(|r| r.message.as_str());
    let (mutability, filters) = match rejected.as_ref().and_then(|r| r.mutability.clone()) {
        Some(m) => m,
        None => {
            (row.settings.tag_mutability.as_str().to_string(), immutability::filters(&row.settings).into_iter().map(|f| f.filter).collect())
        }
    };
    let (new_key, new_value) = rejected.as_ref().and_then(|r| r.tag.clone()).unwrap_or_default();
    let base = repo_url(repo);
    let body = html! {
        (header(s, repo, &row, Tab::Settings).await)
        section.card aria-labelledby="mut-h" #settings-mutability {
            h2 #mut-h { "Tag immutability" }
            @if may_mutability {
                form method="post" action={(base) "/-/settings/mutability"} {
                    (view::csrf(s))
                    (crate::repos::mutability_fields(&mutability, &filters, err(Section::Mutability)))
                    div.form-actions { button.btn.btn-primary type="submit" { "Save tag immutability" } }
                }
            } @else {
                p { (crate::repos::mutability_label(row.settings.tag_mutability)) }
                @if !filters.is_empty() { p { "Exclusions: " @for f in &filters { code { (f) } " " } } }
            }
        }
        section.card aria-labelledby="scan-h" #settings-scanning {
            h2 #scan-h { "Image scanning" }
            @if may_scanning {
                form method="post" action={(base) "/-/settings/scanning"} {
                    (view::csrf(s))
                    div.choice {
                        input #scan_on_push type="checkbox" name="scan_on_push" value="on" checked[row.settings.scan_on_push];
                        label for="scan_on_push" { "Scan on push" }
                        p.help { "Scan each image for known vulnerabilities after it is pushed." }
                    }
                    @if let Some(e) = err(Section::Scanning) { p.error-text role="alert" { (e) } }
                    div.form-actions { button.btn.btn-primary type="submit" { "Save scanning" } }
                }
            } @else {
                p { "Scan on push: " @if row.settings.scan_on_push { "enabled" } @else { "disabled" } }
            }
        }
        section.card aria-labelledby="enc-h" {
            h2 #enc-h { "Encryption" }
            p { (row.settings.encryption_type) @if let Some(k) = &row.settings.kms_key { " with " code { (k) } } }
            p.help { "Chosen when the repository was created; it cannot be changed." }
        }
        section.card aria-labelledby="tags-h" #settings-tags {
            h2 #tags-h { "Tags" }
            @match &tags {
                None => { p.muted { "You may not list this repository's tags (ecr:ListTagsForResource)." } }
                Some(t) if t.is_empty() => { p.muted { "This repository has no tags." } }
                Some(t) => {
                    div.table-wrap {
                        table.data #resource-tags {
                            thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } @if may_untag { th scope="col" { span.sr-only { "Actions" } } } } }
                            tbody {
                                @for (k, v) in t {
                                    tr {
                                        td { code { (k) } }
                                        td { (v) }
                                        @if may_untag {
                                            td.actions { (view::remove_button(s, &format!("{base}/-/settings/untag"), ("key", k), "Remove", &format!("tag {k}"))) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if may_tag {
                form.tag-add method="post" action={(base) "/-/settings/tags"} {
                    (view::csrf(s))
                    div.tag-row {
                        div.field { label for="tag-key" { "Key" } input #tag-key name="key" required maxlength="128" value=(new_key); }
                        div.field { label for="tag-value" { "Value" } input #tag-value name="value" maxlength="256" value=(new_value); }
                        div.field.actions-end { button.btn type="submit" { "Add tag" } }
                    }
                    @if let Some(e) = err(Section::Tags) { p.error-text role="alert" { (e) } }
                }
            }
        }
        @if may_delete {
            section.card.danger-zone aria-labelledby="del-h" #settings-delete {
                h2 #del-h { "Delete repository" }
                (crate::confirm::delete_repository(s, repo, None, err(Section::Delete), None))
            }
        }
    };
    let page =
        Page { title: "Settings", nav: Nav::Repositories, crumbs: crumbs(repo, Some("Settings")), notice: crate::repo::notice(q), body };
    Ok(view::render(s, page).await)
}

/// Shows the service's refusal in its section, or fails the page for storage errors.
async fn refused(post: &Post, repo: &Repo, e: RegistryError, section: Section, rejected: impl FnOnce(String) -> Rejected) -> PageResult {
    if matches!(e, RegistryError::Store(_) | RegistryError::NameUnknown(_)) {
        return Err(e.into());
    }
    let status = crate::web::status_of(&e);
    let mut r = rejected(crate::web::message_of(&e));
    r.section = section;
    let mut resp = render(&post.session, repo, &[], Some(r)).await?;
    *resp.status_mut() = status;
    Ok(crate::web::refused_page(resp, e))
}

fn rejected(message: String) -> Rejected {
    Rejected { section: Section::Mutability, message, mutability: None, tag: None }
}

pub async fn save_mutability(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    let params = serde_json::json!({ "repositoryName": repo.name.as_str(), "imageTagMutability": post.form.text("mutability") });
    s.audit_allow("ecr:PutImageTagMutability", Resource::Repository(repo), params).await?;
    let mutability = post.form.text("mutability");
    let filters = crate::repos::exclusion_filters(&post.form);
    match s.registry().set_tag_mutability(repo, &mutability, &filters).await {
        Ok(_) => Ok(see_other(&format!("{}/-/settings?done=mutability-saved", repo_url(repo)))),
        Err(e) => {
            let shown = (mutability, filters.into_iter().map(|f| f.filter).collect());
            refused(post, repo, e, Section::Mutability, |m| Rejected { mutability: Some(shown), ..rejected(m) }).await
        }
    }
}

pub async fn save_scanning(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    let params = serde_json::json!({
        "repositoryName": repo.name.as_str(),
        "imageScanningConfiguration": { "scanOnPush": post.form.checked("scan_on_push") },
    });
    s.audit_allow("ecr:PutImageScanningConfiguration", Resource::Repository(repo), params).await?;
    match s.registry().set_scan_on_push(repo, post.form.checked("scan_on_push")).await {
        Ok(_) => Ok(see_other(&format!("{}/-/settings?done=scanning-saved", repo_url(repo)))),
        Err(e) => refused(post, repo, e, Section::Scanning, rejected).await,
    }
}

pub async fn add_tag(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    let (key, value) = (post.form.text("key"), post.form.get("value").unwrap_or("").trim().to_string());
    let params = serde_json::json!({ "resourceArn": repo.arn(), "tags": [{ "Key": key, "Value": value }] });
    s.audit_allow("ecr:TagResource", Resource::Repository(repo), params).await?;
    match s.registry().tag_repository(repo, &[(key.clone(), value.clone())]).await {
        Ok(()) => Ok(see_other(&format!("{}/-/settings?done=tags-saved", repo_url(repo)))),
        Err(e) => refused(post, repo, e, Section::Tags, |m| Rejected { tag: Some((key, value)), ..rejected(m) }).await,
    }
}

pub async fn remove_tag(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    s.allow("ecr:UntagResource", Resource::Repository(repo)).await?;
    let key = post.form.text("key");
    if !confirm::confirmed(post) {
        let value = if s.may("ecr:ListTagsForResource", Resource::Repository(repo)).await? {
            s.registry().repository_tags(repo).await?.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v)
        } else {
            None
        };
        let base = repo_url(repo);
        let heading = format!("Remove the tag {key}?");
        let c = Confirm {
            heading: &heading,
            lost: html! {
                p { "The tag " strong { (key) } @if let Some(v) = &value { " (value " code { (v) } ")" } " will be removed from "
                    code { (repo.name) } ". Policies and reports that select repositories by this tag will no longer match it." }
            },
            action: &format!("{base}/-/settings/untag"),
            fields: vec![("key", key.clone())],
            cancel: &format!("{base}/-/settings"),
            button: "Remove tag",
        };
        return confirm::repo_page(s, repo, Tab::Settings, c).await;
    }
    s.audit("ecr:UntagResource", &Resource::Repository(repo), serde_json::json!({ "resourceArn": repo.arn(), "tagKeys": [key] }));
    match s.registry().untag_repository(repo, &[key]).await {
        Ok(()) => Ok(see_other(&format!("{}/-/settings?done=tag-removed", repo_url(repo)))),
        Err(e) => refused(post, repo, e, Section::Tags, rejected).await,
    }
}

pub async fn delete_repository(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    s.allow("ecr:DeleteRepository", Resource::Repository(repo)).await?;
    if post.form.text("confirm_name") != repo.name.as_str() {
        let e = RegistryError::invalid(format!("Type the repository name '{}' exactly to confirm the deletion.", repo.name));
        return refused(post, repo, e, Section::Delete, rejected).await;
    }
    let params = serde_json::json!({ "repositoryName": repo.name.as_str(), "force": post.form.checked("force") });
    s.audit("ecr:DeleteRepository", &Resource::Repository(repo), params);
    match s.registry().delete_repository(repo, post.form.checked("force")).await {
        Ok(_) => Ok(see_other("/console/repositories?done=repository-deleted")),
        Err(e) => refused(post, repo, e, Section::Delete, rejected).await,
    }
}
