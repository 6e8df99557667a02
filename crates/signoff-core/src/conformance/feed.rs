//! The revocation feed: gap-free, ordered, every kind round-trips.

use std::sync::Arc;
use time::Duration;

use crate::feed::{FeedEntry, Revocation};
use crate::secret::{SessionId, UserId};
use crate::store::{Announce, Store};

use super::{t0, tx};

async fn read_again(store: &Arc<dyn Store>, after: i64) -> Vec<(i64, FeedEntry)> {
    store.revocations_since(after, 100).await.expect("read")
}

pub async fn feed_keeps_order_and_kinds(store: Arc<dyn Store>) {
    let head = store.revocation_head().await.expect("head");
    let u = UserId::generate();
    let entries = vec![
        FeedEntry::Session(Revocation {
            session_id: SessionId::generate(),
            user_id: u.clone(),
            reason: "logout".into(),
            at: t0(),
        }),
        FeedEntry::Token { issuer: "https://a.example".into(), jti: "j".into(), exp: 1_800_000_900, user_id: None },
        FeedEntry::Token { issuer: "https://a.example".into(), jti: "k".into(), exp: 1, user_id: Some(u.clone()) },
        FeedEntry::TokenVersion { user_id: u.clone(), version: 3 },
        FeedEntry::Keys { kid: "k".into(), withdrawn: true },
        FeedEntry::Keys { kid: "k2".into(), withdrawn: false },
        FeedEntry::Rekeyed { old: SessionId::generate(), new: SessionId::generate(), user_id: None, reason: None },
        FeedEntry::Rekeyed {
            old: SessionId::generate(),
            new: SessionId::generate(),
            user_id: Some(u.clone()),
            reason: Some("password_changed".into()),
        },
        FeedEntry::ClientRemoved { client_id: "c".into() },
        FeedEntry::ClientGrantEnded {
            sid: SessionId::generate(),
            client_id: "c".into(),
            reason: "secret_rotated".into(),
        },
    ];
    let mut t = tx(&store).await;
    let first = t.record_revocations(&entries[..2], t0(), Announce::Now).await.expect("record");
    t.commit().await.expect("commit");
    let mut t = tx(&store).await;
    assert_eq!(
        t.record_revocations(&[], t0(), Announce::Now).await.expect("record nothing"),
        0,
        "nothing written, no position"
    );
    let second = t.record_revocations(&entries[2..], t0(), Announce::OnPoll).await.expect("record");
    t.commit().await.expect("commit");
    let read = store.revocations_since(head, 100).await.expect("read");
    let seqs: Vec<i64> = read.iter().map(|(seq, _)| *seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "positions rise with no gap (a gap means a lost entry): {seqs:?}"
    );
    assert_eq!((first, second), (seqs[1], seqs[9]), "each append returns its last position");
    assert_eq!(read.into_iter().map(|(_, e)| e).collect::<Vec<_>>(), entries, "every kind round-trips, in order");
    assert_eq!(store.revocation_head().await.expect("head"), seqs[9]);
    let page = store.feed_page(head, 100).await.expect("page with its head");
    assert_eq!((page.head, page.entries), (seqs[9], read_again(&store, head).await), "the same entries, and the head");
    let page = store.feed_page(seqs[9], 100).await.expect("nothing after the head");
    assert_eq!((page.head, page.entries.len()), (seqs[9], 0), "nothing new: the head alone");
    let page = store.feed_page(seqs[1], 2).await.expect("a page after a position");
    assert_eq!(page.entries.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), seqs[2..4], "paged after a position");
    assert_eq!(store.revocations_since(seqs[1], 2).await.expect("page").len(), 2, "paged after a position");
    assert_eq!(store.trim_revocations(t0() + Duration::seconds(1), t0()).await.expect("trim"), 10);
}

/// The head is the last position ever written: trimming every entry does not move it back, and
/// moving it on (a feed that went back under nodes that read past it) is never undone and
/// leaves no entry written at or below it.
pub async fn the_head_never_moves_back(store: Arc<dyn Store>) {
    let token =
        |jti: &str| FeedEntry::Token { issuer: "https://a.example".into(), jti: jti.into(), exp: 1, user_id: None };
    let mut t = tx(&store).await;
    let written = t.record_revocations(&[token("a"), token("b")], t0(), Announce::Now).await.expect("record");
    t.commit().await.expect("commit");
    assert!(store.trim_revocations(t0() + Duration::seconds(1), t0()).await.expect("trim") >= 2);
    assert_eq!(store.revocation_head().await.expect("head"), written, "a trim leaves the head where it was");
    let page = store.feed_page(0, 100).await.expect("page");
    assert_eq!((page.head, page.entries.len()), (written, 0), "all trimmed: the head alone, as written");

    let past = written + (1 << 32);
    assert_eq!(store.skip_positions(past).await.expect("skip"), past, "the head moved on");
    assert_eq!(store.skip_positions(written).await.expect("skip back"), past, "never back");
    assert_eq!(store.feed_page(written, 100).await.expect("page").head, past);
    let mut t = tx(&store).await;
    let next = t.record_revocations(&[token("c")], t0(), Announce::Now).await.expect("record after the move");
    t.commit().await.expect("commit");
    assert_eq!(next, past + 1, "the next entry follows the head");
    let page = store.feed_page(written, 100).await.expect("page");
    assert_eq!(page.head, past + 1);
    assert_eq!(page.entries, vec![(past + 1, token("c"))], "nothing at or below the head it moved to");
}
