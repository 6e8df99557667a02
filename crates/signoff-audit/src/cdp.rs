//! Chromium, driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`): commands
//! and their answers are JSON messages, each ended by a NUL byte, on the browser's file
//! descriptors 3 (to it) and 4 (from it). No debugging port is opened, so no other process on
//! the machine can drive the browser while it holds a signed-in session.
//!
//! The protocol is chromiumoxide's: every command and its answer is one of the types
//! `chromiumoxide_cdp` generates from Chromium's protocol definition, in the envelopes of
//! `chromiumoxide_types` (`MethodCall`, `Response`), and events are named by the crate's event
//! types. What this module adds is the transport: the crate's own client (`chromiumoxide`)
//! speaks only over the WebSocket of `--remote-debugging-port` (pipe support is its open issue
//! #294 and unmerged pull request #325), and a port on loopback would let any process on the
//! machine drive a browser that holds a signed-in session. Playwright and Puppeteer use the pipe
//! for the same reason.
//!
//! Events are kept as they came (method, session, parameters) and read where they are used, for
//! the fields used (`events.rs` says why not as the crate's whole types). One that does not read
//! is said on stderr and counted ([`Chromium::unreadable`]): the audit then gives no verdicts.
//!
//! Every request a page makes is paused (`Fetch`) and let through only to the audited origin;
//! the made-up site of a cross-site check is answered from memory, and anything else is refused
//! and remembered (a logout that redirects off-site is seen, and nothing reaches that site).

use crate::events;
use base64::Engine as _;
use chromiumoxide_cdp::cdp::browser_protocol::{browser, fetch, network, page, target};
use chromiumoxide_cdp::cdp::js_protocol::runtime;
use chromiumoxide_types::{CallId, Command, MethodCall, MethodId, MethodType, Response};
use serde::Deserialize as _;
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
        "the browser's answer to {method} is not what the DevTools protocol says ({cause}); is this Chromium far \
         from the protocol's revision, Chromium r{revision}?",
        revision = revision()
    )]
    Unreadable { method: String, cause: String },
    #[error("cannot write the command {method}: {cause}")]
    Command { method: String, cause: String },
    #[error(
        "the browser sent events this build cannot read ({0}), so the verdicts would rest on missing data and \
         there are none; is this Chromium far from the DevTools protocol's revision, Chromium r{revision}?",
        revision = revision()
    )]
    Events(String),
    #[error("no answer from the browser to {0} within 30 s")]
    Timeout(String),
    #[error("the browser cannot open {url}: {error} (is the app running there?)")]
    Navigation { url: String, error: String },
}

/// The Chromium revision (a commit position) the crate's protocol was made from.
fn revision() -> String {
    chromiumoxide_cdp::CURRENT_REVISION.to_string().trim_start_matches("v0.0.").to_owned()
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

    /// This event as `T` (what the audit reads of an event: `events.rs`), if it is one of the
    /// events `T` reads. One that does not read was counted when it came
    /// ([`Chromium::unreadable`]).
    pub fn read<T: events::Shape>(&self) -> Option<T> {
        if T::OF.contains(&&*self.method) { T::deserialize(&self.params).ok() } else { None }
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
    /// Events that did not read, each kind once (with why).
    unreadable: Mutex<Vec<(String, String)>>,
}

impl Shared {
    /// The kinds of event that did not read, if any, as the error that ends the audit.
    fn unreadable(&self) -> Result<(), CdpError> {
        let said = lock(&self.unreadable);
        if said.is_empty() {
            return Ok(());
        }
        Err(CdpError::Events(said.iter().map(|(m, cause)| format!("{m}: {cause}")).collect::<Vec<_>>().join("; ")))
    }

    /// Counts an event that did not read (each kind once) and says so on stderr.
    fn count_unreadable(&self, method: &str, cause: String) {
        let mut said = lock(&self.unreadable);
        if !said.iter().any(|(m, _)| m == method) {
            tracing::warn!(
                method,
                %cause,
                revision = %revision(),
                "a browser event does not read as the DevTools protocol says; the audit will give no verdicts"
            );
            said.push((method.to_owned(), cause));
        }
    }
}

/// A command's place among those waiting for an answer, given up when its caller stops waiting
/// (answered, timed out, or dropped).
struct Waiting<'a> {
    shared: &'a Shared,
    id: CallId,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(&self.id);
    }
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
        let unwritable = |e: serde_json::Error| CdpError::Command { method: method.to_string(), cause: e.to_string() };
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
        match self.frame(session, command) {
            Ok((_, _, bytes)) => {
                self.post(bytes);
            }
            Err(e) => tracing::error!(error = %e, "a command to the browser was not sent"),
        }
    }
}

