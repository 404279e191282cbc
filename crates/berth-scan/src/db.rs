//! The on-disk OSV database.
//!
//! Layout under `db_root`:
//!
//! ```text
//! current                 name of the live version directory (replaced by write + rename)
//! v-<version>/meta.json   format, version, import time, counts, and where each ecosystem's
//!                         index sits in index.dat
//! v-<version>/index.dat   per ecosystem, a JSON map package name -> [offset, length] in
//!                         packages.dat
//! v-<version>/packages.dat per (ecosystem, package), a JSON array of affected entries
//!                         (ranges, versions, severity, CVSS) pointing into vulns.dat
//! v-<version>/vulns.dat   per advisory, its id, display name, description and link
//! ```
//!
//! `find` loads only the index of the ecosystems an image has and the entries of its packages.
//! Import streams the source once, spilling each affected entry to one of a fixed number of
//! hash buckets on disk, then groups one bucket at a time, so memory stays bounded by a
//! bucket rather than by the export.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::osv::{self, EventKind, Record};
use crate::version::{Scheme, Ver};
use crate::{Ecosystem, Finding, Inventory, OsInfo, Package, ScanError, Severity};

const FORMAT: u32 = 1;
const BUCKETS: usize = 64;
/// Largest single OSV JSON file imported.
const MAX_RECORD_BYTES: u64 = 32 << 20;
/// Leftover `tmp-*` directories of crashed imports older than this are removed.
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// The new database version id.
    pub version: String,
    /// RFC 3339.
    pub imported_at: String,
    /// Advisories imported (withdrawn ones excluded).
    pub advisories: u64,
    pub withdrawn: u64,
    /// Files that were not valid OSV JSON (or too large).
    pub skipped: u64,
    /// Advisories per OSV ecosystem (normalised: `Ubuntu:22.04`, not `Ubuntu:22.04:LTS`).
    pub ecosystems: BTreeMap<String, u64>,
}

