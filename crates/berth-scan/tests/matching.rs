mod common;

use std::path::{Path, PathBuf};

use berth_scan::{inventory, Finding, Inventory, Limits, Severity, VulnDb};
use common::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv")
}

fn db() -> (tempfile::TempDir, VulnDb) {
    let root = tempfile::tempdir().unwrap();
    VulnDb::import(&fixtures(), root.path()).unwrap();
    let db = VulnDb::open(root.path()).unwrap().expect("imported");
    (root, db)
}

/// (name, osv id, package, version, severity)
fn keyed(findings: &[Finding]) -> Vec<(String, String, String, String, Severity)> {
    let mut v: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                f.osv_id.clone(),
                f.attribute("package_name").unwrap().to_string(),
                f.attribute("package_version").unwrap().to_string(),
                f.severity,
            )
        })
        .collect();
    v.sort();
    v
}

fn k(name: &str, id: &str, pkg: &str, ver: &str, sev: Severity) -> (String, String, String, String, Severity) {
    (name.into(), id.into(), pkg.into(), ver.into(), sev)
}

fn debian_inventory() -> Inventory {
    inventory(debian_image_layers(), &Limits::default()).unwrap()
}

#[test]
fn debian_image_findings_are_exact() {
    let (_root, db) = db();
    let findings = db.find(&debian_inventory());
    let mut expected = vec![
        k("CVE-2023-5678", "DEBIAN-CVE-2023-5678", "openssl", "3.0.11-1~deb12u1", Severity::Medium),
        k("CVE-2023-5678", "DEBIAN-CVE-2023-5678", "libssl3", "3.0.11-1~deb12u1", Severity::Medium),
        k("CVE-2022-37434", "DEBIAN-CVE-2022-37434", "zlib1g", "1:1.2.13.dfsg-1", Severity::High),
        k("CVE-2023-4911", "DEBIAN-CVE-2023-4911", "libc6", "2.36-9+deb12u3", Severity::Critical),
        k("CVE-2022-3715", "DEBIAN-CVE-2022-3715", "bash", "5.2.15-2+b2", Severity::Low),
        k("CVE-2023-32681", "GHSA-j8r2-6x86-q33q", "requests", "2.25.1", Severity::Medium),
        k("CVE-2020-28493", "PYSEC-2021-66", "Jinja2", "2.11.2", Severity::Low),
        k("CVE-2021-23337", "GHSA-35jh-r3h4-6jhm", "lodash", "4.17.20", Severity::High),
        k("CVE-2021-44906", "GHSA-xvch-5gv4-984h", "minimist", "1.2.5", Severity::Critical),
        k("CVE-2023-3978", "GO-2023-1988", "golang.org/x/net", "v0.7.0", Severity::Undefined),
        k("CVE-2023-24532", "GO-2023-1621", "stdlib", "v1.20.1", Severity::Informational),
        k("CVE-2021-25900", "RUSTSEC-2021-0003", "smallvec", "1.6.0", Severity::Critical),
        k("CVE-2020-26235", "RUSTSEC-2020-0071", "time", "0.1.44", Severity::Medium),
        k("CVE-2022-24713", "RUSTSEC-2022-0013", "regex", "1.5.4", Severity::High),
        k("CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q", "org.apache.logging.log4j:log4j-core", "2.14.1", Severity::Critical),
        k("CVE-2020-25649", "GHSA-288c-cq4h-88gq", "com.fasterxml.jackson.core:jackson-databind", "2.9.10", Severity::High),
    ];
    expected.sort();
    assert_eq!(keyed(&findings), expected);

    // Most severe first.
    let order: Vec<Severity> = findings.iter().map(|f| f.severity).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
}

