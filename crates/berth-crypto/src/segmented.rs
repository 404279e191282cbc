//! Segmented AEAD objects: how a blob is stored encrypted.
//!
//! ```text
//! header:   "BRS2" | segment size log2 (1) | nonce prefix (7) | key reference length (1) |
//!           key reference | layer count (1) | per layer: wrapped data key length (1) | wrapped data key
//! segments: each SEGMENT plaintext bytes (the last may be shorter, or empty for an empty
//!           object) sealed with AES-256-GCM once per layer, each seal adding a 16-byte tag
//! ```
//! Each object has its own random data key per layer, wrapped by the key the reference names
//! (a KMS key version, or the registry-managed key); two layers are KMS_DSSE's two
//! independent encryptions. Segments use the STREAM construction (Hoang, Reyhanitabar,
//! Rogaway, Vizár): the nonce is the object's prefix, the segment's index and a last-segment
//! flag, so segments cannot be reordered, dropped or truncated without failing
//! authentication. The last segment also binds the caller's associated data (the blob's
//! digest, known only when an upload completes), so a whole object cannot be passed off as
//! another. The plaintext length is known from metadata, which fixes where the last segment is.
//!
//! Encryption can stop and resume between requests ([`Encryptor::resume`]): a segment is
//! sealed only once the next byte arrives, so what a paused upload holds back is at most one
//! segment of plaintext, which the caller keeps sealed (see berth-core's sealing).

use rand_core::{OsRng, RngCore};

use crate::sealed::KEY_LEN;
use crate::CryptoError;

const MAGIC: &[u8; 4] = b"BRS2";
const PREFIX_LEN: usize = 7;
const TAG_LEN: u64 = 16;
/// 64 KiB: a range read decrypts at most 64 KiB more than it returns on each side, and the
/// tags cost 0.02% per layer.
pub const SEGMENT_LOG2: u8 = 16;
/// Plaintext bytes per segment.
pub const SEGMENT: usize = 1 << SEGMENT_LOG2;

/// What an object's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Which key wrapped the data keys (opaque to this module).
    pub key_ref: Vec<u8>,
    /// The object's data keys, one per layer, wrapped (by the caller).
    pub wrapped_keys: Vec<Vec<u8>>,
    segment_log2: u8,
    nonce_prefix: [u8; PREFIX_LEN],
    /// The header's length in bytes.
    pub len: u64,
}

impl Header {
    /// A header for a new object: a fresh nonce prefix, one layer per wrapped key (1 or 2).
    pub fn new(key_ref: &[u8], wrapped_keys: Vec<Vec<u8>>) -> Result<Header, CryptoError> {
        if key_ref.len() > 255 || wrapped_keys.iter().any(|k| k.len() > 255) {
            return Err(CryptoError::Malformed("key reference or wrapped key longer than 255 bytes"));
        }
        if !(1..=2).contains(&wrapped_keys.len()) {
            return Err(CryptoError::Malformed("an object has one or two layers"));
        }
        let mut nonce_prefix = [0u8; PREFIX_LEN];
        OsRng.fill_bytes(&mut nonce_prefix);
        let len = (4 + 1 + PREFIX_LEN + 1 + key_ref.len() + 1 + wrapped_keys.iter().map(|k| 1 + k.len()).sum::<usize>()) as u64;
        Ok(Header { key_ref: key_ref.to_vec(), wrapped_keys, segment_log2: SEGMENT_LOG2, nonce_prefix, len })
    }

    fn segment_size(&self) -> u64 {
        1u64 << self.segment_log2
    }

    fn layers(&self) -> u64 {
        self.wrapped_keys.len() as u64
    }

