//! The log writer: every thread appends its formatted lines to one shared buffer, and a thread
//! of its own writes that buffer to stderr in batches, every `TICK`, or as soon as `WAKE_AT`
//! bytes wait.
//!
//! Written by hand rather than using tracing-appender's `non_blocking` (used before): its channel
//! wakes the writer thread for nearly every line, and at a manifest GET's rate those wake-ups
//! (a context switch each, on both sides) cost more than formatting the line (bench/RESULTS.md,
//! "Request logging"). Here a request thread takes an uncontended mutex, copies its line and
//! returns; the writer sleeps a tick at a time. Lossy as before: past `limit_lines` waiting lines
//! are dropped and counted (`berth_log_lines_dropped_total`), so a stalled stderr (a full pipe,
//! a stopped terminal) never stalls a request.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line may wait before it is written (when fewer than `WAKE_AT` bytes wait).
const TICK: Duration = Duration::from_millis(10);
/// Bytes waiting that wake the writer at once.
const WAKE_AT: usize = 64 * 1024;

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    dropped: AtomicU64,
    limit_lines: usize,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `MakeWriter` handed to tracing-subscriber's formatter.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Lines dropped because `limit_lines` were already waiting.
#[derive(Clone)]
pub struct DroppedLines(Arc<Shared>);

impl DroppedLines {
    pub fn count(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

/// Keeps the writer thread; dropping it writes what waits and stops the thread.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Told when the thread has written everything and ended.
    done: std::sync::mpsc::Receiver<()>,
}

/// How long exiting waits for the last lines: a stalled stderr (a full pipe nobody reads) must
/// not keep berth from exiting.
const LAST_WRITE: Duration = Duration::from_secs(1);

/// The writer into `out`, holding at most `limit_lines` lines waiting.
pub fn batch_writer(out: impl Write + Send + 'static, limit_lines: usize) -> io::Result<(BatchWriter, DroppedLines, LogGuard)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        dropped: AtomicU64::new(0),
        limit_lines: limit_lines.max(1),
    });
    let (finished, done) = std::sync::mpsc::channel();
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new().name("berth-log".into()).spawn(move || {
            write_batches(&shared, out);
            let _ = finished.send(());
        })?
    };
    Ok((BatchWriter { shared: shared.clone() }, DroppedLines(shared.clone()), LogGuard { shared, thread: Some(thread), done }))
}

fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut spare = Vec::new();
    loop {
        let (batch, closed) = {
            let mut pending = shared.lock();
            if pending.bytes.len() < WAKE_AT && !pending.closed {
                pending = shared.wake.wait_timeout(pending, TICK).unwrap_or_else(|p| p.into_inner()).0;
            }
            pending.lines = 0;
            (std::mem::replace(&mut pending.bytes, std::mem::take(&mut spare)), pending.closed)
        };
        if !batch.is_empty() {
            // Nowhere to report a failed write of the log itself; the next batch tries again.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
        }
        spare = batch;
        spare.clear();
        if closed {
            return;
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        // Joined only once it has finished: a thread stuck in write(2) is left behind.
        if self.done.recv_timeout(LAST_WRITE).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// One formatted event: tracing-subscriber writes each with a single `write_all`.
pub struct LineSink<'a>(&'a Shared);

impl Write for LineSink<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.0.lock();
        if pending.lines >= self.0.limit_lines {
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        let before = pending.bytes.len();
        pending.bytes.extend_from_slice(line);
        pending.lines += 1;
        if before < WAKE_AT && pending.bytes.len() >= WAKE_AT {
            self.0.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> LineSink<'a> {
        LineSink(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that holds everything written, and can be made to block.
    #[derive(Clone, Default)]
    struct Captured {
        bytes: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _open = self.gate.lock().unwrap_or_else(|p| p.into_inner());
            self.bytes.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_reach_the_output_in_order_and_all_by_the_guards_drop() {
        let out = Captured::default();
        let (writer, dropped, guard) = batch_writer(out.clone(), 10_000).expect("writer");
        for i in 0..5000 {
            tracing_subscriber::fmt::MakeWriter::make_writer(&writer).write_all(format!("line {i}\n").as_bytes()).expect("write");
        }
        drop(guard);
        let text = String::from_utf8(out.bytes.lock().expect("lock").clone()).expect("utf-8");
        let expected: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
        assert_eq!(dropped.count(), 0);
    }

    #[test]
    fn exiting_does_not_wait_on_a_stalled_output_for_long() {
        let out = Captured::default();
        let _stalled = out.gate.lock().expect("gate");
        let (writer, _, guard) = batch_writer(out.clone(), 100).expect("writer");
        tracing_subscriber::fmt::MakeWriter::make_writer(&writer).write_all(b"stuck\n").expect("write");
        let started = std::time::Instant::now();
        drop(guard);
        assert!(started.elapsed() < LAST_WRITE * 5, "the guard waited {:?}", started.elapsed());
    }

    #[test]
    fn a_stalled_output_drops_lines_past_the_limit_and_never_blocks_a_writer() {
        let out = Captured::default();
        let stalled = out.gate.lock().expect("gate");
        let (writer, dropped, guard) = batch_writer(out.clone(), 100).expect("writer");
        // The writer thread may take one batch and block on the gate; the rest wait, up to 100.
        for i in 0..1000 {
            tracing_subscriber::fmt::MakeWriter::make_writer(&writer).write_all(format!("line {i}\n").as_bytes()).expect("write");
        }
        assert!(dropped.count() >= 800, "{} dropped", dropped.count());
        drop(stalled);
        drop(guard);
        let written = out.bytes.lock().expect("lock").iter().filter(|b| **b == b'\n').count() as u64;
        assert_eq!(written + dropped.count(), 1000);
    }
}
