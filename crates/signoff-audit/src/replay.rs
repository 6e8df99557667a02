//! Requests replayed from a fresh client, as an attacker holding copied cookies or tokens would
//! send them: no browser, no SameSite, no cache. Redirects are followed by hand and only on the
//! audited origin (at most five), cookies set on the way are kept for the next hop.

use std::collections::BTreeMap;
use std::time::Duration;

/// One request and what came back, kept as the evidence of a finding.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    /// The request's interesting headers (cookies with their values shortened).
    pub sent: Vec<Header>,
    pub status: u16,
    /// The answer's interesting headers (`Location`, `Set-Cookie`, `Clear-Site-Data`).
    pub received: Vec<Header>,
}

/// One header of the evidence.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into() }
    }
}

impl Exchange {
    pub fn line(&self) -> String {
        format!("{} {} → {}", self.method, self.url, self.status)
    }
}

/// The replaying client.
pub struct Replay {
    client: reqwest::Client,
    origin: url::Url,
}

/// What a page fetched by the replaying client showed.
pub struct Fetched {
    pub body: String,
    pub status: u16,
    /// Every hop, first to last.
    pub hops: Vec<Exchange>,
    /// The cookies as the answers left them (a rotated cookie in place of the one sent).
    pub jar: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot reach {url}: {cause}")]
pub struct ReplayError {
    url: String,
    cause: String,
}

/// At most this much of an answer's body is read.
const MAX_BODY: usize = 2 << 20;

/// A URL as evidence shows it: a long query value (a token in a link, an `id_token_hint`)
/// shortened like a cookie's.
pub fn shorten_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else { return url.to_owned() };
    if u.query().is_none() {
        return url.to_owned();
    }
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), if v.chars().count() > 24 { shorten(&v) } else { v.into_owned() }))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

/// A header value as evidence shows it: credentials and tokens shortened.
pub fn shown_header(name: &str, value: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n == "authorization" || n.contains("token") || n.contains("csrf") || n.contains("xsrf") {
        shorten(value)
    } else if n == "location" {
        shorten_url(value)
    } else {
        value.to_owned()
    }
}

/// A cookie value as evidence shows it: enough to tell two apart, not enough to use.
pub fn shorten(value: &str) -> String {
    if value.chars().count() <= 10 {
        return "…".into();
    }
    let head: String = value.chars().take(6).collect();
    format!("{head}…({} chars)", value.chars().count())
}

impl Replay {
    pub fn new(origin: url::Url) -> Result<Self, ReplayError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| ReplayError { url: origin.to_string(), cause: e.to_string() })?;
        Ok(Self { client, origin })
    }

    /// `method url` carrying `cookies` (and `headers`, `body`), redirects on the origin
    /// followed as a GET with the cookies updated by each answer.
    pub async fn fetch(
        &self,
        method: &str,
        url: &url::Url,
        cookies: &BTreeMap<String, String>,
        headers: &[(String, String)],
        body: Option<&str>,
    ) -> Result<Fetched, ReplayError> {
        let mut jar = cookies.clone();
        let mut hops = Vec::new();
        let mut method = method.to_owned();
        let mut url = url.clone();
        let mut body = body.map(str::to_owned);
        for _ in 0..6 {
            let err =
                |e: reqwest::Error| ReplayError { url: shorten_url(url.as_str()), cause: e.without_url().to_string() };
            // Nothing, least of all a cookie, goes anywhere but the audited origin.
            if url.origin() != self.origin.origin() {
                return Err(ReplayError {
                    url: shorten_url(url.as_str()),
                    cause: "not on the audited origin; not sent".into(),
                });
            }
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
            let mut request = self.client.request(m, url.clone());
            let mut sent = Vec::new();
            if !jar.is_empty() {
                let line = jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
                request = request.header("Cookie", line);
                sent.push(Header::new(
                    "Cookie",
                    jar.iter().map(|(k, v)| format!("{k}={}", shorten(v))).collect::<Vec<_>>().join("; "),
                ));
            }
            for (k, v) in headers {
                request = request.header(k.as_str(), v.as_str());
                sent.push(Header::new(k.clone(), shown_header(k, v)));
            }
            if let Some(b) = body.take() {
                request = request.body(b);
            }
            let response = request.send().await.map_err(err)?;
            let status = response.status().as_u16();
            let mut received = Vec::new();
            for (name, value) in response.headers() {
                let name = name.as_str();
                let Ok(value) = value.to_str() else { continue };
                if matches!(name, "location" | "clear-site-data" | "www-authenticate" | "cache-control") {
                    received.push(Header::new(name, shown_header(name, value)));
                }
                if name == "set-cookie" {
                    let shown = value.split_once('=').map_or(value.to_owned(), |(n, rest)| {
                        let (v, attrs) = rest.split_once(';').unwrap_or((rest, ""));
                        format!("{n}={};{attrs}", if v.is_empty() { String::new() } else { shorten(v) })
                    });
                    received.push(Header::new(name, shown));
                    apply_set_cookie(&mut jar, value);
                }
            }
            let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
            hops.push(Exchange { method: method.clone(), url: shorten_url(url.as_str()), sent, status, received });
            match location.and_then(|l| url.join(&l).ok()) {
                Some(next) if (300..400).contains(&status) && next.origin() == self.origin.origin() => {
                    url = next;
                    method = "GET".into();
                }
                _ => {
                    let mut response = response;
                    let mut body = Vec::new();
                    while let Some(chunk) = response.chunk().await.map_err(err)? {
                        body.extend_from_slice(&chunk);
                        if body.len() >= MAX_BODY {
                            break;
                        }
                    }
                    return Ok(Fetched { body: String::from_utf8_lossy(&body).into_owned(), status, hops, jar });
                }
            }
        }
        Ok(Fetched { body: String::new(), status: 0, hops, jar })
    }
}

