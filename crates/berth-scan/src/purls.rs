//! Package URLs, built with the `purl` crate (which does the percent-encoding).

use crate::{Ecosystem, OsInfo};

fn build(ty: &str, namespace: Option<&str>, name: &str, version: &str, qualifiers: &[(&str, &str)]) -> String {
    let mut b = purl::GenericPurlBuilder::<String>::new(ty.to_string(), name).with_version(version);
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        b = b.with_namespace(ns);
    }
    for (k, v) in qualifiers {
        if v.is_empty() {
            continue;
        }
        b = match b.with_qualifier(*k, *v) {
            Ok(b) => b,
            Err(_) => return fallback(ty, namespace, name, version),
        };
    }
    match b.build() {
        Ok(p) => p.to_string(),
        Err(_) => fallback(ty, namespace, name, version),
    }
}

/// Only reached for names the purl crate rejects (empty ones); keeps the field non-empty.
fn fallback(ty: &str, namespace: Option<&str>, name: &str, version: &str) -> String {
    let enc = |s: &str| s.replace('%', "%25").replace('@', "%40").replace('?', "%3F").replace('#', "%23");
    match namespace {
        Some(ns) => format!("pkg:{ty}/{}/{}@{}", enc(ns), enc(name), enc(version)),
        None => format!("pkg:{ty}/{}@{}", enc(name), enc(version)),
    }
}

/// The purl of a package; `os` supplies the distro qualifier of OS packages.
pub(crate) fn purl(eco: Ecosystem, name: &str, version: &str, arch: Option<&str>, os: Option<&OsInfo>) -> String {
    let distro = os.map(|o| match &o.version_id {
        Some(v) => format!("{}-{v}", o.id),
        None => o.id.clone(),
    });
    let distro = distro.as_deref().unwrap_or("");
    let arch = arch.unwrap_or("");
    match eco {
        Ecosystem::Debian => build("deb", Some("debian"), name, version, &[("arch", arch), ("distro", distro)]),
        Ecosystem::Ubuntu => build("deb", Some("ubuntu"), name, version, &[("arch", arch), ("distro", distro)]),
        Ecosystem::Alpine => build("apk", Some("alpine"), name, version, &[("arch", arch), ("distro", distro)]),
        Ecosystem::Rpm => build("rpm", os.map(|o| o.id.as_str()), name, version, &[("arch", arch), ("distro", distro)]),
        Ecosystem::PyPI => build("pypi", None, &crate::parsers::python::normalize_name(name), version, &[]),
        Ecosystem::Npm => match name.strip_prefix('@').and_then(|n| n.split_once('/')) {
            Some((scope, n)) => build("npm", Some(&format!("@{scope}")), n, version, &[]),
            None => build("npm", None, name, version, &[]),
        },
        Ecosystem::Go => match name.rsplit_once('/') {
            Some((ns, n)) => build("golang", Some(ns), n, version, &[]),
            None => build("golang", None, name, version, &[]),
        },
        Ecosystem::CratesIo => build("cargo", None, name, version, &[]),
        Ecosystem::Maven => match name.split_once(':') {
            Some((g, a)) => build("maven", Some(g), a, version, &[]),
            None => build("maven", None, name, version, &[]),
        },
    }
}
