//! The repositories list (search, sortable columns, numbered pages, selection with View push
//! commands / Delete) and "Create repository".

use axum::extract::Query;
use axum::response::Response;
use berth_core::auth::Resource;
use berth_core::immutability::ExclusionFilter;
use berth_core::repositories::NewRepository;
use berth_core::{Param, RegistryError, Repo, RepositoryName};
use berth_store::{RepositoryRow, TagMutability, TagStatus};
use maud::{html, Markup};
use serde::Deserialize;

use crate::view::{self, Nav, Page};
use crate::web::{see_other, with_query, Fail, PageResult, Post, Session};

/// Rows read from the store per step.
const CHUNK: u32 = 1000;
/// Repositories a listing orders at most (it has to see every name to count pages and sort).
const SORT_LIMIT: usize = 100_000;
/// Images counted per repository row; more shows as "1000+".
const COUNT_LIMIT: u32 = 1000;
pub const PER_PAGE: [u32; 3] = [25, 50, 100];

#[derive(Deserialize, Default)]
pub struct ListQuery {
    q: Option<String>,
    /// "prefix" or "contains" (default).
    mode: Option<String>,
    /// One of [`Sort`]'s keys; name order by default.
    sort: Option<String>,
    page: Option<usize>,
    per: Option<u32>,
    done: Option<String>,
}

/// The orders the list offers; each sortable column header toggles between its two.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sort {
    Name,
    NameDesc,
    /// Newest first.
    Created,
    CreatedAsc,
}

impl Sort {
    const ALL: [Sort; 4] = [Sort::Name, Sort::NameDesc, Sort::Created, Sort::CreatedAsc];

    fn parse(raw: Option<&str>) -> Sort {
        Sort::ALL.into_iter().find(|s| Some(s.key()) == raw).unwrap_or(Sort::Name)
    }

    fn key(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::NameDesc => "name-desc",
            Sort::Created => "created",
            Sort::CreatedAsc => "created-asc",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Sort::Name => "Name (A to Z)",
            Sort::NameDesc => "Name (Z to A)",
            Sort::Created => "Created (newest first)",
            Sort::CreatedAsc => "Created (oldest first)",
        }
    }

    fn order(self, keys: &mut [(i64, String)]) {
        match self {
            Sort::Name => keys.sort_by(|a, b| a.1.cmp(&b.1)),
            Sort::NameDesc => keys.sort_by(|a, b| b.1.cmp(&a.1)),
            Sort::Created => keys.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1))),
            Sort::CreatedAsc => keys.sort(),
        }
    }
}

/// A sortable column: which two orders its header toggles between.
#[derive(Clone, Copy)]
enum Column {
    Name,
    Created,
}

impl Column {
    /// (ascending, descending, the header's first click)
    fn orders(self) -> (Sort, Sort, Sort) {
        match self {
            Column::Name => (Sort::Name, Sort::NameDesc, Sort::Name),
            Column::Created => (Sort::CreatedAsc, Sort::Created, Sort::Created),
        }
    }

    /// `aria-sort` of the header under `current`, and the order a click on it asks for.
    fn state(self, current: Sort) -> (Option<&'static str>, Sort) {
        let (asc, desc, first) = self.orders();
        if current == asc {
            (Some("ascending"), desc)
        } else if current == desc {
            (Some("descending"), asc)
        } else {
            (None, first)
        }
    }
}

struct Listing {
    rows: Vec<RepositoryRow>,
    total: usize,
    /// Nothing was visible and the service refused DescribeRepositories.
    denied: Option<String>,
}

fn matches(name: &str, q: &str, prefix: bool) -> bool {
    q.is_empty() || if prefix { name.starts_with(q) } else { name.contains(q) }
}

/// The largest string sorting before every name that starts with `prefix` (names are ASCII), so
/// a prefix search starts at the prefix instead of the top of the registry.
fn before_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    let last = chars.pop()?;
    let prev = char::from_u32(last as u32 - 1).filter(|_| last.is_ascii() && last as u32 > 0)?;
    let mut s: String = chars.into_iter().collect();
    s.push(prev);
    s.push(char::MAX);
    Some(s)
}

