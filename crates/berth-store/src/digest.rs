//! Content digests (`algorithm:hex`). Only the algorithms registries agree
//! on are accepted, and only in canonical lowercase form, so a digest is
//! always safe to use as a file name or object key.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest {0:?} is not of the form algorithm:hex")]
    Malformed(String),
    #[error("digest algorithm {0:?} is not supported (use sha256 or sha512)")]
    UnsupportedAlgorithm(String),
    #[error("digest {0:?} has the wrong length or is not lowercase hex")]
    BadEncoding(String),
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    pub fn hex(&self) -> &str {
        &self.hex
    }
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest { algorithm: Algorithm::Sha256, hex: hex::encode(sha2::Sha256::digest(bytes)) }
    }
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let hex = match algorithm {
            Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Algorithm::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        };
        Digest { algorithm, hex }
    }
    pub fn from_parts(algorithm: Algorithm, raw: &[u8]) -> Digest {
        Digest { algorithm, hex: hex::encode(raw) }
    }
}

/// An incremental hash with either algorithm a digest may name: what every layer that checks bytes
/// against a content address uses (uploads, the integrity check, fsck, resealing, backups, the
/// node-local blob cache).
pub enum DigestHasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl DigestHasher {
    pub fn new(algorithm: Algorithm) -> DigestHasher {
        match algorithm {
            Algorithm::Sha256 => DigestHasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => DigestHasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// A hasher with the algorithm `digest` names, to check bytes against it.
    pub fn for_digest(digest: &Digest) -> DigestHasher {
        DigestHasher::new(digest.algorithm())
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(data),
            DigestHasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            DigestHasher::Sha256(h) => Digest::from_parts(Algorithm::Sha256, &h.finalize()),
            DigestHasher::Sha512(h) => Digest::from_parts(Algorithm::Sha512, &h.finalize()),
        }
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s.split_once(':').ok_or_else(|| DigestError::Malformed(s.to_string()))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ if !alg.is_empty() && alg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b)) => {
                return Err(DigestError::UnsupportedAlgorithm(alg.to_string()))
            }
            _ => return Err(DigestError::Malformed(s.to_string())),
        };
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(DigestError::BadEncoding(s.to_string()));
        }
        Ok(Digest { algorithm, hex: hex.to_string() })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_digests_only() {
        let d: Digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".parse().unwrap();
        assert_eq!(d, Digest::sha256_of(b"{}"));
        assert!(matches!(
            "sha256:44136FA355B3678A1146AD16F7E8649E94FB4FC21FE77E8310C060F61CAAFF8A".parse::<Digest>(),
            Err(DigestError::BadEncoding(_))
        ));
        assert!(matches!("md5:abc".parse::<Digest>(), Err(DigestError::UnsupportedAlgorithm(_))));
        assert!(matches!("sha256".parse::<Digest>(), Err(DigestError::Malformed(_))));
        assert!(matches!("sha256:../../etc".parse::<Digest>(), Err(DigestError::BadEncoding(_))));
        let long = format!("sha512:{}", "a".repeat(128));
        assert_eq!(long.parse::<Digest>().unwrap().to_string(), long);
    }
}
