//! Rust: `Cargo.lock` files and binaries built with `cargo auditable` (the zlib-compressed JSON
//! in the `.dep-v0` section, read with the `auditable-info` crate under a size limit).

use super::{Kind, RawPkg};

#[derive(serde::Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(serde::Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    source: Option<String>,
}

fn from_crates_io(source: &str) -> bool {
    source == "registry+https://github.com/rust-lang/crates.io-index" || source == "sparse+https://index.crates.io/"
}

/// crates.io packages of a `Cargo.lock` (workspace members, git and path dependencies cannot
/// match crates.io advisories).
pub(crate) fn parse_lock(data: &[u8]) -> Vec<RawPkg> {
    let Ok(text) = std::str::from_utf8(data) else { return Vec::new() };
    let Ok(lock) = toml::from_str::<Lock>(text) else { return Vec::new() };
    lock.package
        .into_iter()
        .filter(|p| p.source.as_deref().is_some_and(from_crates_io))
        .map(|p| RawPkg::new(Kind::Cargo, p.name, p.version))
        .collect()
}

/// crates.io runtime dependencies recorded by `cargo auditable` (build-only dependencies are
/// not linked into the binary).
pub(crate) fn parse_auditable(binary: &[u8], json_limit: usize) -> Vec<RawPkg> {
    let Ok(info) = auditable_info::audit_info_from_slice(binary, json_limit) else { return Vec::new() };
    info.packages
        .into_iter()
        .filter(|p| p.source == auditable_serde::Source::CratesIo && p.kind == auditable_serde::DependencyKind::Runtime)
        .map(|p| RawPkg::new(Kind::Cargo, p.name, p.version.to_string()))
        .collect()
}