/// The live database version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbStatus {
    pub version: String,
    pub imported_at: String,
    pub advisories: u64,
    pub ecosystems: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    format: u32,
    version: String,
    imported_at: String,
    source: String,
    advisories: u64,
    withdrawn: u64,
    skipped: u64,
    ecosystems: BTreeMap<String, u64>,
    /// ecosystem -> (offset, length) of its name index in index.dat
    index: BTreeMap<String, (u64, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredVuln {
    id: String,
    name: String,
    description: String,
    uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRange {
    e: Vec<(EventKind, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAffected {
    /// (offset, length) of the advisory in vulns.dat
    v: (u64, u64),
    s: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c3: Option<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c2: Option<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    r: Vec<StoredRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    vs: Vec<String>,
}

#[derive(Serialize)]
struct BucketLine<'a> {
    e: &'a str,
    n: &'a str,
    a: &'a StoredAffected,
}

#[derive(Deserialize)]
struct BucketLineRaw {
    e: String,
    n: String,
    a: Box<RawValue>,
}

fn db_err(e: impl std::fmt::Display) -> ScanError {
    ScanError::Db(e.to_string())
}

/// FNV-1a: a stable bucket hash (std's hasher is randomly seeded).
fn bucket_of(eco: &str, name: &str) -> usize {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in eco.bytes().chain([0u8]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % BUCKETS as u64) as usize
}

/// Appends to a file, tracking the offset.
struct Appender {
    w: BufWriter<File>,
    off: u64,
}

impl Appender {
    fn create(path: &Path) -> Result<Appender, ScanError> {
        Ok(Appender { w: BufWriter::new(File::create(path)?), off: 0 })
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(u64, u64), ScanError> {
        self.w.write_all(bytes)?;
        let at = self.off;
        self.off += bytes.len() as u64;
        Ok((at, bytes.len() as u64))
    }

    fn finish(self) -> Result<(), ScanError> {
        let f = self.w.into_inner().map_err(|e| ScanError::Io(e.into_error()))?;
        f.sync_all()?;
        Ok(())
    }
}

struct Builder {
    dir: PathBuf,
    buckets: Vec<BufWriter<File>>,
    vulns: Appender,
    advisories: u64,
    withdrawn: u64,
    skipped: u64,
    ecosystems: BTreeMap<String, u64>,
}

impl Builder {
    fn new(dir: &Path) -> Result<Builder, ScanError> {
        fs::create_dir_all(dir.join("buckets"))?;
        let mut buckets = Vec::with_capacity(BUCKETS);
        for i in 0..BUCKETS {
            buckets.push(BufWriter::new(File::create(dir.join("buckets").join(format!("{i:03}.jsonl")))?));
        }
        Ok(Builder {
            dir: dir.to_path_buf(),
            buckets,
            vulns: Appender::create(&dir.join("vulns.dat"))?,
            advisories: 0,
            withdrawn: 0,
            skipped: 0,
            ecosystems: BTreeMap::new(),
        })
    }

    fn add(&mut self, bytes: &[u8]) -> Result<(), ScanError> {
        let record: Record = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(_) => {
                self.skipped += 1;
                return Ok(());
            }
        };
        if record.id.trim().is_empty() {
            self.skipped += 1;
            return Ok(());
        }
        if record.withdrawn.as_ref().is_some_and(|w| !w.is_null()) {
            self.withdrawn += 1;
            return Ok(());
        }
        let vuln = StoredVuln {
            id: record.id.clone(),
            name: osv::display_name(&record),
            description: osv::description(&record),
            uri: osv::uri(&record),
        };
        let vref = self.vulns.append(&serde_json::to_vec(&vuln).map_err(db_err)?)?;
        let mut ecos = BTreeSet::new();
        for affected in &record.affected {
            let Some(pkg) = &affected.package else { continue };
            let eco = osv::normalize_ecosystem(&pkg.ecosystem);
            let name = osv::normalize_name(&eco, &pkg.name);
            if eco.is_empty() || name.is_empty() {
                continue;
            }
            let ranges: Vec<StoredRange> = affected
                .ranges
                .iter()
                .filter(|r| r.kind.eq_ignore_ascii_case("ECOSYSTEM") || r.kind.eq_ignore_ascii_case("SEMVER"))
                .map(|r| StoredRange { e: r.events.iter().filter_map(|e| e.kind_and_version()).map(|(k, v)| (k, v.to_string())).collect() })
                .filter(|r| !r.e.is_empty())
                .collect();
            if ranges.is_empty() && affected.versions.is_empty() {
                continue;
            }
            let rating = osv::rate(&record, affected);
            let stored = StoredAffected {
                v: vref,
                s: rating.severity,
                c3: rating.cvss3,
                c2: rating.cvss2,
                r: ranges,
                vs: affected.versions.clone(),
            };
            let w = &mut self.buckets[bucket_of(&eco, &name)];
            serde_json::to_writer(&mut *w, &BucketLine { e: &eco, n: &name, a: &stored }).map_err(db_err)?;
            w.write_all(b"\n")?;
            ecos.insert(eco);
        }
        for eco in ecos {
            *self.ecosystems.entry(eco).or_default() += 1;
        }
        self.advisories += 1;
        Ok(())
    }

    /// Groups the buckets into packages.dat and index.dat, and writes meta.json last.
    fn finish(self, version: &str, imported_at: &str, source: &Path) -> Result<ImportSummary, ScanError> {
        let Builder { dir, buckets, vulns, advisories, withdrawn, skipped, ecosystems } = self;
        vulns.finish()?;
        for b in buckets {
            b.into_inner().map_err(|e| ScanError::Io(e.into_error()))?;
        }
        let mut packages = Appender::create(&dir.join("packages.dat"))?;
        let mut index: BTreeMap<String, BTreeMap<String, (u64, u64)>> = BTreeMap::new();
        for i in 0..BUCKETS {
            let path = dir.join("buckets").join(format!("{i:03}.jsonl"));
            let mut groups: BTreeMap<(String, String), Vec<Box<RawValue>>> = BTreeMap::new();
            for line in BufReader::new(File::open(&path)?).lines() {
                let line: BucketLineRaw = serde_json::from_str(&line?).map_err(db_err)?;
                groups.entry((line.e, line.n)).or_default().push(line.a);
            }
            for ((eco, name), entries) in groups {
                let mut blob = Vec::new();
                blob.push(b'[');
                for (j, e) in entries.iter().enumerate() {
                    if j > 0 {
                        blob.push(b',');
                    }
                    blob.extend_from_slice(e.get().as_bytes());
                }
                blob.push(b']');
                let at = packages.append(&blob)?;
                index.entry(eco).or_default().insert(name, at);
            }
            fs::remove_file(&path)?;
        }
        let _ = fs::remove_dir(dir.join("buckets"));
        packages.finish()?;
        let mut index_file = Appender::create(&dir.join("index.dat"))?;
        let mut where_ = BTreeMap::new();
        for (eco, names) in &index {
            where_.insert(eco.clone(), index_file.append(&serde_json::to_vec(names).map_err(db_err)?)?);
        }
        index_file.finish()?;
        let meta = Meta {
            format: FORMAT,
            version: version.to_string(),
            imported_at: imported_at.to_string(),
            source: source.display().to_string(),
            advisories,
            withdrawn,
            skipped,
            ecosystems: ecosystems.clone(),
            index: where_,
        };
        let mut f = File::create(dir.join("meta.json"))?;
        f.write_all(&serde_json::to_vec_pretty(&meta).map_err(db_err)?)?;
        f.sync_all()?;
        Ok(ImportSummary { version: version.to_string(), imported_at: imported_at.to_string(), advisories, withdrawn, skipped, ecosystems })
    }
}

fn is_json(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".json")
}

fn import_dir(root: &Path, b: &mut Builder) -> Result<(), ScanError> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let ty = e.file_type()?;
            let path = e.path();
            if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() && is_json(&e.file_name().to_string_lossy()) {
                if e.metadata()?.len() > MAX_RECORD_BYTES {
                    b.skipped += 1;
                    continue;
                }
                b.add(&fs::read(&path)?)?;
            }
        }
    }
    Ok(())
}

