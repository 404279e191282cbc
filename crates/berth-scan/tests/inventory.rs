mod common;

use berth_scan::{inventory, Ecosystem, Inventory, Limits, OsInfo};
use common::*;

type Row = (Ecosystem, String, String, Option<String>, String);

fn rows(inv: &Inventory) -> Vec<Row> {
    inv.packages.iter().map(|p| (p.ecosystem, p.name.clone(), p.version.clone(), p.source_name.clone(), p.location.clone())).collect()
}

fn row(e: Ecosystem, name: &str, version: &str, source: Option<&str>, location: &str) -> Row {
    (e, name.into(), version.into(), source.map(Into::into), location.into())
}

fn names(inv: &Inventory) -> Vec<String> {
    inv.packages.iter().map(|p| format!("{}@{}", p.name, p.version)).collect()
}

#[test]
fn debian_image_inventory_is_exact() {
    use Ecosystem::*;
    let inv = inventory(debian_image_layers(), &Limits::default()).unwrap();
    assert_eq!(
        inv.os,
        Some(OsInfo { id: "debian".into(), version_id: Some("12".into()), pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()) }),
        "resolved through the /etc/os-release symlink"
    );
    let status = "/var/lib/dpkg/status";
    let lock = "/app/package-lock.json";
    let go = "/usr/local/bin/app";
    assert_eq!(
        rows(&inv),
        vec![
            row(Debian, "bash", "5.2.15-2+b2", Some("bash"), status),
            row(Debian, "libc6", "2.36-9+deb12u3", Some("glibc"), status),
            row(Debian, "libssl3", "3.0.11-1~deb12u1", Some("openssl"), status),
            row(Debian, "openssl", "3.0.11-1~deb12u1", None, status),
            row(Debian, "zlib1g", "1:1.2.13.dfsg-1", Some("zlib"), status),
            row(PyPI, "Jinja2", "2.11.2", None, "/usr/local/lib/python3.11/site-packages/Jinja2-2.11.2.egg-info/PKG-INFO"),
            row(PyPI, "requests", "2.25.1", None, "/usr/lib/python3/dist-packages/requests-2.25.1.dist-info/METADATA"),
            row(Npm, "@babel/traverse", "7.23.2", None, lock),
            row(Npm, "foo", "1.0.0", None, lock),
            row(Npm, "lodash", "4.17.20", None, lock),
            row(Npm, "minimist", "1.2.5", None, lock),
            row(Go, "github.com/gin-gonic/gin", "v1.9.1", None, go),
            row(Go, "golang.org/x/net", "v0.7.0", None, go),
            row(Go, "stdlib", "v1.20.1", None, go),
            row(CratesIo, "regex", "1.5.4", None, "/usr/bin/rustapp"),
            row(CratesIo, "smallvec", "1.6.0", None, "/src/myapp/Cargo.lock"),
            row(CratesIo, "time", "0.1.44", None, "/src/myapp/Cargo.lock"),
            row(
                Maven,
                "com.fasterxml.jackson.core:jackson-databind",
                "2.9.10",
                None,
                "/opt/app/app.jar!/BOOT-INF/lib/jackson-databind-2.9.10.jar"
            ),
            row(Maven, "org.apache.logging.log4j:log4j-core", "2.14.1", None, "/opt/app/app.jar"),
        ]
    );
    let bash = &inv.packages[0];
    assert_eq!(bash.source_version.as_deref(), Some("5.2.15-2"));
    assert_eq!(bash.purl, "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12".replace("%2B", "+"));
    let purls: Vec<&str> = inv.packages.iter().map(|p| p.purl.as_str()).collect();
    assert!(purls.contains(&"pkg:pypi/jinja2@2.11.2"));
    assert!(purls.contains(&"pkg:npm/%40babel/traverse@7.23.2"));
    assert!(purls.contains(&"pkg:golang/golang.org/x/net@v0.7.0"));
    assert!(purls.contains(&"pkg:cargo/smallvec@1.6.0"));
    assert!(purls.contains(&"pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"));
    assert!(inv.notes.is_empty(), "{:?}", inv.notes);
}

