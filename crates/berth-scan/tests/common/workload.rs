//! Workloads shared by the scale tests (small, asserted) and the benchmark example (full size,
//! timed): a large mixed layer and a Debian-shaped OSV export.

use std::io::Write;

use super::*;

/// Text-like, moderately compressible bytes (roughly what image layers hold).
pub fn filler(n: usize, seed: u64) -> Vec<u8> {
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

/// A mixed layer: `data_files` files of 50 KiB, 20 ELF executables of 1 MiB (one a Go binary),
/// 500 Python packages, a dpkg database and a package-lock. `data_files = 3600` is ~200 MiB.
pub fn synthetic_layer(data_files: usize) -> (Vec<u8>, usize) {
    let mut t = Tar::new()
        .file("etc/os-release", &os_release("debian", "12", "Debian GNU/Linux 12 (bookworm)"))
        .file("var/lib/dpkg/status", DPKG_STATUS.repeat(40).as_bytes())
        .file("app/package-lock.json", PACKAGE_LOCK_V3.as_bytes());
    let mut files = 3;
    for i in 0..data_files {
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

/// Writes `n` Debian-shaped OSV advisories (three releases each, 40-entry version lists, a fifth
/// of them on `linux`) under `dir_root`, 100 per directory.
pub fn debian_like_advisories(dir_root: &std::path::Path, n: u32) {
    for i in 0..n {
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
        let dir = dir_root.join(format!("{}", i % 100));
        std::fs::create_dir_all(&dir).expect("writing advisory");
        std::fs::File::create(dir.join(format!("DEBIAN-CVE-2024-{i:05}.json")))
            .expect("writing advisory")
            .write_all(json.as_bytes())
            .expect("writing advisory");
    }
}

/// 200 Debian 12 packages: `linux-libc-dev` (source `linux`) and `bin1..199` (sources `pkg1..199`),
/// all at version 1.20-3.
pub fn debian_like_inventory() -> berth_scan::Inventory {
    berth_scan::Inventory {
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
    }
}
