//! Repository creation templates (ECR's Create/Describe/Update/DeleteRepositoryCreationTemplate):
//! the list on the registry settings page, the create and edit forms, deletion with a confirm.
//! Each is authorized as its own `ecr:` action on the registry, as the API authorizes it.

use axum::extract::Query;
use berth_core::auth::Resource;
use berth_core::templates::{AppliedFor, Template, TemplateInput, ROOT};
use berth_core::{Param, RegistryError};
use maud::{html, Markup};
use serde::Deserialize;

use crate::confirm::{self, Confirm};
use crate::view::{self, Nav, Page};
use crate::web::{see_other, Fail, PageResult, Post, Session};

pub const SETTINGS: &str = "/console/registry/settings";
const TEMPLATES: &str = "/console/registry/templates";
/// Templates a registry holds at most (the service's limit), so one page lists them all.
const LIST_LIMIT: u32 = berth_core::templates::MAX_TEMPLATES;

/// ECR console's words for each `appliedFor` value.
fn applied_for_label(a: AppliedFor) -> &'static str {
    match a {
        AppliedFor::CreateOnPush => "Create on push",
        AppliedFor::Replication => "Replication",
        AppliedFor::PullThroughCache => "Pull through cache",
    }
}

fn applied_for_help(a: AppliedFor) -> &'static str {
    match a {
        AppliedFor::CreateOnPush => "Repositories a push creates (a push to a repository that does not exist yet).",
        AppliedFor::Replication => "Repositories replication creates in this registry.",
        AppliedFor::PullThroughCache => "Repositories a pull through cache rule creates.",
    }
}

