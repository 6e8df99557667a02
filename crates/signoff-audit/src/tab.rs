//! One tab in a browser context of its own (its own cookies and storage, like a separate
//! browser profile), and what the audit does in it: open pages, fill and submit forms, click,
//! read cookies, storage and the network exchanges a step caused.

use crate::cdp::{CdpError, Chromium, Event, attach_children, gate_everything};
use crate::events::{Answered, Ended, NotCached, Sent, SentExtra};
use base64::Engine as _;
use chromiumoxide_cdp::cdp::browser_protocol::{browser, network, page, storage, target};
use chromiumoxide_cdp::cdp::js_protocol::runtime;
use chromiumoxide_types::Command;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// A cookie as the browser holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    pub path: String,
    /// Whether it outlives the browser session (has an expiry).
    pub persistent: bool,
    pub http_only: bool,
    pub secure: bool,
    pub same_site: Option<String>,
}

/// A request a page made and its answer (or answers, one per redirect hop), as the network
/// events told them.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    pub post_data: Option<String>,
    pub status: Option<u16>,
    /// Lower-case names; `set-cookie` once per cookie.
    pub response_headers: Vec<(String, String)>,
    pub resource: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response_headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    pub fn request_header(&self, name: &str) -> Option<&str> {
        self.request_headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Tab<'b> {
    browser: &'b Chromium,
    session: String,
    context: browser::BrowserContextId,
    target: target::TargetId,
}

/// How long a step waits for pages to load and the network to go quiet.
const LOAD: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(250);

impl<'b> Tab<'b> {
    /// A new tab in a new browser context.
    pub async fn open(browser: &'b Chromium) -> Result<Self, CdpError> {
        let context = browser.call(None, target::CreateBrowserContextParams::default()).await?;
        Self::in_context(browser, context.browser_context_id).await
    }

    /// A new tab in `context`.
    async fn in_context(browser: &'b Chromium, context: browser::BrowserContextId) -> Result<Self, CdpError> {
        let mut create = target::CreateTargetParams::new("about:blank");
        create.browser_context_id = Some(context.clone());
        let target = browser.call(None, create).await?.target_id;
        let mut attach = target::AttachToTargetParams::new(target.clone());
        attach.flatten = Some(true);
        let session = browser.call(None, attach).await?.session_id.into();
        let tab = Self { browser, session, context, target };
        tab.call(page::EnableParams::default()).await?;
        tab.call(network::EnableParams::default()).await?;
        tab.call(gate_everything()).await?;
        // Windows and workers the page opens are attached (and gated) before they run.
        tab.call(attach_children()).await?;
        Ok(tab)
    }

    pub async fn call<C: Command>(&self, command: C) -> Result<C::Response, CdpError> {
        self.browser.call(Some(&self.session), command).await
    }

    pub fn mark(&self) -> usize {
        self.browser.mark()
    }

    pub fn events_since(&self, mark: usize) -> Vec<Event> {
        self.browser.events_since(&self.session, mark)
    }

    /// Opens `url` and waits for it to load and the network to go quiet.
    pub async fn goto(&self, url: &url::Url) -> Result<(), CdpError> {
        let mark = self.mark();
        let answer = self.call(page::NavigateParams::new(url.as_str())).await?;
        // The app out of reach (an error status, `405` say, is an answer: the page shows it).
        let unreachable = |e: &&str| {
            ["CONNECTION", "NAME_NOT_RESOLVED", "ADDRESS", "TIMED_OUT", "SSL", "CERT", "UNSAFE_PORT"]
                .iter()
                .any(|k| e.contains(k))
        };
        if let Some(error) = answer.error_text.as_deref().filter(unreachable) {
            return Err(CdpError::Navigation { url: url.to_string(), error: error.to_owned() });
        }
        self.browser.wait_for::<page::EventLoadEventFired>(&self.session, mark, LOAD).await;
        self.quiet(mark).await;
        Ok(())
    }

    /// Waits until nothing has happened for a moment and no request is open, or, with one
    /// still open (an event stream, a long poll), nothing has happened for a second; at most
    /// `LOAD` in all.
    pub async fn quiet(&self, mark: usize) {
        let deadline = tokio::time::Instant::now() + LOAD;
        let (mut seen, mut still) = (usize::MAX, 0);
        loop {
            tokio::time::sleep(QUIET).await;
            let events = self.events_since(mark);
            let mut open = std::collections::HashSet::new();
            for e in &events {
                if let Some(sent) = e.read::<Sent>() {
                    if sent.resource.as_deref() != Some(network::ResourceType::EventSource.as_ref()) {
                        open.insert(sent.request_id);
                    }
                } else if let Some(ended) = e.read::<Ended>() {
                    open.remove(&ended.request_id);
                }
            }
            still = if events.len() == seen { still + 1 } else { 0 };
            if (still >= 1 && open.is_empty()) || still >= 4 || tokio::time::Instant::now() >= deadline {
                return;
            }
            seen = events.len();
        }
    }