#[test]
fn finding_details() {
    let (_root, db) = db();
    let findings = db.find(&debian_inventory());
    let glibc = findings.iter().find(|f| f.osv_id == "DEBIAN-CVE-2023-4911").unwrap();
    assert_eq!(glibc.name, "CVE-2023-4911");
    assert_eq!(glibc.uri, "https://security-tracker.debian.org/tracker/CVE-2023-4911");
    assert!(glibc.description.starts_with("A buffer overflow was discovered"));
    assert_eq!(
        glibc.attributes,
        vec![
            ("package_name".to_string(), "libc6".to_string()),
            ("package_version".to_string(), "2.36-9+deb12u3".to_string()),
            ("CVSS3_SCORE".to_string(), "9.8".to_string()),
            ("CVSS3_VECTOR".to_string(), "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".to_string()),
        ]
    );
    let log4j = findings.iter().find(|f| f.osv_id == "GHSA-jfh8-c2jp-5v3q").unwrap();
    assert_eq!(log4j.attribute("CVSS3_SCORE"), Some("10.0"));
    assert_eq!(log4j.fixed_in.as_deref(), Some("2.15.0"), "2.14.1 is in [2.13.0, 2.15.0)");
    assert_eq!(glibc.fixed_in, None, "the advisory names no fixed version");
    assert_eq!(log4j.uri, "https://osv.dev/vulnerability/GHSA-jfh8-c2jp-5v3q");
    assert_eq!(log4j.description, "Remote code injection in Log4j");
    let jackson = findings.iter().find(|f| f.osv_id == "GHSA-288c-cq4h-88gq").unwrap();
    assert_eq!(jackson.attribute("CVSS3_SCORE"), None);
    assert_eq!(jackson.attribute("CVSS2_VECTOR"), Some("AV:N/AC:L/Au:N/C:P/I:P/A:P"));
    assert_eq!(jackson.attribute("CVSS2_SCORE"), Some("7.5"));
    let minimist = findings.iter().find(|f| f.osv_id == "GHSA-xvch-5gv4-984h").unwrap();
    assert_eq!(minimist.severity.as_str(), "CRITICAL");
    let stdlib = findings.iter().find(|f| f.osv_id == "GO-2023-1621").unwrap();
    assert_eq!(stdlib.severity.as_str(), "INFORMATIONAL");
    assert_eq!(stdlib.attribute("CVSS3_SCORE"), Some("0.0"));
}

#[test]
fn alpine_findings_match_on_origin() {
    let (_root, db) = db();
    let inv = inventory(alpine_image_layers(), &Limits::default()).unwrap();
    let mut expected = vec![
        k("CVE-2023-5363", "ALPINE-CVE-2023-5363", "libcrypto3", "3.1.4-r1", Severity::Undefined),
        k("CVE-2025-26519", "ALPINE-CVE-2025-26519", "musl", "1.2.4_git20230717-r4", Severity::High),
    ];
    expected.sort();
    assert_eq!(keyed(&db.find(&inv)), expected);
}

/// The affected-level Ubuntu priority ("low") is more specific than the record-level one ("medium").
#[test]
fn ubuntu_findings_use_lts_ecosystem_and_ubuntu_priority() {
    let (_root, db) = db();
    let inv = inventory(ubuntu_image_layers(), &Limits::default()).unwrap();
    assert_eq!(inv.os.as_ref().unwrap().osv_ecosystem().as_deref(), Some("Ubuntu:22.04"));
    assert_eq!(keyed(&db.find(&inv)), vec![k("CVE-2024-0727", "UBUNTU-CVE-2024-0727", "libssl3", "3.0.2-0ubuntu1.10", Severity::Low)]);
}

