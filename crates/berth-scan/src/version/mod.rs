//! Version ordering for each ecosystem the matcher handles.
//!
//! Crates do the work where a well-kept one exists: `debversion` (dpkg), `pep440_rs` (PEP 440),
//! `semver` (npm, crates.io, Go). apk and Maven orderings and Go's version spellings are written
//! by hand in the submodules, each saying why.

mod apk;
mod go;
mod maven;

use std::cmp::Ordering;
use std::str::FromStr;

pub use apk::compare as compare_apk;
pub use go::normalize as normalize_go;
pub use maven::MavenVersion;

/// A version ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// dpkg (Debian, Ubuntu): epochs, `~`, revisions.
    Dpkg,
    /// apk-tools (Alpine): `_rc`, `_p`, `-r1`, ...
    Apk,
    /// PEP 440 (PyPI).
    Pep440,
    /// SemVer 2.0 precedence (npm, crates.io); build metadata ignored.
    Semver,
    /// Go module versions: SemVer with a `v` prefix, `+incompatible`, pseudo-versions, and Go
    /// toolchain spellings (`go1.21rc2`) for the `stdlib` package.
    Go,
    /// Maven `ComparableVersion`.
    Maven,
}

/// A version parsed under one [`Scheme`]. Values of different schemes compare equal; they are
/// never mixed by the matcher.
#[derive(Debug, Clone)]
pub enum Ver {
    Dpkg(debversion::Version),
    Apk(String),
    Pep440(pep440_rs::Version),
    Semver(semver::Version),
    Maven(MavenVersion),
}

impl Scheme {
    /// Parses `s` under this scheme; `None` when it is not a valid version there.
    pub fn parse(self, s: &str) -> Option<Ver> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        match self {
            Scheme::Dpkg => debversion::Version::from_str(s).ok().map(Ver::Dpkg),
            Scheme::Apk => apk::is_valid(s).then(|| Ver::Apk(s.to_string())),
            Scheme::Pep440 => pep440_rs::Version::from_str(s).ok().map(Ver::Pep440),
            Scheme::Semver => {
                let s = s.strip_prefix('v').or_else(|| s.strip_prefix('=')).unwrap_or(s);
                semver::Version::parse(s).ok().map(Ver::Semver)
            }
            Scheme::Go => go::normalize(s).map(Ver::Semver),
            Scheme::Maven => Some(Ver::Maven(MavenVersion::parse(s))),
        }
    }
}

impl Ord for Ver {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Ver::Dpkg(a), Ver::Dpkg(b)) => a.cmp(b),
            (Ver::Apk(a), Ver::Apk(b)) => apk::compare(a, b),
            (Ver::Pep440(a), Ver::Pep440(b)) => a.cmp(b),
            (Ver::Semver(a), Ver::Semver(b)) => a.cmp_precedence(b),
            (Ver::Maven(a), Ver::Maven(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}

impl PartialOrd for Ver {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ver {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ver {}

/// Compares two version strings under `scheme`; `None` if either does not parse.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Option<Ordering> {
    Some(scheme.parse(a)?.cmp(&scheme.parse(b)?))
}
