//! Following signoff's revocation feed (`GET /revocations/stream`) and holding its state.
//!
//! The stream starts with the whole state (after a `: reset <head>` comment) or, resuming with
//! `Last-Event-ID`, with what came after; then `: current`; then each event as it happens and a
//! comment at least every few seconds. This verifier is *fresh* while it hears from a stream
//! that has reached `: current`; a reset state is built aside and swapped in at `: current`
//! (its events also count against tokens at once: they are revocations all the same).

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::{Claims, Shared, unix_now};

/// No byte for this long and the stream is taken for dead (signoff sends a comment every second).
const READ_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct Tables {
    /// Revoked `jti` → its `exp`.
    jti: HashMap<String, i64>,
    /// Ended `sid` → when it was heard of.
    sid: HashMap<String, Instant>,
    /// `sub` → the minimum token version, and when it was heard of.
    tv: HashMap<String, (i64, Instant)>,
}

impl Tables {
    fn apply(&mut self, event: &Event, now: Instant) {
        match event {
            Event::Token { jti, exp } => {
                self.jti.insert(jti.clone(), *exp);
            }
            Event::Session { sid } => {
                self.sid.insert(sid.clone(), now);
            }
            Event::User { sub, tv } => {
                let entry = self.tv.entry(sub.clone()).or_insert((*tv, now));
                if *tv >= entry.0 {
                    *entry = (*tv, now);
                }
            }
            Event::Keys { .. } | Event::Other => {}
        }
    }

    fn prune(&mut self, retain: Duration, leeway: i64) {
        let now = unix_now();
        self.jti.retain(|_, exp| exp.saturating_add(leeway) > now);
        self.sid.retain(|_, at| at.elapsed() < retain);
        self.tv.retain(|_, (_, at)| at.elapsed() < retain);
    }

    fn len(&self) -> usize {
        self.jti.len() + self.sid.len() + self.tv.len()
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event {
    Token {
        jti: String,
        exp: i64,
    },
    Session {
        sid: String,
    },
    User {
        sub: String,
        tv: i64,
    },
    Keys {
        kid: String,
        #[serde(default)]
        withdrawn: bool,
    },
    #[serde(other)]
    Other,
}

/// What a frame asks of the key cache.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeyChange {
    None,
    /// A key was added: refetch the JWKS.
    Added,
    /// A key was withdrawn: never trust it again, then refetch.
    Withdrawn(String),
}

#[derive(Debug, Default)]
struct Inner {
    live: Tables,
    /// A reset state being received, swapped in at `: current`.
    building: Option<Tables>,
    /// The last `seq` received (`Last-Event-ID` of the next connection).
    position: Option<i64>,
    /// When a stream that had reached `: current` was last heard from.
    fresh_at: Option<Instant>,
    /// Whether the open stream has reached `: current`.
    synced: bool,
    closed: bool,
}

pub(crate) struct FeedState {
    inner: Mutex<Inner>,
    /// Becomes `true` the first time a stream reaches `: current`.
    first_sync: watch::Sender<bool>,
}

impl Default for FeedState {
    fn default() -> Self {
        Self { inner: Mutex::default(), first_sync: watch::Sender::new(false) }
    }
}

impl FeedState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn caught_up(&self) -> impl std::future::Future<Output = ()> + use<> {
        let mut rx = self.first_sync.subscribe();
        async move {
            let _ = rx.wait_for(|synced| *synced).await;
        }
    }

    pub(crate) fn fresh(&self, stale_after: Duration) -> bool {
        let inner = self.lock();
        !inner.closed && inner.fresh_at.is_some_and(|at| at.elapsed() <= stale_after)
    }

    pub(crate) fn revokes(&self, c: &Claims) -> bool {
        let inner = self.lock();
        let t = &inner.live;
        t.jti.contains_key(&c.jti) || t.sid.contains_key(&c.sid) || t.tv.get(&c.sub).is_some_and(|(tv, _)| c.tv < *tv)
    }

