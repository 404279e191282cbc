//! npm: `package-lock.json` / `npm-shrinkwrap.json` / `node_modules/.package-lock.json`
//! (lockfileVersion 1, 2 and 3) and installed `node_modules/**/package.json`.

use serde_json::Value;

use super::{Kind, RawPkg};

/// Whether `dir` is `…/node_modules/<name>` or `…/node_modules/@scope/<name>`.
pub(crate) fn is_installed_package_dir(dir: &str) -> bool {
    let mut parts = dir.rsplit('/');
    let (Some(name), Some(parent)) = (parts.next(), parts.next()) else { return false };
    if name.is_empty() || name.starts_with('.') {
        return false;
    }
    if parent == "node_modules" {
        return !name.starts_with('@');
    }
    parent.starts_with('@') && parts.next() == Some("node_modules")
}

/// The package name from a lockfile v2/v3 `packages` key: the part after the last
/// `node_modules/`.
fn name_from_key(key: &str) -> Option<&str> {
    let idx = key.rfind("node_modules/")?;
    let name = &key[idx + "node_modules/".len()..];
    (!name.is_empty()).then_some(name)
}

fn push(out: &mut Vec<RawPkg>, name: &str, version: &str) {
    if !name.is_empty() && !version.is_empty() {
        out.push(RawPkg::new(Kind::Npm, name, version));
    }
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool).unwrap_or(false)
}

/// Lockfile v1 `dependencies`, nested. serde_json's recursion limit bounds the depth.
fn walk_v1(deps: &serde_json::Map<String, Value>, out: &mut Vec<RawPkg>) {
    for (name, dep) in deps {
        if is_true(dep.get("dev")) {
            continue;
        }
        if let Some(version) = dep.get("version").and_then(Value::as_str) {
            // `npm:real-name@1.2.3` aliases.
            if let Some(rest) = version.strip_prefix("npm:") {
                if let Some((real, v)) = rest.rsplit_once('@') {
                    push(out, real, v);
                }
            } else {
                push(out, name, version);
            }
        }
        if let Some(nested) = dep.get("dependencies").and_then(Value::as_object) {
            walk_v1(nested, out);
        }
    }
}

/// Production dependencies of a lockfile (`dev: true` entries are left out: they are usually
/// not installed in an image, and installed ones are found through their `package.json`).
pub(crate) fn parse_lock(data: &[u8]) -> Vec<RawPkg> {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(packages) = doc.get("packages").and_then(Value::as_object) {
        for (key, p) in packages {
            if key.is_empty() || is_true(p.get("link")) || is_true(p.get("dev")) {
                continue;
            }
            let Some(version) = p.get("version").and_then(Value::as_str) else { continue };
            let name = p.get("name").and_then(Value::as_str).or_else(|| name_from_key(key));
            if let Some(name) = name {
                push(&mut out, name, version);
            }
        }
    } else if let Some(deps) = doc.get("dependencies").and_then(Value::as_object) {
        walk_v1(deps, &mut out);
    }
    out
}

#[derive(serde::Deserialize)]
struct PackageJson {
    name: Option<String>,
    version: Option<String>,
}

pub(crate) fn parse_package_json(data: &[u8]) -> Option<RawPkg> {
    let p: PackageJson = serde_json::from_slice(data).ok()?;
    let (name, version) = (p.name?, p.version?);
    (!name.is_empty() && !version.is_empty()).then(|| RawPkg::new(Kind::Npm, name, version))
}
