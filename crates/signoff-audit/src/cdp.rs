//! Chromium, driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`): commands
//! and their answers are JSON messages, each ended by a NUL byte, on the browser's file
//! descriptors 3 (to it) and 4 (from it). No debugging port is opened, so no other process on
//! the machine can drive the browser while it holds a signed-in session.
//!
//! Why this module and not a crate: the maintained Rust CDP crate, chromiumoxide, speaks only
//! over the WebSocket of `--remote-debugging-port` (pipe support is its open issue #294 and
//! unmerged pull request #325), and a port on loopback would let any process on the machine
//! drive a browser that holds a signed-in session. Playwright and Puppeteer use the pipe for the
//! same reason. The audit needs two dozen commands and a handful of events, as plain JSON; this
//! is the transport for them and nothing more (no generated protocol types).
//!
//! Every request a page makes is paused (`Fetch`) and let through only to the audited origin;
//! the made-up site of a cross-site check is answered from memory, and anything else is refused
//! and remembered (a logout that redirects off-site is seen, and nothing reaches that site).

use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, mpsc, oneshot};

/// The made-up site cross-site checks are played from (`.invalid` never resolves; its pages
/// are answered from memory).
pub const ATTACKER: &str = "http://attacker.invalid";

/// Why the browser could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CdpError {
    #[error("cannot start {path}: {cause} (install Debian's chromium, or set browser = \"…\" in the config)")]
    Start { path: String, cause: std::io::Error },
    #[error("the browser exited ({0})")]
    Gone(String),
    #[error("the browser refused {method}: {message}")]
    Refused { method: String, message: String },
    #[error("no answer from the browser to {0} within 30 s")]
    Timeout(String),
    #[error("the browser cannot open {url}: {error} (is the app running there?)")]
    Navigation { url: String, error: String },
}

/// One message from the browser that answers no command.
#[derive(Debug, Clone)]
pub struct Event {
    pub session: Option<String>,
    pub method: String,
    pub params: Value,
}

type Reply = oneshot::Sender<Result<Value, CdpError>>;

/// What the reader shares with the callers.
#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, (String, Reply)>>,
    events: Mutex<Vec<Event>>,
    notify: Notify,
    /// URLs refused because they were off the audited origin.
    blocked: Mutex<Vec<String>>,
    /// The page the made-up cross-site origin answers with.
    attacker_page: Mutex<String>,
    gone: Mutex<Option<String>>,
}

/// A running headless Chromium with a profile of its own, removed when it is dropped.
pub struct Chromium {
    child: Child,
    out: mpsc::UnboundedSender<Vec<u8>>,
    shared: Arc<Shared>,
    next: Arc<AtomicU64>,
    profile: Profile,
}

