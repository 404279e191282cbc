//! Permissions: a repository's policy (SetRepositoryPolicy …) and the registry policy.

use axum::extract::{Query, State};
use axum::response::Response;
use berth_core::auth::Resource;
use berth_core::{RegistryError, RegistryRef, Repo};
use maud::{html, Markup};
use serde::Deserialize;

use crate::confirm::{self, Confirm};
use crate::repo::{crumbs, describe, header, param, repo_url, Tab};
use crate::view::{self, Nav, Page};
use crate::web::{see_other, App, Fail, PageResult, Post, Session};

const PULL_ACTIONS: &str = r#"[
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer"
      ]"#;

/// Starting points for a repository policy: (key, label, description, text).
fn repo_templates(account: &str) -> Vec<(&'static str, &'static str, &'static str, String)> {
    vec![
        (
            "pull-from-account",
            "Allow pull from another account",
            "Lets every principal of another account (replace 111122223333) pull images, if their own policies allow it too.",
            format!(
                r#"{{
  "Version": "2012-10-17",
  "Statement": [
    {{
      "Sid": "AllowPullFromAnotherAccount",
      "Effect": "Allow",
      "Principal": {{ "AWS": "arn:aws:iam::111122223333:root" }},
      "Action": {PULL_ACTIONS}
    }}
  ]
}}"#
            ),
        ),
        (
            "read-only-account",
            "Read-only for everyone in this account",
            "Lets every user of this account pull and describe this repository, whatever their identity policies say.",
            format!(
                r#"{{
  "Version": "2012-10-17",
  "Statement": [
    {{
      "Sid": "ReadOnlyForThisAccount",
      "Effect": "Allow",
      "Principal": {{ "AWS": "*" }},
      "Action": [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:DescribeImages",
        "ecr:DescribeRepositories",
        "ecr:ListImages",
        "ecr:GetRepositoryPolicy",
        "ecr:GetLifecyclePolicy",
        "ecr:ListTagsForResource"
      ],
      "Condition": {{ "StringEquals": {{ "aws:PrincipalAccount": "{account}" }} }}
    }}
  ]
}}"#
            ),
        ),
    ]
}

fn registry_templates(registry: &RegistryRef) -> Vec<(&'static str, &'static str, &'static str, String)> {
    vec![(
        "pull-all-from-account",
        "Allow another account to pull from every repository",
        "Lets every principal of another account (replace 111122223333) pull from all repositories of this registry.",
        format!(
            r#"{{
  "Version": "2012-10-17",
  "Statement": [
    {{
      "Sid": "AllowPullFromAnotherAccount",
      "Effect": "Allow",
      "Principal": {{ "AWS": "arn:aws:iam::111122223333:root" }},
      "Action": {PULL_ACTIONS},
      "Resource": "arn:aws:ecr:{}:{}:repository/*"
    }}
  ]
}}"#,
            registry.region, registry.account
        ),
    )]
}

/// What the policy section shows.
struct Editor<'a> {
    /// Where the form posts (save), and where "delete" posts.
    action: String,
    delete_action: String,
    /// The current policy (None: there is none), or why it cannot be read.
    current: Result<Option<String>, String>,
    /// Text to put in the editor instead of the current policy (a template, a rejected save).
    draft: Option<String>,
    error: Option<String>,
    may_set: bool,
    may_delete: bool,
    templates: Vec<(&'static str, &'static str, &'static str, String)>,
    /// The page's own URL, for template links.
    here: String,
    what: &'a str,
}

fn editor(s: &Session, e: &Editor<'_>) -> Markup {
    let text = e.draft.clone().or_else(|| e.current.as_ref().ok().cloned().flatten()).unwrap_or_default();
    html! {
        @match &e.current {
            Err(why) => { (view::alert(why)) }
            Ok(None) if e.draft.is_none() => {
                (view::empty(&format!("No {} yet", e.what), html! {
                    p { "Without one, only identity policies (the users' own permissions) decide who may use it." }
                    @if e.may_set { p { "Start from a template below, or write your own." } }
                }))
            }
            Ok(_) => {}
        }
        @if e.may_set {
            div.policy-grid {
                form.card.policy-form method="post" action=(e.action) data-json-form {
                    (view::csrf(s))
                    div.field data-invalid=[e.error.as_ref().map(|_| "true")] {
                        label for="policy" { "Policy JSON" }
                        textarea #policy.code name="policy" rows="22" spellcheck="false" autocapitalize="off"
                            required aria-describedby="policy-error policy-help" { (text) }
                        p.help #policy-help { "An IAM resource policy: Version, Statement[] with Effect, Principal, Action (and Condition)." }
                        p.error-text #policy-error role="alert" { @if let Some(err) = &e.error { (err) } }
                    }
                    div.form-actions {
                        button.btn type="button" data-format-json="policy" hidden { "Format JSON" }
                        button.btn.btn-primary type="submit" { "Save policy" }
                    }
                }
                aside.card.templates aria-labelledby="templates-h" {
                    h3 #templates-h { "Templates" }
                    ul.template-list {
                        @for (key, label, about, body) in &e.templates {
                            li {
                                a href={(e.here) "?template=" (key)} data-template=(body) data-target="policy" { (label) }
                                p.help { (about) }
                            }
                        }
                    }
                }
            }
        } @else if let Ok(Some(p)) = &e.current {
            pre.json #policy-view { code { (p) } }
        }
        @if e.may_delete && matches!(e.current, Ok(Some(_))) {
            form.inline-form method="post" action=(e.delete_action) {
                (view::csrf(s))
                button.btn.btn-danger-quiet type="submit" { "Delete policy" }
            }
        }
    }
}

