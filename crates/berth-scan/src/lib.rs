//! Offline vulnerability scanning of OCI images from OSV data.
//!
//! The crate is synchronous on purpose: the service runs it on a blocking thread and hands it
//! the layer blobs as readers, in manifest order.
//!
//! * [`inventory`] walks the layers once (gzip, zstd or plain tar, detected from the media type
//!   and the magic bytes), honours OCI whiteouts across layers, and parses only the few files
//!   that name installed packages. Everything is parsed in memory within [`Limits`]; nothing is
//!   written to disk.
//! * [`to_cyclonedx`] renders an [`Inventory`] as a CycloneDX 1.5 JSON SBOM.
//! * [`VulnDb`] imports an OSV export (a directory of JSON files or an osv.dev zip) into a compact
//!   on-disk index and matches an [`Inventory`] against it with [`VulnDb::find`].
//!
//! RPM databases are detected but not inventoried: reading `rpmdb.sqlite` needs SQLite (there is
//! no well-kept pure-Rust reader) and the RPM header blob format, so an image with one gets a
//! note in [`Inventory::notes`] instead of silently looking clean.

mod db;
mod layers;
mod osv;
mod parsers;
mod purls;
mod sbom;
pub mod version;

use std::time::{Duration, Instant};

pub use db::{DbStatus, ImportSummary, VulnDb};
pub use sbom::to_cyclonedx;

/// Bounds on what one [`inventory`] call may consume. Exceeding any of them ends the scan with
/// [`ScanError::Limit`] (or [`ScanError::Deadline`]).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest compressed layer blob read from a [`Layer::reader`].
    pub max_compressed_layer_bytes: u64,
    /// Total uncompressed tar bytes over all layers (tar and gzip/zstd bomb guard).
    pub max_uncompressed_bytes: u64,
    /// Total tar entries over all layers (entry-count bomb guard).
    pub max_entries: u64,
    /// Largest metadata file (package database, lockfile, `METADATA`, ...) read into memory.
    /// Larger ones are skipped with a note.
    pub max_file_bytes: u64,
    /// Largest executable (Go / cargo-auditable binaries) or Java archive read into memory to be
    /// inspected. Larger ones are skipped. Only one is held at a time.
    pub max_binary_bytes: u64,
    /// Deepest path (in components) accepted in a layer.
    pub max_path_depth: usize,
    /// The scan fails with [`ScanError::Deadline`] once this instant has passed.
    pub deadline: Instant,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_compressed_layer_bytes: 2 << 30,
            max_uncompressed_bytes: 8 << 30,
            max_entries: 1_000_000,
            max_file_bytes: 16 << 20,
            max_binary_bytes: 128 << 20,
            max_path_depth: 64,
            deadline: Instant::now() + Duration::from_secs(300),
        }
    }
}

/// One layer blob of an image, in manifest order.
pub struct Layer<'a> {
    /// The descriptor's media type, e.g. `application/vnd.oci.image.layer.v1.tar+gzip`.
    pub media_type: String,
    /// The (compressed) blob.
    pub reader: Box<dyn std::io::Read + Send + 'a>,
}

/// Why a scan or an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The layer is malformed in a way that suggests an attack or corruption: truncated or
    /// garbage compression, an invalid tar, absurd header sizes.
    #[error("hostile or corrupt layer: {0}")]
    Hostile(String),
    /// A [`Limits`] bound was exceeded.
    #[error("scan limit exceeded: {0}")]
    Limit(String),
    /// [`Limits::deadline`] passed.
    #[error("scan deadline exceeded")]
    Deadline,
    /// A media type or archive feature this scanner does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Reading a layer or the database failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The vulnerability database is missing, corrupt, or the import source is unusable.
    #[error("vulnerability database: {0}")]
    Db(String),
}

/// The operating system of an image, from `/etc/os-release` (or `/usr/lib/os-release`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OsInfo {
    /// `ID`, e.g. `debian`, `ubuntu`, `alpine`.
    pub id: String,
    /// `VERSION_ID`, e.g. `12`, `22.04`, `3.19.1`.
    pub version_id: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
}

