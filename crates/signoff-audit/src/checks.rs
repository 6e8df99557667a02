//! The checks. One browser, a fresh browser context (its own cookies) for each scenario that
//! needs a user signed in anew; verdicts on the server's state come from replaying what the
//! browser held from a fresh client ([`Replay`]), so no cache or cookie of the browser's can
//! make a session look ended that is not.

use crate::AuditError;
use crate::cdp::{ATTACKER, Chromium};
use crate::config::AuditConfig;
use crate::replay::{Exchange, Header, Replay, shorten, shorten_url, shown_header};
use crate::report::{Check, Report, Severity, Status};
use crate::tab::{Cookie, Seen, Tab, js_string};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where a logout control sends the user, as the page describes it.
#[derive(Debug, Clone)]
struct Control {
    /// `form`, `link` or `script` (a button whose script makes the request).
    kind: String,
    action: Option<url::Url>,
    method: String,
    /// The form's fields as the page filled them (hidden tokens included).
    fields: Vec<(String, String)>,
}

/// What the first sign-in learnt about the app's cookies, for the checks that sign in anew.
struct Known {
    /// The cookies the protected page needs, and the remember-me cookie.
    auth: Vec<String>,
    remember: Option<String>,
    /// Whether a plain client can tell a signed-in protected page.
    replayable: bool,
}

/// A refresh call replayed.
struct Refreshed {
    /// 2xx with a token in the JSON answer.
    renewed: bool,
    status: u16,
    hops: Vec<Exchange>,
    /// The body for the next replay (with a rotated refresh token, if one came back).
    next_body: Option<String>,
    /// The cookies for the next replay (a rotated refresh cookie in place of the spent one).
    next_jar: BTreeMap<String, String>,
}

/// An off-site address a logout might be asked to redirect to (`.invalid` never resolves;
/// the browser's request to it is refused and remembered).
const OFF_SITE: [&str; 2] = ["https://redirect.invalid/", "//redirect.invalid/"];
const OFF_SITE_HOST: &str = "redirect.invalid";
/// At most this many bearer calls and refresh calls are replayed.
const MAX_REPLAYS: usize = 10;
/// Parameters apps take a post-logout redirect in.
const REDIRECT_PARAMS: [&str; 7] =
    ["next", "redirect", "redirect_uri", "redirect_to", "return_to", "returnTo", "post_logout_redirect_uri"];

/// The cookies a client sends to `url`: those whose path matches it (of two with one name, the
/// longer path's, as browsers send it first; `cookies` come longest path first).
fn jar(cookies: &[Cookie], url: &url::Url) -> BTreeMap<String, String> {
    let path = url.path();
    let mut jar = BTreeMap::new();
    for c in cookies {
        let p = c.path.trim_end_matches('/');
        let matches = p.is_empty() || path == p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'));
        if matches {
            jar.entry(c.name.clone()).or_insert_with(|| c.value.clone());
        }
    }
    jar
}

fn check(id: &'static str, title: &'static str, severity: Severity) -> Check {
    Check {
        id,
        title,
        status: Status::Skip,
        severity,
        detail: String::new(),
        browser_note: None,
        evidence: Vec::new(),
        fix: None,
    }
}

fn seen_as_evidence(s: &Seen) -> Exchange {
    let interesting = |k: &str| matches!(k, "location" | "set-cookie" | "clear-site-data" | "cache-control");
    Exchange {
        method: s.method.clone(),
        url: shorten_url(&s.url),
        sent: Vec::new(),
        status: s.status.unwrap_or(0),
        received: s
            .response_headers
            .iter()
            .filter(|(k, _)| interesting(k))
            .map(|(k, v)| {
                let v = if k == "set-cookie" {
                    v.split_once('=').map_or(v.clone(), |(n, rest)| {
                        let (val, attrs) = rest.split_once(';').unwrap_or((rest, ""));
                        format!("{n}={};{attrs}", if val.is_empty() { String::new() } else { shorten(val) })
                    })
                } else {
                    shown_header(k, v)
                };
                Header::new(k.clone(), v)
            })
            .collect(),
    }
}

/// The audit itself.
pub async fn audit(config: &AuditConfig) -> Result<Report, AuditError> {
    let started_at = time_now();
    let base = config.base();
    let browser = Chromium::start(&config.browser, &base).await?;
    let result = Audit { config, browser: &browser, replay: Replay::new(base.clone())? }.run().await;
    // No verdicts that may rest on events the browser sent in a shape this build cannot read.
    let unreadable = browser.unreadable();
    browser.close().await;
    // (First: once an event has not read, whatever else went wrong follows from it.)
    unreadable?;
    let checks = result?;
    Ok(Report::new(base.origin().ascii_serialization(), started_at, checks))
}

struct Audit<'a> {
    config: &'a AuditConfig,
    browser: &'a Chromium,
    replay: Replay,
}

/// Why `post_only` and `csrf` skip when the logout control sent nothing to the app.
const NO_LOGOUT_URL: &str = "the logout control made no request to the app, so there is no logout URL to try";

