//! The root key: 32 random bytes that wrap every key berth holds.
//!
//! The embedded default creates it (mode 0600) in the data directory on first start; a
//! cluster gives every node the same file, or the same `BERTH_ROOT_KEY` (64 hex digits).

use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::sealed::{random_key, KEY_LEN};

#[derive(Debug, thiserror::Error)]
pub enum RootKeyError {
    #[error("reading the root key {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("creating the root key {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("the root key {0} must hold exactly 32 bytes (it was made by berth; restore it from your backup)")]
    WrongLength(String),
    #[error("BERTH_ROOT_KEY must be 64 hexadecimal digits (32 bytes)")]
    BadHex,
}

/// The root key. Never logged, never written anywhere but its own file; zeroed on drop.
pub struct RootKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(…)")
    }
}

impl RootKey {
    /// Reads the key file, or creates it (0600, written and synced before use) when it does
    /// not exist. Returns whether it was created, so `serve` can say where it is.
    pub fn load_or_create(path: &Path) -> Result<(RootKey, bool), RootKeyError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok((Self::from_bytes(&bytes, &path.display().to_string())?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Self::create(path)?, true)),
            Err(source) => Err(RootKeyError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// The key given as 64 hex digits (`BERTH_ROOT_KEY`).
    pub fn from_hex(hex_digits: &str) -> Result<RootKey, RootKeyError> {
        let hex_digits = hex_digits.trim();
        if hex_digits.len() != KEY_LEN * 2 || !hex_digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RootKeyError::BadHex);
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex_digits[2 * i..2 * i + 2], 16).map_err(|_| RootKeyError::BadHex)?;
        }
        Ok(RootKey(key))
    }

    fn from_bytes(bytes: &[u8], name: &str) -> Result<RootKey, RootKeyError> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| RootKeyError::WrongLength(name.to_string()))?;
        Ok(RootKey(Zeroizing::new(array)))
    }

    fn create(path: &Path) -> Result<RootKey, RootKeyError> {
        let err = |source| RootKeyError::Create { path: path.to_path_buf(), source };
        let key = random_key();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(err)?;
        file.write_all(key.as_ref()).map_err(err)?;
        file.sync_all().map_err(err)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
        }
        Ok(RootKey(key))
    }

    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A key for one purpose only, derived from the root key (HKDF-SHA256 with `purpose` as
    /// its info): e.g. the registry-managed key AES256 repositories' data keys are wrapped by.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; KEY_LEN]> {
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        // Expanding 32 bytes never exceeds HKDF's output limit (255 hash lengths).
        let _ = hkdf::Hkdf::<sha2::Sha256>::new(None, self.0.as_ref()).expand(purpose.as_bytes(), out.as_mut());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_key_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("root.key");
        let (first, created) = RootKey::load_or_create(&path).expect("created");
        assert!(created);
        let (again, created) = RootKey::load_or_create(&path).expect("read");
        assert!(!created);
        assert_eq!(first.bytes(), again.bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(format!("{first:?}"), "RootKey(…)");
    }

    #[test]
    fn a_damaged_or_malformed_root_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("root.key");
        std::fs::write(&path, [1u8; 31]).expect("write");
        assert!(matches!(RootKey::load_or_create(&path), Err(RootKeyError::WrongLength(_))));
        assert!(matches!(RootKey::from_hex("abc"), Err(RootKeyError::BadHex)));
        let hex = "00".repeat(31) + "ff";
        assert_eq!(RootKey::from_hex(&hex).expect("hex").bytes()[31], 0xff);
    }
}
