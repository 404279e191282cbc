//! Layer walking: decompression, bounded tar reading, the union of layers (whiteouts), and the
//! final inventory.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{self, Cursor, Read};
use std::ops::Bound;
use std::time::Instant;

use crate::parsers::{self, golang, java, rust, Captured, Interest, Kind, RawPkg, OS_RELEASE_PATHS};
use crate::{purls, Ecosystem, Inventory, Layer, Limits, OsInfo, Package, ScanError};

/// Longest GNU long name / long link accepted.
const MAX_LONG_NAME: u64 = 64 << 10;
/// Largest PAX extended header accepted.
const MAX_PAX: u64 = 1 << 20;
/// Tar entries claiming more than this (1 TiB) are malformed or hostile, whatever the limits.
const ABSURD_ENTRY: u64 = 1 << 40;
/// zstd window the decoder may allocate (2^27 = 128 MiB, zstd's own default cap).
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Shared accounting for one [`crate::inventory`] call. Readers deep inside the decoders and the
/// tar parser can only return `io::Error`s; when a bound trips, the typed error is parked here
/// and recovered by [`Budget::fail`].
pub(crate) struct Budget<'l> {
    limits: &'l Limits,
    uncompressed: Cell<u64>,
    entries: Cell<u64>,
    tripped: RefCell<Option<ScanError>>,
}

impl<'l> Budget<'l> {
    fn new(limits: &'l Limits) -> Self {
        Budget { limits, uncompressed: Cell::new(0), entries: Cell::new(0), tripped: RefCell::new(None) }
    }

    pub(crate) fn limits(&self) -> &Limits {
        self.limits
    }

    fn trip(&self, e: ScanError) -> io::Error {
        let msg = e.to_string();
        let mut t = self.tripped.borrow_mut();
        if t.is_none() {
            *t = Some(e);
        }
        io::Error::other(msg)
    }

    /// The error to report for an `io::Error` out of the decoder/tar stack: a parked bound or
    /// source error if one tripped, else the stream is corrupt.
    fn fail(&self, e: io::Error, what: impl std::fmt::Display) -> ScanError {
        self.tripped.borrow_mut().take().unwrap_or_else(|| ScanError::Hostile(format!("{what}: {e}")))
    }

    pub(crate) fn check_deadline(&self) -> Result<(), ScanError> {
        if Instant::now() >= self.limits.deadline {
            Err(ScanError::Deadline)
        } else {
            Ok(())
        }
    }

    pub(crate) fn charge_bytes(&self, n: u64) -> Result<(), ScanError> {
        let total = self.uncompressed.get().saturating_add(n);
        self.uncompressed.set(total);
        if total > self.limits.max_uncompressed_bytes {
            return Err(ScanError::Limit(format!(
                "more than max_uncompressed_bytes ({}) of uncompressed data (tar or decompression bomb?)",
                self.limits.max_uncompressed_bytes
            )));
        }
        Ok(())
    }

    pub(crate) fn charge_entries(&self, n: u64) -> Result<(), ScanError> {
        let total = self.entries.get().saturating_add(n);
        self.entries.set(total);
        if total > self.limits.max_entries {
            return Err(ScanError::Limit(format!("more than max_entries ({}) archive entries", self.limits.max_entries)));
        }
        Ok(())
    }
}

/// The compressed blob, counted against `max_compressed_layer_bytes`. Errors of the caller's
/// reader are parked as [`ScanError::Io`].
struct SourceReader<'b, 'l, R> {
    inner: R,
    budget: &'b Budget<'l>,
    read: u64,
    index: usize,
}

impl<R: Read> Read for SourceReader<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => return Err(self.budget.trip(ScanError::Io(e))),
        };
        self.read += n as u64;
        let max = self.budget.limits.max_compressed_layer_bytes;
        if self.read > max {
            return Err(self
                .budget
                .trip(ScanError::Limit(format!("layer {} is larger than max_compressed_layer_bytes ({max})", self.index))));
        }
        Ok(n)
    }
}

/// The decompressed tar stream, counted against `max_uncompressed_bytes` (over all layers) and
/// checked against the deadline.
struct ExpandedReader<'b, 'l, R> {
    inner: R,
    budget: &'b Budget<'l>,
}

