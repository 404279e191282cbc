//! The ciphertext blob KMS's Encrypt and GenerateDataKey return:
//! `"bk1" | key id (16 bytes, the UUID) | material version (u32, big-endian) | sealed`,
//! where sealed is `berth_crypto::seal` under that version's material, bound to the header
//! and the encryption context (so a blob opens only with the context it was made with).

use zeroize::Zeroizing;

use super::error::{KmsError, KmsResult};

const MAGIC: &[u8; 3] = b"bk1";
const HEADER_LEN: usize = 3 + 16 + 4;

pub struct Header {
    pub key_id: String,
    pub version: u32,
}

impl Header {
    pub fn parse(blob: &[u8]) -> KmsResult<Header> {
        let invalid = || KmsError::InvalidCiphertext("The ciphertext is not one this key service made".into());
        if blob.len() < HEADER_LEN || &blob[..3] != MAGIC {
            return Err(invalid());
        }
        let id = uuid::Uuid::from_slice(&blob[3..19]).map_err(|_| invalid())?;
        let version = u32::from_be_bytes([blob[19], blob[20], blob[21], blob[22]]);
        Ok(Header { key_id: id.hyphenated().to_string(), version })
    }
}

/// The associated data: the header, then the context sorted by key (KMS treats the context
/// as a map, so its order must not matter).
fn aad(header: &[u8], context: &[(String, String)]) -> Vec<u8> {
    let mut pairs: Vec<&(String, String)> = context.iter().collect();
    pairs.sort();
    let mut out = header.to_vec();
    for (k, v) in pairs {
        for part in [k, v] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

pub fn seal(
    material: &[u8; berth_crypto::KEY_LEN],
    key_id: &str,
    version: u32,
    plaintext: &[u8],
    context: &[(String, String)],
) -> KmsResult<Vec<u8>> {
    let id = uuid::Uuid::parse_str(key_id).map_err(|_| KmsError::Internal(format!("key id {key_id} is not a UUID")))?;
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 28);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    let sealed = berth_crypto::seal(material, &aad(&out, context), plaintext);
    out.extend_from_slice(&sealed);
    Ok(out)
}

pub fn open(
    material: &[u8; berth_crypto::KEY_LEN],
    _header: &Header,
    blob: &[u8],
    context: &[(String, String)],
) -> KmsResult<Zeroizing<Vec<u8>>> {
    let (head, sealed) = blob.split_at(HEADER_LEN);
    berth_crypto::open(material, &aad(head, context), sealed).map_err(|_| {
        KmsError::InvalidCiphertext("The ciphertext is not authentic: altered, or given with another encryption context".into())
    })
}
