//! Segmented AEAD objects: how a blob is stored encrypted.
//!
//! ```text
//! header:   "BRS1" | segment size log2 (1) | nonce prefix (7) | key reference length (1) |
//!           key reference | wrapped data key length (1) | wrapped data key
//! segments: AES-256-GCM of each SEGMENT plaintext bytes (the last may be shorter, or empty
//!           for an empty object), each followed by its 16-byte tag
//! ```
//! Each object has its own random data key, wrapped by the key the reference names (a KMS
//! key version, or the registry-managed key). Segments use the STREAM construction
//! (Hoang, Reyhanitabar, Rogaway, Vizár): the nonce is the object's prefix, the segment's
//! index and a last-segment flag, so segments cannot be reordered, dropped or truncated
//! without failing authentication. The caller's associated data (the blob's digest) is bound
//! to every segment, so one object cannot be passed off as another. The plaintext length is
//! known from metadata, which fixes where the last segment is.

use aes_gcm::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use rand_core::{OsRng, RngCore};

use crate::sealed::KEY_LEN;
use crate::CryptoError;

const MAGIC: &[u8; 4] = b"BRS1";
const PREFIX_LEN: usize = 7;
const TAG_LEN: u64 = 16;
/// 64 KiB: a range read decrypts at most 64 KiB more than it returns on each side, and the
/// tags cost 0.02%.
pub const SEGMENT_LOG2: u8 = 16;

/// What an object's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Which key wrapped the data key (opaque to this module).
    pub key_ref: Vec<u8>,
    /// The object's data key, wrapped (see [`crate::seal`]).
    pub wrapped_key: Vec<u8>,
    segment_log2: u8,
    nonce_prefix: [u8; PREFIX_LEN],
    /// The header's length in bytes.
    pub len: u64,
}

impl Header {
    fn segment_size(&self) -> u64 {
        1u64 << self.segment_log2
    }

    /// Reads a header from the first bytes of an object (at most [`MAX_HEADER_LEN`] are needed).
    pub fn parse(bytes: &[u8]) -> Result<Header, CryptoError> {
        let malformed = CryptoError::Malformed;
        if bytes.len() < 4 + 1 + PREFIX_LEN + 1 || &bytes[..4] != MAGIC {
            return Err(malformed("not a berth encrypted object"));
        }
        let segment_log2 = bytes[4];
        if !(12..=24).contains(&segment_log2) {
            return Err(malformed("segment size out of range"));
        }
        let mut nonce_prefix = [0u8; PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[5..5 + PREFIX_LEN]);
        let mut at = 5 + PREFIX_LEN;
        let key_ref_len = bytes[at] as usize;
        at += 1;
        let key_ref = bytes.get(at..at + key_ref_len).ok_or(malformed("truncated key reference"))?.to_vec();
        at += key_ref_len;
        let wrapped_len = *bytes.get(at).ok_or(malformed("truncated header"))? as usize;
        at += 1;
        let wrapped_key = bytes.get(at..at + wrapped_len).ok_or(malformed("truncated wrapped key"))?.to_vec();
        at += wrapped_len;
        Ok(Header { key_ref, wrapped_key, segment_log2, nonce_prefix, len: at as u64 })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        out.extend_from_slice(MAGIC);
        out.push(self.segment_log2);
        out.extend_from_slice(&self.nonce_prefix);
        out.push(self.key_ref.len() as u8);
        out.extend_from_slice(&self.key_ref);
        out.push(self.wrapped_key.len() as u8);
        out.extend_from_slice(&self.wrapped_key);
        out
    }

    /// The number of segments of an object of `plain_len` bytes (an empty one has one, empty).
    pub fn segments(&self, plain_len: u64) -> u64 {
        plain_len.div_ceil(self.segment_size()).max(1)
    }

    /// The stored size of an object of `plain_len` plaintext bytes.
    pub fn stored_len(&self, plain_len: u64) -> u64 {
        self.len + plain_len + self.segments(plain_len) * TAG_LEN
    }

    /// The stored byte range holding plaintext bytes `start..end` (end exclusive, within
    /// `plain_len`), and the index of its first segment: what a range read fetches.
    pub fn stored_range(&self, start: u64, end: u64, plain_len: u64) -> (std::ops::Range<u64>, u64) {
        let seg = self.segment_size();
        let first = start / seg;
        let last = end.saturating_sub(1).max(start) / seg;
        let last = last.min(self.segments(plain_len) - 1);
        let from = self.len + first * (seg + TAG_LEN);
        let to = (self.len + (last + 1) * (seg + TAG_LEN)).min(self.stored_len(plain_len));
        (from..to, first)
    }
}