impl<R: Read> Read for ExpandedReader<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.budget.check_deadline().map_err(|e| self.budget.trip(e))?;
        let n = self.inner.read(buf)?;
        self.budget.charge_bytes(n as u64).map_err(|e| self.budget.trip(e))?;
        Ok(n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Gzip,
    Zstd,
    None,
}

/// Rejects media types that are not (possibly compressed) tar layers. The compression actually
/// used is decided by the magic bytes, so mislabelled layers still scan.
fn check_media_type(media_type: &str) -> Result<(), ScanError> {
    let mt = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mt.is_empty() {
        return Ok(());
    }
    let Some(i) = mt.rfind("tar") else {
        return Err(ScanError::Unsupported(format!("media type {mt} is not a tar layer")));
    };
    match &mt[i + 3..] {
        "" | "+gzip" | ".gzip" | "+gz" | ".gz" | "+zstd" | ".zstd" | "+zst" => Ok(()),
        other => Err(ScanError::Unsupported(format!("layer compression {other:?} of media type {mt}"))),
    }
}

fn detect(head: &[u8]) -> Result<Compression, ScanError> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Compression::Zstd)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Err(ScanError::Unsupported("xz-compressed layer".into()))
    } else if head.starts_with(b"BZh") {
        Err(ScanError::Unsupported("bzip2-compressed layer".into()))
    } else {
        Ok(Compression::None)
    }
}

/// Normalises a tar path for matching: `.` and empty components dropped, `..` folded (never
/// above the root), always absolute. Returns `None` for the root itself.
fn normalize(raw: &[u8], max_depth: usize) -> Result<Option<String>, ScanError> {
    let s = String::from_utf8_lossy(raw);
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => {
                parts.push(c);
                if parts.len() > max_depth {
                    return Err(ScanError::Limit(format!("a path is deeper than max_path_depth ({max_depth}) components")));
                }
            }
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!("/{}", parts.join("/"))))
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The union of the layers seen so far, restricted to the paths that matter.
#[derive(Default)]
struct Overlay {
    /// Layers below the current one, already merged.
    lower: BTreeMap<String, Captured>,
    /// The layer being read; merged over `lower` when it ends.
    current: BTreeMap<String, Captured>,
}

impl Overlay {
    fn remove_lower_under(&mut self, dir: &str) {
        if self.lower.is_empty() {
            return;
        }
        let prefix = if dir == "/" { "/".to_string() } else { format!("{dir}/") };
        let keys: Vec<String> = self
            .lower
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.lower.remove(&k);
        }
    }

    /// `.wh.<name>`: the path and everything below it disappear from lower layers.
    fn whiteout(&mut self, path: &str) {
        self.lower.remove(path);
        self.remove_lower_under(path);
    }

    /// `.wh..wh..opq`: the directory's lower-layer contents disappear.
    fn opaque(&mut self, dir: &str) {
        self.remove_lower_under(dir);
    }

    /// An entry of the current layer hides the same path below, and a non-directory hides the
    /// lower tree under it too.
    fn replace(&mut self, path: &str, is_dir: bool) {
        self.current.remove(path);
        if self.lower.is_empty() {
            return;
        }
        self.lower.remove(path);
        if !is_dir {
            self.remove_lower_under(path);
        }
    }

    fn lookup(&self, path: &str) -> Option<&Captured> {
        self.current.get(path).or_else(|| self.lower.get(path))
    }

    fn commit(&mut self) {
        let current = std::mem::take(&mut self.current);
        self.lower.extend(current);
    }
}

/// Extension headers describing the next entry.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
    pax_size: Option<u64>,
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Reads a whole entry of at most `max` bytes.
fn read_bounded<R: Read>(entry: &mut R, size: u64, max: u64, budget: &Budget, what: &str) -> Result<Vec<u8>, ScanError> {
    if size > max {
        return Err(ScanError::Hostile(format!("{what} of {size} bytes (at most {max} accepted)")));
    }
    let mut buf = Vec::with_capacity(size as usize);
    entry.take(size).read_to_end(&mut buf).map_err(|e| budget.fail(e, format!("reading {what}")))?;
    Ok(buf)
}