    /// Runs `expression` in the page (promises awaited) and returns its value.
    pub async fn eval(&self, expression: &str) -> Result<Value, CdpError> {
        let mut evaluate = runtime::EvaluateParams::new(expression);
        evaluate.return_by_value = Some(true);
        evaluate.await_promise = Some(true);
        let r = self.call(evaluate).await?;
        if let Some(e) = r.exception_details {
            let text = e.exception.and_then(|x| x.description).unwrap_or(e.text);
            return Err(CdpError::Refused { method: runtime::EvaluateParams::IDENTIFIER.into(), message: text });
        }
        Ok(r.result.value.unwrap_or(Value::Null))
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub async fn url(&self) -> String {
        self.eval("location.href").await.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// Clicks the element `selector` names and waits for what follows (a navigation, requests).
    /// `false` when no element matches.
    pub async fn click(&self, selector: &str) -> Result<bool, CdpError> {
        let mark = self.mark();
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return false; \
                 setTimeout(() => e.click(), 0); return true; }})()",
                js_string(selector)
            ))
            .await?;
        if found != Value::Bool(true) {
            return Ok(false);
        }
        self.settle(mark).await;
        Ok(true)
    }

    /// After an action: waits for a navigation it started to load (if one starts), then quiet.
    pub async fn settle(&self, mark: usize) {
        let started = self.browser.wait_for::<page::EventFrameStartedLoading>(&self.session, mark, QUIET * 2).await;
        if started.is_some() {
            self.browser.wait_for::<page::EventLoadEventFired>(&self.session, mark, LOAD).await;
        }
        self.quiet(mark).await;
    }

    /// Fills the sign-in form's inputs by name and submits it (with `submit`, or the form's
    /// own submit button). Returns the names of inputs that were not found.
    pub async fn sign_in(
        &self,
        fields: &BTreeMap<String, String>,
        submit: Option<&str>,
    ) -> Result<Vec<String>, CdpError> {
        let fields_json = serde_json::to_string(fields).unwrap_or_default();
        let submit = submit.map_or("null".to_owned(), js_string);
        let mark = self.mark();
        let missing = self
            .eval(&format!(
                r#"(() => {{
  const fields = {fields_json}; const missing = []; let form = null;
  for (const [name, value] of Object.entries(fields)) {{
    const el = document.querySelector(`[name="${{CSS.escape(name)}}"]`);
    if (!el) {{ missing.push(name); continue; }}
    form = form || el.form;
    if (el.type === 'checkbox' || el.type === 'radio') {{
      el.checked = ['1', 'on', 'true', 'yes'].includes(String(value).toLowerCase());
    }} else {{
      el.value = value;
      el.dispatchEvent(new Event('input', {{ bubbles: true }}));
      el.dispatchEvent(new Event('change', {{ bubbles: true }}));
    }}
  }}
  const sel = {submit};
  const button = sel ? document.querySelector(sel)
    : form && (form.querySelector('button[type=submit], input[type=submit], button:not([type])'));
  if (button) setTimeout(() => button.click(), 0);
  else if (form) setTimeout(() => form.requestSubmit(), 0);
  else missing.push(sel || 'a form to submit');
  return missing;
}})()"#
            ))
            .await?;
        self.settle(mark).await;
        Ok(missing
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// The cookies this browser context holds for `url`'s host, whatever their path.
    pub async fn cookies(&self, url: &url::Url) -> Result<Vec<Cookie>, CdpError> {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let held = storage::GetCookiesParams { browser_context_id: Some(self.context.clone()) };
        let held = self.browser.call(None, held).await?.cookies;
        let mut cookies: Vec<Cookie> = held
            .into_iter()
            .map(|c| Cookie {
                persistent: !c.session,
                http_only: c.http_only,
                secure: c.secure,
                same_site: c.same_site.map(|s| s.as_ref().to_owned()),
                name: c.name,
                value: c.value,
                domain: c.domain,
                path: c.path,
            })
            .filter(|c| {
                let d = c.domain.trim_start_matches('.').to_ascii_lowercase();
                d == host || (c.domain.starts_with('.') && host.ends_with(&format!(".{d}")))
            })
            .collect();
        // As a browser sends them: the longest path first.
        cookies.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        Ok(cookies)
    }

    /// What the page stored on the origin: localStorage and sessionStorage keys, IndexedDB
    /// databases, Cache Storage caches (each as `kind:name`).
    pub async fn storage(&self) -> Vec<String> {
        let v = self
            .eval(
                r#"(async () => {
  const out = [];
  try { for (const k of Object.keys(localStorage)) out.push('localStorage:' + k); } catch (e) {}
  try { for (const k of Object.keys(sessionStorage)) out.push('sessionStorage:' + k); } catch (e) {}
  try { for (const d of await indexedDB.databases()) out.push('IndexedDB:' + d.name); } catch (e) {}
  try { for (const c of await caches.keys()) out.push('CacheStorage:' + c); } catch (e) {}
  return out;
})()"#,
            )
            .await
            .unwrap_or(Value::Null);
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    }

    /// The requests pages made since `mark`, each with its answer.
    pub fn exchanges_since(&self, mark: usize) -> Vec<Seen> {
        let mut seen: Vec<Seen> = Vec::new();
        // A request id names a chain of redirects: its hops in order.
        let mut hops: HashMap<String, Vec<usize>> = HashMap::new();
        let mut answered: HashMap<String, usize> = HashMap::new();
        let mut extra_sent: HashMap<String, usize> = HashMap::new();
        for e in self.events_since(mark) {
            if let Some(sent) = e.read::<Sent>() {
                let r = sent.request;
                // Only what went over HTTP (not `data:` images of an error page).
                if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
                    continue;
                }
                hops.entry(sent.request_id.into()).or_default().push(seen.len());
                seen.push(Seen {
                    request_headers: pairs(r.headers.inner()),
                    post_data: body(r.post_data_entries.as_deref()),
                    method: r.method,
                    url: r.url,
                    status: None,
                    response_headers: Vec::new(),
                    resource: sent.resource.unwrap_or_default(),
                });
            } else if let Some(extra) = e.read::<SentExtra>() {
                let id: String = extra.request_id.into();
                let n = extra_sent.entry(id.clone()).or_default();
                if let Some(&i) = hops.get(&id).and_then(|h| h.get(*n)) {
                    // The headers as sent, cookies included.
                    seen[i].request_headers = pairs(extra.headers.inner());
                }
                *n += 1;
            } else if let Some(extra) = e.read::<Answered>() {
                let id: String = extra.request_id.into();
                let n = answered.entry(id.clone()).or_default();
                if let Some(&i) = hops.get(&id).and_then(|h| h.get(*n)) {
                    seen[i].status = u16::try_from(extra.status_code).ok();
                    seen[i].response_headers = pairs(extra.headers.inner())
                        .into_iter()
                        .flat_map(|(k, v)| {
                            let k = k.to_ascii_lowercase();
                            v.split('\n').map(|v| (k.clone(), v.to_owned())).collect::<Vec<_>>()
                        })
                        .collect();
                }
                *n += 1;
            }
        }
        seen
    }

    /// Back in this tab's history to the last page before this one at `url`, as the Back
    /// button would reach it (one step back when the app took that page out of the history);
    /// waits for what it shows. `false` when there is no page before this one.
    pub async fn back_to(&self, url: &str) -> Result<bool, CdpError> {
        let history = self.call(page::GetNavigationHistoryParams {}).await?;
        let current = usize::try_from(history.current_index).unwrap_or(0);
        let entries = history.entries;
        // Else one step back: the app may have taken the page out of the history (`replace`).
        let Some(entry) = entries
            .iter()
            .take(current)
            .rev()
            .find(|e| e.url == url)
            .or_else(|| current.checked_sub(1).and_then(|i| entries.get(i)))
        else {
            return Ok(false);
        };
        let mark = self.mark();
        self.call(page::NavigateToHistoryEntryParams::new(entry.id)).await?;
        self.settle(mark).await;
        Ok(true)
    }

    /// Another tab in this tab's browser context (same cookies and storage).
    pub async fn sibling(&self) -> Result<Tab<'b>, CdpError> {
        Self::in_context(self.browser, self.context.clone()).await
    }

    /// Closes this tab alone (its browser context stays).
    pub async fn close_target(self) {
        let _ = self.browser.call(None, target::CloseTargetParams::new(self.target)).await;
    }

    /// Whether the last history navigation was served from the back/forward cache, and if not,
    /// the browser's reasons.
    pub fn bfcache_since(&self, mark: usize) -> Result<(), Vec<String>> {
        let Some(e) = self.events_since(mark).into_iter().find(Event::is::<page::EventBackForwardCacheNotUsed>) else {
            return Ok(());
        };
        // Not used, whatever the reasons say (one that does not read was counted when it came).
        Err(e
            .read::<NotCached>()
            .map(|n| n.not_restored_explanations.into_iter().map(|r| r.reason).collect())
            .unwrap_or_default())
    }

    /// Closes the tab's browser context (its cookies and storage go with it).
    pub async fn close(self) {
        let _ = self.browser.call(None, target::DisposeBrowserContextParams::new(self.context)).await;
    }
}