/// The browser's profile folder, removed when dropped.
struct Profile(PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Chromium {
    /// Starts `path` headless, letting pages reach only `origin` (scheme://host:port).
    pub async fn start(path: &str, origin: &url::Url) -> Result<Self, CdpError> {
        let profile = std::env::temp_dir().join(format!(
            "signoff-audit-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
        ));
        if path.contains('/') && !Path::new(path).exists() {
            return Err(CdpError::Start { path: path.into(), cause: std::io::ErrorKind::NotFound.into() });
        }
        std::fs::create_dir(&profile).map_err(|cause| CdpError::Start { path: path.into(), cause })?;
        // Removed on every way out from here, the early errors included.
        let profile = Profile(profile);
        let host = origin.host_str().unwrap_or("localhost");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--remote-debugging-pipe".into(),
            format!("--user-data-dir={}", profile.0.display()),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-default-apps".into(),
            "--disable-extensions".into(),
            "--metrics-recording-only".into(),
            "--no-pings".into(),
            "--password-store=basic".into(),
            "--use-mock-keychain".into(),
            "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication".into(),
            // Belt and braces beside `Fetch`: no name but the audited host resolves.
            format!("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {host}"),
            // And a backstop for whatever the gate does not see (a popup, a WebSocket, an IP
            // address): every other address, other ports of loopback included, goes through a
            // proxy that is not there (the discard port on loopback), WebRTC included.
            "--proxy-server=http://127.0.0.1:9".into(),
            // Loopback is not bypassed as by default: only the audited host and port are.
            format!("--proxy-bypass-list=<-loopback>;{host}:{}", origin.port_or_known_default().unwrap_or(80)),
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp".into(),
        ];
        if rustix::process::geteuid().is_root() {
            // Chromium's sandbox refuses to run as root (CI containers).
            args.push("--no-sandbox".into());
        }
        args.push("about:blank".into());
        // The browser's descriptors 3 and 4 are this side's pipes, handed over by the shell
        // that starts it (stdin and stdout moved up, then closed), so no unsafe code is needed.
        let stderr = std::fs::File::create(profile.0.join("stderr.log"))
            .map_err(|cause| CdpError::Start { path: path.into(), cause })?;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 </dev/null >/dev/null")
            .arg(path)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|cause| CdpError::Start { path: path.into(), cause })?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(CdpError::Gone("no pipes".into()));
        };
        let (out, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                if stdin.write_all(&message).await.is_err() {
                    break;
                }
            }
        });
        let shared = Arc::new(Shared::default());
        let next = Arc::new(AtomicU64::new(1));
        let allowed = origin.origin().ascii_serialization();
        tokio::spawn(read(BufReader::new(stdout), shared.clone(), out.clone(), next.clone(), allowed));
        let chromium = Self { child, out, shared, next, profile };
        // The first answer proves the pipe works.
        chromium.call(None, "Browser.getVersion", json!({})).await?;
        Ok(chromium)
    }

    /// Sends a command (to a page's session, or the browser) and waits for its answer.
    pub async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value, CdpError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        lock(&self.shared.pending).insert(id, (method.to_owned(), reply));
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap_or_default();
        bytes.push(0);
        if self.out.send(bytes).is_err() {
            return Err(CdpError::Gone(self.exit_reason()));
        }
        match tokio::time::timeout(Duration::from_secs(30), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CdpError::Gone(self.exit_reason())),
            Err(_) => Err(CdpError::Timeout(method.to_owned())),
        }
    }

    fn exit_reason(&self) -> String {
        let said = std::fs::read_to_string(self.profile.0.join("stderr.log")).unwrap_or_default();
        let last = said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
        lock(&self.shared.gone)
            .clone()
            .map_or(last.clone(), |g| if last.is_empty() { g } else { format!("{g}: {last}") })
    }

    /// How many events have arrived so far: a mark to look for events after.
    pub fn mark(&self) -> usize {
        lock(&self.shared.events).len()
    }

    /// The events of `session` since `mark`.
    pub fn events_since(&self, session: &str, mark: usize) -> Vec<Event> {
        lock(&self.shared.events)[mark..].iter().filter(|e| e.session.as_deref() == Some(session)).cloned().collect()
    }

    /// Waits (up to `within`) for an event of `session` named `method` after `mark`.
    pub async fn wait_for(&self, session: &str, method: &str, mark: usize, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self.events_since(session, mark).into_iter().find(|e| e.method == method) {
                return Some(e);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// The off-origin URLs pages tried to reach (refused).
    pub fn blocked(&self) -> Vec<String> {
        lock(&self.shared.blocked).clone()
    }

    /// What the made-up cross-site origin answers with from now on.
    pub fn set_attacker_page(&self, html: String) {
        *lock(&self.shared.attacker_page) = html;
    }

    /// Stops the browser (asked to close, killed if it has not within 2 s); its profile is
    /// removed once it has exited.
    pub async fn close(mut self) {
        let asked = self.call(None, "Browser.close", json!({}));
        let _ = tokio::time::timeout(Duration::from_secs(2), asked).await;
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The profile goes with `self.profile`, after this.
        let _ = self.child.start_kill();
    }
}

/// Reads the browser's messages: answers go to their callers, paused requests are let through
/// or refused here, everything else is kept as an event.
async fn read(
    mut from: BufReader<tokio::process::ChildStdout>,
    shared: Arc<Shared>,
    out: mpsc::UnboundedSender<Vec<u8>>,
    next: Arc<AtomicU64>,
    allowed: String,
) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match from.read_until(0, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if buf.last() == Some(&0) {
            buf.pop();
        }
        let Ok(message) = serde_json::from_slice::<Value>(&buf) else { continue };
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            let Some((method, reply)) = lock(&shared.pending).remove(&id) else { continue };
            let result = match message.get("error") {
                Some(e) => Err(CdpError::Refused {
                    method,
                    message: e.get("message").and_then(Value::as_str).unwrap_or("error").to_owned(),
                }),
                None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
            };
            let _ = reply.send(result);
            continue;
        }
        let event = Event {
            session: message.get("sessionId").and_then(Value::as_str).map(str::to_owned),
            method: message.get("method").and_then(Value::as_str).unwrap_or_default().to_owned(),
            params: message.get("params").cloned().unwrap_or(Value::Null),
        };
        // Answered here, at once: a dialog would hold the page, and a window or worker a page
        // opens is gated like the page before it runs.
        let send = |session: Option<&str>, method: &str, params: Value| {
            let mut command = json!({"id": next.fetch_add(1, Ordering::Relaxed), "method": method, "params": params});
            if let Some(s) = session {
                command["sessionId"] = json!(s);
            }
            let mut bytes = serde_json::to_vec(&command).unwrap_or_default();
            bytes.push(0);
            let _ = out.send(bytes);
        };
        if event.method == "Page.javascriptDialogOpening" {
            send(event.session.as_deref(), "Page.handleJavaScriptDialog", json!({"accept": true}));
        }
        // (Only a tab's children: the browser's own attach of a tab is the tab's business.)
        if event.method == "Target.attachedToTarget"
            && event.session.is_some()
            && let Some(child) = event.params["sessionId"].as_str()
        {
            let patterns = json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]});
            send(Some(child), "Fetch.enable", patterns);
            let attach = json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true});
            send(Some(child), "Target.setAutoAttach", attach);
            send(Some(child), "Runtime.runIfWaitingForDebugger", json!({}));
        }
        if event.method == "Fetch.requestPaused" {
            let (method, params) = gate(&event, &shared, &allowed);
            send(event.session.as_deref(), method, params);
        }
        lock(&shared.events).push(event);
        shared.notify.notify_waiters();
    }
    *lock(&shared.gone) = Some("its pipe closed".into());
    // Whoever waits for an answer learns the browser is gone.
    lock(&shared.pending).clear();
    shared.notify.notify_waiters();
}

/// The answer to a paused request: through to the audited origin, the made-up site's page from
/// memory, refused (and remembered) anywhere else.
fn gate(event: &Event, shared: &Shared, allowed: &str) -> (&'static str, Value) {
    let id = event.params.get("requestId").cloned().unwrap_or(Value::Null);
    let url = event.params.pointer("/request/url").and_then(Value::as_str).unwrap_or_default();
    let origin = url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    if origin == allowed {
        return ("Fetch.continueRequest", json!({"requestId": id}));
    }
    if origin == ATTACKER {
        use base64::Engine as _;
        let page = lock(&shared.attacker_page).clone();
        return (
            "Fetch.fulfillRequest",
            json!({
                "requestId": id,
                "responseCode": 200,
                "responseHeaders": [{"name": "Content-Type", "value": "text/html; charset=utf-8"}],
                "body": base64::engine::general_purpose::STANDARD.encode(page.as_bytes()),
            }),
        );
    }
    lock(&shared.blocked).push(url.to_owned());
    ("Fetch.failRequest", json!({"requestId": id, "errorReason": "BlockedByClient"}))
}
