//! Which files name packages, and their parsers. Every parser works on an in-memory buffer
//! already bounded by the caller and never panics on malformed input.

pub(crate) mod apk;
pub(crate) mod dpkg;
pub(crate) mod golang;
pub(crate) mod java;
pub(crate) mod npm;
pub(crate) mod os_release;
pub(crate) mod python;
pub(crate) mod rust;

use crate::OsInfo;

/// The package manager or format a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dpkg,
    Apk,
    Python,
    Npm,
    Go,
    Cargo,
    Maven,
}

/// A package as read from its file, before the OS is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawPkg {
    pub kind: Kind,
    pub name: String,
    pub version: String,
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub arch: Option<String>,
    /// Appended to the file's path, e.g. `!BOOT-INF/lib/x.jar` inside an archive.
    pub sub_location: Option<String>,
}

impl RawPkg {
    pub fn new(kind: Kind, name: impl Into<String>, version: impl Into<String>) -> RawPkg {
        RawPkg { kind, name: name.into(), version: version.into(), source_name: None, source_version: None, arch: None, sub_location: None }
    }
}

/// What a path in the image contributes, kept per path so that upper layers and whiteouts can
/// replace or remove it.
#[derive(Debug, Clone)]
pub(crate) enum Captured {
    OsRelease(OsInfo),
    /// A symlink at an os-release path, with its raw target.
    Symlink(String),
    Packages(Vec<RawPkg>),
    /// Something the caller should know (a skipped oversized file, an RPM database).
    Note(String),
}

/// Why a path is worth reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    OsRelease,
    Dpkg,
    Apk,
    Python,
    NpmLock,
    NpmPackage,
    CargoLock,
    /// A Java archive (`.jar`, `.war`, `.ear`).
    Archive,
    /// An executable regular file that may be an ELF binary (Go or cargo-auditable).
    Executable,
    RpmDb,
}

pub(crate) const OS_RELEASE_PATHS: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// Classifies a regular file by its normalised path (`/a/b`), mode and size.
pub(crate) fn classify(path: &str, mode: u32, size: u64) -> Option<Interest> {
    let (dir, name) = split(path);
    if OS_RELEASE_PATHS.contains(&path) {
        return Some(Interest::OsRelease);
    }
    match path {
        "/var/lib/dpkg/status" => return Some(Interest::Dpkg),
        "/lib/apk/db/installed" | "/usr/lib/apk/db/installed" => return Some(Interest::Apk),
        "/var/lib/rpm/rpmdb.sqlite" | "/var/lib/rpm/Packages" | "/var/lib/rpm/Packages.db" | "/usr/lib/sysimage/rpm/rpmdb.sqlite" => {
            return Some(Interest::RpmDb)
        }
        _ => {}
    }
    if dir == "/var/lib/dpkg/status.d" && !name.ends_with(".md5sums") && !name.starts_with('.') {
        return Some(Interest::Dpkg);
    }
    if (name == "METADATA" && dir.ends_with(".dist-info"))
        || (name == "PKG-INFO" && dir.ends_with(".egg-info"))
        || name.ends_with(".egg-info")
    {
        return Some(Interest::Python);
    }
    match name {
        "package-lock.json" | "npm-shrinkwrap.json" | ".package-lock.json" => return Some(Interest::NpmLock),
        "package.json" if npm::is_installed_package_dir(dir) => return Some(Interest::NpmPackage),
        "Cargo.lock" => return Some(Interest::CargoLock),
        _ => {}
    }
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".jar") || lower.ends_with(".war") || lower.ends_with(".ear") {
        return Some(Interest::Archive);
    }
    // Larger ones are still checked for the ELF magic, to note that they were skipped.
    if mode & 0o111 != 0 && size >= 256 {
        return Some(Interest::Executable);
    }
    None
}

/// Parses a text metadata file.
pub(crate) fn parse_text(interest: Interest, data: &[u8]) -> Option<Captured> {
    let pkgs = match interest {
        Interest::OsRelease => return Some(Captured::OsRelease(os_release::parse(data)?)),
        Interest::Dpkg => dpkg::parse(data),
        Interest::Apk => apk::parse(data),
        Interest::Python => python::parse(data).into_iter().collect(),
        Interest::NpmLock => npm::parse_lock(data),
        Interest::NpmPackage => npm::parse_package_json(data).into_iter().collect(),
        Interest::CargoLock => rust::parse_lock(data),
        Interest::Archive | Interest::Executable | Interest::RpmDb => return None,
    };
    (!pkgs.is_empty()).then_some(Captured::Packages(pkgs))
}

/// Splits RFC 822-style `Key: value` header lines (dpkg, Python metadata) of one
/// stanza, skipping continuation lines.
pub(crate) fn header_fields(stanza: &str) -> impl Iterator<Item = (&str, &str)> {
    stanza.lines().filter(|l| !l.starts_with([' ', '\t'])).filter_map(|l| {
        let (k, v) = l.split_once(':')?;
        Some((k.trim(), v.trim()))
    })
}

/// Splits text into stanzas at blank lines.
pub(crate) fn stanzas(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                out.push(&text[s..pos]);
            }
        } else if start.is_none() {
            start = Some(pos);
        }
        pos += line.len();
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}
