//! One repository: routing of its pages, the images table (with deletion), push commands.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery};
use axum::response::Response;
use berth_core::auth::Resource;
use berth_core::images::{ImageId, NestedImage, Relation};
use berth_core::Repo;
use berth_store::{ImageFilter, ImageRow, RepositoryRow, StorageClass, TagStatus};
use maud::{html, Markup};

use crate::view::{self, Nav, Page};
use crate::web::{query_pairs, see_other, Fail, PageResult, Post, Session};

/// Images per page of the images table.
const IMAGES_PER_PAGE: u32 = 100;
/// BatchDeleteImage takes at most 100 image ids.
const MAX_DELETE: usize = 100;

/// `team/app/-/settings` → (`team/app`, Some(`settings`)). `-` cannot be a name component.
fn split(path: &str) -> (&str, Option<&str>) {
    match path.split_once("/-/") {
        Some((name, rest)) => (name, Some(rest)),
        None => (path.strip_suffix("/-").unwrap_or(path), None),
    }
}

fn repo_of(s: &Session, name: &str) -> Result<Repo, Fail> {
    s.repo(name).map_err(|_| Fail::not_found(format!("There is no repository named '{name}': {}.", crate::repos::NAME_RULE)))
}

pub async fn get(s: Session, Path(path): Path<String>, RawQuery(query): RawQuery) -> PageResult {
    let q = query_pairs(query.as_deref());
    let (name, rest) = split(&path);
    let repo = repo_of(&s, name)?;
    match rest {
        None | Some("") | Some("images") => images_page(&s, &repo, &q).await,
        Some("push") => push_page(&s, &repo, &q).await,
        Some("permissions") => crate::policy::repo_page(&s, &repo, &q, None).await,
        Some("lifecycle") => crate::lifecycle::page(&s, &repo, &q).await,
        Some("settings") => crate::settings::page(&s, &repo, &q).await,
        Some(r) => match r.strip_prefix("image/").map(|d| d.split_once('/')) {
            Some(Some((digest, "manifest"))) => crate::image::raw_manifest(&s, &repo, digest).await,
            Some(Some((digest, "sbom"))) => crate::image::sbom_download(&s, &repo, digest).await,
            Some(None) => crate::image::page(&s, &repo, r.trim_start_matches("image/"), param(&q, "severity")).await,
            _ => Err(Fail::not_found("There is no such repository page.")),
        },
    }
}

pub async fn post(Path(path): Path<String>, post: Post) -> PageResult {
    let (name, rest) = split(&path);
    let repo = repo_of(&post.session, name)?;
    match rest.unwrap_or("") {
        "images/delete" => delete_images(&post, &repo).await,
        "permissions" => crate::policy::repo_save(&post, &repo).await,
        "permissions/delete" => crate::policy::repo_delete(&post, &repo).await,
        "settings/mutability" => crate::settings::save_mutability(&post, &repo).await,
        "settings/scanning" => crate::settings::save_scanning(&post, &repo).await,
        "settings/tags" => crate::settings::add_tag(&post, &repo).await,
        "settings/untag" => crate::settings::remove_tag(&post, &repo).await,
        "delete" => crate::settings::delete_repository(&post, &repo).await,
        "lifecycle" => crate::lifecycle::save(&post, &repo).await,
        "lifecycle/preview" => crate::lifecycle::preview(&post, &repo).await,
        "lifecycle/rule" => crate::lifecycle::add(&post, &repo).await,
        "lifecycle/delete" => crate::lifecycle::delete(&post, &repo).await,
        r => match r.strip_prefix("image/").and_then(|d| d.rsplit_once('/')) {
            Some((digest, "storage-class")) => crate::image::set_storage_class(&post, &repo, digest).await,
            Some((digest, "scan")) => crate::image::start_scan(&post, &repo, digest).await,
            _ => Err(Fail::not_found("There is no such repository action.")),
        },
    }
}

