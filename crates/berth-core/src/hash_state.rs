//! A SHA-256 whose running state can be saved and restored, so that an upload
//! started on one berth node can be hashed on by another without reading back
//! the bytes already written (S3 multipart parts cannot be read before the
//! upload completes).
//!
//! Written by hand because sha2 0.10 (the version the workspace uses through
//! the RustCrypto `digest` 0.10 traits) has no serializable state; it does
//! export the block function `compress256`, so only the buffering and the
//! final padding (FIPS 180-4 §5.1.1) live here, and the result is checked
//! against `sha2::Sha256` in the tests below.

use sha2::digest::generic_array::GenericArray;

const BLOCK: usize = 64;
const INITIAL: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
/// Serialized form: format byte, 8 state words, total length, buffered bytes.
const FORMAT: u8 = 1;

#[derive(Clone)]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes hashed in total, including those still buffered.
    len: u64,
    buf: [u8; BLOCK],
    buf_len: usize,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        ResumableSha256 { state: INITIAL, len: 0, buf: [0; BLOCK], buf_len: 0 }
    }
}

impl ResumableSha256 {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.buf_len > 0 {
            let take = (BLOCK - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < BLOCK {
                return;
            }
            sha2::compress256(&mut self.state, &[GenericArray::clone_from_slice(&self.buf)]);
            self.buf_len = 0;
        }
        let whole = data.len() / BLOCK * BLOCK;
        for block in data[..whole].chunks_exact(BLOCK) {
            // Borrowed, not copied: the bytes are hashed where they arrived.
            sha2::compress256(&mut self.state, std::slice::from_ref(GenericArray::from_slice(block)));
        }
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub fn finalize(&self) -> [u8; 32] {
        let mut state = self.state;
        let mut tail = [0u8; 2 * BLOCK];
        tail[..self.buf_len].copy_from_slice(&self.buf[..self.buf_len]);
        tail[self.buf_len] = 0x80;
        let total = if self.buf_len + 1 + 8 <= BLOCK { BLOCK } else { 2 * BLOCK };
        tail[total - 8..total].copy_from_slice(&(self.len.wrapping_mul(8)).to_be_bytes());
        let blocks: Vec<GenericArray<u8, _>> = tail[..total].chunks_exact(BLOCK).map(GenericArray::clone_from_slice).collect();
        sha2::compress256(&mut state, &blocks);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 32 + 8 + self.buf_len);
        out.push(FORMAT);
        for w in self.state {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(&self.buf[..self.buf_len]);
        out
    }

    /// None when the bytes are not a state this version wrote (the caller rebuilds instead).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&format, rest) = bytes.split_first()?;
        if format != FORMAT || rest.len() < 40 || rest.len() >= 40 + BLOCK {
            return None;
        }
        let mut state = [0u32; 8];
        for (w, b) in state.iter_mut().zip(rest[..32].chunks_exact(4)) {
            *w = u32::from_be_bytes(b.try_into().ok()?);
        }
        let len = u64::from_be_bytes(rest[32..40].try_into().ok()?);
        let buffered = &rest[40..];
        if len % BLOCK as u64 != buffered.len() as u64 {
            return None;
        }
        let mut buf = [0u8; BLOCK];
        buf[..buffered.len()].copy_from_slice(buffered);
        Some(ResumableSha256 { state, len, buf, buf_len: buffered.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn matches_sha256_at_every_padding_boundary() {
        for n in (0..200).chain([1000, 4096, 65_537, 1 << 20]) {
            let d = data(n);
            let mut h = ResumableSha256::new();
            h.update(&d);
            assert_eq!(h.finalize().as_slice(), Sha256::digest(&d).as_slice(), "length {n}");
        }
    }

    #[test]
    fn resumes_from_its_serialized_state_at_any_split() {
        let d = data(10_000);
        let expected = Sha256::digest(&d);
        for split in [0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 4095, 9999, 10_000] {
            let mut a = ResumableSha256::new();
            a.update(&d[..split]);
            let mut b = ResumableSha256::from_bytes(&a.to_bytes()).expect("state round-trips");
            assert_eq!(b.len(), split as u64);
            // Feed the rest in uneven pieces, as chunks arrive from the network.
            for piece in d[split..].chunks(97) {
                b.update(piece);
            }
            assert_eq!(b.finalize().as_slice(), expected.as_slice(), "split at {split}");
        }
    }

    #[test]
    fn refuses_states_it_did_not_write() {
        assert!(ResumableSha256::from_bytes(&[]).is_none());
        assert!(ResumableSha256::from_bytes(&[2; 41]).is_none());
        let mut h = ResumableSha256::new();
        h.update(b"abc");
        let mut bytes = h.to_bytes();
        bytes.push(0); // a buffered byte more than the length says
        assert!(ResumableSha256::from_bytes(&bytes).is_none());
    }
}
