//! OSV records, severity rating, and OSV range evaluation.
//!
//! The records are read with lenient serde structs rather than the `osv` crate: its schema
//! types use closed enums (ecosystem, reference type, credit type, range type), so a single
//! entry with a value added to the schema after the crate's release (a new ecosystem such as
//! `Azure Linux`, a new credit type) fails the whole advisory, and OSV adds those regularly.
//! Here unknown values are just strings, and only the fields the matcher needs are kept.

use std::cmp::Ordering;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::version::{Scheme, Ver};
use crate::Severity;

fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
pub(crate) struct Record {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub summary: String,
    #[serde(default, deserialize_with = "nullable")]
    pub details: String,
    #[serde(default, deserialize_with = "nullable")]
    pub aliases: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub upstream: Vec<String>,
    #[serde(default)]
    pub withdrawn: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub severity: Vec<SeverityEntry>,
    #[serde(default, deserialize_with = "nullable")]
    pub affected: Vec<Affected>,
    #[serde(default, deserialize_with = "nullable")]
    pub references: Vec<Reference>,
    #[serde(default)]
    pub database_specific: Option<Value>,
}

#[derive(Deserialize)]
pub(crate) struct SeverityEntry {
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub score: String,
}

#[derive(Deserialize)]
pub(crate) struct Affected {
    #[serde(default)]
    pub package: Option<PackageRef>,
    #[serde(default, deserialize_with = "nullable")]
    pub severity: Vec<SeverityEntry>,
    #[serde(default, deserialize_with = "nullable")]
    pub ranges: Vec<Range>,
    #[serde(default, deserialize_with = "nullable")]
    pub versions: Vec<String>,
    #[serde(default)]
    pub ecosystem_specific: Option<Value>,
    #[serde(default)]
    pub database_specific: Option<Value>,
}

#[derive(Deserialize)]
pub(crate) struct PackageRef {
    #[serde(default, deserialize_with = "nullable")]
    pub ecosystem: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
}

#[derive(Deserialize)]
pub(crate) struct Range {
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub events: Vec<Event>,
}

#[derive(Deserialize)]
pub(crate) struct Event {
    pub introduced: Option<String>,
    pub fixed: Option<String>,
    pub last_affected: Option<String>,
    pub limit: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Reference {
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub url: String,
}

/// An OSV range event, as stored in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EventKind {
    #[serde(rename = "i")]
    Introduced,
    #[serde(rename = "f")]
    Fixed,
    #[serde(rename = "l")]
    LastAffected,
    #[serde(rename = "x")]
    Limit,
}

impl Event {
    pub fn kind_and_version(&self) -> Option<(EventKind, &str)> {
        if let Some(v) = &self.introduced {
            Some((EventKind::Introduced, v))
        } else if let Some(v) = &self.fixed {
            Some((EventKind::Fixed, v))
        } else if let Some(v) = &self.last_affected {
            Some((EventKind::LastAffected, v))
        } else {
            self.limit.as_deref().map(|v| (EventKind::Limit, v))
        }
    }
}

/// The severity of one affected entry and the CVSS data shown with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rating {
    pub severity: Severity,
    /// (score with one decimal, vector)
    pub cvss3: Option<(String, String)>,
    pub cvss2: Option<(String, String)>,
}

fn cvss3(entries: &[SeverityEntry]) -> Option<(f64, String)> {
    entries.iter().filter(|e| e.kind.eq_ignore_ascii_case("CVSS_V3")).find_map(|e| {
        let vector = e.score.trim();
        cvss::v3::Vector::from_str(vector).ok().map(|v| (v.score().value(), vector.to_string()))
    })
}

