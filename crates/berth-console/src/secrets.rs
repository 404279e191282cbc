//! Secrets: the account's Secrets Manager secrets in this region (the pull-through cache's
//! upstream credentials are secrets named `ecr-pullthroughcache/…`), by name only. Values are
//! write-only here: a form takes a new one (ECR's `{"username", "accessToken"}` JSON from two
//! fields, or a raw value) and no page ever renders one back. Every action is the service's
//! own call (`secretsmanager:<Action>`, authorized by the service), as for the API.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use berth_core::auth::Resource;
use berth_core::secrets::{ListSecrets, NewSecret, NewValue, Secret, SecretValue, SecretsError};
use maud::{html, Markup};
use serde::Deserialize;

use crate::view::{self, Nav, Page};
use crate::web::{see_other, App, Fail, PageResult, Post, Session};

const LIST: &str = "/console/secrets";
/// Secrets shown on the page (the account's first, in name order).
const SHOWN: u32 = 100;

#[derive(Deserialize, Default)]
pub struct SecretsQuery {
    done: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ValueQuery {
    id: Option<String>,
}

impl From<SecretsError> for Fail {
    fn from(e: SecretsError) -> Self {
        match e {
            SecretsError::Registry(e) => e.into(),
            SecretsError::NotFound(m) => Fail::new(StatusCode::NOT_FOUND, m),
            SecretsError::Internal(m) => Fail::new(StatusCode::INTERNAL_SERVER_ERROR, m),
            other => Fail::new(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

/// Whether the navigation shows Secrets.
pub(crate) async fn may_view(s: &Session) -> Result<bool, Fail> {
    s.may("secretsmanager:ListSecrets", Resource::Registry(&s.registry)).await
}

fn notice(done: Option<&str>) -> Option<String> {
    let text = match done? {
        "created" => "Secret created.",
        "value" => "New value stored; it is the secret's current version (the one before is AWSPREVIOUS).",
        "deleted" => "Deletion scheduled. Until the date shown, Restore brings the secret back; meanwhile its value cannot be read.",
        "restored" => "Secret restored.",
        _ => return None,
    };
    Some(text.to_string())
}

pub async fn page(s: Session, Query(q): Query<SecretsQuery>) -> PageResult {
    let req = ListSecrets { max_results: Some(SHOWN), include_planned_deletion: true, ..Default::default() };
    let (secrets, more) = s.registry().secrets_list(&s.principal, req).await?;
    let may_create = s.may("secretsmanager:CreateSecret", Resource::Registry(&s.registry)).await?;
    let body = html! {
        div.page-head {
            div { h1 { "Secrets" } p.sub { "Secrets Manager secrets of account " (s.registry.account) " in " (s.registry.region)
                ". A pull-through cache rule's upstream credentials are a secret named " code { "ecr-pullthroughcache/…" } ". Values are never shown." } }
        }
        @if secrets.is_empty() {
            (view::empty("No secrets yet", html! { "Create one below, or with " code { "aws secretsmanager create-secret" } "." }))
        } @else {
            section.card aria-labelledby="secrets-h" {
                h2 #secrets-h { "Secrets" }
                div.table-wrap {
                    table.data #secrets {
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" class="secondary" { "Description" }
                            th scope="col" { "Last changed" } th scope="col" { "Deletion date" } th scope="col" { span.sr-only { "Actions" } }
                        } }
                        tbody { @for secret in &secrets { (row(&s, secret)) } }
                    }
                }
                @if more.is_some() { p.muted { "Showing the first " (SHOWN) " secrets by name; " code { "aws secretsmanager list-secrets" } " lists them all." } }
            }
        }
        @if may_create { (create_form(&s)) }
    };
    let page =
        Page { title: "Secrets", nav: Nav::Secrets, crumbs: vec![("Secrets".into(), None)], notice: notice(q.done.as_deref()), body };
    Ok(view::render(&s, page).await)
}

fn row(s: &Session, secret: &Secret) -> Markup {
    html! {
        tr data-secret=(secret.name) {
            td { code title=(secret.arn) { (secret.name) } }
            td.secondary { (secret.description.as_deref().unwrap_or("")) }
            td { (view::when(secret.last_changed)) }
            td {
                @if let Some(date) = secret.deletion_date { (view::badge("Scheduled", "bad")) br; span.muted { (view::when(date)) } }
                @else { span.muted { "—" } }
            }
            td {
                @if secret.deletion_date.is_some() {
                    form.inline method="post" action="/console/secrets/restore" {
                        (view::csrf(s))
                        input type="hidden" name="id" value=(secret.arn);
                        button.btn.btn-small type="submit" { "Restore" }
                    }
                } @else {
                    a.btn.btn-small href={ "/console/secrets/value?id=" (secret.arn) } { "New value" }
                    form.inline method="post" action="/console/secrets/delete" {
                        (view::csrf(s))
                        input type="hidden" name="id" value=(secret.arn);
                        label { "Recovery window (days) " input type="number" name="days" min="7" max="30" value="30" required; }
                        " "
                        button.btn.btn-danger.btn-small type="submit" { "Delete" }
                    }
                }
            }
        }
    }
}

/// The value fields: ECR's credentials, or a raw value. Never pre-filled.
fn value_fields() -> Markup {
    html! {
        fieldset.field {
            legend { "Value" }
            label { input type="radio" name="kind" value="credentials" checked; " Registry credentials (ECR's format: "
                code { "{\"username\": …, \"accessToken\": …}" } ")" } br;
            label { input type="radio" name="kind" value="raw"; " A raw value" }
        }
        div.field {
            label for="username" { "User name" }
            input #username type="text" name="username" autocomplete="off";
        }
        div.field {
            label for="access_token" { "Access token" }
            input #access_token type="password" name="access_token" autocomplete="new-password";
        }
        div.field {
            label for="raw" { "Raw value " span.muted { "(for a raw value)" } }
            textarea #raw name="raw" rows="3" autocomplete="off" {}
        }
    }
}

fn create_form(s: &Session) -> Markup {
    html! {
        section.card aria-labelledby="new-secret-h" {
            h2 #new-secret-h { "Create a secret" }
            form method="post" action=(LIST) {
                (view::csrf(s))
                div.field {
                    label for="name" { "Name" }
                    input #name type="text" name="name" required maxlength="512" placeholder="ecr-pullthroughcache/docker-hub";
                }
                div.field {
                    label for="description" { "Description " span.muted { "(optional)" } }
                    input #description type="text" name="description" maxlength="2048";
                }
                (value_fields())
                div.form-actions { button.btn.btn-primary type="submit" { "Create secret" } }
            }
        }
    }
}

/// The value the form holds: ECR's JSON from the two fields, or the raw text as given.
fn value_of(post: &Post) -> Result<SecretValue, Fail> {
    let form = &post.form;
    let value = if form.text("kind") == "raw" {
        form.get("raw").unwrap_or("").to_string()
    } else {
        let (user, token) = (form.text("username"), form.get("access_token").unwrap_or("").to_string());
        if user.is_empty() || token.is_empty() {
            return Err(Fail::bad_request("Registry credentials need both a user name and an access token."));
        }
        serde_json::json!({ "username": user, "accessToken": token }).to_string()
    };
    if value.is_empty() {
        return Err(Fail::bad_request("The value is empty."));
    }
    Ok(SecretValue::String(value.into()))
}

pub async fn create(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    let new = NewSecret {
        name: post.form.text("name"),
        description: Some(post.form.text("description")).filter(|d| !d.is_empty()),
        value: Some(value_of(&post)?),
        ..Default::default()
    };
    s.registry().secrets_create(&s.principal, new).await?;
    Ok(see_other("/console/secrets?done=created"))
}

pub async fn value_form(s: Session, Query(q): Query<ValueQuery>) -> PageResult {
    let id = q.id.unwrap_or_default();
    let secret = s.registry().secrets_describe(&s.principal, &id).await?;
    let body = html! {
        section.card aria-labelledby="value-h" {
            h2 #value-h { "New value for " code { (secret.name) } }
            p.muted { "The new value becomes the current version (AWSCURRENT); the one before stays readable as AWSPREVIOUS." }
            form method="post" action="/console/secrets/value" {
                (view::csrf(&s))
                input type="hidden" name="id" value=(secret.arn);
                (value_fields())
                div.form-actions { button.btn.btn-primary type="submit" { "Store new value" } " " a.btn href=(LIST) { "Cancel" } }
            }
        }
    };
    let crumbs = vec![("Secrets".into(), Some(LIST.into())), (secret.name.clone(), None)];
    let page = Page { title: "New secret value", nav: Nav::Secrets, crumbs, notice: None, body };
    Ok(view::render(&s, page).await)
}

pub async fn put_value(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    let new = NewValue { value: value_of(&post)?, client_request_token: None, stages: None };
    s.registry().secrets_put_value(&s.principal, &post.form.text("id"), new).await?;
    Ok(see_other("/console/secrets?done=value"))
}

pub async fn delete(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    let days = post.form.text("days").parse::<i64>().map_err(|_| Fail::bad_request("The recovery window is a number of days, 7 to 30."))?;
    s.registry().secrets_delete(&s.principal, &post.form.text("id"), Some(days), false).await?;
    Ok(see_other("/console/secrets?done=deleted"))
}

pub async fn restore(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    s.registry().secrets_restore(&s.principal, &post.form.text("id")).await?;
    Ok(see_other("/console/secrets?done=restored"))
}