#[test]
fn alpine_inventory() {
    let inv = inventory(alpine_image_layers(), &Limits::default()).unwrap();
    assert_eq!(inv.os.as_ref().unwrap().osv_ecosystem().as_deref(), Some("Alpine:v3.19"));
    assert_eq!(
        rows(&inv),
        vec![
            row(Ecosystem::Alpine, "busybox", "1.36.1-r15", Some("busybox"), "/lib/apk/db/installed"),
            row(Ecosystem::Alpine, "libcrypto3", "3.1.4-r1", Some("openssl"), "/lib/apk/db/installed"),
            row(Ecosystem::Alpine, "musl", "1.2.4_git20230717-r4", Some("musl"), "/lib/apk/db/installed"),
        ]
    );
    assert_eq!(inv.packages[1].purl, "pkg:apk/alpine/libcrypto3@3.1.4-r1?arch=x86_64&distro=alpine-3.19.1");
}

#[test]
fn whiteout_removes_package_database_of_lower_layer() {
    let lower = Tar::new()
        .file("etc/os-release", &os_release("debian", "12", "Debian"))
        .file("var/lib/dpkg/status", DPKG_STATUS.as_bytes())
        .bytes();
    let upper = Tar::new().whiteout("var/lib/dpkg/status").bytes();
    let inv = inventory(vec![layer(TAR, lower.clone()), layer(TAR_GZ, gz(&upper))], &Limits::default()).unwrap();
    assert!(inv.packages.is_empty(), "{:?}", names(&inv));
    assert!(inv.os.is_some());

    // Whiting out a parent directory removes everything below it.
    let upper = Tar::new().whiteout("var/lib/dpkg").bytes();
    let inv = inventory(vec![layer(TAR, lower.clone()), layer(TAR, upper)], &Limits::default()).unwrap();
    assert!(inv.packages.is_empty());

    // A later layer may bring the file back.
    let upper = Tar::new().whiteout("var/lib/dpkg/status").bytes();
    let again = Tar::new().file("var/lib/dpkg/status", b"Package: zlib1g\nVersion: 1:1.3\nSource: zlib\n").bytes();
    let inv = inventory(vec![layer(TAR, lower), layer(TAR, upper), layer(TAR, again)], &Limits::default()).unwrap();
    assert_eq!(names(&inv), vec!["zlib1g@1:1.3"]);
}

#[test]
fn opaque_directory_hides_lower_contents_but_keeps_its_own_layer() {
    let lower = Tar::new()
        .file("usr/lib/python3/site-packages/old-1.0.dist-info/METADATA", b"Name: old\nVersion: 1.0\n")
        .file("usr/lib/python3/site-packages/kept-1.0.dist-info/METADATA", b"Name: kept\nVersion: 1.0\n")
        .file("opt/other-2.0.dist-info/METADATA", b"Name: other\nVersion: 2.0\n")
        .bytes();
    // The new file comes before the opaque marker in the tar: order within a layer must not matter.
    let upper = Tar::new()
        .file("usr/lib/python3/site-packages/new-2.0.dist-info/METADATA", b"Name: new\nVersion: 2.0\n")
        .opaque("usr/lib/python3/site-packages")
        .bytes();
    let inv = inventory(vec![layer(TAR, lower), layer(TAR, upper)], &Limits::default()).unwrap();
    assert_eq!(names(&inv), vec!["new@2.0", "other@2.0"]);
}