pub(crate) fn inventory(layers: Vec<Layer<'_>>, limits: &Limits) -> Result<Inventory, ScanError> {
    let budget = Budget::new(limits);
    budget.check_deadline()?;
    let mut overlay = Overlay::default();
    for (index, layer) in layers.into_iter().enumerate() {
        scan_layer(index, layer, &budget, &mut overlay)?;
        overlay.commit();
    }
    Ok(finalize(overlay.lower))
}

fn scan_layer(index: usize, layer: Layer<'_>, budget: &Budget, overlay: &mut Overlay) -> Result<(), ScanError> {
    check_media_type(&layer.media_type)?;
    let limits = budget.limits;
    let mut source = SourceReader { inner: layer.reader, budget, read: 0, index };
    let mut head = Vec::with_capacity(6);
    (&mut source).take(6).read_to_end(&mut head).map_err(|e| budget.fail(e, format!("layer {index}: reading")))?;
    let stream = Cursor::new(head.clone()).chain(source);
    let decoded: Box<dyn Read + '_> = match detect(&head)? {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(stream).map_err(|e| budget.fail(e, format!("layer {index}: zstd")))?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(|e| budget.fail(e, format!("layer {index}: zstd")))?;
            Box::new(d)
        }
        Compression::None => Box::new(stream),
    };
    let mut archive = tar::Archive::new(ExpandedReader { inner: decoded, budget });
    let entries = archive.entries().map_err(|e| budget.fail(e, format!("layer {index}: tar")))?.raw(true);
    let mut pending = Pending::default();
    for item in entries {
        let mut entry = item.map_err(|e| budget.fail(e, format!("layer {index}: invalid tar stream")))?;
        budget.charge_entries(1)?;
        budget.check_deadline()?;
        let header = entry.header().clone();
        let etype = header.entry_type();
        let size = entry.size();
        if size > ABSURD_ENTRY {
            return Err(ScanError::Hostile(format!("layer {index}: a tar header claims an absurd size ({size} bytes)")));
        }
        // Fail fast instead of streaming through an entry that cannot fit the budget.
        if budget.uncompressed.get().saturating_add(size) > limits.max_uncompressed_bytes {
            return Err(ScanError::Limit(format!(
                "layer {index}: a {size}-byte tar entry would exceed max_uncompressed_bytes ({}) (tar or decompression bomb?)",
                limits.max_uncompressed_bytes
            )));
        }

        // Extension headers, handled here (the tar crate's own handling reads them into
        // memory without a bound).
        if etype.is_gnu_longname() {
            pending.long_name = Some(trim_nul(read_bounded(&mut entry, size, MAX_LONG_NAME, budget, "a GNU long name")?));
            continue;
        }
        if etype.is_gnu_longlink() {
            pending.long_link = Some(trim_nul(read_bounded(&mut entry, size, MAX_LONG_NAME, budget, "a GNU long link")?));
            continue;
        }
        if etype.is_pax_global_extensions() {
            read_bounded(&mut entry, size, MAX_PAX, budget, "a PAX global header")?;
            continue;
        }
        if etype.is_pax_local_extensions() {
            let data = read_bounded(&mut entry, size, MAX_PAX, budget, "a PAX header")?;
            for ext in tar::PaxExtensions::new(&data) {
                let ext = ext.map_err(|e| ScanError::Hostile(format!("layer {index}: malformed PAX header: {e}")))?;
                match ext.key_bytes() {
                    b"path" => pending.pax_path = Some(ext.value_bytes().to_vec()),
                    b"linkpath" => pending.pax_link = Some(ext.value_bytes().to_vec()),
                    b"size" => {
                        let v = ext.value().ok().and_then(|v| v.trim().parse::<u64>().ok());
                        pending.pax_size = Some(v.ok_or_else(|| ScanError::Hostile(format!("layer {index}: malformed PAX size")))?);
                    }
                    _ => {}
                }
            }
            continue;
        }

        let pend = std::mem::take(&mut pending);
        let raw_path = pend.pax_path.or(pend.long_name).unwrap_or_else(|| entry.path_bytes().into_owned());
        let raw_link = pend.pax_link.or(pend.long_link).or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
        if let Some(pax_size) = pend.pax_size {
            if pax_size != size {
                return Err(ScanError::Unsupported(format!(
                    "layer {index}: a PAX size record ({pax_size}) overrides the tar header ({size})"
                )));
            }
        }
        if etype.is_gnu_sparse() && header.as_gnu().is_some_and(|g| g.is_extended()) {
            return Err(ScanError::Unsupported(format!("layer {index}: extended GNU sparse entries")));
        }
        let Some(path) = normalize(&raw_path, limits.max_path_depth)? else { continue };

        let (dir, name) = split(&path);
        if let Some(target) = name.strip_prefix(".wh.") {
            if target == ".wh..opq" {
                overlay.opaque(dir);
            } else if !target.starts_with(".wh.") && !target.is_empty() {
                overlay.whiteout(&join(dir, target));
            }
            continue;
        }
        overlay.replace(&path, etype.is_dir());

        if etype.is_symlink() {
            if OS_RELEASE_PATHS.contains(&path.as_str()) {
                if let Some(link) = raw_link {
                    overlay.current.insert(path, Captured::Symlink(String::from_utf8_lossy(&link).into_owned()));
                }
            }
            continue;
        }
        if etype.is_hard_link() {
            if let Some(target) = raw_link.and_then(|l| normalize(&l, limits.max_path_depth).ok().flatten()) {
                if let Some(c) = overlay.lookup(&target).cloned() {
                    overlay.current.insert(path, c);
                }
            }
            continue;
        }
        if !(etype.is_file() || etype.is_contiguous()) {
            continue;
        }
        let mode = header.mode().unwrap_or(0);
        let Some(interest) = parsers::classify(&path, mode, size) else { continue };
        let captured = match interest {
            Interest::RpmDb => Some(Captured::Note(format!(
                "RPM database at {path}: RPM packages are not inventoried (no pure-Rust rpmdb reader), so they are not matched"
            ))),
            Interest::Executable => {
                let mut magic = Vec::with_capacity(4);
                (&mut entry).take(4).read_to_end(&mut magic).map_err(|e| budget.fail(e, format!("reading {path}")))?;
                if magic != b"\x7fELF" {
                    None
                } else if size > limits.max_binary_bytes {
                    Some(Captured::Note(format!("skipped executable {path}: {size} bytes exceeds max_binary_bytes")))
                } else {
                    let mut data = magic;
                    data.reserve_exact((size - 4) as usize);
                    (&mut entry).take(size - 4).read_to_end(&mut data).map_err(|e| budget.fail(e, format!("reading {path}")))?;
                    let mut pkgs = golang::parse(&data);
                    pkgs.extend(rust::parse_auditable(&data, limits.max_file_bytes as usize));
                    (!pkgs.is_empty()).then_some(Captured::Packages(pkgs))
                }
            }
            Interest::Archive => {
                if size > limits.max_binary_bytes {
                    Some(Captured::Note(format!("skipped archive {path}: {size} bytes exceeds max_binary_bytes")))
                } else {
                    let data = read_bounded(&mut entry, size, limits.max_binary_bytes, budget, &path)?;
                    let mut pkgs = Vec::new();
                    java::scan(&data, budget, 0, "", &mut pkgs)?;
                    (!pkgs.is_empty()).then_some(Captured::Packages(pkgs))
                }
            }
            text => {
                if size > limits.max_file_bytes {
                    Some(Captured::Note(format!("skipped {path}: {size} bytes exceeds max_file_bytes")))
                } else {
                    let data = read_bounded(&mut entry, size, limits.max_file_bytes, budget, &path)?;
                    parsers::parse_text(text, &data)
                }
            }
        };
        if let Some(c) = captured {
            overlay.current.insert(path, c);
        }
    }
    // Read what follows the end-of-archive marker so that a truncated or corrupt compressed
    // stream (bad gzip CRC, missing trailer) is detected; the counting readers still apply.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| budget.fail(e, format!("layer {index}: after the tar end")))?;
    Ok(())
}

