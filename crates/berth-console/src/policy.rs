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
    /// Text to put in the editor instead of the current policy (a template, a refused or
    /// unconfirmed save).
    draft: Option<Draft>,
    may_set: bool,
    may_delete: bool,
    templates: Vec<(&'static str, &'static str, &'static str, String)>,
    /// The page's own URL, for template links.
    here: String,
    what: &'a str,
}

/// A policy text back in the editor: a template, or a save the service refused (`error`) or
/// that names actions ECR does not have (`unknown`, to confirm).
#[derive(Default)]
pub struct Draft {
    text: String,
    error: Option<String>,
    unknown: Vec<String>,
}

/// The unknown actions of `text` not yet confirmed on this form (the `acknowledged` fields
/// carry those the person saw in the warning and saved anyway).
fn unconfirmed_unknown(post: &Post, text: &str) -> Vec<String> {
    let acknowledged = post.form.all("acknowledged");
    let unknown = berth_iam::ecr_actions::unknown_in(text);
    if unknown.iter().all(|u| acknowledged.contains(&u.as_str())) {
        Vec::new()
    } else {
        unknown
    }
}

/// A policy's elements as words for the statements table.
fn element_words(v: Option<&serde_json::Value>) -> Vec<String> {
    use serde_json::Value;
    match v {
        None => Vec::new(),
        Some(Value::String(x)) => vec![x.clone()],
        Some(Value::Array(a)) => a.iter().flat_map(|x| element_words(Some(x))).collect(),
        // {"AWS": [...], "Service": "..."}: the kind is said only for non-AWS principals.
        Some(Value::Object(o)) => o
            .iter()
            .flat_map(|(k, x)| element_words(Some(x)).into_iter().map(move |w| if k == "AWS" { w } else { format!("{k}: {w}") }))
            .collect(),
        Some(other) => vec![other.to_string()],
    }
}

/// The stored policy as a table of its statements (Sid, effect, principals, actions,
/// whether conditions apply). None when the text is no JSON policy (then the JSON is shown).
fn statements_table(text: &str) -> Option<Markup> {
    use serde_json::Value;
    let doc: Value = serde_json::from_str(text).ok()?;
    let statements: Vec<&Value> = match doc.get("Statement")? {
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    let either = |st: &Value, a: &str, not: &str| match st.get(not) {
        Some(v) => (true, element_words(Some(v))),
        None => (false, element_words(st.get(a))),
    };
    Some(html! {
        div.table-wrap {
            table.data #policy-statements {
                caption.sr-only { "Policy statements" }
                thead { tr {
                    th scope="col" { "Sid" } th scope="col" { "Effect" } th scope="col" { "Principals" }
                    th scope="col" { "Actions" } th scope="col" { "Conditions" }
                } }
                tbody {
                    @for (i, st) in statements.iter().enumerate() {
                        @let effect = st.get("Effect").and_then(Value::as_str).unwrap_or("—");
                        @let (not_principal, principals) = either(st, "Principal", "NotPrincipal");
                        @let (not_action, actions) = either(st, "Action", "NotAction");
                        @let conditions = st.get("Condition").and_then(Value::as_object).is_some_and(|c| !c.is_empty());
                        tr data-statement=(i) {
                            th scope="row" { @match st.get("Sid").and_then(Value::as_str) { Some(sid) if !sid.is_empty() => { (sid) } _ => { span.muted { "Statement " (i + 1) } } } }
                            td { @if effect == "Deny" { (view::badge("Deny", "warn")) } @else { (effect) } }
                            td {
                                @if not_principal { span.muted { "Everyone except " } }
                                @for (j, p) in principals.iter().enumerate() {
                                    @if j > 0 { br; }
                                    @if p == "*" { "Everyone (*)" } @else { code.wrap { (p) } }
                                }
                                @if principals.is_empty() { span.muted { "—" } }
                            }
                            td {
                                @if not_action { span.muted { "Every action except " } }
                                @for (j, a) in actions.iter().enumerate() {
                                    @if j > 0 { br; }
                                    code { (a) }
                                }
                            }
                            td data-conditions=(conditions) { @if conditions { "Yes" } @else { span.muted { "No" } } }
                        }
                    }
                }
            }
        }
    })
}