    /// Stored bytes of one full segment.
    pub fn stored_segment(&self) -> u64 {
        self.segment_size() + self.layers() * TAG_LEN
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
        let field = |at: &mut usize| -> Result<Vec<u8>, CryptoError> {
            let len = *bytes.get(*at).ok_or(malformed("truncated header"))? as usize;
            *at += 1;
            let out = bytes.get(*at..*at + len).ok_or(malformed("truncated header"))?.to_vec();
            *at += len;
            Ok(out)
        };
        let key_ref = field(&mut at)?;
        let layers = *bytes.get(at).ok_or(malformed("truncated header"))?;
        at += 1;
        if !(1..=2).contains(&layers) {
            return Err(malformed("an object has one or two layers"));
        }
        let mut wrapped_keys = Vec::with_capacity(layers as usize);
        for _ in 0..layers {
            wrapped_keys.push(field(&mut at)?);
        }
        Ok(Header { key_ref, wrapped_keys, segment_log2, nonce_prefix, len: at as u64 })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        out.extend_from_slice(MAGIC);
        out.push(self.segment_log2);
        out.extend_from_slice(&self.nonce_prefix);
        out.push(self.key_ref.len() as u8);
        out.extend_from_slice(&self.key_ref);
        out.push(self.wrapped_keys.len() as u8);
        for k in &self.wrapped_keys {
            out.push(k.len() as u8);
            out.extend_from_slice(k);
        }
        out
    }

    /// The number of segments of an object of `plain_len` bytes (an empty one has one, empty).
    pub fn segments(&self, plain_len: u64) -> u64 {
        plain_len.div_ceil(self.segment_size()).max(1)
    }

    /// The stored size of an object of `plain_len` plaintext bytes.
    pub fn stored_len(&self, plain_len: u64) -> u64 {
        self.len + plain_len + self.segments(plain_len) * self.layers() * TAG_LEN
    }

    /// The stored byte range holding plaintext bytes `start..end` (end exclusive, within
    /// `plain_len`), and the index of its first segment: what a range read fetches.
    pub fn stored_range(&self, start: u64, end: u64, plain_len: u64) -> (std::ops::Range<u64>, u64) {
        let seg = self.segment_size();
        let first = start / seg;
        let last = end.saturating_sub(1).max(start) / seg;
        let last = last.min(self.segments(plain_len) - 1);
        let from = self.len + first * self.stored_segment();
        let to = (self.len + (last + 1) * self.stored_segment()).min(self.stored_len(plain_len));
        (from..to, first)
    }

    /// The plaintext offset where segment `index` starts.
    pub fn segment_start(&self, index: u64) -> u64 {
        index * self.segment_size()
    }
}

/// The largest header: magic, sizes, prefix and length-prefixed fields of at most 255 bytes.
pub const MAX_HEADER_LEN: usize = 4 + 1 + PREFIX_LEN + 1 + 255 + 1 + 2 * 256;

/// The keys of one object, ready to seal or open its segments.
///
/// AES-256-GCM from `ring` (BoringSSL's assembly: AES-NI/VAES and carry-less multiply), not
/// RustCrypto's `aes-gcm`, which runs at ~1.3 GB/s here against ring's 7-9 GB/s and would make
/// every encrypted pull CPU-bound (bench/RESULTS.md). The nonces are exactly those of
/// `aead::stream::StreamBE32` (prefix, 32-bit big-endian index, last-segment flag), so objects
/// are byte-for-byte what that construction makes (a test checks both ways).
pub struct SegmentCipher {
    layers: Vec<ring::aead::LessSafeKey>,
    nonce_prefix: [u8; PREFIX_LEN],
}

