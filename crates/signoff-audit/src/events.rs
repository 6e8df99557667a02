//! What the audit reads of the browser's events: each shape here names the events it reads by
//! their types in `chromiumoxide_cdp` ([`Shape::OF`]), and reads the fields the audit uses only,
//! with the crate's types for them (ids, headers, post data).
//!
//! Why not the crate's whole event types: they ask for every field the protocol revision they
//! were made from marks required, and closed enums for values Chromium adds to every release
//! (resource types, initiators, back/forward cache reasons). Chromium 156 already sends
//! `Network.requestWillBeSentExtraInfo` without `privateNetworkRequestPolicy` and
//! `Network.responseReceivedExtraInfo` with a `null` where the crate wants a number, the
//! breakage chromiumoxide's issues #229, #243 and #266 and its open pull request #305 are about.
//! A whole-type read that failed would drop the event, and a dropped event is a wrong verdict
//! (a pause refused on the audited origin, a request missing from the evidence). What is read
//! here is the core of each event, unchanged since it came into the protocol; an event that
//! still does not read is counted, and the audit then stops without verdicts
//! ([`crate::cdp::Chromium::unreadable`]).

use crate::cdp::Event;
use chromiumoxide_cdp::cdp::browser_protocol::{fetch, network, page, target};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// What the audit reads of some events.
pub trait Shape: DeserializeOwned {
    /// The events (their `method`) read as this.
    const OF: &'static [&'static str];
}

/// `Fetch.requestPaused`: which request, and where it goes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paused {
    pub request_id: fetch::RequestId,
    pub request: Url,
}

#[derive(Debug, Deserialize)]
pub struct Url {
    pub url: String,
}

/// `Target.attachedToTarget`: the new child's session.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attached {
    pub session_id: target::SessionId,
}

/// `Network.requestWillBeSent`: a request as the page made it (one hop of a redirect chain).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sent {
    pub request_id: network::RequestId,
    pub request: Request,
    /// The resource type (`Document`, `Fetch`, `EventSource`…), as Chromium names it.
    #[serde(rename = "type")]
    pub resource: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub url: String,
    pub method: String,
    pub headers: network::Headers,
    pub post_data_entries: Option<Vec<network::PostDataEntry>>,
}

/// `Network.loadingFinished` and `Network.loadingFailed`: which request ended.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    pub request_id: network::RequestId,
}

/// `Network.requestWillBeSentExtraInfo`: a request's headers as they went over the wire
/// (cookies included).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentExtra {
    pub request_id: network::RequestId,
    pub headers: network::Headers,
}

/// `Network.responseReceivedExtraInfo`: an answer's status and headers as they came over the
/// wire (every `Set-Cookie`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answered {
    pub request_id: network::RequestId,
    pub status_code: i64,
    pub headers: network::Headers,
}

/// `Page.backForwardCacheNotUsed`: why a history navigation was not served from the cache.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotCached {
    pub not_restored_explanations: Vec<Reason>,
}

#[derive(Debug, Deserialize)]
pub struct Reason {
    pub reason: String,
}

/// The one table of what is read as what: each shape's [`Shape::OF`], and the arrival check
/// ([`check`]) over every shape, so a shape cannot be read without being checked.
macro_rules! shapes {
    ($($shape:ty => [$($event:ty),+]),+ $(,)?) => {
        $(impl Shape for $shape {
            const OF: &'static [&'static str] = &[$(<$event>::IDENTIFIER),+];
        })+

        /// Whether `event`, if it is one the audit reads, reads as the audit reads it. Checked
        /// as each event comes, so that one that does not is counted even if no check asks for
        /// it.
        pub fn check(event: &Event) -> Result<(), serde_json::Error> {
            $(if <$shape>::OF.contains(&&*event.method) {
                return <$shape>::deserialize(&event.params).map(drop);
            })+
            Ok(())
        }
    };
}

shapes! {
    Paused => [fetch::EventRequestPaused],
    Attached => [target::EventAttachedToTarget],
    Sent => [network::EventRequestWillBeSent],
    Ended => [network::EventLoadingFinished, network::EventLoadingFailed],
    SentExtra => [network::EventRequestWillBeSentExtraInfo],
    Answered => [network::EventResponseReceivedExtraInfo],
    NotCached => [page::EventBackForwardCacheNotUsed],
}
