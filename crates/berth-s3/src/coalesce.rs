//! Larger chunks out of a GET's body.
//!
//! An S3 server may write its body in small pieces (s3s-fs reads its file 4 KiB at a time),
//! and each piece would otherwise travel alone through everything downstream: the digest
//! check, the HTTP response, one write each. Pieces already received are joined (up to
//! `TARGET` bytes) without waiting for more, so a slow body is passed on as it comes.
//! Not a crate: futures' `ready_chunks` counts pieces, not bytes, so its memory would
//! depend on the server's piece size.

use std::io;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};

/// Enough that per-chunk costs vanish; small enough to stay in cache while hashed. Memory per
/// body is at most this plus one received piece.
const TARGET: usize = 256 * 1024;

pub(crate) fn coalesce(mut body: BoxStream<'static, io::Result<Bytes>>) -> BoxStream<'static, io::Result<Bytes>> {
    let mut buf = BytesMut::new();
    // An error waits until the bytes received before it are passed on.
    let mut failed: Option<io::Error> = None;
    let mut ended = false;
    futures::stream::poll_fn(move |cx| {
        if let Some(e) = failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if ended {
            return Poll::Ready(None);
        }
        loop {
            match body.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(piece))) => {
                    if buf.is_empty() && piece.len() >= TARGET {
                        return Poll::Ready(Some(Ok(piece)));
                    }
                    buf.extend_from_slice(&piece);
                    if buf.len() >= TARGET {
                        return Poll::Ready(Some(Ok(buf.split().freeze())));
                    }
                }
                Poll::Ready(Some(Err(e))) if buf.is_empty() => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Err(e))) => {
                    failed = Some(e);
                    return Poll::Ready(Some(Ok(buf.split().freeze())));
                }
                Poll::Ready(None) => {
                    ended = true;
                    return Poll::Ready((!buf.is_empty()).then(|| Ok(buf.split().freeze())));
                }
                // Nothing more has arrived: what has goes on now rather than waiting to fill.
                Poll::Pending if buf.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Some(Ok(buf.split().freeze()))),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    #[tokio::test]
    async fn joins_small_pieces_and_keeps_every_byte_in_order() {
        let pieces: Vec<io::Result<Bytes>> = (0..1000u32).map(|i| Ok(Bytes::from(vec![(i % 251) as u8; 4096]))).collect();
        let expected: Vec<u8> = pieces.iter().flat_map(|p| p.as_ref().unwrap().to_vec()).collect();
        let out: Vec<Bytes> = coalesce(futures::stream::iter(pieces).boxed()).try_collect().await.unwrap();
        assert!(out.len() < 100, "{} chunks", out.len());
        assert_eq!(out.concat(), expected);
    }

    #[tokio::test]
    async fn an_error_comes_after_the_bytes_before_it() {
        let pieces = vec![Ok(Bytes::from_static(b"abc")), Err(io::Error::other("cut")), Ok(Bytes::from_static(b"def"))];
        let out: Vec<io::Result<Bytes>> = coalesce(futures::stream::iter(pieces).boxed()).collect().await;
        assert_eq!(out[0].as_ref().unwrap().as_ref(), b"abc");
        assert!(out[1].is_err());
    }
}