fn current(r: Result<String, RegistryError>) -> Result<Result<Option<String>, String>, RegistryError> {
    match r {
        Ok(p) => Ok(Ok(Some(p))),
        Err(RegistryError::PolicyNotFound(_) | RegistryError::RegistryPolicyNotFound(_)) => Ok(Ok(None)),
        Err(e @ RegistryError::Store(_)) => Err(e),
        Err(e) => Ok(Err(crate::web::message_of(&e))),
    }
}

fn template<'a>(templates: &'a [(&str, &str, &str, String)], key: Option<&str>) -> Option<&'a String> {
    key.and_then(|k| templates.iter().find(|t| t.0 == k)).map(|t| &t.3)
}

/// The repository's Permissions tab. `rejected`: a save the service refused (text, message).
pub async fn repo_page(s: &Session, repo: &Repo, q: &[(String, String)], rejected: Option<(String, String)>) -> PageResult {
    let row = describe(s, repo).await?;
    let res = Resource::Repository(repo);
    let current = if s.may("ecr:GetRepositoryPolicy", Resource::Repository(repo)).await? {
        current(s.registry().repository_policy(repo).await)?
    } else {
        Err("You may not read this repository's policy (ecr:GetRepositoryPolicy).".to_string())
    };
    let templates = repo_templates(&s.registry.account);
    let (draft, error) = match rejected {
        Some((t, e)) => (Some(t), Some(e)),
        None => (template(&templates, param(q, "template")).cloned(), None),
    };
    let base = repo_url(repo);
    let e = Editor {
        action: format!("{base}/-/permissions"),
        delete_action: format!("{base}/-/permissions/delete"),
        current,
        draft,
        error,
        may_set: s.may("ecr:SetRepositoryPolicy", res).await?,
        may_delete: s.may("ecr:DeleteRepositoryPolicy", Resource::Repository(repo)).await?,
        templates,
        here: format!("{base}/-/permissions"),
        what: "repository policy",
    };
    let body = html! {
        (header(s, repo, &row, Tab::Permissions))
        section aria-labelledby="perm-h" {
            h2 #perm-h { "Repository policy" }
            p.help { "Who may pull from and push to this repository, besides what their own identity policies allow. Checked on every API call, "
                code { "docker" } " request and console page." }
            (editor(s, &e))
        }
    };
    let page = Page {
        title: "Permissions",
        nav: Nav::Repositories,
        crumbs: crumbs(repo, Some("Permissions")),
        notice: crate::repo::notice(q),
        body,
    };
    Ok(view::render(s, page).await)
}

pub async fn repo_save(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    s.allow("ecr:SetRepositoryPolicy", Resource::Repository(repo)).await?;
    let text = post.form.get("policy").unwrap_or("").to_string();
    match s.registry().set_repository_policy(repo, &text).await {
        Ok(()) => Ok(see_other(&format!("{}/-/permissions?done=policy-saved", repo_url(repo)))),
        Err(e @ RegistryError::Store(_)) => Err(e.into()),
        Err(e) => {
            let status = crate::web::status_of(&e);
            let mut resp: Response = repo_page(s, repo, &[], Some((text, crate::web::message_of(&e)))).await?;
            *resp.status_mut() = status;
            Ok(resp)
        }
    }
}

pub async fn repo_delete(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    s.allow("ecr:DeleteRepositoryPolicy", Resource::Repository(repo)).await?;
    if !confirm::confirmed(post) {
        let text =
            shown_policy(s.may("ecr:GetRepositoryPolicy", Resource::Repository(repo)).await?, s.registry().repository_policy(repo).await)?;
        let base = repo_url(repo);
        let c = Confirm {
            heading: "Delete the repository policy?",
            lost: html! {
                p { "The permissions policy of " code { (repo.name) } " will be deleted. Whatever access it grants ends — for "
                    "instance pulls by other accounts; access that principals' own policies grant stays." }
                (policy_text(text.as_deref()))
            },
            action: &format!("{base}/-/permissions/delete"),
            fields: Vec::new(),
            cancel: &format!("{base}/-/permissions"),
            button: "Delete policy",
        };
        return confirm::repo_page(s, repo, Tab::Permissions, c).await;
    }
    s.registry().delete_repository_policy(repo).await?;
    Ok(see_other(&format!("{}/-/permissions?done=policy-deleted", repo_url(repo))))
}