/// One step through the registry in name order, as DescribeRepositories pages it: the rows the
/// caller may describe, whether there are more, and the cursor. A step where the caller may
/// describe nothing comes back empty with the service's refusal.
async fn step(s: &Session, after: Option<&str>, limit: u32) -> Result<(Vec<RepositoryRow>, bool, Option<String>, Option<String>), Fail> {
    match s.registry().describable_repositories(&s.principal, &s.registry, after, limit).await {
        Ok(p) => Ok((p.rows, p.more, p.last_scanned, None)),
        Err(RegistryError::Denied(m)) => {
            // Nothing here is visible; move the cursor past these rows as DescribeRepositories' nextToken would.
            let mut raw = s.registry().repositories(&s.registry, after, limit.saturating_add(1)).await?;
            let more = raw.len() > limit as usize;
            raw.truncate(limit as usize);
            Ok((Vec::new(), more, raw.last().map(|r| r.key.name.clone()), Some(m)))
        }
        Err(e) => Err(e.into()),
    }
}

/// One page in any order. The store keeps name order only and a page count needs the total, so
/// this reads every matching name once (keys and times only), orders them, then loads the rows
/// of one page.
async fn listing(s: &Session, q: &str, prefix: bool, sort: Sort, page: usize, per: u32) -> Result<Listing, Fail> {
    let mut keys: Vec<(i64, String)> = Vec::new();
    let mut cursor = if prefix && !q.is_empty() { before_prefix(q) } else { None };
    let (mut denied, mut any_visible) = (None, false);
    loop {
        let (chunk, more, last, refusal) = step(s, cursor.as_deref(), CHUNK).await?;
        any_visible |= refusal.is_none();
        if refusal.is_some() {
            denied = refusal;
        }
        let mut past_prefix = false;
        for row in chunk {
            if prefix && !q.is_empty() && row.key.name.as_str() > q && !row.key.name.starts_with(q) {
                past_prefix = true;
                break;
            }
            if matches(&row.key.name, q, prefix) {
                keys.push((row.created_at, row.key.name));
            }
        }
        cursor = last;
        if !more || past_prefix || cursor.is_none() || keys.len() >= SORT_LIMIT {
            break;
        }
    }
    sort.order(&mut keys);
    let total = keys.len();
    let start = page.saturating_sub(1).saturating_mul(per as usize);
    let mut rows = Vec::new();
    for (_, name) in keys.iter().skip(start).take(per as usize) {
        let repo = s.repo(name)?;
        match s.registry().repository(&repo).await {
            Ok(row) => rows.push(row),
            Err(RegistryError::NameUnknown(_)) => {} // deleted meanwhile
            Err(e) => return Err(e.into()),
        }
    }
    let denied = if total == 0 && !any_visible { denied } else { None };
    Ok(Listing { rows, total, denied })
}

/// Image count and stored size of one repository, each blob once (None: the caller may not
/// DescribeImages).
async fn image_stats(s: &Session, repo: &Repo) -> Option<(usize, bool, u64)> {
    // A decoration of the list: without an answer (an outage) the counts are left out.
    if !s.may("ecr:DescribeImages", Resource::Repository(repo)).await.ok()? {
        return None;
    }
    let images = s.registry().images(repo, TagStatus::Any, None, None, COUNT_LIMIT + 1).await.ok()?;
    let more = images.len() > COUNT_LIMIT as usize;
    let size = s.registry().repository_size(repo).await.ok()?;
    Some((images.len().min(COUNT_LIMIT as usize), more, size))
}

/// What the list shows of one repository beside its row.
struct RowExtras {
    stats: Option<(usize, bool, u64)>,
    /// The caller may delete it (its checkbox is offered).
    deletable: bool,
}

async fn extras(s: &Session, row: &RepositoryRow) -> Result<RowExtras, Fail> {
    let Ok(name) = RepositoryName::parse(&row.key.name) else {
        return Ok(RowExtras { stats: None, deletable: false });
    };
    let repo = Repo::new(&s.registry, name);
    let deletable = s.may("ecr:DeleteRepository", Resource::Repository(&repo)).await?;
    Ok(RowExtras { stats: image_stats(s, &repo).await, deletable })
}

