//! Python core metadata: `*.dist-info/METADATA`, `*.egg-info/PKG-INFO` and `*.egg-info` files.
//! Only the header block (up to the first blank line) is looked at.

use super::{header_fields, Kind, RawPkg};

pub(crate) fn parse(data: &[u8]) -> Option<RawPkg> {
    let text = String::from_utf8_lossy(data);
    let header = text.split("\n\n").next().unwrap_or("");
    let header = header.split("\r\n\r\n").next().unwrap_or("");
    let (mut name, mut version) = (None, None);
    for (k, v) in header_fields(header) {
        if k.eq_ignore_ascii_case("name") && name.is_none() {
            name = Some(v);
        } else if k.eq_ignore_ascii_case("version") && version.is_none() {
            version = Some(v);
        }
    }
    let (name, version) = (name?, version?);
    if name.is_empty() || version.is_empty() {
        return None;
    }
    Some(RawPkg::new(Kind::Python, name, version))
}

/// PEP 503 normalised name: lowercase, runs of `-`, `_`, `.` become one `-`.
pub(crate) fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}
