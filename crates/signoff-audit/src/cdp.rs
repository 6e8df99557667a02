//! Chromium, driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`): commands
//! and their answers are JSON messages, each ended by a NUL byte, on the browser's file
//! descriptors 3 (to it) and 4 (from it). No debugging port is opened, so no other process on
//! the machine can drive the browser while it holds a signed-in session.
//!
//! The protocol is chromiumoxide's: every command, answer and event is one of the types
//! `chromiumoxide_cdp` generates from Chromium's protocol definition, in the envelopes of
//! `chromiumoxide_types` (`MethodCall`, `Message`). What this module adds is the transport: the
//! crate's own client (`chromiumoxide`) speaks only over the WebSocket of
//! `--remote-debugging-port` (pipe support is its open issue #294 and unmerged pull request
//! #325), and a port on loopback would let any process on the machine drive a browser that holds
//! a signed-in session. Playwright and Puppeteer use the pipe for the same reason.
//!
//! Events are kept as they came (method, session, parameters) and read as the crate's typed
//! event where they are used ([`Event::read`]): a Chromium newer than the crate's protocol
//! revision may change an event, and one event that does not read must not cost the others. One
//! that does not read is said on stderr (the end-to-end test fails on it); two events whose crate
//! types ask for fields today's Chromium no longer sends are read for the fields used
//! (`tab.rs`, `ExtraInfo`). A paused request that does not read is refused.
//!
//! Every request a page makes is paused (`Fetch`) and let through only to the audited origin;
//! the made-up site of a cross-site check is answered from memory, and anything else is refused
//! and remembered (a logout that redirects off-site is seen, and nothing reaches that site).

use base64::Engine as _;
use chromiumoxide_cdp::cdp::browser_protocol::{browser, fetch, network, page, target};
use chromiumoxide_cdp::cdp::js_protocol::runtime;
use chromiumoxide_types::{CallId, Command, Message, MethodCall, MethodId, MethodType};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command as Process};
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
    #[error(
        "the browser's answer to {method} is not what the DevTools protocol of chromiumoxide_cdp says ({cause}); \
         is this Chromium far from the revision it was made for ({revision})?",
        revision = chromiumoxide_cdp::CURRENT_REVISION
    )]
    Unreadable { method: String, cause: String },
    #[error("no answer from the browser to {0} within 30 s")]
    Timeout(String),
    #[error("the browser cannot open {url}: {error} (is the app running there?)")]
    Navigation { url: String, error: String },
}

/// One message from the browser that answers no command, as it came.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Event {
    #[serde(rename = "sessionId")]
    pub session: Option<String>,
    pub method: MethodId,
    #[serde(default)]
    pub params: Value,
}

impl Event {
    /// Whether this is an `E`.
    pub fn is<E: MethodType>(&self) -> bool {
        self.method == E::method_id()
    }

    /// This event as the crate's `E`, if it is one and reads as one. One that does not read is
    /// logged (once per kind of event) and taken as absent.
    pub fn read<E: MethodType + DeserializeOwned>(&self) -> Option<E> {
        if !self.is::<E>() {
            return None;
        }
        self.read_as()
    }

    /// This event's parameters as `T`: for an event whose crate type asks for more than a
    /// current Chromium sends, `T` names only what is used. Logged and absent as in [`read`].
    ///
    /// [`read`]: Event::read
    pub fn read_as<T: DeserializeOwned>(&self) -> Option<T> {
        match T::deserialize(&self.params) {
            Ok(e) => Some(e),
            Err(cause) => {
                static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
                let mut said = lock(&SAID);
                if !said.iter().any(|m| *m == self.method) {
                    said.push(self.method.to_string());
                    tracing::warn!(
                        method = %self.method,
                        %cause,
                        revision = %chromiumoxide_cdp::CURRENT_REVISION,
                        "a browser event does not read as the DevTools protocol says; the audit goes on without it"
                    );
                }
                None
            }
        }
    }
}

type Reply = oneshot::Sender<Result<Value, CdpError>>;

/// What the reader shares with the callers.
#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<CallId, (MethodId, Reply)>>,
    events: Mutex<Vec<Event>>,
    notify: Notify,
    /// URLs refused because they were off the audited origin.
    blocked: Mutex<Vec<String>>,
    /// The page the made-up cross-site origin answers with.
    attacker_page: Mutex<String>,
    gone: Mutex<Option<String>>,
}

/// Where commands go: the writer's queue, and the next call id.
#[derive(Clone)]
struct Outbox {
    queue: mpsc::UnboundedSender<Vec<u8>>,
    next: Arc<AtomicUsize>,
}

