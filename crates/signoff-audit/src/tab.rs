//! One tab in a browser context of its own (its own cookies and storage, like a separate
//! browser profile), and what the audit does in it: open pages, fill and submit forms, click,
//! read cookies, storage and the network exchanges a step caused.

use crate::cdp::{CdpError, Chromium, Event};
use serde_json::{Value, json};
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
    context: String,
    target: String,
}

/// How long a step waits for pages to load and the network to go quiet.
const LOAD: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(250);

impl<'b> Tab<'b> {
    /// A new tab in a new browser context.
    pub async fn open(browser: &'b Chromium) -> Result<Self, CdpError> {
        let context = browser.call(None, "Target.createBrowserContext", json!({})).await?;
        let context = context["browserContextId"].as_str().unwrap_or_default().to_owned();
        let target = browser
            .call(None, "Target.createTarget", json!({"url": "about:blank", "browserContextId": context}))
            .await?;
        let target = target["targetId"].as_str().unwrap_or_default().to_owned();
        let session = browser.call(None, "Target.attachToTarget", json!({"targetId": target, "flatten": true})).await?;
        let session = session["sessionId"].as_str().unwrap_or_default().to_owned();
        let tab = Self { browser, session, context, target };
        tab.enable().await?;
        Ok(tab)
    }