fn editor(s: &Session, e: &Editor<'_>) -> Markup {
    let current = e.current.as_ref().ok().cloned().flatten();
    let text = e.draft.as_ref().map(|d| d.text.clone()).or_else(|| current.clone()).unwrap_or_default();
    let error = e.draft.as_ref().and_then(|d| d.error.as_ref());
    let unknown = e.draft.as_ref().map(|d| d.unknown.as_slice()).unwrap_or_default();
    // Editing is on request when there is a policy to read; open at once for a draft or none.
    let open = e.draft.is_some() || current.is_none();
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
        @if let Some(p) = &current {
            @match statements_table(p) {
                Some(table) => { (table) }
                None => { pre.json #policy-view { code { (p) } } }
            }
        }
        @if e.may_set {
            details.policy-edit #policy-edit open[open] {
                summary.btn { @if current.is_some() { "Edit policy JSON" } @else { "Write a policy" } }
            div.policy-grid {
                form.card.policy-form method="post" action=(e.action) data-json-form {
                    (view::csrf(s))
                    @if !unknown.is_empty() {
                        div.notice.warn #unknown-actions role="alert" {
                            p { strong { "ECR has no action named " }
                                @for (i, a) in unknown.iter().enumerate() { @if i > 0 { ", " } code { (a) } } "." }
                            p { "A statement that names an action ECR does not have allows or denies nothing for it: "
                                "check the spelling (e.g. " code { "ecr:BatchGetImage" } "). To save the policy as it is, choose Save anyway." }
                            @for a in unknown { input type="hidden" name="acknowledged" value=(a); }
                        }
                    }
                    div.field data-invalid=[error.map(|_| "true")] {
                        label for="policy" { "Policy JSON" }
                        textarea #policy.code name="policy" rows="22" spellcheck="false" autocapitalize="off"
                            required aria-describedby="policy-error policy-help" { (text) }
                        p.help #policy-help { "An IAM resource policy: Version, Statement[] with Effect, Principal, Action (and Condition)." }
                        p.error-text #policy-error role="alert" { @if let Some(err) = error { (err) } }
                    }
                    div.form-actions {
                        button.btn type="button" data-format-json="policy" hidden { "Format JSON" }
                        button.btn.btn-primary type="submit" { @if unknown.is_empty() { "Save policy" } @else { "Save anyway" } }
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
            }
        } @else if let Some(p) = &current {
            details.more {
                summary { "Policy JSON" }
                pre.json #policy-view { code { (p) } }
            }
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
pub async fn repo_page(s: &Session, repo: &Repo, q: &[(String, String)], rejected: Option<Draft>) -> PageResult {
    let row = describe(s, repo).await?;
    let res = Resource::Repository(repo);
    let current = if s.may("ecr:GetRepositoryPolicy", Resource::Repository(repo)).await? {
        current(s.registry().repository_policy(repo).await)?
    } else {
        Err("You may not read this repository's policy (ecr:GetRepositoryPolicy).".to_string())
    };
    let templates = repo_templates(&s.registry.account);
    let draft = rejected.or_else(|| template(&templates, param(q, "template")).map(|t| Draft { text: t.clone(), ..Draft::default() }));
    let base = repo_url(repo);
    let e = Editor {
        action: format!("{base}/-/permissions"),
        delete_action: format!("{base}/-/permissions/delete"),
        current,
        draft,
        may_set: s.may("ecr:SetRepositoryPolicy", res).await?,
        may_delete: s.may("ecr:DeleteRepositoryPolicy", Resource::Repository(repo)).await?,
        templates,
        here: format!("{base}/-/permissions"),
        what: "repository policy",
    };
    let body = html! {
        (header(s, repo, &row, Tab::Permissions).await)
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
    let unknown = unconfirmed_unknown(post, &text);
    if !unknown.is_empty() {
        return repo_page(s, repo, &[], Some(Draft { text, error: None, unknown })).await;
    }
    s.audit(
        "ecr:SetRepositoryPolicy",
        &Resource::Repository(repo),
        serde_json::json!({ "repositoryName": repo.name.as_str(), "policyText": text }),
    );
    match s.registry().set_repository_policy(repo, &text).await {
        Ok(()) => Ok(see_other(&format!("{}/-/permissions?done=policy-saved", repo_url(repo)))),
        Err(e @ RegistryError::Store(_)) => Err(e.into()),
        Err(e) => {
            let status = crate::web::status_of(&e);
            let draft = Draft { text, error: Some(crate::web::message_of(&e)), unknown: Vec::new() };
            let mut resp: Response = repo_page(s, repo, &[], Some(draft)).await?;
            *resp.status_mut() = status;
            Ok(crate::web::refused_page(resp, e))
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
    s.audit("ecr:DeleteRepositoryPolicy", &Resource::Repository(repo), serde_json::json!({ "repositoryName": repo.name.as_str() }));
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

async fn registry_view(s: &Session, q: &RegistryQuery, rejected: Option<Draft>) -> PageResult {
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
    let draft = rejected.or_else(|| template(&templates, q.template.as_deref()).map(|t| Draft { text: t.clone(), ..Draft::default() }));
    let e = Editor {
        action: "/console/registry/policy".into(),
        delete_action: "/console/registry/policy/delete".into(),
        current,
        draft,
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
    let unknown = unconfirmed_unknown(&post, &text);
    if !unknown.is_empty() {
        return registry_view(s, &RegistryQuery::default(), Some(Draft { text, error: None, unknown })).await;
    }
    s.audit("ecr:PutRegistryPolicy", &Resource::Registry(&s.registry), serde_json::json!({ "policyText": text }));
    match s.registry().set_registry_policy(&s.registry, &text).await {
        Ok(()) => Ok(see_other("/console/registry?done=registry-policy-saved")),
        Err(e @ RegistryError::Store(_)) => Err(e.into()),
        Err(e) => {
            let status = crate::web::status_of(&e);
            let draft = Draft { text, error: Some(crate::web::message_of(&e)), unknown: Vec::new() };
            let mut resp = registry_view(s, &RegistryQuery::default(), Some(draft)).await?;
            *resp.status_mut() = status;
            Ok(crate::web::refused_page(resp, e))
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
    s.audit("ecr:DeleteRegistryPolicy", &Resource::Registry(&s.registry), serde_json::json!({}));
    s.registry().delete_registry_policy(&s.registry).await?;
    Ok(see_other("/console/registry?done=registry-policy-deleted"))
}