/// The way to the browser and back: commands out, answers and events in.
#[derive(Clone)]
struct Link {
    shared: Arc<Shared>,
    out: Outbox,
}

impl Link {
    /// Sends `command` (to a page's session, or the browser) and waits for its answer.
    async fn request<C: Command>(&self, session: Option<&str>, command: C) -> Result<C::Response, CdpError> {
        let (id, method, bytes) = self.out.frame(session, &command)?;
        let (reply, answer) = oneshot::channel();
        // Waited for before it is sent: the answer may come back at once.
        lock(&self.shared.pending).insert(id, (method.clone(), reply));
        let _waiting = Waiting { shared: &self.shared, id };
        // (After the insert: the reader empties `pending` when the pipe closes, then says so.)
        if lock(&self.shared.gone).is_some() || !self.out.post(bytes) {
            return Err(CdpError::Gone(String::new()));
        }
        let result = match tokio::time::timeout(Duration::from_secs(30), answer).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(CdpError::Gone(String::new())),
            Err(_) => return Err(CdpError::Timeout(method.to_string())),
        };
        C::response_from_value(result)
            .map_err(|e| CdpError::Unreadable { method: method.to_string(), cause: e.to_string() })
    }
}

/// A running headless Chromium with a profile of its own, removed when it is dropped.
pub struct Chromium {
    child: Child,
    link: Link,
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
        let link =
            Link { shared: Arc::new(Shared::default()), out: Outbox { queue, next: Arc::new(AtomicUsize::new(1)) } };
        let allowed = origin.origin().ascii_serialization();
        tokio::spawn(read(BufReader::new(stdout), link.clone(), allowed));
        let chromium = Self { child, link, profile };
        // The first answer proves the pipe works.
        chromium.call(None, browser::GetVersionParams {}).await?;
        Ok(chromium)
    }

    /// Sends `command` (to a page's session, or the browser) and waits for its answer. Once
    /// an event has not read, every command fails with that ([`CdpError::Events`]): the audit
    /// stops there.
    pub async fn call<C: Command>(&self, session: Option<&str>, command: C) -> Result<C::Response, CdpError> {
        self.link.shared.unreadable()?;
        match self.link.request(session, command).await {
            Err(CdpError::Gone(_)) => Err(CdpError::Gone(self.exit_reason())),
            answered => answered,
        }
    }

    fn exit_reason(&self) -> String {
        let said = std::fs::read_to_string(self.profile.0.join("stderr.log")).unwrap_or_default();
        let last = said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
        lock(&self.link.shared.gone)
            .clone()
            .map_or(last.clone(), |g| if last.is_empty() { g } else { format!("{g}: {last}") })
    }

    /// How many events have arrived so far: a mark to look for events after.
    pub fn mark(&self) -> usize {
        lock(&self.link.shared.events).len()
    }

    /// The events of `session` since `mark`.
    pub fn events_since(&self, session: &str, mark: usize) -> Vec<Event> {
        lock(&self.link.shared.events)[mark..]
            .iter()
            .filter(|e| e.session.as_deref() == Some(session))
            .cloned()
            .collect()
    }

    /// Waits (up to `within`) for an `E` of `session` after `mark`.
    pub async fn wait_for<E: MethodType>(&self, session: &str, mark: usize, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.link.shared.notify.notified();
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

    /// The kinds of event that did not read (with why), if any: verdicts resting on them would
    /// rest on missing data.
    pub fn unreadable(&self) -> Result<(), CdpError> {
        self.link.shared.unreadable()
    }

    /// The off-origin URLs pages tried to reach (refused).
    pub fn blocked(&self) -> Vec<String> {
        lock(&self.link.shared.blocked).clone()
    }

    /// What the made-up cross-site origin answers with from now on.
    pub fn set_attacker_page(&self, html: String) {
        *lock(&self.link.shared.attacker_page) = html;
    }

    /// Stops the browser (asked to close, killed if it has not within 2 s); its profile is
    /// removed once it has exited.
    pub async fn close(mut self) {
        let asked = self.link.request(None, browser::CloseParams {});
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
async fn read(mut from: BufReader<tokio::process::ChildStdout>, link: Link, allowed: String) {
    let (shared, out) = (&*link.shared, &link.out);
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
        let Ok(message) = serde_json::from_slice::<Value>(&buf) else {
            shared.count_unreadable(
                "(a message that is not JSON)",
                String::from_utf8_lossy(&buf).chars().take(80).collect(),
            );
            continue;
        };
        // An answer carries the id of its command; an event has none.
        if message.get("id").is_some() {
            answer(message, shared);
            continue;
        }
        let event = match Event::deserialize(&message) {
            Ok(event) => event,
            Err(e) => {
                shared.count_unreadable("(an event without a method)", e.to_string());
                continue;
            }
        };
        if let Err(cause) = events::check(&event) {
            shared.count_unreadable(&event.method, cause.to_string());
        }
        let session = event.session.as_deref();
        // Answered here, at once: a dialog would hold the page, and a window or worker a page
        // opens is gated like the page before it runs.
        if event.is::<page::EventJavascriptDialogOpening>() {
            out.tell(session, &page::HandleJavaScriptDialogParams::new(true));
        }
        // (Only a tab's children: the browser's own attach of a tab is the tab's business.)
        if session.is_some()
            && let Some(attached) = event.read::<events::Attached>()
        {
            // Resumed only once it is gated: a child whose gate was refused stays paused.
            let (link, child) = (link.clone(), String::from(attached.session_id));
            tokio::spawn(async move {
                let child = Some(child.as_str());
                let gated = async {
                    link.request(child, gate_everything()).await?;
                    link.request(child, attach_children()).await?;
                    link.request(child, runtime::RunIfWaitingForDebuggerParams {}).await
                };
                if let Err(e) = gated.await {
                    // (Most often the child has gone already.)
                    tracing::debug!(error = %e, "a window or worker a page opened stays paused: it could not be gated");
                }
            });
        }
        if event.is::<fetch::EventRequestPaused>() {
            gate(&event, shared, &allowed, out);
        }
        lock(&shared.events).push(event);
        shared.notify.notify_waiters();
    }
    *lock(&shared.gone) = Some("its pipe closed".into());
    // Whoever waits for an answer learns the browser is gone.
    lock(&shared.pending).clear();
    shared.notify.notify_waiters();
}

/// Hands an answer to the command that waits for it.
fn answer(message: Value, shared: &Shared) {
    let answer = Response::deserialize(&message);
    let id = match answer.as_ref().map(|a| a.id).or_else(|_| CallId::deserialize(&message["id"])) {
        Ok(id) => id,
        Err(e) => return shared.count_unreadable("(an answer)", format!("its id: {e}")),
    };
    let Some((method, reply)) = lock(&shared.pending).remove(&id) else { return };
    let refused = |message: String| Err(CdpError::Refused { method: method.to_string(), message });
    let result = match answer {
        Ok(Response { error: Some(e), .. }) => refused(e.message),
        // (A command that returns nothing answers `{}`.)
        Ok(Response { result, .. }) => Ok(result.unwrap_or_else(|| Value::Object(Default::default()))),
        Err(_) if let Some(said) = message.pointer("/error/message").and_then(Value::as_str) => {
            refused(said.to_owned())
        }
        Err(e) => Err(CdpError::Unreadable { method: method.to_string(), cause: e.to_string() }),
    };
    let _ = reply.send(result);
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
    let Some(paused) = event.read::<events::Paused>() else {
        // (Counted as unreadable when it came.) Refused by its id alone, if it has one.
        if let Some(id) = event.params.get("requestId").and_then(Value::as_str) {
            let refused = fetch::FailRequestParams::new(id.to_owned(), network::ErrorReason::BlockedByClient);
            out.tell(session, &refused);
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

    fn waiting(shared: &Shared, id: usize) -> oneshot::Receiver<Result<Value, CdpError>> {
        let (reply, answer) = oneshot::channel();
        lock(&shared.pending).insert(CallId::new(id), ("Page.navigate".into(), reply));
        answer
    }

    #[test]
    fn answers_reach_their_command_whatever_their_shape() {
        let shared = Shared::default();
        let mut ok = waiting(&shared, 7);
        answer(serde_json::json!({"id": 7, "result": {"frameId": "F"}}), &shared);
        assert_eq!(ok.try_recv().unwrap().unwrap(), serde_json::json!({"frameId": "F"}));
        let mut refused = waiting(&shared, 8);
        answer(serde_json::json!({"id": 8, "error": {"code": -32000, "message": "No target"}}), &shared);
        assert!(
            matches!(refused.try_recv().unwrap(), Err(CdpError::Refused { message, .. }) if message == "No target")
        );
        // An error without its code is still the browser's refusal, and an answer that is
        // neither is still an answer to its command: not a silence until the timeout.
        let mut odd = waiting(&shared, 9);
        answer(serde_json::json!({"id": 9, "error": {"message": "odd"}}), &shared);
        assert!(matches!(odd.try_recv().unwrap(), Err(CdpError::Refused { message, .. }) if message == "odd"));
        let mut odder = waiting(&shared, 10);
        answer(serde_json::json!({"id": 10, "error": "odder"}), &shared);
        assert!(matches!(odder.try_recv().unwrap(), Err(CdpError::Unreadable { .. })));
        assert!(lock(&shared.pending).is_empty());
        // An answer whose id does not read is counted: the audit will end without verdicts.
        assert!(shared.unreadable().is_ok());
        answer(serde_json::json!({"id": "x", "result": {}}), &shared);
        assert!(matches!(shared.unreadable(), Err(CdpError::Events(_))));
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

    #[test]
    fn the_gate_lets_through_the_audited_origin_only() {
        let (queue, mut sent) = mpsc::unbounded_channel();
        let out = Outbox { queue, next: Arc::new(AtomicUsize::new(1)) };
        let shared = Shared::default();
        *lock(&shared.attacker_page) = "<p>elsewhere</p>".into();
        // Whatever else a pause carries (fields and values no protocol revision has yet).
        let paused = |url: &str| Event {
            session: Some("S".into()),
            method: "Fetch.requestPaused".into(),
            params: serde_json::json!({"requestId": "I", "resourceType": "SomethingNew", "frameId": "F",
                "request": {"url": url, "method": "GET", "headers": {}, "initialPriority": "Newest"}}),
        };
        let mut answer_to = |url: &str| {
            let event = paused(url);
            assert!(events::check(&event).is_ok());
            gate(&event, &shared, "http://127.0.0.1:8000", &out);
            let bytes = sent.try_recv().unwrap();
            serde_json::from_slice::<Value>(&bytes[..bytes.len() - 1]).unwrap()
        };
        assert_eq!(answer_to("http://127.0.0.1:8000/logout")["method"], "Fetch.continueRequest");
        let made_up = answer_to("http://attacker.invalid/");
        assert_eq!(made_up["method"], "Fetch.fulfillRequest");
        assert_eq!(made_up["params"]["body"], base64::engine::general_purpose::STANDARD.encode("<p>elsewhere</p>"));
        for elsewhere in ["http://127.0.0.1:8001/", "http://localhost:8000/", "https://127.0.0.1:8000/", "data:,x"] {
            let refused = answer_to(elsewhere);
            assert_eq!(refused["method"], "Fetch.failRequest", "{elsewhere}");
            assert_eq!(refused["params"]["errorReason"], "BlockedByClient");
        }
        assert_eq!(lock(&shared.blocked).len(), 4);
        // A pause without its URL is refused by its id, and counted.
        let broken = Event {
            session: Some("S".into()),
            method: "Fetch.requestPaused".into(),
            params: serde_json::json!({"requestId": "I"}),
        };
        assert!(events::check(&broken).is_err());
        gate(&broken, &shared, "http://127.0.0.1:8000", &out);
        let bytes = sent.try_recv().unwrap();
        let refused: Value = serde_json::from_slice(&bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(
            (refused["method"].as_str(), refused["params"]["requestId"].as_str()),
            (Some("Fetch.failRequest"), Some("I"))
        );
    }
}
