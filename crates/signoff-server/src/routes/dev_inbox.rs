//! `/dev/mail`: the development inbox, the `.eml` files mail goes to when there is no SMTP
//! server, shown newest first with their links clickable. Served only in development (no
//! `SIGNOFF_SMTP_URL` and a public URL on this machine); anywhere else it is a `404`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;
use crate::edge;
use crate::html::{esc, page};

/// Messages shown, newest first.
const SHOWN: usize = 30;
/// Larger files are not read (every message signoff writes is a few kilobytes).
const MAX_MESSAGE: u64 = 256 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route("/dev/mail", get(inbox))
}

/// One message as the inbox shows it.
#[derive(Debug, PartialEq, Eq)]
pub struct Shown {
    pub to: String,
    pub subject: String,
    pub date: String,
    pub text: String,
}

async fn inbox(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let config = state.config();
    // Asked for by name, as the public URL says: a page elsewhere that rebinds its own name to
    // this machine (DNS rebinding) gets nothing.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let public = config.public_url.host_str().map(|h| match config.public_url.port() {
        Some(port) => format!("{h}:{port}"),
        None => h.to_owned(),
    });
    if !config.dev_inbox() || host.is_none() || host != public.as_deref() {
        return edge::not_found().await.into_response();
    }
    // Reading files blocks: off the runtime's threads.
    let dir = config.mail_dir.clone();
    let items = tokio::task::spawn_blocking(move || listing(&dir)).await.unwrap_or_default();
    let body = if items.is_empty() {
        "<h1>Development inbox</h1><p>No mail yet.</p>".to_owned()
    } else {
        format!("<h1>Development inbox</h1><ul class=\"inbox\">{items}</ul>")
    };
    let ctx = crate::routes::current_session(&state, &headers, false).await.ok().flatten();
    page(StatusCode::OK, "Development inbox", ctx.as_ref().map(|c| c.user.email.as_str()), &body)
}

/// The newest messages in `dir`, as list items.
fn listing(dir: &std::path::Path) -> String {
    let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(dir) => {
            dir.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "eml")).collect()
        }
        Err(_) => Vec::new(),
    };
    // Named `<milliseconds>-<random>.eml`: newest last by name.
    files.sort();
    let mut items = String::new();
    for path in files.iter().rev().take(SHOWN) {
        let Ok(meta) = std::fs::metadata(path) else { continue };
        let Some(m) = (meta.len() <= MAX_MESSAGE).then(|| std::fs::read(path).ok()).flatten().and_then(|b| parse(&b))
        else {
            continue;
        };
        items.push_str(&format!(
            "<li class=\"card mail\"><p><strong>{}</strong><br><small>to {} · {}</small></p><pre>{}</pre></li>",
            esc(&m.subject),
            esc(&m.to),
            esc(&m.date),
            linked(&m.text),
        ));
    }
    items
}

/// Escaped text with its `http(s)://` links made clickable.
fn linked(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let trimmed = line.trim();
        if (trimmed.starts_with("http://") || trimmed.starts_with("https://")) && !trimmed.contains(char::is_whitespace)
        {
            out.push_str(&format!("<a href=\"{0}\">{0}</a>", esc(trimmed)));
        } else {
            out.push_str(&esc(line));
        }
    }
    out
}

/// The headers and the plain-text part of a message signoff wrote (`mailer::message`).
pub fn parse(raw: &[u8]) -> Option<Shown> {
    let raw = std::str::from_utf8(raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let header = |name: &str| {
        unfolded(head).into_iter().find_map(|(k, v)| k.eq_ignore_ascii_case(name).then_some(v)).unwrap_or_default()
    };
    let boundary = header("Content-Type").split("boundary=").nth(1)?.trim_matches('"').to_owned();
    let text = body.split(&format!("--{boundary}")).find_map(|part| {
        let (part_head, part_body) = part.trim_start_matches("\r\n").split_once("\r\n\r\n")?;
        let fields = unfolded(part_head);
        let field = |name: &str| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        if !field("Content-Type")?.starts_with("text/plain") {
            return None;
        }
        let encoded = part_body.trim_end_matches("\r\n");
        let bytes = match field("Content-Transfer-Encoding").unwrap_or("7bit") {
            "quoted-printable" => {
                quoted_printable::decode(encoded.as_bytes(), quoted_printable::ParseMode::Robust).ok()?
            }
            "base64" => {
                use base64::Engine;
                let compact: String = encoded.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD.decode(compact).ok()?
            }
            _ => encoded.as_bytes().to_vec(),
        };
        String::from_utf8(bytes).ok().map(|t| t.replace("\r\n", "\n"))
    })?;
    Some(Shown { to: header("To"), subject: header("Subject"), date: header("Date"), text })
}

/// Header fields with their continuation lines joined.
fn unfolded(head: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use signoff_core::mail::Mail;

    #[test]
    fn a_message_signoff_writes_reads_back_with_its_link_whole() {
        let from: lettre::message::Mailbox = "signoff <no-reply@localhost>".parse().expect("from");
        let link = format!("http://localhost:8080/auth/password-reset/confirm?token={}", "A".repeat(43));
        let mail = Mail {
            to: "someone@example.com".into(),
            subject: "Reset your password".into(),
            text: format!(
                "A line long enough that quoted-printable has to fold it somewhere along the way, surely.\n\n{link}\n\nBye = done\n"
            ),
            html: format!("<p><a href=\"{link}\">{link}</a></p>"),
        };
        let raw = crate::mailer::message(&from, "localhost", &mail).expect("message").formatted();
        let shown = parse(&raw).expect("parsed");
        assert_eq!(shown.to, "someone@example.com");
        assert_eq!(shown.subject, "Reset your password");
        assert!(!shown.date.is_empty());
        assert_eq!(shown.text.trim_end(), mail.text.trim_end());
        assert!(linked(&shown.text).contains(&format!("<a href=\"{link}\">")));
        assert_eq!(parse(b"not a message"), None);
    }
}
