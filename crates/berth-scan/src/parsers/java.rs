//! Java archives: `META-INF/maven/<group>/<artifact>/pom.properties` inside `.jar`/`.war`/`.ear`
//! files (read with the `zip` crate), including archives nested one level deep (Spring Boot
//! `BOOT-INF/lib/*.jar`, `WEB-INF/lib/*.jar`).

use std::io::{Cursor, Read};

use super::{Kind, RawPkg};
use crate::layers::Budget;
use crate::ScanError;

/// Largest `pom.properties` read.
const MAX_PROPERTIES: u64 = 64 << 10;
/// Archives nested deeper than this are not opened.
const MAX_DEPTH: u8 = 2;

fn is_archive(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".jar") || lower.ends_with(".war") || lower.ends_with(".ear")
}

/// The entry count the end-of-central-directory record claims (zip64 aware), read before
/// handing the archive to the `zip` crate, which allocates per entry.
fn declared_entries(data: &[u8]) -> Option<u64> {
    const EOCD: &[u8; 4] = b"PK\x05\x06";
    let from = data.len().saturating_sub(22 + 65535);
    let pos = from + data[from..].windows(4).rposition(|w| w == EOCD)?;
    let eocd = data.get(pos..pos + 22)?;
    let n = u16::from_le_bytes([eocd[10], eocd[11]]);
    if n != 0xFFFF {
        return Some(u64::from(n));
    }
    // zip64: the locator sits just before the EOCD and points at the zip64 EOCD record.
    let loc = data.get(pos.checked_sub(20)?..pos)?;
    if &loc[..4] != b"PK\x06\x07" {
        return None;
    }
    let off = usize::try_from(u64::from_le_bytes(loc[8..16].try_into().ok()?)).ok()?;
    let rec = data.get(off..off.checked_add(56)?)?;
    if &rec[..4] != b"PK\x06\x06" {
        return None;
    }
    Some(u64::from_le_bytes(rec[32..40].try_into().ok()?))
}

fn parse_properties(text: &str) -> Option<(String, String, String)> {
    let (mut group, mut artifact, mut version) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(i) = line.find(['=', ':']) else { continue };
        let (k, v) = (line[..i].trim(), line[i + 1..].trim());
        match k {
            "groupId" => group = Some(v.to_string()),
            "artifactId" => artifact = Some(v.to_string()),
            "version" => version = Some(v.to_string()),
            _ => {}
        }
    }
    let (g, a, v) = (group?, artifact?, version?);
    (!g.is_empty() && !a.is_empty() && !v.is_empty()).then_some((g, a, v))
}

/// Adds the Maven packages of the archive `data` to `out`. `prefix` is the location inside
/// the outer archive (empty at the top level). Malformed archives are ignored; exceeding the
/// scan budget is an error.
pub(crate) fn scan(data: &[u8], budget: &Budget, depth: u8, prefix: &str, out: &mut Vec<RawPkg>) -> Result<(), ScanError> {
    budget.check_deadline()?;
    let Some(declared) = declared_entries(data) else { return Ok(()) };
    budget.charge_entries(declared)?;
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(data)) else { return Ok(()) };
    let max_binary = budget.limits().max_binary_bytes;
    for i in 0..zip.len() {
        let Some(Ok(name)) = zip.name_for_index(i) else { continue };
        let name = name.into_owned();
        let properties = name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties");
        let nested = depth < MAX_DEPTH && is_archive(&name);
        if !properties && !nested {
            continue;
        }
        budget.check_deadline()?;
        let Ok(file) = zip.by_index(i) else { continue };
        let cap = if properties { MAX_PROPERTIES } else { max_binary };
        if file.size() > cap {
            continue;
        }
        let mut buf = Vec::new();
        if file.take(cap).read_to_end(&mut buf).is_err() {
            continue;
        }
        budget.charge_bytes(buf.len() as u64)?;
        if properties {
            if let Some((g, a, v)) = parse_properties(&String::from_utf8_lossy(&buf)) {
                let mut pkg = RawPkg::new(Kind::Maven, format!("{g}:{a}"), v);
                pkg.sub_location = (!prefix.is_empty()).then(|| prefix.to_string());
                out.push(pkg);
            }
        } else {
            scan(&buf, budget, depth + 1, &format!("{prefix}!/{name}"), out)?;
        }
    }
    Ok(())
}
