//! A real SMTP server on loopback for tests: aiosmtpd (PyPI; `.ci/run` installs it) on a free
//! port, keeping what it receives in a Maildir, killed when dropped. A missing aiosmtpd fails
//! the test.

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct SmtpServer {
    child: std::process::Child,
    pub port: u16,
    pub maildir: PathBuf,
}

impl SmtpServer {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let maildir = std::env::temp_dir().join(format!("signoff-maildir-{port}-{}", std::process::id()));
        let child = std::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .spawn()
            .expect("python3 -m aiosmtpd runs (pip install aiosmtpd)");
        let server = Self { child, port, maildir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start (pip install aiosmtpd)");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far, as text.
    pub fn received(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else { return Vec::new() };
        entries.filter_map(Result::ok).filter_map(|e| std::fs::read_to_string(e.path()).ok()).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}
