//! Hostile layers end in a typed error (or a harmless inventory), never a panic, an unbounded
//! allocation, or a write.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use berth_scan::{inventory, Layer, Limits, ScanError};
use common::*;

/// A raw tar entry with the name bytes written verbatim (no `..` or absolute-path checks).
fn raw_entry(name: &[u8], data: &[u8], kind: tar::EntryType) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn end_of_archive(mut v: Vec<u8>) -> Vec<u8> {
    v.extend_from_slice(&[0u8; 1024]);
    v
}

fn scan(layers: Vec<Layer<'static>>, limits: &Limits) -> Result<berth_scan::Inventory, ScanError> {
    inventory(layers, limits)
}

fn zeros_layer(size: usize) -> Vec<u8> {
    Tar::new().file("big.bin", &vec![0u8; size]).bytes()
}

#[test]
fn tar_bomb_hits_the_uncompressed_limit() {
    let limits = Limits { max_uncompressed_bytes: 1 << 20, ..Limits::default() };
    let err = scan(vec![layer(TAR, zeros_layer(4 << 20))], &limits).unwrap_err();
    assert!(matches!(err, ScanError::Limit(ref m) if m.contains("max_uncompressed_bytes")), "{err}");
}

#[test]
fn uncompressed_limit_is_total_over_layers() {
    let limits = Limits { max_uncompressed_bytes: 3 << 20, ..Limits::default() };
    let one = || layer(TAR, zeros_layer(1 << 20));
    assert!(scan(vec![one(), one()], &limits).is_ok());
    assert!(matches!(scan(vec![one(), one(), one()], &limits), Err(ScanError::Limit(_))));
}

#[test]
fn gzip_bomb_hits_the_uncompressed_limit() {
    let bomb = gz(&zeros_layer(64 << 20));
    assert!(bomb.len() < 1 << 20, "a real bomb: {} bytes compressed", bomb.len());
    let limits = Limits { max_uncompressed_bytes: 8 << 20, ..Limits::default() };
    let started = Instant::now();
    let err = scan(vec![layer(TAR_GZ, bomb)], &limits).unwrap_err();
    assert!(matches!(err, ScanError::Limit(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn zstd_bomb_hits_the_uncompressed_limit() {
    let limits = Limits { max_uncompressed_bytes: 8 << 20, ..Limits::default() };
    let err = scan(vec![layer(TAR_ZST, zst(&zeros_layer(64 << 20)))], &limits).unwrap_err();
    assert!(matches!(err, ScanError::Limit(_)), "{err}");
}

#[test]
fn compressed_layer_limit() {
    let limits = Limits { max_compressed_layer_bytes: 1000, ..Limits::default() };
    let err = scan(vec![layer(TAR_GZ, gz(&Tar::new().file("a", &garbage(100_000, 9)).bytes()))], &limits).unwrap_err();
    assert!(matches!(err, ScanError::Limit(ref m) if m.contains("max_compressed_layer_bytes")), "{err}");
}

#[test]
fn dot_dot_and_absolute_names_are_folded_into_the_root() {
    let escape = format!("../../../../../../tmp/berth-scan-escape-{}", std::process::id());
    let mut t = Vec::new();
    t.extend(raw_entry(b"../../../etc/os-release", &os_release("debian", "12", "Debian"), tar::EntryType::Regular));
    t.extend(raw_entry(b"/var/lib/dpkg/status", DPKG_STATUS.as_bytes(), tar::EntryType::Regular));
    t.extend(raw_entry(escape.as_bytes(), b"Name: x\nVersion: 1\n", tar::EntryType::Regular));
    t.extend(raw_entry(b"/usr/../../x-1.0.dist-info/METADATA", b"Name: x\nVersion: 1.0\n", tar::EntryType::Regular));
    let inv = scan(vec![layer(TAR, end_of_archive(t))], &Limits::default()).unwrap();
    assert_eq!(inv.os.unwrap().id, "debian");
    assert_eq!(inv.packages.len(), 6);
    let x = inv.packages.iter().find(|p| p.name == "x").unwrap();
    assert_eq!(x.location, "/x-1.0.dist-info/METADATA");
    // Nothing was written anywhere.
    assert!(!std::path::Path::new(&format!("/tmp/berth-scan-escape-{}", std::process::id())).exists());
}

#[test]
fn absurd_header_sizes_are_rejected() {
    // base-256 encoded 2^62 bytes
    let mut h = tar::Header::new_gnu();
    h.set_path("huge").unwrap();
    h.set_size(1 << 62);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let err = scan(vec![layer(TAR, end_of_archive(h.as_bytes().to_vec()))], &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Hostile(ref m) if m.contains("claims")), "{err}");

    // octal 4 GiB against a 1 GiB budget
    let mut h = tar::Header::new_gnu();
    h.set_path("var/lib/dpkg/status").unwrap();
    h.set_size(4 << 30);
    h.set_cksum();
    let limits = Limits { max_uncompressed_bytes: 1 << 30, ..Limits::default() };
    let err = scan(vec![layer(TAR_GZ, gz(&end_of_archive(h.as_bytes().to_vec())))], &limits).unwrap_err();
    assert!(matches!(err, ScanError::Limit(_)), "{err}");
}

#[test]
fn oversized_gnu_long_name_is_rejected() {
    let mut h = tar::Header::new_gnu();
    h.set_path("././@LongLink").unwrap();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(4 << 20);
    h.set_cksum();
    let mut t = h.as_bytes().to_vec();
    t.extend(vec![b'a'; 4 << 20]);
    let err = scan(vec![layer(TAR_GZ, gz(&end_of_archive(t)))], &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Hostile(ref m) if m.contains("GNU long name")), "{err}");
}

#[test]
fn very_deep_paths_are_rejected() {
    let deep = vec!["d"; 100].join("/") + "/f";
    let t = Tar::new().file(&deep, b"x").bytes(); // written with a GNU long name
    let err = scan(vec![layer(TAR, t)], &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Limit(ref m) if m.contains("max_path_depth")), "{err}");
    // The same path is fine under a higher limit, and long names are read.
    let t = Tar::new().file(&(vec!["d"; 100].join("/") + "/y-1.0.dist-info/METADATA"), b"Name: y\nVersion: 1.0\n").bytes();
    let inv = scan(vec![layer(TAR, t)], &Limits { max_path_depth: 200, ..Limits::default() }).unwrap();
    assert_eq!(inv.packages[0].name, "y");
}

#[test]
fn truncated_gzip_is_rejected() {
    let full = gz(&Tar::new().file("var/lib/dpkg/status", DPKG_STATUS.as_bytes()).file("a", &[1u8; 200_000]).bytes());
    for cut in [10, full.len() / 2, full.len() - 4] {
        let err = scan(vec![layer(TAR_GZ, full[..cut].to_vec())], &Limits::default()).unwrap_err();
        assert!(matches!(err, ScanError::Hostile(_)), "cut at {cut}: {err}");
    }
}

#[test]
fn truncated_tar_is_rejected() {
    let full = Tar::new().file("a", &[1u8; 10_000]).bytes();
    let err = scan(vec![layer(TAR, full[..5000].to_vec())], &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Hostile(_)), "{err}");
}

