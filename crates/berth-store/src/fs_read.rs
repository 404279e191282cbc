//! Downloads of committed blobs straight from the page cache: each body frame is a `Bytes` that
//! owns a read-only mapping of one chunk of the file, which hyper writes to the socket (writev)
//! as it is. Compared with reading into buffers on a blocking thread this drops the read copy,
//! the channel and the blocking-pool thread each download held for its whole length.
//!
//! Why mappings rather than sendfile/splice: hyper owns the connection and writes bodies from
//! buffers; taking the socket back after it wrote the headers would bypass hyper's framing, the
//! request log's byte counting and TLS, and no maintained crate gives hyper 1.x a sendfile body.
//! A mapping keeps all of that and works the same under TLS (rustls then reads the mapped
//! pages). Measured against sendfile's loopback figure in bench/RESULTS.md ("Zero-copy blob
//! GETs").
//!
//! A page missing from the page cache would make hyper's write fault it in from disk on an async
//! worker, so each chunk's residency is checked first (one mincore call): a resident chunk goes
//! out at once, a missing one is populated on the blocking pool (MADV_POPULATE_READ), which
//! holds a thread for that chunk's disk read only and starts readahead of the next chunk.
//! Populating also turns a disk read error into this download's error rather than SIGBUS.
//!
//! SIGBUS and immutability: touching a mapped page past the end of a file that shrank raises
//! SIGBUS. Committed blobs never change in place: they are written under `uploads/`, fsynced and
//! renamed into `blobs/` (a second commit of the same digest renames a new inode over the name),
//! removed by unlink (GC, DELETE) and moved aside by rename (quarantine); nothing in berth opens a
//! committed blob for writing or truncates one (backup restore writes aside and renames too). An
//! unlinked or replaced file keeps its inode and pages while a mapping holds them, so a GC that
//! deletes a blob mid-download leaves that download whole (tests/e2e test_blob_get.py). The one
//! bound checked here: nothing is mapped past the size the file had when it was opened.
//!
//! Memory: a mapping covers one chunk and is unmapped when hyper drops the frame, so a download's
//! resident set is the chunks in flight (hyper queues about 400 KiB before asking for the next
//! frame, so at most two chunks), not the blob.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::StreamExt;
use memmap2::{Advice, Mmap, MmapOptions};

use crate::blob::ByteStream;

/// Bytes per mapping and per body frame: 512 mmap/munmap pairs per GiB (a few microseconds
/// each), while a download's resident set stays a few MiB.
const CHUNK: u64 = 2 << 20;

/// The bytes `[start, start + len)` of `file` (`size` bytes long when opened) as a stream of
/// mapped chunks. A file shorter than the range ends the stream with UnexpectedEof.
pub(crate) fn mapped(file: File, size: u64, start: u64, len: u64) -> ByteStream {
    chunks(file, size, start, len, Frames::Mapped)
}

/// The same bytes as [`mapped`], read (pread, on the blocking pool, a chunk at a time) into
/// buffers each frame owns alone, so a reader may rewrite a frame in place (`Bytes::try_into_mut`
/// succeeds). For sealed objects, which are decrypted in place: a mapped frame would be copied
/// first, and mapping it cost page-table work besides (bench/RESULTS.md, the sealed cached pull).
pub(crate) fn owned(file: File, size: u64, start: u64, len: u64) -> ByteStream {
    chunks(file, size, start, len, Frames::Owned)
}

/// How a stream's frames hold their bytes.
#[derive(Clone, Copy)]
enum Frames {
    Mapped,
    Owned,
}

/// The range as a stream of chunks read the way `frames` says; after an error, nothing more.
fn chunks(file: File, size: u64, start: u64, len: u64, frames: Frames) -> ByteStream {
    let reader = Reader { file: Arc::new(file), pos: start, end: start.saturating_add(len), size };
    futures::stream::unfold(reader, move |mut r| async move {
        if r.pos >= r.end {
            return None;
        }
        let next = match frames {
            Frames::Mapped => r.next_chunk().await,
            Frames::Owned => r.read_chunk().await,
        };
        match next {
            Ok(chunk) => {
                r.pos += chunk.len() as u64;
                Some((Ok(chunk), r))
            }
            Err(e) => {
                r.pos = r.end;
                Some((Err(e), r))
            }
        }
    })
    .boxed()
}

/// `len` bytes of `file` from `offset` into a new buffer, never zero-filled first (the read
/// writes into the vector's spare capacity).
fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let want = len - buf.len();
        let at = offset + buf.len() as u64;
        let n = rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at).map_err(io::Error::from)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob shorter than recorded"));
        }
        debug_assert!(n <= want);
    }
    Ok(Bytes::from(buf))
}

/// Asks the kernel for sequential readahead (twice the default window) on a blob about to be
/// streamed; advisory, so a failure changes nothing.
pub(crate) fn advise_sequential(file: &File) {
    // SAFETY: posix_fadvise only reads its arguments; the descriptor is open for the call.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
    }
}