fn cvss2(entries: &[SeverityEntry]) -> Option<(f64, String)> {
    entries.iter().filter(|e| e.kind.eq_ignore_ascii_case("CVSS_V2")).find_map(|e| {
        let vector = e.score.trim().trim_start_matches('(').trim_end_matches(')');
        let vector = vector.strip_prefix("CVSS:2.0/").unwrap_or(vector);
        cvss::v2::Vector::from_str(vector).ok().map(|v| (v.score().value(), vector.to_string()))
    })
}

fn cvss4(entries: &[SeverityEntry]) -> Option<f64> {
    entries
        .iter()
        .filter(|e| e.kind.eq_ignore_ascii_case("CVSS_V4"))
        .find_map(|e| cvss::v4::Vector::from_str(e.score.trim()).ok().map(|v| v.score().value()))
}

/// Maps a distribution's or database's severity word: Debian urgencies (`unimportant`, `low`,
/// `medium`, `high`, with or without `**`), Ubuntu priorities (`negligible` … `critical`),
/// GHSA (`LOW`, `MODERATE`, `HIGH`, `CRITICAL`), Red Hat style `important`.
pub(crate) fn severity_from_text(s: &str) -> Option<Severity> {
    let s = s.trim().trim_end_matches('*').trim().to_ascii_lowercase();
    Some(match s.as_str() {
        "critical" => Severity::Critical,
        "high" | "important" => Severity::High,
        "moderate" | "medium" => Severity::Medium,
        "low" | "minor" => Severity::Low,
        "negligible" | "unimportant" | "informational" | "info" | "none" => Severity::Informational,
        _ => return None,
    })
}

fn text_field(v: Option<&Value>, key: &str) -> Option<Severity> {
    v?.get(key)?.as_str().and_then(severity_from_text)
}

fn text_entry(entries: &[SeverityEntry]) -> Option<Severity> {
    entries.iter().filter(|e| e.kind.eq_ignore_ascii_case("Ubuntu")).find_map(|e| severity_from_text(&e.score))
}

fn v2_band(score: f64) -> Severity {
    if score >= 7.0 {
        Severity::High
    } else if score >= 4.0 {
        Severity::Medium
    } else if score > 0.0 {
        Severity::Low
    } else {
        Severity::Informational
    }
}

/// Rates an affected entry: a CVSS v3 base score (affected-level first, then record-level),
/// else the severity words OSV sources put in `ecosystem_specific` / `database_specific` /
/// Ubuntu severity entries, else a CVSS v4 or v2 score, else UNDEFINED.
pub(crate) fn rate(record: &Record, affected: &Affected) -> Rating {
    let c3 = cvss3(&affected.severity).or_else(|| cvss3(&record.severity));
    let c2 = cvss2(&affected.severity).or_else(|| cvss2(&record.severity));
    let severity = if let Some((score, _)) = &c3 {
        Severity::from_cvss_score(*score)
    } else if let Some(s) = text_field(affected.ecosystem_specific.as_ref(), "severity")
        .or_else(|| text_field(affected.database_specific.as_ref(), "severity"))
        .or_else(|| text_field(affected.ecosystem_specific.as_ref(), "urgency"))
        .or_else(|| text_entry(&affected.severity))
        .or_else(|| text_entry(&record.severity))
        .or_else(|| text_field(record.database_specific.as_ref(), "severity"))
    {
        s
    } else if let Some(score) = cvss4(&affected.severity).or_else(|| cvss4(&record.severity)) {
        Severity::from_cvss_score(score)
    } else if let Some((score, _)) = &c2 {
        v2_band(*score)
    } else {
        Severity::Undefined
    };
    Rating { severity, cvss3: c3.map(|(s, v)| (format!("{s:.1}"), v)), cvss2: c2.map(|(s, v)| (format!("{s:.1}"), v)) }
}