/// The largest header: magic, sizes, prefix and two length-prefixed fields of at most 255 bytes.
pub const MAX_HEADER_LEN: usize = 4 + 1 + PREFIX_LEN + 1 + 255 + 1 + 255;

/// Encrypts one object as it streams: feed plaintext with [`Encryptor::update`], end with
/// [`Encryptor::finish`]. Holds at most one segment of plaintext.
pub struct Encryptor {
    stream: StreamBE32<Aes256Gcm>,
    aad: Vec<u8>,
    segment: usize,
    buffer: Vec<u8>,
    index: u32,
}

impl Encryptor {
    /// A new object under `data_key` (fresh per object; the caller wraps it into `wrapped_key`
    /// under the key `key_ref` names). Returns the encryptor and the header to write first.
    pub fn new(data_key: &[u8; KEY_LEN], key_ref: &[u8], wrapped_key: &[u8], aad: &[u8]) -> Result<(Encryptor, Vec<u8>), CryptoError> {
        if key_ref.len() > 255 || wrapped_key.len() > 255 {
            return Err(CryptoError::Malformed("key reference or wrapped key longer than 255 bytes"));
        }
        let mut nonce_prefix = [0u8; PREFIX_LEN];
        OsRng.fill_bytes(&mut nonce_prefix);
        let len = (4 + 1 + PREFIX_LEN + 1 + key_ref.len() + 1 + wrapped_key.len()) as u64;
        let header = Header { key_ref: key_ref.to_vec(), wrapped_key: wrapped_key.to_vec(), segment_log2: SEGMENT_LOG2, nonce_prefix, len };
        let stream = StreamBE32::from_aead(Aes256Gcm::new(data_key.into()), (&nonce_prefix).into());
        let segment = 1usize << SEGMENT_LOG2;
        Ok((
            Encryptor { stream, aad: aad.to_vec(), segment, buffer: Vec::with_capacity(segment + TAG_LEN as usize), index: 0 },
            header.encode(),
        ))
    }

    /// Takes plaintext; appends every segment it completes, sealed, to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        while !data.is_empty() {
            let take = (self.segment - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            // A full segment is sealed only once more data arrives: the last one is flagged.
            if self.buffer.len() == self.segment && !data.is_empty() {
                self.seal_segment(false, out)?;
            }
        }
        Ok(())
    }

    /// Seals the last segment (possibly empty) into `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.seal_segment(true, out)
    }

    fn seal_segment(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.stream
            .encrypt_in_place(self.index, last, &self.aad, &mut self.buffer)
            .map_err(|_| CryptoError::Malformed("too many segments"))?;
        out.extend_from_slice(&self.buffer);
        self.buffer.clear();
        self.index = self.index.checked_add(1).ok_or(CryptoError::Malformed("too many segments"))?;
        Ok(())
    }
}

/// Decrypts the segments of one object, in order or from any segment on (range reads).
pub struct Decryptor {
    stream: StreamBE32<Aes256Gcm>,
    aad: Vec<u8>,
    stored_segment: usize,
    segments: u64,
    buffer: Vec<u8>,
    index: u64,
}

impl Decryptor {
    /// For an object whose header is `header`, of `plain_len` plaintext bytes, whose data key
    /// the caller unwrapped; decryption starts at segment `first` (0 for a whole read).
    pub fn new(header: &Header, data_key: &[u8; KEY_LEN], aad: &[u8], plain_len: u64, first: u64) -> Decryptor {
        let stream = StreamBE32::from_aead(Aes256Gcm::new(data_key.into()), (&header.nonce_prefix).into());
        let stored_segment = (header.segment_size() + TAG_LEN) as usize;
        Decryptor {
            stream,
            aad: aad.to_vec(),
            stored_segment,
            segments: header.segments(plain_len),
            buffer: Vec::with_capacity(stored_segment),
            index: first,
        }
    }

