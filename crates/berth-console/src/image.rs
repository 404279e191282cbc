//! One image: details, pull commands, layers, platforms of an index, referrers, the manifest.

use axum::response::IntoResponse;
use berth_core::auth::Resource;
use berth_core::images::ImageId;
use berth_core::scanning::ImageScan;
use berth_core::{Digest, Reference, RegistryError, Repo};
use berth_store::StorageClass;
use maud::{html, Markup};
use serde_json::Value;

use crate::repo::{crumbs, describe, header, repo_url, Tab};
use crate::view::{self, Nav, Page};
use crate::web::{see_other, Fail, PageResult, Post, Session};

/// A descriptor of the manifest (config, layer, child manifest), as far as it is well formed.
struct Desc {
    media_type: String,
    digest: String,
    size: Option<u64>,
    platform: Option<String>,
}

fn desc(v: &Value) -> Desc {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let platform = v.get("platform").map(|p| {
        let f = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
        let mut out = format!("{}/{}", f("os"), f("architecture"));
        if !f("variant").is_empty() {
            out.push('/');
            out.push_str(f("variant"));
        }
        if !f("os.version").is_empty() {
            out.push_str(&format!(" ({})", f("os.version")));
        }
        out
    });
    Desc { media_type: s("mediaType"), digest: s("digest"), size: v.get("size").and_then(Value::as_u64), platform }
}

fn descs(v: &Value, key: &str) -> Vec<Desc> {
    v.get(key).and_then(Value::as_array).map(|a| a.iter().map(desc).collect()).unwrap_or_default()
}

/// The CycloneDX document of an SBOM artifact (the scanner pushes one per scanned image, with
/// the image as its subject): its layer, when the manifest is one.
fn sbom_layer(manifest: &Value, artifact_type: Option<&str>) -> Option<Desc> {
    let is_cdx = |t: &str| t.contains("cyclonedx");
    let typed = artifact_type.is_some_and(is_cdx)
        || manifest.get("artifactType").and_then(Value::as_str).is_some_and(is_cdx)
        || manifest.get("config").and_then(|c| c.get("mediaType")).and_then(Value::as_str).is_some_and(is_cdx);
    let layers = descs(manifest, "layers");
    let by_type = layers.iter().position(|l| is_cdx(&l.media_type));
    match (typed, by_type) {
        (_, Some(i)) => layers.into_iter().nth(i),
        (true, None) => layers.into_iter().next(),
        (false, None) => None,
    }
}