/// Keeps or drops a cookie as a `Set-Cookie` line says (deleted by an empty value, `Max-Age`
/// of zero or less, or an `Expires` in the past).
fn apply_set_cookie(jar: &mut BTreeMap<String, String>, line: &str) {
    let mut parts = line.split(';');
    let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else { return };
    let (name, value) = (name.trim(), value.trim());
    let deleted = value.is_empty()
        || parts.any(|a| {
            let (k, v) = a.split_once('=').unwrap_or((a, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            (k == "max-age" && v.parse::<i64>().is_ok_and(|n| n <= 0)) || (k == "expires" && expired(v))
        });
    if deleted {
        jar.remove(name);
    } else {
        jar.insert(name.to_owned(), value.to_owned());
    }
}

/// Whether an `Expires` date is in the past: an HTTP date compared with the clock; a date in
/// another layout (`Thu, 01-Jan-1970 …`) by its year (deletions use years long past).
pub fn expired(date: &str) -> bool {
    if let Ok(at) = httpdate::parse_http_date(date) {
        return at <= std::time::SystemTime::now();
    }
    let year = date.split([' ', '-']).filter_map(|p| p.parse::<i32>().ok()).find(|y| *y > 31);
    match year {
        Some(y) if y < 100 => y < 70,
        Some(y) => y < current_year(),
        None => false,
    }
}

fn current_year() -> i32 {
    time::OffsetDateTime::now_utc().year()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleting_set_cookie_removes_the_cookie() {
        let mut jar = BTreeMap::from([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]);
        apply_set_cookie(&mut jar, "a=; Path=/; Max-Age=0");
        apply_set_cookie(&mut jar, "b=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/");
        apply_set_cookie(&mut jar, "c=3; Path=/; HttpOnly");
        assert_eq!(jar, BTreeMap::from([("c".to_owned(), "3".to_owned())]));
        apply_set_cookie(&mut jar, "c=4; Expires=Fri, 01 Jan 2100 00:00:00 GMT");
        assert_eq!(jar["c"], "4");
        apply_set_cookie(&mut jar, "c=5; Expires=Thu, 01-Jan-1970 00:00:01 GMT");
        assert!(jar.is_empty(), "the Netscape layout of a date long past");
    }

    #[test]
    fn urls_and_headers_in_evidence_hold_no_whole_token() {
        let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl";
        let shown = shorten_url(&format!("http://localhost:8000/logout?id_token_hint={token}&next=/"));
        assert!(!shown.contains(&token[6..]) && shown.contains("next=%2F"), "{shown}");
        assert!(!shown_header("X-CSRF-Token", token).contains(&token[6..]));
        assert_eq!(shown_header("Clear-Site-Data", "\"cookies\""), "\"cookies\"");
    }

    #[test]
    fn evidence_never_holds_a_whole_secret() {
        let secret = "s3cr3t-value-0123456789abcdef";
        assert!(!shorten(secret).contains(&secret[6..]));
        assert_eq!(shorten("short"), "…");
    }
}
