//! apk's installed database (`/lib/apk/db/installed`): `X:value` lines, stanzas separated by
//! blank lines (`P` name, `V` version, `o` origin, `A` arch).

use super::{stanzas, Kind, RawPkg};

pub(crate) fn parse(data: &[u8]) -> Vec<RawPkg> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    for stanza in stanzas(&text) {
        let (mut name, mut version, mut origin, mut arch) = (None, None, None, None);
        for line in stanza.lines() {
            let Some((k, v)) = line.split_once(':') else { continue };
            match k {
                "P" => name = Some(v.trim()),
                "V" => version = Some(v.trim()),
                "o" => origin = Some(v.trim()),
                "A" => arch = Some(v.trim()),
                _ => {}
            }
        }
        let (Some(name), Some(version)) = (name, version) else { continue };
        if name.is_empty() || version.is_empty() {
            continue;
        }
        let mut pkg = RawPkg::new(Kind::Apk, name, version);
        pkg.source_name = origin.filter(|o| !o.is_empty()).map(str::to_string);
        pkg.arch = arch.map(str::to_string);
        out.push(pkg);
    }
    out
}
