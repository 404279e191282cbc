//! Bulk copies that share a disk with a serving registry (a backup while berth serves) start the
//! kernel's writeback of each chunk as soon as it is written. Left to the kernel, a copy's dirty
//! pages pile up for seconds and are then written in one burst, and a push's fsync that lands in
//! it waits for all of it: on ext4 (data=ordered) a journal commit first writes the data of every
//! file in the transaction, the copy's included. Written back as it goes, there is never more
//! than a chunk or two to wait for. Hand-written because no maintained crate wraps
//! sync_file_range(2) (rustix and nix 0.32 do not).

use std::fs::File;

/// Starts writing `len` bytes of `file` from `offset` back to disk without waiting for them
/// (durability still comes from the caller's sync). Advisory: a failure changes nothing.
#[cfg(target_os = "linux")]
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
    // SAFETY: sync_file_range only reads its arguments; the descriptor is open for the call.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
pub fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, Write};

    #[test]
    fn starting_writeback_leaves_the_bytes_as_written() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"written before the writeback starts").unwrap();
        super::start_writeback(&file, 0, 35);
        super::start_writeback(&file, 1 << 40, 1); // past the end: nothing to do, no panic
        file.rewind().unwrap();
        let mut back = String::new();
        file.read_to_string(&mut back).unwrap();
        assert_eq!(back, "written before the writeback starts");
    }
}
