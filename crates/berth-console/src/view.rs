//! The page shell and the small pieces every page uses (sizes, times, copy buttons, notices).

use axum::response::{Html, IntoResponse, Response};
use berth_core::auth::Resource;
use maud::{html, Markup, DOCTYPE};

use crate::web::Session;

/// Which main navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Repositories,
    Public,
    Registry,
    Settings,
    Keys,
    Webhooks,
    Secrets,
}

/// One page: title, breadcrumbs (label, link), the notice to show, the content.
pub struct Page<'a> {
    pub title: &'a str,
    pub nav: Nav,
    pub crumbs: Vec<(String, Option<String>)>,
    pub notice: Option<String>,
    pub body: Markup,
}

pub(crate) fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · berth" }
            link rel="icon" href="data:,";
            link rel="stylesheet" href=(crate::assets::css_url());
            script src=(crate::assets::js_url()) defer {}
        }
    }
}

/// Renders a page inside the console's shell for a signed-in user.
pub async fn render(s: &Session, page: Page<'_>) -> Response {
    // The frame of every page (error pages too): an outage hides the link rather than the page.
    let registry_link = s.may("ecr:GetRegistryPolicy", Resource::Registry(&s.registry)).await.unwrap_or(false)
        || s.may("ecr:PutRegistryPolicy", Resource::Registry(&s.registry)).await.unwrap_or(false);
    let settings_link = crate::registry_settings::may_view(s).await.unwrap_or(false);
    let keys_link = s.may("kms:ListKeys", Resource::Registry(&s.registry)).await.unwrap_or(false);
    let webhooks_link = s.may("events:ListTargetsByRule", Resource::Registry(&s.registry)).await.unwrap_or(false);
    let secrets_link = crate::secrets::may_view(s).await.unwrap_or(false);
    let current = |n: Nav| if page.nav == n { Some("page") } else { None };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(page.title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    div.top-inner {
                        a.brand href="/console/repositories" { span.logo aria-hidden="true" { "◆" } "berth" }
                        nav.mainnav aria-label="Main" {
                            ul {
                                li { a href="/console/repositories" aria-current=[current(Nav::Repositories)] { "Repositories" } }
                                li { a href="/console/public" aria-current=[current(Nav::Public)] { "Public repositories" } }
                                @if registry_link {
                                    li { a href="/console/registry" aria-current=[current(Nav::Registry)] { "Registry policy" } }
                                }
                                @if settings_link {
                                    li { a href="/console/registry/settings" aria-current=[current(Nav::Settings)] { "Registry settings" } }
                                    li { a href="/console/pull-through" { "Pull through cache" } }
                                }
                                @if keys_link {
                                    li { a href="/console/keys" aria-current=[current(Nav::Keys)] { "Keys" } }
                                }
                                @if webhooks_link {
                                    li { a href="/console/webhooks" aria-current=[current(Nav::Webhooks)] { "Webhooks" } }
                                }
                                @if secrets_link {
                                    li { a href="/console/secrets" aria-current=[current(Nav::Secrets)] { "Secrets" } }
                                }
                            }
                        }
                        div.who {
                            span.who-text {
                                span.who-name title=(s.principal.arn) { (s.user_name()) }
                                span.who-ctx { (s.registry.account) " · " (s.registry.region) }
                            }
                            form method="post" action="/console/signout" {
                                (csrf(s))
                                button.btn.btn-quiet type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    @if !page.crumbs.is_empty() {
                        nav.crumbs aria-label="Breadcrumb" {
                            ol {
                                @for (i, (label, link)) in page.crumbs.iter().enumerate() {
                                    li {
                                        @match link {
                                            Some(href) if i + 1 < page.crumbs.len() => a href=(href) { (label) },
                                            _ => span aria-current="page" { (label) },
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(n) = &page.notice {
                        div.notice.ok role="status" { (n) }
                    }
                    (page.body)
                }
                footer.foot { "berth — a self-hosted, ECR-compatible container registry" }
                div #live .sr-only aria-live="polite" {}
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page for visitors who are not signed in (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    div.top-inner {
                        a.brand href="/console/repositories" { span.logo aria-hidden="true" { "◆" } "berth" }
                    }
                }
                main #main tabindex="-1" { (body) }
                div #live .sr-only aria-live="polite" {}
            }
        }
    }
}

pub fn error_page(title: &str, message: &str) -> Html<String> {
    Html(bare(title, error_body(title, message)).into_string())
}

/// What an error page says, inside the shell or bare.
pub fn error_body(title: &str, message: &str) -> Markup {
    html! {
        section.card.narrow #error {
            h1 { (title) }
            p.error-text role="alert" { (message) }
            p { a.btn href="/console/repositories" { "Back to repositories" } }
        }
    }
}

// ---- pieces ----

pub fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// A table row's destructive button: a one-button form posting `field=value` to `action`
/// (which confirms first). `what` names the row for screen readers.
pub fn remove_button(s: &Session, action: &str, field: (&str, &str), label: &str, what: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(s))
            input type="hidden" name=(field.0) value=(field.1);
            button.btn.btn-danger-quiet.btn-small type="submit" { (label) span.sr-only { " " (what) } }
        }
    }
}

/// Bytes as people read them (binary units), the exact count kept in `data-bytes`.
pub fn size(bytes: u64) -> Markup {
    html! { span.size data-bytes=(bytes) title={(bytes) " bytes"} { (human_size(bytes)) } }
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

/// A time (milliseconds since the epoch) in UTC, machine-readable in `datetime`.
pub fn when(millis: i64) -> Markup {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let iso = t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let shown =
        format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second());
    html! { time datetime=(iso) { (shown) } }
}

pub fn maybe_when(millis: Option<i64>, none: &str) -> Markup {
    match millis {
        Some(m) => when(m),
        None => html! { span.muted { (none) } },
    }
}

/// A copy-to-clipboard button for `text` (shown by the script; the text stays selectable without it).
pub fn copy(text: &str, what: &str) -> Markup {
    html! {
        button.copy type="button" data-copy=(text) hidden { "Copy" span.sr-only { " " (what) } }
    }
}

/// A command line with its copy button.
pub fn command(text: &str, what: &str) -> Markup {
    html! {
        div.cmd {
            pre { code { (text) } }
            (copy(text, what))
        }
    }
}

/// A name that may wrap after each `/` (and nowhere else).
pub fn breakable(name: &str) -> Markup {
    html! {
        @for (i, part) in name.split('/').enumerate() {
            @if i > 0 { "/" wbr; }
            (part)
        }
    }
}

pub fn alert(message: &str) -> Markup {
    html! { div.notice.err role="alert" { (message) } }
}

pub fn empty(title: &str, text: Markup) -> Markup {
    html! {
        div.empty {
            p.empty-title { (title) }
            div.empty-text { (text) }
        }
    }
}

pub fn badge(text: &str, kind: &str) -> Markup {
    html! { span class={"badge badge-" (kind)} { (text) } }
}

/// Severities in the order people read them (ECR's FindingSeverity).
pub const SEVERITIES: [&str; 6] = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"];

pub fn severity_kind(severity: &str) -> &'static str {
    match severity {
        "CRITICAL" | "HIGH" => "bad",
        "MEDIUM" => "warn",
        _ => "neutral",
    }
}

/// An image's scan status (ECR's imageScanStatus, with the findings summary when complete).
pub fn scan_summary(scan: Option<&berth_core::scanning::ImageScan>) -> Markup {
    let Some(scan) = scan else { return html! { span.muted data-scan-status="NONE" { "Not scanned" } } };
    let status = scan.row.status.as_str();
    html! {
        span.scan data-scan-status=(status) title=[scan.row.description.as_deref()] {
            @match status {
                "COMPLETE" => {
                    @let counts = scan.result.as_ref().map(|r| r.severity_counts()).unwrap_or_default();
                    @if counts.values().all(|n| *n == 0) {
                        (badge("No findings", "ok"))
                    } @else {
                        @for sev in SEVERITIES {
                            @if let Some(n) = counts.get(sev).filter(|n| **n > 0) {
                                span class={"badge badge-" (severity_kind(sev))} { (n) " " (sev.to_ascii_lowercase()) } " "
                            }
                        }
                    }
                }
                "IN_PROGRESS" | "PENDING" => { span.muted { "Scanning…" } }
                other => { (badge(&other.replace('_', " ").to_ascii_lowercase(), "warn")) }
            }
        }
    }
}

/// The word for `n` things: English plural rules for the console's counts ("1 day", "2 days").
pub fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `n` and its word: "1 day", "0 images".
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", plural(n, one, many))
}