impl Outbox {
    /// `command` as a message (to a page's session, or the browser), with its id.
    fn frame<C: Command>(&self, session: Option<&str>, command: &C) -> Result<(CallId, MethodId, Vec<u8>), CdpError> {
        let method = command.identifier();
        let unwritable =
            |e: serde_json::Error| CdpError::Unreadable { method: method.to_string(), cause: e.to_string() };
        let params = serde_json::to_value(command).map_err(unwritable)?;
        let id = CallId::new(self.next.fetch_add(1, Ordering::Relaxed));
        let call = MethodCall { id, method: method.clone(), session_id: session.map(str::to_owned), params };
        let mut bytes = serde_json::to_vec(&call).map_err(unwritable)?;
        bytes.push(0);
        Ok((id, method, bytes))
    }

    /// Sends `bytes`; `false` when the browser's pipe is closed.
    fn post(&self, bytes: Vec<u8>) -> bool {
        self.queue.send(bytes).is_ok()
    }

    /// Sends `command` without waiting for its answer (answers to no caller are dropped).
    fn tell<C: Command>(&self, session: Option<&str>, command: &C) {
        if let Ok((_, _, bytes)) = self.frame(session, command) {
            self.post(bytes);
        }
    }
}

/// A running headless Chromium with a profile of its own, removed when it is dropped.
pub struct Chromium {
    child: Child,
    out: Outbox,
    shared: Arc<Shared>,
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
        let mut child = Process::new("/bin/sh")
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
        let (queue, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if stdin.write_all(&message).await.is_err() {
                    break;
                }
            }
        });
        let shared = Arc::new(Shared::default());
        let out = Outbox { queue, next: Arc::new(AtomicUsize::new(1)) };
        let allowed = origin.origin().ascii_serialization();
        tokio::spawn(read(BufReader::new(stdout), shared.clone(), out.clone(), allowed));
        let chromium = Self { child, out, shared, profile };
        // The first answer proves the pipe works.
        chromium.call(None, browser::GetVersionParams {}).await?;
        Ok(chromium)
    }

    /// Sends `command` (to a page's session, or the browser) and waits for its answer.
    pub async fn call<C: Command>(&self, session: Option<&str>, command: C) -> Result<C::Response, CdpError> {
        let (id, method, bytes) = self.out.frame(session, &command)?;
        let (reply, answer) = oneshot::channel();
        // Waited for before it is sent: the answer may come back at once.
        lock(&self.shared.pending).insert(id, (method.clone(), reply));
        if !self.out.post(bytes) {
            lock(&self.shared.pending).remove(&id);
            return Err(CdpError::Gone(self.exit_reason()));
        }
        let result = match tokio::time::timeout(Duration::from_secs(30), answer).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(CdpError::Gone(self.exit_reason())),
            Err(_) => {
                lock(&self.shared.pending).remove(&id);
                return Err(CdpError::Timeout(method.to_string()));
            }
        };
        C::response_from_value(result)
            .map_err(|e| CdpError::Unreadable { method: method.to_string(), cause: e.to_string() })
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

    /// Waits (up to `within`) for an `E` of `session` after `mark`.
    pub async fn wait_for<E: MethodType>(&self, session: &str, mark: usize, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self.events_since(session, mark).into_iter().find(Event::is::<E>) {
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
        let asked = self.call(None, browser::CloseParams {});
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
async fn read(mut from: BufReader<tokio::process::ChildStdout>, shared: Arc<Shared>, out: Outbox, allowed: String) {
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
        let event = match serde_json::from_slice::<Message<Event>>(&buf) {
            Ok(Message::Response(answer)) => {
                let Some((method, reply)) = lock(&shared.pending).remove(&answer.id) else { continue };
                let result = match answer.error {
                    Some(e) => Err(CdpError::Refused { method: method.to_string(), message: e.message }),
                    // (A command that returns nothing answers `{}`.)
                    None => Ok(answer.result.unwrap_or_else(|| Value::Object(Default::default()))),
                };
                let _ = reply.send(result);
                continue;
            }
            Ok(Message::Event(event)) => event,
            Err(e) => {
                tracing::warn!(cause = %e, "a message from the browser is not a DevTools protocol message; skipped");
                continue;
            }
        };
        let session = event.session.as_deref();
        // Answered here, at once: a dialog would hold the page, and a window or worker a page
        // opens is gated like the page before it runs.
        if event.is::<page::EventJavascriptDialogOpening>() {
            out.tell(session, &page::HandleJavaScriptDialogParams::new(true));
        }
        // (Only a tab's children: the browser's own attach of a tab is the tab's business.)
        if session.is_some()
            && let Some(attached) = event.read::<target::EventAttachedToTarget>()
        {
            let child = Some(attached.session_id.as_ref());
            out.tell(child, &gate_everything());
            out.tell(child, &attach_children());
            out.tell(child, &runtime::RunIfWaitingForDebuggerParams {});
        }
        if event.is::<fetch::EventRequestPaused>() {
            gate(&event, &shared, &allowed, &out);
        }
        lock(&shared.events).push(event);
        shared.notify.notify_waiters();
    }
    *lock(&shared.gone) = Some("its pipe closed".into());
    // Whoever waits for an answer learns the browser is gone.
    lock(&shared.pending).clear();
    shared.notify.notify_waiters();
}

/// `Fetch.enable` for every request, paused before it is sent.
pub fn gate_everything() -> fetch::EnableParams {
    let every = fetch::RequestPattern {
        url_pattern: Some("*".into()),
        resource_type: None,
        request_stage: Some(fetch::RequestStage::Request),
    };
    fetch::EnableParams { patterns: Some(vec![every]), handle_auth_requests: None }
}

/// `Target.setAutoAttach`: windows and workers a page opens are attached, and wait until they
/// are gated too.
pub fn attach_children() -> target::SetAutoAttachParams {
    let mut params = target::SetAutoAttachParams::new(true, true);
    params.flatten = Some(true);
    params
}

/// Answers a paused request: through to the audited origin, the made-up site's page from memory,
/// refused (and remembered) anywhere else. A pause that does not read is refused too.
fn gate(event: &Event, shared: &Shared, allowed: &str, out: &Outbox) {
    let session = event.session.as_deref();
    let Some(paused) = event.read::<fetch::EventRequestPaused>() else {
        if let Some(id) = event.params.get("requestId").and_then(Value::as_str) {
            let url = event.params.pointer("/request/url").and_then(Value::as_str).unwrap_or_default();
            lock(&shared.blocked).push(url.to_owned());
            out.tell(session, &fetch::FailRequestParams::new(id.to_owned(), network::ErrorReason::BlockedByClient));
        }
        return;
    };
    let url = paused.request.url;
    let origin = url::Url::parse(&url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    if origin == allowed {
        out.tell(session, &fetch::ContinueRequestParams::new(paused.request_id));
    } else if origin == ATTACKER {
        let page = lock(&shared.attacker_page).clone();
        let mut answer = fetch::FulfillRequestParams::new(paused.request_id, 200);
        answer.response_headers = Some(vec![fetch::HeaderEntry::new("Content-Type", "text/html; charset=utf-8")]);
        answer.body = Some(base64::engine::general_purpose::STANDARD.encode(page.as_bytes()).into());
        out.tell(session, &answer);
    } else {
        lock(&shared.blocked).push(url);
        out.tell(session, &fetch::FailRequestParams::new(paused.request_id, network::ErrorReason::BlockedByClient));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_events_are_told_apart_and_events_read_as_their_type() {
        let answer: Message<Event> = serde_json::from_str(r#"{"id":7,"result":{"frameId":"F"}}"#).unwrap();
        assert!(matches!(answer, Message::Response(r) if r.id == CallId::new(7) && r.error.is_none()));
        let refused: Message<Event> =
            serde_json::from_str(r#"{"id":8,"error":{"code":-32000,"message":"No target"}}"#).unwrap();
        assert!(matches!(refused, Message::Response(r) if r.error.as_ref().is_some_and(|e| e.message == "No target")));

        let Message::Event(loaded) = serde_json::from_str::<Message<Event>>(
            r#"{"method":"Page.loadEventFired","params":{"timestamp":12.5},"sessionId":"S1"}"#,
        )
        .unwrap() else {
            panic!("an event read as an answer")
        };
        assert_eq!(loaded.session.as_deref(), Some("S1"));
        assert!(loaded.is::<page::EventLoadEventFired>());
        assert!(loaded.read::<page::EventLoadEventFired>().is_some());
        // Another kind of event is not this one, and a shape the type does not take is absent.
        assert!(loaded.read::<page::EventFrameStartedLoading>().is_none());
        let odd = Event { session: None, method: "Page.frameStartedLoading".into(), params: serde_json::json!({}) };
        assert!(odd.is::<page::EventFrameStartedLoading>() && odd.read::<page::EventFrameStartedLoading>().is_none());
    }

    #[test]
    fn a_command_goes_out_as_one_message_ended_by_nul() {
        let (queue, mut sent) = mpsc::unbounded_channel();
        let out = Outbox { queue, next: Arc::new(AtomicUsize::new(41)) };
        out.tell(Some("S1"), &page::NavigateToHistoryEntryParams::new(3));
        let bytes = sent.try_recv().unwrap();
        assert_eq!(bytes.last(), Some(&0));
        let message: Value = serde_json::from_slice(&bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(
            message,
            serde_json::json!({"id": 41, "method": "Page.navigateToHistoryEntry", "sessionId": "S1", "params": {"entryId": 3}})
        );
    }
}
