//! The web console at `/console/`: the ECR console flows, server-rendered, every page and
//! action authorized by the registry service like any API call.
//!
//! The console is one more adapter over [`berth_core::Registry`]: each page and each form
//! authorizes the ECR action it is (`ecr:DescribeRepositories`, `ecr:CreateRepository`, …) with
//! the same resource the ECR API uses, then calls the same service method. Controls a user may
//! not use are not shown, and the server refuses them anyway. Every POST carries the session's
//! CSRF token ([`web::Post`] checks it before any handler runs).
//!
//! Routes (nested at `/console`):
//!
//! | route | what |
//! |---|---|
//! | `GET /signin`, `POST /signin`, `POST /signout` | sign-in with an access key or a console password |
//! | `GET /repositories` | list: search, sortable columns, numbered pages |
//! | `POST /repositories/selected` | the list's selection: View push commands, Delete (asks for the name) |
//! | `GET /repositories/new`, `POST /repositories` | CreateRepository |
//! | `GET /public`, `/public/new`, `/public/edit`, `POST /public[/update\|/delete]` | ECR Public repositories (`public_repos.rs`) |
//! | `GET /registry`, `POST /registry/policy[/delete]` | registry policy |
//! | `GET /registry/settings` | creation templates, account settings, pull-time update exclusions, replication rules |
//! | `POST /registry/replication/{rule,destination,filter,remove}` | one step of the replication configuration |
//! | `POST /registry/settings/account`, `…/exclusions[/delete]` | PutAccountSetting, (De)RegisterPullTimeUpdateExclusion |
//! | `GET /registry/templates/new`, `…/edit?prefix=`, `POST /registry/templates[/update\|/delete]` | creation templates |
//! | `GET /webhooks`, `POST /webhooks[/remove]` | the account's webhooks, their newest deliveries; add, remove |
//! | `GET /secrets`, `/secrets/value?id=`, `POST /secrets[/value\|/delete\|/restore]` | Secrets Manager secrets by name (values write-only) |
//! | `GET /audit` | the account's audit trail: LookupEvents' filters, newest first, each record's JSON |
//! | `GET /repo/<name>` | images, newest first (`?q=` tag/digest search, `?page=` token), platforms and referrers nested |
//! | `GET /repo/<name>/-/push` | push commands |
//! | `GET /repo/<name>/-/image/<digest>` | one image: manifest, layers, platforms, referrers |
//! | `GET /repo/<name>/-/image/<digest>/manifest` | the manifest's stored bytes, as a download |
//! | `GET /repo/<name>/-/image/<digest>/sbom` | an SBOM artifact's CycloneDX document, as a download |
//! | `GET /repo/<name>/-/permissions` | repository policy |
//! | `GET /repo/<name>/-/lifecycle` | lifecycle policy (`POST …/lifecycle/rule` adds a rule to the editor's text) |
//! | `GET /repo/<name>/-/settings` | tag mutability, scanning, tags, delete |
//! | `POST /repo/<name>/-/…` | the actions of those pages |
//! | `GET /static/console.css`, `/static/console.js` | embedded assets |

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use berth_core::Registry;
use http::header::{self, HeaderValue};

mod assets;
mod audit;
mod confirm;
mod creation_templates;
mod gallery;
mod gallery_markdown;
mod image;
mod keys;
mod lifecycle;
mod policy;
mod public_repos;
mod pull_through;
mod registry_settings;
mod replication;
mod repo;
mod repos;
mod secrets;
mod settings;
mod signin;
mod view;
mod web;
mod webhooks;

/// How the console is served.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    /// Served over TLS: session cookies get `Secure`.
    pub tls: bool,
}

/// The console's routes, to be nested at `/console`.
pub fn router(registry: Arc<Registry>, settings: ConsoleSettings) -> Router {
    let app = web::App { registry, tls: settings.tls };
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/repositories") }))
        .route("/signin", get(signin::page).post(signin::submit))
        .route("/signout", post(signin::signout))
        .route("/static/{file}", get(assets::serve))
        .route("/repositories", get(repos::list).post(repos::create))
        .route("/repositories/new", get(repos::new_form))
        .route("/repositories/selected", post(repos::selected))
        .route("/public", get(public_repos::list).post(public_repos::create))
        .route("/public/new", get(public_repos::new_form))
        .route("/public/edit", get(public_repos::edit_form))
        .route("/public/update", post(public_repos::update))
        .route("/public/delete", post(public_repos::delete))
        .route("/keys", get(keys::page).post(keys::create))
        .route("/keys/action", post(keys::action))
        .route("/registry", get(policy::registry_page))
        .route("/registry/policy", post(policy::registry_save))
        .route("/registry/policy/delete", post(policy::registry_delete))
        .route("/registry/settings", get(registry_settings::page))
        .route("/registry/settings/account", post(registry_settings::put_setting))
        .route("/registry/settings/exclusions", post(registry_settings::register_exclusion))
        .route("/registry/settings/exclusions/delete", post(registry_settings::deregister_exclusion))
        .route("/registry/replication/rule", post(replication::add_rule))
        .route("/registry/replication/destination", post(replication::add_destination))
        .route("/registry/replication/filter", post(replication::add_filter))
        .route("/registry/replication/remove", post(replication::remove))
        .route("/registry/templates", post(creation_templates::create))
        .route("/registry/templates/new", get(creation_templates::new_form))
        .route("/registry/templates/edit", get(creation_templates::edit_form))
        .route("/registry/templates/update", post(creation_templates::update))
        .route("/registry/templates/delete", post(creation_templates::delete))
        .route("/pull-through", get(pull_through::page).post(pull_through::create))
        .route("/pull-through/delete", post(pull_through::delete))
        .route("/audit", get(audit::page))
        .route("/webhooks", get(webhooks::page).post(webhooks::create))
        .route("/webhooks/remove", post(webhooks::remove))
        .route("/secrets", get(secrets::page).post(secrets::create))
        .route("/secrets/value", get(secrets::value_form).post(secrets::put_value))
        .route("/secrets/delete", post(secrets::delete))
        .route("/secrets/restore", post(secrets::restore))
        .route("/repo/{*path}", get(repo::get).post(repo::post))
        .fallback(|| async { web::Fail::not_found("There is no console page at this address.").into_response() })
        .layer(axum::middleware::from_fn(web::console_calls))
        .layer(axum::middleware::from_fn_with_state(app.clone(), web::error_chrome))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(app)
}

/// The public gallery's routes (`/gallery/…`, no sign-in), to be merged at the root.
pub fn gallery_router(registry: Arc<Registry>) -> Router {
    gallery::router(registry)
}

/// Pages are never cached and never framed; scripts and styles come only from the console.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().contains("/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A response that chose its own caching (the gallery's logos) keeps it.
    if !is_asset && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod gallery_tests;
#[cfg(test)]
mod tests;