fn resolve_os(files: &BTreeMap<String, Captured>) -> Option<OsInfo> {
    for start in OS_RELEASE_PATHS {
        let mut path = start.to_string();
        for _ in 0..8 {
            match files.get(&path) {
                Some(Captured::OsRelease(os)) => return Some(os.clone()),
                Some(Captured::Symlink(target)) => {
                    let joined = if target.starts_with('/') { target.clone() } else { join(split(&path).0, target) };
                    match normalize(joined.as_bytes(), 256) {
                        Ok(Some(p)) => path = p,
                        _ => break,
                    }
                }
                _ => break,
            }
        }
    }
    None
}

fn ecosystem_of(kind: Kind, os: Option<&OsInfo>) -> Ecosystem {
    match kind {
        Kind::Dpkg if os.is_some_and(|o| o.id == "ubuntu") => Ecosystem::Ubuntu,
        Kind::Dpkg => Ecosystem::Debian,
        Kind::Apk => Ecosystem::Alpine,
        Kind::Python => Ecosystem::PyPI,
        Kind::Npm => Ecosystem::Npm,
        Kind::Go => Ecosystem::Go,
        Kind::Cargo => Ecosystem::CratesIo,
        Kind::Maven => Ecosystem::Maven,
    }
}

fn to_package(raw: &RawPkg, path: &str, os: Option<&OsInfo>) -> Package {
    let ecosystem = ecosystem_of(raw.kind, os);
    let os_pkg = matches!(raw.kind, Kind::Dpkg | Kind::Apk);
    Package {
        ecosystem,
        name: raw.name.clone(),
        version: raw.version.clone(),
        source_name: raw.source_name.clone(),
        source_version: raw.source_version.clone(),
        purl: purls::purl(ecosystem, &raw.name, &raw.version, raw.arch.as_deref(), if os_pkg { os } else { None }),
        location: match &raw.sub_location {
            Some(sub) => format!("{path}{sub}"),
            None => path.to_string(),
        },
    }
}