impl SegmentCipher {
    /// One data key per layer of `header`, in the header's order.
    pub fn new(header: &Header, data_keys: &[&[u8; KEY_LEN]]) -> Result<SegmentCipher, CryptoError> {
        if data_keys.len() != header.wrapped_keys.len() {
            return Err(CryptoError::Malformed("one data key per layer"));
        }
        let layers = data_keys
            .iter()
            .map(|k| {
                ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, k.as_slice())
                    .map(ring::aead::LessSafeKey::new)
                    .map_err(|_| CryptoError::Malformed("a data key is not an AES-256 key"))
            })
            .collect::<Result<_, _>>()?;
        Ok(SegmentCipher { layers, nonce_prefix: header.nonce_prefix })
    }

    /// STREAM's nonce for segment `index`: prefix | index (big-endian) | last flag.
    fn nonce(&self, index: u32, last: bool) -> ring::aead::Nonce {
        let mut nonce = [0u8; ring::aead::NONCE_LEN];
        nonce[..PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
        nonce[PREFIX_LEN + 4] = u8::from(last);
        ring::aead::Nonce::assume_unique_for_key(nonce)
    }

    /// Seals the plaintext at `buffer[start..]` in place, appending each layer's tag.
    fn seal_tail(&self, index: u32, last: bool, aad: &[u8], buffer: &mut Vec<u8>, start: usize) -> Result<(), CryptoError> {
        if index == u32::MAX {
            return Err(CryptoError::Malformed("too many segments"));
        }
        for layer in &self.layers {
            let tag = layer
                .seal_in_place_separate_tag(self.nonce(index, last), ring::aead::Aad::from(aad), &mut buffer[start..])
                .map_err(|_| CryptoError::Malformed("a segment too large to seal"))?;
            buffer.extend_from_slice(tag.as_ref());
        }
        Ok(())
    }

    /// Opens the stored segment at `buffer[start..]` in place; its plaintext is left at
    /// `buffer[start..]` (the tags are cut off).
    fn open_tail(&self, index: u32, last: bool, aad: &[u8], buffer: &mut Vec<u8>, start: usize) -> Result<(), CryptoError> {
        let plain = self.open_slice(index, last, aad, &mut buffer[start..])?;
        buffer.truncate(start + plain);
        Ok(())
    }

    /// Opens the stored segment `segment` in place; returns the length of its plaintext, left
    /// at its start.
    fn open_slice(&self, index: u32, last: bool, aad: &[u8], segment: &mut [u8]) -> Result<usize, CryptoError> {
        let mut len = segment.len();
        for layer in self.layers.iter().rev() {
            len = layer
                .open_in_place(self.nonce(index, last), ring::aead::Aad::from(aad), &mut segment[..len])
                .map_err(|_| CryptoError::NotAuthentic)?
                .len();
        }
        Ok(len)
    }

    #[cfg(test)]
    fn seal(&self, index: u32, last: bool, aad: &[u8], buffer: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.seal_tail(index, last, aad, buffer, 0)
    }

    #[cfg(test)]
    fn open(&self, index: u32, last: bool, aad: &[u8], buffer: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.open_tail(index, last, aad, buffer, 0)
    }
}

/// Encrypts one object as it streams: feed plaintext with [`Encryptor::update`], end with
/// [`Encryptor::finish`]. Holds at most one segment of plaintext.
pub struct Encryptor {
    cipher: SegmentCipher,
    buffer: Vec<u8>,
    index: u32,
}

impl Encryptor {
    /// Starts an object (its header is written first, by the caller).
    pub fn new(cipher: SegmentCipher) -> Encryptor {
        Encryptor::resume(cipher, 0, Vec::new())
    }

    /// Continues an object whose segments before `index` are written and whose held-back
    /// plaintext is `tail` (what [`Encryptor::state`] said when it paused).
    pub fn resume(cipher: SegmentCipher, index: u32, mut tail: Vec<u8>) -> Encryptor {
        tail.reserve((SEGMENT + 2 * TAG_LEN as usize).saturating_sub(tail.len()));
        Encryptor { cipher, buffer: tail, index }
    }

    /// The next segment's index and the plaintext held back for it (at most one segment).
    pub fn state(&self) -> (u32, &[u8]) {
        (self.index, &self.buffer)
    }

