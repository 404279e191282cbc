//! What a sealed upload session records after each request (`UploadCursor::state`): its
//! scope, the object's header (with the wrapped data keys), the next segment's index, the
//! held-back plaintext sealed under the object's first data key, and the underlying store's
//! own cursor. Written here by hand because it is a handful of length-prefixed fields.

use berth_store::UploadCursor;

const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedCursor {
    pub scope: String,
    /// The object's encoded header (already written at the start of the stored object).
    pub header: Vec<u8>,
    /// The next segment to seal.
    pub index: u32,
    /// The held-back plaintext (at most one segment), sealed; empty when none is held.
    pub sealed_tail: Vec<u8>,
    /// The store's own cursor (its `len` counts stored bytes).
    pub inner: UploadCursor,
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

fn take<'a>(at: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(at.get(..4)?.try_into().ok()?) as usize;
    let field = at.get(4..4 + len)?;
    *at = &at[4 + len..];
    Some(field)
}

impl SealedCursor {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        put(&mut out, self.scope.as_bytes());
        put(&mut out, &self.header);
        put(&mut out, &self.index.to_be_bytes());
        put(&mut out, &self.sealed_tail);
        put(&mut out, &self.inner.len.to_be_bytes());
        put(&mut out, &self.inner.state);
        out
    }

    /// None for a state this module did not write (a session begun before encryption at rest).
    pub fn decode(state: &[u8]) -> Option<SealedCursor> {
        let (&version, mut at) = state.split_first()?;
        if version != VERSION {
            return None;
        }
        let scope = String::from_utf8(take(&mut at)?.to_vec()).ok()?;
        let header = take(&mut at)?.to_vec();
        let index = u32::from_be_bytes(take(&mut at)?.try_into().ok()?);
        let sealed_tail = take(&mut at)?.to_vec();
        let inner_len = u64::from_be_bytes(take(&mut at)?.try_into().ok()?);
        let inner_state = take(&mut at)?.to_vec();
        at.is_empty().then_some(SealedCursor {
            scope,
            header,
            index,
            sealed_tail,
            inner: UploadCursor { len: inner_len, state: inner_state },
        })
    }

    /// The associated data the held-back plaintext is sealed with: it belongs to this session
    /// and this point of it only.
    pub fn tail_aad(upload: &str, index: u32, plain_len: u64) -> Vec<u8> {
        format!("berth upload tail {upload} {index} {plain_len}").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_foreign_states_are_refused() {
        let c = SealedCursor {
            scope: "kms:arn:aws:kms:us-east-1:000000000000:key/x".into(),
            header: vec![1, 2, 3],
            index: 7,
            sealed_tail: vec![9; 100],
            inner: UploadCursor { len: 12345, state: b"{\"upload_id\":\"u\"}".to_vec() },
        };
        assert_eq!(SealedCursor::decode(&c.encode()), Some(c.clone()));
        assert_eq!(SealedCursor::decode(b""), None);
        assert_eq!(SealedCursor::decode(b"{\"upload_id\":\"u\"}"), None);
        let mut longer = c.encode();
        longer.push(0);
        assert_eq!(SealedCursor::decode(&longer), None);
    }
}