/// The policy to show on a delete confirmation: its text when the caller may read it (a
/// missing policy fails here, before anything is asked).
fn shown_policy(may_read: bool, read: Result<String, RegistryError>) -> Result<Option<String>, Fail> {
    match read {
        Ok(text) => Ok(may_read.then_some(text)),
        Err(e @ (RegistryError::PolicyNotFound(_) | RegistryError::RegistryPolicyNotFound(_))) => Err(e.into()),
        Err(_) => Ok(None),
    }
}

fn policy_text(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            details.more open {
                summary { "The policy that will be deleted" }
                pre.json { code { (t) } }
            }
        }
    }
}

// ---- registry policy ----

#[derive(Deserialize, Default)]
pub struct RegistryQuery {
    template: Option<String>,
    done: Option<String>,
}

async fn registry_view(s: &Session, q: &RegistryQuery, rejected: Option<(String, String)>) -> PageResult {
    let reg = &s.registry;
    let may_get = s.may("ecr:GetRegistryPolicy", Resource::Registry(reg)).await?;
    let may_set = s.may("ecr:PutRegistryPolicy", Resource::Registry(reg)).await?;
    if !may_get && !may_set {
        s.allow("ecr:GetRegistryPolicy", Resource::Registry(reg)).await?;
    }
    let current = if may_get {
        current(s.registry().registry_policy(reg).await)?
    } else {
        Err("You may not read the registry policy (ecr:GetRegistryPolicy).".to_string())
    };
    let templates = registry_templates(reg);
    let (draft, error) = match rejected {
        Some((t, e)) => (Some(t), Some(e)),
        None => (template(&templates, q.template.as_deref()).cloned(), None),
    };
    let e = Editor {
        action: "/console/registry/policy".into(),
        delete_action: "/console/registry/policy/delete".into(),
        current,
        draft,
        error,
        may_set,
        may_delete: s.may("ecr:DeleteRegistryPolicy", Resource::Registry(reg)).await?,
        templates,
        here: "/console/registry".into(),
        what: "registry policy",
    };
    let body = html! {
        div.page-head { div { h1 { "Registry policy" } p.muted { "Account " (reg.account) " · " (reg.region) } } }
        p.help { "A resource policy for every repository of this registry, evaluated together with each repository's own policy." }
        (editor(s, &e))
    };
    let notice = q.done.as_deref().and_then(view::notice_text).map(str::to_string);
    let crumbs = vec![("Registry policy".to_string(), None)];
    Ok(view::render(s, Page { title: "Registry policy", nav: Nav::Registry, crumbs, notice, body }).await)
}

pub async fn registry_page(s: Session, Query(q): Query<RegistryQuery>) -> PageResult {
    registry_view(&s, &q, None).await
}

pub async fn registry_save(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    s.allow("ecr:PutRegistryPolicy", Resource::Registry(&s.registry)).await?;
    let text = post.form.get("policy").unwrap_or("").to_string();
    match s.registry().set_registry_policy(&s.registry, &text).await {
        Ok(()) => Ok(see_other("/console/registry?done=registry-policy-saved")),
        Err(e @ RegistryError::Store(_)) => Err(e.into()),
        Err(e) => {
            let status = crate::web::status_of(&e);
            let mut resp = registry_view(s, &RegistryQuery::default(), Some((text, crate::web::message_of(&e)))).await?;
            *resp.status_mut() = status;
            Ok(resp)
        }
    }
}

pub async fn registry_delete(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    s.allow("ecr:DeleteRegistryPolicy", Resource::Registry(&s.registry)).await?;
    if !confirm::confirmed(&post) {
        let may_read = s.may("ecr:GetRegistryPolicy", Resource::Registry(&s.registry)).await?;
        let text = shown_policy(may_read, s.registry().registry_policy(&s.registry).await)?;
        let c = Confirm {
            heading: "Delete the registry policy?",
            lost: html! {
                p { "The registry's permissions policy will be deleted. Whatever access it grants ends; access that "
                    "principals' own policies and repository policies grant stays." }
                (policy_text(text.as_deref()))
            },
            action: "/console/registry/policy/delete",
            fields: Vec::new(),
            cancel: "/console/registry",
            button: "Delete policy",
        };
        let body = confirm::section(s, &c);
        let crumbs = vec![("Registry".to_string(), Some("/console/registry".to_string())), (c.heading.to_string(), None)];
        let page = Page { title: c.heading, nav: Nav::Registry, crumbs, notice: None, body };
        return Ok(view::render(s, page).await);
    }
    s.registry().delete_registry_policy(&s.registry).await?;
    Ok(see_other("/console/registry?done=registry-policy-deleted"))
}
