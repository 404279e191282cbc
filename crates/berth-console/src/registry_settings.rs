//! Registry settings: repository creation templates ([`crate::creation_templates`]), account
//! settings (Get/PutAccountSetting), pull-time update exclusions (Register/Deregister/
//! ListPullTimeUpdateExclusions) and replication ([`crate::replication`]), each authorized as
//! the ECR action it is, on the registry.

use axum::extract::Query;
use berth_core::auth::Resource;
use berth_core::RegistryError;
use maud::{html, Markup};
use serde::Deserialize;

use crate::confirm::{self, Confirm};
use crate::creation_templates::SETTINGS;
use crate::view::{self, Nav, Page};
use crate::web::{see_other, Fail, PageResult, Post, Session};

/// An account setting as the page shows it: its name, label, and what each value means.
pub(crate) struct AccountSetting {
    pub name: &'static str,
    label: &'static str,
    pub values: &'static [(&'static str, &'static str)],
}

/// The account settings ECR has. The service holds the values it accepts and refuses others;
/// a setting it gains appears here when described.
pub(crate) const ACCOUNT_SETTINGS: &[AccountSetting] = &[
    AccountSetting {
        name: "BASIC_SCAN_TYPE_VERSION",
        label: "Basic scanning version",
        values: &[("AWS_NATIVE", "AWS native basic scanning (the only version since CLAIR ended in February 2026).")],
    },
    AccountSetting {
        name: "REGISTRY_POLICY_SCOPE",
        label: "Registry policy scope",
        values: &[
            ("V1", "V1: the registry policy grants replication and pull through cache actions only."),
            ("V2", "V2: the registry policy applies to every ECR action on this registry's repositories."),
        ],
    },
    AccountSetting {
        name: "BLOB_MOUNTING",
        label: "Blob mounting",
        values: &[
            ("ENABLED", "Enabled: a push can mount a layer another repository of this registry holds, without uploading it."),
            ("DISABLED", "Disabled: every layer is uploaded, even one the registry already holds."),
        ],
    },
];

/// Exclusions a registry holds at most (the service's limit), so one page lists them all.
const EXCLUSIONS_LIMIT: usize = berth_core::account_settings::MAX_PULL_TIME_EXCLUSIONS as usize;

#[derive(Deserialize, Default)]
pub struct SettingsQuery {
    done: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    AccountSetting,
    Exclusions,
}

/// A change the service refused: the section, its message, and what was typed or chosen.
struct Rejected {
    section: Section,
    message: String,
    /// The setting name (account settings) or principal ARN (exclusions) the refusal is about.
    subject: String,
}

/// A refusal on the page: of an account setting or exclusion, or of a replication step.
#[derive(Default)]
struct Refusals {
    settings: Option<Rejected>,
    replication: Option<crate::replication::Rejected>,
}

pub async fn page(s: Session, Query(q): Query<SettingsQuery>) -> PageResult {
    render(&s, q.done.as_deref(), Refusals::default()).await
}

/// The page with a replication step's refusal in its form.
pub async fn render_with_replication_refusal(s: &Session, r: crate::replication::Rejected) -> PageResult {
    render(s, None, Refusals { replication: Some(r), ..Refusals::default() }).await
}

fn notice(done: Option<&str>) -> Option<String> {
    let text = match done? {
        "template-created" => "Repository creation template created.",
        "template-saved" => "Repository creation template saved.",
        "template-deleted" => "Repository creation template deleted.",
        "setting-saved" => "Account setting saved.",
        "exclusion-registered" => "The principal is excluded from pull time updates.",
        "exclusion-removed" => "The principal's pulls update the last recorded pull time again.",
        "replication-rule-added" => "Replication rule added. Images pushed from now on to matching repositories are replicated.",
        "replication-saved" => "Replication configuration saved.",
        _ => return None,
    };
    Some(text.to_string())
}

