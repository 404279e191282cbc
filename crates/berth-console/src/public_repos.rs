//! The signed-in account's public repositories (ECR Public): list, create with catalog data,
//! edit the catalog data, delete. Every action is authorized as its `ecr-public:` action on the
//! repository's public ARN, then calls the service method the ECR Public API calls
//! (`create_public_repository_as`, `put_repository_catalog`, `delete_repository`).
//!
//! | route | what |
//! |---|---|
//! | `GET /public` | the account's public repositories (`?after=` pages) |
//! | `GET /public/new`, `POST /public` | CreateRepository with catalog data |
//! | `GET /public/edit?name=`, `POST /public/update` | PutRepositoryCatalogData (the logo is kept) |
//! | `POST /public/delete` | DeleteRepository, after the name is typed to confirm |

use axum::extract::RawQuery;
use berth_core::auth::Resource;
use berth_core::public::{self, CatalogInput, RepositoryCatalog};
use berth_core::{RegistryError, RegistryRef, Repo, RepositoryName};
use berth_store::RepositoryRow;
use http::StatusCode;
use maud::{html, Markup};

use crate::confirm::{self, Confirm};
use crate::view::{self, Nav, Page};
use crate::web::{query_pairs, see_other, with_query, Fail, FormData, PageResult, Post, Session};

const PAGE_SIZE: u32 = 50;
const LIST_URL: &str = "/console/public";

fn scope(s: &Session) -> RegistryRef {
    public::public_scope(&s.principal.account)
}

fn repo(s: &Session, name: &str) -> Result<Repo, RegistryError> {
    Ok(Repo::new(&scope(s), RepositoryName::parse(name)?))
}

/// `<public host>/<alias>/<name>`, as the ECR Public API's repositoryUri.
fn public_host(s: &Session) -> String {
    s.registry().config().public_registry_host.clone().unwrap_or_else(|| s.host.clone())
}

fn crumbs(last: Option<&str>) -> Vec<(String, Option<String>)> {
    let mut c = vec![("Public repositories".to_string(), Some(LIST_URL.to_string()))];
    if let Some(l) = last {
        c.push((l.to_string(), None));
    }
    c
}

fn notice(code: Option<&str>) -> Option<String> {
    Some(
        match code? {
            "created" => "Public repository created. Anyone may pull from it.",
            "saved" => "Catalog data saved.",
            "deleted" => "Public repository deleted.",
            _ => return None,
        }
        .to_string(),
    )
}