fn garbage(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn garbage_bytes_are_rejected() {
    let err = scan(vec![layer(TAR, garbage(4096, 1))], &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Hostile(_)), "{err}");
    let mut g = vec![0x1f, 0x8b, 8, 0];
    g.extend(garbage(4096, 2));
    let err = scan(vec![layer(TAR_GZ, g)], &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Hostile(_)), "{err}");
    let mut z = vec![0x28, 0xb5, 0x2f, 0xfd];
    z.extend(garbage(4096, 3));
    let err = scan(vec![layer(TAR_ZST, z)], &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Hostile(_)), "{err}");
}

#[test]
fn entry_count_bomb_hits_the_entry_limit() {
    let mut t = Tar::new();
    for i in 0..2000 {
        t = t.file(&format!("f{i}"), b"");
    }
    let limits = Limits { max_entries: 1000, ..Limits::default() };
    let err = scan(vec![layer(TAR_GZ, gz(&t.bytes()))], &limits).unwrap_err();
    assert!(matches!(err, ScanError::Limit(ref m) if m.contains("max_entries")), "{err}");
}

#[test]
fn deadline_already_passed() {
    let limits = Limits { deadline: Instant::now(), ..Limits::default() };
    assert!(matches!(scan(vec![layer(TAR, zeros_layer(1024))], &limits), Err(ScanError::Deadline)));
}

/// A reader that trickles data slowly.
struct Slow(std::io::Cursor<Vec<u8>>);

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(5));
        let n = buf.len().min(512);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn deadline_exceeded_mid_scan() {
    let limits = Limits { deadline: Instant::now() + Duration::from_millis(100), ..Limits::default() };
    let slow = Layer { media_type: TAR.into(), reader: Box::new(Slow(std::io::Cursor::new(zeros_layer(1 << 20)))) };
    let started = Instant::now();
    assert!(matches!(scan(vec![slow], &limits), Err(ScanError::Deadline)));
    assert!(started.elapsed() < Duration::from_secs(2));
}

struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "blob store went away"))
    }
}

