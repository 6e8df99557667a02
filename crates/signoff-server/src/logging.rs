//! Where log lines go and how the busiest of them is written.
//!
//! Every request logs one access line, so the access line is on the hot path. In the text
//! format written to a file or pipe (the default for a server) it bypasses `tracing`: [`access`]
//! writes it by hand into a reused per-thread buffer (the time's date and seconds formatted once
//! a second, digits by hand) and hands it straight to the log writer, in the same layout as every
//! other line (`<time>  INFO access: request request_id=… method=… route=… status=… ms=…`, a
//! value quoted and escaped as the default formatter does when it holds anything but plain
//! token characters). On a terminal and in the JSON format the access line is an ordinary
//! `tracing` event, as is every other line. Lines are appended to one buffer that a thread of
//! its own writes to stderr in batches (`log_writer.rs`).

use crate::config::{Config, LogFormat};
use crate::log_writer::{self, LogWriter};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;

/// The target of the access log's events.
pub const ACCESS: &str = "access";

/// The log writer the access line is handed to without `tracing`, when it is (see the module).
static ACCESS_SINK: OnceLock<LogWriter> = OnceLock::new();

/// Logs go to stderr from a thread of their own (`log_writer.rs`): a line is formatted where it
/// is logged and appended to a buffer, and the writer thread writes what has gathered in one go,
/// so a request does not wait on stderr and a busy server makes one write per batch, not per
/// line. No line is dropped for being logged fast: with 8 MiB waiting, loggers wait, as they
/// would on stderr. When `main` returns, the guard gives the writer up to a second to write what
/// waits; lines still waiting when the process is killed are lost (audit events are also kept
/// in the store, in the transaction they record).
pub fn init(config: &Config) -> std::io::Result<log_writer::Guard> {
    let level: tracing::Level = config.log_level.parse().unwrap_or(tracing::Level::INFO);
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = log_writer::init(std::io::stderr())?;
    if config.log_format == LogFormat::Text && !ansi && level >= tracing::Level::INFO {
        let _ = ACCESS_SINK.set(writer.clone());
    }
    let builder = tracing_subscriber::fmt().with_max_level(level).with_ansi(ansi).with_writer(writer);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Text => builder.init(),
    }
    Ok(guard)
}

/// One request's access line.
pub struct Access<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub took: Duration,
}

/// Logs a request's access line: by hand to the log writer when [`init`] set that up, as a
/// `tracing` event otherwise (the same fields).
pub fn access(line: &Access<'_>) {
    thread_local! {
        static LINE: RefCell<(Clock, String)> = const { RefCell::new((Clock::new(), String::new())) };
    }
    let written = ACCESS_SINK.get().is_some_and(|sink| {
        // Not written here (the thread's buffer torn down or in use): the event below instead.
        LINE.try_with(|cell| {
            let Ok(mut cell) = cell.try_borrow_mut() else { return false };
            let (clock, text) = &mut *cell;
            text.clear();
            clock.write(text, SystemTime::now());
            write_access(text, line);
            sink.append(text.as_bytes());
            if text.capacity() > 4096 {
                // A rare long line (an odd method) does not pin its buffer to the thread.
                *text = String::new();
            }
            true
        })
        .unwrap_or(false)
    });
    if !written {
        tracing::info!(target: ACCESS, request_id = line.request_id, method = line.method, route = line.route,
            status = line.status, ms = line.took.as_secs_f64() * 1000.0, "request");
    }
}

/// The line after its time: `  INFO access: request request_id=… … ms=…` and a newline.
fn write_access(out: &mut String, line: &Access<'_>) {
    out.push_str("  INFO access: request");
    field(out, "request_id", line.request_id);
    field(out, "method", line.method);
    field(out, "route", line.route);
    out.push_str(" status=");
    out.push_str(itoa::Buffer::new().format(line.status));
    // Milliseconds to the nearest microsecond.
    let micros = (line.took.as_nanos() + 500) / 1000;
    out.push_str(" ms=");
    out.push_str(itoa::Buffer::new().format(micros / 1000));
    out.push('.');
    let frac = (micros % 1000) as u16;
    for d in [frac / 100, frac / 10 % 10, frac % 10] {
        out.push(char::from(b'0' + d as u8));
    }
    out.push('\n');
}

