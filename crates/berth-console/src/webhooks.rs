//! Webhooks: where the account's events (ECR's EventBridge shapes) are delivered, with each
//! webhook's newest delivery attempts and last error. Managing them is EventBridge's business
//! in AWS, so the page asks for its actions: `events:ListTargetsByRule` to see,
//! `events:PutTargets` to add, `events:RemoveTargets` to remove.

use axum::extract::{Query, State};
use berth_core::auth::Resource;
use berth_core::events::{NewWebhook, Webhook, DETAIL_TYPES};
use maud::{html, Markup};
use serde::Deserialize;

use crate::view::{self, Nav, Page};
use crate::web::{see_other, App, PageResult, Post, Session};

const LIST: &str = "/console/webhooks";
/// Attempts shown per webhook.
const SHOWN: u32 = 5;

#[derive(Deserialize, Default)]
pub struct WebhooksQuery {
    done: Option<String>,
}

pub async fn page(s: Session, Query(q): Query<WebhooksQuery>) -> PageResult {
    s.allow("events:ListTargetsByRule", Resource::Registry(&s.registry)).await?;
    let r = s.registry();
    let mut hooks = Vec::new();
    for h in r.list_webhooks(&s.registry.account).await? {
        let deliveries = r.webhook_deliveries(&s.registry.account, &h.id, SHOWN).await?;
        hooks.push((h, deliveries));
    }
    let may_add = s.may("events:PutTargets", Resource::Registry(&s.registry)).await?;
    let may_remove = s.may("events:RemoveTargets", Resource::Registry(&s.registry)).await?;
    let body = html! {
        div.page-head {
            div { h1 { "Webhooks" } p.sub { "Events of account " (s.registry.account) " (pushes, deletes, scans, lifecycle actions, replication) in EventBridge's shape, POSTed signed to these URLs." } }
        }
        @if hooks.is_empty() {
            (view::empty("No webhooks yet", html! { "Add one below, or with " code { "berth admin add-webhook" } "." }))
        }
        @for (h, deliveries) in &hooks {
            section.card data-webhook=(h.id) {
                h2 { code { (h.url) } }
                p.muted { "ID " code { (h.id) } " · " (types(h)) " · added " (view::when(h.created_at)) }
                p { (status(h)) }
                @if !deliveries.is_empty() {
                    div.table-wrap { table.data {
                        thead { tr { th scope="col" { "When" } th scope="col" { "Event" } th scope="col" { "Attempt" } th scope="col" { "Answer" } th scope="col" { "Outcome" } } }
                        tbody { @for d in deliveries { tr {
                            td { (view::when(d.at)) }
                            td { (d.detail_type) br; code.muted { (d.event_id) } }
                            td { (d.attempt) }
                            td { @if let Some(c) = d.status_code { "HTTP " (c) } @else { (d.error.as_deref().unwrap_or("")) } }
                            td { (outcome(&d.outcome)) }
                        } } }
                    } }
                }
                @if may_remove {
                    form method="post" action="/console/webhooks/remove" {
                        (view::csrf(&s))
                        input type="hidden" name="id" value=(h.id);
                        button.btn.btn-danger type="submit" { "Remove" }
                    }
                }
            }
        }
        @if may_add {
            section.card aria-labelledby="new-webhook-h" {
                h2 #new-webhook-h { "Add a webhook" }
                form method="post" action=(LIST) {
                    (view::csrf(&s))
                    div.field {
                        label for="url" { "URL (http:// or https://)" }
                        input #url type="url" name="url" required;
                    }
                    fieldset.field {
                        legend { "Events " span.muted { "(none ticked: every one)" } }
                        @for t in DETAIL_TYPES {
                            label { input type="checkbox" name="detail_type" value=(t); " " (t) } br;
                        }
                    }
                    div.form-actions { button.btn.btn-primary type="submit" { "Add webhook" } }
                }
            }
        }
    };
    let notice = match q.done.as_deref() {
        Some("removed") => Some("Webhook removed; deliveries still queued for it are dropped.".to_string()),
        _ => None,
    };
    let page = Page { title: "Webhooks", nav: Nav::Webhooks, crumbs: vec![("Webhooks".into(), None)], notice, body };
    Ok(view::render(&s, page).await)
}

fn types(h: &Webhook) -> String {
    if h.detail_types.is_empty() {
        "every event".into()
    } else {
        h.detail_types.join(", ")
    }
}

fn status(h: &Webhook) -> Markup {
    let failing = match (h.last_error_at, h.last_success_at) {
        (Some(e), Some(ok)) => e > ok,
        (Some(_), None) => true,
        _ => false,
    };
    html! {
        @if failing { (view::badge("Failing", "bad")) " last error: " (h.last_error.as_deref().unwrap_or("")) }
        @else if let Some(at) = h.last_success_at { (view::badge("Delivering", "ok")) " last delivery " (view::when(at)) }
        @else { span.muted { "Nothing delivered yet." } }
        @if let (false, Some(e)) = (failing, &h.last_error) { br; span.muted { "Earlier error: " (e) } }
    }
}

fn outcome(o: &str) -> Markup {
    match o {
        "delivered" => view::badge("Delivered", "ok"),
        "retrying" => view::badge("Retrying", "warn"),
        _ => view::badge("Failed", "bad"),
    }
}

pub async fn create(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    let new = NewWebhook {
        account: s.registry.account.clone(),
        url: post.form.text("url").trim().to_string(),
        detail_types: post.form.all("detail_type").into_iter().map(str::to_string).collect(),
        secret: None,
    };
    // Never the URL: it may carry the receiver's token.
    s.audit_allow("events:PutTargets", Resource::Registry(&s.registry), serde_json::json!({ "detailTypes": new.detail_types })).await?;
    let (hook, secret) = s.registry().add_webhook(new).await?;
    // The secret is shown on this one answer (never stored in clear, never shown again).
    let body = html! {
        section.card {
            h2 { "Webhook added" }
            p { "Deliveries to " code { (hook.url) } " are signed with this secret. Copy it now: it is not shown again." }
            p { code #webhook-secret { (secret.as_deref().map(|s| s.as_str()).unwrap_or("")) } }
            p { "A receiver checks " code { "X-Berth-Signature: v1=<hex HMAC-SHA256(secret, X-Berth-Timestamp + \".\" + body)>" }
                ", rejects old timestamps, and de-duplicates on " code { "X-Berth-Event-Id" } "." }
            p { a href=(LIST) { "Back to webhooks" } }
        }
    };
    let page = Page {
        title: "Webhook added",
        nav: Nav::Webhooks,
        crumbs: vec![("Webhooks".into(), Some(LIST.into())), ("Added".into(), None)],
        notice: None,
        body,
    };
    Ok(view::render(s, page).await)
}

pub async fn remove(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    let params = serde_json::json!({ "ids": [post.form.text("id")] });
    s.audit_allow("events:RemoveTargets", Resource::Registry(&s.registry), params).await?;
    s.registry().remove_webhook(&s.registry.account, &post.form.text("id")).await?;
    Ok(see_other("/console/webhooks?done=removed"))
}
