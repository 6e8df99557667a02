//! The log's writer: every thread appends its whole lines to one buffer, and a thread of its own
//! writes what has gathered to stderr in one go.
//!
//! Why not `tracing_appender::non_blocking` (what this replaced): it hands each line over a
//! channel as a vector of its own, which costs an allocation and a channel send and receive for
//! every line; every request logs an access line, and that was about 1,600 instructions of each
//! (`bench/callgrind.py`). Here, on a busy server, a line costs a lock and a copy: the writer
//! writes what has gathered once every [`GATHER`] while lines keep coming, so it makes a few
//! hundred writes a second, not one per line, and is woken by a logger only when the buffer goes
//! from empty to not after a whole [`GATHER`] without lines. (On a quiet server each line still
//! wakes it, and reaches stderr [`GATHER`] later.)
//!
//! Nothing is dropped for being logged fast: with [`LIMIT`] bytes waiting, loggers wait for the
//! writer, as they would wait on stderr. Lines are whole and in the order they were appended; a
//! write that fails part-way ends its line, so the next batch starts on a line of its own. The
//! guard [`init`] returns gives the writer up to a second to write out what waits when it is
//! dropped (when `main` returns); from then on nobody waits for room, and lines beyond the limit
//! or after the writer has ended are dropped. What waits when the process is killed is lost.

use std::io::{ErrorKind, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long the writer waits, once woken, for more lines before it writes.
pub const GATHER: Duration = Duration::from_millis(2);
/// How much may wait for the writer before loggers wait too.
pub const LIMIT: usize = 8 << 20;
/// A batch buffer larger than this after a burst is given back.
const KEEP: usize = 1 << 20;

#[derive(Default)]
struct Waiting {
    lines: Vec<u8>,
    /// The writer waits for lines (and must be woken for the next one).
    idle: bool,
    /// Loggers wait for room.
    full: bool,
    /// How many times a logger has waited for room (for the tests).
    waited: u64,
    /// How many times a logger has woken the writer (for the tests).
    woke: u64,
    /// The guard was dropped: nobody waits for room any more.
    closed: bool,
    /// The writer has ended: nothing appended now would be written.
    finished: bool,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<Waiting>,
    /// Lines came (for the writer), or the guard closed the log.
    came: Condvar,
    /// The writer took what was waiting, or the guard closed the log (for loggers held at the
    /// limit).
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
    #[cfg(test)]
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the writer thread, writing to `out`.
pub fn init<W: Write + Send + 'static>(out: W) -> std::io::Result<(LogWriter, Guard)> {
    let shared = Arc::new(Shared::default());
    let theirs = shared.clone();
    let (end, ended) = std::sync::mpsc::channel::<()>();
    let _thread = std::thread::Builder::new().name("signoff-log".into()).spawn(move || {
        write_out(&theirs, out);
        theirs.lock().finished = true;
        drop(end);
    })?;
    Ok((
        LogWriter(shared.clone()),
        Guard {
            shared,
            ended,
            #[cfg(test)]
            thread: Some(_thread),
        },
    ))
}

impl LogWriter {
    /// Appends whole lines.
    pub fn append(&self, lines: &[u8]) {
        let shared = &self.0;
        let mut waiting = shared.lock();
        while waiting.lines.len() >= LIMIT && !waiting.closed {
            waiting.full = true;
            waiting.waited += 1;
            waiting = shared.taken.wait(waiting).unwrap_or_else(PoisonError::into_inner);
        }
        // After the guard: bounded still, and nothing kept that nobody will write.
        if waiting.finished || waiting.lines.len() >= LIMIT {
            return;
        }
        waiting.lines.extend_from_slice(lines);
        if waiting.idle {
            waiting.idle = false;
            waiting.woke += 1;
            shared.came.notify_one();
        }
    }
}

/// As the writer of `tracing`'s formatter, which writes each event whole, in one call.
impl Write for &LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = &'a LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// The writer thread: waits for lines, gathers a moment, writes all that waits, until closed
/// with nothing left. While lines keep coming it writes once every [`GATHER`], asleep in
/// between; loggers are asked to wake it only once a whole [`GATHER`] has brought none (a wake-up
/// is a system call on the logger's thread, and on a busy core a switch to this thread and back).
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
        }
        loop {
            let mut waiting = shared.lock();
            // Gathering is for a busy server, not for one whose loggers wait for room.
            if !waiting.closed && !waiting.full && waiting.lines.len() < LIMIT / 2 {
                drop(waiting);
                std::thread::sleep(GATHER);
                waiting = shared.lock();
            }
            if waiting.lines.is_empty() {
                break;
            }
            std::mem::swap(&mut batch, &mut waiting.lines);
            if std::mem::take(&mut waiting.full) {
                shared.taken.notify_all();
            }
            drop(waiting);
            write_batch(&mut out, &batch);
            batch.clear();
            // A burst's buffer is not kept for good.
            if batch.capacity() > KEEP {
                batch = Vec::with_capacity(64 << 10);
            }
        }
    }
}

