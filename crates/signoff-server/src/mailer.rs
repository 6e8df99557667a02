//! The mail transports: SMTP through `lettre` when `SIGNOFF_SMTP_URL` is set, otherwise each
//! message as an `.eml` file in `SIGNOFF_MAIL_DIR` (the development inbox). Both build the same
//! RFC 5322 message: `Date`, `Message-ID` (on the public host), `From`, `To`, `Subject`, and a
//! `multipart/alternative` body with the plain text first and the HTML second.

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use signoff_core::mail::{Mail, MailError, Mailer};
use std::path::PathBuf;
use std::time::Duration;

/// How long one SMTP conversation may take before it is given up (and retried later).
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The message for `mail`, from `from`, its id on `host`.
pub fn message(from: &Mailbox, host: &str, mail: &Mail) -> Result<Message, MailError> {
    // A bare address, never a display name or comment: the mail goes exactly to `to`.
    let address: lettre::Address = mail.to.parse().map_err(|e| MailError::Permanent(format!("recipient: {e}")))?;
    let to = Mailbox::new(None, address);
    let id = format!("<{}@{}>", signoff_core::secret::random_id(), host);
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.as_str())
        .message_id(Some(id))
        .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
        .map_err(|e| MailError::Permanent(format!("message: {e}")))
}

/// Writes each message to `dir` as `<time>-<random>.eml`, written whole then renamed, so a
/// reader never sees half a message.
pub struct FileInbox {
    dir: PathBuf,
    from: Mailbox,
    host: String,
}

impl FileInbox {
    pub fn new(dir: PathBuf, from: Mailbox, host: String) -> Self {
        Self { dir, from, host }
    }
}

#[async_trait]
impl Mailer for FileInbox {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let bytes = message(&self.from, &self.host, mail)?.formatted();
        let temporary = |e: std::io::Error| MailError::Temporary(format!("mail directory: {e}"));
        // The messages hold live links: only this user may read them.
        let mut dir = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(dir.recursive(true), 0o700);
        dir.create(&self.dir).map_err(temporary)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let name = format!("{stamp}-{}", signoff_core::secret::random_id());
        let partial = self.dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::OpenOptions::new();
        std::os::unix::fs::OpenOptionsExt::mode(file.write(true).create_new(true), 0o600);
        std::io::Write::write_all(&mut file.open(&partial).map_err(temporary)?, &bytes).map_err(temporary)?;
        tokio::fs::rename(&partial, self.dir.join(format!("{name}.eml"))).await.map_err(temporary)
    }
}

/// Sends through an SMTP server: `smtp://host:port` (STARTTLS when the server offers it),
/// `smtps://user:password@host:port` (TLS from the start), credentials from the URL.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
}

impl Smtp {
    /// `host` is the public host: the `Message-ID` domain and the name given in `EHLO`.
    ///
    /// On `smtp://` STARTTLS is required, so nobody in the path can strip it and read the
    /// password or a link; only a server on loopback without credentials (a local relay, a
    /// test server) may answer in the clear. `?tls=…` in the URL says otherwise explicitly.
    pub fn new(url: &str, from: Mailbox, host: String) -> Result<Self, MailError> {
        let invalid = |e: lettre::transport::smtp::Error| MailError::Permanent(format!("SMTP URL: {e}"));
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(invalid)?;
        let parsed = url::Url::parse(url).map_err(|e| MailError::Permanent(format!("SMTP URL: {e}")))?;
        let explicit = parsed.query_pairs().any(|(k, _)| k == "tls");
        if parsed.scheme() == "smtp" && !explicit {
            let server = parsed.host_str().ok_or_else(|| MailError::Permanent("SMTP URL: no host".into()))?;
            let tls = TlsParameters::new(server.to_owned()).map_err(invalid)?;
            // `smtp:` is not a special scheme to `url`: its host is text, parsed here.
            let local = server == "localhost"
                || server.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
            let credentials = !parsed.username().is_empty() || parsed.password().is_some();
            builder = builder.tls(if local && !credentials { Tls::Opportunistic(tls) } else { Tls::Required(tls) });
        }
        let transport = builder.hello_name(ClientId::Domain(host.clone())).timeout(Some(SMTP_TIMEOUT)).build();
        Ok(Self { transport, from, host })
    }
}