pub fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The repository row, when the caller may DescribeRepositories on it.
pub async fn describe(s: &Session, repo: &Repo) -> Result<RepositoryRow, Fail> {
    s.allow("ecr:DescribeRepositories", Resource::Repository(repo)).await?;
    Ok(s.registry().repository(repo).await?)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Images,
    Permissions,
    Lifecycle,
    Settings,
    Push,
}

pub fn repo_url(repo: &Repo) -> String {
    format!("/console/repo/{}", repo.name)
}

/// The repository's heading, URI, summary and tabs.
pub async fn header(s: &Session, repo: &Repo, row: &RepositoryRow, tab: Tab) -> Markup {
    let encryption = encryption_summary(s, row).await;
    let uri = s.repository_uri(repo);
    let base = repo_url(repo);
    let current = |t: Tab| if t == tab { Some("page") } else { None };
    html! {
        div.page-head {
            div.min0 {
                h1.repo-name { (view::breakable(repo.name.as_str())) }
                p.uri-line { code { (uri) } " " (view::copy(&uri, "repository URI")) }
            }
            @if tab != Tab::Push { a.btn href={(base) "/-/push"} { "View push commands" } }
        }
        dl.summary {
            div { dt { "Tag immutability" } dd { (crate::repos::mutability_label(row.settings.tag_mutability)) } }
            div { dt { "Scan on push" } dd { @if row.settings.scan_on_push { "Enabled" } @else { "Disabled" } } }
            div { dt { "Encryption" } dd { (encryption) } }
            div { dt { "Created" } dd { (view::when(row.created_at)) } }
        }
        nav.tabs aria-label="Repository" {
            a href=(base) aria-current=[current(Tab::Images)] { "Images" }
            a href={(base) "/-/permissions"} aria-current=[current(Tab::Permissions)] { "Permissions" }
            a href={(base) "/-/lifecycle"} aria-current=[current(Tab::Lifecycle)] { "Lifecycle policy" }
            a href={(base) "/-/settings"} aria-current=[current(Tab::Settings)] { "Settings" }
        }
    }
}

pub fn crumbs(repo: &Repo, last: Option<&str>) -> Vec<(String, Option<String>)> {
    let mut c =
        vec![("Repositories".to_string(), Some("/console/repositories".to_string())), (repo.name.to_string(), Some(repo_url(repo)))];
    if let Some(l) = last {
        c.push((l.to_string(), None));
    }
    c
}

pub fn notice(q: &[(String, String)]) -> Option<String> {
    param(q, "done").and_then(view::notice_text).map(str::to_string)
}

/// The images filter: tag status and storage class (ECR's tagStatus and imageStatus filters).
fn status_of(q: &[(String, String)]) -> (TagStatus, Option<StorageClass>, &'static str) {
    match param(q, "status") {
        Some("tagged") => (TagStatus::Tagged, None, "tagged"),
        Some("untagged") => (TagStatus::Untagged, None, "untagged"),
        Some("archived") => (TagStatus::Any, Some(StorageClass::Archive), "archived"),
        _ => (TagStatus::Any, None, "any"),
    }
}

fn type_cell(row: &ImageRow) -> Markup {
    html! {
        @match &row.artifact_type {
            Some(a) => { span title=(row.media_type) { "Artifact" } br; span.muted.small title="Artifact type" { (a) } }
            None => { span title=(row.media_type) { (view::media_label(&row.media_type)) } }
        }
    }
}

/// The images table's query: its filter, search and page token, as a URL of the same view.
#[derive(Clone, Copy)]
struct ImagesView<'a> {
    base: &'a str,
    search: &'a str,
}

impl ImagesView<'_> {
    fn url(&self, status_key: &str, page: Option<&str>) -> String {
        let mut pairs = Vec::new();
        if status_key != "any" {
            pairs.push(("status", status_key));
        }
        if !self.search.is_empty() {
            pairs.push(("q", self.search));
        }
        if let Some(p) = page {
            pairs.push(("page", p));
        }
        crate::web::with_query(self.base, &pairs)
    }
}