#[test]
fn source_errors_are_io_errors() {
    let err = scan(vec![Layer { media_type: TAR_GZ.into(), reader: Box::new(Failing) }], &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Io(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset), "{err}");
}

#[test]
fn unsupported_media_types_and_compressions() {
    let t = Tar::new().file("a", b"x").bytes();
    assert!(matches!(
        scan(vec![layer("application/vnd.oci.image.layer.v1.tar+bzip2", t.clone())], &Limits::default()),
        Err(ScanError::Unsupported(_))
    ));
    assert!(matches!(scan(vec![layer("application/vnd.oci.image.config.v1+json", t)], &Limits::default()), Err(ScanError::Unsupported(_))));
    let mut xz = vec![0xfd, b'7', b'z', b'X', b'Z', 0];
    xz.extend([0u8; 100]);
    assert!(matches!(scan(vec![layer(TAR, xz)], &Limits::default()), Err(ScanError::Unsupported(_))));
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

#[test]
fn pax_size_override_is_refused_not_misparsed() {
    let mut t = raw_entry(b"PaxHeaders/a", &pax_record("size", "5"), tar::EntryType::XHeader);
    t.extend(raw_entry(b"a", &[1u8; 10], tar::EntryType::Regular));
    let err = scan(vec![layer(TAR, end_of_archive(t))], &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::Unsupported(ref m) if m.contains("PAX size")), "{err}");
    // A PAX path record is honoured.
    let mut t = raw_entry(b"PaxHeaders/x", &pax_record("path", "usr/lib/z-1.0.dist-info/METADATA"), tar::EntryType::XHeader);
    t.extend(raw_entry(b"short-name", b"Name: z\nVersion: 1.0\n", tar::EntryType::Regular));
    let inv = scan(vec![layer(TAR, end_of_archive(t))], &Limits::default()).unwrap();
    assert_eq!(inv.packages[0].location, "/usr/lib/z-1.0.dist-info/METADATA");
}

#[test]
fn jar_entry_count_bomb_hits_the_entry_limit() {
    let names: Vec<String> = (0..3000).map(|i| format!("e{i}")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    let t = Tar::new().file("app.jar", &zip(&entries)).bytes();
    let limits = Limits { max_entries: 1000, ..Limits::default() };
    assert!(matches!(scan(vec![layer(TAR, t)], &limits), Err(ScanError::Limit(_))));
}

#[test]
fn corrupt_package_files_never_panic() {
    // Mutate a realistic image byte by byte: every outcome must be Ok or a typed Err.
    let base = Tar::new()
        .file("etc/os-release", &os_release("alpine", "3.19.1", "Alpine"))
        .file("lib/apk/db/installed", APK_INSTALLED.as_bytes())
        .file("var/lib/dpkg/status", DPKG_STATUS.as_bytes())
        .file("app/package-lock.json", PACKAGE_LOCK_V3.as_bytes())
        .file("src/Cargo.lock", CARGO_LOCK.as_bytes())
        .file_mode("bin/app", &elf(&[(".go.buildinfo", &go_buildinfo_inline("go1.21.0", GO_MODINFO))]), 0o755)
        .file_mode("bin/rust", &auditable_elf(AUDITABLE_JSON), 0o755)
        .file("app.jar", &zip(&[("META-INF/maven/g/a/pom.properties", &pom_properties("g", "a", "1"))]))
        .bytes();
    let compressed = gz(&base);
    let noise = garbage(4 * 2000, 42);
    for i in 0..2000 {
        let (a, b) = (noise[4 * i] as usize, noise[4 * i + 1] as usize);
        let mut t = base.clone();
        let pos = (a * 256 + b) * base.len() / 65536;
        t[pos] ^= noise[4 * i + 2] | 1;
        let _ = scan(vec![layer(TAR, t)], &Limits::default());
        if i % 4 == 0 {
            let mut c = compressed.clone();
            let pos = (a * 256 + b) * compressed.len() / 65536;
            c[pos] ^= noise[4 * i + 3] | 1;
            let _ = scan(vec![layer(TAR_GZ, c)], &Limits::default());
        }
    }
}

#[test]
fn bomb_hidden_after_the_end_of_archive_is_still_counted() {
    let mut t = Tar::new().file("a", b"x").bytes();
    t.extend(vec![0u8; 64 << 20]);
    let limits = Limits { max_uncompressed_bytes: 8 << 20, ..Limits::default() };
    let err = scan(vec![layer(TAR_GZ, gz(&t))], &limits).unwrap_err();
    assert!(matches!(err, ScanError::Limit(ref m) if m.contains("max_uncompressed_bytes")), "{err}");
}