fn import_zip(path: &Path, b: &mut Builder) -> Result<(), ScanError> {
    let mut zip = zip::ZipArchive::new(BufReader::new(File::open(path)?)).map_err(|e| ScanError::Db(format!("{}: {e}", path.display())))?;
    let mut buf = Vec::new();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).map_err(|e| ScanError::Db(format!("{}: entry {i}: {e}", path.display())))?;
        if !file.is_file() || !file.name().is_ok_and(|n| is_json(&n)) {
            continue;
        }
        if file.size() > MAX_RECORD_BYTES {
            b.skipped += 1;
            continue;
        }
        buf.clear();
        if (&mut file).take(MAX_RECORD_BYTES).read_to_end(&mut buf).is_err() {
            b.skipped += 1;
            continue;
        }
        b.add(&buf)?;
    }
    Ok(())
}

fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"PK\x03\x04"
}

/// A database version directory name from the `current` pointer, checked to stay inside
/// `db_root`.
fn checked_version_dir(name: &str) -> Result<&str, ScanError> {
    let name = name.trim();
    if name.starts_with("v-") && !name.contains(['/', '\\']) && !name.contains("..") {
        Ok(name)
    } else {
        Err(ScanError::Db(format!("invalid current pointer {name:?}")))
    }
}

fn read_at(file: &Mutex<File>, size: u64, off: u64, len: u64) -> Result<Vec<u8>, ScanError> {
    if off.checked_add(len).is_none_or(|end| end > size) {
        return Err(ScanError::Db("database record out of bounds (corrupt database)".into()));
    }
    let mut f = file.lock().map_err(|_| ScanError::Db("database file lock poisoned".into()))?;
    f.seek(SeekFrom::Start(off))?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

type NameIndex = HashMap<String, (u64, u64)>;

struct DataFile {
    file: Mutex<File>,
    size: u64,
}

impl DataFile {
    fn open(path: &Path) -> Result<DataFile, ScanError> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Ok(DataFile { file: Mutex::new(file), size })
    }

    fn read(&self, (off, len): (u64, u64)) -> Result<Vec<u8>, ScanError> {
        read_at(&self.file, self.size, off, len)
    }
}