/// How a nested image relates to its parent row, in words.
fn relation_label(n: &NestedImage, platforms: &[NestedImage]) -> String {
    match &n.relation {
        Relation::Platform(p) if p.is_empty() => "Platform image".into(),
        Relation::Platform(p) => format!("Platform {p}"),
        Relation::Referrer { of } => {
            let kind = n.image.artifact_type.as_deref().map(view::artifact_label).unwrap_or("Artifact");
            match platforms.iter().find(|c| &c.image.digest == of) {
                Some(NestedImage { relation: Relation::Platform(p), .. }) if !p.is_empty() => format!("{kind} of {p}"),
                _ => kind.to_string(),
            }
        }
    }
}

/// The platforms and referrers of one image: a row under it that opens to show them.
fn nested_row(base: &str, parent: &str, nested: &[NestedImage], may_delete: bool, columns: usize) -> Markup {
    let platforms = nested.iter().filter(|n| matches!(n.relation, Relation::Platform(_))).count();
    let referrers = nested.len() - platforms;
    let mut parts = Vec::new();
    if platforms > 0 {
        parts.push(format!("{platforms} platform image{}", if platforms == 1 { "" } else { "s" }));
    }
    if referrers > 0 {
        parts.push(format!("{referrers} referrer{}", if referrers == 1 { "" } else { "s" }));
    }
    html! {
        tr.nested-row data-parent=(parent) {
            td colspan=(columns) {
                details.nested {
                    summary { (parts.join(", ")) }
                    ul.nested-list {
                        @for n in nested {
                            @let d = n.image.digest.to_string();
                            li data-digest=(d) data-relation=(if matches!(n.relation, Relation::Platform(_)) { "platform" } else { "referrer" }) {
                                @if may_delete {
                                    input type="checkbox" name="image" value=(d) aria-label={"Select " (relation_label(n, nested)) " " (d)};
                                    " "
                                }
                                span.relation { (relation_label(n, nested)) } " "
                                a href={(base) "/-/image/" (d)} title=(d) { code { (view::short_digest(&d)) } }
                                @for t in &n.image.tags { " " span.tag { (t) } }
                                span.muted.small { " · " (view::size(n.image.image_size)) " · pushed " (view::when(n.image.pushed_at)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn images_page(s: &Session, repo: &Repo, q: &[(String, String)]) -> PageResult {
    let row = describe(s, repo).await?;
    let (status, storage, status_key) = status_of(q);
    let token = param(q, "page").filter(|a| !a.is_empty());
    let search = param(q, "q").map(str::trim).unwrap_or("");
    let may_list = s.may("ecr:DescribeImages", Resource::Repository(repo)).await?;
    let may_delete = s.may("ecr:BatchDeleteImage", Resource::Repository(repo)).await?;
    let (images, next) = if may_list {
        let filter = ImageFilter { status, storage, search: Some(search), top_level: true };
        let page = s.registry().image_page(repo, &filter, token, IMAGES_PER_PAGE).await?;
        (page.images, page.next)
    } else {
        (Vec::new(), None)
    };
    let mut nested = Vec::with_capacity(images.len());
    for img in &images {
        nested.push(s.registry().nested_images(repo, img).await?);
    }
    // The scan summary DescribeImages carries (imageScanStatus, findingSeverityCounts).
    let digests: Vec<_> = images.iter().map(|i| i.digest.clone()).collect();
    let mut by_digest = s.registry().image_scans(repo, &digests).await?;
    let scans: Vec<_> = images.iter().map(|i| by_digest.remove(&i.digest)).collect();
    let base = repo_url(repo);
    let v = ImagesView { base: &base, search };
    let columns = if may_delete { 8 } else { 7 };
    let body = html! {
        (header(s, repo, &row, Tab::Images).await)
        section aria-labelledby="images-h" {
            div.section-head {
                h2 #images-h { "Images" }
                nav.segmented aria-label="Filter images" {
                    @for (key, label) in [("any", "All"), ("tagged", "Tagged"), ("untagged", "Untagged"), ("archived", "Archived")] {
                        a href=(v.url(key, None)) aria-current=[(key == status_key).then_some("true")] { (label) }
                    }
                }
            }
            form.toolbar #images-search method="get" action=(base) role="search" {
                @if status_key != "any" { input type="hidden" name="status" value=(status_key); }
                div.field.grow {
                    label for="images-q" { "Find images" }
                    input #images-q type="search" name="q" value=(search) placeholder="Tag or digest" autocomplete="off" spellcheck="false";
                }
                button.btn type="submit" { "Search" }
                @if !search.is_empty() { a.btn.btn-quiet href=(ImagesView { search: "", ..v }.url(status_key, None)) { "Clear search" } }
            }
            @if !may_list {
                (view::alert("You may not list this repository's images (ecr:DescribeImages)."))
            } @else if images.is_empty() {
                (view::empty(if status_key == "any" && search.is_empty() { "No images yet" } else { "No images match" }, html! {
                    @if status_key == "any" && search.is_empty() {
                        p { "Push an image to " code { (repo.name) } " to see it here." }
                        p { a.btn.btn-primary href={(base) "/-/push"} { "View push commands" } }
                    } @else {
                        p { a href=(base) { "Show all images" } }
                    }
                }))
            } @else {
                form #images-form method="post" action={(base) "/-/images/delete"} {
                    (view::csrf(s))
                    @if may_delete {
                        div.table-actions {
                            span.muted #selected-count aria-live="polite" {}
                            button.btn.btn-danger type="submit" data-needs-selection="image" { "Delete" }
                        }
                    }
                    div.table-wrap {
                        table.data #images {
                            caption.sr-only { "Images of " (repo.name) ", newest first" }
                            thead {
                                tr {
                                    @if may_delete {
                                        th scope="col" class="check" {
                                            input type="checkbox" data-select-all="image" aria-label="Select all images" hidden;
                                        }
                                    }
                                    th scope="col" { "Image tags" }
                                    th scope="col" { "Digest" }
                                    th scope="col" class="secondary" { "Type" }
                                    th scope="col" aria-sort="descending" { "Pushed at" }
                                    th scope="col" class="num secondary" { "Size" }
                                    th scope="col" class="secondary" { "Last pulled" }
                                    th scope="col" { "Scan status" }
                                }
                            }
                            tbody {
                                @for ((img, scan), under) in images.iter().zip(&scans).zip(&nested) {
                                    @let d = img.digest.to_string();
                                    tr data-digest=(d) {
                                        @if may_delete {
                                            td.check {
                                                input type="checkbox" name="image" value=(d)
                                                    aria-label={"Select image " (img.tags.first().map(String::as_str).unwrap_or(&d))};
                                            }
                                        }
                                        td.tags {
                                            @if img.tags.is_empty() { span.muted { "untagged" } " " }
                                            @for t in &img.tags { span.tag { (t) } " " }
                                            @if img.storage_class == StorageClass::Archive {
                                                (view::badge("Archived", "warn"))
                                            }
                                        }
                                        td.digest {
                                            a href={(base) "/-/image/" (d)} title=(d) { code { (view::short_digest(&d)) } }
                                            " " (view::copy(&d, "digest"))
                                        }
                                        td.secondary { (type_cell(img)) }
                                        td { (view::when(img.pushed_at)) }
                                        td.num.secondary { (view::size(img.image_size)) }
                                        td.secondary { (view::maybe_when(img.last_pulled_at, "Never")) }
                                        td { (view::scan_summary(scan.as_ref())) }
                                    }
                                    @if !under.is_empty() { (nested_row(&base, &d, under, may_delete, columns)) }
                                }
                            }
                        }
                    }
                }
                nav.pager aria-label="Pagination" {
                    @if token.is_some() { a.btn href=(v.url(status_key, None)) { "First page" } }
                    @if let Some(n) = &next {
                        a.btn rel="next" href=(v.url(status_key, Some(n))) { "Next page" }
                    }
                }
            }
        }
    };
    let page = Page { title: repo.name.as_str(), nav: Nav::Repositories, crumbs: crumbs(repo, None), notice: notice(q), body };
    Ok(view::render(s, page).await)
}

async fn delete_images(post: &Post, repo: &Repo) -> PageResult {
    let s = &post.session;
    s.allow("ecr:BatchDeleteImage", Resource::Repository(repo)).await?;
    let digests: Vec<String> = post.form.all("image").into_iter().map(str::to_string).collect();
    let base = repo_url(repo);
    if digests.is_empty() {
        return Ok(see_other(&base));
    }
    if digests.len() > MAX_DELETE {
        return Err(Fail::bad_request(format!("Select at most {MAX_DELETE} images to delete at once.")));
    }
    let ids: Vec<ImageId> = digests.iter().map(|d| ImageId { digest: Some(d.clone()), tag: None }).collect();
    if post.form.get("confirm") != Some("yes") {
        // The confirmation step: what exactly will go.
        let row = describe(s, repo).await?;
        let (found, failures) = s.registry().describe_image_ids(repo, &ids).await?;
        let listed = listing_indexes(s, repo, &found, &digests).await?;
        let behind = left_behind(s, repo, &found, &digests).await?;
        let body = html! {
            (header(s, repo, &row, Tab::Images).await)
            section.card.danger-zone aria-labelledby="confirm-h" {
                h2 #confirm-h { "Delete " (found.len()) " image" @if found.len() != 1 { "s" } "?" }
                p { "These images and all their tags will be deleted from " code { (repo.name) } ". This cannot be undone." }
                ul.confirm-list {
                    @for img in &found {
                        li {
                            code { (img.digest) }
                            @if !img.tags.is_empty() { " — " @for t in &img.tags { span.tag { (t) } " " } }
                            @if let Some(indexes) = listed.get(&img.digest) {
                                p.error-text.listed-by {
                                    "Deleting it would break "
                                    @for (i, l) in indexes.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        @if l.tags.is_empty() { "the index " } @else {
                                            @for t in &l.tags { strong { (repo.name) ":" (t) } " " }
                                            "(index "
                                        }
                                        code { (l.index) }
                                        @if !l.tags.is_empty() { ")" }
                                        @if !l.platform.is_empty() { " for " (l.platform) }
                                    }
                                    ". The registry refuses to delete an image an index still lists, so this one will stay: "
                                    "select the index too, or delete the index first."
                                }
                            }
                            @if let Some((platforms, referrers)) = behind.get(&img.digest) {
                                p.help.left-behind {
                                    "Left in the repository as untagged images, as they are not selected: "
                                    @if *platforms > 0 {
                                        (platforms) " platform image" @if *platforms != 1 { "s" } " of this index"
                                    }
                                    @if *platforms > 0 && *referrers > 0 { " and " }
                                    @if *referrers > 0 {
                                        (referrers) " referrer" @if *referrers != 1 { "s" } " (signatures, SBOMs)"
                                    }
                                    ". Select them too (under the image in the list) to delete them with it."
                                }
                            }
                        }
                    }
                    @for f in &failures { li.error-text { (f.id.digest.as_deref().unwrap_or("")) ": " (f.reason) } }
                }
                form method="post" action={(base) "/-/images/delete"} {
                    (view::csrf(s))
                    input type="hidden" name="confirm" value="yes";
                    @for img in &found { input type="hidden" name="image" value=(img.digest); }
                    div.form-actions {
                        a.btn href=(base) { "Cancel" }
                        button.btn.btn-danger type="submit" disabled[found.is_empty()] { "Delete" }
                    }
                }
            }
        };
        let page = Page { title: "Delete images", nav: Nav::Repositories, crumbs: crumbs(repo, Some("Delete images")), notice: None, body };
        return Ok(view::render(s, page).await);
    }
    let params = serde_json::json!({ "repositoryName": repo.name.as_str(), "imageIds": digests.iter().map(|d| serde_json::json!({ "imageDigest": d })).collect::<Vec<_>>() });
    s.audit("ecr:BatchDeleteImage", &Resource::Repository(repo), params);
    let (_, failures) = s.registry().batch_delete_images(repo, &ids).await?;
    if failures.is_empty() {
        return Ok(see_other(&format!("{base}?done=images-deleted")));
    }
    let row = describe(s, repo).await?;
    let body = html! {
        (header(s, repo, &row, Tab::Images).await)
        div.notice.err role="alert" {
            p { "Some images could not be deleted:" }
            ul { @for f in &failures { li { code { (f.id.digest.as_deref().unwrap_or("")) } " — " (f.code) ": " (f.reason) } } }
            @if failures.iter().any(|f| f.code == "ImageReferencedByManifestList") {
                p { "An image a multi-architecture index lists stays while the index stays: deleting it would break that index. "
                    "Delete the index with it, or first." }
            }
        }
        p { a.btn href=(base) { "Back to images" } }
    };
    let page = Page { title: "Delete images", nav: Nav::Repositories, crumbs: crumbs(repo, Some("Delete images")), notice: None, body };
    let mut resp: Response = view::render(s, page).await;
    *resp.status_mut() = http::StatusCode::BAD_REQUEST;
    Ok(resp)
}

/// An index that lists an image about to be deleted: what its deletion would break.
struct Listing {
    index: berth_core::Digest,
    tags: Vec<String>,
    /// The platform the index lists the image as ("" when unstated).
    platform: String,
}

/// For each image to delete, the indexes of the repository listing it that are not selected too
/// (the delete would be refused while they stay).
async fn listing_indexes(
    s: &Session,
    repo: &Repo,
    found: &[ImageRow],
    selected: &[String],
) -> Result<HashMap<berth_core::Digest, Vec<Listing>>, Fail> {
    let mut listed = HashMap::new();
    for img in found {
        let mut indexes = Vec::new();
        for index in s.registry().indexes_listing(repo, &img.digest).await? {
            if selected.contains(&index.to_string()) {
                continue;
            }
            let id = ImageId { digest: Some(index.to_string()), tag: None };
            let row = s.registry().describe_image_ids(repo, &[id]).await?.0.into_iter().next();
            let platform = match &row {
                Some(row) => s.registry().nested_images(repo, row).await?.into_iter().find_map(|n| match n.relation {
                    Relation::Platform(p) if n.image.digest == img.digest => Some(p),
                    _ => None,
                }),
                None => None,
            };
            indexes.push(Listing { index, tags: row.map(|r| r.tags).unwrap_or_default(), platform: platform.unwrap_or_default() });
        }
        if !indexes.is_empty() {
            listed.insert(img.digest.clone(), indexes);
        }
    }
    Ok(listed)
}

/// For each image to delete, how many of its platform images and referrers are not selected
/// too: (platforms, referrers). They stay behind, as loose rows.
async fn left_behind(
    s: &Session,
    repo: &Repo,
    found: &[ImageRow],
    selected: &[String],
) -> Result<HashMap<berth_core::Digest, (usize, usize)>, Fail> {
    let mut counts = HashMap::new();
    for img in found {
        let (mut platforms, mut referrers) = (0, 0);
        for n in s.registry().nested_images(repo, img).await? {
            if selected.contains(&n.image.digest.to_string()) {
                continue;
            }
            match n.relation {
                Relation::Platform(_) => platforms += 1,
                Relation::Referrer { .. } => referrers += 1,
            }
        }
        if platforms + referrers > 0 {
            counts.insert(img.digest.clone(), (platforms, referrers));
        }
    }
    Ok(counts)
}

async fn push_page(s: &Session, repo: &Repo, q: &[(String, String)]) -> PageResult {
    let row = describe(s, repo).await?;
    let host = s.registry_host();
    let region = &s.registry.region;
    let name = repo.name.as_str();
    let login = format!(
        "aws ecr get-login-password --region {region} --endpoint-url {} | docker login --username AWS --password-stdin {host}",
        s.endpoint_url()
    );
    let build = format!("docker build -t {name} .");
    let uri = s.repository_uri(repo);
    let tag = format!("docker tag {name}:latest {uri}:latest");
    let push = format!("docker push {uri}:latest");
    let plain_http = !s.app.tls;
    let loopback = host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    let body = html! {
        (header(s, repo, &row, Tab::Push).await)
        section.card aria-labelledby="push-h" #push-commands {
            h2 #push-h { "Push commands for " (name) }
            p { "Make sure you have the AWS CLI and Docker installed, and AWS credentials (an access key of this registry) configured, e.g. with "
                code { "aws configure" } "." }
            ol.steps {
                li {
                    p { "Retrieve an authentication token and authenticate your Docker client to the registry:" }
                    div data-command="login" { (view::command(&login, "login command")) }
                    @if plain_http && !loopback {
                        p.help { "This registry is served over plain HTTP: add " code { (host) } " to Docker's "
                            code { "insecure-registries" } " (in " code { "/etc/docker/daemon.json" } ") first." }
                    }
                }
                li {
                    p { "Build your Docker image (skip this step if your image is already built):" }
                    div data-command="build" { (view::command(&build, "build command")) }
                }
                li {
                    p { "Tag your image so you can push it to this repository:" }
                    div data-command="tag" { (view::command(&tag, "tag command")) }
                }
                li {
                    p { "Push the image to this repository:" }
                    div data-command="push" { (view::command(&push, "push command")) }
                }
            }
            details.more {
                summary { "Using Podman instead of Docker" }
                @let podman_login = login.replace("| docker login", "| podman login");
                (view::command(&podman_login, "podman login command"))
                (view::command(&format!("podman push {uri}:latest"), "podman push command"))
                @if plain_http { p.help { "Over plain HTTP add " code { "--tls-verify=false" } " to " code { "podman login" } " and " code { "podman push" } "." } }
            }
        }
    };
    let page =
        Page { title: "Push commands", nav: Nav::Repositories, crumbs: crumbs(repo, Some("Push commands")), notice: notice(q), body };
    Ok(view::render(s, page).await)
}

/// The repository's encryption as a user checks it: the type, and for a KMS key its ARN and
/// state (the state only when the user may describe the key).
async fn encryption_summary(s: &Session, row: &RepositoryRow) -> Markup {
    let kind = match row.settings.encryption_type {
        berth_store::EncryptionType::Aes256 => "AES256 (registry-managed key)",
        berth_store::EncryptionType::Kms => "KMS",
        berth_store::EncryptionType::KmsDsse => "KMS_DSSE (two layers)",
    };
    let Some(arn) = row.settings.kms_key.as_deref() else { return html! { (kind) } };
    let key = s.app.registry.kms_describe_key(&s.principal, arn).await.ok();
    html! {
        (kind) " " code.key-arn { (arn) }
        @if let Some(key) = &key { " " (crate::keys::state_badge(key)) }
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn paths() {
        assert_eq!(split("team/app"), ("team/app", None));
        assert_eq!(split("team/app/-/settings"), ("team/app", Some("settings")));
        assert_eq!(split("team/app/-/image/sha256:ab"), ("team/app", Some("image/sha256:ab")));
        assert_eq!(split("app/-"), ("app", None));
    }
}