/// The template list for the registry settings page, with the controls the caller may use.
pub async fn section(s: &Session) -> Result<Markup, Fail> {
    let reg = Resource::Registry(&s.registry);
    if !s.may("ecr:DescribeRepositoryCreationTemplates", reg).await? {
        return Ok(html! {
            section.card aria-labelledby="templates-h" #templates {
                h2 #templates-h { "Repository creation templates" }
                p.muted { "You may not list this registry's repository creation templates (ecr:DescribeRepositoryCreationTemplates)." }
            }
        });
    }
    let page = s.registry().describe_repository_creation_templates(&s.registry, &[], None, LIST_LIMIT).await?;
    let may_create = s.may("ecr:CreateRepositoryCreationTemplate", Resource::Registry(&s.registry)).await?;
    let may_update = s.may("ecr:UpdateRepositoryCreationTemplate", Resource::Registry(&s.registry)).await?;
    let may_delete = s.may("ecr:DeleteRepositoryCreationTemplate", Resource::Registry(&s.registry)).await?;
    Ok(html! {
        section.card aria-labelledby="templates-h" #templates {
            div.section-head {
                h2 #templates-h { "Repository creation templates" }
                @if may_create { a.btn.btn-primary #create-template href={(TEMPLATES) "/new"} { "Create template" } }
            }
            p.help { "The settings a repository gets when the registry creates it for you: on a push to a name that does not exist yet, "
                "by replication, or by a pull through cache rule. The template with the longest prefix matching the repository name applies, else "
                code { "ROOT" } "'s." }
            @if page.templates.is_empty() {
                (view::empty("No repository creation templates", html! {
                    p { "Without one, repositories the registry creates get ECR's defaults (mutable tags, AES-256 encryption, no policies)." }
                }))
            } @else {
                div.table-wrap {
                    table.data #template-list {
                        thead { tr {
                            th scope="col" { "Prefix" } th scope="col" { "Applied for" } th scope="col" class="secondary" { "Description" }
                            th scope="col" { "Image tag mutability" } th scope="col" class="secondary" { "Encryption" }
                            th scope="col" class="secondary" { "Updated" } th scope="col" { span.sr-only { "Actions" } }
                        } }
                        tbody {
                            @for t in &page.templates {
                                tr data-prefix=(t.prefix) {
                                    th scope="row" { code { (prefix_label(&t.prefix)) } }
                                    td { @for (i, a) in t.applied_for.iter().enumerate() { @if i > 0 { br; } code { (a.as_str()) } } }
                                    td.secondary { @match &t.description { Some(d) => { (d) } None => { span.muted { "—" } } } }
                                    td { (crate::repos::mutability_label(t.tag_mutability))
                                        @if !t.exclusion_filters.is_empty() { br; span.muted { "Exclusions: " @for f in &t.exclusion_filters { code { (f.filter) } " " } } } }
                                    td.secondary { (t.encryption_type.as_str()) @if let Some(k) = &t.kms_key { br; code.wrap { (k) } } }
                                    td.secondary { (view::when(t.updated_at)) }
                                    td.actions { (row_actions(s, t, may_update, may_delete)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// ROOT is every repository no other prefix matches; a prefix matches `prefix/…`.
fn prefix_label(prefix: &str) -> String {
    if prefix == ROOT {
        ROOT.to_string()
    } else {
        format!("{prefix}/")
    }
}

fn row_actions(s: &Session, t: &Template, may_update: bool, may_delete: bool) -> Markup {
    html! {
        @if may_update {
            a.btn.btn-small href=(crate::web::with_query(&format!("{TEMPLATES}/edit"), &[("prefix", &t.prefix)])) {
                "Edit" span.sr-only { " template " (t.prefix) }
            }
            " "
        }
        @if may_delete {
            (view::remove_button(s, &format!("{TEMPLATES}/delete"), ("prefix", &t.prefix), "Delete", &format!("template {}", t.prefix)))
        }
    }
}

// ---- the form ----

/// Which part of the form a refusal is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    General,
    Prefix,
    AppliedFor,
    Description,
    Mutability,
    Encryption,
    Tags,
    RepositoryPolicy,
    Role,
}

/// What the form holds: a stored template, or what was posted (shown again with the refusal).
#[derive(Default)]
struct TemplateForm {
    prefix: String,
    applied_for: Vec<String>,
    description: String,
    mutability: String,
    filters: Vec<String>,
    encryption: String,
    kms_key: String,
    tags: Vec<(String, String)>,
    repository_policy: String,
    lifecycle_policy: String,
    custom_role_arn: String,
    error: Option<(Field, String)>,
}

impl TemplateForm {
    fn of(t: &Template) -> Self {
        TemplateForm {
            prefix: t.prefix.clone(),
            applied_for: t.applied_for.iter().map(|a| a.as_str().to_string()).collect(),
            description: t.description.clone().unwrap_or_default(),
            mutability: t.tag_mutability.as_str().to_string(),
            filters: t.exclusion_filters.iter().map(|f| f.filter.clone()).collect(),
            encryption: t.encryption_type.as_str().to_string(),
            kms_key: t.kms_key.clone().unwrap_or_default(),
            tags: t.resource_tags.clone(),
            repository_policy: t.repository_policy.clone().unwrap_or_default(),
            lifecycle_policy: t.lifecycle_policy.clone().unwrap_or_default(),
            custom_role_arn: t.custom_role_arn.clone().unwrap_or_default(),
            error: None,
        }
    }

    fn posted(f: &crate::web::FormData) -> Self {
        TemplateForm {
            prefix: f.text("prefix"),
            applied_for: f.all("applied_for").into_iter().map(str::to_string).collect(),
            description: f.text("description"),
            mutability: f.text("mutability"),
            filters: crate::repos::exclusion_filters(f).into_iter().map(|x| x.filter).collect(),
            encryption: f.text("encryption"),
            kms_key: f.text("kms_key"),
            tags: crate::repos::form_tags(f),
            repository_policy: f.get("repository_policy").unwrap_or("").trim().to_string(),
            lifecycle_policy: f.get("lifecycle_policy").unwrap_or("").trim().to_string(),
            custom_role_arn: f.text("custom_role_arn"),
            error: None,
        }
    }

    /// Every member, so that an update replaces the whole template (an empty policy, description
    /// or role removes it, as in the API).
    fn input(&self) -> TemplateInput {
        let mutability = if self.mutability.is_empty() { "MUTABLE".to_string() } else { self.mutability.clone() };
        let encryption = if self.encryption.is_empty() { "AES256".to_string() } else { self.encryption.clone() };
        TemplateInput {
            description: Some(self.description.clone()),
            encryption: Some((encryption, Some(self.kms_key.clone()))),
            resource_tags: Some(self.tags.clone()),
            tag_mutability: Some(mutability),
            exclusion_filters: Some(
                self.filters
                    .iter()
                    .map(|f| berth_core::immutability::ExclusionFilter { filter_type: "WILDCARD".into(), filter: f.clone() })
                    .collect(),
            ),
            repository_policy: Some(self.repository_policy.clone()),
            lifecycle_policy: Some(self.lifecycle_policy.clone()),
            applied_for: Some(self.applied_for.clone()),
            custom_role_arn: Some(self.custom_role_arn.clone()),
        }
    }
}

/// The form part a refusal names: by its parameter, else by the member its message names.
fn field_of(e: &RegistryError) -> Field {
    match e {
        RegistryError::TemplateAlreadyExists(_) => Field::Prefix,
        RegistryError::Kms { .. } => Field::Encryption,
        RegistryError::InvalidParameter(i) => match &i.param {
            Some(Param::EncryptionType | Param::KmsKey) => Field::Encryption,
            Some(_) => Field::Mutability,
            None => {
                let m = i.message.as_str();
                let members = [
                    ("'prefix'", Field::Prefix),
                    ("'appliedFor'", Field::AppliedFor),
                    ("'description'", Field::Description),
                    ("'resourceTags'", Field::Tags),
                    ("'customRoleArn'", Field::Role),
                    ("'policyText'", Field::RepositoryPolicy),
                    ("Invalid repository policy", Field::RepositoryPolicy),
                ];
                members.iter().find(|(needle, _)| m.contains(needle)).map(|(_, f)| *f).unwrap_or(Field::General)
            }
        },
        _ => Field::General,
    }
}

fn error_text(error: Option<&str>) -> Markup {
    html! { @if let Some(e) = error { p.error-text role="alert" { (e) } } }
}

fn form(s: &Session, f: &TemplateForm, editing: bool, keys: Option<&[(String, String)]>) -> Markup {
    let err = |field: Field| f.error.as_ref().filter(|(w, _)| *w == field).map(|(_, m)| m.as_str());
    let invalid = |field: Field| err(field).map(|_| "true");
    let action = if editing { format!("{TEMPLATES}/update") } else { TEMPLATES.to_string() };
    html! {
        @if let Some((_, m)) = &f.error { (view::alert(m)) }
        form.card.form-wide #template-form method="post" action=(action) {
            (view::csrf(s))
            section.form-section aria-labelledby="tpl-general-h" {
                h2 #tpl-general-h { "Template details" }
                @if editing {
                    p { "Prefix " code #template-prefix { (prefix_label(&f.prefix)) } }
                    input type="hidden" name="prefix" value=(f.prefix);
                } @else {
                    div.field data-invalid=[invalid(Field::Prefix)] {
                        label for="prefix" { "Prefix" }
                        input #prefix name="prefix" required maxlength="256" value=(f.prefix) spellcheck="false" autocapitalize="off"
                            autocomplete="off" placeholder="prod" aria-describedby="prefix-help";
                        p.help #prefix-help { "A repository namespace such as " code { "prod" } " (applies to " code { "prod/…" } "), or "
                            code { (ROOT) } " for every repository no other template matches." }
                        (error_text(err(Field::Prefix)))
                    }
                }
                fieldset.field data-invalid=[invalid(Field::AppliedFor)] {
                    legend { "Applied for" }
                    @for a in [AppliedFor::CreateOnPush, AppliedFor::Replication, AppliedFor::PullThroughCache] {
                        @let id = format!("applied-{}", a.as_str().to_ascii_lowercase());
                        div.choice {
                            input type="checkbox" name="applied_for" id=(id) value=(a.as_str()) checked[f.applied_for.iter().any(|x| x == a.as_str())];
                            label for=(id) { (applied_for_label(a)) " " code.muted { (a.as_str()) } }
                            p.help { (applied_for_help(a)) }
                        }
                    }
                    (error_text(err(Field::AppliedFor)))
                }
                div.field data-invalid=[invalid(Field::Description)] {
                    label for="description" { "Description " span.muted { "(optional)" } }
                    input #description name="description" maxlength="256" value=(f.description);
                    (error_text(err(Field::Description)))
                }
            }
            section.form-section aria-labelledby="tpl-settings-h" {
                h2 #tpl-settings-h { "Repository settings" }
                (crate::repos::mutability_fields(&f.mutability, &f.filters, err(Field::Mutability)))
                (crate::repos::encryption_fields(&f.encryption, &f.kms_key, keys, err(Field::Encryption)))
            }
            section.form-section aria-labelledby="tpl-tags-h" {
                h2 #tpl-tags-h { "Resource tags " span.muted { "(optional)" } }
                (error_text(err(Field::Tags)))
                (crate::repos::tag_rows(&f.tags))
            }
            section.form-section aria-labelledby="tpl-policies-h" {
                h2 #tpl-policies-h { "Policies " span.muted { "(optional)" } }
                div.field data-invalid=[invalid(Field::RepositoryPolicy)] {
                    label for="repository_policy" { "Repository policy" }
                    textarea #repository_policy.code name="repository_policy" rows="10" spellcheck="false" autocapitalize="off" { (f.repository_policy) }
                    p.help { "The permissions policy each new repository gets (JSON). Empty: none." }
                    (error_text(err(Field::RepositoryPolicy)))
                }
                div.field {
                    label for="lifecycle_policy" { "Lifecycle policy" }
                    textarea #lifecycle_policy.code name="lifecycle_policy" rows="10" spellcheck="false" autocapitalize="off" { (f.lifecycle_policy) }
                    p.help { "The lifecycle policy each new repository gets (JSON, as on a repository's Lifecycle policy tab). Empty: none." }
                }
                div.field data-invalid=[invalid(Field::Role)] {
                    label for="custom_role_arn" { "Repository creation role " span.muted { "(optional)" } }
                    input #custom_role_arn name="custom_role_arn" value=(f.custom_role_arn) spellcheck="false" autocapitalize="off"
                        placeholder={"arn:aws:iam::" (s.registry.account) ":role/name"};
                    p.help { "An IAM role of this account, needed by ECR for KMS keys or tags; berth records it." }
                    (error_text(err(Field::Role)))
                }
            }
            div.form-actions {
                a.btn href=(SETTINGS) { "Cancel" }
                button.btn.btn-primary type="submit" { @if editing { "Save template" } @else { "Create template" } }
            }
        }
    }
}

fn crumbs(last: &str) -> Vec<(String, Option<String>)> {
    vec![("Registry settings".into(), Some(SETTINGS.into())), (last.into(), None)]
}

async fn form_page(s: &Session, f: &TemplateForm, editing: bool) -> PageResult {
    let keys = crate::repos::key_options(s).await?;
    let title = if editing { "Edit repository creation template" } else { "Create repository creation template" };
    let body = html! {
        h1 { (title) }
        (form(s, f, editing, keys.as_deref()))
    };
    Ok(view::render(s, Page { title, nav: Nav::Settings, crumbs: crumbs(title), notice: None, body }).await)
}

pub async fn new_form(s: Session) -> PageResult {
    s.allow("ecr:CreateRepositoryCreationTemplate", Resource::Registry(&s.registry)).await?;
    let f = TemplateForm { applied_for: vec![AppliedFor::CreateOnPush.as_str().to_string()], ..TemplateForm::default() };
    form_page(&s, &f, false).await
}

#[derive(Deserialize)]
pub struct PrefixQuery {
    prefix: String,
}

/// The stored template named by `prefix` (the service's TemplateNotFound when there is none).
async fn stored(s: &Session, prefix: &str) -> Result<Template, Fail> {
    let page = s.registry().describe_repository_creation_templates(&s.registry, &[prefix.to_string()], None, 1).await?;
    page.templates.into_iter().next().ok_or_else(|| {
        Fail::from(RegistryError::TemplateNotFound(format!(
            "The repository creation template with prefix '{prefix}' does not exist in the registry with id '{}'",
            s.registry.account
        )))
    })
}

pub async fn edit_form(s: Session, Query(q): Query<PrefixQuery>) -> PageResult {
    let reg = Resource::Registry(&s.registry);
    s.allow("ecr:DescribeRepositoryCreationTemplates", reg).await?;
    s.allow("ecr:UpdateRepositoryCreationTemplate", Resource::Registry(&s.registry)).await?;
    let t = stored(&s, &q.prefix).await?;
    form_page(&s, &TemplateForm::of(&t), true).await
}

/// The form again with the service's refusal (storage failures are error pages).
async fn refused(s: &Session, mut f: TemplateForm, e: RegistryError, editing: bool) -> PageResult {
    let status = crate::web::status_of(&e);
    if status.is_server_error() {
        return Err(e.into());
    }
    f.error = Some((field_of(&e), crate::web::message_of(&e)));
    let mut resp = form_page(s, &f, editing).await?;
    *resp.status_mut() = status;
    Ok(crate::web::refused_page(resp, e))
}

pub async fn create(post: Post) -> PageResult {
    let s = &post.session;
    let f = TemplateForm::posted(&post.form);
    let params = serde_json::json!({ "prefix": f.prefix });
    s.audit_allow("ecr:CreateRepositoryCreationTemplate", Resource::Registry(&s.registry), params).await?;
    match s.registry().create_repository_creation_template(&s.registry, &f.prefix, f.input()).await {
        Ok(_) => Ok(see_other(&format!("{SETTINGS}?done=template-created#templates"))),
        Err(e) => refused(s, f, e, false).await,
    }
}

pub async fn update(post: Post) -> PageResult {
    let s = &post.session;
    let f = TemplateForm::posted(&post.form);
    let params = serde_json::json!({ "prefix": f.prefix });
    s.audit_allow("ecr:UpdateRepositoryCreationTemplate", Resource::Registry(&s.registry), params).await?;
    match s.registry().update_repository_creation_template(&s.registry, &f.prefix, f.input()).await {
        Ok(_) => Ok(see_other(&format!("{SETTINGS}?done=template-saved#templates"))),
        Err(e @ RegistryError::TemplateNotFound(_)) => Err(e.into()),
        Err(e) => refused(s, f, e, true).await,
    }
}

pub async fn delete(post: Post) -> PageResult {
    let s = &post.session;
    s.allow("ecr:DeleteRepositoryCreationTemplate", Resource::Registry(&s.registry)).await?;
    let prefix = post.form.text("prefix");
    if !confirm::confirmed(&post) {
        // What will be lost, when the caller may read it; a missing template fails here.
        let shown = if s.may("ecr:DescribeRepositoryCreationTemplates", Resource::Registry(&s.registry)).await? {
            Some(stored(s, &prefix).await?)
        } else {
            None
        };
        let heading = format!("Delete the repository creation template {}?", prefix_label(&prefix));
        let c = Confirm {
            heading: &heading,
            lost: html! {
                p { "Repositories the registry creates from now on whose names start with " code { (prefix_label(&prefix)) }
                    " get another matching template's settings (" code { (ROOT) } "'s, if there is one), else ECR's defaults. "
                    "Repositories already created keep their settings." }
                @if let Some(t) = &shown {
                    p { "It applies for " @for (i, a) in t.applied_for.iter().enumerate() { @if i > 0 { ", " } code { (a.as_str()) } } "." }
                }
            },
            action: &format!("{TEMPLATES}/delete"),
            fields: vec![("prefix", prefix.clone())],
            cancel: SETTINGS,
            button: "Delete template",
        };
        let body = confirm::section(s, &c);
        let page = Page { title: c.heading, nav: Nav::Settings, crumbs: crumbs(c.heading), notice: None, body };
        return Ok(view::render(s, page).await);
    }
    s.audit("ecr:DeleteRepositoryCreationTemplate", &Resource::Registry(&s.registry), serde_json::json!({ "prefix": prefix }));
    s.registry().delete_repository_creation_template(&s.registry, &prefix).await?;
    Ok(see_other(&format!("{SETTINGS}?done=template-deleted#templates")))
}