pub async fn list(s: Session, RawQuery(raw): RawQuery) -> PageResult {
    let q = query_pairs(raw.as_deref());
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let after = get("after").filter(|a| !a.is_empty());
    let scope = scope(&s);
    // The service shows only the repositories the caller may describe (ecr-public:DescribeRepositories).
    let page = s.registry().describable_repositories(&s.principal, &scope, after, PAGE_SIZE).await?;
    let alias = s.registry().public_alias(&s.principal.account).await?;
    let host = public_host(&s);
    let may_create = s.may("ecr-public:CreateRepository", Resource::AllRepositories(&scope)).await?;
    let mut rows = Vec::with_capacity(page.rows.len());
    for row in &page.rows {
        rows.push((row, row_actions(&s, row).await?));
    }
    let body = html! {
        div.page-head {
            div {
                h1 { "Public repositories" }
                p.muted { "Registry alias " code { (alias) } " · anyone may pull these, and find them in the " a href="/gallery/" { "gallery" } "." }
            }
            @if may_create { a.btn.btn-primary href="/console/public/new" { "Create public repository" } }
        }
        @if rows.is_empty() {
            (view::empty("No public repositories", html! {
                p { "A public repository can be pulled by anyone, without credentials, as " code { (host) "/" (alias) "/<name>" } "." }
                @if may_create { p { a.btn.btn-primary href="/console/public/new" { "Create public repository" } } }
            }))
        } @else {
            div.table-wrap {
                table.data #public-repositories {
                    thead { tr {
                        th scope="col" { "Repository name" }
                        th scope="col" { "URI" }
                        th scope="col" class="secondary" { "Description" }
                        th scope="col" class="secondary" { "Created at" }
                        th scope="col" { span.sr-only { "Actions" } }
                    } }
                    tbody {
                        @for (row, (edit, delete, description)) in &rows {
                            @let uri = format!("{host}/{alias}/{}", row.key.name);
                            tr data-repository=(row.key.name) {
                                th scope="row" { a href={"/gallery/" (alias) "/" (row.key.name)} { (view::breakable(&row.key.name)) } }
                                td.uri { code { (view::breakable(&uri)) } " " (view::copy(&uri, &format!("URI of {}", row.key.name))) }
                                td.secondary { (description.as_deref().unwrap_or("")) }
                                td.secondary { (view::when(row.created_at)) }
                                td.actions {
                                    @if *edit { a.btn.btn-small href=(with_query("/console/public/edit", &[("name", &row.key.name)])) { "Edit" span.sr-only { " " (row.key.name) } } }
                                    @if *delete { (view::remove_button(&s, "/console/public/delete", ("name", &row.key.name), "Delete", &row.key.name)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pagination" {
            @if after.is_some() { a.btn href=(LIST_URL) { "First page" } }
            @if let (true, Some(last)) = (page.more, &page.last_scanned) {
                a.btn rel="next" href=(with_query(LIST_URL, &[("after", last)])) { "Next page" }
            }
        }
    };
    let page = Page { title: "Public repositories", nav: Nav::Public, crumbs: vec![], notice: notice(get("done")), body };
    Ok(view::render(&s, page).await)
}

/// May the caller edit and delete the row, and its description when it may read the catalog.
async fn row_actions(s: &Session, row: &RepositoryRow) -> Result<(bool, bool, Option<String>), Fail> {
    let Ok(r) = repo(s, &row.key.name) else { return Ok((false, false, None)) };
    let res = || Resource::Repository(&r);
    let edit = s.may("ecr-public:PutRepositoryCatalogData", res()).await?;
    let delete = s.may("ecr-public:DeleteRepository", res()).await?;
    let description = if s.may("ecr-public:GetRepositoryCatalogData", res()).await? {
        s.registry().repository_catalog(&r).await?.and_then(|c| c.catalog.description)
    } else {
        None
    };
    Ok((edit, delete, description))
}

/// The catalog fields as posted.
fn catalog_of(f: &FormData) -> RepositoryCatalog {
    let text = |k: &str| Some(f.get(k).unwrap_or("").trim().to_string()).filter(|t| !t.is_empty());
    let list = |k: &str| f.text(k).split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect();
    RepositoryCatalog {
        description: text("description"),
        architectures: list("architectures"),
        operating_systems: list("operating_systems"),
        about_text: text("about"),
        usage_text: text("usage"),
    }
}

/// The create and edit form: the name only when creating.
fn form(s: &Session, name: Option<&str>, editing: bool, c: &RepositoryCatalog, error: Option<&str>) -> Markup {
    let (action, button) =
        if editing { ("/console/public/update", "Save catalog data") } else { ("/console/public", "Create public repository") };
    html! {
        form.card.form-wide #public-form method="post" action=(action) {
            (view::csrf(s))
            @if let Some(e) = error { (view::alert(e)) }
            @if editing {
                input type="hidden" name="name" value=(name.unwrap_or(""));
                p { "Repository " code { (name.unwrap_or("")) } }
            } @else {
                div.field {
                    label for="name" { "Repository name" }
                    input #name name="name" required maxlength="205" value=(name.unwrap_or("")) autocomplete="off" spellcheck="false" autocapitalize="off";
                    p.help { "Lowercase letters, digits, and . _ - / separators, e.g. team/app." }
                }
            }
            div.field {
                label for="description" { "Description" }
                input #description name="description" maxlength="1024" value=(c.description.as_deref().unwrap_or(""));
                p.help { "One line, shown in search results (at most 1,024 characters)." }
            }
            div.field {
                label for="architectures" { "Architectures" }
                input #architectures name="architectures" value=(c.architectures.join(", ")) spellcheck="false";
                p.help { "Comma-separated, e.g. x86-64, ARM 64." }
            }
            div.field {
                label for="operating_systems" { "Operating systems" }
                input #operating_systems name="operating_systems" value=(c.operating_systems.join(", ")) spellcheck="false";
                p.help { "Comma-separated, e.g. Linux, Windows." }
            }
            div.field {
                label for="about" { "About " span.muted { "(Markdown)" } }
                textarea #about name="about" rows="8" maxlength="25600" { (c.about_text.as_deref().unwrap_or("")) }
            }
            div.field {
                label for="usage" { "Usage " span.muted { "(Markdown)" } }
                textarea #usage name="usage" rows="8" maxlength="25600" { (c.usage_text.as_deref().unwrap_or("")) }
            }
            @if editing { p.help { "A logo set through the ECR Public API is kept." } }
            div.form-actions {
                a.btn href=(LIST_URL) { "Cancel" }
                button.btn.btn-primary type="submit" { (button) }
            }
        }
    }
}

async fn form_page(s: &Session, title: &str, body: Markup, status: StatusCode) -> PageResult {
    let page = Page { title, nav: Nav::Public, crumbs: crumbs(Some(title)), notice: None, body: html! { h1 { (title) } (body) } };
    let mut resp = view::render(s, page).await;
    *resp.status_mut() = status;
    Ok(resp)
}

/// A refusal shown on the form again (storage failures and missing repositories fail the page).
fn shown_status(e: &RegistryError) -> Option<StatusCode> {
    let status = crate::web::status_of(e);
    (!status.is_server_error() && !matches!(e, RegistryError::NameUnknown(_))).then_some(status)
}

pub async fn new_form(s: Session) -> PageResult {
    s.allow("ecr-public:CreateRepository", Resource::AllRepositories(&scope(&s))).await?;
    form_page(&s, "Create public repository", form(&s, None, false, &RepositoryCatalog::default(), None), StatusCode::OK).await
}

pub async fn create(post: Post) -> PageResult {
    let (s, f) = (&post.session, &post.form);
    let name = f.text("name");
    let catalog = catalog_of(f);
    let input = CatalogInput { catalog: catalog.clone(), logo: None };
    // The service authorizes the name (ecr-public:CreateRepository) and checks the catalog.
    let result = match repo(s, &name) {
        Ok(r) => {
            s.audit("ecr-public:CreateRepository", &Resource::Repository(&r), serde_json::json!({ "repositoryName": name }));
            s.registry().create_public_repository_as(&s.principal, &r, Some(input), Vec::new()).await.map(|_| ())
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(see_other(&format!("{LIST_URL}?done=created"))),
        Err(e) => match shown_status(&e) {
            Some(status) => {
                let body = form(s, Some(&name), false, &catalog, Some(&crate::web::message_of(&e)));
                form_page(s, "Create public repository", body, status).await.map(|resp| crate::web::refused_page(resp, e))
            }
            None => Err(e.into()),
        },
    }
}

pub async fn edit_form(s: Session, RawQuery(raw): RawQuery) -> PageResult {
    let q = query_pairs(raw.as_deref());
    let name = q.iter().find(|(k, _)| k == "name").map(|(_, v)| v.clone()).unwrap_or_default();
    let r = repo(&s, &name)?;
    s.allow("ecr-public:GetRepositoryCatalogData", Resource::Repository(&r)).await?;
    let catalog = s.registry().repository_catalog(&r).await?.map(|c| c.catalog).unwrap_or_default();
    form_page(&s, "Edit catalog data", form(&s, Some(&name), true, &catalog, None), StatusCode::OK).await
}

pub async fn update(post: Post) -> PageResult {
    let (s, f) = (&post.session, &post.form);
    let name = f.text("name");
    let r = repo(s, &name)?;
    s.audit_allow("ecr-public:PutRepositoryCatalogData", Resource::Repository(&r), serde_json::json!({ "repositoryName": name })).await?;
    let catalog = catalog_of(f);
    // A put replaces all of the catalog, logo included; the form has no logo, so it keeps the stored one.
    let logo = s.registry().repository_catalog(&r).await?.and_then(|c| c.logo);
    match s.registry().put_repository_catalog(&r, CatalogInput { catalog: catalog.clone(), logo }).await {
        Ok(_) => Ok(see_other(&format!("{LIST_URL}?done=saved"))),
        Err(e) => match shown_status(&e) {
            Some(status) => {
                let body = form(s, Some(&name), true, &catalog, Some(&crate::web::message_of(&e)));
                form_page(s, "Edit catalog data", body, status).await.map(|resp| crate::web::refused_page(resp, e))
            }
            None => Err(e.into()),
        },
    }
}

/// The console's confirm pattern: the first POST shows what goes and asks for the name; the
/// second, with `confirm=yes` and the name typed, deletes.
pub async fn delete(post: Post) -> PageResult {
    let (s, f) = (&post.session, &post.form);
    let name = f.text("name");
    let r = repo(s, &name)?;
    s.allow("ecr-public:DeleteRepository", Resource::Repository(&r)).await?;
    let typed = f.text("confirm_name");
    if confirm::confirmed(&post) && typed == name {
        let params = serde_json::json!({ "repositoryName": name, "force": f.checked("force") });
        s.audit("ecr-public:DeleteRepository", &Resource::Repository(&r), params);
        s.registry().delete_repository(&r, f.checked("force")).await.map_err(Fail::from)?;
        return Ok(see_other(&format!("{LIST_URL}?done=deleted")));
    }
    // Exists (a 404 otherwise) before the confirmation is shown.
    s.registry().repository(&r).await?;
    let error =
        (confirm::confirmed(&post) && typed != name).then(|| format!("Type the repository name '{name}' exactly to confirm the deletion."));
    let heading = format!("Delete the public repository {name}?");
    let c = Confirm {
        heading: &heading,
        lost: html! {
            p { "Deleting " code { (name) } " removes its catalog data, policy and tags, and it leaves the gallery. "
                "A repository that still holds images is deleted only with " strong { "force" } ", which deletes its images too." }
            div.choice {
                input #force type="checkbox" name="force" value="on" form="confirm-form";
                label for="force" { "Force: also delete every image in the repository" }
            }
            div.field {
                label for="confirm_name" { "To confirm, type the repository name " code { (name) } }
                input #confirm_name name="confirm_name" form="confirm-form" required autocomplete="off" spellcheck="false" autocapitalize="off"
                    pattern=(crate::settings::pattern_literal(&name)) data-invalid-message="Type the repository name exactly to confirm.";
            }
            @if let Some(e) = &error { p.error-text role="alert" { (e) } }
        },
        action: "/console/public/delete",
        fields: vec![("name", name.clone())],
        cancel: LIST_URL,
        button: "Delete repository",
    };
    let page = Page { title: &heading, nav: Nav::Public, crumbs: crumbs(Some(&heading)), notice: None, body: confirm::section(s, &c) };
    let mut resp = view::render(s, page).await;
    if error.is_some() {
        *resp.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(resp)
}
