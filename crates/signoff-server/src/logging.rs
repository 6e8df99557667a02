//! Where log lines go and how the busiest of them is written.
//!
//! Every request logs one access line, so the access line is on the hot path: in the text
//! format written to a file or pipe it is written by [`AccessLine`] straight into the line
//! buffer (the fields it knows, digits by hand), in the same layout as every other line
//! (`<time>  INFO access: request request_id=… method=… route=… status=… ms=…`, a value quoted
//! and escaped as the default formatter does when it holds anything but plain token
//! characters); every other event, every event on a terminal and every event in the JSON format
//! is written by `tracing-subscriber`'s own formatter. Lines are handed to a thread of their own
//! that writes them to stderr in batches ([`init`]).

use std::fmt::Write as _;
use std::io::IsTerminal;
use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{Config, LogFormat};

/// The target of the access log's events.
pub const ACCESS: &str = "access";

/// Logs go to stderr from a thread of their own: a line is formatted where it is logged and
/// queued, and the writer thread writes what has queued up in one go (flushing whenever the
/// queue runs dry), so a request does not wait on stderr and a busy server makes one write per
/// batch, not per line. No line is dropped for being logged fast: with the queue full (128,000
/// lines) loggers wait, as they waited on stderr before. When `main` returns, the guard gives
/// the writer up to a second to write what is queued; lines still queued when the process is
/// killed are lost (audit events are also kept in the store, in the transaction they record).
pub fn init(config: &Config) -> tracing_appender::non_blocking::WorkerGuard {
    let level: tracing::Level = config.log_level.parse().unwrap_or(tracing::Level::INFO);
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("signoff-log")
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let builder = tracing_subscriber::fmt().with_max_level(level).with_ansi(ansi).with_writer(writer);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Text if ansi => builder.init(),
        LogFormat::Text => builder.event_format(AccessLine(Format::default())).init(),
    }
    guard
}

/// The text format, with the access line written by hand (see the module).
pub struct AccessLine(pub Format<Full>);

impl<S, N> FormatEvent<S, N> for AccessLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        if event.metadata().target() != ACCESS {
            return self.0.format_event(ctx, w, event);
        }
        let mut line = String::with_capacity(160);
        timestamp(&mut line, OffsetDateTime::now_utc());
        line.push_str("  INFO access:");
        let mut fields = Fields(&mut line);
        event.record(&mut fields);
        line.push('\n');
        w.write_str(&line)
    }
}

/// Writes an event's fields as ` message` then ` name=value`, as the default format does.
struct Fields<'a>(&'a mut String);

/// Whether a value can be written as it is: nothing that could end the line, open an escape
/// sequence or be mistaken for the next field.
fn plain(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_.-:{}*".contains(&b))
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(' ');
        if field.name() != "message" {
            self.0.push_str(field.name());
            self.0.push('=');
        }
        if plain(value) {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    /// Milliseconds to the microsecond.
    fn record_f64(&mut self, field: &Field, value: f64) {
        let micros = (value * 1000.0).round().max(0.0) as u64;
        let _ = write!(self.0, " {}={}.{:03}", field.name(), micros / 1000, micros % 1000);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// `2026-12-01T22:27:38.123456Z`, as the default format writes its time.
fn timestamp(out: &mut String, t: OffsetDateTime) {
    let two = |out: &mut String, n: u8| {
        out.push(char::from(b'0' + n / 10));
        out.push(char::from(b'0' + n % 10));
    };
    let _ = write!(out, "{:04}-", t.year());
    two(out, u8::from(t.month()));
    out.push('-');
    two(out, t.day());
    out.push('T');
    two(out, t.hour());
    out.push(':');
    two(out, t.minute());
    out.push(':');
    two(out, t.second());
    let _ = write!(out, ".{:06}Z", t.microsecond());
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
    fn the_timestamp_has_the_default_layout() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_764_628_058_123_456_789).expect("time");
        let mut s = String::new();
        timestamp(&mut s, t);
        assert_eq!(s, "2025-12-01T22:27:38.123456Z");
    }

    /// A buffer to log into.
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

    #[test]
    fn the_access_line_is_written_by_hand_and_everything_else_as_before() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .event_format(AccessLine(Format::default()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "access", request_id = "0a1b2c3d00000001", method = "GET", route = "/api/me",
                status = 200u16, ms = 0.0512, "request");
            tracing::warn!(request_id = "0a1b2c3d00000002", "something else");
            // Anything but plain token characters is quoted and escaped: no forged line.
            tracing::info!(target: "access", request_id = "x", method = "GET", route = "/a b\n0000  INFO forged",
                status = 200u16, ms = 1.0, "request");
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[2].ends_with(r#"route="/a b\n0000  INFO forged" status=200 ms=1.000"#), "{}", lines[2]);
        let (time, rest) = lines[0].split_once("  ").expect("time first");
        assert!(time.len() == 27 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
        assert_eq!(
            rest,
            "INFO access: request request_id=0a1b2c3d00000001 method=GET route=/api/me status=200 ms=0.051"
        );
        assert!(
            lines[1].ends_with(" WARN signoff_server::logging::tests: something else request_id=\"0a1b2c3d00000002\""),
            "{}",
            lines[1]
        );
    }
}
