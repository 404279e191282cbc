//! Go binaries: the build information blob that the Go linker embeds (`runtime/debug.BuildInfo`
//! as text, plus the toolchain version).
//!
//! Hand-written because no crate reads it: this follows Go's own `debug/buildinfo` reader. The
//! blob starts with the 14-byte magic `\xff Go buildinf:` at a 16-byte aligned offset in the
//! `.go.buildinfo` section (or, without section headers, the first writable non-executable
//! `PT_LOAD` segment); byte 14 is the pointer size and byte 15 flags (bit 0 big-endian, bit 1
//! "strings inline"). Go 1.18+ stores the version and module info inline after the 32-byte
//! header as uvarint-length-prefixed strings; older toolchains store two pointers to Go string
//! headers, which are resolved through the ELF program headers (parsed with the `object`
//! crate). The module info is wrapped in two 16-byte sentinels, stripped here.

use object::{Object, ObjectSection, ObjectSegment, SegmentFlags};

use super::{Kind, RawPkg};

pub(crate) const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER: usize = 32;
const ALIGN: usize = 16;
/// Longest version or module-info string accepted.
const MAX_STRING: u64 = 4 << 20;

const PF_X: u32 = 1;
const PF_W: u32 = 2;

/// Toolchain version and module info text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BuildInfo {
    pub go_version: String,
    pub modinfo: String,
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        x |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte < 0x80 {
            return Some((x, i + 1));
        }
    }
    None
}

fn decode_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, n) = uvarint(b)?;
    if len > MAX_STRING {
        return None;
    }
    let rest = b.get(n..)?;
    let len = usize::try_from(len).ok()?;
    Some((rest.get(..len)?, rest.get(len..)?))
}

fn read_ptr(b: &[u8], size: usize, big: bool) -> Option<u64> {
    let b = b.get(..size)?;
    Some(match (size, big) {
        (4, false) => u64::from(u32::from_le_bytes(b.try_into().ok()?)),
        (4, true) => u64::from(u32::from_be_bytes(b.try_into().ok()?)),
        (8, false) => u64::from_le_bytes(b.try_into().ok()?),
        (8, true) => u64::from_be_bytes(b.try_into().ok()?),
        _ => return None,
    })
}

fn read_at<'d>(file: &object::File<'d>, addr: u64, size: u64) -> Option<&'d [u8]> {
    file.segments().find_map(|s| s.data_range(addr, size).ok().flatten())
}

/// Reads a Go string header (`data pointer, length`) at `addr` and the bytes it points to.
fn read_go_string<'d>(file: &object::File<'d>, addr: u64, ptr: usize, big: bool) -> Option<&'d [u8]> {
    let hdr = read_at(file, addr, 2 * ptr as u64)?;
    let data = read_ptr(hdr, ptr, big)?;
    let len = read_ptr(&hdr[ptr..], ptr, big)?;
    if len > MAX_STRING {
        return None;
    }
    read_at(file, data, len)
}

fn strip_sentinels(m: &[u8]) -> &[u8] {
    if m.len() >= 33 && m[m.len() - 17] == b'\n' {
        &m[16..m.len() - 16]
    } else {
        &[]
    }
}

/// Finds and decodes the build info blob of an ELF Go binary.
pub(crate) fn read_buildinfo(binary: &[u8]) -> Option<BuildInfo> {
    let file = object::File::parse(binary).ok()?;
    let data = match file.section_by_name(".go.buildinfo") {
        Some(sec) => sec.data().ok()?,
        None => file.segments().find_map(|s| match s.flags() {
            SegmentFlags::Elf { p_flags, .. } if p_flags.0 & (PF_X | PF_W) == PF_W => s.data().ok(),
            _ => None,
        })?,
    };
    // Go looks at the first 64 KiB only; the blob is placed at the start.
    let window = &data[..data.len().min(64 << 10)];
    let mut off = 0;
    let start = loop {
        let i = off + window.get(off..)?.windows(MAGIC.len()).position(|w| w == MAGIC)?;
        if i % ALIGN == 0 && window.len() - i >= HEADER {
            break i;
        }
        off = (i + ALIGN) & !(ALIGN - 1);
    };
    let hdr = &data[start..];
    let (ptr, flags) = (usize::from(hdr[14]), hdr[15]);
    let big = flags & 1 != 0;
    let (version, modinfo): (&[u8], &[u8]) = if flags & 2 != 0 {
        let (v, rest) = decode_string(&hdr[HEADER..])?;
        let (m, _) = decode_string(rest)?;
        (v, m)
    } else {
        if ptr != 4 && ptr != 8 {
            return None;
        }
        let v_addr = read_ptr(&hdr[16..], ptr, big)?;
        let m_addr = read_ptr(&hdr[16 + ptr..], ptr, big)?;
        let v = read_go_string(&file, v_addr, ptr, big)?;
        let m = read_go_string(&file, m_addr, ptr, big).unwrap_or(&[]);
        (v, m)
    };
    Some(BuildInfo {
        go_version: String::from_utf8_lossy(version).into_owned(),
        modinfo: String::from_utf8_lossy(strip_sentinels(modinfo)).into_owned(),
    })
}

/// Modules of a Go binary: the main module (unless built from a checkout, `(devel)`), its
/// dependencies (replacements applied), and `stdlib` at the toolchain's version.
pub(crate) fn parse(binary: &[u8]) -> Vec<RawPkg> {
    let Some(info) = read_buildinfo(binary) else { return Vec::new() };
    modules(&info)
}

pub(crate) fn modules(info: &BuildInfo) -> Vec<RawPkg> {
    let mut out: Vec<RawPkg> = Vec::new();
    // Index in `out` of the module on the previous line, for `=>` replacements.
    let mut prev: Option<usize> = None;
    for line in info.modinfo.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod" | "dep", path, version, ..] => {
                prev = None;
                if !version.is_empty() && *version != "(devel)" {
                    prev = Some(out.len());
                    out.push(RawPkg::new(Kind::Go, *path, *version));
                }
            }
            ["=>", path, version, ..] => {
                // Local-directory replacements have no version: the original line is kept.
                if let (Some(i), false) = (prev, version.is_empty()) {
                    out[i].name = (*path).to_string();
                    out[i].version = (*version).to_string();
                }
                prev = None;
            }
            _ => {}
        }
    }
    if let Some(v) = crate::version::normalize_go(&info.go_version) {
        out.push(RawPkg::new(Kind::Go, "stdlib", format!("v{v}")));
    }
    out
}