#[async_trait]
impl Mailer for Smtp {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = message(&self.from, &self.host, mail)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Permanent(e.to_string())),
            Err(e) => Err(MailError::Temporary(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> Mail {
        Mail {
            to: "ada@example.com".into(),
            subject: "Reset your password".into(),
            text: "Open https://auth.example.com/auth/password-reset/confirm?token=abc to choose a new one.".into(),
            html: "<p><a href=\"https://auth.example.com/auth/password-reset/confirm?token=abc\">Choose a new \
                   password</a></p>"
                .into(),
        }
    }

    #[tokio::test]
    async fn the_file_inbox_writes_one_whole_message_with_every_header() {
        let dir = std::env::temp_dir().join(format!("signoff-mail-{}", signoff_core::secret::random_id()));
        let from: Mailbox = "signoff <no-reply@auth.example.com>".parse().expect("from");
        let inbox = FileInbox::new(dir.clone(), from, "auth.example.com".into());
        inbox.send(&mail()).await.expect("written");
        let files: Vec<_> = std::fs::read_dir(&dir).expect("dir").filter_map(Result::ok).collect();
        assert_eq!(files.len(), 1, "one message, no partial file left");
        let name = files[0].file_name().into_string().expect("utf-8");
        assert!(name.ends_with(".eml"), "{name}");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!((mode(&dir), mode(&files[0].path())), (0o700, 0o600), "only this user reads live links");
        let text = std::fs::read_to_string(files[0].path()).expect("read");
        let (head, body) = text.split_once("\r\n\r\n").expect("headers, then the body");
        for header in ["Date: ", "Message-ID: <", "From: signoff <no-reply@auth.example.com>", "To: ada@example.com"] {
            assert!(head.lines().any(|l| l.starts_with(header)), "{header} in {head}");
        }
        assert!(head.contains("Subject: Reset your password"));
        assert!(head.contains("@auth.example.com>"), "the id is on the public host: {head}");
        assert!(head.contains("multipart/alternative"));
        let plain = body.find("text/plain").expect("plain part");
        let html = body.find("text/html").expect("html part");
        assert!(plain < html, "plain text first");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[tokio::test]
    async fn smtp_delivers_to_a_real_server_and_a_dead_one_is_a_temporary_failure() {
        let server = signoff_testdb::SmtpServer::start();
        let from: Mailbox = "signoff <no-reply@auth.example.com>".parse().expect("from");
        let url = server.url();
        let smtp = Smtp::new(&url, from.clone(), "auth.example.com".into()).expect("transport");
        smtp.send(&mail()).await.expect("sent");
        let got = server.received();
        assert_eq!(got.len(), 1, "one message arrived");
        let text = &got[0];
        assert!(text.contains("Subject: Reset your password"), "{text}");
        assert!(text.contains("To: ada@example.com"));
        assert!(text.contains("Message-ID: <") && text.contains("@auth.example.com>"));
        // The parts are quoted-printable: undo the soft line breaks and the escaped `=`.
        let decoded = text.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
        assert!(decoded.contains("password-reset/confirm?token=abc"), "{text}");
        drop(server);
        let dead = Smtp::new(&url, from, "auth.example.com".into()).expect("transport");
        assert!(matches!(dead.send(&mail()).await, Err(MailError::Temporary(_))), "retried later, not dropped");
    }

    #[tokio::test]
    async fn a_password_never_goes_to_a_server_that_does_not_speak_tls() {
        // The loopback test server speaks no TLS: with credentials in the URL, signoff refuses
        // to go on rather than send them in the clear.
        let server = signoff_testdb::SmtpServer::start();
        let from: Mailbox = "no-reply@auth.example.com".parse().expect("from");
        let url = format!("smtp://user:pw@127.0.0.1:{}", server.port);
        let smtp = Smtp::new(&url, from, "auth.example.com".into()).expect("transport");
        assert!(smtp.send(&mail()).await.is_err(), "STARTTLS is required once there is a password");
        assert!(server.received().is_empty(), "nothing was sent");
    }

    #[test]
    fn a_malformed_recipient_is_a_permanent_failure() {
        let from: Mailbox = "no-reply@auth.example.com".parse().expect("from");
        let bad = Mail { to: "not an address".into(), ..mail() };
        assert!(matches!(message(&from, "auth.example.com", &bad), Err(MailError::Permanent(_))));
        let injected = Mail { to: "a@example.com\r\nBcc: b@example.com".into(), ..mail() };
        assert!(matches!(message(&from, "auth.example.com", &injected), Err(MailError::Permanent(_))));
    }
}