/// The platforms of an index with each one's scan (indexes themselves are not scanned).
fn platforms_section(base: &str, children: &[Desc], scans: Option<&[Option<ImageScan>]>) -> Markup {
    html! {
        section.card aria-labelledby="platforms-h" {
            h2 #platforms-h { "Platforms" }
            p.help { "An image index is not scanned itself: each platform image is, and its findings are on its own page." }
            div.table-wrap {
                table.data #platforms {
                    thead { tr {
                        th scope="col" { "Platform" } th scope="col" { "Digest" } th scope="col" class="secondary" { "Type" }
                        th scope="col" class="num secondary" { "Manifest size" } th scope="col" { "Scan status" }
                    } }
                    tbody {
                        @for (i, c) in children.iter().enumerate() {
                            tr data-digest=(c.digest) {
                                td { (c.platform.as_deref().unwrap_or("—")) }
                                td { a href={(base) "/-/image/" (c.digest)} title=(c.digest) { code { (view::short_digest(&c.digest)) } } }
                                td.secondary { (view::media_label(&c.media_type)) }
                                td.num.secondary { @if let Some(sz) = c.size { (view::size(sz)) } }
                                td.scan-cell {
                                    @match scans {
                                        Some(all) => {
                                            (view::scan_summary(all.get(i).and_then(Option::as_ref)))
                                            " " a.small href={(base) "/-/image/" (c.digest) "#scan-findings"} { "Findings" span.sr-only { " for " (c.platform.as_deref().unwrap_or(&c.digest)) } }
                                        }
                                        None => { span.muted { "—" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What an SBOM's page offers instead of pull commands and scanning: the document and the image it describes.
fn sbom_section(base: &str, d: &str, subject: Option<&Desc>, layer: &Desc) -> Markup {
    html! {
        section.card aria-labelledby="sbom-h" #sbom {
            h2 #sbom-h { "Software bill of materials" }
            p { "A CycloneDX inventory of the packages in "
                @match subject {
                    Some(sub) => { "the image " a #sbom-subject href={(base) "/-/image/" (sub.digest)} { code { (view::short_digest(&sub.digest)) } } }
                    None => { "an image" }
                }
                ", made by the registry's scanner. It is an artifact attached to that image, not an image to run." }
            p.manifest-actions {
                a.btn.btn-small #sbom-download href={(base) "/-/image/" (d) "/sbom"} download={(layer.digest.trim_start_matches("sha256:")) ".cdx.json"} { "Download SBOM (CycloneDX JSON)" }
                @if let Some(sz) = layer.size { " " span.muted { (view::size(sz)) } }
                @if let Some(sub) = subject { " " a.btn.btn-small href={(base) "/-/image/" (sub.digest)} { "View the image it describes" } }
            }
        }
    }
}

/// Findings, most severe first.
fn by_severity(findings: &[berth_core::scanning::StoredFinding]) -> Vec<&berth_core::scanning::StoredFinding> {
    let mut sorted: Vec<_> = findings.iter().collect();
    sorted.sort_by_key(|f| view::SEVERITIES.iter().position(|s| *s == f.severity).unwrap_or(view::SEVERITIES.len()));
    sorted
}

/// A finding attribute's name in plain words (the scanner stores ECR's attribute keys).
pub(crate) fn attribute_label(key: &str) -> String {
    match key {
        "package_name" => "Package".into(),
        "package_version" => "Installed version".into(),
        "fixed_in_version" | "fixed_version" | "fixed_in" => "Fixed in".into(),
        "CVSS3_SCORE" => "CVSS v3 score".into(),
        "CVSS3_VECTOR" => "CVSS v3 vector".into(),
        "CVSS2_SCORE" => "CVSS v2 score".into(),
        "CVSS2_VECTOR" => "CVSS v2 vector".into(),
        other => {
            let words = other.replace('_', " ").to_lowercase();
            let mut chars = words.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
        }
    }
}

/// The attributes shown in their own columns; the rest go under "Details".
const COLUMN_ATTRIBUTES: [&str; 2] = ["package_name", "package_version"];

fn attribute<'a>(f: &'a berth_core::scanning::StoredFinding, key: &str) -> Option<&'a str> {
    f.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The severity filter over the findings: one link per severity present, with its count.
fn severity_filter(base: &str, findings: &[berth_core::scanning::StoredFinding], current: Option<&str>) -> Markup {
    html! {
        nav.segmented #severity-filter aria-label="Filter findings by severity" {
            a href={(base) "#scan-findings"} aria-current=[current.is_none().then_some("true")] { "All (" (findings.len()) ")" }
            @for sev in view::SEVERITIES {
                @let n = findings.iter().filter(|f| f.severity == sev).count();
                @if n > 0 {
                    a href={(base) "?severity=" (sev) "#scan-findings"} aria-current=[(current == Some(sev)).then_some("true")] {
                        (&sev[..1]) (sev[1..].to_ascii_lowercase()) " (" (n) ")"
                    }
                }
            }
        }
    }
}

fn findings_section(
    s: &Session,
    repo: &Repo,
    digest: &str,
    findings: &Result<Option<ImageScan>, String>,
    may_scan: bool,
    severity: Option<&str>,
) -> Markup {
    let page_url = format!("{}/-/image/{digest}", repo_url(repo));
    // The once-a-day limit is said here, rather than on an error page after a click.
    let next_scan_at = match findings {
        Ok(Some(scan)) => s.registry().next_manual_scan_at(scan.row.started_at),
        _ => None,
    };
    html! {
        section.card aria-labelledby="scan-h" #scan-findings {
            div.section-head {
                h2 #scan-h { "Scan findings" }
                @if may_scan && next_scan_at.is_none() {
                    form method="post" action={(repo_url(repo)) "/-/image/" (digest) "/scan"} {
                        (view::csrf(s))
                        button.btn.btn-small type="submit" { "Scan now" }
                    }
                }
            }
            @if let (true, Some(at)) = (may_scan, next_scan_at) {
                p.muted #next-scan { "An image can be scanned once a day: the next scan can start after " (view::when(at)) "." }
            }
            @match findings {
                Err(why) => { p.muted { (why) } }
                Ok(None) => { p.muted { "This image has not been scanned. Repositories with scan on push scan each image after it is pushed." } }
                Ok(Some(scan)) => {
                    dl.details {
                        div { dt { "Status" } dd { (view::scan_summary(Some(scan))) " " code.small { (scan.row.status) } } }
                        @if let Some(desc) = &scan.row.description { div { dt { "Details" } dd { (desc) } } }
                        div { dt { "Started" } dd { (view::when(scan.row.started_at)) } }
                        @if let Some(done) = scan.row.completed_at { div { dt { "Completed" } dd { (view::when(done)) } } }
                        @if let Some(r) = &scan.result {
                            div { dt { "Packages" } dd { (r.packages) } }
                            @if let Some(at) = r.source_updated_at { div { dt { "Vulnerability data" } dd { "as of " (view::when(at)) } } }
                            @if let Some(sbom) = &r.sbom_digest {
                                div { dt { "SBOM" } dd { a href={(repo_url(repo)) "/-/image/" (sbom)} { code { (view::short_digest(sbom)) } } " (CycloneDX referrer)" } }
                            }
                        }
                    }
                    @if let Some(r) = &scan.result {
                        @for note in &r.notes { p.help { (note) } }
                        @if r.findings.is_empty() {
                            @if scan.row.status == "COMPLETE" {
                                p { "No known vulnerabilities were found in the packages of this image." }
                            }
                        } @else {
                            @let sorted: Vec<_> = by_severity(&r.findings).into_iter().filter(|f| severity.is_none_or(|s| f.severity == s)).collect();
                            (severity_filter(&page_url, &r.findings, severity))
                            div.table-wrap {
                                table.data #findings {
                                    thead { tr {
                                        th scope="col" { "Severity" } th scope="col" { "Vulnerability" } th scope="col" { "Package" }
                                        th scope="col" { "Installed version" } th scope="col" { "Fixed in" } th scope="col" class="secondary" { "Details" } th scope="col" class="secondary" { "Description" }
                                    } }
                                    tbody {
                                        @for f in sorted {
                                            tr data-severity=(f.severity) {
                                                td { span class={"badge badge-" (view::severity_kind(&f.severity))} { (f.severity.to_ascii_lowercase()) } }
                                                td { @if f.uri.starts_with("https://") { a href=(f.uri) rel="noreferrer noopener" { (f.name) } } @else { (f.name) } }
                                                td { (attribute(f, "package_name").unwrap_or("—")) }
                                                td { code { (attribute(f, "package_version").unwrap_or("—")) } }
                                                td { @match &f.fixed_in { Some(v) => { code { (v) } } None => { span.muted { "No fix yet" } } } }
                                                td.small.secondary {
                                                    @for (k, v) in f.attributes.iter().filter(|(k, _)| !COLUMN_ATTRIBUTES.contains(&k.as_str())) {
                                                        span.muted { (attribute_label(k)) ": " } span.wrap { (v) } br;
                                                    }
                                                }
                                                td.small.secondary { (f.description) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The image page; `severity` filters its findings (one of [`view::SEVERITIES`]).
pub async fn page(s: &Session, repo: &Repo, digest: &str, severity: Option<&str>) -> PageResult {
    let severity = severity.and_then(|v| view::SEVERITIES.iter().copied().find(|s| s.eq_ignore_ascii_case(v)));
    let row = describe(s, repo).await?;
    let digest: Digest = digest.parse().map_err(|_| Fail::not_found(format!("'{digest}' is not an image digest.")))?;
    let d = digest.to_string();
    s.allow("ecr:DescribeImages", Resource::Repository(repo)).await?;
    let (found, failures) = s.registry().describe_image_ids(repo, &[ImageId { digest: Some(d.clone()), tag: None }]).await?;
    let Some(image) = found.into_iter().next() else {
        let why = failures.first().map(|f| f.reason.clone()).unwrap_or_else(|| "Requested image not found".into());
        return Err(Fail::not_found(format!("{why}: {d} in {}", repo.name)));
    };
    // The manifest is read as BatchGetImage reads it, without counting as a pull.
    let may_get = s.may("ecr:BatchGetImage", Resource::Repository(repo)).await?;
    let manifest = if !may_get {
        Err("You may not read this image's manifest (ecr:BatchGetImage).".to_string())
    } else {
        match s.registry().get_manifest(repo, &Reference::Digest(digest.clone()), false).await {
            Ok(m) => Ok(m),
            Err(e @ RegistryError::ImageArchived(_)) => Err(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    };
    let parsed: Option<Value> = manifest.as_ref().ok().and_then(|m| serde_json::from_slice(&m.content).ok());
    // The stored bytes (the ones the digest covers), and an indented view of them.
    let raw = manifest.as_ref().ok().map(|m| String::from_utf8_lossy(&m.content).into_owned());
    let pretty = raw.as_deref().map(|r| view::indent_json(r).unwrap_or_else(|| r.to_string()));
    let may_move = s.may("ecr:UpdateImageStorageClass", Resource::Repository(repo)).await?;
    let may_scan = s.may("ecr:StartImageScan", Resource::Repository(repo)).await?;
    let may_findings = s.may("ecr:DescribeImageScanFindings", Resource::Repository(repo)).await?;
    let findings = if may_findings {
        Ok(s.registry().image_scan(repo, &digest).await?)
    } else {
        Err("You may not read this image's scan findings (ecr:DescribeImageScanFindings).".to_string())
    };
    let referrers = if s.may("ecr:ListImageReferrers", Resource::Repository(repo)).await? {
        Some(s.registry().referrers(repo, &digest, None).await?)
    } else {
        None
    };
    let replication = crate::replication::image_section(s, repo, &digest).await?;
    let uri = s.repository_uri(repo);
    let base = repo_url(repo);
    let config = parsed.as_ref().and_then(|v| v.get("config")).map(desc);
    let layers = parsed.as_ref().map(|v| descs(v, "layers")).unwrap_or_default();
    let children = parsed.as_ref().map(|v| descs(v, "manifests")).unwrap_or_default();
    let subject = parsed.as_ref().and_then(|v| v.get("subject")).map(desc);
    let layer_total: u64 = layers.iter().filter_map(|l| l.size).sum();
    let sbom = parsed.as_ref().and_then(|v| sbom_layer(v, image.artifact_type.as_deref()));
    let mut child_scans = Vec::with_capacity(children.len());
    if may_findings {
        for c in &children {
            child_scans.push(match c.digest.parse::<Digest>() {
                Ok(cd) => s.registry().image_scan(repo, &cd).await?,
                Err(_) => None,
            });
        }
    }
    let title =
        image.tags.first().map(|t| format!("{}:{t}", repo.name)).unwrap_or_else(|| format!("{}@{}", repo.name, view::short_digest(&d)));
    let body = html! {
        (header(s, repo, &row, Tab::Images).await)
        section.card aria-labelledby="image-h" #image-details {
            h2 #image-h { "Image " (title) }
            dl.details {
                div { dt { "Digest" } dd { code data-digest=(d) { (d) } " " (view::copy(&d, "digest")) } }
                div { dt { "Tags" } dd { @if image.tags.is_empty() { span.muted { "untagged" } } @for t in &image.tags { span.tag { (t) } " " } } }
                div { dt { "Type" } dd { (view::media_label(&image.media_type)) " " code.small { (image.media_type) } } }
                @if let Some(a) = &image.artifact_type { div { dt { "Artifact type" } dd { code { (a) } } } }
                div { dt { "Size" } dd #image-size { (view::size(image.image_size)) } }
                div { dt { "Pushed at" } dd { (view::when(image.pushed_at)) } }
                div { dt { "Last pulled" } dd { (view::maybe_when(image.last_pulled_at, "Never")) } }
                div { dt { "Storage" } dd #image-storage {
                    @match image.storage_class {
                        StorageClass::Archive => { (view::badge("Archived", "warn")) " " @if let Some(a) = image.archived_at { "since " (view::when(a)) } }
                        StorageClass::Standard => { "Standard" }
                    }
                    @if may_move {
                        form.inline method="post" action={(base) "/-/image/" (d) "/storage-class"} {
                            (view::csrf(s))
                            @match image.storage_class {
                                StorageClass::Archive => {
                                    input type="hidden" name="class" value="STANDARD";
                                    " " button.btn.btn-small type="submit" { "Restore to standard" }
                                }
                                StorageClass::Standard => {
                                    input type="hidden" name="class" value="ARCHIVE";
                                    " " button.btn.btn-small.btn-quiet type="submit" { "Archive" }
                                }
                            }
                        }
                    }
                } }
                @if let Some(sub) = &subject {
                    div { dt { "Refers to" } dd { a href={(base) "/-/image/" (sub.digest)} { code { (sub.digest) } } } }
                }
            }
            @if sbom.is_none() {
                h3 { "Pull" }
                (view::command(&format!("docker pull {uri}@{d}"), "pull by digest command"))
                @for t in &image.tags {
                    (view::command(&format!("docker pull {uri}:{t}"), &format!("pull {t} command")))
                }
            }
        }
        @if let Some(layer) = &sbom { (sbom_section(&base, &d, subject.as_ref(), layer)) }
        (replication)
        @if !children.is_empty() {
            (platforms_section(&base, &children, may_findings.then_some(child_scans.as_slice())))
        }
        @if config.is_some() || !layers.is_empty() {
            section.card aria-labelledby="layers-h" {
                h2 #layers-h { "Layers" }
                div.table-wrap {
                    table.data #layers {
                        thead { tr { th scope="col" { "#" } th scope="col" { "Digest" } th scope="col" { "Media type" } th scope="col" class="num" { "Size" } } }
                        tbody {
                            @if let Some(c) = &config {
                                tr.muted-row {
                                    td { "config" }
                                    td { code title=(c.digest) { (view::short_digest(&c.digest)) } }
                                    td { code.small { (c.media_type) } }
                                    td.num { @if let Some(sz) = c.size { (view::size(sz)) } }
                                }
                            }
                            @for (i, l) in layers.iter().enumerate() {
                                tr {
                                    td { (i + 1) }
                                    td { code title=(l.digest) { (view::short_digest(&l.digest)) } " " (view::copy(&l.digest, "layer digest")) }
                                    td { code.small { (l.media_type) } }
                                    td.num { @if let Some(sz) = l.size { (view::size(sz)) } }
                                }
                            }
                        }
                        tfoot { tr { th scope="row" colspan="3" { (layers.len()) " layer" @if layers.len() != 1 { "s" } } td.num { (view::size(layer_total)) } } }
                    }
                }
            }
        }
        section.card aria-labelledby="referrers-h" {
            h2 #referrers-h { "Referrers" }
            p.help { "Signatures, SBOMs and other artifacts whose subject is this image." }
            @match &referrers {
                None => { p.muted { "You may not list referrers (ecr:ListImageReferrers)." } }
                Some(r) if r.is_empty() => { p.muted { "No artifacts refer to this image." } }
                Some(r) => {
                    div.table-wrap {
                        table.data #referrers {
                            thead { tr { th scope="col" { "Artifact type" } th scope="col" { "Digest" } th scope="col" class="num" { "Size" } th scope="col" { "Annotations" } } }
                            tbody {
                                @for m in r {
                                    @let rd = m.digest.to_string();
                                    tr {
                                        td { code.small { (m.artifact_type.as_deref().unwrap_or(&m.media_type)) } }
                                        td { a href={(base) "/-/image/" (rd)} title=(rd) { code { (view::short_digest(&rd)) } } }
                                        td.num { (view::size(m.size)) }
                                        td { @if let Some(a) = &m.annotations { code.small.wrap { (a) } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // An index is not scanned (its platforms are, above) and an SBOM is the scan's output.
        @if children.is_empty() && sbom.is_none() { (findings_section(s, repo, &d, &findings, may_scan, severity)) }
        section.card aria-labelledby="manifest-h" {
            h2 #manifest-h { "Manifest" }
            @match (&manifest, &pretty) {
                (Ok(m), Some(text)) => {
                    p.help { "Indented for reading; the stored manifest is " (m.content.len()) " bytes, exactly as pushed — "
                        "those are the bytes its digest covers. Copy and Download give them unchanged." }
                    div.cmd { pre.json #manifest { code { (text) } } }
                    p.manifest-actions {
                        @if let Some(r) = &raw { (view::copy(r, "the raw manifest bytes")) " " }
                        a.btn.btn-small href={(base) "/-/image/" (d) "/manifest"} download={(digest.hex()) ".json"} { "Download raw manifest" }
                    }
                }
                (Err(why), _) => { p.muted { (why) } }
                _ => {}
            }
        }
    };
    let page = Page { title: &title, nav: Nav::Repositories, crumbs: crumbs(repo, Some(&view::short_digest(&d))), notice: None, body };
    Ok(view::render(s, page).await)
}

/// The manifest's stored bytes, unchanged, as a download (BatchGetImage, not counted as a pull).
pub async fn raw_manifest(s: &Session, repo: &Repo, digest: &str) -> PageResult {
    s.allow("ecr:BatchGetImage", Resource::Repository(repo)).await?;
    let digest: Digest = digest.parse().map_err(|_| Fail::not_found(format!("'{digest}' is not an image digest.")))?;
    let m = s.registry().get_manifest(repo, &Reference::Digest(digest.clone()), false).await?;
    let disposition = format!("attachment; filename=\"{}.json\"", digest.hex());
    let headers = [
        (
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_str(&m.media_type).unwrap_or(http::HeaderValue::from_static("application/json")),
        ),
        (
            http::header::CONTENT_DISPOSITION,
            http::HeaderValue::from_str(&disposition).unwrap_or(http::HeaderValue::from_static("attachment")),
        ),
    ];
    Ok((headers, m.content).into_response())
}

/// An SBOM artifact's CycloneDX document, as a download (read as a layer pull reads it).
pub async fn sbom_download(s: &Session, repo: &Repo, digest: &str) -> PageResult {
    s.allow("ecr:BatchGetImage", Resource::Repository(repo)).await?;
    s.allow("ecr:GetDownloadUrlForLayer", Resource::Repository(repo)).await?;
    let digest: Digest = digest.parse().map_err(|_| Fail::not_found(format!("'{digest}' is not an image digest.")))?;
    let m = s.registry().get_manifest(repo, &Reference::Digest(digest.clone()), false).await?;
    let layer = serde_json::from_slice::<Value>(&m.content)
        .ok()
        .and_then(|v| sbom_layer(&v, None))
        .ok_or_else(|| Fail::not_found("This image is no SBOM: it has no CycloneDX document to download."))?;
    let blob: Digest = layer.digest.parse().map_err(|_| Fail::not_found("The SBOM names no valid layer digest."))?;
    let (_, _, reader) = s.registry().read_blob(repo, &blob, None).await?;
    let disposition = format!("attachment; filename=\"{}.cdx.json\"", blob.hex());
    let headers = [
        (http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/vnd.cyclonedx+json")),
        (
            http::header::CONTENT_DISPOSITION,
            http::HeaderValue::from_str(&disposition).unwrap_or(http::HeaderValue::from_static("attachment")),
        ),
        (http::header::CONTENT_LENGTH, http::HeaderValue::from(reader.len)),
    ];
    Ok((headers, axum::body::Body::from_stream(reader.body)).into_response())
}

/// UpdateImageStorageClass: archive an image, or restore an archived one.
pub async fn set_storage_class(post: &Post, repo: &Repo, digest: &str) -> PageResult {
    let s = &post.session;
    let params = serde_json::json!({ "repositoryName": repo.name.as_str(), "imageId": { "imageDigest": digest }, "targetStorageClass": post.form.text("class") });
    s.audit_allow("ecr:UpdateImageStorageClass", Resource::Repository(repo), params).await?;
    let class =
        StorageClass::parse(&post.form.text("class")).ok_or_else(|| Fail::bad_request("The storage class must be STANDARD or ARCHIVE."))?;
    let digest: Digest = digest.parse().map_err(|_| Fail::not_found(format!("'{digest}' is not an image digest.")))?;
    let id = ImageId { digest: Some(digest.to_string()), tag: None };
    s.registry().set_image_storage_class(repo, &id, class).await?;
    Ok(see_other(&format!("{}/-/image/{digest}", repo_url(repo))))
}

/// StartImageScan (at most once per image per 24 hours, as ECR).
pub async fn start_scan(post: &Post, repo: &Repo, digest: &str) -> PageResult {
    let s = &post.session;
    let params = serde_json::json!({ "repositoryName": repo.name.as_str(), "imageId": { "imageDigest": digest } });
    s.audit_allow("ecr:StartImageScan", Resource::Repository(repo), params).await?;
    let digest: Digest = digest.parse().map_err(|_| Fail::not_found(format!("'{digest}' is not an image digest.")))?;
    let id = ImageId { digest: Some(digest.to_string()), tag: None };
    s.registry().start_image_scan(repo, &id).await?;
    Ok(see_other(&format!("{}/-/image/{digest}#scan-findings", repo_url(repo))))
}