/// A sortable column header: a link to the other order, `aria-sort` naming the current one.
fn sort_header(label: &str, column: Column, current: Sort, href: impl Fn(Sort) -> String, class: Option<&str>) -> Markup {
    let (aria, next) = column.state(current);
    let arrow = match aria {
        // A no-break space: the arrow stays with the header's last word when it wraps.
        Some("ascending") => "\u{a0}▲",
        Some("descending") => "\u{a0}▼",
        _ => "",
    };
    html! {
        th scope="col" class=[class] aria-sort=[aria] data-sort=(column_key(column)) {
            a.sort href=(href(next)) title={"Sort by " (label.to_lowercase())} { (label) span aria-hidden="true" { (arrow) } }
        }
    }
}

fn column_key(c: Column) -> &'static str {
    match c {
        Column::Name => "name",
        Column::Created => "created",
    }
}

pub async fn list(s: Session, Query(lq): Query<ListQuery>) -> PageResult {
    let q = lq.q.as_deref().unwrap_or("").trim().to_ascii_lowercase();
    let prefix = lq.mode.as_deref() == Some("prefix");
    let sort = Sort::parse(lq.sort.as_deref());
    let per = lq.per.filter(|p| PER_PAGE.contains(p)).unwrap_or(PER_PAGE[0]);
    let page = lq.page.unwrap_or(1).max(1);
    let listing = listing(&s, &q, prefix, sort, page, per).await?;
    if let Some(d) = &listing.denied {
        return Err(Fail::new(http::StatusCode::FORBIDDEN, d.clone()));
    }
    let pages = listing.total.div_ceil(per as usize).max(1);
    let host = s.registry_host();
    let may_create = s.may("ecr:CreateRepository", Resource::AllRepositories(&s.registry)).await?;
    let mut extra = Vec::with_capacity(listing.rows.len());
    for row in &listing.rows {
        extra.push(extras(&s, row).await?);
    }
    let selectable = extra.iter().any(|e| e.deletable);
    let per_s = per.to_string();
    let url = |sort: Sort, page: usize| {
        let page_s = page.to_string();
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if !q.is_empty() {
            pairs.push(("q", &q));
        }
        if prefix {
            pairs.push(("mode", "prefix"));
        }
        if sort != Sort::Name {
            pairs.push(("sort", sort.key()));
        }
        if per != PER_PAGE[0] {
            pairs.push(("per", &per_s));
        }
        if page > 1 {
            pairs.push(("page", &page_s));
        }
        with_query("/console/repositories", &pairs)
    };
    let next_href = (page < pages).then(|| url(sort, page + 1));
    let prev_href = (page > 1).then(|| url(sort, page - 1));
    let body = html! {
        div.page-head {
            div {
                h1 { "Private repositories" }
                p.muted { "Registry " code { (host) } " · account " (s.registry.account) " · " (s.registry.region) }
            }
            @if may_create {
                a.btn.btn-primary href="/console/repositories/new" { "Create repository" }
            }
        }
        form.toolbar method="get" action="/console/repositories" role="search" {
            div.field.grow {
                label for="q" { "Find repositories" }
                input #q type="search" name="q" value=(q) placeholder="Repository name" autocomplete="off" spellcheck="false";
            }
            div.field {
                label for="mode" { "Match" }
                select #mode name="mode" {
                    option value="contains" selected[!prefix] { "Name contains" }
                    option value="prefix" selected[prefix] { "Name starts with" }
                }
            }
            div.field {
                label for="sort" { "Sort by" }
                select #sort name="sort" {
                    @for o in Sort::ALL { option value=(o.key()) selected[o == sort] { (o.label()) } }
                }
            }
            div.field {
                label for="per" { "Per page" }
                select #per name="per" {
                    @for p in PER_PAGE { option value=(p) selected[p == per] { (p) } }
                }
            }
            div.field.actions-end { button.btn type="submit" { "Apply" } }
        }
        @if listing.rows.is_empty() {
            @if q.is_empty() && page == 1 {
                (view::empty("No repositories yet", html! {
                    p { "A repository holds the images of one application. Create one, then push to it with docker, podman or skopeo." }
                    @if may_create { p { a.btn.btn-primary href="/console/repositories/new" { "Create repository" } } }
                }))
            } @else {
                (view::empty("No repositories match", html! {
                    @if q.is_empty() { p { "There is no page " (page) "." } } @else { p { "Nothing matches " strong { (q) } "." } }
                    p { a href="/console/repositories" { "Show all repositories" } }
                }))
            }
        } @else {
            form #repositories-form method="post" action="/console/repositories/selected" {
                (view::csrf(&s))
                div.table-actions {
                    span.muted #selected-count aria-live="polite" {}
                    button.btn type="submit" name="action" value="push" data-needs-selection="repository" data-selection-max="1" { "View push commands" }
                    @if selectable {
                        button.btn.btn-danger type="submit" name="action" value="delete" data-needs-selection="repository" data-selection-max="1" { "Delete" }
                    }
                }
                div.table-wrap {
                    table.data #repositories {
                        caption.sr-only { "Repositories, sorted by " (sort.label()) }
                        thead {
                            tr {
                                th scope="col" class="check" { span.sr-only { "Select" } }
                                (sort_header("Repository name", Column::Name, sort, |o| url(o, 1), None))
                                th scope="col" { "URI" }
                                (sort_header("Created at", Column::Created, sort, |o| url(o, 1), Some("secondary")))
                                th scope="col" class="secondary" { "Tag immutability" }
                                th scope="col" class="secondary" { "Scan on push" }
                                th scope="col" class="secondary" { "Encryption" }
                                th scope="col" class="num" { "Images" }
                                th scope="col" class="num secondary" { "Size" }
                            }
                        }
                        tbody {
                            @for (row, ex) in listing.rows.iter().zip(&extra) {
                                @let uri = s.registry().repository_uri(&row.key, &s.host);
                                tr data-repository=(row.key.name) {
                                    td.check {
                                        input type="checkbox" name="repository" value=(row.key.name) data-deletable[ex.deletable]
                                            aria-label={"Select " (row.key.name)};
                                    }
                                    th scope="row" { a href={"/console/repo/" (row.key.name)} { (view::breakable(&row.key.name)) } }
                                    td.uri { code { (view::breakable(&uri)) } " " (view::copy(&uri, &format!("URI of {}", row.key.name))) }
                                    td.secondary.created { (view::when(row.created_at)) }
                                    td.secondary { (mutability_label(row.settings.tag_mutability)) }
                                    td.secondary { @if row.settings.scan_on_push { (view::badge("Enabled", "ok")) } @else { span.muted { "Disabled" } } }
                                    td.secondary { (row.settings.encryption_type) }
                                    @match &ex.stats {
                                        Some((n, more, bytes)) => {
                                            td.num data-images=(n) { (n) @if *more { "+" } }
                                            td.num.secondary { (view::size(*bytes)) }
                                        }
                                        None => {
                                            td.num { span.muted title="You may not describe this repository's images" { "—" } }
                                            td.num.secondary { span.muted { "—" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pagination" {
            @if page > 2 { a.btn href=(url(sort, 1)) { "First page" } }
            @if let Some(href) = &prev_href { a.btn rel="prev" href=(href) { "Previous page" } }
            span.muted #page-count { "Page " (page) " of " (pages) " · " (view::count(listing.total as u64, "repository", "repositories")) }
            @if let Some(href) = &next_href { a.btn rel="next" href=(href) { "Next page" } }
        }
    };
    let notice = lq.done.as_deref().and_then(view::notice_text).map(str::to_string);
    Ok(view::render(&s, Page { title: "Repositories", nav: Nav::Repositories, crumbs: vec![], notice, body }).await)
}

/// The list's selection actions: "View push commands" goes to that page; "Delete" asks for the
/// repository's name first (the same confirmation as the settings page's).
pub async fn selected(post: Post) -> PageResult {
    let s = &post.session;
    let chosen = post.form.all("repository");
    let [name] = chosen.as_slice() else {
        return Err(Fail::new(http::StatusCode::BAD_REQUEST, "Select one repository, then choose the action again."));
    };
    let repo = s.repo(name)?;
    match post.form.get("action") {
        Some("push") => Ok(see_other(&format!("/console/repo/{}/-/push", repo.name))),
        Some("delete") => {
            s.allow("ecr:DeleteRepository", Resource::Repository(&repo)).await?;
            let row = s.registry().repository(&repo).await?;
            let images = image_stats(s, &repo).await.map(|(n, more, _)| (n, more));
            let heading = format!("Delete the repository {}?", repo.name);
            let body = html! {
                section.card.danger-zone aria-labelledby="confirm-h" #confirm {
                    h2 #confirm-h { (heading) }
                    p { "Created " (view::when(row.created_at)) "." }
                    (crate::confirm::delete_repository(s, &repo, images, None, Some("/console/repositories")))
                }
            };
            let crumbs = vec![("Repositories".into(), Some("/console/repositories".into())), ("Delete repository".into(), None)];
            Ok(view::render(s, Page { title: "Delete repository", nav: Nav::Repositories, crumbs, notice: None, body }).await)
        }
        _ => Err(Fail::new(http::StatusCode::BAD_REQUEST, "Choose View push commands or Delete.")),
    }
}

pub fn mutability_label(m: TagMutability) -> &'static str {
    match m {
        TagMutability::Mutable => "Mutable",
        TagMutability::Immutable => "Immutable",
        TagMutability::ImmutableWithExclusion => "Immutable, with exclusions",
        TagMutability::MutableWithExclusion => "Mutable, with exclusions",
    }
}

// ---- create ----

/// What the create form holds, to render it again with the service's message.
#[derive(Default)]
pub struct CreateForm {
    name: String,
    mutability: String,
    filters: Vec<String>,
    scan_on_push: bool,
    encryption: String,
    kms_key: String,
    tags: Vec<(String, String)>,
    error: Option<(Field, String)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    General,
    Name,
    Mutability,
    Encryption,
    Tags,
}

/// The name rule as an HTML `pattern` (the service's rule; anchored by the browser).
pub const NAME_PATTERN: &str = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*";
pub const NAME_RULE: &str =
    "must be 2-256 characters of lowercase letters, digits and separators (. _ __ -), path components separated by /";
pub const FILTER_PATTERN: &str = r"[a-zA-Z0-9._*\-]{1,128}";
pub const FILTER_RULE: &str = "must be 1-128 characters of [a-zA-Z0-9._*-] with at most two wildcards";
pub const MAX_FILTERS: usize = 5;

pub fn mutability_fields(mutability: &str, filters: &[String], error: Option<&str>) -> Markup {
    let options = [
        ("MUTABLE", "Mutable", "Tags can be overwritten by a later push."),
        ("IMMUTABLE", "Immutable", "A tag, once pushed, cannot be moved to another image."),
        ("IMMUTABLE_WITH_EXCLUSION", "Immutable, with exclusions", "Tags are immutable except those matching a filter."),
        ("MUTABLE_WITH_EXCLUSION", "Mutable, with exclusions", "Tags are mutable except those matching a filter."),
    ];
    let current = if mutability.is_empty() { "MUTABLE" } else { mutability };
    html! {
        fieldset.field #mutability-fields data-invalid=[error.map(|_| "true")] {
            legend { "Image tag mutability" }
            @for (value, label, help) in options {
                @let id = format!("mut-{}", value.to_ascii_lowercase());
                div.choice {
                    input type="radio" name="mutability" id=(id) value=(value) checked[current == value] aria-describedby={(id) "-help"};
                    label for=(id) { (label) }
                    p.help id={(id) "-help"} { (help) }
                }
            }
            div.exclusions data-show-for="IMMUTABLE_WITH_EXCLUSION MUTABLE_WITH_EXCLUSION" data-show-from="mutability" {
                p.help #filters-help { "Exclusion filters (up to " (MAX_FILTERS) "): tag patterns where " code { "*" }
                    " matches any characters, e.g. " code { "latest" } " or " code { "dev-*" } ". Filters " (FILTER_RULE) "." }
                @for i in 0..MAX_FILTERS {
                    @let id = format!("filter-{i}");
                    div.field.inline {
                        label for=(id) { "Filter " (i + 1) }
                        input id=(id) name="filter" value=(filters.get(i).map(String::as_str).unwrap_or(""))
                            pattern=(FILTER_PATTERN) maxlength="128" spellcheck="false" autocapitalize="off"
                            data-invalid-message={"Exclusion filter " (FILTER_RULE)} aria-describedby="filters-help";
                    }
                }
            }
            @if let Some(e) = error { p.error-text #mutability-error role="alert" { (e) } }
        }
    }
}

pub fn exclusion_filters(form: &crate::web::FormData) -> Vec<ExclusionFilter> {
    form.all("filter")
        .into_iter()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| ExclusionFilter { filter_type: "WILDCARD".into(), filter: f.to_string() })
        .collect()
}

/// The encryption keys the create form offers: the account's enabled symmetric keys by alias
/// (value: the key ARN). None when the person may not list keys: the form then takes an ARN.
pub async fn key_options(s: &Session) -> Result<Option<Vec<(String, String)>>, Fail> {
    if !s.may("kms:ListKeys", Resource::Registry(&s.registry)).await? {
        return Ok(None);
    }
    let (keys, _) = s.registry().kms_list_keys(&s.principal, None, 1000).await?;
    let aliases = match s.registry().kms_list_aliases(&s.principal, None).await {
        Ok((_, a)) => a,
        Err(_) => Vec::new(),
    };
    let options = keys
        .iter()
        .filter(|k| k.doc.key_usage == "ENCRYPT_DECRYPT" && k.doc.state == berth_core::kms::KeyState::Enabled)
        .filter(|k| k.doc.manager == berth_core::kms::KeyManager::Customer)
        .map(|k| {
            let names: Vec<&str> = aliases.iter().filter(|a| a.key_id == k.key_id).map(|a| a.alias.as_str()).collect();
            let label = match (names.is_empty(), k.doc.description.is_empty()) {
                (false, _) => format!("{} ({})", names.join(", "), k.key_id),
                (true, false) => format!("{} ({})", k.doc.description, k.key_id),
                (true, true) => k.key_id.clone(),
            };
            (k.arn().to_string(), label)
        })
        .collect();
    Ok(Some(options))
}

/// The encryption type choice and its KMS key (a select of the account's keys, or an ARN field
/// when the person may not list keys).
pub fn encryption_fields(encryption: &str, kms_key: &str, keys: Option<&[(String, String)]>, error: Option<&str>) -> Markup {
    let encryption = if encryption.is_empty() { "AES256" } else { encryption };
    html! {
        fieldset.field data-invalid=[error.map(|_| "true")] {
            legend { "Encryption type" }
            @for (value, label, help) in [
                ("AES256", "AES-256", "ECR's default: keys the registry manages."),
                ("KMS", "AWS KMS", "A KMS key of this account (berth's key service), checked to exist and be enabled."),
                ("KMS_DSSE", "AWS KMS, dual-layer (DSSE)", "Two layers under a KMS key, as ECR's dual-layer encryption."),
            ] {
                @let id = format!("enc-{}", value.to_ascii_lowercase());
                div.choice {
                    input type="radio" name="encryption" id=(id) value=(value) checked[encryption == value];
                    label for=(id) { (label) }
                    p.help { (help) }
                }
            }
            div.field data-show-for="KMS KMS_DSSE" data-show-from="encryption" {
                @match keys {
                    Some(options) => {
                        label for="kms_key" { "KMS key" }
                        select #kms_key name="kms_key" {
                            option value="" selected[kms_key.is_empty()] { "AWS managed key (alias/aws/ecr)" }
                            @for (arn, label) in options {
                                option value=(arn) selected[kms_key == arn] { (label) }
                            }
                            // A key the list does not offer (disabled since, or another account's) stays chosen.
                            @if !kms_key.is_empty() && !options.iter().any(|(arn, _)| arn == kms_key) {
                                option value=(kms_key) selected { (kms_key) }
                            }
                        }
                        p.help { "Keys are managed on the " a href="/console/keys" { "Keys" } " page." }
                    }
                    None => {
                        label for="kms_key" { "KMS key ARN " span.muted { "(optional: the AWS managed alias/aws/ecr when empty)" } }
                        input #kms_key name="kms_key" value=(kms_key) spellcheck="false" autocapitalize="off"
                            placeholder="arn:aws:kms:region:account:key/id";
                    }
                }
            }
            @if let Some(e) = error { p.error-text role="alert" { (e) } }
        }
    }
}

/// Key/value rows for resource tags (at least three, more with "Add tag").
pub fn tag_rows(tags: &[(String, String)]) -> Markup {
    let mut tags = tags.to_vec();
    while tags.len() < 3 {
        tags.push(Default::default());
    }
    html! {
        div #tag-rows {
            @for (i, (k, v)) in tags.iter().enumerate() {
                div.tag-row {
                    div.field {
                        label for={"tag-key-" (i)} { "Key" }
                        input id={"tag-key-" (i)} name="tag_key" value=(k) maxlength="128";
                    }
                    div.field {
                        label for={"tag-value-" (i)} { "Value" }
                        input id={"tag-value-" (i)} name="tag_value" value=(v) maxlength="256";
                    }
                }
            }
        }
        button.btn.btn-quiet type="button" data-add-row="tag-rows" hidden { "Add tag" }
    }
}