/// Writes `batch` whole, waiting out a full pipe; on any other error the rest is dropped (there
/// is nowhere to say so but stderr itself), after ending a line left half-written.
fn write_batch<W: Write>(out: &mut W, batch: &[u8]) {
    let mut at = 0;
    while at < batch.len() {
        match out.write(&batch[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            Err(_) => break,
        }
    }
    if at > 0 && at < batch.len() && batch[at - 1] != b'\n' {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
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

    impl Guard {
        /// Closes the log and waits for the writer to end, however long it takes.
        fn finish(mut self) {
            let thread = self.thread.take();
            drop(self);
            thread.unwrap().join().unwrap();
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
        guard.finish();
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
    fn a_line_is_written_soon_and_the_next_wakes_the_writer_again() {
        let out = Out::default();
        let (writer, _guard) = init(out.clone()).unwrap();
        for line in ["first\n", "second\n"] {
            // The writer waits for lines: this one must wake it.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !writer.0.lock().idle {
                assert!(std::time::Instant::now() < deadline, "the writer never went back to waiting");
                std::thread::sleep(Duration::from_millis(1));
            }
            writer.append(line.as_bytes());
            while !String::from_utf8_lossy(&out.0.lock().unwrap().0).contains(line) {
                assert!(std::time::Instant::now() < deadline, "{line:?} not written within 10 s");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn a_busy_log_is_written_without_waking_the_writer_for_each_write() {
        let out = Out::default();
        let (writer, guard) = init(out.clone()).unwrap();
        // A line every 200 µs for 300 ms: about 150 gathers' worth. Before, each write began
        // with a logger's wake-up; now only the first does, and any gap the scheduler makes
        // longer than a gather.
        let started = std::time::Instant::now();
        let mut lines = 0;
        while started.elapsed() < Duration::from_millis(300) {
            writer.append(b"busy\n");
            lines += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        let woke = writer.0.lock().woke;
        guard.finish();
        let (text, writes) = out.0.lock().unwrap().clone();
        assert_eq!(text.len(), lines * 5, "every line written");
        assert!(writes >= 20, "written as it came, in {writes} writes");
        // (A logger held off the core longer than a gather, as a loaded machine does, costs a
        // wake-up more; the loop this replaced took one for every write.)
        assert!(woke * 2 <= writes as u64, "{woke} wake-ups for {writes} writes");
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
        assert!(writer.0.lock().waited > 0, "no logger ever waited: the limit was not reached");
        guard.finish();
        assert_eq!(out.0.0.lock().unwrap().0.len(), 400 << 16);
    }

    #[test]
    fn the_guard_lets_loggers_go_when_stderr_never_takes_anything() {
        /// A pipe nobody reads: every write blocks for good.
        struct Stuck(std::sync::mpsc::Receiver<()>);
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                let _ = self.0.recv();
                Err(ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (_never, blocked) = std::sync::mpsc::channel();
        let (writer, guard) = init(Stuck(blocked)).unwrap();
        let logger = {
            let writer = writer.clone();
            std::thread::spawn(move || {
                let line = vec![b'z'; 1 << 16];
                // Twice the limit: it must come to wait for room.
                for _ in 0..(2 * LIMIT / line.len()) {
                    writer.append(&line);
                }
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while writer.0.lock().waited == 0 {
            assert!(std::time::Instant::now() < deadline, "the logger never came to wait");
            std::thread::sleep(Duration::from_millis(1));
        }
        // The guard gives up on the writer after its second; the logger goes on, and what it
        // appends stays bounded.
        drop(guard);
        logger.join().unwrap();
        let kept = writer.0.lock().lines.len();
        assert!(kept <= LIMIT + (1 << 16), "{kept} bytes kept");
    }

    #[test]
    fn a_write_that_fails_part_way_ends_its_line() {
        /// Takes the first 10 bytes, then fails.
        #[derive(Default)]
        struct Breaks(Vec<u8>);
        impl Write for Breaks {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0.len() >= 10 && buf != b"\n" {
                    return Err(ErrorKind::Other.into());
                }
                let n = buf.len().min(10);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut out = Breaks::default();
        write_batch(&mut out, b"one line\nanother line\n");
        assert_eq!(out.0, b"one line\na\n");
    }
}