impl Audit<'_> {
    /// Whether `cookies`, sent from a fresh client, reach the protected page (redirects on the
    /// origin followed), with the exchanges that show it.
    async fn signed_in(&self, cookies: &BTreeMap<String, String>) -> Result<(bool, Vec<Exchange>), AuditError> {
        let url = self.config.at(&self.config.protected.url);
        let page = self.replay.fetch("GET", &url, cookies, &[], None).await?;
        Ok((page.status < 400 && page.body.contains(&self.config.protected.expect), page.hops))
    }

    /// Opens a new browser context and signs in through the app's form; fails when the
    /// protected page does not then show the expected text.
    async fn sign_in<'b>(&'b self) -> Result<(Tab<'b>, Vec<Cookie>), AuditError> {
        let tab = Tab::open(self.browser).await?;
        let login = self.config.at(&self.config.login.url);
        tab.goto(&login).await?;
        let before = tab.cookies(&self.config.base()).await?;
        let missing = tab.sign_in(&self.config.login.fields, self.config.login.submit.as_deref()).await?;
        if !missing.is_empty() {
            return Err(AuditError::App(format!(
                "the sign-in page {login} has no {} (login.fields and login.submit name them)",
                missing.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")
            )));
        }
        let protected = self.config.at(&self.config.protected.url);
        tab.goto(&protected).await?;
        let text = tab.text().await;
        if !text.contains(&self.config.protected.expect) {
            let shown: String = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(160).collect();
            return Err(AuditError::App(format!(
                "after signing in at {login}, {protected} does not show {:?} (did the sign-in fail? it shows: {shown:?})",
                self.config.protected.expect
            )));
        }
        Ok((tab, before))
    }

    /// The logout control on `page`: a form (its action, method and fields), a link, or a
    /// button driven by script.
    async fn control(&self, tab: &Tab<'_>, page: &str, selector: &str) -> Result<Control, AuditError> {
        let url = self.config.at(page);
        tab.goto(&url).await?;
        let v = tab
            .eval(&format!(
                r#"(() => {{
  const e = document.querySelector({sel}); if (!e) return null;
  const f = e.form || e.closest('form');
  if (f) {{
    const action = e.hasAttribute && e.hasAttribute('formaction') ? e.formAction : f.action;
    const method = ((e.hasAttribute && e.hasAttribute('formmethod') ? e.getAttribute('formmethod') : f.getAttribute('method')) || 'get').toLowerCase();
    return {{ kind: 'form', action, method, fields: [...new FormData(f)].filter(([k, v]) => typeof v === 'string') }};
  }}
  const a = e.closest('a[href]');
  if (a) return {{ kind: 'link', action: a.href, method: 'get', fields: [] }};
  return {{ kind: 'script', action: null, method: null, fields: [] }};
}})()"#,
                sel = js_string(selector)
            ))
            .await?;
        if v.is_null() {
            return Err(AuditError::App(format!("{url} has no element matching {selector:?} (logout.selector)")));
        }
        Ok(Control {
            kind: v["kind"].as_str().unwrap_or("script").to_owned(),
            action: v["action"].as_str().and_then(|a| url::Url::parse(a).ok()),
            method: v["method"].as_str().unwrap_or("").to_uppercase(),
            fields: v["fields"]
                .as_array()
                .map(|a| {
                    a.iter().filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned()))).collect()
                })
                .unwrap_or_default(),
        })
    }

    async fn run(&self) -> Result<Vec<Check>, AuditError> {
        let config = self.config;
        let base = config.base();
        let protected = config.at(&config.protected.url);

        // Signed in, in the first browser.
        let (tab, before_signin) = self.sign_in().await?;
        let signed_mark = 0;
        let after_signin = tab.cookies(&base).await?;
        let storage_signed_in = tab.storage().await;
        let (replayable, baseline) = self.signed_in(&jar(&after_signin, &protected)).await?;

        let mut fixation = check("fixation", "The session cookie changes at sign-in", Severity::High);
        let kept: Vec<&Cookie> = before_signin
            .iter()
            .filter(|b| after_signin.iter().any(|a| a.name == b.name && a.value == b.value))
            .collect();
        if kept.is_empty() {
            fixation.status = Status::Pass;
            fixation.detail = if before_signin.is_empty() {
                "no cookie was set before sign-in; the sign-in set new ones".into()
            } else {
                format!(
                    "every cookie set before sign-in ({}) has a new value after it",
                    before_signin.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            };
        } else if !replayable {
            fixation.detail = "the protected page does not show the expected text to a plain HTTP client holding \
                               the browser's cookies (is it rendered by script?), so a fixed cookie cannot be tried"
                .into();
        } else {
            // What an attacker who planted the pre-sign-in cookies holds.
            let planted = jar(&before_signin, &protected);
            let (works, hops) = self.signed_in(&planted).await?;
            fixation.evidence = hops;
            if works {
                fixation.status = Status::Fail;
                fixation.detail = format!(
                    "cookies set before sign-in keep their value ({}) and, replayed alone, reach {protected} signed in",
                    kept.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                );
                fixation.fix = Some("Issue a new session id at sign-in (and drop the old one server-side).");
            } else {
                fixation.status = Status::Pass;
                fixation.detail = format!(
                    "{} kept their value through sign-in, but the cookies held before sign-in do not reach {protected}",
                    kept.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
        }

        // The auth cookies: of those the sign-in set or changed, the ones the protected page
        // needs (replayed without one, the page no longer shows the user); all of them when
        // the page cannot be judged from a plain client.
        let changed: Vec<String> = after_signin
            .iter()
            .filter(|a| !before_signin.iter().any(|b| b.name == a.name && b.value == a.value))
            .map(|c| c.name.clone())
            .collect();
        let changed = if changed.is_empty() { after_signin.iter().map(|c| c.name.clone()).collect() } else { changed };
        let remember_name = config.login.remember_cookie.clone().or_else(|| {
            after_signin
                .iter()
                .find(|c| changed.contains(&c.name) && c.name.to_ascii_lowercase().contains("remember"))
                .map(|c| c.name.clone())
        });
        let mut auth = Vec::new();
        if replayable {
            // Judged without the remember-me cookie, which would sign the replay in again.
            let mut base_jar = jar(&after_signin, &protected);
            if let Some(name) = &remember_name {
                base_jar.remove(name);
            }
            for name in changed.iter().filter(|n| Some(*n) != remember_name.as_ref()) {
                let mut without = base_jar.clone();
                without.remove(name);
                if !self.signed_in(&without).await?.0 {
                    auth.push(name.clone());
                }
            }
        }
        if auth.is_empty() {
            auth = changed.clone();
        }
        if let Some(name) = &remember_name
            && !auth.contains(name)
        {
            auth.push(name.clone());
        }

        // What went over the wire while signed in: bearer tokens and refresh calls.
        let signed_in_traffic = tab.exchanges_since(signed_mark);
        let on_origin = |s: &&Seen| url::Url::parse(&s.url).is_ok_and(|u| u.origin() == base.origin());
        let bearer_calls: Vec<Seen> = signed_in_traffic
            .iter()
            .filter(on_origin)
            .filter(|s| {
                s.method == "GET"
                    && s.request_header("authorization")
                        .is_some_and(|a| a.len() > 7 && a.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("bearer ")))
            })
            .fold(Vec::<Seen>::new(), |mut calls, s| {
                // Each token at each address once, and a bounded number in all.
                let same =
                    |c: &Seen| c.url == s.url && c.request_header("authorization") == s.request_header("authorization");
                if calls.len() < MAX_REPLAYS && !calls.iter().any(same) {
                    calls.push(s.clone());
                }
                calls
            });
        let refresh_calls: Vec<Seen> = signed_in_traffic
            .iter()
            .filter(on_origin)
            .filter(|s| {
                s.method == "POST"
                    && url::Url::parse(&s.url).is_ok_and(|u| u.path().to_ascii_lowercase().contains("refresh"))
            })
            .take(MAX_REPLAYS)
            .cloned()
            .collect();
        let mut bearer_before = Vec::new();
        for call in &bearer_calls {
            if let Ok(url) = url::Url::parse(&call.url) {
                let auth =
                    vec![("Authorization".to_owned(), call.request_header("authorization").unwrap_or("").to_owned())];
                let page = self.replay.fetch("GET", &url, &BTreeMap::new(), &auth, None).await?;
                bearer_before.push(page.status);
            }
        }

        // The logout, through the app's own control; just before it, proof that what is
        // replayed after it worked (else a refusal afterwards proves nothing).
        let control = self.control(&tab, &config.logout.page, &config.logout.selector).await?;
        let logout_page_shows = tab.text().await.contains(&config.protected.expect);
        let logout_page_url = tab.url().await;
        let pre_logout = tab.cookies(&base).await?;
        let held = jar(&pre_logout, &protected);
        // The session's own cookies: the remember-me cookie is tried alone below.
        let mut session_cookies = held.clone();
        if let Some(name) = &remember_name
            && session_cookies.len() > 1
        {
            session_cookies.remove(name);
        }
        let (session_works, _) = self.signed_in(&session_cookies).await?;
        // (The remember-me cookie is not replayed here: a resume rotates its series, which may
        // end this session; its proof comes from a sign-in of its own, below.)
        let remembered = remember_name.as_ref().and_then(|n| pre_logout.iter().find(|c| &c.name == n)).cloned();
        // The refresh call as the page made it (its cookies, the remember-me cookie aside, which
        // would resume a session of its own), once now; after logout, again with whatever it
        // rotated (a new refresh token in its answer or a new cookie).
        let refresh_before = match refresh_calls.last() {
            Some(call) => {
                let url = url::Url::parse(&call.url).unwrap_or_else(|_| protected.clone());
                let mut cookies = jar(&pre_logout, &url);
                if let Some(name) = &remember_name {
                    cookies.remove(name);
                }
                Some(self.refresh(call, &cookies, call.post_data.clone()).await?)
            }
            None => None,
        };
        let mark = tab.mark();
        if !tab.click(&config.logout.selector).await? {
            return Err(AuditError::App(format!(
                "{} has no element matching {:?} (logout.selector)",
                config.at(&config.logout.page),
                config.logout.selector
            )));
        }
        let logout_traffic: Vec<Seen> = tab.exchanges_since(mark).into_iter().filter(|s| on_origin(&s)).collect();
        let post_logout = tab.cookies(&base).await?;
        // Storage is read on the origin: a tab that left it reads it in a second tab of the same
        // browser context, so this tab's history stays as the logout left it.
        let landed = tab.url().await;
        let storage_after = if landed.starts_with(&base.origin().ascii_serialization()) {
            tab.storage().await
        } else {
            let other = tab.sibling().await?;
            other.goto(&base).await?;
            let stored = other.storage().await;
            other.close_target().await;
            stored
        };
        let logout_evidence: Vec<Exchange> = logout_traffic.iter().map(seen_as_evidence).collect();
        // Where the logout request went and how: what the click sent first (a link's
        // `data-method`, a script's fetch), else what the page says.
        // Of the requests up to the first page the click loaded (later ones are that page's own):
        // the one to the control's address, else the first that is not a GET, else the first.
        let first_page =
            logout_traffic.iter().position(|s| s.resource == "Document").map_or(logout_traffic.len(), |i| i + 1);
        let clicked = &logout_traffic[..first_page];
        let same_address = |s: &&Seen| {
            control.action.as_ref().is_some_and(|a| {
                url::Url::parse(&s.url).is_ok_and(|u| u.origin() == a.origin() && u.path() == a.path())
            })
        };
        let sent = clicked
            .iter()
            .find(same_address)
            .or_else(|| clicked.iter().find(|s| s.method != "GET"))
            .or(clicked.first());
        let endpoint = sent.and_then(|s| url::Url::parse(&s.url).ok()).or_else(|| control.action.clone());
        let logout_method = sent.map_or(control.method.clone(), |s| s.method.clone());

        let mut checks = Vec::new();

        // server_invalidation
        let mut server =
            check("server_invalidation", "The server ends the session: old cookies no longer work", Severity::High);
        if !replayable {
            server.detail = format!(
                "{protected} does not show {:?} to a plain HTTP client holding the signed-in browser's cookies \
                 (is it rendered by script?), so replayed cookies cannot be judged",
                config.protected.expect
            );
            server.evidence = baseline;
        } else if !session_works {
            server.detail = format!(
                "the session's cookies ({}) did not reach {protected} from a fresh client even just before logout, \
                 so a refusal after it would prove nothing",
                session_cookies.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        } else {
            let (works, hops) = self.signed_in(&session_cookies).await?;
            server.evidence = hops;
            if works {
                server.status = Status::Fail;
                server.detail = format!(
                    "the cookies held before logout ({}), replayed from a fresh client after it, still reach {protected} signed in",
                    session_cookies.keys().cloned().collect::<Vec<_>>().join(", ")
                );
                server.fix = Some(
                    "End the session on the server at logout (delete it from the session store, or for signed-cookie \
                     sessions keep a server-side record to revoke); clearing the cookie is not enough.",
                );
            } else {
                server.status = Status::Pass;
                server.detail = format!(
                    "the cookies held before logout, replayed from a fresh client, no longer reach {protected}"
                );
            }
        }
        checks.push(server);

        // cookie_cleared
        let mut cleared = check("cookie_cleared", "The logout response deletes the auth cookies", Severity::Medium);
        cleared.evidence = logout_evidence.clone();
        let mut kept_cookies = Vec::new();
        let mut unmatched = Vec::new();
        for c in pre_logout.iter().filter(|c| auth.contains(&c.name)) {
            if post_logout.iter().any(|p| p.name == c.name && p.value == c.value && p.path == c.path) {
                kept_cookies.push(c.name.clone());
            }
            let deleted = logout_traffic
                .iter()
                .flat_map(|s| s.response_headers.iter())
                .any(|(k, v)| k == "set-cookie" && deletes(v, c));
            if !deleted {
                unmatched.push(c.name.clone());
            }
        }
        if !pre_logout.iter().any(|c| auth.contains(&c.name)) {
            cleared.status = Status::Skip;
            cleared.detail = "no auth cookie was held just before logout".into();
        } else if !kept_cookies.is_empty() {
            cleared.status = Status::Fail;
            cleared.detail =
                format!("the browser still holds {} with its signed-in value after logout", kept_cookies.join(", "));
            cleared.fix = Some(
                "Delete each auth cookie in the logout response: Set-Cookie with the same name, Path and Domain, an \
                 empty value and Max-Age=0.",
            );
        } else if !unmatched.is_empty() {
            cleared.status = Status::Warn;
            cleared.detail = format!(
                "{} left the browser, but no logout response deleted it with a matching Set-Cookie (replaced or \
                 cleared by script?)",
                unmatched.join(", ")
            );
            cleared.fix = Some("Delete each auth cookie with Set-Cookie (same name, Path and Domain, Max-Age=0).");
        } else {
            cleared.status = Status::Pass;
            cleared.detail = format!(
                "the logout response deleted {} with matching name, path and domain",
                pre_logout
                    .iter()
                    .filter(|c| auth.contains(&c.name))
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        checks.push(cleared);

        // back_button
        let mut back = check("back_button", "Back after logout does not show the protected page", Severity::Medium);
        let mark = tab.mark();
        // Back to the page that showed the user: the logout's page, else the protected one.
        let shown_before = if logout_page_shows { logout_page_url.clone() } else { protected.to_string() };
        if tab.back_to(&shown_before).await? {
            let text = tab.text().await;
            let here = tab.url().await;
            let shown_url = shorten_url(&here);
            let from_cache = tab.bfcache_since(mark);
            // What Back fetched, else the page's own answer while signed in (its caching headers).
            back.evidence = tab.exchanges_since(mark).iter().filter(|s| on_origin(s)).map(seen_as_evidence).collect();
            if back.evidence.is_empty() {
                back.evidence = tab
                    .exchanges_since(signed_mark)
                    .iter()
                    .rev()
                    .find(|s| s.url == here && s.method == "GET" && s.status.is_some())
                    .map(seen_as_evidence)
                    .into_iter()
                    .collect();
            }
            if text.contains(&config.protected.expect) {
                back.status = Status::Fail;
                back.detail = format!("Back showed {shown_url} with {:?} after logout", config.protected.expect);
                back.fix = Some(
                    "Send Cache-Control: no-store on signed-in pages (which also keeps them out of the back/forward \
                     cache), and Clear-Site-Data: \"cache\" at logout.",
                );
                if from_cache.is_ok() {
                    back.browser_note = Some("the page came back from the browser's back/forward cache".into());
                }
            } else {
                back.status = Status::Pass;
                back.detail = format!("Back went to {shown_url}, which does not show {:?}", config.protected.expect);
                if let Err(reasons) = from_cache
                    && !reasons.is_empty()
                {
                    back.browser_note = Some(format!(
                        "the browser did not use its back/forward cache here ({}); the app's pages were fetched again",
                        reasons.join(", ")
                    ));
                }
            }
        } else {
            back.detail = "there was no page before the logout's in the tab's history".into();
        }
        checks.push(back);

        // clear_site_data
        let mut csd = check("clear_site_data", "The logout response sends Clear-Site-Data", Severity::Low);
        let with = logout_traffic.iter().find_map(|s| s.header("clear-site-data").map(|v| (s, v)));
        csd.evidence = logout_evidence.clone();
        match with {
            Some((s, v)) => {
                csd.status = Status::Pass;
                csd.detail = format!("{} {} answered Clear-Site-Data: {v}", s.method, shorten_url(&s.url));
            }
            None if logout_traffic.is_empty() => {
                csd.detail = "the logout made no request to the app".into();
            }
            None => {
                csd.status = Status::Warn;
                csd.detail = "no logout response carried Clear-Site-Data".into();
                csd.fix = Some(
                    "Answer the logout with Clear-Site-Data: \"cache\", \"cookies\", \"storage\" so the browser drops \
                     what it kept of the session.",
                );
            }
        }
        checks.push(csd);

        // storage_cleared
        let mut storage = check("storage_cleared", "Storage written while signed in is cleared", Severity::Medium);
        if storage_signed_in.is_empty() {
            storage.detail =
                "the app stored nothing in localStorage, sessionStorage, IndexedDB or Cache Storage while signed in"
                    .into();
        } else {
            let left: Vec<&String> = storage_signed_in.iter().filter(|s| storage_after.contains(s)).collect();
            if left.is_empty() {
                storage.status = Status::Pass;
                storage.detail = format!("gone after logout: {}", storage_signed_in.join(", "));
            } else {
                storage.status = Status::Fail;
                storage.evidence = logout_evidence.clone();
                storage.detail = format!(
                    "still there after logout: {}",
                    left.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                );
                storage.fix = Some(
                    "Clear what the app stored at logout (localStorage.clear() and the rest), or send \
                     Clear-Site-Data: \"storage\".",
                );
            }
        }
        checks.push(storage);

        // bearer_revoked
        let mut bearer =
            check("bearer_revoked", "Bearer tokens seen while signed in are refused after logout", Severity::High);
        if bearer_calls.is_empty() {
            bearer.detail = "no request with an Authorization: Bearer header was seen while signed in".into();
        } else {
            let mut alive = Vec::new();
            let mut proven = 0;
            for (call, before) in bearer_calls.iter().zip(&bearer_before) {
                // Only a token that worked from the fresh client before logout says anything now.
                if !(200..300).contains(before) {
                    continue;
                }
                let Ok(url) = url::Url::parse(&call.url) else { continue };
                proven += 1;
                let auth =
                    vec![("Authorization".to_owned(), call.request_header("authorization").unwrap_or("").to_owned())];
                let page = self.replay.fetch("GET", &url, &BTreeMap::new(), &auth, None).await?;
                let shown = shorten_url(&call.url);
                if (200..300).contains(&page.status) && !alive.contains(&shown) {
                    alive.push(shown);
                }
                bearer.evidence.extend(page.hops);
            }
            if proven == 0 {
                bearer.detail = format!(
                    "none of the {} bearer call(s) seen while signed in was answered 2xx when replayed from a fresh \
                     client before logout (they need more than the token), so a refusal after it would prove nothing",
                    bearer_calls.len()
                );
            } else if alive.is_empty() {
                bearer.status = Status::Pass;
                bearer.detail = format!("{proven} bearer call(s) that worked before logout were refused after it");
            } else {
                bearer.status = Status::Fail;
                bearer.detail = format!(
                    "of {proven} bearer token(s) that worked before logout, some are still accepted after it at {}",
                    alive.join(", ")
                );
                bearer.fix = Some(
                    "Revoke the user's access tokens at logout (a denylist or token version checked on every \
                     request), or keep them short-lived and revoke the refresh token.",
                );
            }
        }
        checks.push(bearer);

        // refresh_revoked
        let mut refresh =
            check("refresh_revoked", "A refresh call replayed after logout gets no new token", Severity::High);
        match (refresh_calls.last(), refresh_before) {
            (None, _) | (_, None) => {
                refresh.detail =
                    "no refresh call (a POST to a path containing \"refresh\") was seen while signed in".into();
            }
            (Some(_), Some(before)) if !before.renewed => {
                refresh.detail = format!(
                    "the refresh call seen while signed in, replayed just before logout, got no new token ({}), so \
                     a refusal after logout would prove nothing (it may need what the page computes)",
                    before.status
                );
                refresh.evidence = before.hops;
            }
            (Some(call), Some(before)) => {
                // With the refresh token the replay before logout was given, if it rotated.
                let after = self.refresh(call, &before.next_jar, before.next_body.clone()).await?;
                refresh.evidence = before.hops;
                refresh.evidence.extend(after.hops);
                if after.renewed {
                    refresh.status = Status::Fail;
                    refresh.detail = format!(
                        "a refresh token copied while signed in (and used once before logout, as a thief would) \
                         still got a new token from {} after logout",
                        shorten_url(&call.url)
                    );
                    refresh.fix = Some("Revoke the session's refresh tokens (the whole family) at logout.");
                } else {
                    refresh.status = Status::Pass;
                    refresh.detail = format!(
                        "the refresh call to {} got a new token just before logout and none after it ({})",
                        shorten_url(&call.url),
                        after.status
                    );
                }
            }
        }
        checks.push(refresh);

        // remember_revoked
        let mut remember_proof = None;
        let mut remember = check(
            "remember_revoked",
            "The remember-me cookie alone does not sign in again after logout",
            Severity::High,
        );
        match remembered {
            Some(_) if !replayable => {
                remember.detail =
                    "the protected page cannot be judged from a plain HTTP client (see server_invalidation)".into();
            }
            None => {
                remember.detail = match &config.login.remember_cookie {
                    Some(name) => format!("the sign-in set no cookie named {name} (login.remember_cookie)"),
                    None => "no cookie named like a remember-me cookie was set at sign-in; if the app has one, \
                             name it in login.remember_cookie"
                        .into(),
                };
            }
            Some(c) => {
                let alone = BTreeMap::from([(c.name.clone(), c.value.clone())]);
                let (works, hops) = self.signed_in(&alone).await?;
                remember.evidence = hops;
                if works {
                    remember.status = Status::Fail;
                    remember.detail =
                        format!("{}, replayed alone after logout, signs in again and reaches {protected}", c.name);
                    remember.fix = Some(
                        "Delete the remember-me token's record on the server at logout (not only the cookie), so the \
                         token cannot sign anyone in again.",
                    );
                } else {
                    // Refused: that means something only if such a cookie signs in at all (proved on
                    // a sign-in of its own, after this session's checks).
                    remember_proof = Some(c.name.clone());
                    remember.detail = format!("{}, replayed alone after logout, does not sign in", c.name);
                }
            }
        }
        checks.push(remember);

        // The checks that sign in anew come last, so nothing the main session held is judged
        // after a second sign-in (which ends the first on apps allowing one session a user).
        tab.close().await;
        let off_site = endpoint.as_ref().filter(|e| e.origin() != base.origin()).cloned();
        if let Some(off) = off_site {
            for (id, title) in [
                ("post_only", "A GET to the logout URL does not log out"),
                ("csrf", "A cross-site POST to the logout URL does not log out"),
            ] {
                let mut c = check(id, title, Severity::Medium);
                c.detail = format!(
                    "the logout goes to another origin ({}), which the audit does not touch",
                    off.origin().ascii_serialization()
                );
                checks.push(c);
            }
        } else {
            checks.push(self.post_only(&control, endpoint.as_ref(), &logout_method, &logout_evidence).await?);
            let known = Known { auth: auth.clone(), remember: remember_name.clone(), replayable };
            checks.push(self.csrf(&control, endpoint.as_ref(), &logout_method, &known).await?);
        }
        if let Some(name) = remember_proof
            && let Some(c) = checks.iter_mut().find(|c| c.id == "remember_revoked")
        {
            let (tab, _) = self.sign_in().await?;
            let fresh = tab.cookies(&base).await?;
            tab.close().await;
            match fresh.iter().find(|f| f.name == name) {
                Some(f) if self.signed_in(&BTreeMap::from([(f.name.clone(), f.value.clone())])).await?.0 => {
                    c.status = Status::Pass;
                    c.detail.push_str(&format!(
                        "; on a sign-in of its own, {name} alone did sign in, so the logout is what ended it"
                    ));
                }
                _ => {
                    c.detail.push_str(&format!(
                        "; but on a sign-in of its own {name} alone did not sign in either, so it is no \
                         remember-me token to judge"
                    ));
                }
            }
        }
        checks.push(self.redirect_safe(&control).await?);
        checks.push(self.everywhere().await?);
        checks.push(fixation);
        // The order of the issue's table.
        let order = [
            "server_invalidation",
            "cookie_cleared",
            "post_only",
            "csrf",
            "back_button",
            "clear_site_data",
            "storage_cleared",
            "bearer_revoked",
            "refresh_revoked",
            "remember_revoked",
            "fixation",
            "redirect_safe",
            "everywhere",
        ];
        checks.sort_by_key(|c| order.iter().position(|o| *o == c.id));
        Ok(checks)
    }

    /// Replays a refresh call seen in the browser (its body, or `body` in its place; its
    /// cookies from `held`), and reads whether a new token came back.
    async fn refresh(
        &self,
        call: &Seen,
        held: &BTreeMap<String, String>,
        body: Option<String>,
    ) -> Result<Refreshed, AuditError> {
        let Ok(url) = url::Url::parse(&call.url) else {
            return Ok(Refreshed {
                renewed: false,
                status: 0,
                hops: Vec::new(),
                next_body: body,
                next_jar: held.clone(),
            });
        };
        let headers: Vec<(String, String)> = call
            .request_headers
            .iter()
            .filter(|(k, _)| {
                let k = k.to_ascii_lowercase();
                k == "authorization" || k == "content-type" || k.contains("csrf") || k.contains("xsrf")
            })
            .cloned()
            .collect();
        let page = self.replay.fetch("POST", &url, held, &headers, body.as_deref()).await?;
        let answer: Value = serde_json::from_str(&page.body).unwrap_or(Value::Null);
        let token = ["access_token", "accessToken", "token", "jwt", "id_token"]
            .iter()
            .any(|k| answer.get(k).and_then(Value::as_str).is_some_and(|t| !t.is_empty()));
        // A rotated refresh token goes into the next replay's body in place of the spent one.
        let next_body = match (answer.get("refresh_token").and_then(Value::as_str), body.as_deref()) {
            (Some(new), Some(sent)) => match serde_json::from_str::<Value>(sent) {
                Ok(Value::Object(mut fields)) if fields.contains_key("refresh_token") => {
                    fields.insert("refresh_token".into(), Value::String(new.to_owned()));
                    Some(Value::Object(fields).to_string())
                }
                _ => body.clone(),
            },
            _ => body.clone(),
        };
        Ok(Refreshed {
            renewed: (200..300).contains(&page.status) && token,
            status: page.status,
            hops: page.hops,
            next_body,
            next_jar: page.jar,
        })
    }

    /// Whether the browser context of `tab` still reaches the protected page.
    async fn still_signed_in(&self, tab: &Tab<'_>) -> Result<bool, AuditError> {
        tab.goto(&self.config.at(&self.config.protected.url)).await?;
        Ok(tab.text().await.contains(&self.config.protected.expect))
    }

    async fn post_only(
        &self,
        control: &Control,
        endpoint: Option<&url::Url>,
        method: &str,
        logout_evidence: &[Exchange],
    ) -> Result<Check, AuditError> {
        let mut c = check("post_only", "A GET to the logout URL does not log out", Severity::Medium);
        let Some(endpoint) = endpoint else {
            c.detail = NO_LOGOUT_URL.into();
            return Ok(c);
        };
        let shown = shorten_url(endpoint.as_str());
        c.fix =
            Some("Log out only on POST (with a CSRF token); answer GET with a page holding the logout form, or 405.");
        if method == "GET" {
            c.status = Status::Fail;
            c.detail = format!(
                "the app's own logout control is a {} to {shown} by GET: any page can log its users out \
                 (an image tag, a link)",
                control.kind
            );
            c.evidence = logout_evidence.to_vec();
            return Ok(c);
        }
        // A plain GET, as a typed address or a link on the app would make.
        let (tab, _) = self.sign_in().await?;
        let mark = tab.mark();
        tab.goto(endpoint).await?;
        c.evidence = tab.exchanges_since(mark).iter().map(seen_as_evidence).collect();
        if !self.still_signed_in(&tab).await? {
            c.status = Status::Fail;
            c.detail = format!("a GET to {shown} logged the user out");
            tab.close().await;
            return Ok(c);
        }
        // A top-level navigation from another site (it carries SameSite=Lax cookies).
        self.browser.set_attacker_page(format!(
            "<!doctype html><title>elsewhere</title><script>location.href = {};</script>",
            js_string(endpoint.as_str())
        ));
        let mark = tab.mark();
        tab.goto(&attacker_url()).await?;
        tab.quiet(mark).await;
        c.evidence
            .extend(tab.exchanges_since(mark).iter().filter(|s| !s.url.starts_with(ATTACKER)).map(seen_as_evidence));
        if !self.still_signed_in(&tab).await? {
            c.status = Status::Fail;
            c.detail = format!("a navigation from another site to {shown} (GET) logged the user out");
        } else {
            c.status = Status::Pass;
            c.detail = format!(
                "the logout is a {method}; a GET to {shown}, typed or from another site, left the user signed in"
            );
        }
        tab.close().await;
        Ok(c)
    }

    async fn csrf(
        &self,
        control: &Control,
        endpoint: Option<&url::Url>,
        method: &str,
        known: &Known,
    ) -> Result<Check, AuditError> {
        let mut c = check("csrf", "A cross-site POST to the logout URL does not log out", Severity::Medium);
        let Some(endpoint) = endpoint else {
            c.detail = NO_LOGOUT_URL.into();
            return Ok(c);
        };
        let shown = shorten_url(endpoint.as_str());
        let (tab, _) = self.sign_in().await?;
        let protected = self.config.at(&self.config.protected.url);
        let cookies = tab.cookies(&self.config.base()).await?;
        // An attacker knows the form's names and visible values, not its hidden tokens.
        let fields: String = control
            .fields
            .iter()
            .filter(|(k, _)| !looks_like_token(k))
            .map(|(k, v)| format!("<input type=hidden name=\"{}\" value=\"{}\">", attr(k), attr(v)))
            .collect();
        self.browser.set_attacker_page(format!(
            "<!doctype html><title>elsewhere</title><form method=post action=\"{}\">{fields}</form>\
             <script>document.forms[0].submit();</script>",
            attr(endpoint.as_str())
        ));
        let mark = tab.mark();
        tab.goto(&attacker_url()).await?;
        tab.quiet(mark).await;
        let posted: Vec<Seen> =
            tab.exchanges_since(mark).into_iter().filter(|s| !s.url.starts_with(ATTACKER)).collect();
        // Whether the browser sent an auth cookie with the cross-site POST.
        let carried = posted.iter().filter(|s| s.method == "POST").any(|s| {
            s.request_header("cookie").is_some_and(|line| {
                known.auth.iter().any(|name| line.split(';').any(|p| p.trim().starts_with(&format!("{name}="))))
            })
        });
        c.evidence = posted.iter().map(seen_as_evidence).collect();
        c.fix = Some(
            "Require a CSRF token (or check the Origin header) on the logout POST, and set SameSite=Lax or Strict \
             on the session cookie explicitly.",
        );
        if !self.still_signed_in(&tab).await? {
            c.status = Status::Fail;
            c.detail = format!("a form on another site POSTing to {shown} logged the user out");
            tab.close().await;
            return Ok(c);
        }
        c.status = Status::Pass;
        c.detail = format!("a form on another site POSTing to {shown} left the user signed in");
        if method == "GET" {
            c.detail.push_str(" (the logout itself is a GET: see post_only)");
        }
        if carried {
            c.browser_note = Some("the browser sent the session cookie with it, and the app refused the POST".into());
            tab.close().await;
            return Ok(c);
        }
        // The browser kept the cookie off. Whose pass is it? The same POST again from a client
        // that sends the cookie (and says it comes from another site, as a browser would), the
        // remember-me cookie aside, which would sign the check back in.
        let mut held = jar(&cookies, endpoint);
        let mut session = jar(&cookies, &protected);
        if let Some(name) = &known.remember {
            held.remove(name);
            session.remove(name);
        }
        if !known.replayable || !self.signed_in(&session).await?.0 {
            c.browser_note = Some(
                "the browser did not send the session cookie with the cross-site POST (SameSite); whether the app \
                 refuses it too could not be tried from a plain client"
                    .into(),
            );
            tab.close().await;
            return Ok(c);
        }
        let headers = vec![
            ("Origin".to_owned(), ATTACKER.to_owned()),
            ("Referer".to_owned(), format!("{ATTACKER}/")),
            ("Sec-Fetch-Site".to_owned(), "cross-site".to_owned()),
            ("Sec-Fetch-Mode".to_owned(), "navigate".to_owned()),
            ("Sec-Fetch-Dest".to_owned(), "document".to_owned()),
            ("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned()),
        ];
        let body: String = control
            .fields
            .iter()
            .filter(|(k, _)| !looks_like_token(k))
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let answer = self.replay.fetch("POST", endpoint, &held, &headers, Some(&body)).await?;
        let (alive, hops) = self.signed_in(&session).await?;
        c.evidence.extend(answer.hops);
        c.evidence.extend(hops);
        if alive {
            c.browser_note = Some(format!(
                "the browser kept the cookie off (SameSite), and the app itself also refused the POST when the \
                 cookie came with it (Origin {ATTACKER}, no token): it answered {}",
                answer.status
            ));
        } else {
            // The app has no check of its own: only SameSite stood in the way. Set by the app on
            // its auth cookies, that is the app's protection (a warning); left to the browser's
            // default (Chromium's Lax, which Firefox and Safari do not apply), a failure.
            let auth: Vec<&Cookie> = cookies.iter().filter(|c| known.auth.contains(&c.name)).collect();
            let unset: Vec<&str> = auth.iter().filter(|c| c.same_site.is_none()).map(|c| c.name.as_str()).collect();
            if unset.is_empty() {
                c.status = Status::Warn;
                c.browser_note = Some(format!(
                    "the pass is the cookies' own SameSite attribute ({}): the app itself ended the session when the \
                     same POST came with the cookie (Origin {ATTACKER}, no token), so a page on a sibling subdomain \
                     can still log users out",
                    auth.iter().filter_map(|c| c.same_site.as_deref()).collect::<Vec<_>>().join(", ")
                ));
            } else {
                c.status = Status::Fail;
                c.detail = format!(
                    "a cross-site POST to {shown} ends the session whenever the browser sends the cookie: the app \
                     checks no token or Origin"
                );
                c.browser_note = Some(format!(
                    "Chromium kept {} off the cross-site POST by its own SameSite=Lax default, which the app did not \
                     set and Firefox and Safari do not apply",
                    unset.join(", ")
                ));
            }
        }
        tab.close().await;
        Ok(c)
    }

    async fn redirect_safe(&self, control: &Control) -> Result<Check, AuditError> {
        let mut c = check("redirect_safe", "The logout does not redirect off-site on request", Severity::Medium);
        if control.kind == "script" {
            c.detail = "the logout control is driven by script, so no redirect parameter can be added to it".into();
            return Ok(c);
        }
        // An absolute address, then one without a scheme (`//host/`), which passes checks that
        // only look for a leading `/`.
        for off in OFF_SITE {
            let (tab, _) = self.sign_in().await?;
            tab.goto(&self.config.at(&self.config.logout.page)).await?;
            let params = serde_json::to_string(&REDIRECT_PARAMS).unwrap_or_default();
            // Each parameter on the address and as a form field.
            let armed = tab
                .eval(&format!(
                    r#"(() => {{
  const e = document.querySelector({sel}); if (!e) return false;
  const params = {params}; const off = {off};
  const f = e.form || e.closest('form');
  const a = e.closest('a[href]');
  const add = (u) => {{ const url = new URL(u, location.href); for (const p of params) url.searchParams.set(p, off); return url.href; }};
  if (f) {{
    f.action = add(f.action);
    for (const p of params) {{ const i = document.createElement('input'); i.type = 'hidden'; i.name = p; i.value = off; f.appendChild(i); }}
  }} else if (a) {{ a.href = add(a.href); }}
  return true;
}})()"#,
                    sel = js_string(&self.config.logout.selector),
                    off = js_string(off),
                ))
                .await?;
            if armed != Value::Bool(true) {
                c.detail = "the logout control was not found again".into();
                tab.close().await;
                return Ok(c);
            }
            let blocked_before = self.browser.blocked().len();
            let mark = tab.mark();
            tab.click(&self.config.logout.selector).await?;
            let blocked = self.browser.blocked();
            let tried = blocked
                .get(blocked_before..)
                .unwrap_or_default()
                .iter()
                .find(|u| url::Url::parse(u).is_ok_and(|u| u.host_str() == Some(OFF_SITE_HOST)))
                .cloned();
            c.evidence.extend(tab.exchanges_since(mark).iter().map(seen_as_evidence));
            tab.close().await;
            if let Some(tried) = tried {
                c.status = Status::Fail;
                c.detail = format!(
                    "with {} set to {off}, the logout redirected the browser to {tried} (stopped by the auditor)",
                    REDIRECT_PARAMS.join(", ")
                );
                c.fix = Some("Redirect after logout only to paths on the app's own origin (or a registered list).");
                return Ok(c);
            }
        }
        c.status = Status::Pass;
        c.detail = format!(
            "with {} set to {} (and then to {}), the logout stayed on the app's origin",
            REDIRECT_PARAMS.join(", "),
            OFF_SITE[0],
            OFF_SITE[1]
        );
        Ok(c)
    }

    async fn everywhere(&self) -> Result<Check, AuditError> {
        let mut c = check("everywhere", "Log out everywhere ends the other browser's session", Severity::High);
        let Some(everywhere) = &self.config.everywhere else {
            c.detail = "no [everywhere] control in the config".into();
            return Ok(c);
        };
        let (other, _) = self.sign_in().await?;
        let protected = self.config.at(&self.config.protected.url);
        let other_cookies = jar(&other.cookies(&self.config.base()).await?, &protected);
        let (tab, _) = self.sign_in().await?;
        // Signing in here must have left the other browser signed in, or its end afterwards
        // would prove nothing of the control.
        if !self.signed_in(&other_cookies).await?.0 && !self.still_signed_in(&other).await? {
            c.detail = "signing in from a second browser already ended the first one's session (one session a \
                        user?), so the control cannot be told apart from that"
                .into();
            other.close().await;
            tab.close().await;
            return Ok(c);
        }
        tab.goto(&self.config.at(&everywhere.page)).await?;
        let mark = tab.mark();
        if !tab.click(&everywhere.selector).await? {
            return Err(AuditError::App(format!(
                "{} has no element matching {:?} (everywhere.selector)",
                self.config.at(&everywhere.page),
                everywhere.selector
            )));
        }
        c.evidence = tab.exchanges_since(mark).iter().map(seen_as_evidence).collect();
        let (alive, hops) = self.signed_in(&other_cookies).await?;
        c.evidence.extend(hops);
        let browser_alive = self.still_signed_in(&other).await?;
        if alive || browser_alive {
            c.status = Status::Fail;
            c.detail =
                "after log out everywhere in one browser, the other browser's session still reaches the protected page"
                    .into();
            c.fix = Some(
                "End every session of the user (and their remember-me tokens and refresh tokens) on that control.",
            );
        } else {
            c.status = Status::Pass;
            c.detail = "the other browser's session ended".into();
        }
        other.close().await;
        tab.close().await;
        Ok(c)
    }
}

fn attacker_url() -> url::Url {
    url::Url::parse(&format!("{ATTACKER}/")).unwrap_or_else(|_| url::Url::parse("about:blank").expect("a URL"))
}

/// Whether a form field holds what an attacker could not know (a CSRF token and the like).
fn looks_like_token(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["csrf", "xsrf", "token", "authenticity", "nonce"].iter().any(|t| n.contains(t))
}

fn attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;")
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Whether a `Set-Cookie` line deletes `cookie`: same name, same path and domain, and an
/// expiry in the past (or `Max-Age` of zero or less).
fn deletes(line: &str, cookie: &Cookie) -> bool {
    let mut parts = line.split(';');
    let Some((name, _)) = parts.next().and_then(|p| p.split_once('=')) else { return false };
    if name.trim() != cookie.name {
        return false;
    }
    let (mut path, mut domain, mut gone) = ("/".to_owned(), None::<String>, false);
    for a in parts {
        let (k, v) = a.split_once('=').unwrap_or((a, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "path" => path = v.trim().to_owned(),
            "domain" => domain = Some(v.trim().trim_start_matches('.').to_ascii_lowercase()),
            "max-age" => gone |= v.trim().parse::<i64>().is_ok_and(|n| n <= 0),
            "expires" => gone |= crate::replay::expired(v.trim()),
            _ => {}
        }
    }
    let host_only = !cookie.domain.starts_with('.');
    let domain_matches = match domain {
        None => host_only,
        Some(d) => !host_only && cookie.domain.trim_start_matches('.').eq_ignore_ascii_case(&d),
    };
    gone && path == cookie.path && domain_matches
}

fn time_now() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(name: &str, domain: &str, path: &str) -> Cookie {
        Cookie {
            name: name.into(),
            value: "v".into(),
            domain: domain.into(),
            path: path.into(),
            persistent: false,
            http_only: true,
            secure: false,
            same_site: None,
        }
    }

    #[test]
    fn a_deletion_must_match_name_path_and_domain() {
        let host_only = cookie("sid", "localhost", "/");
        assert!(deletes("sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT", &host_only));
        assert!(deletes("sid=\"\"; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/", &host_only));
        assert!(!deletes("sid=; Path=/app; Max-Age=0", &host_only), "another path is another cookie");
        assert!(!deletes("sid=; Path=/; Domain=localhost; Max-Age=0", &host_only), "a domain cookie is another cookie");
        assert!(!deletes("sid=new; Path=/", &host_only), "a new value is no deletion");
        assert!(!deletes("other=; Path=/; Max-Age=0", &host_only));
        let domain = cookie("sid", ".example.com", "/");
        assert!(deletes("sid=; Domain=example.com; Path=/; Max-Age=0", &domain));
    }

    #[test]
    fn tokens_are_what_an_attacker_cannot_know() {
        assert!(looks_like_token("csrfmiddlewaretoken"));
        assert!(looks_like_token("authenticity_token"));
        assert!(!looks_like_token("next"));
    }
}