/// The tag rows of a posted form, rows left blank dropped.
pub fn form_tags(f: &crate::web::FormData) -> Vec<(String, String)> {
    f.all("tag_key")
        .into_iter()
        .zip(f.all("tag_value").into_iter().chain(std::iter::repeat("")))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() || !v.is_empty())
        .collect()
}

fn create_form(s: &Session, f: &CreateForm, keys: Option<&[(String, String)]>) -> Markup {
    let err = |field: Field| f.error.as_ref().filter(|(w, _)| *w == field).map(|(_, m)| m.as_str());
    let prefix = s.uri_prefix();
    let encryption = if f.encryption.is_empty() { "AES256" } else { f.encryption.as_str() };
    html! {
        h1 { "Create repository" }
        @if let Some((_, m)) = &f.error { (view::alert(m)) }
        form.card.form-wide method="post" action="/console/repositories" {
            (view::csrf(s))
            section.form-section aria-labelledby="general-h" {
                h2 #general-h { "General settings" }
                div.field data-invalid=[err(Field::Name).map(|_| "true")] {
                    label for="name" { "Repository name" }
                    div.prefixed {
                        span.prefix aria-hidden="true" { (prefix) }
                        input #name name="name" required minlength="2" maxlength="256" pattern=(NAME_PATTERN)
                            value=(f.name) spellcheck="false" autocapitalize="off" autocomplete="off" autofocus
                            placeholder="team/app" aria-describedby="name-help name-error"
                            data-invalid-message={"The repository name " (NAME_RULE) "."};
                    }
                    p.help #name-help { "The name " (NAME_RULE) ", e.g. " code { "team/app" } "." }
                    p.error-text #name-error role="alert" { @if let Some(e) = err(Field::Name) { (e) } }
                }
                (mutability_fields(&f.mutability, &f.filters, err(Field::Mutability)))
            }
            section.form-section aria-labelledby="scan-h" {
                h2 #scan-h { "Image scan settings" }
                div.choice {
                    input #scan_on_push type="checkbox" name="scan_on_push" value="on" checked[f.scan_on_push] aria-describedby="scan-help";
                    label for="scan_on_push" { "Scan on push" }
                    p.help #scan-help { "Scan each image for known vulnerabilities after it is pushed." }
                }
            }
            section.form-section aria-labelledby="enc-h" {
                h2 #enc-h { "Encryption settings" }
                (encryption_fields(encryption, &f.kms_key, keys, err(Field::Encryption)))
                p.help { "The encryption settings cannot be changed after the repository is created." }
                p.help #enc-at-rest { "Every layer is stored encrypted: AES256 under a key berth manages, KMS under the chosen key "
                    "(disabling it stops pushes and pulls of this repository until it is enabled again), KMS_DSSE in two layers." }
            }
            section.form-section aria-labelledby="tags-h" {
                h2 #tags-h { "Tags " span.muted { "(optional)" } }
                @if let Some(e) = err(Field::Tags) { p.error-text role="alert" { (e) } }
                (tag_rows(&f.tags))
            }
            div.form-actions {
                a.btn href="/console/repositories" { "Cancel" }
                button.btn.btn-primary type="submit" { "Create repository" }
            }
        }
    }
}

