//! Replication on the registry settings page: the replication rules (DescribeRegistry's
//! configuration), each with its destinations and repository filters, changed one step at a time
//! (add or remove a rule, a destination, a filter), each step a PutReplicationConfiguration of
//! the whole configuration; and an image's replication status (DescribeImageReplicationStatus).
//!
//! A step names rules and entries by position, so every form carries the version of the
//! configuration it was drawn from: a step against a configuration changed since (by another
//! person, or the API) is refused rather than applied to the wrong rule.

use berth_core::auth::Resource;
use berth_core::replication::{ReplicationConfiguration, ReplicationDestination, ReplicationRule, RepositoryFilter};
use berth_core::{Digest, RegistryError, Repo};
use maud::{html, Markup};

use crate::confirm::{self, Confirm};
use crate::creation_templates::SETTINGS;
use crate::view::{self, Nav, Page};
use crate::web::{see_other, Fail, PageResult, Post, Session};

const ACTIONS: &str = "/console/registry/replication";
/// ECR's only repository filter type.
const PREFIX_MATCH: &str = "PREFIX_MATCH";

/// Which form a refusal belongs to, and what was typed in it.
pub struct Rejected {
    pub message: String,
    /// `rule` (the new rule form), `destination` or `filter` (of rule `rule`), `remove`.
    form: String,
    rule: usize,
    region: String,
    registry_id: String,
    filter: String,
}

/// A short fingerprint of the configuration a form was drawn from.
pub(crate) fn version(c: &ReplicationConfiguration) -> String {
    let json = serde_json::to_string(c).unwrap_or_default();
    Digest::sha256_of(json.as_bytes()).hex()[..16].to_string()
}

/// The replication section of the registry settings page.
pub async fn section(s: &Session, rejected: Option<&Rejected>) -> Result<Markup, Fail> {
    let reg = || Resource::Registry(&s.registry);
    if !s.may("ecr:DescribeRegistry", reg()).await? {
        return Ok(html! {
            section.card aria-labelledby="replication-h" #replication {
                h2 #replication-h { "Replication" }
                p.muted { "You may not read this registry's replication configuration (ecr:DescribeRegistry)." }
            }
        });
    }
    let may_put = s.may("ecr:PutReplicationConfiguration", reg()).await?;
    let config = s.registry().replication_configuration(&s.registry).await?;
    let v = version(&config);
    let typed = |form: &str, rule: usize| rejected.filter(|r| r.form == form && r.rule == rule);
    let error = |form: &str, rule: usize| typed(form, rule).map(|r| html! { p.error-text role="alert" { (r.message) } });
    Ok(html! {
        section.card aria-labelledby="replication-h" #replication {
            h2 #replication-h { "Replication" }
            p.help { "Images pushed to a repository that a rule's filters match are copied, with their tags, to each of the rule's "
                "destinations: another region, another account's registry, or a remote registry. A rule without filters matches every "
                "repository. Changes apply to images pushed from then on." }
            @if let Some(r) = rejected.filter(|r| r.form == "remove") { p.error-text role="alert" { (r.message) } }
            h3 { "Replication rules" }
            @if config.rules.is_empty() {
                (view::empty("No replication rules", html! { p { "Images stay in this registry only." } }))
            }
            @for (i, rule) in config.rules.iter().enumerate() {
                div.card.rule data-rule=(i + 1) {
                    div.section-head {
                        h4 { "Rule " (i + 1) }
                        @if may_put { (remove_button(s, &v, "rule", i, 0, &format!("rule {}", i + 1))) }
                    }
                    (destinations_table(s, &v, i, rule, may_put))
                    @if may_put { (destination_form(s, &v, i, typed("destination", i))) }
                    @if let Some(e) = error("destination", i) { (e) }
                    (filters_table(s, &v, i, rule, may_put))
                    @if may_put { (filter_form(s, &v, i, typed("filter", i))) }
                    @if let Some(e) = error("filter", i) { (e) }
                }
            }
            @if may_put { (rule_form(s, &v, typed("rule", 0))) }
        }
    })
}

fn remove_button(s: &Session, v: &str, kind: &str, rule: usize, index: usize, what: &str) -> Markup {
    html! {
        form.inline method="post" action={(ACTIONS) "/remove"} {
            (view::csrf(s))
            input type="hidden" name="version" value=(v);
            input type="hidden" name="kind" value=(kind);
            input type="hidden" name="rule" value=(rule);
            input type="hidden" name="index" value=(index);
            button.btn.btn-danger-quiet.btn-small type="submit" { "Remove" span.sr-only { " " (what) } }
        }
    }
}