/// ` name=value`, the value quoted and escaped unless it is plain.
fn field(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push('=');
    if plain(value) {
        out.push_str(value);
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// Whether a value can be written as it is: nothing that could end the line, open an escape
/// sequence or be mistaken for the next field.
fn plain(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| PLAIN[usize::from(b)])
}

/// The bytes [`plain`] allows, looked up in one step (every request writes three values).
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'/' | b'_' | b'.' | b'-' | b':' | b'{' | b'}' | b'*');
        b += 1;
    }
    table
};

/// The time as the default format writes it (`2026-12-01T22:27:38.123456Z`), its date and
/// seconds formatted once a second.
struct Clock {
    second: u64,
    prefix: [u8; 19],
}

impl Clock {
    const fn new() -> Self {
        Self { second: u64::MAX, prefix: [0; 19] }
    }

    fn write(&mut self, out: &mut String, now: SystemTime) {
        let since = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        if since.as_secs() != self.second {
            let mut text = String::with_capacity(19);
            let t = i64::try_from(since.as_secs())
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let _ = write!(
                text,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            if let Ok(prefix) = text.as_bytes().try_into() {
                self.prefix = prefix;
                self.second = since.as_secs();
            }
        }
        // ASCII digits and separators only.
        out.push_str(std::str::from_utf8(&self.prefix).unwrap_or_default());
        out.push('.');
        let micros = since.subsec_micros();
        let mut digits = [0u8; 6];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = b'0' + (micros / 10u32.pow(5 - i as u32) % 10) as u8;
        }
        out.extend(digits.iter().map(|&d| char::from(d)));
        out.push('Z');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_token_values_go_unquoted() {
        assert!(plain("/admin/clients/{client_id}") && plain("GET") && plain("0a1b2c3d00000001"));
        for v in ["a b", "x\ny", "\u{1b}[31m", "a=b", "", "\"q\""] {
            assert!(!plain(v), "{v:?}");
        }
    }

    #[test]
    fn the_time_has_the_default_layout_within_a_second_and_across_seconds() {
        let at = |nanos: u64| SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos);
        let mut clock = Clock::new();
        let mut s = String::new();
        clock.write(&mut s, at(1_764_628_058_123_456_789));
        clock.write(&mut s, at(1_764_628_058_999_999_000));
        clock.write(&mut s, at(1_764_628_059_000_001_000));
        clock.write(&mut s, at(1_767_225_599_500_000_000));
        assert_eq!(
            s,
            "2025-12-01T22:27:38.123456Z2025-12-01T22:27:38.999999Z2025-12-01T22:27:39.000001Z2025-12-31T23:59:59.500000Z"
        );
    }

    #[test]
    fn the_access_line_is_written_by_hand_with_values_quoted_unless_plain() {
        let mut s = String::new();
        let line = |route, took| Access { request_id: "0a1b2c3d00000001", method: "GET", route, status: 200, took };
        write_access(&mut s, &line("/api/me", Duration::from_nanos(51_200)));
        assert_eq!(
            s,
            "  INFO access: request request_id=0a1b2c3d00000001 method=GET route=/api/me status=200 ms=0.051\n"
        );
        s.clear();
        // Rounded to the nearest microsecond, as the event's `ms` was.
        write_access(&mut s, &line("/api/me", Duration::from_nanos(999_600)));
        assert!(s.ends_with(" ms=1.000\n"), "{s}");
        s.clear();
        // Anything but plain token characters is quoted and escaped: no forged line.
        write_access(&mut s, &line("/a b\n0000  INFO forged", Duration::from_millis(12_345)));
        assert!(
            s.ends_with(
                r#"route="/a b\n0000  INFO forged" status=200 ms=12345.000
"#
            ),
            "{s}"
        );
        assert_eq!(s.lines().count(), 1);
    }

    #[test]
    fn without_the_direct_writer_the_access_line_is_a_tracing_event() {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber =
            tracing_subscriber::fmt().json().flatten_event(true).with_writer(move || sink.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            access(&Access {
                request_id: "0a1b2c3d00000002",
                method: "POST",
                route: "/auth/login",
                status: 401,
                took: Duration::from_micros(1500),
            });
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(line["target"], ACCESS);
        assert_eq!(line["request_id"], "0a1b2c3d00000002");
        assert_eq!(line["route"], "/auth/login");
        assert_eq!(line["status"], 401);
        assert_eq!(line["ms"], 1.5);
    }
}