/// A request's body as sent (its parts, each base64 in the protocol), when it has one.
fn body(parts: Option<&[network::PostDataEntry]>) -> Option<String> {
    let mut bytes: Option<Vec<u8>> = None;
    for part in parts?.iter().filter_map(|p| p.bytes.as_ref()) {
        let encoded: &str = part.as_ref();
        bytes.get_or_insert_default().extend(base64::engine::general_purpose::STANDARD.decode(encoded).ok()?);
    }
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn pairs(headers: &Value) -> Vec<(String, String)> {
    headers
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

/// `s` as a JavaScript string literal.
pub fn js_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize as _;

    #[test]
    fn a_body_sent_in_parts_is_read_whole() {
        let part = |s: &str| network::PostDataEntry {
            bytes: Some(base64::engine::general_purpose::STANDARD.encode(s).into()),
        };
        assert_eq!(body(Some(&[part("refresh=abc"), part("&x=1")])).as_deref(), Some("refresh=abc&x=1"));
        assert_eq!(body(None), None);
    }

    #[test]
    fn events_read_for_the_fields_used_whatever_else_chromium_sends() {
        // As Chromium 156 sends it: no `privateNetworkRequestPolicy` in the security state,
        // which the crate's whole type asks for.
        let sent = Event {
            session: Some("S".into()),
            method: "Network.requestWillBeSentExtraInfo".into(),
            params: serde_json::json!({"requestId": "R1", "associatedCookies": [], "headers": {"Cookie": "a=b"},
                "connectTiming": {"requestTime": 1.0}, "clientSecurityState": {"initiatorIsSecureContext": true,
                "initiatorIPAddressSpace": "Loopback"}}),
        };
        assert!(network::EventRequestWillBeSentExtraInfo::deserialize(&sent.params).is_err());
        assert!(crate::events::check(&sent).is_ok());
        let extra = sent.read::<SentExtra>().unwrap();
        assert_eq!(extra.request_id.as_ref(), "R1");
        assert_eq!(pairs(extra.headers.inner()), vec![("Cookie".to_owned(), "a=b".to_owned())]);
        // Not another event's.
        assert!(sent.read::<Answered>().is_none());

        // A resource type and a cache reason no protocol revision has yet are read as they come.
        let request = Event {
            session: Some("S".into()),
            method: "Network.requestWillBeSent".into(),
            params: serde_json::json!({"requestId": "R2", "type": "SomethingNew", "initiator": {"type": "new"},
                "request": {"url": "http://a.test/x", "method": "POST", "headers": {},
                "postDataEntries": [{"bytes": "eD0x"}]}}),
        };
        assert!(crate::events::check(&request).is_ok());
        let read = request.read::<Sent>().unwrap();
        assert_eq!((read.resource.as_deref(), read.request.method.as_str()), (Some("SomethingNew"), "POST"));
        assert_eq!(body(read.request.post_data_entries.as_deref()).as_deref(), Some("x=1"));
        let not_cached = Event {
            session: None,
            method: "Page.backForwardCacheNotUsed".into(),
            params: serde_json::json!({"loaderId": "L", "frameId": "F",
                "notRestoredExplanations": [{"type": "Circumstantial", "reason": "ReasonFromTheFuture"}]}),
        };
        assert!(crate::events::check(&not_cached).is_ok());
        let reasons = not_cached.read::<NotCached>().unwrap();
        assert_eq!(reasons.not_restored_explanations[0].reason, "ReasonFromTheFuture");

        // One without a field the audit uses does not read, and says so.
        let broken = Event { session: None, method: "Network.loadingFinished".into(), params: serde_json::json!({}) };
        assert!(crate::events::check(&broken).is_err());
        assert!(broken.read::<Ended>().is_none());
    }
}
