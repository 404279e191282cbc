//! The public gallery at `/gallery/`: every account's public repositories, for anyone, with no
//! sign-in. Server-rendered with the console's look (its stylesheet and script); the service
//! decides what is public (`berth_core::public::gallery`), this module only renders.
//!
//! | route | what |
//! |---|---|
//! | `GET /gallery/` | search (`?q=` name, alias or description; `?after=<alias>/<name>` pages) |
//! | `GET /gallery/<alias>/<name>` | a repository: catalog, Markdown texts, tags, pull command |
//! | `GET /gallery/logo/<alias>/<name>` | the repository's logo |

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use berth_core::public::{GalleryEntry, GalleryRepository, LOGO_CONTENT_TYPE, MAX_GALLERY_QUERY};
use berth_core::Registry;
use http::request::Parts;
use http::{header, StatusCode};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::view;
use crate::web::{message_of, query_pairs, request_host, status_of, with_query};

/// Results per search page.
const PAGE_SIZE: u32 = 24;

#[derive(Clone)]
struct Gallery {
    registry: Arc<Registry>,
}

/// The gallery's routes, full paths (merged at the root, beside `/console`).
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/gallery", get(|| async { Redirect::permanent("/gallery/") }))
        .route("/gallery/", get(search))
        .route("/gallery/logo/{*path}", get(logo))
        .route("/gallery/{*path}", get(repository))
        .layer(axum::middleware::from_fn(crate::security_headers))
        .with_state(Gallery { registry })
}

/// A gallery page: the console's head and colours, the gallery's own header (no session).
fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (view::head(title))
            body.gallery {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    div.top-inner {
                        a.brand href="/gallery/" { span.logo aria-hidden="true" { "◆" } "berth" }
                        nav.mainnav aria-label="Main" {
                            ul { li { a href="/gallery/" aria-current="page" { "Public gallery" } } }
                        }
                        div.who { a.btn.btn-quiet href="/console/" { "Sign in to publish" } }
                    }
                }
                main #main tabindex="-1" { (body) }
                footer.foot { "berth — a self-hosted, ECR-compatible container registry" }
                div #live .sr-only aria-live="polite" {}
            }
        }
    }
}

fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    (status, Html(shell(title, body).into_string())).into_response()
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        html! {
            section.card.narrow #error {
                h1 { "Not found" }
                p.error-text role="alert" { "There is no public repository at this address." }
                p { a.btn href="/gallery/" { "Search the gallery" } }
            }
        },
    )
}