    /// What the audit watches and gates in a tab.
    async fn enable(&self) -> Result<(), CdpError> {
        let tab = self;
        tab.call("Page.enable", json!({})).await?;
        tab.call("Network.enable", json!({})).await?;
        tab.call("Fetch.enable", json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]})).await?;
        // Windows and workers the page opens are attached (and gated) before they run.
        tab.call("Target.setAutoAttach", json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}))
            .await?;
        Ok(())
    }

    pub async fn call(&self, method: &str, params: Value) -> Result<Value, CdpError> {
        self.browser.call(Some(&self.session), method, params).await
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
        let answer = self.call("Page.navigate", json!({"url": url.as_str()})).await?;
        // The app out of reach (an error status, `405` say, is an answer: the page shows it).
        let unreachable = |e: &&str| {
            ["CONNECTION", "NAME_NOT_RESOLVED", "ADDRESS", "TIMED_OUT", "SSL", "CERT", "UNSAFE_PORT"]
                .iter()
                .any(|k| e.contains(k))
        };
        if let Some(error) = answer["errorText"].as_str().filter(unreachable) {
            return Err(CdpError::Navigation { url: url.to_string(), error: error.to_owned() });
        }
        self.browser.wait_for(&self.session, "Page.loadEventFired", mark, LOAD).await;
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
                let id = e.params["requestId"].as_str().unwrap_or_default();
                match e.method.as_str() {
                    "Network.requestWillBeSent" if e.params["type"].as_str() != Some("EventSource") => {
                        open.insert(id);
                    }
                    "Network.loadingFinished" | "Network.loadingFailed" => {
                        open.remove(id);
                    }
                    _ => {}
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
        let r = self
            .call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true, "awaitPromise": true}))
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            let text = e.pointer("/exception/description").or_else(|| e.get("text")).and_then(Value::as_str);
            return Err(CdpError::Refused { method: "Runtime.evaluate".into(), message: text.unwrap_or("").into() });
        }
        Ok(r.pointer("/result/value").cloned().unwrap_or(Value::Null))
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
        let started = self.browser.wait_for(&self.session, "Page.frameStartedLoading", mark, QUIET * 2).await;
        if started.is_some() {
            self.browser.wait_for(&self.session, "Page.loadEventFired", mark, LOAD).await;
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
        let r = self.browser.call(None, "Storage.getCookies", json!({"browserContextId": self.context})).await?;
        let mut cookies: Vec<Cookie> = r["cookies"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| Cookie {
                        name: c["name"].as_str().unwrap_or_default().to_owned(),
                        value: c["value"].as_str().unwrap_or_default().to_owned(),
                        domain: c["domain"].as_str().unwrap_or_default().to_owned(),
                        path: c["path"].as_str().unwrap_or("/").to_owned(),
                        persistent: !c["session"].as_bool().unwrap_or(true),
                        http_only: c["httpOnly"].as_bool().unwrap_or(false),
                        secure: c["secure"].as_bool().unwrap_or(false),
                        same_site: c["sameSite"].as_str().map(str::to_owned),
                    })
                    .filter(|c| {
                        let d = c.domain.trim_start_matches('.').to_ascii_lowercase();
                        d == host || (c.domain.starts_with('.') && host.ends_with(&format!(".{d}")))
                    })
                    .collect()
            })
            .unwrap_or_default();
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
            let id = e.params["requestId"].as_str().unwrap_or_default().to_owned();
            match e.method.as_str() {
                "Network.requestWillBeSent" => {
                    let r = &e.params["request"];
                    // Only what went over HTTP (not `data:` images of an error page).
                    let url = r["url"].as_str().unwrap_or_default();
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        continue;
                    }
                    hops.entry(id).or_default().push(seen.len());
                    seen.push(Seen {
                        method: r["method"].as_str().unwrap_or("GET").to_owned(),
                        url: r["url"].as_str().unwrap_or_default().to_owned(),
                        request_headers: pairs(&r["headers"]),
                        post_data: r["postData"].as_str().map(str::to_owned),
                        status: None,
                        response_headers: Vec::new(),
                        resource: e.params["type"].as_str().unwrap_or_default().to_owned(),
                    });
                }
                "Network.requestWillBeSentExtraInfo" => {
                    let n = extra_sent.entry(id.clone()).or_default();
                    if let Some(&i) = hops.get(&id).and_then(|h| h.get(*n)) {
                        // The headers as sent, cookies included.
                        seen[i].request_headers = pairs(&e.params["headers"]);
                    }
                    *n += 1;
                }
                "Network.responseReceivedExtraInfo" => {
                    let n = answered.entry(id.clone()).or_default();
                    if let Some(&i) = hops.get(&id).and_then(|h| h.get(*n)) {
                        seen[i].status = e.params["statusCode"].as_u64().map(|s| s as u16);
                        seen[i].response_headers = pairs(&e.params["headers"])
                            .into_iter()
                            .flat_map(|(k, v)| {
                                let k = k.to_ascii_lowercase();
                                v.split('\n').map(|v| (k.clone(), v.to_owned())).collect::<Vec<_>>()
                            })
                            .collect();
                    }
                    *n += 1;
                }
                _ => {}
            }
        }
        seen
    }

    /// Back in this tab's history to the last page before this one at `url`, as the Back
    /// button would reach it (one step back when the app took that page out of the history);
    /// waits for what it shows. `false` when there is no page before this one.
    pub async fn back_to(&self, url: &str) -> Result<bool, CdpError> {
        let history = self.call("Page.getNavigationHistory", json!({})).await?;
        let current = history["currentIndex"].as_u64().unwrap_or(0) as usize;
        let entries = history["entries"].as_array().cloned().unwrap_or_default();
        // Else one step back: the app may have taken the page out of the history (`replace`).
        let Some(entry) = entries
            .iter()
            .take(current)
            .rev()
            .find(|e| e["url"].as_str() == Some(url))
            .or_else(|| current.checked_sub(1).and_then(|i| entries.get(i)))
        else {
            return Ok(false);
        };
        let mark = self.mark();
        self.call("Page.navigateToHistoryEntry", json!({"entryId": entry["id"]})).await?;
        self.settle(mark).await;
        Ok(true)
    }

    /// Another tab in this tab's browser context (same cookies and storage).
    pub async fn sibling(&self) -> Result<Tab<'b>, CdpError> {
        let target = self
            .browser
            .call(None, "Target.createTarget", json!({"url": "about:blank", "browserContextId": self.context}))
            .await?;
        let target = target["targetId"].as_str().unwrap_or_default().to_owned();
        let session =
            self.browser.call(None, "Target.attachToTarget", json!({"targetId": target, "flatten": true})).await?;
        let tab = Tab {
            browser: self.browser,
            session: session["sessionId"].as_str().unwrap_or_default().to_owned(),
            context: self.context.clone(),
            target,
        };
        tab.enable().await?;
        Ok(tab)
    }

    /// Closes this tab alone (its browser context stays).
    pub async fn close_target(self) {
        let _ = self.browser.call(None, "Target.closeTarget", json!({"targetId": self.target})).await;
    }

    /// Whether the last history navigation was served from the back/forward cache, and if not,
    /// the browser's reasons.
    pub fn bfcache_since(&self, mark: usize) -> Result<(), Vec<String>> {
        match self.events_since(mark).into_iter().find(|e| e.method == "Page.backForwardCacheNotUsed") {
            None => Ok(()),
            Some(e) => Err(e.params["notRestoredExplanations"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r["reason"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default()),
        }
    }

    /// Closes the tab's browser context (its cookies and storage go with it).
    pub async fn close(self) {
        let _ =
            self.browser.call(None, "Target.disposeBrowserContext", json!({"browserContextId": self.context})).await;
    }
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