    /// Takes stored bytes (after the header); appends the plaintext of every segment they
    /// complete to `out`. A segment that fails authentication ends the object.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        while !data.is_empty() {
            let take = (self.stored_segment - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == self.stored_segment {
                if self.index + 1 < self.segments {
                    self.open_segment(false, out)?;
                } else if !data.is_empty() {
                    return Err(CryptoError::Malformed("more bytes than the object holds"));
                }
                // A full last segment waits for finish, which flags it last.
            }
        }
        Ok(())
    }

    /// Opens the last segment: the object must end here.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if self.index + 1 != self.segments {
            return Err(CryptoError::NotAuthentic);
        }
        self.open_segment(true, out)
    }

    /// The index of the next segment to open (a range read stops before the object's end).
    pub fn next_segment(&self) -> u64 {
        self.index
    }

    fn open_segment(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let index = u32::try_from(self.index).map_err(|_| CryptoError::Malformed("too many segments"))?;
        self.stream.decrypt_in_place(index, last, &self.aad, &mut self.buffer).map_err(|_| CryptoError::NotAuthentic)?;
        out.extend_from_slice(&self.buffer);
        self.buffer.clear();
        self.index += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealed::random_key;

    fn encrypt(key: &[u8; KEY_LEN], plain: &[u8], piece: usize) -> Vec<u8> {
        let (mut enc, mut out) = Encryptor::new(key, b"key-1", &[7u8; 60], b"sha256:abc").expect("encryptor");
        for chunk in plain.chunks(piece.max(1)) {
            enc.update(chunk, &mut out).expect("update");
        }
        enc.finish(&mut out).expect("finish");
        out
    }

    fn decrypt(key: &[u8; KEY_LEN], stored: &[u8], plain_len: u64, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let header = Header::parse(stored)?;
        let mut dec = Decryptor::new(&header, key, aad, plain_len, 0);
        let mut out = Vec::new();
        for chunk in stored[header.len as usize..].chunks(10_000) {
            dec.update(chunk, &mut out)?;
        }
        dec.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn objects_of_every_size_round_trip_and_hide_their_plaintext() {
        let key = random_key();
        let seg = 1usize << SEGMENT_LOG2;
        for len in [0, 1, seg - 1, seg, seg + 1, 3 * seg, 3 * seg + 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for piece in [1000, seg, 7 * seg] {
                let stored = encrypt(&key, &plain, piece);
                let header = Header::parse(&stored).expect("header");
                assert_eq!(header.key_ref, b"key-1");
                assert_eq!(stored.len() as u64, header.stored_len(len as u64), "len {len}");
                assert_eq!(decrypt(&key, &stored, len as u64, b"sha256:abc").expect("decrypts"), plain);
                if len >= 64 {
                    assert!(!stored.windows(64).any(|w| w == &plain[..64]), "plaintext visible");
                }
            }
        }
    }

    #[test]
    fn altered_truncated_extended_or_misattributed_objects_fail() {
        let key = random_key();
        let seg = 1usize << SEGMENT_LOG2;
        let plain = vec![5u8; 2 * seg + 100];
        let len = plain.len() as u64;
        let stored = encrypt(&key, &plain, seg);
        let header = Header::parse(&stored).expect("header");
        let mut flipped = stored.clone();
        flipped[header.len as usize + seg + 30] ^= 1;
        assert_eq!(decrypt(&key, &flipped, len, b"sha256:abc"), Err(CryptoError::NotAuthentic));
        // Cut after the second segment: the second is not flagged last, so it cannot end.
        let cut = &stored[..(header.len as usize + 2 * (seg + 16))];
        assert!(decrypt(&key, cut, 2 * seg as u64, b"sha256:abc").is_err());
        assert!(decrypt(&key, &stored, len, b"sha256:other").is_err(), "bound to its digest");
        assert!(decrypt(&random_key(), &stored, len, b"sha256:abc").is_err());
        let mut longer = stored.clone();
        longer.extend_from_slice(&[0u8; 16]);
        assert!(decrypt(&key, &longer, len, b"sha256:abc").is_err());
    }

    #[test]
    fn a_range_decrypts_only_the_segments_it_touches() {
        let key = random_key();
        let seg = 1u64 << SEGMENT_LOG2;
        let plain: Vec<u8> = (0..(3 * seg + 500)).map(|i| (i * 7 % 256) as u8).collect();
        let len = plain.len() as u64;
        let stored = encrypt(&key, &plain, 4096);
        let header = Header::parse(&stored).expect("header");
        for (start, end) in [(0, 1), (seg - 3, seg + 3), (2 * seg + 1, len), (len - 1, len), (5, 3 * seg)] {
            let (range, first) = header.stored_range(start, end, len);
            let mut dec = Decryptor::new(&header, &key, b"sha256:abc", len, first);
            let mut out = Vec::new();
            let bytes = &stored[range.start as usize..range.end as usize];
            let ends_object = range.end == stored.len() as u64;
            if ends_object {
                let (body, last) = bytes.split_at(bytes.len() - ((len - (header.segments(len) - 1) * seg) + 16) as usize);
                dec.update(body, &mut out).expect("segments");
                let mut tail = Decryptor::new(&header, &key, b"sha256:abc", len, header.segments(len) - 1);
                tail.update(last, &mut Vec::new()).expect("buffered");
                tail.finish(&mut out).expect("last");
            } else {
                dec.update(bytes, &mut out).expect("segments");
            }
            let offset = (start - first * seg) as usize;
            assert_eq!(&out[offset..offset + (end - start) as usize], &plain[start as usize..end as usize], "{start}..{end}");
        }
    }
}