fn is_cve(s: &str) -> bool {
    s.len() > 9 && s.starts_with("CVE-") && s[4..].bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

/// The CVE the record is about: an alias, an upstream id, or one embedded in the id
/// (`DEBIAN-CVE-2023-5678`, `UBUNTU-CVE-…`); else the OSV id.
pub(crate) fn display_name(record: &Record) -> String {
    if is_cve(&record.id) {
        return record.id.clone();
    }
    if let Some(c) = record.aliases.iter().chain(&record.upstream).find(|a| is_cve(a)) {
        return c.clone();
    }
    if let Some(i) = record.id.find("CVE-") {
        if is_cve(&record.id[i..]) {
            return record.id[i..].to_string();
        }
    }
    record.id.clone()
}

/// The advisory link: the record's ADVISORY reference, else its osv.dev page.
pub(crate) fn uri(record: &Record) -> String {
    record
        .references
        .iter()
        .find(|r| r.kind.eq_ignore_ascii_case("ADVISORY") && !r.url.is_empty())
        .map(|r| r.url.clone())
        .unwrap_or_else(|| format!("https://osv.dev/vulnerability/{}", record.id))
}

/// Summary, else details, cut to a sane length.
pub(crate) fn description(record: &Record) -> String {
    let text = if record.summary.trim().is_empty() { record.details.trim() } else { record.summary.trim() };
    const MAX: usize = 2000;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Normalises an OSV ecosystem name for lookup. osv.dev spells Ubuntu LTS releases
/// `Ubuntu:22.04:LTS` (and `Ubuntu:Pro:18.04:LTS` for ESM); the `:LTS` marker is dropped so that
/// an image's `VERSION_ID` is enough to find them. Pro/FIPS streams keep their prefix and so
/// never match a plain Ubuntu image.
pub(crate) fn normalize_ecosystem(eco: &str) -> String {
    let eco = eco.trim();
    if eco.starts_with("Ubuntu:") {
        return eco.split(':').filter(|p| *p != "LTS").collect::<Vec<_>>().join(":");
    }
    eco.to_string()
}

/// Normalises a package name for lookup in `ecosystem` (PyPI names are PEP 503-normalised).
pub(crate) fn normalize_name(ecosystem: &str, name: &str) -> String {
    if ecosystem == "PyPI" {
        crate::parsers::python::normalize_name(name)
    } else {
        name.trim().to_string()
    }
}

/// The lowest `fixed` version above `version` in a range's events: the upgrade that leaves the
/// range (None: no fix is published for it). Events that do not parse under `scheme` are ignored.
pub(crate) fn fixed_after(scheme: Scheme, version: &Ver, events: &[(EventKind, String)]) -> Option<(Ver, String)> {
    events
        .iter()
        .filter(|(kind, _)| *kind == EventKind::Fixed)
        .filter_map(|(_, raw)| scheme.parse(raw).filter(|v| v > version).map(|v| (v, raw.clone())))
        .min_by(|a, b| a.0.cmp(&b.0))
}

/// Whether `version` falls in the range described by sorted OSV events: the OSV reference
/// algorithm (introduced opens, fixed/limit close at the version, last_affected closes after
/// it). Events whose version does not parse under `scheme` are ignored.
pub(crate) fn range_affects(scheme: Scheme, version: &Ver, events: &[(EventKind, String)]) -> bool {
    let mut evs: Vec<(Option<Ver>, EventKind)> = Vec::with_capacity(events.len());
    for (kind, v) in events {
        if *kind == EventKind::Introduced && v.trim() == "0" {
            evs.push((None, *kind));
        } else if let Some(p) = scheme.parse(v) {
            evs.push((Some(p), *kind));
        }
    }
    evs.sort_by(|a, b| match (&a.0, &b.0) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
    });
    let mut affected = false;
    for (v, kind) in &evs {
        match (kind, v) {
            (EventKind::Introduced, None) => affected = true,
            (EventKind::Introduced, Some(v)) if version >= v => affected = true,
            (EventKind::Fixed | EventKind::Limit, Some(v)) if version >= v => affected = false,
            (EventKind::LastAffected, Some(v)) if version > v => affected = false,
            _ => {}
        }
    }
    affected
}