struct Reader {
    file: Arc<File>,
    pos: u64,
    end: u64,
    size: u64,
}

impl Reader {
    /// The next chunk read into a buffer of its own (`owned`).
    async fn read_chunk(&self) -> io::Result<Bytes> {
        if self.pos >= self.size {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob shorter than recorded"));
        }
        let (file, pos, stop) = (self.file.clone(), self.pos, (self.pos + CHUNK).min(self.end).min(self.size));
        tokio::task::spawn_blocking(move || read_at(&file, pos, (stop - pos) as usize))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(format!("reading a blob chunk: {e}"))))
    }

    /// The next chunk as a mapping (`mapped`).
    async fn next_chunk(&self) -> io::Result<Bytes> {
        if self.pos >= self.size {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob shorter than recorded"));
        }
        // Mappings start on a page boundary; the first frame of a range skips to its start.
        let base = self.pos - self.pos % page_size();
        let stop = (base + CHUNK).min(self.end).min(self.size);
        let skip = (self.pos - base) as usize;
        // SAFETY: the mapping is read-only and within the size the file had when opened, and
        // committed blobs are never written or truncated in place (module doc), so its bytes
        // stay valid and unchanged for as long as it lives.
        let map = unsafe { MmapOptions::new().offset(base).len((stop - base) as usize).map(&*self.file)? };
        let chunk = if resident(&map) {
            Bytes::from_owner(map)
        } else {
            let file = self.file.clone();
            tokio::task::spawn_blocking(move || populate(map, &file, base, stop))
                .await
                .map_err(|e| io::Error::other(format!("reading a blob chunk: {e}")))??
        };
        Ok(chunk.slice(skip..))
    }
}

/// Whether every page of the mapping is in the page cache (false when the kernel cannot say).
fn resident(map: &Mmap) -> bool {
    let mut pages = vec![0u8; map.len().div_ceil(page_size() as usize)];
    // SAFETY: the address is the mapping's own (page-aligned: mappings start on a page
    // boundary here) and `pages` has one byte per page of its length.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, map.len(), pages.as_mut_ptr()) };
    rc == 0 && pages.iter().all(|p| p & 1 == 1)
}

/// Reads a chunk's pages in from disk (on the blocking pool) and starts readahead of the next
/// one. A kernel without MADV_POPULATE_READ (before 5.14) gets a plain read instead.
fn populate(map: Mmap, file: &File, base: u64, stop: u64) -> io::Result<Bytes> {
    // SAFETY: as for posix_fadvise above; WILLNEED only starts asynchronous readahead.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), stop as libc::off_t, CHUNK as libc::off_t, libc::POSIX_FADV_WILLNEED);
    }
    match map.advise(Advice::PopulateRead) {
        Ok(()) => Ok(Bytes::from_owner(map)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; map.len()];
            file.read_exact_at(&mut buf, base)?;
            Ok(Bytes::from(buf))
        }
        Err(e) => Err(e),
    }
}

fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf only reads its argument.
    *PAGE.get_or_init(|| u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok().filter(|p| *p > 0).unwrap_or(4096))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    async fn read(path: &std::path::Path, start: u64, len: u64) -> io::Result<Vec<u8>> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        let chunks: Vec<Bytes> = mapped(file, size, start, len).try_collect().await?;
        let mapped = chunks.concat();
        // The owned frames hold the same bytes, each frame writable in place.
        let file = File::open(path)?;
        let owned: Vec<Bytes> = owned(file, size, start, len).try_collect().await?;
        assert_eq!(owned.concat(), mapped, "owned and mapped frames differ for {start}+{len}");
        assert!(owned.into_iter().all(|frame| frame.try_into_mut().is_ok()), "owned frames are unique");
        Ok(mapped)
    }

    #[tokio::test]
    async fn ranges_across_chunks_are_byte_exact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..(5u64 << 20) + 123).map(|i| (i * 7 + i / 4093) as u8).collect();
        std::fs::write(&path, &data).expect("writing");
        let len = data.len() as u64;
        for (start, n) in [(0, len), (0, 1), (1, 4096), (4095, 3), (CHUNK - 1, 2), (12345, 4_200_000), (len - 1, 1), (CHUNK, len - CHUNK)] {
            let got = read(&path, start, n).await.expect("reading");
            assert_eq!(got, &data[start as usize..(start + n) as usize], "range {start}+{n}");
        }
        assert!(read(&path, 0, 0).await.expect("empty").is_empty());
    }

    #[tokio::test]
    async fn a_file_shorter_than_recorded_ends_with_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blob");
        std::fs::write(&path, vec![1u8; 5000]).expect("writing");
        let err = read(&path, 0, 9000).await.expect_err("short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // Owned frames too (`read` stops at the mapped stream's error).
        let file = File::open(&path).expect("opening");
        let owned: io::Result<Vec<Bytes>> = owned(file, 9000, 0, 9000).try_collect().await;
        assert_eq!(owned.expect_err("short").kind(), io::ErrorKind::UnexpectedEof);
    }
}
