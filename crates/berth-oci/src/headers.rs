//! Small header helpers shared by the handlers.

use http::HeaderValue;

/// The `Range` header of an upload holding `len` bytes (`0-(len-1)`; `0-0` when empty, as
/// distribution and the clients expect).
pub fn upload_range(len: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("0-{}", len.saturating_sub(1))).unwrap_or(HeaderValue::from_static("0-0"))
}

/// Parses a chunk's `Content-Range`, which the spec requires to match `^[0-9]+-[0-9]+$`.
pub fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let (s, e) = v.split_once('-')?;
    if !(s.bytes().all(|b| b.is_ascii_digit()) && e.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let (s, e) = (s.parse::<u64>().ok()?, e.parse::<u64>().ok()?);
    (s <= e).then_some((s, e))
}

/// Parses a blob GET `Range: bytes=<start>-<end>` (one range; either end may be absent).
/// Returns None for forms we do not serve partially (multiple ranges, other units): the
/// spec lets us answer those with the whole blob.
/// A requested byte range: (start, end), either of which may be open.
pub type RawRange = (Option<u64>, Option<u64>);

pub fn parse_range(v: &str) -> Option<Result<RawRange, ()>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (s, e) = spec.split_once('-')?;
    let s = if s.trim().is_empty() { None } else { Some(s.trim().parse::<u64>().ok()) };
    let e = if e.trim().is_empty() { None } else { Some(e.trim().parse::<u64>().ok()) };
    match (s, e) {
        (Some(None), _) | (_, Some(None)) => Some(Err(())),
        (None, None) => Some(Err(())),
        (s, e) => Some(Ok((s.flatten(), e.flatten()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99"), Some((0, 99)));
        assert_eq!(parse_content_range("bytes 5-9"), None);
        assert_eq!(parse_content_range("+5-9"), None);
        assert_eq!(parse_content_range("9-5"), None);
        assert_eq!(parse_content_range("abc"), None);
        assert_eq!(parse_range("bytes=0-9"), Some(Ok((Some(0), Some(9)))));
        assert_eq!(parse_range("bytes=-9"), Some(Ok((None, Some(9)))));
        assert_eq!(parse_range("bytes=5-"), Some(Ok((Some(5), None))));
        assert_eq!(parse_range("bytes=x-"), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,3-4"), None);
        assert_eq!(parse_range("items=0-1"), None);
    }
}