    pub(crate) fn held(&self) -> usize {
        self.lock().live.len()
    }

    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.fresh_at = None;
    }

    fn disconnected(&self) {
        let mut inner = self.lock();
        inner.synced = false;
        inner.building = None;
    }

    fn position(&self) -> Option<i64> {
        self.lock().position
    }

    /// Takes one frame of the stream; what it means for the keys, or `Err` for an event that
    /// cannot be read (the stream is then given up: a revocation must never be passed over).
    fn frame(&self, frame: &Frame, retain: Duration, leeway: i64) -> Result<KeyChange, ()> {
        let now = Instant::now();
        let mut inner = self.lock();
        match frame {
            Frame::Comment(c) if c.starts_with("reset") => {
                inner.building = Some(Tables::default());
                inner.position = None;
            }
            Frame::Comment(c) if c == "current" => {
                if let Some(state) = inner.building.take() {
                    inner.live = state;
                }
                inner.synced = true;
                inner.fresh_at = Some(now);
                inner.live.prune(retain, leeway);
                drop(inner);
                self.first_sync.send_replace(true);
            }
            Frame::Comment(_) => {
                if inner.synced {
                    inner.fresh_at = Some(now);
                    inner.live.prune(retain, leeway);
                }
            }
            Frame::Event { id, data } => {
                let Ok(event) = serde_json::from_str::<Event>(data) else {
                    tracing::warn!("a revocation-feed event this verifier cannot read; reconnecting");
                    return Err(());
                };
                inner.live.apply(&event, now);
                if let Some(state) = inner.building.as_mut() {
                    state.apply(&event, now);
                }
                if let Some(seq) = id.as_deref().and_then(|i| i.parse::<i64>().ok()) {
                    inner.position = Some(seq);
                }
                if inner.synced {
                    inner.fresh_at = Some(now);
                }
                return Ok(match event {
                    Event::Keys { kid, withdrawn: true } => KeyChange::Withdrawn(kid),
                    Event::Keys { .. } => KeyChange::Added,
                    _ => KeyChange::None,
                });
            }
        }
        Ok(KeyChange::None)
    }
}

#[derive(Debug)]
enum Frame {
    Comment(String),
    Event { id: Option<String>, data: String },
}

/// Splits complete frames off the front of `buf` (bytes, so a character split across chunks
/// is decoded whole).
fn frames(buf: &mut Vec<u8>) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
        let raw: Vec<u8> = buf.drain(..end + 2).collect();
        let block = String::from_utf8_lossy(&raw).replace('\r', "");
        let (mut id, mut event, mut data, mut comment) = (None, None, String::new(), None);
        for line in block.lines() {
            if let Some(c) = line.strip_prefix(':') {
                comment = Some(c.trim().to_owned());
            } else if let Some((k, v)) = line.split_once(':') {
                let v = v.strip_prefix(' ').unwrap_or(v);
                match k {
                    "id" => id = Some(v.to_owned()),
                    "event" => event = Some(v.to_owned()),
                    "data" => data.push_str(v),
                    _ => {}
                }
            }
        }
        match (event.as_deref(), comment) {
            (Some("revocation"), _) => out.push(Frame::Event { id, data }),
            (None, Some(c)) if data.is_empty() => out.push(Frame::Comment(c)),
            _ => {}
        }
    }
    out
}