fn failed(e: &berth_core::RegistryError) -> Response {
    let status = match status_of(e) {
        s if s.is_server_error() => s,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    page(
        status,
        "Something went wrong",
        html! { section.card.narrow #error { h1 { "Something went wrong" } p.error-text role="alert" { (message_of(e)) } } },
    )
}

/// `<alias>/<name>` split at the first slash.
fn split_path(path: &str) -> Option<(&str, &str)> {
    path.trim_end_matches('/').split_once('/').filter(|(a, n)| !a.is_empty() && !n.is_empty())
}

fn repo_url(e: &GalleryEntry) -> String {
    format!("/gallery/{}/{}", e.alias, e.repo.name)
}

fn logo_url(e: &GalleryEntry) -> String {
    format!("/gallery/logo/{}/{}", e.alias, e.repo.name)
}

fn badges(e: &GalleryEntry) -> Markup {
    html! {
        @if !e.catalog.architectures.is_empty() || !e.catalog.operating_systems.is_empty() {
            ul.platforms aria-label="Platforms" {
                @for os in &e.catalog.operating_systems { li { (view::badge(os, "ok")) } }
                @for arch in &e.catalog.architectures { li { (view::badge(arch, "neutral")) } }
            }
        }
    }
}

fn logo_image(e: &GalleryEntry, size: u32) -> Markup {
    html! {
        @if e.has_logo {
            img.repo-logo src=(logo_url(e)) alt="" width=(size) height=(size);
        } @else {
            span.repo-logo.placeholder aria-hidden="true" { (e.repo.name.as_str().chars().next().unwrap_or('?').to_ascii_uppercase()) }
        }
    }
}

async fn search(State(g): State<Gallery>, RawQuery(raw): RawQuery) -> Response {
    let q = query_pairs(raw.as_deref());
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let text = get("q").unwrap_or("").trim();
    let after = get("after").and_then(split_path);
    let result = match g.registry.gallery_search(text, after, PAGE_SIZE).await {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let title = if text.is_empty() { "Public gallery".to_string() } else { format!("{text} · Public gallery") };
    let body = html! {
        div.page-head {
            div {
                h1 { "Public repositories" }
                p.lede { "Container images published on this registry. Anyone may pull them, no sign-in needed." }
            }
        }
        form.toolbar role="search" method="get" action="/gallery/" {
            div.field.grow {
                label for="q" { "Search by name, alias or description" }
                input #q type="search" name="q" value=(text) maxlength=(MAX_GALLERY_QUERY) autocomplete="off" spellcheck="false" autocapitalize="off";
            }
            div.field { button.btn.btn-primary type="submit" { "Search" } }
        }
        @if result.entries.is_empty() {
            (view::empty(
                if text.is_empty() { "No public repositories yet" } else { "No matching repositories" },
                html! { @if text.is_empty() { p { "Public repositories appear here once they are created." } } @else { p { "Nothing matches " strong { (text) } "." } } },
            ))
        } @else {
            ul.gallery-list #results {
                @for e in &result.entries {
                    li.gallery-item data-repository={(e.alias) "/" (e.repo.name)} {
                        (logo_image(e, 48))
                        div.min0 {
                            h2 { a href=(repo_url(e)) { span.muted { (e.alias) "/" } (view::breakable(e.repo.name.as_str())) } }
                            @if let Some(d) = e.catalog.description.as_deref().filter(|d| !d.is_empty()) { p.description { (d) } }
                            (badges(e))
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if after.is_some() { a.btn href=(with_query("/gallery/", &[("q", text)])) { "First page" } }
            @if let Some((alias, name)) = &result.next {
                a.btn #next-page rel="next" href=(with_query("/gallery/", &[("q", text), ("after", &format!("{alias}/{name}"))])) { "Next page" }
            }
        }
    };
    page(StatusCode::OK, &title, body)
}

/// The host in pull commands: `--public-registry-host`, else the address the browser used.
fn pull_host(g: &Gallery, parts: &Parts) -> String {
    g.registry.config().public_registry_host.clone().unwrap_or_else(|| request_host(parts))
}

async fn repository(State(g): State<Gallery>, axum::extract::Path(path): axum::extract::Path<String>, parts: Parts) -> Response {
    let Some((alias, name)) = split_path(&path) else { return not_found() };
    let found = match g.registry.gallery_repository(alias, name).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(e) => return failed(&e),
    };
    let host = pull_host(&g, &parts);
    let e = &found.entry;
    page(StatusCode::OK, &format!("{}/{}", e.alias, e.repo.name), repository_body(&found, &host))
}

/// The tag a first pull command names: `latest` when there is one, else the newest.
fn featured_tag(found: &GalleryRepository) -> Option<&str> {
    found.tags.iter().find(|t| t.tag == "latest").or(found.tags.first()).map(|t| t.tag.as_str())
}

fn repository_body(found: &GalleryRepository, host: &str) -> Markup {
    let e = &found.entry;
    let image = format!("{host}/{}/{}", e.alias, e.repo.name);
    let featured = featured_tag(found).map(|t| format!("docker pull {image}:{t}"));
    html! {
        nav.crumbs aria-label="Breadcrumb" {
            ol { li { a href="/gallery/" { "Public gallery" } } li { span aria-current="page" { (e.alias) "/" (e.repo.name) } } }
        }
        div.page-head.gallery-head {
            (logo_image(e, 64))
            div.min0.grow {
                h1.repo-name { span.muted { (e.alias) "/" } (view::breakable(e.repo.name.as_str())) }
                @if let Some(d) = e.catalog.description.as_deref().filter(|d| !d.is_empty()) { p.lede #description { (d) } }
                (badges(e))
            }
        }
        section.card aria-labelledby="pull-h" #pull {
            h2 #pull-h { "Pull" }
            @match &featured {
                Some(cmd) => { (view::command(cmd, "pull command")) }
                None => { p.muted { "No tagged image yet. Once one is pushed: " } (view::command(&format!("docker pull {image}:latest"), "pull command")) }
            }
            p.help { "No credentials needed." }
        }
        div.gallery-grid {
            div.min0 {
                @if let Some(about) = e.catalog.about_text.as_deref().filter(|t| !t.trim().is_empty()) {
                    section.card.prose aria-labelledby="about-h" #about {
                        h2 #about-h { "About" }
                        (PreEscaped(crate::gallery_markdown::render(about)))
                    }
                }
                @if let Some(usage) = e.catalog.usage_text.as_deref().filter(|t| !t.trim().is_empty()) {
                    section.card.prose aria-labelledby="usage-h" #usage {
                        h2 #usage-h { "Usage" }
                        (PreEscaped(crate::gallery_markdown::render(usage)))
                    }
                }
            }
            section.card.min0 aria-labelledby="tags-h" #tags {
                h2 #tags-h { "Tags" }
                @if found.tags.is_empty() {
                    p.muted { "No tags yet." }
                } @else {
                    div.table-wrap {
                        table.data #tag-table {
                            thead { tr { th scope="col" { "Tag" } th scope="col" { "Size" } th scope="col" { "Pushed" } th scope="col" { span.sr-only { "Pull command" } } } }
                            tbody {
                                @for t in &found.tags {
                                    tr data-tag=(t.tag) {
                                        th scope="row" { code { (t.tag) } }
                                        td.num { (view::size(t.image.image_size)) }
                                        td { (view::when(t.image.pushed_at)) }
                                        td { (view::copy(&format!("docker pull {image}:{}", t.tag), &format!("pull command for {}", t.tag))) }
                                    }
                                }
                            }
                        }
                    }
                    @if found.tag_count > found.tags.len() {
                        p.help { "The " (found.tags.len()) " newest of " (view::count(found.tag_count as u64, "tag", "tags")) "." }
                    }
                }
            }
        }
    }
}

async fn logo(State(g): State<Gallery>, axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    let Some((alias, name)) = split_path(&path) else { return StatusCode::NOT_FOUND.into_response() };
    match g.registry.gallery_logo(alias, name).await {
        Ok(Some(bytes)) => {
            ([(header::CONTENT_TYPE, LOGO_CONTENT_TYPE), (header::CACHE_CONTROL, "public, max-age=300")], bytes).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, "no logo").into_response(),
        Err(e) => (status_of(&e), message_of(&e)).into_response(),
    }
}
