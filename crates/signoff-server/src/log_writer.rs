//! The log's writer: every thread appends its whole lines to one buffer, and a thread of its own
//! writes what has gathered to stderr in one go.
//!
//! Why not `tracing_appender::non_blocking` (what this replaced): it hands each line over a
//! channel as a vector of its own, which costs an allocation, a channel send and receive and, on
//! a quiet writer, a wake-up for every line; every request logs an access line, and that was
//! about 1,600 instructions of each (`bench/callgrind.py`). Here a line costs a lock and a copy,
//! and the writer is woken only when the buffer goes from empty to not (it then waits
//! [`GATHER`] for more, so a busy server makes a few hundred writes a second, not one per line).
//!
//! Nothing is dropped for being logged fast: with [`LIMIT`] bytes waiting, loggers wait for the
//! writer, as they would wait on stderr. Lines are whole and in the order they were appended.
//! The guard [`init`] returns gives the writer up to a second to write out what is waiting when
//! it is dropped (when `main` returns); what is waiting when the process is killed is lost.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long the writer waits, once woken, for more lines before it writes.
pub const GATHER: Duration = Duration::from_millis(2);
/// How much may wait for the writer before loggers wait too.
pub const LIMIT: usize = 8 << 20;

#[derive(Default)]
struct Waiting {
    lines: Vec<u8>,
    /// The writer waits for lines (and must be woken for the next one).
    idle: bool,
    /// Loggers wait for room.
    full: bool,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<Waiting>,
    /// Lines came (for the writer), or the guard closed the log.
    came: Condvar,
    /// The writer took what was waiting (for loggers held at the limit).
    taken: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where lines are appended; cheap to clone.
#[derive(Clone)]
pub struct LogWriter(Arc<Shared>);

/// Writes out what is waiting, and stops the writer, when dropped.
pub struct Guard {
    shared: Arc<Shared>,
    /// Closed when the writer has written everything and ended.
    ended: std::sync::mpsc::Receiver<()>,
}

/// Starts the writer thread, writing to `out`.
pub fn init<W: Write + Send + 'static>(out: W) -> std::io::Result<(LogWriter, Guard)> {
    let shared = Arc::new(Shared::default());
    let theirs = shared.clone();
    let (end, ended) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("signoff-log".into()).spawn(move || {
        write_out(&theirs, out);
        drop(end);
    })?;
    Ok((LogWriter(shared.clone()), Guard { shared, ended }))
}

impl LogWriter {
    /// Appends whole lines.
    pub fn append(&self, lines: &[u8]) {
        let shared = &self.0;
        let mut waiting = shared.lock();
        while waiting.lines.len() >= LIMIT && !waiting.closed {
            waiting.full = true;
            waiting = shared.taken.wait(waiting).unwrap_or_else(PoisonError::into_inner);
        }
        waiting.lines.extend_from_slice(lines);
        if waiting.idle {
            waiting.idle = false;
            shared.came.notify_one();
        }
    }
}

/// As the writer of `tracing`'s formatter, which writes each event whole, in one call.
impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The writer thread: waits for lines, gathers a moment, writes all that waits, until closed
/// with nothing left.
fn write_out<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        {
            let mut waiting = shared.lock();
            while waiting.lines.is_empty() && !waiting.closed {
                waiting.idle = true;
                waiting = shared.came.wait(waiting).unwrap_or_else(PoisonError::into_inner);
            }
            if waiting.lines.is_empty() {
                return;
            }
            if !waiting.closed {
                drop(waiting);
                std::thread::sleep(GATHER);
                waiting = shared.lock();
            }
            std::mem::swap(&mut batch, &mut waiting.lines);
            if std::mem::take(&mut waiting.full) {
                shared.taken.notify_all();
            }
        }
        // Nowhere to say that stderr failed but stderr itself.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        // A burst's buffer is not kept for good.
        if batch.capacity() > LIMIT {
            batch = Vec::new();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.came.notify_one();
        self.shared.taken.notify_all();
        // Not forever: stderr may be a pipe nobody reads.
        let _ = self.ended.recv_timeout(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writer thread wrote, and how many writes it took.
    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut out = self.0.lock().unwrap();
            out.0.extend_from_slice(buf);
            out.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_many_threads_come_out_whole_in_each_threads_order_and_all_of_them() {
        let out = Out::default();
        let (writer, guard) = init(out.clone()).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        writer.append(format!("thread={t} line={i} {}\n", "x".repeat(i % 50)).as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let (bytes, writes) = std::mem::take(&mut *out.0.lock().unwrap());
        let text = String::from_utf8(bytes).unwrap();
        let mut next = [0usize; 8];
        for line in text.lines() {
            let mut parts = line.split(' ');
            let t: usize = parts.next().unwrap().strip_prefix("thread=").unwrap().parse().unwrap();
            let i: usize = parts.next().unwrap().strip_prefix("line=").unwrap().parse().unwrap();
            assert_eq!(parts.next().unwrap(), "x".repeat(i % 50), "{line}");
            assert_eq!(i, next[t], "thread {t} out of order");
            next[t] += 1;
        }
        assert_eq!(next, [20_000; 8]);
        // Gathered: far fewer writes than lines.
        assert!(writes < 160_000 / 10, "{writes} writes for 160,000 lines");
    }

    #[test]
    fn a_line_is_written_soon_without_the_guard_being_dropped() {
        let out = Out::default();
        let (writer, _guard) = init(out.clone()).unwrap();
        for line in ["first\n", "second\n"] {
            writer.append(line.as_bytes());
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while !String::from_utf8_lossy(&out.0.lock().unwrap().0).contains(line) {
                assert!(std::time::Instant::now() < deadline, "{line:?} not written within 2 s");
                std::thread::sleep(Duration::from_millis(1));
            }
            // The writer went back to waiting, and is woken again by the next line.
            std::thread::sleep(GATHER * 5);
        }
    }

    #[test]
    fn loggers_wait_at_the_limit_and_nothing_is_lost() {
        /// Stalls every write a moment, as a slow pipe would.
        #[derive(Clone, Default)]
        struct Slow(Out);
        impl Write for Slow {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(20));
                self.0.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Slow::default();
        let (writer, guard) = init(out.clone()).unwrap();
        let line = vec![b'y'; 1 << 16];
        let mut most = 0;
        for _ in 0..400 {
            writer.append(&line);
            most = most.max(writer.0.lock().lines.len());
        }
        // (One line over the limit at most: a logger waits before it appends, not after.)
        assert!(most <= LIMIT + line.len(), "{most} bytes waited");
        drop(guard);
        assert_eq!(out.0.0.lock().unwrap().0.len(), 400 << 16);
    }
}
