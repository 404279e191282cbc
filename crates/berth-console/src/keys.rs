//! Keys: the account's KMS keys in this region (the key service's CreateKey, ListKeys,
//! EnableKey/DisableKey, ScheduleKeyDeletion/CancelKeyDeletion), authorized by the key service
//! itself, as for the API.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use berth_core::auth::Resource;
use berth_core::kms::{Key, KeyManager, KeyState, KmsError, NewKey};
use maud::{html, Markup};
use serde::Deserialize;

use crate::confirm::{self, Confirm};
use crate::view::{self, Nav, Page};
use crate::web::{see_other, App, Fail, PageResult, Post, Session};

const LIST: &str = "/console/keys";

#[derive(Deserialize, Default)]
pub struct KeysQuery {
    done: Option<String>,
}

impl From<KmsError> for Fail {
    fn from(e: KmsError) -> Self {
        match e {
            KmsError::Registry(e) => e.into(),
            KmsError::NotFound(m) => Fail::new(StatusCode::NOT_FOUND, m),
            KmsError::Internal(m) => Fail::new(StatusCode::INTERNAL_SERVER_ERROR, m),
            other => Fail::new(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

fn notice(done: Option<&str>) -> Option<String> {
    let text = match done? {
        "created" => "Key created.",
        "enabled" => "Key enabled.",
        "disabled" => "Key disabled: nothing can encrypt, decrypt or sign with it until it is enabled again.",
        "scheduled" => "Key deletion scheduled. Until the date shown, Cancel deletion brings the key back (disabled).",
        "cancelled" => "Key deletion cancelled; the key is disabled until you enable it.",
        _ => return None,
    };
    Some(text.to_string())
}

pub(crate) fn state_badge(key: &Key) -> Markup {
    match key.doc.state {
        KeyState::Enabled => view::badge("Enabled", "ok"),
        KeyState::Disabled => view::badge("Disabled", "warn"),
        KeyState::PendingDeletion => view::badge("Pending deletion", "bad"),
    }
}

pub async fn page(s: Session, Query(q): Query<KeysQuery>) -> PageResult {
    let (keys, _) = s.registry().kms_list_keys(&s.principal, None, 1000).await?;
    let (_, aliases) = s.registry().kms_list_aliases(&s.principal, None).await?;
    let may_create = s.may("kms:CreateKey", Resource::Registry(&s.registry)).await?;
    let body = html! {
        div.page-head {
            div { h1 { "Keys" } p.sub { "KMS keys of account " (s.registry.account) " in " (s.registry.region) ": they protect encrypted repositories and sign what you ask them to." } }
        }
        @if keys.is_empty() {
            (view::empty("No keys yet", html! { "Create one below, or with " code { "aws kms create-key" } ". The AWS managed key alias/aws/ecr appears when a KMS-encrypted repository first needs it." }))
        } @else {
            section.card aria-labelledby="keys-h" {
                h2 #keys-h { "Keys" }
                div.table-wrap {
                    table.data #keys {
                        thead { tr {
                            th scope="col" { "Aliases" } th scope="col" { "Key ID" } th scope="col" class="secondary" { "Type" }
                            th scope="col" { "Status" } th scope="col" class="secondary" { "Created" } th scope="col" { span.sr-only { "Actions" } }
                        } }
                        tbody {
                            @for k in &keys {
                                @let names: Vec<&str> = aliases.iter().filter(|a| a.key_id == k.key_id).map(|a| a.alias.as_str()).collect();
                                tr data-key=(k.key_id) {
                                    td { @if names.is_empty() { span.muted { "—" } } @else { @for n in &names { code { (n) } " " } } }
                                    td { code title=(k.arn()) { (k.key_id) } }
                                    td.secondary { (k.doc.key_spec) br; span.muted { (k.doc.key_usage) } }
                                    td {
                                        (state_badge(k))
                                        @if let Some(date) = k.doc.deletion_date { br; span.muted { "deleted at " (view::when(date)) } }
                                    }
                                    td.secondary { (view::when(k.doc.created)) }
                                    td { (actions(&s, k)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if may_create {
            section.card aria-labelledby="new-key-h" {
                h2 #new-key-h { "Create a key" }
                form method="post" action=(LIST) {
                    (view::csrf(&s))
                    div.field {
                        label for="description" { "Description " span.muted { "(optional)" } }
                        input #description type="text" name="description" maxlength="8192";
                    }
                    div.field {
                        label for="spec" { "Type" }
                        select #spec name="spec" {
                            option value="SYMMETRIC_DEFAULT" selected { "Symmetric: encrypt and decrypt (for repositories)" }
                            option value="ECC_NIST_P256" { "ECC NIST P-256: sign and verify" }
                            option value="RSA_2048" { "RSA 2048: sign and verify" }
                        }
                    }
                    div.form-actions { button.btn.btn-primary type="submit" { "Create key" } }
                }
            }
        }
    };
    let page = Page { title: "Keys", nav: Nav::Keys, crumbs: vec![("Keys".into(), None)], notice: notice(q.done.as_deref()), body };
    Ok(view::render(&s, page).await)
}

/// The row's buttons: what the key's state allows (AWS managed keys take none).
fn actions(s: &Session, k: &Key) -> Markup {
    let button = |op: &str, label: &str, danger: bool| {
        html! {
            form.inline method="post" action="/console/keys/action" {
                (view::csrf(s))
                input type="hidden" name="key_id" value=(k.key_id);
                input type="hidden" name="op" value=(op);
                @if danger { button.btn.btn-danger.btn-small type="submit" { (label) } } @else { button.btn.btn-small type="submit" { (label) } }
            }
        }
    };
    if k.doc.manager == KeyManager::Aws {
        return html! { span.muted { "AWS managed" } };
    }
    html! {
        @match k.doc.state {
            KeyState::Enabled => { (button("disable", "Disable", false)) (button("schedule", "Schedule deletion", true)) }
            KeyState::Disabled => { (button("enable", "Enable", false)) (button("schedule", "Schedule deletion", true)) }
            KeyState::PendingDeletion => { (button("cancel", "Cancel deletion", false)) }
        }
    }
}

pub async fn create(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    let spec = post.form.text("spec");
    let signing = spec != "SYMMETRIC_DEFAULT";
    let new = NewKey {
        description: Some(post.form.text("description")).filter(|d| !d.is_empty()),
        key_usage: Some(if signing { "SIGN_VERIFY" } else { "ENCRYPT_DECRYPT" }.to_string()),
        key_spec: Some(spec),
        policy: None,
        tags: Vec::new(),
    };
    let params = serde_json::json!({ "description": new.description, "keyUsage": new.key_usage, "keySpec": new.key_spec });
    s.audit("kms:CreateKey", &Resource::Registry(&s.registry), params);
    s.registry().kms_create_key(&s.principal, new).await?;
    Ok(see_other("/console/keys?done=created"))
}

pub async fn action(State(_app): State<App>, post: Post) -> PageResult {
    let s = &post.session;
    let key_id = post.form.text("key_id");
    let r = s.registry();
    match post.form.text("op").as_str() {
        "enable" => {
            s.audit("kms:EnableKey", &Resource::Registry(&s.registry), serde_json::json!({ "keyId": key_id }));
            r.kms_set_enabled(&s.principal, &key_id, true).await?;
            Ok(see_other("/console/keys?done=enabled"))
        }
        "disable" => {
            s.audit("kms:DisableKey", &Resource::Registry(&s.registry), serde_json::json!({ "keyId": key_id }));
            r.kms_set_enabled(&s.principal, &key_id, false).await?;
            Ok(see_other("/console/keys?done=disabled"))
        }
        "cancel" => {
            s.audit("kms:CancelKeyDeletion", &Resource::Registry(&s.registry), serde_json::json!({ "keyId": key_id }));
            r.kms_cancel_deletion(&s.principal, &key_id).await?;
            Ok(see_other("/console/keys?done=cancelled"))
        }
        "schedule" if confirm::confirmed(&post) => {
            let days = post.form.text("days").parse::<i64>().ok();
            let params = serde_json::json!({ "keyId": key_id, "pendingWindowInDays": days });
            s.audit("kms:ScheduleKeyDeletion", &Resource::Registry(&s.registry), params);
            r.kms_schedule_deletion(&s.principal, &key_id, days).await?;
            Ok(see_other("/console/keys?done=scheduled"))
        }
        "schedule" => {
            let key = r.kms_describe_key(&s.principal, &key_id).await?;
            let c = Confirm {
                heading: "Schedule the key's deletion?",
                lost: html! {
                    p { "Key " code { (key.key_id) } " stops working at once. When the waiting period ends, its material is destroyed: "
                        strong { "everything encrypted under it can never be decrypted again" } ", and repositories encrypted with it can no longer be pulled." }
                    p { "Until then, Cancel deletion brings it back." }
                    div.field {
                        label for="days" { "Waiting period (days, 7 to 30)" }
                        input #days type="number" name="days" min="7" max="30" value="30" form="confirm-form";
                    }
                },
                action: "/console/keys/action",
                fields: vec![("key_id", key.key_id.clone()), ("op", "schedule".into())],
                cancel: LIST,
                button: "Schedule deletion",
            };
            let body = confirm::section(s, &c);
            let page = Page {
                title: c.heading,
                nav: Nav::Keys,
                crumbs: vec![("Keys".into(), Some(LIST.into())), (c.heading.into(), None)],
                notice: None,
                body,
            };
            Ok(view::render(s, page).await)
        }
        other => Err(Fail::new(StatusCode::BAD_REQUEST, format!("unknown key action {other:?}"))),
    }
}