fn destinations_table(s: &Session, v: &str, i: usize, rule: &ReplicationRule, may_put: bool) -> Markup {
    html! {
        div.table-wrap {
            table.data.destinations {
                caption { "Destinations" }
                thead { tr { th scope="col" { "Destination region" } th scope="col" { "Destination registry ID" } @if may_put { th scope="col" { span.sr-only { "Actions" } } } } }
                tbody {
                    @for (j, d) in rule.destinations.iter().enumerate() {
                        tr data-destination={(d.region) "/" (d.registry_id)} {
                            td { code { (d.region) } }
                            td { code { (d.registry_id) } @if d.registry_id == s.registry.account { span.muted { " (this account)" } } }
                            @if may_put { td.actions { (remove_button(s, v, "destination", i, j, &format!("destination {} {}", d.region, d.registry_id))) } }
                        }
                    }
                }
            }
        }
    }
}

fn filters_table(s: &Session, v: &str, i: usize, rule: &ReplicationRule, may_put: bool) -> Markup {
    html! {
        @if rule.repository_filters.is_empty() {
            p.muted.filters-none { "Repository filters: none — every repository's images are replicated." }
        } @else {
            div.table-wrap {
                table.data.filters {
                    caption { "Repository filters" }
                    thead { tr { th scope="col" { "Filter" } th scope="col" { "Filter type" } @if may_put { th scope="col" { span.sr-only { "Actions" } } } } }
                    tbody {
                        @for (j, f) in rule.repository_filters.iter().enumerate() {
                            tr data-filter=(f.filter) {
                                td { code { (f.filter) } }
                                td { code { (f.filter_type) } }
                                @if may_put { td.actions { (remove_button(s, v, "filter", i, j, &format!("filter {}", f.filter))) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn hidden(s: &Session, v: &str, rule: usize) -> Markup {
    html! {
        (view::csrf(s))
        input type="hidden" name="version" value=(v);
        input type="hidden" name="rule" value=(rule);
    }
}

fn destination_fields(s: &Session, id: &str, typed: Option<&Rejected>) -> Markup {
    let region = typed.map(|r| r.region.as_str()).unwrap_or("");
    let registry_id = typed.map(|r| r.registry_id.as_str()).unwrap_or(&s.registry.account);
    html! {
        div.field {
            label for={(id) "-region"} { "Destination region" }
            input id={(id) "-region"} name="region" required maxlength="25" value=(region) placeholder="us-west-2" spellcheck="false" autocapitalize="off";
        }
        div.field {
            label for={(id) "-registry"} { "Destination registry ID" }
            input id={(id) "-registry"} name="registry_id" required pattern="[0-9]{12}" maxlength="12" value=(registry_id)
                inputmode="numeric" data-invalid-message="A registry ID is a 12-digit account ID.";
        }
    }
}

fn destination_form(s: &Session, v: &str, i: usize, typed: Option<&Rejected>) -> Markup {
    html! {
        form.tag-add method="post" action={(ACTIONS) "/destination"} {
            (hidden(s, v, i))
            div.tag-row {
                (destination_fields(s, &format!("dest-{i}"), typed))
                div.field.actions-end { button.btn type="submit" { "Add destination" span.sr-only { " to rule " (i + 1) } } }
            }
        }
    }
}

fn filter_field(id: &str, typed: Option<&Rejected>, required: bool) -> Markup {
    html! {
        div.field {
            label for=(id) { "Repository filter (" code { (PREFIX_MATCH) } ")" @if !required { span.muted { " (optional)" } } }
            input id=(id) name="filter" required[required] minlength="2" maxlength="256" value=(typed.map(|r| r.filter.as_str()).unwrap_or(""))
                placeholder="prod/" spellcheck="false" autocapitalize="off";
        }
    }
}

fn filter_form(s: &Session, v: &str, i: usize, typed: Option<&Rejected>) -> Markup {
    html! {
        form.tag-add method="post" action={(ACTIONS) "/filter"} {
            (hidden(s, v, i))
            div.tag-row {
                (filter_field(&format!("filter-{i}"), typed, true))
                div.field.actions-end { button.btn type="submit" { "Add filter" span.sr-only { " to rule " (i + 1) } } }
            }
        }
    }
}

fn rule_form(s: &Session, v: &str, typed: Option<&Rejected>) -> Markup {
    html! {
        form.card #add-rule method="post" action={(ACTIONS) "/rule"} {
            h4 { "Add rule" }
            (hidden(s, v, 0))
            div.tag-row { (destination_fields(s, "new-rule", typed)) }
            (filter_field("new-rule-filter", typed, false))
            p.help { "A repository filter is a repository name prefix; more destinations and filters can be added to the rule afterwards." }
            @if let Some(r) = typed { p.error-text role="alert" { (r.message) } }
            div.form-actions { button.btn.btn-primary type="submit" { "Add rule" } }
        }
    }
}

// ---- changes ----

/// What a posted step names: the rule (0-based), the entry, what was typed.
struct Step {
    form: String,
    rule: usize,
    index: usize,
    region: String,
    registry_id: String,
    filter: String,
}

impl Step {
    fn of(post: &Post, form: &str) -> Step {
        let f = &post.form;
        Step {
            form: form.to_string(),
            rule: f.text("rule").parse().unwrap_or(usize::MAX),
            index: f.text("index").parse().unwrap_or(usize::MAX),
            region: f.text("region"),
            registry_id: f.text("registry_id"),
            filter: f.text("filter"),
        }
    }

    fn destination(&self) -> ReplicationDestination {
        ReplicationDestination { region: self.region.clone(), registry_id: self.registry_id.clone() }
    }

    fn filter(&self) -> RepositoryFilter {
        RepositoryFilter { filter: self.filter.clone(), filter_type: PREFIX_MATCH.into() }
    }

    fn rejected(self, message: String) -> Rejected {
        Rejected { message, form: self.form, rule: self.rule, region: self.region, registry_id: self.registry_id, filter: self.filter }
    }
}

fn stale() -> RegistryError {
    RegistryError::invalid(
        "The replication configuration changed since this page was loaded (another change was saved); reload the page and try again.",
    )
}

/// The stored configuration, if it is the one the form was drawn from.
async fn current(post: &Post) -> Result<ReplicationConfiguration, Fail> {
    let s = &post.session;
    s.allow("ecr:PutReplicationConfiguration", Resource::Registry(&s.registry)).await?;
    let config = s.registry().replication_configuration(&s.registry).await?;
    Ok(config)
}

/// Applies `edit` to the configuration the form was drawn from and puts the result; a refusal
/// (the service's, or a stale form) is shown in the form's place.
async fn change(post: Post, step: Step, edit: impl FnOnce(&mut ReplicationConfiguration, &Step) -> bool, done: &str) -> PageResult {
    let s = &post.session;
    let mut config = current(&post).await?;
    if post.form.text("version") != version(&config) {
        return refused(s, stale(), step).await;
    }
    if !edit(&mut config, &step) {
        return Err(Fail::bad_request("There is no such replication rule or entry; reload the page and try again."));
    }
    let params = serde_json::to_value(&config).map(|c| serde_json::json!({ "replicationConfiguration": c })).unwrap_or_default();
    s.audit("ecr:PutReplicationConfiguration", &Resource::Registry(&s.registry), params);
    match s.registry().put_replication_configuration(&s.registry, config).await {
        Ok(_) => Ok(see_other(&format!("{SETTINGS}?done={done}#replication"))),
        Err(e) => refused(s, e, step).await,
    }
}

async fn refused(s: &Session, e: RegistryError, step: Step) -> PageResult {
    let status = crate::web::status_of(&e);
    if status.is_server_error() {
        return Err(e.into());
    }
    let r = step.rejected(crate::web::message_of(&e));
    let mut resp = crate::registry_settings::render_with_replication_refusal(s, r).await?;
    *resp.status_mut() = status;
    Ok(crate::web::refused_page(resp, e))
}

pub async fn add_rule(post: Post) -> PageResult {
    let step = Step::of(&post, "rule");
    let edit = |c: &mut ReplicationConfiguration, st: &Step| {
        let filters = if st.filter.is_empty() { Vec::new() } else { vec![st.filter()] };
        c.rules.push(ReplicationRule { destinations: vec![st.destination()], repository_filters: filters });
        true
    };
    change(post, step, edit, "replication-rule-added").await
}

/// Changes rule `st.rule` with `f`; false when there is no such rule.
fn in_rule(c: &mut ReplicationConfiguration, st: &Step, f: impl FnOnce(&mut ReplicationRule, &Step)) -> bool {
    c.rules.get_mut(st.rule).map(|rule| f(rule, st)).is_some()
}

pub async fn add_destination(post: Post) -> PageResult {
    let step = Step::of(&post, "destination");
    let edit = |c: &mut ReplicationConfiguration, st: &Step| in_rule(c, st, |r, st| r.destinations.push(st.destination()));
    change(post, step, edit, "replication-saved").await
}

pub async fn add_filter(post: Post) -> PageResult {
    let step = Step::of(&post, "filter");
    let edit = |c: &mut ReplicationConfiguration, st: &Step| in_rule(c, st, |r, st| r.repository_filters.push(st.filter()));
    change(post, step, edit, "replication-saved").await
}

/// Removes a rule, a destination or a filter, after the confirmation page.
pub async fn remove(post: Post) -> PageResult {
    let kind = post.form.text("kind");
    let step = Step::of(&post, "remove");
    if !confirm::confirmed(&post) {
        let config = current(&post).await?;
        let Some(lost) = removal(&config, &kind, step.rule, step.index) else {
            return Err(Fail::bad_request("There is no such replication rule or entry; reload the page and try again."));
        };
        let s = &post.session;
        let heading = match kind.as_str() {
            "rule" => format!("Remove replication rule {}?", step.rule + 1),
            "destination" => format!("Remove the destination from rule {}?", step.rule + 1),
            _ => format!("Remove the repository filter from rule {}?", step.rule + 1),
        };
        let fields = ["version", "kind", "rule", "index"].into_iter().map(|k| (k, post.form.text(k))).collect();
        let c = Confirm { heading: &heading, lost, action: &format!("{ACTIONS}/remove"), fields, cancel: SETTINGS, button: "Remove" };
        let body = confirm::section(s, &c);
        let crumbs = vec![("Registry settings".to_string(), Some(SETTINGS.to_string())), (heading.clone(), None)];
        return Ok(view::render(s, Page { title: &heading, nav: Nav::Settings, crumbs, notice: None, body }).await);
    }
    let edit = move |c: &mut ReplicationConfiguration, st: &Step| {
        if st.rule >= c.rules.len() {
            return false;
        }
        match kind.as_str() {
            "rule" => {
                c.rules.remove(st.rule);
                true
            }
            "destination" => remove_at(&mut c.rules[st.rule].destinations, st.index),
            "filter" => remove_at(&mut c.rules[st.rule].repository_filters, st.index),
            _ => false,
        }
    };
    change(post, step, edit, "replication-saved").await
}

fn remove_at<T>(v: &mut Vec<T>, i: usize) -> bool {
    if i >= v.len() {
        return false;
    }
    v.remove(i);
    true
}

/// What removing `kind` at (`rule`, `index`) loses, in words; None when there is no such entry.
fn removal(config: &ReplicationConfiguration, kind: &str, rule: usize, index: usize) -> Option<Markup> {
    let r = config.rules.get(rule)?;
    let from_now = "Images pushed from now on are no longer copied there; copies already made stay.";
    Some(match kind {
        "rule" => html! {
            p { "Rule " (rule + 1) " copies images to "
                @for (i, d) in r.destinations.iter().enumerate() { @if i > 0 { ", " } code { (d.region) " / " (d.registry_id) } } "." }
            p { (from_now) }
        },
        "destination" => {
            let d = r.destinations.get(index)?;
            html! {
                p { "Rule " (rule + 1) " will no longer copy images to " code { (d.region) " / " (d.registry_id) } "." }
                p { (from_now) }
            }
        }
        "filter" => {
            let f = r.repository_filters.get(index)?;
            html! {
                p { "Rule " (rule + 1) " will no longer match repositories starting with " code { (f.filter) } "."
                    @if r.repository_filters.len() == 1 { " Without filters, the rule matches " strong { "every repository" } "." } }
            }
        }
        _ => return None,
    })
}

// ---- an image's replication status ----

/// The image page's "Replication status": per destination, status and failure code.
pub async fn image_section(s: &Session, repo: &Repo, digest: &Digest) -> Result<Markup, Fail> {
    if !s.may("ecr:DescribeImageReplicationStatus", Resource::Repository(repo)).await? {
        return Ok(html! {});
    }
    let statuses = s.registry().image_replication_statuses(repo, digest).await?;
    Ok(html! {
        section.card aria-labelledby="replication-status-h" #replication-status {
            h2 #replication-status-h { "Replication status" }
            @if statuses.is_empty() {
                p.muted { "Not replicated: no replication rule matched this repository when the image was pushed." }
            } @else {
                div.table-wrap {
                    table.data #replication-statuses {
                        thead { tr { th scope="col" { "Destination region" } th scope="col" { "Destination registry ID" } th scope="col" { "Status" } th scope="col" { "Failure code" } } }
                        tbody {
                            @for st in &statuses {
                                tr data-destination={(st.region) "/" (st.registry_id)} data-status=(st.status) {
                                    td { code { (st.region) } }
                                    td { code { (st.registry_id) } }
                                    td { @match st.status.as_str() {
                                        "COMPLETE" => { (view::badge("Complete", "ok")) }
                                        "FAILED" => { (view::badge("Failed", "bad")) }
                                        _ => { (view::badge("In progress", "neutral")) }
                                    } }
                                    td { @match &st.failure_code { Some(c) => { code.wrap { (c) } } None => { span.muted { "—" } } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}
