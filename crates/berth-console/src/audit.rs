//! Audit: the account's audit trail with LookupEvents' filters (one attribute, a time range),
//! newest first, a page at a time, each record's CloudTrail JSON a click away. Needs
//! `cloudtrail:LookupEvents`, as the API does.

use axum::extract::Query;
use berth_core::audit::{lookup_attribute, LookupRequest, PageToken, ATTRIBUTE_KEYS, MAX_RESULTS};
use berth_core::auth::Resource;
use maud::{html, Markup};
use serde::Deserialize;

use crate::view::{self, Nav, Page};
use crate::web::{PageResult, Session};

const PAGE: &str = "/console/audit";

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    /// `YYYY-MM-DDTHH:MM` (a datetime-local field), UTC.
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    next: Option<String>,
}

pub async fn page(s: Session, Query(q): Query<AuditQuery>) -> PageResult {
    s.allow("cloudtrail:LookupEvents", Resource::Registry(&s.registry)).await?;
    let (request, problem) = request(&q);
    let page = match &problem {
        None => Some(s.registry().lookup_account_audit_events(&s.registry.account, request).await?),
        Some(_) => None,
    };
    let body = html! {
        div.page-head {
            div { h1 { "Audit trail" } p.sub { "Every call made in account " (s.registry.account) ", newest first, as CloudTrail records it (" code { "aws cloudtrail lookup-events" } " shows the same)." } }
        }
        (filters(&q))
        @if let Some(why) = &problem { (view::alert(why)) }
        @if let Some(page) = &page {
            @if page.events.is_empty() {
                (view::empty("No events", html! { "Nothing recorded matches these filters." }))
            } @else {
                div.table-wrap { table.data {
                    thead { tr {
                        th scope="col" { "Event time" } th scope="col" { "Event name" } th scope="col" { "User name" }
                        th scope="col" { "Event source" } th scope="col" { "Resources" } th scope="col" { "Error" }
                    } }
                    tbody { @for row in &page.events { (event_row(row)) } }
                } }
            }
            @if let Some(next) = &page.next_token {
                p { a.btn href=(older_link(&q, next)) { "Older events" } }
            }
        }
    };
    let page = Page { title: "Audit trail", nav: Nav::Settings, crumbs: vec![("Audit trail".into(), None)], notice: None, body };
    Ok(view::render(&s, page).await)
}

/// The lookup the query asks for, or why it cannot be made.
fn request(q: &AuditQuery) -> (LookupRequest, Option<String>) {
    let mut request = LookupRequest { max_results: Some(MAX_RESULTS), ..Default::default() };
    let mut problems = Vec::new();
    if !q.key.is_empty() {
        match lookup_attribute(&q.key, q.value.trim()) {
            Ok(a) => request.attribute = Some(a),
            Err(why) => problems.push(why),
        }
    }
    for (text, slot, what) in [(&q.start, &mut request.start, "start"), (&q.end, &mut request.end, "end")] {
        if text.is_empty() {
            continue;
        }
        match local_minute(text) {
            Some(ms) => *slot = Some(ms),
            None => problems.push(format!("The {what} time must look like 2026-12-06T09:30 (UTC).")),
        }
    }
    if let (Some(a), Some(b)) = (request.start, request.end) {
        if a > b {
            problems.push("The start time is after the end time.".into());
        }
    }
    match q.next.as_deref().map(PageToken::decode) {
        Some(Some(token)) => request.next_token = Some(token),
        Some(None) => problems.push("That page link is not valid any more; start from the newest events.".into()),
        None => {}
    }
    let problem = (!problems.is_empty()).then(|| problems.join(" "));
    (request, problem)
}

/// `YYYY-MM-DDTHH:MM` (UTC) in milliseconds since the epoch.
fn local_minute(text: &str) -> Option<i64> {
    let (date, clock) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i32>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.split(':').map(|p| p.parse::<u8>().ok());
    let (hour, minute) = (c.next()??, c.next()??);
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(u8::try_from(month).ok()?).ok()?, u8::try_from(day).ok()?).ok()?;
    let at = date.with_hms(hour, minute, 0).ok()?.assume_utc();
    Some(at.unix_timestamp() * 1000)
}

fn filters(q: &AuditQuery) -> Markup {
    html! {
        form.card.filters method="get" action=(PAGE) {
            div.field {
                label for="key" { "Lookup attribute" }
                select #key name="key" {
                    option value="" selected[q.key.is_empty()] { "(any event)" }
                    @for k in ATTRIBUTE_KEYS { option value=(k) selected[q.key == k] { (k) } }
                }
            }
            div.field { label for="value" { "Value" } input #value name="value" value=(q.value); }
            div.field { label for="start" { "From (UTC)" } input #start type="datetime-local" name="start" value=(q.start); }
            div.field { label for="end" { "To (UTC)" } input #end type="datetime-local" name="end" value=(q.end); }
            div.form-actions { button.btn.btn-primary type="submit" { "Look up" } }
        }
    }
}

fn event_row(row: &berth_store::AuditEventRow) -> Markup {
    let record: serde_json::Value = serde_json::from_str(&row.event.record).unwrap_or_default();
    let pretty = serde_json::to_string_pretty(&record).unwrap_or_else(|_| row.event.record.clone());
    let error = record.get("errorCode").and_then(|v| v.as_str()).unwrap_or("");
    html! {
        tr data-event-id=(row.event.event_id) {
            td { (view::when(row.event.event_time)) }
            td {
                details {
                    summary { (row.event.event_name) }
                    pre.record { (pretty) }
                }
            }
            td { (row.event.username) }
            td { (row.event.event_source) }
            td { @for (name, kind) in &row.event.resources { span.muted { (kind) } " " (view::breakable(name)) br; } }
            td { @if !error.is_empty() { (view::badge(error, "bad")) } }
        }
    }
}

fn older_link(q: &AuditQuery, next: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("key", &q.key)
        .append_pair("value", &q.value)
        .append_pair("start", &q.start)
        .append_pair("end", &q.end)
        .append_pair("next", next)
        .finish();
    format!("{PAGE}?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_a_lookup_or_say_what_is_wrong() {
        let q = AuditQuery { key: "EventName".into(), value: " PutImage ".into(), start: "2026-12-06T09:30".into(), ..Default::default() };
        let (r, problem) = request(&q);
        assert_eq!(problem, None);
        assert_eq!(r.attribute, Some(berth_store::AuditAttribute::EventName("PutImage".into())));
        assert_eq!(r.start, Some(1_796_549_400_000));
        let q = AuditQuery { key: "ReadOnly".into(), value: "maybe".into(), end: "yesterday".into(), ..Default::default() };
        let problem = request(&q).1.unwrap_or_default();
        assert!(problem.contains("true or false") && problem.contains("end time"), "{problem}");
        let q = AuditQuery { start: "2026-12-06T10:00".into(), end: "2026-12-06T09:00".into(), ..Default::default() };
        assert!(request(&q).1.unwrap_or_default().contains("after the end"));
        let q = AuditQuery { next: Some("forged".into()), ..Default::default() };
        assert!(request(&q).1.is_some());
    }
}
