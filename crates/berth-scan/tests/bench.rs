//! Throughput of `inventory` on a synthetic 200 MiB layer. Ignored by default; run with
//! `cargo test -p berth-scan --release --test bench -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use berth_scan::{inventory, Limits};
use common::*;

/// Text-like, moderately compressible bytes (roughly what image layers hold).
fn filler(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&[u8]; 16] = [
        b"lib",
        b"usr",
        b"share",
        b"0x7f",
        b"return",
        b"static",
        b"const",
        b"\x00\x00\x00",
        b"\n",
        b"{",
        b"}",
        b"int",
        b"void",
        b"zlib",
        b"\xff\xfe",
        b" ",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x & 15) as usize]);
        if x & 0x300 == 0 {
            out.push((x >> 32) as u8);
        }
    }
    out.truncate(n);
    out
}

fn synthetic_layer() -> (Vec<u8>, usize) {
    let mut t = Tar::new()
        .file("etc/os-release", &os_release("debian", "12", "Debian GNU/Linux 12 (bookworm)"))
        .file("var/lib/dpkg/status", DPKG_STATUS.repeat(40).as_bytes())
        .file("app/package-lock.json", PACKAGE_LOCK_V3.as_bytes());
    let mut files = 3;
    // 180 MiB of ordinary files in 3600 files of 50 KiB.
    for i in 0..3600 {
        t = t.file(&format!("usr/share/data/{}/file-{i}.dat", i % 64), &filler(50 << 10, i as u64 + 1));
        files += 1;
    }
    // 20 MiB of executables: ELF files that are read and parsed, one a Go binary.
    let go = elf(&[(".text", &filler(1 << 20, 7)), (".go.buildinfo", &go_buildinfo_inline("go1.21.5", GO_MODINFO))]);
    t = t.file_mode("usr/local/bin/go-app", &go, 0o755);
    for i in 0..19 {
        t = t.file_mode(&format!("usr/bin/tool-{i}"), &elf(&[(".text", &filler(1 << 20, 100 + i))]), 0o755);
        files += 1;
    }
    // Many small Python packages.
    for i in 0..500 {
        t = t.file(
            &format!("usr/lib/python3/dist-packages/pkg{i}-1.{i}.dist-info/METADATA"),
            format!("Name: pkg{i}\nVersion: 1.{i}\n").as_bytes(),
        );
        files += 1;
    }
    (t.bytes(), files)
}

#[test]
#[ignore]
fn inventory_200mib() {
    let (tar, files) = synthetic_layer();
    let mib = tar.len() as f64 / (1 << 20) as f64;
    let gz = gz(&tar);
    let zs = zst(&tar);
    println!(
        "layer: {mib:.1} MiB uncompressed, {files} files; gzip {:.1} MiB, zstd {:.1} MiB",
        gz.len() as f64 / 1048576.0,
        zs.len() as f64 / 1048576.0
    );
    for (name, media, data) in [("tar", TAR, tar.clone()), ("tar+gzip", TAR_GZ, gz), ("tar+zstd", TAR_ZST, zs)] {
        let mut best = f64::MAX;
        let mut count = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let inv = inventory(vec![layer(media, data.clone())], &Limits::default()).unwrap();
            best = best.min(started.elapsed().as_secs_f64());
            count = inv.packages.len();
        }
        println!("{name:>9}: {:.0} ms ({:.0} MiB/s uncompressed), {count} packages", best * 1000.0, mib / best);
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// 50,000 Debian-shaped OSV files (three releases each, version lists, a fifth of them on
/// `linux`) imported from a directory, then matched.
#[test]
#[ignore]
fn import_50k_debian_like_advisories() {
    use std::io::Write;
    let src = tempfile::tempdir().unwrap();
    for i in 0..50_000u32 {
        let pkg = if i % 5 == 0 { "linux".to_string() } else { format!("pkg{}", i % 5000) };
        let versions: Vec<String> = (0..40).map(|v| format!("\"1.{v}-{}\"", i % 7)).collect();
        let affected: Vec<String> = [11, 12, 13]
            .iter()
            .map(|rel| {
                format!(
                    r#"{{"package":{{"ecosystem":"Debian:{rel}","name":"{pkg}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"1.{}-{}"}}]}}],"versions":[{}],"ecosystem_specific":{{"urgency":"medium"}}}}"#,
                    i % 50,
                    i % 7,
                    versions.join(",")
                )
            })
            .collect();
        let json = format!(
            r#"{{"id":"DEBIAN-CVE-2024-{i:05}","modified":"2024-06-01T00:00:00Z","upstream":["CVE-2024-{i:05}"],"details":"{}","affected":[{}],"references":[{{"type":"WEB","url":"https://security-tracker.debian.org/tracker/CVE-2024-{i:05}"}}]}}"#,
            "A flaw was found. ".repeat(20),
            affected.join(",")
        );
        let dir = src.path().join(format!("{}", i % 100));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::File::create(dir.join(format!("DEBIAN-CVE-2024-{i:05}.json"))).unwrap().write_all(json.as_bytes()).unwrap();
    }
    let before = peak_rss_mib();
    let db_root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let summary = berth_scan::VulnDb::import(src.path(), db_root.path()).unwrap();
    let import = started.elapsed();
    println!(
        "import: {} advisories in {:.1} s; peak RSS {:.0} MiB (before import {:.0} MiB)",
        summary.advisories,
        import.as_secs_f64(),
        peak_rss_mib(),
        before
    );
    let db = berth_scan::VulnDb::open(db_root.path()).unwrap().unwrap();
    let inv = berth_scan::Inventory {
        os: Some(berth_scan::OsInfo { id: "debian".into(), version_id: Some("12".into()), pretty_name: None }),
        packages: (0..200)
            .map(|i| berth_scan::Package {
                ecosystem: berth_scan::Ecosystem::Debian,
                name: if i == 0 { "linux-libc-dev".into() } else { format!("bin{i}") },
                version: "1.20-3".into(),
                source_name: Some(if i == 0 { "linux".into() } else { format!("pkg{i}") }),
                source_version: None,
                purl: String::new(),
                location: "/var/lib/dpkg/status".into(),
            })
            .collect(),
        notes: vec![],
    };
    let started = Instant::now();
    let findings = db.find(&inv);
    println!("find: {} findings for 200 packages in {:.0} ms", findings.len(), started.elapsed().as_secs_f64() * 1000.0);
    assert_eq!(summary.advisories, 50_000);
}
