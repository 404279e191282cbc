//! `/etc/os-release` (freedesktop `os-release(5)`): shell-style `KEY=value` lines.

use crate::OsInfo;

fn unquote(v: &str) -> String {
    let v = v.trim();
    let inner = if v.len() >= 2 && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\''))) {
        &v[1..v.len() - 1]
    } else {
        v
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn parse(data: &[u8]) -> Option<OsInfo> {
    let text = String::from_utf8_lossy(data);
    let (mut id, mut version_id, mut pretty) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = unquote(v);
        match k.trim() {
            "ID" => id = Some(v.to_ascii_lowercase()),
            "VERSION_ID" => version_id = Some(v),
            "PRETTY_NAME" => pretty = Some(v),
            _ => {}
        }
    }
    Some(OsInfo { id: id.filter(|s| !s.is_empty()).unwrap_or_else(|| "linux".into()), version_id, pretty_name: pretty })
}
