//! The benchmark workloads at a size the test suite can afford, with their results checked:
//! a large mixed layer inventories exactly what its small parts do, whatever the compression,
//! and a generated OSV export matches exactly what an independent model of it predicts.
//! Full-size timings: `cargo run --release -p berth-scan --example scan_bench`.

mod common;

use std::collections::BTreeSet;

use berth_scan::{inventory, Ecosystem, Inventory, Limits, VulnDb};
use common::workload::*;
use common::*;

fn names(inv: &Inventory, eco: Ecosystem) -> BTreeSet<(String, String)> {
    inv.packages.iter().filter(|p| p.ecosystem == eco).map(|p| (p.name.clone(), p.version.clone())).collect()
}

#[test]
fn a_large_mixed_layer_inventories_the_same_under_every_compression() {
    let (tar, _) = synthetic_layer(100);
    let plain = inventory(vec![layer(TAR, tar.clone())], &Limits::default()).unwrap();
    for (media, data) in [(TAR_GZ, gz(&tar)), (TAR_ZST, zst(&tar))] {
        assert_eq!(inventory(vec![layer(media, data)], &Limits::default()).unwrap(), plain, "{media}");
    }
    assert_eq!(names(&plain, Ecosystem::PyPI).len(), 500);
    let dpkg_only = Tar::new()
        .file("etc/os-release", &os_release("debian", "12", "Debian GNU/Linux 12 (bookworm)"))
        .file("var/lib/dpkg/status", DPKG_STATUS.as_bytes())
        .bytes();
    let lock_only = Tar::new().file("app/package-lock.json", PACKAGE_LOCK_V3.as_bytes()).bytes();
    let go = elf(&[(".text", &filler(1 << 10, 7)), (".go.buildinfo", &go_buildinfo_inline("go1.21.5", GO_MODINFO))]);
    let go_only = Tar::new().file_mode("usr/local/bin/go-app", &go, 0o755).bytes();
    for (part, eco) in [(dpkg_only, Ecosystem::Debian), (lock_only, Ecosystem::Npm), (go_only, Ecosystem::Go)] {
        let alone = inventory(vec![layer(TAR, part)], &Limits::default()).unwrap();
        assert!(!names(&alone, eco).is_empty(), "{eco:?}");
        assert_eq!(names(&plain, eco), names(&alone, eco), "{eco:?} packages in the large layer");
    }
}

#[test]
fn a_generated_osv_export_matches_what_a_model_of_it_predicts() {
    let n = 1_000u32;
    let src = tempfile::tempdir().unwrap();
    debian_like_advisories(src.path(), n);
    let root = tempfile::tempdir().unwrap();
    let summary = VulnDb::import(src.path(), root.path()).unwrap();
    assert_eq!(summary.advisories, u64::from(n));
    assert_eq!(summary.ecosystems.get("Debian:12"), Some(&u64::from(n)));
    let db = VulnDb::open(root.path()).unwrap().unwrap();
    let found: BTreeSet<(String, String)> = db
        .find(&debian_like_inventory())
        .iter()
        .map(|f| (f.osv_id.clone(), f.attribute("package_name").unwrap_or_default().to_string()))
        .collect();

    // Advisory i is on `linux` (i % 5 == 0) or `pkg{i}`, fixed in 1.{i%50}-{i%7}, and lists
    // 1.{0..40}-{i%7}. The inventory holds version 1.20-3 of linux-libc-dev (source linux) and
    // bin1..199 (sources pkg1..199).
    let mut expected = BTreeSet::new();
    for i in 0..n {
        let package = if i % 5 == 0 {
            "linux-libc-dev".to_string()
        } else if i < 200 {
            format!("bin{i}")
        } else {
            continue;
        };
        let (x, y) = (i % 50, i % 7);
        let below_fix = 20 < x || (20 == x && 3 < y);
        if below_fix || y == 3 {
            expected.insert((format!("DEBIAN-CVE-2024-{i:05}"), package));
        }
    }
    assert!(expected.len() > 100);
    assert_eq!(found, expected);
}