/// May the caller see anything on this page? (the navigation's link, and the page's own check)
pub async fn may_view(s: &Session) -> Result<bool, Fail> {
    let actions =
        ["ecr:DescribeRepositoryCreationTemplates", "ecr:GetAccountSetting", "ecr:ListPullTimeUpdateExclusions", "ecr:DescribeRegistry"];
    for action in actions {
        if s.may(action, Resource::Registry(&s.registry)).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn render(s: &Session, done: Option<&str>, refusals: Refusals) -> PageResult {
    let rejected = refusals.settings;
    if !may_view(s).await? {
        // The refusal names the page's first section's action.
        s.allow("ecr:DescribeRepositoryCreationTemplates", Resource::Registry(&s.registry)).await?;
    }
    let body = html! {
        div.page-head { div {
            h1 { "Registry settings" }
            p.muted { "Account " (s.registry.account) " · " (s.registry.region) }
        } }
        nav.tabs aria-label="Registry settings" {
            a href="#templates" { "Repository creation templates" }
            a href="#account-settings" { "Account settings" }
            a href="#exclusions" { "Pull time update exclusions" }
            a href="#replication" { "Replication" }
        }
        (crate::creation_templates::section(s).await?)
        (account_settings(s, rejected.as_ref().filter(|r| r.section == Section::AccountSetting)).await?)
        (exclusions(s, rejected.as_ref().filter(|r| r.section == Section::Exclusions)).await?)
        (crate::replication::section(s, refusals.replication.as_ref()).await?)
    };
    let crumbs = vec![("Registry settings".to_string(), None)];
    Ok(view::render(s, Page { title: "Registry settings", nav: Nav::Settings, crumbs, notice: notice(done), body }).await)
}

async fn account_settings(s: &Session, rejected: Option<&Rejected>) -> Result<Markup, Fail> {
    let reg = || Resource::Registry(&s.registry);
    if !s.may("ecr:GetAccountSetting", reg()).await? {
        return Ok(html! {
            section.card aria-labelledby="account-h" #account-settings {
                h2 #account-h { "Account settings" }
                p.muted { "You may not read this registry's account settings (ecr:GetAccountSetting)." }
            }
        });
    }
    let may_put = s.may("ecr:PutAccountSetting", reg()).await?;
    let mut values = Vec::with_capacity(ACCOUNT_SETTINGS.len());
    for setting in ACCOUNT_SETTINGS {
        values.push(s.registry().account_setting(&s.registry, setting.name).await?);
    }
    Ok(html! {
        section.card aria-labelledby="account-h" #account-settings {
            h2 #account-h { "Account settings" }
            p.help { "Settings of this registry (this account in " (s.registry.region) "), as " code { "aws ecr get-account-setting" } " reads them." }
            // A refusal about no setting of the table (a name ECR does not have) is shown above it.
            @if let Some(r) = rejected.filter(|r| !ACCOUNT_SETTINGS.iter().any(|a| a.name == r.subject)) {
                p.error-text role="alert" { (r.message) }
            }
            div.table-wrap {
                table.data #account-setting-list {
                    thead { tr { th scope="col" { "Setting" } th scope="col" { "Value" } th scope="col" class="secondary" { "Meaning" } } }
                    tbody {
                        @for (AccountSetting { name, label, values: options }, value) in ACCOUNT_SETTINGS.iter().zip(&values) {
                            @let error = rejected.filter(|r| r.subject == *name).map(|r| r.message.as_str());
                            tr data-setting=(name) data-value=(value) {
                                th scope="row" { (label) br; code.muted { (name) } }
                                td {
                                    @if may_put {
                                        form.inline method="post" action={(SETTINGS) "/account"} {
                                            (view::csrf(s))
                                            input type="hidden" name="name" value=(name);
                                            label.sr-only for={"setting-" (name)} { (label) }
                                            select id={"setting-" (name)} name="value" {
                                                @for (v, _) in options.iter() { option value=(v) selected[*v == value.as_str()] { (v) } }
                                                // A stored value the list does not name stays shown.
                                                @if !options.iter().any(|(v, _)| *v == value.as_str()) { option value=(value) selected { (value) } }
                                            }
                                            " "
                                            button.btn.btn-small type="submit" { "Save" span.sr-only { " " (label) } }
                                        }
                                    } @else {
                                        code { (value) }
                                    }
                                    @if let Some(e) = error { p.error-text role="alert" { (e) } }
                                }
                                td.secondary {
                                    @match options.iter().find(|(v, _)| *v == value.as_str()) {
                                        Some((_, meaning)) => { (meaning) }
                                        None => { span.muted { "—" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

async fn exclusions(s: &Session, rejected: Option<&Rejected>) -> Result<Markup, Fail> {
    let reg = || Resource::Registry(&s.registry);
    if !s.may("ecr:ListPullTimeUpdateExclusions", reg()).await? {
        return Ok(html! {
            section.card aria-labelledby="exclusions-h" #exclusions {
                h2 #exclusions-h { "Pull time update exclusions" }
                p.muted { "You may not list this registry's pull time update exclusions (ecr:ListPullTimeUpdateExclusions)." }
            }
        });
    }
    let may_register = s.may("ecr:RegisterPullTimeUpdateExclusion", reg()).await?;
    let may_deregister = s.may("ecr:DeregisterPullTimeUpdateExclusion", reg()).await?;
    let page = s.registry().pull_time_exclusions(&s.registry, None, EXCLUSIONS_LIMIT).await?;
    let typed = rejected.map(|r| r.subject.as_str()).unwrap_or("");
    Ok(html! {
        section.card aria-labelledby="exclusions-h" #exclusions {
            h2 #exclusions-h { "Pull time update exclusions" }
            p.help { "Pulls by these IAM users and roles do not update an image's last recorded pull time, so scanners and CI "
                "jobs do not keep images alive under lifecycle rules that count days since the last pull." }
            @if page.principal_arns.is_empty() {
                (view::empty("No exclusions", html! { p { "Every principal's pulls update the last recorded pull time." } }))
            } @else {
                div.table-wrap {
                    table.data #exclusion-list {
                        thead { tr { th scope="col" { "Principal ARN" } @if may_deregister { th scope="col" { span.sr-only { "Actions" } } } } }
                        tbody {
                            @for arn in &page.principal_arns {
                                tr data-principal=(arn) {
                                    td { code.wrap { (arn) } }
                                    @if may_deregister {
                                        td.actions { (view::remove_button(s, &format!("{SETTINGS}/exclusions/delete"), ("principal_arn", arn), "Remove", arn)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if may_register {
                form.tag-add method="post" action={(SETTINGS) "/exclusions"} {
                    (view::csrf(s))
                    div.field data-invalid=[rejected.map(|_| "true")] {
                        label for="principal_arn" { "Principal ARN" }
                        input #principal_arn name="principal_arn" required maxlength="200" value=(typed) spellcheck="false"
                            autocapitalize="off" placeholder={"arn:aws:iam::" (s.registry.account) ":role/scanner"};
                    }
                    @if let Some(r) = rejected { p.error-text role="alert" { (r.message) } }
                    div.form-actions { button.btn type="submit" { "Add exclusion" } }
                }
            }
        }
    })
}

/// The page again with the service's refusal in its section (storage failures are error pages).
async fn refused(s: &Session, e: RegistryError, section: Section, subject: String) -> PageResult {
    let status = crate::web::status_of(&e);
    if status.is_server_error() {
        return Err(e.into());
    }
    let rejected = Rejected { section, message: crate::web::message_of(&e), subject };
    let mut resp = render(s, None, Refusals { settings: Some(rejected), ..Refusals::default() }).await?;
    *resp.status_mut() = status;
    Ok(crate::web::refused_page(resp, e))
}

pub async fn put_setting(post: Post) -> PageResult {
    let s = &post.session;
    let (name, value) = (post.form.text("name"), post.form.text("value"));
    let params = serde_json::json!({ "name": name, "value": value });
    s.audit_allow("ecr:PutAccountSetting", Resource::Registry(&s.registry), params).await?;
    match s.registry().put_account_setting(&s.registry, &name, &value).await {
        Ok(()) => Ok(see_other(&format!("{SETTINGS}?done=setting-saved#account-settings"))),
        Err(e) => refused(s, e, Section::AccountSetting, name).await,
    }
}

pub async fn register_exclusion(post: Post) -> PageResult {
    let s = &post.session;
    let arn = post.form.text("principal_arn");
    let params = serde_json::json!({ "principalArn": arn });
    s.audit_allow("ecr:RegisterPullTimeUpdateExclusion", Resource::Registry(&s.registry), params).await?;
    match s.registry().register_pull_time_exclusion(&s.registry, &arn).await {
        Ok(_) => Ok(see_other(&format!("{SETTINGS}?done=exclusion-registered#exclusions"))),
        Err(e) => refused(s, e, Section::Exclusions, arn).await,
    }
}

pub async fn deregister_exclusion(post: Post) -> PageResult {
    let s = &post.session;
    s.allow("ecr:DeregisterPullTimeUpdateExclusion", Resource::Registry(&s.registry)).await?;
    let arn = post.form.text("principal_arn");
    if !confirm::confirmed(&post) {
        let c = Confirm {
            heading: "Remove the pull time update exclusion?",
            lost: html! {
                p { "Pulls by " code.wrap { (arn) } " will update the last recorded pull time of the images it pulls again, "
                    "which keeps them under lifecycle rules that count days since the last pull." }
            },
            action: &format!("{SETTINGS}/exclusions/delete"),
            fields: vec![("principal_arn", arn.clone())],
            cancel: SETTINGS,
            button: "Remove exclusion",
        };
        let body = confirm::section(s, &c);
        let crumbs = vec![("Registry settings".to_string(), Some(SETTINGS.to_string())), (c.heading.to_string(), None)];
        let page = Page { title: c.heading, nav: Nav::Settings, crumbs, notice: None, body };
        return Ok(view::render(s, page).await);
    }
    s.audit("ecr:DeregisterPullTimeUpdateExclusion", &Resource::Registry(&s.registry), serde_json::json!({ "principalArn": arn }));
    s.registry().deregister_pull_time_exclusion(&s.registry, &arn).await?;
    Ok(see_other(&format!("{SETTINGS}?done=exclusion-removed#exclusions")))
}