fn finalize(files: BTreeMap<String, Captured>) -> Inventory {
    let os = resolve_os(&files);
    let mut packages = Vec::new();
    let mut notes = Vec::new();
    let mut os_packages = false;
    for (path, captured) in &files {
        match captured {
            Captured::Packages(raws) => {
                for raw in raws {
                    os_packages |= matches!(raw.kind, Kind::Dpkg | Kind::Apk);
                    packages.push(to_package(raw, path, os.as_ref()));
                }
            }
            Captured::Note(n) => notes.push(n.clone()),
            Captured::OsRelease(_) | Captured::Symlink(_) => {}
        }
    }
    packages.sort_by(|a, b| (a.ecosystem, &a.name, &a.version, &a.location).cmp(&(b.ecosystem, &b.name, &b.version, &b.location)));
    packages.dedup_by(|b, a| a.ecosystem == b.ecosystem && a.name == b.name && a.version == b.version);
    if os_packages && os.as_ref().and_then(OsInfo::osv_ecosystem).is_none() {
        let which = os.as_ref().map_or("an unidentified OS".to_string(), |o| format!("{} {}", o.id, o.version_id.as_deref().unwrap_or("")));
        notes.push(format!(
            "OS packages were found but {} has no OSV ecosystem this scanner matches: they are listed, not matched",
            which.trim()
        ));
    }
    Inventory { os, packages, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_dots_and_roots() {
        assert_eq!(normalize(b"./a/b/../c", 64).unwrap().as_deref(), Some("/a/c"));
        assert_eq!(normalize(b"/../../etc/os-release", 64).unwrap().as_deref(), Some("/etc/os-release"));
        assert_eq!(normalize(b"./", 64).unwrap(), None);
        assert!(matches!(normalize(b"a/b/c/d", 3), Err(ScanError::Limit(_))));
    }

    #[test]
    fn media_types() {
        assert!(check_media_type("application/vnd.oci.image.layer.v1.tar+gzip").is_ok());
        assert!(check_media_type("application/vnd.oci.image.layer.v1.tar+zstd").is_ok());
        assert!(check_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip").is_ok());
        assert!(check_media_type("application/vnd.oci.image.layer.v1.tar").is_ok());
        assert!(matches!(check_media_type("application/vnd.oci.image.layer.v1.tar+bzip2"), Err(ScanError::Unsupported(_))));
        assert!(matches!(check_media_type("application/vnd.oci.image.config.v1+json"), Err(ScanError::Unsupported(_))));
    }
}
