//! Mail to users, sent by the outbox worker: what each letter says (plain text and HTML), and
//! one attempt to send it. The link's token is made by the authority at this moment
//! (`Authority::prepare_mail`) and exists only in the message.

use signoff_core::mail::{Letter, Mail, MailError, Prepared};
use signoff_core::outbox::{Attempt, Delivery};
use std::time::Instant;

use crate::app::AppState;
use crate::config::Config;
use crate::html::esc;
use crate::views;

/// One attempt to send a mail row.
///
/// What `/metrics` shows of mail must not tell known addresses from unknown ones (a reset
/// request for an address without an account is skipped here, one with an account is sent):
/// a row is counted by its letter when it is first processed, sent or skipped alike, and only
/// for letters queued the same way whoever owns the address; the mail server's answers and
/// times go to the log, not to a metric, and the outbox gauges leave mail out.
pub async fn deliver(state: &AppState, d: &Delivery) -> Attempt {
    // When a row is first tried, whatever comes of it: a retry (only a mail sent, or one whose
    // account the store was asked about, can fail) is not counted again.
    if d.attempts == 0
        && let Some(letter) = Letter::parse(&d.event).filter(|l| l.counted_alike())
    {
        state.metrics().mail_processed(letter.as_str());
    }
    let prepared = state.authority().prepare_mail(d).await;
    let prepared = match prepared {
        Ok(Some(prepared)) => prepared,
        Ok(None) => {
            tracing::debug!(delivery = %d.id, event = %d.event, "mail no longer applies; not sent");
            return Attempt::Skipped;
        }
        Err(e) => {
            tracing::warn!(delivery = %d.id, error = %e, "cannot prepare a mail; retrying later");
            return Attempt::later(None);
        }
    };
    let mail = render(&prepared, state.config());
    let started = Instant::now();
    let sent = state.mailer().send(&mail).await;
    let took_ms = started.elapsed().as_millis() as u64;
    match sent {
        Ok(()) => {
            tracing::info!(delivery = %d.id, event = %d.event, took_ms, "mail sent");
            Attempt::Delivered(250)
        }
        Err(MailError::Temporary(why)) => {
            tracing::info!(delivery = %d.id, event = %d.event, why, "mail not sent yet; retrying later");
            Attempt::later(None)
        }
        Err(MailError::Permanent(why)) => {
            tracing::warn!(delivery = %d.id, event = %d.event, why, "mail refused for good");
            Attempt::Refused { status: 550, why: None }
        }
    }
}

/// `path` on the public URL.
pub fn public_link(config: &Config, path: &str) -> String {
    format!("{}{path}", config.public_url.as_str().trim_end_matches('/'))
}

/// The message for a prepared letter.
pub fn render(p: &Prepared, config: &Config) -> Mail {
    let link = p.link.as_ref().map(|(secret, expires)| {
        let path = match p.letter {
            Letter::EmailChangeLink => "/auth/email/confirm",
            _ => "/auth/password-reset/confirm",
        };
        (format!("{}?token={}", public_link(config, path), secret.expose()), views::rfc3339(*expires))
    });
    let new_email = p.new_email.as_deref().unwrap_or_default();
    let security = public_link(config, "/app/security");
    let reset = public_link(config, "/auth/password-reset");
    // Paragraphs of plain text; `{link}` marks where the link goes.
    let (subject, paragraphs): (&str, Vec<String>) = match (p.letter, &link) {
        (Letter::EmailChangeLink, Some((_, until))) => (
            "Confirm your new e-mail address",
            vec![
                format!("Someone signed in to a signoff account asked to use this address, {new_email}, for it."),
                "To confirm, open this link and press the button on the page:".into(),
                "{link}".into(),
                format!("The link works once, until {until}. Confirming signs out every other device of the account."),
                "If you did not ask for this, ignore this mail: nothing changes.".into(),
            ],
        ),
        (Letter::PasswordResetLink, Some((_, until))) => (
            "Reset your password",
            vec![
                "Someone asked to reset the password of the signoff account for this address.".into(),
                "To choose a new password, open this link:".into(),
                "{link}".into(),
                format!(
                    "The link works once, until {until}. Setting a new password signs out every device of the \
                     account, the one you use included."
                ),
                "If you did not ask for this, ignore this mail: your password stays as it is.".into(),
            ],
        ),
        (Letter::EmailChangeNotice, _) => (
            "A change of your e-mail address was asked for",
            vec![
                format!("Someone signed in to your signoff account asked to change its address to {new_email}."),
                "If that address can be used, a confirmation link went to it; your address changes only when \
                 that link is used."
                    .into(),
                format!(
                    "If this was not you, change your password and report a concern on your security page, which \
                     signs out every device: {security}"
                ),
            ],
        ),
        (Letter::Registration, _) => (
            "Someone tried to create an account with this address",
            vec![
                "Someone tried to create a signoff account with this address. It already has one, so nothing was \
                 created and nothing changed."
                    .into(),
                format!("If it was you, sign in: {}", public_link(config, "/login")),
                format!("If you have forgotten your password, choose a new one: {reset}"),
                "If it was not you, ignore this mail: your account is as it was.".into(),
            ],
        ),
        (Letter::PasswordResetDone, _) | (_, None) => (
            "Your password was reset",
            vec![
                "The password of your signoff account was just set through a reset link, and every device was \
                 signed out."
                    .into(),
                format!("If this was not you, reset it again at once: {reset}"),
            ],
        ),
    };
    let url = link.as_ref().map(|(url, _)| url.as_str()).unwrap_or_default();
    let text = paragraphs.iter().map(|p| if p == "{link}" { url } else { p.as_str() }).collect::<Vec<_>>().join("\n\n");
    let html_paragraphs: String = paragraphs
        .iter()
        .map(|p| {
            if p == "{link}" {
                format!("<p><a href=\"{0}\">{0}</a></p>", esc(url))
            } else {
                format!("<p>{}</p>", esc(p))
            }
        })
        .collect();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body>{html_paragraphs}</body></html>",
        title = esc(subject)
    );
    Mail { to: p.to.clone(), subject: subject.to_owned(), text: text + "\n", html }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signoff_core::mail::MailSecret;

    #[test]
    fn a_link_letter_carries_its_link_once_in_each_body_and_nothing_else_secret() {
        let config = Config::defaults();
        let secret = MailSecret::generate();
        let token = secret.expose();
        let expires = time::OffsetDateTime::UNIX_EPOCH;
        let p = Prepared {
            letter: Letter::PasswordResetLink,
            to: "a@example.com".into(),
            new_email: None,
            link: Some((secret, expires)),
        };
        let mail = render(&p, &config);
        assert_eq!(mail.to, "a@example.com");
        assert_eq!(mail.subject, "Reset your password");
        let link = format!("{}?token={token}", public_link(&config, "/auth/password-reset/confirm"));
        assert_eq!(mail.text.matches(&link).count(), 1, "{}", mail.text);
        assert_eq!(mail.html.matches(&format!("href=\"{link}\"")).count(), 1, "{}", mail.html);
        assert!(mail.text.contains("1970-01-01T00:00:00Z"), "the link's end is stated");

        let notice = Prepared {
            letter: Letter::EmailChangeNotice,
            to: "a@example.com".into(),
            new_email: Some("<b>@example.com".into()),
            link: None,
        };
        let mail = render(&notice, &config);
        assert!(!mail.text.contains("token="), "a notice has no link");
        assert!(mail.html.contains("&lt;b&gt;@example.com") && !mail.html.contains("<b>@"), "escaped");
    }
}