/// Follows the feed for as long as the verifier lives: reconnects (resuming by position)
/// whenever the stream ends, fails or goes silent.
pub(crate) async fn follow(shared: Weak<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if let Some(s) = shared.upgrade() {
            s.learn_expectations().await;
        }
        let synced = stream_once(&shared).await;
        let Some(s) = shared.upgrade() else { return };
        s.feed.disconnected();
        drop(s);
        if synced {
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (every byte but the unreserved
/// ones as `%XX`).
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One connection; whether it reached `: current`.
async fn stream_once(shared: &Weak<Shared>) -> bool {
    let request = {
        let Some(s) = shared.upgrade() else { return false };
        let o = &s.options;
        let mut rb = s
            .http
            .get(format!("{}/revocations/stream", o.url))
            // RFC 6749 2.3.1: each part form-encoded before Basic.
            .basic_auth(form_encode(&o.client_id), Some(form_encode(&o.client_secret)))
            .header("accept", "text/event-stream");
        if let Some(position) = s.feed.position() {
            rb = rb.header("last-event-id", position.to_string());
        }
        rb.send()
    };
    let mut res = match tokio::time::timeout(READ_TIMEOUT, request).await {
        Ok(Ok(res)) if res.status().is_success() => res,
        Ok(Ok(res)) => {
            tracing::warn!(status = %res.status(), "signoff refused the revocation feed (check the client id and secret)");
            return false;
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot reach signoff's revocation feed");
            return false;
        }
        Err(_) => {
            tracing::warn!("signoff's revocation feed did not answer in time");
            return false;
        }
    };
    let mut buf = Vec::new();
    let mut synced = false;
    loop {
        let chunk = match tokio::time::timeout(READ_TIMEOUT, res.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) | Ok(Err(_)) => return synced,
            Err(_) => {
                tracing::warn!("signoff's revocation feed went silent; reconnecting");
                return synced;
            }
        };
        buf.extend_from_slice(&chunk);
        let Some(s) = shared.upgrade() else { return synced };
        let (retain, leeway) = (s.options.retain, s.options.leeway.as_secs() as i64);
        for frame in frames(&mut buf) {
            synced |= matches!(&frame, Frame::Comment(c) if c == "current");
            let change = match s.feed.frame(&frame, retain, leeway) {
                Ok(change) => change,
                Err(()) => return synced,
            };
            if let KeyChange::Withdrawn(kid) = &change {
                s.keys.withdraw(kid);
            }
            if change != KeyChange::None {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.keys.refresh(&s.http).await;
                });
            }
        }
        if buf.len() > 1 << 20 {
            tracing::warn!("a revocation-feed frame over 1 MiB; reconnecting");
            return synced;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_credentials_are_form_encoded() {
        assert_eq!(form_encode("abc-_.~XYZ09"), "abc-_.~XYZ09");
        assert_eq!(form_encode("a b+c:d%é"), "a%20b%2Bc%3Ad%25%C3%A9");
    }

    #[test]
    fn frames_are_split_and_a_reset_is_swapped_in_at_current() {
        let mut buf = Vec::from(
            ": reset 7\n\nid: 3\nevent: revocation\ndata: {\"seq\":3,\"type\":\"token\",\"jti\":\"j\",\"exp\":99999999999}\n\n\
             id: 5\nevent: revocation\ndata: {\"seq\":5,\"type\":\"session\",\"sid\":\"s\",\"at\":1}\n\n\
             id: 6\nevent: revocation\ndata: {\"seq\":6,\"type\":\"user\",\"sub\":\"u\",\"tv\":3}\n\n\
             id: 7\nevent: revocation\ndata: {\"seq\":7,\"type\":\"brand-new\"}\n\n: current\n\n: heart"
                .as_bytes(),
        );
        let state = FeedState::default();
        let withdrawal = Frame::Event {
            id: Some("8".into()),
            data: "{\"seq\":8,\"type\":\"keys\",\"kid\":\"k1\",\"withdrawn\":true}".into(),
        };
        let garbage = Frame::Event { id: Some("9".into()), data: "{not json".into() };
        let frames = frames(&mut buf);
        assert_eq!(frames.len(), 6);
        assert_eq!(buf, b": heart", "an incomplete frame waits for the rest");
        assert!(!state.fresh(Duration::from_secs(5)));
        for f in &frames {
            assert!(state.frame(f, Duration::from_secs(60), 10).is_ok());
        }
        assert_eq!(state.frame(&withdrawal, Duration::from_secs(60), 10), Ok(KeyChange::Withdrawn("k1".into())));
        assert_eq!(state.frame(&garbage, Duration::from_secs(60), 10), Err(()), "never passed over");
        assert!(state.fresh(Duration::from_secs(5)));
        assert_eq!(state.position(), Some(8));
        let claims = |jti: &str, sid: &str, sub: &str, tv: i64| Claims {
            iss: "i".into(),
            sub: sub.into(),
            aud: vec!["a".into()],
            iat: 0,
            exp: 0,
            nbf: None,
            jti: jti.into(),
            sid: sid.into(),
            tv,
        };
        assert!(state.revokes(&claims("j", "x", "x", 0)));
        assert!(state.revokes(&claims("x", "s", "x", 0)));
        assert!(state.revokes(&claims("x", "x", "u", 2)));
        assert!(!state.revokes(&claims("x", "x", "u", 3)), "the current version lives");
        assert!(!state.revokes(&claims("x", "x", "x", 0)));
        state.close();
        assert!(!state.fresh(Duration::from_secs(5)));
    }
}
