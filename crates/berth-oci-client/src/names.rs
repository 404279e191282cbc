//! Names and digests that go into URL paths, and checking bytes against a digest.

use sha2::{Digest, Sha256};

use crate::error::ClientError;

pub(crate) fn is_digest(reference: &str) -> bool {
    reference.contains(':')
}

pub(crate) fn verify_digest(expected: &str, bytes: &[u8]) -> Result<(), ClientError> {
    let actual = match expected.split_once(':') {
        Some(("sha256", _)) => format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
        Some(("sha512", _)) => format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes))),
        _ => return Err(ClientError::Config(format!("unsupported digest algorithm in {expected}"))),
    };
    if actual != expected {
        return Err(ClientError::DigestMismatch { expected: expected.to_string(), actual });
    }
    Ok(())
}

/// Names go into URL paths: accept only what the OCI spec allows, so nothing can add a
/// path segment, a query or a fragment.
pub(crate) fn check_repo(repo: &str) -> Result<(), ClientError> {
    let ok = !repo.is_empty()
        && repo.len() <= 255
        && repo.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        });
    if ok {
        Ok(())
    } else {
        Err(ClientError::Config(format!("invalid repository name {repo:?}")))
    }
}

pub(crate) fn check_digest(digest: &str) -> Result<(), ClientError> {
    let ok = match digest.split_once(':') {
        Some((alg, hex)) => {
            !alg.is_empty()
                && alg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
                && !hex.is_empty()
                && hex.bytes().all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ClientError::Config(format!("invalid digest {digest:?}")))
    }
}

pub(crate) fn check_reference(reference: &str) -> Result<(), ClientError> {
    if is_digest(reference) {
        return check_digest(reference);
    }
    let ok = (1..=128).contains(&reference.len())
        && reference.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && reference.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ClientError::Config(format!("invalid tag {reference:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_path_are_refused() {
        assert!(check_repo("library/alpine").is_ok());
        for bad in ["", "a/../b", "a?x=1", "a#f", "A", "a//b", "/a", ".a"] {
            assert!(check_repo(bad).is_err(), "{bad}");
        }
        assert!(check_reference("v1.2_3-x").is_ok());
        assert!(check_reference("sha256:abc").is_ok());
        for bad in ["", "-x", "a/b", "a?b", "sha256:", ":abc", "sha256:a/b"] {
            assert!(check_reference(bad).is_err(), "{bad}");
        }
    }
}