#[test]
fn status_counts_and_import_summary() {
    let root = tempfile::tempdir().unwrap();
    assert!(VulnDb::open(root.path()).unwrap().is_none(), "never imported");
    let summary = VulnDb::import(&fixtures(), root.path()).unwrap();
    assert_eq!(summary.withdrawn, 1);
    assert_eq!(summary.skipped, 1, "the broken JSON file");
    assert_eq!(summary.advisories, 34);
    let db = VulnDb::open(root.path()).unwrap().unwrap();
    let status = db.status();
    assert_eq!(status.version, summary.version);
    assert_eq!(status.imported_at, summary.imported_at);
    assert_eq!(status.advisories, 34);
    assert_eq!(status.ecosystems.get("Debian:12"), Some(&7));
    assert_eq!(status.ecosystems.get("Debian:11"), Some(&3));
    assert_eq!(status.ecosystems.get("Ubuntu:22.04"), Some(&1));
    assert_eq!(status.ecosystems.get("Ubuntu:Pro:22.04"), Some(&1));
    assert_eq!(status.ecosystems.get("PyPI"), Some(&5));
    assert_eq!(status.ecosystems.get("npm"), Some(&4));
    assert_eq!(status.ecosystems.get("Go"), Some(&5));
    assert_eq!(status.ecosystems.get("crates.io"), Some(&4));
    assert_eq!(status.ecosystems.get("Maven"), Some(&3));
    assert_eq!(status.ecosystems.get("Alpine:v3.19"), Some(&3));
    assert_eq!(status.ecosystems.get("Alpine:v3.18"), Some(&1));
}

fn zip_dir(dir: &Path) -> Vec<u8> {
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                // osv.dev zips are flat: one <ID>.json per advisory.
                entries.push((e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    let refs: Vec<(&str, &[u8])> = entries.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    zip(&refs)
}

#[test]
fn zip_import_swaps_versions_and_removes_old_ones() {
    let root = tempfile::tempdir().unwrap();
    let first = VulnDb::import(&fixtures(), root.path()).unwrap();
    let old = VulnDb::open(root.path()).unwrap().unwrap();

    let zip_path = root.path().join("all.zip");
    std::fs::write(&zip_path, zip_dir(&fixtures())).unwrap();
    let store = root.path().join("db");
    std::fs::create_dir(&store).unwrap();
    // Import twice into one root: the second replaces the first.
    VulnDb::import(&fixtures(), &store).unwrap();
    let second = VulnDb::import(&zip_path, &store).unwrap();
    assert_eq!(second.advisories, 34);
    let versions: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("v-") || n.starts_with("tmp-"))
        .collect();
    assert_eq!(versions, vec![format!("v-{}", second.version)]);
    assert_eq!(std::fs::read_to_string(store.join("current")).unwrap().trim(), format!("v-{}", second.version));

    let db = VulnDb::open(&store).unwrap().unwrap();
    assert_eq!(db.status().version, second.version);
    let inv = debian_inventory();
    assert_eq!(keyed(&db.find(&inv)), keyed(&old.find(&inv)));

    // A database opened before a re-import keeps working after its directory is removed.
    VulnDb::import(&fixtures(), root.path()).unwrap();
    assert!(!root.path().join(format!("v-{}", first.version)).exists());
    assert_eq!(old.try_find(&inv).unwrap().len(), 16);
}

#[test]
fn import_rejects_unusable_sources() {
    let root = tempfile::tempdir().unwrap();
    let bogus = root.path().join("notes.txt");
    std::fs::write(&bogus, "hello").unwrap();
    assert!(VulnDb::import(&bogus, &root.path().join("db")).is_err());
    assert!(VulnDb::import(&root.path().join("missing"), &root.path().join("db")).is_err());
    assert!(VulnDb::open(&root.path().join("db")).unwrap().is_none(), "a failed import leaves nothing current");
}

#[test]
fn find_without_os_matches_only_language_packages() {
    let (_root, db) = db();
    let mut inv = debian_inventory();
    inv.os = None;
    let findings = db.find(&inv);
    assert!(findings.iter().all(|f| !f.osv_id.starts_with("DEBIAN") && !f.osv_id.starts_with("DSA")));
    assert_eq!(findings.len(), 11);
}

#[test]
fn vulndb_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<VulnDb>();
    let (_root, db) = db();
    let db = std::sync::Arc::new(db);
    let inv = std::sync::Arc::new(debian_inventory());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (db, inv) = (db.clone(), inv.clone());
            std::thread::spawn(move || db.try_find(&inv).unwrap().len())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 16);
    }
}