/// An imported OSV database. Immutable: a new import writes a new version and swaps the
/// `current` pointer; an open `VulnDb` keeps reading the version it opened (its files stay
/// open even after the directory is removed).
pub struct VulnDb {
    dir: PathBuf,
    meta: Meta,
    index: DataFile,
    packages: DataFile,
    vulns: DataFile,
    cache: Mutex<HashMap<String, Arc<NameIndex>>>,
}

impl std::fmt::Debug for VulnDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VulnDb").field("dir", &self.dir).field("version", &self.meta.version).finish()
    }
}

impl VulnDb {
    /// Imports OSV advisories from `source` — a directory of `*.json` files (nested
    /// directories are fine), a `.zip` as osv.dev exports them (`all.zip`, per-ecosystem
    /// zips), or a single JSON file — into a new version under `db_root`, then atomically
    /// makes it current and removes older versions. Files that are not valid OSV are counted
    /// as skipped; withdrawn advisories are left out.
    pub fn import(source: &Path, db_root: &Path) -> Result<ImportSummary, ScanError> {
        fs::create_dir_all(db_root)?;
        let now = time::OffsetDateTime::now_utc();
        let imported_at = now.format(&time::format_description::well_known::Rfc3339).map_err(db_err)?;
        let stamp = now.format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z")).map_err(db_err)?;
        let nonce = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(now.unix_timestamp_nanos().to_le_bytes());
            h.update(std::process::id().to_le_bytes());
            h.update(source.display().to_string().as_bytes());
            hex::encode(&h.finalize()[..4])
        };
        let version = format!("{stamp}-{nonce}");
        let tmp = db_root.join(format!("tmp-{version}"));
        fs::create_dir(&tmp)?;
        let built = (|| {
            let mut b = Builder::new(&tmp)?;
            if source.is_dir() {
                import_dir(source, &mut b)?;
            } else if source.is_file() && is_zip(source) {
                import_zip(source, &mut b)?;
            } else if source.is_file() && is_json(&source.to_string_lossy()) {
                if fs::metadata(source)?.len() > MAX_RECORD_BYTES {
                    return Err(ScanError::Db(format!("{} is too large for one OSV record", source.display())));
                }
                b.add(&fs::read(source)?)?;
            } else {
                return Err(ScanError::Db(format!("{} is not a directory of OSV JSON files, a zip, or a JSON file", source.display())));
            }
            b.finish(&version, &imported_at, source)
        })();
        let summary = match built {
            Ok(s) => s,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let final_name = format!("v-{version}");
        fs::rename(&tmp, db_root.join(&final_name))?;
        let pointer_tmp = db_root.join(format!(".current-{version}.tmp"));
        {
            let mut f = File::create(&pointer_tmp)?;
            f.write_all(final_name.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&pointer_tmp, db_root.join("current"))?;
        if let Ok(d) = File::open(db_root) {
            let _ = d.sync_all();
        }
        // Old versions go once the pointer has moved; open `VulnDb`s keep their file handles.
        for e in fs::read_dir(db_root)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale_tmp = name.starts_with("tmp-")
                && e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| SystemTime::now().duration_since(t).is_ok_and(|age| age > STALE_TMP));
            if (name.starts_with("v-") && name != final_name) || stale_tmp {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        Ok(summary)
    }

    /// Opens the current version under `db_root`; `None` if nothing was ever imported.
    pub fn open(db_root: &Path) -> Result<Option<VulnDb>, ScanError> {
        let mut last_err = None;
        // An import may swap the pointer and remove the old version between our reads: retry.
        for _ in 0..3 {
            let pointer = match fs::read_to_string(db_root.join("current")) {
                Ok(p) => p,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let dir = db_root.join(checked_version_dir(&pointer)?);
            match Self::open_dir(&dir) {
                Ok(db) => return Ok(Some(db)),
                Err(ScanError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => last_err = Some(ScanError::Io(e)),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| ScanError::Db("database disappeared while opening".into())))
    }

    fn open_dir(dir: &Path) -> Result<VulnDb, ScanError> {
        let meta: Meta = serde_json::from_slice(&fs::read(dir.join("meta.json"))?).map_err(|e| ScanError::Db(format!("meta.json: {e}")))?;
        if meta.format != FORMAT {
            return Err(ScanError::Db(format!("unsupported database format {} (expected {FORMAT}); re-import", meta.format)));
        }
        Ok(VulnDb {
            dir: dir.to_path_buf(),
            index: DataFile::open(&dir.join("index.dat"))?,
            packages: DataFile::open(&dir.join("packages.dat"))?,
            vulns: DataFile::open(&dir.join("vulns.dat"))?,
            meta,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Version id, import time and advisory counts per ecosystem.
    pub fn status(&self) -> DbStatus {
        DbStatus {
            version: self.meta.version.clone(),
            imported_at: self.meta.imported_at.clone(),
            advisories: self.meta.advisories,
            ecosystems: self.meta.ecosystems.clone(),
        }
    }

    fn name_index(&self, eco: &str) -> Result<Option<Arc<NameIndex>>, ScanError> {
        let Some(&at) = self.meta.index.get(eco) else { return Ok(None) };
        if let Some(i) = self.cache.lock().map_err(|_| ScanError::Db("cache lock poisoned".into()))?.get(eco) {
            return Ok(Some(i.clone()));
        }
        let map: NameIndex = serde_json::from_slice(&self.index.read(at)?).map_err(db_err)?;
        let map = Arc::new(map);
        self.cache.lock().map_err(|_| ScanError::Db("cache lock poisoned".into()))?.insert(eco.to_string(), map.clone());
        Ok(Some(map))
    }

    /// The vulnerabilities affecting `inventory`. I/O errors yield an empty list; use
    /// [`VulnDb::try_find`] to see them.
    pub fn find(&self, inventory: &Inventory) -> Vec<Finding> {
        self.try_find(inventory).unwrap_or_default()
    }

    /// Like [`VulnDb::find`], reporting database read errors.
    ///
    /// One finding per (vulnerability name, package, version): when several advisories name
    /// the same CVE for a package (a DSA and a DEBIAN-CVE record, a GHSA and a PYSEC record),
    /// the most severe is kept. Sorted by severity, then name, then package.
    pub fn try_find(&self, inventory: &Inventory) -> Result<Vec<Finding>, ScanError> {
        let os_eco = inventory.os.as_ref().and_then(OsInfo::osv_ecosystem);
        let mut vulns: HashMap<(u64, u64), StoredVuln> = HashMap::new();
        let mut findings: Vec<Finding> = Vec::new();
        let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
        for pkg in &inventory.packages {
            let Some(key) = match_key(pkg, os_eco.as_deref()) else { continue };
            let Some(index) = self.name_index(&key.ecosystem)? else { continue };
            let Some(&at) = index.get(&key.name) else { continue };
            let Some(version) = key.scheme.parse(&key.version) else { continue };
            let entries: Vec<StoredAffected> = serde_json::from_slice(&self.packages.read(at)?).map_err(db_err)?;
            for e in entries {
                if !affects(key.scheme, &version, &key.version, &e) {
                    continue;
                }
                let v = match vulns.entry(e.v) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(serde_json::from_slice::<StoredVuln>(&self.vulns.read(e.v)?).map_err(db_err)?)
                    }
                };
                let mut attributes =
                    vec![("package_name".to_string(), pkg.name.clone()), ("package_version".to_string(), pkg.version.clone())];
                if let Some((score, vector)) = &e.c3 {
                    attributes.push(("CVSS3_SCORE".into(), score.clone()));
                    attributes.push(("CVSS3_VECTOR".into(), vector.clone()));
                }
                if let Some((score, vector)) = &e.c2 {
                    attributes.push(("CVSS2_SCORE".into(), score.clone()));
                    attributes.push(("CVSS2_VECTOR".into(), vector.clone()));
                }
                let fixed_in =
                    e.r.iter()
                        .filter(|r| osv::range_affects(key.scheme, &version, &r.e))
                        .filter_map(|r| osv::fixed_after(key.scheme, &version, &r.e))
                        .min_by(|a, b| a.0.cmp(&b.0))
                        .map(|(_, raw)| raw);
                let finding = Finding {
                    fixed_in,
                    name: v.name.clone(),
                    description: v.description.clone(),
                    uri: v.uri.clone(),
                    severity: e.s,
                    attributes,
                    osv_id: v.id.clone(),
                };
                let dedup = (finding.name.clone(), pkg.name.clone(), pkg.version.clone());
                match seen.get(&dedup) {
                    Some(&i) => {
                        let old = &findings[i];
                        if (finding.severity, &finding.osv_id) < (old.severity, &old.osv_id) {
                            findings[i] = finding;
                        }
                    }
                    None => {
                        seen.insert(dedup, findings.len());
                        findings.push(finding);
                    }
                }
            }
        }
        findings.sort_by(|a, b| {
            (a.severity, &a.name, a.attribute("package_name"), a.attribute("package_version")).cmp(&(
                b.severity,
                &b.name,
                b.attribute("package_name"),
                b.attribute("package_version"),
            ))
        });
        Ok(findings)
    }
}

struct MatchKey {
    ecosystem: String,
    name: String,
    version: String,
    scheme: Scheme,
}

/// How a package is looked up: OSV ecosystem, advisory package name, version, ordering. OS
/// advisories are per source package (Debian, Ubuntu) or origin (Alpine), so those are looked
/// up by source name and version; the finding still names the binary package.
fn match_key(pkg: &Package, os_eco: Option<&str>) -> Option<MatchKey> {
    let key = |eco: &str, name: &str, version: &str, scheme| MatchKey {
        ecosystem: eco.to_string(),
        name: osv::normalize_name(eco, name),
        version: version.to_string(),
        scheme,
    };
    let src_name = pkg.source_name.as_deref().unwrap_or(&pkg.name);
    Some(match pkg.ecosystem {
        Ecosystem::Debian | Ecosystem::Ubuntu => {
            let eco = os_eco?;
            let prefix = if pkg.ecosystem == Ecosystem::Debian { "Debian:" } else { "Ubuntu:" };
            if !eco.starts_with(prefix) {
                return None;
            }
            key(eco, src_name, pkg.source_version.as_deref().unwrap_or(&pkg.version), Scheme::Dpkg)
        }
        Ecosystem::Alpine => {
            let eco = os_eco.filter(|e| e.starts_with("Alpine:"))?;
            key(eco, src_name, &pkg.version, Scheme::Apk)
        }
        Ecosystem::PyPI => key("PyPI", &pkg.name, &pkg.version, Scheme::Pep440),
        Ecosystem::Npm => key("npm", &pkg.name, &pkg.version, Scheme::Semver),
        Ecosystem::Go => key("Go", &pkg.name, &pkg.version, Scheme::Go),
        Ecosystem::CratesIo => key("crates.io", &pkg.name, &pkg.version, Scheme::Semver),
        Ecosystem::Maven => key("Maven", &pkg.name, &pkg.version, Scheme::Maven),
        Ecosystem::Rpm => return None,
    })
}

/// OSV semantics: affected if any range includes the version or the `versions` list names it.
/// Listed versions are compared as strings, and also parsed for the ecosystems whose
/// spellings vary (`v1.2.3` / `1.2.3`, `1.0` / `1.0.0`); dpkg and apk lists (which can hold
/// hundreds of entries per advisory, e.g. for `linux`) are exact strings.
fn affects(scheme: Scheme, version: &Ver, raw: &str, e: &StoredAffected) -> bool {
    if e.r.iter().any(|r| osv::range_affects(scheme, version, &r.e)) {
        return true;
    }
    let spelled_variously = !matches!(scheme, Scheme::Dpkg | Scheme::Apk);
    e.vs.iter().any(|v| v == raw || (spelled_variously && scheme.parse(v).is_some_and(|p| &p == version)))
}