    /// Takes plaintext; appends every segment it completes, sealed, to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        while !data.is_empty() {
            // A full segment is sealed only once more data arrives: the last one is flagged.
            if self.buffer.len() == SEGMENT {
                self.seal_segment(false, b"", out)?;
            }
            // A whole segment with more after it, nothing held: sealed where it lands in `out`
            // (one copy instead of two).
            if self.buffer.is_empty() && data.len() > SEGMENT {
                let start = out.len();
                out.extend_from_slice(&data[..SEGMENT]);
                data = &data[SEGMENT..];
                self.cipher.seal_tail(self.index, false, b"", out, start)?;
                self.index = self.index.checked_add(1).ok_or(CryptoError::Malformed("too many segments"))?;
                continue;
            }
            let take = (SEGMENT - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals the last segment (possibly empty) into `out`, binding `aad` (the digest).
    pub fn finish(mut self, aad: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.seal_segment(true, aad, out)
    }

    fn seal_segment(&mut self, last: bool, aad: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let start = out.len();
        out.extend_from_slice(&self.buffer);
        self.buffer.clear();
        self.cipher.seal_tail(self.index, last, aad, out, start)?;
        self.index = self.index.checked_add(1).ok_or(CryptoError::Malformed("too many segments"))?;
        Ok(())
    }
}

/// Decrypts the segments of one object, in order or from any segment on (range reads).
pub struct Decryptor {
    cipher: SegmentCipher,
    aad: Vec<u8>,
    stored_segment: usize,
    segments: u64,
    buffer: Vec<u8>,
    index: u64,
}

impl Decryptor {
    /// For an object whose header is `header`, of `plain_len` plaintext bytes, bound to
    /// `aad`; decryption starts at segment `first` (0 for a whole read).
    pub fn new(header: &Header, cipher: SegmentCipher, aad: &[u8], plain_len: u64, first: u64) -> Decryptor {
        let stored_segment = header.stored_segment() as usize;
        Decryptor {
            cipher,
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
            // A whole middle segment, nothing held: opened where it lands in `out`.
            if self.buffer.is_empty() && data.len() >= self.stored_segment && self.index + 1 < self.segments {
                let start = out.len();
                out.extend_from_slice(&data[..self.stored_segment]);
                data = &data[self.stored_segment..];
                let index = u32::try_from(self.index).map_err(|_| CryptoError::Malformed("too many segments"))?;
                if let Err(e) = self.cipher.open_tail(index, false, b"", out, start) {
                    out.truncate(start);
                    return Err(e);
                }
                self.index += 1;
                continue;
            }
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

    /// Stored bytes of a whole segment.
    pub fn stored_segment(&self) -> usize {
        self.stored_segment
    }

    /// Whether the next segment is the object's last (which only the end of the stored
    /// bytes delimits: it may be whole or shorter).
    pub fn next_is_last(&self) -> bool {
        self.index + 1 == self.segments
    }

    /// Whether every segment of the object was opened.
    pub fn is_complete(&self) -> bool {
        self.index == self.segments
    }

    /// Opens the next segment where it lies, for callers that cut the stored bytes at segment
    /// boundaries themselves (no copy): `segment` holds exactly its stored bytes (a whole
    /// segment, or all that is left of the object for the last one). Returns the length of
    /// its plaintext, left at its start. Not to be mixed with [`Decryptor::update`].
    pub fn open_in_place(&mut self, segment: &mut [u8]) -> Result<usize, CryptoError> {
        if !self.buffer.is_empty() {
            return Err(CryptoError::Malformed("a segment opened in place while another is held"));
        }
        if self.index >= self.segments {
            return Err(CryptoError::Malformed("more bytes than the object holds"));
        }
        let last = self.next_is_last();
        if segment.len() > self.stored_segment || (!last && segment.len() != self.stored_segment) {
            return Err(CryptoError::NotAuthentic);
        }
        let index = u32::try_from(self.index).map_err(|_| CryptoError::Malformed("too many segments"))?;
        let aad: &[u8] = if last { &self.aad } else { b"" };
        let plain = self.cipher.open_slice(index, last, aad, segment)?;
        self.index += 1;
        Ok(plain)
    }

    fn open_segment(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let index = u32::try_from(self.index).map_err(|_| CryptoError::Malformed("too many segments"))?;
        let aad: &[u8] = if last { &self.aad } else { b"" };
        let start = out.len();
        out.extend_from_slice(&self.buffer);
        self.buffer.clear();
        if let Err(e) = self.cipher.open_tail(index, last, aad, out, start) {
            out.truncate(start);
            return Err(e);
        }
        self.index += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealed::random_key;
    use zeroize::Zeroizing;

    type Keys = Vec<Zeroizing<[u8; KEY_LEN]>>;

    fn cipher(header: &Header, keys: &Keys) -> SegmentCipher {
        let refs: Vec<&[u8; KEY_LEN]> = keys.iter().map(|k| &**k).collect();
        SegmentCipher::new(header, &refs).expect("cipher")
    }

    fn encrypt(keys: &Keys, plain: &[u8], piece: usize) -> Vec<u8> {
        let header = Header::new(b"key-1", keys.iter().map(|_| vec![7u8; 60]).collect()).expect("header");
        let mut out = header.encode();
        let mut enc = Encryptor::new(cipher(&header, keys));
        for chunk in plain.chunks(piece.max(1)) {
            enc.update(chunk, &mut out).expect("update");
        }
        enc.finish(b"sha256:abc", &mut out).expect("finish");
        out
    }

    fn decrypt(keys: &Keys, stored: &[u8], plain_len: u64, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let header = Header::parse(stored)?;
        let mut dec = Decryptor::new(&header, cipher(&header, keys), aad, plain_len, 0);
        let mut out = Vec::new();
        for chunk in stored[header.len as usize..].chunks(10_000) {
            dec.update(chunk, &mut out)?;
        }
        dec.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn objects_of_every_size_and_layer_count_round_trip_and_hide_their_plaintext() {
        let seg = SEGMENT;
        for layers in [1, 2] {
            let keys: Keys = (0..layers).map(|_| random_key()).collect();
            for len in [0, 1, seg - 1, seg, seg + 1, 3 * seg, 3 * seg + 17] {
                let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                for piece in [1000, seg, 7 * seg] {
                    let stored = encrypt(&keys, &plain, piece);
                    let header = Header::parse(&stored).expect("header");
                    assert_eq!(header.key_ref, b"key-1");
                    assert_eq!(header.wrapped_keys.len(), layers);
                    assert_eq!(stored.len() as u64, header.stored_len(len as u64), "len {len}");
                    assert_eq!(decrypt(&keys, &stored, len as u64, b"sha256:abc").expect("decrypts"), plain);
                    if len >= 64 {
                        assert!(!stored.windows(64).any(|w| w == &plain[..64]), "plaintext visible");
                    }
                }
            }
            if layers == 2 {
                // Each layer is needed: one key alone opens nothing.
                let stored = encrypt(&keys, &[9u8; 1000], 100);
                let one: Keys = vec![keys[0].clone()];
                let header = Header::parse(&stored).expect("header");
                assert!(SegmentCipher::new(&header, &[&*one[0]]).is_err());
                let swapped: Keys = vec![keys[1].clone(), keys[0].clone()];
                assert!(decrypt(&swapped, &stored, 1000, b"sha256:abc").is_err());
            }
        }
    }

    #[test]
    fn encryption_paused_at_any_point_resumes_to_the_same_object_layout() {
        let keys: Keys = vec![random_key()];
        let plain: Vec<u8> = (0..(2 * SEGMENT + 999)).map(|i| (i % 13) as u8).collect();
        for cut in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT] {
            let header = Header::new(b"r", vec![vec![1u8; 10]]).expect("header");
            let mut out = header.encode();
            let mut enc = Encryptor::new(cipher(&header, &keys));
            enc.update(&plain[..cut], &mut out).expect("first request");
            let (index, tail) = enc.state();
            assert!(tail.len() <= SEGMENT, "holds back at most one segment");
            let (index, tail) = (index, tail.to_vec());
            drop(enc);
            let mut enc = Encryptor::resume(cipher(&header, &keys), index, tail);
            enc.update(&plain[cut..], &mut out).expect("second request");
            enc.finish(b"sha256:abc", &mut out).expect("finish");
            assert_eq!(decrypt(&keys, &out, plain.len() as u64, b"sha256:abc").expect("decrypts"), plain, "cut {cut}");
        }
    }

    #[test]
    fn altered_truncated_extended_or_misattributed_objects_fail() {
        let keys: Keys = vec![random_key()];
        let seg = SEGMENT;
        let plain = vec![5u8; 2 * seg + 100];
        let len = plain.len() as u64;
        let stored = encrypt(&keys, &plain, seg);
        let header = Header::parse(&stored).expect("header");
        let mut flipped = stored.clone();
        flipped[header.len as usize + seg + 30] ^= 1;
        assert_eq!(decrypt(&keys, &flipped, len, b"sha256:abc"), Err(CryptoError::NotAuthentic));
        // Cut after the second segment: the second is not flagged last, so it cannot end.
        let cut = &stored[..(header.len as usize + 2 * (seg + 16))];
        assert!(decrypt(&keys, cut, 2 * seg as u64, b"sha256:abc").is_err());
        assert!(decrypt(&keys, &stored, len, b"sha256:other").is_err(), "bound to its digest");
        assert!(decrypt(&vec![random_key()], &stored, len, b"sha256:abc").is_err());
        let mut longer = stored.clone();
        longer.extend_from_slice(&[0u8; 16]);
        assert!(decrypt(&keys, &longer, len, b"sha256:abc").is_err());
    }

    /// What berth-core's sealed reader does: cut the stored bytes at segment boundaries and
    /// open each segment where it lies.
    fn decrypt_in_place(keys: &Keys, stored: &[u8], plain_len: u64, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let header = Header::parse(stored)?;
        let mut dec = Decryptor::new(&header, cipher(&header, keys), aad, plain_len, 0);
        let mut rest = stored[header.len as usize..].to_vec();
        let mut out = Vec::new();
        while !dec.is_complete() {
            let take = if dec.next_is_last() { rest.len() } else { dec.stored_segment().min(rest.len()) };
            let mut segment: Vec<u8> = rest.drain(..take).collect();
            let n = dec.open_in_place(&mut segment)?;
            out.extend_from_slice(&segment[..n]);
        }
        if !rest.is_empty() {
            return Err(CryptoError::Malformed("more bytes than the object holds"));
        }
        Ok(out)
    }

    #[test]
    fn segments_opened_in_place_give_what_update_gives_and_refuse_what_it_refuses() {
        for layers in [1, 2] {
            let keys: Keys = (0..layers).map(|_| random_key()).collect();
            for len in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 17] {
                let plain: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
                let stored = encrypt(&keys, &plain, 5000);
                assert_eq!(decrypt_in_place(&keys, &stored, len as u64, b"sha256:abc").expect("opens"), plain, "len {len}");
                assert!(decrypt_in_place(&keys, &stored, len as u64, b"sha256:other").is_err(), "bound to its digest");
                let header = Header::parse(&stored).expect("header");
                if len > 0 {
                    let mut flipped = stored.clone();
                    flipped[header.len as usize + len / 2] ^= 1;
                    assert_eq!(decrypt_in_place(&keys, &flipped, len as u64, b"sha256:abc"), Err(CryptoError::NotAuthentic));
                }
                if len > SEGMENT {
                    // Cut after whole segments: the last one left is not flagged last.
                    let cut = &stored[..header.len as usize + header.stored_segment() as usize];
                    assert!(decrypt_in_place(&keys, cut, len as u64, b"sha256:abc").is_err());
                }
            }
        }
    }

    #[test]
    fn a_range_decrypts_only_the_segments_it_touches() {
        let keys: Keys = vec![random_key()];
        let seg = SEGMENT as u64;
        let plain: Vec<u8> = (0..(3 * seg + 500)).map(|i| (i * 7 % 256) as u8).collect();
        let len = plain.len() as u64;
        let stored = encrypt(&keys, &plain, 4096);
        let header = Header::parse(&stored).expect("header");
        for (start, end) in [(0, 1), (seg - 3, seg + 3), (2 * seg + 1, len), (len - 1, len), (5, 3 * seg)] {
            let (range, first) = header.stored_range(start, end, len);
            let mut dec = Decryptor::new(&header, cipher(&header, &keys), b"sha256:abc", len, first);
            let mut out = Vec::new();
            let bytes = &stored[range.start as usize..range.end as usize];
            dec.update(bytes, &mut out).expect("segments");
            if range.end == stored.len() as u64 {
                dec.finish(&mut out).expect("last");
            }
            let offset = (start - header.segment_start(first)) as usize;
            assert_eq!(&out[offset..offset + (end - start) as usize], &plain[start as usize..end as usize], "{start}..{end}");
        }
    }

    #[test]
    fn segments_are_exactly_aead_stream_be32s() {
        use aes_gcm::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
        use aes_gcm::aead::KeyInit;
        let keys: Keys = vec![random_key()];
        let header = Header::new(b"r", vec![vec![1u8; 10]]).expect("header");
        let ours = cipher(&header, &keys);
        let theirs = StreamBE32::from_aead(aes_gcm::Aes256Gcm::new((&*keys[0]).into()), (&header.nonce_prefix).into());
        for (index, last, aad) in [(0u32, false, &b""[..]), (7, false, b""), (3, true, b"sha256:abc")] {
            let plain: Vec<u8> = (0..1000u32).map(|i| (i * 31 + index) as u8).collect();
            let mut a = plain.clone();
            ours.seal(index, last, aad, &mut a).expect("seal");
            let mut b = plain.clone();
            theirs.encrypt_in_place(index, last, aad, &mut b).expect("stream seal");
            assert_eq!(a, b, "segment {index}");
            theirs.decrypt_in_place(index, last, aad, &mut a).expect("stream opens ours");
            assert_eq!(a, plain);
            ours.open(index, last, aad, &mut b).expect("we open the stream's");
            assert_eq!(b, plain);
        }
    }
}
