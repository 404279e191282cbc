//! Builders for test layers: tar archives, compression, ELF binaries with Go build info or
//! cargo-auditable data, and Java archives.
#![allow(dead_code)]

use std::io::Write;

use berth_scan::Layer;

pub mod workload;

pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const TAR_ZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A tar layer under construction.
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Tar {
    fn default() -> Self {
        Tar::new()
    }
}

impl Tar {
    pub fn new() -> Tar {
        Tar { b: tar::Builder::new(Vec::new()) }
    }

    pub fn file_mode(mut self, path: &str, data: &[u8], mode: u32) -> Tar {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn file(self, path: &str, data: &[u8]) -> Tar {
        self.file_mode(path, data, 0o644)
    }

    pub fn dir(mut self, path: &str) -> Tar {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Directory);
        self.b.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Tar {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_entry_type(tar::EntryType::Symlink);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Tar {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Link);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    /// `.wh.<name>` next to `path`.
    pub fn whiteout(self, path: &str) -> Tar {
        let (dir, name) = path.rsplit_once('/').unwrap();
        self.file(&format!("{dir}/.wh.{name}"), b"")
    }

    pub fn opaque(self, dir: &str) -> Tar {
        self.file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    pub fn bytes(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zst(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

pub fn layer(media_type: &str, data: Vec<u8>) -> Layer<'static> {
    Layer { media_type: media_type.to_string(), reader: Box::new(std::io::Cursor::new(data)) }
}

pub fn os_release(id: &str, version_id: &str, pretty: &str) -> Vec<u8> {
    format!("PRETTY_NAME=\"{pretty}\"\nNAME=\"{pretty}\"\nVERSION_ID=\"{version_id}\"\nID={id}\n").into_bytes()
}

// ---------------------------------------------------------------------------------------
// ELF

/// Base virtual address of the test binaries.
pub const BASE: u64 = 0x40_0000;
/// File offset (and `BASE`-relative address) of the first section's data.
pub const FIRST_SECTION_OFFSET: u64 = 128;

/// A minimal little-endian x86-64 ELF executable: one RW `PT_LOAD` segment mapping the whole
/// file at `BASE`, and the given sections (16-byte aligned, addresses = `BASE` + offset),
/// followed by `.shstrtab` and the section headers.
pub fn elf(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = vec![0u8; FIRST_SECTION_OFFSET as usize];
    let mut shstrtab = vec![0u8];
    let mut headers: Vec<(u32, u32, u64, u64, u64)> = Vec::new(); // name, type, flags, offset, size
    for (name, bytes) in sections {
        while !data.len().is_multiple_of(16) {
            data.push(0);
        }
        let name_off = shstrtab.len() as u32;
        shstrtab.extend_from_slice(name.as_bytes());
        shstrtab.push(0);
        headers.push((name_off, 1, 0x3, data.len() as u64, bytes.len() as u64));
        data.extend_from_slice(bytes);
    }
    let shstr_name = shstrtab.len() as u32;
    shstrtab.extend_from_slice(b".shstrtab\0");
    let shstr_off = data.len() as u64;
    data.extend_from_slice(&shstrtab);
    headers.push((shstr_name, 3, 0, shstr_off, shstrtab.len() as u64));
    while !data.len().is_multiple_of(8) {
        data.push(0);
    }
    let shoff = data.len() as u64;
    // null section header
    data.extend_from_slice(&[0u8; 64]);
    for (name, ty, flags, off, size) in &headers {
        let mut sh = Vec::with_capacity(64);
        sh.extend_from_slice(&name.to_le_bytes());
        sh.extend_from_slice(&ty.to_le_bytes());
        sh.extend_from_slice(&flags.to_le_bytes());
        sh.extend_from_slice(&(if *ty == 1 { BASE + off } else { 0 }).to_le_bytes());
        sh.extend_from_slice(&off.to_le_bytes());
        sh.extend_from_slice(&size.to_le_bytes());
        sh.extend_from_slice(&0u32.to_le_bytes());
        sh.extend_from_slice(&0u32.to_le_bytes());
        sh.extend_from_slice(&(if *ty == 1 { 16u64 } else { 1 }).to_le_bytes());
        sh.extend_from_slice(&0u64.to_le_bytes());
        data.extend_from_slice(&sh);
    }
    let total = data.len() as u64;
    let shnum = headers.len() as u16 + 1;
    let mut eh = Vec::with_capacity(64);
    eh.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    eh.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    eh.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    eh.extend_from_slice(&1u32.to_le_bytes());
    eh.extend_from_slice(&BASE.to_le_bytes()); // entry
    eh.extend_from_slice(&64u64.to_le_bytes()); // phoff
    eh.extend_from_slice(&shoff.to_le_bytes());
    eh.extend_from_slice(&0u32.to_le_bytes());
    eh.extend_from_slice(&64u16.to_le_bytes());
    eh.extend_from_slice(&56u16.to_le_bytes());
    eh.extend_from_slice(&1u16.to_le_bytes());
    eh.extend_from_slice(&64u16.to_le_bytes());
    eh.extend_from_slice(&shnum.to_le_bytes());
    eh.extend_from_slice(&(shnum - 1).to_le_bytes());
    data[..64].copy_from_slice(&eh);
    let mut ph = Vec::with_capacity(56);
    ph.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    ph.extend_from_slice(&6u32.to_le_bytes()); // PF_R | PF_W
    ph.extend_from_slice(&0u64.to_le_bytes()); // offset
    ph.extend_from_slice(&BASE.to_le_bytes()); // vaddr
    ph.extend_from_slice(&BASE.to_le_bytes()); // paddr
    ph.extend_from_slice(&total.to_le_bytes()); // filesz
    ph.extend_from_slice(&total.to_le_bytes()); // memsz
    ph.extend_from_slice(&0x1000u64.to_le_bytes());
    data[64..120].copy_from_slice(&ph);
    data
}

const INFO_START: [u8; 16] = [0x30, 0x77, 0xaf, 0x0c, 0x92, 0x74, 0x08, 0x02, 0x41, 0xe1, 0xc1, 0x07, 0xe6, 0xd6, 0x18, 0xe6];
const INFO_END: [u8; 16] = [0xf9, 0x32, 0x43, 0x31, 0x86, 0x18, 0x20, 0x72, 0x00, 0x82, 0x42, 0x10, 0x41, 0x16, 0xd8, 0xf2];

fn uvarint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The module info string as the Go linker embeds it (sentinel-wrapped `BuildInfo.String()`).
pub fn go_modinfo(text: &str) -> Vec<u8> {
    let mut m = INFO_START.to_vec();
    m.extend_from_slice(text.as_bytes());
    m.extend_from_slice(&INFO_END);
    m
}

/// A Go 1.18+ `.go.buildinfo` section: 32-byte header (magic, pointer size 8, flags
/// `flagsVersionInl`), then the uvarint-prefixed version and module info strings.
pub fn go_buildinfo_inline(go_version: &str, modinfo_text: &str) -> Vec<u8> {
    let mut b = b"\xff Go buildinf:".to_vec();
    b.push(8);
    b.push(2);
    b.resize(32, 0);
    uvarint(go_version.len() as u64, &mut b);
    b.extend_from_slice(go_version.as_bytes());
    let m = go_modinfo(modinfo_text);
    uvarint(m.len() as u64, &mut b);
    b.extend_from_slice(&m);
    b
}

/// A pre-1.18 `.go.buildinfo` section, assumed to be the first section of the ELF (at
/// `BASE + FIRST_SECTION_OFFSET`): the header holds pointers to two Go string headers
/// (data pointer, length) which point at the bytes.
pub fn go_buildinfo_pointers(go_version: &str, modinfo_text: &str) -> Vec<u8> {
    let addr = BASE + FIRST_SECTION_OFFSET;
    let m = go_modinfo(modinfo_text);
    // layout: [0..32) header, [32..48) version header, [48..64) modinfo header, 64.. bytes
    let vers_bytes = 64u64;
    let mod_bytes = vers_bytes + go_version.len() as u64;
    let mut b = b"\xff Go buildinf:".to_vec();
    b.push(8);
    b.push(0);
    b.extend_from_slice(&(addr + 32).to_le_bytes());
    b.extend_from_slice(&(addr + 48).to_le_bytes());
    b.extend_from_slice(&(addr + vers_bytes).to_le_bytes());
    b.extend_from_slice(&(go_version.len() as u64).to_le_bytes());
    b.extend_from_slice(&(addr + mod_bytes).to_le_bytes());
    b.extend_from_slice(&(m.len() as u64).to_le_bytes());
    b.extend_from_slice(go_version.as_bytes());
    b.extend_from_slice(&m);
    b
}

/// An ELF with a `.dep-v0` section holding zlib-compressed cargo-auditable JSON.
pub fn auditable_elf(json: &str) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(json.as_bytes()).unwrap();
    let compressed = z.finish().unwrap();
    elf(&[(".text", b"\x90\x90\x90\xc3"), (".dep-v0", &compressed)])
}

// ---------------------------------------------------------------------------------------
// Java

pub fn pom_properties(group: &str, artifact: &str, version: &str) -> Vec<u8> {
    format!("#Generated by Maven\n#Tue Dec 14 10:00:00 UTC 2021\nversion={version}\ngroupId={group}\nartifactId={artifact}\n").into_bytes()
}

/// A zip with the given entries (deflated).
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

// ---------------------------------------------------------------------------------------
// Fixture images

pub const DPKG_STATUS: &str = "\
Package: openssl
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 3.0.11-1~deb12u1
Description: Secure Sockets Layer toolkit
 This package is part of the OpenSSL project's implementation.

Package: libssl3
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: openssl
Version: 3.0.11-1~deb12u1
Description: Secure Sockets Layer toolkit - shared libraries

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u3
Description: GNU C Library: Shared libraries

Package: bash
Essential: yes
Status: install ok installed
Architecture: amd64
Source: bash (5.2.15-2)
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell

Package: curl
Status: deinstall ok config-files
Architecture: amd64
Version: 7.88.1-10+deb12u4
Description: removed, only its configuration files remain
";

pub const PACKAGE_LOCK_V3: &str = r#"{
  "name": "app",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": { "name": "app", "version": "1.0.0", "dependencies": { "lodash": "^4.17.20" } },
    "node_modules/lodash": { "version": "4.17.20", "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.20.tgz" },
    "node_modules/@babel/traverse": { "version": "7.23.2" },
    "node_modules/jest": { "version": "29.0.0", "dev": true },
    "node_modules/foo": { "version": "1.0.0" },
    "node_modules/foo/node_modules/minimist": { "version": "1.2.5" },
    "packages/local": { "version": "0.0.1" },
    "node_modules/local": { "resolved": "packages/local", "link": true }
  }
}"#;

pub const CARGO_LOCK: &str = r#"# This file is automatically @generated by Cargo.
version = 3

[[package]]
name = "myapp"
version = "0.1.0"
dependencies = ["smallvec", "time"]

[[package]]
name = "smallvec"
version = "1.6.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "fe0f37c9e8f3c5a4a66ad655a93c74daac4ad00c9ce4d7e1c2a7c3d3c7b7a7e7"

[[package]]
name = "time"
version = "0.1.44"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "forked"
version = "0.3.0"
source = "git+https://example.com/forked.git#abcdef"
"#;

pub const GO_MODINFO: &str = "path\texample.com/app/cmd/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/net\tv0.7.0\th1:rJrUqqhjsgNp7KqAIc25s9pZnjU7TUcSY7HcVZjdn1g=\ndep\tgithub.com/gin-gonic/gin\tv1.9.0\th1:OjyFBKICoexlu99ctXNR2gg+c5pKrKMuyjgARg9qeY8=\n=>\tgithub.com/gin-gonic/gin\tv1.9.1\th1:4idEAncQnU5cB7BeOkPtxjfCSye0AAm1R0RVIqJ+Jmg=\nbuild\t-compiler=gc\nbuild\tCGO_ENABLED=0\n";

pub const AUDITABLE_JSON: &str = r#"{"packages":[{"name":"rustapp","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},{"name":"regex","version":"1.5.4","source":"crates.io"},{"name":"cc","version":"1.0.0","source":"crates.io","kind":"build"}]}"#;

/// The Debian 12 test image as three layers (gzip, zstd, plain tar).
pub fn debian_image_layers() -> Vec<Layer<'static>> {
    let base = Tar::new()
        .file("usr/lib/os-release", &os_release("debian", "12", "Debian GNU/Linux 12 (bookworm)"))
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("var/lib/dpkg/status", DPKG_STATUS.as_bytes())
        .file_mode("usr/bin/ls", &[0x7f, b'E', b'L', b'F', 2, 1, 1, 0].repeat(64), 0o755)
        .bytes();
    let python = Tar::new()
        .file("usr/lib/python3/dist-packages/requests-2.25.1.dist-info/METADATA", b"Metadata-Version: 2.1\nName: requests\nVersion: 2.25.1\nSummary: Python HTTP for Humans.\n\nLong description with Name: fake\n")
        .file("usr/lib/python3/dist-packages/requests-2.25.1.dist-info/RECORD", b"requests/__init__.py,,\n")
        .file("usr/local/lib/python3.11/site-packages/Jinja2-2.11.2.egg-info/PKG-INFO", b"Metadata-Version: 1.1\nName: Jinja2\nVersion: 2.11.2\n")
        .bytes();
    let inner_jar = zip(&[
        ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"),
        (
            "META-INF/maven/com.fasterxml.jackson.core/jackson-databind/pom.properties",
            &pom_properties("com.fasterxml.jackson.core", "jackson-databind", "2.9.10"),
        ),
    ]);
    let app_jar = zip(&[
        ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"),
        (
            "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
            &pom_properties("org.apache.logging.log4j", "log4j-core", "2.14.1"),
        ),
        ("BOOT-INF/lib/jackson-databind-2.9.10.jar", &inner_jar),
    ]);
    let app = Tar::new()
        .file("app/package-lock.json", PACKAGE_LOCK_V3.as_bytes())
        .file_mode(
            "usr/local/bin/app",
            &elf(&[(".text", b"\x90\xc3"), (".go.buildinfo", &go_buildinfo_inline("go1.20.1", GO_MODINFO))]),
            0o755,
        )
        .file("src/myapp/Cargo.lock", CARGO_LOCK.as_bytes())
        .file_mode("usr/bin/rustapp", &auditable_elf(AUDITABLE_JSON), 0o755)
        .file("opt/app/app.jar", &app_jar)
        .bytes();
    vec![layer(TAR_GZ, gz(&base)), layer(TAR_ZST, zst(&python)), layer(TAR, app)]
}

pub const APK_INSTALLED: &str = "\
C:Q1abc=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407000
o:musl
m:Timo Teräs <timo.teras@iki.fi>
F:lib
R:ld-musl-x86_64.so.1

C:Q1def=
P:libcrypto3
V:3.1.4-r1
A:x86_64
o:openssl
F:usr/lib
R:libcrypto.so.3

C:Q1ghi=
P:busybox
V:1.36.1-r15
A:x86_64
o:busybox
";

pub fn alpine_image_layers() -> Vec<Layer<'static>> {
    let base = Tar::new()
        .file("etc/os-release", &os_release("alpine", "3.19.1", "Alpine Linux v3.19"))
        .file("lib/apk/db/installed", APK_INSTALLED.as_bytes())
        .bytes();
    vec![layer(TAR_GZ, gz(&base))]
}

pub const UBUNTU_STATUS: &str = "\
Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.2-0ubuntu1.10
";

pub fn ubuntu_image_layers() -> Vec<Layer<'static>> {
    let base = Tar::new()
        .file("etc/os-release", b"PRETTY_NAME=\"Ubuntu 22.04.3 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.3 LTS (Jammy Jellyfish)\"\nID=ubuntu\nID_LIKE=debian\n")
        .file("var/lib/dpkg/status", UBUNTU_STATUS.as_bytes())
        .bytes();
    vec![layer(TAR_GZ, gz(&base))]
}