/// A digest shortened for tables (`sha256:0123abcd…`), the whole one in `title`.
pub fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => match hex.get(..12) {
            Some(head) => format!("{alg}:{head}…"),
            None => d.to_string(),
        },
        _ => d.to_string(),
    }
}

/// JSON text indented for reading, its keys, numbers and escapes exactly as written (a
/// re-serialization would reorder keys and lose the bytes the digest covers). None when the
/// text is not JSON.
pub fn indent_json(raw: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(raw).ok()?;
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = raw.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|n| n.is_ascii_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    // An empty object or array stays on its line.
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// A human label for a referrer's artifact type.
pub fn artifact_label(artifact_type: &str) -> &'static str {
    let t = artifact_type.to_ascii_lowercase();
    if t.contains("cyclonedx") {
        "SBOM (CycloneDX)"
    } else if t.contains("spdx") {
        "SBOM (SPDX)"
    } else if t.contains("signature") || t.contains("cosign") || t.contains("notary") {
        "Signature"
    } else if t.contains("attestation") || t.contains("in-toto") {
        "Attestation"
    } else {
        "Artifact"
    }
}

/// A human label for a manifest media type.
pub fn media_label(media_type: &str) -> &'static str {
    match media_type {
        "application/vnd.oci.image.manifest.v1+json" => "OCI image",
        "application/vnd.oci.image.index.v1+json" => "OCI index",
        "application/vnd.docker.distribution.manifest.v2+json" => "Docker image",
        "application/vnd.docker.distribution.manifest.list.v2+json" => "Docker manifest list",
        "application/vnd.docker.distribution.manifest.v1+json" | "application/vnd.docker.distribution.manifest.v1+prettyjws" => {
            "Docker v1 image"
        }
        _ => "Other",
    }
}

/// The text of a notice code carried on a redirect after a successful change.
pub fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "created" => "Repository created. Push an image to it with the commands below.",
        "images-deleted" => "The selected images were deleted.",
        "policy-saved" => "Repository policy saved.",
        "policy-deleted" => "Repository policy deleted.",
        "registry-policy-saved" => "Registry policy saved.",
        "registry-policy-deleted" => "Registry policy deleted.",
        "mutability-saved" => "Tag immutability saved.",
        "scanning-saved" => "Scanning configuration saved.",
        "tags-saved" => "Tags saved.",
        "tag-removed" => "Tag removed.",
        "repository-deleted" => "Repository deleted.",
        "lifecycle-saved" => "Lifecycle policy saved.",
        "lifecycle-deleted" => "Lifecycle policy deleted.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.50 KiB");
        assert_eq!(human_size(5 * 1024 * 1024), "5.00 MiB");
    }

    #[test]
    fn digests() {
        assert_eq!(short_digest("sha256:0123456789abcdef0123"), "sha256:0123456789ab…");
        assert_eq!(short_digest("bogus"), "bogus");
    }
}