impl OsInfo {
    /// The OSV ecosystem name of this OS's package advisories, if OSV has one we can match:
    /// `Debian:12`, `Ubuntu:22.04` (osv.dev spells it `Ubuntu:22.04:LTS`; the `:LTS` suffix is
    /// dropped on import so LTS detection is not needed), `Alpine:v3.19`.
    pub fn osv_ecosystem(&self) -> Option<String> {
        let version = self.version_id.as_deref()?.trim();
        match self.id.as_str() {
            "debian" => {
                let major = version.split('.').next().filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))?;
                Some(format!("Debian:{major}"))
            }
            "ubuntu" => {
                let mut parts = version.split('.');
                let (major, minor) = (parts.next()?, parts.next()?);
                Some(format!("Ubuntu:{major}.{minor}"))
            }
            "alpine" => {
                let mut parts = version.split('.');
                let major = parts.next()?;
                let minor: String = parts.next()?.chars().take_while(|c| c.is_ascii_digit()).collect();
                if major.is_empty() || minor.is_empty() {
                    return None;
                }
                Some(format!("Alpine:v{major}.{minor}"))
            }
            _ => None,
        }
    }
}

/// Package ecosystems the inventory can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Ecosystem {
    Debian,
    Ubuntu,
    Alpine,
    PyPI,
    Npm,
    Go,
    CratesIo,
    Maven,
    /// Reserved: RPM databases are detected but not inventoried (see the crate docs).
    Rpm,
}

impl Ecosystem {
    /// A short stable name (`debian`, `pypi`, `crates.io`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Debian => "debian",
            Ecosystem::Ubuntu => "ubuntu",
            Ecosystem::Alpine => "alpine",
            Ecosystem::PyPI => "pypi",
            Ecosystem::Npm => "npm",
            Ecosystem::Go => "go",
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::Maven => "maven",
            Ecosystem::Rpm => "rpm",
        }
    }
}

/// One installed package found in the image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
    /// Binary package name (dpkg/apk), distribution name (PyPI, as written), `group:artifact`
    /// (Maven), module path (Go), crate or npm name.
    pub name: String,
    pub version: String,
    /// dpkg `Source:` / apk origin, when it differs from `name`.
    pub source_name: Option<String>,
    /// dpkg `Source: name (version)` when the source version differs from the binary one.
    pub source_version: Option<String>,
    /// Package URL.
    pub purl: String,
    /// Path in the image of the file that names the package (`!`-separated inside archives).
    pub location: String,
}

/// What [`inventory`] found in an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Inventory {
    pub os: Option<OsInfo>,
    /// Sorted by ecosystem, name, version; one entry per (ecosystem, name, version).
    pub packages: Vec<Package>,
    /// Things the scan saw but could not cover (an RPM database, an oversized package
    /// database, ...), for the caller to surface.
    pub notes: Vec<String>,
}

/// Finding severity, spelled as ECR spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Informational,
    Undefined,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
            Severity::Informational => "INFORMATIONAL",
            Severity::Undefined => "UNDEFINED",
        }
    }

    /// Band of a CVSS base score: 9.0+ critical, 7.0+ high, 4.0+ medium, 0.1+ low, 0 informational.
    pub fn from_cvss_score(score: f64) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else if score >= 0.1 {
            Severity::Low
        } else {
            Severity::Informational
        }
    }

    /// Parses [`Severity::as_str`] output (case-insensitively).
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.to_ascii_uppercase().as_str() {
            "CRITICAL" => Severity::Critical,
            "HIGH" => Severity::High,
            "MEDIUM" => Severity::Medium,
            "LOW" => Severity::Low,
            "INFORMATIONAL" => Severity::Informational,
            "UNDEFINED" => Severity::Undefined,
            _ => return None,
        })
    }
}

/// One vulnerable package.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The CVE id (from `aliases`, `upstream`, or the id itself) if any, else the OSV id.
    pub name: String,
    pub description: String,
    pub uri: String,
    pub severity: Severity,
    /// `package_name`, `package_version`, then `CVSS3_SCORE`, `CVSS3_VECTOR`, `CVSS2_SCORE`,
    /// `CVSS2_VECTOR` when present.
    pub attributes: Vec<(String, String)>,
    pub osv_id: String,
    /// The lowest version that fixes it (the advisory's `fixed` event above the installed
    /// version), if one is published. Not an ECR basic-scan attribute, so kept apart.
    pub fixed_in: Option<String>,
}

impl Finding {
    /// The value of attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Walks `layers` (in manifest order) and lists the installed packages.
///
/// Only package metadata files are read into memory (each within [`Limits::max_file_bytes`],
/// executables and Java archives within [`Limits::max_binary_bytes`]); everything else streams
/// through. Paths are normalised (`..` and absolute names are folded into the image root) for
/// matching only — nothing is ever written to disk.
pub fn inventory(layers: Vec<Layer<'_>>, limits: &Limits) -> Result<Inventory, ScanError> {
    layers::inventory(layers, limits)
}