pub async fn new_form(s: Session) -> PageResult {
    // Offered to whom the list offers it; the create itself authorizes the name.
    s.allow("ecr:CreateRepository", Resource::AllRepositories(&s.registry)).await?;
    let keys = key_options(&s).await?;
    let body = create_form(&s, &CreateForm::default(), keys.as_deref());
    Ok(view::render(
        &s,
        Page { title: "Create repository", nav: Nav::Repositories, crumbs: crumbs("Create repository"), notice: None, body },
    )
    .await)
}

fn crumbs(last: &str) -> Vec<(String, Option<String>)> {
    vec![("Repositories".into(), Some("/console/repositories".into())), (last.into(), None)]
}

fn field_of(e: &RegistryError) -> Field {
    match e {
        RegistryError::NameInvalid(_) | RegistryError::RepositoryExists(_) => Field::Name,
        RegistryError::TooManyTags(_) | RegistryError::InvalidTagParameter(_) => Field::Tags,
        RegistryError::Kms { .. } => Field::Encryption,
        RegistryError::InvalidParameter(i) => match i.param {
            Some(Param::EncryptionType | Param::KmsKey) => Field::Encryption,
            Some(
                Param::ImageTagMutability
                | Param::ExclusionFilterCount
                | Param::ExclusionFiltersUnexpected
                | Param::ExclusionFilterType
                | Param::ExclusionFilter(_),
            ) => Field::Mutability,
            None => Field::General,
        },
        _ => Field::General,
    }
}

