//! dpkg's `/var/lib/dpkg/status` and distroless `/var/lib/dpkg/status.d/*` control stanzas.

use super::{header_fields, stanzas, Kind, RawPkg};

pub(crate) fn parse(data: &[u8]) -> Vec<RawPkg> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    for stanza in stanzas(&text) {
        let (mut name, mut version, mut source, mut status, mut arch) = (None, None, None, None, None);
        for (k, v) in header_fields(stanza) {
            match k {
                "Package" => name = Some(v),
                "Version" => version = Some(v),
                "Source" => source = Some(v),
                "Status" => status = Some(v),
                "Architecture" => arch = Some(v),
                _ => {}
            }
        }
        let (Some(name), Some(version)) = (name, version) else { continue };
        if name.is_empty() || version.is_empty() {
            continue;
        }
        // `Status: want flag state`: packages that were removed (config-files) or never
        // installed leave stanzas behind. distroless status.d stanzas have no Status at all.
        if let Some(state) = status.and_then(|s| s.split_whitespace().nth(2)) {
            if state == "not-installed" || state == "config-files" {
                continue;
            }
        }
        let mut pkg = RawPkg::new(Kind::Dpkg, name, version);
        pkg.arch = arch.map(str::to_string);
        // `Source: name` or `Source: name (version)` when the source version differs.
        if let Some(src) = source {
            let mut parts = src.splitn(2, ' ');
            let src_name = parts.next().unwrap_or("").trim();
            if !src_name.is_empty() {
                pkg.source_name = Some(src_name.to_string());
            }
            if let Some(rest) = parts.next() {
                let v = rest.trim().trim_start_matches('(').trim_end_matches(')').trim();
                if !v.is_empty() && v != version {
                    pkg.source_version = Some(v.to_string());
                }
            }
        }
        out.push(pkg);
    }
    out
}