#[test]
fn upper_layer_file_replaces_lower_and_directory_whiteout() {
    let lower = Tar::new()
        .file("app/package-lock.json", PACKAGE_LOCK_V3.as_bytes())
        .file("srv/node_modules/left-pad/package.json", br#"{"name":"left-pad","version":"1.1.0"}"#)
        .bytes();
    let upper = Tar::new()
        .file("app/package-lock.json", br#"{"lockfileVersion":3,"packages":{"node_modules/lodash":{"version":"4.17.21"}}}"#)
        .whiteout("srv/node_modules/left-pad")
        .bytes();
    let inv = inventory(vec![layer(TAR, lower), layer(TAR, upper)], &Limits::default()).unwrap();
    assert_eq!(names(&inv), vec!["lodash@4.17.21"]);
}

#[test]
fn distroless_status_d() {
    let base = Tar::new()
        .file("etc/os-release", &os_release("debian", "12", "Distroless"))
        .file("var/lib/dpkg/status.d/libssl3", b"Package: libssl3\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\nSource: openssl\n")
        .file("var/lib/dpkg/status.d/libssl3.md5sums", b"d41d8cd98f00b204e9800998ecf8427e  usr/lib/x86_64-linux-gnu/libssl.so.3\n")
        .file("var/lib/dpkg/status.d/tzdata", b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n")
        .bytes();
    let inv = inventory(vec![layer(TAR, base)], &Limits::default()).unwrap();
    assert_eq!(
        rows(&inv),
        vec![
            row(Ecosystem::Debian, "libssl3", "3.0.11-1~deb12u2", Some("openssl"), "/var/lib/dpkg/status.d/libssl3"),
            row(Ecosystem::Debian, "tzdata", "2024a-0+deb12u1", None, "/var/lib/dpkg/status.d/tzdata"),
        ]
    );
}

#[test]
fn node_modules_and_lockfile_v1() {
    let v1 = r#"{"name":"x","lockfileVersion":1,"dependencies":{
        "express":{"version":"4.17.1","dependencies":{"qs":{"version":"6.7.0"}}},
        "mocha":{"version":"10.0.0","dev":true},
        "string-width-cjs":{"version":"npm:string-width@4.2.3"}}}"#;
    let layer_bytes = Tar::new()
        .file("srv/package-lock.json", v1.as_bytes())
        .file("usr/lib/node_modules/npm/node_modules/semver/package.json", br#"{"name":"semver","version":"7.5.1","description":"x"}"#)
        .file("usr/lib/node_modules/npm/node_modules/@npmcli/arborist/package.json", br#"{"name":"@npmcli/arborist","version":"6.2.9"}"#)
        .file("usr/lib/node_modules/npm/node_modules/semver/test/fixtures/package.json", br#"{"name":"fixture","version":"0.0.0"}"#)
        .file("usr/lib/node_modules/npm/node_modules/.bin/package.json", br#"{"name":"bin","version":"0.0.0"}"#)
        .file("usr/lib/node_modules/npm/node_modules/broken/package.json", b"{not json")
        .bytes();
    let inv = inventory(vec![layer(TAR, layer_bytes)], &Limits::default()).unwrap();
    assert_eq!(names(&inv), vec!["@npmcli/arborist@6.2.9", "express@4.17.1", "qs@6.7.0", "semver@7.5.1", "string-width@4.2.3"]);
    assert!(!inv.notes.iter().any(|n| n.contains("no OSV ecosystem")));
}

#[test]
fn go_binary_with_pointer_format_buildinfo() {
    let modinfo = "path\tgithub.com/old/app\nmod\tgithub.com/old/app\tv0.3.0\th1:x=\ndep\tgithub.com/old/dep\tv1.0.0\th1:y=\n";
    let bin = elf(&[(".go.buildinfo", &go_buildinfo_pointers("go1.16.5", modinfo)), (".text", b"\xc3")]);
    let t = Tar::new().file_mode("bin/old", &bin, 0o755).file("bin/not-executable", &bin).bytes();
    let inv = inventory(vec![layer(TAR, t)], &Limits::default()).unwrap();
    assert_eq!(names(&inv), vec!["github.com/old/app@v0.3.0", "github.com/old/dep@v1.0.0", "stdlib@v1.16.5"]);
    assert!(inv.packages.iter().all(|p| p.location == "/bin/old"));
}

#[test]
fn go_binary_without_section_headers_uses_writable_segment() {
    // Strip the section header table: the blob is then found in the RW PT_LOAD segment.
    let mut bin = elf(&[(".go.buildinfo", &go_buildinfo_inline("go1.22rc1", "path\tx\nmod\texample.com/x\tv1.0.0\t\n"))]);
    bin[0x28..0x30].copy_from_slice(&0u64.to_le_bytes()); // e_shoff
    bin[0x3c..0x40].copy_from_slice(&[0, 0, 0, 0]); // e_shnum, e_shstrndx
    let inv = inventory(vec![layer(TAR, Tar::new().file_mode("x", &bin, 0o755).bytes())], &Limits::default()).unwrap();
    assert_eq!(names(&inv), vec!["example.com/x@v1.0.0", "stdlib@v1.22.0-rc.1"]);
}

#[test]
fn rpm_database_is_reported_not_inventoried() {
    let t = Tar::new()
        .file("etc/os-release", &os_release("rhel", "9.3", "RHEL"))
        .file("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0")
        .bytes();
    let inv = inventory(vec![layer(TAR, t)], &Limits::default()).unwrap();
    assert!(inv.packages.is_empty());
    assert_eq!(inv.notes.len(), 1);
    assert!(inv.notes[0].contains("RPM database at /var/lib/rpm/rpmdb.sqlite"), "{:?}", inv.notes);
}

#[test]
fn oversized_metadata_is_skipped_with_a_note() {
    let big = vec![b'#'; 4096];
    let t = Tar::new().file("var/lib/dpkg/status", &big).file("x-1.0.dist-info/METADATA", b"Name: x\nVersion: 1.0\n").bytes();
    let limits = Limits { max_file_bytes: 1024, ..Limits::default() };
    let inv = inventory(vec![layer(TAR, t)], &limits).unwrap();
    assert_eq!(names(&inv), vec!["x@1.0"]);
    assert!(inv.notes.iter().any(|n| n.contains("skipped /var/lib/dpkg/status")), "{:?}", inv.notes);
    assert!(!inv.notes.iter().any(|n| n.contains("no OSV ecosystem")));
}

#[test]
fn hardlinked_metadata_and_os_packages_without_os() {
    let t = Tar::new()
        .file("a/y-2.0.dist-info/METADATA", b"Name: y\nVersion: 2.0\n")
        .hardlink("b/y-2.0.dist-info/METADATA", "a/y-2.0.dist-info/METADATA")
        .file("var/lib/dpkg/status", b"Package: p\nVersion: 1\n")
        .bytes();
    let inv = inventory(vec![layer(TAR, t)], &Limits::default()).unwrap();
    assert_eq!(names(&inv), vec!["p@1", "y@2.0"], "deduplicated by name and version");
    assert!(inv.notes.iter().any(|n| n.contains("no OSV ecosystem")), "{:?}", inv.notes);
}

#[test]
fn mislabelled_and_unlabelled_compression_is_detected_by_magic() {
    let t = Tar::new().file("x-1.0.dist-info/METADATA", b"Name: x\nVersion: 1.0\n").bytes();
    for l in [layer(TAR, gz(&t)), layer(TAR_GZ, t.clone()), layer("", zst(&t)), layer(TAR_GZ, zst(&t))] {
        let inv = inventory(vec![l], &Limits::default()).unwrap();
        assert_eq!(names(&inv), vec!["x@1.0"]);
    }
}

#[test]
fn empty_image() {
    let inv = inventory(vec![], &Limits::default()).unwrap();
    assert_eq!(inv, Inventory::default());
    let inv = inventory(vec![layer(TAR, Vec::new())], &Limits::default()).unwrap();
    assert!(inv.packages.is_empty());
}