async fn create_repository(s: &Session, name: &str, req: NewRepository) -> Result<Repo, RegistryError> {
    let repo = s.repo(name)?;
    s.registry().create_repository_as(&s.principal, &repo, req).await?;
    Ok(repo)
}

pub async fn create(post: Post) -> Result<Response, Fail> {
    let (s, f) = (&post.session, &post.form);
    let tags = form_tags(f);
    let filters = exclusion_filters(f);
    let encryption = f.text("encryption");
    let kms_key = f.text("kms_key");
    let req = NewRepository {
        tag_mutability: Some(f.text("mutability")).filter(|m| !m.is_empty()),
        exclusion_filters: filters.clone(),
        scan_on_push: f.checked("scan_on_push"),
        encryption_type: Some(encryption.clone()).filter(|e| !e.is_empty()),
        kms_key: Some(kms_key.clone()).filter(|k| !k.is_empty()),
        tags: tags.clone(),
    };
    let name = f.text("name");
    let params = serde_json::json!({
        "repositoryName": name,
        "imageTagMutability": f.text("mutability"),
        "imageScanningConfiguration": { "scanOnPush": f.checked("scan_on_push") },
        "encryptionConfiguration": { "encryptionType": encryption, "kmsKey": kms_key },
    });
    match s.repo(&name) {
        Ok(repo) => s.audit("ecr:CreateRepository", &Resource::Repository(&repo), params),
        Err(_) => s.audit("ecr:CreateRepository", &Resource::Registry(&s.registry), params),
    }
    match create_repository(s, &name, req).await {
        Ok(repo) => Ok(see_other(&format!("/console/repo/{}/-/push?done=created", repo.name))),
        Err(e) => {
            let status = crate::web::status_of(&e);
            if status == http::StatusCode::INTERNAL_SERVER_ERROR {
                return Err(e.into());
            }
            let form = CreateForm {
                name,
                mutability: f.text("mutability"),
                filters: filters.into_iter().map(|x| x.filter).collect(),
                scan_on_push: f.checked("scan_on_push"),
                encryption,
                kms_key,
                tags,
                error: Some((field_of(&e), crate::web::message_of(&e))),
            };
            let keys = key_options(s).await?;
            let body = create_form(s, &form, keys.as_deref());
            let page = Page { title: "Create repository", nav: Nav::Repositories, crumbs: crumbs("Create repository"), notice: None, body };
            let mut resp = view::render(s, page).await;
            *resp.status_mut() = status;
            Ok(crate::web::refused_page(resp, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_bounds() {
        let b = before_prefix("team/").unwrap();
        assert!(b.as_str() < "team/" && b.as_str() < "team/app");
        assert!(b.as_str() > "team.zzz" && b.as_str() > "team.");
        assert!(before_prefix("").is_none());
        assert!(matches("team/app", "app", false) && !matches("team/app", "app", true));
    }
}
